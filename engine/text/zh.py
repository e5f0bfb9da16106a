"""Mandarin: normalization, word segmentation, word-level pinyin, polyphones by context, tone sandhi,
erhua, opencpop-style phones and word2ph.

Segmentation is jieba's (its dictionary, word frequencies and part-of-speech tags, best path through
the word graph, no HMM) and readings are pypinyin's phrase and character data, both read from the
compiled trie of `text.store` so that nothing heavy is imported. On top: a context step for the
polyphones whose reading the word alone does not decide (还, 为, 得, 地, 着, 只, 种, 数, 长, 教, 干, 重),
a character-level step for those jieba glues to a number or to 不 (两只, 一行, 睡不着, 数一下, 一觉),
the 一/不 rules by position, neutral-tone particles, third-tone chains across words, erhua.
Every word carries where its reading came from (`Word.source`, `Word.rules`) for `gsvd g2p --explain`.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

from gsvd.engine.text import store
from gsvd.engine.text.normalize_zh import Notes, normalize_symbols
from gsvd.engine.text.pinyin import split_syllable

PUNCT = {"!", "?", "…", ",", ".", "-"}
_PUNCT_MAP = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", "...": "…",
    "$": ".", "/": ",", "—": "-", "~": "…", "～": "…", ":": ",", ";": ",", "“": "", "”": "", '"': "", "‘": "",
    "’": "", "'": "", "（": "", "）": "", "(": "", ")": "", "《": "", "》": "", "【": "", "】": "", "[": "",
    "]": "", "「": "", "」": "", "『": "", "』": "",
}
_PUNCT_RE = re.compile("|".join(re.escape(p) for p in sorted(_PUNCT_MAP, key=len, reverse=True)))
_KEEP_RE = re.compile(r"[^\u4e00-\u9fff!?…,.\-]+")
_REPEAT_RE = re.compile(r"([!?…,.\-])[!?…,.\-]+")
_MAX_WORD = 16

# words whose final 儿 is a full syllable (not erhua)
_NOT_ERHUA = {"女儿", "儿子", "幼儿", "婴儿", "孤儿", "健儿", "男儿", "少儿", "胎儿", "孩儿", "犬儿", "侄儿", "患儿",
              "混血儿", "新生儿", "流浪儿", "孙儿", "小儿", "骄儿", "托儿", "乞儿", "鱼儿", "宠儿", "弃儿", "产儿"}
# readings the phrase data gets wrong or lacks; they also join segmentation as words
_PHRASE_FIXES = {"还钱": "huan2 qian2", "还书": "huan2 shu1", "还给": "huan2 gei3", "归还": "gui1 huan2",
                 "偿还": "chang2 huan2", "还债": "huan2 zhai4", "还款": "huan2 kuan3", "约为": "yue1 wei2",
                 "分为": "fen1 wei2", "称为": "cheng1 wei2", "视为": "shi4 wei2", "改为": "gai3 wei2",
                 "成为": "cheng2 wei2", "作为": "zuo4 wei2", "认为": "ren4 wei2", "以为": "yi3 wei2",
                 "变为": "bian4 wei2", "选为": "xuan3 wei2", "评为": "ping2 wei2", "定为": "ding4 wei2",
                 "列为": "lie4 wei2", "更为": "geng4 wei2", "较为": "jiao4 wei2", "极为": "ji2 wei2",
                 "最为": "zui4 wei2", "甚为": "shen4 wei2", "颇为": "po1 wei2", "转为": "zhuan3 wei2",
                 "化为": "hua4 wei2", "译为": "yi4 wei2", "称之为": "cheng1 zhi1 wei2", "为止": "wei2 zhi3",
                 "因为": "yin1 wei4", "为了": "wei4 le5", "为什么": "wei4 shen2 me5", "行为": "xing2 wei2",
                 "长得": "zhang3 de5", "长大": "zhang3 da4", "还有": "hai2 you3", "还是": "hai2 shi4",
                 "还了得": "hai2 liao3 de2", "和面": "huo2 mian4", "和泥": "huo2 ni2"}
# common words read with a neutral last syllable (现代汉语词典 轻声 entries) where pypinyin's phrase data
# gives the citation tone
NEUTRAL_WORDS = {"月亮", "东西", "知道", "事情", "明白", "衣服", "朋友", "先生", "告诉", "意思", "喜欢", "认识",
                 "舒服", "漂亮", "清楚", "麻烦", "时候", "地方", "休息", "窗户", "豆腐", "消息", "眼睛", "耳朵",
                 "头发", "脑袋", "太阳", "石头", "木头", "回来", "出去", "起来", "下去", "关系", "生意", "学生",
                 "客气", "便宜", "聪明", "暖和", "热闹", "商量", "打扮", "打听", "收拾", "折腾", "琢磨", "心思",
                 "故事", "姑娘", "丫头", "亲戚", "玻璃", "葡萄", "萝卜", "钥匙", "行李", "爱人", "老实", "结实",
                 "厉害", "糊涂", "規矩", "规矩", "部分", "凉快", "痛快", "快活", "合同", "名字", "骆驼", "狐狸",
                 "尾巴", "嘴巴", "下巴", "工夫", "功夫", "大夫", "丈夫", "师傅", "队伍", "牌楼", "进来", "过来",
                 "上来", "下来", "出来", "回去", "过去", "上去", "进去", "精神", "咳嗽", "吆喝", "招呼", "嘱咐",
                 "吩咐", "溜达", "张罗", "清静", "干净", "扫帚", "笤帚", "苍蝇", "蚂蚁", "刺猬", "核桃", "庄稼",
                 "芝麻", "棉花", "云彩", "风筝", "灯笼", "包袱", "被窝", "枕头", "馒头", "骨头", "舌头", "指头",
                 "念头", "跟头", "日头", "苗头", "甜头", "苦头", "看头", "想头", "奔头"}
_CITATION_IN_COMPOUNDS = {"学生", "先生", "大夫", "功夫", "工夫", "部分", "过去", "出来", "起来", "回来", "下来", "上来",
                          "进来", "过来", "出去", "下去", "上去", "进去", "回去"}  # 大学生 da4 xue2 sheng1
_DIGIT_CHARS = set("零一二三四五六七八九")
_NUMBER_OPS = ("加", "减", "乘", "除", "等", "比", "到", "至", "和", "是", "大", "小", "又")
_ORDINAL_NOUNS = ("楼", "年级")  # 一楼, 一年级: the first floor, the first grade (yi1)
_MAGNITUDES = set("百千万亿")
_NUMBER_CHARS = _DIGIT_CHARS | set("十百千万亿两点")
_PARTICLES = {"的": "de", "了": "le", "着": "zhe", "过": "guo", "吗": "ma", "呢": "ne", "吧": "ba", "啊": "a",
              "呀": "ya", "么": "me", "嘛": "ma", "啦": "la", "哇": "wa", "哦": "o", "喽": "lou", "们": "men"}
_DEGREE = set("很太真好多最更挺极较越特非")
_RESULTS = set("大小高低好整成到回亮暗快慢")  # results after 调 (adjust)
_SCORE_OPS = set("比乘除减")  # 一 after these is a number
_VERBISH_POS = ("v", "vn", "vd", "a", "ad", "an", "d", "i", "l")
_WEIGHT_VERBS = ("达", "约", "逾", "超")  # 重达十斤: weighs (zhong4), not again
_SLEEP_BEFORE = set("一个了午好睡懒大")  # 睡一觉, 睡个好觉, 午觉: a sleep (jiao4)
_COUNT_AFTER = ("一下", "一遍", "一数", "了", "着", "过")  # 数一下, 数了数: count (shu3)
_CHAR_CONTEXT = frozenset("只行着觉数调量了")  # the characters _char_context decides


@dataclass
class Word:
    """One word of a clause: its reading, where the reading came from and the rules that changed it."""

    text: str
    pos: str
    pinyin: list[str]
    source: str
    rules: list[str] = field(default_factory=list)

    def set(self, i: int, syllable: str, rule: str) -> None:
        if self.pinyin[i] != syllable:
            self.pinyin[i] = syllable
            if rule not in self.rules:
                self.rules.append(rule)


def normalize(text: str, notes: Notes | None = None) -> str:
    """Numbers and symbols to Chinese words, punctuation to the symbol set, other characters removed."""
    text = normalize_symbols(text.replace("嗯", "恩").replace("呣", "母"), notes)
    text = _PUNCT_RE.sub(lambda m: _PUNCT_MAP[m.group(0)], text)
    text = _KEEP_RE.sub("", text)
    return _REPEAT_RE.sub(r"\1", text)


# -- dictionary --------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _log_total() -> float:
    trie = store.trie("zh")
    return math.log(float(trie[store.ZH_TOTAL][0].decode()))


@functools.lru_cache(maxsize=131072)
def entry(word: str) -> tuple[int, str, tuple[str, ...]]:
    """(jieba frequency, POS, pinyin per character or ()) of a word; (0, 'x', ()) if unknown."""
    fix = _PHRASE_FIXES.get(word)
    hit = store.trie("zh").get(word)
    freq, pos, py = (hit[0].decode().split("\t") if hit else ("0", "x", ""))
    if fix:
        return max(int(freq), 20000), pos if pos != "x" else "v", tuple(fix.split())
    return int(freq), pos, tuple(py.split())


@functools.lru_cache(maxsize=4096)
def _fix_prefixes(first: str) -> tuple[str, ...]:
    return tuple(w for w in _PHRASE_FIXES if w[0] == first)


def segment(run: str) -> list[tuple[str, str]]:
    """A run of Han characters -> [(word, POS)]: jieba's best path by word frequency (HMM off)."""
    trie = store.trie("zh")
    n = len(run)
    log_total = _log_total()
    route: list[tuple[float, int]] = [(0.0, 0)] * (n + 1)
    for i in range(n - 1, -1, -1):
        best = (-1e300, i + 1)
        cands = set(trie.prefixes(run[i : i + _MAX_WORD])) | {w for w in _fix_prefixes(run[i]) if run.startswith(w, i)}
        cands.add(run[i])
        for w in cands:
            freq = entry(w)[0]
            if freq <= 0 and len(w) > 1:
                continue
            score = math.log(freq or 1) - log_total + route[i + len(w)][0]
            if score > best[0] or (score == best[0] and i + len(w) > best[1]):
                best = (score, i + len(w))
        route[i] = best
    out, i = [], 0
    while i < n:
        j = route[i][1]
        out.append((run[i:j], entry(run[i:j])[1]))
        i = j
    return out


def _reading(word: str) -> tuple[list[str], str]:
    """Toned pinyin per character and its source: the word's phrase entry, else phrases inside it, else
    each character's most common reading."""
    py = entry(word)[2]
    if len(py) == len(word) and word:
        return list(py), "lexicon fix" if word in _PHRASE_FIXES else ("pypinyin phrase" if len(word) > 1 else "pypinyin char")
    out: list[str] = []
    i, sources = 0, set()
    trie = store.trie("zh")
    while i < len(word):
        for w in sorted(trie.prefixes(word[i:]), key=len, reverse=True):
            wp = entry(w)[2]
            if len(w) > 1 and len(wp) == len(w):
                out += wp
                i += len(w)
                sources.add("pypinyin phrase")
                break
        else:
            cp = entry(word[i])[2]
            out.append(cp[0] if cp else word[i])
            sources.add("pypinyin char")
            i += 1
    return out, "+".join(sorted(sources))


# -- analysis ----------------------------------------------------------------


def analyze(norm: str) -> list[Word]:
    """Normalized text -> words with their final readings (punctuation marks are words of their own)."""
    words: list[Word] = []
    for run in re.findall(r"[\u4e00-\u9fff]+|[!?…,.\-]", norm):
        if run in PUNCT:
            words.append(Word(run, "x", [run], "punctuation"))
            continue
        for w, pos in segment(run):
            py, src = _reading(w)
            words.append(Word(w, pos, py, src))
    _context(words)
    _char_context(words)
    _inner_particles(words)
    _yi_bu(words)
    _neutral(words)
    _third_tones(words)
    _erhua(words)
    return words


def _tone(py: str) -> str:
    return py[-1] if py[-1:].isdigit() else ""


def _base(py: str) -> str:
    return py[:-1] if py[-1:].isdigit() else py


def _is_punct(w: Word | None) -> bool:
    return w is None or w.text in PUNCT


def _context(words: list[Word]) -> None:
    """Polyphones that a single-character word leaves open, decided by the words around it."""
    for k, w in enumerate(words):
        if len(w.text) != 1:
            continue
        prev = words[k - 1] if k else None
        nxt = words[k + 1] if k + 1 < len(words) else None
        ptext, ppos = (prev.text, prev.pos) if not _is_punct(prev) else ("", "")
        ntext, npos = (nxt.text, nxt.pos) if not _is_punct(nxt) else ("", "")
        ch, last = w.text, ptext[-1:] or "\0"
        if ch == "还":
            back = npos[:1] in ("n", "r") or ntext[:1] in ("给", "清", "回", "钱", "书", "了") or last in "归偿退奉交送"
            w.set(0, "huan2" if back and ntext not in ("是", "有", "要", "在", "会", "没") else "hai2", "还: return/still by context")
        elif ch == "为":
            as_ = last in "约分称视改变选评定列转化译作成认以更较极最甚颇" or ntext[:1] == "止"
            w.set(0, "wei2" if as_ else "wei4", "为: as/for by context")
        elif ch == "得":
            if ppos[:1] == "r" and (npos[:1] == "v" or npos[:1] == "d" and ntext[:1] not in _DEGREE):
                w.set(0, "dei3", "得: must (pronoun + 得 + verb)")
            elif ptext and (ppos.startswith(_VERBISH_POS) or ntext[:1] in _DEGREE or npos[:1] in ("a", "d")):
                w.set(0, "de5", "得: structural particle after a verb")
        elif ch == "地":
            noun = not ptext or ppos[:1] in ("m", "q", "r") or last in "种扫拖耕落块片下"
            if not noun and npos[:1] in ("v", "a", "d", "p"):
                w.set(0, "de5", "地: structural particle after an adverbial")
            else:
                w.set(0, "di4", "地: ground")
        elif ch == "着" and ptext and ppos[:1] in ("v", "a"):
            w.set(0, "zhe5", "着: aspect particle after a verb")
        elif ch == "只" and (last in _NUMBER_CHARS or last in "几每这那哪"):
            w.set(0, "zhi1", "只: measure word after a number")
        elif ch == "种" and npos[:1] == "n" and last not in _NUMBER_CHARS and last not in "这那哪几每各某":
            w.set(0, "zhong4", "种: plant (verb before a noun)")
        elif ch == "数" and (npos[:1] in ("n", "m", "r") or ntext == "一"):
            w.set(0, "shu3", "数: count (verb before an object)")
        elif ch == "长" and ntext[:1] in ("着", "出", "满") and last not in _DEGREE:
            w.set(0, "zhang3", "长: grow (before 着/出/满)")
        elif ch == "长" and (last in _DEGREE or not ntext or npos[:1] in ("u", "y")):
            w.set(0, "chang2", "长: long (adjective)")
        elif ch == "教" and npos[:1] in ("r", "n", "v"):
            w.set(0, "jiao1", "教: teach (verb with an object)")
        elif ch == "干" and (last in _DEGREE or ppos[:1] == "n" and ntext in ("了", "透", "吗", "呢", "的")):
            w.set(0, "gan1", "干: dry (adjective)")
        elif ch == "调" and (ntext[:1] in _RESULTS or npos[:1] == "a"):
            w.set(0, "tiao2", "调: adjust (before its result)")
        elif ch == "重" and npos[:1] == "v" and last not in _DEGREE and ntext not in _WEIGHT_VERBS:
            w.set(0, "chong2", "重: again (before a verb)")
        elif ch == "了" and ptext and ntext == "" and ppos[:1] == "v" and ptext in ("受不", "得"):
            w.set(0, "liao3", "了: able (verb complement)")


def _char_context(words: list[Word]) -> None:
    """Polyphones that jieba glues to a number or to 不 inside a bigger word, decided by the characters
    around them: measure words after a number (两只 zhi1, 一行字 hang2), 着 as reach (睡不着, 灯着了:
    zhao2), 觉 as a sleep (睡了一觉: jiao4), 数 as count (数一下, 数了数: shu3), 调 as adjust (调低:
    tiao2), 量 as measure (量一量: liang2), 不了 as a potential complement (吃不了: bu5 liao3)."""
    text = "".join(w.text for w in words)
    if _CHAR_CONTEXT.isdisjoint(text):
        return
    chars = _chars(words)
    for k, ch in enumerate(text):
        if ch not in _CHAR_CONTEXT:
            continue
        (w, i), prev, nxt = chars[k], text[k - 1 : k], text[k + 1 : k + 2]
        counted = bool(prev) and (prev in _NUMBER_CHARS or prev in "几每")
        if ch == "只" and (counted or prev and prev in "这那哪" and nxt not in "是有要能会在不想") and nxt and nxt not in PUNCT:
            w.set(i, "zhi1", "只: measure word after a number")
        elif ch == "行" and counted and nxt != "人" and nxt not in _NUMBER_CHARS and _base(w.pinyin[i]) == "xing" \
                and w.text != "五行":
            w.set(i, "hang2", "行: a line (measure word after a number)")
        elif ch == "着" and _base(w.pinyin[i]) == "zhe" and (nxt == "了" or prev == "不" and k >= 2):
            w.set(i, "zhao2", "着: reach/ignite (着了, V不着)")
        elif ch == "觉" and _base(w.pinyin[i]) == "jue" and len(w.text) == 1 and prev in _SLEEP_BEFORE:
            w.set(i, "jiao4", "觉: a sleep (after a number or 睡)")
        elif ch == "数" and i == 0 and (text.startswith(_COUNT_AFTER, k + 1)
                                      or prev == "了" and text[k - 2 : k - 1] == "数"):
            w.set(i, "shu3", "数: count (verb before 一下/了)")
        elif ch == "量" and len(w.text) == 1 and (nxt and nxt in "一了下过着" or prev == "量" or text[k - 2 : k] == "量一"):
            w.set(i, "liang2", "量: measure (verb before 一/了/下)")
        elif ch == "调" and i == 0 and len(w.text) == 2 and w.source == "pypinyin char" and nxt in _RESULTS:
            w.set(i, "tiao2", "调: adjust (before its result)")
        elif ch == "了" and w.text in ("了", "不了") and prev == "不" and k >= 2 and text[k - 2] not in PUNCT \
                and nxt != "了":
            w.set(i, "liao3", "了: able (potential complement V不了)")
            pw, pi = chars[k - 1]
            pw.set(pi, "bu5", "不: potential complement, neutral")


_ASPECT_VERBS = set("去来见吃看听做用说想玩学试到住喝买坐遇碰读写走跑唱画")


def _inner_particles(words: list[Word]) -> None:
    """Particles inside jieba words: 得 between a verb and its complement (跑得快, 来得及), 不 of a
    potential complement (对不起, 看不见), experiential 过 after a one-character verb (去过), and the
    verb reading of 数 in 数数/数一数."""
    for w in words:
        n = len(w.text)
        for i in range(1, n - 1):
            if w.text[i] == "得" and w.text[i - 1] != "不" and n >= 3:
                w.set(i, "de5", "得: structural particle inside a verb phrase")
        if n == 3 and w.text[1] == "不" and w.text[0] != w.text[2]:
            w.set(1, "bu5", "不: potential complement, neutral")
        if n == 2 and w.text[1] == "过" and w.text[0] in _ASPECT_VERBS:
            w.set(1, "guo5", "过: experiential aspect after a verb, neutral")
        if w.text in ("数数", "数一数"):
            w.set(0, "shu3", "数: count (verb)")
            w.set(n - 1, "shu3", "数: count (verb)")


def _chars(words: list[Word]) -> list[tuple[Word, int]]:
    return [(w, i) for w in words for i in range(len(w.text))]


def _yi_bu(words: list[Word]) -> None:
    """一 and 不 by position: digits and word ends keep yi1; A不A is neutral; before a 4th tone yi2/bu2."""
    chars = _chars(words)
    text = "".join(w.text[i] for w, i in chars)
    for k, (w, i) in enumerate(chars):
        ch = w.text[i]
        if ch not in "一不" or _base(w.pinyin[i]) not in ("yi", "bu"):
            continue
        prev, nxt = text[k - 1 : k], text[k + 1 : k + 2]
        after = chars[k + 1][0].pinyin[chars[k + 1][1]] if k + 1 < len(chars) else ""
        follow = _tone(after) if nxt and nxt not in PUNCT else ""
        if follow == "5":  # a neutral syllable after: its citation tone decides (一个 yi2 ge5 -> yi2)
            follow = _tone(entry(nxt)[2][0]) if entry(nxt)[2] else "4"
        if ch == "不":
            if prev and prev == nxt and prev not in PUNCT:
                w.set(i, "bu5", "不: A-not-A question, neutral")
            elif _tone(w.pinyin[i]) == "5" and (w.source.startswith("pypinyin phrase") or any("不: potential" in r for r in w.rules)):
                continue  # 对不起, 来不及: the phrase's neutral 不
            elif prev and prev not in PUNCT and nxt == "着" and _base(after) == "zhao":
                w.set(i, "bu5", "不: potential complement, neutral")
            else:
                w.set(i, "bu2" if follow == "4" else "bu4", "不: bu2 before a 4th tone, else bu4")
            continue
        word_final = i == len(w.text) - 1 and (len(w.text) > 1 or not follow)
        if prev and prev == nxt and prev not in PUNCT and prev not in _NUMBER_CHARS:
            w.set(i, "yi5", "一: between a reduplicated verb, neutral")
        elif prev == "第" and nxt not in _MAGNITUDES or (prev in _SCORE_OPS and len(w.text) == 1) or (prev in _NUMBER_CHARS and nxt not in _MAGNITUDES) or prev in _MAGNITUDES and nxt == "十":
            w.set(i, "yi1", "一: in a number or ordinal, yi1")
        elif nxt in _DIGIT_CHARS or (nxt == "点" and text[k + 2 : k + 3] in _DIGIT_CHARS) or nxt == "十":
            w.set(i, "yi1", "一: a digit, yi1")
        elif nxt in ("月", "号") or (nxt == "日" and prev == "月"):
            w.set(i, "yi1", "一: a date, yi1")
        elif text.startswith(_ORDINAL_NOUNS, k + 1) or nxt in "对比" and text[k + 2 : k + 3] in _DIGIT_CHARS:
            w.set(i, "yi1", "一: an ordinal or a score (一楼, 一对一), yi1")
        elif text.startswith(("不等于", "约等于"), k + 1):
            w.set(i, "yi1", "一: a number in a comparison, yi1")
        elif nxt in _NUMBER_OPS and len(w.text) == 1 and (not prev or prev in PUNCT or prev in _NUMBER_OPS
                                                          or prev in _NUMBER_CHARS):
            w.set(i, "yi1", "一: a number in arithmetic or a comparison, yi1")
        elif word_final and nxt not in _MAGNITUDES:
            w.set(i, "yi1", "一: word-final, yi1")
        elif follow:
            w.set(i, "yi2" if follow == "4" else "yi4", "一: yi2 before a 4th tone, else yi4")
        else:
            w.set(i, "yi1", "一: alone, yi1")


def _neutral(words: list[Word]) -> None:
    """Particles and suffixes in the neutral tone; reduplicated kinship nouns and verbs."""
    for k, w in enumerate(words):
        if w.text in NEUTRAL_WORDS:
            w.set(len(w.text) - 1, _base(w.pinyin[-1]) + "5", "neutral-tone word (dictionary list)")
        elif len(w.text) >= 3 and w.text[-2:] in NEUTRAL_WORDS and w.text[-2:] not in _CITATION_IN_COMPOUNDS:
            w.set(len(w.text) - 1, _base(w.pinyin[-1]) + "5", "ends in a neutral-tone word (男朋友, 洗衣服)")
        if len(w.text) == 1 and w.text in _PARTICLES and _base(w.pinyin[0]) == _PARTICLES[w.text]:
            if w.text != "们" or k:
                w.set(0, _PARTICLES[w.text] + "5", "particle: neutral tone")
        elif w.source == "pypinyin char" or "+" in w.source:
            if len(w.text) >= 2 and w.text[-1] in "们" or (w.text[-1] == "子" and w.pos[:1] == "n"):
                w.set(len(w.text) - 1, _base(w.pinyin[-1]) + "5", "noun suffix: neutral tone")
            if len(w.text) == 2 and w.text[0] == w.text[1] and w.pos[:1] == "n":
                w.set(1, _base(w.pinyin[1]) + "5", "reduplication: neutral second syllable")
        if len(w.text) == 2 and w.text[0] == w.text[1] and w.pos[:1] == "v":
            w.set(1, _base(w.pinyin[1]) + "5", "reduplicated verb: neutral second syllable")


def _third_tones(words: list[Word]) -> None:
    """3-3 -> 2-3 inside words (展览馆: 2+1 grouping) and across word boundaries within a clause, left to
    right against the right-hand word's own reading (我很好: wo2 hen2 hao3; 小老虎: xiao3 lao2 hu3)."""
    for w in words:
        tones = [_tone(p) for p in w.pinyin]
        if len(w.text) == 3 and tones == ["3", "3", "3"] and entry(w.text[1:])[0] > entry(w.text[:2])[0]:
            w.set(1, _base(w.pinyin[1]) + "2", "third tone: 3-3 -> 2-3")  # 1+2 grouping: 纸老虎
            continue
        for i in range(len(tones) - 1):
            if _tone(w.pinyin[i]) == "3" and _tone(w.pinyin[i + 1]) == "3":
                w.set(i, _base(w.pinyin[i]) + "2", "third tone: 3-3 -> 2-3")
    for k in range(len(words) - 1):
        left, right = words[k], words[k + 1]
        if _is_punct(left) or _is_punct(right):
            continue
        if _tone(left.pinyin[-1]) == "3" and _tone(right.pinyin[0]) == "3":
            left.set(len(left.text) - 1, _base(left.pinyin[-1]) + "2", "third tone across words: 3-3 -> 2-3")


def _erhua(words: list[Word]) -> None:
    for w in words:
        if len(w.text) >= 2 and w.text.endswith("儿") and w.text not in _NOT_ERHUA and _base(w.pinyin[-1]) == "er" \
                and _tone(w.pinyin[-2]):
            w.set(len(w.text) - 1, "er" + _tone(w.pinyin[-2]), "erhua: 儿 takes the tone before it")


def phones_of(w: Word) -> list[list[str]]:
    """Phones per character of a word."""
    out = []
    for ch, py in zip(w.text, w.pinyin):
        if ch in PUNCT:
            out.append([ch])
            continue
        parts = split_syllable(_base(py)) if _tone(py) else None
        out.append([parts[0], parts[1] + _tone(py)] if parts else ["UNK"])
    return out


def g2p(norm: str) -> tuple[list[str], list[int]]:
    """Normalized text -> (phones, word2ph) with one word2ph entry per character."""
    phones: list[str] = []
    word2ph: list[int] = []
    for w in analyze(norm):
        for ph in phones_of(w):
            phones += ph
            word2ph.append(len(ph))
    return phones, word2ph

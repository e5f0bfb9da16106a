"""Mandarin: normalization, segmentation (jieba), pinyin (pypinyin), tone sandhi, erhua,
opencpop-style phones and word2ph.

Dictionaries load once per process (lazily, under a lock); jieba's cache goes to a
writable per-user cache dir, never into site-packages.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
import threading
from pathlib import Path

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

_lock = threading.Lock()
_loaded = False

# words whose final 儿 is a full syllable (not erhua)
_NOT_ERHUA = {"女儿", "儿子", "幼儿", "婴儿", "孤儿", "健儿", "男儿", "少儿", "胎儿", "孩儿", "犬儿", "侄儿", "患儿",
              "混血儿", "新生儿", "流浪儿", "孙儿", "小儿", "骄儿", "托儿", "乞儿", "鱼儿"}
_SUFFIX_NEUTRAL = set("们子")
# readings pypinyin's phrase table gets wrong (polyphones decided by the word)
_PHRASE_FIXES = {"还钱": "huán qián", "还书": "huán shū", "还给": "huán gěi", "归还": "guī huán", "偿还": "cháng huán",
                 "还债": "huán zhài", "还款": "huán kuǎn"}
_NUMERALS = set("零一二三四五六七八九十百千万亿两")
# common words whose last syllable is read in the neutral tone
_NEUTRAL_WORDS = {"月亮", "东西", "知道", "事情", "明白", "衣服", "朋友", "先生", "告诉", "意思", "喜欢", "认识",
                  "舒服", "漂亮", "清楚", "麻烦", "时候", "地方", "休息", "窗户", "豆腐", "消息", "眼睛", "耳朵",
                  "头发", "脑袋", "太阳", "石头", "木头", "回来", "出去", "起来", "下去", "关系", "生意", "学生"}


def _load() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        import jieba

        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gsvd"
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:
            cache = Path(tempfile.gettempdir())
        jieba.dt.tmp_dir = str(cache)
        jieba.setLogLevel(60)
        jieba.initialize()
        from pypinyin import load_phrases_dict

        load_phrases_dict({k: [[p] for p in v.split()] for k, v in _PHRASE_FIXES.items()})
        for word in _PHRASE_FIXES:
            jieba.add_word(word)
        _loaded = True


def normalize(text: str) -> str:
    """Numbers/dates/percent to Chinese words, punctuation to the symbol set, other chars removed."""
    import cn2an

    from gsvd.engine.text.normalize_zh import normalize_symbols

    text = normalize_symbols(text.replace("嗯", "恩").replace("呣", "母"))
    text = re.sub(r"(\d+)\s*[%％]", lambda m: "百分之" + m.group(1), text)
    try:
        text = cn2an.transform(text, "an2cn")
    except (ValueError, KeyError, IndexError):
        text = re.sub(r"\d+(\.\d+)?", lambda m: cn2an.an2cn(m.group(0)), text)
    text = _PUNCT_RE.sub(lambda m: _PUNCT_MAP[m.group(0)], text)
    text = _KEEP_RE.sub("", text)
    return _REPEAT_RE.sub(r"\1", text)


@functools.lru_cache(maxsize=65536)
def _word_syllables(word: str) -> tuple[str, ...]:
    from pypinyin import Style, lazy_pinyin

    return tuple(lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True, errors=lambda s: list(s)))


def _syllables(word: str) -> list[str]:
    """Toned pinyin per character of a word (cached per word: words repeat a lot)."""
    return list(_word_syllables(word))


def _sandhi(word: str, pos: str, pys: list[str], next_tone: str | None) -> list[str]:
    """Tone changes within a word: 不, 一, neutral suffixes/reduplication, 3-3."""
    tones = [p[-1] if p[-1:].isdigit() else "" for p in pys]
    bases = [p[:-1] if p[-1:].isdigit() else p for p in pys]
    following = tones[1:] + [next_tone or ""]
    for i, ch in enumerate(word[: len(pys)]):
        if ch == "不" and bases[i] == "bu":
            tones[i] = "2" if following[i] == "4" else tones[i]
        elif ch == "一" and bases[i] == "yi":
            prev, nxt = word[i - 1 : i], word[i + 1 : i + 2]
            if prev and prev == nxt:
                tones[i] = "5"  # 看一看
            elif (prev in _NUMERALS or nxt in _NUMERALS) or word.startswith("第") or not following[i]:
                tones[i] = "1"
            else:
                tones[i] = "2" if following[i] == "4" else "4"
    if len(word) >= 2 and word[-1] in _SUFFIX_NEUTRAL and pos in {"n", "r", "nr", "ns", "nz"}:
        tones[-1] = "5"
    if len(word) == 2 and word[0] == word[1] and pos[:1] in {"n", "v", "a"} or word in _NEUTRAL_WORDS:
        tones[-1] = "5"
    for i in range(len(tones) - 1):
        if tones[i] == "3" and tones[i + 1] == "3":
            tones[i] = "2"
    return [b + t for b, t in zip(bases, tones)]


def _erhua(word: str, pys: list[str]) -> list[str]:
    merge = len(word) >= 2 and word.endswith("儿") and word not in _NOT_ERHUA and len(pys) == len(word)
    if merge and pys[-1] in ("er2", "er5") and pys[-2][-1:].isdigit():
        return pys[:-1] + ["er" + pys[-2][-1]]
    return pys


def _merge_third_tones(words: list) -> list[tuple[str, str]]:
    """Join runs of third-tone words up to 3 syllables so the 3-3 rule applies across them."""
    out: list[tuple[str, str]] = []
    for w in words:
        word, pos = w.word, w.flag
        if out and len(out[-1][0]) + len(word) <= 3 and _all_third(out[-1][0]) and _all_third(word):
            out[-1] = (out[-1][0] + word, out[-1][1])
        else:
            out.append((word, pos))
    return out


def _all_third(word: str) -> bool:
    pys = _syllables(word)
    return bool(pys) and all(p.endswith("3") for p in pys)


def g2p(norm: str) -> tuple[list[str], list[int]]:
    """Normalized text -> (phones, word2ph) with one word2ph entry per character."""
    _load()
    import jieba.posseg as psg

    words = _merge_third_tones(psg.lcut(norm, HMM=False))
    phones: list[str] = []
    word2ph: list[int] = []
    all_pys = [(w, p, _syllables(w)) for w, p in words]
    for idx, (word, pos, pys) in enumerate(all_pys):
        nxt = all_pys[idx + 1][2][0][-1:] if idx + 1 < len(all_pys) and all_pys[idx + 1][2] else None
        pys = _erhua(word, _sandhi(word, pos, pys, nxt))
        # 3-3 also across word boundaries inside a clause (点五, 点整, 好老师)
        if phones and phones[-1].endswith("3") and pys and pys[0].endswith("3"):
            phones[-1] = phones[-1][:-1] + "2"
        for ch, py in zip(word, pys):
            if ch in PUNCT:
                phones.append(ch)
                word2ph.append(1)
                continue
            parts = split_syllable(py[:-1]) if py[-1:].isdigit() else None
            if parts is None:
                phones.append("UNK")
                word2ph.append(1)
                continue
            phones += [parts[0], parts[1] + py[-1]]
            word2ph.append(2)
    return phones, word2ph

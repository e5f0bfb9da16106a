"""Japanese: OpenJTalk (pyopenjtalk-plus, dictionary bundled in the wheel) phones with
prosody marks: `[` pitch rise, `]` pitch fall, `_` pause; accent-phrase boundaries
(`#`) are not in the v2 symbol table and are dropped. Unvoiced vowels are lower-cased.
"""

from __future__ import annotations

import functools
import re
import threading

from gsvd.engine.text import rules

_lock = threading.Lock()
_JA_CHARS = re.compile(r"(?:[\u3040-\u30ff\u4e00-\u9fff\u3005\u30fc\uff66-\uff9f0-9０-９a-zA-Zａ-ｚＡ-Ｚ]|(?<=\d)\.(?=\d))+")
_MARKS = {"、": ",", "，": ",", ",": ",", "。": ".", ".": ".", "！": "!", "!": "!", "？": "?", "?": "?",
          "…": "…", "・": ",", "ー": "-", "～": "-", "〜": "-", "「": "", "」": "", "『": "", "』": ""}


def _num(regex: str, s: str) -> int:
    m = re.search(regex, s)
    return int(m.group(1)) if m else -50


def _prosody(text: str) -> list[str]:
    import pyopenjtalk

    with _lock:  # OpenJTalk's global state is not thread-safe
        labels = pyopenjtalk.make_label(pyopenjtalk.run_frontend(text))
    out: list[str] = []
    for n, lab in enumerate(labels):
        p3 = re.search(r"-(.*?)\+", lab).group(1)
        if p3 == "sil":
            continue
        if p3 == "pau":
            out.append("_")
            continue
        out.append(p3.lower() if p3 in "AEIOU" else p3)
        a1 = _num(r"/A:([0-9\-]+)\+", lab)
        a2 = _num(r"\+(\d+)\+", lab)
        a3 = _num(r"\+(\d+)/", lab)
        f1 = _num(r"/F:(\d+)_", lab)
        a2_next = _num(r"\+(\d+)\+", labels[n + 1]) if n + 1 < len(labels) else -50
        if a3 == 1 and a2_next == 1 and p3 in "aeiouAEIOUNcl":
            continue  # accent phrase boundary '#': not in the symbol table
        if a1 == 0 and a2_next == a2 + 1 and a2 != f1:
            out.append("]")
        elif a2 == 1 and a2_next == 2:
            out.append("[")
    return out


_CURRENCY = {"$": "ドル", "€": "ユーロ", "£": "ポンド", "¥": "円", "￥": "円", "₩": "ウォン"}
_UNITS = {"km/h": "キロメートル毎時", "m/s": "メートル毎秒", "km²": "平方キロメートル", "km": "キロメートル", "kg": "キログラム",
          "cm²": "平方センチメートル", "cm³": "立方センチメートル", "cm": "センチメートル", "mm": "ミリメートル",
          "mg": "ミリグラム", "ml": "ミリリットル", "mL": "ミリリットル", "GB": "ギガバイト", "MB": "メガバイト",
          "KB": "キロバイト", "TB": "テラバイト", "℃": "度", "°C": "度", "°": "度", "m²": "平方メートル", "m³": "立方メートル",
          "m": "メートル", "g": "グラム", "L": "リットル", "kWh": "キロワット時", "kW": "キロワット", "W": "ワット",
          "V": "ボルト", "Hz": "ヘルツ", "kHz": "キロヘルツ", "MHz": "メガヘルツ", "GHz": "ギガヘルツ", "ms": "ミリ秒"}
_UNIT_PATTERN = (r"(\d+(?:\.\d+)?)\s?(" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
                 + r")(?![A-Za-z²³])")
_VULGAR = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅛": (1, 8)}
_OPS = {"+": "たす", "-": "ひく", "−": "ひく", "×": "かける", "*": "かける", "÷": "わる", "=": "は", "＝": "は"}
_NUM = r"\d+(?:\.\d+)?"
_PHONE_DIGITS = ("ゼロ", "イチ", "ニー", "サン", "ヨン", "ゴー", "ロク", "ナナ", "ハチ", "キュー")


def _equation(m: re.Match) -> str:
    """2+3=5 -> 2たす3は5 (OpenJTalk reads the digits and the particle)."""
    return re.sub(r"\s*([+\-−×*÷=＝])\s*", lambda o: _OPS[o.group(1)], m.group(0))


def _clock(m: re.Match) -> str:
    """10:30 -> 10時30分, 0:30 -> れい時30分, 14:30:05 -> 14時30分5秒; 25:10 is a ratio (25対10)."""
    h, mi, sec = int(m.group(1)), int(m.group(2)), m.group(3)
    if h > 24 or mi > 59 or (sec and int(sec) > 59):
        return "対".join(g for g in m.groups() if g)
    out = ("れい" if h == 0 else str(h)) + "時" + (f"{mi}分" if mi or sec else "")
    return out + (f"{int(sec)}秒" if sec and int(sec) else "")


def _vulgar(m: re.Match) -> str:
    num, den = _VULGAR[m.group(2)]
    return (m.group(1) + "と" if m.group(1) else "") + f"{den}分の{num}"


def _phone(m: re.Match) -> str:
    """Phone numbers digit by digit (long ニー/ゴー as said), groups joined by の."""
    return "ノ".join("".join(_PHONE_DIGITS[int(d)] for d in g) for g in m.group(0).split("-"))


# counter readings OpenJTalk gets wrong (8個 is はっこ, 8分 はっぷん, 20歳 はたち)
_COUNTER_FIXES = {"8個": "ハッコ", "8分": "ハップン", "20歳": "ハタチ"}
_COUNTER_PATTERN = r"(?<![\d.])(" + "|".join(_COUNTER_FIXES) + ")"

@functools.cache
def _table() -> list[rules.Rule]:
    """The rules, compiled on first use: a process that never reads Japanese never compiles them."""
    return [
        ("counter", re.compile(_COUNTER_PATTERN), lambda m: _COUNTER_FIXES[m.group(1)]),
        ("phone number", re.compile(r"(?<![\d-])0\d{1,4}-\d{2,4}-\d{3,4}(?![\d-])"), _phone),
        ("separator", re.compile(r"(?<=\d)[,，](?=\d{3}(?!\d))"), lambda m: ""),
        ("date", re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)"),
         lambda m: f"{m.group(1)}年{int(m.group(2))}月{int(m.group(3))}日"),
        ("clock time", re.compile(r"(?<![\d:])(\d{1,2}):(\d{2})(?::(\d{2}))?(?![\d:])"), _clock),
        ("clock time", re.compile(r"(?<![\d.])[0零](?=時)"), lambda m: "れい"),  # OpenJTalk says ゼロジ in 午前零時
        ("ratio", re.compile(r"(?<![\d:])(\d+):(\d+)(?![\d:])"), lambda m: f"{m.group(1)}対{m.group(2)}"),
        ("money", re.compile(r"([$€£¥￥₩])\s?(\d+(?:\.\d+)?)"), lambda m: m.group(2) + _CURRENCY[m.group(1)]),
        ("money", re.compile(r"(\d+(?:\.\d+)?)\s?([$€£₩])"), lambda m: m.group(1) + _CURRENCY[m.group(2)]),
        ("percent", re.compile(r"[%％]"), lambda m: "パーセント"),
        ("per mille", re.compile(r"‰"), lambda m: "パーミル"),
        ("plus-minus", re.compile(r"±\s?(?=\d)"), lambda m: "プラスマイナス"),
        ("fraction", re.compile(r"(?<![\d.])(\d+)?\s?([½⅓⅔¼¾⅕⅛])"), _vulgar),
        ("fraction", re.compile(r"(?<![\d/.])(\d{1,4})/(\d{1,4})(?![\d/]|\s?[(（])"),
         lambda m: f"{m.group(2)}分の{m.group(1)}"),
        ("unit", re.compile(_UNIT_PATTERN), lambda m: m.group(1) + _UNITS[m.group(2)]),
        ("equation", re.compile(rf"(?<![\d.]){_NUM}(?:\s*[+\-−×*÷]\s*{_NUM})*\s*[=＝]\s*[-−]?{_NUM}"), _equation),
        ("arithmetic", re.compile(rf"(?<![\d.]){_NUM}(?:\s*[+×*÷]\s*{_NUM})+(?![\d.])"), _equation),
        ("range", re.compile(r"(?<=\d)\s?[~～〜\-–]\s?(?=\d)|(?<=[年月日時分秒円人個回])\s?[~～〜]\s?(?=\d)"), lambda m: "から"),
        ("negative", re.compile(r"(?<![A-Za-z0-9０-９])[-−](?=\d)"), lambda m: "マイナス"),
    ]


def normalize(text: str, notes: rules.Notes | None = None) -> str:
    """Numbers and symbols OpenJTalk misreads, spells or pauses on (phone numbers, digit-group commas,
    dates, clock times with seconds and れい時, ratios, money with the symbol before or after, %, ‰, ±,
    fractions as 分の, units, arithmetic with たす/ひく/かける/わる/は, ranges as から, minus signs);
    OpenJTalk reads the rest (counters, dates)."""
    return rules.apply(text, _table(), notes, "ja: ").strip()


def words(norm: str) -> list[tuple[str, str]]:
    """(surface, katakana reading) per OpenJTalk word, for `gsvd g2p --explain`."""
    import pyopenjtalk

    with _lock:
        feats = pyopenjtalk.run_frontend(norm)
    return [(f["string"], f["pron"]) for f in feats]


def g2p(norm: str) -> list[str]:
    phones: list[str] = []
    pos = 0
    for m in _JA_CHARS.finditer(norm):
        phones += _marks(norm[pos : m.start()])
        phones += _prosody(m.group(0))
        pos = m.end()
    phones += _marks(norm[pos:])
    return phones


def reading(norm: str) -> str:
    """The katakana pronunciation OpenJTalk gives the normalized text (no accents or pauses)."""
    import pyopenjtalk

    out = []
    for m in _JA_CHARS.finditer(norm):
        with _lock:
            out.append(pyopenjtalk.g2p(m.group(0), kana=True))
    return "".join(out)


def _marks(chunk: str) -> list[str]:
    return [_MARKS[c] for c in chunk if _MARKS.get(c)]

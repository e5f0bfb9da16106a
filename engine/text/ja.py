"""Japanese: OpenJTalk (pyopenjtalk-plus, dictionary bundled in the wheel) phones with
prosody marks: `[` pitch rise, `]` pitch fall, `_` pause; accent-phrase boundaries
(`#`) are not in the v2 symbol table and are dropped. Unvoiced vowels are lower-cased.
"""

from __future__ import annotations

import re
import threading

_lock = threading.Lock()
_JA_CHARS = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\u3005\u30fc\uff66-\uff9f0-9０-９a-zA-Zａ-ｚＡ-Ｚ]+")
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


def normalize(text: str) -> str:
    return text.replace("％", "パーセント").replace("%", "パーセント").strip()


def g2p(norm: str) -> list[str]:
    phones: list[str] = []
    pos = 0
    for m in _JA_CHARS.finditer(norm):
        phones += _marks(norm[pos : m.start()])
        phones += _prosody(m.group(0))
        pos = m.end()
    phones += _marks(norm[pos:])
    return phones


def _marks(chunk: str) -> list[str]:
    return [_MARKS[c] for c in chunk if _MARKS.get(c)]

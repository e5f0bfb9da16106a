"""Sentence splitting for streaming and upstream's cut0-cut5 methods.

'auto': the first piece ends at the earliest clause mark once it has a few
characters (fast first audio), later pieces are whole sentences merged up to
~60 characters (prosody). cut0..cut5 follow upstream's meanings.
"""

from __future__ import annotations

import re

from gsvd.engine.errors import InvalidInput
from gsvd.engine.types import SPLIT_METHODS

CLAUSE = "，,、；;：:—…~"
SENTENCE = "。.!?！？\n"
ALL = CLAUSE + SENTENCE
_MIN_FIRST = 4
_MAX_LATER = 60


# '.' after these does not end a sentence when a word follows (Dr. Smith, Jan. 5, e.g. this)
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "prof", "jr", "sr", "vs", "mt", "ave", "rd", "blvd", "gen", "capt",
                  "lt", "sgt", "gov", "sen", "rev", "no", "fig", "vol", "ch", "pp", "approx", "dept", "inc", "ltd",
                  "corp", "co", "est", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
                  "dec", "mon", "tue", "tues", "wed", "thu", "thurs", "fri", "sat", "sun", "e.g", "i.e", "a.m",
                  "p.m", "u.s", "u.k", "etc"}


def _keeps_together(text: str, i: int) -> bool:
    """Whether the mark at text[i] is part of a number (3.14, 10:30, 12,999) or an abbreviation."""
    ch = text[i]
    if ch in ".,:，" and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit():
        return True
    if ch == ".":
        word = re.search(r"([A-Za-z.]+)$", text[:i])
        nxt = text[i + 1 : i + 3]
        if word and word.group(1).lower().strip(".") in _ABBREVIATIONS and re.match(r"\s[\w$€£¥]", nxt):
            return not (word.group(1).lower() in ("etc", "a.m", "p.m") and re.match(r"\s[A-Z]", nxt))
        if re.search(r"(?<![A-Za-z])[A-Za-z]$", text[:i]) and re.match(r"[A-Za-z]\.", text[i + 1 : i + 3]):
            return True  # inside U.S.A.
    return False


def _pieces(text: str, marks: str) -> list[str]:
    """Split after each mark in `marks`, except marks inside numbers and after abbreviations."""
    out, cur = [], ""
    for i, ch in enumerate(text):
        cur += ch
        if ch in marks and not _keeps_together(text, i):
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def _speakable(piece: str) -> bool:
    return any(ch.isalnum() for ch in piece)


def _merge_short(pieces: list[str], threshold: int = 5) -> list[str]:
    out: list[str] = []
    for p in pieces:
        if out and len(out[-1].strip()) < threshold:
            out[-1] += p
        else:
            out.append(p)
    if len(out) > 1 and len(out[-1].strip()) < threshold:
        last = out.pop()
        out[-1] += last
    return out


def split_text(text: str, method: str = "auto") -> list[str]:
    if method not in SPLIT_METHODS:
        raise InvalidInput(f"split method must be one of {', '.join(SPLIT_METHODS)}; got {method!r}", "split_method")
    text = re.sub(r"[ \t]{2,}", " ", text.strip())
    if not text:
        return []
    if method == "cut0":
        pieces = [text]
    elif method == "cut1":
        sents = _pieces(text, ALL)
        pieces = ["".join(sents[i : i + 4]) for i in range(0, len(sents), 4)]
    elif method == "cut2":
        pieces = _accumulate(_pieces(text, ALL), 50)
    elif method == "cut3":
        pieces = _pieces(text, "。")
    elif method == "cut4":
        pieces = _pieces(text, ".")
    elif method == "cut5":
        pieces = _pieces(text, ALL)
    else:
        pieces = _auto(text)
    pieces = [p.strip() for p in _merge_short([p for p in pieces if p.strip()]) if _speakable(p)]
    return pieces


def _accumulate(sents: list[str], limit: int) -> list[str]:
    out, cur = [], ""
    for s in sents:
        cur += s
        if len(cur) > limit:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def _auto(text: str) -> list[str]:
    clauses = _pieces(text, ALL)
    first = ""
    while clauses and (len(first.strip()) < _MIN_FIRST or not _speakable(first)):
        first += clauses.pop(0)
    later = _accumulate_sentences("".join(clauses))
    return [first, *later]


def _accumulate_sentences(text: str) -> list[str]:
    out, cur = [], ""
    for s in _pieces(text, SENTENCE):
        if cur and len(cur) + len(s) > _MAX_LATER:
            out.append(cur)
            cur = ""
        cur += s
        while len(cur) > 2 * _MAX_LATER:  # a very long sentence: cut at clause marks
            parts = _accumulate(_pieces(cur, CLAUSE), _MAX_LATER)
            out += parts[:-1]
            cur = parts[-1]
            if len(parts) == 1:
                break
    if cur:
        out.append(cur)
    return out

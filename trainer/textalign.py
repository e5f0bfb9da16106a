"""Text against audio: tokens, edit-distance alignment of a transcript to recognized words, the
character error rate between two texts, and phones per second of speech.

A whole-file transcript has no times. Aligned to an ASR's timed words (Levenshtein opcodes
over normalized tokens, `rapidfuzz`), every transcript token gets a time: matched and
substituted tokens take the times of the recognized tokens they stand for (a substitution block
shares its span in proportion to the tokens' lengths), tokens the ASR missed are placed between
their neighbours and marked unmatched. A clip then gets the transcript tokens whose middle lies
inside it, in the transcript's own spelling and punctuation.

Tokens: a word (letters, digits, apostrophes) for alphabetic scripts, one character for Han and
kana, since those are written without spaces; punctuation stays on the token before it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from gsvd.trainer.asr import Word

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_TOKEN = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")


@dataclass
class Token:
    surface: str  # as written, with the punctuation that follows it
    key: str  # lower-case letters and digits only; "" for punctuation
    start: float = 0.0
    end: float = 0.0
    timed: bool = False  # the time comes from recognized words (heard as is, or in a substitution)
    matched: bool = False  # heard exactly as written

    @property
    def cjk(self) -> bool:
        return bool(re.match(rf"[{_CJK}]", self.surface))


def _key(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if ch.isalnum())


def tokens(text: str) -> list[Token]:
    """Tokens of a text (see the module docstring); punctuation-only pieces join the token before."""
    out: list[Token] = []
    for piece in _TOKEN.findall(text):
        key = _key(piece)
        if not key and out:
            out[-1].surface += piece
        elif key:
            out.append(Token(piece, key))
    return out


def join(toks: list[Token]) -> str:
    """Tokens back to text: CJK characters without spaces, words with single spaces."""
    parts: list[str] = []
    for i, t in enumerate(toks):
        if i and not (t.cjk and toks[i - 1].cjk):
            parts.append(" ")
        parts.append(t.surface)
    return "".join(parts).strip()


def timed_tokens(words: list[Word]) -> list[Token]:
    """Recognized words as tokens with times (a word of several tokens shares its span by length)."""
    out: list[Token] = []
    for w in words:
        toks = tokens(w.text)
        total = sum(len(t.key) for t in toks) or 1
        t0 = w.start
        for t in toks:
            t.start, t.end = t0, t0 + (w.end - w.start) * len(t.key) / total
            t.timed = t.matched = True
            t0 = t.end
            out.append(t)
    return out


def align(transcript: str, words: list[Word]) -> list[Token]:
    """The transcript's tokens with times taken from the recognized words (see the module docstring)."""
    from rapidfuzz.distance import Levenshtein

    ours, heard = tokens(transcript), timed_tokens(words)
    if not ours or not heard:
        return ours
    for op in Levenshtein.opcodes([t.key for t in ours], [t.key for t in heard]):
        if op.tag == "equal":
            for i, j in zip(range(op.src_start, op.src_end), range(op.dest_start, op.dest_end), strict=True):
                ours[i].start, ours[i].end = heard[j].start, heard[j].end
                ours[i].timed = ours[i].matched = True
        elif op.tag == "replace":
            _share(ours[op.src_start:op.src_end], heard[op.dest_start].start, heard[op.dest_end - 1].end)
    _place_unmatched(ours)
    return ours


def _share(toks: list[Token], start: float, end: float) -> None:
    """Substituted tokens: the recognized span shared in proportion to their lengths."""
    total = sum(len(t.key) for t in toks) or 1
    t0 = start
    for t in toks:
        t.start, t.end, t.timed = t0, t0 + (end - start) * len(t.key) / total, True
        t0 = t.end


def _place_unmatched(toks: list[Token]) -> None:
    """Tokens the ASR did not hear get a zero-length time between their timed neighbours."""
    n = len(toks)
    prev, nxt = [-1] * n, [-1] * n
    last = -1
    for i, t in enumerate(toks):
        prev[i], last = last, (i if t.timed else last)
    last = -1
    for i in range(n - 1, -1, -1):
        nxt[i], last = last, (i if toks[i].timed else last)
    for i, t in enumerate(toks):
        if t.timed:
            continue
        b, a = prev[i], nxt[i]
        if b < 0 and a < 0:
            return
        at = (toks[b].end + toks[a].start) / 2 if b >= 0 and a >= 0 else (toks[b].end if b >= 0 else toks[a].start)
        t.start = t.end = at


def tokens_in(toks: list[Token], start: float, end: float) -> list[Token]:
    """Tokens whose middle lies in [start, end)."""
    return [t for t in toks if start <= (t.start + t.end) / 2 < end]


def untimed_at(toks: list[Token], t: float) -> bool:
    """True when tokens the ASR did not hear lie between the timed tokens around time `t` (a clip edge
    there cannot tell which side they belong to)."""
    before = after = None
    for i, tok in enumerate(toks):
        if tok.timed:
            if tok.end <= t:
                before = i
            elif after is None and tok.start >= t:
                after = i
    lo = before + 1 if before is not None else 0
    hi = after if after is not None else len(toks)
    return any(not toks[k].timed for k in range(lo, hi))


def words_in(words: list[Word], start: float, end: float) -> str:
    """The recognized text of a span: words whose middle lies in [start, end)."""
    return " ".join(w.text for w in words if start <= (w.start + w.end) / 2 < end).strip()


# -- checks ------------------------------------------------------------------------------


def cer(text: str, reference: str) -> float:
    """Character error rate of `text` against `reference` (letters and digits only, case-folded);
    1.0 when the reference is empty and the text is not."""
    from rapidfuzz.distance import Levenshtein

    a, b = _key(text), _key(reference)
    if not b:
        return 0.0 if not a else 1.0
    return Levenshtein.distance(a, b) / len(b)


def phone_count(text: str, lang: str) -> int:
    """Phones the text frontend makes of the text (punctuation and prosody marks not counted)."""
    from gsvd.engine.errors import GsvdError
    from gsvd.engine.text.phonemize import phonemize

    try:
        ph = phonemize(text, lang)
    except GsvdError:  # a text the frontend rejects (too long, no language it reads) has no countable phones
        return 0
    return sum(1 for p in ph.phones if any(ch.isalpha() for ch in p))

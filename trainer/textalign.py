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

import numpy as np

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
    placed: bool = False  # not heard, but timed over the speech found between its heard neighbours

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


def align(transcript: str, words: list[Word], spans: list[tuple[float, float]] | None = None) -> list[Token]:
    """The transcript's tokens with times taken from the recognized words (see the module docstring); tokens
    the ASR missed are spread over the VAD speech (`spans`) between their heard neighbours when there is some."""
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
    _place_unmatched(ours, spans or [])
    return ours


def _share(toks: list[Token], start: float, end: float) -> None:
    """Substituted tokens: the recognized span shared in proportion to their lengths."""
    total = sum(len(t.key) for t in toks) or 1
    t0 = start
    for t in toks:
        t.start, t.end, t.timed = t0, t0 + (end - start) * len(t.key) / total, True
        t0 = t.end


def _place_unmatched(toks: list[Token], spans: list[tuple[float, float]]) -> None:
    """Each run of tokens the ASR did not hear goes over the speech between its heard neighbours (in
    proportion to length; `placed`), or, with no speech there, to a zero-length time between them."""
    i, n = 0, len(toks)
    while i < n:
        if toks[i].timed:
            i += 1
            continue
        j = i
        while j < n and not toks[j].timed:
            j += 1
        lo = toks[i - 1].end if i > 0 else (toks[j].start - 2.0 if j < n else 0.0)
        hi = toks[j].start if j < n else (toks[i - 1].end + 2.0 if i > 0 else 0.0)
        if i == 0 and j == n:
            return
        speech = [(max(a, lo), min(b, hi)) for a, b in spans if min(b, hi) - max(a, lo) > 0.05]
        if speech:
            _spread(toks[i:j], speech)
        else:
            for t in toks[i:j]:
                t.start = t.end = (lo + hi) / 2
        i = j


def _spread(run: list[Token], speech: list[tuple[float, float]]) -> None:
    total = sum(b - a for a, b in speech)
    chars = sum(len(t.key) for t in run) or 1
    done = 0.0
    for t in run:
        t.start = _speech_time(speech, done)
        done += total * len(t.key) / chars
        t.end, t.placed = _speech_time(speech, done), True


def _speech_time(speech: list[tuple[float, float]], x: float) -> float:
    for a, b in speech:
        if x <= b - a + 1e-9:
            return a + x
        x -= b - a
    return speech[-1][1]


NEAR = 0.6  # a word this close to a clip edge (in the silence outside it) belongs to that clip
CLEAR = 0.2  # ... unless it is within this of being as close to the neighbouring clip


def assign(toks: list[Token], clips: list[tuple[float, float]]) -> tuple[list[list[Token]], set[int]]:
    """Tokens to clips (sorted, non-overlapping): a token whose middle is inside a clip goes there; one in
    the silence between clips (ASR word times run over) goes to a clip within `NEAR` s when it is clearly
    the nearer one. Returns each clip's tokens and the clips whose text is uncertain: a token between two
    clips that is about as near to both, or tokens the ASR did not hear at their edge (`untimed_at`)."""
    out: list[list[Token]] = [[] for _ in clips]
    unsure: set[int] = set()
    for tok in toks:
        m = (tok.start + tok.end) / 2
        k = next((i for i, (a, b) in enumerate(clips) if a <= m < b), None)
        if k is None:
            prev = max((i for i, (_, b) in enumerate(clips) if b <= m), default=None, key=lambda i: clips[i][1])
            nxt = min((i for i, (a, _) in enumerate(clips) if a > m), default=None, key=lambda i: clips[i][0])
            d_prev = m - clips[prev][1] if prev is not None else np.inf
            d_next = clips[nxt][0] - m if nxt is not None else np.inf
            if min(d_prev, d_next) > NEAR:
                continue
            if abs(d_prev - d_next) < CLEAR:
                unsure.update(i for i in (prev, nxt) if i is not None)
                continue
            k = prev if d_prev < d_next else nxt
        out[k].append(tok)
    for i, (a, b) in enumerate(clips):
        if untimed_at(toks, a) or untimed_at(toks, b):
            unsure.add(i)
    return out, unsure


def untimed_at(toks: list[Token], t: float) -> bool:
    """True when a clip edge at `t` cannot tell which side some transcript tokens belong to: tokens the ASR
    did not hear and no speech could be found for lie between the heard tokens around `t`, or the edge
    cuts through the speech that unheard tokens were spread over."""
    for tok in toks:
        if tok.placed and tok.start < t < tok.end:
            return True
    before = after = None
    for i, tok in enumerate(toks):
        if tok.timed or tok.placed:
            if tok.end <= t:
                before = i
            elif after is None and tok.start >= t:
                after = i
    lo = before + 1 if before is not None else 0
    hi = after if after is not None else len(toks)
    return any(not (toks[k].timed or toks[k].placed) for k in range(lo, hi))


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

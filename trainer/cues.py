"""Clips cut on subtitle cue boundaries, so that a clip's text is the speech in its audio.

`cue_clips` turns a file's cues and its VAD speech into clips:
- cues are put in time order; a cue that touches the one before and repeats its end (rolling
  captions) loses the repeat; cues that overlap by more than `OVERLAP` s become one unit (their texts in
  order), smaller overlaps are timing jitter;
- a unit with no speech under it is dropped; a unit longer than a clip may be is split at VAD
  pauses inside it, but only where the text has a punctuation mark at the matching place by
  proportional timing (characters vs seconds of speech, within `TOL_S` or `TOL_FRAC`; the longest
  such pause, and no other mark nearer to it); a long
  unit with no such pairs is dropped;
- neighbouring units are merged while the clip stays under `max_s`, the pause between them is
  short and holds no speech that no cue covers;
- each clip's edges are found near its first and last cue's times: in the silence nearest the
  cue edge (keeping `EDGE` s of it), else at the quietest 20 ms, never more than `LEAD` s
  before/after the cue nor into the neighbouring clip. So no clip carries text whose time lies
  outside it, and no clip carries more than `LEAD` s of speech its text does not cover.
Drops are counted by reason for the stage's summary line.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from gsvd.trainer.subtitles import Cue
from gsvd.trainer.textalign import Token, join, tokens

OVERLAP = 0.25  # cues overlapping more than this are one unit
TOUCH = 0.1  # a cue starting within this of the previous one's end may repeat its end (rolling captions)
SLACK = 0.3  # how far cue times may be off the speech they label
LEAD = 0.5  # the most a clip edge may lie outside its cues
EDGE = 0.15  # silence kept before/after speech at a clip edge
MAX_GAP = 1.2  # cues further apart are not merged into one clip
UNCOVERED = 0.3  # seconds of speech in a gap between merged cues that no cue covers: then no merge
TOL_S, TOL_FRAC = 0.5, 0.06  # proportional-timing tolerance of a split (seconds, share of the speech)
FRAME = 0.01
_PUNCT = re.compile(r"[.,;:!?\u2026\u2014\u3001\u3002\uff0c\uff1b\uff1a\uff01\uff1f]['\"\u201d\u2019)\]]*$")


@dataclass
class Unit:
    start: float
    end: float
    toks: list[Token]
    cues: int = 1

    @property
    def text(self) -> str:
        return join(self.toks)


@dataclass
class CutClip:
    start: float
    end: float
    text: str
    cues: int
    parts: list[list[float]]  # each unit's [start, end] inside the clip (the speaker check embeds them apart)


def units_of(cues: list[Cue]) -> list[Unit]:
    """Cues in time order as non-overlapping units (see the module docstring)."""
    units: list[Unit] = []
    for c in sorted(cues, key=lambda c: (c.start, c.end)):
        toks = tokens(c.text)
        if not toks:
            continue
        if units and c.start <= units[-1].end + TOUCH:
            prev = units[-1]
            toks = _drop_repeat(prev.toks, toks)
            if not toks:  # the same caption again: one longer cue
                prev.end = max(prev.end, c.end)
                continue
        if units and c.start < units[-1].end - OVERLAP:
            prev = units[-1]
            prev.toks, prev.end, prev.cues = prev.toks + toks, max(prev.end, c.end), prev.cues + 1
            continue
        units.append(Unit(c.start, c.end, toks))
    for a, b in zip(units, units[1:]):  # jitter: cut the overlap in the middle
        if b.start < a.end:
            a.end = b.start = (a.end + b.start) / 2
    return units


def _drop_repeat(prev: list[Token], toks: list[Token]) -> list[Token]:
    """`toks` without a prefix that repeats the end of `prev` (all of it, or at least two tokens)."""
    keys, pkeys = [t.key for t in toks], [t.key for t in prev]
    for n in range(min(len(keys), len(pkeys)), 0, -1):
        if keys[:n] == pkeys[-n:] and (n >= 2 or n == len(pkeys)):
            return toks[n:]
    return toks


class SpeechMap:
    """VAD speech of one file on a 10 ms grid, with the frame energies for quietest-point cuts."""

    def __init__(self, wav16: np.ndarray, spans: list[tuple[float, float]]) -> None:
        self.seconds = wav16.size / 16000
        n = int(np.ceil(self.seconds / FRAME)) + 1
        self.speech = np.zeros(n, bool)
        for s, e in spans:
            self.speech[int(s / FRAME):int(np.ceil(e / FRAME))] = True
        hop = int(FRAME * 16000)
        x = np.asarray(wav16, np.float64)
        pad = np.pad(x, (0, n * hop - x.size)) if x.size < n * hop else x[: n * hop]
        self.energy = np.convolve((pad.reshape(n, hop) ** 2).mean(axis=1), np.ones(2) / 2, mode="same")
        self.spans = spans

    def _i(self, t: float) -> int:
        return int(np.clip(round(t / FRAME), 0, self.speech.size - 1))

    def speech_in(self, a: float, b: float) -> float:
        return float(self.speech[self._i(a):self._i(b)].sum() * FRAME) if b > a else 0.0

    def silences(self, a: float, b: float) -> list[tuple[float, float]]:
        """Runs of non-speech inside [a, b]."""
        i, j = self._i(a), self._i(b)
        seg = ~self.speech[i:j]
        out, k = [], 0
        while k < seg.size:
            if seg[k]:
                m = k
                while m < seg.size and seg[m]:
                    m += 1
                out.append(((i + k) * FRAME, (i + m) * FRAME))
                k = m
            else:
                k += 1
        return out

    def quietest(self, a: float, b: float) -> float:
        i, j = self._i(a), max(self._i(b), self._i(a) + 1)
        return (i + int(np.argmin(self.energy[i:j]))) * FRAME

    def start_edge(self, t: float, lo: float, hi: float) -> float:
        """Where a clip whose text starts at `t` begins, within [lo, hi]: before the last speech onset at or
        before `t` (rather too much audio than text without its audio), else at the quietest point."""
        runs = [r for r in self.silences(lo, hi) if r[0] <= t]
        if not runs:
            return self.quietest(lo, t)
        a, b = runs[-1]
        return max(a, (b if b < hi - FRAME else t) - EDGE)

    def end_edge(self, t: float, lo: float, hi: float) -> float:
        """Where a clip whose text ends at `t` ends (the mirror of `start_edge`)."""
        runs = [r for r in self.silences(lo, hi) if r[1] >= t]
        if not runs:
            return self.quietest(t, hi)
        a, b = runs[0]
        return min(b, (a if a > lo + FRAME else t) + EDGE)


def split_long(unit: Unit, sm: SpeechMap, limit: float) -> list[Unit] | None:
    """A unit longer than `limit` cut at pauses that match punctuation (None when that is impossible)."""
    pieces: list[Unit] = []
    cur = unit
    while cur.end - cur.start > limit:
        cut = _best_cut(cur, sm, limit)
        if cut is None:
            return None
        k, t = cut
        pieces.append(Unit(cur.start, t, cur.toks[:k + 1], 1))
        cur = Unit(t, cur.end, cur.toks[k + 1:], 1)
    return [*pieces, cur]


def _best_cut(u: Unit, sm: SpeechMap, limit: float) -> tuple[int, float] | None:
    """The latest (token index, pause time) within `limit` of the unit start whose text share matches its
    speech share: for each punctuation mark the longest pause within the tolerance, kept only when that
    pause has no other mark nearer to it."""
    spans = [(max(s, u.start - SLACK), min(e, u.end + SLACK)) for s, e in sm.spans
             if e > u.start - SLACK and s < u.end + SLACK]
    if len(spans) < 2:
        return None
    total = sum(e - s for s, e in spans)
    pauses, done = [], 0.0  # (time, speech share before it, length)
    for (s0, e0), (s1, _) in zip(spans, spans[1:]):
        done += e0 - s0
        pauses.append(((e0 + s1) / 2, done / total, s1 - e0))
    chars = np.cumsum([len(t.key) for t in u.toks])
    marks = [(k, chars[k] / chars[-1]) for k in range(len(u.toks) - 1) if _PUNCT.search(u.toks[k].surface)]
    tol = max(TOL_S, TOL_FRAC * total) / total
    best = None
    for k, f in marks:
        near = [p for p in pauses if abs(p[1] - f) <= tol and u.start < p[0] <= u.start + limit]
        if not near:
            continue
        t, g, _ = max(near, key=lambda p: (p[2], -abs(p[1] - f)))
        if min(marks, key=lambda m: abs(m[1] - g))[0] == k and (best is None or t > best[1]):
            best = (k, t)
    return best


def cue_clips(cues: list[Cue], wav16: np.ndarray, spans: list[tuple[float, float]], min_s: float = 3.0,
              max_s: float = 10.0) -> tuple[list[CutClip], Counter]:
    """Clips with their text from a file's cues (see the module docstring); and drops by reason."""
    sm = SpeechMap(wav16, spans)
    drops: Counter = Counter()
    limit = max_s - 2 * EDGE
    units: list[Unit] = []
    for u in units_of(cues):
        if sm.speech_in(u.start - SLACK, u.end + SLACK) < 0.2:
            drops["cue without speech under it"] += 1
            continue
        if u.end - u.start > limit:
            parts = split_long(u, sm, limit)
            if parts is None:
                drops[f"cue over {max_s:g} s with no pause at its punctuation"] += 1
                continue
            units += parts
        else:
            units.append(u)
    groups: list[list[Unit]] = []
    for u in units:
        g = groups[-1] if groups else None
        if g and u.start - g[-1].end <= MAX_GAP and u.end - g[0].start <= limit and \
                sm.speech_in(g[-1].end + SLACK, u.start - SLACK) <= UNCOVERED:
            g.append(u)
        else:
            groups.append([u])
    clips: list[CutClip] = []
    prev_end = 0.0
    for i, g in enumerate(groups):
        gs, ge = g[0].start, g[-1].end
        next_start = groups[i + 1][0].start if i + 1 < len(groups) else sm.seconds
        start = sm.start_edge(gs, max(prev_end, gs - LEAD, 0.0), gs + SLACK)
        end = sm.end_edge(ge, ge - SLACK, min(ge + LEAD, max(next_start, ge - SLACK + FRAME), sm.seconds))
        if end - start < min_s:
            drops[f"cue under {min_s:g} s"] += len(g)
            continue
        start = min(gs, max(start, end - max_s))  # within max_s, never cutting into the cues' times
        end = min(end, start + max_s)
        parts = [[round(max(u.start, start), 3), round(min(u.end, end), 3)] for u in g]
        clips.append(CutClip(round(start, 3), round(end, 3), join([t for u in g for t in u.toks]),
                             sum(u.cues for u in g), parts))
        prev_end = end
    return clips, drops


# -- a subtitle file shifted against the audio ------------------------------------------------

MAX_SHIFT = 5.0  # the largest constant offset looked for (seconds either way)
MIN_SHIFT = 0.3  # smaller offsets are left alone (SLACK and the edge search absorb them)
SHIFT_GAIN = 0.04  # the shifted cues must agree with the speech on this much more of their span


@dataclass
class Offset:
    seconds: float  # add to every cue time (positive: the subtitles come early)
    agree_before: float  # share of the cues' span where "a cue is showing" == "someone speaks", as given
    agree_after: float  # the same with the cues moved by `seconds`


def estimate_offset(cues: list[Cue], spans: list[tuple[float, float]], seconds: float) -> Offset:
    """The constant offset that best lines the cues up with the VAD speech.

    Over the cues' span (plus `MAX_SHIFT` either side) each 10 ms frame is "cue shown" or not and
    "speech" or not; for every lag within `MAX_SHIFT` the share of frames where the two agree is
    computed at once (an FFT cross-correlation of the two indicator signals plus running sums), so
    gaps between cues must meet pauses as much as cues must meet speech. Among lags within 0.5 % of
    the best agreement the one nearest zero is taken (a cue shorter than its speech leaves a plateau).
    The offset is `seconds` 0 unless it moves the cues by at least `MIN_SHIFT` and raises the
    agreement by `SHIFT_GAIN`: loosely timed but aligned subtitles are not moved."""
    from scipy.signal import fftconvolve

    if len(cues) < 2 or not spans:
        return Offset(0.0, 0.0, 0.0)
    lo = max(0.0, min(c.start for c in cues) - MAX_SHIFT)
    hi = min(seconds, max(c.end for c in cues) + MAX_SHIFT)
    n = int(np.ceil((hi - lo) / FRAME)) + 1
    if n < 10:
        return Offset(0.0, 0.0, 0.0)
    cue = np.zeros(n)
    for c in cues:
        cue[max(0, int((c.start - lo) / FRAME)):max(0, int(np.ceil((c.end - lo) / FRAME)))] = 1.0
    speech = np.zeros(n)
    for s, e in spans:
        if e > lo and s < hi:
            speech[max(0, int((s - lo) / FRAME)):int(np.ceil((min(e, hi) - lo) / FRAME))] = 1.0
    m = int(MAX_SHIFT / FRAME)
    a, b = int(np.argmax(cue > 0)), n - int(np.argmax(cue[::-1] > 0))  # the cues' own span
    width = b - a
    # agree(lag) over the cue span [a, b) against speech at [a + lag, b + lag)
    both = fftconvolve(speech, cue[a:b][::-1], mode="full")  # index k -> lag k - (b - 1)
    csum = np.concatenate([[0.0], np.cumsum(speech)])
    lags = np.arange(-m, m + 1)
    lags = lags[(a + lags >= 0) & (b + lags <= n)]
    inter = both[lags + b - 1]
    speech_in = csum[b + lags] - csum[a + lags]
    agree = (2 * inter - cue[a:b].sum() - speech_in + width) / width
    zero = agree[lags == 0][0] if (lags == 0).any() else 0.0
    good = np.flatnonzero(agree >= agree.max() - 0.005)
    best = int(good[np.argmin(np.abs(lags[good]))])
    shift = float(lags[best] * FRAME)
    if abs(shift) < MIN_SHIFT or agree[best] - zero < SHIFT_GAIN:
        return Offset(0.0, round(float(zero), 3), round(float(zero), 3))
    return Offset(round(shift, 2), round(float(zero), 3), round(float(agree[best]), 3))


def shift_cues(cues: list[Cue], seconds: float) -> list[Cue]:
    """Every cue moved by `seconds` (a cue moved before 0 starts at 0)."""
    return [Cue(max(0.0, c.start + seconds), max(0.0, c.end + seconds), c.text) for c in cues]

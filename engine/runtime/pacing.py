"""Burst pacing: which ready chunk is decoded first, and when waiting requests are admitted.

Numbers (H200, real v2 sizes, benchmarks/HISTORY.md): a 64-row first-chunk pass (content encoder + 12-frame
vocoder) ~22 ms, a 64-row steady pass (48 tokens + 8 history) ~115 ms; a GPT step at 64 rows 1.37 ms, at 512 ~7 ms;
a 32-row prefill replay 5-10 ms. A first chunk holds 6 tokens (0.24 s of audio), the next 12 (0.48 s), then 24 and
48. 512 requests at once need ~8 first-chunk passes (~180 ms) and 16 prefill passes: when every first chunk went
ahead of every later chunk (the rule until now: a stream without audio was the most urgent), the first streams' 0.24 s
ran out before their second chunks came, and 486 of 512 underran, although the same 512 as staggered listeners never
did. So:

- Urgency (`chunk_key`): a later chunk's is its stream's audio left (the time until what it has been sent finishes
  playing) less a lead of `LEAD_PASSES` passes, counted in passes (`quantum`: the measured pass time; the lead
  covers the pass in flight, its own, and the jitter of a burst's passes: with two, 512 requests at once on an H100
  underran in 6 of 8 runs, 1-104 streams each at their second chunk, by 21-88 ms; with four, in none of 6, first
  audio p95 ~150 ms later: benchmarks/HISTORY.md); a first chunk's is zero (its listener is waiting now). Ties go to first chunks, then to the earlier
  deadline (first chunks: the longer wait). A later chunk that could wait one more pass without running out
  (class 0) goes after the first chunks; one that could not (class < 0) goes before them; one with more audio left
  goes after them, so first chunks are not held back by streams that have plenty.
- A burst's streams start with longer first chunks (`chunk_policy`): when `BURST_STARTS` streams (one full pass of
  first chunks) already wait for their first audio, the next ones get a first chunk twice as long (12 tokens: 0.48 s
  of audio; then 24, 48), so after their first audio they have twice the time to their second chunk, and one chunk
  pass fewer each. One stream and 64 at once start as before. In a discrete-time model of the scheduler with these
  costs (and the GPT at half speed while a chunk pass runs), 512 requests at once: 512 underruns, first audio
  p50/p95 351/423 ms with the former order; 448 underruns with the urgency order alone (the second chunks of
  streams whose 0.24 s came out together cannot all be decoded in time: the ramp's work is more than the GPU does
  in a first chunk's play time); 0 underruns, 378/514 ms, with the longer first chunks of a burst too; 1,024
  requests over 3 s: 245, 148 and 7 underruns; 256 at once 170/195 ms before, 190/223 ms after, no underruns;
  64 at once unchanged. (The model's first audio is ~1.5x lower than the H200's for the former order: its times
  are estimates, the GPU's are the measure.)
- Admission (`admission_budget`): at most `MAX_ADMIT_PER_TICK` requests a tick (two prefill passes, ~10-20 ms, so
  the live streams' steps and passes go on between a burst's admissions), none while any live stream with audio
  is at risk (class < 0 and no pass in flight for it), and no more than leave every playing stream's next chunk a
  pass before its lead runs out when passes go earliest deadline first, `rows_per_pass` rows each, the first
  chunks of the new streams and of those still starting ahead of them. The GPU time a new stream's prefill and
  first chunk would take is what the playing streams need; when the load is more than the GPU can play in real
  time, requests wait in the queue (first audio grows) instead of every stream underrunning. With the at-risk rule
  alone, 1,000 listeners of 3 s sentences on an H100 (more than it plays in real time) saw 1,291 of 2,940 requests
  underrun; with the deadline check 86, 399 and 307 of ~3,000 (three runs), 512 at once and 512 listeners still
  without underruns (benchmarks/HISTORY.md).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gsvd.engine.runtime.chunking import ChunkPolicy
    from gsvd.engine.runtime.stream import LiveStream

MAX_ADMIT_PER_TICK = 64  # requests admitted per tick (two 32-row prefill passes)
LEAD_PASSES = 4  # a later chunk is due this many passes before its stream's audio runs out
BURST_STARTS = 64  # streams waiting for their first chunk beyond which new ones start with a longer one
QUANTUM_S = 0.03  # a chunk pass's time before one is measured
QUANTUM_RANGE = (0.002, 0.25)  # the measured pass time is kept within these bounds
QUANTUM_WEIGHT = 0.2  # weight of the newest pass in the running mean


def chunk_key(s: LiveStream, now: float, quantum: float) -> tuple[int, int, float]:
    """Sort key of a stream's next chunk, most urgent first: (urgency class in passes, 0 for a first chunk / 1 for a
    later one, deadline)."""
    if s.first_audio_at is None:
        return 0, 0, s.admitted_at
    deadline = s.audio_deadline()
    return math.floor((deadline - now - LEAD_PASSES * quantum) / quantum), 1, deadline


def admission_budget(live: Iterable[LiveStream], now: float, quantum: float, rows_per_pass: int) -> int:
    """How many waiting requests may be admitted this tick: none while a playing stream is at risk; else as many as
    leave every playing stream's next chunk a pass before its lead runs out: the k-th playing stream by deadline goes
    in pass (k + first chunks ahead of it) // `rows_per_pass`, the first chunks of the new streams and of those
    still starting ahead of every later chunk."""
    slack, starting = [], 0
    for s in live:
        if s.first_audio_at is None:
            starting += 1
        elif not s.decoding and s.needs_audio():
            slack.append((s.audio_deadline() - now) / quantum - LEAD_PASSES)
    budget = MAX_ADMIT_PER_TICK
    for k, passes in enumerate(sorted(slack)):
        if passes < 0:
            return 0
        budget = min(budget, (math.floor(passes) + 1) * rows_per_pass - 1 - k - starting)
    return max(budget, 0)


def next_quantum(quantum: float, measured: float) -> float:
    """The running pass time after a pass that took `measured` seconds."""
    lo, hi = QUANTUM_RANGE
    return min(hi, max(lo, (1 - QUANTUM_WEIGHT) * quantum + QUANTUM_WEIGHT * measured))


def burst_policy(policy: ChunkPolicy) -> ChunkPolicy:
    """The chunk policy of a stream that starts in a burst: the first chunk twice as long (within `largest`)."""
    return replace(policy, first=min(policy.largest, 2 * policy.first))


def chunk_policy(policy: ChunkPolicy, burst: ChunkPolicy, starting: int) -> ChunkPolicy:
    """A new stream's chunk policy, `starting` streams being admitted ahead of it without their first audio yet."""
    return burst if starting >= BURST_STARTS else policy

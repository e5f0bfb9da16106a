"""Per-tick statistics of the scheduler (the `tick_stats` setting): where its thread's time goes, how full the
GPT steps and chunk passes are, how busy the device is and how many chunks came late.

The scheduler holds a `TickStats` only when the setting is on; every call site is behind `if stats is not
None`, so off it costs nothing. Device busy time is the union of the spans of GPT steps and chunk passes: on
CUDA each span is a pair of timing events on the stream that ran it (placed on one clock by a reference event
recorded when counting began), read once both have completed; off CUDA the work is done in the call, so a span
is the call's host time. `snapshot()` is safe from any thread (a lock guards the counters).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import torch

PHASES = ("schedule", "gpt", "chunks", "collect")  # admission, decode steps, chunk-pass launches, audio hand-over


@dataclass
class TickStats:
    on_cuda: bool
    started: float = field(default_factory=time.monotonic)
    ticks: int = 0
    phase_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    admissions: int = 0  # prefill passes
    admitted: int = 0  # requests they started
    gpt_steps: int = 0
    gpt_rows: int = 0
    chunk_passes: int = 0
    chunk_rows: int = 0
    chunks: int = 0  # pieces of audio handed on
    late_chunks: int = 0  # ... that came after the audio before them had played
    spans: list[tuple[float, float]] = field(default_factory=list)  # device busy spans (s, on one clock)
    _events: list[tuple[object, object]] = field(default_factory=list)  # CUDA (start, end) not read yet
    _ref: object = None  # CUDA event at the start of counting
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.on_cuda:
            self._ref = torch.cuda.Event(enable_timing=True)
            self._ref.record()

    # ------------------------------------------------------------- counting (scheduler thread)

    def phase(self, name: str, seconds: float) -> None:
        with self._lock:
            self.phase_s[name] += seconds

    def begin(self):
        """Mark the start of device work (a GPT step, a chunk pass) on the current stream -> a token for `end`."""
        if self.on_cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.monotonic()

    def end(self, token, kind: str, rows: int) -> None:
        """The work begun at `token` is queued (on CUDA) or done (off CUDA): count it and its span."""
        with self._lock:
            if kind == "gpt":
                self.gpt_steps, self.gpt_rows = self.gpt_steps + 1, self.gpt_rows + rows
            else:
                self.chunk_passes, self.chunk_rows = self.chunk_passes + 1, self.chunk_rows + rows
            if self.on_cuda:
                event = torch.cuda.Event(enable_timing=True)
                event.record()
                self._events.append((token, event))
            else:
                self.spans.append((token - self.started, time.monotonic() - self.started))

    def admission(self, rows: int) -> None:
        with self._lock:
            self.admissions, self.admitted = self.admissions + 1, self.admitted + rows

    def delivered(self, late: bool) -> None:
        with self._lock:
            self.chunks += 1
            self.late_chunks += late

    def tick(self) -> None:
        with self._lock:
            self.ticks += 1

    # ------------------------------------------------------------------ reading (any thread)

    def _read_events(self) -> None:
        keep = []
        for start, end in self._events:
            if end.query():
                self.spans.append((self._ref.elapsed_time(start) / 1000, self._ref.elapsed_time(end) / 1000))
            else:
                keep.append((start, end))
        self._events = keep

    def snapshot(self) -> dict:
        """Counters since counting began; means per step/pass; `device_busy_s`: the union of the work's spans."""
        with self._lock:
            if self.on_cuda:
                self._read_events()
            busy, reach = 0.0, float("-inf")
            for lo, hi in sorted(self.spans):
                lo = max(lo, reach)
                if hi > lo:
                    busy, reach = busy + hi - lo, hi
            wall = time.monotonic() - self.started
            out = {"wall_s": wall, "ticks": self.ticks, "phase_s": dict(self.phase_s),
                   "admissions": self.admissions, "admitted": self.admitted,
                   "gpt_steps": self.gpt_steps, "gpt_rows_mean": self.gpt_rows / max(1, self.gpt_steps),
                   "chunk_passes": self.chunk_passes, "chunk_rows_mean": self.chunk_rows / max(1, self.chunk_passes),
                   "chunks": self.chunks, "late_chunks": self.late_chunks, "device_busy_s": busy,
                   "device_busy_share": busy / wall if wall > 0 else 0.0}
        return out


"""Prometheus metrics of the daemon (served on --metrics-port when set, summed up by `GET /v1/server`); with
the engine's `tick_stats` setting on, the scheduler's per-tick statistics too (read when scraped); with the
canary on, each resident voice's canary readings (`CanaryGauges`, labelled by voice and language)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

_COUNTS = {  # TickStats snapshot key -> (metric, help)
    "ticks": ("gsvd_scheduler_ticks", "Scheduler ticks"),
    "admissions": ("gsvd_scheduler_prefill_passes", "Prefill passes (admissions)"),
    "admitted": ("gsvd_scheduler_admitted", "Requests admitted"),
    "gpt_steps": ("gsvd_scheduler_gpt_steps", "Batched GPT decode steps"),
    "chunk_passes": ("gsvd_scheduler_chunk_passes", "Chunk-decode passes"),
    "chunks": ("gsvd_scheduler_chunks", "Audio chunks handed on"),
    "late_chunks": ("gsvd_scheduler_late_chunks", "Audio chunks that came after the audio before them had played"),
    "device_busy_s": ("gsvd_scheduler_device_busy_seconds", "Device time with GPT steps or chunk passes in flight"),
}


class TickStatsCollector:
    """Prometheus view of `Engine.tick_stats()` (nothing when it answers None)."""

    def __init__(self, read: Callable[[], dict | None]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        snap = self.read()
        if snap is None:
            return
        for key, (name, text) in _COUNTS.items():
            yield CounterMetricFamily(name, text, value=snap[key])
        phases = CounterMetricFamily("gsvd_scheduler_phase_seconds", "Scheduler thread time by phase",
                                     labels=["phase"])
        for phase, seconds in snap["phase_s"].items():
            phases.add_metric([phase], seconds)
        yield phases
        yield GaugeMetricFamily("gsvd_scheduler_gpt_rows_mean", "Streams per GPT step", value=snap["gpt_rows_mean"])
        yield GaugeMetricFamily("gsvd_scheduler_chunk_rows_mean", "Streams per chunk pass",
                                value=snap["chunk_rows_mean"])


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None,
                 tick_stats: Callable[[], dict | None] | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        if tick_stats is not None:
            r.register(TickStatsCollector(tick_stats))
        self.ttfa = Histogram("gsvd_time_to_first_audio_seconds", "Request accepted to first PCM chunk", registry=r,
                              buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.rtf_hist = Histogram("gsvd_real_time_factor", "Wall time over audio duration per request", registry=r,
                                  buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))
        self.active = Gauge("gsvd_active_streams", "Streams being synthesized", registry=r)
        self.errors = Counter("gsvd_errors_total", "Failed requests by method and status code", ["method", "code"],
                              registry=r)
        self.requests = Counter("gsvd_requests_total", "Synthesis requests started", registry=r)
        self.underruns = Counter("gsvd_underruns", "Streams with a chunk handed on after the audio before it had "
                                 "played out (a listener starting at the first audio hears a gap)", registry=r)
        self.canary = CanaryGauges(r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def stream_started(self) -> None:
        self.requests.inc()
        self.active.inc()

    def stream_ended(self) -> None:
        self.active.dec()

    def first_audio(self, seconds: float) -> None:
        self.ttfa.observe(seconds)

    def rtf(self, value: float) -> None:
        self.rtf_hist.observe(value)

    def error(self, method: str, code: str) -> None:
        self.errors.labels(method, code).inc()

    def underrun(self) -> None:
        self.underruns.inc()


class CanaryGauges:
    """The canary monitor's last reading of each resident voice per language (daemon/canary.py)."""

    def __init__(self, r: CollectorRegistry) -> None:
        by = ["voice", "language"]
        self.duration = Gauge("gsvd_canary_duration_seconds", "Length of the canary sentences' audio", by, registry=r)
        self.level = Gauge("gsvd_canary_level_dbfs", "RMS level of the canary sentences' audio (dBFS)", by, registry=r)
        self.tokens = Gauge("gsvd_canary_tokens", "Semantic tokens the canary sentences took", by, registry=r)
        self.eos = Gauge("gsvd_canary_eos_reached", "1 when every canary sentence ended by EOS, 0 when one ran into "
                         "the token cap", by, registry=r)
        self.similarity = Gauge("gsvd_canary_speaker_similarity", "Cosine similarity of the canary audio's speaker "
                                "embedding to the voice's reference (absent without resemblyzer)", by, registry=r)
        self.drift = Gauge("gsvd_canary_drift", "Measures of the last reading beyond their bound from the voice's "
                           "first reading", by, registry=r)
        self.rounds = Counter("gsvd_canary_rounds", "Canary rounds by outcome (done; skipped: clients held the "
                              "slots; cancelled: a client came; failed)", ["result"], registry=r)
        self._gauges = (self.duration, self.level, self.tokens, self.eos, self.similarity, self.drift)

    def set(self, voice: str, language: str, duration_s: float, level_dbfs: float, tokens: int, eos: bool,
            similarity: float | None, drift: int) -> None:
        key = (voice, language)
        self.duration.labels(*key).set(duration_s)
        self.level.labels(*key).set(level_dbfs)
        self.tokens.labels(*key).set(tokens)
        self.eos.labels(*key).set(1.0 if eos else 0.0)
        if similarity is None:
            self._remove(self.similarity, key)
        else:
            self.similarity.labels(*key).set(similarity)
        self.drift.labels(*key).set(drift)

    def forget(self, voice: str, language: str) -> None:
        """Drop a voice's series (it was unloaded)."""
        for gauge in self._gauges:
            self._remove(gauge, (voice, language))

    @staticmethod
    def _remove(gauge: Gauge, key: tuple[str, str]) -> None:
        with contextlib.suppress(KeyError):  # never set
            gauge.remove(*key)


class PlayClock:
    """Would a listener who starts playing at a stream's first audio hear a gap?

    `late(seconds)` is called as each chunk is handed on, with that chunk's duration; it is True
    once per stream, for the first chunk that arrives more than `grace_s` after the audio before it
    has played out (the rule of benchmarks/runtime_bench.py's `underrun`)."""

    def __init__(self, grace_s: float = 0.02, now: Callable[[], float] = time.monotonic) -> None:
        self.grace_s, self.now = grace_s, now
        self.start: float | None = None
        self.played = 0.0
        self.reported = False

    def late(self, seconds: float) -> bool:
        if seconds <= 0:  # a sentence's closing chunk carries timings, no audio
            return False
        t = self.now()
        if self.start is None:
            self.start = t
        gap = t - self.start > self.played + self.grace_s
        self.played += seconds
        if gap and not self.reported:
            self.reported = True
            return True
        return False

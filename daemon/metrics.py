"""Prometheus metrics of the daemon (served on --metrics-port when set)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.ttfa = Histogram("gsvd_time_to_first_audio_seconds", "Request accepted to first PCM chunk", registry=r,
                              buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.rtf_hist = Histogram("gsvd_real_time_factor", "Wall time over audio duration per request", registry=r,
                                  buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))
        self.active = Gauge("gsvd_active_streams", "Streams being synthesized", registry=r)
        self.errors = Counter("gsvd_errors_total", "Failed requests by method and status code", ["method", "code"],
                              registry=r)
        self.requests = Counter("gsvd_requests_total", "Synthesis requests started", registry=r)

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

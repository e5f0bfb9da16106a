"""Build and run the grpc.aio server: servicer, health (NOT_SERVING while loading and
draining), reflection, TLS, message limits, graceful drain on SIGTERM/SIGINT.

Drain (`Daemon.stop`): new streams are refused at once on every transport (UNAVAILABLE, HTTP 503),
both servers stop listening together, streams in flight get `grace_s` to finish, then gRPC cancels
its calls and the gateway its handlers, which ends their engine streams; the whole takes about
`grace_s` plus a second, never the length of the slowest stream."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gsvd.daemon.audit import AuditLog, Caller
from gsvd.daemon.config import DaemonConfig
from gsvd.daemon.errors import StartupError
from gsvd.daemon.metrics import Metrics
from gsvd.daemon.service import Malformed, SynthesizerService
from gsvd.v1 import gsvd_pb2 as pb

log = logging.getLogger("gsvd.daemon")
SERVICE = pb.DESCRIPTOR.services_by_name["Synthesizer"].full_name


class Daemon:
    def __init__(self, engine, config: DaemonConfig) -> None:
        self.engine, self.config = engine, config
        self.metrics = Metrics(tick_stats=engine.tick_stats)
        self.health = health.aio.HealthServicer()
        limit = config.max_message_mb << 20
        # every call in flight holds a handler and its buffers: at most the engine's streams and queue, and a few
        # for listings, health and admin calls; more get RESOURCE_EXHAUSTED from grpc itself
        self.server = grpc.aio.server(maximum_concurrent_rpcs=config.max_calls_in_flight(), options=[
            ("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
            ("grpc.keepalive_time_ms", 60_000), ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.so_reuseport", 0),  # a second daemon on a busy port must fail, not share it at random
        ])
        self.audit = _open_audit(config)
        self.service = SynthesizerService(engine, config, self.metrics, self.audit)
        self.canary = None
        self._canary_task: asyncio.Task | None = None
        self.server.add_generic_rpc_handlers((_handlers(self.service),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        self.tls = config.tls()  # TlsFiles or None: the same files for gRPC and the gateway
        try:
            self.port = self._bind()
        except StartupError:
            self.audit.close()
            raise
        self.gateway = None
        self.http_port = 0

    def _bind(self) -> int:
        address = f"{self.config.host}:{self.config.port}"
        try:
            port = (self.server.add_secure_port(address, self.tls.grpc_credentials()) if self.tls
                    else self.server.add_insecure_port(address))
        except RuntimeError:  # grpc: "Failed to bind to address"
            port = 0
        if port == 0:
            raise StartupError(f"cannot listen on {address}: the port is in use (another gsvd serve?) or the "
                               "address is not one of this machine's")
        return port

    async def start(self) -> None:
        for name in ("", SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        try:
            await self._start_rest()
        except BaseException:
            await self.server.stop(None)  # before the loop closes: no "Event loop is closed" at exit
            self.audit.close()
            raise
        for name in ("", SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving on %s:%d with %d voice(s)", self.config.host, self.port, len(self.engine.voices()))
        self.audit.write("daemon_start", Caller.daemon(), address=f"{self.config.host}:{self.port}",
                         http_port=self.http_port or None, voices=[v.name for v in self.engine.voices()],
                         tokens=self.service.auth.identities() or None,
                         consent_required=not self.config.allow_unconsented_voices,
                         watermark=self.config.watermark)
        self._start_canary()

    def _start_canary(self) -> None:
        if not self.config.canary_interval_s:
            return
        from gsvd.daemon.canary import CanaryMonitor

        self.canary = CanaryMonitor(self.engine, self.service.admin, self.service.runner, self.metrics, self.config)
        self._canary_task = asyncio.get_running_loop().create_task(self.canary.run_forever())
        log.info("canary: every %g s each voice speaks its canary sentences while fewer than %d client stream(s) "
                 "are active", self.config.canary_interval_s, self.config.canary_below_streams)

    async def _start_rest(self) -> None:
        """Metrics, the voices folder and the gateway; a busy port is a StartupError naming it."""
        _log_auth(self.config)
        _log_responsible_use(self.config, self.audit)
        if self.config.metrics_port:
            _listen("metrics_port", self.config.host, self.config.metrics_port,
                    lambda: self.metrics.serve(self.config.metrics_port, self.config.host))
        await asyncio.to_thread(self._load_voices)
        if self.config.http_port >= 0:
            from gsvd.daemon.gateway import Gateway

            self.gateway = Gateway(self.service)
            tls = self.tls
            try:
                self.http_port = await self.gateway.start(self.config.host, self.config.http_port,
                                                          tls.server_context() if tls else None)
            except OSError as exc:
                await self.gateway.stop(0)
                raise _busy("http_port", self.config.host, self.config.http_port, exc) from None
            log.info("HTTP/WebSocket gateway on %s://%s:%d", "https" if tls else "http", self.config.host,
                     self.http_port)

    def _load_voices(self) -> None:
        """Every bundle folder of the voices folder, under the rules LoadVoice applies (inside it once
        symlinks are followed, a consent record); a missing folder is a warning, one bad bundle never keeps the
        others out."""
        from gsvd.engine.bundle import list_bundles

        folder = self.config.voices_dir
        if not folder:
            return
        if not Path(folder).expanduser().is_dir():
            log.warning("voices folder %s does not exist: serving no voices until bundles are put there and "
                        "loaded (give --voices-dir)", folder)
            return
        for listed in list_bundles(Path(folder).expanduser()):
            try:
                self.service.admin.load_at_start(folder, listed)
            except Exception as exc:  # one bad bundle must not keep the others out
                log.error("skipping voice bundle %s: %s", listed, exc)
        if not self.engine.voices():
            log.warning("no voice bundles in %s", folder)

    def _reload_lexicons(self) -> None:
        try:
            self.engine.reload_lexicon()
            log.info("lexicons reloaded (SIGHUP)")
        except Exception as exc:  # a broken edit must not take the daemon down
            log.error("lexicon reload failed, keeping the old entries: %s", exc)

    async def stop(self) -> None:
        """Refuse new work now, give streams in flight `grace_s`, then cancel what is left."""
        self.service.runner.drain()
        if self._canary_task is not None:
            self.canary.stop()
            self._canary_task.cancel()
            await asyncio.wait([self._canary_task])
        await self.health.enter_graceful_shutdown()
        stops = [self.server.stop(self.config.grace_s)]
        if self.gateway is not None:
            stops.append(self.gateway.stop(self.config.grace_s))
        await asyncio.gather(*stops)
        left = self.service.runner.cancel_all()
        if left:
            log.warning("cancelled %d stream(s) still running after the grace", left)
        self.audit.write("daemon_stop", Caller.daemon(), cancelled_streams=left or None)
        self.audit.close()

    async def run_forever(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_lexicons)
        await stop.wait()
        log.info("draining (grace %g s)", self.config.grace_s)
        t0 = time.monotonic()
        await self.stop()
        log.info("drained in %.1f s", time.monotonic() - t0)


def _busy(setting: str, host: str, port: int, exc: OSError) -> StartupError:
    return StartupError(f"cannot listen on {host}:{port} ({setting}): {exc.strerror or exc} (another gsvd serve?)")


def _listen(setting: str, host: str, port: int, start: Callable[[], object]) -> None:
    try:
        start()
    except OSError as exc:
        raise _busy(setting, host, port, exc) from None


def _log_auth(config: DaemonConfig) -> None:
    from gsvd.daemon.auth import is_loopback

    if config.no_auth:
        log.warning("authentication is off (--no-auth): anyone who can reach %s may load and unload voices",
                    config.host)
    elif not (config.token or config.admin_token):
        log.info("no tokens: synthesis is open, LoadVoice/UnloadVoice are refused (set --admin-token)")
        if not is_loopback(config.host):
            log.warning("listening on %s without a token: anyone on the network may synthesize (set --token)",
                        config.host)


def _open_audit(config: DaemonConfig) -> AuditLog:
    try:
        return AuditLog(config.audit_log, max(1, int(config.audit_log_max_mb * (1 << 20))), config.audit_log_backups)
    except OSError as exc:
        raise StartupError(f"cannot open the audit log {config.audit_log}: {exc.strerror or exc}") from None


def _log_responsible_use(config: DaemonConfig, audit: AuditLog) -> None:
    """Say at start how this daemon treats consent, labels, the watermark and content credentials."""
    if config.allow_unconsented_voices:
        log.warning("consent check is off (allow_unconsented_voices): voices without a consent record are loaded")
    if audit.enabled:
        log.info("audit log: %s (rotated at %g MB, %d kept)", audit.path, config.audit_log_max_mb,
                 config.audit_log_backups)
    else:
        log.info("no audit log (set --audit-log to record voice loads, unloads and admin calls)")
    if config.watermark:
        log.info("watermark: every stream is marked (daemon id %d, %s key)", config.watermark_daemon_id,
                 "private" if config.watermark_key else "public")
    if config.sign_cert:
        log.info("content credentials: WAV answers of /v1/audio/speech are signed with %s", config.sign_cert)


_METHODS = {  # name: (kind, request type)
    "Synthesize": ("unary_stream", pb.SynthesizeRequest),
    "StreamingSynthesize": ("stream_stream", pb.StreamingSynthesizeRequest),
    "ListVoices": ("unary_unary", pb.ListVoicesRequest),
    "GetVoice": ("unary_unary", pb.GetVoiceRequest),
    "LoadVoice": ("unary_unary", pb.LoadVoiceRequest),
    "UnloadVoice": ("unary_unary", pb.UnloadVoiceRequest),
    "GetServerInfo": ("unary_unary", pb.GetServerInfoRequest),
}


def _safe(message_type):
    """Deserializer that turns a corrupt request into a Malformed marker (-> INVALID_ARGUMENT)."""

    def parse(data: bytes):
        try:
            return message_type.FromString(data)
        except Exception as exc:  # DecodeError and friends
            return Malformed(str(exc))

    return parse


def _handlers(service) -> grpc.GenericRpcHandler:
    handlers = {}
    for name, (kind, req_type) in _METHODS.items():
        make = getattr(grpc, f"{kind}_rpc_method_handler")
        handlers[name] = make(getattr(service, name), request_deserializer=_safe(req_type),
                              response_serializer=lambda m: m.SerializeToString())
    return grpc.method_handlers_generic_handler(SERVICE, handlers)

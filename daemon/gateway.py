"""HTTP/WebSocket gateway for engines without gRPC/HTTP2 (Godot, some Unity setups, web pages).

- `POST /v1/audio/speech` (OpenAI-compatible): {"model", "input", "voice", "response_format":
  "wav"|"pcm", "speed", "stream"} -> WAV (or raw s16le PCM at 32 kHz); with "stream": true the
  body is chunked as audio is produced (WAV header first, declaring an unknown length). Every answer
  says it is AI-generated: headers `X-AI-Generated: true` and `X-AI-Label` (JSON), and WAV answers
  carry the label in their LIST/INFO and `aigc` chunks; whole WAV answers are signed (C2PA) when the
  operator configured a signing certificate (daemon/labels.py).
- `GET /v1/ws`: WebSocket. Client sends {"voice", "options", "sample_rate", "encoding":
  "pcm_s16le"|"pcm_f32le"} first, then {"text": "..."} messages, then {"end": true}. Server sends
  {"type": "start", ..., "label": {the AI-generated label}}, then per chunk a JSON {"type": "chunk",
  sequence, offset, is_final, text, envelope} followed by one binary frame of audio, then
  {"type": "end"}; errors arrive as {"type": "error", "code", "message"}.
  Browsers, which cannot set the Authorization header on a WebSocket, offer the subprotocols
  `gsvd.v1` and `gsvd.bearer.<base64url token>` instead (http_api.request_bearer).
- `GET /healthz`; `GET /` the web console, with its JSON API (`/v1/server`, `/v1/voices`,
  `/v1/runs`) documented in daemon/http_api.py and daemon/console_runs.py (registered by console.py).
Same limits, auth tokens and streaming core as the gRPC service. A client that disconnects cancels
its handler (and so frees its slot at once); a streaming response whose client stops reading is cut
off (the connection is aborted) after the slow-reader timeout. While the daemon drains, every new
request gets 503; requests in flight get the shutdown grace, then their handlers are cancelled.

Hostile clients: a request whose headers do not arrive within `header_timeout_s` has its connection closed (the
same timer closes idle keep-alive connections), a body that does not arrive within `body_timeout_s` gets 408
(`http_api.read_body`); pages of other sites are refused (403, `daemon/origins.py`); every answer under /v1/ says
`Cache-Control: no-store` (voice lists carry consent records). Requests aiohttp's parser rejects (smuggling
attempts: two Content-Lengths, Content-Length with chunked, bad chunk sizes) get its 400 and one log line, not a
traceback; a WebSocket's offered subprotocols are logged with any bearer token in them masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
import uuid
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from aiohttp import WSMsgType, http_exceptions, web

from gsvd.daemon import console, convert, origins, validate
from gsvd.daemon.auth import is_loopback
from gsvd.daemon.errors import RequestTimeout, TooLarge, Unavailable, http_status_for, message_for, status_for
from gsvd.daemon.http_api import BEARER_PROTOCOL, WS_PROTOCOL, read_json, request_bearer
from gsvd.daemon.labels import Labeler
from gsvd.daemon.streaming import OutChunk, TextFeed, first_message
from gsvd.engine.errors import Cancelled, GsvdError, InvalidInput, ResourceExhausted
from gsvd.engine.types import SynthesisOptions

if TYPE_CHECKING:
    from gsvd.engine.provenance.label import AiLabel

log = logging.getLogger("gsvd.daemon")
_FAREWELL_S = 2.0  # time a WebSocket gets for an error message and the close handshake before it is aborted
_LINGER_S = 2.0  # after an answer sent before its body was read (408, 413), aiohttp reads on this long, then closes
_OPTION_KEYS = ("top_k", "top_p", "temperature", "repetition_penalty", "noise_scale", "speed", "seed", "language",
                "split_method", "max_new_tokens")


class Gateway:
    def __init__(self, service) -> None:
        self.service = service  # the gRPC servicer: engine, config, runner
        self.app = web.Application(client_max_size=service.config.max_message_mb << 20,
                                   middlewares=[self._track, self._same_site])
        self.app.on_response_prepare.append(_no_store)
        self._loopback = is_loopback(service.config.host)
        self._origins = service.config.origins()
        self.app.add_routes([web.post("/v1/audio/speech", self.speech), web.get("/v1/ws", self.websocket),
                             web.get("/healthz", self.health)])
        console.register(self)  # the web console at / and its JSON API (/v1/server, /v1/voices, /v1/runs)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self._inflight: set[asyncio.Task] = set()  # handler tasks of the requests being served
        self._cap = service.config.max_calls_in_flight()

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Listen (HTTPS/WSS with `ssl_context`: the daemon's TLS files, client certificates included). A
        disconnect cancels the handler, so its stream and slot end at once (stop() handles the grace itself)."""
        self.runner = web.AppRunner(self.app, handler_cancellation=True, shutdown_timeout=_FAREWELL_S,
                                    keepalive_timeout=self.service.config.header_timeout_s, lingering_time=_LINGER_S)
        await self.runner.setup()
        _quiet_aiohttp_logs()
        site = web.TCPSite(self.runner, host, port, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self, grace: float) -> None:
        """Stop listening now, let requests in flight run for up to `grace` seconds, then cancel their handlers."""
        runner, self.runner = self.runner, None
        if runner is None:
            return
        for site in list(runner.sites):
            await site.stop()
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace)
        for task in self._inflight:
            task.cancel()
        await runner.cleanup()

    @web.middleware
    async def _track(self, request: web.Request, handler) -> web.StreamResponse:
        """Refuse every request while the daemon drains (503), and past the calls in flight a transport takes
        (429, the gRPC server's cap); remember the handlers in flight for stop()."""
        if self.service.runner.draining:
            return self._error(Unavailable("server is shutting down; retry on another instance"))
        if len(self._inflight) >= self._cap:
            return self._error(ResourceExhausted(f"too many requests in flight ({self._cap}); retry later"))
        task = asyncio.current_task()
        self._inflight.add(task)
        try:
            return await handler(request)
        finally:
            self._inflight.discard(task)

    @web.middleware
    async def _same_site(self, request: web.Request, handler) -> web.StreamResponse:
        """Refuse browser requests from pages of other sites (403; `daemon/origins.py`)."""
        if refused := origins.refusal(request.path, request.headers, self._loopback, self._origins):
            log.info("refused %s %s from a browser page: %s", request.method, request.path[:100], refused)
            return self._error(refused)
        return await handler(request)

    # ------------------------------------------------------------------ helpers

    def _refusal(self, request: web.Request, admin: bool = False) -> GsvdError | None:
        """The auth error for this request (the gRPC service's policy: `daemon/auth.py`), or None when it may
        go on. The bearer token comes from the Authorization header or, for browsers' WebSockets, the
        subprotocol list (`http_api.request_bearer`)."""
        try:
            self.service.auth.check(request_bearer(request) or None, admin=admin)
        except GsvdError as exc:
            return exc
        return None

    def _error(self, exc: BaseException) -> web.Response:
        code = status_for(exc).name
        resp = web.json_response({"error": {"message": message_for(exc, self.service.hide), "type": code.lower(),
                                            "code": code}}, status=http_status_for(exc))
        if isinstance(exc, RequestTimeout | TooLarge):
            resp.force_close()  # the rest of the body may still be on its way: not another request
        return resp

    def _ws_error(self, exc: BaseException) -> dict:
        return {"type": "error", "code": status_for(exc).name, "message": message_for(exc, self.service.hide)}

    def _options(self, data: object) -> SynthesisOptions:
        if not isinstance(data, dict):
            raise InvalidInput("options must be a JSON object", "options")
        unknown = set(data) - set(_OPTION_KEYS)
        if unknown:
            raise InvalidInput(f"unknown option(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
        return SynthesisOptions().with_overrides(**data)

    # ------------------------------------------------------------------ routes

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "serving"})

    async def speech(self, request: web.Request) -> web.StreamResponse:
        if refused := self._refusal(request):
            return self._error(refused)
        try:
            body = await read_json(request, self.service.config)
            text, voice = body.get("input", ""), body.get("voice", "")
            fmt = body.get("response_format", "wav")
            if fmt not in ("wav", "pcm"):
                raise InvalidInput(f"response_format {fmt!r} is not supported (use wav or pcm)", "response_format")
            opts = self._options({"speed": body["speed"]} if "speed" in body else {})
            validate.check_text(text, self.service.config.max_text_chars, "input")
            voice = validate.voice_name(voice)
        except GsvdError as exc:
            return self._error(exc)

        def start(cancel, deadline):
            return self.service.engine.stream(text, voice, opts, cancel=cancel, deadline=deadline)

        rid = uuid.uuid4().hex[:12]
        label = self.service.labels.label(voice)
        if body.get("stream"):
            return await self._stream_http(request, start, fmt, rid, label)
        parts: list[np.ndarray] = []

        async def keep(c: OutChunk) -> None:
            parts.append(c.pcm)

        try:
            async with self.service.runner.session(rid) as session:
                await session.run(start, convert.NATIVE_RATE, keep)
            pcm = np.concatenate(parts or [np.zeros(0, np.float32)])
            if fmt == "wav":  # labelled, and signed when signing is configured (off the event loop)
                data = await asyncio.to_thread(self.service.labels.wav, pcm, convert.NATIVE_RATE, label)
            else:
                data = convert.encode(pcm, 1)
        except GsvdError as exc:
            return self._error(exc)
        return web.Response(body=data, content_type="audio/wav" if fmt == "wav" else "audio/pcm",
                            headers=Labeler.headers(label))

    async def _stream_http(self, request: web.Request, start, fmt: str, rid: str, label: AiLabel
                           ) -> web.StreamResponse:
        """Chunked audio as it is made; errors before the first chunk are JSON, later ones cut the connection."""
        resp = web.StreamResponse(headers={"Content-Type": "audio/wav" if fmt == "wav" else "audio/pcm",
                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                                           **Labeler.headers(label)})
        resp.enable_chunked_encoding()

        async def send(c: OutChunk) -> None:
            if not resp.prepared:
                await resp.prepare(request)
                if fmt == "wav":
                    await resp.write(Labeler.stream_header(convert.NATIVE_RATE, label))
            await resp.write(convert.encode(c.pcm, 1))

        try:
            async with self.service.runner.session(rid) as session:
                _bound_send_buffer(request, self.service.config.send_buffer_kb)
                await session.run(start, convert.NATIVE_RATE, send)
        except GsvdError as exc:
            if not resp.prepared:
                return self._error(exc)
            log.info("request %s: stream cut (%s)", rid, message_for(exc))
            _abort(request)  # mid-stream: the body ends without its last chunk, the client sees the cut
            return resp
        if not resp.prepared:
            await resp.prepare(request)
        await resp.write_eof()
        return resp

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=self.service.config.max_message_mb << 20,
                                   protocols=(WS_PROTOCOL,))  # browsers send the token in the protocol list
        await ws.prepare(request)
        if refused := self._refusal(request):
            await ws.send_json(self._ws_error(refused))
            await ws.close()
            return ws
        try:
            await self._ws_session(ws, request)
        except GsvdError as exc:
            await _farewell(ws, request, self._ws_error(exc))
        except Exception:  # never a bare crash: the client gets an error frame and a close
            log.exception("WebSocket session failed")
            await _farewell(ws, request, {"type": "error", "code": "INTERNAL", "message": "internal error"})
        else:
            await _farewell(ws, request, None)
        return ws

    async def _ws_session(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        settings = self.service.config
        first = await first_message(ws.receive(), settings.idle_input_timeout_s)
        if first.type != WSMsgType.TEXT:
            raise InvalidInput("the first message must be a JSON config", "config")
        cfg = validate.json_object(first.data, "config")
        voice = validate.voice_name(cfg.get("voice", ""))
        opts = self._options(cfg.get("options", {}))
        encoding = cfg.get("encoding", "pcm_s16le")
        enc = {"pcm_s16le": 1, "pcm_f32le": 2}.get(encoding) if isinstance(encoding, str) else None
        if enc is None:
            raise InvalidInput("encoding must be pcm_s16le or pcm_f32le", "encoding")
        rate = cfg.get("sample_rate", 0)
        if isinstance(rate, bool) or not isinstance(rate, int):
            raise InvalidInput(f"sample_rate must be an integer; got {rate!r}", "sample_rate")
        rate = rate or convert.NATIVE_RATE
        if not 8000 <= rate <= 192000:
            raise InvalidInput(f"sample_rate must be 0 or in [8000, 192000]; got {rate}", "sample_rate")
        feed = TextFeed(settings.idle_input_timeout_s)

        def start(cancel, deadline):
            return self.service.engine.stream_text(feed.pieces(cancel), voice, opts, cancel=cancel, deadline=deadline)

        async def send(c: OutChunk) -> None:
            await ws.send_json({"type": "chunk", "sequence": c.sequence, "offset": c.offset, "is_final": c.is_final,
                                "text": c.text, "envelope": convert.envelope(c.pcm, rate),
                                "timings": [{"text": t.symbol, "start": t.start, "end": t.end} for t in c.timings]})
            await ws.send_bytes(convert.encode(c.pcm, enc))

        async with self.service.runner.session(uuid.uuid4().hex[:12]) as session:
            _bound_send_buffer(request, settings.send_buffer_kb)
            await session.write(ws.send_json({"type": "start", "sample_rate": rate, "channels": 1,
                                              "encoding": "pcm_s16le" if enc == 1 else "pcm_f32le",
                                              "label": self.service.labels.label(voice).to_dict()}))
            await session.run(start, rate, send, partial(self._ws_read, ws, feed))
            await session.write(ws.send_json({"type": "end"}))

    async def _ws_read(self, ws: web.WebSocketResponse, feed: TextFeed) -> None:
        budget = validate.TextBudget(self.service.config.max_text_chars)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        raise InvalidInput("text messages must be JSON text frames, not binary", "text")
                    break
                data = validate.json_object(msg.data, "text")
                if data.get("end"):
                    break
                feed.put(budget.add(data.get("text", ""), "text"))
            else:  # the client closed the socket: nobody is listening any more
                feed.fail(Cancelled("the client closed the WebSocket"))
        except InvalidInput as exc:
            feed.fail(exc)
        finally:
            feed.end()


def _bound_send_buffer(request: web.Request, kb: int) -> None:
    """Cap the kernel's send buffer of a streaming connection, so that audio backs up into the stream's own
    bounded buffer (and the slow-reader timeout) after `kb` KiB instead of the several MiB Linux allows."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if kb > 0 and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, kb << 10)


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


async def _farewell(ws: web.WebSocketResponse, request: web.Request, message: dict | None) -> None:
    """Send a last message and close; a client that does not take them within _FAREWELL_S is cut off."""
    try:
        async with asyncio.timeout(_FAREWELL_S):
            if message is not None and not ws.closed:
                await ws.send_json(message)
            await ws.close()
    except (TimeoutError, ConnectionError):
        _abort(request)


async def _no_store(request: web.Request, response: web.StreamResponse) -> None:
    """Answers of the API carry voices' consent records and server state: no cache keeps them."""
    if request.path.startswith("/v1/"):
        response.headers["Cache-Control"] = "no-store"


class _ProtocolErrorsWithoutTraceback(logging.Filter):
    """aiohttp logs a request its parser rejected (a smuggling attempt, a malformed chunk) with a traceback at
    ERROR: one line at WARNING says all there is (the client got aiohttp's 400 and the connection was closed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, http_exceptions.HttpProcessingError):
            record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__}: {exc.message!r}"[:500], ()
            record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.WARNING, "WARNING"
        return True


class _MaskBearerProtocols(logging.Filter):
    """aiohttp logs the WebSocket subprotocols a client offered when none is known; a browser's offer holds its
    token (`gsvd.bearer.<base64url token>`): the log keeps the entry's name, never the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if BEARER_PROTOCOL in text:
            record.msg, record.args = _BEARER_RE.sub(BEARER_PROTOCOL + "<token>", text), ()
        return True


_BEARER_RE = re.compile(re.escape(BEARER_PROTOCOL) + r"[^'\",\s\]]*")
_FILTERS = {"aiohttp.server": _ProtocolErrorsWithoutTraceback(), "aiohttp.websocket": _MaskBearerProtocols()}


def _quiet_aiohttp_logs() -> None:
    """Install the two filters above on aiohttp's loggers (once per process)."""
    for name, flt in _FILTERS.items():
        logger = logging.getLogger(name)
        if flt not in logger.filters:
            logger.addFilter(flt)

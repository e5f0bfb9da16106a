"""HTTP/WebSocket gateway for engines without gRPC/HTTP2 (Godot, some Unity setups, web pages).

- `POST /v1/audio/speech` (OpenAI-compatible): {"model", "input", "voice", "response_format":
  "wav"|"pcm", "speed", "stream"} -> WAV (or raw s16le PCM at 32 kHz); with "stream": true the
  body is chunked as audio is produced (WAV header first, declaring an unknown length).
- `GET /v1/ws`: WebSocket. Client sends {"voice", "options", "sample_rate", "encoding":
  "pcm_s16le"|"pcm_f32le"} first, then {"text": "..."} messages, then {"end": true}. Server sends
  {"type": "start", ...}, then per chunk a JSON {"type": "chunk", sequence, offset, is_final, text,
  envelope} followed by one binary frame of audio, then {"type": "end"}; errors arrive as
  {"type": "error", "code", "message"}.
  Browsers, which cannot set the Authorization header on a WebSocket, offer the subprotocols
  `gsvd.v1` and `gsvd.bearer.<base64url token>` instead (http_api.request_bearer).
- `GET /healthz`; `GET /` the web console, with its JSON API (`/v1/server`, `/v1/voices`,
  `/v1/runs`) documented in daemon/http_api.py and daemon/console_runs.py (registered by console.py).
Same limits, auth tokens and streaming core as the gRPC service.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import ssl
import struct
import uuid

import numpy as np
from aiohttp import WSMsgType, web

from gsvd.daemon import console, convert, validate
from gsvd.daemon.errors import http_status_for, message_for, status_for
from gsvd.daemon.http_api import WS_PROTOCOL, request_bearer
from gsvd.engine.errors import GsvdError, InvalidInput
from gsvd.engine.types import SynthesisOptions

log = logging.getLogger("gsvd.daemon")
_OPTION_KEYS = ("top_k", "top_p", "temperature", "repetition_penalty", "noise_scale", "speed", "seed", "language",
                "split_method", "max_new_tokens")


def wav_header(rate: int, n_samples: int | None = None) -> bytes:
    data = 0xFFFFFFFF - 36 if n_samples is None else n_samples * 2
    return (b"RIFF" + struct.pack("<I", min(36 + data, 0xFFFFFFFF)) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data))


class Gateway:
    def __init__(self, service) -> None:
        self.service = service  # the gRPC servicer: engine, config, runner
        self.app = web.Application(client_max_size=service.config.max_message_mb << 20)
        self.app.add_routes([web.post("/v1/audio/speech", self.speech), web.get("/v1/ws", self.websocket),
                             web.get("/healthz", self.health)])
        console.register(self)  # the web console at / and its JSON API (/v1/server, /v1/voices, /v1/runs)
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Listen (HTTPS/WSS with `ssl_context`: the daemon's TLS files, client certificates included)."""
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

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
        return web.json_response({"error": {"message": message_for(exc, self.service.hide), "type": code.lower(),
                                            "code": code}}, status=http_status_for(exc))

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
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            too_large = self._error(InvalidInput(f"larger than the limit of {self.service.config.max_message_mb} MB",
                                                 "body"))
            too_large.set_status(413)
            return too_large
        try:
            body = validate.json_object(raw, "body")
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

        chunks = self.service.runner.run(start, convert.NATIVE_RATE, None, uuid.uuid4().hex[:12])
        if body.get("stream"):
            return await self._stream_http(request, chunks, fmt)
        try:
            pcm = np.concatenate([c.pcm async for c in chunks] or [np.zeros(0, np.float32)])
        except GsvdError as exc:
            return self._error(exc)
        data = convert.encode(pcm, 1)
        if fmt == "wav":
            data = wav_header(convert.NATIVE_RATE, len(pcm)) + data
        return web.Response(body=data, content_type="audio/wav" if fmt == "wav" else "audio/pcm")

    async def _stream_http(self, request, chunks, fmt) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "audio/wav" if fmt == "wav" else "audio/pcm",
                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        resp.enable_chunked_encoding()
        first = True
        try:
            async for c in chunks:
                if first:
                    await resp.prepare(request)
                    if fmt == "wav":
                        await resp.write(wav_header(convert.NATIVE_RATE))
                    first = False
                await resp.write(convert.encode(c.pcm, 1))
        except GsvdError as exc:
            if first:
                return self._error(exc)
            raise  # mid-stream: the connection is cut
        if first:
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
            await self._ws_session(ws)
        except GsvdError as exc:
            if not ws.closed:
                await ws.send_json(self._ws_error(exc))
        except Exception:  # never a bare crash: the client gets an error frame and a close
            log.exception("WebSocket session failed")
            if not ws.closed:
                await ws.send_json({"type": "error", "code": "INTERNAL", "message": "internal error"})
        await ws.close()
        return ws

    async def _ws_session(self, ws) -> None:
        first = await ws.receive()
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
        pieces: queue.Queue = queue.Queue()
        reader = asyncio.get_running_loop().create_task(self._ws_read(ws, pieces))

        def start(cancel, deadline):
            from gsvd.daemon.service import _drain

            return self.service.engine.stream_text(_drain(pieces, cancel), voice, opts, cancel=cancel, deadline=deadline)

        await ws.send_json({"type": "start", "sample_rate": rate, "encoding": "pcm_s16le" if enc == 1 else "pcm_f32le",
                            "channels": 1})
        try:
            async for c in self.service.runner.run(start, rate, None, uuid.uuid4().hex[:12]):
                await ws.send_json({"type": "chunk", "sequence": c.sequence, "offset": c.offset, "is_final": c.is_final,
                                    "text": c.text, "envelope": convert.envelope(c.pcm, rate),
                                    "timings": [{"text": t.symbol, "start": t.start, "end": t.end} for t in c.timings]})
                await ws.send_bytes(convert.encode(c.pcm, enc))
            await ws.send_json({"type": "end"})
        finally:
            reader.cancel()

    async def _ws_read(self, ws, pieces: queue.Queue) -> None:
        from gsvd.daemon.service import _DONE

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
                pieces.put(budget.add(data.get("text", ""), "text"))
        except InvalidInput as exc:
            pieces.put(exc)
        finally:
            pieces.put(_DONE)

"""The gsvd.v1.Synthesizer servicer (grpc.aio): proto <-> engine calls.

Streaming, admission, slow-reader and cancellation handling live in
`streaming.StreamRunner` (shared with the HTTP gateway); this module validates
requests, checks tokens and maps engine errors to status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import grpc

from gsvd.daemon import convert
from gsvd.daemon.config import DaemonConfig
from gsvd.daemon.errors import message_for, status_for
from gsvd.daemon.metrics import Metrics
from gsvd.daemon.streaming import OutChunk, Reader, Start, StreamRunner, TextFeed, first_message
from gsvd.engine.errors import GsvdError, InvalidInput
from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

log = logging.getLogger("gsvd.daemon")
T = TypeVar("T")


class Malformed:
    """A request that could not be parsed (see server._safe)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class SynthesizerService(pbg.SynthesizerServicer):
    def __init__(self, engine, config: DaemonConfig, metrics: Metrics | None = None) -> None:
        self.engine = engine
        self.config = config
        self.metrics = metrics or Metrics()
        self.runner = StreamRunner(config, self.metrics)

    # ----------------------------------------------------------------- auth

    async def _authorize(self, context, admin: bool = False, request=None) -> None:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request: {request.reason}")
        tokens = [t for t in ((self.config.admin_token,) if admin else (self.config.token, self.config.admin_token)) if t]
        if not tokens:
            return
        sent = dict(context.invocation_metadata()).get("authorization", "")
        if not any(sent == f"Bearer {t}" for t in tokens):
            what = "an admin token" if admin and self.config.admin_token else "a valid bearer token"
            await context.abort(grpc.StatusCode.PERMISSION_DENIED if admin and sent else grpc.StatusCode.UNAUTHENTICATED,
                                f"this call needs {what} (metadata 'authorization: Bearer <token>')")

    async def _fail(self, context, exc: BaseException, method: str):
        code = status_for(exc)
        self.metrics.error(method, code.name)
        await context.abort(code, message_for(exc))

    # ------------------------------------------------------------ synthesis

    async def Synthesize(self, request: pb.SynthesizeRequest, context) -> None:
        await self._authorize(context, request=request)
        rid = request.request_id or uuid.uuid4().hex[:12]
        try:
            self._check_text(request.text)
            opts = convert.options(request.options)
            enc, rate, env = convert.output(request.output)
            voice = self._voice_name(request.voice)
        except GsvdError as exc:
            await self._fail(context, exc, "Synthesize")

        def start(cancel, deadline):
            return self.engine.stream(request.text, voice, opts, cancel=cancel, deadline=deadline)

        await self._serve(context, "Synthesize", rid, voice, start, enc, rate, env)

    async def StreamingSynthesize(self, request_iterator, context) -> None:
        await self._authorize(context)
        try:
            first = await first_message(anext(aiter(request_iterator), None), self.config.idle_input_timeout_s)
            if isinstance(first, Malformed):
                raise InvalidInput(f"malformed request: {first.reason}", "request")
            if first is None or first.WhichOneof("request") != "config":
                raise InvalidInput("the first message must carry `config` (voice, options, output)", "config")
            cfg = first.config
            opts = convert.options(cfg.options)
            enc, rate, env = convert.output(cfg.output)
            voice = self._voice_name(cfg.voice)
        except GsvdError as exc:
            await self._fail(context, exc, "StreamingSynthesize")
        rid = cfg.request_id or uuid.uuid4().hex[:12]
        feed = TextFeed(self.config.idle_input_timeout_s)

        def start(cancel, deadline):
            return self.engine.stream_text(feed.pieces(cancel), voice, opts, cancel=cancel, deadline=deadline)

        reader = partial(self._read_text, request_iterator, feed)
        await self._serve(context, "StreamingSynthesize", rid, voice, start, enc, rate, env, reader)

    async def _read_text(self, request_iterator, feed: TextFeed) -> None:
        total = 0
        try:
            async for msg in request_iterator:
                if isinstance(msg, Malformed) or msg.WhichOneof("request") != "input":
                    feed.fail(InvalidInput("only the first message may carry `config`", "config"))
                    return
                total += len(msg.input.text)
                if total > self.config.max_text_chars:
                    feed.fail(InvalidInput(f"streamed text exceeds {self.config.max_text_chars} characters", "text"))
                    return
                feed.put(msg.input.text)
        finally:
            feed.end()

    async def _serve(self, context, method, rid, voice, start: Start, enc, rate, env, reader: Reader | None = None
                     ) -> None:
        """Admit (the refusal is the only message a refused client gets), send the audio format, stream."""
        log.info("request %s %s voice=%s", rid, method, voice)

        async def send(item: OutChunk) -> None:
            chunk = pb.AudioChunk(audio=convert.encode(item.pcm, enc), sequence=item.sequence,
                                  offset_samples=item.offset, is_final=item.is_final, segment=item.segment,
                                  text=item.text)
            chunk.timings.extend(pb.WordTiming(text=t.symbol, start_s=t.start, end_s=t.end) for t in item.timings)
            if env:
                chunk.envelope.extend(convert.envelope(item.pcm, rate))
                chunk.envelope_hop_ms = convert.ENVELOPE_MS
            await context.write(pb.SynthesizeResponse(audio=chunk, request_id=rid))

        try:
            async with self.runner.session(rid, context.time_remaining()) as session:
                fmt = pb.AudioFormat(encoding=enc, sample_rate_hz=rate, channels=1)
                await session.write(context.write(pb.SynthesizeResponse(start=fmt, request_id=rid)))
                await session.run(start, rate, send, reader)
        except GsvdError as exc:
            await self._fail(context, exc, method)

    # --------------------------------------------------------------- voices

    async def ListVoices(self, request, context):
        await self._authorize(context, request=request)
        voices = await asyncio.to_thread(self.engine.voices)
        return pb.ListVoicesResponse(voices=[convert.voice(v) for v in voices])

    async def GetVoice(self, request, context):
        await self._authorize(context, request=request)
        try:
            return convert.voice(await asyncio.to_thread(self.engine.voice, self._voice_name(request.name)))
        except GsvdError as exc:
            await self._fail(context, exc, "GetVoice")

    async def LoadVoice(self, request, context):
        await self._authorize(context, admin=True, request=request)
        try:
            if request.WhichOneof("source") == "bundle_path":
                path = self._bundle_path(request.bundle_path)
                v = await _own_thread(partial(self.engine.load_voice, path, request.name or None,
                                              progress=partial(_log_load, path)))
            elif request.WhichOneof("source") == "reference":
                up = request.reference
                if not request.name:
                    raise InvalidInput("name is required for an uploaded voice", "name")
                audio = convert.upload_audio(up)
                v = await _own_thread(partial(self.engine.add_voice_from_reference, request.name, up.base_voice,
                                              audio, up.sample_rate_hz, up.transcript, up.language or "auto"))
            else:
                raise InvalidInput("give bundle_path or reference", "source")
            log.info("loaded voice %s (%s)", v.name, v.version)
            return convert.voice(v)
        except GsvdError as exc:
            await self._fail(context, exc, "LoadVoice")

    async def UnloadVoice(self, request, context):
        await self._authorize(context, admin=True, request=request)
        try:
            await asyncio.to_thread(self.engine.unload_voice, self._voice_name(request.name))
            return pb.UnloadVoiceResponse()
        except GsvdError as exc:
            await self._fail(context, exc, "UnloadVoice")

    async def GetServerInfo(self, request, context):
        await self._authorize(context, request=request)
        info, stats = await asyncio.to_thread(lambda: (self.engine.info(), self.engine.stats()))
        limits = {"max_streams": self.config.max_streams, "queue_limit": self.config.queue_limit,
                  "max_text_chars": self.config.max_text_chars, "max_message_bytes": self.config.max_message_mb << 20}
        return pb.ServerInfo(version=info["version"], backend=info["backend"] or "", device=info["device"],
                             dtype=info["dtype"], limits=limits, models=[m["model_id"] for m in info["models"]],
                             sample_rate_hz=convert.NATIVE_RATE, active_streams=self.runner.active,
                             queued=int(stats.get("queued", 0)))

    # -------------------------------------------------------------- checks

    def _check_text(self, text: str) -> None:
        if not text.strip():
            raise InvalidInput("text is empty", "text")
        if len(text) > self.config.max_text_chars:
            raise InvalidInput(f"text is {len(text)} characters; the limit is {self.config.max_text_chars}", "text")

    @staticmethod
    def _voice_name(name: str) -> str:
        from gsvd.engine.bundle import validate_voice_name

        if not name:
            raise InvalidInput("voice is required", "voice")
        return validate_voice_name(name)

    def _bundle_path(self, raw: str) -> Path:
        root = Path(self.config.voices_dir).resolve() if self.config.voices_dir else None
        path = Path(raw)
        path = (root / path).resolve() if root and not path.is_absolute() else path.resolve()
        if root is None or not path.is_relative_to(root):
            raise InvalidInput("bundle_path must be inside the server's voices directory", "bundle_path")
        return path


async def _own_thread(call: Callable[[], T]) -> T:
    """Run a long blocking call (a voice load: minutes on a GPU) on a thread of its own, off the event loop
    and off the default executor that the short engine calls share; shutdown does not wait for it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def settle(result, error) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def work() -> None:
        try:
            result, error = call(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone (daemon stopped)
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="gsvd-load", daemon=True).start()
    return await done


def _log_load(path: Path, stage: str) -> None:
    log.info("loading %s: %s", path, {"verified": "checksums verified", "model": "model resident",
                                      "reference": "reference ready"}.get(stage, stage))

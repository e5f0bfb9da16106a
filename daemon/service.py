"""The gsvd.v1.Synthesizer servicer (grpc.aio): proto <-> engine calls.

Streaming, admission, slow-reader and cancellation handling live in
`streaming.StreamRunner` (shared with the HTTP gateway); this module validates
requests, checks tokens and maps engine errors to status codes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from functools import partial
from pathlib import Path

import grpc

from gsvd.daemon import convert, validate
from gsvd.daemon.auth import Auth
from gsvd.daemon.config import DaemonConfig
from gsvd.daemon.errors import message_for, status_for
from gsvd.daemon.metrics import Metrics
from gsvd.daemon.streaming import OutChunk, Reader, Start, StreamRunner, TextFeed, first_message
from gsvd.daemon.voice_admin import VoiceAdmin, server_info
from gsvd.engine.errors import GsvdError, InvalidInput
from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

log = logging.getLogger("gsvd.daemon")


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
        self.auth = Auth(config.token, config.admin_token, config.no_auth)
        self.hide = _server_paths(config)  # folders that never appear in a client's message
        self.admin = VoiceAdmin(engine, config)  # voice management, shared with the HTTP API

    # ----------------------------------------------------------------- auth

    async def _authorize(self, context, admin: bool = False, request=None) -> None:
        try:
            self.auth.check(dict(context.invocation_metadata()).get("authorization"), admin=admin)
        except GsvdError as exc:
            await context.abort(status_for(exc), message_for(exc))
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request: {request.reason}")

    async def _fail(self, context, exc: BaseException, method: str):
        code = status_for(exc)
        self.metrics.error(method, code.name)
        await context.abort(code, message_for(exc, self.hide))

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
        budget = validate.TextBudget(self.config.max_text_chars)
        try:
            async for msg in request_iterator:
                if isinstance(msg, Malformed) or msg.WhichOneof("request") != "input":
                    feed.fail(InvalidInput("only the first message may carry `config`", "config"))
                    return
                feed.put(budget.add(msg.input.text, "input.text"))
        except InvalidInput as exc:
            feed.fail(exc)
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
            return convert.voice(await asyncio.to_thread(self.engine.voice, validate.voice_name(request.name, "name")))
        except GsvdError as exc:
            await self._fail(context, exc, "GetVoice")

    async def LoadVoice(self, request, context):
        await self._authorize(context, admin=True, request=request)
        try:
            if request.WhichOneof("source") == "bundle_path":
                v = await self.admin.load_bundle(request.bundle_path, request.name, request.replace)
            elif request.WhichOneof("source") == "reference":
                up = request.reference
                v = await self.admin.add_reference_voice(request.name, up.base_voice, convert.upload_audio(up),
                                                         up.sample_rate_hz, up.transcript, up.language,
                                                         request.replace)
            else:
                raise InvalidInput("give bundle_path or reference", "source")
            return convert.voice(v)
        except GsvdError as exc:
            await self._fail(context, exc, "LoadVoice")

    async def UnloadVoice(self, request, context):
        await self._authorize(context, admin=True, request=request)
        try:
            await asyncio.to_thread(self.admin.unload_voice, request.name)
            return pb.UnloadVoiceResponse()
        except GsvdError as exc:
            await self._fail(context, exc, "UnloadVoice")

    async def GetServerInfo(self, request, context):
        await self._authorize(context, request=request)
        return pb.ServerInfo(**await asyncio.to_thread(server_info, self.engine, self.config, self.runner.active))

    # -------------------------------------------------------------- checks

    def _check_text(self, text: object) -> None:
        validate.check_text(text, self.config.max_text_chars)

    @staticmethod
    def _voice_name(name: object) -> str:
        return validate.voice_name(name)


def _server_paths(config: DaemonConfig) -> tuple[tuple[str, str], ...]:
    """(absolute path, placeholder) pairs that error messages show in place of the server's folders."""
    home = Path.home()
    pairs = [(str(home), "~")] if len(home.parts) > 1 else []  # a home of "/" would rewrite every path
    if config.voices_dir:
        folder = Path(config.voices_dir).expanduser()
        pairs += [(str(folder.absolute()), "<voices_dir>"), (str(folder.resolve()), "<voices_dir>")]
    return tuple(pairs)

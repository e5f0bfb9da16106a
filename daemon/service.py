"""The gsvd.v1.Synthesizer servicer (grpc.aio): proto <-> engine calls.

Streaming, admission, slow-reader and cancellation handling live in
`streaming.StreamRunner` (shared with the HTTP gateway); this module validates
requests, checks tokens and maps engine errors to status codes. Every stream's first message
carries its AI-generated label (`labels.Labeler`); every admin call (LoadVoice, UnloadVoice) is
written to the audit log with the caller's identity, refused ones included (`audit.AuditLog`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from functools import partial
from pathlib import Path

from gsvd.daemon import convert, validate
from gsvd.daemon.audit import AuditLog, Caller, Entry, subject_from_auth_context
from gsvd.daemon.auth import Auth
from gsvd.daemon.config import DaemonConfig
from gsvd.daemon.errors import message_for, status_for
from gsvd.daemon.labels import Labeler
from gsvd.daemon.metrics import Metrics
from gsvd.daemon.streaming import OutChunk, Reader, Start, StreamRunner, TextFeed, first_message
from gsvd.daemon.voice_admin import VoiceAdmin, server_info
from gsvd.engine.consent import upload_record
from gsvd.engine.errors import GsvdError, InvalidInput
from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

log = logging.getLogger("gsvd.daemon")


class Malformed:
    """A request that could not be parsed (see server._safe)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class SynthesizerService(pbg.SynthesizerServicer):
    def __init__(self, engine, config: DaemonConfig, metrics: Metrics | None = None,
                 audit: AuditLog | None = None) -> None:
        self.engine = engine
        self.config = config
        self.metrics = metrics or Metrics()
        self.runner = StreamRunner(config, self.metrics)
        self.auth = Auth(config.token, config.admin_token, config.no_auth)
        self.hide = _server_paths(config)  # folders that never appear in a client's message
        self.audit = audit or AuditLog()
        self.admin = VoiceAdmin(engine, config, self.audit)  # voice management, shared with the HTTP API
        self.labels = Labeler(config)  # every output's AI-generated label, shared with the gateway

    # ----------------------------------------------------------------- auth

    async def _authorize(self, context, admin: bool = False, request=None, entry: Entry | None = None) -> None:
        """Abort the call unless its token may make it and its request parsed; an admin call's refusal goes
        into its audit `entry` first."""
        try:
            self.auth.check(dict(context.invocation_metadata()).get("authorization"), admin=admin)
            if isinstance(request, Malformed):
                raise InvalidInput(f"malformed request: {request.reason}")
        except GsvdError as exc:
            if entry is not None:
                entry.fail(exc)
            await context.abort(status_for(exc), message_for(exc))

    def _caller(self, context) -> Caller:
        """Who is calling (the audit log): the token's identity, the peer, the client certificate's subject."""
        header = dict(context.invocation_metadata()).get("authorization")
        return Caller(self.auth.identify(header), "grpc", context.peer() or "",
                      subject_from_auth_context(context.auth_context()))

    async def _fail(self, context, exc: BaseException, method: str):
        code = status_for(exc)
        self.metrics.error(method, code.name)
        await context.abort(code, message_for(exc, self.hide))

    # ------------------------------------------------------------ synthesis

    async def Synthesize(self, request: pb.SynthesizeRequest, context) -> None:
        await self._authorize(context, request=request)
        try:
            rid = validate.request_id(request.request_id) or uuid.uuid4().hex[:12]
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
            rid = validate.request_id(cfg.request_id, "config.request_id") or uuid.uuid4().hex[:12]
        except GsvdError as exc:
            await self._fail(context, exc, "StreamingSynthesize")
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
                fmt = pb.AudioFormat(encoding=enc, sample_rate_hz=rate, channels=1,
                                     label=convert.label(self.labels.label(voice)))
                await session.write(context.write(pb.SynthesizeResponse(start=fmt, request_id=rid)))
                await session.run(start, rate, send, reader)
        except GsvdError as exc:
            await self._fail(context, exc, method)

    # --------------------------------------------------------------- voices

    async def ListVoices(self, request, context):
        await self._authorize(context, request=request)
        voices = await asyncio.to_thread(self.engine.voices)
        return pb.ListVoicesResponse(voices=[convert.voice(v, self.admin.consent(v.name)) for v in voices])

    async def GetVoice(self, request, context):
        await self._authorize(context, request=request)
        try:
            v = await asyncio.to_thread(self.engine.voice, validate.voice_name(request.name, "name"))
            return convert.voice(v, self.admin.consent(v.name))
        except GsvdError as exc:
            await self._fail(context, exc, "GetVoice")

    async def LoadVoice(self, request, context):
        upload = not isinstance(request, Malformed) and request.WhichOneof("source") == "reference"
        with self.audit.event("upload_voice" if upload else "load_voice", self._caller(context), self.hide,
                              call="LoadVoice", voice=getattr(request, "name", "")) as entry:
            await self._authorize(context, admin=True, request=request, entry=entry)
            try:
                if request.WhichOneof("source") == "bundle_path":
                    v = await self.admin.load_bundle(request.bundle_path, request.name, request.replace, entry)
                elif upload:
                    up = request.reference
                    consent = upload_record(convert.consent_values(up.consent), "zero-shot upload (gRPC LoadVoice)",
                                            "reference.consent")
                    v = await self.admin.add_reference_voice(request.name, up.base_voice, convert.upload_audio(up),
                                                             up.sample_rate_hz, up.transcript, up.language, consent,
                                                             request.replace, entry)
                else:
                    raise InvalidInput("give bundle_path or reference", "source")
                return convert.voice(v, self.admin.consent(v.name))
            except GsvdError as exc:
                entry.fail(exc, self.hide)
                await self._fail(context, exc, "LoadVoice")

    async def UnloadVoice(self, request, context):
        with self.audit.event("unload_voice", self._caller(context), self.hide, call="UnloadVoice",
                              voice=getattr(request, "name", "")) as entry:
            await self._authorize(context, admin=True, request=request, entry=entry)
            try:
                await asyncio.to_thread(self.admin.unload_voice, request.name, entry)
                return pb.UnloadVoiceResponse()
            except GsvdError as exc:
                entry.fail(exc, self.hide)
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
    for setting in ("voices_dir", "runs_dir"):
        if value := getattr(config, setting):
            folder = Path(value).expanduser()
            pairs += [(str(folder.absolute()), f"<{setting}>"), (str(folder.resolve()), f"<{setting}>")]
    return tuple(pairs)

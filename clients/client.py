"""Python clients for gsvd.v1 (sync and asyncio). No torch: numpy and the stubs only.

    from gsvd.clients import Client
    with Client("127.0.0.1:50051") as c:
        pcm, rate = c.synthesize("你好", voice="alice")           # float32 numpy array
        for chunk in c.stream("Hello.", voice="alice"): ...       # AudioOut per chunk

    async with AsyncClient("127.0.0.1:50051") as c:
        async with c.stream("Hello.", voice="alice") as audio:   # leaving the block cancels the call
            async for chunk in audio: ...

Every stream says it is AI-generated: `stream()` returns an `AudioStream` whose `label` (a
`gsvd.engine.provenance.label.AiLabel`: voice, generator, produce id, watermark) is set once the first
message has come; write files with it (`gsvd.wavio.write_wav(..., label=stream.label)`). Zero-shot
uploads carry the speaker's consent record (`upload_voice(..., consent={"speaker", "use", "date",
"recorded_by"})`).

Only idempotent calls (ListVoices, GetVoice, GetServerInfo) are retried on UNAVAILABLE. Both clients
take the same TLS options: `tls_ca` (root certificates, PEM; turns TLS on), `client_cert` and
`client_key` (mutual TLS), `server_name` (the name the server's certificate is checked against, when
it differs from the host in `address`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import numpy as np

from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

if TYPE_CHECKING:
    from gsvd.engine.provenance.label import AiLabel

_ENC = {"s16": pb.PCM_S16LE, "f32": pb.PCM_F32LE}
_CONSENT_KEYS = ("speaker", "use", "date", "recorded_by", "statement")


@dataclass
class AudioOut:
    pcm: np.ndarray  # float32 mono
    sample_rate: int
    sequence: int
    offset: int
    is_final: bool
    text: str
    envelope: list[float]
    timings: list[tuple[str, float, float]]  # (word, start s, end s) estimated, on a sentence's last chunk


def options(**kw) -> pb.SynthesisOptions:
    return pb.SynthesisOptions(**{k: v for k, v in kw.items() if v is not None})


def _decode(chunk: pb.AudioChunk, fmt: pb.AudioFormat) -> AudioOut:
    if fmt.encoding == pb.PCM_F32LE:
        pcm = np.frombuffer(chunk.audio, dtype="<f4").astype(np.float32)
    else:
        pcm = np.frombuffer(chunk.audio, dtype="<i2").astype(np.float32) / 32767.0
    return AudioOut(pcm, fmt.sample_rate_hz, chunk.sequence, chunk.offset_samples, chunk.is_final, chunk.text,
                    list(chunk.envelope), [(t.text, t.start_s, t.end_s) for t in chunk.timings])


def label_of(fmt: pb.AudioFormat) -> AiLabel | None:
    """The stream's AI-generated label from its first message (None from a server that sends none)."""
    if not fmt.HasField("label"):
        return None
    from gsvd.engine.provenance.label import AiLabel  # numpy and the stdlib only

    lab = fmt.label
    return AiLabel(voice=lab.voice, generator=lab.generator, created=lab.created, producer=lab.producer,
                   produce_id=lab.produce_id, watermark=lab.watermark, statement=lab.statement)


def consent_record(consent: Mapping[str, str] | pb.ConsentRecord) -> pb.ConsentRecord:
    """A consent record for an upload: speaker, use, date (YYYY-MM-DD), recorded_by, optional statement."""
    if isinstance(consent, pb.ConsentRecord):
        return consent
    unknown = set(consent) - set(_CONSENT_KEYS)
    if unknown:
        raise ValueError(f"unknown consent fields: {', '.join(sorted(unknown))} (use {', '.join(_CONSENT_KEYS)})")
    return pb.ConsentRecord(**{k: str(v) for k, v in consent.items()})


def _channel_args(max_mb: int) -> list[tuple[str, int | str]]:
    return [("grpc.max_receive_message_length", max_mb << 20), ("grpc.max_send_message_length", max_mb << 20)]


@dataclass(frozen=True)
class Tls:
    """TLS settings of a client channel (see the module docstring); no `ca`: plain text."""

    ca: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = None
    server_name: str | None = None

    def channel(self, address: str, args: list[tuple[str, int | str]], aio: bool):
        kind = grpc.aio if aio else grpc
        if self.ca is None:
            if self.client_cert or self.client_key or self.server_name:
                raise ValueError("client_cert, client_key and server_name need tls_ca (TLS)")
            return kind.insecure_channel(address, options=args)
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("mutual TLS needs both client_cert and client_key")
        creds = grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.client_key,
                                             certificate_chain=self.client_cert)
        if self.server_name:
            args = [*args, ("grpc.ssl_target_name_override", self.server_name)]
        return kind.secure_channel(address, creds, options=args)


class Client:
    def __init__(self, address: str = "127.0.0.1:50051", token: str | None = None, *, tls_ca: bytes | None = None,
                 client_cert: bytes | None = None, client_key: bytes | None = None, server_name: str | None = None,
                 max_message_mb: int = 16, retries: int = 3) -> None:
        tls = Tls(tls_ca, client_cert, client_key, server_name)
        self.channel = tls.channel(address, _channel_args(max_message_mb), aio=False)
        self.stub = pbg.SynthesizerStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.retries = retries

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _idempotent(self, method, request, timeout: float):
        for attempt in range(self.retries + 1):
            try:
                return method(request, metadata=self.metadata, timeout=timeout)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    # synthesis ---------------------------------------------------------------

    def stream(self, text: str, voice: str, *, encoding: str = "s16", sample_rate: int = 0, envelope: bool = False,
               timeout: float | None = 120, **opts) -> AudioStream:
        req = pb.SynthesizeRequest(text=text, voice=voice, options=options(**opts),
                                   output=pb.OutputConfig(encoding=_ENC[encoding], sample_rate_hz=sample_rate,
                                                          mouth_envelope=envelope))
        return AudioStream(self.stub.Synthesize(req, metadata=self.metadata, timeout=timeout))

    def stream_text(self, pieces: Iterable[str], voice: str, *, encoding: str = "s16", sample_rate: int = 0,
                    timeout: float | None = 300, **opts) -> AudioStream:
        def requests():
            yield pb.StreamingSynthesizeRequest(config=pb.StreamingConfig(
                voice=voice, options=options(**opts),
                output=pb.OutputConfig(encoding=_ENC[encoding], sample_rate_hz=sample_rate)))
            for piece in pieces:
                yield pb.StreamingSynthesizeRequest(input=pb.TextInput(text=piece))

        return AudioStream(self.stub.StreamingSynthesize(requests(), metadata=self.metadata, timeout=timeout))

    def synthesize(self, text: str, voice: str, **kw) -> tuple[np.ndarray, int]:
        chunks = list(self.stream(text, voice, **kw))
        rate = chunks[0].sample_rate if chunks else 32000
        return (np.concatenate([c.pcm for c in chunks]) if chunks else np.zeros(0, np.float32)), rate

    # voices ------------------------------------------------------------------

    def voices(self, timeout: float = 10) -> list[pb.Voice]:
        return list(self._idempotent(self.stub.ListVoices, pb.ListVoicesRequest(), timeout).voices)

    def voice(self, name: str, timeout: float = 10) -> pb.Voice:
        return self._idempotent(self.stub.GetVoice, pb.GetVoiceRequest(name=name), timeout)

    def info(self, timeout: float = 10) -> pb.ServerInfo:
        return self._idempotent(self.stub.GetServerInfo, pb.GetServerInfoRequest(), timeout)

    def load_voice(self, bundle_path: str, name: str = "", timeout: float = 120, *, replace: bool = False) -> pb.Voice:
        """Load a bundle on the server; a loaded voice of the same name is swapped only with `replace`."""
        return self.stub.LoadVoice(pb.LoadVoiceRequest(name=name, bundle_path=bundle_path, replace=replace),
                                   metadata=self.metadata, timeout=timeout)

    def upload_voice(self, name: str, base_voice: str, audio: np.ndarray, sample_rate: int, transcript: str,
                     language: str = "auto", timeout: float = 120, *,
                     consent: Mapping[str, str] | pb.ConsentRecord, replace: bool = False) -> pb.Voice:
        """A zero-shot voice from a 3-10 s clip; `consent`: the speaker's record (see `consent_record`)."""
        up = pb.ReferenceUpload(base_voice=base_voice, audio=np.asarray(audio, "<f4").tobytes(), encoding=pb.PCM_F32LE,
                                sample_rate_hz=sample_rate, transcript=transcript, language=language,
                                consent=consent_record(consent))
        return self.stub.LoadVoice(pb.LoadVoiceRequest(name=name, reference=up, replace=replace),
                                   metadata=self.metadata, timeout=timeout)

    def unload_voice(self, name: str, timeout: float = 30) -> None:
        self.stub.UnloadVoice(pb.UnloadVoiceRequest(name=name), metadata=self.metadata, timeout=timeout)


class AudioStream:
    """The audio of one call as `AudioOut` chunks (iterate it); `format` and `label` (the AI-generated label,
    `label_of`) are set once the first message has come -- before the first chunk is handed out."""

    def __init__(self, responses) -> None:
        self._responses = responses  # grpc's response iterator (also the call: cancel())
        self.format: pb.AudioFormat | None = None
        self.label: AiLabel | None = None

    def __iter__(self) -> AudioStream:
        return self

    def __next__(self) -> AudioOut:
        while True:
            resp = next(self._responses)  # StopIteration at the end of the call
            if resp.WhichOneof("event") == "start":
                self.format, self.label = resp.start, label_of(resp.start)
            elif self.format is not None:
                return _decode(resp.audio, self.format)

    def cancel(self) -> None:
        """Stop the call (the server frees its slot)."""
        self._responses.cancel()


class AsyncClient:
    """asyncio twin of Client for the streaming calls and voice listing.

    `stream` and `stream_text` return an `AsyncAudioStream`: leaving its `async with` block, `aclose()`,
    cancelling the task that reads it, or dropping it cancels the call, so the server stops at once."""

    def __init__(self, address: str = "127.0.0.1:50051", token: str | None = None, *, tls_ca: bytes | None = None,
                 client_cert: bytes | None = None, client_key: bytes | None = None, server_name: str | None = None,
                 max_message_mb: int = 16) -> None:
        tls = Tls(tls_ca, client_cert, client_key, server_name)
        self.channel = tls.channel(address, _channel_args(max_message_mb), aio=True)
        self.stub = pbg.SynthesizerStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def stream(self, text: str, voice: str, *, encoding: str = "s16", sample_rate: int = 0, envelope: bool = False,
               timeout: float | None = 120, **opts) -> AsyncAudioStream:
        req = pb.SynthesizeRequest(text=text, voice=voice, options=options(**opts),
                                   output=pb.OutputConfig(encoding=_ENC[encoding], sample_rate_hz=sample_rate,
                                                          mouth_envelope=envelope))
        return AsyncAudioStream(self.stub.Synthesize(req, metadata=self.metadata, timeout=timeout))

    def stream_text(self, pieces: AsyncIterable[str] | Iterable[str], voice: str, *, encoding: str = "s16",
                    sample_rate: int = 0, timeout: float | None = 300, **opts) -> AsyncAudioStream:
        async def requests():
            yield pb.StreamingSynthesizeRequest(config=pb.StreamingConfig(
                voice=voice, options=options(**opts),
                output=pb.OutputConfig(encoding=_ENC[encoding], sample_rate_hz=sample_rate)))
            if isinstance(pieces, AsyncIterable):
                async for piece in pieces:
                    yield pb.StreamingSynthesizeRequest(input=pb.TextInput(text=piece))
            else:
                for piece in pieces:
                    yield pb.StreamingSynthesizeRequest(input=pb.TextInput(text=piece))

        return AsyncAudioStream(self.stub.StreamingSynthesize(requests(), metadata=self.metadata, timeout=timeout))

    async def voices(self, timeout: float = 10) -> list[pb.Voice]:
        resp = await self.stub.ListVoices(pb.ListVoicesRequest(), metadata=self.metadata, timeout=timeout)
        return list(resp.voices)

    async def info(self, timeout: float = 10) -> pb.ServerInfo:
        return await self.stub.GetServerInfo(pb.GetServerInfoRequest(), metadata=self.metadata, timeout=timeout)


class AsyncAudioStream:
    """The audio of one call, as `AudioOut` chunks (`async for`). The call is cancelled on the server when
    the stream is left early: `async with` exit, `aclose()`, a cancelled reader task, or the stream dropped
    unfinished (`break` out of `async for`: this object holds no reference cycle, so that happens at once,
    while grpc's call object would wait for the garbage collector)."""

    def __init__(self, call) -> None:
        self._call = call  # grpc.aio UnaryStreamCall / StreamStreamCall
        self._fmt: pb.AudioFormat | None = None
        self.label: AiLabel | None = None  # the AI-generated label, once the first message has come
        self._closed = False

    def __aiter__(self) -> AsyncAudioStream:
        return self

    async def __anext__(self) -> AudioOut:
        if self._closed:
            raise StopAsyncIteration
        try:
            while True:
                resp = await self._call.read()
                if resp is grpc.aio.EOF:
                    raise StopAsyncIteration
                if resp.WhichOneof("event") == "start":
                    self._fmt, self.label = resp.start, label_of(resp.start)
                elif self._fmt is not None:
                    return _decode(resp.audio, self._fmt)
        except asyncio.CancelledError:
            self._call.cancel()
            raise

    async def aclose(self) -> None:
        """Stop: cancel the call if it is still running (the server frees its slot)."""
        self._closed = True
        self._call.cancel()

    async def __aenter__(self) -> AsyncAudioStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not self._closed:
            self._call.cancel()

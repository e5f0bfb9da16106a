"""Python clients for gsvd.v1 (sync and asyncio). No torch: numpy and the stubs only.

    from gsvd.clients import Client
    with Client("127.0.0.1:50051") as c:
        pcm, rate = c.synthesize("你好", voice="alice")           # float32 numpy array
        for chunk in c.stream("Hello.", voice="alice"): ...       # AudioOut per chunk

Only idempotent calls (ListVoices, GetVoice, GetServerInfo) are retried on UNAVAILABLE.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

import grpc
import numpy as np

from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

_ENC = {"s16": pb.PCM_S16LE, "f32": pb.PCM_F32LE}


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


def _channel_args(max_mb: int) -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", max_mb << 20), ("grpc.max_send_message_length", max_mb << 20)]


def _credentials(tls_ca: bytes | None, cert: bytes | None, key: bytes | None):
    return grpc.ssl_channel_credentials(root_certificates=tls_ca, private_key=key, certificate_chain=cert)


class Client:
    def __init__(self, address: str = "127.0.0.1:50051", token: str | None = None, *, tls_ca: bytes | None = None,
                 client_cert: bytes | None = None, client_key: bytes | None = None, max_message_mb: int = 16,
                 retries: int = 3) -> None:
        args = _channel_args(max_message_mb)
        if tls_ca is not None:
            self.channel = grpc.secure_channel(address, _credentials(tls_ca, client_cert, client_key), options=args)
        else:
            self.channel = grpc.insecure_channel(address, options=args)
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
               timeout: float | None = 120, **opts) -> Iterator[AudioOut]:
        req = pb.SynthesizeRequest(text=text, voice=voice, options=options(**opts),
                                   output=pb.OutputConfig(encoding=_ENC[encoding], sample_rate_hz=sample_rate,
                                                          mouth_envelope=envelope))
        return _audio(self.stub.Synthesize(req, metadata=self.metadata, timeout=timeout))

    def stream_text(self, pieces: Iterable[str], voice: str, *, encoding: str = "s16", sample_rate: int = 0,
                    timeout: float | None = 300, **opts) -> Iterator[AudioOut]:
        def requests():
            yield pb.StreamingSynthesizeRequest(config=pb.StreamingConfig(
                voice=voice, options=options(**opts),
                output=pb.OutputConfig(encoding=_ENC[encoding], sample_rate_hz=sample_rate)))
            for piece in pieces:
                yield pb.StreamingSynthesizeRequest(input=pb.TextInput(text=piece))

        return _audio(self.stub.StreamingSynthesize(requests(), metadata=self.metadata, timeout=timeout))

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
                     language: str = "auto", timeout: float = 120, *, replace: bool = False) -> pb.Voice:
        up = pb.ReferenceUpload(base_voice=base_voice, audio=np.asarray(audio, "<f4").tobytes(), encoding=pb.PCM_F32LE,
                                sample_rate_hz=sample_rate, transcript=transcript, language=language)
        return self.stub.LoadVoice(pb.LoadVoiceRequest(name=name, reference=up, replace=replace),
                                   metadata=self.metadata, timeout=timeout)

    def unload_voice(self, name: str, timeout: float = 30) -> None:
        self.stub.UnloadVoice(pb.UnloadVoiceRequest(name=name), metadata=self.metadata, timeout=timeout)


def _audio(responses) -> Iterator[AudioOut]:
    fmt = None
    for resp in responses:
        if resp.WhichOneof("event") == "start":
            fmt = resp.start
        elif fmt is not None:
            yield _decode(resp.audio, fmt)


class AsyncClient:
    """asyncio twin of Client for the streaming calls and voice listing."""

    def __init__(self, address: str = "127.0.0.1:50051", token: str | None = None, max_message_mb: int = 16) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=_channel_args(max_message_mb))
        self.stub = pbg.SynthesizerStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    async def close(self) -> None:
        await self.channel.close()

    async def stream(self, text: str, voice: str, *, encoding: str = "s16", sample_rate: int = 0,
                     timeout: float | None = 120, **opts) -> AsyncIterator[AudioOut]:
        req = pb.SynthesizeRequest(text=text, voice=voice, options=options(**opts),
                                   output=pb.OutputConfig(encoding=_ENC[encoding], sample_rate_hz=sample_rate))
        fmt = None
        async for resp in self.stub.Synthesize(req, metadata=self.metadata, timeout=timeout):
            if resp.WhichOneof("event") == "start":
                fmt = resp.start
            elif fmt is not None:
                yield _decode(resp.audio, fmt)

    async def voices(self) -> list[pb.Voice]:
        resp = await self.stub.ListVoices(pb.ListVoicesRequest(), metadata=self.metadata, timeout=10)
        return list(resp.voices)

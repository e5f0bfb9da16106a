"""Proto <-> engine conversions: options (validated), output encoding, resampling, envelope, voices with their
consent records, labels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from gsvd.engine.errors import InvalidInput
from gsvd.engine.types import SynthesisOptions
from gsvd.v1 import gsvd_pb2 as pb

if TYPE_CHECKING:
    from gsvd.engine.provenance.label import AiLabel

NATIVE_RATE = 32000
ENVELOPE_MS = 20


def options(msg: pb.SynthesisOptions) -> SynthesisOptions:
    """Set fields override defaults; the result is range-checked (InvalidInput names the field)."""
    changes = {}
    for name in ("top_k", "top_p", "temperature", "repetition_penalty", "noise_scale", "speed", "seed", "max_new_tokens"):
        if msg.HasField(name):
            changes[name] = getattr(msg, name)
    if "seed" in changes and changes["seed"] < 0:
        changes.pop("seed")
    for name in ("top_p", "temperature", "repetition_penalty", "noise_scale", "speed"):
        if name in changes:
            changes[name] = round(float(changes[name]), 6)
    changes["language"] = msg.language or "auto"
    changes["split_method"] = msg.split_method or "auto"
    return SynthesisOptions().with_overrides(**changes)


def output(msg: pb.OutputConfig) -> tuple[int, int, bool]:
    if msg.encoding == pb.AUDIO_ENCODING_UNSPECIFIED:
        raise InvalidInput("output.encoding must be PCM_S16LE or PCM_F32LE (UNSPECIFIED is not allowed)", "output.encoding")
    if msg.encoding not in (pb.PCM_S16LE, pb.PCM_F32LE):
        raise InvalidInput(f"output.encoding {msg.encoding} is not supported", "output.encoding")
    rate = msg.sample_rate_hz or NATIVE_RATE
    if not 8000 <= rate <= 192000:
        raise InvalidInput(f"output.sample_rate_hz must be 0 or in [8000, 192000]; got {rate}", "output.sample_rate_hz")
    return msg.encoding, rate, msg.mouth_envelope


class Resampler:
    """Streaming resampler from the native rate (soxr keeps state across chunks)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._rs = None
        if rate != NATIVE_RATE:
            import soxr

            self._rs = soxr.ResampleStream(NATIVE_RATE, rate, 1, dtype="float32", quality="HQ")

    def __call__(self, pcm: np.ndarray, last: bool) -> np.ndarray:
        if self._rs is None:
            return pcm
        return self._rs.resample_chunk(pcm.astype(np.float32), last=last)


def encode(pcm: np.ndarray, encoding: int) -> bytes:
    if encoding == pb.PCM_F32LE:
        return pcm.astype("<f4").tobytes()
    return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def envelope(pcm: np.ndarray, rate: int) -> list[float]:
    hop = max(1, rate * ENVELOPE_MS // 1000)
    n = len(pcm) // hop
    if n == 0:
        return [float(np.sqrt(np.mean(pcm**2)))] if len(pcm) else []
    frames = pcm[: n * hop].reshape(n, hop)
    return np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)).astype(np.float32).tolist()


_CONSENT_FIELDS = ("speaker", "use", "date", "recorded_by", "statement", "recorded_at", "source")


def voice(v, consent: Mapping[str, object] | None = None) -> pb.Voice:
    """A loaded voice with its consent record (VoiceAdmin.consent)."""
    record = pb.ConsentRecord(**{k: str(consent[k]) for k in _CONSENT_FIELDS if consent and consent.get(k)})
    return pb.Voice(name=v.name, version=v.version, model_id=v.model_id, languages=list(v.languages),
                    reference_text=v.reference_text, reference_language=v.reference_language,
                    sample_rate_hz=v.sample_rate, consent=record)


def consent_values(msg: pb.ConsentRecord) -> dict[str, str]:
    """The fields a client sent (the server sets recorded_at and source itself)."""
    return {k: getattr(msg, k) for k in ("speaker", "use", "date", "recorded_by", "statement")}


def label(lab: AiLabel) -> pb.AiLabel:
    return pb.AiLabel(ai_generated=True, voice=lab.voice, generator=lab.generator, created=lab.created,
                      producer=lab.producer, produce_id=lab.produce_id, watermark=lab.watermark,
                      statement=lab.statement)


def upload_audio(up: pb.ReferenceUpload) -> np.ndarray:
    if up.encoding == pb.PCM_S16LE:
        if len(up.audio) % 2:
            raise InvalidInput("reference.audio has an odd number of bytes for PCM_S16LE", "reference.audio")
        return np.frombuffer(up.audio, dtype="<i2").astype(np.float32) / 32768.0
    if up.encoding == pb.PCM_F32LE:
        if len(up.audio) % 4:
            raise InvalidInput("reference.audio length is not a multiple of 4 for PCM_F32LE", "reference.audio")
        return np.frombuffer(up.audio, dtype="<f4").astype(np.float32)
    raise InvalidInput("reference.encoding must be PCM_S16LE or PCM_F32LE", "reference.encoding")

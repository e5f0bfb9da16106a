"""Reference ("prompt") preprocessing exactly as upstream inference does it.

- HuBERT path: mono at 16 kHz (soxr HQ, as librosa.load), 3-10 s, plus 9600 zero
  samples, HuBERT last hidden state, SoVITS ssl_proj + quantizer -> prompt tokens.
- Timbre path: mono at 32 kHz (windowed-sinc, as torchaudio's Resample), peak
  limited, linear spectrogram [1025, Tr].
- v2Pro/v2ProPlus: the 32 kHz audio resampled to 16 kHz (sinc) -> fbank -> ERes2NetV2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsvd.engine.audio import (
    decode_audio,
    linear_spectrogram,
    peak_limit,
    resample_sinc,
    resample_soxr,
    to_mono,
)
from gsvd.engine.errors import InvalidInput

MIN_SECONDS, MAX_SECONDS = 3.0, 10.0
TAIL = 9600  # zero samples appended at 16 kHz (upstream: 0.3 s x 32000)


@dataclass
class ReferenceFeatures:
    prompt_tokens: torch.Tensor  # [T25] long
    spec: torch.Tensor  # [1025, Tr] float32
    sv_emb: torch.Tensor | None  # [20480] float32 (v2Pro) or None
    duration: float


def _load(audio: str | Path | np.ndarray, sample_rate: int | None) -> tuple[np.ndarray, int]:
    if isinstance(audio, (str, Path)):
        data, rate = decode_audio(audio)
        return to_mono(data), rate
    if sample_rate is None or sample_rate < 8000:
        raise InvalidInput("reference audio needs a sample rate of at least 8000 Hz", "sample_rate")
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim > 2 or arr.size == 0 or not np.isfinite(arr).all():
        raise InvalidInput("reference audio must be a non-empty finite mono or [channels, samples] array", "audio")
    return to_mono(arr), int(sample_rate)


def prepare_reference(
    audio: str | Path | np.ndarray,
    sample_rate: int | None,
    *,
    sovits: torch.nn.Module,
    hubert,
    sv=None,
) -> ReferenceFeatures:
    wav, rate = _load(audio, sample_rate)
    wav16 = resample_soxr(wav, rate, 16000)
    seconds = len(wav16) / 16000
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise InvalidInput(f"reference audio must be 3-10 s long; got {seconds:.2f} s", "audio")
    param = next(sovits.parameters())
    with torch.inference_mode():
        ssl_in = torch.from_numpy(np.concatenate([wav16, np.zeros(TAIL, np.float32)]))
        ssl = hubert.encode(ssl_in).to(param.device, param.dtype)
        tokens = sovits.extract_latent(ssl)[0, 0].long().cpu()
        wav32 = peak_limit(resample_sinc(torch.from_numpy(wav)[None], rate, 32000))
        spec = linear_spectrogram(wav32)[0].float()
        sv_emb = None
        if sv is not None:
            sv_emb = sv.embed(resample_sinc(wav32, 32000, 16000)[0]).reshape(-1).float()
    return ReferenceFeatures(tokens, spec, sv_emb, seconds)

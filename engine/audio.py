"""Audio I/O and the signal processing upstream GPT-SoVITS applies to references.

- decoding files to float32 (soundfile; PyAV for containers soundfile can't read),
- resampling: soxr HQ (what librosa.load uses, upstream's 16 kHz HuBERT path) and a
  windowed-sinc resampler equal to torchaudio's default `Resample` (upstream's
  32 kHz spectrogram path),
- the linear spectrogram of the timbre encoder,
- atomic 16-bit WAV writing (gsvd.wavio).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gsvd.engine.audio_io import decode_audio, to_mono  # noqa: F401  (re-exported)
from gsvd.wavio import write_wav  # noqa: F401  (re-exported: engine code writes WAVs through here)

N_FFT = 2048
HOP = 640
WIN = 2048


def resample_soxr(audio: np.ndarray, orig: int, new: int) -> np.ndarray:
    """High-quality resampling as librosa.load does (soxr 'HQ')."""
    if orig == new:
        return audio.astype(np.float32)
    import soxr

    return soxr.resample(audio, orig, new, quality="HQ").astype(np.float32)


def sinc_kernel(orig: int, new: int, width_zeros: int = 6, rolloff: float = 0.99):
    """Hann-windowed sinc kernels [new', 1, K] (torchaudio's default) and the padding width."""
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    base = min(orig, new) * rolloff
    width = math.ceil(width_zeros * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx
    t = (t * base).clamp(-width_zeros, width_zeros)
    window = torch.cos(t * math.pi / width_zeros / 2) ** 2
    t = t * math.pi
    kernels = torch.where(t == 0, torch.tensor(1.0, dtype=torch.float64), t.sin() / t) * window * (base / orig)
    return kernels, width, orig, new


def resample_sinc(x: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """x [..., N] -> [..., ceil(N * new / orig)] (torchaudio.functional.resample, sinc_interp_hann)."""
    if orig == new:
        return x
    kernels, width, o, n = sinc_kernel(orig, new)
    shape = x.shape
    wav = x.reshape(-1, shape[-1])
    length = wav.shape[-1]
    wav = F.pad(wav, (width, width + o))
    out = F.conv1d(wav[:, None], kernels.to(x.dtype), stride=o)
    out = out.transpose(1, 2).reshape(wav.shape[0], -1)
    target = math.ceil(n * length / o)
    return out[..., :target].reshape(*shape[:-1], target)


def linear_spectrogram(wav: torch.Tensor) -> torch.Tensor:
    """32 kHz waveform [B, N] -> magnitude [B, 1025, frames] (reflect pad 704, hann 2048, hop 640)."""
    pad = (N_FFT - HOP) // 2
    y = F.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = torch.hann_window(WIN, dtype=wav.dtype, device=wav.device)
    spec = torch.stft(y, N_FFT, hop_length=HOP, win_length=WIN, window=window, center=False,
                      normalized=False, onesided=True, return_complex=True)
    spec = torch.view_as_real(spec)
    return torch.sqrt(spec.pow(2).sum(-1) + 1e-8)


def peak_limit(wav: torch.Tensor) -> torch.Tensor:
    """Upstream: if the peak exceeds 1, divide by min(2, peak)."""
    peak = wav.abs().max()
    return wav / min(2.0, float(peak)) if peak > 1 else wav


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """A file as mono float32 at `sample_rate` (soxr HQ resampling)."""
    audio, rate = decode_audio(path)
    return resample_soxr(to_mono(audio), rate, sample_rate)

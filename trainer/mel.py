"""Log-mel spectrogram for the SoVITS mel loss, as upstream's s2 config defines it: 32 kHz,
n_fft 2048, hop 640, window 2048 (the engine's linear spectrogram), 128 Slaney-scale mel bands
(0 Hz to Nyquist, Slaney area normalization), log of max(x, 1e-5)."""

from __future__ import annotations

import math

import torch

RATE, N_FFT, N_MELS = 32000, 2048, 128


def _hz_to_mel(f: float) -> float:
    return 3 * f / 200 if f < 1000 else 15 + 27 * math.log(f / 1000) / math.log(6.4)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return torch.where(m < 15, 200 * m / 3, 1000 * torch.exp((m - 15) * math.log(6.4) / 27))


def mel_basis(n_mels: int = N_MELS, rate: int = RATE, n_fft: int = N_FFT, fmin: float = 0.0,
              fmax: float | None = None) -> torch.Tensor:
    """[n_mels, n_fft//2+1] triangular filters (librosa's default Slaney scale and norm)."""
    fmax = fmax or rate / 2
    freqs = torch.linspace(0, rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    pts = _mel_to_hz(torch.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2, dtype=torch.float64))
    lower = (freqs[None] - pts[:-2, None]) / (pts[1:-1] - pts[:-2])[:, None]
    upper = (pts[2:, None] - freqs[None]) / (pts[2:] - pts[1:-1])[:, None]
    fb = torch.clamp(torch.minimum(lower, upper), min=0)
    return (fb * (2.0 / (pts[2:] - pts[:-2]))[:, None]).float()


_BASIS: dict[tuple, torch.Tensor] = {}


def log_mel(wav: torch.Tensor) -> torch.Tensor:
    """wav [B, N] (or [B,1,N]) at 32 kHz -> [B, 128, N/640]."""
    from gsvd.engine.audio import linear_spectrogram

    wav = wav.reshape(wav.shape[0], -1)
    spec = linear_spectrogram(wav.float())
    key = (spec.device, spec.shape[1])
    if key not in _BASIS:
        _BASIS[key] = mel_basis().to(spec.device)
    return torch.log(torch.clamp(_BASIS[key] @ spec, min=1e-5))

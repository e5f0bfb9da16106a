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

from gsvd.engine.errors import InvalidInput
from gsvd.wavio import write_wav  # noqa: F401  (re-exported: engine code writes WAVs through here)

N_FFT = 2048
HOP = 640
WIN = 2048


def decode_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """File -> (float32 [channels, samples], rate). InvalidInput for unreadable or empty files."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"audio file not found: {p}", "audio")
    try:
        import soundfile as sf

        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
        audio = data.T
    except Exception:
        audio, rate = _decode_with_av(p)
    if audio.shape[-1] == 0:
        raise InvalidInput(f"{p} contains no audio samples", "audio")
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


def _decode_with_av(path: Path) -> tuple[np.ndarray, int]:
    try:
        import av
    except ImportError:
        raise InvalidInput(f"cannot decode {path}: install the 'train' extra (PyAV) for this format", "audio") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InvalidInput(f"{path} has no audio stream", "audio")
            stream = container.streams.audio[0]
            frames = [f.to_ndarray().astype(np.float32) for f in container.decode(stream)]
            rate = stream.rate
            layout_planar = stream.format.is_planar if stream.format else True
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"cannot decode {path}: {exc}", "audio") from None
    if not frames:
        raise InvalidInput(f"{path} contains no audio samples", "audio")
    chans = stream.channels or 1
    if layout_planar:
        audio = np.concatenate(frames, axis=1)
    else:
        audio = np.concatenate([f.reshape(-1, chans).T for f in frames], axis=1)
    if np.issubdtype(frames[0].dtype, np.integer) or np.abs(audio).max() > 8:
        audio = audio / 32768.0
    return audio.astype(np.float32), int(rate)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """[C, N] or [N] -> [N] (mean of channels)."""
    return audio if audio.ndim == 1 else audio.mean(axis=0).astype(np.float32)


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

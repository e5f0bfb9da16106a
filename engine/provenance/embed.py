"""The watermark's embedding (`watermark` module doc) in torch: many streams' frames marked in one batch, on the
device their audio is on.

Why torch and not numpy: in the runtime a chunk pass's audio is on the GPU, all rows together. Marking the rows
there costs a few kernels per pass; marking each stream's chunk on the host cost tens of numpy calls per stream,
and with 64 streams those threads held the GIL the scheduler needs (H100, runtime_bench: first audio p50 at
64 streams 85 -> 145 ms with the mark on). `watermark.StreamMarker` calls the same function on the CPU in float64,
so the mark has one implementation; the detector (numpy) does not import this module.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from gsvd.engine.provenance.watermark import BAND_BINS, DELTA, MIN_FRAME_RMS, SHAPE, KeyPattern, hann

_W2 = (0.0625, -0.25, 0.375, -0.25, 0.0625)
"""The spectrum of hann(n)**2 at bins -2..2: windowing a frame twice smooths its spectrum with these taps."""


class DevicePattern:
    """A key's direction ``u`` and the frame window as tensors of one device, dtype and frame length."""

    def __init__(self, pattern: KeyPattern, n: int, device: torch.device, dtype: torch.dtype) -> None:
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.direction = torch.as_tensor(pattern.direction, dtype=cdtype, device=device)
        self.window = torch.as_tensor(hann(n), dtype=dtype, device=device)
        self.n = n
        k = BAND_BINS[1] - BAND_BINS[0]
        self.count = torch.as_tensor([3.0, 4.0] + [5.0] * (k - 4) + [4.0, 3.0], dtype=dtype, device=device)
        """Bins within +-2 of each band bin (`_smooth`)."""
        self.floor = MIN_FRAME_RMS * float(torch.sqrt(torch.sum(self.window.double() ** 2) * n))


_cache: dict[tuple, tuple[KeyPattern, DevicePattern]] = {}
_cache_lock = threading.Lock()


def device_pattern(pattern: KeyPattern, n: int, device: torch.device, dtype: torch.dtype) -> DevicePattern:
    """The `DevicePattern` of ``pattern`` (built once per key, device, dtype and frame length)."""
    key = (id(pattern), n, str(device), dtype)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is None or hit[0] is not pattern:
            if len(_cache) >= 64:
                _cache.clear()
            hit = _cache[key] = (pattern, DevicePattern(pattern, n, device, dtype))
        return hit[1]


def frame_marks(frames: torch.Tensor, offsets: torch.Tensor, live: torch.Tensor | None,
                pattern: DevicePattern) -> torch.Tensor:
    """The mark of each frame: frames ``[F, n]``, each frame's lattice offset ``[F]`` (in units of DELTA: the slot's
    dither plus half its bit), ``live`` ``[F]`` (False: leave the frame unmarked; None: all) -> marks ``[F, n]`` to add.

    The frame's measurement ``p = Re<u, Y>/|Y|`` moves to the nearest lattice point, along ``u`` shaped by the
    frame's smoothed spectrum to the power SHAPE and windowed like the frame; one Newton step corrects for the
    window smoothing the carrier's spectrum. Frames under MIN_FRAME_RMS are left unmarked."""
    lo, hi = BAND_BINS
    u, window = pattern.direction, pattern.window
    spec = _rfft(frames * window)
    band = spec[:, lo:hi]
    p, norm = _measure(band, u)
    target = DELTA * (torch.round(p / DELTA - offsets) + offsets)
    power = band.real**2 + band.imag**2
    shape = (_smooth(power) / pattern.count) ** (SHAPE / 2)
    shape = shape / shape.mean(dim=1, keepdim=True).clamp_min(1e-30)
    carrier = u * shape
    seen = _window_squared(carrier)
    gain = (u.real * seen.real + u.imag * seen.imag).sum(dim=1) / norm.clamp_min(1e-30)
    ok = (norm > pattern.floor) & (gain > 0)
    if live is not None:
        ok = ok & live
    gain = torch.where(ok, gain, torch.ones_like(gain))
    beta = torch.where(ok, (target - p) / gain, torch.zeros_like(p))
    p1, _ = _measure(band + beta[:, None] * seen, u)
    beta = beta + torch.where(ok, (target - p1) / gain, torch.zeros_like(p))  # one Newton step
    full = torch.zeros_like(spec)
    full[:, lo:hi] = carrier
    return beta[:, None] * window * _irfft(full, pattern.n)


def _rfft(x: torch.Tensor) -> torch.Tensor:
    """rfft over the last axis: cuFFT on CUDA; numpy's pocketfft on the CPU (torch's CPU FFT of 320 points took
    ~100x longer here)."""
    if x.is_cuda:
        return torch.fft.rfft(x, dim=-1)
    return torch.from_numpy(np.fft.rfft(x.numpy(), axis=-1).astype(_complex_of(x.dtype), copy=False))


def _irfft(spec: torch.Tensor, n: int) -> torch.Tensor:
    if spec.is_cuda:
        return torch.fft.irfft(spec, n=n, dim=-1)
    return torch.from_numpy(np.fft.irfft(spec.numpy(), n=n, axis=-1).astype(_real_of(spec.dtype), copy=False))


def _complex_of(dtype: torch.dtype) -> type:
    return np.complex128 if dtype == torch.float64 else np.complex64


def _real_of(dtype: torch.dtype) -> type:
    return np.float64 if dtype == torch.complex128 else np.float32


def _measure(band: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norm = torch.sqrt((band.real**2 + band.imag**2).sum(dim=-1))
    dot = (u.real * band.real + u.imag * band.imag).sum(dim=-1)
    return dot / norm.clamp_min(1e-30), norm


def _smooth(power: torch.Tensor) -> torch.Tensor:
    """The sum over +-2 bins (over the bins that exist at the band's edges: divide by `DevicePattern.count`)."""
    k = power.shape[-1]
    padded = torch.nn.functional.pad(power, (2, 2))
    return sum(padded[:, d : d + k] for d in range(5))


def _window_squared(band: torch.Tensor) -> torch.Tensor:
    """The band part of rfft(hann**2 * irfft(spectrum)) for a spectrum that is ``band`` inside the band and zero
    outside it (the band stays 2 bins clear of DC and Nyquist)."""
    k = band.shape[-1]
    padded = torch.nn.functional.pad(band, (2, 2))
    return sum(c * padded[:, d : d + k] for d, c in enumerate(_W2))

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
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch

from gsvd.engine.provenance.watermark import BAND_BINS, DELTA, MIN_FRAME_RMS, SHAPE, KeyPattern, hann

if TYPE_CHECKING:
    from gsvd.engine.runtime.cuda_graphs import GraphPool

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


FRAME_BUCKETS = (64, 256, 1024, 4096)
"""Frame counts the marks are captured for (a pass's frames are padded up to one; more go in slices of the last)."""


class GraphedMarks:
    """`frame_marks` of one key, replayed from CUDA graphs of `FRAME_BUCKETS` frames (a few launches a pass instead of
    ~85) on one audio lane's graph pool; a bucket not captured yet runs eagerly. Off CUDA (no pool) always eager."""

    def __init__(self, pattern: KeyPattern, n: int, device: torch.device, pool: GraphPool | None) -> None:
        from gsvd.engine.runtime.cuda_graphs import GraphSet

        self.pattern = pattern
        self.device_pattern = device_pattern(pattern, n, device, torch.float32)
        self.device, self.n = device, n
        self.graphs = GraphSet(self._marks, self._static, pool=pool)

    def capture_order(self) -> tuple[int, ...]:
        return FRAME_BUCKETS

    def capture(self, key: int) -> bool:
        return self.graphs.capture(key)

    def add(self, audio: torch.Tensor, idx: torch.Tensor, offsets: torch.Tensor, live: torch.Tensor) -> None:
        """Add the marks of the frames ``audio.gather(1, idx)`` (``idx`` [R, F * n]: each row's F frames) in place;
        ``offsets``/``live`` [R * F] as `frame_marks` takes them. Rows go in blocks of at most the largest bucket."""
        n_rows, frames = idx.shape[0], idx.shape[1] // self.n
        per = max(1, FRAME_BUCKETS[-1] // frames)
        for r0 in range(0, n_rows, per):
            r1 = min(n_rows, r0 + per)
            rows_idx = idx[r0:r1]
            part = (audio[r0:r1].gather(1, rows_idx).view(-1, self.n), offsets[r0 * frames : r1 * frames],
                    live[r0 * frames : r1 * frames])
            count = part[0].shape[0]

            def take(out: torch.Tensor, r0: int = r0, r1: int = r1, rows_idx: torch.Tensor = rows_idx,
                     count: int = count) -> bool:
                audio[r0:r1].scatter_add_(1, rows_idx, out[:count].view(r1 - r0, -1))
                return True

            key = next((b for b in FRAME_BUCKETS if b >= count), None)
            if key is None or self.graphs.pool is None or self.graphs.run(key, partial(_fill, part), take) is None:
                take(frame_marks(*part, self.device_pattern))

    def _static(self, key: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.zeros(key, self.n, device=self.device), torch.zeros(key, device=self.device),
                torch.zeros(key, dtype=torch.bool, device=self.device))

    def _marks(self, frames: torch.Tensor, offsets: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        return frame_marks(frames, offsets, live, self.device_pattern)


def _fill(part: tuple[torch.Tensor, torch.Tensor, torch.Tensor], frames: torch.Tensor, offsets: torch.Tensor,
          live: torch.Tensor) -> None:
    count = part[0].shape[0]
    frames[:count].copy_(part[0])
    offsets[:count].copy_(part[1])
    live[:count].copy_(part[2])
    live[count:].fill_(False)

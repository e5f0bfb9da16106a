"""Integrated loudness (ITU-R BS.1770-4: K-weighting, 400 ms blocks, absolute and relative gates)
and normalization to a target with a peak ceiling. Pure numpy/scipy."""

from __future__ import annotations

import math

import numpy as np

ABS_GATE, REL_GATE = -70.0, -10.0
PEAK_CEILING_DB = -1.0


def _k_weighting(rate: int):
    """The two biquads of BS.1770 (shelf + high-pass), designed for `rate` (bilinear transform)."""
    # high-shelf: f0 1681.97 Hz, gain 3.99984 dB, Q 0.70717
    f0, gain, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = ([(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0],
             [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    # high-pass: f0 38.14 Hz, Q 0.50033
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    hp = ([1.0, -2.0, 1.0], [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    return shelf, hp


def integrated_lufs(x: np.ndarray, rate: int) -> float:
    """Mono float signal -> integrated loudness in LUFS (-inf for silence or < 400 ms)."""
    from scipy.signal import lfilter

    x = np.asarray(x, dtype=np.float64)
    block, hop = int(0.4 * rate), int(0.1 * rate)
    if x.size < block:
        return float("-inf")
    (b1, a1), (b2, a2) = _k_weighting(rate)
    y = lfilter(b2, a2, lfilter(b1, a1, x))
    starts = np.arange(0, y.size - block + 1, hop)
    csum = np.concatenate([[0.0], np.cumsum(y * y)])
    power = (csum[starts + block] - csum[starts]) / block
    loud = -0.691 + 10 * np.log10(np.maximum(power, 1e-20))
    kept = power[loud > ABS_GATE]
    if kept.size == 0:
        return float("-inf")
    rel = -0.691 + 10 * math.log10(kept.mean()) + REL_GATE
    kept = power[(loud > ABS_GATE) & (loud > rel)]
    return float(-0.691 + 10 * math.log10(kept.mean()))


def normalize(x: np.ndarray, rate: int, target_lufs: float = -23.0) -> tuple[np.ndarray, float]:
    """Scale to `target_lufs`, but never so far that the peak exceeds -1 dBFS -> (signal, gain dB)."""
    lufs = integrated_lufs(x, rate)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not math.isfinite(lufs) or peak <= 0:
        return x.astype(np.float32), 0.0
    gain_db = target_lufs - lufs
    ceiling = PEAK_CEILING_DB - 20 * math.log10(peak)
    gain_db = min(gain_db, ceiling)
    return (x * 10 ** (gain_db / 20)).astype(np.float32), float(gain_db)

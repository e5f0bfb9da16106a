"""Per-clip audio measures for selection (numpy/scipy only, on the 16 kHz clip).

- snr_db: speech level (90th percentile of 20 ms frame energies) over the noise floor (10th).
- clipping: fraction of samples in flat runs (>= 2 equal samples) at the clip's peak level.
- music: 0..1, how ragged (tonal) the noise floor under the speech is: music leaves spectral
  lines in the per-bin 20th-percentile spectrum, room noise and breath leave a smooth one.
- speech_ratio: VAD speech seconds / clip seconds (given by the segment stage).
- rate: syllable-like envelope peaks per second (300-3000 Hz band, 10 ms frames).
"""

from __future__ import annotations

import numpy as np

RATE = 16000
FRAME = 320  # 20 ms
N_FFT = 512


def _frames(x: np.ndarray, n: int = FRAME, hop: int = FRAME) -> np.ndarray:
    if x.size < n:
        x = np.pad(x, (0, n - x.size))
    count = 1 + (x.size - n) // hop
    idx = np.arange(n)[None, :] + hop * np.arange(count)[:, None]
    return x[idx]


def _power_spec(x: np.ndarray) -> np.ndarray:
    fr = _frames(x, N_FFT, FRAME) * np.hanning(N_FFT)
    return np.abs(np.fft.rfft(fr, axis=1)) ** 2 + 1e-12  # [frames, 257]


def _mel_matrix(n_mels: int = 16) -> np.ndarray:
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    pts = inv(np.linspace(mel(80), mel(7600), n_mels + 2))
    bins = np.fft.rfftfreq(N_FFT, 1 / RATE)
    fb = np.zeros((n_mels, bins.size))
    for i in range(n_mels):
        lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return fb


_MEL = _mel_matrix()


def measure(wav16: np.ndarray, speech_seconds: float | None = None) -> dict:
    x = np.asarray(wav16, np.float64)
    seconds = x.size / RATE
    energy_db = 10 * np.log10((_frames(x) ** 2).mean(axis=1) + 1e-10)
    floor, level = np.percentile(energy_db, 10), np.percentile(energy_db, 90)
    spec = _power_spec(x)
    return {
        "snr_db": float(level - floor),
        "clipping": _clipping(x),
        "music": _music(spec),
        "speech_ratio": float(min(1.0, (speech_seconds if speech_seconds is not None else seconds) / max(seconds, 1e-6))),
        "rate": _rate(spec, seconds),
    }


def _clipping(x: np.ndarray) -> float:
    peak = np.abs(x).max() if x.size else 0.0
    if peak <= 0:
        return 0.0
    hot = np.abs(x) >= 0.995 * peak
    flat = hot[1:] & hot[:-1] & (np.abs(np.diff(x)) < 1e-6 * max(peak, 1e-6))
    return float(flat.sum() / x.size)


def _music(spec: np.ndarray) -> float:
    """Tonal lines in the noise floor: the per-bin 20th-percentile spectrum (what stays under the speech)
    is smooth for room noise and breath, ragged for music. 0 (smooth) .. 1 (ragged)."""
    floor = np.log(np.percentile(spec[:, 3:200], 20, axis=0))  # ~90-6200 Hz
    smooth = np.convolve(floor, np.ones(9) / 9, mode="same")
    rough = float(np.mean(np.abs(floor - smooth)[5:-5]))
    return float(np.clip((rough - 0.15) / 0.4, 0.0, 1.0))


def _rate(spec: np.ndarray, seconds: float) -> float:
    from scipy.signal import find_peaks

    env = spec[:, 10:96].sum(axis=1)  # 300-3000 Hz
    env_db = 10 * np.log10(env + 1e-12)
    env_db = np.convolve(env_db, np.ones(3) / 3, mode="same")
    floor = np.percentile(env_db, 20)
    peaks, _ = find_peaks(env_db, prominence=4.0, height=floor + 10.0, distance=4)
    return float(len(peaks) / max(seconds, 1e-6))

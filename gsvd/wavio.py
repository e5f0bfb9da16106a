"""16-bit mono WAV files: atomic writing, and the level measures a listener would notice
(stdlib + numpy only; shared by the engine, the demo and the clients)."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsvd.atomic import atomic_writer

SPEECH_BAND_HZ = (100.0, 4000.0)


def write_wav(path: str | Path, pcm: np.ndarray, rate: int) -> Path:
    """Write `pcm` (float, [-1, 1]) to `path` atomically, with the umask's ordinary permissions."""
    dest = Path(path).expanduser()
    data = (np.clip(np.asarray(pcm, np.float32), -1, 1) * 32767).astype("<i2").tobytes()
    with atomic_writer(dest) as raw, wave.open(raw, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(data)
    return dest


@dataclass(frozen=True)
class Level:
    """What a listener would notice first about a signal (levels in dB relative to full scale)."""

    rms_dbfs: float  # level of the signal around its mean
    dc_dbfs: float  # the mean (an offset: clicks at start and stop, lost headroom)
    speech_band_dbfs: float  # level of the part in SPEECH_BAND_HZ
    speech_band_share: float  # fraction of the signal's energy in SPEECH_BAND_HZ
    active_share: float  # fraction of 50 ms frames within 40 dB of the loudest frame (not silence)

    def summary(self) -> str:
        return (f"level {self.rms_dbfs:.1f} dBFS, {self.speech_band_share:.0%} of it at 100-4000 Hz, "
                f"DC offset {self.dc_dbfs:.0f} dBFS")


def _db(power: float) -> float:
    return float(10 * np.log10(max(power, 1e-20)))


def measure_level(pcm: np.ndarray, rate: int) -> Level:
    x = np.asarray(pcm, np.float64).reshape(-1)
    if x.size == 0:
        return Level(-200.0, -200.0, -200.0, 0.0, 0.0)
    dc = float(x.mean())
    ac = x - dc
    power = float(np.mean(ac**2))
    spectrum = np.abs(np.fft.rfft(ac)) ** 2
    freqs = np.fft.rfftfreq(ac.size, 1.0 / rate)
    band = (freqs >= SPEECH_BAND_HZ[0]) & (freqs <= SPEECH_BAND_HZ[1])
    share = float(spectrum[band].sum() / spectrum.sum()) if spectrum.sum() > 0 else 0.0
    frame = max(1, int(0.05 * rate))
    frames = ac[: ac.size // frame * frame].reshape(-1, frame) if ac.size >= frame else ac[None]
    frame_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    active = float(np.mean(frame_db > frame_db.max() - 40.0)) if power > 0 else 0.0
    return Level(_db(power), _db(dc * dc), _db(power * share), share, active)

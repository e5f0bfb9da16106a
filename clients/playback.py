"""Playback while streaming: a ring buffer fed by the network, drained by a sounddevice callback.

The callback must never block or allocate much: it copies what the ring holds and
pads with silence on underrun (counted). sounddevice is imported only here, with
a clear message when PortAudio is missing.
"""

from __future__ import annotations

import threading

import numpy as np


class PlaybackUnavailable(RuntimeError):
    pass


class RingBuffer:
    """Single-producer/single-consumer float32 ring of fixed capacity."""

    def __init__(self, capacity: int) -> None:
        self.buf = np.zeros(capacity, np.float32)
        self.read_pos = self.write_pos = 0
        self.underruns = 0
        self.lock = threading.Lock()
        self.space = threading.Condition(self.lock)

    @property
    def available(self) -> int:
        return self.write_pos - self.read_pos

    def write(self, data: np.ndarray, timeout: float | None = None) -> None:
        """Blocks while the ring is full (back-pressure to the network reader)."""
        data = np.asarray(data, np.float32)
        cap = len(self.buf)
        i = 0
        with self.space:
            while i < len(data):
                free = cap - self.available
                if free == 0:
                    if not self.space.wait(timeout):
                        raise TimeoutError("playback stalled")
                    continue
                n = min(free, len(data) - i)
                idx = (self.write_pos + np.arange(n)) % cap
                self.buf[idx] = data[i : i + n]
                self.write_pos += n
                i += n

    def read_into(self, out: np.ndarray) -> int:
        """Fill `out` (1-D) from the ring; zero-fills what is missing. Returns samples copied."""
        with self.lock:
            n = min(len(out), self.available)
            idx = (self.read_pos + np.arange(n)) % len(self.buf)
            out[:n] = self.buf[idx]
            self.read_pos += n
            self.space.notify_all()
        if n < len(out):
            out[n:] = 0.0
            self.underruns += 1
        return n


def _sounddevice():
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        raise PlaybackUnavailable(
            f"audio playback is not available ({exc}). Install PortAudio (Debian/Ubuntu: apt-get install libportaudio2) "
            "and the client extra (pip install 'gsvd[client]'), or write a file with --out."
        ) from None
    return sd


def check_output(name: str | None = None) -> None:
    """PlaybackUnavailable unless PortAudio loads and the output device `name` exists: `say --play`
    asks before it connects, so a missing library is not reported after the synthesis started."""
    _sounddevice()
    find_device(name)


def output_devices() -> list[dict]:
    sd = _sounddevice()
    return [dict(d, index=i) for i, d in enumerate(sd.query_devices()) if d["max_output_channels"] > 0]


def find_device(name: str | None) -> int | None:
    """Index of the first output device whose name contains every word of `name` (case-insensitive)."""
    if not name:
        return None
    words = name.lower().split()
    for d in output_devices():
        if all(w in d["name"].lower() for w in words):
            return d["index"]
    raise PlaybackUnavailable(f"no output device matches {name!r}; see `gsvd devices`")


def resample(pcm: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst:
        return pcm
    import soxr

    return soxr.resample(pcm, src, dst, quality="HQ").astype(np.float32)


class Player:
    """Plays float32 chunks as they arrive, resampled to the device's native rate."""

    def __init__(self, source_rate: int, device: str | None = None, buffer_seconds: float = 4.0) -> None:
        sd = _sounddevice()
        self.device = find_device(device)
        info = sd.query_devices(self.device, "output")
        self.rate = int(info["default_samplerate"])
        self.source_rate = source_rate
        self.ring = RingBuffer(int(self.rate * buffer_seconds))
        self.stream = sd.OutputStream(samplerate=self.rate, channels=1, dtype="float32", device=self.device,
                                      latency="low", callback=self._callback)
        self.started = False

    def _callback(self, outdata, frames, time, status) -> None:  # real-time thread
        self.ring.read_into(outdata[:, 0])

    def feed(self, pcm: np.ndarray) -> None:
        self.ring.write(resample(pcm, self.source_rate, self.rate), timeout=30)
        if not self.started and self.ring.available > self.rate // 10:
            self.stream.start()
            self.started = True

    def finish(self) -> None:
        import time as _t

        if not self.started:
            self.stream.start()
            self.started = True
        while self.ring.available > 0:
            _t.sleep(0.02)
        _t.sleep(0.1)
        self.stream.stop()
        self.stream.close()

"""An inaudible, keyed, streaming audio watermark and its detector (numpy only).

Why our own: the offline watermarking libraries that work well (AudioSeal, WavMark) download their
weights at run time, which this project cannot do. This is classical spread spectrum, built for a
streaming engine:

- The mark is ``y[n] = x[n] + g[n] * S[n mod P]``. ``S`` is one period (``PERIOD_S`` = 1.5 s) of a
  keyed, band-limited (400-7000 Hz: speech covers it, and it survives resampling to 16 kHz) noise
  pattern: a sync carrier that every marked file shares under a key, plus a data carrier whose sign
  follows the coded payload bit of each ~14 ms symbol (``ecc``: CRC-16 + rate-1/2 convolutional code,
  108 symbols). ``S`` is defined in continuous time, so a pattern built at 32 kHz and one built at
  16 kHz are samples of the same signal.
- ``g[n]`` follows the host's level causally: the level of the 20 ms frame before, interpolated over
  the frame, ``strength_db`` below it (forward masking hides the mark where speech just was; there is
  none in silence). Frames sit on a grid of absolute sample positions, and a frame's level is only
  read once the frame is complete, so the output is a function of the absolute position, the payload
  and the samples already seen: the same bits whether a stream is marked in chunks of any size or
  whole, with no look-ahead and no added latency.
- The detector resamples to 16 kHz, whitens each 32 ms frame (dividing by the host's own magnitude,
  which removes most of the speech's interference with the pattern), weights frames by how far they
  rise above the noise floor, folds the excerpt onto one period (every period carries the same
  pattern, so they add up coherently), finds the offset from the sync carrier (circular correlation at
  a quarter-sample resolution), reads the 108 soft symbols there and decodes them. A payload is
  reported only when the CRC matches (1 in 65,536 by chance), the sync peak stands ``SYNC_Z_MIN`` robust
  standard deviations above the other offsets and at most ``MAX_SYMBOL_ERRORS`` of the 108 soft symbols
  disagree with the decoded code word. Any excerpt of 3 s holds two periods.

The key seeds the pattern; ``PUBLIC_KEY`` (the default) lets anyone check gsvd's output, a private
key makes the mark readable only by its holder. What it does not survive: a speed change (the
pattern's chips must line up to a fraction of a sample over the excerpt), see the benchmark.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import threading
from dataclasses import dataclass

import numpy as np

from gsvd.engine.provenance import ecc

PUBLIC_KEY = "gsvd-public-watermark-v1"
PERIOD_S = 1.5
BAND_HZ = (400.0, 7000.0)
BAND_EDGES_HZ = (400.0, 700.0, 1000.0, 1400.0, 2000.0, 2800.0, 3800.0, 5200.0, 7000.0)
"""Sub-bands in which the mark follows the host's level separately (about 2-4 Bark each)."""
MIN_SNR_DB = 35.5
SHAPE = 0.5
"""However loud ``strength`` asks, the mark's power stays this far below the host's whole power (frame)."""
SYNC_SHARE = 0.1  # share of the mark's power in the sync carrier
EDGE_S = 0.001  # cosine taper at each end of a data symbol
FRAME_S = 0.02  # level-following frame
DETECT_RATE = 16000
SYNC_Z_MIN = 4.0
MAX_SYMBOL_ERRORS = 30
MIN_EXCERPT_S = 3.0

DAEMON_BITS, VOICE_BITS, TIME_BITS = 8, 12, 12
PAYLOAD_BITS = DAEMON_BITS + VOICE_BITS + TIME_BITS
MESSAGE_BITS = PAYLOAD_BITS + ecc.CRC_BITS
SYMBOLS = ecc.coded_length(MESSAGE_BITS)
EPOCH = _dt.date(2025, 1, 1)
"""Time buckets count days from here (modulo 4096, about 11 years)."""


# ----------------------------------------------------------------------------- payload


@dataclass(frozen=True)
class Payload:
    """What a mark carries: which daemon made the audio, for which voice, on which day."""

    daemon_id: int
    """0..255, set in the daemon's configuration."""
    voice_hash: int
    """0..4095, ``voice_hash(name)`` of the voice's name."""
    time_bucket: int
    """0..4095, days since ``EPOCH`` modulo 4096."""

    def __post_init__(self) -> None:
        for name, bits in (("daemon_id", DAEMON_BITS), ("voice_hash", VOICE_BITS), ("time_bucket", TIME_BITS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
                raise ValueError(f"{name} must be an integer in [0, {(1 << bits) - 1}]; got {value!r}")

    @classmethod
    def for_voice(cls, daemon_id: int, voice: str, when: _dt.datetime | None = None) -> Payload:
        return cls(daemon_id, voice_hash(voice), time_bucket(when))

    def to_bits(self) -> np.ndarray:
        return np.concatenate([
            ecc.int_to_bits(self.daemon_id, DAEMON_BITS),
            ecc.int_to_bits(self.voice_hash, VOICE_BITS),
            ecc.int_to_bits(self.time_bucket, TIME_BITS),
        ])

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> Payload:
        d = ecc.bits_to_int(bits[:DAEMON_BITS])
        v = ecc.bits_to_int(bits[DAEMON_BITS : DAEMON_BITS + VOICE_BITS])
        t = ecc.bits_to_int(bits[DAEMON_BITS + VOICE_BITS :])
        return cls(d, v, t)

    def day(self, near: _dt.date | None = None) -> _dt.date:
        """The calendar day of ``time_bucket``: the one of its 4096-day cycle nearest before ``near``."""
        near = near or _dt.datetime.now(_dt.UTC).date()
        cycles = ((near - EPOCH).days - self.time_bucket) // (1 << TIME_BITS)
        return EPOCH + _dt.timedelta(days=self.time_bucket + max(cycles, 0) * (1 << TIME_BITS))


def voice_hash(name: str) -> int:
    """12-bit hash of a voice name (sha256), as carried in the payload."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "big") >> (32 - VOICE_BITS)


def time_bucket(when: _dt.datetime | None = None) -> int:
    when = when or _dt.datetime.now(_dt.UTC)
    return (when.date() - EPOCH).days % (1 << TIME_BITS)


# ----------------------------------------------------------------------------- pattern


def _seed(key: str, label: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{key}\x00{label}".encode()).digest()[:8], "little")


def _check_rate(rate: int) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 2 * BAND_HZ[1] + 1000:
        raise ValueError(f"sample rate must be an integer of at least {int(2 * BAND_HZ[1] + 1000)} Hz; got {rate!r}")
    if (rate * PERIOD_S) % 1:
        raise ValueError(f"sample rate {rate} Hz does not give a whole number of samples per {PERIOD_S} s period")
    return rate


def carrier(key: str, label: str, rate: int) -> np.ndarray:
    """One period of a keyed band-limited noise carrier at ``rate`` (unit RMS, float64).

    Its Fourier coefficients depend on the key only, so every rate samples the same continuous signal."""
    n = int(rate * PERIOD_S)
    lo, hi = math.ceil(BAND_HZ[0] * PERIOD_S), math.floor(BAND_HZ[1] * PERIOD_S)
    rng = np.random.Generator(np.random.PCG64(_seed(key, label)))
    coef = rng.standard_normal(hi - lo + 1) + 1j * rng.standard_normal(hi - lo + 1)
    spec = np.zeros(n // 2 + 1, dtype=np.complex128)
    spec[lo : hi + 1] = coef
    x = np.fft.irfft(spec, n=n)
    return x / np.sqrt(np.mean(x**2))


def symbol_index(rate: int) -> tuple[np.ndarray, np.ndarray]:
    """For each sample of a period at ``rate``: its data symbol and its taper weight (0 at symbol edges)."""
    n = int(rate * PERIOD_S)
    t = np.arange(n) / rate
    ts = PERIOD_S / SYMBOLS
    j = np.minimum((np.arange(n) * SYMBOLS) // n, SYMBOLS - 1)
    u = t - j * ts
    edge = np.minimum(u, ts - u)
    taper = np.where(edge >= EDGE_S, 1.0, 0.5 - 0.5 * np.cos(np.pi * np.clip(edge, 0, EDGE_S) / EDGE_S))
    return j, taper


@dataclass(frozen=True)
class KeyPattern:
    """The key's carriers at one rate (payload-independent)."""

    rate: int
    sync: np.ndarray
    data: np.ndarray
    symbol: np.ndarray
    taper: np.ndarray
    starts: np.ndarray
    """First sample of each symbol (for np.add.reduceat)."""

    @classmethod
    def build(cls, key: str, rate: int) -> KeyPattern:
        _check_rate(rate)
        symbol, taper = symbol_index(rate)
        starts = np.searchsorted(symbol, np.arange(SYMBOLS))
        return cls(rate, carrier(key, "sync", rate), carrier(key, "data", rate), symbol, taper, starts)

    def signal(self, payload: Payload) -> np.ndarray:
        """One period of the mark for ``payload`` (unit RMS, float32)."""
        code = ecc.conv_encode(ecc.with_crc(payload.to_bits()))
        data = self.data * self.taper * (1.0 - 2.0 * code[self.symbol])
        data /= np.sqrt(np.mean(data**2))
        s = math.sqrt(1.0 - SYNC_SHARE) * data + math.sqrt(SYNC_SHARE) * self.sync
        return (s / np.sqrt(np.mean(s**2))).astype(np.float32)


# ----------------------------------------------------------------------------- embedding


@dataclass(frozen=True)
class WatermarkConfig:
    """How the engine marks its output; built once at the edge (CLI options, daemon config)."""

    key: str = PUBLIC_KEY
    daemon_id: int = 0
    strength_db: float = -30.0
    """Level of the mark in each sub-band relative to the host's level there in the frame before (dB), up to
    MIN_SNR_DB below the host's whole level."""

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError("watermark key must be a non-empty string")
        Payload(self.daemon_id, 0, 0)  # range check
        if not -60.0 <= float(self.strength_db) <= -15.0:
            raise ValueError(f"watermark strength must be in [-60, -15] dB; got {self.strength_db}")


def describe(config: WatermarkConfig, voice: str, when: _dt.datetime | None = None) -> str:
    """A one-line description of the mark a stream of ``voice`` gets (for labels)."""
    p = Payload.for_voice(config.daemon_id, voice, when)
    key = "public" if config.key == PUBLIC_KEY else "private"
    return f"gsvd-ss1 key={key} daemon={p.daemon_id} voice=0x{p.voice_hash:03x} day={p.day().isoformat()}"


class Watermarker:
    """Marks streams under one configuration; thread-safe, patterns cached per (rate, payload)."""

    def __init__(self, config: WatermarkConfig | None = None) -> None:
        self.config = config or WatermarkConfig()
        self._keys: dict[int, KeyPattern] = {}
        self._signals: dict[tuple[int, Payload], np.ndarray] = {}
        self._lock = threading.Lock()

    def payload(self, voice: str, when: _dt.datetime | None = None) -> Payload:
        return Payload.for_voice(self.config.daemon_id, voice, when)

    def stream(self, voice: str, rate: int, when: _dt.datetime | None = None) -> StreamMarker:
        """A marker for one stream of ``voice`` at ``rate``, starting at sample 0."""
        return StreamMarker(self.signal(self.payload(voice, when), rate), rate, self.config.strength_db)

    def signal(self, payload: Payload, rate: int) -> np.ndarray:
        with self._lock:
            cached = self._signals.get((rate, payload))
            if cached is None:
                pattern = self._keys.get(rate)
                if pattern is None:
                    pattern = self._keys[rate] = KeyPattern.build(self.config.key, rate)
                if len(self._signals) >= 256:
                    self._signals.clear()
                cached = self._signals[(rate, payload)] = pattern.signal(payload)
            return cached

    def mark(self, pcm: np.ndarray, rate: int, voice: str, when: _dt.datetime | None = None) -> np.ndarray:
        """A whole utterance, marked (the same samples as marking it chunk by chunk)."""
        return self.stream(voice, rate, when).apply(pcm)


class StreamMarker:
    """Adds the mark to one stream's audio, chunk by chunk, in order.

    ``apply(pcm, offset)`` returns the marked chunk (float32, same length). ``offset`` (the chunk's first
    sample within the stream, as in ``AudioChunk.offset``) must follow on from the previous chunk.

    Per sub-band b the mark is ``g_b[n] * S_b[n mod P]``: ``S_b`` is the part of the period's pattern in
    that band, ``g_b`` ramps over each frame to ``strength`` times the host's level in band b during the
    frame before (so the mark has the host's spectral envelope, a frame late)."""

    def __init__(self, signal: np.ndarray, rate: int, strength_db: float) -> None:
        self._bands = band_split(np.asarray(signal, dtype=np.float64), rate)  # [B, P] float32
        self._period = self._bands.shape[1]
        self._frame = round(FRAME_S * rate)
        self._ramp = np.arange(1, self._frame + 1, dtype=np.float32) / np.float32(self._frame)
        self._window = np.hanning(self._frame + 1)[:-1]
        self._starts = np.array([lo for lo, _ in _band_bins(self._frame, rate)] + [_band_bins(self._frame, rate)[-1][1]])
        self._rms = np.maximum(np.sqrt(np.mean(self._bands.astype(np.float64) ** 2, axis=1)), 1e-12)
        self._strength = 10.0 ** (strength_db / 10.0)
        self._cap = 10.0 ** (-MIN_SNR_DB / 10.0)
        self._buf = np.zeros(self._frame, dtype=np.float32)
        self._fill = 0
        self._gain = np.zeros(len(self._bands), dtype=np.float32)
        self._mark = np.zeros(self._frame, dtype=np.float32)  # the current frame's mark (none in frame 0)
        self.position = 0

    def apply(self, pcm: np.ndarray, offset: int | None = None) -> np.ndarray:
        if offset is not None and offset != self.position:
            raise ValueError(f"watermark: chunk at sample {offset}, expected {self.position} (chunks must follow on)")
        x = np.asarray(pcm, dtype=np.float32).reshape(-1)
        out = np.empty_like(x)
        i = 0
        while i < len(x):
            take = min(self._frame - self._fill, len(x) - i)
            seg = x[i : i + take]
            out[i : i + take] = seg + self._mark[self._fill : self._fill + take]
            self._buf[self._fill : self._fill + take] = seg
            self._fill += take
            self.position += take
            i += take
            if self._fill == self._frame:
                self._next_frame()
        return out

    def _next_frame(self) -> None:
        """The frame just completed sets the gains the next frame ramps to; that frame's mark is made now,
        whole, so it is the same whatever sizes the chunks have."""
        frame = self._buf.astype(np.float64)
        spec = np.abs(np.fft.rfft(frame * self._window)) ** 2
        total = float(spec.sum())
        share = np.add.reduceat(spec, self._starts)[:-1] / total if total > 0 else np.zeros(len(self._gain))
        power = _mark_power(share, self._strength, self._cap)
        target = (np.sqrt(float(np.dot(frame, frame)) / self._frame * power) / self._rms).astype(np.float32)
        at = np.arange(self.position, self.position + self._frame) % self._period
        pattern = self._bands[:, at] if at[0] + self._frame > self._period else self._bands[:, at[0] : at[0] + self._frame]
        self._mark = self._gain @ pattern + self._ramp * ((target - self._gain) @ pattern)
        self._gain = target
        self._fill = 0


def _mark_power(share: np.ndarray, strength: float, cap: float) -> np.ndarray:
    """Per band, the mark's power as a fraction of the host's frame power: ``strength`` times the host's
    power within the bands, spread over them in proportion to the host's power to the SHAPE, scaled down
    so that the sum stays under ``cap``."""
    inband = share.sum(axis=-1, keepdims=True)
    weighted = share**SHAPE
    power = strength * inband * weighted / np.maximum(weighted.sum(axis=-1, keepdims=True), 1e-30)
    total = power.sum(axis=-1, keepdims=True)
    return power * np.minimum(1.0, cap / np.maximum(total, 1e-30))


def band_split(signal: np.ndarray, rate: int) -> np.ndarray:
    """A periodic signal split into its BAND_EDGES_HZ sub-bands ([B, P] float32; they sum to it)."""
    n = signal.shape[-1]
    spec = np.fft.rfft(signal)
    freqs = np.arange(len(spec)) * rate / n
    out = []
    for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:]):
        keep = (freqs >= lo) & (freqs < hi) if hi < BAND_EDGES_HZ[-1] else (freqs >= lo) & (freqs <= hi)
        out.append(np.fft.irfft(np.where(keep, spec, 0), n=n))
    return np.asarray(out, dtype=np.float32)


def _band_bins(n_fft: int, rate: int) -> list[tuple[int, int]]:
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    return [(int(np.searchsorted(freqs, lo)), int(np.searchsorted(freqs, hi))) for lo, hi in
            zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])]


# ----------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class Detection:
    """The outcome of reading one excerpt under one key."""

    found: bool
    payload: Payload | None
    confidence: float
    """Share of the 108 coded symbols that agree with the decoded payload's code word, mapped to [0, 1]
    (1: all agree; unmarked audio decodes to about 0.3-0.5); 0 when nothing was found."""
    sync_z: float
    """Height of the sync peak in robust standard deviations of the other offsets."""
    symbol_errors: int
    """Coded symbols whose sign disagrees with the decoded code word (of SYMBOLS)."""
    start_s: float = 0.0
    """Where in the audio the excerpt that gave this result starts."""


@dataclass(frozen=True)
class Folded:
    """An excerpt prepared for decoding (key-independent): whitened, weighted, folded onto one period."""

    spectrum: np.ndarray
    weight: float
    """Summed frame weights: 0 means nothing in the excerpt could carry a mark."""


class Detector:
    """Reads marks under one key; patterns built once. Thread-safe after construction."""

    def __init__(self, key: str = PUBLIC_KEY) -> None:
        self.key = key
        self.pattern = KeyPattern.build(key, DETECT_RATE)
        self._sync_spec = np.fft.rfft(self.pattern.sync)
        self._weights = self.pattern.data * self.pattern.taper

    def detect(self, audio: np.ndarray, rate: int) -> Detection:
        """Read one excerpt (mono float, any rate of at least 16 kHz worth of band; >= 3 s is reliable)."""
        return self.decode(prepare(audio, rate))

    def decode(self, folded: Folded) -> Detection:
        if folded.weight <= 0:
            return Detection(False, None, 0.0, 0.0, SYMBOLS)
        period = len(self.pattern.sync)
        cross = np.conj(folded.spectrum) * self._sync_spec
        up = 4
        corr = np.fft.irfft(cross, n=up * period)
        peak = int(np.argmax(corr))
        spread = 1.4826 * np.median(np.abs(corr - np.median(corr)))
        sync_z = float((corr[peak] - np.median(corr)) / spread) if spread > 0 else 0.0
        tau = peak / up
        k = np.arange(len(folded.spectrum))
        aligned = np.fft.irfft(folded.spectrum * np.exp(-2j * np.pi * k * tau / period), n=period)
        soft = np.add.reduceat(aligned * self._weights, self.pattern.starts)
        bits = ecc.viterbi_decode(soft, MESSAGE_BITS)
        code = ecc.conv_encode(bits)
        errors = int(np.sum((soft < 0) != (code == 1)))
        message = ecc.check_crc(bits)
        if message is None or sync_z < SYNC_Z_MIN or errors > MAX_SYMBOL_ERRORS:
            return Detection(False, None, 0.0, sync_z, errors)
        confidence = max(0.0, 1.0 - 2.0 * errors / SYMBOLS)
        return Detection(True, Payload.from_bits(message), confidence, sync_z, errors)


def prepare(audio: np.ndarray, rate: int) -> Folded:
    """Resample to DETECT_RATE, whiten, weight frames by their level over the noise floor, fold."""
    x = _to_detect_rate(np.asarray(audio, dtype=np.float64).reshape(-1), rate)
    period = int(DETECT_RATE * PERIOD_S)
    white, weight = _whiten(x)
    reps = -(-len(white) // period)
    padded = np.zeros(reps * period)
    padded[: len(white)] = white
    fold = padded.reshape(reps, period).sum(axis=0)
    return Folded(np.fft.rfft(fold), weight)


def _to_detect_rate(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == DETECT_RATE:
        return x
    import soxr

    return soxr.resample(x, rate, DETECT_RATE, quality="HQ")


_N_FFT, _HOP = 512, 128
_SMOOTH = 2
_DETECT_STRENGTH_DB = -30.0  # the shaping the detector assumes (only the ratio across bands matters)


def _whiten(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Each frame divided by its own (slightly smoothed) magnitude within the band, then weighted by
    how far its level rises above the excerpt's noise floor; overlap-added back to a signal."""
    n = len(x)
    if n < _N_FFT:
        return np.zeros(n), 0.0
    win = np.hanning(_N_FFT + 1)[:-1]
    pad = np.concatenate([np.zeros(_N_FFT), x, np.zeros(_N_FFT)])
    frames = np.lib.stride_tricks.sliding_window_view(pad, _N_FFT)[::_HOP] * win
    spec = np.fft.rfft(frames, axis=1)
    power = np.abs(spec) ** 2
    smooth = power.copy()
    for shift in range(1, _SMOOTH + 1):
        smooth += np.roll(power, shift, axis=1) + np.roll(power, -shift, axis=1)
    smooth /= 2 * _SMOOTH + 1
    energy = power.sum(axis=1)
    floor = max(float(np.percentile(energy, 10)), 1e-20)
    top = float(np.percentile(energy, 90))
    level = np.maximum(energy - floor, 0.0)
    level[energy < top * 1e-5] = 0.0
    # the mark's expected amplitude per bin (the host's level shaped as the embedder shapes it) over the
    # interference's power in that bin: the matched filter for a mark hidden under the host (and noise)
    bins = _band_bins(_N_FFT, DETECT_RATE)
    share = np.stack([power[:, lo:hi].sum(axis=1) for lo, hi in bins], axis=1) / np.maximum(energy, 1e-30)[:, None]
    mark_power = level[:, None] * _mark_power(share, 10.0 ** (_DETECT_STRENGTH_DB / 10.0), 10.0 ** (-MIN_SNR_DB / 10.0))
    out_spec = np.zeros_like(spec)
    for b, (lo, hi) in enumerate(bins):
        amp = np.sqrt(mark_power[:, b] / (hi - lo))
        out_spec[:, lo:hi] = spec[:, lo:hi] * (amp[:, None] / (smooth[:, lo:hi] + 1e-30))
    weight = np.sqrt(level / (top + 1e-30))
    frames_out = np.fft.irfft(out_spec, n=_N_FFT, axis=1) * win
    y = np.zeros(len(pad))
    idx = np.arange(frames_out.shape[0]) * _HOP
    for i, start in enumerate(idx):
        y[start : start + _N_FFT] += frames_out[i]
    return y[_N_FFT : _N_FFT + n], float(weight.sum())

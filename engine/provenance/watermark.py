"""An inaudible, keyed, streaming audio watermark: the scheme, its keys and payloads, and the stream marker. The
embedding's arithmetic is in ``embed`` (torch: the runtime marks a chunk pass's rows on their device, see
``runtime.chunking.join_rows``); the detector, in ``detector``, is numpy only and does not import it.

Why our own: the offline watermarking libraries that work well (AudioSeal, WavMark) download their
weights at run time, which this project cannot do. Why this design (informed embedding, not plain spread
spectrum): a mark 35 dB under the speech is 35 dB under the host's own correlation with any spreading
sequence, and 3 s of audio do not hold enough processing gain to read 108 coded symbols through that.
Quantization index modulation (QIM) does not suffer from the host at all: the embedder *moves* a keyed
measurement of each frame onto a lattice point that encodes the bit, so only the channel's noise is left
for the detector to overcome.

- Audio is cut into 10 ms frames on a grid of absolute stream positions (``FRAME_S``). Each frame's
  measurement is ``p = Re<u, Y> / |Y|``: ``Y`` is the frame's Hann-windowed spectrum in 300-7000 Hz
  (bins of 100 Hz at any rate, so 32 kHz marking and 16 kHz reading see the same numbers), ``u`` a keyed
  unit vector of random phases. ``p`` does not change with gain and survives resampling; codecs and
  noise only perturb it.
- Frame ``f`` carries the coded symbol of slot ``f mod SLOTS`` (a 1.08 s period, one slot per coded
  symbol in a keyed order; any 3 s hold every symbol 2-3 times): ``p`` is moved to the nearest point of
  ``DELTA * (Z + dither + bit/2)``. The dither is keyed per slot: it is what lets the detector find where
  in the period an excerpt starts.
- The move is made along ``u``, shaped by the frame's own spectrum to the power ``SHAPE`` (the mark sits
  under the speech, where it is masked) and windowed like the frame, so the mark has no edges. Its
  level follows from ``DELTA``: about 36 dB under each frame's band energy; silence gets none.
- Each frame is marked from its own samples only, so marking is a function of the absolute position,
  the payload and the frame: bit-identical whether a stream is marked in chunks or whole, as long as
  chunks end on the 10 ms grid (the engine's always do: it emits multiples of 320 samples at 32 kHz, a
  test checks it). A frame that a chunk boundary splits is left unmarked (its first part was already
  out); no look-ahead and no added latency either way.

The key seeds ``u``, the dithers and the slot order; ``PUBLIC_KEY`` (the default) lets anyone check
gsvd's output, a private key makes the mark readable only by its holder. What it survives only in part:
a speed change (the frame grid and the phases of ``u`` must line up to a fraction of a sample, so the
detector reads the few common changes it tries, not any), see the detector and the benchmark.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import threading
from dataclasses import dataclass, replace

import numpy as np

from gsvd.engine.provenance import ecc

PUBLIC_KEY = "gsvd-public-watermark-v1"
SCHEME = "gsvd-qim1"
FRAME_S = 0.01
BIN_HZ = 1.0 / FRAME_S
BAND_BINS = (3, 71)
"""DFT bins (of ``BIN_HZ``) the measurement reads: 300-7000 Hz."""
SLOTS = 108
"""Frames per period (1.08 s): one per coded symbol."""
DELTA = 0.049
"""QIM step of the normalized measurement: sets the mark's level (about -36 dB of each frame's band)."""
SHAPE = 0.25
"""The mark's amplitude in each bin follows the host's (smoothed) power there to this power."""
MIN_FRAME_RMS = 1e-6
"""Frames quieter than this (about -120 dBFS) are not marked."""

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

    def code(self) -> np.ndarray:
        """The coded symbols (0/1) of this payload: CRC-16, then the rate-1/2 convolutional code."""
        return ecc.conv_encode(ecc.with_crc(self.to_bits()))


def voice_hash(name: str) -> int:
    """12-bit hash of a voice name (sha256), as carried in the payload."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "big") >> (32 - VOICE_BITS)


def time_bucket(when: _dt.datetime | None = None) -> int:
    when = when or _dt.datetime.now(_dt.UTC)
    return (when.date() - EPOCH).days % (1 << TIME_BITS)


# ----------------------------------------------------------------------------- key


def _rng(key: str, label: str) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(f"{key}\x00{label}".encode()).digest()[:8], "little")
    return np.random.Generator(np.random.PCG64(seed))


@dataclass(frozen=True)
class KeyPattern:
    """What a key fixes (payload- and rate-independent)."""

    direction: np.ndarray
    """``u``: unit-norm complex weights of the band bins (random phases, equal magnitudes)."""
    dither: np.ndarray
    """Per slot, the lattice offset in units of DELTA ([0, 1))."""
    symbol: np.ndarray
    """Per slot, the coded symbol it carries (a keyed order, so a pause does not erase neighbouring symbols)."""

    @classmethod
    def build(cls, key: str) -> KeyPattern:
        if not isinstance(key, str) or not key:
            raise ValueError("watermark key must be a non-empty string")
        k = BAND_BINS[1] - BAND_BINS[0]
        direction = np.exp(2j * np.pi * _rng(key, "direction").random(k)) / np.sqrt(k)
        dither = _rng(key, "dither").random(SLOTS)
        symbol = _rng(key, "slots").permutation(SLOTS) % SYMBOLS  # SLOTS == SYMBOLS: each symbol once
        return cls(direction, dither, symbol)

    def slot_bits(self, payload: Payload) -> np.ndarray:
        """The bit each slot carries for ``payload`` (0/1, one per slot)."""
        return payload.code()[self.symbol]


def hann(n: int) -> np.ndarray:
    """The periodic Hann window: the 32 kHz frame's window sampled at every other point is the 16 kHz one."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def frame_length(rate: int) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 16000 or rate % round(BIN_HZ):
        raise ValueError(f"sample rate must be an integer multiple of {round(BIN_HZ)} Hz of at least 16000; got {rate!r}")
    return round(rate * FRAME_S)


def measure(band: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The normalized measurement ``Re<u, Y>/|Y|`` of band spectra ``[..., K]`` (0 for silent frames)."""
    norm = np.sqrt(np.sum(band.real**2 + band.imag**2, axis=-1))
    dot = np.sum(direction.real * band.real + direction.imag * band.imag, axis=-1)
    return dot / np.maximum(norm, 1e-30)


# ----------------------------------------------------------------------------- embedding


@dataclass(frozen=True)
class WatermarkConfig:
    """How the engine marks its output; built once at the edge (CLI options, daemon config).

    The mark's level is part of the scheme (``DELTA``), not a knob: the detector must know it."""

    key: str = PUBLIC_KEY
    daemon_id: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError("watermark key must be a non-empty string")
        Payload(self.daemon_id, 0, 0)  # range check


def describe(config: WatermarkConfig, voice: str, when: _dt.datetime | None = None) -> str:
    """A one-line description of the mark a stream of ``voice`` gets (for labels)."""
    p = Payload.for_voice(config.daemon_id, voice, when)
    key = "public" if config.key == PUBLIC_KEY else "private"
    return f"{SCHEME} key={key} daemon={p.daemon_id} voice=0x{p.voice_hash:03x} day={p.day().isoformat()}"


@dataclass(frozen=True, eq=False)
class StreamMark:
    """What marking one request's audio where it is made needs (`runtime.chunking.join_rows`): the key's
    pattern, each slot's lattice offset for the stream's payload, and the stream position of the request's first
    sample (a stream of several sentences is one stream: its frames sit on one 10 ms grid)."""

    pattern: KeyPattern
    offsets: np.ndarray
    """Per slot, where the lattice of the slot's bit sits (dither + bit/2, in units of DELTA, in [0, 1))."""
    start: int = 0

    def at(self, start: int) -> StreamMark:
        return replace(self, start=start)


class Watermarker:
    """Marks streams under one configuration; thread-safe (the key's pattern is built once)."""

    def __init__(self, config: WatermarkConfig | None = None) -> None:
        self.config = config or WatermarkConfig()
        self.pattern = KeyPattern.build(self.config.key)
        self._slot_bits: dict[Payload, np.ndarray] = {}
        self._lock = threading.Lock()

    def payload(self, voice: str, when: _dt.datetime | None = None) -> Payload:
        return Payload.for_voice(self.config.daemon_id, voice, when)

    def stream(self, voice: str, rate: int, when: _dt.datetime | None = None) -> StreamMarker:
        """A marker for one stream of ``voice`` at ``rate``, starting at sample 0."""
        return StreamMarker(self.pattern, self.slot_bits(self.payload(voice, when)), rate)

    def stream_mark(self, voice: str, when: _dt.datetime | None = None) -> StreamMark:
        """The mark of one stream of ``voice``, starting at sample 0, for the runtime to add."""
        return StreamMark(self.pattern, lattice_offsets(self.pattern, self.slot_bits(self.payload(voice, when))))

    def slot_bits(self, payload: Payload) -> np.ndarray:
        with self._lock:
            bits = self._slot_bits.get(payload)
            if bits is None:
                if len(self._slot_bits) >= 256:
                    self._slot_bits.clear()
                bits = self._slot_bits[payload] = self.pattern.slot_bits(payload)
            return bits

    def mark(self, pcm: np.ndarray, rate: int, voice: str, when: _dt.datetime | None = None) -> np.ndarray:
        """A whole utterance, marked (the same samples as marking it in chunks that end on the 10 ms grid)."""
        return self.stream(voice, rate, when).apply(pcm)


class StreamMarker:
    """Adds the mark to one stream's audio, chunk by chunk, in order.

    ``apply(pcm, offset)`` returns the marked chunk (float32, same length). ``offset`` (the chunk's first
    sample within the stream, as in ``AudioChunk.offset``) must follow on from the previous chunk. Every
    complete 10 ms frame of the chunk is marked; a frame cut by the chunk's end is passed through unmarked,
    and so is the rest of it in the next chunk."""

    def __init__(self, pattern: KeyPattern, slot_bits: np.ndarray, rate: int) -> None:
        self._n = frame_length(rate)
        self._pattern = pattern
        self._offsets = lattice_offsets(pattern, slot_bits)
        self._skip = 0  # samples of a split frame still to pass through
        self.position = 0

    def apply(self, pcm: np.ndarray, offset: int | None = None) -> np.ndarray:
        if offset is not None and offset != self.position:
            raise ValueError(f"watermark: chunk at sample {offset}, expected {self.position} (chunks must follow on)")
        x = np.asarray(pcm, dtype=np.float32).reshape(-1)
        out = x.copy()
        start = min(self._skip, len(x))
        self._skip -= start
        whole = (len(x) - start) // self._n
        if whole:
            first = (self.position + start) // self._n
            frames = x[start : start + whole * self._n].reshape(whole, self._n)
            out[start : start + whole * self._n] = (frames + self._marks(frames, first)).reshape(-1)
        tail = len(x) - start - whole * self._n
        if tail:
            self._skip = self._n - tail
        self.position += len(x)
        return out

    def _marks(self, frames: np.ndarray, first: int) -> np.ndarray:
        """The mark of each frame ``[F, n]`` (float32), frame ``first`` being the stream's frame number
        (`embed.frame_marks`, in float64 on the CPU)."""
        import torch

        from gsvd.engine.provenance.embed import device_pattern, frame_marks

        offsets = self._offsets[(first + np.arange(len(frames))) % SLOTS]
        pattern = device_pattern(self._pattern, self._n, torch.device("cpu"), torch.float64)
        marks = frame_marks(torch.from_numpy(frames.astype(np.float64)), torch.from_numpy(offsets), None, pattern)
        return marks.numpy().astype(np.float32)


def lattice_offsets(pattern: KeyPattern, slot_bits: np.ndarray) -> np.ndarray:
    """Per slot, the offset of the lattice that encodes its bit (units of DELTA, in [0, 1))."""
    return (pattern.dither + 0.5 * np.asarray(slot_bits, dtype=np.float64)) % 1.0

"""Public value types of the synthesis API: per-request options and audio chunks.

These are plain dataclasses with no torch dependency, so the daemon and clients
can import them cheaply. ``SynthesisOptions`` fields use ``None`` for "use the
default"; ``validate()`` raises :class:`InvalidInput` naming the bad field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np

from gsvd.engine.errors import InvalidInput

LANGUAGES = ("auto", "zh", "en", "ja", "ko", "yue", "all_zh", "all_ja", "all_ko", "all_yue", "auto_yue")
SPLIT_METHODS = ("auto", "cut0", "cut1", "cut2", "cut3", "cut4", "cut5")
MAX_STEPS = 1500  # upstream cap: 1500 semantic tokens = 60 s
SAMPLE_RATE = 32000  # SoVITS output, Hz
SAMPLES_PER_TOKEN = 1280  # one 25 Hz semantic token: 2 frames x 640 samples at 32 kHz


@dataclass(frozen=True)
class SynthesisOptions:
    """How to synthesize one request. Defaults follow upstream's api_v2."""

    top_k: int = 15
    """Keep the k most likely semantic tokens (1 = greedy after repetition penalty)."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]; 1 disables it."""
    temperature: float = 1.0
    """Logit temperature in (0, 2]."""
    repetition_penalty: float = 1.35
    """Penalty on tokens already seen (prompt included), in [1, 3]."""
    noise_scale: float = 0.5
    """SoVITS prior noise in [0, 1]; 0 makes the acoustic stage deterministic."""
    speed: float = 1.0
    """Speaking rate multiplier in [0.5, 2]."""
    seed: int | None = None
    """Seed for sampling and noise; None draws one per request."""
    language: str = "auto"
    """Text language: one of LANGUAGES ('auto' segments mixed text)."""
    split_method: str = "auto"
    """Sentence splitting: 'auto' (streaming-aware) or upstream's cut0..cut5."""
    max_new_tokens: int = MAX_STEPS
    """Cap on semantic tokens generated per sentence (25 per second of audio)."""

    def validate(self) -> SynthesisOptions:
        """Return self if every field is in range, else raise InvalidInput naming the field."""
        _int_range("top_k", self.top_k, 1, 1024)
        _float_range("top_p", self.top_p, 0.0, 1.0, low_open=True)
        _float_range("temperature", self.temperature, 0.0, 2.0, low_open=True)
        _float_range("repetition_penalty", self.repetition_penalty, 1.0, 3.0)
        _float_range("noise_scale", self.noise_scale, 0.0, 1.0)
        _float_range("speed", self.speed, 0.5, 2.0)
        if self.seed is not None:
            _int_range("seed", self.seed, -1, 2**63 - 1)
        if self.language not in LANGUAGES:
            raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}; got {self.language!r}", "language")
        if self.split_method not in SPLIT_METHODS:
            raise InvalidInput(
                f"split_method must be one of {', '.join(SPLIT_METHODS)}; got {self.split_method!r}", "split_method"
            )
        _int_range("max_new_tokens", self.max_new_tokens, 1, MAX_STEPS)
        return self

    def with_overrides(self, **changes: object) -> SynthesisOptions:
        """Copy with the given non-None fields replaced, then validated."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise InvalidInput(f"unknown option(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).validate()


def _int_range(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer; got {value!r}", name)
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be in [{low}, {high}]; got {value}", name)


def _float_range(name: str, value: object, low: float, high: float, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        raise InvalidInput(f"{name} must be a finite number; got {value!r}", name)
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bracket = "(" if low_open else "["
        raise InvalidInput(f"{name} must be in {bracket}{low}, {high}]; got {value}", name)


def _finite(value: int | float) -> bool:
    """math.isfinite, False for an int too large for a float (a JSON 1e400 reads as inf, 10**400 as an int)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass(frozen=True)
class PhoneTiming:
    """A phone (or word) and where it sits in the output audio, in seconds."""

    symbol: str
    start: float
    end: float


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """A piece of an utterance's audio, in the order it should be played.

    ``pcm`` is mono float32 in [-1, 1] at ``sample_rate``. ``offset`` is the index
    of its first sample within the whole request's audio; ``sequence`` counts
    chunks from 0. Audio is handed on as soon as it is decoded; each segment then ends with a
    zero-length chunk carrying its word ``timings``, and the last chunk of a request (zero-length) has
    ``is_final`` set.
    """

    pcm: np.ndarray
    sample_rate: int
    sequence: int
    offset: int
    is_final: bool = False
    segment: int = 0
    """Index of the text segment (sentence) this audio belongs to."""
    text: str = ""
    """The segment's text, on the first chunk of each segment (captions)."""
    timings: tuple[PhoneTiming, ...] = field(default_factory=tuple)

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate

    def to_int16(self) -> np.ndarray:
        """PCM s16 with clipping (x 32767, as upstream's webui)."""
        return (np.clip(self.pcm, -1.0, 1.0) * 32767.0).astype(np.int16)

"""What the training stages hand each other: small dataclasses saved as JSON.

Every stage reads the previous stage's records from the run folder and writes
its own, so a user can inspect or edit them between stages. Paths inside a
record are relative to the run folder (the folder can move).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


class TrainError(Exception):
    """A problem with the user's data or arguments; the message names the file and the fix."""


@dataclass
class SourceAudio:
    """One input file after `extract`: mono 16-bit WAVs at 32 kHz and 16 kHz."""

    source: str  # the input path as given (absolute)
    sha256: str  # of the input file
    track: int  # index of the audio stream used among the file's audio streams
    seconds: float
    wav32: str  # run-relative path, 32 kHz mono int16
    wav16: str  # run-relative path, 16 kHz mono int16 (VAD, HuBERT)
    loudness_lufs: float  # integrated loudness before normalization
    gain_db: float  # gain applied by normalization
    subtitles: str | None = None  # run-relative .srt extracted from an embedded subtitle track


@dataclass
class Clip:
    """One 3-10 s speech clip cut by `segment` (times in the source's seconds)."""

    id: str  # "<source stem>_<nnnn>", unique in the run
    source: str  # SourceAudio.source it was cut from
    start: float
    end: float
    wav32: str  # run-relative clip file, 32 kHz mono int16
    wav16: str  # run-relative clip file, 16 kHz mono int16
    speech_seconds: float  # VAD speech inside the clip
    text: str | None = None  # what is said in it, when known at cutting time (subtitle cues, aligned transcript)
    origin: str = ""  # where `text` came from: "subtitle:<file>", "transcript:<file> aligned by asr:<model>", "asr:<model>"
    lang: str | None = None  # zh / en / ja of `text`
    heard: str | None = None  # what the --asr model recognized in the clip (the text check's reference)
    parts: list[list[float]] | None = None  # [start, end] (source seconds) of its cues / stretches of speech

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class ClipScore:
    """`select`'s judgement of one clip."""

    id: str
    seconds: float
    snr_db: float
    clipping: float  # fraction of samples at full scale
    music: float  # 0..1 music/noise presence (higher is worse)
    speech_ratio: float  # 0..1
    rate: float  # syllable-like peaks per second
    overlap: float  # 0..1: 1 - the clip's similarity to the kept voice (0 when not measured)
    score: float  # overall, higher is better
    kept: bool
    reason: str  # why kept or dropped, in words
    duplicate_of: str | None = None
    drop: str = ""  # the reason's category for totals: "music", "second speaker", "text mismatch", ...
    speaker: int | None = None  # voice cluster of the clip (None: not embedded, e.g. dropped for noise first)
    phone_rate: float | None = None  # phones of its text per second of speech
    cer: float | None = None  # character error rate of its text against the --asr model's
    text: str | None = None  # the text it would be trained with


@dataclass
class Utterance:
    """One line of the upstream-style list `path|speaker|lang|text`."""

    clip_id: str
    wav32: str  # run-relative
    speaker: str
    lang: str  # zh / en / ja (upstream codes as the text frontend takes them)
    text: str
    origin: str = ""  # "subtitle:<file>", "transcript:<file>", "asr:<model folder>"


def to_dict(obj: Any) -> dict:
    return asdict(obj)


def from_dict(cls: type, data: dict) -> Any:
    """Build `cls` from a dict, ignoring unknown keys (records written by newer versions)."""
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise TrainError(f"record for {cls.__name__} is missing a field: {exc}") from None


@dataclass
class StageState:
    """Written last by each stage as `<stage>/done.json`: what it read and what it wrote."""

    stage: str
    inputs: dict[str, str] = field(default_factory=dict)  # name -> sha256 / fingerprint
    outputs: list[str] = field(default_factory=list)  # run-relative paths
    info: dict[str, Any] = field(default_factory=dict)

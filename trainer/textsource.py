"""Where each input's text comes from, decided before any audio is cut.

Per input file, in order: `--subtitles` (one input only), a sidecar `<stem>.srt`/`.vtt` (or
`<stem>.<lang>.srt`), a text subtitle track inside the file, a `--transcript` line naming the
file (one text for the whole file), else nothing (then `--asr` words, if a model is given).
A transcript line naming a clip id (`<stem>_0003|text`) is that clip's text and wins over the
rest. A whole-file text can only be cut into clips through an ASR's word times; without
`--asr` that is refused with the options that work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from gsvd.trainer.records import Clip, SourceAudio, TrainError
from gsvd.trainer.subtitles import Cue, embedded_cues, read_subtitles


def detect_lang(text: str) -> str:
    if re.search(r"[\u3040-\u30ff]", text):
        return "ja"
    if re.search(r"[\u4e00-\u9fff]", text):
        return "zh"
    return "en"


def find_sidecar(source: Path) -> Path | None:
    for ext in (".srt", ".vtt"):
        exact = source.with_suffix(ext)
        if exact.is_file():
            return exact
        tagged = sorted(source.parent.glob(f"{source.stem}.*{ext}"))
        if tagged:
            return tagged[0]
    return None


def read_transcript_file(path: Path) -> dict[str, str]:
    """name -> text from `path|speaker|lang|text`, `name|text` or `name<TAB>text` lines."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"{path}: transcript file not found")
    table: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("|") if "|" in line else line.split("\t")
        if len(parts) == 4:
            name, text = parts[0], parts[3]
        elif len(parts) == 2:
            name, text = parts
        else:
            raise TrainError(f"{path}:{n}: expected 'path|speaker|lang|text', 'name|text' or 'name<TAB>text'")
        stem = Path(name.strip()).name
        for key in {stem, stem.split(".")[0], name.strip()}:
            table[key] = text.strip()
    return table


def whole_file_keys(source: str) -> tuple[str, ...]:
    """Transcript-file names that mean 'the whole of this input'."""
    p = Path(source)
    return (p.name, p.stem, str(p))


@dataclass
class TextPlan:
    """The user's text options for a run, read once."""

    subtitles: Path | None = None
    transcript: Path | None = None
    table: dict[str, str] = field(default_factory=dict)
    asr: Path | None = None
    lang: str | None = None

    @classmethod
    def read(cls, subtitles: Path | None, transcript: Path | None, asr: Path | None, lang: str | None) -> TextPlan:
        return cls(subtitles, transcript, read_transcript_file(transcript) if transcript else {}, asr, lang)

    def whole_file_text(self, source: str) -> str | None:
        for key in whole_file_keys(source):
            if key in self.table:
                return self.table[key]
        return None

    def clip_text(self, clip: Clip) -> tuple[str, str] | None:
        """A transcript-file line for this very clip: (text, origin)."""
        for key in (clip.id, Path(clip.wav32).name):
            if key in self.table:
                return self.table[key], f"transcript:{self.transcript}"
        return None

    def check(self, inputs: list[str]) -> None:
        """Problems visible before any audio is read: several inputs for one --subtitles file, a whole-file
        transcript with no subtitles and no ASR to time it."""
        if self.subtitles is not None and len(inputs) > 1:
            raise TrainError("--subtitles names one file but there are several inputs: use sidecar files "
                             "(<video stem>.srt next to each video) instead")
        if self.asr is not None:
            return
        for src in inputs:
            if self.whole_file_text(src) is not None and self.subtitles is None and find_sidecar(Path(src)) is None:
                raise WholeFileNeedsTiming(src, self.transcript)


class WholeFileNeedsTiming(TrainError):
    def __init__(self, source: str, transcript: Path | None) -> None:
        name = Path(source).name
        super().__init__(
            f"--transcript {transcript} gives one text for the whole of {name}; without times it cannot be cut "
            "into clips, and copying it onto every clip would train on words that are not in their audio. "
            f"Any of these works: subtitles with times (--subtitles {Path(source).stem}.srt, or a sidecar "
            f"{Path(source).stem}.srt beside the video, or a subtitle track inside it); a local faster-whisper "
            "model with --asr FOLDER, which aligns the transcript to the recognized words; or one line per "
            "clip (`<clip id>|text`, the ids are in segment/clips.json after `gsvd train segment`)")


@dataclass
class ClipText:
    text: str
    origin: str
    lang: str


def resolve_text(clip: Clip, plan: TextPlan) -> ClipText | None:
    """A clip's training text: its own transcript-file line, else what `segment` gave it (cues, aligned
    transcript, ASR words); None when it has none."""
    own = plan.clip_text(clip)
    text, origin = own if own is not None else (clip.text, clip.origin)
    if not text or not text.strip():
        return None
    return ClipText(text.strip(), origin, plan.lang or (clip.lang if own is None else None) or detect_lang(text))


def cues_for(source: SourceAudio, explicit: Path | None) -> tuple[list[Cue] | None, str]:
    """The input's subtitle cues and where they came from ('' when there are none)."""
    if explicit is not None:
        return read_subtitles(explicit), str(explicit)
    side = find_sidecar(Path(source.source))
    if side is not None:
        return read_subtitles(side), str(side)
    cues = embedded_cues(Path(source.source))
    return (cues or None), (f"{source.source} (embedded track)" if cues else "")


def check_cues_match(cues: list[Cue], where: str, source: SourceAudio, speech_share: float) -> None:
    """Subtitles of another video: cues past the end of the audio, or hardly any speech under them."""
    if not cues:
        raise TrainError(f"subtitles {where} have no text cues")
    first, last = min(c.start for c in cues), max(c.end for c in cues)
    if last > source.seconds + 5.0 or speech_share < 0.3:
        raise TrainError(f"subtitles {where} do not match {source.source}: cues span {first:.1f}-{last:.1f} s, "
                         f"the audio is {source.seconds:.1f} s, and {speech_share * 100:.0f}% of the cue time has "
                         "speech under it")

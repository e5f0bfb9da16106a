"""Stage 4, transcribe: a transcript for every kept clip, and the upstream-style list.

Per clip, in order: the `--transcript` file, the `--subtitles` file, a sidecar `.srt`/`.vtt`
next to the source (`<stem>.srt`, `<stem>.<lang>.srt`), a text subtitle track inside the
source, then a local faster-whisper model (`--asr FOLDER`; never downloaded). Subtitle cues
are aligned to a clip by time: a cue counts when most of it lies inside the clip, and a clip
keeps its text only when its cues cover most of it. Writes `transcribe/train.list`
(`path|speaker|lang|text`) and `transcribe/utterances.json`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gsvd.trainer.records import Clip, SourceAudio, TrainError, Utterance
from gsvd.trainer.subtitles import Cue, embedded_cues, read_subtitles
from gsvd.trainer.workspace import Workspace, atomic_write_text

MIN_COVER = 0.6  # share of a clip's length its cues must cover


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


def align_cues(clip: Clip, cues: list[Cue]) -> str | None:
    inside, covered = [], 0.0
    for c in cues:
        length = max(c.end - c.start, 1e-3)
        overlap = min(c.end, clip.end) - max(c.start, clip.start)
        if overlap > 0.5 * length:
            inside.append(c.text)
            covered += overlap
    if not inside or covered < MIN_COVER * (clip.end - clip.start):
        return None
    return " ".join(inside)


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


class AsrModel:
    """faster-whisper from a local folder (CTranslate2 model files); never downloads."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        folder = Path(folder)
        if not (folder / "model.bin").is_file():
            raise TrainError(f"no faster-whisper model in {folder} (expected model.bin + config.json)")
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise TrainError("faster-whisper is not installed (pip install faster-whisper) but --asr was given") from None
        self.model = WhisperModel(str(folder), device=device, local_files_only=True)

    def transcribe(self, wav16: np.ndarray, language: str | None) -> tuple[str, str]:
        segments, info = self.model.transcribe(wav16.astype(np.float32), language=language, beam_size=5,
                                               without_timestamps=True, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments).strip(), info.language


def _cues_for(source: SourceAudio, explicit: Path | None) -> tuple[list[Cue] | None, str]:
    if explicit is not None:
        return read_subtitles(explicit), f"subtitle:{explicit}"
    side = find_sidecar(Path(source.source))
    if side is not None:
        return read_subtitles(side), f"subtitle:{side}"
    cues = embedded_cues(Path(source.source))
    return (cues or None), f"embedded:{source.source}"


def _check_match(cues: list[Cue], origin: str, source: SourceAudio, clips: list[Clip]) -> None:
    if not cues:
        raise TrainError(f"subtitles {origin.split(':', 1)[1]} have no text cues")
    last = max(c.end for c in cues)
    covered = sum(1 for clip in clips if align_cues(clip, cues))
    if last > source.seconds + 5.0 or (clips and covered == 0):
        raise TrainError(f"subtitles {origin.split(':', 1)[1]} do not match {source.source}: cues span "
                         f"{min(c.start for c in cues):.1f}-{last:.1f} s, the audio is {source.seconds:.1f} s, and "
                         f"{covered} of {len(clips)} speech clips are covered")


def transcribe_clips(clips: list[Clip], sources: list[SourceAudio], ws: Workspace, *, speaker: str,
                     lang: str | None = None, subtitles: Path | None = None, transcript: Path | None = None,
                     asr_folder: Path | None = None) -> list[Utterance]:
    table = read_transcript_file(transcript) if transcript else {}
    if subtitles is not None and len(sources) > 1:
        raise TrainError("--subtitles names one file but there are several inputs: use sidecar files "
                         "(<video stem>.srt next to each video) instead")
    asr = None
    tried = ["--transcript" if transcript else "", "subtitles (sidecar / embedded / --subtitles)",
             "ASR" if asr_folder else ""]
    by_source = {s.source: s for s in sources}
    cue_cache: dict[str, tuple[list[Cue] | None, str]] = {}
    utts: list[Utterance] = []
    for clip in clips:
        text, origin, clip_lang = None, "", lang
        for key in (clip.id, Path(clip.wav32).name, Path(clip.source).stem):
            if key in table:
                text, origin = table[key], f"transcript:{transcript}"
                break
        if text is None and clip.source in by_source:
            if clip.source not in cue_cache:
                cues, where = _cues_for(by_source[clip.source], subtitles)
                if cues is not None:
                    _check_match(cues, where, by_source[clip.source], [c for c in clips if c.source == clip.source])
                cue_cache[clip.source] = (cues, where)
            cues, where = cue_cache[clip.source]
            if cues:
                text, origin = align_cues(clip, cues), where
        if text is None and asr_folder is not None:
            from gsvd.engine.audio import load_audio

            asr = asr or AsrModel(asr_folder)
            text, found = asr.transcribe(load_audio(ws.path(clip.wav16), 16000), lang)
            origin, clip_lang = f"asr:{asr_folder}", lang or (found if found in ("zh", "en", "ja") else None)
        if not text:
            continue
        utts.append(Utterance(clip_id=clip.id, wav32=clip.wav32, speaker=speaker, lang=clip_lang or detect_lang(text),
                              text=text, origin=origin))
    if not utts:
        raise TrainError(f"no clip got a transcript (tried {', '.join(t for t in tried if t)}): give subtitles "
                         "with --subtitles / a sidecar .srt, a --transcript file, or a local --asr model")
    lines = [f"{ws.path(u.wav32)}|{u.speaker}|{u.lang}|{u.text}" for u in utts]
    atomic_write_text(ws.stage_dir("transcribe") / "train.list", "\n".join(lines) + "\n")
    ws.save_records("transcribe", "utterances.json", utts)
    return utts

"""Subtitles as timed text: SRT and WebVTT files, and text subtitle tracks inside media files.

Parsing tolerates what real files carry: a BOM, CRLF, styling tags (`<i>`, `<c.x>`, `{\\an8}`),
multi-line cues, VTT cue settings and NOTE/STYLE/REGION blocks, hour-less VTT times.
A malformed timing line is a TrainError naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gsvd.trainer.records import TrainError

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_ARROW = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAGS = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_SOUNDS = re.compile(r"\[[^\]]*\]|\([^)]*\)|♪[^♪]*♪|♫[^♫]*♫|♪|♫")


@dataclass
class Cue:
    start: float
    end: float
    text: str


def _seconds(h, m, s, ms) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def clean_text(text: str) -> str:
    """Drop tags and sound-effect cues ([music], (laughs), ♪), collapse whitespace."""
    text = _SOUNDS.sub(" ", _TAGS.sub("", text))
    return re.sub(r"\s+", " ", text).strip(" -")


def _parse(text: str, where: str, vtt: bool) -> list[Cue]:
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cues: list[Cue] = []
    i = 0
    if vtt:
        if not lines or not lines[0].startswith("WEBVTT"):
            raise TrainError(f"{where}:1: a WebVTT file must start with 'WEBVTT'")
        i = 1
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        if vtt and line.split(" ", 1)[0] in ("NOTE", "STYLE", "REGION"):
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
        m = _ARROW.match(line)
        if m is None and i + 1 < len(lines):  # an SRT index or a VTT cue identifier first
            m2 = _ARROW.match(lines[i + 1].strip())
            if m2 is not None:
                i, m = i + 1, m2
        if m is None:
            if line.isdigit() and i + 1 < len(lines):  # an SRT index: the timing line after it is the bad one
                i, line = i + 1, lines[i + 1].strip()
            raise TrainError(f"{where}:{i + 1}: expected a timing line like '00:00:01,000 --> 00:00:02,500', "
                             f"got {line[:60]!r}")
        start, end = _seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])
        if end < start:
            raise TrainError(f"{where}:{i + 1}: cue ends ({end:.3f} s) before it starts ({start:.3f} s)")
        body = []
        i += 1
        while i < len(lines) and lines[i].strip():
            body.append(lines[i])
            i += 1
        text = clean_text(" ".join(body))
        if text:
            cues.append(Cue(start, end, text))
    return cues


def parse_srt(text: str, where: str = "<srt>") -> list[Cue]:
    return _parse(text, where, vtt=False)


def parse_vtt(text: str, where: str = "<vtt>") -> list[Cue]:
    return _parse(text, where, vtt=True)


def read_subtitles(path: Path) -> list[Cue]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TrainError(f"{path}: subtitle file not found") from None
    except UnicodeDecodeError:
        raise TrainError(f"{path}: subtitles must be UTF-8 text") from None
    vtt = path.suffix.lower() == ".vtt" or text.startswith("WEBVTT")
    return _parse(text, str(path), vtt)


def embedded_cues(media: Path) -> list[Cue] | None:
    """Cues of the first text subtitle track of a media file (None when there is none)."""
    import av

    try:
        container = av.open(str(media))
    except av.error.FFmpegError:
        return None
    with container:
        subs = [s for s in container.streams.subtitles]
        if not subs:
            return None
        stream = subs[0]
        cues = []
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            start = float(packet.pts * stream.time_base)
            end = start + float((packet.duration or 0) * stream.time_base)
            raw = bytes(packet).decode("utf-8", "replace")
            if stream.codec_context.name == "ass":  # ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text
                raw = raw.split(",", 8)[-1].replace("\\N", " ")
            text = clean_text(raw)
            if text:
                cues.append(Cue(start, end, text))
    return cues

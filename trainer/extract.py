"""Stage 1, extract: any file ffmpeg can read -> mono 32 kHz and 16 kHz 16-bit WAVs, loudness-normalized.

PyAV decodes the chosen audio track (`--track`, default the first), PyAV's resampler
downmixes to mono float; soxr resamples to 32 kHz and 16 kHz; BS.1770 loudness is
normalized to -23 LUFS with a -1 dBFS peak ceiling. Every problem with an input is a
TrainError naming the file; `extract_many` reports it and carries on with the rest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from gsvd.trainer.loudness import integrated_lufs, normalize
from gsvd.trainer.records import SourceAudio, TrainError
from gsvd.trainer.workspace import Workspace

MIN_SECONDS = 0.5


def decode_track(src: Path, track: int | None = None) -> tuple[np.ndarray, int, int]:
    """-> (mono float32 samples, sample rate, track index) of the file's audio stream number `track`."""
    import av

    if not src.is_file():
        raise TrainError(f"{src}: file not found")
    if src.stat().st_size == 0:
        raise TrainError(f"{src}: the file is empty (0 bytes)")
    try:
        container = av.open(str(src))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise TrainError(f"{src}: not a media file ffmpeg can read ({_why(exc)})") from None
    with container:
        streams = list(container.streams.audio)
        if not streams:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
            raise TrainError(f"{src}: no audio stream (the file holds {kinds})")
        index = 0 if track is None else track
        if not 0 <= index < len(streams):
            raise TrainError(f"{src}: --track {track} does not exist; the file has {len(streams)} audio track(s) "
                             f"(0-{len(streams) - 1})")
        stream = streams[index]
        if stream.codec_context is None or stream.codec_context.codec is None:
            raise TrainError(f"{src}: audio track {index} uses a codec this ffmpeg build cannot decode")
        rate = stream.codec_context.sample_rate or 0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate or None)
        pieces: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            if not pieces:
                raise TrainError(f"{src}: audio track {index} cannot be decoded ({_why(exc)})") from None
        rate = rate or (stream.rate or 0)
    audio = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
    if rate <= 0 or audio.size < MIN_SECONDS * max(rate, 1):
        raise TrainError(f"{src}: audio track {index} holds {audio.size / max(rate, 1):.2f} s of sound "
                         f"(at least {MIN_SECONDS} s needed)")
    if not np.isfinite(audio).all():
        raise TrainError(f"{src}: audio track {index} decodes to invalid samples")
    return audio, int(rate), index


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def extract_source(src: Path, ws: Workspace, track: int | None = None, target_lufs: float = -23.0) -> SourceAudio:
    """Decode, downmix, resample, normalize; write `extract/<stem>.32k.wav` and `.16k.wav` atomically."""
    from gsvd.engine.audio import resample_soxr
    from gsvd.wavio import write_wav

    src = Path(src).resolve()
    audio, rate, index = decode_track(src, track)
    digest = sha256_of(src)
    lufs = integrated_lufs(audio, rate)
    audio, gain = normalize(audio, rate, target_lufs)
    stem = f"{_safe_stem(src)}-{digest[:8]}"
    out = ws.stage_dir("extract")
    wav32 = write_wav(out / f"{stem}.32k.wav", resample_soxr(audio, rate, 32000), 32000)
    wav16 = write_wav(out / f"{stem}.16k.wav", resample_soxr(audio, rate, 16000), 16000)
    return SourceAudio(source=str(src), sha256=digest, track=index, seconds=audio.size / rate, wav32=ws.rel(wav32),
                       wav16=ws.rel(wav16), loudness_lufs=round(lufs, 2) if np.isfinite(lufs) else -99.0,
                       gain_db=round(gain, 2))


def _safe_stem(path: Path) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)
    return keep[:40] or "input"


def extract_many(srcs: list[Path], ws: Workspace, track: int | None = None) -> tuple[list[SourceAudio], list[tuple[str, str]]]:
    """Every input; a bad one is reported as (path, message) and the rest go on."""
    records, errors = [], []
    seen: set[str] = set()
    for src in srcs:
        try:
            rec = extract_source(Path(src), ws, track)
        except TrainError as exc:
            errors.append((str(src), str(exc)))
            continue
        if rec.sha256 in seen:
            errors.append((str(src), f"{src}: the same file as an earlier input; used once"))
            continue
        seen.add(rec.sha256)
        records.append(rec)
    return records, errors

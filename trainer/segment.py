"""Stage 2, segment: each input's speech -> 3-10 s clips, with their text where it is known.

How an input is cut depends on its text (`textsource`):
- subtitle cues: clips on cue boundaries (`cues.cue_clips`), each with its cues' text; a file whose cues
  are all early or late against the speech by a constant offset (`cues.estimate_offset`) is moved
  first, and the summary says by how much;
- a whole-file transcript: clips at pauses, the text aligned to the `--asr` model's timed words
  and cut at the clip edges (a clip whose edge falls among words the ASR did not hear is
  dropped: which side they belong to cannot be told);
- nothing: clips at pauses, the ASR's words as their text when `--asr` is given.
With `--asr`, the words recognized in every clip are kept (`Clip.heard`) for the text check in
`select`; the ASR runs once per input and its words are cached in `segment/asr/`.

`cut_clips` is pure: neighbouring VAD spans are grouped while the clip stays under
`max_s` and the pause between them is short; a clip ends at a pause (cut in the middle of
the silence); a single span longer than `max_s` (speech without a VAD pause) is split at
its quietest 20 ms frame. Pieces shorter than `min_s` are dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gsvd.trainer.asr import Recognized, Recognizer
from gsvd.trainer.records import Clip, SourceAudio, TrainError
from gsvd.trainer.textsource import TextPlan, WholeFileNeedsTiming, check_cues_match, cues_for, detect_lang
from gsvd.trainer.workspace import Workspace, read_json, write_json

MAX_GAP = 1.2  # a longer pause ends a clip (a new thought, another speaker, music)
EDGE = 0.15  # silence kept before and after a clip's speech


def cut_clips(wav16: np.ndarray, spans: list[tuple[float, float]], min_s: float = 3.0,
              max_s: float = 10.0) -> list[tuple[float, float]]:
    total = wav16.size / 16000
    pieces = [p for s, e in spans for p in _split_long(wav16, s, e, max_s - 2 * EDGE)]
    groups: list[list[tuple[float, float]]] = []
    for s, e in pieces:
        cur = groups[-1] if groups else None
        if cur and s - cur[-1][1] <= MAX_GAP and e - cur[0][0] <= max_s - 2 * EDGE:
            cur.append((s, e))
        else:
            groups.append([(s, e)])
    clips = []
    for i, g in enumerate(groups):
        prev_end = groups[i - 1][-1][1] if i else 0.0
        next_start = groups[i + 1][0][0] if i + 1 < len(groups) else total
        start = max(g[0][0] - EDGE, (prev_end + g[0][0]) / 2, 0.0)
        end = min(g[-1][1] + EDGE, (g[-1][1] + next_start) / 2, total)
        if end - start >= min_s:
            clips.append((round(start, 3), round(min(end, start + max_s), 3)))
    return clips


def _split_long(wav16: np.ndarray, s: float, e: float, limit: float) -> list[tuple[float, float]]:
    """A span longer than `limit` split at its quietest frames (each piece <= limit)."""
    out = []
    while e - s > limit:
        lo, hi = s + limit / 3, s + limit
        cut = _quietest(wav16, lo, hi)
        out.append((s, cut))
        s = cut
    out.append((s, e))
    return out


def _quietest(wav16: np.ndarray, lo: float, hi: float, frame: float = 0.02) -> float:
    a, b = int(lo * 16000), int(hi * 16000)
    n = int(frame * 16000)
    seg = wav16[a:b]
    if seg.size < 2 * n:
        return hi
    frames = seg[: seg.size // n * n].reshape(-1, n)
    energy = np.convolve((frames**2).mean(axis=1), np.ones(3) / 3, mode="same")  # smooth over 60 ms
    return lo + (int(np.argmin(energy)) + 0.5) * frame


@dataclass
class SegmentResult:
    clips: list[Clip]
    drops: Counter = field(default_factory=Counter)  # reason -> count
    notes: list[str] = field(default_factory=list)  # per input: how it was cut and where its text came from


def segment_sources(sources: list[SourceAudio], ws: Workspace, min_s: float = 3.0, max_s: float = 10.0,
                    plan: TextPlan | None = None, recognizer: Recognizer | None = None) -> SegmentResult:
    """Clips of every input with their text where it is known (see the module docstring); clip WAVs at
    32 kHz and 16 kHz under `segment/clips/`."""
    from gsvd.engine.audio import load_audio
    from gsvd.trainer.vad import speech_spans

    plan = plan or TextPlan()
    out = SegmentResult([])
    for src in sources:
        wav16 = load_audio(ws.path(src.wav16), 16000)
        spans = speech_spans(wav16)
        heard = recognize_source(ws, src, wav16, recognizer, plan.lang) if recognizer is not None else None
        cut, drops, note = _cut_source(src, wav16, spans, min_s, max_s, plan, heard,
                                       recognizer.name if recognizer is not None else "")
        out.drops.update(drops)
        out.notes.append(f"{Path(src.source).name}: {note}")
        out.clips += _write_clips(ws, src, wav16, spans, cut, heard, plan.lang)
    if not out.clips:
        names = ", ".join(src.source for src in sources)
        if not out.drops:
            raise TrainError(f"no speech found in {names}: no stretch of at least {min_s:g} s of speech "
                             "(check the audio track with --track, or the files themselves)")
        why = ", ".join(f"{n} {r}" for r, n in out.drops.most_common())
        raise TrainError(f"no usable clips in {names} (dropped: {why}): check the subtitles or transcript")
    return out


def _cut_source(src: SourceAudio, wav16: np.ndarray, spans, min_s: float, max_s: float, plan: TextPlan,
                heard: Recognized | None, asr_name: str) -> tuple[list[_Cut], Counter, str]:
    """(start, end, text, origin) pieces of one input, drops by reason, and how it was done."""
    from gsvd.trainer.cues import SLACK, cue_clips, estimate_offset, shift_cues, units_of
    from gsvd.trainer.textalign import align, assign, join

    cues, where = cues_for(src, plan.subtitles)
    if cues:
        off = estimate_offset(cues, spans, src.seconds)
        shifted = ""
        if off.seconds:
            cues = shift_cues(cues, off.seconds)
            shifted = (f"; the cues were {abs(off.seconds):.2f} s {'early' if off.seconds > 0 else 'late'} against "
                       f"the speech and were moved (cue/speech agreement {off.agree_before:.2f} -> "
                       f"{off.agree_after:.2f})")
        check_cues_match(cues, where, src, _speech_share(units_of(cues), spans, SLACK))
        cut, drops = cue_clips(cues, wav16, spans, min_s, max_s)
        return ([_Cut(c.start, c.end, c.text, f"subtitle:{where}", c.parts) for c in cut], drops,
                f"{len(cut)} clips cut on {len(cues)} subtitle cues of {where}{shifted}")
    whole = plan.whole_file_text(src.source)
    vad = cut_clips(wav16, spans, min_s, max_s)
    if whole is not None:
        if heard is None:
            raise WholeFileNeedsTiming(src.source, plan.transcript)
        toks = align(whole, heard.words, spans)
        pieces, drops = [], Counter()
        groups, unsure = assign(toks, vad)
        for k, ((s, e), inside) in enumerate(zip(vad, groups, strict=True)):
            if k in unsure:
                drops["transcript words at its edge that could belong to either side"] += 1
            elif not inside:
                drops["no transcript words in it"] += 1
            else:
                pieces.append(_Cut(s, e, join(inside), f"transcript:{plan.transcript} aligned by {asr_name}"))
        matched = sum(t.matched for t in toks)
        return pieces, drops, (f"{len(pieces)} clips; the whole-file transcript aligned to {asr_name} "
                               f"({matched} of {len(toks)} words heard as written)")
    if heard is not None:
        groups = heard_texts(heard, vad)
        pieces = [_Cut(s, e, text or None, asr_name) for (s, e), text in zip(vad, groups, strict=True)]
        return pieces, Counter(), f"{len(pieces)} clips at pauses; text from {asr_name}"
    return [_Cut(s, e, None, "") for s, e in vad], Counter(), f"{len(vad)} clips at pauses; no text yet"


class _Cut(NamedTuple):
    start: float
    end: float
    text: str | None
    origin: str
    parts: list[list[float]] | None = None


PART_GAP, PART_MIN = 0.5, 1.5  # speech closer than this is one part; shorter parts join a neighbour


def speech_parts(spans, start: float, end: float) -> list[list[float]]:
    """Stretches of speech inside [start, end] for the speaker check: VAD spans joined across pauses under
    `PART_GAP`, a part under `PART_MIN` joined to its nearer neighbour."""
    parts: list[list[float]] = []
    for s, e in spans:
        s, e = max(s, start), min(e, end)
        if e <= s:
            continue
        if parts and s - parts[-1][1] < PART_GAP:
            parts[-1][1] = e
        else:
            parts.append([s, e])
    i = 0
    while len(parts) > 1 and i < len(parts):
        a, b = parts[i]
        if b - a >= PART_MIN:
            i += 1
            continue
        left = a - parts[i - 1][1] if i > 0 else np.inf
        right = parts[i + 1][0] - b if i + 1 < len(parts) else np.inf
        j = i - 1 if left <= right else i + 1
        lo, hi = min(i, j), max(i, j)
        parts[lo:hi + 1] = [[parts[lo][0], parts[hi][1]]]
        i = max(0, lo)
    return [[round(a, 3), round(b, 3)] for a, b in parts] or [[round(start, 3), round(end, 3)]]


def _speech_share(units, spans, slack: float) -> float:
    """Share of the cues' time that has VAD speech under it (about 0 for another video's subtitles)."""
    total = sum(u.end - u.start for u in units)
    if total <= 0:
        return 0.0
    covered = sum(max(0.0, min(u.end + slack, e) - max(u.start - slack, s)) for u in units for s, e in spans)
    return min(1.0, covered / total)


def recognize_source(ws: Workspace, src: SourceAudio, wav16: np.ndarray, recognizer: Recognizer,
                     lang: str | None) -> Recognized:
    """The recognizer's words for a whole input, cached per (file, model, language)."""
    path = ws.stage_dir("segment") / "asr" / f"{source_stem(src)}.json"
    key = {"sha256": src.sha256, "model": recognizer.name, "lang": lang}
    if path.is_file():
        try:
            cached = read_json(path, "ASR words")
            if cached.get("key") == key:
                return Recognized.from_dict(cached)
        except (TrainError, KeyError, TypeError, ValueError):
            pass
    heard = recognizer.recognize(wav16, lang)
    write_json(path, {"key": key} | heard.to_dict())
    return heard


def heard_texts(heard: Recognized, spans: list[tuple[float, float]]) -> list[str]:
    """What the ASR heard in each clip, its words assigned to clips as transcript words are (`assign`)."""
    from gsvd.trainer.textalign import assign, join, timed_tokens

    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    groups, _ = assign(timed_tokens(heard.words), [spans[i] for i in order])
    out = [""] * len(spans)
    for i, g in zip(order, groups, strict=True):
        out[i] = join(g)
    return out


def _write_clips(ws: Workspace, src: SourceAudio, wav16: np.ndarray, spans, cut: list[_Cut],
                 heard: Recognized | None, lang: str | None) -> list[Clip]:
    from gsvd.engine.audio import load_audio
    from gsvd.wavio import write_wav

    out = ws.stage_dir("segment") / "clips"
    wav32 = load_audio(ws.path(src.wav32), 32000)
    stem = source_stem(src)
    clips = []
    cut = sorted(cut, key=lambda c: c.start)
    heard_in = heard_texts(heard, [(c.start, c.end) for c in cut]) if heard is not None else None
    for n, c in enumerate(cut):
        s, e = c.start, c.end
        cid = f"{stem}_{n:04d}"
        p32 = write_wav(out / f"{cid}.32k.wav", wav32[int(s * 32000):int(e * 32000)], 32000)
        p16 = write_wav(out / f"{cid}.16k.wav", wav16[int(s * 16000):int(e * 16000)], 16000)
        inside = sum(max(0.0, min(e, b) - max(s, a)) for a, b in spans)
        clip_lang = lang or (detect_lang(c.text) if c.text else None) or (heard.lang if heard is not None else None)
        clips.append(Clip(id=cid, source=src.source, start=s, end=e, wav32=ws.rel(p32), wav16=ws.rel(p16),
                          speech_seconds=round(inside, 3), text=c.text, origin=c.origin if c.text else "",
                          lang=clip_lang, heard=heard_in[n] if heard_in is not None else None,
                          parts=c.parts or speech_parts(spans, s, e)))
    return clips


def source_stem(src: SourceAudio) -> str:
    """Clip ids derive from the extract file stem (`<name>-<sha8>`)."""
    return src.wav32.rsplit("/", 1)[-1].removesuffix(".32k.wav")

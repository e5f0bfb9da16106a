"""Stage 4, transcribe: the training text of every kept clip, and the upstream-style list.

The texts were settled before `select` checked them against the audio (`textsource`, `segment`):
a clip's own `--transcript` line, else its subtitle cues, its share of an ASR-aligned whole-file
transcript, or the `--asr` words. This stage writes them as `transcribe/train.list`
(`path|speaker|lang|text`) and `transcribe/utterances.json`. A text that `select` did not check
(a transcript line written after it ran) goes through the same text check here.
"""

from __future__ import annotations

from collections import Counter

from gsvd.trainer.records import Clip, TrainError, Utterance
from gsvd.trainer.textsource import TextPlan, resolve_text
from gsvd.trainer.workspace import Workspace, atomic_write_text


def transcribe_clips(clips: list[Clip], ws: Workspace, *, speaker: str, plan: TextPlan | None = None,
                     checked: dict[str, str] | None = None) -> tuple[list[Utterance], Counter]:
    """Utterances of the clips that have a text that fits their audio, and drops by reason. `checked`: the
    texts `select` already checked, by clip id."""
    from gsvd.trainer.select import check_text

    plan = plan or TextPlan()
    utts: list[Utterance] = []
    drops: Counter = Counter()
    for clip in clips:
        ct = resolve_text(clip, plan)
        if ct is None:
            drops["no text"] += 1
            continue
        if (checked or {}).get(clip.id) != ct.text and check_text(clip, ct).problem is not None:
            drops["text mismatch"] += 1
            continue
        utts.append(Utterance(clip_id=clip.id, wav32=clip.wav32, speaker=speaker, lang=ct.lang, text=ct.text,
                              origin=ct.origin))
    if not utts:
        raise TrainError("no clip has a transcript that fits its audio"
                         + (f" ({', '.join(f'{n} {r}' for r, n in drops.most_common())})" if drops else "")
                         + ": give subtitles with times (--subtitles, a sidecar <video>.srt or a subtitle track), "
                         "a local faster-whisper model with --asr FOLDER, or a --transcript file (one line per "
                         "clip, or one text per video together with --asr)")
    lines = [f"{ws.path(u.wav32)}|{u.speaker}|{u.lang}|{u.text}" for u in utts]
    atomic_write_text(ws.stage_dir("transcribe") / "train.list", "\n".join(lines) + "\n")
    ws.save_records("transcribe", "utterances.json", utts)
    return utts, drops

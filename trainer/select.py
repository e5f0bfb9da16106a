"""Stage 3, select: score every clip, drop bad ones and duplicates, keep the best `target_seconds`.

Drops, each with its reason in words and a category for the totals (`ClipScore.drop`), in
this order: too noisy (SNR < 12 dB), music under the speech (music > 0.5), clipping
(> 0.5 % of samples), mostly silence (speech ratio < 0.5); a text that does not match the
audio (phones per second of speech outside the language's bounds, `RATE_BOUNDS`; with `--asr`,
character error rate against what the ASR heard above `MAX_CER`) or no text at all; a second
speaker (`speaker.decide_speaker` over the clips that passed the audio checks: the majority
voice, or the one nearest `--speaker-ref`); another voice over part of a clip's speech
(`_mixed_voices`: dense 1.6 s windows against the clip's own embedding; catches some crosstalk
only); near-duplicate audio (the same recording again,
louder, re-encoded, or cut from a longer clip: log-mel contours correlated at the best offset
>= 0.9) and repeated sentences (same normalized transcript). Then the best clips by score fill
the budget. Too little clean speech is an error that says how much was found and why the rest
was dropped.

`RATE_BOUNDS` were measured on the real speech in shared/data/speech with this module's
`phone_count` over Silero VAD speech seconds: English 7.2-14.7 phones/s (81 utterances:
LibriSpeech test-other, LJSpeech, VCTK, JFK; median 10.7), Mandarin 7.2-11.0 (4: FLEURS,
AISHELL-1), Japanese 12.1 (1: FLEURS). The bounds are the measured range widened to 0.7x the
lowest and 1.4x the highest (Japanese: its one clip times the English spread), so a careful
or a fast talker passes, while a text that belongs to a longer or shorter stretch of audio,
or the whole video's text on one clip (30+ phones/s), does not. One talker's pace is steadier than
that: per LibriSpeech reader, each utterance's rate is 0.76-1.25x the reader's median (70
utterances), so where no ASR checked a clip and at least `REL_MIN_CLIPS` clips of the language have
rates, a clip outside `REL_RATE` (0.6-1.65x) of their median is a text mismatch too -- a cue text
swapped with a much shorter or longer cue's, or one from another recording.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np

from gsvd.trainer.records import Clip, ClipScore, TrainError
from gsvd.trainer.speaker import SpeakerDecision, SpeakerEncoder
from gsvd.trainer.textsource import ClipText
from gsvd.trainer.workspace import Workspace

MIN_SNR, MAX_MUSIC, MAX_CLIPPING, MIN_SPEECH, DUP_SIM = 12.0, 0.5, 0.005, 0.5, 0.9
RATE_BOUNDS = {"en": (5.0, 20.5), "zh": (5.0, 15.5), "ja": (5.5, 23.0)}  # phones per second of speech
REL_RATE, REL_MIN_CLIPS = (0.6, 1.65), 5  # phone rate vs the run's median (one reader: 0.76-1.25x, 70 utts)
MAX_CER = 0.4  # text vs the ASR (tiny.en): right texts max 0.34, mean 0.035 (29 clips); wrong 0.62-1.0 (406 pairs)


def score_clips(clips: list[Clip], ws: Workspace, encoder: SpeakerEncoder | None = None, windows: dict | None = None
                ) -> tuple[list[ClipScore], dict[str, np.ndarray]]:
    """Measures + overall score for every clip; also returns each clip's fingerprint for dedupe, and fills
    `windows` (when given) with each clip's speaker-encoder input."""
    from gsvd.engine.audio import load_audio
    from gsvd.trainer.quality import measure

    scores, prints = [], {}
    for c in clips:
        wav = load_audio(ws.path(c.wav16), 16000)
        m = measure(wav, c.speech_seconds)
        prints[c.id] = fingerprint(wav)
        if encoder is not None and windows is not None:
            windows[c.id] = _part_features(encoder, wav, c)
        m["overlap"] = 0.0
        scores.append(ClipScore(id=c.id, seconds=round(c.seconds, 3), **{k: round(v, 4) for k, v in m.items()},
                                score=round(combine(m), 4), kept=False, reason=""))
    return scores, prints


def _part_features(encoder: SpeakerEncoder, wav: np.ndarray, c: Clip) -> list[np.ndarray]:
    """The encoder input of each part of the clip (its cues or stretches of speech), about
    `speaker.MAX_WINDOWS` windows per clip in all."""
    from gsvd.trainer.speaker import MAX_WINDOWS

    parts = c.parts or [[c.start, c.end]]
    out = []
    for a, b in parts:
        share = (b - a) / max(c.seconds, 1e-3)
        seg = wav[max(0, int((a - c.start) * 16000)):int((b - c.start) * 16000)]
        out.append(encoder.features(seg if seg.size >= 1600 else wav, max(1, round(MAX_WINDOWS * share))))
    return out


def combine(m: dict) -> float:
    """0..1, higher is better."""
    snr = np.clip((m["snr_db"] - 10.0) / 30.0, 0.0, 1.0)
    rate_ok = 1.0 if 1.5 <= m["rate"] <= 7.0 else 0.5
    s = 0.4 * snr + 0.25 * (1 - m["music"]) + 0.2 * m["speech_ratio"] + 0.15 * rate_ok
    s -= 0.3 * min(1.0, m["clipping"] * 50) + 0.3 * m.get("overlap", 0.0)
    return float(np.clip(s, 0.0, 1.0))


def fingerprint(wav16: np.ndarray) -> np.ndarray:
    """Log-mel contour [frames(40 ms), 8 bands], mean-removed per band (gain-independent)."""
    from gsvd.trainer.quality import _MEL, _power_spec

    spec = _power_spec(np.asarray(wav16, np.float64))
    spec = spec[: spec.shape[0] // 2 * 2].reshape(-1, 2, spec.shape[1]).mean(axis=1)
    mel = np.log(spec @ _MEL.T + 1e-9)
    mel = mel.reshape(mel.shape[0], 8, 2).mean(axis=2)
    return mel - mel.mean(axis=0)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best normalized correlation of the shorter contour slid along the longer one."""
    if a.shape[0] > b.shape[0]:
        a, b = b, a
    n = a.shape[0]
    if n < 10:
        return 0.0
    win = np.lib.stride_tricks.sliding_window_view(b, (n, b.shape[1]))[:, 0]  # [offsets, n, 8]
    win = win - win.mean(axis=1, keepdims=True)
    num = (win * a).sum(axis=(1, 2))
    den = np.sqrt((win**2).sum(axis=(1, 2)) * (a**2).sum()) + 1e-9
    return float((num / den).max())


def _norm_text(t: str) -> str:
    return re.sub(r"[\W_]+", "", t.lower())


def select_clips(scores: list[ClipScore], target_seconds: float = 60.0, min_seconds: float = 10.0,
                 texts: dict[str, str] | None = None, prints: dict[str, np.ndarray] | None = None) -> list[ClipScore]:
    """Mark every clip kept/dropped with a reason (in place, best first); TrainError when too little is kept.
    Clips already dropped (`drop` set by the text or speaker checks) stay dropped."""
    order = sorted(scores, key=lambda s: -s.score)
    kept: list[ClipScore] = []
    total = 0.0
    for sc in order:
        sc.kept = False
        if sc.drop and sc.drop not in ("duplicate", "over budget"):
            continue
        sc.duplicate_of, sc.drop = None, ""
        sc.drop, sc.reason = _quality_problem(sc) or _duplicate(sc, kept, texts, prints) or ("", "")
        if sc.reason:
            continue
        if total >= target_seconds:
            sc.drop, sc.reason = "over budget", f"dropped: over the {target_seconds:g} s budget"
            continue
        sc.kept = True
        total += sc.seconds
        sc.reason = f"kept: rank {len(kept) + 1}, score {sc.score:.2f}"
        kept.append(sc)
    if total < min_seconds:
        why = Counter(s.drop for s in order if not s.kept and s.drop)
        detail = ", ".join(f"{n} x {r}" for r, n in why.most_common(4)) or "no clips at all"
        raise TrainError(f"not enough clean speech: found {total:.1f} s of usable clips, need at least "
                         f"{min_seconds:g} s (dropped: {detail}); add more or cleaner recordings")
    return order


def summary(scores: list[ClipScore]) -> str:
    """'kept N clips, S s; dropped: k music, m second speaker, ...' (the stage's last line)."""
    kept = [s for s in scores if s.kept]
    line = f"kept {len(kept)} clips, {sum(s.seconds for s in kept):.1f} s"
    why = Counter(s.drop or "other" for s in scores if not s.kept)
    if why:
        line += "; dropped: " + ", ".join(f"{n} {r}" for r, n in sorted(why.items(), key=lambda kv: (-kv[1], kv[0])))
    return line


def _quality_problem(sc: ClipScore) -> tuple[str, str] | None:
    if sc.snr_db < MIN_SNR:
        return "noise", f"dropped: too noisy (SNR {sc.snr_db:.1f} dB < {MIN_SNR:g})"
    if sc.music > MAX_MUSIC:
        return "music", f"dropped: music/noise under the speech ({sc.music:.2f} > {MAX_MUSIC})"
    if sc.clipping > MAX_CLIPPING:
        return "clipping", f"dropped: clipping ({sc.clipping * 100:.2f}% of samples)"
    if sc.speech_ratio < MIN_SPEECH:
        return "silence", f"dropped: mostly silence (speech ratio {sc.speech_ratio:.2f} < {MIN_SPEECH})"
    return None


def _duplicate(sc: ClipScore, kept: list[ClipScore], texts, prints) -> tuple[str, str] | None:
    for other in kept:
        if texts and sc.id in texts and other.id in texts:
            a, b = _norm_text(texts[sc.id]), _norm_text(texts[other.id])
            if a and b and (a == b or SequenceMatcher(None, a, b).ratio() >= 0.9):
                sc.duplicate_of = other.id
                return "duplicate", f"dropped: repeats the sentence of {other.id}"
        if prints and sc.id in prints and other.id in prints:
            sim = similarity(prints[sc.id], prints[other.id])
            if sim >= DUP_SIM:
                sc.duplicate_of = other.id
                return "duplicate", f"dropped: near-duplicate of {other.id} (similarity {sim:.2f})"
    return None


# -- text against audio ---------------------------------------------------------------------


@dataclass
class TextCheck:
    phone_rate: float
    cer: float | None
    problem: tuple[str, str] | None  # (category, reason) when the text does not fit the audio


def check_text(clip: Clip, ct: ClipText) -> TextCheck:
    """Phones per second of speech within the language's bounds, and (when an ASR heard the clip and the
    text is not the ASR's own) the character error rate against what it heard."""
    from gsvd.trainer.textalign import cer, phone_count

    phones = phone_count(ct.text, ct.lang)
    speech = max(clip.speech_seconds, 1e-3)
    rate = round(phones / speech, 2)
    lo, hi = RATE_BOUNDS.get(ct.lang, RATE_BOUNDS["en"])
    if not lo <= rate <= hi:
        what = "more" if rate > hi else "less"
        return TextCheck(rate, None, ("text mismatch", f"dropped: the text says {what} than the audio holds ({phones} "
                                      f"phones in {speech:.1f} s of speech = {rate:.1f}/s, {ct.lang} bounds "
                                      f"{lo:g}-{hi:g})"))
    if clip.heard is None or ct.origin.startswith("asr:"):
        return TextCheck(rate, None, None)
    err = round(cer(ct.text, clip.heard), 3)
    if err > MAX_CER:
        return TextCheck(rate, err, ("text mismatch", f"dropped: the text is not what is said (CER {err:.2f} > "
                                     f"{MAX_CER} against the ASR's {clip.heard[:60]!r})"))
    return TextCheck(rate, err, None)


def _relative_rate_problems(scores: list[ClipScore], texts: dict[str, ClipText]) -> None:
    """Without an ASR's verdict, a clip whose phone rate is far from the run's median rate for its language
    (outside `REL_RATE` times it) carries a text that belongs to a longer or shorter stretch of speech:
    a cue text swapped with another cue's, or one from another recording. Needs `REL_MIN_CLIPS` clips."""
    by_lang: dict[str, list[ClipScore]] = {}
    for sc in scores:
        if not sc.drop and sc.phone_rate is not None and sc.cer is None and sc.id in texts:
            by_lang.setdefault(texts[sc.id].lang, []).append(sc)
    lo, hi = REL_RATE
    for lang, rows in by_lang.items():
        if len(rows) < REL_MIN_CLIPS:
            continue
        med = float(np.median([sc.phone_rate for sc in rows]))
        for sc in rows:
            ratio = sc.phone_rate / med
            if not lo <= ratio <= hi:
                what = "more" if ratio > hi else "less"
                sc.drop, sc.reason = "text mismatch", (
                    f"dropped: the text says {what} than the audio holds for this talker's pace ({sc.phone_rate:.1f} "
                    f"phones/s of speech, {ratio:.2f}x the median {med:.1f} of the {len(rows)} {lang} clips; bounds "
                    f"{lo:g}-{hi:g}x): a cue text of another stretch of speech?")


NO_TEXT = ("no text", "dropped: no text (no subtitle cue, transcript line or --asr words for it)")


# -- the stage ---------------------------------------------------------------------------------


@dataclass
class SelectResult:
    scores: list[ClipScore]  # best first
    speakers: SpeakerDecision | None = None


def run_select(ws: Workspace, target_seconds: float = 60.0, min_seconds: float = 10.0,
               texts: dict[str, ClipText] | None = None, ref: np.ndarray | None = None, ref_label: str = "",
               encoder: SpeakerEncoder | None = None) -> SelectResult:
    """The whole stage over `segment/clips.json`; writes scores.json and the report even when it fails.
    `texts=None`: the text check is skipped (no transcript options at all yet)."""
    from gsvd.trainer.report import write_report
    from gsvd.trainer.speaker import DVectorEncoder, EvenSplit

    clips = ws.load_records("segment", "clips.json", Clip)
    encoder = encoder or DVectorEncoder.shared()
    windows: dict = {}
    scores, prints = score_clips(clips, ws, encoder, windows)
    decision: SpeakerDecision | None = None
    try:
        for sc, clip in zip(scores, clips, strict=True):
            problem = _quality_problem(sc)
            if problem is None and texts is not None:
                problem = _text_problem(sc, clip, texts.get(clip.id))
            if problem is not None:
                sc.drop, sc.reason = problem
        if texts is not None:
            _relative_rate_problems(scores, texts)
        voiced = [(sc, c) for sc, c in zip(scores, clips, strict=True) if sc.drop in ("", "text mismatch", "no text")]
        if len(voiced) >= 1:
            decision = _speakers(voiced, windows, encoder, ref, ref_label)
            _mixed_voices([(sc, c) for sc, c in voiced if sc.drop == ""], ws, encoder)
        order = select_clips(scores, target_seconds, min_seconds,
                             {k: v.text for k, v in (texts or {}).items()}, prints)
    except EvenSplit as exc:
        decision = exc.decision
        raise
    finally:
        ws.save_records("select", "scores.json", scores)
        write_report(scores, ws, decision)
    return SelectResult(order, decision)


def _text_problem(sc: ClipScore, clip: Clip, ct: ClipText | None) -> tuple[str, str] | None:
    if ct is None:
        return NO_TEXT
    check = check_text(clip, ct)
    sc.text, sc.phone_rate, sc.cer = ct.text, check.phone_rate, check.cer
    return check.problem


def _speakers(voiced, windows: dict, encoder: SpeakerEncoder, ref: np.ndarray | None,
              ref_label: str) -> SpeakerDecision:
    """Cluster the parts of the clips that passed the audio checks; mark each clip's voice and drop the
    clips that are (or hold) another voice."""
    from gsvd.trainer.speaker import EvenSplit, decide_speaker

    items, feats, secs = [], [], []
    for _, c in voiced:
        parts = c.parts or [[c.start, c.end]]
        for k, f in enumerate(windows[c.id]):
            items.append(f"{c.id}#{k}")
            feats.append(f)
            secs.append(parts[k][1] - parts[k][0])
    emb, _ = encoder.embed_features(feats)
    ref_emb = encoder.embed([ref])[0] if ref is not None else None
    try:
        d = decide_speaker(items, emb, secs, ref_emb, ref_label)
    except EvenSplit as exc:
        _mark_speakers(voiced, exc.decision, drop=False)
        raise
    _mark_speakers(voiced, d, drop=True)
    return d


def _mark_speakers(voiced, d: SpeakerDecision, drop: bool) -> None:
    for sc, c in voiced:
        mine = [i for i, item in enumerate(d.ids) if item.rsplit("#", 1)[0] == c.id]
        labels = [d.labels[i] for i in mine]
        sim = float(np.mean([d.similarity_to_voice(d.ids[i]) for i in mine]))
        other = [lab for lab in labels if lab != d.chosen]
        sc.speaker = other[0] if other else d.chosen
        sc.overlap = round(float(np.clip(1.0 - sim, 0.0, 1.0)), 4)
        sc.score = round(float(np.clip(sc.score - 0.3 * sc.overlap, 0.0, 1.0)), 4)
        if not drop or not other or sc.drop not in ("", "text mismatch", "no text"):
            continue
        if len(other) == len(labels):
            sc.drop, sc.reason = "second speaker", (f"dropped: second speaker (voice {sc.speaker}, similarity "
                                                    f"{sim:.2f} to the kept voice {d.chosen}; {d.how})")
        else:
            sc.drop, sc.reason = "second speaker", (f"dropped: second speaker in {len(other)} of its {len(labels)} "
                                                    f"parts (voice {sc.speaker}; the kept voice is {d.chosen})")


# -- two voices at once ----------------------------------------------------------------------------

MIX_HOP, MIX_SIM, MIX_RUN = 50, 0.78, 2  # 10 ms frames between windows; similarity; consecutive windows


def window_similarities(encoder: SpeakerEncoder, feats: list[np.ndarray]) -> list[np.ndarray]:
    """For each clip's dense windows (`dense_windows`), each window's cosine to the clip's own embedding."""
    emb, per = encoder.embed_features(feats)
    return [w @ e for w, e in zip(per, emb, strict=True)]


def dense_windows(wav16: np.ndarray, clip: Clip) -> np.ndarray | None:
    """1.6 s encoder windows every `MIX_HOP` frames (0.5 s) over the clip's speech; None when under 3."""
    from gsvd.engine.speaker_embed import WINDOW_FRAMES
    from gsvd.trainer.speaker import mel_frames

    parts = clip.parts or [[clip.start, clip.end]]
    a, b = int((parts[0][0] - clip.start) * 16000), int((parts[-1][1] - clip.start) * 16000)
    mel = mel_frames(wav16[max(0, a):max(a + 1, b)])
    starts = range(0, mel.shape[0] - WINDOW_FRAMES + 1, MIX_HOP)
    if len(starts) < 3:
        return None
    return np.stack([mel[s:s + WINDOW_FRAMES] for s in starts])


def mixed_run(sims: np.ndarray) -> tuple[int, int]:
    """(start index, length) of the longest run of windows below `MIX_SIM` (length 0: none)."""
    best, i = (0, 0), 0
    low = sims < MIX_SIM
    while i < low.size:
        if low[i]:
            j = i
            while j < low.size and low[j]:
                j += 1
            if j - i > best[1]:
                best = (i, j - i)
            i = j
        else:
            i += 1
    return best


def _mixed_voices(kept, ws: Workspace, encoder: SpeakerEncoder) -> None:
    """Drop clips where another voice talks over the kept one for a while (crosstalk): 1.6 s windows every
    0.5 s over the clip's speech, each compared with the clip's own embedding. Measured on LibriSpeech
    readers in shared/: windows of one voice stay at 0.81-0.97 to their clip (130 windows, 3 readers);
    2.5 s of a woman over a man at equal level brought 3 windows to 0.69-0.75 in one line. `MIX_RUN`
    windows in a row under `MIX_SIM` is a mix. This catches some crosstalk, not all: the same woman over
    another of his lines (even 3 dB louder), and a man over a man, left every window at 0.80 or above;
    that needs an overlap detector this stage does not have."""
    from gsvd.engine.audio import load_audio

    rows, feats = [], []
    for sc, c in kept:
        f = dense_windows(load_audio(ws.path(c.wav16), 16000), c)
        if f is not None:
            rows.append((sc, c))
            feats.append(f)
    if not feats:
        return
    for (sc, c), sims in zip(rows, window_similarities(encoder, feats), strict=True):
        i, n = mixed_run(sims)
        if n >= MIX_RUN:
            t0 = (c.parts or [[c.start]])[0][0] + i * MIX_HOP / 100
            sc.drop, sc.reason = "mixed voices", (
                f"dropped: another voice over the speech from {t0:.1f} s to {t0 + (n - 1) * MIX_HOP / 100 + 1.6:.1f} s "
                f"({n} windows of 1.6 s at similarity {float(sims[i:i + n].min()):.2f}-{float(sims[i:i + n].max()):.2f} "
                f"< {MIX_SIM} to the clip's own voice: crosstalk?)")


"""`gsvd train` segment + select on hard real-speech inputs: precision and recall of the kept clips.

    .venv/bin/python benchmarks/train_hard_bench.py [--case NAME ...]

Every case is built here from the real recordings in shared/data/speech (LibriSpeech test-other
readers, the CC0 noise, the Big Buck Bunny music inside the multi_speaker VAD file): a talk of
utterances with 0.8 s pauses, written as a WAV with (where the case has them) a sidecar .srt,
then `extract -> segment -> select` of the pipeline. The script the talk was built from says, for
every utterance, who speaks, what is said and whether its audio is clean. A kept clip is *right*
when every utterance with speech in it is the wanted speaker, clean, wholly inside the clip, and
the clip's text is exactly their text (no text to check when the case has no subtitles).
precision = right kept clips / kept clips; recall = good utterances (wanted speaker, clean, with
their own cue text, at least 2.7 s of speech) inside right kept clips / all good utterances. A run refused with a
TrainError counts as no clip kept (its message is printed). Last line: JSON.

Cases: clean control; subtitles shifted by +1, +2.5 and -1.5 s; cue texts swapped between cues
and one from another recording; two men interleaved (with and without subtitles); three
speakers where the wanted one has the least time but `--speaker-ref` is given; a music bed and
a noise bed at 0/5/10 dB under half the utterances; crosstalk (a second voice over 2.5 s of two
utterances, of the other and of the same sex).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "speech"
RATE = 16000
MIN_SPEECH = 2.7  # an utterance shorter than this cannot make a 3 s clip alone (not counted in recall)


@dataclass
class Seg:
    start: float
    end: float
    speaker: str
    text: str  # what is said
    clean: bool = True


@dataclass
class Case:
    name: str
    wanted: str
    audio: np.ndarray
    script: list[Seg]
    cues: list[tuple[float, float, str]] | None  # None: no subtitles
    ref: str | None = None
    texts_ok: dict[int, bool] = field(default_factory=dict)  # script index -> its cue text is its own


def _utts(speaker: str, n: int, skip: int = 0) -> list[tuple[np.ndarray, str]]:
    from gsvd.engine.audio import load_audio

    manifest = json.loads((SHARED / "manifest.json").read_text())
    rows = sorted((m for m in manifest if m["file"].startswith(f"en/librispeech_test-other/{speaker}/")
                   and m["transcript"] and 2.5 <= m["seconds"] <= 9.5), key=lambda m: m["file"])[skip:skip + n]
    return [(load_audio(SHARED / m["file"], RATE), m["transcript"].split(")", 1)[-1].strip()) for m in rows]


def _speech_bounds(wav: np.ndarray) -> tuple[float, float]:
    from gsvd.trainer.vad import speech_spans

    spans = speech_spans(wav) or [(0.0, wav.size / RATE)]
    return spans[0][0], spans[-1][1]


def _talk(items: list[tuple[np.ndarray, str, str]], gap: float = 0.8) -> tuple[np.ndarray, list[Seg]]:
    """(wav, text, speaker) one after another -> (audio, script of speech bounds)."""
    pieces, script, t = [np.zeros(int(0.5 * RATE), np.float32)], [], 0.5
    for wav, text, spk in items:
        a, b = _speech_bounds(wav)
        script.append(Seg(t + a, t + b, spk, text))
        pieces += [wav, np.zeros(int(gap * RATE), np.float32)]
        t += wav.size / RATE + gap
    return np.concatenate(pieces).astype(np.float32), script


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def _bed(kind: str) -> np.ndarray:
    from gsvd.engine.audio import load_audio

    if kind == "noise":
        return load_audio(SHARED / "noisy" / "dfn_noise_freesound_573577.wav", RATE)
    vad = load_audio(SHARED / "multi_speaker" / "vad_test_en_zh_ja.wav", RATE)
    return vad[int(44.9 * RATE):int(47.7 * RATE)]  # the 3 s music insert (see its JSON note)


def _mix_under(audio: np.ndarray, seg: Seg, bed: np.ndarray, snr_db: float) -> None:
    a, b = int((seg.start - 0.2) * RATE), int((seg.end + 0.2) * RATE)
    speech = audio[int(seg.start * RATE):int(seg.end * RATE)]
    reps = int(np.ceil((b - a) / bed.size))
    fade = np.minimum(1.0, np.arange(bed.size) / 800)[None, :] * np.minimum(1.0, np.arange(bed.size)[::-1] / 800)
    loop = np.tile(bed * fade[0], reps)[: b - a]
    audio[a:b] += loop * (_rms(speech) / _rms(bed) * 10 ** (-snr_db / 20))


def _cues(script: list[Seg], shift: float = 0.0, texts: dict[int, str] | None = None):
    return [(max(0.0, s.start + shift), s.end + shift, (texts or {}).get(i, s.text)) for i, s in enumerate(script)]


def build_cases() -> list[Case]:
    cases = []
    f = _utts("3080", 6)
    audio, script = _talk([(w, t, "3080") for w, t in f])
    cases.append(Case("clean (control)", "3080", audio, script, _cues(script)))
    m = _utts("2609", 6)
    audio, script = _talk([(w, t, "2609") for w, t in m])
    for shift in (1.0, 2.5, -1.5):
        cases.append(Case(f"subtitles shifted {shift:+g} s", "2609", audio, script, _cues(script, shift)))
    pool = _utts("1998", 9)
    g, short = pool[:6], min(pool[6:], key=lambda u: u[0].size)[1]
    audio, script = _talk([(w, t, "1998") for w, t in g])
    other = _utts("2414", 1)[0][1]
    # 3 <-> 4 are of about the same length (only an ASR can tell); 1 gets a much shorter line of the same
    # reader from elsewhere, 2 a line of another recording
    wrong = {3: script[4].text, 4: script[3].text, 1: short, 2: other}
    cases.append(Case("cue texts swapped / foreign", "1998", audio, script, _cues(script, texts=wrong),
                      texts_ok={i: i not in wrong for i in range(len(script))}))
    a, b = _utts("1688", 8), _utts("2033", 2)
    order = [(a[0], "1688"), (b[0], "2033"), (a[1], "1688"), (a[2], "1688"), (a[3], "1688"), (a[4], "1688"),
             (a[5], "1688"), (b[1], "2033"), (a[6], "1688"), (a[7], "1688")]
    audio, script = _talk([(w, t, spk) for (w, t), spk in order])
    cases.append(Case("two men interleaved, subtitles", "1688", audio, script, _cues(script)))
    cases.append(Case("two men interleaved, no text", "1688", audio, script, None))
    w3, x3, y3 = _utts("3080", 2, skip=4), _utts("1998", 5), _utts("2033", 2, skip=3)
    order = [(x3[0], "1998"), (w3[0], "3080"), (x3[1], "1998"), (y3[0], "2033"), (x3[2], "1998"), (w3[1], "3080"),
             (x3[3], "1998"), (y3[1], "2033"), (x3[4], "1998")]
    audio, script = _talk([(w, t, spk) for (w, t), spk in order])
    ref = str(sorted((SHARED / "en" / "librispeech_test-other" / "3080").glob("*.flac"))[-1])
    cases.append(Case("3 speakers, wanted least, --speaker-ref", "3080", audio, script, _cues(script), ref=ref))
    for kind, spk in (("music", "2033"), ("noise", "3005")):
        u = _utts(spk, 6)
        audio, script = _talk([(w, t, spk) for w, t in u])
        bed = _bed(kind)
        for i, snr in ((1, 0.0), (3, 5.0), (5, 10.0)):
            _mix_under(audio, script[i], bed, snr)
            script[i].clean = False
        cases.append(Case(f"{kind} bed 0/5/10 dB under 3 of 6", spk, audio, script, _cues(script)))
    for other_spk, label in (("1998", "other sex"), ("2033", "same sex")):
        u, o = _utts("3005", 6, skip=1), _utts(other_spk, 2, skip=5)
        audio, script = _talk([(w, t, "3005") for w, t in u])
        for i, (w, _) in zip((1, 4), o, strict=True):
            seg = script[i]
            a = int((seg.start + 0.3 * (seg.end - seg.start)) * RATE)
            piece = w[int(0.3 * RATE):int(2.8 * RATE)]
            speech = audio[int(seg.start * RATE):int(seg.end * RATE)]
            audio[a:a + piece.size] += piece * (_rms(speech) / _rms(piece))
            seg.clean = False
        cases.append(Case(f"crosstalk 2.5 s in 2 of 6 ({label})", "3005", audio, script, _cues(script)))
    return cases


def _norm(t: str) -> str:
    return re.sub(r"[\W_]+", " ", t.lower()).strip()


def evaluate(case: Case, kept) -> tuple[int, int, int, int]:
    """-> (kept, right kept, good utterances covered by right clips, good utterances)."""
    good = [i for i, s in enumerate(case.script) if s.speaker == case.wanted and s.clean
            and case.texts_ok.get(i, True) and s.end - s.start >= MIN_SPEECH]
    right, covered = 0, set()
    for clip, sc in kept:
        inside = [i for i, s in enumerate(case.script) if min(s.end, clip.end) - max(s.start, clip.start) > 0.3]
        ok = bool(inside) and all(case.script[i].speaker == case.wanted and case.script[i].clean and
                                  clip.start <= case.script[i].start + 0.1 and case.script[i].end - 0.1 <= clip.end
                                  for i in inside)
        if ok and case.cues is not None:
            ok = _norm(sc.text or "") == _norm(" ".join(case.script[i].text for i in inside))
        right += ok
        if ok:
            covered |= {i for i in inside if i in good}
    return len(kept), right, len(covered), len(good)


def run_case(case: Case, root: Path) -> dict:
    from gsvd.trainer.pipeline import RunSettings, run_stage
    from gsvd.trainer.records import Clip, ClipScore, TrainError
    from gsvd.trainer.sample_video import write_srt
    from gsvd.trainer.workspace import Workspace
    from gsvd.wavio import write_wav

    src = write_wav(root / "talk.wav", case.audio, RATE)
    if case.cues is not None:
        write_srt(root / "talk.srt", case.cues)
    s = RunSettings(name="bench", consent="LibriSpeech readers, CC BY 4.0, benchmark", inputs=[str(src)],
                    min_seconds=1.0, target_seconds=10000.0, voices_dir=str(root / "voices"), device="cpu",
                    speaker_ref=case.ref)
    ws = Workspace(root / "run")
    ws.root.mkdir()
    s.save(ws)
    lines: list[str] = []
    error, times = "", {}
    for stage in ("extract", "segment", "select"):
        t0 = time.perf_counter()
        try:
            run_stage(ws, s, stage, lines.append, force=True)
        except TrainError as exc:
            error = f"{stage}: {exc}"
            break
        finally:
            times[stage] = round(time.perf_counter() - t0, 2)
    kept = []
    if not error:
        clips = {c.id: c for c in ws.load_records("segment", "clips.json", Clip)}
        kept = [(clips[sc.id], sc) for sc in ws.load_records("select", "scores.json", ClipScore) if sc.kept]
    n, right, covered, good = evaluate(case, kept)
    return {"case": case.name, "kept": n, "right": right, "precision": round(right / n, 3) if n else None,
            "recall": round(covered / good, 3) if good else None, "good": good, "error": error[:300],
            "seconds": round(case.audio.size / RATE, 1), "times": times,
            "notes": [x for x in lines if x.startswith("[segment] talk.wav") or "shift" in x or "offset" in x]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", action="append", help="run only cases whose name contains this")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"shared speech not found at {SHARED}")
    rows = []
    for case in build_cases():
        if args.case and not any(k in case.name for k in args.case):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(run_case(case, Path(tmp)))
        r = rows[-1]
        p = "-" if r["precision"] is None else f"{r['precision']:.2f}"
        print(f"{r['case']:42s} kept {r['kept']:2d} right {r['right']:2d} P {p:>4s} R {r['recall']:.2f} "
              f"({r['seconds']:.0f} s; select {r['times'].get('select', 0):.1f} s)"
              + (f"  REFUSED {r['error'][:150]}" if r["error"] else ""), flush=True)
        for note in r["notes"]:
            print("    " + note[:160])
    scored = [r for r in rows if r["precision"] is not None]
    out = {"cases": rows, "mean_precision": round(float(np.mean([r["precision"] for r in scored])), 3) if scored else None,
           "mean_recall": round(float(np.mean([r["recall"] for r in rows if r["recall"] is not None])), 3)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

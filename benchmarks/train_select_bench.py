"""`gsvd train select`: time the text and speaker checks add to the stage, per minute of input audio.

    .venv/bin/python benchmarks/train_select_bench.py [--rounds 3]

Input: every LibriSpeech test-other utterance in shared/data/speech (7 speakers, ~9.5 min) in
one file with a sidecar .srt of their transcripts, cut by `segment` on the cues (extract and
segment are not timed). Then, alternating in one process, `rounds` times each:
- baseline: what select did before the checks -- the audio measures of every clip
  (`score_clips` without a speaker encoder), dedupe + budget (`select_clips`), the report;
- full: `run_select` with the clips' texts and `--speaker-ref` (speaker 3080), i.e. the same
  plus phone counts and rates, speaker-encoder input per clip part, one batched d-vector pass,
  clustering, the similarity matrix in the report and its plot.
The machine is shared: the minimum over rounds of each (wall and this process's CPU seconds)
is compared, with the load average printed. One-time costs (loading the encoder weights and
the English G2P dictionary) are timed apart, in a warm-up that is not counted. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "speech"


def _timed(fn) -> tuple[float, float, object]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def build(root: Path):
    import numpy as np

    from gsvd.engine.audio import load_audio
    from gsvd.trainer.pipeline import RunSettings
    from gsvd.trainer.sample_video import write_srt
    from gsvd.wavio import write_wav

    manifest = json.loads((SHARED / "manifest.json").read_text())
    rows = sorted((m for m in manifest if m["file"].startswith("en/librispeech_test-other/") and m["transcript"]),
                  key=lambda m: m["file"])
    pieces, cues, t = [np.zeros(8000, np.float32)], [], 0.5
    for m in rows:
        wav = load_audio(SHARED / m["file"], 16000)
        cues.append((t, t + wav.size / 16000, m["transcript"].split(")", 1)[-1].strip()))
        pieces += [wav, np.zeros(12000, np.float32)]
        t += wav.size / 16000 + 0.75
    audio = np.concatenate(pieces)
    src = write_wav(root / "readers.wav", audio, 16000)
    write_srt(root / "readers.srt", cues)
    return RunSettings(name="bench", consent="LibriSpeech readers, CC BY 4.0, benchmark", inputs=[str(src)],
                       min_seconds=1.0, target_seconds=10000.0, voices_dir=str(root / "voices"), device="cpu",
                       speaker_ref=str(SHARED / "en" / "librispeech_refs" / "spk3080_ref.wav")), audio.size / 16000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"shared speech not found at {SHARED}")
    import torch

    from gsvd.engine.audio import load_audio
    from gsvd.trainer.pipeline import run_all
    from gsvd.trainer.records import Clip
    from gsvd.trainer.report import write_report
    from gsvd.trainer.select import run_select, score_clips, select_clips
    from gsvd.trainer.speaker import DVectorEncoder
    from gsvd.trainer.textalign import phone_count
    from gsvd.trainer.textsource import resolve_text
    from gsvd.trainer.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        s, seconds = build(root)
        ws = Workspace(root / "run")
        ws.root.mkdir()
        s.save(ws)
        run_all(ws, s, lambda m: None, stages=("extract", "segment"))
        clips = ws.load_records("segment", "clips.json", Clip)
        plan = s.text_plan()
        texts = {c.id: t for c in clips if (t := resolve_text(c, plan))}
        ref = load_audio(s.speaker_ref, 16000)
        load_w, load_c, _ = _timed(DVectorEncoder.shared)
        g2p_w, g2p_c, _ = _timed(lambda: phone_count("warm up the dictionary", "en"))

        def baseline():
            scores, prints = score_clips(clips, ws)
            order = select_clips(scores, s.target_seconds, s.min_seconds, {k: v.text for k, v in texts.items()}, prints)
            write_report(order, ws)
            return order

        def full():
            return run_select(ws, s.target_seconds, s.min_seconds, texts=texts, ref=ref, ref_label="spk3080_ref.wav")

        base, ours = [], []
        loads = [os.getloadavg()[0]]
        for _ in range(args.rounds):
            base.append(_timed(baseline)[:2])
            w, c, res = _timed(full)
            ours.append((w, c))
            loads.append(os.getloadavg()[0])
        kept = sum(sc.kept for sc in res.scores)
    minutes = seconds / 60
    bw, bc = min(b[0] for b in base), min(b[1] for b in base)
    ow, oc = min(o[0] for o in ours), min(o[1] for o in ours)
    out = {
        "input_minutes": round(minutes, 2), "clips": len(clips), "kept": kept, "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_avg_1min": [round(x, 1) for x in loads],
        "baseline_wall_s": round(bw, 2), "full_wall_s": round(ow, 2), "baseline_cpu_s": round(bc, 2),
        "full_cpu_s": round(oc, 2),
        "added_wall_s_per_min": round((ow - bw) / minutes, 3), "added_cpu_s_per_min": round((oc - bc) / minutes, 3),
        "once_encoder_load_wall_s": round(load_w, 2), "once_g2p_load_wall_s": round(g2p_w, 2),
        "all_rounds_wall_s": {"baseline": [round(b[0], 2) for b in base], "full": [round(o[0], 2) for o in ours]},
    }
    print(f"input {minutes:.1f} min, {len(clips)} clips ({kept} kept, speaker 3080 by --speaker-ref)")
    print(f"baseline select {bw:.2f} s wall / {bc:.2f} s CPU; with text + speaker checks {ow:.2f} s / {oc:.2f} s")
    print(f"added: {out['added_wall_s_per_min']:.3f} s wall, {out['added_cpu_s_per_min']:.3f} s CPU per minute of "
          f"input (+ once per process: encoder {load_w:.2f} s, G2P dictionary {g2p_w:.2f} s); load {out['load_avg_1min']}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()

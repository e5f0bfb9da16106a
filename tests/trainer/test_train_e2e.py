"""`gsvd train` end to end on CPU with the tiny preset: real recorded speech (LibriSpeech
speaker 3080 from shared/) muxed into an mp4 with an SRT of its transcripts -> every stage ->
a voice bundle the engine speaks with; loss curves fall; a killed fit resumes from its last
save; bad inputs give clear errors and leave nothing half-written.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gsvd.trainer.pipeline import RunSettings, run_all
from gsvd.trainer.workspace import STAGES, Workspace

pytest.importorskip("av")
pytest.importorskip("silero_vad")
pytestmark = pytest.mark.xdist_group("train_e2e")  # one worker builds the run folder once

SPEAKER = "3080"
GAP = 0.8


def _cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None):
    cmd = [sys.executable, "-c", "from gsvd.cli import app; app()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _utterances(shared: Path, n: int = 6) -> list[tuple[Path, str]]:
    manifest = json.loads((shared / "manifest.json").read_text())
    rows = [m for m in manifest if m["file"].startswith(f"en/librispeech_test-other/{SPEAKER}/")]
    rows = [m for m in sorted(rows, key=lambda m: m["file"]) if 3.0 <= m["seconds"] <= 9.0 and m["transcript"]]
    return [(shared / m["file"], m["transcript"].split(")", 1)[-1].strip()) for m in rows[:n]]


@pytest.fixture(scope="module")
def video(shared_speech, tmp_path_factory) -> tuple[Path, Path, float, float]:
    """(mp4 of 5-6 real utterances with 0.8 s gaps, its sidecar .srt, seconds of speech, total seconds)."""
    from gsvd.engine.audio import load_audio
    from gsvd.trainer.sample_video import mux_video, write_srt

    folder = tmp_path_factory.mktemp("video")
    pieces, cues, t = [np.zeros(8000, np.float32)], [], 0.5
    for path, text in _utterances(shared_speech):
        wav = load_audio(path, 16000)
        cues.append((t, t + len(wav) / 16000, text))
        pieces += [wav, np.zeros(int(GAP * 16000), np.float32)]
        t += len(wav) / 16000 + GAP
    audio = np.concatenate(pieces)
    mp4 = mux_video(folder / "speaker3080.mp4", audio, 16000)
    return mp4, write_srt(folder / "speaker3080.srt", cues), sum(e - s for s, e, _ in cues), audio.size / 16000


def _settings(video_path: Path, root: Path, **kw) -> RunSettings:
    base = dict(name="alice", consent="test speaker; LibriSpeech CC BY 4.0 recording", inputs=[str(video_path)],
                from_scratch="tiny", epochs=4, gpt_epochs=4, save_every=2, batch_size=2, device="cpu",
                min_seconds=5.0, voices_dir=str(root / "voices"))
    base.update(kw)
    return RunSettings(**base)


@pytest.fixture(scope="module")
def prepared(video, tmp_path_factory) -> tuple[Workspace, RunSettings, list[str]]:
    """A run folder with extract..features done (shared by the tests below)."""
    root = tmp_path_factory.mktemp("run")
    ws = Workspace(root / "alice")
    ws.root.mkdir()
    s = _settings(video[0], root)
    s.save(ws)
    lines: list[str] = []
    run_all(ws, s, lines.append, stages=STAGES[:5])
    return ws, s, lines


def test_data_stages_find_the_speech_and_its_text(prepared, video):
    from gsvd.trainer.records import Clip, ClipScore, SourceAudio, Utterance

    ws, _, _ = prepared
    (src,) = ws.load_records("extract", "sources.json", SourceAudio)
    assert abs(src.seconds - video[3]) < 0.1
    clips = ws.load_records("segment", "clips.json", Clip)
    assert clips and all(2.99 <= c.seconds <= 10.01 for c in clips)
    speech = sum(c.seconds for c in clips)
    assert 0.8 * video[2] <= speech <= 1.2 * video[2] + 2, (speech, video[2])
    scores = ws.load_records("select", "scores.json", ClipScore)
    assert {s.id for s in scores} == {c.id for c in clips} and any(s.kept for s in scores)
    assert (ws.root / "select" / "report.md").stat().st_size > 0 and (ws.root / "select" / "scores.png").is_file()
    utts = ws.load_records("transcribe", "utterances.json", Utterance)
    truth = " ".join(text for _, _, text in _cues(video[1])).lower()
    assert utts and all(u.lang == "en" and u.text and u.text.lower()[:20] in truth for u in utts)
    listed = (ws.root / "transcribe" / "train.list").read_text().splitlines()
    assert len(listed) == len(utts) and all(line.count("|") >= 3 and "|alice|en|" in line for line in listed)


def _cues(srt: Path):
    from gsvd.trainer.subtitles import read_subtitles

    return [(c.start, c.end, c.text) for c in read_subtitles(srt)]


def test_features_have_the_contracted_shapes(prepared):
    from gsvd.trainer.features import load_items

    ws, _, _ = prepared
    items = load_items(ws)
    assert items
    for it in items:
        tp, t50 = it["phones"].numel(), it["ssl"].shape[-1]
        assert it["bert"].shape == (1024, tp) and it["ssl"].shape[0] == 32
        assert abs(it["codes"].numel() * 2 - t50) <= 2
        assert it["spec"].shape[0] == 1025 and abs(it["spec"].shape[-1] - t50) <= 2
        assert abs(it["wav"].numel() / 640 - it["spec"].shape[-1]) <= 2


def test_train_command_makes_a_voice_that_speaks(prepared, video, tmp_path):
    from gsvd.engine import Engine, SynthesisOptions
    from gsvd.engine.bundle import load_bundle

    ws, s, _ = prepared
    r = _cli("train", str(video[0]), "--name", "alice", "--consent", s.consent, "--workdir", str(ws.root),
             "--from-scratch", "tiny", "--epochs", "4", "--gpt-epochs", "4", "--save-every", "2",
             "--batch-size", "2", "--device", "cpu", "--min-seconds", "5", "--voices-dir", s.voices_dir)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "up to date" in r.stdout  # extract..features were done by the fixture, with the same inputs
    for stage in ("segment", "select", "transcribe"):  # each stage's totals line, also when it was up to date
        assert re.search(rf"\[{stage}\] up to date \(inputs unchanged\); skipping: kept \d+ clips, [\d.]+ s", r.stdout), r.stdout
    bundle = load_bundle(Path(s.voices_dir) / "alice")
    assert bundle.consent["statement"] == s.consent
    prov = bundle.provenance
    assert prov["sources"][0]["sha256"] and prov["clips"] and prov["created_by"] == "gsvd train"
    info = json.loads((ws.root / "fit" / "done.json").read_text())["info"]
    sov, gpt = info["sovits_epoch_losses"], info["gpt_epoch_losses"]
    assert len(sov) == 4 and len(gpt) == 4
    assert sov[-1]["loss_mel"] < sov[0]["loss_mel"], sov
    assert gpt[-1]["loss"] < gpt[0]["loss"], gpt
    samples = sorted(p.name for p in (ws.root / "fit" / "samples").iterdir())
    assert samples == ["gpt-e2", "gpt-e4", "sovits-e2", "sovits-e4"]
    kept = sorted(p.name for p in (ws.root / "fit" / "epochs").iterdir())  # the weights each sample was made with
    assert kept == ["gpt-e2.ckpt", "gpt-e4.ckpt", "sovits-e2.pth", "sovits-e4.pth"]
    metrics = json.loads((ws.root / "fit" / "samples" / "gpt-e4" / "metrics.json").read_text())
    assert all(row["seconds"] > 0 for row in metrics["sentences"])
    import soundfile as sf

    from gsvd.engine.testing.audio import audibility_problems

    sample, sample_rate = sf.read(ws.root / "fit" / "samples" / "gpt-e4" / "0.wav")
    assert audibility_problems(sample, sample_rate) == []
    with Engine(device="cpu", max_streams=2) as eng:
        eng.load_voice(bundle.path)
        pcm, rate = eng.synthesize("Hello there, how are you today?", "alice", SynthesisOptions(seed=1, max_new_tokens=60))
    assert rate == 32000 and pcm.size > 0 and np.isfinite(pcm).all()
    # babble, but audible: a speaking level, no DC offset, the energy in the speech band, not silence
    assert audibility_problems(pcm, rate) == []


def _fitted_copy(prepared, tmp_path: Path, **overrides) -> tuple[Workspace, RunSettings]:
    """A copy of the prepared run folder with a quick fit (1 epoch each, no samples, unless overridden) done."""
    import dataclasses
    import shutil

    from gsvd.trainer.pipeline import run_stage

    ws0, s0, _ = prepared
    ws = Workspace(tmp_path / "alice")
    shutil.copytree(ws0.root, ws.root, ignore=shutil.ignore_patterns("fit", "package"))
    s = dataclasses.replace(s0, **{"epochs": 1, "gpt_epochs": 1, "samples": 0, **overrides})
    s.save(ws)
    run_stage(ws, s, "fit", lambda msg: None)
    return ws, s


def test_package_takes_the_weights_of_a_chosen_epoch(prepared, tmp_path):
    """--sovits-epoch / --gpt-epoch package the weights kept at those saves (not the final ones); an epoch
    that was not saved is an error naming the saved ones, and nothing is written."""
    from gsvd.engine.bundle import load_bundle
    from gsvd.trainer.pipeline import run_stage
    from gsvd.trainer.records import TrainError

    ws, s = _fitted_copy(prepared, tmp_path, epochs=2, gpt_epochs=2, save_every=1, voices_dir=str(tmp_path / "v"))
    assert sorted(p.name for p in (ws.root / "fit" / "epochs").iterdir()) == [
        "gpt-e1.ckpt", "gpt-e2.ckpt", "sovits-e1.pth", "sovits-e2.pth"]
    run_stage(ws, s, "package", lambda msg: None)
    final = load_bundle(tmp_path / "v" / "alice")
    s.sovits_epoch, s.gpt_epoch = 1, 1
    lines: list[str] = []
    run_stage(ws, s, "package", lines.append)
    early = load_bundle(tmp_path / "v" / "alice")
    assert early.model_id != final.model_id  # other weights
    assert early.provenance["training"]["sovits_epoch"] == 1 and early.provenance["training"]["gpt_epoch"] == 1
    assert early.provenance["training"]["losses"]["gpt"]["epoch"] == 1
    assert any("sovits-e1.pth + gpt-e1.ckpt" in line for line in lines)
    s.gpt_epoch = 5
    with pytest.raises(TrainError, match=r"no gpt weights were kept at epoch 5 \(saved epochs: 1, 2\)"):
        run_stage(ws, s, "package", lambda msg: None)
    assert load_bundle(tmp_path / "v" / "alice").model_id == early.model_id


def test_v2pro_voice_from_the_same_clips(prepared, tmp_path):
    """v2Pro: the features stage adds speaker embeddings, SoVITS trains with them, the bundle is v2Pro."""
    import dataclasses
    import shutil

    from gsvd.engine.bundle import load_bundle

    ws0, s0, _ = prepared
    ws = Workspace(tmp_path / "alice")
    shutil.copytree(ws0.root, ws.root, ignore=shutil.ignore_patterns("features", "fit", "package", "base"))
    s = dataclasses.replace(s0, version="v2Pro", epochs=1, gpt_epochs=1, samples=0, voices_dir=str(tmp_path / "v"))
    s.save(ws)
    run_all(ws, s, lambda msg: None, stages=STAGES[4:])
    from gsvd.trainer.features import load_items

    assert all(it["sv"].shape == (20480,) for it in load_items(ws))
    bundle = load_bundle(tmp_path / "v" / "alice")
    assert bundle.version == "v2Pro"


def test_package_builds_onnx_and_registers_with_a_running_daemon(prepared, tmp_path):
    from gsvd.clients import Client
    from gsvd.daemon.background import serve_in_thread
    from gsvd.daemon.config import DaemonConfig
    from gsvd.engine import Engine
    from gsvd.trainer.pipeline import run_stage

    voices = tmp_path / "served"
    voices.mkdir()
    cfg = DaemonConfig.load(None, env={}, port=0, voices_dir=str(voices), device="cpu", grace_s=1.0,
                            admin_token="s3cret")
    running = serve_in_thread(Engine(device="cpu", max_streams=2), cfg)
    try:
        ws, s = _fitted_copy(prepared, tmp_path, voices_dir=str(voices), build=True, register=running.address,
                             token="s3cret")
        lines: list[str] = []
        info = run_stage(ws, s, "package", lines.append)
        assert "registered 'alice'" in info["registered"]
        build = "\n".join(info["build"])
        assert "exported" in build and "parity gpt_decode" in build
        assert "skipped TensorRT engines" in build or "engine " in build  # TensorRT present: engines built
        assert (voices / "alice" / "onnx").is_dir()
        with Client(running.address, token="s3cret") as client:
            assert "alice" in [v.name for v in client.voices()]
            pcm, rate = client.synthesize("Hello.", "alice", seed=1, max_new_tokens=20)
        assert rate == 32000 and len(pcm) > 0
        assert json.loads((ws.root / "run.json").read_text())["token"] is None  # the secret is not stored
        s.token = "wrong"
        with pytest.raises(Exception, match="refused the voice"):
            run_stage(ws, s, "package", lines.append, force=True)
    finally:
        running.stop()


def test_disk_full_while_packaging_leaves_no_half_bundle(prepared, tmp_path):
    """The package stage in a process whose files may not exceed 64 KiB (RLIMIT_FSIZE: writes fail
    with EFBIG, as on a full disk): a clear error, no bundle and no temp folder left."""
    import resource

    voices = tmp_path / "full-disk-voices"
    ws, _ = _fitted_copy(prepared, tmp_path, voices_dir=str(voices))

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    cmd = [sys.executable, "-c", "from gsvd.cli import app; app()", "train", "package", "--workdir", str(ws.root)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "could not write the voice bundle" in r.stderr and "nothing was left behind" in r.stderr
    assert not voices.exists() or not any(voices.iterdir()), list(voices.iterdir())
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # space again: the same command works
    assert r.returncode == 0, r.stdout + r.stderr
    assert (voices / "alice" / "voice.toml").is_file()


def test_packaging_never_replaces_another_voice(prepared, tmp_path):
    from gsvd.engine.testing.bundle import write_tiny_voice
    from gsvd.trainer.pipeline import run_stage
    from gsvd.trainer.records import TrainError

    voices = tmp_path / "voices"
    ws, s = _fitted_copy(prepared, tmp_path, voices_dir=str(voices))
    existing = write_tiny_voice(voices / "alice", name="alice")
    before = (existing / "voice.toml").read_bytes()
    with pytest.raises(TrainError, match="already exists .* not made by this run"):
        run_stage(ws, s, "package", lambda msg: None)
    with pytest.raises(TrainError, match="already exists .* not made by this run"):  # checked before any stage
        run_all(ws, s, lambda msg: None)
    assert (existing / "voice.toml").read_bytes() == before
    s.voices_dir = str(tmp_path / "other")
    run_stage(ws, s, "package", lambda msg: None)
    run_stage(ws, s, "package", lambda msg: None, force=True)  # re-packaging its own voice is fine


def test_killed_fit_resumes_from_the_last_save(prepared, tmp_path):
    import shutil

    ws, s, _ = prepared
    run = tmp_path / "alice"
    shutil.copytree(ws.root, run, ignore=shutil.ignore_patterns("fit", "package"))
    args = ("train", "fit", "--workdir", str(run), "--epochs", "6", "--gpt-epochs", "1", "--save-every", "1",
            "--samples", "0")
    proc = subprocess.Popen([sys.executable, "-c", "from gsvd.cli import app; app()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = run / "fit" / "sovits" / "last.pt"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if last.is_file() and _saved_epoch(last) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "fit finished before it could be killed:\n" + proc.stdout.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _saved_epoch(last)
    assert 2 <= killed_at < 6
    r = _cli(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resum" in r.stdout.lower()
    info = json.loads((run / "fit" / "done.json").read_text())["info"]
    epochs = [row["epoch"] for row in info["sovits_epoch_losses"]]
    assert epochs == list(range(1, 7)), epochs  # the epochs before the kill are kept, none repeated
    assert not list((run / "fit").rglob("*.tmp"))


def _saved_epoch(path: Path) -> int:
    import torch

    for _ in range(20):
        try:
            return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
        except Exception:  # being replaced right now
            time.sleep(0.05)
    return -1

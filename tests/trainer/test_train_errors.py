"""`gsvd train` on bad input: a clear message naming the file, exit code 2, nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("silero_vad")


def _train(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from gsvd.cli import app; app()", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def _common(tmp: Path, name: str = "bob") -> list[str]:
    return ["--name", name, "--consent", "synthetic test input", "--workdir", str(tmp / "run"),
            "--from-scratch", "tiny", "--device", "cpu", "--voices-dir", str(tmp / "voices"), "--epochs", "1",
            "--gpt-epochs", "1"]


def _video_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=5)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        for i in range(10):
            for pkt in v.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20, np.uint8), format="rgb24")):
                out.mux(pkt)
        for pkt in v.encode(None):
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def talker(tmp_path_factory) -> tuple[Path, Path]:
    from gsvd.trainer.sample_video import make_sample

    return make_sample(tmp_path_factory.mktemp("talker"), n_phrases=4)


def test_video_without_audio_names_the_file(tmp_path):
    video = _video_only(tmp_path / "silent-film.mp4")
    r = _train(str(video), *_common(tmp_path))
    assert r.returncode == 2
    assert "silent-film.mp4" in r.stderr and "audio" in r.stderr.lower()
    assert not (tmp_path / "voices").exists()


def test_zero_length_file(tmp_path):
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    r = _train(str(empty), *_common(tmp_path))
    assert r.returncode == 2 and "empty.mkv" in r.stderr


def test_one_bad_file_does_not_stop_the_batch(tmp_path, talker):
    junk = tmp_path / "junk.webm"
    junk.write_bytes(os.urandom(4096))
    r = _train("extract", str(junk), str(talker[0]), "--name", "bob", "--workdir", str(tmp_path / "run"),
               "--consent", "synthetic test input")
    assert r.returncode == 0, r.stderr
    assert "junk.webm" in r.stdout and "1 file(s)" in r.stdout


def test_no_speech_found(tmp_path):
    from gsvd.trainer.sample_video import mux_video

    rng = np.random.default_rng(0)
    hum = (0.01 * rng.standard_normal(16000 * 6)).astype(np.float32)  # 6 s of faint noise, no speech
    video = mux_video(tmp_path / "room-tone.mp4", hum, 16000)
    r = _train(str(video), *_common(tmp_path))
    assert r.returncode == 2 and "no speech" in r.stderr.lower()


def test_not_enough_clean_speech_says_how_much_was_found(tmp_path, talker):
    r = _train(str(talker[0]), *_common(tmp_path), "--min-seconds", "600")
    assert r.returncode == 2
    assert "600" in r.stderr and " s" in r.stderr  # found vs asked
    assert not (tmp_path / "voices").exists()


def test_subtitles_that_do_not_match(tmp_path, talker):
    from gsvd.trainer.sample_video import write_srt

    wrong = write_srt(tmp_path / "other.srt", [(300.0, 304.0, "a cue far beyond the end of the audio")])
    r = _train(str(talker[0]), *_common(tmp_path), "--min-seconds", "5", "--subtitles", str(wrong))
    assert r.returncode == 2 and "other.srt" in r.stderr and "match" in r.stderr


def test_bad_voice_name_and_unknown_preset(tmp_path, talker):
    r = _train(str(talker[0]), *_common(tmp_path, name="../evil"))
    assert r.returncode == 2 and "name" in r.stderr.lower()
    args = _common(tmp_path)
    args[args.index("tiny")] = "huge"
    r = _train(str(talker[0]), *args)
    assert r.returncode == 2


def test_stage_without_a_run_folder(tmp_path):
    r = _train("select", "--workdir", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "run.json" in r.stderr


def test_consent_is_checked_before_anything_runs(tmp_path, talker):
    """A blank or empty consent record stops the run before extract (it used to fail after the whole fit)."""
    args = _common(tmp_path)
    for bad in ("   ", "ok"):
        args[args.index("--consent") + 1] = bad
        r = _train(str(talker[0]), *args)
        assert r.returncode == 2 and "consent" in r.stderr.lower(), r.stderr
        assert not (tmp_path / "run").exists() and not (tmp_path / "voices").exists()
    r = _train("extract", str(talker[0]), "--name", "bob", "--workdir", str(tmp_path / "run"))
    assert r.returncode == 2 and "consent record is required" in r.stderr

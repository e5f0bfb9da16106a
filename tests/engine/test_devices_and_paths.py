"""User mistakes end in a sentence, not a traceback: device strings are checked in one place
(`gsvd.engine.devices`), `~` means the home folder wherever a path is accepted, and a voice is
found by name in `--voices-dir`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gsvd.engine.devices import check_device, resolve_device
from gsvd.engine.errors import InvalidInput
from gsvd.engine.testing.audio import audibility_problems
from gsvd.engine.testing.bundle import write_tiny_voice

NO_GPU = not torch.cuda.is_available()


def _gsvd(*args: str, home: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"} | ({"HOME": str(home)} if home else {})
    return subprocess.run([sys.executable, "-c", "from gsvd.cli import app; app()", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("spec, want", [("auto", "auto"), ("cpu", "cpu"), (" CUDA ", "cuda"), ("cuda:1", "cuda:1")])
def test_device_strings_gsvd_runs_on(spec, want):
    assert check_device(spec) == want


@pytest.mark.parametrize("spec", ["gpu0", "gpu", "cuda:x", "cuda:-1", "", "mps", "cuda:0,1"])
def test_other_device_strings_are_refused_with_the_choices(spec):
    with pytest.raises(InvalidInput, match="device must be auto, cpu, cuda or cuda:N") as info:
        check_device(spec)
    assert info.value.field == "device"


@pytest.mark.skipif(not NO_GPU, reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_says_so():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(InvalidInput, match="no CUDA GPU is usable here.*use --device cpu or auto"):
        resolve_device("cuda:0")


@pytest.mark.skipif(NO_GPU, reason="needs a CUDA GPU")
def test_a_gpu_index_past_the_last_is_refused():
    with pytest.raises(InvalidInput, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("device, message", [
    ("gpu0", "device must be auto, cpu, cuda or cuda:N, not 'gpu0'"),
    pytest.param("cuda", "no CUDA GPU is usable here", marks=pytest.mark.skipif(not NO_GPU, reason="has a GPU")),
])
def test_synth_with_a_bad_device_is_a_clear_cli_error(tmp_path, device, message):
    write_tiny_voice(tmp_path, "alice")
    r = _gsvd("synth", "--voices-dir", str(tmp_path), "--voice", "alice", "--text", "Hello.", "--out",
              str(tmp_path / "x.wav"), "--device", device)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "x.wav").exists()


def test_train_with_a_bad_device_is_a_clear_cli_error(tmp_path):
    r = _gsvd("train", str(tmp_path / "talk.mp4"), "--name", "alice", "--consent", "test", "--device", "gpu0",
              "--workdir", str(tmp_path / "run"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "device must be auto, cpu, cuda or cuda:N, not 'gpu0'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_synth_finds_the_voice_by_name_in_voices_dir_with_a_tilde(tmp_path):
    """--voices-dir and --out as written in a config or after `=` (no shell expansion): `~` is HOME."""
    home = tmp_path / "home"
    write_tiny_voice(home / "my voices", "alice")
    r = _gsvd("synth", "--voices-dir=~/my voices", "--voice", "alice", "--text", "Hello there, how are you?",
              "--out=~/out/hello.wav", "--seed", "1", "--device", "cpu", home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    wav = home / "out" / "hello.wav"
    assert str(wav) in r.stdout and not (Path.cwd() / "~").exists()
    import soundfile as sf

    pcm, rate = sf.read(wav)
    assert rate == 32000 and audibility_problems(pcm, rate) == []


def test_a_voice_missing_from_voices_dir_names_the_folder_looked_in(tmp_path):
    for cmd in (["synth", "--voice", "nobody", "--text", "Hi.", "--out", str(tmp_path / "x.wav"), "--device", "cpu"],
                ["build", "nobody", "--no-verify"]):
        r = _gsvd(*cmd, "--voices-dir", str(tmp_path / "voices"))
        assert r.returncode == 2, r.stdout + r.stderr
        assert str(tmp_path / "voices" / "nobody") in r.stderr.replace("\n", ""), r.stderr


def test_engine_load_voice_expands_the_home_folder(tmp_path, monkeypatch):
    from gsvd.engine import Engine

    monkeypatch.setenv("HOME", str(tmp_path))
    write_tiny_voice(tmp_path / "voices", "alice")
    with Engine(device="cpu", max_streams=1) as engine:
        voice = engine.load_voice("~/voices/alice")  # the README's example, as written
    assert voice.name == "alice"


def test_files_written_get_the_umask_permissions_atomically(tmp_path):
    """WAVs, checkpoints and bundles are readable like any file (0644 under umask 022, 0640 under
    027); tempfile.mkstemp made them 0600. Nothing but the result is left in the folder."""
    import numpy as np

    from gsvd.engine.checkpoints.io import atomic_write_bytes
    from gsvd.wavio import write_wav

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    old = os.umask(0o022)
    try:
        wav = write_wav(tmp_path / "a" / "x.wav", np.zeros(320, np.float32), 32000)
        ckpt = atomic_write_bytes(tmp_path / "a" / "x.ckpt", b"weights")
        bundle = write_tiny_voice(tmp_path / "voices", "alice")
        os.umask(0o027)
        strict = atomic_write_bytes(tmp_path / "a" / "y.ckpt", b"weights")
    finally:
        os.umask(old)
    assert mode(wav) == mode(ckpt) == 0o644 and mode(strict) == 0o640
    assert all(mode(f) == 0o644 for f in bundle.iterdir()), {f.name: oct(mode(f)) for f in bundle.iterdir()}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.ckpt", "x.wav", "y.ckpt"]


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    from gsvd.atomic import atomic_writer

    (tmp_path / "x.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(tmp_path / "x.bin") as f:
        f.write(b"half")
        raise RuntimeError("disk full")
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"] and (tmp_path / "x.bin").read_bytes() == b"old"

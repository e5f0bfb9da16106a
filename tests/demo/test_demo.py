"""`gsvd demo` (what `make demo` runs) end to end in a fresh folder: it exits 0, its WAV is audible
babble (not the near-silent DC hum it once wrote), and the voice it enrolled is usable by name
with the command it prints."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("silero_vad")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

GSVD = [sys.executable, "-c", "from gsvd.cli import app; app()"]


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120", "GSVD_HOME": str(cwd / "gsvd-home")}  # no user voices in the way
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_demo_writes_audible_babble_and_its_voice_is_usable_by_name(tmp_path):
    import soundfile as sf

    from gsvd.engine.testing.audio import audibility_problems

    r = _run([*GSVD, "demo", "--out", "out/demo"], tmp_path, timeout=1100)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wav = tmp_path / "out" / "demo" / "demo.wav"
    pcm, rate = sf.read(wav)
    assert rate == 32000 and len(pcm) / rate > 2.0
    assert audibility_problems(pcm, rate) == []
    assert "dBFS" in r.stdout  # it reports the level it wrote

    bundle = (tmp_path / "out" / "demo" / "voices" / "demo").resolve()
    assert f"voice bundle is {bundle}" in r.stdout
    (synth,) = [line.strip() for line in r.stdout.splitlines() if line.strip().startswith("gsvd synth ")]
    args = shlex.split(synth)
    assert args[args.index("--voice") + 1] == "demo" and Path(args[args.index("--voices-dir") + 1]) == bundle.parent
    s = _run([*GSVD, *args[1:], "--seed", "1", "--device", "cpu"], tmp_path, timeout=300)
    assert s.returncode == 0, s.stdout + s.stderr
    pcm, rate = sf.read(tmp_path / "hello.wav")
    assert audibility_problems(pcm, rate) == []

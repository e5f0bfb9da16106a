"""A client in a second language: the Node/TypeScript example streams a sentence from a real daemon."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

TS = Path(__file__).resolve().parents[2] / "clients" / "ts"


def test_node_client_streams_a_sentence(daemon, tmp_path):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    if not (TS / "node_modules" / "@grpc" / "grpc-js").is_dir():
        setup = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TS, capture_output=True, text=True, timeout=300)
        if setup.returncode != 0:
            pytest.skip(f"npm could not install @grpc/grpc-js (registry unreachable?): {setup.stderr[-300:]}")
    out = tmp_path / "out.pcm"
    run = subprocess.run(["node", "stream.mjs", daemon.address, "alice", "Hello from Node.", str(out)], cwd=TS,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["sample_rate_hz"] == 32000 and report["encoding"] == "PCM_S16LE" and report["final"]
    assert report["bytes"] == out.stat().st_size > 0 and report["bytes"] % 2 == 0
    label = report["label"]  # the stream's explicit label reaches a client in another language too
    assert label["ai_generated"] is True and label["voice"] == "alice" and label["generator"].startswith("gsvd")
    assert json.loads((tmp_path / "out.pcm.label.json").read_text()) == label

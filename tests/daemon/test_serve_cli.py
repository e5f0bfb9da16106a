"""`gsvd serve` as a real process: it binds, loads the voices dir, answers, and drains on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from gsvd.clients import Client


def test_serve_process_answers_and_drains(tmp_path):
    from gsvd.engine.testing.bundle import write_tiny_voice

    write_tiny_voice(tmp_path / "voices", "alice")
    env = dict(os.environ, GSVD_DEVICE="cpu", GSVD_GRACE_S="1")
    proc = subprocess.Popen([sys.executable, "-m", "gsvd", "serve", "--port", "0", "--voices-dir", str(tmp_path / "voices")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("gsvd serving on 127.0.0.1:"), line + proc.stderr.read()[-2000:]
        address = line.split()[-1]
        deadline = time.monotonic() + 60
        with Client(address) as c:
            while time.monotonic() < deadline:
                names = {v.name for v in c.voices()}
                if names:
                    break
                time.sleep(0.2)
            assert names == {"alice"}
            pcm, rate = c.synthesize("Hello.", "alice", seed=1, max_new_tokens=20, language="en")
            assert rate == 32000 and len(pcm) > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_flags_for_responsible_use(tmp_path):
    """--allow-unconsented-voices (warned), --audit-log, --watermark and its daemon id reach a real process: the
    unconsented voice serves, the audit log records it, and the streamed audio carries the announced mark."""
    import json

    import numpy as np

    from gsvd.engine.provenance.detector import Detector
    from gsvd.engine.provenance.watermark import voice_hash

    from .conftest import unconsented

    unconsented(tmp_path / "voices")
    audit = tmp_path / "audit.jsonl"
    env = dict(os.environ, GSVD_DEVICE="cpu", GSVD_GRACE_S="1")
    proc = subprocess.Popen([sys.executable, "-m", "gsvd", "serve", "--port", "0", "--voices-dir", str(tmp_path / "voices"),
                             "--allow-unconsented-voices", "--audit-log", str(audit), "--watermark",
                             "--watermark-daemon-id", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("gsvd serving on 127.0.0.1:"), line + proc.stderr.read()[-2000:]
        with Client(line.split()[-1]) as c:
            deadline = time.monotonic() + 60
            while not c.voices() and time.monotonic() < deadline:  # it answers while the voices load
                time.sleep(0.2)
            stream = c.stream("Hello there. How are you today?", "ghost", seed=2, language="en", max_new_tokens=100)
            pcm = np.concatenate([chunk.pcm for chunk in stream])
        assert "daemon=3" in stream.label.watermark
        found = Detector().detect(pcm, 32000)
        assert found.found and (found.payload.daemon_id, found.payload.voice_hash) == (3, voice_hash("ghost"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "consent check is off (allow_unconsented_voices)" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    events = [json.loads(x) for x in audit.read_text(encoding="utf-8").splitlines()]
    assert [e["event"] for e in events] == ["load_voice", "daemon_start", "daemon_stop"]
    assert events[0]["voice"] == "ghost" and events[0]["consent"] == "none (allow_unconsented_voices)"
    assert events[1]["consent_required"] is False and events[1]["watermark"] is True


def test_cli_import_is_light():
    """`gsvd --help` must not load torch or grpc (heavy parts load inside the command)."""
    import subprocess as sp

    out = sp.run([sys.executable, "-c", "import sys, gsvd.cli; print('torch' in sys.modules, 'grpc' in sys.modules)"],
                 capture_output=True, text=True)
    assert out.stdout.strip() == "False False", out.stderr

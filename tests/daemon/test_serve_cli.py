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


def test_cli_import_is_light():
    """`gsvd --help` must not load torch or grpc (heavy parts load inside the command)."""
    import subprocess as sp

    out = sp.run([sys.executable, "-c", "import sys, gsvd.cli; print('torch' in sys.modules, 'grpc' in sys.modules)"],
                 capture_output=True, text=True)
    assert out.stdout.strip() == "False False", out.stderr

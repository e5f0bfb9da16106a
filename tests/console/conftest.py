"""A real daemon with a tiny voice, its HTTP gateway and a real `gsvd train` run folder, shared by
the console's API and browser tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

USER, ADMIN = "user-token", "admin-token"


@pytest.fixture(scope="package")
def runs_dir(tmp_path_factory) -> Path:
    """`runs/talker/`: the trainer's own stages on a generated sample video with tiny random models,
    fit with a save (weights kept, one test sentence rendered) at each of 2 + 2 epochs; not packaged."""
    pytest.importorskip("av")
    pytest.importorskip("silero_vad")
    from gsvd.trainer.pipeline import RunSettings, run_all
    from gsvd.trainer.sample_video import make_sample
    from gsvd.trainer.workspace import STAGES, Workspace

    root = tmp_path_factory.mktemp("runs")
    video, _ = make_sample(root.parent / f"{root.name}-input", n_phrases=8)
    ws = Workspace(root / "talker")
    ws.root.mkdir()
    settings = RunSettings(name="talker", consent="synthetic test talker, no real person", inputs=[str(video)],
                           from_scratch="tiny", epochs=2, gpt_epochs=2, save_every=1, batch_size=4, device="cpu",
                           min_seconds=5.0, samples=1, sample_sentences=[["en", "A test sentence."]])
    settings.save(ws)
    run_all(ws, settings, lambda msg: None, stages=STAGES[:-1])
    return root


@pytest.fixture(scope="package")
def console_daemon(tmp_path_factory, runs_dir):
    """A daemon on loopback with voice `alice` (tiny, with a tiny HuBERT for zero-shot uploads), the
    gateway on a free port, user and admin tokens, and `runs_dir` as its runs folder."""
    from gsvd.daemon.background import serve_in_thread
    from gsvd.daemon.config import DaemonConfig
    from gsvd.engine import Engine
    from gsvd.engine.testing.bundle import write_tiny_voice
    from gsvd.engine.testing.sovits import write_tiny_hubert

    tmp = tmp_path_factory.mktemp("console")
    write_tiny_voice(tmp / "voices", "alice")
    cfg = DaemonConfig.load(None, env={}, port=0, voices_dir=str(tmp / "voices"), device="cpu", grace_s=1.0,
                            token=USER, admin_token=ADMIN, http_port=0, runs_dir=str(runs_dir), max_streams=4)
    engine = Engine(device="cpu", max_streams=4, hubert_folder=write_tiny_hubert(tmp / "hubert"))
    running = serve_in_thread(engine, cfg)
    yield running
    running.stop()


def base_url(running) -> str:
    return f"http://127.0.0.1:{running.daemon.http_port}"


def call(running, method: str, path: str, body: dict | bytes | None = None, token: str | None = USER,
         content_type: str = "application/json") -> tuple[int, dict | bytes, dict]:
    """(status, JSON or raw body, headers) of one HTTP call to the gateway."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": content_type, **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(base_url(running) + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            status, raw, head = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, raw, head = exc.code, exc.read(), dict(exc.headers)
    if head.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(raw), head
    return status, raw, head

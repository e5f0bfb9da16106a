"""A real daemon on loopback with tiny random voices, shared by the daemon tests."""

from __future__ import annotations

import pytest

# a zero-shot upload's consent record (all four fields are required)
CONSENT = {"speaker": "Test Speaker", "use": "automated tests of gsvd", "date": "2026-01-01", "recorded_by": "gsvd tests"}


def unconsented(voices, name: str = "ghost"):
    """A tiny voice bundle whose voice.toml has no [consent] table (the daemon refuses it unless allowed)."""
    from gsvd.engine.testing.bundle import write_tiny_voice

    path = write_tiny_voice(voices, name, seed=2)
    manifest = path / "voice.toml"
    text = manifest.read_text(encoding="utf-8")
    stripped = text.replace('[consent]\nstatement = "synthetic test voice, no real person"\n\n', "")
    assert stripped != text and "[consent]" not in stripped
    manifest.write_text(stripped, encoding="utf-8")
    return path


def start_daemon(tmp_path, **settings):
    """A daemon on loopback (gsvd.daemon.background.Running) serving tiny voices alice and bob."""
    import dataclasses

    from gsvd.daemon.background import serve_in_thread
    from gsvd.daemon.config import DaemonConfig
    from gsvd.engine import Engine
    from gsvd.engine.testing.bundle import write_tiny_voice
    from gsvd.engine.testing.sovits import write_tiny_hubert

    voices = tmp_path / "voices"
    write_tiny_voice(voices, "alice")
    write_tiny_voice(voices, "bob", seed=1)
    hubert = write_tiny_hubert(tmp_path / "hubert")
    if not any(settings.get(k) for k in ("token", "admin_token", "token_file", "admin_token_file")):
        settings.setdefault("no_auth", True)  # tokenless test daemons manage voices too (loopback)
    cfg = DaemonConfig.load(None, env={}, port=0, voices_dir=str(voices), device="cpu",
                            **{"grace_s": 1.0, **settings})
    engine = Engine(device="cpu", max_streams=cfg.max_streams, queue_limit=cfg.queue_limit, hubert_folder=hubert,
                    watermark=cfg.watermark_config())
    return dataclasses.replace(serve_in_thread(engine, cfg), voices_dir=voices)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    running = start_daemon(tmp_path_factory.mktemp("daemon"), max_streams=8)
    yield running
    running.stop()

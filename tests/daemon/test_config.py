"""Daemon settings: file < environment < flags, unknown keys and bad values refused with their source."""

from __future__ import annotations

import pytest

from gsvd.daemon.config import DaemonConfig
from gsvd.engine.errors import InvalidInput


def test_layers_and_frontend_workers(tmp_path):
    cfg_file = tmp_path / "gsvd.toml"
    cfg_file.write_text("[serve]\nmax_streams = 32\nfrontend_workers = 4\nport = 6000\n", encoding="utf-8")
    cfg = DaemonConfig.load(cfg_file, env={"GSVD_FRONTEND_WORKERS": "2", "GSVD_PORT": "7000"}, port=8000)
    assert (cfg.max_streams, cfg.frontend_workers, cfg.port) == (32, 2, 8000)
    assert cfg.engine_frontend_workers() == 2
    assert DaemonConfig.load(env={}).engine_frontend_workers() is None  # -1: the engine decides
    assert DaemonConfig.load(env={}, frontend_workers=0).engine_frontend_workers() == 0


def test_bad_settings_name_their_source(tmp_path):
    with pytest.raises(InvalidInput, match="frontend_workers must be -1"):
        DaemonConfig.load(env={"GSVD_FRONTEND_WORKERS": "-3"})
    with pytest.raises(InvalidInput, match="environment: frontend_workers must be a int"):
        DaemonConfig.load(env={"GSVD_FRONTEND_WORKERS": "many"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[serve]\nworkers = 3\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="unknown setting 'workers'"):
        DaemonConfig.load(bad, env={})


def test_runtime_settings_come_from_the_same_table_environment_and_flags(tmp_path):
    """Runtime settings in [serve] go to the engine's RuntimeConfig; the environment overrides them; the daemon's
    device/max_streams (flags included) are the engine's; a bad runtime value names its variable."""
    cfg_file = tmp_path / "gsvd.toml"
    cfg_file.write_text('[serve]\nmax_streams = 16\ncuda_graphs = false\nchunk_policy = "8,1.5"\n')
    cfg = DaemonConfig.load(cfg_file, env={"GSVD_CHUNK_POLICY": "10,2", "GSVD_TICK_STATS": "1"}, device="cpu",
                            max_streams=24)
    rt = cfg.runtime()
    assert (rt.device, rt.max_streams, rt.cuda_graphs, rt.chunk_policy, rt.tick_stats) == ("cpu", 24, False, "10,2",
                                                                                            True)
    with pytest.raises(InvalidInput, match="GSVD_CUDA_GRAPHS"):
        DaemonConfig.load(env={"GSVD_CUDA_GRAPHS": "perhaps"}).runtime()


def test_tick_stats_are_exposed_as_metrics():
    from prometheus_client import generate_latest

    from gsvd.daemon.metrics import Metrics

    snap = {"ticks": 12, "admissions": 2, "admitted": 5, "gpt_steps": 10, "chunk_passes": 3, "chunks": 9,
            "late_chunks": 1, "device_busy_s": 0.25, "phase_s": {"schedule": 0.01, "gpt": 0.2},
            "gpt_rows_mean": 4.5, "chunk_rows_mean": 3.0}
    text = generate_latest(Metrics(tick_stats=lambda: snap).registry).decode()
    assert "gsvd_scheduler_ticks_total 12.0" in text and "gsvd_scheduler_late_chunks_total 1.0" in text
    assert 'gsvd_scheduler_phase_seconds_total{phase="gpt"} 0.2' in text
    assert "gsvd_scheduler_gpt_rows_mean 4.5" in text
    assert "gsvd_scheduler" not in generate_latest(Metrics(tick_stats=lambda: None).registry).decode()


def test_memory_budget_and_pinning_flags():
    """--gpu-memory-fraction / --gpu-memory-gib / --kv-cache-gib reach the engine's RuntimeConfig over the table and
    the environment; --pin names voices whose models are never evicted; a bad fraction names its variable."""
    cfg = DaemonConfig.load(env={"GSVD_KV_CACHE_GIB": "3", "GSVD_PIN_VOICES": "x"}, gpu_memory_fraction=0.5,
                            gpu_memory_gib=None, kv_cache_gib=None, pin_voices="alice, bob,")
    rt = cfg.runtime()
    assert (rt.gpu_memory_fraction, rt.gpu_memory_gib, rt.kv_cache_gib) == (0.5, 0.0, 3.0)
    assert cfg.pinned_voices() == ("alice", "bob") and DaemonConfig.load(env={}).pinned_voices() == ()
    with pytest.raises(InvalidInput, match="GSVD_GPU_MEMORY_FRACTION must be in"):
        DaemonConfig.load(env={}, gpu_memory_fraction=2.0).runtime()


def test_responsible_use_settings_are_checked_at_start(tmp_path):
    from gsvd.engine.provenance.watermark import PUBLIC_KEY

    assert DaemonConfig.load(env={}).watermark_config() is None and DaemonConfig.load(env={}).signing() is None
    key = tmp_path / "wm.key"
    key.write_text("a-private-watermark-key\n", encoding="utf-8")
    key.chmod(0o600)
    cfg = DaemonConfig.load(env={"GSVD_WATERMARK": "1"}, watermark_key_file=str(key), watermark_daemon_id=9)
    mark = cfg.watermark_config()
    assert (mark.key, mark.daemon_id) == ("a-private-watermark-key", 9) and "a-private" not in repr(cfg)
    assert DaemonConfig.load(env={}, watermark=True).watermark_config().key == PUBLIC_KEY
    with pytest.raises(InvalidInput, match="watermark is off"):
        DaemonConfig.load(env={}, watermark_key_file=str(key))
    with pytest.raises(InvalidInput, match="watermark_daemon_id must be in"):
        DaemonConfig.load(env={}, watermark=True, watermark_daemon_id=256)
    with pytest.raises(InvalidInput, match="audit_log: the folder"):
        DaemonConfig.load(env={}, audit_log=str(tmp_path / "nowhere" / "audit.jsonl"))
    with pytest.raises(InvalidInput, match="audit_log_max_mb must be > 0"):
        DaemonConfig.load(env={}, audit_log_max_mb=0)
    with pytest.raises(InvalidInput, match="canary_below_streams must be in"):
        DaemonConfig.load(env={}, max_streams=4, canary_interval_s=60, canary_below_streams=4)
    with pytest.raises(InvalidInput, match="canary_interval_s must be >= 0"):
        DaemonConfig.load(env={}, canary_interval_s=-1)
    toml = tmp_path / "gsvd.toml"
    toml.write_text("[serve]\nallow_unconsented_voices = true\ncanary_interval_s = 600\n", encoding="utf-8")
    cfg = DaemonConfig.load(toml, env={})
    assert cfg.allow_unconsented_voices and cfg.canary_interval_s == 600 and cfg.canary_below_streams == 1


def test_token_identities_are_fingerprints():
    from gsvd.daemon.auth import Auth, token_fingerprint

    auth = Auth("user-secret", "admin-secret")
    fp = token_fingerprint("admin-secret")
    assert len(fp) == 8 and fp != token_fingerprint("user-secret") and "secret" not in fp
    assert auth.identify("Bearer admin-secret") == f"admin#{fp}"
    assert auth.identify("bearer user-secret") == f"user#{token_fingerprint('user-secret')}"
    assert auth.identify("Bearer other") == f"unknown#{token_fingerprint('other')}"
    assert auth.identify(None) == "anonymous" and Auth(no_auth=True).identify("") == "anonymous/no-auth"


def test_hostile_client_settings_are_checked():
    cfg = DaemonConfig.load(env={"GSVD_HEADER_TIMEOUT_S": "3", "GSVD_ALLOWED_ORIGINS": "https://App.example, "
                                 "http://127.0.0.1:8080/"}, body_timeout_s=5.0)
    assert (cfg.header_timeout_s, cfg.body_timeout_s) == (3.0, 5.0)
    assert cfg.origins() == ("https://app.example", "http://127.0.0.1:8080")
    assert DaemonConfig.load(env={}, allowed_origins="https://a.example,*").origins() == ("*",)
    assert DaemonConfig.load(env={}).origins() == ()
    for bad in ({"header_timeout_s": 0.0}, {"body_timeout_s": -1.0}):
        with pytest.raises(InvalidInput, match="must be > 0"):
            DaemonConfig.load(env={}, **bad)
    for origin in ("app.example", "ftp://app.example", "https://app.example/console", "https://app.example:x",
                   "https://user@app.example", "https://"):
        with pytest.raises(InvalidInput, match="is not an origin"):
            DaemonConfig.load(env={}, allowed_origins=origin)


def test_the_origin_policy():
    from gsvd.daemon.origins import refusal

    own = {"Host": "127.0.0.1:8080"}
    assert refusal("/v1/voices", own, True, ()) is None  # a client that is not a browser
    assert refusal("/v1/voices", {**own, "Origin": "http://127.0.0.1:8080"}, True, ()) is None  # the console
    assert refusal("/v1/voices", {**own, "Origin": "https://app.example"}, True, ("https://app.example",)) is None
    for origin in ("https://evil.example", "null", "http://127.0.0.1:8081", "https://127.0.0.1:8080.evil", "file://"):
        assert refusal("/v1/voices", {**own, "Origin": origin}, True, ()) is not None, origin
    assert refusal("/v1/voices", {**own, "Sec-Fetch-Site": "cross-site"}, True, ()) is not None
    assert refusal("/", {**own, "Sec-Fetch-Site": "cross-site"}, True, ()) is None  # a link to the console
    rebound = {"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}
    assert refusal("/v1/voices", rebound, True, ()) is not None
    assert refusal("/v1/voices", rebound, False, ()) is None  # bound elsewhere: names are the operator's
    assert refusal("/v1/voices", {"Host": "gsvd"}, True, ()) is None  # not a browser
    assert refusal("/v1/voices", {"Host": "[::1]:8080", "Sec-Fetch-Mode": "cors"}, True, ()) is None
    assert refusal("/v1/voices", {**rebound, "Origin": "https://evil.example"}, True, ("*",)) is None

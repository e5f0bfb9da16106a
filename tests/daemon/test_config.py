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

"""RuntimeConfig: one registry of the GSVD_* runtime variables, built at the edge and passed down whole."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gsvd.engine.errors import InvalidInput
from gsvd.engine.settings import RuntimeConfig, default_triton_cache, variable

ROOT = Path(__file__).resolve().parents[2]


def test_precedence_defaults_table_environment_arguments():
    assert RuntimeConfig.load(env={}) == RuntimeConfig(triton_cache=default_triton_cache({}))
    assert RuntimeConfig.load(env={"XDG_CACHE_HOME": "/c"}).triton_cache == "/c/gsvd/triton"
    assert RuntimeConfig.load(env={"GSVD_TRITON_CACHE": "/k"}).triton_cache == "/k"
    cfg = RuntimeConfig.load({"max_streams": 8, "cuda_graphs": False, "chunk_policy": "8,1.5"},
                             env={"GSVD_MAX_STREAMS": "16", "GSVD_TICK_STATS": "yes", "GSVD_PORT": "7000"},
                             max_streams=32, device=None)
    assert (cfg.max_streams, cfg.cuda_graphs, cfg.tick_stats, cfg.chunk_policy) == (32, False, True, "8,1.5")
    assert cfg.device == "auto"  # a None argument leaves the setting alone
    assert cfg.with_overrides(switch_interval="0.001").switch_interval == 0.001


@pytest.mark.parametrize("env,why", [
    ({"GSVD_CUDA_GRAPHS": "maybe"}, "GSVD_CUDA_GRAPHS must be true or false"),
    ({"GSVD_MAX_STREAMS": "many"}, "GSVD_MAX_STREAMS must be a int"),
    ({"GSVD_MAX_STREAMS": "0"}, "GSVD_MAX_STREAMS must be at least 1"),
    ({"GSVD_BACKEND": "fast"}, "GSVD_BACKEND must be one of auto, torch, tensorrt"),
    ({"GSVD_DTYPE": "int8"}, "GSVD_DTYPE must be one of"),
    ({"GSVD_SWITCH_INTERVAL": "-1"}, "GSVD_SWITCH_INTERVAL must be a number of seconds"),
    ({"GSVD_CHUNK_POLICY": "60,2,48"}, "GSVD_CHUNK_POLICY"),
    ({"GSVD_GPU_MEMORY_FRACTION": "1.5"}, "GSVD_GPU_MEMORY_FRACTION must be in"),
    ({"GSVD_KV_CACHE_GIB": "-2"}, "GSVD_KV_CACHE_GIB must be a number of GiB"),
    ({"GSVD_LANES": "0"}, "GSVD_LANES must be at least 1"),
])
def test_a_bad_value_is_an_error_naming_its_variable(env, why):
    with pytest.raises(InvalidInput, match=why):
        RuntimeConfig.load(env=env)


def test_unknown_table_keys_are_errors_and_the_registry_names_every_setting():
    with pytest.raises(InvalidInput, match="unknown runtime setting 'chunk_slack'"):
        RuntimeConfig.load({"chunk_slack": 0.5}, env={})
    rows = RuntimeConfig.registry()
    assert [r[0] for r in rows] == [variable(n) for n in RuntimeConfig.names()]
    assert all(meaning for _, _, meaning in rows) and ("GSVD_CUDA_GRAPHS", True, rows[6][2]) == rows[6]


def test_the_engine_builds_it_once_from_its_arguments_and_the_environment(monkeypatch):
    from gsvd.engine import Engine

    monkeypatch.setenv("GSVD_MAX_STREAMS", "3")
    monkeypatch.setenv("GSVD_TICK_STATS", "1")
    with Engine(device="cpu", queue_limit=5) as eng:
        assert (eng.config.max_streams, eng.config.queue_limit, eng.config.tick_stats) == (3, 5, True)
        assert eng.info()["limits"]["max_streams"] == 3 and eng.tick_stats()["ticks"] == 0
    with Engine(runtime=RuntimeConfig(device="cpu", max_streams=2), queue_limit=4) as eng:  # env not read
        assert (eng.config.max_streams, eng.config.queue_limit, eng.config.tick_stats) == (2, 4, False)
        assert eng.tick_stats() is None


def test_nothing_below_the_engine_reads_the_environment():
    reads = re.compile(r"os\.environ|os\.getenv|getenv\(")
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "engine" / "runtime").glob("*.py"))
                 if reads.search(p.read_text(encoding="utf-8"))]
    assert not offenders

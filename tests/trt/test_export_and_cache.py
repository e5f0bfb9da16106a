"""ONNX export + onnxruntime parity for the four graphs (tiny models), engine-cache keys and staleness,
and the TensorRT paths (skipped with the reason when tensorrt is missing)."""

from __future__ import annotations

import importlib.util
import json
import logging

import pytest
import torch

from gsvd.engine.models.sovits import SovitsDims, SynthesizerTrn
from gsvd.engine.models.t2s import T2SDims, Text2SemanticDecoder
from gsvd.engine.testing.gpt import random_gpt_state, tiny_gpt_config
from gsvd.engine.testing.sovits import random_sovits_state, tiny_sovits_config
from gsvd.trt_build.cache import EngineKey, engine_path, is_fresh, write_engine
from gsvd.trt_build.export import SPECS, export_all
from gsvd.trt_build.verify import check_graph

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def models():
    gc, sc = tiny_gpt_config(), tiny_sovits_config("v2ProPlus")
    gpt = Text2SemanticDecoder(T2SDims.from_config(gc))
    gpt.load_state_dict(random_gpt_state(gc))
    sov = SynthesizerTrn(SovitsDims.from_config(sc, "v2ProPlus"))
    sov.load_state_dict(random_sovits_state(sc, "v2ProPlus"))
    return gpt.eval(), sov.eval()


# fp16 against fp32 torch: the tiny vocoder's babble comes out within 1.2% of its peak (the bound was
# met easily while the random vocoder only gave a constant offset)
@pytest.mark.parametrize("precision, bound", [("fp32", 1e-4), ("fp16", 2e-2)])
def test_all_graphs_export_and_match_torch(models, tmp_path, precision, bound):
    gpt, sov = models
    manifest = export_all(gpt, sov, tmp_path, precision)
    assert set(manifest["graphs"]) == set(SPECS) and manifest["opset"] == 17
    assert json.loads((tmp_path / f"manifest.{precision}.json").read_text())["model_hash"] == manifest["model_hash"]
    for name, info in manifest["graphs"].items():
        results = check_graph(name, tmp_path / info["path"], gpt, sov)
        assert len(results) == 3  # three different dynamic sizes
        for r in results:
            assert r.max_rel < bound, (name, r)


def _key(**change) -> EngineKey:
    base = dict(graph="gpt_decode", onnx_sha256="a" * 64, gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0",
                trt_version="10.9.0", precision="fp16", profiles="[]")
    return EngineKey(**{**base, **change})


def test_engine_cache_key_and_staleness(tmp_path):
    key = _key()
    assert is_fresh(tmp_path, key) == (False, "missing")
    path = write_engine(tmp_path, key, b"plan-bytes")
    assert path.read_bytes() == b"plan-bytes" and "h100" in str(path.parent)
    assert is_fresh(tmp_path, key) == (True, "fresh")
    for change in ({"onnx_sha256": "b" * 64}, {"gpu_name": "NVIDIA H200"}, {"trt_version": "10.10"},
                   {"precision": "bf16"}, {"profiles": "[1]"}, {"compute_capability": "8.9"}):
        other = _key(**change)
        assert other.digest != key.digest
        fresh, _ = is_fresh(tmp_path, other)
        assert not fresh
    stale = _key(onnx_sha256="c" * 64)
    assert is_fresh(tmp_path, stale)[1].startswith("stale")
    engine_path(tmp_path, key).with_suffix(".json").write_text("{not json")
    assert is_fresh(tmp_path, key) == (False, "stale: unreadable sidecar")
    assert not list(tmp_path.rglob(".*.tmp"))


def test_trt_backend_falls_back_with_a_reason(tmp_path, caplog):
    from gsvd.trt_build.backend import TrtGraph

    with caplog.at_level(logging.WARNING):
        assert TrtGraph.load_or_none(tmp_path, _key(), lambda shapes: {}) is None
    assert "falling back to torch" in caplog.text and "missing" in caplog.text


@pytest.mark.skipif(HAS_TRT, reason="checks the message shown when tensorrt is absent")
def test_builder_says_tensorrt_is_missing(tmp_path):
    from gsvd.trt_build.builder import Profile, TensorRTUnavailable, build_engine

    with pytest.raises(TensorRTUnavailable, match="tensorrt is not installed"):
        build_engine(tmp_path / "x.onnx", [Profile({})])


@pytest.mark.requires_tensorrt
@pytest.mark.skipif(not HAS_TRT or not torch.cuda.is_available(), reason="needs tensorrt and a CUDA GPU (absent here)")
def test_engine_builds_and_matches_torch(models, tmp_path):
    from gsvd.trt_build.builder import build_engine, default_profiles

    gpt, sov = models
    export_all(gpt, sov, tmp_path, "fp32")
    dims = {"layers": gpt.dims.n_layer, "hidden": gpt.dims.hidden_dim, "gin": sov.dims.gin_channels,
            "inter": sov.dims.inter_channels}
    plan = build_engine(tmp_path / "vocoder.fp32.onnx", default_profiles("vocoder", dims, 4), "fp16")
    assert len(plan) > 0


def test_gsvd_build_exports_and_reports_skips(tmp_path):
    from typer.testing import CliRunner

    from gsvd.cli import app
    from gsvd.engine.testing.bundle import write_tiny_voice

    voice = write_tiny_voice(tmp_path, "alice")
    result = CliRunner().invoke(app, ["build", str(voice), "--precision", "fp32", "--no-verify"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (voice / "onnx").glob("*.onnx")) == sorted(f"{n}.fp32.onnx" for n in SPECS)
    if not HAS_TRT:
        assert "skipped" in result.output and "tensorrt is not installed" in result.output

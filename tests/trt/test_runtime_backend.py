"""Runtime backend choice: engines found or refused with a reason; the backend setting overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gsvd.trt_build.cache import EngineKey, write_engine
from gsvd.trt_build.runtime_backend import BackendUnavailable, TensorRTBackend, find_engine, select_decoder

GPU, CC, TRT = "NVIDIA H100 80GB HBM3", "9.0", "10.9.0"


def _bundle(tmp_path: Path, onnx_bytes: bytes = b"onnx-v1") -> Path:
    bundle = tmp_path / "alice"
    (bundle / "onnx").mkdir(parents=True, exist_ok=True)
    (bundle / "onnx" / "gpt_decode.fp32.onnx").write_bytes(onnx_bytes)
    return bundle


def _engine(bundle: Path, onnx_sha: str, gpu: str = GPU, trt: str = TRT) -> Path:
    key = EngineKey("gpt_decode", onnx_sha, gpu, CC, trt, "fp16", "[]")
    return write_engine(bundle, key, b"plan-bytes")


def _sha(bundle: Path) -> str:
    from gsvd.trt_build.cache import file_sha256

    return file_sha256(bundle / "onnx" / "gpt_decode.fp32.onnx")


def test_no_engines_says_how_to_build(tmp_path):
    plan, why = find_engine(_bundle(tmp_path), GPU, CC, TRT)
    assert plan is None and "gsvd build alice" in why


def test_fresh_engine_is_found(tmp_path):
    bundle = _bundle(tmp_path)
    written = _engine(bundle, _sha(bundle))
    plan, why = find_engine(bundle, GPU, CC, TRT)
    assert plan == written and why == "fresh"


def test_engine_from_another_export_is_stale(tmp_path):
    bundle = _bundle(tmp_path)
    _engine(bundle, _sha(bundle))
    (bundle / "onnx" / "gpt_decode.fp32.onnx").write_bytes(b"onnx-v2 re-exported after fine-tuning")
    plan, why = find_engine(bundle, GPU, CC, TRT)
    assert plan is None and why.startswith("stale") and "gsvd build" in why


def test_other_gpu_or_trt_version(tmp_path):
    bundle = _bundle(tmp_path)
    _engine(bundle, _sha(bundle))
    plan, why = find_engine(bundle, "NVIDIA L4", "8.9", TRT)
    assert plan is None and "NVIDIA L4" in why
    plan, why = find_engine(bundle, GPU, CC, "10.12.0")
    assert plan is None and "another TensorRT version" in why


def test_sidecar_records_what_the_key_needs(tmp_path):
    bundle = _bundle(tmp_path)
    side = _engine(bundle, _sha(bundle)).with_suffix(".json")
    meta = json.loads(side.read_text())
    assert {meta["gpu_name"], meta["compute_capability"], meta["trt_version"]} == {GPU, CC, TRT}


def test_selection_falls_back_on_cpu_and_when_disabled(tmp_path):
    bundle = _bundle(tmp_path)
    dec, why = select_decoder(bundle, None, None, torch.device("cpu"), "auto")
    assert dec is None and "CUDA" in why
    dec, why = TensorRTBackend(bundle, "torch")(None, None, torch.device("cpu"))
    assert dec is None and why == "GSVD_BACKEND=torch"


def test_tensorrt_demanded_but_unusable_is_an_error(tmp_path):
    with pytest.raises(BackendUnavailable, match="TensorRT engine cannot be used"):
        select_decoder(_bundle(tmp_path), None, None, torch.device("cpu"), "tensorrt")
    with pytest.raises(BackendUnavailable, match="auto, torch or tensorrt"):
        select_decoder(_bundle(tmp_path), None, None, torch.device("cpu"), "fast")


@pytest.mark.requires_tensorrt
def test_trt_decoder_matches_the_torch_step(tmp_path):
    pytest.importorskip("tensorrt", reason="tensorrt is not installed (NVIDIA's index is unreachable here)")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT engines need a CUDA GPU")
    from gsvd.engine.testing.bundle import write_tiny_voice
    from gsvd.trt_build.build import build_voice

    voice = write_tiny_voice(tmp_path / "voices" / "alice", name="alice")
    report = build_voice(voice, precision="fp32")
    assert report.engines, report.skipped
    from gsvd.engine import Engine, SynthesisOptions
    from gsvd.engine.settings import RuntimeConfig

    opts = SynthesisOptions(top_k=1, seed=3, max_new_tokens=20, language="en")
    outs = {}
    for mode in ("torch", "tensorrt"):
        config = RuntimeConfig(device="cuda", dtype="float32", max_streams=2, backend=mode)
        with Engine(runtime=config) as eng:
            eng.load_voice(voice)
            outs[mode] = eng.synthesize("Hello there.", "alice", opts)[0]
    assert outs["torch"].shape == outs["tensorrt"].shape


def test_engine_on_cpu_stays_on_torch_unless_tensorrt_is_demanded(tmp_path, monkeypatch):
    from gsvd.engine import Engine
    from gsvd.engine.errors import GsvdError
    from gsvd.engine.testing.bundle import write_tiny_voice

    voice = write_tiny_voice(tmp_path / "voices" / "alice", name="alice")
    monkeypatch.setenv("GSVD_BACKEND", "auto")
    with Engine(device="cpu", max_streams=2) as eng:
        eng.load_voice(voice)
        assert eng.info()["backend"] == "torch-eager"
    monkeypatch.setenv("GSVD_BACKEND", "tensorrt")
    with Engine(device="cpu", max_streams=2) as eng:
        with pytest.raises(GsvdError, match="GSVD_BACKEND=tensorrt but the TensorRT engine cannot be used"):
            eng.load_voice(voice)
        assert eng.voices() == []

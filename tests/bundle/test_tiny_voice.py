"""write_tiny_voice: real bundles of tiny random models, fast, shared by seed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from gsvd.engine.bundle import load_bundle
from gsvd.engine.testing.bundle import write_tiny_voice


@pytest.mark.parametrize("version", ["v2", "v2ProPlus"])
def test_tiny_voice_loads_and_builds(tmp_path: Path, version: str) -> None:
    path = write_tiny_voice(tmp_path, "alice", version=version)
    assert path == tmp_path / "alice"
    b = load_bundle(path)
    assert b.name == "alice" and b.version == version and b.reference_language == "zh"
    ref = b.load_reference()
    assert ref.spec.shape[0] == 1025 and ref.spec.shape[1] > 100  # 3.2 s at hop 640 = 160 frames
    assert ref.prompt_tokens.shape == (80,) and int(ref.prompt_tokens.max()) < 1024
    assert ref.bert.shape == (1024, ref.phone_ids.numel())
    assert (ref.sv_emb is None) == (version == "v2")
    gpt = b.build_gpt()
    sovits = b.build_sovits()
    assert not gpt.training and not sovits.training
    state = b.load_sovits_state()
    for key, value in sovits.state_dict().items():
        assert torch.equal(value, state[key].float()), key
    with torch.inference_mode():
        ge = sovits.compute_ge(
            ref.spec.unsqueeze(0), None if ref.sv_emb is None else ref.sv_emb.reshape(1, -1)
        )
    assert torch.isfinite(ge).all()


def test_same_seed_shares_model(tmp_path: Path) -> None:
    a = load_bundle(write_tiny_voice(tmp_path, "alice"))
    b = load_bundle(write_tiny_voice(tmp_path, "bob"))
    c = load_bundle(write_tiny_voice(tmp_path, "carol", seed=1))
    assert a.model_id == b.model_id != c.model_id
    assert not torch.equal(a.load_reference().prompt_tokens, c.load_reference().prompt_tokens)


def test_tiny_voice_is_fast(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    write_tiny_voice(tmp_path, "first", seed=7)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_tiny_voice(tmp_path, "again", seed=7)
    again = time.perf_counter() - t0
    assert first < 5.0 and again < 1.0, (first, again)


@pytest.mark.parametrize("version, seed", [("v2", 0), ("v2", 3), ("v2Pro", 0), ("v2ProPlus", 1)])
def test_tiny_voice_babbles_audibly(tmp_path: Path, version: str, seed: int) -> None:
    """Untrained, a tiny voice already sounds like babble at a speaking level: the random vocoder
    used to give a -75 dBFS hum on a DC offset, so `make demo` (which fine-tunes it for a few
    steps) wrote a silent file and no test noticed."""
    from gsvd.engine import Engine, SynthesisOptions
    from gsvd.engine.testing.audio import audibility_problems

    write_tiny_voice(tmp_path, "alice", version=version, seed=seed)
    with Engine(device="cpu", max_streams=1) as engine:
        engine.load_voice(tmp_path / "alice")
        pcm, rate = engine.synthesize("Hello there, this is a test.", "alice", SynthesisOptions(seed=1, max_new_tokens=60))
    assert audibility_problems(pcm, rate) == []

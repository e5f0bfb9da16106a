"""The Engine with more voices than its memory budget holds (CPU, tiny random models): pinned voices, least recently
used eviction, a request or a new voice of an evicted model bringing it back with the same audio."""

from __future__ import annotations

import numpy as np
import pytest

from gsvd.engine import Engine, SynthesisOptions
from gsvd.engine.settings import RuntimeConfig

OPTS = SynthesisOptions(top_k=5, seed=3, max_new_tokens=30, language="en")
MAX_LEN = 256


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from gsvd.engine.testing.bundle import write_tiny_voice

    root = tmp_path_factory.mktemp("voices")
    out = {name: write_tiny_voice(root, name, seed=seed) for name, seed in (("a", 0), ("b", 1), ("c", 2))}
    out["a2"] = write_tiny_voice(root, "a2", seed=0)  # another voice of model "a"
    return out


def _pcm(engine: Engine, voice: str) -> np.ndarray:
    return np.concatenate([c.pcm for c in engine.stream("Hello there.", voice, OPTS)])


def _gib(bundles) -> tuple[float, float]:
    """(GiB of one tiny model's weights, GiB of the KV pool) as the runtime counts them."""
    with Engine(runtime=RuntimeConfig(device="cpu", max_streams=2, max_len=MAX_LEN)) as eng:
        eng.load_voice(bundles["a"])
        one = eng.stats()["memory_used_gib"]
        eng.load_voice(bundles["b"])
        model = eng.stats()["memory_used_gib"] - one
    return model, one - model


def test_pinned_voices_stay_and_evicted_ones_come_back_with_the_same_audio(bundles):
    model, pool = _gib(bundles)
    cfg = RuntimeConfig(device="cpu", max_streams=2, max_len=MAX_LEN, gpu_memory_gib=pool + 2.5 * model)
    with Engine(runtime=cfg, pinned_voices=("a",)) as eng:
        eng.load_voice(bundles["a"])
        eng.load_voice(bundles["b"])
        before = {v: _pcm(eng, v) for v in "ab"}
        eng.load_voice(bundles["c"])  # room for two models: "b" goes ("a" is pinned, though used less recently)
        resident = {m["voices"][0]: m["resident"] for m in eng.info()["models"]}
        assert resident == {"a": True, "b": False, "c": True}
        assert not eng.evict_voice("a")
        assert np.array_equal(_pcm(eng, "b"), before["b"])  # back, in place of "c"
        assert eng.stats()["comebacks"] == 1 and eng.stats()["models_resident"] == 2
        eng.pin_voice("a", False)
        assert eng.evict_voice("a") and not eng.evict_voice("a")
        voice = eng.load_voice(bundles["a2"])  # its model's weights come back to make the voice's timbre
        assert voice.model_id == eng.voice("a").model_id
        assert np.array_equal(_pcm(eng, "a"), before["a"])
        assert eng.ready(timeout=1.0)  # no graphs on CPU: nothing to wait for

"""GPT model, sampling order, generation rules and GPT checkpoints (tiny random models)."""

from __future__ import annotations

import pytest
import torch

from gsvd.engine.checkpoints.gpt import build_gpt, load_gpt, save_gpt
from gsvd.engine.errors import CheckpointError
from gsvd.engine.models.t2s import Text2SemanticDecoder
from gsvd.engine.sampling import probabilities, sample_next
from gsvd.engine.t2s_infer import first_step_logits, generate_semantic
from gsvd.engine.testing.gpt import random_gpt_state, tiny_gpt_config, write_tiny_gpt
from gsvd.engine.testing.sovits import write_tiny_sovits


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory):
    return write_tiny_gpt(tmp_path_factory.mktemp("gpt") / "tiny.ckpt", seed=3)


@pytest.fixture(scope="module")
def model(ckpt_path):
    return build_gpt(load_gpt(ckpt_path))


def _inputs(seed=0, n=12, ty=9):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 732, (n,), generator=g), torch.randn(1024, n, generator=g), torch.randint(0, 1024, (ty,), generator=g)


def test_prefix_mask_text_bidirectional_audio_causal():
    allow = Text2SemanticDecoder.prefix_mask(3, 2)
    expected = torch.tensor(
        [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool
    )
    assert torch.equal(allow, expected)


def test_kv_cache_steps_equal_full_forward(model):
    phones, bert, prompt = _inputs()
    gen = torch.Generator().manual_seed(1)
    tokens = list(generate_semantic(model, phones, bert, prompt, top_k=1, generator=gen, max_steps=6))
    # recompute the logits of the last step with one full pass over prefix + generated tokens
    with torch.no_grad():
        x = model.embed_text(phones[None], bert[None])
        audio = torch.cat([prompt, torch.tensor(tokens[:-1])])
        y = model.embed_audio(audio[None], 0)
        h, _ = model.run_layers(torch.cat([x, y], 1), None, model.prefix_mask(x.shape[1], y.shape[1]))
        full = model.logits(h[:, -1])[0]
    from gsvd.engine.t2s_infer import GenerationTrace

    trace = GenerationTrace()
    list(generate_semantic(model, phones, bert, prompt, top_k=1, generator=torch.Generator().manual_seed(1),
                           max_steps=6, trace=trace))
    assert torch.allclose(trace.logits[5], full, atol=1e-4)


def test_sampling_order_penalty_topp_temperature_topk():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    prev = torch.tensor([[0]])
    # penalty 4 divides token 0's positive logit (2 -> 0.5) -> token 1 becomes the best
    p = probabilities(logits, prev, top_k=1, top_p=1.0, temperature=1.0, repetition_penalty=4.0)
    assert p.argmax().item() == 1 and p.max().item() == pytest.approx(1.0)
    # negative logits are multiplied by the penalty
    p2 = probabilities(torch.tensor([[-1.0, -2.0]]), torch.tensor([[0]]), top_k=2, top_p=1.0, temperature=1.0,
                       repetition_penalty=3.0)
    assert p2[0, 1] > p2[0, 0]
    # top-p runs before temperature: with p=0.5 only the best token survives whatever the temperature
    p3 = probabilities(torch.tensor([[3.0, 0.0, 0.0]]), None, top_k=3, top_p=0.5, temperature=100.0,
                       repetition_penalty=1.0)
    assert p3[0, 0].item() == pytest.approx(1.0)
    # top-k keeps ties
    p4 = probabilities(torch.tensor([[1.0, 1.0, 0.0]]), None, top_k=1, top_p=1.0, temperature=1.0,
                       repetition_penalty=1.0)
    assert p4[0, 0].item() == pytest.approx(0.5) and p4[0, 1].item() == pytest.approx(0.5)


def test_sampling_is_seeded():
    logits = torch.randn(1, 1025)
    draws = lambda s: [int(sample_next(logits, None, top_k=50, top_p=1.0, temperature=1.0, repetition_penalty=1.0,  # noqa: E731
                                      generator=torch.Generator().manual_seed(s))) for _ in range(1)]
    assert draws(5) == draws(5)
    many = {int(sample_next(logits, None, top_k=50, top_p=1.0, temperature=1.0, repetition_penalty=1.0,
                            generator=torch.Generator().manual_seed(s))) for s in range(20)}
    assert len(many) > 1


class _EosModel(Text2SemanticDecoder):
    """Always prefers EOS: generation must still run the first 11 steps."""

    def logits(self, hidden_last):
        out = torch.zeros(hidden_last.shape[0], self.dims.vocab_size)
        out[:, self.dims.eos] = 10.0
        out[:, 7] = 5.0
        return out


def test_eos_blocked_for_first_11_steps_then_stops():
    cfg = tiny_gpt_config()
    from gsvd.engine.models.t2s import T2SDims

    m = _EosModel(T2SDims.from_config(cfg)).eval()
    phones, bert, prompt = _inputs()
    toks = list(generate_semantic(m, phones, bert, prompt, top_k=1, repetition_penalty=1.0,
                                  generator=torch.Generator().manual_seed(0)))
    assert toks == [7] * 11


def test_max_steps_cap_and_determinism(model):
    phones, bert, prompt = _inputs(2)
    run = lambda seed: list(generate_semantic(model, phones, bert, prompt, top_k=20, max_steps=25,  # noqa: E731
                                              generator=torch.Generator().manual_seed(seed)))
    a, b, c = run(1), run(1), run(2)
    assert len(a) <= 25 and a == b and a != c


def test_checkpoint_round_trip_upstream_layout(tmp_path, ckpt_path):
    raw = torch.load(ckpt_path, weights_only=True)
    assert set(raw) == {"weight", "config", "info"}
    assert all(k.startswith("model.") for k in raw["weight"])
    assert all(v.dtype == torch.float16 for v in raw["weight"].values() if v.is_floating_point())
    ck = load_gpt(ckpt_path)
    out = save_gpt(tmp_path / "again.ckpt", ck.state_dict, ck.config, "GPT-e2")
    again = load_gpt(out)
    assert again.info == "GPT-e2"
    assert all(torch.equal(again.state_dict[k], ck.state_dict[k]) for k in ck.state_dict)


def test_first_step_logits_shape(model):
    phones, bert, prompt = _inputs()
    assert first_step_logits(model, phones, bert, prompt).shape == (1, 1025)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"not a checkpoint at all"), "not a readable torch checkpoint"),
        (lambda p: torch.save({"a": 1}, p), "lacks the 'weight'"),
        (lambda p: torch.save({"weight": {}, "config": {"model": {}}}, p), "config is incomplete"),
    ],
)
def test_bad_gpt_files(tmp_path, make, message):
    p = tmp_path / "bad.ckpt"
    make(p)
    with pytest.raises(CheckpointError, match=message):
        load_gpt(p)


def test_sovits_file_given_as_gpt(tmp_path):
    p = write_tiny_sovits(tmp_path / "s.pth")
    with pytest.raises(CheckpointError, match="SoVITS"):
        load_gpt(p)


def test_missing_gpt_weight_is_named(tmp_path):
    cfg = tiny_gpt_config()
    state = random_gpt_state(cfg)
    del state["bert_proj.weight"]
    p = save_gpt(tmp_path / "m.ckpt", state, cfg)
    with pytest.raises(CheckpointError, match="bert_proj.weight"):
        load_gpt(p)

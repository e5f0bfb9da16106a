"""The graph-capturable sampler: same distribution as the reference sampler (upstream order),
counter-based noise that depends only on (seed, step), and sample + decode step in one function."""

from __future__ import annotations

import torch

from gsvd.engine.runtime.device_sampling import SamplerState, sample_static, uniform_noise
from gsvd.engine.sampling import probabilities

V, EOS = 1025, 1024


def _rows(b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, V, generator=g) * 3
    history = torch.randint(0, 1024, (b, 12), generator=g)
    seen = torch.zeros(b, V, dtype=torch.bool).scatter_(1, history, True)
    return logits, history, seen


def test_race_over_the_reference_probabilities():
    logits, history, seen = _rows(4)
    top_k = torch.tensor([15, 5, 1024, 1])
    top_p = torch.tensor([1.0, 0.8, 0.5, 1.0])
    temp = torch.tensor([1.0, 0.7, 1.3, 1.0])
    pen = torch.tensor([1.35, 1.0, 1.2, 2.0])
    seed, step = torch.tensor([1, 2, 3, 4]), torch.tensor([20, 20, 30, 40])
    picked, greedy = sample_static(logits, seen, top_k, top_p, temp, pen, seed, step, EOS, 11)
    ref = probabilities(logits, history, top_k=top_k, top_p=top_p, temperature=temp, repetition_penalty=pen)
    expect = torch.argmax(ref / -torch.log(uniform_noise(seed, step, V)), dim=-1)
    assert torch.equal(picked, expect) and torch.equal(greedy, logits.argmax(-1))
    assert int(picked[3]) == int(greedy[3]) or ref[3].max() < 1  # top_k=1 leaves one choice


def test_eos_is_masked_early():
    logits = torch.full((2, V), -5.0)
    logits[:, EOS] = 10.0
    ones = torch.ones(2)
    picked, greedy = sample_static(logits, torch.zeros(2, V, dtype=torch.bool), torch.tensor([5, 5]), ones, ones,
                                   ones, torch.tensor([1, 1]), torch.tensor([3, 11]), EOS, 11)
    assert int(greedy[0]) != EOS and int(picked[0]) != EOS  # step 3 < 11
    assert int(greedy[1]) == EOS


def test_noise_depends_only_on_seed_and_step():
    a = uniform_noise(torch.tensor([7]), torch.tensor([5]), V)
    batch = uniform_noise(torch.tensor([1, 7, 9]), torch.tensor([5, 5, 5]), V)
    assert torch.equal(a[0], batch[1])
    assert not torch.equal(a, uniform_noise(torch.tensor([7]), torch.tensor([6]), V))
    big = uniform_noise(torch.arange(200), torch.zeros(200, dtype=torch.long), V)
    assert float(big.min()) > 0 and float(big.max()) < 1 and abs(float(big.mean()) - 0.5) < 0.01


def test_sampled_frequencies_follow_the_probabilities():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0] + [-30.0] * (V - 4)])
    n = 4000
    ones = torch.ones(n)
    picked, _ = sample_static(logits.expand(n, V), torch.zeros(n, V, dtype=torch.bool),
                              torch.full((n,), 1024), ones, ones, ones, torch.arange(n), torch.full((n,), 50), EOS, 11)
    freq = torch.bincount(picked, minlength=4)[:4].float() / n
    expect = torch.softmax(logits[0, :4], -1)
    assert torch.allclose(freq, expect, atol=0.03), (freq, expect)


def test_sampler_state_tracks_seen_tokens_and_steps():
    from gsvd.engine.types import SynthesisOptions

    st = SamplerState(2, V, torch.device("cpu"))
    st.start(1, torch.randn(V), torch.tensor([5, 9]), SynthesisOptions(top_k=3, seed=42))
    assert int(st.top_k[1]) == 3 and int(st.seed[1]) == 42 and abs(float(st.penalty[1]) - 1.35) < 1e-6
    assert st.seen[1, 5] and st.seen[1, 9] and int(st.seen[1].sum()) == 2
    picked, _ = st.sample(torch.tensor([1]), EOS, 11)
    assert st.seen[1, int(picked)] and int(st.step[1]) == 1


def test_sample_and_step_on_cpu_equals_the_two_parts():
    from gsvd.engine.checkpoints.gpt import build_gpt, gpt_from_dict
    from gsvd.engine.runtime.graph_decode import decode_step, sample_and_step
    from gsvd.engine.runtime.kv_cache import KVCache
    from gsvd.engine.testing.gpt import random_gpt_state, tiny_gpt_config

    cfg = tiny_gpt_config()
    gpt = build_gpt(gpt_from_dict({"weight": {f"model.{k}": v for k, v in random_gpt_state(cfg).items()},
                                   "config": cfg}))
    dims = gpt.dims

    def fresh():
        cache = KVCache(dims.n_layer, dims.hidden_dim, 2, 32, torch.device("cpu"), torch.float32, preallocate=True)
        cache.k_all[:, :, :4] = 0.1
        cache.v_all[:, :, :4] = 0.2
        st = SamplerState(2, dims.vocab_size, torch.device("cpu"))
        st.logits[:2] = torch.randn(2, dims.vocab_size, generator=torch.Generator().manual_seed(3))
        st.top_k[:], st.seed[:2] = 10, torch.tensor([5, 6])
        return cache, st

    slots, lengths, pos = torch.tensor([0, 1]), torch.tensor([4, 4]), torch.tensor([2, 2])
    with torch.no_grad():
        cache, st = fresh()
        out = sample_and_step(gpt, cache, st, slots, lengths, pos, dims.eos, 11)
        cache2, st2 = fresh()
        picked, greedy = st2.sample(slots, dims.eos, 11)
        logits = decode_step(gpt, cache2, picked, pos, slots, lengths)
    assert torch.equal(out, torch.stack([picked, greedy]))
    assert torch.allclose(st.logits[:2], logits) and torch.equal(cache.k_all, cache2.k_all)

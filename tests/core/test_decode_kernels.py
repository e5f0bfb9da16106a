"""Triton decode kernels under Triton's CPU interpreter: same results as the eager decode step."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import torch

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed (the dev extra installs it on Linux x86-64)", allow_module_level=True)
if not torch.cuda.is_available():
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("triton was imported in compile mode before this module; no GPU to compile for",
                    allow_module_level=True)
    os.environ["TRITON_INTERPRET"] = "1"  # read when triton and the kernels are first imported (below)

from gsvd.engine.checkpoints.gpt import build_gpt, load_gpt  # noqa: E402
from gsvd.engine.runtime.kv_cache import KVCache  # noqa: E402
from gsvd.engine.testing.gpt import write_tiny_gpt  # noqa: E402

pytestmark = pytest.mark.xdist_group("triton-interpreter")


@pytest.fixture(scope="module")
def kernels():
    from gsvd.engine.runtime import decode_kernels

    return decode_kernels


def _filled_cache(layers, dim, slots, max_len, lengths, seed):
    cache = KVCache(layers, dim, slots, max_len, torch.device("cpu"), torch.float32, preallocate=True)
    g = torch.Generator().manual_seed(seed)
    cache.k_all.copy_(torch.randn(cache.k_all.shape, generator=g))  # junk beyond each length too: must be ignored
    cache.v_all.copy_(torch.randn(cache.v_all.shape, generator=g))
    return cache


@pytest.mark.parametrize("lengths", [[0, 5, 63], [17, 40, 1], [64 - 1, 0, 33]])
def test_decode_attention_matches_masked_softmax(kernels, lengths):
    n_head, dim, max_len = 4, 64, 64
    cache = _filled_cache(1, dim, 4, max_len, lengths, seed=sum(lengths))
    slots = torch.tensor([2, 0, 3])  # rows and slots in different orders
    lens = torch.tensor(lengths)
    qkv = torch.randn(3, 3 * dim, generator=torch.Generator().manual_seed(7))
    before_k = cache.k_all[0].clone()
    out = kernels.decode_attention(qkv, cache.k_all[0], cache.v_all[0], slots, lens, n_head, nsplit=4, block_n=8)
    hd = dim // n_head
    for i, (slot, n) in enumerate(zip(slots.tolist(), lengths)):
        q, k_new, v_new = qkv[i].split(dim)
        # the new row was written at the slot's length, nothing else changed
        assert torch.equal(cache.k_all[0, slot, n], k_new) and torch.equal(cache.v_all[0, slot, n], v_new)
        k = cache.k_all[0, slot, : n + 1].view(n + 1, n_head, hd)
        v = cache.v_all[0, slot, : n + 1].view(n + 1, n_head, hd)
        w = torch.softmax(torch.einsum("hd,thd->ht", q.view(n_head, hd), k) * hd**-0.5, dim=-1)
        ref = torch.einsum("ht,thd->hd", w, v).reshape(dim)
        assert torch.allclose(out[i], ref, atol=1e-5), (i, (out[i] - ref).abs().max())
    changed = (cache.k_all[0] != before_k).any(dim=-1).nonzero().tolist()
    assert sorted(changed) == sorted([s, n] for s, n in zip(slots.tolist(), lengths))


def test_add_layer_norm_matches_torch(kernels):
    g = torch.Generator().manual_seed(3)
    norm = torch.nn.LayerNorm(48)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(48, generator=g) + 0.5)
        norm.bias.copy_(torch.randn(48, generator=g))
    x, r = torch.randn(5, 48, generator=g) * 3, torch.randn(5, 48, generator=g)
    got = kernels.add_layer_norm(x, r, norm)
    assert got.shape == x.shape
    assert torch.allclose(got, norm(x + r), atol=1e-5)


def test_kernel_step_equals_static_step(kernels, tmp_path):
    """The Triton decode step gives the logits of the torch static step and writes the same cache rows."""
    from gsvd.engine.runtime.graph_decode import decode_step

    gpt = build_gpt(load_gpt(write_tiny_gpt(tmp_path / "g.ckpt", seed=5))).eval()
    dims = gpt.dims
    lengths = [12, 3, 30]
    a = _filled_cache(dims.n_layer, dims.hidden_dim, 3, 48, lengths, seed=1)
    b = _filled_cache(dims.n_layer, dims.hidden_dim, 3, 48, lengths, seed=1)
    tokens, positions = torch.tensor([5, 1000, 77]), torch.tensor([2, 0, 19])
    slots, lens = torch.tensor([1, 0, 2]), torch.tensor(lengths)
    with torch.no_grad():
        ref = decode_step(gpt, a, tokens, positions, slots, lens)
        got = decode_step(gpt, b, tokens, positions, slots, lens, kernels=True)
    assert got.shape == (3, dims.vocab_size) and got.dtype == torch.float32
    assert torch.allclose(got, ref, atol=1e-4), (got - ref).abs().max()
    assert torch.allclose(a.k_all, b.k_all, atol=1e-6) and torch.allclose(a.v_all, b.v_all, atol=1e-6)


@pytest.mark.parametrize("rows,relu", [(1, False), (3, True), (16, False)])
def test_small_linear_matches_torch(kernels, rows, relu):
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 300, generator=g)  # K not a multiple of the K block, N not a multiple of 16
    w, b = torch.randn(40, 300, generator=g), torch.randn(40, generator=g)
    got = kernels.small_linear(x, w, b, relu)
    ref = torch.nn.functional.linear(x, w, b)
    ref = ref.relu() if relu else ref
    assert got.shape == (rows, 40)
    assert torch.allclose(got, ref, atol=1e-3, rtol=1e-4), (got - ref).abs().max()
    with pytest.raises(ValueError, match="at most 16"):
        kernels.small_linear(torch.randn(17, 300), w, b)


def test_small_linear_split_partials_and_row_writes(kernels):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(5, 300, generator=g)
    w, b = torch.randn(40, 300, generator=g), torch.randn(40, generator=g)
    parts = kernels.small_linear(x, w, splits=3)
    assert parts.shape == (3, 5, 40) and parts.dtype == torch.float32
    assert not torch.allclose(parts[0], parts[1])  # each split covers its own stretch of K
    assert torch.allclose(parts.sum(0), x @ w.t(), atol=1e-3, rtol=1e-4)
    out = torch.full((8, 40), 7.0)
    rows = torch.tensor([6, 0, 3, 1, 4])
    assert kernels.small_linear(x, w, b, out=out, rows=rows) is out
    assert torch.allclose(out[rows], x @ w.t() + b, atol=1e-3, rtol=1e-4)
    assert torch.equal(out[[2, 5, 7]], torch.full((3, 40), 7.0))  # rows not named are left alone
    with pytest.raises(ValueError, match="split-K"):
        kernels.small_linear(x, w, b, splits=2)


def test_consumers_sum_split_partials_with_the_bias(kernels):
    g = torch.Generator().manual_seed(12)
    norm = torch.nn.LayerNorm(48)
    x, parts, bias = torch.randn(5, 48, generator=g), torch.randn(4, 5, 48, generator=g), torch.randn(48, generator=g)
    got = kernels.add_layer_norm(x, parts, norm, bias=bias)
    assert torch.allclose(got, norm(x + parts.sum(0) + bias), atol=1e-5)

    n_head, dim, lengths = 4, 64, [9, 30, 0]
    a = _filled_cache(1, dim, 4, 64, lengths, seed=2)
    b = _filled_cache(1, dim, 4, 64, lengths, seed=2)
    slots, lens = torch.tensor([3, 1, 0]), torch.tensor(lengths)
    parts, bias = torch.randn(3, 3, 3 * dim, generator=g), torch.randn(3 * dim, generator=g)
    ref = kernels.decode_attention(parts.sum(0) + bias, a.k_all[0], a.v_all[0], slots, lens, n_head, nsplit=4)
    got = kernels.decode_attention(parts, b.k_all[0], b.v_all[0], slots, lens, n_head, nsplit=4, bias=bias)
    assert torch.allclose(got, ref, atol=1e-5) and torch.allclose(a.k_all, b.k_all, atol=1e-6)


def _sampler_rows(vocab, slots_n, seed):
    from gsvd.engine.runtime.device_sampling import SamplerState

    g = torch.Generator().manual_seed(seed)
    st = SamplerState(slots_n, vocab, torch.device("cpu"))
    rows = slots_n + 1
    st.logits.copy_(torch.randn(rows, vocab, generator=g) * 3)
    st.seen.copy_(torch.rand(rows, vocab, generator=g) < 0.1)
    st.top_k.copy_(torch.tensor([15, 1, 5, vocab, 50, 3, 15])[:rows])
    st.top_p.copy_(torch.tensor([1.0, 0.9, 0.5, 0.95, 1.0, 0.3, 0.8])[:rows])
    st.temperature.copy_(torch.tensor([1.0, 0.7, 1.3, 1.0, 0.5, 1.0, 1.0])[:rows])
    st.penalty.copy_(torch.tensor([1.35, 1.0, 1.2, 1.35, 1.1, 1.35, 1.0])[:rows])
    st.seed.copy_(torch.arange(rows) * 977 + seed)
    st.step.copy_(torch.tensor([0, 3, 10, 100, 2, 7, 0])[:rows])
    return st


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampling_kernel_draws_what_the_torch_sampler_draws(seed):
    from gsvd.engine.runtime.device_sampling import sample_static
    from gsvd.engine.runtime.sampling_kernel import sample_and_embed

    vocab, dim, eos = 100, 16, 99
    st = _sampler_rows(vocab, 6, seed)
    st.logits[:, eos] = 50.0  # EOS would win everywhere, but rows before step 5 must not draw it
    slots, pos = torch.tensor([3, 0, 5, 1, 2, 4]), torch.tensor([0, 5, 17, 3, 9, 1])
    g = torch.Generator().manual_seed(seed + 100)
    emb, table, alpha = torch.randn(vocab, dim, generator=g), torch.randn(20, dim, generator=g), torch.tensor([0.7])
    seen0, step0 = st.seen.clone(), st.step.clone()
    ref = torch.stack(sample_static(st.logits[slots], st.seen[slots], st.top_k[slots], st.top_p[slots],
                                    st.temperature[slots], st.penalty[slots], st.seed[slots], st.step[slots],
                                    eos, min_steps=5))
    ids, x0 = sample_and_embed(st, slots, pos, emb, table, alpha, eos, 5)
    assert torch.equal(ids, ref), (ids, ref)
    early = step0[slots] < 5
    assert (ids[:, early] != eos).all() and (ids[:, ~early] == eos).all()
    assert torch.allclose(x0, emb[ids[0]] + alpha * table[pos], atol=1e-6)
    assert torch.equal(st.step, step0 + torch.isin(torch.arange(7), slots).long())
    expect = seen0.clone()
    expect[slots, ids[0]] = True
    assert torch.equal(st.seen, expect)


def test_kernel_sample_and_step_equals_the_torch_one(tmp_path):
    """Sampling kernel + Triton layers + logits written by slot == the torch-op sampler and step."""
    from gsvd.engine.runtime.graph_decode import sample_and_step

    gpt = build_gpt(load_gpt(write_tiny_gpt(tmp_path / "g.ckpt", seed=3, vocab_size=100, EOS=99))).eval()
    dims = gpt.dims
    lengths = [7, 20, 3]
    runs = []
    for _ in range(2):
        cache = _filled_cache(dims.n_layer, dims.hidden_dim, 4, 32, lengths, seed=4)
        st = _sampler_rows(dims.vocab_size, 4, seed=8)
        runs.append((cache, st))
    slots, lens, pos = torch.tensor([2, 0, 3]), torch.tensor(lengths), torch.tensor([1, 12, 0])
    with torch.no_grad():
        ref = sample_and_step(gpt, runs[0][0], runs[0][1], slots, lens, pos, dims.eos, 5)
        got = sample_and_step(gpt, runs[1][0], runs[1][1], slots, lens, pos, dims.eos, 5, kernels=True)
    assert torch.equal(got, ref)
    assert torch.allclose(runs[1][1].logits, runs[0][1].logits, atol=1e-4)
    assert torch.equal(runs[1][1].step, runs[0][1].step) and torch.equal(runs[1][1].seen, runs[0][1].seen)
    assert torch.allclose(runs[1][0].k_all, runs[0][0].k_all, atol=1e-6)


def test_pdl_only_on_cuda(kernels):
    cpu = torch.zeros(1)
    assert not kernels.pdl_on(cpu)
    assert kernels._launch(cpu, 1) == {"PDL": False}  # no launch_pdl option off CUDA

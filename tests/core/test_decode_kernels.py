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
    from gsvd.engine.runtime.graph_decode import decode_step, kernel_decode_step

    gpt = build_gpt(load_gpt(write_tiny_gpt(tmp_path / "g.ckpt", seed=5))).eval()
    dims = gpt.dims
    lengths = [12, 3, 30]
    a = _filled_cache(dims.n_layer, dims.hidden_dim, 3, 48, lengths, seed=1)
    b = _filled_cache(dims.n_layer, dims.hidden_dim, 3, 48, lengths, seed=1)
    tokens, positions = torch.tensor([[5], [1000], [77]]), torch.tensor([2, 0, 19])
    slots, lens = torch.tensor([1, 0, 2]), torch.tensor(lengths)
    with torch.no_grad():
        ref = decode_step(gpt, a, tokens, positions, slots, lens)
        got = kernel_decode_step(gpt, b, tokens, positions, slots, lens)
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

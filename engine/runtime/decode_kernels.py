"""Triton kernels for the GPT decode step (one new token per stream).

- `decode_attention`: attention of each row's new query over its own KV slot, reading the
  preallocated block in place (no gather copy) and only up to the slot's true length; the new
  K/V row is written into the block by the same launch. Split over the key axis
  (flash-decoding): each program covers one chunk of one head of one row; a second small kernel
  merges the chunks' partial softmax sums.
- `add_layer_norm`: LayerNorm(x + r) in one pass (the post-LN residual of every block).

Both run on CUDA, and on the CPU under Triton's interpreter (`TRITON_INTERPRET=1`), which is how
the CPU tests check them against the eager step. Triton is imported with this module: the
runtime imports it only where it is used.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _attn_chunk(qkv, k_blk, v_blk, slots, lengths, part_o, part_ml,
                s_qkv, s_slot, s_time, scale,
                D: tl.constexpr, HD: tl.constexpr, H: tl.constexpr, NSPLIT: tl.constexpr,
                CHUNK: tl.constexpr, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    head = tl.program_id(1)
    split = tl.program_id(2)
    slot = tl.load(slots + row).to(tl.int64)
    length = tl.load(lengths + row).to(tl.int64)  # cached positions 0..length-1; the new one goes at `length`
    d = tl.arange(0, HD)
    base = qkv + row * s_qkv + head * HD
    q = tl.load(base + d).to(tl.float32) * scale
    cache_k = k_blk + slot * s_slot + head * HD
    cache_v = v_blk + slot * s_slot + head * HD
    m_i = -float("inf")
    l_i = 0.0
    acc = tl.zeros([HD], dtype=tl.float32)
    if split == 0:  # the new key/value: stored for later steps, used here from registers
        k_new = tl.load(base + D + d)
        v_new = tl.load(base + 2 * D + d)
        tl.store(cache_k + length * s_time + d, k_new)
        tl.store(cache_v + length * s_time + d, v_new)
        m_i = tl.sum(q * k_new.to(tl.float32), axis=0)
        l_i = 1.0
        acc = v_new.to(tl.float32)
    lo = split * CHUNK
    hi = tl.minimum(lo + CHUNK, length)
    for n0 in range(lo, hi, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        valid = n < hi
        k = tl.load(cache_k + n[:, None] * s_time + d[None, :], mask=valid[:, None], other=0.0).to(tl.float32)
        s = tl.where(valid, tl.sum(k * q[None, :], axis=1), -float("inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=0))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new)
        v = tl.load(cache_v + n[:, None] * s_time + d[None, :], mask=valid[:, None], other=0.0).to(tl.float32)
        acc = acc * alpha + tl.sum(p[:, None] * v, axis=0)
        l_i = l_i * alpha + tl.sum(p, axis=0)
        m_i = m_new
    cell = (row * H + head) * NSPLIT + split
    tl.store(part_o + cell * HD + d, acc)
    tl.store(part_ml + cell * 2, m_i)
    tl.store(part_ml + cell * 2 + 1, l_i)


@triton.jit
def _attn_merge(part_o, part_ml, out, s_out, D: tl.constexpr, HD: tl.constexpr, H: tl.constexpr,
                NSPLIT: tl.constexpr):
    row = tl.program_id(0)
    head = tl.program_id(1)
    sp = tl.arange(0, NSPLIT)
    d = tl.arange(0, HD)
    cell = (row * H + head) * NSPLIT + sp
    m = tl.load(part_ml + cell * 2)
    l_ = tl.load(part_ml + cell * 2 + 1)
    m_max = tl.max(m, axis=0)  # finite: split 0 always holds the new key
    w = tl.exp(m - m_max)
    o = tl.load(part_o + cell[:, None] * HD + d[None, :])
    total = tl.sum(o * w[:, None], axis=0) / tl.sum(l_ * w, axis=0)
    tl.store(out + row * s_out + head * HD + d, total.to(out.dtype.element_ty))


def decode_attention(qkv: torch.Tensor, k_blk: torch.Tensor, v_blk: torch.Tensor, slots: torch.Tensor,
                     lengths: torch.Tensor, n_head: int, nsplit: int = 16, block_n: int = 32) -> torch.Tensor:
    """qkv [B, 3D] (packed q;k;v of the new token), k_blk/v_blk [slots, max_len, D] (one layer of the
    block), slots/lengths [B] -> attention output [B, D] before the output projection. Writes the new
    K/V at (slot, length) and attends over positions 0..length of the row's slot."""
    b, three_d = qkv.shape
    d = three_d // 3
    hd = d // n_head
    if qkv.stride(1) != 1 or k_blk.stride(2) != 1 or v_blk.stride() != k_blk.stride():
        raise ValueError("decode_attention needs unit-stride feature axes and matching K/V layouts")
    max_len = k_blk.shape[1]
    chunk = triton.next_power_of_2(triton.cdiv(max_len, nsplit))
    part_o = torch.empty(b * n_head * nsplit * hd, device=qkv.device, dtype=torch.float32)
    part_ml = torch.empty(b * n_head * nsplit * 2, device=qkv.device, dtype=torch.float32)
    out = torch.empty(b, d, device=qkv.device, dtype=qkv.dtype)
    _attn_chunk[(b, n_head, nsplit)](
        qkv, k_blk, v_blk, slots, lengths, part_o, part_ml,
        qkv.stride(0), k_blk.stride(0), k_blk.stride(1), hd**-0.5,
        D=d, HD=hd, H=n_head, NSPLIT=nsplit, CHUNK=chunk, BLOCK_N=min(block_n, chunk),
    )
    _attn_merge[(b, n_head)](part_o, part_ml, out, out.stride(0), D=d, HD=hd, H=n_head, NSPLIT=nsplit)
    return out


@triton.jit
def _add_ln(x, r, w, bias, out, s_x, s_r, s_out, eps, D: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    c = tl.arange(0, BLOCK)
    ok = c < D
    v = tl.load(x + row * s_x + c, mask=ok, other=0.0).to(tl.float32) + \
        tl.load(r + row * s_r + c, mask=ok, other=0.0).to(tl.float32)
    mean = tl.sum(v, axis=0) / D
    diff = tl.where(ok, v - mean, 0.0)
    var = tl.sum(diff * diff, axis=0) / D
    y = diff * tl.rsqrt(var + eps) * tl.load(w + c, mask=ok, other=1.0).to(tl.float32) + \
        tl.load(bias + c, mask=ok, other=0.0).to(tl.float32)
    tl.store(out + row * s_out + c, y.to(out.dtype.element_ty), mask=ok)


def add_layer_norm(x: torch.Tensor, r: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    """LayerNorm(x + r) for x, r [B, D] (statistics in fp32) -> [B, D] in x's dtype."""
    b, d = x.shape
    if x.stride(1) != 1 or r.stride(1) != 1:
        raise ValueError("add_layer_norm needs unit-stride rows")
    out = torch.empty_like(x)
    _add_ln[(b,)](x, r, norm.weight, norm.bias, out, x.stride(0), r.stride(0), out.stride(0), norm.eps,
                  D=d, BLOCK=triton.next_power_of_2(d))
    return out


@triton.jit
def _small_linear(x, w, bias, y, B, N, K, s_x, s_w, s_y, RELU: tl.constexpr, BLOCK_B: tl.constexpr,
                  BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    b = tl.arange(0, BLOCK_B)
    acc = tl.zeros([BLOCK_B, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        xt = tl.load(x + b[:, None] * s_x + k[None, :], mask=(b[:, None] < B) & (k[None, :] < K), other=0.0)
        wt = tl.load(w + n[:, None] * s_w + k[None, :], mask=(n[:, None] < N) & (k[None, :] < K), other=0.0)
        acc += tl.dot(xt, tl.trans(wt))
    acc += tl.load(bias + n, mask=n < N, other=0.0).to(tl.float32)[None, :]
    if RELU:
        acc = tl.maximum(acc, 0.0)
    tl.store(y + b[:, None] * s_y + n[None, :], acc.to(y.dtype.element_ty), mask=(b[:, None] < B) & (n[None, :] < N))


SMALL_BATCH = 16  # rows up to which `small_linear` is used (one 16-row tile)


def small_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """x [B, K] (B <= 16) @ weight[N, K]^T + bias (+ ReLU) -> [B, N]: each program reads a 16-row strip of
    the weight once for every row of the batch (the step's GEMMs are weight reads at this size)."""
    b, k = x.shape
    n = weight.shape[0]
    if b > SMALL_BATCH or x.stride(1) != 1 or weight.stride(1) != 1:
        raise ValueError("small_linear takes at most 16 unit-stride rows and a row-major weight")
    y = torch.empty(b, n, device=x.device, dtype=x.dtype)
    block_n = 16
    _small_linear[(triton.cdiv(n, block_n),)](x, weight, bias, y, b, n, k, x.stride(0), weight.stride(0), y.stride(0),
                                             RELU=relu, BLOCK_B=16, BLOCK_N=block_n, BLOCK_K=256)
    return y

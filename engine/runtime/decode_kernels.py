"""Triton kernels for the GPT decode step (one new token per stream).

- `decode_attention`: attention of each row's new query over its own KV slot, reading the
  preallocated block in place (no gather copy) and only up to the slot's true length; the new
  K/V row is written into the block by the same launch. Split over the key axis
  (flash-decoding): each program covers one chunk of one head of one row; a second small kernel
  merges the chunks' partial softmax sums.
- `add_layer_norm`: LayerNorm(x + r) in one pass (the post-LN residual of every block).
- `small_linear`: the step's GEMMs at up to 16 rows, which are weight reads: optionally split over
  K (each program reads one short strip of the weight, one memory round trip instead of a loop of
  them), leaving fp32 partial sums that the consumer (`decode_attention`, `add_layer_norm`) adds up
  with the bias as it loads them; or written straight into chosen rows of another tensor (the
  sampler's per-slot logits).

All run on CUDA, and on the CPU under Triton's interpreter (`TRITON_INTERPRET=1`), which is how
the CPU tests check them against the eager step. Triton is imported with this module: the
runtime imports it only where it is used.

On Hopper and later every kernel here is launched as a programmatic dependent launch (PDL): it may
start while the kernel before it is still running, reads only constants (weights, norm parameters)
until `gdc_wait` (the previous kernel complete, its writes visible), and lets the next kernel start
as soon as all its own programs are running. The step is ~190 short launches, so the launch gaps
are much of its time. A device where a PDL launch fails launches plainly from then on (`disable_pdl`).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

_PDL_OFF: set[int] = set()  # devices where a PDL launch failed


@functools.cache
def _pdl_supported(device_index: int) -> bool:
    from triton.backends.nvidia.compiler import CUDAOptions

    return "launch_pdl" in CUDAOptions.__dataclass_fields__ and torch.cuda.get_device_capability(device_index)[0] >= 9


def pdl_on(t: torch.Tensor) -> bool:
    """Whether kernels on t's device launch with PDL (CUDA, compute capability 9+, no failed PDL launch there)."""
    return t.is_cuda and t.device.index not in _PDL_OFF and _pdl_supported(t.device.index or 0)


def disable_pdl(t: torch.Tensor) -> None:
    """Plain launches from now on for t's device (a PDL launch or its capture failed there)."""
    _PDL_OFF.add(t.device.index)


def _launch(t: torch.Tensor, rows: int) -> dict:
    """Launch options of the kernels here for tensors like t over `rows` rows: PDL where `pdl_on` and the
    step's GEMMs are `small_linear` (up to SMALL_BATCH rows). Between cuBLAS GEMMs (more rows) it measured
    slower on an H200 (benchmarks/HISTORY.md), so larger batches launch plainly."""
    return {"launch_pdl": True, "PDL": True} if rows <= SMALL_BATCH and pdl_on(t) else {"PDL": False}


@triton.jit
def _after_previous(PDL: tl.constexpr):
    """PDL: wait for the previous kernel (its writes visible), then let the next one start launching."""
    if PDL:
        gdc_wait()
        gdc_launch_dependents()


@triton.jit
def _load_summed(parts, s_part, offs, S: tl.constexpr):
    """The sum of S split-K partials (S-axis stride s_part) at offsets `offs`, in fp32."""
    acc = tl.load(parts + offs).to(tl.float32)
    for s in tl.static_range(1, S):
        acc += tl.load(parts + s * s_part + offs).to(tl.float32)
    return acc


@triton.jit
def _attn_chunk(qkv, qkv_bias, k_blk, v_blk, slots, lengths, part_o, part_ml,
                s_qkv, s_part, s_slot, s_time, scale,
                D: tl.constexpr, HD: tl.constexpr, H: tl.constexpr, NSPLIT: tl.constexpr,
                CHUNK: tl.constexpr, BLOCK_N: tl.constexpr, S: tl.constexpr, HAS_BIAS: tl.constexpr,
                PDL: tl.constexpr):
    row = tl.program_id(0)
    head = tl.program_id(1)
    split = tl.program_id(2)
    _after_previous(PDL)
    slot = tl.load(slots + row).to(tl.int64)
    length = tl.load(lengths + row).to(tl.int64)  # cached positions 0..length-1; the new one goes at `length`
    d = tl.arange(0, HD)
    col = head * HD + d
    base = qkv + row * s_qkv
    q = _load_summed(base, s_part, col, S)
    if HAS_BIAS:
        q += tl.load(qkv_bias + col).to(tl.float32)
    q = q * scale
    cache_k = k_blk + slot * s_slot + head * HD
    cache_v = v_blk + slot * s_slot + head * HD
    m_i = -float("inf")
    l_i = 0.0
    acc = tl.zeros([HD], dtype=tl.float32)
    if split == 0:  # the new key/value: stored for later steps, used here from registers
        k_new = _load_summed(base, s_part, D + col, S)
        v_new = _load_summed(base, s_part, 2 * D + col, S)
        if HAS_BIAS:
            k_new += tl.load(qkv_bias + D + col).to(tl.float32)
            v_new += tl.load(qkv_bias + 2 * D + col).to(tl.float32)
        k_new = k_new.to(k_blk.dtype.element_ty)  # rounded as the cache stores it, and used so here too
        v_new = v_new.to(v_blk.dtype.element_ty)
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
                NSPLIT: tl.constexpr, PDL: tl.constexpr):
    row = tl.program_id(0)
    head = tl.program_id(1)
    _after_previous(PDL)
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


def _parts(t: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """[B, N] or [S, B, N] split-K partials -> ([S, B, N] view, S, stride of S)."""
    t = t if t.dim() == 3 else t[None]
    return t, t.shape[0], t.stride(0)


def decode_attention(qkv: torch.Tensor, k_blk: torch.Tensor, v_blk: torch.Tensor, slots: torch.Tensor,
                     lengths: torch.Tensor, n_head: int, nsplit: int = 16, block_n: int = 32,
                     bias: torch.Tensor | None = None) -> torch.Tensor:
    """qkv [B, 3D] (packed q;k;v of the new token; or [S, B, 3D] split-K partials of it, summed here, with
    the projection's `bias` added here), k_blk/v_blk [slots, max_len, D] (one layer of the block),
    slots/lengths [B] -> attention output [B, D] before the output projection. Writes the new K/V at
    (slot, length) and attends over positions 0..length of the row's slot."""
    qkv, n_parts, s_part = _parts(qkv)
    _, b, three_d = qkv.shape
    d = three_d // 3
    hd = d // n_head
    if qkv.stride(2) != 1 or k_blk.stride(2) != 1 or v_blk.stride() != k_blk.stride():
        raise ValueError("decode_attention needs unit-stride feature axes and matching K/V layouts")
    max_len = k_blk.shape[1]
    chunk = triton.next_power_of_2(triton.cdiv(max_len, nsplit))
    part_o = torch.empty(b * n_head * nsplit * hd, device=qkv.device, dtype=torch.float32)
    part_ml = torch.empty(b * n_head * nsplit * 2, device=qkv.device, dtype=torch.float32)
    out = torch.empty(b, d, device=qkv.device, dtype=k_blk.dtype)
    _attn_chunk[(b, n_head, nsplit)](
        qkv, qkv if bias is None else bias, k_blk, v_blk, slots, lengths, part_o, part_ml,
        qkv.stride(1), s_part, k_blk.stride(0), k_blk.stride(1), hd**-0.5,
        D=d, HD=hd, H=n_head, NSPLIT=nsplit, CHUNK=chunk, BLOCK_N=min(block_n, chunk), S=n_parts,
        HAS_BIAS=bias is not None, **_launch(qkv, b),
    )
    _attn_merge[(b, n_head)](part_o, part_ml, out, out.stride(0), D=d, HD=hd, H=n_head, NSPLIT=nsplit,
                             **_launch(qkv, b))
    return out


@triton.jit
def _add_ln(x, r, r_bias, w, bias, out, s_x, s_r, s_part, s_out, eps, D: tl.constexpr, BLOCK: tl.constexpr,
            S: tl.constexpr, HAS_BIAS: tl.constexpr, PDL: tl.constexpr):
    row = tl.program_id(0)
    c = tl.arange(0, BLOCK)
    ok = c < D
    gamma = tl.load(w + c, mask=ok, other=1.0).to(tl.float32)  # constants: before the wait
    beta = tl.load(bias + c, mask=ok, other=0.0).to(tl.float32)
    _after_previous(PDL)
    v = tl.load(x + row * s_x + c, mask=ok, other=0.0).to(tl.float32)
    for s in tl.static_range(S):
        v += tl.load(r + s * s_part + row * s_r + c, mask=ok, other=0.0).to(tl.float32)
    if HAS_BIAS:
        v += tl.load(r_bias + c, mask=ok, other=0.0).to(tl.float32)
    mean = tl.sum(v, axis=0) / D
    diff = tl.where(ok, v - mean, 0.0)
    var = tl.sum(diff * diff, axis=0) / D
    y = diff * tl.rsqrt(var + eps) * gamma + beta
    tl.store(out + row * s_out + c, y.to(out.dtype.element_ty), mask=ok)


def add_layer_norm(x: torch.Tensor, r: torch.Tensor, norm: torch.nn.LayerNorm,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
    """LayerNorm(x + r (+ bias)) for x [B, D] and r [B, D] or [S, B, D] split-K partials (summed here);
    statistics in fp32 -> [B, D] in x's dtype."""
    b, d = x.shape
    r, n_parts, s_part = _parts(r)
    if x.stride(1) != 1 or r.stride(2) != 1:
        raise ValueError("add_layer_norm needs unit-stride rows")
    out = torch.empty_like(x)
    _add_ln[(b,)](x, r, r if bias is None else bias, norm.weight, norm.bias, out, x.stride(0), r.stride(1), s_part,
                  out.stride(0), norm.eps, D=d, BLOCK=triton.next_power_of_2(d), S=n_parts, HAS_BIAS=bias is not None,
                  **_launch(x, b))
    return out


@triton.jit
def _small_linear(x, w, bias, y, rows, B, N, K, K_SPLIT, s_x, s_w, s_ys, s_yb, RELU: tl.constexpr,
                  HAS_BIAS: tl.constexpr, ROWS: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
                  BLOCK_K: tl.constexpr, PDL: tl.constexpr):
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    split = tl.program_id(1)
    b = tl.arange(0, BLOCK_B)
    acc = tl.zeros([BLOCK_B, BLOCK_N], dtype=tl.float32)
    k_lo = split * K_SPLIT
    k_end = tl.minimum(K, k_lo + K_SPLIT)
    k = k_lo + tl.arange(0, BLOCK_K)  # the first weight tile is a constant: read while the previous kernel runs
    wt = tl.load(w + n[:, None] * s_w + k[None, :], mask=(n[:, None] < N) & (k[None, :] < k_end), other=0.0)
    _after_previous(PDL)
    for k0 in range(k_lo, k_end, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        xt = tl.load(x + b[:, None] * s_x + k[None, :], mask=(b[:, None] < B) & (k[None, :] < k_end), other=0.0)
        acc += tl.dot(xt, tl.trans(wt))
        k = k + BLOCK_K  # the next tile (all masked after the last)
        wt = tl.load(w + n[:, None] * s_w + k[None, :], mask=(n[:, None] < N) & (k[None, :] < k_end), other=0.0)
    if HAS_BIAS:
        acc += tl.load(bias + n, mask=n < N, other=0.0).to(tl.float32)[None, :]
    if RELU:
        acc = tl.maximum(acc, 0.0)
    out_row = tl.load(rows + b, mask=b < B, other=0).to(tl.int64) if ROWS else b
    tl.store(y + split * s_ys + out_row[:, None] * s_yb + n[None, :], acc.to(y.dtype.element_ty),
             mask=(b[:, None] < B) & (n[None, :] < N))


SMALL_BATCH = 16  # rows up to which `small_linear` is used (one 16-row tile)
BLOCK_N = 16


def default_splits(k: int) -> int:
    """Split-K factor for a weight of K columns: one 128-column stretch of K per program (measured best for
    every GEMM shape of the v2 step at 1 and 16 rows on an H200: benchmarks/HISTORY.md)."""
    return max(1, k // 128)


def small_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, relu: bool = False,
                 splits: int = 1, out: torch.Tensor | None = None, rows: torch.Tensor | None = None,
                 block_n: int = BLOCK_N, block_k: int | None = None, num_warps: int | None = None) -> torch.Tensor:
    """x [B, K] (B <= 16) @ weight[N, K]^T (+ bias, + ReLU) for the decode step's weight-read-bound GEMMs.

    splits == 1: -> [B, N] in x's dtype, or written into rows `rows` [B] of `out` [*, N] (any float
    dtype). splits > 1: -> [splits, B, N] fp32 partial sums over K (no bias, no ReLU; the consumer sums
    them: `add_layer_norm`, `decode_attention`), so each program reads one short strip of the weight."""
    b, k = x.shape
    n = weight.shape[0]
    if b > SMALL_BATCH or x.stride(1) != 1 or weight.stride(1) != 1:
        raise ValueError("small_linear takes at most 16 unit-stride rows and a row-major weight")
    if splits > 1 and (bias is not None or relu or out is not None):
        raise ValueError("split-K partials take no bias, ReLU or output rows")
    k_split = triton.cdiv(triton.cdiv(k, splits), 16) * 16
    if splits > 1:
        y = torch.empty(splits, b, n, device=x.device, dtype=torch.float32)
    else:
        y = torch.empty(b, n, device=x.device, dtype=x.dtype) if out is None else out
    block_k = block_k or min(128 if splits > 1 else 256, triton.next_power_of_2(k_split))
    num_warps = num_warps or (2 if splits > 1 else 4)
    _small_linear[(triton.cdiv(n, block_n), splits)](
        x, weight, y if bias is None else bias, y, x if rows is None else rows, b, n, k, k_split,
        x.stride(0), weight.stride(0), y.stride(0) if splits > 1 else 0, y.stride(-2),
        RELU=relu, HAS_BIAS=bias is not None, ROWS=rows is not None, BLOCK_B=16, BLOCK_N=block_n, BLOCK_K=block_k,
        num_warps=num_warps, **_launch(x, b))
    return y

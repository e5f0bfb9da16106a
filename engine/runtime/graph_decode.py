"""GPT decode step as one static-shape computation over the preallocated KV block, replayed from a
CUDA graph per batch bucket.

Inputs are device tensors: token [B,1], audio position [B], slot ids [B], lengths [B] (each
stream's cache length before this step). The step writes the new K/V rows at (slot, length),
attends over every position of the block with a mask `col <= length` (the true length of each
slot; padding rows use the scratch slot), and leaves next-token logits [B, vocab] in a static
buffer. On CPU the same function runs eagerly (it is what the tests compare with the scheduler's
eager step).
"""

from __future__ import annotations

import logging
import os

import torch

from gsvd.engine.runtime.cuda_graphs import capture
from gsvd.engine.runtime.kv_cache import KVCache

log = logging.getLogger(__name__)


def _embed_new(gpt, token, position, dtype) -> torch.Tensor:
    """Embedding of each row's new token [B] at its audio position [B] -> [B, D]."""
    pe = gpt.ar_audio_position
    return gpt.ar_audio_embedding(token) + pe.alpha * pe.table[position].to(dtype)


def decode_step(gpt, cache: KVCache, token, position, slots, lengths) -> torch.Tensor:
    """One step for B streams -> logits [B, vocab] (fp32). Uses the cache's k_all/v_all block."""
    k_all, v_all = cache.k_all, cache.v_all
    x = _embed_new(gpt, token[:, 0], position, k_all.dtype)[:, None]
    cols = torch.arange(k_all.shape[2], device=token.device)
    allow = (cols[None, :] <= lengths[:, None])[:, None, None, :]  # [B,1,1,T]
    for i, layer in enumerate(gpt.layers):
        q, k, v = layer.self_attn.qkv(x)
        k_all[i].index_put_((slots, lengths), k[:, 0])
        v_all[i].index_put_((slots, lengths), v[:, 0])
        kk = k_all[i].index_select(0, slots)
        vv = v_all[i].index_select(0, slots)
        x = layer.finish(x, layer.self_attn.attend(q, kk, vv, allow))
    return gpt.logits(x[:, 0]).float()


def _small_rows(x: torch.Tensor) -> bool:
    """Whether the step's GEMMs over x use `small_linear` (up to 16 rows; GSVD_SMALL_LINEAR=0: cuBLAS)."""
    from gsvd.engine.runtime.decode_kernels import SMALL_BATCH

    return x.shape[0] <= SMALL_BATCH and os.environ.get("GSVD_SMALL_LINEAR", "1") != "0"


def _kernel_layers(gpt, cache: KVCache, x, slots, lengths) -> torch.Tensor:
    """The transformer layers of `decode_step` with the Triton kernels of `decode_kernels`, from the new
    tokens' embeddings x [B, D] -> final hidden state [B, D] (same result within fp16 rounding).

    Attention reads each slot in place up to its true length and writes the new K/V row itself;
    residual + LayerNorm is one kernel; up to 16 rows the GEMMs are `small_linear`, split over K where
    the weight is short and wide (the consumer sums the partials with the bias), the FFN's ReLU on its
    first GEMM (GSVD_SMALL_LINEAR=0: cuBLAS; GSVD_SPLIT_K=0: no split)."""
    from gsvd.engine.runtime import decode_kernels as dk

    k_all, v_all = cache.k_all, cache.v_all
    split_k = os.environ.get("GSVD_SPLIT_K", "1") != "0"
    if _small_rows(x):
        def linear(x, w, b):  # -> (partials or output, the bias still to add or None)
            splits = dk.default_splits(w.shape[1]) if split_k else 1
            return (dk.small_linear(x, w, splits=splits), b) if splits > 1 else (dk.small_linear(x, w, b), None)

        def ffn1(x, w, b):
            return dk.small_linear(x, w, b, relu=True)
    else:
        def linear(x, w, b):
            return torch.addmm(b, x, w.t()), None

        def ffn1(x, w, b):
            return torch._addmm_activation(b, x, w.t())

    for i, layer in enumerate(gpt.layers):
        att = layer.self_attn
        qkv, bias = linear(x, att.in_proj_weight, att.in_proj_bias)
        a = dk.decode_attention(qkv, k_all[i], v_all[i], slots, lengths, att.n_head, bias=bias)
        o, bias = linear(a, att.out_proj.weight, att.out_proj.bias)
        x = dk.add_layer_norm(x, o, layer.norm1, bias=bias)
        f = ffn1(x, layer.linear1.weight, layer.linear1.bias)
        o, bias = linear(f, layer.linear2.weight, layer.linear2.bias)
        x = dk.add_layer_norm(x, o, layer.norm2, bias=bias)
    return x


def kernel_decode_step(gpt, cache: KVCache, token, position, slots, lengths) -> torch.Tensor:
    """`decode_step` with the Triton kernels (same inputs, same result within fp16 rounding)."""
    x = _kernel_layers(gpt, cache, _embed_new(gpt, token[:, 0], position, cache.k_all.dtype), slots, lengths)
    return gpt.logits(x).float()


def sample_and_step(gpt, cache: KVCache, sampler, slots, lengths, positions, eos: int, min_steps: int,
                    step=decode_step) -> torch.Tensor:
    """Sample each row's next token from the sampler's logits, run the decode step with it, store the
    new logits back: -> [2, B] (sampled ids, greedy ids). Static shapes only (graph-capturable)."""
    picked, greedy = sampler.sample(slots, eos, min_steps)
    sampler.logits[slots] = step(gpt, cache, picked[:, None], positions, slots, lengths)
    return torch.stack([picked, greedy])


def kernel_sample_and_step(gpt, cache: KVCache, sampler, slots, lengths, positions, eos: int,
                           min_steps: int) -> torch.Tensor:
    """`sample_and_step` with Triton kernels: the sampler and the new tokens' embeddings in one launch
    (`sampling_kernel`), the layers of `_kernel_layers`, and up to 16 rows the output projection written
    straight into the sampler's per-slot logits."""
    from gsvd.engine.runtime import decode_kernels as dk
    from gsvd.engine.runtime.sampling_kernel import sample_and_embed

    pe = gpt.ar_audio_position
    ids, x = sample_and_embed(sampler, slots, positions, gpt.ar_audio_embedding.word_embeddings.weight, pe.table,
                              pe.alpha, eos, min_steps)
    x = _kernel_layers(gpt, cache, x, slots, lengths)
    head = gpt.ar_predict_layer.weight
    if _small_rows(x):
        dk.small_linear(x, head, out=sampler.logits, rows=slots)
    else:
        sampler.logits[slots] = gpt.logits(x).float()
    return ids


class _Captured:
    """A static-shape function captured once per batch bucket (padding rows use the scratch slot).

    `inputs` names the long [B] vectors the function takes; they travel in one pinned staging buffer
    and one copy per call."""

    inputs: tuple[str, ...] = ()

    def __init__(self, cache: KVCache, kernels: bool = False,
                 buckets: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)) -> None:
        if cache.k_all is None:
            raise ValueError("CUDA-graph decoding needs a preallocated KV cache")
        self.cache = cache
        self.kernels = kernels  # Triton kernels in the graphs (else torch ops)
        self.buckets = tuple(sorted({*(b for b in buckets if b < cache.slots_total), cache.slots_total}))
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph | None, dict[str, torch.Tensor], torch.Tensor]] = {}
        self.on_cuda = cache.k_all.is_cuda  # off CUDA the same function runs eagerly (the CPU tests' reference)
        # Per bucket, two contiguous pinned staging buffers used in turn (a step may be launched before the
        # previous one is read back). Contiguous matters: copying a strided view goes through a pageable
        # temporary, which is synchronous and would wait for the step still running.
        self.staging = {b: [torch.empty(len(self.inputs), b, dtype=torch.long, pin_memory=self.on_cuda)
                            for _ in range(2)] for b in self.buckets}
        self.flip = 0

    def bucket(self, n: int) -> int:
        return next((b for b in self.buckets if b >= n), self.buckets[-1])

    def _run(self, static: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def _capture(self, b: int):
        try:
            return self._capture_once(b)
        except Exception as exc:  # e.g. a Triton kernel that does not compile here: torch ops instead
            if not self.kernels:
                raise
            from gsvd.engine.runtime import decode_kernels as dk

            if dk.pdl_on(self.cache.k_all):
                log.warning("PDL launches failed at batch bucket %d (%s); plain launches", b, exc)
                dk.disable_pdl(self.cache.k_all)
                return self._capture(b)
            log.warning("decode kernels failed at batch bucket %d (%s); using torch ops", b, exc)
            self.kernels = False
            return self._capture_once(b)

    def _capture_once(self, b: int):
        packed = torch.zeros(len(self.inputs), b, dtype=torch.long, device=self.cache.k_all.device)
        packed[self.inputs.index("slots")] = self.cache.scratch_slot
        static = {"packed": packed, **{name: packed[i] for i, name in enumerate(self.inputs)}}
        if not self.on_cuda:
            return None, static, None
        graph, out = capture(self._run, (static,))  # warm-up runs use the scratch slot
        return graph, static, out

    def prepare(self) -> None:
        """Capture every batch bucket now (at model load), so no stream waits for a capture later."""
        for b in self.buckets:
            if b not in self.graphs:
                self.graphs[b] = self._capture(b)

    def replay(self, **rows: list[int]) -> torch.Tensor:
        """Fill the inputs (padded to the bucket), replay; returns the whole (bucket-sized) static output."""
        n = len(rows["slots"])
        b = self.bucket(n)
        if b not in self.graphs:
            self.graphs[b] = self._capture(b)
        graph, static, out = self.graphs[b]
        self.flip ^= 1
        staged = self.staging[b][self.flip]
        host = staged.numpy()  # filled with numpy: a torch call per input would hand the GIL over each time
        for i, name in enumerate(self.inputs):
            host[i, :n] = rows[name]
            host[i, n:] = self.cache.scratch_slot if name == "slots" else 0
        static["packed"].copy_(staged, non_blocking=True)
        if graph is None:
            return self._run(static)
        graph.replay()
        return out


class GraphedDecoder(_Captured):
    """The decode step alone (sampling runs eagerly before it): tokens/positions/slots/lengths -> logits."""

    inputs = ("tokens", "positions", "slots", "lengths")

    def __init__(self, gpt, cache: KVCache, kernels: bool = False, **kw) -> None:
        self.gpt = gpt
        super().__init__(cache, kernels, **kw)

    def _run(self, static):
        step = kernel_decode_step if self.kernels else decode_step
        return step(self.gpt, self.cache, static["tokens"][:, None], static["positions"], static["slots"],
                    static["lengths"])

    def __call__(self, tokens: list[int], positions: list[int], slots: list[int], lengths: list[int]) -> torch.Tensor:
        return self.replay(tokens=tokens, positions=positions, slots=slots, lengths=lengths)[: len(tokens)]


class FusedDecoder(_Captured):
    """Sampling and the decode step in one graph (the default on CUDA; GSVD_FUSED_SAMPLING=0 samples eagerly
    instead): -> (sampled ids, greedy ids) per row, the step's only device-to-host copy.

    Pipelined: `launch` replays the graph and queues the copy into one of two pinned buffers; `collect`
    waits for it. The scheduler launches step n+1 before it reads step n (the sampled token never
    leaves the device between steps), so the host loop and the GPU overlap; a stream that stopped at
    step n has run one wasted step n+1, which nothing reads."""

    inputs = ("slots", "lengths", "positions")
    fused = True

    def __init__(self, gpt, cache: KVCache, sampler, eos: int, min_steps: int, kernels: bool = False, **kw) -> None:
        self.gpt, self.sampler, self.eos, self.min_steps = gpt, sampler, eos, min_steps
        super().__init__(cache, kernels, **kw)
        self.host = {b: [torch.empty(2, b, dtype=torch.long, pin_memory=self.on_cuda) for _ in range(2)]
                     for b in self.buckets}
        self.events = [torch.cuda.Event() for _ in range(2)] if self.on_cuda else [None, None]
        self.turn = 0

    def _run(self, static):
        if self.kernels and os.environ.get("GSVD_SAMPLING_KERNEL", "1") != "0":
            return kernel_sample_and_step(self.gpt, self.cache, self.sampler, static["slots"], static["lengths"],
                                          static["positions"], self.eos, self.min_steps)
        return sample_and_step(self.gpt, self.cache, self.sampler, static["slots"], static["lengths"],
                               static["positions"], self.eos, self.min_steps,
                               kernel_decode_step if self.kernels else decode_step)

    def launch(self, slots: list[int], lengths: list[int], positions: list[int]):
        """Queue one step for these rows; returns a ticket for `collect`."""
        out = self.replay(slots=slots, lengths=lengths, positions=positions)  # [2, bucket], contiguous
        self.turn ^= 1
        back = self.host[out.shape[1]][self.turn]
        back.copy_(out, non_blocking=True)
        event = self.events[self.turn]
        if event is not None:
            event.record()
        return back[:, : len(slots)], event

    @staticmethod
    def collect(ticket) -> tuple[list[int], list[int]]:
        back, event = ticket
        if event is not None:
            event.synchronize()  # releases the GIL while it waits
        ids = back.numpy()
        return ids[0].tolist(), ids[1].tolist()

    def __call__(self, slots: list[int], lengths: list[int], positions: list[int]) -> tuple[list[int], list[int]]:
        return self.collect(self.launch(slots, lengths, positions))

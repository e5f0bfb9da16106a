"""The GPT decode step (one implementation) and the two decoders the scheduler drives (`seams.Decoder`).

`decode_step` is the step over the KV cache: each row's new token [B] at its audio position [B] is embedded,
its K/V written at (slot, length) and attended over each slot's positions `<= length`, and next-token logits
[B, vocab] come back. With a preallocated block (CUDA) it is static-shape (`width` = the whole block), so it
can be captured; over per-slot caches (CPU) it reads `width` = the longest row's positions. `kernels=True` runs
its layers with the Triton kernels of `decode_kernels` (same result within fp16 rounding).

- `GraphDecoder` (CUDA; eagerly off CUDA, the CPU tests' reference): sampling (`sampling_kernel`, or the
  torch sampler without kernels) and the step in one graph per batch bucket (`cuda_graphs.GraphSet`). `launch`
  replays the graph and queues the sampled ids' copy into one of two pinned buffers; `collect` waits for it.
  The scheduler launches step n+1 before it reads step n (the sampled token never leaves the device between
  steps), so the host loop and the GPU overlap; a stream that stopped at step n has run one wasted step n+1.
  Padding rows use the scratch slot. The graphs are the model's own (a step replays every tick, where a swap of
  the model's 155 MB into a shared template would cost ~0.1 ms against a 0.4 ms step at one row), captured in the
  background (`capture`, one bucket per job, small first) into its GPT lane's pool; until a bucket's graph exists
  the same padded step runs eagerly, with torch ops until a capture has compiled and run the Triton kernels.
- `StepDecoder`: the same pair of calls over any `seams.DecodeStep` (`TorchStep` eagerly: the CPU path and
  `cuda_graphs=false`; the TensorRT engine), sampling eagerly with the same sampler.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from gsvd.engine.runtime.cuda_graphs import GraphPool, GraphSet, default_pool

if TYPE_CHECKING:
    from gsvd.engine.models.t2s import Text2SemanticDecoder
    from gsvd.engine.runtime.device_sampling import SamplerState
    from gsvd.engine.runtime.kv_cache import KVCache
    from gsvd.engine.runtime.seams import DecodeStep

log = logging.getLogger(__name__)
BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # batch buckets of the decode graphs (up to the cache's slots)


def _embed_new(gpt, token, position, dtype) -> torch.Tensor:
    """Embedding of each row's new token [B] at its audio position [B] -> [B, D]."""
    pe = gpt.ar_audio_position
    return gpt.ar_audio_embedding(token) + pe.alpha * pe.table[position].to(dtype)


def decode_step(gpt, cache: KVCache, token, position, slots, lengths, width: int | None = None,
                kernels: bool = False) -> torch.Tensor:
    """One step for B streams: token/position/slots/lengths [B] device tensors -> logits [B, vocab] (fp32).
    `width`: positions attended (None: the whole preallocated block, static shapes)."""
    x = _embed_new(gpt, token, position, cache.dtype)
    x = _kernel_layers(gpt, cache, x, slots, lengths) if kernels else _torch_layers(gpt, cache, x, slots, lengths,
                                                                                     width)
    return gpt.logits(x).float()


def _torch_layers(gpt, cache: KVCache, x, slots, lengths, width: int | None) -> torch.Tensor:
    width = cache.max_len if width is None else width
    cols = torch.arange(width, device=x.device)
    allow = (cols[None, :] <= lengths[:, None])[:, None, None, :]  # [B,1,1,T]
    x = x[:, None]
    for i, layer in enumerate(gpt.layers):
        q, k, v = layer.self_attn.qkv(x)
        cache.append(i, slots, lengths, k[:, 0], v[:, 0])
        kk, vv = cache.rows(i, slots, width)
        x = layer.finish(x, layer.self_attn.attend(q, kk, vv, allow))
    return x[:, 0]


def _kernel_layers(gpt, cache: KVCache, x, slots, lengths) -> torch.Tensor:
    """The transformer layers with the Triton kernels of `decode_kernels`, from the new tokens' embeddings
    x [B, D] -> final hidden state [B, D]. Attention reads each slot in place up to its true length and writes
    the new K/V row itself; residual + LayerNorm is one kernel; up to 16 rows the GEMMs are `small_linear`,
    split over K where the weight is short and wide (the consumer sums the partials with the bias), the FFN's
    ReLU on its first GEMM; above 16 rows cuBLAS."""
    from gsvd.engine.runtime import decode_kernels as dk

    k_all, v_all = cache.k_all, cache.v_all
    if x.shape[0] <= dk.SMALL_BATCH:
        def linear(x, w, b):  # -> (partials or output, the bias still to add or None)
            splits = dk.default_splits(w.shape[1])
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


def sample_and_step(gpt, cache: KVCache, sampler: SamplerState, slots, lengths, positions, eos: int,
                    min_steps: int, kernels: bool = False) -> torch.Tensor:
    """Sample each row's next token from the sampler's logits, run the decode step with it, store the new logits
    back: -> [2, B] (sampled ids, greedy ids). Static shapes only (graph-capturable). With `kernels` the
    sampler and the new tokens' embeddings are one launch (`sampling_kernel`) and up to 16 rows the output
    projection goes straight into the sampler's per-slot logits."""
    if not kernels:
        picked, greedy = sampler.sample(slots, eos, min_steps)
        sampler.logits[slots] = decode_step(gpt, cache, picked, positions, slots, lengths)
        return torch.stack([picked, greedy])
    from gsvd.engine.runtime import decode_kernels as dk
    from gsvd.engine.runtime.sampling_kernel import sample_and_embed

    pe = gpt.ar_audio_position
    ids, x = sample_and_embed(sampler, slots, positions, gpt.ar_audio_embedding.word_embeddings.weight, pe.table,
                              pe.alpha, eos, min_steps)
    x = _kernel_layers(gpt, cache, x, slots, lengths)
    if x.shape[0] <= dk.SMALL_BATCH:
        dk.small_linear(x, gpt.ar_predict_layer.weight, out=sampler.logits, rows=slots)
    else:
        sampler.logits[slots] = gpt.logits(x).float()
    return ids


class TorchStep:
    """`seams.DecodeStep` from torch ops over the cache as it is (per-slot or preallocated), eagerly."""

    def __init__(self, gpt: Text2SemanticDecoder, cache: KVCache) -> None:
        self.gpt, self.cache = gpt, cache

    def __call__(self, tokens: torch.Tensor, positions: list[int], slots: list[int],
                 lengths: list[int]) -> torch.Tensor:
        dev = tokens.device
        meta = torch.tensor([positions, slots, lengths]).to(dev, non_blocking=True)
        return decode_step(self.gpt, self.cache, tokens, meta[0], meta[1], meta[2], width=max(lengths) + 1)


class StepDecoder:
    """`seams.Decoder` over a `DecodeStep`: the sampler's rows sampled eagerly, then the step (the ids are
    read back in `collect`, so the step is queued first)."""

    def __init__(self, step: DecodeStep, sampler: SamplerState, eos: int, min_steps: int) -> None:
        self.step, self.sampler, self.eos, self.min_steps = step, sampler, eos, min_steps

    def launch(self, slots: list[int], lengths: list[int], positions: list[int]) -> torch.Tensor:
        idx = torch.tensor(slots).to(self.sampler.logits.device, non_blocking=True)
        picked, greedy = self.sampler.sample(idx, self.eos, self.min_steps)
        self.sampler.logits[idx] = self.step(picked, positions, slots, lengths).float()
        return torch.stack([picked, greedy])

    def collect(self, ticket: torch.Tensor) -> tuple[list[int], list[int]]:
        picked, greedy = ticket.tolist()  # the step's one host sync
        return picked, greedy


class GraphDecoder:
    """`seams.Decoder`: sampling and the decode step in one CUDA graph per batch bucket (see the module doc)."""

    INPUTS = ("slots", "lengths", "positions")

    def __init__(self, gpt: Text2SemanticDecoder, cache: KVCache, sampler: SamplerState, eos: int,
                 min_steps: int, kernels: bool = False, buckets: tuple[int, ...] = BUCKETS,
                 pool: GraphPool | None = None) -> None:
        if cache.k_all is None:
            raise ValueError("CUDA-graph decoding needs a preallocated KV cache")
        self.gpt, self.cache, self.sampler, self.eos, self.min_steps = gpt, cache, sampler, eos, min_steps
        self.kernels = kernels  # Triton kernels in the graphs (else torch ops)
        self.kernels_ready = False  # a capture compiled and ran them: the eager step may use them too
        self.buckets = tuple(sorted({*(b for b in buckets if b < cache.slots_total), cache.slots_total}))
        self.on_cuda = cache.k_all.is_cuda
        self.pool = pool if pool is not None else default_pool(cache.k_all.device)
        self.graphs = GraphSet(self._run, self._static, pool=self.pool)
        self._wanted: list[int] = []  # buckets asked for so far (captured again if the configuration changes)
        # per bucket two contiguous pinned buffers used in turn, for the inputs and for the ids coming back (a
        # step is launched before the previous one is read). Contiguous matters: copying a strided view goes
        # through a pageable temporary, which is synchronous and would wait for the step still running.
        pinned = lambda rows, b: [torch.empty(rows, b, dtype=torch.long, pin_memory=self.on_cuda) for _ in range(2)]  # noqa: E731
        self.staging = {b: pinned(len(self.INPUTS), b) for b in self.buckets}
        self.host = {b: pinned(2, b) for b in self.buckets}
        self.events = [torch.cuda.Event() for _ in range(2)] if self.on_cuda else [None, None]
        self.turn = 0

    def _static(self, b: int) -> tuple[torch.Tensor]:
        packed = torch.zeros(len(self.INPUTS), b, dtype=torch.long, device=self.cache.k_all.device)
        packed[0] = self.cache.scratch_slot
        return (packed,)

    def _run(self, packed: torch.Tensor, kernels: bool | None = None) -> torch.Tensor:
        return sample_and_step(self.gpt, self.cache, self.sampler, packed[0], packed[1], packed[2], self.eos,
                               self.min_steps, self.kernels if kernels is None else kernels)

    def capture_order(self) -> tuple[int, ...]:
        """The batch buckets, in the order to capture them (smallest first)."""
        return self.buckets

    def capture(self, b: int) -> bool:
        """Capture bucket b's graph (-> whether it exists). A capture that fails with the Triton kernels is tried again
        with plain launches (no PDL), then with torch ops; the buckets captured before are captured again the new
        way."""
        from gsvd.engine.runtime import decode_kernels as dk

        if b not in self._wanted:
            self._wanted.append(b)
        while True:
            graphs = self.graphs
            try:
                for key in self._wanted:
                    graphs.capture(key, strict=True)
                self.kernels_ready = self.kernels_ready or self.kernels
                return graphs.has(b)
            except Exception as exc:
                if not self.kernels:
                    log.warning("decode graph capture failed (%s): eager steps", exc)
                    graphs.failed = True
                    return False
                if self.on_cuda and dk.pdl_on(self.cache.k_all):
                    log.warning("decode graph capture with PDL launches failed (%s); plain launches", exc)
                    dk.disable_pdl(self.cache.k_all)
                else:
                    log.warning("decode kernels failed at capture (%s); using torch ops", exc)
                    self.kernels = False
                self.graphs = GraphSet(self._run, self._static, pool=self.pool)

    def prepare(self) -> None:
        """Capture every batch bucket now, in this thread."""
        for b in self.capture_order():
            self.capture(b)

    def reset(self) -> None:
        """Forget the graphs (the model's weights moved: evicted and loaded again); capture them again with
        `capture`."""
        self.graphs, self._wanted = GraphSet(self._run, self._static, pool=self.pool), []

    def bucket(self, n: int) -> int:
        return next((b for b in self.buckets if b >= n), self.buckets[-1])

    def launch(self, slots: list[int], lengths: list[int], positions: list[int]):
        n, b = len(slots), self.bucket(len(slots))
        self.turn ^= 1
        staged, back, event = self.staging[b][self.turn], self.host[b][self.turn], self.events[self.turn]
        host = staged.numpy()  # filled with numpy: a torch call per input would hand the GIL over each time
        host[:, n:] = 0
        host[0, :n], host[0, n:] = slots, self.cache.scratch_slot
        host[1, :n], host[2, :n] = lengths, positions

        def take(out: torch.Tensor):
            back.copy_(out, non_blocking=True)
            if event is not None:
                event.record()
            return back[:, :n], event

        ticket = self.graphs.run(b, lambda packed: packed.copy_(staged, non_blocking=True), take)
        if ticket is None:  # no graph of this bucket (yet): the same padded step, eagerly
            packed = staged.to(self.cache.k_all.device, non_blocking=True) if self.on_cuda else staged.clone()
            ticket = take(self._run(packed, self.kernels and self.kernels_ready))
        return ticket

    @staticmethod
    def collect(ticket) -> tuple[list[int], list[int]]:
        back, event = ticket
        if event is not None:
            event.synchronize()  # releases the GIL while it waits
        ids = np.asarray(back)
        return ids[0].tolist(), ids[1].tolist()

"""Slot-based KV cache for the GPT: one slot per live stream, reused after it ends; and the pool that shares one
cache among every resident model of one GPT shape.

Storage per slot is [layers, max_len, dim] for K and V (heads not split, as the
model's projections produce them). `preallocate=True` (the GPU default) reserves
every slot up front so memory use is flat; on CPU slots are created on first use
and then kept for reuse.

`KVPool`: a cache and the sampler state of its slots (`SamplerState`), shared by all models of one GPT shape (layers,
width, vocabulary, dtype): a request takes a slot of the pool whatever its model, so 20 resident models need the slots
of the streams that run at once, not 20 x `max_streams` (each slot is 2 x 24 layers x 2048 positions x 512 x fp16 =
96 MiB at real v2 sizes). Its size comes from the memory budget (`kv_slots`). A slot freed on one GPT lane while a
step still runs there carries an event that the next admission into it waits for (`after`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import torch

from gsvd.engine.runtime.device_sampling import SamplerState

if TYPE_CHECKING:
    from gsvd.engine.models.t2s import T2SDims

KV_SHARE = 0.75  # of the budget left when a pool is made, at most (the rest: more models, graphs, workspaces)


class KVCache:
    def __init__(
        self,
        n_layers: int,
        dim: int,
        slots: int,
        max_len: int,
        device: torch.device,
        dtype: torch.dtype,
        preallocate: bool = False,
    ) -> None:
        self.n_layers, self.dim, self.max_len = n_layers, dim, max_len
        self.device, self.dtype = torch.device(device), dtype
        self.k: list[torch.Tensor | None] = [None] * slots
        self.v: list[torch.Tensor | None] = [None] * slots
        self.lengths = [0] * slots
        self._free = list(range(slots - 1, -1, -1))
        self._lock = threading.Lock()
        self.k_all: torch.Tensor | None = None  # [layers, slots + 1, max_len, dim] when preallocated
        self.v_all: torch.Tensor | None = None
        if preallocate:
            # one block (plus a scratch slot for padded batch rows) so a decode step can be a CUDA graph
            shape = (n_layers, slots + 1, max_len, dim)
            self.k_all = torch.zeros(shape, device=device, dtype=dtype)
            self.v_all = torch.zeros(shape, device=device, dtype=dtype)
            for s in range(slots):
                self.k[s], self.v[s] = self.k_all[:, s], self.v_all[:, s]

    @property
    def scratch_slot(self) -> int:
        """A slot no stream owns (preallocated caches only): padded batch rows write there."""
        return len(self.k)

    @property
    def slots_total(self) -> int:
        return len(self.k)

    @property
    def slots_free(self) -> int:
        with self._lock:
            return len(self._free)

    def alloc(self) -> int | None:
        """A free slot id (length reset to 0), or None when all are taken."""
        with self._lock:
            if not self._free:
                return None
            slot = self._free.pop()
        self._ensure(slot)
        self.lengths[slot] = 0
        return slot

    def free(self, slot: int) -> None:
        with self._lock:
            if slot not in self._free:
                self.lengths[slot] = 0
                self._free.append(slot)

    def _ensure(self, slot: int) -> None:
        if self.k[slot] is None:
            shape = (self.n_layers, self.max_len, self.dim)
            self.k[slot] = torch.zeros(shape, device=self.device, dtype=self.dtype)
            self.v[slot] = torch.zeros(shape, device=self.device, dtype=self.dtype)

    def write(self, slot: int, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """k/v [T, dim] at positions start..start+T-1."""
        t = k.shape[0]
        self.k[slot][layer, start : start + t] = k
        self.v[slot][layer, start : start + t] = v

    def append(self, layer: int, slots: torch.Tensor, lengths: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """One new K/V row per stream: k/v [B, dim] at position lengths[i] of slot slots[i] ([B] tensors)."""
        if self.k_all is not None:  # static shapes: capturable
            self.k_all[layer].index_put_((slots, lengths), k)
            self.v_all[layer].index_put_((slots, lengths), v)
            return
        for i, (slot, n) in enumerate(zip(slots.tolist(), lengths.tolist())):
            self.write(slot, layer, n, k[i : i + 1], v[i : i + 1])

    def rows(self, layer: int, slots: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K, V [B, width, dim] of the given slots ([B] tensor; positions past a slot's length are masked by
        the caller)."""
        if self.k_all is not None:
            return self.k_all[layer, :, :width].index_select(0, slots), self.v_all[layer, :, :width].index_select(0, slots)
        ids = slots.tolist()
        return (torch.stack([self.k[s][layer, :width] for s in ids]), torch.stack([self.v[s][layer, :width] for s in ids]))


def slot_bytes(n_layers: int, dim: int, max_len: int, dtype: torch.dtype, vocab: int = 0) -> int:
    """Device bytes of one KV slot (K and V) and its sampler row."""
    kv = 2 * n_layers * max_len * dim * torch.empty((), dtype=dtype).element_size()
    return kv + vocab * 5 + 64  # fp32 logits + seen mask + parameters


def kv_slots(per_slot: int, max_streams: int, kv_bytes: int | None, budget_left: int | None) -> int:
    """Slots of a new pool: `max_streams`, at most what `kv_bytes` (the kv_cache_gib setting) holds, else at most
    KV_SHARE of the budget left (`budget_left`, None: unbounded) -> at least 1; ValueError when not even one fits."""
    cap = kv_bytes if kv_bytes is not None else (None if budget_left is None else int(KV_SHARE * budget_left))
    slots = max_streams if cap is None else min(max_streams, cap // per_slot)
    if slots < 1:
        raise ValueError(f"no room for one KV slot ({per_slot / 2**30:.2f} GiB each at this max_len) in "
                         f"{(cap or 0) / 2**30:.2f} GiB")
    return slots


class KVPool:
    """The KV slots and sampler rows of every resident model of one GPT shape (see the module doc)."""

    def __init__(self, dims: T2SDims, slots: int, max_len: int, device: torch.device, dtype: torch.dtype,
                 preallocate: bool) -> None:
        self.cache = KVCache(dims.n_layer, dims.hidden_dim, slots, max_len, device, dtype, preallocate=preallocate)
        self.sampler = SamplerState(slots, dims.vocab_size, device)
        self.nbytes = (slots + 1) * slot_bytes(dims.n_layer, dims.hidden_dim, max_len, dtype, dims.vocab_size)
        self.after: dict[int, object] = {}  # slot -> CUDA event its next admission waits for (freed on another lane)

    @staticmethod
    def key(dims: T2SDims, dtype: torch.dtype) -> tuple:
        return dims.n_layer, dims.hidden_dim, dims.vocab_size, dtype

    @property
    def slots_total(self) -> int:
        return self.cache.slots_total

    @property
    def slots_free(self) -> int:
        return self.cache.slots_free

"""Which models' weights are on the device: a memory budget, least-recently-used eviction, pinned models.

The budget (`budget_bytes`: the `gpu_memory_gib` setting, else `gpu_memory_fraction` of the device's memory on CUDA,
else none) counts what the runtime places on the device itself: every resident model's flat weights (`FlatWeights`,
~0.38 GiB per real-size v2 model: GPT fp16, SoVITS fp32, the fp16 generator in two layouts), the KV pools and the
graph templates. Graph memory pools and workspaces live in the room the KV pool leaves (`kv_cache.KV_SHARE`). When a
load (a new model, a model coming back, a new KV pool) would pass the budget, the least recently used models that are
idle (no stream live, queued or in flight) and not pinned are evicted -- their weights stay in pinned host memory,
so bringing one back is one host-to-device copy (~15-30 ms at 16-25 GB/s) -- until it fits; when it cannot fit, the
load fails with `ResourceExhausted` naming what holds the memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import torch

from gsvd.engine.errors import ResourceExhausted

if TYPE_CHECKING:
    from gsvd.engine.runtime.weights import FlatWeights
    from gsvd.engine.settings import RuntimeConfig

GIB = 2**30


class Tenant(Protocol):
    """What residency needs of a model (the scheduler's `ModelEntry`)."""

    model_id: str
    weights: list[FlatWeights]
    pinned: bool
    holds: int  # users that need the weights now (a voice being made from it): not evicted meanwhile
    resident: bool
    last_used: float


def budget_bytes(config: RuntimeConfig, device: torch.device) -> int | None:
    """The runtime's device memory budget in bytes: `gpu_memory_gib` when set, else `gpu_memory_fraction` of the
    device's total memory on CUDA, else None (unbounded)."""
    if config.gpu_memory_gib > 0:
        return int(config.gpu_memory_gib * GIB)
    if device.type == "cuda":
        return int(config.gpu_memory_fraction * torch.cuda.get_device_properties(device).total_memory)
    return None


def weight_bytes(tenant: Tenant) -> int:
    return sum(w.nbytes for w in tenant.weights)


class Residency:
    """The budget and what counts against it (see the module doc). `fixed`: bytes of the KV pools and templates."""

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.fixed = 0
        self.evictions = 0
        self.loads = 0  # models brought back after an eviction
        self.last_load_s = 0.0

    def used(self, tenants: Iterable[Tenant]) -> int:
        return self.fixed + sum(weight_bytes(t) for t in tenants if t.resident)

    def left(self, tenants: Iterable[Tenant]) -> int | None:
        return None if self.budget is None else self.budget - self.used(tenants)

    def victims(self, tenants: Iterable[Tenant], need: int, idle: Callable[[Tenant], bool],
                keep: str | None = None) -> list[Tenant]:
        """The resident models to evict, least recently used first, so that `need` more bytes fit the budget (none
        when they fit already); only idle, unpinned, unheld ones other than `keep`. ResourceExhausted when evicting
        all of those is not enough."""
        tenants = list(tenants)
        if self.budget is None:
            return []
        over = self.used(tenants) + need - self.budget
        if over <= 0:
            return []
        out = []
        for t in sorted((t for t in tenants if t.resident and t.model_id != keep), key=lambda t: t.last_used):
            if over <= 0:
                break
            if t.pinned or t.holds or not idle(t):
                continue
            out.append(t)
            over -= weight_bytes(t)
        if over > 0:
            busy = [t.model_id for t in tenants if t.resident and t.model_id != keep and t not in out]
            raise ResourceExhausted(
                f"GPU memory budget of {self.budget / GIB:.2f} GiB is full: {need / GIB:.2f} GiB more needed, "
                f"{self.used(tenants) / GIB:.2f} GiB held ({len(busy)} model(s) pinned or serving: "
                f"{', '.join(busy[:5]) or 'none'}; KV pools and templates {self.fixed / GIB:.2f} GiB); raise "
                "gpu_memory_fraction / gpu_memory_gib, lower kv_cache_gib or max_streams, or unpin models")
        return out

"""A model's weights as a few flat buffers: one copy to move them, one copy to swap them into a shared graph.

`FlatWeights` puts every parameter and buffer of some modules into one contiguous buffer per dtype (each tensor a
view with its own shape and strides, channels-last weights included, at offsets aligned to 128 bytes) and points
the modules at those views. The buffers live in host memory (pinned on CUDA) and, while the model is resident, on
the device: `load()` is one host-to-device copy per dtype (off CUDA the host buffers serve as they are), `unload()`
drops the device copy and points the modules at meta tensors (an evicted model cannot be run by mistake). Residency (`residency.Residency`) moves models this way.

A template: modules of one architecture (built on the meta device from its dims: no initialization) whose flat
weights live on the device only, and that CUDA graphs are captured against. Graphs read weights from fixed addresses,
so a graph serves every model of the architecture when, before it replays, the model's flat buffers are copied into
the template's (`hold`: one device-to-device copy per dtype, on the replaying stream, skipped while the template
already holds that model). Models of one architecture have the same layout (`FlatWeights.layout`), which `hold`
checks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import torch
from torch import nn

ALIGN = 64  # elements: every view starts at a multiple of 64 elements (>= 128 bytes)
_SERIAL = itertools.count(1)

Entry = tuple[list[tuple[nn.Module, str, bool]], torch.dtype, torch.Size, tuple[int, ...], int]


def _dense_strides(t: torch.Tensor) -> tuple[int, ...]:
    """t's strides when they cover numel elements without gaps or overlap (any dimension order: channels-last too),
    else the contiguous strides."""
    dims = sorted((st, sz) for st, sz in zip(t.stride(), t.shape) if sz > 1)
    expect = 1
    for st, sz in dims:
        if st != expect:
            return torch.empty(t.shape, device="meta").stride()
        expect *= sz
    return tuple(t.stride())


def _owners(modules: Iterable[nn.Module]) -> dict[int, tuple[torch.Tensor, list[tuple[nn.Module, str, bool]]]]:
    """Every parameter and buffer of the modules, once per tensor: id -> (tensor, [(owner module, name, is param)])."""
    seen: dict[int, tuple[torch.Tensor, list[tuple[nn.Module, str, bool]]]] = {}
    for module in modules:
        for sub in module.modules():
            for table, is_param in ((sub._parameters, True), (sub._buffers, False)):
                for name, t in table.items():
                    if t is None:
                        continue
                    seen.setdefault(id(t), (t, []))[1].append((sub, name, is_param))
    return seen


def _assign(owners: list[tuple[nn.Module, str, bool]], t: torch.Tensor) -> None:
    for module, name, is_param in owners:
        if is_param:
            module._parameters[name] = nn.Parameter(t, requires_grad=False)
        else:
            module._buffers[name] = t


class FlatWeights:
    """The parameters and buffers of `modules` (less those of `exclude`) in one flat buffer per dtype (see the module
    doc). `device`: where `load()` puts them. `keep_host`: keep the host copy (pinned on CUDA) so the weights can
    be unloaded and loaded again; without it (a template) they live on the device only. Tensors on the meta device
    (an unloaded model's) give uninitialized values."""

    def __init__(self, modules: Sequence[nn.Module], device: torch.device, keep_host: bool = True,
                 exclude: Sequence[nn.Module] = ()) -> None:
        self.device, self.serial = torch.device(device), next(_SERIAL)
        skip = set(_owners(exclude))
        found = [(t, owners) for key, (t, owners) in _owners(modules).items() if key not in skip]
        sizes: dict[torch.dtype, int] = {}
        self.entries: list[Entry] = []
        for t, owners in found:
            start = -(-sizes.get(t.dtype, 0) // ALIGN) * ALIGN
            self.entries.append((owners, t.dtype, t.shape, _dense_strides(t), start))
            sizes[t.dtype] = start + t.numel()
        # what two models' weights must share for one to be copied into the other's place
        self.layout = tuple((dt, tuple(shape), stride, start) for _, dt, shape, stride, start in self.entries)
        pin = keep_host and self.device.type == "cuda"
        host = {dt: torch.empty(n, dtype=dt, pin_memory=pin) for dt, n in sizes.items()}
        with torch.no_grad():
            for (_, dt, shape, stride, start), (t, _) in zip(self.entries, found):
                if t.device.type != "meta":
                    self._view(host[dt], shape, stride, start).copy_(t)
        self.host: dict[torch.dtype, torch.Tensor] | None = host
        self.flat: dict[torch.dtype, torch.Tensor] | None = None
        self.holding: int | None = None  # a template's: the serial of the weights it holds (None: none yet)
        self.copies = 0  # a template's: swaps made so far
        self.load()
        if not keep_host:
            self.host = None

    @staticmethod
    def _view(flat: torch.Tensor, shape, stride, start: int) -> torch.Tensor:
        return torch.as_strided(flat, shape, stride, start)

    @property
    def nbytes(self) -> int:
        """Bytes of the device copy (whether loaded or not)."""
        src = self.flat if self.flat is not None else self.host
        return sum(t.numel() * t.element_size() for t in (src or {}).values())

    @property
    def resident(self) -> bool:
        return self.flat is not None

    @torch.no_grad()
    def load(self) -> None:
        """Copy the host buffers to the device (non-blocking from pinned memory, on the current stream) and point the
        modules at the device views."""
        if self.flat is not None:
            return
        if self.host is None:
            raise RuntimeError("these weights have no host copy to load from")
        if self.device.type == "cpu":  # the host copy is the device copy (weights are never written)
            flat = dict(self.host)
        else:
            flat = {dt: h.to(self.device, non_blocking=True) for dt, h in self.host.items()}
        self.flat = flat
        self._point(flat)

    def unload(self) -> None:
        """Drop the device copy; the modules point at meta tensors until `load()`. The caller makes sure no queued
        device work still reads the weights."""
        if self.host is None:
            raise RuntimeError("these weights have no host copy: they cannot be unloaded")
        self.flat = None
        for owners, dt, shape, _, _ in self.entries:
            _assign(owners, torch.empty(shape, dtype=dt, device="meta"))

    @torch.no_grad()
    def hold(self, other: FlatWeights) -> None:
        """A template's: make these weights `other`'s (same layout, both loaded), by a copy on the current stream
        unless they already are."""
        if self.holding == other.serial:
            return
        if other.layout != self.layout:
            raise ValueError("weights of another architecture cannot be copied into this template")
        for dt, dst in self.flat.items():
            dst.copy_(other.flat[dt], non_blocking=True)
        self.holding = other.serial
        self.copies += 1

    def _point(self, flat: dict[torch.dtype, torch.Tensor]) -> None:
        for owners, dt, shape, stride, start in self.entries:
            _assign(owners, self._view(flat[dt], shape, stride, start))

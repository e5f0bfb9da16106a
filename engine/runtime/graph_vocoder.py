"""Reverse flow + HiFi-GAN for a batch of chunk windows, replayed from CUDA graphs.

A chunk's window (history + chunk frames) takes only a few lengths in a stream's life (the
policy's chunk sizes; a last chunk is widened to one of them, `ChunkPolicy.widen`); each (length, batch
bucket) pair gets one graph (`cuda_graphs.GraphSet`), its replay time measured; a group of rows replays the
buckets whose times sum least (40 rows: 32 + 8, not the 64-row graph). The runtime captures them in the background
(`capture_order`, small buckets first) while the model serves; a length without a graph yet (or another length: a short
stream's last chunk, speed != 1) runs eagerly, since a capture while serving on the scheduler's thread holds it for
tens of ms (benchmarks/HISTORY.md). Padded batch rows are zeros and are dropped; each output is copied out before the
next replay.

The graphs are captured once per architecture and audio lane, against a template (`SovitsParts.template`): before a
replay the model's vocoder weights are copied into the template's (`FlatWeights.hold`, ~100 MB at real v2 sizes,
skipped while the template holds that model already), so a further model of a resident architecture needs no
capture at all. Used on its own (`GraphedVocoder(sovits)`), the graphs read the model's own weights.

With `half` (the runtime's choice on CUDA), the HiFi-GAN generator runs in fp16 (a half copy of it; the reverse
flow stays fp32), as upstream runs SoVITS on GPUs: the vocoder is most of a chunk's arithmetic. Each graph is
then captured in two forms, the generator's 1-D convolutions as they are and as 2-D channels-last ones
(`channels_last`: no cuDNN layout conversion around each), and the one that replays faster is kept (cuDNN's
choice differs by shape). Every chunk of a stream goes through the same precision, graphed or not.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch

from gsvd.engine.runtime.cuda_graphs import GraphPool, GraphSet, default_pool, plan_rows

if TYPE_CHECKING:
    from gsvd.engine.models.sovits import SynthesizerTrn
    from gsvd.engine.runtime.chunk_decode import SovitsParts

BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # up to MAX_CHUNK_BATCH rows in one replay


def channels_last(generator: torch.nn.Module) -> torch.nn.Module:
    """A copy of a HiFi-GAN generator whose 1-D convolutions run as 2-D channels-last ones
    (`conv_layout.ChannelsLastConv1d`): it takes [B, C, 1, T] and g [B, gin, 1, 1] and returns [B, 1, 1, T * hop]."""
    from gsvd.engine.models.conv_layout import ChannelsLastConv1d

    fast = copy.deepcopy(generator)
    for module in list(fast.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Conv1d | torch.nn.ConvTranspose1d):
                setattr(module, child_name, ChannelsLastConv1d(child))
    return fast


def vocode(parts: SovitsParts, z_p: torch.Tensor, ge: torch.Tensor, nhwc: bool = False) -> torch.Tensor:
    """Reverse flow + generator of a model's parts, eagerly: z_p [B, C, F], ge [B, gin, 1] -> wav [B, 1, F * hop]
    (fp32). With half parts the generator runs in fp16, `nhwc`: its channels-last copy."""
    sovits = parts.sovits
    if parts.dec_half is None:
        return sovits.vocode(z_p, torch.ones_like(z_p[:, :1]), ge)
    z = sovits.flow(z_p, torch.ones_like(z_p[:, :1]), ge, reverse=True)
    if nhwc:
        return parts.dec_nhwc(z.half()[:, :, None, :], g=ge.half()[:, :, None, :])[:, :, 0].float()
    return parts.dec_half(z.half(), g=ge.half()).float()


class GraphedVocoder:
    def __init__(self, sovits: SynthesizerTrn | SovitsParts, half: bool = False, pool: GraphPool | None = None) -> None:
        from gsvd.engine.runtime.chunk_decode import SovitsParts

        self.parts = sovits if isinstance(sovits, SovitsParts) else SovitsParts(sovits, half)
        p = self.parts
        forms = {"ncl": lambda z, g: vocode(p, z, g), "nhwc": lambda z, g: vocode(p, z, g, nhwc=True)} if p.half else None
        self.pool = pool if pool is not None else default_pool(next(p.sovits.flow.parameters()).device)
        self.graphs = GraphSet(lambda z, g: vocode(p, z, g), self._statics, forms, self.pool)
        self._shape: tuple[int, int, torch.device] | None = None  # (channels, gin, device) of the statics

    @property
    def dec_half(self) -> torch.nn.Module | None:
        return self.parts.dec_half

    @property
    def layouts(self) -> dict[tuple[int, int], str]:
        """(frames, bucket) -> the form each graph was captured in ("ncl" / "nhwc"; "" without half)."""
        return dict(self.graphs.chosen)

    def _statics(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        frames, bucket = key
        channels, gin, device = self._shape
        return torch.zeros(bucket, channels, frames, device=device), torch.zeros(bucket, gin, 1, device=device)

    def capture_order(self, frames: list[int], channels: int, gin: int, device: torch.device) -> list[tuple[int, int]]:
        """The graphs of these window lengths for every batch bucket, in the order to capture them (small buckets
        first: a first chunk's); sets the statics' shape."""
        self._shape = (channels, gin, torch.device(device))
        return sorted(((f, b) for f in frames for b in BUCKETS), key=lambda k: (k[1], k[0]))

    def capture(self, key: tuple[int, int]) -> bool:
        return self.graphs.capture(key, timed=True)

    def prepare(self, frames: list[int], channels: int, gin: int, device: torch.device) -> None:
        """Capture the graphs of these window lengths for every batch bucket now, each replay timed; other lengths run
        eagerly."""
        for key in self.capture_order(frames, channels, gin, device):
            self.capture(key)

    def __call__(self, z_p: torch.Tensor, ge: torch.Tensor, graphable: bool = True,
                 weights: SovitsParts | None = None) -> torch.Tensor:
        """z_p [B, C, F], ge [B, gin, 1] -> wav [B, 1, F * hop] (a fresh tensor), with `weights` (a model's parts; None:
        this vocoder's own)."""
        own = weights if weights is not None else self.parts
        frames, n = int(z_p.shape[-1]), int(z_p.shape[0])
        if not graphable or self.pool is None or not any(f == frames for f, _ in tuple(self.graphs.graphs)):
            return vocode(own, z_p, ge)
        parts = [self._replay(frames, b, z_p[lo:hi], ge[lo:hi], own) for lo, hi, b in self.pieces(frames, n)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def pieces(self, frames: int, n: int) -> list[tuple[int, int, int]]:
        """n rows of one window length -> (lo, hi, bucket) per replay: the buckets of least summed replay time
        (`cuda_graphs.plan_rows`, times measured at capture); a piece whose graph is not captured yet runs eagerly."""
        timed = list(self.graphs.cost.items())  # one call: the background builder may add to it meanwhile
        return plan_rows(n, BUCKETS, {b: ms for (f, b), ms in timed if f == frames})

    def _replay(self, frames: int, bucket: int, z_p: torch.Tensor, ge: torch.Tensor, own: SovitsParts) -> torch.Tensor:
        """Rows (at most `bucket`) through the graph of (frames, bucket), or eagerly where it has none."""
        n = int(z_p.shape[0])

        def fill(z_static: torch.Tensor, ge_static: torch.Tensor) -> None:
            if own is not self.parts and self.parts.vocoder is not None:  # a template: the model's weights in
                self.parts.vocoder.hold(own.vocoder)
            z_static[:n].copy_(z_p)
            ge_static[:n].copy_(ge)
            if n < bucket:
                z_static[n:].zero_()

        out = self.graphs.run((frames, bucket), fill, lambda out: out[:n].clone())
        return vocode(own, z_p, ge) if out is None else out

"""Reverse flow + HiFi-GAN for a batch of chunk windows, replayed from CUDA graphs.

A chunk's window (history + chunk frames) takes only a few lengths in a stream's life (the
policy's chunk sizes; a last chunk is widened to one of them, `ChunkPolicy.widen`); each (length, batch
bucket) pair gets one graph (`cuda_graphs.GraphSet`), its replay time measured; a group of rows replays the
buckets whose times sum least (40 rows: 32 + 8, not the 64-row graph). The runtime captures them all at model
load (`prepare`); other lengths (a short stream's last chunk, speed != 1) run eagerly, since a capture while
serving holds the scheduler's thread for tens of ms and synchronizes the device (benchmarks/HISTORY.md).
Padded batch rows are zeros and are dropped; each output is copied out before the next replay.

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

from gsvd.engine.runtime.cuda_graphs import GraphSet, plan_rows

if TYPE_CHECKING:
    from gsvd.engine.models.sovits import SynthesizerTrn

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


class GraphedVocoder:
    def __init__(self, sovits: SynthesizerTrn, half: bool = False) -> None:
        self.sovits = sovits
        self.dec_half = copy.deepcopy(sovits.dec).half() if half else None
        self.dec_nhwc = channels_last(self.dec_half) if half else None
        forms = {"ncl": self._eager, "nhwc": self._eager_nhwc} if half else None
        self.graphs = GraphSet(self._eager, self._statics, forms)
        self._shape: tuple[int, int, torch.device] | None = None  # (channels, gin, device) of the statics

    @property
    def layouts(self) -> dict[tuple[int, int], str]:
        """(frames, bucket) -> the form each graph was captured in ("ncl" / "nhwc"; "" without half)."""
        return dict(self.graphs.chosen)

    def _eager(self, z_p: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        if self.dec_half is None:
            return self.sovits.vocode(z_p, torch.ones_like(z_p[:, :1]), ge)
        z = self.sovits.flow(z_p, torch.ones_like(z_p[:, :1]), ge, reverse=True)
        return self.dec_half(z.half(), g=ge.half()).float()

    def _eager_nhwc(self, z_p: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        z = self.sovits.flow(z_p, torch.ones_like(z_p[:, :1]), ge, reverse=True)
        return self.dec_nhwc(z.half()[:, :, None, :], g=ge.half()[:, :, None, :])[:, :, 0].float()

    def _statics(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        frames, bucket = key
        channels, gin, device = self._shape
        return torch.zeros(bucket, channels, frames, device=device), torch.zeros(bucket, gin, 1, device=device)

    def prepare(self, frames: list[int], channels: int, gin: int, device: torch.device) -> None:
        """Capture the graphs of these window lengths for every batch bucket now (at model load), each replay
        timed; other lengths run eagerly."""
        self._shape = (channels, gin, device)
        self.graphs.prepare([(f, b) for f in frames for b in BUCKETS], timed=True)

    def __call__(self, z_p: torch.Tensor, ge: torch.Tensor, graphable: bool = True) -> torch.Tensor:
        """z_p [B, C, F], ge [B, gin, 1] -> wav [B, 1, F * hop] (a fresh tensor)."""
        frames, n = int(z_p.shape[-1]), int(z_p.shape[0])
        if not graphable or not z_p.is_cuda or not any(f == frames for f, _ in self.graphs.graphs):
            return self._eager(z_p, ge)
        parts = [self._replay(frames, b, z_p[lo:hi], ge[lo:hi]) for lo, hi, b in self.pieces(frames, n)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def pieces(self, frames: int, n: int) -> list[tuple[int, int, int]]:
        """n rows of one window length -> (lo, hi, bucket) per replay: the buckets of least summed replay time
        (`cuda_graphs.plan_rows`, times measured at capture)."""
        return plan_rows(n, BUCKETS, {b: ms for (f, b), ms in self.graphs.cost.items() if f == frames})

    def _replay(self, frames: int, bucket: int, z_p: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        """Rows (at most `bucket`) through the graph of (frames, bucket), or eagerly where it has none."""
        n = int(z_p.shape[0])

        def fill(z_static: torch.Tensor, ge_static: torch.Tensor) -> None:
            z_static[:n].copy_(z_p)
            ge_static[:n].copy_(ge)
            if n < bucket:
                z_static[n:].zero_()

        out = self.graphs.run((frames, bucket), True, fill, lambda out: out[:n].clone())
        return self._eager(z_p, ge) if out is None else out

"""Reverse flow + HiFi-GAN for a batch of chunk windows, replayed from CUDA graphs.

A chunk's window (history + chunk frames) takes only a few lengths in a stream's life (the
policy's chunk sizes; a last chunk is widened to one of them, `ChunkPolicy.widen`); each (length, batch
bucket) pair gets one graph, its replay time measured; a group of rows replays the buckets whose
times sum least (40 rows: 32 + 8, not the 64-row graph). The runtime captures them all at model load
(`prepare`); after that other lengths (a short stream's last chunk, speed != 1) run eagerly, since a
capture while serving holds the scheduler's thread for tens of ms and synchronizes the device
(benchmarks/README.md, seventh session).
Without `prepare` each pair is captured on first use on the calling thread's stream. Padded batch rows
are zeros and are dropped. The graphs share one memory pool; a lock serializes replays and
each output is copied out before the next replay, so sharing is safe.

With `half`, the HiFi-GAN generator runs in fp16 (a half copy of it; the reverse flow stays fp32), as
upstream runs SoVITS on GPUs: the vocoder is most of a chunk's arithmetic. With `nhwc` too, its 1-D
convolutions run as 2-D channels-last ones (no cuDNN layout conversion around each; `channels_last`);
with nhwc="auto" (the runtime's default) each graph is captured in both forms and the faster kept.
Every chunk of a stream goes through the same path, graphed or not, so joins see one precision.
"""

from __future__ import annotations

import copy
import threading

import torch

from gsvd.engine.runtime.cuda_graphs import capture, padded_groups, plan_rows, replay_ms

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
    def __init__(self, sovits, max_lengths: int = 8, half: bool = False, nhwc: bool | str = False) -> None:
        """nhwc (with half): True runs the generator's convolutions as 2-D channels-last ones (`channels_last`),
        "auto" captures both forms for each (length, batch bucket) and keeps the one that replays faster
        (cuDNN's choice differs by shape: benchmarks/vocoder_layout_bench.py)."""
        self.sovits = sovits
        self.dec_half = copy.deepcopy(sovits.dec).half() if half else None
        self.dec_nhwc = channels_last(self.dec_half) if half and nhwc else None
        self.auto = half and nhwc == "auto"
        self.max_lengths = max_lengths
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.layouts: dict[tuple[int, int], str] = {}  # (frames, bucket) -> "ncl" / "nhwc": the form captured
        self.cost: dict[tuple[int, int], float] = {}  # (frames, bucket) -> replay ms, measured at capture
        self.split = True  # a group of rows replays the buckets of least summed time (`pieces`)
        self.failed: set[int] = set()
        self.frozen = False  # after `prepare`: no captures on first use
        self.lock = threading.Lock()
        self.pool = None

    def _eager(self, z_p: torch.Tensor, ge: torch.Tensor, nhwc: bool | None = None) -> torch.Tensor:
        if self.dec_half is None:
            return self.sovits.vocode(z_p, torch.ones_like(z_p[:, :1]), ge)
        z = self.sovits.flow(z_p, torch.ones_like(z_p[:, :1]), ge, reverse=True)
        if nhwc if nhwc is not None else (self.dec_nhwc is not None and not self.auto):
            return self.dec_nhwc(z.half()[:, :, None, :], g=ge.half()[:, :, None, :])[:, :, 0].float()
        return self.dec_half(z.half(), g=ge.half()).float()

    def _capture(self, bucket: int, z_p: torch.Tensor, ge: torch.Tensor):
        """-> (the form kept, its replay ms, (graph, z_static, ge_static, out))."""
        z_static = torch.zeros((bucket, *z_p.shape[1:]), device=z_p.device, dtype=z_p.dtype)
        ge_static = torch.zeros((bucket, *ge.shape[1:]), device=ge.device, dtype=ge.dtype)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        if not self.auto:
            graph, out = capture(self._eager, (z_static, ge_static), self.pool)
            return "nhwc" if self.dec_nhwc is not None else "ncl", replay_ms(graph), (graph, z_static, ge_static, out)
        forms = {}
        for name, nhwc in (("ncl", False), ("nhwc", True)):
            graph, out = capture(lambda z, g, nhwc=nhwc: self._eager(z, g, nhwc), (z_static, ge_static), self.pool)
            forms[name] = (replay_ms(graph), (graph, z_static, ge_static, out))
        best = min(forms, key=lambda k: forms[k][0])
        return best, *forms[best]

    def prepare(self, frames: list[int], channels: int, gin: int, device: torch.device) -> None:
        """Capture the graphs of these window lengths for every batch bucket now (at model load); later
        calls capture nothing (other lengths run eagerly)."""
        for f in frames:
            for b in BUCKETS:
                z = torch.zeros(b, channels, f, device=device)
                self(z, torch.zeros(b, gin, 1, device=device))
        self.frozen = True

    def __call__(self, z_p: torch.Tensor, ge: torch.Tensor, graphable: bool = True) -> torch.Tensor:
        """z_p [B, C, F], ge [B, gin, 1] -> wav [B, 1, F * hop] (a fresh tensor)."""
        frames, n = int(z_p.shape[-1]), int(z_p.shape[0])
        if not graphable or not z_p.is_cuda or frames in self.failed:
            return self._eager(z_p, ge)
        parts = self.pieces(frames, n)
        if len(parts) == 1:
            return self._replay(frames, parts[0][2], z_p, ge)
        return torch.cat([self._replay(frames, b, z_p[lo:hi], ge[lo:hi]) for lo, hi, b in parts])

    def pieces(self, frames: int, n: int) -> list[tuple[int, int, int]]:
        """n rows of one window length -> (lo, hi, bucket) per replay: with `split`, the buckets of least summed
        replay time (`cuda_graphs.plan_rows`, times measured at capture), else groups of the largest bucket,
        each in the smallest bucket that holds it."""
        if not self.split:
            return padded_groups(n, BUCKETS)
        return plan_rows(n, BUCKETS, {b: ms for (f, b), ms in self.cost.items() if f == frames})

    def _replay(self, frames: int, bucket: int, z_p: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        """Rows (at most `bucket`) through the graph of (frames, bucket), captured first if it may be."""
        n = int(z_p.shape[0])
        with self.lock:
            if (frames, bucket) not in self.graphs:
                if self.frozen or len({f for f, _ in self.graphs} | {frames}) > self.max_lengths:
                    return self._eager(z_p, ge)
                try:
                    form, ms, graph = self._capture(bucket, z_p, ge)
                except RuntimeError:  # a kernel that cannot be captured: stay eager for this length
                    self.failed.add(frames)
                    return self._eager(z_p, ge)
                self.layouts[(frames, bucket)], self.cost[(frames, bucket)], self.graphs[(frames, bucket)] = (
                    form, ms, graph)
            graph, z_static, ge_static, out = self.graphs[(frames, bucket)]
            z_static[:n].copy_(z_p)
            ge_static[:n].copy_(ge)
            if n < bucket:
                z_static[n:].zero_()
            graph.replay()
            return out[:n].clone()

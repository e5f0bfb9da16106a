"""Reverse flow + HiFi-GAN for one chunk window, replayed from a CUDA graph per window length.

A chunk's window (history + chunk frames) takes only a few lengths in a stream's life (the
policy's chunk sizes); each length gets one graph, captured on first use on the calling thread's
stream. Other lengths (a stream's last chunk, speed != 1) run eagerly. One lock serializes replays
of the shared static buffers when several chunk-decode threads run.
"""

from __future__ import annotations

import threading

import torch


class GraphedVocoder:
    def __init__(self, sovits, max_graphs: int = 8) -> None:
        self.sovits = sovits
        self.max_graphs = max_graphs
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.failed: set[int] = set()
        self.lock = threading.Lock()

    def _eager(self, z_p: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        return self.sovits.vocode(z_p, torch.ones_like(z_p[:, :1]), ge)

    def _capture(self, frames: int, z_p: torch.Tensor, ge: torch.Tensor):
        z_static, ge_static = z_p.clone(), ge.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):
                self._eager(z_static, ge_static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"), torch.inference_mode():
            out = self._eager(z_static, ge_static)
        return graph, z_static, ge_static, out

    def __call__(self, z_p: torch.Tensor, ge: torch.Tensor, graphable: bool = True) -> torch.Tensor:
        """z_p [1, C, F], ge [1, gin, 1] -> wav [1, 1, F * hop] (a fresh tensor)."""
        frames = int(z_p.shape[-1])
        if not graphable or not z_p.is_cuda or frames in self.failed:
            return self._eager(z_p, ge)
        with self.lock:
            if frames not in self.graphs:
                if len(self.graphs) >= self.max_graphs:
                    return self._eager(z_p, ge)
                try:
                    self.graphs[frames] = self._capture(frames, z_p, ge)
                except RuntimeError:  # a kernel that cannot be captured: stay eager for this length
                    self.failed.add(frames)
                    return self._eager(z_p, ge)
            graph, z_static, ge_static, out = self.graphs[frames]
            z_static.copy_(z_p)
            ge_static.copy_(ge)
            graph.replay()
            return out.clone()

"""Capture a function of static tensors as a CUDA graph (shared by the graphed runtime pieces)."""

from __future__ import annotations

import torch


def capture(fn, static: tuple, pool=None):
    """Warm fn(*static) up twice on a side stream (kernels chosen, workspaces allocated), then capture
    one call -> (graph, its output). `pool`: a graph memory pool handle to share with other graphs
    that never replay at the same time. thread_local: other threads keep launching work meanwhile."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.inference_mode():
        for _ in range(2):
            fn(*static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"), torch.inference_mode():
        out = fn(*static)
    return graph, out

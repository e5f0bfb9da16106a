"""CUDA-graph plumbing shared by the graphed runtime pieces: capture one function call, a set of
graphs of one function keyed by padded shape, and running rows in groups of the largest bucket."""

from __future__ import annotations

import threading

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


class GraphSet:
    """Graphs of `fn` over static inputs `make_static(key)`, one per key (a padded shape), captured up
    front by `prepare` into one shared memory pool; a lock serializes replays, and the caller copies
    what it keeps out of the output before the lock is released. Off CUDA the same function runs
    eagerly on fresh static inputs (so the CPU tests exercise the same padding). If a capture fails,
    the set is given up (every call answers None and the caller runs its plain path)."""

    def __init__(self, fn, make_static) -> None:
        self.fn, self.make_static = fn, make_static
        self.graphs: dict[tuple, tuple] = {}
        self.lock = threading.Lock()
        self.pool = None
        self.failed = False

    def prepare(self, keys) -> None:
        with self.lock:
            for key in keys:
                if key in self.graphs or self.failed:
                    continue
                try:
                    if self.pool is None:
                        self.pool = torch.cuda.graph_pool_handle()
                    static = self.make_static(key)
                    self.graphs[key] = (*capture(self.fn, static, self.pool), static)
                except RuntimeError:  # something that cannot be captured here: stay eager
                    self.failed = True

    def run(self, key, on_cuda: bool, fill, take):
        """fill(*static) writes the inputs, the graph of `key` replays (off CUDA: fn runs), take(output)
        copies out the result -> take's value; None on CUDA when `key` has no graph (no capture on the
        hot path)."""
        with self.lock:
            if on_cuda:
                if self.failed or key not in self.graphs:
                    return None
                graph, out, static = self.graphs[key]
                fill(*static)
                graph.replay()
            else:
                static = self.make_static(key)
                fill(*static)
                out = self.fn(*static)
            return take(out)


def in_groups(n: int, size: int, run):
    """run(lo, hi) over consecutive row ranges of at most `size` rows -> the list of results, or None as
    soon as one is None."""
    parts = []
    for lo in range(0, n, size):
        part = run(lo, min(n, lo + size))
        if part is None:
            return None
        parts.append(part)
    return parts

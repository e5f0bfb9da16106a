"""CUDA-graph plumbing shared by the graphed runtime pieces: capture one function call, a set of
graphs of one function keyed by padded shape, running rows in groups of the largest bucket, and the
cheapest set of batch buckets for a number of rows (each bucket's replay time measured at capture)."""

from __future__ import annotations

import threading

import torch

REPLAY_MS = 0.05  # host time of one replay (inputs copied in, output copied out), added to its measured time
REPLAY_ROWS = 2  # before a graph set's replays are timed (or off CUDA): one replay's fixed cost, in rows


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


def replay_ms(graph, reps: int = 3) -> float:
    """A captured graph's replay time (ms, the best of `reps` after one warm replay)."""
    graph.replay()
    best = float("inf")
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end))
    return best


def cheapest_split(n: int, costs: dict[int, float]) -> list[int]:
    """Batch buckets (largest first) whose replays together hold n rows at the least summed cost; costs:
    bucket -> the cost of one replay (its measured time). A 40-row group replays 32 + 8 rather than the 64-row
    graph, a 60-row one the 64-row graph rather than 32 + 16 + 8 + 4 when a replay's fixed cost makes that
    cheaper. The last bucket holds what is left (zero rows pad it)."""
    if n <= 0:
        return []
    best = [(0.0, 0)] + [(float("inf"), 0)] * n  # (summed cost, replays): equal costs go to fewer replays
    pick = [0] * (n + 1)
    for m in range(1, n + 1):
        for b, c in costs.items():
            prev = best[max(0, m - b)]
            v = (prev[0] + c, prev[1] + 1)
            if v[0] < best[m][0] - 1e-9 or (v[0] <= best[m][0] + 1e-9 and v[1] < best[m][1]):
                best[m], pick[m] = v, b
    out = []
    while n > 0:
        out.append(pick[n])
        n = max(0, n - pick[n])
    return sorted(out, reverse=True)


def plan_rows(n: int, buckets: tuple[int, ...], timed: dict[int, float]) -> list[tuple[int, int, int]]:
    """n rows over graphs of these batch buckets -> (lo, hi, bucket) per replay, at the least summed cost: a
    replay costs its graph's measured time (`timed`, ms) plus REPLAY_MS of host work, or, until every bucket is
    timed, its rows plus REPLAY_ROWS."""
    if all(b in timed for b in buckets):
        costs = {b: timed[b] + REPLAY_MS for b in buckets}
    else:
        costs = {b: b + REPLAY_ROWS for b in buckets}
    return split_rows(n, cheapest_split(n, costs))


def split_rows(n: int, buckets: list[int]) -> list[tuple[int, int, int]]:
    """n rows over these buckets (largest first, as `cheapest_split` gives them) -> (lo, hi, bucket) per replay."""
    parts, lo = [], 0
    for b in buckets:
        parts.append((lo, min(n, lo + b), b))
        lo += b
    return parts


class GraphSet:
    """Graphs of one function over static inputs `make_static(key)`, one per key (a padded shape), captured up
    front by `prepare` into one shared memory pool; the one CUDA-graph holder of the runtime (prefill, decode
    step, content encoder, vocoder). A lock serializes replays, and the caller copies what it keeps out of the
    output before the lock is released. Off CUDA the function runs eagerly on fresh static inputs (so the CPU
    tests exercise the same padding). `forms`: several functions computing the same thing (e.g. two memory
    layouts); each key keeps the one whose graph replays fastest (`chosen`), the first off CUDA. If a capture
    fails, the set is given up (every call answers None and the caller runs its plain path), or with `strict`
    the error is raised. `cost[key]`: each graph's replay time in ms, measured by `prepare(timed=True)`."""

    def __init__(self, fn, make_static, forms: dict[str, object] | None = None) -> None:
        self.forms = forms or {"": fn}
        self.fn, self.make_static = next(iter(self.forms.values())), make_static
        self.graphs: dict[object, tuple] = {}
        self.cost: dict[object, float] = {}
        self.chosen: dict[object, str] = {}
        self.lock = threading.Lock()
        self.pool = None
        self.failed = False

    def prepare(self, keys, timed: bool = False, strict: bool = False) -> None:
        with self.lock:
            for key in keys:
                if key in self.graphs or self.failed:
                    continue
                try:
                    self._capture(key, timed or len(self.forms) > 1)
                except Exception:  # something that cannot be captured here: stay eager
                    if strict:
                        raise
                    self.failed = True

    def _capture(self, key, timed: bool) -> None:
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        static = self.make_static(key)
        best = None
        for name, fn in self.forms.items():
            graph, out = capture(fn, static, self.pool)
            ms = replay_ms(graph) if timed else 0.0
            if best is None or ms < best[0]:
                best = (ms, name, graph, out)
        ms, name, graph, out = best
        self.graphs[key], self.chosen[key] = (graph, out, static), name
        if timed:
            self.cost[key] = ms

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

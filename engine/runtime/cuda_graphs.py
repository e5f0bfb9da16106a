"""CUDA-graph plumbing shared by the graphed runtime pieces: capture one function call without stalling the device,
pools of graphs that replay one at a time, a set of graphs of one function keyed by padded shape, running rows in
groups of the largest bucket, and the cheapest set of batch buckets for a number of rows (each bucket's replay time
measured at capture).

Capture (`CudaCapturer`) warms the function up and captures it on the pool's own capture stream with
`capture_begin`/`capture_end` directly: `torch.cuda.graph`'s context synchronizes the device and empties the
allocator caches (device and pinned host) before every capture, which a background capture must not do while the
runtime serves (a capture per graph, hundreds per architecture). `thread_local` mode: the scheduler thread keeps
launching work meanwhile. Graphs that replay one at a time on one stream share one memory pool (`GraphPool`: their
intermediates alias; each output is copied out before the next replay of the pool, under the pool's lock), so a
pool costs the largest graph's intermediates, not their sum. Off CUDA, `EagerCapturer` gives the same static-buffer
semantics by running the function on replay, so the CPU tests drive the graphed paths (templates, late captures).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gsvd.engine.runtime.seams import Capturer

REPLAY_MS = 0.05  # host time of one replay (inputs copied in, output copied out), added to its measured time
REPLAY_ROWS = 2  # before a graph set's replays are timed (or off CUDA): one replay's fixed cost, in rows


class GraphPool:
    """Graphs replayed one at a time on one CUDA stream (`stream`, a lane's), sharing one memory pool, captured on
    the pool's own capture stream. `lock` serializes every replay of the pool's graphs with its output's copy, and
    the timing replays of a new capture. Off CUDA (`stream` None) the capturer decides what a graph is."""

    def __init__(self, capturer: Capturer, stream: torch.cuda.Stream | None = None) -> None:
        self.capturer, self.stream = capturer, stream
        self.lock = threading.Lock()
        self.capture_stream = torch.cuda.Stream(stream.device) if stream is not None else None
        self._handle = None

    @property
    def handle(self):
        if self._handle is None and self.stream is not None:
            self._handle = torch.cuda.graph_pool_handle()
        return self._handle


def default_pool(device: torch.device) -> GraphPool | None:
    """A pool for a graphed piece used on its own (benchmarks, checks): on CUDA one on the current stream, captured
    in the calling thread; off CUDA None (the piece runs eagerly)."""
    if torch.device(device).type != "cuda":
        return None
    return GraphPool(CudaCapturer(), torch.cuda.current_stream(device))


class CudaCapturer:
    """`seams.Capturer` on CUDA (see the module doc)."""

    def capture(self, fn: Callable, static: tuple, pool: GraphPool):
        side = pool.capture_stream
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):  # kernels chosen, workspaces allocated (outside the pool)
                fn(*static)
            graph = torch.cuda.CUDAGraph()
            graph.capture_begin(pool.handle, capture_error_mode="thread_local")
            try:
                out = fn(*static)
            except BaseException:
                with contextlib.suppress(Exception):  # the capture's own error is the one to report
                    graph.capture_end()
                raise
            graph.capture_end()
        side.synchronize()  # warm-ups and static inputs written before the graph is published
        return graph, out

    def time(self, graph, pool: GraphPool, reps: int = 3) -> float | None:
        """Replay time (ms, the best of `reps` after a warm replay) on the pool's serving stream, under its lock (the
        replays share the pool's memory with the serving ones); the wait for the result is outside the lock."""
        marks = []
        with pool.lock, torch.cuda.stream(pool.stream):
            graph.replay()
            for _ in range(reps):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                graph.replay()
                end.record()
                marks.append((start, end))
        marks[-1][1].synchronize()
        return min(s.elapsed_time(e) for s, e in marks)


class EagerGraph:
    """A "graph" off CUDA: `replay()` runs the function on its static inputs and writes the result into the output
    of the capture, as a CUDA graph's replay rewrites its output tensors."""

    def __init__(self, fn: Callable, static: tuple) -> None:
        self.fn, self.static, self.replays = fn, static, 0
        with torch.inference_mode():
            self.out = fn(*static)

    def replay(self) -> None:
        with torch.inference_mode():
            _copy_into(self.out, self.fn(*self.static))
        self.replays += 1


class EagerCapturer:
    """`seams.Capturer` off CUDA: graphs are `EagerGraph`s (the same static buffers and copy-in/copy-out as on CUDA),
    untimed. `gate`: when given, each capture first waits for it (a test holds captures back this way)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate, self.graphs = gate, []

    def capture(self, fn: Callable, static: tuple, pool: GraphPool):
        if self.gate is not None:
            self.gate.wait()
        graph = EagerGraph(fn, static)
        self.graphs.append(graph)
        return graph, graph.out

    @property
    def replays(self) -> int:
        return sum(g.replays for g in self.graphs)

    def time(self, graph, pool: GraphPool) -> float | None:
        return None


def _copy_into(dst, src) -> None:
    if isinstance(dst, torch.Tensor):
        dst.copy_(src)
    else:
        for d, s in zip(dst, src, strict=True):
            _copy_into(d, s)


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
    """Graphs of one function over static inputs `make_static(key)`, one per key (a padded shape); the one CUDA-graph
    holder of the runtime (prefill, decode step, content encoder, vocoder). `capture(key)` (at load, or by the
    runtime's background `GraphBuilder`) adds one into `pool`; a caller replays it with `run`, which answers None for a
    key not captured yet (the caller runs its plain path: nothing is captured on the hot path). Without a pool the
    function runs eagerly on fresh static inputs (the CPU reference, same padding). `forms`: several functions
    computing the same thing (e.g. two memory layouts); each key keeps the one whose graph replays fastest (`chosen`),
    the first when replays are not timed. If a capture fails, the set is given up (`failed`: every call answers
    None), or with `strict` the error is raised. `cost[key]`: each graph's replay time in ms when timed."""

    def __init__(self, fn, make_static, forms: dict[str, object] | None = None, pool: GraphPool | None = None) -> None:
        self.forms = forms or {"": fn}
        self.fn, self.make_static = next(iter(self.forms.values())), make_static
        self.pool = pool
        self.graphs: dict[object, tuple] = {}
        self.cost: dict[object, float] = {}
        self.chosen: dict[object, str] = {}
        self.failed = False

    def prepare(self, keys: Iterable, timed: bool = False, strict: bool = False) -> None:
        """Capture these keys now, in this thread."""
        for key in keys:
            self.capture(key, timed, strict)

    def capture(self, key, timed: bool = False, strict: bool = False) -> bool:
        """Capture the graph of `key` (unless it exists or the set gave up) -> whether it exists now."""
        if self.pool is None or key in self.graphs or self.failed:
            return key in self.graphs
        try:
            self._capture(key, timed or len(self.forms) > 1)
        except Exception:  # something that cannot be captured here: stay eager
            if strict:
                raise
            self.failed = True
        return key in self.graphs

    def _capture(self, key, timed: bool) -> None:
        pool = self.pool
        with torch.cuda.stream(pool.capture_stream) if pool.capture_stream is not None else contextlib.nullcontext():
            static = self.make_static(key)
        best = None
        for name, fn in self.forms.items():
            graph, out = pool.capturer.capture(fn, static, pool)
            ms = pool.capturer.time(graph, pool) if timed else None
            if best is None or (ms is not None and ms < best[0]):
                best = (ms if ms is not None else float("inf"), name, graph, out, ms)
        _, name, graph, out, ms = best
        with pool.lock:
            self.graphs[key], self.chosen[key] = (graph, out, static), name
            if ms is not None:
                self.cost[key] = ms

    def has(self, key) -> bool:
        return key in self.graphs

    def run(self, key, fill, take):
        """fill(*static) writes the inputs, the graph of `key` replays, take(output) copies out the result -> take's
        value; None when `key` has no graph (not captured yet, or the set gave up). Without a pool: fn runs eagerly on
        fresh static inputs."""
        if self.pool is None:
            static = self.make_static(key)
            fill(*static)
            return take(self.fn(*static))
        with self.pool.lock:
            entry = None if self.failed else self.graphs.get(key)
            if entry is None:
                return None
            graph, out, static = entry
            fill(*static)
            graph.replay()
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

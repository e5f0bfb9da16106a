"""Lanes: the CUDA streams the runtime's work goes out on, each with the graphs replayed there.

Many resident models each run their own small GPT steps, prefills and chunk passes; one after another on one stream
they add up (20 models x a ~0.4 ms step at one row is 8 ms a tick, 20 first-chunk passes of a few rows ~5 ms each),
while each is too small to fill the GPU. Lanes let the work of different models overlap:

- `GptLane`: admissions (prefill) and decode steps of the models whose home it is (assigned at load, fewest models
  first), so a model's prefill precedes its steps by stream order. Its pool holds those models' decode graphs and
  the prefill graphs of each GPT architecture, captured against a template GPT (`weights` module doc).
- `AudioLane`: chunk passes. One pass in flight per lane, at most one per model; a lane has its own template and
  content/vocoder graphs per SoVITS architecture (a replay swaps the model's weights in). A second lane's graphs are
  captured only once a second model of the architecture is resident (one model: exactly one lane, as before).

Graphs that share a pool replay one at a time on the lane's stream (`cuda_graphs.GraphPool`). Off CUDA a lane has no
stream and work runs in order in the calling thread. The audio lanes' streams have the higher priority: the GPU
favours chunk decodes (first audio waits on them: benchmarks/HISTORY.md).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch

from gsvd.engine.runtime.cuda_graphs import GraphPool

if TYPE_CHECKING:
    from gsvd.engine.provenance.embed import GraphedMarks
    from gsvd.engine.runtime.chunk_decode import SovitsParts
    from gsvd.engine.runtime.graph_content import GraphedContent
    from gsvd.engine.runtime.graph_prefill import GraphedPrefill
    from gsvd.engine.runtime.graph_vocoder import GraphedVocoder
    from gsvd.engine.runtime.seams import Capturer


def gpt_arch(gpt: torch.nn.Module) -> tuple:
    """What GPT models share a template and prefill graphs by: dims and dtype."""
    return gpt.dims, next(gpt.parameters()).dtype


def sovits_arch(parts: SovitsParts) -> tuple:
    """What SoVITS models share a template and chunk graphs by: dims and whether the generator runs in fp16."""
    return repr(parts.sovits.dims), parts.half


class _Lane:
    def __init__(self, index: int, device: torch.device, capturer: Capturer | None, priority: int) -> None:
        self.index = index
        self.stream = torch.cuda.Stream(device, priority=priority) if device.type == "cuda" else None
        self.pool = GraphPool(capturer, self.stream) if capturer is not None else None

    def context(self):
        """Work queued inside goes to this lane's stream."""
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    def mark(self) -> torch.cuda.Event | None:
        """An event after the work queued on this lane so far (None off CUDA)."""
        if self.stream is None:
            return None
        event = torch.cuda.Event()
        event.record(self.stream)
        return event


class GptLane(_Lane):
    def __init__(self, index: int, device: torch.device, capturer: Capturer | None) -> None:
        super().__init__(index, device, capturer, priority=0)
        self.prefill: dict[tuple, GraphedPrefill] = {}  # GPT architecture -> prefill graphs (over its template)
        self.models = 0  # models whose home this lane is
        self.admitted: torch.cuda.Event | None = None  # after the last admission here (chunk passes wait for it)


class AudioLane(_Lane):
    def __init__(self, index: int, device: torch.device, capturer: Capturer | None) -> None:
        super().__init__(index, device, capturer, priority=-1)
        self.graphs: dict[tuple, tuple[GraphedContent, GraphedVocoder]] = {}  # SoVITS architecture -> graphs
        self.marks: GraphedMarks | None = None  # the watermark's marks (the runtime's key), when it has one
        self.busy = False  # a pass in flight here

    def audio_graphs(self, parts: SovitsParts) -> tuple[GraphedContent, GraphedVocoder] | None:
        """The content and vocoder graphs of this model's architecture on this lane (None: none yet)."""
        return self.graphs.get(sovits_arch(parts))

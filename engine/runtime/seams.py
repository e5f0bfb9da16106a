"""The runtime's named interfaces: what the scheduler calls for a model's GPT steps and chunk decodes, and what
a backend (the TensorRT engine) plugs in. One call shape each, so the scheduler never probes what it holds.

- `Decoder`: one GPT step for some KV slots, sampling included: `launch` queues it, `collect` reads its ids.
  The scheduler launches step n+1 before it collects step n. `graph_decode.GraphDecoder` (CUDA graphs, eager
  off CUDA) and `graph_decode.StepDecoder` (sampling, then any `DecodeStep`) are the two.
- `DecodeStep`: the decode step alone, new tokens -> next-token logits; `graph_decode.TorchStep` (torch ops
  over the KV cache) or whatever a `StepBackend` returns (`gsvd.trt_build.runtime_backend`, chosen by the
  engine and handed to `Runtime.add_model`: the runtime imports no backend).
- `ChunkDecoder`: one chunk-decode pass over several streams (`chunk_decode.BatchChunkDecoder`), its audio on
  the way back as a `PendingAudio`, on an audio lane (`lanes.AudioLane`: its stream and graphs).
- `Capturer`: how a graph of one function call is made and timed (`cuda_graphs.CudaCapturer` on CUDA;
  `cuda_graphs.EagerCapturer` off CUDA runs the same static-buffer path, so the CPU tests drive the graphed pieces).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import torch

    from gsvd.engine.runtime.chunking import StreamDecoder
    from gsvd.engine.runtime.cuda_graphs import GraphPool
    from gsvd.engine.runtime.kv_cache import KVCache
    from gsvd.engine.runtime.lanes import AudioLane


class Decoder(Protocol):
    def launch(self, slots: list[int], lengths: list[int], positions: list[int]) -> object:
        """Sample each slot's next token from its logits, run the step with it (K/V written at `lengths`, the
        token at audio position `positions`), keep the new logits; -> a ticket for `collect`."""
        ...

    def collect(self, ticket: object) -> tuple[list[int], list[int]]:
        """(sampled ids, greedy ids) of a launched step, in the order of its slots (waits if it must)."""
        ...


class DecodeStep(Protocol):
    def __call__(self, tokens: torch.Tensor, positions: list[int], slots: list[int],
                 lengths: list[int]) -> torch.Tensor:
        """tokens [B] (on the device) at audio positions, K/V written at each slot's length -> logits [B, V]."""
        ...


class StepBackend(Protocol):
    def __call__(self, gpt: torch.nn.Module, cache: KVCache,
                 device: torch.device) -> tuple[DecodeStep | None, str]:
        """A decode step for this model and cache, or None to keep the torch one; and why (logged)."""
        ...


class PendingAudio(Protocol):
    def done(self) -> bool: ...

    def finish(self) -> list[np.ndarray]:
        """Wait if it must, commit each stream's chunk -> each stream's joined PCM."""
        ...


class ChunkDecoder(Protocol):
    def launch(self, items: list[tuple[StreamDecoder, bool]], lane: AudioLane | None = None) -> PendingAudio:
        """(stream decoder, finished) pairs -> their next chunks, launched without waiting for the device, replaying
        the lane's graphs where it has them."""
        ...


class Replayable(Protocol):
    def replay(self) -> None: ...


class Capturer(Protocol):
    def capture(self, fn: Callable, static: tuple, pool: GraphPool) -> tuple[Replayable, object]:
        """A graph of fn(*static) in `pool`'s memory, and its output (rewritten by each replay)."""
        ...

    def time(self, graph: Replayable, pool: GraphPool) -> float | None:
        """The graph's replay time in ms, measured on the pool's stream (None: not measured)."""
        ...

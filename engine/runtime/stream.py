"""Request and handle types of the runtime, and the per-stream state the scheduler keeps."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from gsvd.engine.errors import Cancelled, GsvdError
from gsvd.engine.types import SAMPLE_RATE, SynthesisOptions

if TYPE_CHECKING:
    from gsvd.engine.provenance.watermark import StreamMark
    from gsvd.engine.runtime.chunking import StreamDecoder

_END = object()


@dataclass
class SynthRequest:
    """One sentence to synthesize with one model (see ARCHITECTURE.md, runtime seam). `options` travel whole
    (sampling: top_k, top_p, temperature, repetition_penalty, seed (None: 0), max_new_tokens; acoustic:
    noise_scale, speed); their defaults are `SynthesisOptions`' own."""

    model_id: str
    gpt_phone_ids: torch.Tensor  # [N] prompt + target phones
    gpt_bert: torch.Tensor  # [1024, N]
    prompt_tokens: torch.Tensor  # [Ty]
    target_phone_ids: torch.Tensor  # [Np]
    ge: torch.Tensor  # [gin, 1]
    options: SynthesisOptions = field(default_factory=SynthesisOptions)
    deadline: float | None = None
    cancel: threading.Event | None = None  # the caller's own cancel flag, checked every tick (no watcher thread)
    mark: StreamMark | None = None  # the watermark to add as the audio is made (`chunking.join_rows`)

    @property
    def seed(self) -> int:
        return self.options.seed or 0


class StreamHandle:
    """Iterate to receive float32 PCM pieces (32 kHz) in play order; `cancel()` from any thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.tokens: list[int] = []

    def cancel(self) -> None:
        self.cancelled.set()

    # scheduler side
    def put(self, pcm: np.ndarray) -> None:
        self._queue.put(pcm)

    def finish(self, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.done.set()
            self._queue.put(error if error is not None else _END)

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


@dataclass(eq=False)
class LiveStream:
    """What the scheduler tracks for one admitted request."""

    request: SynthRequest
    handle: StreamHandle
    slot: int
    prompt_len: int
    decoder: StreamDecoder
    max_new_tokens: int = 0  # the request's cap, less where the KV cache has fewer positions left
    step: int = 0  # tokens generated so far (the device sampler keeps the same count per slot)
    launched: int = 0  # decode steps launched (pipelined fused decoding runs one step ahead of `step`)
    finished: bool = False
    error: GsvdError | None = field(default=None)
    decoding: bool = False  # a chunk-decode job for this stream is in flight

    first_audio_at: float | None = None  # time.monotonic() when the first PCM was handed on
    samples_sent: int = 0
    admitted_at: float = 0.0  # time.monotonic() at admission (first chunks are ordered by it)

    def deliver(self, pcm: np.ndarray) -> bool:
        """Hand a decoded piece to the caller (nothing for an empty one, or once the handle has ended) and
        count it for `audio_deadline` -> whether it came late (after the audio sent before it had played)."""
        if not len(pcm) or self.handle.done.is_set():
            return False
        now = time.monotonic()
        late = self.first_audio_at is not None and now > self.audio_deadline()
        if self.first_audio_at is None:
            self.first_audio_at = now
        self.samples_sent += len(pcm)
        self.handle.put(pcm)
        return late

    def audio_deadline(self) -> float:
        """When the audio sent so far finishes playing, if playback started with the first piece (-inf
        before the first piece: nothing is more urgent than a stream's first audio)."""
        if self.first_audio_at is None:
            return float("-inf")
        return self.first_audio_at + self.samples_sent / SAMPLE_RATE

    def needs_audio(self) -> bool:
        """More audio is to come: tokens still to be made, or made and not decoded yet."""
        return not self.finished or self.decoder.ready(True)

    def cancel_reason(self, now: float) -> Cancelled | None:
        return cancel_reason(self.request, self.handle, now)


def cancel_reason(request: SynthRequest, handle: StreamHandle, now: float) -> Cancelled | None:
    """Why a request must stop now (its handle or its own flag cancelled, its deadline passed), or None."""
    if handle.cancelled.is_set() or (request.cancel is not None and request.cancel.is_set()):
        return Cancelled("request cancelled")
    if request.deadline is not None and now > request.deadline:
        return Cancelled("request deadline exceeded")
    return None

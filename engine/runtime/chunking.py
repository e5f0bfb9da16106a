"""Chunked SoVITS decoding: when to cut semantic tokens into audio, and click-free joins.

`ChunkPolicy` says how many tokens each chunk holds (small first chunk for fast
first audio, larger later ones), how many future tokens must exist before a
chunk is decoded (lookahead: the content encoder is bidirectional, so frames
near the end of what is known still change), and how many past tokens are
re-decoded as context (history) so the flow and vocoder see the same receptive
field as a whole-utterance decode.

`StreamDecoder` keeps one stream's tokens, its prior-noise seed (the noise is a
function of seed and frame, `prior_noise.py`, so re-decodes agree) and the tail of
the previous chunk, and cross-fades chunks over `crossfade` samples.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch

WINDOW_CHUNKS = 32  # chunks whose window lengths are the regular ones (graphs captured at load)


@dataclass(frozen=True)
class ChunkPolicy:
    first: int = 6
    """Tokens in the first chunk (6 tokens = 0.24 s of audio)."""
    growth: float = 2.0
    """Each later chunk is this many times the previous one, up to `largest`."""
    largest: int = 48
    lookahead: int = 2
    """Future tokens required before a chunk is decoded (0 at the end of the stream)."""
    history: int = 8
    """Past tokens re-decoded as context for the flow and vocoder."""
    crossfade: int = 320
    """Samples cross-faded between consecutive chunks (10 ms at 32 kHz)."""

    @classmethod
    def parse(cls, text: str) -> ChunkPolicy:
        """"first,growth[,largest]" (the `chunk_policy` setting, e.g. "8,1.5,48") -> a policy; ValueError says
        what is wrong."""
        parts = [p.strip() for p in text.split(",")]
        if not 2 <= len(parts) <= 3:
            raise ValueError(f"chunk policy {text!r}: expected first,growth[,largest] (e.g. 8,1.5,48)")
        try:
            first, growth = int(parts[0]), float(parts[1])
            largest = int(parts[2]) if len(parts) == 3 else cls.largest
        except ValueError:
            raise ValueError(f"chunk policy {text!r}: first and largest are token counts, growth a number") from None
        if not (1 <= first <= largest and growth >= 1.0):
            raise ValueError(f"chunk policy {text!r}: needs 1 <= first <= largest and growth >= 1")
        return cls(first=first, growth=growth, largest=largest)

    def size(self, index: int) -> int:
        return int(min(self.largest, round(self.first * self.growth**index)))

    def window_frames(self, chunks: int = WINDOW_CHUNKS) -> list[int]:
        """The vocoder window lengths (50 Hz frames, speed 1) of a stream's first `chunks` chunks, last
        chunks aside: chunk + history tokens (a few values: sizes stop growing at `largest`)."""
        return list(_window_frames(self, chunks))

    def widen(self, lo: int, b: int) -> int:
        """A speed-1 window [lo, b) of another length (a stream's last chunk) starts earlier so that it has
        the next of the regular lengths (`window_frames`), when the stream has that many frames before b: the
        extra frames are history (decoded and dropped, more context than needed), and the window is one the
        runtime has a vocoder graph for. -> the new start (lo when no regular length fits)."""
        n = b - lo
        fit = [f for f in _window_frames(self, WINDOW_CHUNKS) if n <= f <= b]
        return b - min(fit) if fit else lo


@dataclass(eq=False)
class StreamDecoder:
    """Turns a growing token sequence into audio chunks for one stream."""

    sovits: torch.nn.Module
    phones: torch.Tensor  # [1, Np] target phones (on the host: a chunk pass uploads all its rows' at once)
    ge: torch.Tensor  # [1, gin, 1]
    noise_scale: float
    speed: float
    seed: int  # the prior noise's seed (`prior_noise.noise_seed` of the request's seed)
    policy: ChunkPolicy = field(default_factory=ChunkPolicy)
    tokens: list[int] = field(default_factory=list)
    emitted: int = 0  # tokens already turned into audio
    chunks: int = 0
    _tail: np.ndarray | None = None
    _phone_ids: np.ndarray | None = None

    def ready(self, finished: bool) -> bool:
        pending = len(self.tokens) - self.emitted
        if finished:
            return pending > 0 or self._tail is not None
        return pending >= self.policy.size(self.chunks) + self.policy.lookahead

    def plan(self, finished: bool) -> tuple[int, int, int]:
        """The next chunk: (start, end, known) token indices. Chunk boundaries follow the policy whether
        or not the stream has finished, and each chunk sees the same token context (itself plus
        `lookahead`, or up to the end), so the audio does not depend on how fast tokens arrived
        relative to decoding."""
        start = self.emitted
        size = self.policy.size(self.chunks)
        end = min(len(self.tokens), start + size) if finished else start + size
        return start, end, min(len(self.tokens), end + self.policy.lookahead)

    def window(self, start: int, end: int, n_frames: int) -> tuple[int, int, int]:
        """Frames (lo, a, b) of the vocoder window: `history` tokens before the chunk, then the chunk."""
        f = lambda tok: min(n_frames, int(round(2 * tok / self.speed)))  # noqa: E731
        lo, a, b = f(max(0, start - self.policy.history)), f(start), f(end)
        return (self.policy.widen(lo, b) if self.speed == 1.0 else lo), a, b

    @property
    def overlap(self) -> int:
        """Samples of the held-back tail, decoded again at the start of the next chunk."""
        return len(self._tail) if self._tail is not None else 0

    def commit(self, end: int, audio: np.ndarray, finished: bool) -> np.ndarray:
        """Record the chunk that ended at token `end` (audio from its start, tail overlap included) and
        return the joined PCM to play."""
        if end > self.emitted:
            self.emitted, self.chunks = end, self.chunks + 1
        return self._join(audio, finished and end == len(self.tokens))

    def next_chunk(self, finished: bool) -> np.ndarray:
        """Decode the next chunk alone, eagerly; returns float32 PCM (see `chunk_decode.BatchChunkDecoder`)."""
        from gsvd.engine.runtime.chunk_decode import BatchChunkDecoder

        return BatchChunkDecoder(self.sovits).decode([(self, finished)])[0]

    @property
    def phone_ids(self) -> np.ndarray:
        """The target phones as a host array (read once; the runtime keeps them on the host anyway)."""
        if self._phone_ids is None:
            self._phone_ids = self.phones.reshape(-1).long().cpu().numpy()
        return self._phone_ids

    def _join(self, audio: np.ndarray, finished: bool) -> np.ndarray:
        """Cross-fade the held-back tail with the start of `audio` (both cover the same span)."""
        tail, self._tail = self._tail, None
        if tail is not None:
            k = len(tail)
            if len(audio) >= k:
                fade = np.linspace(0.0, 1.0, k, dtype=np.float32)
                audio = np.concatenate([tail * (1 - fade) + audio[:k] * fade, audio[k:]])
            else:
                audio = tail
        n = self.policy.crossfade
        if not finished and len(audio) > n:
            audio, self._tail = audio[:-n], audio[-n:].copy()
        return audio.astype(np.float32, copy=False)


@functools.cache
def _window_frames(policy: ChunkPolicy, chunks: int) -> tuple[int, ...]:
    frames, start = [], 0
    for i in range(chunks):
        f = 2 * (policy.size(i) + min(policy.history, start))
        if f not in frames:
            frames.append(f)
        start += policy.size(i)
    return tuple(frames)


def stream_tokens(decoder: StreamDecoder, tokens: list[int]) -> tuple[np.ndarray, list[int]]:
    """Feed tokens one by one as the GPT would, decode every chunk as soon as it is ready.

    Returns the joined PCM and the sample index of each join (for `join_quality`).
    """
    out: list[np.ndarray] = []
    joins: list[int] = []
    for t in tokens:
        decoder.tokens.append(t)
        while decoder.ready(False):
            out.append(decoder.next_chunk(False))
            joins.append(sum(map(len, out)))
    while decoder.ready(True):
        out.append(decoder.next_chunk(True))
        joins.append(sum(map(len, out)))
    return (np.concatenate(out) if out else np.zeros(0, np.float32)), joins[:-1]


def join_quality(streamed: np.ndarray, whole: np.ndarray, joins: list[int]) -> dict[str, float]:
    """Compare a streamed decode with the whole-utterance decode of the same tokens.

    - lsd_db: log-spectral distance (dB, 512-point frames) between the two signals;
    - step_ratio: the largest absolute sample step within +-8 samples of a join,
      over the 99.9th percentile of the whole signal's own sample steps (a click
      shows up as a ratio well above 1).
    """
    n = min(len(streamed), len(whole))
    a, b = streamed[:n].astype(np.float64), whole[:n].astype(np.float64)
    frame = 512
    frames = n // frame
    if frames == 0:
        return {"lsd_db": 0.0, "step_ratio": 0.0}
    spec = lambda x: np.abs(np.fft.rfft(x[: frames * frame].reshape(frames, frame) * np.hanning(frame), axis=1))  # noqa: E731
    sa, sb = spec(a) + 1e-6, spec(b) + 1e-6
    lsd = float(np.mean(np.sqrt(np.mean((20 * np.log10(sa / sb)) ** 2, axis=1))))
    steps = np.abs(np.diff(b))
    ref = float(np.percentile(steps, 99.9)) + 1e-9
    local = [np.abs(np.diff(a[max(0, j - 8) : j + 8])).max() for j in joins if 8 < j < n - 8]
    return {"lsd_db": lsd, "step_ratio": float(max(local) / ref) if local else 0.0}

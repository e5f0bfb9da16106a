"""Chunked SoVITS decoding: when to cut semantic tokens into audio, and click-free joins.

`ChunkPolicy` says how many tokens each chunk holds (small first chunk for fast
first audio, larger later ones), how many future tokens must exist before a
chunk is decoded (lookahead: the content encoder is bidirectional, so frames
near the end of what is known still change), and how many past tokens are
re-decoded as context (history) so the flow and vocoder see the same receptive
field as a whole-utterance decode.

`StreamDecoder` keeps one stream's tokens, its prior-noise seed (the noise is a
function of seed and frame, `prior_noise.py`, so re-decodes agree) and the tail of
the previous chunk (on the device the audio is made on).

`join_rows` finishes a chunk pass's audio on its device, all rows at once: each row's chunk is cross-faded
with its stream's held-back tail over `crossfade` samples, the last `crossfade` samples are held back again
(unless the chunk ends the stream), and where the request carries a watermark (`SynthRequest.mark`) the
frames that are now final get it (`provenance.embed`). Only then does the audio go to the host: the mark is
a few kernels per pass instead of host work per stream.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from gsvd.engine.types import SAMPLE_RATE

if TYPE_CHECKING:
    from gsvd.engine.provenance.embed import GraphedMarks
    from gsvd.engine.provenance.watermark import StreamMark

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
    mark: StreamMark | None = None  # the watermark of the request's audio (None: unmarked)
    tokens: list[int] = field(default_factory=list)
    emitted: int = 0  # tokens already turned into audio
    chunks: int = 0
    samples_out: int = 0  # samples handed on so far (the watermark's frames sit on the stream's 10 ms grid)
    _tail: torch.Tensor | None = None  # the previous chunk's last `crossfade` samples, not played yet
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

    def commit(self, end: int, audio: np.ndarray, tail: torch.Tensor | None) -> np.ndarray:
        """Record the chunk that ended at token `end`: `audio` (joined, to play) and the tail now held back
        (`join_rows`) -> `audio`."""
        if end > self.emitted:
            self.emitted, self.chunks = end, self.chunks + 1
        self._tail = tail
        self.samples_out += len(audio)
        return audio

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

@functools.cache
def _window_frames(policy: ChunkPolicy, chunks: int) -> tuple[int, ...]:
    frames, start = [], 0
    for i in range(chunks):
        f = 2 * (policy.size(i) + min(policy.history, start))
        if f not in frames:
            frames.append(f)
        start += policy.size(i)
    return tuple(frames)


JoinRow = tuple[StreamDecoder, int, bool, "torch.Tensor | None"]
"""A row of a chunk pass to join: its stream's decoder, the samples of its audio to drop (history decoded again),
whether the chunk ends the stream, and the tail to cross-fade its start with (None: none)."""


def join_rows(wav: torch.Tensor, rows: list[JoinRow], marks: GraphedMarks | None = None
              ) -> tuple[torch.Tensor, list[int], list[torch.Tensor | None]]:
    """A chunk pass's audio ``wav`` [R, T] (one row per stream, on its device) -> (the joined audio [R, L], each
    row's length to play, each row's new tail or None), on the same device, without waiting for it.

    Row r plays ``wav[r, skip:]`` whose first `crossfade` samples are faded in over its tail (a chunk shorter than
    the tail plays the tail alone); unless the chunk ends the stream, its last `crossfade` samples are held back as
    the new tail. The frames of each row's audio to play that carry a watermark get it (`_mark_rows`; `marks`: the
    audio lane's graphs of the marks, None: eager)."""
    n_rows, width = wav.shape
    dev = wav.device
    n = rows[0][0].policy.crossfade
    skips = np.array([skip for _, skip, _, _ in rows], np.int64)
    avail = np.maximum(width - skips, 0)  # a window shorter than its history (re-timed at a high speed): no audio
    length = int(max(avail.max(), n))
    audio = wav.gather(1, _positions(skips, length, width, dev))
    mode = np.zeros(n_rows, np.int64)  # 0: no tail; 1: cross-fade; 2: the chunk is shorter than the tail
    for r, (_, _, _, tail) in enumerate(rows):
        if tail is not None:
            mode[r] = 1 if avail[r] >= n else 2
    if mode.any():
        zero = wav.new_zeros(n)
        tails = torch.stack([t if t is not None else zero for _, _, _, t in rows])
        head = audio[:, :n]
        mixed = tails * (1 - _fade(n, dev, wav.dtype)) + head * _fade(n, dev, wav.dtype)
        m = torch.from_numpy(mode).to(dev, non_blocking=True)[:, None]
        audio[:, :n] = torch.where(m == 1, mixed, torch.where(m == 2, tails, head))
    joined = np.where(mode == 2, n, avail)
    keep = np.array([not last for _, _, last, _ in rows]) & (joined > n)
    lengths = np.where(keep, joined - n, joined)
    new_tails: list[torch.Tensor | None] = [None] * n_rows
    if keep.any():
        held = audio.gather(1, _positions(lengths, n, length, dev))
        new_tails = [held[r] if keep[r] else None for r in range(n_rows)]
    _mark_rows(audio, [d for d, _, _, _ in rows], lengths, marks)
    return audio, [int(x) for x in lengths], new_tails


def _positions(starts: np.ndarray, count: int, limit: int, device: torch.device) -> torch.Tensor:
    """Per row, the sample indices starts[r] + (0..count-1) (clamped to limit - 1) as a [R, count] index."""
    first = torch.from_numpy(starts).to(device, non_blocking=True)
    return (first[:, None] + torch.arange(count, device=device)).clamp_(max=limit - 1)


@functools.cache
def _fade_host(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n, dtype=np.float32)


_fades: dict[tuple[int, str, torch.dtype], torch.Tensor] = {}


def _fade(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (n, str(device), dtype)
    fade = _fades.get(key)
    if fade is None:
        fade = _fades[key] = torch.from_numpy(_fade_host(n)).to(device, dtype)
    return fade


def _mark_rows(audio: torch.Tensor, decoders: list[StreamDecoder], lengths: np.ndarray,
               graphed: GraphedMarks | None) -> None:
    """Add each marked row's watermark to the whole 10 ms frames (of the stream's grid) of its first lengths[r]
    samples, in place: rows of one key in one batch (`graphed`: the audio lane's graphs of the runtime's key)."""
    from gsvd.engine.provenance.watermark import SLOTS, frame_length

    marked = [r for r, d in enumerate(decoders) if d.mark is not None]
    if not marked:
        return
    from gsvd.engine.provenance.embed import GraphedMarks

    fl = frame_length(SAMPLE_RATE)
    position = np.array([d.mark.start + d.samples_out if d.mark is not None else 0 for d in decoders], np.int64)
    starts = -position % fl  # the first frame boundary of the stream's grid in each row
    counts = np.maximum(0, (np.asarray(lengths, np.int64) - starts) // fl)
    unmarked = np.ones(len(decoders), bool)
    unmarked[marked] = False
    counts[unmarked] = 0
    frames = int(counts.max())
    if frames == 0:
        return
    idx = _positions(starts, frames * fl, audio.shape[1], audio.device)
    slot = ((position + starts) // fl)[:, None] + np.arange(frames)
    live = np.arange(frames) < counts[:, None]
    for pattern in {id(decoders[r].mark.pattern): decoders[r].mark.pattern for r in marked}.values():
        table = np.zeros((len(decoders), SLOTS))
        mine = np.zeros(len(decoders), bool)
        for r in marked:
            if decoders[r].mark.pattern is pattern:
                table[r], mine[r] = decoders[r].mark.offsets, True
        host = np.stack([np.take_along_axis(table, slot % SLOTS, axis=1), live & mine[:, None]]).astype(np.float32)
        both = torch.from_numpy(host.reshape(2, -1)).to(audio.device, non_blocking=True)
        use = graphed if graphed is not None and graphed.pattern is pattern else GraphedMarks(
            pattern, fl, audio.device, None)
        use.add(audio, idx, both[0], both[1] > 0.5)


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

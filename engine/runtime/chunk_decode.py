"""Chunk decode for many streams at once: one content-encoder pass and one vocoder pass per group.

The scheduler hands over every stream whose next chunk is ready. Streams of one SoVITS
model at speed 1 share a padded batch through the content encoder and prior (codes and phones padded,
masks mark the real frames, so each row equals its unbatched decode up to float rounding; where a
CUDA graph of the padded shape exists, `graph_content`, it is replayed instead); each stream's prior
noise is its own, a function of its seed and the frame made on the device; windows of equal length then
go through the reverse flow + HiFi-GAN together (a CUDA graph per window length and batch bucket where
the runtime has one). Other speeds run one stream at a time (re-timing interpolates over the padded length).

`BatchChunkDecoder.launch` (the model's `seams.ChunkDecoder`) queues all of that without waiting for the GPU
(host inputs are copied up without a stream sync, the audio comes back into pinned memory behind an event);
`PendingChunks.finish` commits the chunks once the audio is there, on a later tick while the GPT steps.
`decode` is both in one call. In the runtime a pass runs on an audio lane (`lanes.AudioLane`): its stream and the
content and vocoder graphs of the model's architecture there, which replay with the model's weights swapped in.

`SovitsParts`: one SoVITS model as the chunk decodes run it -- the model (fp32) and, on CUDA, its generator in fp16
(two layouts) -- and its weights in three flat groups (`weights.FlatWeights`): the content encoder and prior, the
vocoder (reverse flow and the generator as it runs), the rest (reference encoder; the fp32 generator where the fp16
one runs). The groups are what a template swaps in (content, vocoder) and what residency moves (all three).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
import torch

from gsvd.engine.runtime.chunking import join_rows
from gsvd.engine.runtime.prior_noise import sample_prior
from gsvd.engine.runtime.weights import FlatWeights

if TYPE_CHECKING:
    from gsvd.engine.models.sovits import SovitsDims, SynthesizerTrn
    from gsvd.engine.provenance.embed import GraphedMarks
    from gsvd.engine.runtime.chunking import StreamDecoder
    from gsvd.engine.runtime.graph_content import GraphedContent
    from gsvd.engine.runtime.graph_vocoder import GraphedVocoder
    from gsvd.engine.runtime.lanes import AudioLane

Item = tuple["StreamDecoder", bool]  # a stream's decoder, and whether its tokens are all there
Part = tuple[torch.Tensor, list[tuple[int, int, "torch.Tensor | None"]]]
"""A group's joined audio (on the host, or on its way there) and per row: the item, its length, its new tail."""


def _ends_stream(item: Item, plan: tuple[int, int, int]) -> bool:
    """Whether the planned chunk is the stream's last: its tokens are all there and it takes the last of them."""
    decoder, finished = item
    return finished and plan[1] == len(decoder.tokens)


class PendingChunks:
    """Chunk audio launched on the current stream and on its way to the host. `done()` polls;
    `finish()` waits if it must, then commits each stream's chunk (its decoder moves on) and returns
    each stream's joined PCM. The decoders must not be planned again until then."""

    def __init__(self, items: list[Item], plans: list[tuple[int, int, int]], parts: list[Part], event) -> None:
        self.items, self.plans, self.parts, self.event = items, plans, parts, event

    def done(self) -> bool:
        return self.event is None or self.event.query()

    def finish(self) -> list[np.ndarray]:
        if self.event is not None:
            self.event.synchronize()  # releases the GIL while it waits
        audio: list[np.ndarray] = [np.zeros(0, np.float32)] * len(self.items)
        tails: list[torch.Tensor | None] = [d._tail for d, _ in self.items]
        for host, rows in self.parts:
            pcm = host.numpy()
            for k, (i, length, tail) in enumerate(rows):
                audio[i], tails[i] = pcm[k, :length], tail
        return [d.commit(end, a, t) for (d, _), (_, end, _), a, t in zip(self.items, self.plans, audio, tails)]


class SovitsParts:
    """One SoVITS model as the chunk decodes run it (see the module doc). `half`: the generator runs from an fp16
    copy (and its channels-last copy). `flatten` puts the weights into their flat groups."""

    def __init__(self, sovits: SynthesizerTrn, half: bool = False) -> None:
        from gsvd.engine.runtime.graph_vocoder import channels_last

        self.sovits, self.half = sovits, half
        self.dec_half = copy.deepcopy(sovits.dec).half() if half else None
        self.dec_nhwc = channels_last(self.dec_half) if half else None
        self.content: FlatWeights | None = None
        self.vocoder: FlatWeights | None = None
        self.rest: FlatWeights | None = None

    def content_modules(self) -> list[torch.nn.Module]:
        s = self.sovits
        return [s.enc_p, s.quantizer, *([s.ge_to512] if s.dims.is_v2pro else [])]

    def vocoder_modules(self) -> list[torch.nn.Module]:
        return [self.sovits.flow, *([self.dec_half, self.dec_nhwc] if self.half else [self.sovits.dec])]

    def flatten(self, device: torch.device, keep_host: bool = True) -> list[FlatWeights]:
        """The weights into their three flat groups on `device` -> the groups."""
        content, vocoder = self.content_modules(), self.vocoder_modules()
        self.content = FlatWeights(content, device, keep_host)
        self.vocoder = FlatWeights(vocoder, device, keep_host)
        self.rest = FlatWeights([self.sovits], device, keep_host, exclude=content + vocoder)
        return [self.content, self.vocoder, self.rest]

    @property
    def groups(self) -> list[FlatWeights]:
        return [g for g in (self.content, self.vocoder, self.rest) if g is not None]

    @classmethod
    def template(cls, dims: SovitsDims, half: bool, device: torch.device) -> SovitsParts:
        """Parts of this architecture for graphs to be captured against (`weights` module doc): built on the meta
        device (no initialization), content and vocoder groups on `device` only, the rest left on meta."""
        from gsvd.engine.models.sovits import SynthesizerTrn

        with torch.device("meta"):
            parts = cls(SynthesizerTrn(dims).float().eval(), half)
        parts.content = FlatWeights(parts.content_modules(), device, keep_host=False)
        parts.vocoder = FlatWeights(parts.vocoder_modules(), device, keep_host=False)
        return parts


class BatchChunkDecoder:
    """A model's chunk decoder: its SoVITS parts and, used on its own, content-encoder and vocoder graphs (in the
    runtime those of the audio lane a pass runs on)."""

    def __init__(self, sovits: SynthesizerTrn | SovitsParts, content: GraphedContent | None = None,
                 vocoder: GraphedVocoder | None = None) -> None:
        self.parts = sovits if isinstance(sovits, SovitsParts) else SovitsParts(sovits)
        self.sovits, self.content, self.vocoder = self.parts.sovits, content, vocoder

    def decode(self, items: list[Item]) -> list[np.ndarray]:
        """(StreamDecoder, finished) pairs, one per stream -> each stream's joined PCM (float32)."""
        return self.launch(items).finish()

    @torch.inference_mode()
    def launch(self, items: list[Item], lane: AudioLane | None = None) -> PendingChunks:
        """(StreamDecoder, finished) pairs, one per stream -> their chunks, launched (on CUDA nothing here waits
        for the GPU: host inputs go up without a sync, the audio comes back into pinned memory). `lane`: the audio
        lane whose graphs of this architecture the pass may replay (None: this decoder's own, if any)."""
        content, vocoder = self.content, self.vocoder
        if lane is not None:
            graphs = lane.audio_graphs(self.parts)
            if graphs is not None:
                content, vocoder = graphs
        plans = [d.plan(finished) for d, finished in items]
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, ((d, _), (start, end, _)) in enumerate(zip(items, plans)):
            if end > start:
                groups[("batch",) if d.speed == 1.0 else ("single", i)].append(i)
        parts: list[Part] = []
        on_cuda = False
        marks = lane.marks if lane is not None else None
        for members in groups.values():
            windows = self._windows([items[i][0] for i in members], [plans[i] for i in members], content)
            by_len: dict[int, list[tuple[int, torch.Tensor, int]]] = defaultdict(list)
            for i, (z, skip) in zip(members, windows):
                by_len[int(z.shape[-1])].append((i, z, skip))
            for rows in by_len.values():
                speed = items[rows[0][0]][0].speed
                z = torch.cat([z for _, z, _ in rows])
                ge = torch.cat([items[i][0].ge for i, _, _ in rows])
                if vocoder is not None:
                    wav = vocoder(z, ge, graphable=speed == 1.0, weights=self.parts)
                else:
                    from gsvd.engine.runtime.graph_vocoder import vocode

                    wav = vocode(self.parts, z, ge)
                ends = [(i, skip, _ends_stream(items[i], plans[i])) for i, _, skip in rows]
                on_cuda |= self._finish_rows(wav[:, 0].float(), ends, items, parts, marks)
        flush = [i for i, ((d, finished), (start, end, _)) in enumerate(zip(items, plans))
                 if end == start and d._tail is not None]  # the stream ended where its last chunk did
        if flush:
            wav = torch.stack([items[i][0]._tail for i in flush])
            on_cuda |= self._finish_rows(wav, [(i, 0, True) for i in flush], items, parts, marks, tails=False)
        event = None
        if on_cuda:
            event = torch.cuda.Event()
            event.record()
        return PendingChunks(items, plans, parts, event)

    @staticmethod
    def _finish_rows(wav: torch.Tensor, rows: list[tuple[int, int, bool]], items: list[Item], parts: list[Part],
                     marks: GraphedMarks | None, tails: bool = True) -> bool:
        """Join and mark a group's audio (`chunking.join_rows`; `tails` False: the rows are held-back tails played
        alone) and start its copy to the host (on CUDA one device-to-host copy into pinned memory, not waited for
        here) -> whether it is on CUDA."""
        audio, lengths, new_tails = join_rows(
            wav, [(items[i][0], skip, last, items[i][0]._tail if tails else None) for i, skip, last in rows], marks)
        if audio.is_cuda:
            host = torch.empty(audio.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(audio, non_blocking=True)
        else:
            host = audio
        parts.append((host, [(i, n, t) for (i, _, _), n, t in zip(rows, lengths, new_tails)]))
        return audio.is_cuda

    def _windows(self, decoders: list[StreamDecoder], plans: list[tuple[int, int, int]],
                 content: GraphedContent | None = None) -> list[tuple[torch.Tensor, int]]:
        """Content encoder + prior over each stream's known tokens (one padded batch, or on CUDA the content graphs
        of each row's own width: rows are taken in order of known tokens so equal widths sit together) -> per
        stream the vocoder window z_p [1, C, frames] and how many leading samples of its audio to drop. The rows'
        codes and phones are put together on the host with numpy (no torch call per row: each one hands the GIL
        over) and go up in one copy, without waiting for the GPU; the prior noise is made on the device from
        each stream's seed (`prior_noise.py`)."""
        order = sorted(range(len(decoders)), key=lambda r: plans[r][2])
        decoders, plans = [decoders[r] for r in order], [plans[r] for r in order]
        sovits = self.sovits
        p = next(sovits.parameters())
        dev = p.device
        known = [k for _, _, k in plans]
        n_ph = [int(d.phones.shape[-1]) for d in decoders]
        codes = np.zeros((len(decoders), 1, max(known)), np.int64)
        phones = np.zeros((len(decoders), max(n_ph)), np.int64)
        for r, (d, k) in enumerate(zip(decoders, known)):
            codes[r, 0, :k] = d.tokens[:k]
            phones[r, : n_ph[r]] = d.phone_ids
        batched = len(decoders) > 1
        ge = torch.cat([d.ge for d in decoders])
        seeds, scales = [d.seed for d in decoders], [d.noise_scale for d in decoders]
        z_rows = None
        content = content if content is not None else self.content
        if content is not None and decoders[0].speed == 1.0:  # padded to graphs' shapes, replayed
            z_rows = content(codes, phones, ge, known, n_ph, seeds, scales, weights=self.parts)
        if z_rows is None:
            codes_t = torch.from_numpy(codes).to(dev, non_blocking=True)  # small: pageable memory is staged at once
            phones_t = torch.from_numpy(phones).to(dev, non_blocking=True)
            lens = torch.tensor([known, n_ph]).to(dev, non_blocking=True) if batched else None
            hidden, mask = sovits.content(codes_t, phones_t, ge, lens[0] if batched else None,
                                          lens[1] if batched else None)
            m, logs, mask = sovits.prior(hidden, mask, decoders[0].speed)
            z_all = sample_prior(m, logs, torch.tensor(seeds).to(dev, non_blocking=True),
                                 torch.tensor(scales, dtype=torch.float64).to(dev, non_blocking=True))
            z_rows = [z_all[r : r + 1] for r in range(len(decoders))]
        hop = sovits.dims.hop
        frames = [2 * k if batched else z_rows[0].shape[-1] for k in known]  # one row: re-timed at its speed
        out: list = [None] * len(order)
        for r, d, (start, end, _), f, z in zip(order, decoders, plans, frames, z_rows):
            lo, a, b = d.window(start, end, f)
            out[r] = (z[:, :, lo:b], max(0, (a - lo) * hop - d.overlap))
        return out

"""Content encoder + prior of chunk decodes, replayed from CUDA graphs.

The content encoder (~12 relative-attention layers, hundreds of small launches) dominated a chunk
decode, and a stream's first chunk is what its listener waits for. Each graph covers one padded
shape: a batch bucket of rows, c semantic tokens (c in `code_widths`) and n target phones (n a
multiple of `phone_step`); each row's real lengths go in as `code_lens` / `text_lens`, so the
masks keep padding out (the masked path of a padded batch, equal to each row's unpadded pass up
to float rounding). Rows of a pass go through the graph of their own code width, each group in the batch
buckets whose measured replay times sum least (a first chunk's 8 tokens are not padded to a last chunk's
75, a group of 40 rows replays 32 + 8). The graph ends with the prior's sample,
z_p = m + noise * exp(logs) * scale, its noise computed in the graph from each row's seed
(`prior_noise.py`), so a pass uploads no noise. Off CUDA the same padded pass runs eagerly. The encoder runs
in fp32 (an fp16 copy measured no gain end to end: benchmarks/HISTORY.md).

As the vocoder's (`graph_vocoder`), the graphs are captured once per architecture and audio lane against a template,
the model's content weights (~60 MB at real v2 sizes) copied in before a replay when the template holds another
model's; the runtime captures them in the background (`capture_order`: small batches and short widths first) and a shape
without a graph yet runs the plain pass. Phone widths step by 32 (4 widths up to 128: half the graphs of a 16 step;
the phones' share of the encoder's work is small).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from gsvd.engine.runtime.cuda_graphs import GraphPool, GraphSet, default_pool, plan_rows
from gsvd.engine.runtime.prior_noise import sample_prior

if TYPE_CHECKING:
    from gsvd.engine.models.sovits import SynthesizerTrn
    from gsvd.engine.runtime.chunk_decode import SovitsParts

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # up to scheduler.MAX_CHUNK_BATCH rows in one replay


class GraphedContent:
    def __init__(self, sovits: SynthesizerTrn | SovitsParts, code_widths: tuple[int, ...] = (16, 32, 64, 128, 256),
                 phone_step: int = 32, max_phones: int = 128, batch_buckets: tuple[int, ...] = BATCH_BUCKETS,
                 pool: GraphPool | None = None) -> None:
        from gsvd.engine.runtime.chunk_decode import SovitsParts

        self.parts = sovits if isinstance(sovits, SovitsParts) else None
        self.sovits = self.parts.sovits if self.parts is not None else sovits
        self.code_widths, self.phone_step, self.max_phones = code_widths, phone_step, max_phones
        self.batch_buckets = batch_buckets
        self.pool = pool if pool is not None else default_pool(next(self.sovits.enc_p.parameters()).device)
        self.graphs = GraphSet(self._run, self._statics, pool=self.pool)

    def _run(self, codes, phones, code_lens, text_lens, seeds, scale_bits, ge, packed):
        hidden, mask = self.sovits.content(codes, phones, ge, code_lens, text_lens)
        m, logs, _ = self.sovits.prior(hidden, mask, 1.0)
        return sample_prior(m, logs, seeds, scale_bits.contiguous().view(torch.float64))

    def _statics(self, key: tuple[int, int, int]):
        """The inputs but ge are views of one int64 tensor, filled by one copy: per row codes | phones |
        code length | text length | noise seed | noise scale (a float64's bits); ge comes in the model's
        device and dtype."""
        b, c, n = key
        p = next(self.sovits.enc_p.parameters())
        packed = torch.zeros(b, c + n + 4, dtype=torch.long, device=p.device)
        packed[:, c + n : c + n + 2] = 1
        ge = torch.zeros(b, self.sovits.dims.gin_channels, 1, dtype=p.dtype, device=p.device)
        return (packed[:, None, :c], packed[:, c : c + n], packed[:, -4], packed[:, -3], packed[:, -2],
                packed[:, -1], ge, packed)

    def capture_order(self) -> list[tuple[int, int, int]]:
        """Every (batch, codes, phones) graph, in the order to capture them: small batches, then short widths, first
        (a first chunk's shapes)."""
        return [(b, c, n) for b in self.batch_buckets for c in self.code_widths
                for n in range(self.phone_step, self.max_phones + 1, self.phone_step)]

    def capture(self, key: tuple[int, int, int]) -> bool:
        return self.graphs.capture(key, timed=True)

    def prepare(self) -> None:
        """Capture every (batch, codes, phones) graph now, in this thread, each replay timed."""
        for key in self.capture_order():
            self.capture(key)

    def __call__(self, codes, phones, ge: torch.Tensor, code_lens: list[int], text_lens: list[int],
                 seeds: list[int], scales: list[float], weights: SovitsParts | None = None) -> list[torch.Tensor] | None:
        """codes [B, 1, K], phones [B, N] (host arrays or CPU tensors, padded; real lengths `code_lens`,
        `text_lens`), ge [B, gin, 1], each row's noise seed and scale -> per row the prior's sample z_p
        [1, C, 2 * code_lens[r]] at speed 1, or None when no graph fits (more codes or phones than the
        largest graph, capture failed): the caller runs eagerly.

        Rows go through the graph of their own code width (rows sorted by code length keep their groups
        contiguous and the fewest replays), each group in the batch buckets of least summed replay time
        (`cuda_graphs.plan_rows`). Each replay's inputs go up in one copy whatever the rows (every torch call
        hands the GIL over). `weights`: the model whose content weights the template takes before a replay (None:
        the graphs' own)."""
        codes, phones = np.asarray(codes), np.asarray(phones)
        if self._width(max(code_lens)) is None or max(text_lens) > self.max_phones:
            return None
        template = self.parts is not None and self.parts.content is not None
        swap = weights if template and weights is not None and weights is not self.parts else None
        rows = codes.shape[0]
        widths = [self._width(k) for k in code_lens]
        runs = [lo for lo in range(rows) if lo == 0 or widths[lo] != widths[lo - 1]] + [rows]
        spans = []
        for lo, hi in zip(runs, runs[1:]):
            c, n = widths[lo], self._phones(max(text_lens[lo:hi]))
            cost = self.graphs.cost
            timed = {b: cost[(b, c, n)] for b in self.batch_buckets if (b, c, n) in cost}
            spans += [(lo + a, lo + z, b, c, n) for a, z, b in plan_rows(hi - lo, self.batch_buckets, timed)]
        if self.pool is not None and not all(self.graphs.has((b, c, n)) for _, _, b, c, n in spans):
            return None  # a shape not captured (yet): the plain pass
        out: list[torch.Tensor] = []
        for lo, hi, b, c, n in spans:
            z = self._replay(b, c, n, codes[lo:hi], phones[lo:hi], ge[lo:hi], code_lens[lo:hi], text_lens[lo:hi],
                             seeds[lo:hi], scales[lo:hi], swap)
            if z is None:
                return None
            out += [z[r : r + 1, :, : 2 * code_lens[lo + r]] for r in range(hi - lo)]
        return out

    def _width(self, k: int) -> int | None:
        return next((c for c in self.code_widths if c >= k), None)

    def _phones(self, n: int) -> int:
        return -(-n // self.phone_step) * self.phone_step

    def _replay(self, b: int, c: int, n: int, codes, phones, ge, code_lens, text_lens, seeds, scales,
                swap: SovitsParts | None = None):
        """Rows (at most b) through the (b, c, n) graph -> z_p [rows, C, 2 * max(code_lens)], or None. `swap`: the
        model whose content weights the template takes first."""
        rows, k, n_max = codes.shape[0], max(code_lens), max(text_lens)
        host = np.zeros((b, c + n + 4), np.int64)
        host[:, c + n : c + n + 2] = 1
        host[:rows, :k] = codes[:, 0, :k]  # a group's inputs may be padded wider than it needs
        host[:rows, c : c + n_max] = phones[:, :n_max]
        host[:rows, -4], host[:rows, -3], host[:rows, -2] = code_lens, text_lens, seeds
        host[:rows, -1] = np.asarray(scales, np.float64).view(np.int64)

        def fill(*static):
            if swap is not None:
                self.parts.content.hold(swap.content)
            s_ge, s_packed = static[-2:]
            s_packed.copy_(torch.from_numpy(host), non_blocking=True)  # small: pageable memory is staged at once
            s_ge[:rows].copy_(ge)
            if rows < b:
                s_ge[rows:].zero_()

        return self.graphs.run((b, c, n), fill, lambda out: out[:rows, :, : 2 * k].clone())

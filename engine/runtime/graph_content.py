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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from gsvd.engine.runtime.cuda_graphs import GraphSet, plan_rows
from gsvd.engine.runtime.prior_noise import sample_prior

if TYPE_CHECKING:
    from gsvd.engine.models.sovits import SynthesizerTrn

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # up to scheduler.MAX_CHUNK_BATCH rows in one replay


class GraphedContent:
    def __init__(self, sovits: SynthesizerTrn, code_widths: tuple[int, ...] = (16, 32, 64, 128, 256),
                 phone_step: int = 16, max_phones: int = 128, batch_buckets: tuple[int, ...] = BATCH_BUCKETS) -> None:
        self.sovits = sovits
        self.code_widths, self.phone_step, self.max_phones = code_widths, phone_step, max_phones
        self.batch_buckets = batch_buckets
        self.graphs = GraphSet(self._run, self._statics)

    def _run(self, codes, phones, code_lens, text_lens, seeds, scale_bits, ge, packed):
        hidden, mask = self.sovits.content(codes, phones, ge, code_lens, text_lens)
        m, logs, _ = self.sovits.prior(hidden, mask, 1.0)
        return sample_prior(m, logs, seeds, scale_bits.contiguous().view(torch.float64))

    def _statics(self, key: tuple[int, int, int]):
        """The inputs but ge are views of one int64 tensor, filled by one copy: per row codes | phones |
        code length | text length | noise seed | noise scale (a float64's bits); ge comes in the model's
        device and dtype."""
        b, c, n = key
        p = next(self.sovits.parameters())
        packed = torch.zeros(b, c + n + 4, dtype=torch.long, device=p.device)
        packed[:, c + n : c + n + 2] = 1
        ge = torch.zeros(b, self.sovits.dims.gin_channels, 1, dtype=p.dtype, device=p.device)
        return (packed[:, None, :c], packed[:, c : c + n], packed[:, -4], packed[:, -3], packed[:, -2],
                packed[:, -1], ge, packed)

    def prepare(self) -> None:
        """Capture every (batch, codes, phones) graph now (at model load), each replay timed."""
        if not next(self.sovits.parameters()).is_cuda:
            return
        self.graphs.prepare([(b, c, n) for b in self.batch_buckets for c in self.code_widths
                             for n in range(self.phone_step, self.max_phones + 1, self.phone_step)], timed=True)

    def __call__(self, codes, phones, ge: torch.Tensor, code_lens: list[int], text_lens: list[int],
                 seeds: list[int], scales: list[float]) -> list[torch.Tensor] | None:
        """codes [B, 1, K], phones [B, N] (host arrays or CPU tensors, padded; real lengths `code_lens`,
        `text_lens`), ge [B, gin, 1], each row's noise seed and scale -> per row the prior's sample z_p
        [1, C, 2 * code_lens[r]] at speed 1, or None when no graph fits (more codes or phones than the
        largest graph, capture failed): the caller runs eagerly.

        Rows go through the graph of their own code width (rows sorted by code length keep their groups
        contiguous and the fewest replays), each group in the batch buckets of least summed replay time
        (`cuda_graphs.plan_rows`). Each replay's inputs go up in one copy whatever the rows (every torch call
        hands the GIL over)."""
        codes, phones = np.asarray(codes), np.asarray(phones)
        if self._width(max(code_lens)) is None or max(text_lens) > self.max_phones:
            return None
        rows = codes.shape[0]
        widths = [self._width(k) for k in code_lens]
        runs = [lo for lo in range(rows) if lo == 0 or widths[lo] != widths[lo - 1]] + [rows]
        spans = []
        for lo, hi in zip(runs, runs[1:]):
            c, n = widths[lo], self._phones(max(text_lens[lo:hi]))
            cost = self.graphs.cost
            timed = {b: cost[(b, c, n)] for b in self.batch_buckets if (b, c, n) in cost}
            spans += [(lo + a, lo + z, b, c, n) for a, z, b in plan_rows(hi - lo, self.batch_buckets, timed)]
        out: list[torch.Tensor] = []
        for lo, hi, b, c, n in spans:
            z = self._replay(b, c, n, codes[lo:hi], phones[lo:hi], ge[lo:hi], code_lens[lo:hi], text_lens[lo:hi],
                             seeds[lo:hi], scales[lo:hi])
            if z is None:
                return None
            out += [z[r : r + 1, :, : 2 * code_lens[lo + r]] for r in range(hi - lo)]
        return out

    def _width(self, k: int) -> int | None:
        return next((c for c in self.code_widths if c >= k), None)

    def _phones(self, n: int) -> int:
        return -(-n // self.phone_step) * self.phone_step

    def _replay(self, b: int, c: int, n: int, codes, phones, ge, code_lens, text_lens, seeds, scales):
        """Rows (at most b) through the (b, c, n) graph -> z_p [rows, C, 2 * max(code_lens)], or None."""
        rows, k, n_max = codes.shape[0], max(code_lens), max(text_lens)
        host = np.zeros((b, c + n + 4), np.int64)
        host[:, c + n : c + n + 2] = 1
        host[:rows, :k] = codes[:, 0, :k]  # a group's inputs may be padded wider than it needs
        host[:rows, c : c + n_max] = phones[:, :n_max]
        host[:rows, -4], host[:rows, -3], host[:rows, -2] = code_lens, text_lens, seeds
        host[:rows, -1] = np.asarray(scales, np.float64).view(np.int64)

        def fill(*static):
            s_ge, s_packed = static[-2:]
            s_packed.copy_(torch.from_numpy(host), non_blocking=True)  # small: pageable memory is staged at once
            s_ge[:rows].copy_(ge)
            if rows < b:
                s_ge[rows:].zero_()

        return self.graphs.run((b, c, n), ge.is_cuda, fill, lambda out: out[:rows, :, : 2 * k].clone())

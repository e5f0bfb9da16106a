"""Content encoder + prior of chunk decodes, replayed from CUDA graphs.

The content encoder (~12 relative-attention layers, hundreds of small launches) dominated a chunk
decode, and a stream's first chunk is what its listener waits for. Each graph covers one padded
shape: a batch bucket of rows, c semantic tokens (c in `code_widths`) and n target phones (n a
multiple of `phone_step`); each row's real lengths go in as `code_lens` / `text_lens`, so the
masks keep padding out (the masked path of a padded batch, equal to each row's unpadded pass up
to float rounding). Larger batches go through in groups of the largest bucket. Off CUDA the same
padded pass runs eagerly.
"""

from __future__ import annotations

import numpy as np
import torch

from gsvd.engine.runtime.cuda_graphs import GraphSet, in_groups

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # up to scheduler.MAX_CHUNK_BATCH rows in one replay


class GraphedContent:
    def __init__(self, sovits, code_widths: tuple[int, ...] = (16, 32, 64, 128, 256), phone_step: int = 16,
                 max_phones: int = 128, batch_buckets: tuple[int, ...] = BATCH_BUCKETS) -> None:
        self.sovits = sovits
        self.code_widths, self.phone_step, self.max_phones = code_widths, phone_step, max_phones
        self.batch_buckets = batch_buckets
        self.graphs = GraphSet(self._run, self._statics)

    def _run(self, codes, phones, code_lens, text_lens, ge, packed):
        hidden, mask = self.sovits.content(codes, phones, ge, code_lens, text_lens)
        m, logs, _ = self.sovits.prior(hidden, mask, 1.0)
        return torch.cat([m, logs], dim=1)

    def _statics(self, key: tuple[int, int, int]):
        """The integer inputs are views of one tensor (codes | phones | code length | text length per row),
        filled by one copy; ge comes in the model's device and dtype."""
        b, c, n = key
        p = next(self.sovits.parameters())
        packed = torch.zeros(b, c + n + 2, dtype=torch.long, device=p.device)
        packed[:, -2:] = 1
        ge = torch.zeros(b, self.sovits.dims.gin_channels, 1, dtype=p.dtype, device=p.device)
        return packed[:, None, :c], packed[:, c : c + n], packed[:, -2], packed[:, -1], ge, packed

    def prepare(self) -> None:
        """Capture every (batch, codes, phones) graph now (at model load)."""
        if not next(self.sovits.parameters()).is_cuda:
            return
        self.graphs.prepare([(b, c, n) for b in self.batch_buckets for c in self.code_widths
                             for n in range(self.phone_step, self.max_phones + 1, self.phone_step)])

    def __call__(self, codes, phones, ge: torch.Tensor, code_lens: list[int], text_lens: list[int]):
        """codes [B, 1, K], phones [B, N] (host arrays or CPU tensors, padded; real lengths `code_lens`,
        `text_lens`), ge [B, gin, 1] -> (m, logs) [B, C, 2 * max(code_lens)] at speed 1, or None when no graph
        fits (more codes or phones than the largest graph, capture failed): the caller runs eagerly. The
        inputs go up in one copy whatever the rows (every torch call hands the GIL over)."""
        codes, phones = np.asarray(codes), np.asarray(phones)
        k, n_max = max(code_lens), max(text_lens)
        c = next((c for c in self.code_widths if c >= k), None)
        if c is None or n_max > self.max_phones:
            return None
        top = self.batch_buckets[-1]
        if codes.shape[0] > top:
            parts = in_groups(codes.shape[0], top, lambda lo, hi: self(
                codes[lo:hi], phones[lo:hi], ge[lo:hi], code_lens[lo:hi], text_lens[lo:hi]))
            if parts is None:
                return None
            return torch.cat([m for m, _ in parts]), torch.cat([lg for _, lg in parts])
        rows = codes.shape[0]
        b = next(b for b in self.batch_buckets if b >= rows)
        n = -(-n_max // self.phone_step) * self.phone_step
        host = np.zeros((b, c + n + 2), np.int64)
        host[:, -2:] = 1
        host[:rows, :k] = codes[:, 0, :k]  # a group's inputs may be padded wider than it needs
        host[:rows, c : c + n_max] = phones[:, :n_max]
        host[:rows, -2], host[:rows, -1] = code_lens, text_lens

        def fill(*static):
            s_ge, s_packed = static[-2:]
            s_packed.copy_(torch.from_numpy(host), non_blocking=True)  # small: pageable memory is staged at once
            s_ge[:rows].copy_(ge)
            if rows < b:
                s_ge[rows:].zero_()

        got = self.graphs.run((b, c, n), ge.is_cuda, fill, lambda out: out[:rows, :, : 2 * k].clone())
        if got is None:
            return None
        half = got.shape[1] // 2
        return got[:, :half], got[:, half:]

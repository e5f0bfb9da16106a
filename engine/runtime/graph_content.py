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

import torch

from gsvd.engine.runtime.cuda_graphs import GraphSet, in_groups

BATCH_BUCKETS = (1, 2, 4, 8, 16)


class GraphedContent:
    def __init__(self, sovits, code_widths: tuple[int, ...] = (16, 32, 64, 128), phone_step: int = 16,
                 max_phones: int = 128, batch_buckets: tuple[int, ...] = BATCH_BUCKETS) -> None:
        self.sovits = sovits
        self.code_widths, self.phone_step, self.max_phones = code_widths, phone_step, max_phones
        self.batch_buckets = batch_buckets
        self.graphs = GraphSet(self._run, self._statics)

    def _run(self, codes, phones, ge, code_lens, text_lens):
        hidden, mask = self.sovits.content(codes, phones, ge, code_lens, text_lens)
        m, logs, _ = self.sovits.prior(hidden, mask, 1.0)
        return m, logs

    def _statics(self, key: tuple[int, int, int]):
        b, c, n = key
        p = next(self.sovits.parameters())  # ge comes in the model's device and dtype
        dev = p.device
        return (torch.zeros(b, 1, c, dtype=torch.long, device=dev), torch.zeros(b, n, dtype=torch.long, device=dev),
                torch.zeros(b, self.sovits.dims.gin_channels, 1, dtype=p.dtype, device=dev),
                torch.ones(b, dtype=torch.long, device=dev), torch.ones(b, dtype=torch.long, device=dev))

    def prepare(self) -> None:
        """Capture every (batch, codes, phones) graph now (at model load)."""
        if not next(self.sovits.parameters()).is_cuda:
            return
        self.graphs.prepare([(b, c, n) for b in self.batch_buckets for c in self.code_widths
                             for n in range(self.phone_step, self.max_phones + 1, self.phone_step)])

    def __call__(self, codes: torch.Tensor, phones: torch.Tensor, ge: torch.Tensor, code_lens: list[int],
                 text_lens: list[int]):
        """codes [B, 1, K], phones [B, N] (padded; real lengths `code_lens`, `text_lens`), ge [B, gin, 1] ->
        (m, logs) [B, C, 2 * max(code_lens)] at speed 1, or None when no graph fits (more codes or phones
        than the largest graph, capture failed): the caller runs eagerly."""
        k, n_max = max(code_lens), max(text_lens)
        c = next((c for c in self.code_widths if c >= k), None)
        if c is None or n_max > self.max_phones:
            return None
        top = self.batch_buckets[-1]
        if codes.shape[0] > top:
            parts = in_groups(codes.shape[0], top, lambda lo, hi: self(
                codes[lo:hi, :, :k], phones[lo:hi], ge[lo:hi], code_lens[lo:hi], text_lens[lo:hi]))
            if parts is None:
                return None
            return (torch.cat([m[..., : 2 * k] for m, _ in parts]), torch.cat([lg[..., : 2 * k] for _, lg in parts]))
        rows = codes.shape[0]
        key = (next(b for b in self.batch_buckets if b >= rows), c, -(-n_max // self.phone_step) * self.phone_step)

        def fill(s_codes, s_phones, s_ge, s_clen, s_tlen):
            s_codes.zero_()
            s_codes[:rows, :, :k].copy_(codes[..., :k])  # a group's inputs may be padded wider than it needs
            s_phones.zero_()
            s_phones[:rows, :n_max].copy_(phones[:, :n_max])
            s_ge.zero_()
            s_ge[:rows].copy_(ge)
            s_clen.fill_(1)
            s_clen[:rows].copy_(torch.tensor(code_lens), non_blocking=True)
            s_tlen.fill_(1)
            s_tlen[:rows].copy_(torch.tensor(text_lens), non_blocking=True)

        return self.graphs.run(key, ge.is_cuda, fill,
                               lambda out: (out[0][:rows, :, : 2 * k].clone(), out[1][:rows, :, : 2 * k].clone()))

"""Content encoder + prior of chunk decodes, replayed from CUDA graphs.

The content encoder (~12 relative-attention layers, hundreds of small launches) dominated a chunk
decode, and a stream's first chunk is what its listener waits for. Each graph covers one padded
shape: a batch bucket of rows, c semantic tokens (c in `code_widths`) and n target phones (n a
multiple of `phone_step`); each row's real lengths go in as `code_lens` / `text_lens`, so the
masks keep padding out (the masked path of a padded batch, equal to each row's unpadded pass up
to float rounding). Larger batches go through in groups of the largest bucket. Graphs share one
memory pool; a lock serializes replays and outputs are copied out before it is released. Off CUDA
the same padded pass runs eagerly.
"""

from __future__ import annotations

import threading

import torch

from gsvd.engine.runtime.cuda_graphs import capture

BATCH_BUCKETS = (1, 2, 4, 8, 16)


class GraphedContent:
    def __init__(self, sovits, code_widths: tuple[int, ...] = (16, 32, 64), phone_step: int = 16,
                 max_phones: int = 128, batch_buckets: tuple[int, ...] = BATCH_BUCKETS) -> None:
        self.sovits = sovits
        self.code_widths, self.phone_step, self.max_phones = code_widths, phone_step, max_phones
        self.batch_buckets = batch_buckets
        self.graphs: dict[tuple[int, int, int], tuple] = {}
        self.lock = threading.Lock()
        self.pool = None
        self.failed = False

    def _run(self, codes, phones, ge, code_lens, text_lens):
        hidden, mask = self.sovits.content(codes, phones, ge, code_lens, text_lens)
        m, logs, _ = self.sovits.prior(hidden, mask, 1.0)
        return m, logs

    def _statics(self, key: tuple[int, int, int], ge: torch.Tensor):
        b, c, n = key
        dev = ge.device
        return (torch.zeros(b, 1, c, dtype=torch.long, device=dev), torch.zeros(b, n, dtype=torch.long, device=dev),
                torch.zeros((b, *ge.shape[1:]), dtype=ge.dtype, device=dev),
                torch.ones(b, dtype=torch.long, device=dev), torch.ones(b, dtype=torch.long, device=dev))

    def prepare(self, ge: torch.Tensor) -> None:
        """Capture every (batch, codes, phones) graph now (at model load); ge [1, gin, 1] gives device
        and dtype."""
        if not ge.is_cuda:
            return
        with self.lock:
            for b in self.batch_buckets:
                for c in self.code_widths:
                    for n in range(self.phone_step, self.max_phones + 1, self.phone_step):
                        if (b, c, n) in self.graphs or self.failed:
                            continue
                        try:
                            if self.pool is None:
                                self.pool = torch.cuda.graph_pool_handle()
                            static = self._statics((b, c, n), ge)
                            self.graphs[(b, c, n)] = (*capture(self._run, static, self.pool), static)
                        except RuntimeError:  # something that cannot be captured here: stay eager
                            self.failed = True

    def __call__(self, codes: torch.Tensor, phones: torch.Tensor, ge: torch.Tensor, code_lens: list[int],
                 text_lens: list[int]):
        """codes [B, 1, K], phones [B, N] (padded; real lengths `code_lens`, `text_lens`), ge [B, gin, 1] ->
        (m, logs) [B, C, 2 * max(code_lens)] at speed 1, or None when no graph fits (more codes or phones
        than the largest graph, capture failed): the caller runs eagerly."""
        k = max(code_lens)
        c = next((c for c in self.code_widths if c >= k), None)
        if c is None or max(text_lens) > self.max_phones or self.failed:
            return None
        n = -(-max(text_lens) // self.phone_step) * self.phone_step
        top = self.batch_buckets[-1]
        if codes.shape[0] > top:  # in groups of the largest bucket
            parts = [self(codes[i : i + top], phones[i : i + top], ge[i : i + top], code_lens[i : i + top],
                          text_lens[i : i + top]) for i in range(0, codes.shape[0], top)]
            if any(p is None for p in parts):
                return None
            width = 2 * k
            return (torch.cat([p[0][..., :width] for p in parts]), torch.cat([p[1][..., :width] for p in parts]))
        rows = codes.shape[0]
        key = (next(b for b in self.batch_buckets if b >= rows), c, n)
        with self.lock:
            if ge.is_cuda and key not in self.graphs:
                return None  # not prepared: no capture on the hot path
            graph, out, static = self.graphs[key] if ge.is_cuda else (None, None, self._statics(key, ge))
            s_codes, s_phones, s_ge, s_clen, s_tlen = static
            s_codes.zero_()
            s_codes[:rows, :, :k].copy_(codes[..., :k])  # a group's inputs may be padded wider than it needs
            s_phones.zero_()
            s_phones[:rows, : max(text_lens)].copy_(phones[:, : max(text_lens)])
            s_ge.zero_()
            s_ge[:rows].copy_(ge)
            s_clen.fill_(1)
            s_clen[:rows].copy_(torch.tensor(code_lens), non_blocking=True)
            s_tlen.fill_(1)
            s_tlen[:rows].copy_(torch.tensor(text_lens), non_blocking=True)
            if graph is None:
                out = self._run(*static)
            else:
                graph.replay()
            return out[0][:rows, :, : 2 * k].clone(), out[1][:rows, :, : 2 * k].clone()

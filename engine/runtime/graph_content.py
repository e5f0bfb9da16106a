"""Content encoder + prior of one stream's early chunks, replayed from CUDA graphs.

A stream's first chunk is what its listener waits for, and on its own it is a batch of one: the
content encoder (~12 relative-attention layers, hundreds of small launches) dominated its decode.
Each graph covers one padded shape, [1, 1, c] semantic tokens for c in `code_widths` and [1, n]
target phones for n a multiple of `phone_step`; the real lengths go in as `code_lens` / `text_lens`, so the
masks keep padding out (the same masked path as a padded batch, equal to the unpadded pass up to
float rounding). Graphs share one memory pool; a lock serializes replays and outputs are copied
out before the lock is released. Off CUDA the same padded pass runs eagerly.
"""

from __future__ import annotations

import threading

import torch

from gsvd.engine.runtime.cuda_graphs import capture


class GraphedContent:
    def __init__(self, sovits, code_widths: tuple[int, ...] = (16, 32, 64), phone_step: int = 16,
                 max_phones: int = 128) -> None:
        self.sovits = sovits
        self.code_widths, self.phone_step, self.max_phones = code_widths, phone_step, max_phones
        self.graphs: dict[tuple[int, int], tuple] = {}
        self.lock = threading.Lock()
        self.pool = None
        self.failed = False

    def _run(self, codes, phones, ge, code_lens, text_lens):
        hidden, mask = self.sovits.content(codes, phones, ge, code_lens, text_lens)
        m, logs, _ = self.sovits.prior(hidden, mask, 1.0)
        return m, logs

    def _statics(self, key: tuple[int, int], ge: torch.Tensor):
        dev = ge.device
        return (torch.zeros(1, 1, key[0], dtype=torch.long, device=dev),
                torch.zeros(1, key[1], dtype=torch.long, device=dev), torch.zeros_like(ge),
                torch.ones(1, dtype=torch.long, device=dev), torch.ones(1, dtype=torch.long, device=dev))

    def _capture(self, key: tuple[int, int], ge: torch.Tensor):
        static = self._statics(key, ge)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph, out = capture(self._run, static, self.pool)
        return graph, static, out

    def prepare(self, ge: torch.Tensor) -> None:
        """Capture every (codes, phones) graph now (at model load); ge [1, gin, 1] gives device and dtype."""
        if not ge.is_cuda:
            return
        with self.lock:
            for c in self.code_widths:
                for n in range(self.phone_step, self.max_phones + 1, self.phone_step):
                    if (c, n) not in self.graphs and not self.failed:
                        try:
                            self.graphs[(c, n)] = self._capture((c, n), ge)
                        except RuntimeError:  # something that cannot be captured here: stay eager
                            self.failed = True

    def __call__(self, codes: torch.Tensor, phones: torch.Tensor, ge: torch.Tensor):
        """codes [1, 1, k], phones [1, n], ge [1, gin, 1] -> (m, logs) [1, C, 2k] at speed 1, or None when
        the shape has no graph (more codes or phones than the largest graph, capture failed): the caller
        runs eagerly."""
        k, n = codes.shape[-1], phones.shape[-1]
        c = next((c for c in self.code_widths if c >= k), None)
        if c is None or n > self.max_phones or self.failed or codes.shape[0] != 1:
            return None
        key = (c, -(-n // self.phone_step) * self.phone_step)
        with self.lock:
            if ge.is_cuda and key not in self.graphs:
                return None  # not prepared: no capture on the hot path
            graph, static, out = self.graphs[key] if ge.is_cuda else (None, self._statics(key, ge), None)
            s_codes, s_phones, s_ge, s_clen, s_tlen = static
            s_codes.zero_()
            s_codes[..., :k].copy_(codes)
            s_phones.zero_()
            s_phones[:, :n].copy_(phones)
            s_ge.copy_(ge)
            s_clen.fill_(k)
            s_tlen.fill_(n)
            if graph is None:
                out = self._run(*static)
            else:
                graph.replay()
            return out[0][..., : 2 * k].clone(), out[1][..., : 2 * k].clone()

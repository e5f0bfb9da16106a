"""BERT features for Mandarin from a local chinese-roberta-wwm-ext-large folder.

Upstream takes hidden_states[-3] of the masked-LM model, drops [CLS]/[SEP], and repeats each character's
vector by its phone count (word2ph) -> [1024, n_phones].

The features are on the critical path of a zh request's first audio (its prefill needs them), so the model
runs as `bert_encoder.BertEncoder`: only the 22 layers whose output is read, on the engine's device (fp16 on
CUDA, as upstream runs it on GPUs; fp32 on CPU). On CUDA each pass is one CUDA-graph replay on a stream of
its own, from graphs per (batch bucket, token-width bucket) captured when the model loads
(`cuda_graphs.GraphSet`): one launch instead of ~200 kernels launched from Python by the thread that
prepares requests, which shares the GIL with the scheduler. Off CUDA the same padded shapes run eagerly
when `buckets` is on (the tests), exact shapes otherwise.

One copy per (folder, device) in the process. Sentences of concurrent callers go through together: while
one padded batch runs, the callers that arrive queue up, and the next caller to find the model free takes
them all (at most `max_batch`), so a burst of requests costs a few passes instead of one each, and a lone
caller waits for nothing. A pass takes rows of similar length (sorted, each group padded to its own width
bucket); a sentence longer than the model's positions is read in windows of that many characters.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from gsvd.engine.errors import MissingModel
from gsvd.engine.runtime.cuda_graphs import CudaCapturer, GraphPool, GraphSet
from gsvd.engine.text.bert_encoder import BertEncoder

log = logging.getLogger(__name__)
_SHARED: dict[tuple[str, str], BertFeatures] = {}
_SHARED_LOCK = threading.Lock()
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)
WIDTH_BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)  # tokens, [CLS] and [SEP] included
GRAPH_TOKENS = 8192  # the largest graph's batch x width (16 x 512, 32 x 256): bounds the graphs' memory


class _Job:
    __slots__ = ("norm_text", "word2ph", "result", "error", "done")

    def __init__(self, norm_text: str, word2ph: list[int]) -> None:
        self.norm_text, self.word2ph = norm_text, word2ph
        self.result: torch.Tensor | None = None
        self.error: BaseException | None = None
        self.done = False


class BertFeatures:
    def __init__(self, folder: str | Path, device: str = "cpu", max_batch: int = 32, graphs: bool = True,
                 buckets: bool | None = None) -> None:
        """graphs: on CUDA, capture the passes' graphs now (off: every pass eager). buckets: pad each pass to
        a (batch, width) bucket; None: on CUDA only (where the graphs are; the CPU runs exact shapes)."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise MissingModel(
                f"chinese-roberta-wwm-ext-large not found in {folder}: run "
                "`gsvd models fetch chinese-roberta-wwm-ext-large`"
            )
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        t0 = time.perf_counter()
        self.device = torch.device(device)
        self._on_cuda = self.device.type == "cuda"
        dtype = torch.float16 if self._on_cuda else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self._char_ids: dict[str, int | None] = {}  # `_alone`
        self.encoder = BertEncoder.from_pretrained_model(AutoModelForMaskedLM.from_pretrained(str(folder)))
        self.encoder.requires_grad_(False).to(self.device, dtype)
        self.max_batch = max_batch
        self.max_chars = self.encoder.positions - 2  # a row holds [CLS] + this many characters + [SEP]
        self.buckets = self._on_cuda if buckets is None else buckets
        self.widths = tuple(w for w in WIDTH_BUCKETS if w < self.encoder.positions) + (self.encoder.positions,)
        self._stream = None
        if self._on_cuda:  # its own stream, favoured as the chunk decodes are (first audio waits on both)
            self._stream = torch.cuda.Stream(self.device, priority=-1)
            self._stream.wait_stream(torch.cuda.current_stream(self.device))  # the weights are there
        # graphs in a pool of their own, replayed on BERT's stream (off CUDA, or graphs off: the same padded pass eagerly)
        pool = GraphPool(CudaCapturer(), self._stream) if self._on_cuda and graphs else None
        self._graphs = GraphSet(self.encoder, self._static, pool=pool)
        self.capture_s = 0.0
        if self._on_cuda and graphs:
            t1 = time.perf_counter()
            with torch.cuda.device(self.device):
                self._graphs.prepare(self.graph_keys())
            self.capture_s = time.perf_counter() - t1
            if self._graphs.failed:
                log.warning("BERT graphs could not be captured: BERT runs eagerly")
            else:
                log.info("BERT: %d graphs captured in %.1f s", len(self._graphs.graphs), self.capture_s)
        self.load_s = time.perf_counter() - t0  # weights, tokenizer and graphs
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._running = False

    def info(self) -> dict:
        """Where and how the model runs, and what loading it took (for benchmarks and logs)."""
        return {"device": str(self.device), "dtype": str(next(self.encoder.parameters()).dtype),
                "layers_run": len(self.encoder.layers), "graphs": len(self._graphs.graphs),
                "graphs_failed": self._graphs.failed, "load_s": self.load_s, "capture_s": self.capture_s}

    @classmethod
    def shared(cls, folder: str | Path, device: str = "cpu") -> BertFeatures:
        """The process's one model of this folder on this device (loaded on first use)."""
        key = (str(Path(folder).resolve()), str(torch.device(device)))
        with _SHARED_LOCK:
            if key not in _SHARED:
                _SHARED[key] = cls(folder, device)
            return _SHARED[key]

    def __call__(self, norm_text: str, word2ph: list[int]) -> torch.Tensor:
        """One vector per character of norm_text, repeated by word2ph -> [1024, sum(word2ph)] float32 (CPU)."""
        job = _Job(norm_text, word2ph)
        with self._cond:
            self._queue.append(job)
        while True:
            with self._cond:
                while not job.done and self._running:
                    self._cond.wait()
                if job.done:
                    return self._result(job)
                # the model is free: run what has queued, oldest first (more than max_batch ahead: go round)
                self._running = True
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                outs = self.many([(j.norm_text, j.word2ph) for j in batch])
                for j, out in zip(batch, outs, strict=True):
                    j.result = out
            except Exception as exc:  # every caller of the batch gets the error
                for j in batch:
                    j.error = exc
            finally:
                with self._cond:
                    for j in batch:
                        if j.result is None and j.error is None:  # interrupted (not an Exception)
                            j.error = RuntimeError("BERT features were interrupted")
                        j.done = True
                    self._running = False
                    self._cond.notify_all()

    @staticmethod
    def _result(job: _Job) -> torch.Tensor:
        if job.error is not None:
            raise job.error
        return job.result

    # -- passes ---------------------------------------------------------------

    def graph_keys(self) -> list[tuple[int, int]]:
        """The (batch, width) buckets that get a graph: every pair within `GRAPH_TOKENS` and `max_batch`."""
        return [(b, w) for w in self.widths for b in BATCH_BUCKETS if b <= self.max_batch and b * w <= GRAPH_TOKENS]

    def many(self, items: list[tuple[str, list[int]]]) -> list[torch.Tensor]:
        """Several sentences in padded passes (right padding under the attention mask: each row equals its
        own pass up to float rounding) -> each one's [1024, sum(word2ph)] float32 on the CPU."""
        rows, owner = [], []  # token ids per row; the item each row belongs to
        for k, (text, w2p) in enumerate(items):
            for row in self._rows(text, len(w2p)):
                rows.append(row)
                owner.append(k)
        hidden = self._hidden(rows)
        parts: list[list[torch.Tensor]] = [[] for _ in items]
        for k, h in zip(owner, hidden, strict=True):
            parts[k].append(h[1:-1])  # [CLS] and [SEP] dropped
        return [torch.cat(p).float().repeat_interleave(torch.tensor(w2p, dtype=torch.long), dim=0).T.contiguous()
                for p, (_, w2p) in zip(parts, items, strict=True)]

    @torch.inference_mode()
    def _hidden(self, rows: list[list[int]]) -> list[torch.Tensor]:
        """Each row's hidden_states[-3] ([len(row), 1024], the encoder's dtype, CPU), rows of similar length
        padded together."""
        out: list[torch.Tensor | None] = [None] * len(rows)
        with torch.cuda.stream(self._stream) if self._stream is not None else nullcontext():
            for group in self._groups([len(r) for r in rows]):
                for r, h in zip(group, self._pass([rows[r] for r in group]), strict=True):
                    out[r] = h
        return out

    def _groups(self, lengths: list[int]) -> list[list[int]]:
        """Row indices in passes: longest first, each pass as many rows as its width's graphs hold."""
        order = sorted(range(len(lengths)), key=lambda r: -lengths[r])
        groups, lo = [], 0
        while lo < len(order):
            n = self._rows_per_pass(self._width(lengths[order[lo]]))
            groups.append(order[lo : lo + n])
            lo += n
        return groups

    def _rows_per_pass(self, width: int) -> int:
        if not self.buckets:
            return self.max_batch
        return max((b for b in BATCH_BUCKETS if b <= self.max_batch and b * width <= GRAPH_TOKENS), default=1)

    def _width(self, n: int) -> int:
        return next(w for w in self.widths if w >= n) if self.buckets else n

    def _pass(self, rows: list[list[int]]) -> list[torch.Tensor]:
        n, width = len(rows), max(len(r) for r in rows)
        key = (next(b for b in BATCH_BUCKETS if b >= n), self._width(width)) if self.buckets else (n, width)
        ids = torch.full(key, self.tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros(key, dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1

        def fill(static_ids: torch.Tensor, static_mask: torch.Tensor) -> None:
            static_ids.copy_(ids)
            static_mask.copy_(mask)

        def take(hidden: torch.Tensor) -> torch.Tensor:
            return hidden[:n, :width].cpu()  # on this stream: waits for the pass only

        got = self._graphs.run(key, fill, take)
        if got is None:  # no graph for this shape (or capture off or failed): the same pass, eagerly
            got = take(self.encoder(ids.to(self.device), mask.to(self.device)))
        return [got[r, : len(row)] for r, row in enumerate(rows)]

    def _static(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(key, dtype=torch.long, device=self.device),
                torch.ones(key, dtype=torch.long, device=self.device))

    def _rows(self, norm_text: str, n_chars: int) -> list[list[int]]:
        """The sentence's token rows: one, or windows of `max_chars` characters when it is longer."""
        ids = self._ids(norm_text, n_chars)
        cls, body, sep = ids[0], ids[1:-1], ids[-1]
        step = self.max_chars
        return [[cls, *body[lo : lo + step], sep] for lo in range(0, max(1, len(body)), step)]

    def _ids(self, norm_text: str, n_chars: int) -> list[int]:
        """[CLS] one token per character [SEP]; where the tokenizer merges or splits characters, each
        character's own token instead. A sentence of characters the tokenizer always reads as words of their
        own (Chinese characters, punctuation: what Mandarin text is) is looked up per character, from a table
        filled by the tokenizer itself: the same ids without a tokenizer call on the preparer's thread."""
        tok = self.tokenizer
        alone = [self._alone(c) for c in norm_text]
        if len(alone) == n_chars and None not in alone:
            return [tok.cls_token_id, *alone, tok.sep_token_id]
        ids = tok(norm_text)["input_ids"]
        if len(ids) != n_chars + 2:
            ids = [tok.cls_token_id, *(tok.convert_tokens_to_ids(c) for c in norm_text), tok.sep_token_id]
        return ids

    def _alone(self, char: str) -> int | None:
        """char's token id when the tokenizer reads char as a word of its own whatever its neighbours (one
        token alone, the same token twice when doubled), else None; remembered."""
        if char not in self._char_ids:
            one = self.tokenizer(char, add_special_tokens=False)["input_ids"]
            two = self.tokenizer(char + char, add_special_tokens=False)["input_ids"]
            self._char_ids[char] = one[0] if len(one) == 1 and two == one * 2 else None
        return self._char_ids[char]

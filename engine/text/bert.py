"""BERT features for Mandarin from a local chinese-roberta-wwm-ext-large folder.

Upstream takes hidden_states[-3] of the masked-LM model, drops [CLS]/[SEP], and
repeats each character's vector by its phone count (word2ph) -> [1024, n_phones].

The model runs on the engine's device (fp16 on CUDA, as upstream runs it on GPUs; fp32 on CPU), one
copy per (folder, device) in the process. Sentences of concurrent callers go through together: while
one padded batch runs, the callers that arrive queue up, and the next caller to find the model free
takes them all (at most `max_batch`), so a burst of requests costs a few forward passes instead of one
each, and a lone caller waits for nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from gsvd.engine.errors import MissingModel

_SHARED: dict[tuple[str, str], BertFeatures] = {}
_SHARED_LOCK = threading.Lock()


class _Job:
    __slots__ = ("norm_text", "word2ph", "result", "error", "done")

    def __init__(self, norm_text: str, word2ph: list[int]) -> None:
        self.norm_text, self.word2ph = norm_text, word2ph
        self.result: torch.Tensor | None = None
        self.error: BaseException | None = None
        self.done = False


class BertFeatures:
    def __init__(self, folder: str | Path, device: str = "cpu", max_batch: int = 32) -> None:
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise MissingModel(
                f"chinese-roberta-wwm-ext-large not found in {folder}: run "
                "`gsvd models fetch chinese-roberta-wwm-ext-large`"
            )
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        self.device = torch.device(device)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModelForMaskedLM.from_pretrained(str(folder)).to(self.device, dtype).eval()
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._running = False

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

    def many(self, items: list[tuple[str, list[int]]]) -> list[torch.Tensor]:
        """Several sentences in padded forward passes of at most `max_batch` (right padding under the
        attention mask: each row equals its own pass up to float rounding) -> each one's [1024, sum(word2ph)]."""
        return [out for lo in range(0, len(items), self.max_batch) for out in self._pass(items[lo : lo + self.max_batch])]

    @torch.inference_mode()
    def _pass(self, items: list[tuple[str, list[int]]]) -> list[torch.Tensor]:
        ids = [self._ids(text, len(w2p)) for text, w2p in items]
        width = max(len(r) for r in ids)
        input_ids = torch.full((len(ids), width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros(len(ids), width, dtype=torch.long)
        for r, row in enumerate(ids):
            input_ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                         output_hidden_states=True)
        hidden = out.hidden_states[-3].float().cpu()  # [B, width, 1024]
        return [hidden[r, 1 : len(row) - 1].repeat_interleave(torch.tensor(w2p), dim=0).T.contiguous()
                for r, (row, (_, w2p)) in enumerate(zip(ids, items))]

    def _ids(self, norm_text: str, n_chars: int) -> list[int]:
        """[CLS] one token per character [SEP]; where the tokenizer merges or splits characters, each
        character's own token instead."""
        ids = self.tokenizer(norm_text)["input_ids"]
        if len(ids) != n_chars + 2:
            tok = self.tokenizer
            ids = [tok.cls_token_id, *(tok.convert_tokens_to_ids(c) for c in norm_text), tok.sep_token_id]
        return ids

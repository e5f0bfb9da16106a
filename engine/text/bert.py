"""BERT features for Mandarin from a local chinese-roberta-wwm-ext-large folder.

Upstream takes hidden_states[-3] of the masked-LM model, drops [CLS]/[SEP], and
repeats each character's vector by its phone count (word2ph) -> [1024, n_phones].
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from gsvd.engine.errors import MissingModel


class BertFeatures:
    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise MissingModel(
                f"chinese-roberta-wwm-ext-large not found in {folder}: run "
                "`gsvd models fetch chinese-roberta-wwm-ext-large`"
            )
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModelForMaskedLM.from_pretrained(str(folder)).to(device).eval()
        self.device = device
        self._lock = threading.Lock()

    @torch.inference_mode()
    def __call__(self, norm_text: str, word2ph: list[int]) -> torch.Tensor:
        """One vector per character of norm_text, repeated by word2ph -> [1024, sum(word2ph)]."""
        with self._lock:
            inputs = self.tokenizer(norm_text, return_tensors="pt").to(self.device)
            out = self.model(**inputs, output_hidden_states=True)
        hidden = out.hidden_states[-3][0][1:-1].float().cpu()  # [chars, 1024]
        if hidden.shape[0] != len(word2ph):
            # tokenizer merged/split characters: fall back to per-character tokens
            ids = [self.tokenizer.convert_tokens_to_ids(c) for c in norm_text]
            ids = [self.tokenizer.cls_token_id, *ids, self.tokenizer.sep_token_id]
            with self._lock:
                out = self.model(input_ids=torch.tensor([ids], device=self.device), output_hidden_states=True)
            hidden = out.hidden_states[-3][0][1:-1].float().cpu()
        reps = torch.tensor(word2ph)
        return hidden.repeat_interleave(reps, dim=0).T.contiguous()

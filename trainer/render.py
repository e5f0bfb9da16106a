"""Test sentences rendered at each training save, so a regression can be heard and measured.

`SampleRenderer(...)(tag, gpt, sovits)` writes `<out>/<tag>/<n>.wav` and
`<out>/<tag>/metrics.json` with, per sentence: seconds of audio, semantic tokens,
whether the GPT stopped by itself (EOS) before the step limit, tokens per phone and
RMS level in dBFS. A regressing voice shows it there: runaway generation (no EOS),
silence, odd pacing. Decoding is seeded, so saves compare like for like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsvd.trainer.workspace import write_json

DEFAULT_SENTENCES = {
    "zh": ("今天天气很好，我们去公园散步吧。", "这是一个语音合成的测试句子。"),
    "en": ("The quick brown fox jumps over the lazy dog.", "This is a test of the new voice."),
    "ja": ("今日はいい天気ですね。", "これは新しい声のテストです。"),
}


def default_sentences(lang: str) -> list[tuple[str, str]]:
    return [(lang, s) for s in DEFAULT_SENTENCES.get(lang, DEFAULT_SENTENCES["en"])]


@dataclass
class SampleRenderer:
    reference: object  # gsvd.engine.bundle.ReferenceCache of the reference clip
    frontend: object  # gsvd.engine.text.TextFrontend
    sentences: list[tuple[str, str]]  # (language, text)
    out_dir: Path
    max_steps: int = 500
    seed: int = 1234

    def __call__(self, tag: str, gpt: torch.nn.Module, sovits: torch.nn.Module) -> dict:
        """Render every sentence with these modules (their train/eval mode is restored after)."""
        modes = (gpt.training, sovits.training)
        gpt.eval()
        sovits.eval()
        try:
            rows = [self._one(i, lang, text, gpt, sovits, tag) for i, (lang, text) in enumerate(self.sentences)]
        finally:
            gpt.train(modes[0])
            sovits.train(modes[1])
        summary = {"tag": tag, "sentences": rows}
        write_json(self.out_dir / tag / "metrics.json", summary)
        return summary

    def _one(self, i: int, lang: str, text: str, gpt, sovits, tag: str) -> dict:
        from gsvd.engine import lowlevel as ll
        from gsvd.wavio import write_wav

        ref = self.reference
        ids, bert, _ = self.frontend.features(text, lang)
        dev = next(gpt.parameters()).device
        all_ids = torch.cat([ref.phone_ids, ids]).to(dev)
        all_bert = torch.cat([ref.bert, bert], dim=1).to(dev, next(gpt.parameters()).dtype)
        with torch.inference_mode():
            tokens = ll.gpt_generate(gpt, all_ids, all_bert, ref.prompt_tokens.to(dev), seed=self.seed,
                                     max_steps=self.max_steps)
            wav = ll.sovits_decode(sovits, tokens, ids, ref.spec, noise_scale=0.5, seed=self.seed,
                                   sv_emb=ref.sv_emb)
        write_wav(self.out_dir / tag / f"{i}.wav", wav, 32000)
        rms = float(np.sqrt(np.mean(np.square(wav)))) if wav.size else 0.0
        return {
            "lang": lang,
            "text": text,
            "seconds": round(wav.size / 32000, 3),
            "tokens": int(tokens.numel()),
            "stopped": bool(tokens.numel() < self.max_steps),
            "tokens_per_phone": round(tokens.numel() / max(1, ids.numel()), 3),
            "rms_dbfs": round(20 * math.log10(max(rms, 1e-9)), 2),
        }

"""Tiny random GPT checkpoints in upstream format, built at run time for tests and the demo."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from gsvd.engine.checkpoints.gpt import save_gpt
from gsvd.engine.models.t2s import T2SDims, Text2SemanticDecoder

_BASE = {
    "train": {"seed": 1234, "epochs": 20, "batch_size": 8, "save_every_n_epoch": 1, "precision": "16-mixed"},
    "data": {"max_sec": 54, "pad_val": 1024},
    "model": {
        "vocab_size": 1025,
        "phoneme_vocab_size": 732,
        "embedding_dim": 512,
        "hidden_dim": 512,
        "head": 16,
        "linear_units": 2048,
        "n_layer": 24,
        "dropout": 0,
        "EOS": 1024,
        "random_bert": 0,
    },
    "inference": {"top_k": 15},
}


def real_v2_gpt_config() -> dict:
    """The upstream v2 config (24 layers x 512, 16 heads, 732 phonemes)."""
    return copy.deepcopy(_BASE)


def tiny_gpt_config(**overrides: int) -> dict:
    """Same structure, small dims (2 layers x 64, 4 heads) unless overridden."""
    cfg = real_v2_gpt_config()
    cfg["model"].update({"embedding_dim": 64, "hidden_dim": 64, "head": 4, "linear_units": 256, "n_layer": 2})
    cfg["model"].update(overrides)
    return cfg


def random_gpt_state(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = Text2SemanticDecoder(T2SDims.from_config(config))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alpha"):
                p.fill_(1.0 + 0.1 * torch.rand(()).item())
            elif p.ndim == 1:
                p.normal_(0.0, 0.02) if "norm" not in name else p.fill_(1.0)
    return model.state_dict()


def write_tiny_gpt(path: str | Path, seed: int = 0, config: dict | None = None, **overrides: int) -> Path:
    """Write a random-weight GPT checkpoint in upstream format (fp16 weights)."""
    cfg = config if config is not None else tiny_gpt_config(**overrides)
    return save_gpt(path, random_gpt_state(cfg, seed), cfg, info="GPT-e1")

"""HuBERT content features (chinese-hubert-base) through transformers, from a local folder.

Upstream feeds the raw 16 kHz waveform (no feature-extractor normalization) and uses
the last hidden state -> [1, 768, T50].
"""

from __future__ import annotations

from pathlib import Path

import torch

from gsvd.engine.errors import MissingModel


class HubertEncoder:
    def __init__(self, model: torch.nn.Module, device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.device = device

    @classmethod
    def from_folder(cls, folder: str | Path | None, device: str = "cpu") -> HubertEncoder:
        path = Path(folder) if folder else None
        if path is None or not (path / "config.json").is_file():
            raise MissingModel(
                f"chinese-hubert-base not found at {folder}: run `gsvd models fetch chinese-hubert-base` "
                "or pass --hubert PATH"
            )
        from transformers import HubertModel

        try:
            model = HubertModel.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise MissingModel(f"chinese-hubert-base at {path} is incomplete: {exc}") from None
        return cls(model, device)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, wav16k: torch.Tensor) -> torch.Tensor:
        """[N] float waveform at 16 kHz -> [1, hidden, T50]."""
        x = wav16k.reshape(1, -1).to(self.device, next(self.model.parameters()).dtype)
        return self.model(x).last_hidden_state.transpose(1, 2).float()

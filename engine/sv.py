"""Speaker embedding for v2Pro/v2ProPlus: Kaldi-compatible fbank + ERes2NetV2 (local weights).

The fbank follows Kaldi's defaults as upstream uses them: 16 kHz, 25 ms frames every
10 ms (snip edges), DC removal, pre-emphasis 0.97, Povey window, 512-point power
spectrum, 80 triangular mel bins from 20 Hz to Nyquist, log with a float epsilon
floor, dither 0, no mean normalization.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from gsvd.engine.errors import CheckpointError, MissingModel
from gsvd.engine.models.eres2net import ERes2NetV2

FRAME, SHIFT, NFFT, RATE = 400, 160, 512, 16000


def _mel(f: torch.Tensor | float) -> torch.Tensor:
    return 1127.0 * torch.log(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_banks(n_mels: int = 80, low: float = 20.0, high: float = RATE / 2) -> torch.Tensor:
    """[n_mels, NFFT//2 + 1] triangular filters on the mel scale (last column zero, as Kaldi)."""
    n_bins = NFFT // 2
    mel_low, mel_high = _mel(low), _mel(high)
    delta = (mel_high - mel_low) / (n_mels + 1)
    bins = _mel(torch.arange(n_bins, dtype=torch.float64) * (RATE / NFFT))[None]
    left = (mel_low + torch.arange(n_mels, dtype=torch.float64) * delta)[:, None]
    center, right = left + delta, left + 2 * delta
    up = (bins - left) / (center - left)
    down = (right - bins) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1)).float()


def fbank(wav: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """16 kHz waveform [N] in [-1, 1] -> log mel energies [frames, n_mels]."""
    wav = wav.float().reshape(-1)
    n_frames = 1 + (wav.numel() - FRAME) // SHIFT
    if n_frames < 1:
        raise ValueError("audio shorter than one 25 ms frame")
    frames = wav.as_strided((n_frames, FRAME), (SHIFT, 1))
    frames = frames - frames.mean(dim=1, keepdim=True)
    prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - 0.97 * prev
    n = torch.arange(FRAME, dtype=torch.float64)
    window = (0.5 - 0.5 * torch.cos(2 * math.pi * n / (FRAME - 1))).pow(0.85).float()
    frames = torch.nn.functional.pad(frames * window, (0, NFFT - FRAME))
    power = torch.fft.rfft(frames).abs().pow(2)
    energies = power @ mel_banks(n_mels).T
    return torch.clamp(energies, min=torch.finfo(torch.float32).eps).log()


class SpeakerEncoder:
    """ERes2NetV2 from a local checkpoint file -> 20480-d embeddings."""

    def __init__(self, model: ERes2NetV2, device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.device = device

    @classmethod
    def from_file(cls, path: str | Path | None, device: str = "cpu", **dims) -> SpeakerEncoder:
        if path is None or not Path(path).is_file():
            raise MissingModel(
                f"speaker model not found ({path}): run `gsvd models fetch sv` "
                "(pretrained_eres2netv2w24s4ep4.ckpt)"
            )
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{path} is not a readable speaker-model checkpoint ({exc})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} is not a speaker-model state dict")
        try:
            model = ERes2NetV2(**(dims or _dims_from_state(state)))
            model.load_state_dict(state, strict=True)
        except (RuntimeError, KeyError, ValueError, ZeroDivisionError) as exc:
            raise CheckpointError(f"{path} does not match ERes2NetV2: {str(exc)[:300]}") from None
        return cls(model, device)

    @torch.inference_mode()
    def embed(self, wav16k: torch.Tensor) -> torch.Tensor:
        """[N] or [1, N] at 16 kHz -> [1, D]."""
        feats = fbank(wav16k.reshape(-1))[None].to(self.device)
        return self.model.embed(feats).float().cpu()


def _dims_from_state(state: dict) -> dict:
    """Architecture of an ERes2NetV2 state dict (the released model: blocks 3,4,6,3, width 24, scale 4, x4)."""
    m = state["conv1.weight"].shape[0]
    blocks = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in range(1, 5))
    width = state["layer1.0.convs.0.weight"].shape[0]
    scale = len({k.split(".")[3] for k in state if k.startswith("layer1.0.convs.")})
    expansion = state["layer1.0.conv3.weight"].shape[0] // m
    return {"num_blocks": blocks, "m_channels": m, "base_width": width * 64 // m, "scale": scale, "expansion": expansion}

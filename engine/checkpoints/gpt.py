"""Upstream GPT (`.ckpt`) checkpoints: read, validate, build, write.

Layout (upstream s1_train): {"weight": {"model.<key>": fp16 tensor}, "config":
yaml dict, "info": "GPT-e<N>"}. Read with torch.load(weights_only=True) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gsvd.engine.checkpoints.io import (
    atomic_write_bytes,
    check_state_shapes,
    read_bytes,
    torch_load_bytes,
    torch_save_bytes,
)
from gsvd.engine.errors import CheckpointError
from gsvd.engine.models.t2s import T2SDims, Text2SemanticDecoder


@dataclass
class GptCheckpoint:
    dims: T2SDims
    state_dict: dict[str, torch.Tensor]  # keys without "model."
    config: dict
    info: str = ""


def load_gpt(path: str | Path) -> GptCheckpoint:
    """Read an upstream GPT checkpoint; CheckpointError with a reason for anything else."""
    data = read_bytes(path, "GPT")
    obj = torch_load_bytes(data, path, "GPT")
    return gpt_from_dict(obj, path)


def gpt_from_dict(obj: dict, path: str | Path = "<memory>") -> GptCheckpoint:
    weight = obj.get("weight")
    config = obj.get("config")
    if not isinstance(weight, dict) or not isinstance(config, dict):
        raise CheckpointError(f"{path} is not a GPT checkpoint: it lacks the 'weight' and 'config' entries")
    if any(k.startswith(("enc_p.", "dec.", "flow.")) for k in weight):
        raise CheckpointError(f"{path} is a SoVITS (.pth) checkpoint, not a GPT (.ckpt) one")
    if "model" not in config:
        raise CheckpointError(f"{path} is not a GPT checkpoint: its config has no 'model' section")
    try:
        dims = T2SDims.from_config(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: GPT config is incomplete ({exc})") from None
    state = {k.removeprefix("model."): v for k, v in weight.items() if k.startswith("model.")}
    _check_state(state, dims, path)
    return GptCheckpoint(dims=dims, state_dict=state, config=config, info=str(obj.get("info", "")))


def _check_state(state: dict[str, torch.Tensor], dims: T2SDims, path: str | Path) -> None:
    with torch.device("meta"):
        reference = Text2SemanticDecoder(dims)
    check_state_shapes(state, reference, path, "GPT")


def build_gpt(
    ckpt: GptCheckpoint, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Text2SemanticDecoder:
    """A module in eval mode with the checkpoint's weights (strict)."""
    model = Text2SemanticDecoder(ckpt.dims)
    state = {k: v.to(dtype) for k, v in ckpt.state_dict.items()}
    model.load_state_dict(state, strict=True)
    return model.to(device=device, dtype=dtype).eval()


def save_gpt(
    path: str | Path, state_dict: dict[str, torch.Tensor], config: dict, info: str = "GPT-e1", half: bool = True
) -> Path:
    """Write upstream's layout atomically (fp16 weights by default, keys prefixed "model.")."""
    weight = {f"model.{k}": (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in state_dict.items()}
    return atomic_write_bytes(path, torch_save_bytes({"weight": weight, "config": config, "info": info}))

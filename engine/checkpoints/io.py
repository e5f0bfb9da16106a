"""Shared checkpoint I/O: safe unpickling and atomic writes."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from gsvd.atomic import atomic_write_bytes
from gsvd.engine.errors import CheckpointError

__all__ = ["atomic_write_bytes", "check_state_shapes", "read_bytes", "torch_load_bytes", "torch_save_bytes"]


def read_bytes(path: str | Path, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{what} checkpoint not found: {p}")
    data = p.read_bytes()
    if len(data) < 4:
        raise CheckpointError(f"{p} is not a {what} checkpoint: the file is empty or truncated")
    return data


def torch_load_bytes(data: bytes, path: str | Path, what: str) -> dict:
    """torch.load(weights_only=True) of an in-memory file; any failure -> CheckpointError."""
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, pickle with disallowed globals, ...
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a {what} checkpoint: top level is {type(obj).__name__}, not a dict")
    return obj


def torch_save_bytes(obj: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def check_state_shapes(state: dict, reference: torch.nn.Module, path: str | Path, what: str) -> None:
    """Every weight of `reference` must be in `state` with the same shape (CheckpointError otherwise)."""
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    if missing:
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        raise CheckpointError(f"{path}: {what} checkpoint is missing {len(missing)} weight(s): {shown}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise CheckpointError(f"{path}: weight {key} has shape {tuple(state[key].shape)}, expected {shape}")

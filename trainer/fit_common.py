"""What both fine-tuning loops share: length-bucketed batches in a per-epoch order derived from
(seed, epoch), and `last.pt` checkpoints holding every state needed to continue exactly where a
run stopped (modules, optimizers, schedulers, scaler, epoch, step, RNG states, loss history),
written atomically."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from gsvd.trainer.records import TrainError

LAST = "last.pt"


def batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices grouped by similar length (less padding), batches shuffled per epoch reproducibly."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    g = torch.Generator().manual_seed(seed * 1000003 + epoch)
    return [groups[i] for i in torch.randperm(len(groups), generator=g).tolist()]


def pad_stack(tensors: list[torch.Tensor], dim: int = -1, value: float = 0) -> torch.Tensor:
    """Right-pad along `dim` to the longest and stack -> [B, ...]."""
    n = max(t.shape[dim] for t in tensors)
    out = []
    for t in tensors:
        pad = [0, 0] * (t.dim() - 1 - (dim % t.dim())) + [0, n - t.shape[dim]]
        out.append(torch.nn.functional.pad(t, pad, value=value))
    return torch.stack(out)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_last(out_dir: Path, payload: dict) -> Path:
    from gsvd.engine.checkpoints.io import atomic_write_bytes, torch_save_bytes

    return atomic_write_bytes(Path(out_dir) / LAST, torch_save_bytes({**payload, "rng": rng_state()}))


def load_last(out_dir: Path) -> dict | None:
    path = Path(out_dir) / LAST
    if not path.is_file():
        return None
    try:  # our own file (RNG states are not plain tensors), written atomically by save_last
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise TrainError(f"{path}: cannot resume from this save ({exc}); delete it to start over") from None


def append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def rewrite_jsonl(path: Path, rows: list[dict]) -> None:
    from gsvd.trainer.workspace import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def check_finite(value: float, what: str, epoch: int, step: int) -> None:
    if not np.isfinite(value):
        raise TrainError(f"{what} became {value} at epoch {epoch}, step {step}: lower the learning rate or "
                         "check the data (resume continues from the last good save)")

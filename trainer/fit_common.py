"""What both fine-tuning loops share: length-bucketed batches in a per-epoch order derived from
(seed, epoch), and `last.pt` checkpoints holding every state needed to continue exactly where a
run stopped (modules, optimizers, schedulers, scaler, epoch, step, RNG states, loss history),
written atomically."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gsvd.trainer.records import TrainError

LAST = "last.pt"


@dataclass
class FitConfig:
    """What both loops take; each adds its own optimizer settings."""

    epochs: int = 50
    batch_size: int = 4
    save_every: int = 10  # epochs between saves (and test-sentence renders); the last epoch always saves
    lr: float = 1e-4
    fp16: bool = False  # autocast + GradScaler on CUDA only
    seed: int = 0


@dataclass
class FitResult:
    epoch_losses: list[dict] = field(default_factory=list)  # one summary per finished epoch, resumed ones too
    checkpoint: Path | None = None  # last.pt written by this call
    steps: int = 0
    resumed_from: int = 0  # epoch of the save this call continued from (0: fresh)


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


def _state_of(obj):
    return [o.state_dict() for o in obj] if isinstance(obj, list) else obj.state_dict()


def restore(out_dir: Path, parts: dict, result, log) -> None:
    """Continue from `out_dir/last.pt` if it exists: every part (module, optimizer, scheduler, scaler,
    or a list of them) gets its state, `result` its history/step/epoch, the RNGs their states, and
    losses.jsonl is cut back to the saved epochs. Temp files of a save cut off by a kill (never renamed into
    place) are removed first; one fit runs in a workdir at a time."""
    for stale in Path(out_dir).glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    state = load_last(out_dir)
    if state is None:
        return
    for key, obj in parts.items():
        for o, st in zip(obj if isinstance(obj, list) else [obj], state[key] if isinstance(obj, list) else [state[key]],
                         strict=True):
            o.load_state_dict(st)
    result.epoch_losses, result.steps, result.resumed_from = state["epoch_losses"], state["step"], state["epoch"]
    set_rng_state(state["rng"])
    rewrite_jsonl(Path(out_dir) / "losses.jsonl", result.epoch_losses)
    log({"kind": "resume", "epoch": state["epoch"], "step": state["step"]})


def end_epoch(out_dir: Path, cfg, epoch: int, summary: dict, result, parts: dict, model, on_save, log) -> None:
    """Record the epoch; every `cfg.save_every` epochs and at the last one save everything, then on_save."""
    result.epoch_losses.append(summary)
    append_jsonl(Path(out_dir) / "losses.jsonl", summary)
    log(summary)
    if epoch % cfg.save_every == 0 or epoch == cfg.epochs:
        payload = {k: _state_of(v) for k, v in parts.items()}
        result.checkpoint = save_last(out_dir, {**payload, "epoch": epoch, "step": result.steps,
                                                "epoch_losses": result.epoch_losses})
        if on_save is not None:
            on_save(epoch, model)

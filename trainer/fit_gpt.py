"""GPT (text-to-semantic) fine-tuning: teacher-forced cross-entropy on each clip's semantic tokens
with EOS appended, padding masked out of both attention and loss; top-3 accuracy reported.

Choice (upstream uses ScaledAdam with a 2000-step warmup towards lr 0.01): AdamW, lr 1e-4 after a
linear warmup of 50 steps, then constant, weight decay 0.01, gradient norm clipped at 1.0 -- stable
for the few hundred steps a one-minute voice gets. Resumes from `out_dir/last.pt` exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from gsvd.trainer.fit_common import FitConfig, FitResult, batches, check_finite, end_epoch, pad_stack, restore
from gsvd.trainer.records import TrainError

IGNORE = -100


@dataclass
class GptFitConfig(FitConfig):
    batch_size: int = 8
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0


GptFitResult = FitResult


def collate(items: list[dict], idx: list[int], eos: int, device: str) -> dict:
    """Padded phones/bert/codes plus targets (next code, EOS after the last, IGNORE on padding)."""
    sel = [items[i] for i in idx]
    targets = [torch.cat([it["codes"][1:], torch.tensor([eos])]) for it in sel]
    batch = {
        "phones": pad_stack([it["phones"] for it in sel]),
        "phone_lens": torch.tensor([it["phones"].numel() for it in sel]),
        "bert": pad_stack([it["bert"] for it in sel]),
        "codes": pad_stack([it["codes"] for it in sel]),
        "code_lens": torch.tensor([it["codes"].numel() for it in sel]),
        "targets": pad_stack(targets, value=IGNORE),
    }
    return {k: v.to(device) for k, v in batch.items()}


def _check_items(items: list[dict], vocab: int, eos: int) -> list[dict]:
    if not items:
        raise TrainError("no training items for the GPT")
    for n, it in enumerate(items):
        codes = it["codes"]
        if codes.numel() < 2 or it["phones"].numel() == 0:
            raise TrainError(f"item {n}: needs at least 2 semantic tokens and 1 phone")
        if int(codes.max()) >= eos or int(codes.min()) < 0:
            raise TrainError(f"item {n}: semantic token ids must be in 0..{eos - 1} (found {int(codes.max())})")
    return items


def fit_gpt(model, items: list[dict], out_dir: Path, cfg: GptFitConfig, *, device: str = "cpu",
            on_save: Callable | None = None, log: Callable | None = None,
            stop_after_steps: int | None = None) -> GptFitResult:
    eos, vocab = model.dims.eos, model.dims.vocab_size
    items = _check_items(items, vocab, eos)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = log or (lambda row: None)
    fp16 = bool(cfg.fp16 and str(device).startswith("cuda"))
    torch.manual_seed(cfg.seed)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / max(1, cfg.warmup_steps)))
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    result = GptFitResult()
    parts = {"model": model, "opt": opt, "sched": sched, "scaler": scaler}
    restore(out_dir, parts, result, log)
    lengths = [it["phones"].numel() + it["codes"].numel() for it in items]
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if fp16 else nullcontext
    for epoch in range(result.resumed_from + 1, cfg.epochs + 1):
        loss_sum, tokens, correct, t0 = 0.0, 0, 0, time.perf_counter()
        for idx in batches(lengths, cfg.batch_size, cfg.seed, epoch):
            b = collate(items, idx, eos, device)
            with autocast():
                logits = model.forward_train(b["phones"], b["phone_lens"], b["bert"], b["codes"], b["code_lens"])
            valid = b["targets"] != IGNORE
            loss = F.cross_entropy(logits.float().reshape(-1, vocab), b["targets"].reshape(-1), ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            result.steps += 1
            check_finite(loss.item(), "GPT loss", epoch, result.steps)
            n = int(valid.sum())
            top3 = logits.detach().topk(3, dim=-1).indices
            correct += int(((top3 == b["targets"][..., None]).any(-1) & valid).sum())
            loss_sum, tokens = loss_sum + loss.item() * n, tokens + n
            if stop_after_steps is not None and result.steps >= stop_after_steps:
                return result
        summary = {"kind": "epoch", "epoch": epoch, "loss": loss_sum / tokens, "top3_acc": correct / tokens,
                   "lr": sched.get_last_lr()[0], "seconds": round(time.perf_counter() - t0, 3), "steps": result.steps}
        end_epoch(out_dir, cfg, epoch, summary, result, parts, model, on_save, log)
    return result

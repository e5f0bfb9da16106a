"""SoVITS fine-tuning: VITS losses (mel L1, KL, LSGAN adversarial, feature matching) against a
scale + period discriminator, the quantizer and ssl projection frozen (upstream v2 does the same).

Defaults follow upstream's s2 config: AdamW lr 1e-4, betas (0.8, 0.99), eps 1e-9, lr decay
0.999875 per epoch, segment 20480 samples (32 frames), c_mel 45, c_kl 1, the text side of the
content encoder at 0.4x lr. Resumes from `out_dir/last.pt` exactly (see fit_common).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from gsvd.trainer.fit_common import FitConfig, FitResult, batches, check_finite, end_epoch, pad_stack, restore
from gsvd.trainer.losses import discriminator_loss, feature_loss, generator_loss, kl_loss
from gsvd.trainer.records import TrainError

HOP = 640


@dataclass
class SovitsFitConfig(FitConfig):
    epochs: int = 80
    betas: tuple[float, float] = (0.8, 0.99)
    eps: float = 1e-9
    lr_decay: float = 0.999875
    segment_frames: int = 32  # 20480 samples
    c_mel: float = 45.0
    c_kl: float = 1.0
    text_low_lr_rate: float = 0.4
    grad_clip: float | None = None  # upstream clips nothing (clip_grad_value_ with None)
    disc_width: float = 1.0  # discriminator channels relative to upstream (tiny models use less)


SovitsFitResult = FitResult


def _text_params(model) -> set[int]:
    enc = model.enc_p
    return {id(p) for m in (enc.text_embedding, enc.encoder_text, enc.mrte) for p in m.parameters()}


def _optimizers(model, disc, cfg: SovitsFitConfig):
    text = _text_params(model)
    frozen = {id(p) for m in (model.ssl_proj, model.quantizer) for p in m.parameters()}
    free = [p for p in model.parameters() if id(p) not in frozen]
    groups = [{"params": [p for p in free if id(p) not in text], "lr": cfg.lr},
              {"params": [p for p in free if id(p) in text], "lr": cfg.lr * cfg.text_low_lr_rate}]
    opt_g = torch.optim.AdamW(groups, betas=cfg.betas, eps=cfg.eps)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    return opt_g, opt_d, [torch.optim.lr_scheduler.ExponentialLR(o, cfg.lr_decay) for o in (opt_g, opt_d)]


def _collate(items: list[dict], idx: list[int], device: str) -> dict:
    sel = [items[i] for i in idx]
    frames = [min(it["spec"].shape[-1], it["ssl"].shape[-1]) for it in sel]
    batch = {
        "ssl": pad_stack([it["ssl"][:, :n] for it, n in zip(sel, frames, strict=True)]),
        "spec": pad_stack([it["spec"][:, :n] for it, n in zip(sel, frames, strict=True)]),
        "spec_lens": torch.tensor(frames),
        "text": pad_stack([it["phones"] for it in sel]),
        "text_lens": torch.tensor([it["phones"].numel() for it in sel]),
        "wav": [it["wav"] for it in sel],
    }
    if "sv" in sel[0]:
        batch["sv"] = torch.stack([it["sv"] for it in sel])
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _real_slices(wavs: list[torch.Tensor], starts: torch.Tensor, frames: int, device: str) -> torch.Tensor:
    n = frames * HOP
    out = []
    for w, s in zip(wavs, starts.tolist(), strict=True):
        piece = w[s * HOP : s * HOP + n]
        out.append(torch.nn.functional.pad(piece, (0, n - piece.numel())))
    return torch.stack(out).unsqueeze(1).to(device)


def fit_sovits(model, items: list[dict], out_dir: Path, cfg: SovitsFitConfig, *, device: str = "cpu",
               disc_state: dict | None = None, on_save: Callable | None = None, log: Callable | None = None,
               stop_after_steps: int | None = None) -> SovitsFitResult:
    from gsvd.trainer.mel import log_mel
    from gsvd.trainer.models.discriminators import MultiPeriodDiscriminator

    if not hasattr(model, "enc_q"):
        raise TrainError("SoVITS training needs the posterior encoder (build the model with with_posterior=True)")
    usable = [it for it in items if min(it["spec"].shape[-1], it["ssl"].shape[-1]) >= cfg.segment_frames]
    if not usable:
        raise TrainError(f"no clip is longer than one training segment ({cfg.segment_frames * HOP / 32000:.2f} s)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = log or (lambda row: None)
    fp16 = bool(cfg.fp16 and str(device).startswith("cuda"))
    torch.manual_seed(cfg.seed)
    disc = MultiPeriodDiscriminator(width=cfg.disc_width).to(device)
    if disc_state:
        disc.load_state_dict(disc_state)
    model.to(device).train()
    opt_g, opt_d, scheds = _optimizers(model, disc, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    result = SovitsFitResult()
    parts = {"model": model, "disc": disc, "opt_g": opt_g, "opt_d": opt_d, "scheds": scheds, "scaler": scaler}
    restore(out_dir, parts, result, log)
    lengths = [it["spec"].shape[-1] for it in usable]
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if fp16 else nullcontext
    for epoch in range(result.resumed_from + 1, cfg.epochs + 1):
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        for idx in batches(lengths, cfg.batch_size, cfg.seed, epoch):
            b = _collate(usable, idx, device)
            with autocast():
                wav_hat, starts, kl_terms = model.forward_train(b["ssl"], b["spec"], b["spec_lens"], b["text"],
                                                                b["text_lens"], b.get("sv"), cfg.segment_frames)
            real = _real_slices(b["wav"], starts, cfg.segment_frames, device)
            # discriminator
            with autocast():
                r, g, _, _ = disc(real, wav_hat.detach())
                loss_d = discriminator_loss(r, g)
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(loss_d).backward()
            scaler.step(opt_d)
            # generator
            with autocast():
                r, g, fr, fg = disc(real, wav_hat)
                loss_gen, loss_fm = generator_loss(g), feature_loss(fr, fg)
            loss_mel = torch.nn.functional.l1_loss(log_mel(wav_hat.float()), log_mel(real.float())) * cfg.c_mel
            loss_kl = kl_loss(*kl_terms) * cfg.c_kl
            loss_g = loss_gen + loss_fm + loss_mel + loss_kl
            opt_g.zero_grad(set_to_none=True)
            scaler.scale(loss_g).backward()
            if cfg.grad_clip:
                scaler.unscale_(opt_g)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt_g)
            scaler.update()
            result.steps += 1
            row = {"loss_mel": loss_mel.item(), "loss_kl": loss_kl.item(), "loss_gen": loss_gen.item(),
                   "loss_fm": loss_fm.item(), "loss_disc": loss_d.item()}
            check_finite(loss_g.item(), "SoVITS generator loss", epoch, result.steps)
            for k, v in row.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            if stop_after_steps is not None and result.steps >= stop_after_steps:
                return result  # simulated kill: nothing saved for this epoch
        for s in scheds:
            s.step()
        n = len(usable)
        summary = {"kind": "epoch", "epoch": epoch, **{k: v / n for k, v in sums.items()},
                   "seconds": round(time.perf_counter() - t0, 3), "steps": result.steps}
        end_epoch(out_dir, cfg, epoch, summary, result, parts, model, on_save, log)
    return result

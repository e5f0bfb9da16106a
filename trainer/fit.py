"""Stage 6, fit: SoVITS fine-tune, then GPT fine-tune, then upstream-format checkpoints.

Both loops resume from their own last save (`fit/sovits/last.pt`, `fit/gpt/last.pt`),
so killing a run and starting it again continues where it stopped. At each save the saved
model's weights are kept as `fit/epochs/<model>-e<epoch>.pth|.ckpt` (upstream format; the package
stage can take any of them) and the test sentences are rendered into `fit/samples/<model>-e<epoch>/`
with metrics, so a saved epoch can be heard before it is chosen.
"""

from __future__ import annotations

from pathlib import Path

from gsvd.trainer.records import TrainError, Utterance
from gsvd.trainer.workspace import Workspace


def fit_both(ws: Workspace, s, log) -> tuple[list[str], dict]:
    import torch

    from gsvd.trainer.features import load_items
    from gsvd.trainer.fit_gpt import GptFitConfig, fit_gpt
    from gsvd.trainer.fit_sovits import SovitsFitConfig, fit_sovits
    from gsvd.trainer.models_setup import load_gpt_for_training, load_sovits_for_training, resolve_base
    from gsvd.trainer.package import epoch_weights, gpt_checkpoint, sovits_checkpoint, write_checkpoints

    device = s.resolved_device()
    fp16 = bool(s.fp16 and device.startswith("cuda"))
    base = resolve_base(ws, s, log)
    items = load_items(ws)
    if not items:
        raise TrainError("no training items: run `gsvd train features` first")
    out = ws.stage_dir("fit")
    sovits, sovits_cfg, version = load_sovits_for_training(base.sovits_ckpt, device)
    gpt, gpt_cfg = load_gpt_for_training(base.gpt_ckpt, device)
    render = _renderer(ws, s, base, sovits, device, log)

    log(f"[fit] SoVITS {version}: {len(items)} clips, {s.epochs} epochs, batch {s.batch_size}, {device}"
        f"{' fp16' if fp16 else ''}")
    tiny = s.from_scratch is not None  # small random models: faster learning rate, narrow discriminator
    scfg = SovitsFitConfig(epochs=s.epochs, batch_size=s.batch_size, save_every=s.save_every, fp16=fp16, seed=s.seed,
                           **({"lr": 1e-3, "disc_width": 1 / 16} if tiny else {}))

    def sovits_saved(epoch: int, model) -> None:  # keep this save's weights, then render the test sentences
        sovits_checkpoint(epoch_weights(ws, "sovits", epoch), model, sovits_cfg, version, epoch)
        render(f"sovits-e{epoch}", gpt, model)

    def gpt_saved(epoch: int, model) -> None:
        gpt_checkpoint(epoch_weights(ws, "gpt", epoch), model, gpt_cfg, epoch)
        render(f"gpt-e{epoch}", model, sovits)

    sres = fit_sovits(sovits, items, out / "sovits", scfg, device=device, on_save=sovits_saved,
                      log=_epoch_logger(log, "sovits"))
    log(f"[fit] GPT: {s.gpt_epochs} epochs")
    gcfg = GptFitConfig(epochs=s.gpt_epochs, batch_size=max(1, s.batch_size), save_every=s.save_every, fp16=fp16,
                        seed=s.seed, **({"lr": 1e-3, "warmup_steps": 2} if tiny else {}))
    gres = fit_gpt(gpt, items, out / "gpt", gcfg, device=device, on_save=gpt_saved, log=_epoch_logger(log, "gpt"))
    with torch.no_grad():
        g_ckpt, s_ckpt = write_checkpoints(out / "final", s.name, gpt, gpt_cfg, sovits, sovits_cfg, version,
                                           (s.epochs, s.gpt_epochs), int(sres.steps))
    final = {"sovits": _last(sres.epoch_losses), "gpt": _last(gres.epoch_losses)}
    info = {"gpt_ckpt": str(g_ckpt), "sovits_ckpt": str(s_ckpt), "version": version, "final_losses": final,
            "sovits_epoch_losses": sres.epoch_losses, "gpt_epoch_losses": gres.epoch_losses,
            "samples": str(out / "samples")}
    log(f"[fit] wrote {g_ckpt.name} and {s_ckpt.name}")
    return [ws.rel(g_ckpt), ws.rel(s_ckpt)], info


def _last(rows: list) -> dict:
    return dict(rows[-1]) if rows else {}


def _epoch_logger(log, model: str):
    def emit(row: dict) -> None:
        if hasattr(log, "progress") and "epoch" in row:
            log.progress(f"fit {model}: epoch {row['epoch']} done")
        if row.get("kind") == "resume":
            log(f"[fit] {model}: resuming after epoch {row['epoch']} (step {row['step']}) from the last save")
        elif row.get("kind") == "epoch":
            parts = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float) and k != "seconds")
            log(f"[fit] {model} epoch {row['epoch']}: {parts} ({row['seconds']:.1f} s)")

    return emit


def _renderer(ws: Workspace, s, base, sovits, device: str, log):
    """Test-sentence renderer on the reference clip (computed once with the base quantizer)."""
    if s.samples <= 0:
        return lambda tag, gpt, model: None
    from gsvd.engine.text import TextFrontend
    from gsvd.engine.voice_import import compute_reference
    from gsvd.trainer.pipeline import reference_utterance
    from gsvd.trainer.render import SampleRenderer, default_sentences

    ref_utt: Utterance = reference_utterance(ws)
    was = sovits.training
    sovits.eval()
    reference = compute_reference(sovits, base.version, ws.path(ref_utt.wav32), ref_utt.text, ref_utt.lang,
                                  base.paths, device)
    sovits.train(was)
    frontend = TextFrontend(version="v2", bert_folder=base.paths.bert_folder, device=device)
    sentences = ([tuple(x) for x in s.sample_sentences] or default_sentences(ref_utt.lang))[: s.samples]
    renderer = SampleRenderer(reference, frontend, sentences, ws.root / "fit" / "samples", seed=s.seed + 1234)

    def render(tag: str, gpt, model) -> None:
        summary = renderer(tag, gpt, model)
        spoken = ", ".join(f"{r['seconds']:.1f}s{'' if r['stopped'] else ' (no EOS)'}" for r in summary["sentences"])
        log(f"[fit] samples {tag}: {spoken} -> {Path(renderer.out_dir) / tag}")

    return render

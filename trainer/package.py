"""Stage 7, package: fine-tuned weights -> upstream checkpoints -> a voice bundle.

`write_checkpoints` (called by the fit stage) writes `<name>-e<E>.ckpt` (GPT) and
`<name>_e<E>_s<S>.pth` (SoVITS) in upstream GPT-SoVITS formats (so the voice also works
there); at each save the fit stage also keeps the saved model's weights as
`fit/epochs/<model>-e<N>.ckpt|.pth` (`epoch_weights`), as upstream keeps every saved epoch,
so any saved epoch can be packaged instead of the last one; `package_voice` turns them into a voice bundle with
the best clip as reference, the consent record and provenance (source files and their
hashes, the clip list with times and transcripts, base models, training settings).
The bundle is written atomically by the engine: on any error (disk full included) no
half bundle appears. Optionally exports ONNX / builds engines and registers the voice
with a running daemon.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gsvd.trainer.records import TrainError
from gsvd.trainer.workspace import Workspace, write_json


@dataclass
class PackageResult:
    bundle: Path
    gpt_ckpt: Path
    sovits_ckpt: Path
    build: list[str] = field(default_factory=list)  # what `--build` did and skipped
    registered: str | None = None  # the daemon's answer to --register


def write_checkpoints(out: Path, name: str, gpt: torch.nn.Module, gpt_config: dict, sovits: torch.nn.Module,
                      sovits_config: dict, version: str, epochs: tuple[int, int], steps: int) -> tuple[Path, Path]:
    """Upstream-format .ckpt / .pth of the fine-tuned modules (fp16 weights, enc_q dropped), atomically."""
    g = gpt_checkpoint(out / f"{name}-e{epochs[1]}.ckpt", gpt, gpt_config, epochs[1])
    s = sovits_checkpoint(out / f"{name}_e{epochs[0]}_s{steps}.pth", sovits, sovits_config, version, epochs[0], steps)
    return g, s


def gpt_checkpoint(path: Path, gpt: torch.nn.Module, gpt_config: dict, epoch: int) -> Path:
    """One upstream-format GPT .ckpt of `gpt` as it is now (atomic)."""
    from gsvd.engine.checkpoints.gpt import save_gpt

    state = {k: v.detach().cpu() for k, v in gpt.state_dict().items()}
    return save_gpt(path, state, gpt_config, info=f"GPT-e{epoch}")


def sovits_checkpoint(path: Path, sovits: torch.nn.Module, sovits_config: dict, version: str, epoch: int,
                      steps: int | None = None) -> Path:
    """One upstream-format SoVITS .pth of `sovits` as it is now, without the posterior encoder (atomic)."""
    from gsvd.engine.checkpoints.sovits import save_sovits

    state = {k: v.detach().cpu() for k, v in sovits.state_dict().items() if not k.startswith("enc_q.")}
    info = f"{epoch}epoch" if steps is None else f"{epoch}epoch_{steps}iteration"
    return save_sovits(path, state, sovits_config, version, info=info)


def epoch_weights(ws: Workspace, model: str, epoch: int) -> Path:
    """Where the fit stage keeps the `model` ("sovits" / "gpt") weights of the save at `epoch`:
    `fit/epochs/<model>-e<epoch>.pth|.ckpt`, named like the test-sentence folders rendered with them."""
    return ws.root / "fit" / "epochs" / f"{model}-e{epoch}.{'ckpt' if model == 'gpt' else 'pth'}"


def saved_epochs(ws: Workspace, model: str) -> list[int]:
    """Epochs whose `model` weights were kept (see `epoch_weights`), in order."""
    suffix = "ckpt" if model == "gpt" else "pth"
    found = (p.name.removeprefix(f"{model}-e").removesuffix(f".{suffix}")
             for p in (ws.root / "fit" / "epochs").glob(f"{model}-e*.{suffix}"))
    return sorted(int(e) for e in found if e.isdigit())


def provenance(ws: Workspace, sources: list, clips: list, utterances: list, settings: dict) -> dict:
    texts = {u.clip_id: u.text for u in utterances}
    return {
        "created_by": "gsvd train",
        "trained_at": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "sources": [{"path": s.source, "sha256": s.sha256, "track": s.track, "seconds": round(s.seconds, 2)}
                    for s in sources],
        "clips": [{"id": c.id, "source": c.source, "start": round(c.start, 3), "end": round(c.end, 3),
                   "text": texts.get(c.id, "")} for c in clips if c.id in texts],
        "training": settings,
        "run_folder": str(ws.root),
    }


def package_voice(ws: Workspace, *, name: str, voices_root: Path, gpt_ckpt: Path, sovits_ckpt: Path,
                  reference, consent: str, prov: dict, base, overwrite: bool = True) -> Path:
    """The bundle at `voices_root/name` (atomic); `reference` is the Utterance used as prompt."""
    from safetensors import SafetensorError

    from gsvd.engine.consent import train_record
    from gsvd.engine.errors import GsvdError
    from gsvd.engine.voice_import import import_voice

    if not consent or not consent.strip():
        raise TrainError("a consent record is required: pass --consent \"who agreed to what, when\"")
    check_not_foreign(Path(voices_root) / name, ws)
    try:
        consent_record = train_record(consent, recorded_by=_operator())
    except GsvdError as exc:
        raise TrainError(f"--consent: {exc}") from None
    try:
        bundle = import_voice(voices_root, name, gpt_path=gpt_ckpt, sovits_path=sovits_ckpt,
                              ref_audio=ws.path(reference.wav32), ref_text=reference.text,
                              ref_lang=reference.lang, base=base, consent=consent_record,
                              provenance=prov, overwrite=overwrite)
    except (OSError, SafetensorError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise TrainError(f"could not write the voice bundle under {voices_root}: {why} "
                         "(nothing was left behind; free space and run `gsvd train package` again)") from None
    except GsvdError as exc:
        raise TrainError(f"could not write the voice bundle: {exc}") from None
    write_json(ws.stage_dir("package") / "package.json",
               {"bundle": str(bundle.path), "gpt": str(gpt_ckpt), "sovits": str(sovits_ckpt)})
    return Path(bundle.path)


def _operator() -> str:
    """Who records the consent: the account running `gsvd train` (the consent record's `recorded_by`)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return "unknown account"


def check_not_foreign(dest: Path, ws: Workspace) -> None:
    """Replace an existing bundle only when this run folder made it (re-packaging); never someone else's voice."""
    if not dest.exists():
        return
    from gsvd.engine.bundle import load_bundle
    from gsvd.engine.errors import GsvdError

    try:
        made_by = str(load_bundle(dest, verify=False).provenance.get("run_folder", ""))
    except GsvdError:
        made_by = ""
    if made_by != str(ws.root):
        raise TrainError(f"a voice named {dest.name!r} already exists at {dest} and was not made by this run "
                         f"({made_by or 'imported or made elsewhere'}): choose another --name or --voices-dir, "
                         "or remove that voice first")


def build_engines(bundle: Path, precision: str = "fp16") -> list[str]:
    """ONNX export + parity + TensorRT engines where present; lines saying what ran and what was skipped."""
    try:
        from gsvd.trt_build.build import build_voice
    except ImportError as exc:
        return [f"skipped --build: the trt extra is not installed ({exc.name}); pip install 'gsvd[trt]'"]
    report = build_voice(bundle, precision=precision)
    lines = [f"exported {len(report.exported)} ONNX graphs to {report.onnx_dir}"]
    lines += [f"parity {p['graph']} {p['precision']} {p['sizes']}: max abs {p['max_abs']:.2e}" for p in report.parity]
    lines += [f"engine {e}" for e in report.engines] + [f"skipped {s}" for s in report.skipped]
    return lines


def register(bundle: Path, name: str, url: str, token: str | None = None) -> str:
    """Ask a running daemon to load the bundle (LoadVoice); the daemon must see the same path."""
    import grpc

    from gsvd.clients import Client

    address = url.split("://", 1)[-1].rstrip("/")
    try:
        with Client(address, token=token) as client:
            voice = client.load_voice(str(bundle.resolve()), name, timeout=120, replace=True)  # a re-train updates it
    except grpc.RpcError as exc:
        raise TrainError(f"daemon at {url} refused the voice: {exc.code().name}: {exc.details()}") from None
    return f"registered {voice.name!r} with the daemon at {url}"

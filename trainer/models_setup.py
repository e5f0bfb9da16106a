"""Which base models a training run starts from, and building them.

Base checkpoints come from `--base-gpt/--base-sovits` (upstream .ckpt/.pth), else from
the models folder (`gsvd models fetch v2`), else -- only with `--from-scratch tiny` --
from small random models written into the run folder (with a tiny random HuBERT when
none is given: enough to exercise every stage, not to make a real voice).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gsvd.trainer.records import TrainError
from gsvd.trainer.workspace import Workspace

SV_VERSIONS = ("v2Pro", "v2ProPlus")


@dataclass
class BaseSet:
    gpt_ckpt: Path
    sovits_ckpt: Path
    version: str
    paths: object  # gsvd.engine.voice_import.BaseModelPaths (hubert / sv / bert)


def resolve_base(ws: Workspace, s, log) -> BaseSet:
    from gsvd.engine.voice_import import BaseModelPaths

    if s.from_scratch:
        return _scratch(ws, s, log)
    store = _store(s)
    gpt, sovits = (Path(s.base_gpt) if s.base_gpt else None), (Path(s.base_sovits) if s.base_sovits else None)
    if gpt is None or sovits is None:
        try:
            g, v = store.pretrained(s.version)
        except Exception as exc:  # MissingModel / InvalidInput carry the fix
            raise TrainError(f"no base model given and none installed: {exc} (or pass --base-gpt and "
                             "--base-sovits, or --from-scratch tiny for a test run)") from None
        gpt, sovits = gpt or g, sovits or v
    for p in (gpt, sovits):
        if not p.is_file():
            raise TrainError(f"base checkpoint not found: {p}")
    version = _sovits_version(sovits)
    paths = BaseModelPaths(
        hubert_folder=Path(s.hubert) if s.hubert else _optional(store.hubert_folder),
        sv_model=Path(s.sv) if s.sv else (_optional(store.sv_model) if version in SV_VERSIONS else None),
        bert_folder=Path(s.bert) if s.bert else _optional(store.bert_folder),
    )
    if paths.hubert_folder is None:
        raise TrainError("chinese-hubert-base is needed for training features: pass --hubert PATH or run "
                         "`gsvd models fetch chinese-hubert-base`")
    if version in SV_VERSIONS and paths.sv_model is None:
        raise TrainError(f"{version} needs the speaker-verification model: pass --sv PATH or `gsvd models fetch sv`")
    if paths.bert_folder is None:
        log("[base] no chinese-roberta folder: Mandarin BERT features will be zeros (pass --bert PATH)")
    return BaseSet(gpt, sovits, version, paths)


def _scratch(ws: Workspace, s, log) -> BaseSet:
    from gsvd.engine.testing.gpt import write_tiny_gpt
    from gsvd.engine.testing.sovits import write_tiny_hubert, write_tiny_sovits, write_tiny_sv
    from gsvd.engine.voice_import import BaseModelPaths

    if s.from_scratch not in ("tiny",):
        raise TrainError(f"unknown --from-scratch preset {s.from_scratch!r} (available: tiny)")
    folder = ws.root / "base"
    gpt, sovits = folder / "tiny-gpt.ckpt", folder / f"tiny-sovits-{s.version}.pth"
    if not gpt.is_file():
        write_tiny_gpt(gpt, seed=s.seed)
    if not sovits.is_file():
        write_tiny_sovits(sovits, s.version, seed=s.seed)
    hubert = Path(s.hubert) if s.hubert else folder / "tiny-hubert"
    if not s.hubert and not (hubert / "config.json").is_file():
        write_tiny_hubert(hubert, seed=s.seed)
        log("[base] --from-scratch tiny: random tiny GPT, SoVITS and HuBERT (the voice will be babble)")
    sv = None
    if s.version in SV_VERSIONS:
        sv = Path(s.sv) if s.sv else folder / "tiny-sv.ckpt"
        if not sv.is_file():
            write_tiny_sv(sv, seed=s.seed)
    bert = Path(s.bert) if s.bert else None
    return BaseSet(gpt, sovits, s.version, BaseModelPaths(hubert_folder=hubert, sv_model=sv, bert_folder=bert))


def _store(s):
    from gsvd.engine.models_dir.store import ModelsDir
    from gsvd.engine.paths import models_dir

    return ModelsDir(Path(s.models_dir) if s.models_dir else models_dir())


def _optional(getter) -> Path | None:
    try:
        return getter()
    except Exception:  # MissingModel: the caller decides whether it is needed
        return None


def _sovits_version(path: Path) -> str:
    from gsvd.engine.checkpoints.sovits import detect_sovits_version
    from gsvd.engine.errors import CheckpointError

    try:
        return detect_sovits_version(path)
    except CheckpointError as exc:
        raise TrainError(str(exc)) from None


# -- building modules --------------------------------------------------------------------


def load_sovits_for_training(path: Path, device: str = "cpu"):
    """(SynthesizerTrn with the posterior encoder, config, version); enc_q starts random when absent."""
    import torch

    from gsvd.engine.checkpoints.sovits import load_sovits
    from gsvd.engine.errors import CheckpointError
    from gsvd.engine.models.sovits import SovitsDims, SynthesizerTrn

    try:
        ck = load_sovits(path, keep_posterior=True)
    except CheckpointError as exc:
        raise TrainError(str(exc)) from None
    torch.manual_seed(0)
    model = SynthesizerTrn(SovitsDims.from_config(ck.config, ck.version), with_posterior=True)
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in ck.state_dict.items()}, strict=False)
    bad = [k for k in missing if not k.startswith("enc_q.")]
    if bad or unexpected:
        raise TrainError(f"{path}: weights do not fit the model (missing {bad[:3]}, unexpected {unexpected[:3]})")
    return model.to(device), ck.config, ck.version


def load_gpt_for_training(path: Path, device: str = "cpu"):
    from gsvd.engine.checkpoints.gpt import build_gpt, load_gpt
    from gsvd.engine.errors import CheckpointError

    try:
        ck = load_gpt(path)
    except CheckpointError as exc:
        raise TrainError(str(exc)) from None
    model = build_gpt(ck, device)
    return model.train(), ck.config


def feature_encoders(ws: Workspace, s, log):
    """HuBERT + frontend + base SoVITS quantizer (+ SV model) for the features stage."""
    from gsvd.engine.ssl import HubertEncoder
    from gsvd.engine.text import TextFrontend
    from gsvd.trainer.features import FeatureEncoders

    base = resolve_base(ws, s, log)
    device = s.resolved_device()
    sovits, _, version = load_sovits_for_training(base.sovits_ckpt, device)
    sovits.eval()
    hubert = HubertEncoder.from_folder(base.paths.hubert_folder, device=device)
    if hubert.dim != sovits.dims.ssl_dim:
        raise TrainError(f"HuBERT at {base.paths.hubert_folder} gives {hubert.dim}-dim features but the SoVITS "
                         f"model expects {sovits.dims.ssl_dim}")
    sv = None
    if version in SV_VERSIONS:
        from gsvd.engine.sv import SpeakerEncoder

        sv = SpeakerEncoder.from_file(base.paths.sv_model, device=device)
    frontend = TextFrontend(version="v2", bert_folder=base.paths.bert_folder, device=device)
    return FeatureEncoders(sovits=sovits, hubert=hubert, frontend=frontend, sv=sv)

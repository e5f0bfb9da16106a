"""``gsvd models verify``: are the base models intact and loadable?

Hash checks: files gsvd fetched are re-hashed against the sha256 recorded at fetch
time (``models.lock.toml``); the official SoVITS files are also checked by upstream's
own fingerprint (MD5 of the first 8192 bytes), which works for linked folders too.
Load checks build each model with the engine's loaders (HuBERT, RoBERTa config +
tokenizer, GPT/SoVITS checkpoints with version detection, ERes2NetV2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from gsvd.engine.models_dir.registry import BaseModel, model
from gsvd.engine.models_dir.store import ModelsDir, ModelStatus


@dataclass
class VerifyResult:
    name: str
    state: str
    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state not in ("missing", "partial") and not self.problems


def verify_model(models: ModelsDir, name: str, *, load: bool = True) -> VerifyResult:
    st = models.status(name)
    result = VerifyResult(st.model.name, st.state)
    if st.state in ("missing", "partial"):
        missing = [f.rel for f in st.files if f.path is None]
        result.problems.append(f"missing {', '.join(missing)}: {models.missing_message(name)}")
        return result
    _check_hashes(models, st, result)
    if load and not result.problems:
        _check_load(st, result)
    return result


def _check_hashes(models: ModelsDir, st: ModelStatus, result: VerifyResult) -> None:
    recorded = models.recorded()
    for hub_file, fs in zip(st.model.files, st.files, strict=True):
        path = fs.path
        assert path is not None
        rec = recorded.get(fs.rel) if fs.source == "local" else None
        if rec is not None:
            if path.stat().st_size != rec["size"] or _sha256(path) != rec["sha256"]:
                result.problems.append(
                    f"{fs.rel}: sha256 differs from the fetched file (corrupt or replaced)"
                )
            else:
                result.checks.append(f"{fs.rel}: sha256 ok")
        if hub_file.head_md5 is not None:
            with open(path, "rb") as f:
                head = hashlib.md5(f.read(8192)).hexdigest()
            if head != hub_file.head_md5:
                result.problems.append(
                    f"{fs.rel}: not the official release file (upstream fingerprint differs)"
                )
            else:
                result.checks.append(f"{fs.rel}: upstream fingerprint ok")


def _check_load(st: ModelStatus, result: VerifyResult) -> None:
    paths = [f.path for f in st.files]
    try:
        result.checks.append(_load(st.model, paths))  # type: ignore[arg-type]
    except Exception as exc:  # any failure to load is the finding we report
        result.problems.append(
            f"does not load: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )


def _load(entry: BaseModel, paths: list[Path]) -> str:
    if entry.kind == "hubert":
        from gsvd.engine.ssl import HubertEncoder

        HubertEncoder.from_folder(paths[0].parent, device="cpu")
        return "HuBERT loads"
    if entry.kind == "bert":
        from transformers import AutoConfig, AutoTokenizer

        config = AutoConfig.from_pretrained(paths[0].parent)
        AutoTokenizer.from_pretrained(paths[0].parent)
        if getattr(config, "hidden_size", None) != 1024:
            raise ValueError(f"hidden size {config.hidden_size}, expected 1024")
        return "RoBERTa config + tokenizer load"
    if entry.kind == "gpt+sovits":
        return _load_pair(entry, paths)
    if entry.kind == "sv":
        from gsvd.engine.sv import SpeakerEncoder

        SpeakerEncoder.from_file(paths[0], device="cpu")
        return "ERes2NetV2 loads"
    import torch

    ckpt = torch.load(paths[0], map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "weight" not in ckpt:
        raise ValueError("not an upstream discriminator checkpoint (no 'weight')")
    return "discriminator checkpoint reads"


def _load_pair(entry: BaseModel, paths: list[Path]) -> str:
    from gsvd.engine.checkpoints.gpt import load_gpt
    from gsvd.engine.checkpoints.sovits import detect_sovits_version, load_sovits

    load_gpt(paths[0])
    version = detect_sovits_version(paths[1])
    if version not in entry.versions:
        raise ValueError(f"{paths[1].name} is {version}, expected {entry.versions[0]}")
    load_sovits(paths[1])
    return f"GPT + SoVITS ({version}) load"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def verify_all(models: ModelsDir, names: list[str] | None = None, *, load: bool = True) -> list[VerifyResult]:
    """Verify the named models, or every model that is at least partly present."""
    if names:
        return [verify_model(models, model(n).name, load=load) for n in names]
    present = [st.model.name for st in models.all_status() if st.state != "missing"]
    return [verify_model(models, n, load=load) for n in present]

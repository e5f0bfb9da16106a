"""Import every voice of a GPT-SoVITS install: scan, resolve base models, write bundles.

Base models are taken, in order, from explicit paths, from the install's own
``GPT_SoVITS/pretrained_models`` and from the models directory (plus its links).
Each ready candidate becomes ``<voices>/<name>`` via ``gsvd.engine.voice_import``;
a failure of one voice is recorded and the others still import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gsvd.engine.errors import GsvdError
from gsvd.engine.models_dir.gsv_install import Candidate, InstallScan, voice_name_for
from gsvd.engine.models_dir.link import models_in
from gsvd.engine.models_dir.store import ModelsDir
from gsvd.engine.voice_import import BaseModelPaths


@dataclass
class ImportOutcome:
    imported: list[tuple[str, Path]] = field(default_factory=list)
    """(voice name, bundle path) per voice written."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(experiment, reason) per voice not written."""


def base_models_for(
    models: ModelsDir,
    install_root: Path | None = None,
    *,
    hubert: Path | None = None,
    sv_model: Path | None = None,
    bert: Path | None = None,
) -> BaseModelPaths:
    """The base models an import can use (None for what is not found anywhere)."""
    sources = []
    if install_root is not None:
        folder = install_root / "GPT_SoVITS" / "pretrained_models"
        if folder.is_dir() and models_in(folder):
            sources.append(folder)
    return BaseModelPaths(
        hubert_folder=hubert or _find(models, sources, "chinese-hubert-base", folder_of=True),
        sv_model=sv_model or _find(models, sources, "sv"),
        bert_folder=bert or _find(models, sources, "chinese-roberta-wwm-ext-large", folder_of=True),
    )


def _find(models: ModelsDir, sources: list[Path], name: str, folder_of: bool = False) -> Path | None:
    from gsvd.engine.models_dir.registry import model

    files = model(name).files
    for folder in sources:
        if all((folder / f.path).is_file() for f in files):
            path = folder / files[0].path
            return path.parent if folder_of else path
    st = models.status(name)
    if st.state in ("missing", "partial"):
        return None
    path = st.files[0].path
    assert path is not None
    return path.parent if folder_of else path


def import_candidates(
    scan: InstallScan,
    candidates: list[Candidate],
    voices_root: Path,
    base: BaseModelPaths,
    *,
    names: dict[str, str] | None = None,
    consent: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    on_voice=None,
) -> ImportOutcome:
    """Write one bundle per ready candidate; collect the failures with their reasons."""
    from gsvd.engine.voice_import import import_voice

    outcome = ImportOutcome()
    for cand in candidates:
        if not cand.ready:
            outcome.failed.append((cand.exp, "; ".join(p.split(": ", 1)[-1] for p in cand.problems)))
            continue
        name = (names or {}).get(cand.exp) or voice_name_for(cand.exp)
        ref = cand.reference
        assert ref is not None and ref.audio is not None and cand.gpt and cand.sovits
        try:
            bundle = import_voice(
                voices_root,
                name,
                gpt_path=cand.gpt.path,
                sovits_path=cand.sovits.path,
                ref_audio=ref.audio,
                ref_text=ref.text,
                ref_lang=ref.language,
                base=base,
                consent=consent,
                provenance={"gpt_sovits_install": str(scan.root), "experiment": cand.exp},
                overwrite=overwrite,
                device=device,
            )
        except GsvdError as exc:
            outcome.failed.append((cand.exp, str(exc)))
            continue
        outcome.imported.append((bundle.name, bundle.path))
        if on_voice is not None:
            on_voice(bundle)
    return outcome

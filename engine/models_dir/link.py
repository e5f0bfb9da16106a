"""``gsvd models link PATH``: use an existing GPT-SoVITS ``pretrained_models/`` in place.

PATH may be the GPT-SoVITS checkout (``<root>/GPT_SoVITS/pretrained_models``), its
``GPT_SoVITS/`` package folder, or the ``pretrained_models`` folder itself; the layout
is recognised by the registry's relative paths (``chinese-hubert-base/config.json``,
``gsv-v2final-pretrained/s2G2333k.pth``, ``sv/...``). Nothing is copied: the folder is
recorded in the models directory's ``links.toml`` and searched after the directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gsvd.engine.errors import InvalidInput
from gsvd.engine.models_dir.registry import MODELS
from gsvd.engine.models_dir.store import ModelsDir

_CANDIDATES = ("", "GPT_SoVITS/pretrained_models", "pretrained_models")


@dataclass(frozen=True)
class LinkReport:
    folder: Path
    """The pretrained_models folder that was linked."""
    found: dict[str, str]
    """Registry name -> 'complete' | 'partial' for what that folder provides."""
    already_linked: bool = False


def find_pretrained_folder(path: str | Path) -> tuple[Path, dict[str, str]]:
    """The pretrained_models folder at or under ``path`` and what it holds."""
    base = Path(path).expanduser()
    if not base.is_dir():
        raise InvalidInput(f"{base} is not a folder", "path")
    for rel in _CANDIDATES:
        folder = (base / rel).resolve()
        found = models_in(folder) if folder.is_dir() else {}
        if found:
            return folder, found
    looked = ", ".join(str(base / rel) if rel else str(base) for rel in _CANDIDATES)
    raise InvalidInput(
        f"no GPT-SoVITS pretrained models found (looked in {looked} for chinese-hubert-base/, "
        "chinese-roberta-wwm-ext-large/, gsv-v2final-pretrained/, v2Pro/, sv/, s1v3.ckpt)",
        "path",
    )


def models_in(folder: Path) -> dict[str, str]:
    """Which registry models a pretrained_models-style folder holds (complete or partial)."""
    found: dict[str, str] = {}
    for name, entry in MODELS.items():
        present = [(folder / f.path).is_file() for f in entry.files]
        if all(present):
            found[name] = "complete"
        elif any(present) and entry.kind != "gpt+sovits":
            found[name] = "partial"
        elif entry.kind == "gpt+sovits" and present[-1]:
            found[name] = "partial"  # SoVITS present, GPT (e.g. s1v3.ckpt) missing
    return found


def link(models: ModelsDir, path: str | Path) -> LinkReport:
    """Record the pretrained_models folder under ``path`` as a source of base models."""
    folder, found = find_pretrained_folder(path)
    links = models.links()
    if folder in links:
        return LinkReport(folder, found, already_linked=True)
    models.set_links([*links, folder])
    return LinkReport(folder, found)


def unlink(models: ModelsDir, path: str | Path) -> Path:
    """Forget a linked folder (given as linked or as the path first passed to ``link``)."""
    target = Path(path).expanduser().resolve()
    links = models.links()
    for folder in links:
        if folder == target or any((target / rel).resolve() == folder for rel in _CANDIDATES):
            models.set_links([p for p in links if p != folder])
            return folder
    raise InvalidInput(f"{path} is not linked (linked: {', '.join(map(str, links)) or 'none'})", "path")

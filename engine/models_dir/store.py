"""The models directory: where base models live, what is present, what is missing.

``ModelsDir(root)`` (default ``gsvd.engine.paths.models_dir()``, i.e.
``$GSVD_MODELS_DIR`` or ``~/.local/share/gsvd/models``) holds fetched files in the
upstream ``pretrained_models/`` layout, ``models.lock.toml`` (sha256, size, repo and
commit of every fetched file) and ``links.toml`` (GPT-SoVITS ``pretrained_models/``
folders used in place, see ``link.py``). A file is looked up in the directory first,
then in each linked folder.

This module does not download (``fetch.py``) and does not load models (``verify.py``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gsvd.engine.errors import InvalidInput, MissingModel
from gsvd.engine.models_dir.registry import MODELS, BaseModel, model

LOCK_FILE = "models.lock.toml"
LINKS_FILE = "links.toml"


@dataclass(frozen=True)
class FileStatus:
    rel: str
    path: Path | None
    """Where it was found (None: missing)."""
    source: str
    """'local', 'linked' or 'missing'."""
    size: int = 0


@dataclass(frozen=True)
class ModelStatus:
    model: BaseModel
    files: tuple[FileStatus, ...]

    @property
    def state(self) -> str:
        """present | linked | partial | missing"""
        sources = {f.source for f in self.files}
        if sources == {"missing"}:
            return "missing"
        if "missing" in sources:
            return "partial"
        return "linked" if "linked" in sources else "present"

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


class ModelsDir:
    """A models directory plus the GPT-SoVITS folders linked into it."""

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            from gsvd.engine.paths import models_dir

            root = models_dir()
        self.root = Path(root).expanduser()

    # ------------------------------------------------------------ lookups

    def locate(self, rel: str) -> FileStatus:
        """Find one registry file (by its repo path) locally or in a linked folder."""
        local = self.root / rel
        if local.is_file():
            return FileStatus(rel, local, "local", local.stat().st_size)
        for base in self.links():
            linked = base / rel
            if linked.is_file():
                return FileStatus(rel, linked, "linked", linked.stat().st_size)
        return FileStatus(rel, None, "missing")

    def status(self, name: str) -> ModelStatus:
        entry = model(name)
        return ModelStatus(entry, tuple(self.locate(f.path) for f in entry.files))

    def all_status(self) -> list[ModelStatus]:
        return [self.status(name) for name in MODELS]

    def require(self, name: str, purpose: str | None = None) -> ModelStatus:
        """The status of a complete model, or MissingModel saying how to get it."""
        st = self.status(name)
        if st.state in ("missing", "partial"):
            raise MissingModel(self.missing_message(st.model.name, purpose))
        return st

    def missing_message(self, name: str, purpose: str | None = None) -> str:
        entry = model(name)
        where = "" if self._is_default_root() else f" --models-dir {self.root}"
        return (
            f"base model {entry.name!r} is missing ({purpose or entry.enables}); get it with "
            f"`gsvd models fetch {entry.name}{where}` or point gsvd at an existing GPT-SoVITS "
            f"install with `gsvd models link /path/to/GPT-SoVITS{where}`"
        )

    def folder(self, name: str, purpose: str | None = None) -> Path:
        """The folder of a transformers-style model (chinese-hubert-base, roberta)."""
        st = self.require(name, purpose)
        return st.files[0].path.parent  # type: ignore[union-attr]

    def file(self, name: str, purpose: str | None = None, index: int = 0) -> Path:
        st = self.require(name, purpose)
        return st.files[index].path  # type: ignore[return-value]

    # --------------------------------------------------------- convenience

    def hubert_folder(self) -> Path:
        return self.folder("chinese-hubert-base", "prompt tokens of a new reference clip")

    def bert_folder(self) -> Path:
        return self.folder("chinese-roberta-wwm-ext-large", "BERT features of Chinese text")

    def sv_model(self) -> Path:
        return self.file("sv", "speaker embedding of a v2Pro/v2ProPlus reference")

    def pretrained(self, version: str) -> tuple[Path, Path]:
        """(GPT .ckpt, SoVITS .pth) of the pretrained base model of ``version``."""
        if version not in ("v2", "v2Pro", "v2ProPlus"):
            raise InvalidInput(f"no pretrained base model for version {version!r}", "version")
        return self.file(version, index=0), self.file(version, index=1)

    # ------------------------------------------------------------ records

    def recorded(self) -> dict[str, dict]:
        """rel path -> {sha256, size, repo, revision} for every fetched file."""
        return _read_toml(self.root / LOCK_FILE).get("files", {})

    def record(self, rel: str, sha256: str, size: int, repo: str, revision: str) -> None:
        files = self.recorded()
        files[rel] = {"sha256": sha256, "size": size, "repo": repo, "revision": revision}
        write_toml_atomic(self.root / LOCK_FILE, {"files": files})

    def links(self) -> list[Path]:
        return [Path(p) for p in _read_toml(self.root / LINKS_FILE).get("links", [])]

    def set_links(self, links: list[Path]) -> None:
        write_toml_atomic(self.root / LINKS_FILE, {"links": [str(p) for p in links]})

    def _is_default_root(self) -> bool:
        from gsvd.engine.paths import models_dir

        return self.root == models_dir()


def _read_toml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid TOML ({exc}); fix or delete it", "models_dir") from None


def write_toml_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as TOML to ``path`` via a temp file + rename."""
    import tomli_w

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(tomli_w.dumps(data))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)

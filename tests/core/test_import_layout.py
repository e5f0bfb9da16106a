"""Static tools see the code as Python does: every `gsvd.*` import resolves to a file through the folder
`gsvd/` alone (its committed relative symlinks onto the top-level folders), which is what an IDE, pyright or a
plain `PYTHONPATH=.` follow, and to the same file the installed package imports."""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINKS = {"engine": "../engine", "daemon": "../daemon", "clients": "../clients", "trainer": "../trainer",
         "trt_build": "../trt_build", "v1": "../proto/gsvd/v1"}


def _module_file(name: str) -> Path | None:
    """gsvd.a.b -> ROOT/gsvd/a/b.py or ROOT/gsvd/a/b/__init__.py, found on disk (links followed), or None."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _gsvd_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute `gsvd` import in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "gsvd"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "gsvd":
            out.append((node.lineno, node.module))
    return out


def test_gsvd_links_onto_the_top_level_folders():
    for name, target in LINKS.items():
        link = ROOT / "gsvd" / name
        assert link.is_symlink() and os.readlink(link) == target, f"gsvd/{name} must be a link to {target}"
        assert (link / "__init__.py").is_file()


def test_every_gsvd_import_resolves_statically_to_the_imported_file():
    files = [Path(d, f) for top in ("gsvd", "tests", "benchmarks")
             for d, _, names in os.walk(ROOT / top, followlinks=True) if "node_modules" not in d
             for f in names if f.endswith(".py")]
    assert len(files) > 150
    missing, seen = [], set()
    for path in files:
        for line, module in _gsvd_imports(path):
            if _module_file(module) is None:
                missing.append(f"{path.relative_to(ROOT)}:{line}: {module}")
                continue
            seen.add(module)
    assert not missing, "imports no static tool can follow:\n" + "\n".join(missing)
    assert {"gsvd.engine", "gsvd.daemon.config", "gsvd.v1", "gsvd.engine.runtime.scheduler"} <= seen
    for module in sorted(seen):  # the installed package imports the very same files
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        assert Path(spec.origin).resolve() == _module_file(module).resolve(), module

"""Map the top-level folders onto the one import namespace ``gsvd.*``.

Metadata lives in pyproject.toml; this file only computes the package list so
that a new sub-package in any folder is installed without editing a list.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
# folder on disk -> import name
FOLDERS = {
    "gsvd": "gsvd",
    "engine": "gsvd.engine",
    "daemon": "gsvd.daemon",
    "clients": "gsvd.clients",
    "trt_build": "gsvd.trt_build",
    "trainer": "gsvd.trainer",
    "proto/gsvd/v1": "gsvd.v1",
}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for folder, name in FOLDERS.items():
        base = ROOT / folder
        for init in sorted(base.rglob("__init__.py")):
            rel = init.parent.relative_to(base)
            pkg = ".".join([name, *rel.parts]) if rel.parts else name
            packages.append(pkg)
            package_dir[pkg] = init.parent.relative_to(ROOT).as_posix()
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR, include_package_data=True)

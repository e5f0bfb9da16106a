"""The test environment is reproducible: the stub generator is pinned exactly, the committed stubs
carry its version, and the installed packages are those of the lock file (constraints.txt)."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STUBS = REPO / "proto" / "gsvd" / "v1"
LOCK_SCRIPT = REPO / "scripts" / "lock.py"


def _requirement(reqs: list[str], name: str) -> str:
    (spec,) = [r for r in reqs if re.match(rf"{name}\s*[<>=!~;]", r)]
    return spec[len(name):].split(";")[0].strip()


def _lock() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("gsvd_lock_script", LOCK_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.read_lock()


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("+")[0].split("."))


def test_the_generator_is_pinned_exactly_and_wrote_the_committed_stubs():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    tools = _requirement(project["optional-dependencies"]["dev"], "grpcio-tools")
    assert tools.startswith("==") and "," not in tools, f"grpcio-tools must be pinned exactly, not {tools!r}"
    generator = tools[2:]
    assert _lock()["grpcio-tools"] == generator
    assert md.version("grpcio-tools") == generator, "run `make setup`: the installed generator is not the pinned one"
    grpc_stub = (STUBS / "gsvd_pb2_grpc.py").read_text()
    assert f"GRPC_GENERATED_VERSION = '{generator}'" in grpc_stub
    # the runtime the stubs need: grpcio >= the generator, protobuf >= the gencode version, same major
    grpcio = _requirement(project["dependencies"], "grpcio")
    assert f">={generator}" in grpcio, grpcio
    gencode = re.search(r"Protobuf Python Version: ([\d.]+)", (STUBS / "gsvd_pb2.py").read_text()).group(1)
    protobuf = _requirement(project["dependencies"], "protobuf")
    major = _version(gencode)[0]
    assert protobuf == f">={gencode},<{major + 1}", protobuf
    installed = _version(md.version("protobuf"))
    assert installed[0] == major and installed >= _version(gencode)


def test_the_installed_environment_matches_the_lock():
    out = subprocess.run([sys.executable, str(LOCK_SCRIPT), "check"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "environment matches constraints.txt" in out.stdout


def test_the_lock_check_names_a_package_that_drifted(tmp_path):
    lock = tmp_path / "constraints.txt"
    lock.write_text("# a lock from another day\ngrpcio-tools==1.0.0\nnumpy==" + md.version("numpy") + "\n")
    out = subprocess.run([sys.executable, str(LOCK_SCRIPT), "check", "--lock", str(lock)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert f"grpcio-tools {md.version('grpcio-tools')} (lock: 1.0.0)" in out.stderr and "numpy" not in out.stderr
    out = subprocess.run([sys.executable, str(LOCK_SCRIPT), "check", "--complete", "--lock", str(lock)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "installed but not in constraints.txt: torch" in out.stderr

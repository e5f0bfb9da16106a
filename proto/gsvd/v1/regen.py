"""Regenerate the committed stubs from gsvd.proto; `--check` fails on any difference.

    python -m gsvd.v1.regen [--check]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]  # the proto/ folder (import root for `gsvd/v1/...`)
OUTPUTS = ("gsvd_pb2.py", "gsvd_pb2.pyi", "gsvd_pb2_grpc.py")


def generate(out: Path) -> None:
    from grpc_tools import protoc

    args = ["protoc", f"-I{ROOT}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
            str(HERE / "gsvd.proto")]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main(argv: list[str]) -> int:
    check = "--check" in argv
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = {name: (Path(tmp) / "gsvd" / "v1" / name).read_text() for name in OUTPUTS}
    stale = [name for name, text in fresh.items() if not (HERE / name).is_file() or (HERE / name).read_text() != text]
    if check:
        if stale:
            print(f"generated stubs are stale: {', '.join(stale)}; run python -m gsvd.v1.regen", file=sys.stderr)
            return 1
        print("stubs up to date")
        return 0
    for name, text in fresh.items():
        (HERE / name).write_text(text)
    print(f"wrote {', '.join(OUTPUTS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

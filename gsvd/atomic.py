"""Atomic file writes with ordinary permissions (stdlib only: the torch-free clients use it too).

A file is written under a temporary name in its destination's folder, flushed and fsynced,
then renamed over the destination: readers see the old file or the new one, never half of
one, and a failed write leaves nothing behind. The temporary file is created the way `open()`
creates files (mode 0o666 less the process umask: 0644 under umask 022), so WAVs, checkpoints
and bundles are readable like any other file. `tempfile.mkstemp` would make it 0600, and the
rename keeps that mode.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def create_temp_beside(dest: str | Path) -> tuple[int, Path]:
    """(fd, path) of a new, empty temp file in `dest`'s folder (created with the umask's permissions)."""
    dest = Path(dest)
    for _ in range(100):
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {dest}")


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write; on a clean exit it is fsynced and renamed over `path`."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp_beside(dest)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)

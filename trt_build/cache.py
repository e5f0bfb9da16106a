"""Engine cache: where a TensorRT engine for (graph, model, GPU, TensorRT, precision, profiles) lives,
and whether an existing one is stale.

Key = sha256 over the ONNX file's hash, the GPU name, its compute capability, the TensorRT
version, the precision and the optimization profiles. Engines live in
`<bundle>/engines/<gpu>-<trt>/<graph>.<key16>.plan` with a JSON sidecar recording the key inputs;
an engine is fresh only when a sidecar with the same key exists beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class EngineKey:
    graph: str
    onnx_sha256: str
    gpu_name: str
    compute_capability: str
    trt_version: str
    precision: str
    profiles: str  # canonical JSON of the optimization profiles

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def engine_dir(bundle: str | Path, key: EngineKey) -> Path:
    return Path(bundle) / "engines" / f"{_slug(key.gpu_name)}-sm{_slug(key.compute_capability)}-trt{_slug(key.trt_version)}"


def engine_path(bundle: str | Path, key: EngineKey) -> Path:
    return engine_dir(bundle, key) / f"{key.graph}.{key.precision}.{key.digest[:16]}.plan"


def is_fresh(bundle: str | Path, key: EngineKey) -> tuple[bool, str]:
    """(fresh?, reason) for the engine this key asks for."""
    path = engine_path(bundle, key)
    side = path.with_suffix(".json")
    if not path.is_file():
        others = sorted(engine_dir(bundle, key).glob(f"{key.graph}.{key.precision}.*.plan"))
        return False, ("stale: an engine exists for other inputs (" + others[0].name + ")") if others else "missing"
    if not side.is_file():
        return False, "stale: no sidecar describing how the engine was built"
    try:
        recorded = json.loads(side.read_text())
    except json.JSONDecodeError:
        return False, "stale: unreadable sidecar"
    if recorded.get("digest") != key.digest:
        return False, "stale: built from different inputs"
    return True, "fresh"


def write_engine(bundle: str | Path, key: EngineKey, data: bytes) -> Path:
    """Write the engine and its sidecar atomically (temp files + rename; sidecar last)."""
    path = engine_path(bundle, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, payload in ((path, data), (path.with_suffix(".json"),
                                           json.dumps({**asdict(key), "digest": key.digest}, indent=1).encode())):
        tmp = target.with_name(f".{target.name}.tmp")
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    return path

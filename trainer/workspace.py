"""The run folder of `gsvd train`: one sub-folder per stage, JSON records, atomic writes.

    runs/<name>/
      extract/   sources.json, <stem>.32k.wav, <stem>.16k.wav
      segment/   clips.json, clips/<id>.32k.wav, clips/<id>.16k.wav
      select/    scores.json, report.md, scores.png
      transcribe/ train.list, utterances.json
      features/  features.json, <id>.safetensors
      fit/       sovits/, gpt/, losses.jsonl, samples/
      package/   package.json

A stage is done when `<stage>/done.json` exists and its recorded inputs match
the current ones; otherwise it runs again (resumable pipeline).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gsvd.trainer.records import StageState, TrainError, from_dict, to_dict

STAGES = ("extract", "segment", "select", "transcribe", "features", "fit", "package")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write next to `path`, fsync, rename over it: readers never see half a file."""
    from gsvd.engine.checkpoints.io import atomic_write_bytes

    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def read_json(path: str | Path, what: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise TrainError(f"{what} not found: {p} (run the earlier stage first)")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainError(f"{p}: cannot read {what} ({exc})") from None


def fingerprint(obj: Any) -> str:
    """Stable short hash of JSON-able data (stage arguments, record lists)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Workspace:
    """Paths and records of one training run."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def stage_dir(self, stage: str) -> Path:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        d = self.root / stage
        d.mkdir(parents=True, exist_ok=True)
        return d

    def path(self, rel: str | Path) -> Path:
        """Absolute path of a run-relative path."""
        return self.root / rel

    def rel(self, path: str | Path) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    # -- records ---------------------------------------------------------------

    def save_records(self, stage: str, name: str, records: list) -> Path:
        return write_json(self.stage_dir(stage) / name, [to_dict(r) for r in records])

    def load_records(self, stage: str, name: str, cls: type) -> list:
        data = read_json(self.root / stage / name, f"{stage} output {name}")
        if not isinstance(data, list):
            raise TrainError(f"{self.root / stage / name}: expected a list of records")
        return [from_dict(cls, d) for d in data]

    # -- stage state -----------------------------------------------------------

    def is_done(self, stage: str, inputs: dict[str, str]) -> bool:
        p = self.root / stage / "done.json"
        if not p.is_file():
            return False
        try:
            state = from_dict(StageState, json.loads(p.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, TrainError):
            return False
        return state.inputs == inputs and all((self.root / o).exists() for o in state.outputs)

    def mark_done(self, stage: str, inputs: dict[str, str], outputs: list[str], info: dict | None = None) -> None:
        state = StageState(stage=stage, inputs=inputs, outputs=outputs, info=info or {})
        write_json(self.stage_dir(stage) / "done.json", asdict(state))

    def clear_done(self, stage: str) -> None:
        (self.root / stage / "done.json").unlink(missing_ok=True)

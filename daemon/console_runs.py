"""`gsvd train` run folders under `--runs-dir`, for the web console: progress, the selection
report, the test sentences of each saved epoch, and packaging the epochs a person picked.

- `GET /v1/runs`: each run folder (one holding `run.json`): voice name, stages done, the stage
  being worked on, last change; `runs_dir` is the folder's name (no answer names a server path: the
  packaging's output shows `<runs_dir>` and `<voices_dir>` in their place).
- `GET /v1/runs/{name}`: settings (no secrets), every stage's state and recorded info, fit progress
  and per-epoch losses, the select scores, the saved epochs' test sentences with their metrics and
  whether that epoch's weights were kept, the last packaging.
- `GET /v1/runs/{name}/files/{path}`: the artifacts those point at, and nothing else of the folder:
  `select/scores.png`, `select/report.md`, `fit/samples/<tag>/<n>.wav`.
- `POST /v1/runs/{name}/package` (admin token) `{"sovits_epoch": N, "gpt_epoch": M}` (0: the final
  weights): runs `gsvd train package --sovits-epoch N --gpt-epoch M` into the daemon's voices folder
  (no --build, no --register) and loads the bundle; 409 while the same run is being packaged.

The run folder is a file contract written by gsvd.trainer (layout in trainer/workspace.py, records
in trainer/records.py, samples in trainer/render.py, kept weights in trainer/package.py): this
module reads those JSON files and never imports the trainer, which the daemon must not depend on.
Packaging runs as a child process (`python -m gsvd train package`): off the event loop, with the
trainer's own code and messages, and without taking the GIL the serving scheduler needs.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from gsvd.daemon.audit import Entry
from gsvd.daemon.errors import hide_paths
from gsvd.daemon.http_api import guard, http_caller, json_error, read_json
from gsvd.engine.errors import GsvdError, InvalidInput

if TYPE_CHECKING:
    from gsvd.daemon.gateway import Gateway

# gsvd.trainer.workspace.STAGES, in order (tests/console checks they agree; the daemon does not import the trainer)
STAGES = ("extract", "segment", "select", "transcribe", "features", "fit", "package")
MODELS = ("sovits", "gpt")
PACKAGE_TIMEOUT_S = 900.0
_ARTIFACT = re.compile(r"^(select/scores\.png|select/report\.md|fit/samples/[A-Za-z0-9_.-]+/[0-9]+\.wav)$")
_SAMPLE_TAG = re.compile(r"^(sovits|gpt)-e([0-9]+)$")
_TYPES = {".png": "image/png", ".md": "text/markdown; charset=utf-8", ".wav": "audio/wav"}


class RunsApi:
    """The `/v1/runs` routes over `config.runs_dir` (see the module docstring)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.service = gateway.service
        self.packaging: set[str] = set()  # run names being packaged now

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/runs", self.list_runs), web.get("/v1/runs/{name}", self.run),
                web.get("/v1/runs/{name}/files/{path:.+}", self.artifact),
                web.post("/v1/runs/{name}/package", self.package)]

    # ------------------------------------------------------------------ routes

    async def list_runs(self, request: web.Request) -> web.Response:
        if (denied := guard(self.gateway, request)) is not None:
            return denied
        root = self._root()
        if root is None:
            return web.json_response({"runs_dir": None, "runs": []})
        runs = await asyncio.to_thread(_list_runs, root)
        return web.json_response({"runs_dir": root.name, "runs": runs})  # its name only: no server path leaves

    async def run(self, request: web.Request) -> web.Response:
        folder = self._open(request)
        if isinstance(folder, web.Response):
            return folder
        detail = await asyncio.to_thread(run_detail, folder)
        return web.json_response({**detail, "packaging": folder.name in self.packaging})

    async def artifact(self, request: web.Request) -> web.StreamResponse:
        folder = self._open(request)
        if isinstance(folder, web.Response):
            return folder
        rel = request.match_info["path"]
        path = (folder / rel).resolve()
        if not _ARTIFACT.match(rel) or not path.is_relative_to(folder.resolve()):
            return json_error(404, "NOT_FOUND", f"{rel!r} is not an artifact the console serves")
        if not path.is_file():
            return json_error(404, "NOT_FOUND", f"{rel} does not exist (yet) in run {folder.name!r}")
        return web.FileResponse(path, headers={"Content-Type": _TYPES[path.suffix], "Cache-Control": "no-cache"})

    async def package(self, request: web.Request) -> web.Response:
        """Package a run and load its voice: an admin call, written to the audit log as `package_run`."""
        with self.service.audit.event("package_run", http_caller(self.gateway, request), self.service.hide,
                                      call="POST /v1/runs/package", run=request.match_info["name"]) as entry:
            resp = await self._package(request, entry)
            if resp.status >= 400 and not entry.result:
                entry.result = _error_code(resp)
            return resp

    async def _package(self, request: web.Request, entry: Entry) -> web.Response:
        folder = self._open(request, admin=True)
        if isinstance(folder, web.Response):
            return folder
        try:
            epochs = _epochs(await read_json(request, self.service.config))
        except GsvdError as exc:
            return self.gateway._error(exc)
        voices_dir = self.service.config.voices_dir
        problem = _package_problem(folder, epochs, voices_dir)
        if problem:
            return json_error(400, "FAILED_PRECONDITION", problem)
        if folder.name in self.packaging:
            return json_error(409, "ABORTED", f"run {folder.name!r} is being packaged already")
        self.packaging.add(folder.name)
        try:
            code, out = await _package_child(folder, epochs, voices_dir)
        finally:
            self.packaging.discard(folder.name)
        out = hide_paths(out, self.service.hide)  # the trainer's messages name the run's and voices' folders
        if code != 0:
            return json_error(400 if code == 2 else 500, "FAILED_PRECONDITION" if code == 2 else "INTERNAL", out)
        try:
            bundle = json.loads((folder / "package" / "package.json").read_text(encoding="utf-8"))["bundle"]
            voice = await self.service.admin.load_bundle(bundle, replace=True, entry=entry)  # a new epoch
        except (OSError, ValueError, KeyError) as exc:
            return json_error(500, "INTERNAL", hide_paths(f"packaged, but the result could not be read: {exc}",
                                                          self.service.hide))
        except GsvdError as exc:
            entry.fail(exc, self.service.hide)
            return self.gateway._error(exc)
        return web.json_response({"voice": voice.name, "version": voice.version, "bundle": bundle,
                                  "sovits_epoch": epochs[0], "gpt_epoch": epochs[1], "log": out}, status=201)

    # ----------------------------------------------------------------- helpers

    def _root(self) -> Path | None:
        raw = self.service.config.runs_dir
        return Path(raw).expanduser().resolve() if raw else None

    def _open(self, request: web.Request, admin: bool = False) -> Path | web.Response:
        """The run folder the request names, or the answer refusing it (auth first, then 404)."""
        if (denied := guard(self.gateway, request, admin=admin)) is not None:
            return denied
        name = request.match_info["name"]
        root = self._root()
        if root is None:
            return json_error(404, "NOT_FOUND", "the daemon was started without --runs-dir: no runs to show")
        if not name or name.startswith(".") or "/" in name or "\\" in name or not (root / name / "run.json").is_file():
            return json_error(404, "NOT_FOUND", f"no run {name[:100]!r} in the runs folder")
        return root / name


def _error_code(resp: web.Response) -> str:
    """The `code` of a JSON error answer (for the audit log)."""
    try:
        return str(json.loads(resp.body)["error"]["code"])
    except (TypeError, ValueError, KeyError):
        return f"HTTP {resp.status}"


def _list_runs(root: Path) -> list[dict]:
    if not root.is_dir():
        return []
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "run.json").is_file()):
        settings = _read_json(folder / "run.json") or {}
        done = [s for s in STAGES if (folder / s / "done.json").is_file()]
        current = next((s for s in STAGES if s not in done), None)
        rows.append({"name": folder.name, "voice": settings.get("name", folder.name), "stages_done": len(done),
                     "stages": len(STAGES), "current": current, "updated": _latest_change(folder)})
    return rows


def run_detail(folder: Path) -> dict:
    """Everything the console shows of one run folder (see the module docstring)."""
    settings = {k: v for k, v in (_read_json(folder / "run.json") or {}).items() if k != "token"}
    stages = []
    for stage in STAGES:
        state = _read_json(folder / stage / "done.json")
        info = {k: v for k, v in (state or {}).get("info", {}).items() if not k.endswith("_epoch_losses")}  # in "fit"
        stages.append({"stage": stage, "done": state is not None, "info": info,
                       "finished": _mtime(folder / stage / "done.json")})
    return {"name": folder.name, "voice": settings.get("name", folder.name), "consent": settings.get("consent", ""),
            "settings": settings, "stages": stages, "fit": _fit_progress(folder, settings),
            "select": _select(folder), "samples": _samples(folder), "package": _read_json(folder / "package" / "package.json"),
            "updated": _latest_change(folder)}


def _fit_progress(folder: Path, settings: dict) -> dict:
    totals = {"sovits": settings.get("epochs"), "gpt": settings.get("gpt_epochs")}
    out = {}
    for model in MODELS:
        rows = [r for r in _read_jsonl(folder / "fit" / model / "losses.jsonl") if r.get("kind") == "epoch"]
        out[model] = {"epochs": totals[model], "done": max((int(r["epoch"]) for r in rows), default=0),
                      "losses": rows, "kept": _kept_epochs(folder, model)}
    return out


def _kept_epochs(folder: Path, model: str) -> list[int]:
    suffix = "ckpt" if model == "gpt" else "pth"
    names = (p.name.removeprefix(f"{model}-e").removesuffix(f".{suffix}")
             for p in (folder / "fit" / "epochs").glob(f"{model}-e*.{suffix}"))
    return sorted(int(n) for n in names if n.isdigit())


def _select(folder: Path) -> dict:
    scores = _read_json(folder / "select" / "scores.json")
    return {"report": "select/report.md" if (folder / "select" / "report.md").is_file() else None,
            "plot": "select/scores.png" if (folder / "select" / "scores.png").is_file() else None,
            "scores": scores if isinstance(scores, list) else []}


def _samples(folder: Path) -> list[dict]:
    base = folder / "fit" / "samples"
    kept = {m: set(_kept_epochs(folder, m)) for m in MODELS}
    rows = []
    for tag_dir in base.iterdir() if base.is_dir() else ():
        match = _SAMPLE_TAG.match(tag_dir.name)
        metrics = _read_json(tag_dir / "metrics.json")
        if match is None or not isinstance(metrics, dict):
            continue  # not a sample folder, or one still being written (metrics.json comes last)
        model, epoch = match.group(1), int(match.group(2))
        sentences = [{**row, "audio": f"fit/samples/{tag_dir.name}/{i}.wav"}
                     for i, row in enumerate(metrics.get("sentences", [])) if (tag_dir / f"{i}.wav").is_file()]
        rows.append({"tag": tag_dir.name, "model": model, "epoch": epoch, "weights": epoch in kept[model],
                     "sentences": sentences})
    return sorted(rows, key=lambda r: (MODELS.index(r["model"]), r["epoch"]))


def _epochs(body: dict) -> tuple[int, int]:
    out = []
    for key in ("sovits_epoch", "gpt_epoch"):
        value = body.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"must be 0 (the final weights) or a saved epoch; got {value!r}", key)
        out.append(value)
    return out[0], out[1]


def _package_problem(folder: Path, epochs: tuple[int, int], voices_dir: str) -> str | None:
    """Why packaging cannot start (a message), or None."""
    if not voices_dir:
        return "the daemon has no voices folder to package into (start it with --voices-dir)"
    if not (folder / "fit" / "done.json").is_file():
        return f"run {folder.name!r} has not finished its fit stage yet"
    for model, epoch in zip(MODELS, epochs, strict=True):
        if epoch and epoch not in _kept_epochs(folder, model):
            saved = ", ".join(map(str, _kept_epochs(folder, model))) or "none"
            return f"{model}_epoch: no {model} weights were kept at epoch {epoch} (saved epochs: {saved})"
    return None


async def _package_child(folder: Path, epochs: tuple[int, int], voices_dir: str) -> tuple[int, str]:
    """`gsvd train package` for the chosen epochs in a child process: (exit code, what it said)."""
    cmd = [sys.executable, "-m", "gsvd", "train", "package", "--workdir", str(folder), "--voices-dir", voices_dir,
           "--no-build", "--register=", "--sovits-epoch", str(epochs[0]), "--gpt-epoch", str(epochs[1]), "--force"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PACKAGE_TIMEOUT_S)
    except (TimeoutError, asyncio.CancelledError) as exc:
        proc.kill()  # the bundle is written atomically: nothing half-made is left
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        return -1, f"packaging took longer than {PACKAGE_TIMEOUT_S:.0f} s and was stopped"
    lines = [line for line in out.decode("utf-8", "replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return proc.returncode or 0, "\n".join(errors or lines[-12:])


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_jsonl(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line being appended right now
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _mtime(path: Path) -> str | None:
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return None
    return _dt.datetime.fromtimestamp(stamp, _dt.UTC).replace(microsecond=0).isoformat()


def _latest_change(folder: Path) -> str | None:
    """The newest mtime among the run's records (run.json, done.json files, loss logs)."""
    paths = [folder / "run.json", *(folder / s / "done.json" for s in STAGES),
             *(folder / "fit" / m / "losses.jsonl" for m in MODELS)]
    stamps = [p.stat().st_mtime for p in paths if p.is_file()]
    return _dt.datetime.fromtimestamp(max(stamps), _dt.UTC).replace(microsecond=0).isoformat() if stamps else None

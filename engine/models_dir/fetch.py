"""``gsvd models fetch``: download base models from the Hugging Face hub.

Per file: ask the hub for its metadata (HEAD .../resolve/<revision>/<path>: size,
commit and ETag, which for LFS files is the content sha256), download into
``<dest>.part`` with HTTP Range so an interrupted run resumes where it stopped,
verify the bytes against the hub's checksum (sha256, or the git blob sha1 of small
non-LFS files) and a pinned sha256 if the registry has one, then rename into place
and record sha256/size/commit in the lock file. A corrupt download is deleted, never
placed. ``HF_ENDPOINT`` (mirrors), ``HF_TOKEN`` and ``HF_HUB_OFFLINE`` are honoured.

huggingface_hub is imported inside the functions (it is the ``models`` extra).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from gsvd.engine.errors import GsvdError
from gsvd.engine.models_dir.registry import DEFAULT_SET, BaseModel, HubFile, model
from gsvd.engine.models_dir.store import ModelsDir

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


class FetchError(GsvdError):
    """A download failed (no network, not on the hub, checksum mismatch); the message says what to do."""


@dataclass(frozen=True)
class FetchResult:
    rel: str
    path: Path
    sha256: str
    size: int
    downloaded: bool
    """False when the file was already present and matched the hub's checksum."""
    resumed_from: int = 0
    """Bytes reused from an earlier interrupted download."""


@dataclass(frozen=True)
class _Remote:
    url: str
    size: int | None
    sha256: str | None
    git_sha1: str | None
    commit: str


def resolve_names(names: Iterable[str], all_models: bool = False) -> list[BaseModel]:
    """Registry entries for the names given (default set when none), deduplicated."""
    from gsvd.engine.errors import InvalidInput

    picked = list(names) or (["*"] if all_models else list(DEFAULT_SET))
    if picked == ["*"]:
        from gsvd.engine.models_dir.registry import MODELS

        return list(MODELS.values())
    out: list[BaseModel] = []
    for name in picked:
        try:
            entry = model(name)
        except KeyError as exc:
            raise InvalidInput(str(exc.args[0]), "name") from None
        if entry not in out:
            out.append(entry)
    return out


def fetch_models(
    entries: Iterable[BaseModel],
    models: ModelsDir,
    *,
    endpoint: str | None = None,
    revision: str = "main",
    token: str | None = None,
    progress: bool = True,
    on_file: Callable[[FetchResult], None] | None = None,
) -> list[FetchResult]:
    """Fetch every file of ``entries`` into ``models.root`` (files shared by two models once)."""
    done: dict[str, FetchResult] = {}
    for entry in entries:
        for hub_file in entry.files:
            if hub_file.path in done:
                continue
            result = fetch_file(
                entry.repo,
                hub_file,
                models,
                endpoint=endpoint,
                revision=revision,
                token=token,
                progress=progress,
            )
            done[hub_file.path] = result
            if on_file is not None:
                on_file(result)
    return list(done.values())


def fetch_file(
    repo: str,
    hub_file: HubFile,
    models: ModelsDir,
    *,
    endpoint: str | None = None,
    revision: str = "main",
    token: str | None = None,
    progress: bool = True,
) -> FetchResult:
    """Download one file (resuming a ``.part``), verify it, place it atomically."""
    _check_online(hub_file.path, models)
    remote = _remote_metadata(repo, hub_file.path, endpoint, revision, token)
    _check_pin(hub_file, remote)
    dest = models.root / hub_file.path
    if dest.is_file() and _matches(dest, remote) is not None:
        sha = _matches(dest, remote) or ""
        models.record(hub_file.path, sha, dest.stat().st_size, repo, remote.commit)
        return FetchResult(hub_file.path, dest, sha, dest.stat().st_size, downloaded=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    resumed = _download(remote, part, hub_file.path, token, progress)
    sha = _matches(part, remote)
    if sha is None:
        part.unlink(missing_ok=True)
        raise FetchError(
            f"{hub_file.path}: the downloaded bytes do not match the hub's checksum "
            f"({'sha256 ' + remote.sha256 if remote.sha256 else 'git sha1 ' + str(remote.git_sha1)}); "
            "the corrupt file was deleted; run the command again"
        )
    _fsync(part)
    os.replace(part, dest)
    size = dest.stat().st_size
    models.record(hub_file.path, sha, size, repo, remote.commit)
    return FetchResult(hub_file.path, dest, sha, size, downloaded=True, resumed_from=resumed)


def _offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.strip().upper() in ("1", "ON", "YES", "TRUE") or constants.is_offline_mode()


def _check_online(rel: str, models: ModelsDir) -> None:
    if _offline():
        raise FetchError(
            f"offline mode is on (HF_HUB_OFFLINE): cannot download {rel}. Unset HF_HUB_OFFLINE, or copy the "
            f"file to {models.root / rel}, or use `gsvd models link /path/to/GPT-SoVITS`"
        )


def _remote_metadata(repo: str, rel: str, endpoint: str | None, revision: str, token: str | None) -> _Remote:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    url = hf_hub_url(repo, rel, revision=revision, endpoint=endpoint)
    host = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    try:
        meta = get_hf_file_metadata(url, token=token, timeout=30)
    except OfflineModeIsEnabled:
        raise FetchError(f"offline mode is on (HF_HUB_OFFLINE): cannot download {rel}") from None
    except (EntryNotFoundError, RevisionNotFoundError, RepositoryNotFoundError) as exc:
        raise FetchError(
            f"{repo}/{rel} at revision {revision!r} is not on {host}: {_first_line(exc)}"
        ) from None
    except HfHubHTTPError as exc:
        raise FetchError(f"the hub refused {repo}/{rel}: {_first_line(exc)}") from None
    except _network_errors() as exc:
        raise FetchError(
            f"cannot reach {host} to download {rel} ({type(exc).__name__}): check the network or set "
            "HF_ENDPOINT to a reachable mirror; or copy the files by hand and run `gsvd models link PATH`"
        ) from None
    etag = (meta.etag or "").lower()
    return _Remote(
        url=meta.location,
        size=meta.size,
        sha256=etag if _SHA256.fullmatch(etag) else None,
        git_sha1=etag if _SHA1.fullmatch(etag) else None,
        commit=meta.commit_hash or revision,
    )


def _check_pin(hub_file: HubFile, remote: _Remote) -> None:
    if hub_file.sha256 and remote.sha256 and hub_file.sha256 != remote.sha256:
        raise FetchError(
            f"{hub_file.path}: the hub now serves sha256 {remote.sha256}, but gsvd pins {hub_file.sha256}; "
            "refusing to download a file that differs from the known release"
        )
    if remote.sha256 is None and remote.git_sha1 is None and hub_file.sha256 is None:
        raise FetchError(f"{hub_file.path}: the hub gave no checksum (ETag); cannot verify a download")


def _download(remote: _Remote, part: Path, rel: str, token: str | None, progress: bool) -> int:
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    if part.exists() and remote.size is not None and part.stat().st_size > remote.size:
        part.unlink()
    resumed = part.stat().st_size if part.exists() else 0
    _set_progress(progress)
    try:
        with open(part, "ab") as f:
            http_get(
                remote.url,
                f,
                resume_size=resumed,
                headers=build_hf_headers(token=token),
                expected_size=remote.size,
                displayed_filename=rel,
            )
    except (*_network_errors(), HfHubHTTPError, OSError) as exc:
        kept = part.stat().st_size if part.exists() else 0
        raise FetchError(
            f"download of {rel} was interrupted ({_first_line(exc)}); {kept} bytes are kept in {part}: "
            "run the same command again to resume"
        ) from None
    return resumed


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection/timeout error classes of whichever HTTP client huggingface_hub uses."""
    found: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx", "requests"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        for attr in ("TransportError", "TimeoutException", "ConnectionError", "Timeout"):
            cls = getattr(module, attr, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found.append(cls)
    return tuple(found) or (OSError,)


def _set_progress(enabled: bool) -> None:
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    (enable_progress_bars if enabled else disable_progress_bars)()


def _matches(path: Path, remote: _Remote) -> str | None:
    """The file's sha256 when it matches the remote checksum (and size), else None."""
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return None
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            sha256.update(block)
            sha1.update(block)
    if remote.sha256 is not None:
        return sha256.hexdigest() if sha256.hexdigest() == remote.sha256 else None
    return sha256.hexdigest() if sha1.hexdigest() == remote.git_sha1 else None


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""gsvd models fetch against a mock hub on loopback: resume, checksums, errors."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from gsvd.engine.models_dir.fetch import FetchError, fetch_file, fetch_models, resolve_names
from gsvd.engine.models_dir.registry import HF_REPO, HubFile, model
from gsvd.engine.models_dir.store import ModelsDir

BIG = "gsv-v2final-pretrained/s2G2333k.pth"
SMALL = "chinese-hubert-base/config.json"


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stream in 1000-byte chunks so an interruption keeps every byte received before it."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1000)


def _payload(n: int, seed: int = 0) -> bytes:
    out = b""
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{len(out)}".encode()).digest()
    return out[:n]


def _serve_all(hub, size: int = 3000) -> dict[str, bytes]:
    """Tiny stand-ins for every registry file (config/json files as non-LFS)."""
    from gsvd.engine.models_dir.registry import MODELS

    data = {}
    for entry in MODELS.values():
        for i, f in enumerate(entry.files):
            blob = _payload(size + i, seed=hash(f.path) % 1000)
            hub.add(HF_REPO, f.path, blob, lfs=not f.path.endswith(".json"))
            data[f.path] = blob
    return data


def test_fetch_places_verifies_and_records(tmp_path: Path, mock_hub) -> None:
    data = _serve_all(mock_hub)
    md = ModelsDir(tmp_path / "models")
    results = fetch_models(resolve_names(["hubert", "v2"]), md, endpoint=mock_hub.url, progress=False)
    assert [r.rel for r in results] == [
        f.path for f in model("chinese-hubert-base").files + model("v2").files
    ]
    for r in results:
        assert r.downloaded and r.path.read_bytes() == data[r.rel]
        assert r.sha256 == hashlib.sha256(data[r.rel]).hexdigest()
    lock = md.recorded()
    assert lock[BIG]["sha256"] == hashlib.sha256(data[BIG]).hexdigest()
    assert lock[BIG]["revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert md.status("v2").state == "present" and md.status("sv").state == "missing"
    assert not list((tmp_path / "models").rglob("*.part"))
    # second run: nothing downloaded again
    n_gets = len([r for r in mock_hub.requests if r[0] == "GET"])
    again = fetch_models(resolve_names(["v2"]), md, endpoint=mock_hub.url, progress=False)
    assert [r.downloaded for r in again] == [False, False]
    assert len([r for r in mock_hub.requests if r[0] == "GET"]) == n_gets


def test_shared_file_fetched_once(tmp_path: Path, mock_hub) -> None:
    _serve_all(mock_hub)
    md = ModelsDir(tmp_path)
    results = fetch_models(resolve_names(["v2Pro", "v2ProPlus"]), md, endpoint=mock_hub.url, progress=False)
    assert [r.rel for r in results] == ["s1v3.ckpt", "v2Pro/s2Gv2Pro.pth", "v2Pro/s2Gv2ProPlus.pth"]
    assert mock_hub.gets("s1v3.ckpt") == [None]


def test_interrupted_download_resumes_on_next_run(tmp_path: Path, mock_hub) -> None:
    data = _serve_all(mock_hub, size=50_000)
    md = ModelsDir(tmp_path)
    mock_hub.drop_after[BIG] = 12_000
    mock_hub.fail_after_drop = True  # the network goes away after the drop
    with pytest.raises(FetchError, match="interrupted.*run the same command again to resume"):
        fetch_file(HF_REPO, HubFile(BIG), md, endpoint=mock_hub.url, progress=False)
    part = tmp_path / (BIG + ".part")
    assert part.stat().st_size == 12_000 and not (tmp_path / BIG).exists()
    mock_hub.failing = False
    result = fetch_file(HF_REPO, HubFile(BIG), md, endpoint=mock_hub.url, progress=False)
    assert result.resumed_from == 12_000
    assert mock_hub.gets(BIG)[-1] == "bytes=12000-"
    assert (tmp_path / BIG).read_bytes() == data[BIG] and not part.exists()


def test_dropped_connection_is_resumed_in_the_same_run(tmp_path: Path, mock_hub) -> None:
    data = _serve_all(mock_hub, size=40_000)
    mock_hub.drop_after[BIG] = 5_000
    result = fetch_file(HF_REPO, HubFile(BIG), ModelsDir(tmp_path), endpoint=mock_hub.url, progress=False)
    assert result.path.read_bytes() == data[BIG]
    assert mock_hub.gets(BIG) == [None, "bytes=5000-"]


def test_stale_part_larger_than_remote_is_discarded(tmp_path: Path, mock_hub) -> None:
    data = _serve_all(mock_hub)
    part = tmp_path / (BIG + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 10_000)
    result = fetch_file(HF_REPO, HubFile(BIG), ModelsDir(tmp_path), endpoint=mock_hub.url, progress=False)
    assert result.resumed_from == 0 and result.path.read_bytes() == data[BIG]


@pytest.mark.parametrize("rel", [BIG, SMALL])
def test_corrupt_download_is_rejected(tmp_path: Path, mock_hub, rel: str) -> None:
    _serve_all(mock_hub)
    mock_hub.corrupt.add(rel)
    with pytest.raises(FetchError, match="do not match the hub's checksum.*deleted"):
        fetch_file(HF_REPO, HubFile(rel), ModelsDir(tmp_path), endpoint=mock_hub.url, progress=False)
    assert not (tmp_path / rel).exists() and not (tmp_path / (rel + ".part")).exists()
    assert ModelsDir(tmp_path).recorded() == {}


def test_corrupt_resumed_part_is_rejected(tmp_path: Path, mock_hub) -> None:
    data = _serve_all(mock_hub)
    part = tmp_path / (BIG + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 1000)  # wrong bytes left by some earlier run
    with pytest.raises(FetchError, match="checksum"):
        fetch_file(HF_REPO, HubFile(BIG), ModelsDir(tmp_path), endpoint=mock_hub.url, progress=False)
    result = fetch_file(HF_REPO, HubFile(BIG), ModelsDir(tmp_path), endpoint=mock_hub.url, progress=False)
    assert result.path.read_bytes() == data[BIG]


def test_existing_modified_file_is_replaced(tmp_path: Path, mock_hub) -> None:
    data = _serve_all(mock_hub)
    dest = tmp_path / BIG
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old")
    result = fetch_file(HF_REPO, HubFile(BIG), ModelsDir(tmp_path), endpoint=mock_hub.url, progress=False)
    assert result.downloaded and dest.read_bytes() == data[BIG]


def test_pinned_checksum_mismatch(tmp_path: Path, mock_hub) -> None:
    _serve_all(mock_hub)
    with pytest.raises(FetchError, match="gsvd pins"):
        fetch_file(
            HF_REPO, HubFile(BIG, sha256="0" * 64), ModelsDir(tmp_path), endpoint=mock_hub.url, progress=False
        )
    assert mock_hub.gets(BIG) == []


def test_not_on_hub(tmp_path: Path, mock_hub) -> None:
    _serve_all(mock_hub)
    with pytest.raises(FetchError, match="is not on"):
        fetch_file(HF_REPO, HubFile("nope.ckpt"), ModelsDir(tmp_path), endpoint=mock_hub.url, progress=False)
    with pytest.raises(FetchError, match="is not on"):
        fetch_file("someone/else", HubFile(BIG), ModelsDir(tmp_path), endpoint=mock_hub.url, progress=False)


def test_no_network_message(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match=r"cannot reach http://127.0.0.1:\d+ .*HF_ENDPOINT"):
        fetch_file(
            HF_REPO, HubFile(BIG), ModelsDir(tmp_path), endpoint=f"http://127.0.0.1:{port}", progress=False
        )


def test_offline_mode_message(tmp_path: Path, mock_hub, monkeypatch: pytest.MonkeyPatch) -> None:
    _serve_all(mock_hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FetchError, match="offline mode is on"):
        fetch_file(HF_REPO, HubFile(BIG), ModelsDir(tmp_path), endpoint=mock_hub.url, progress=False)
    assert mock_hub.requests == []


def test_hf_endpoint_env_is_honoured(tmp_path: Path, mock_hub) -> None:
    data = _serve_all(mock_hub)
    code = (
        "from gsvd.engine.models_dir.fetch import fetch_file;"
        "from gsvd.engine.models_dir.registry import HubFile;"
        "from gsvd.engine.models_dir.store import ModelsDir;"
        f"fetch_file('{HF_REPO}', HubFile('{SMALL}'), ModelsDir({str(tmp_path)!r}), progress=False)"
    )
    import subprocess
    import sys

    env = dict(os.environ, HF_ENDPOINT=mock_hub.url)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert (tmp_path / SMALL).read_bytes() == data[SMALL]


def test_resolve_names() -> None:
    assert [m.name for m in resolve_names([])] == [
        "chinese-hubert-base",
        "chinese-roberta-wwm-ext-large",
        "v2",
    ]
    assert len(resolve_names([], all_models=True)) >= 9
    assert [m.name for m in resolve_names(["bert", "roberta", "sv"])] == [
        "chinese-roberta-wwm-ext-large",
        "sv",
    ]
    from gsvd.engine.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown base model 'v9'"):
        resolve_names(["v9"])

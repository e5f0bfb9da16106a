"""A mock Hugging Face hub on loopback, enough for huggingface_hub's metadata + download calls.

Speaks HEAD/GET ``/<org>/<repo>/resolve/<revision>/<path>`` with the headers
huggingface_hub reads (X-Repo-Commit, ETag / X-Linked-Etag / X-Linked-Size), Range
requests (206), hub error codes (404 + X-Error-Code), and test switches: serve
corrupt bytes, drop the connection after N bytes, fail hard after a drop.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_ROUTE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class MockHub:
    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}
        self.lfs: set[str] = set()
        self.corrupt: set[str] = set()
        self.drop_after: dict[str, int] = {}
        self.fail_after_drop = False
        self.failing = False
        self.requests: list[tuple[str, str, str | None]] = []
        self._server: ThreadingHTTPServer | None = None

    def add(self, repo: str, path: str, data: bytes, lfs: bool = True) -> None:
        self.files[(repo, path)] = data
        if lfs:
            self.lfs.add(path)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def gets(self, path: str) -> list[str | None]:
        """Range headers of the GETs of ``path`` (None = whole file)."""
        return [rng for method, p, rng in self.requests if method == "GET" and p == path]

    def start(self) -> None:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    hub: MockHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        m = _ROUTE.match(urlsplit(self.path).path)
        rel = unquote(m["file"]) if m else self.path
        self.hub.requests.append((self.command, rel, self.headers.get("Range")))
        if self.hub.failing:
            return self._error(503, None)
        if m is None or not any(repo == m["repo"] for repo, _ in self.hub.files):
            return self._error(404, "RepoNotFound")
        data = self.hub.files.get((m["repo"], rel))
        if data is None:
            return self._error(404, "EntryNotFound")
        if body:
            return self._send_body(rel, data)
        self.send_response(200)
        self._meta_headers(rel, data)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()

    def _meta_headers(self, rel: str, data: bytes) -> None:
        self.send_header("X-Repo-Commit", COMMIT)
        if rel in self.hub.lfs:
            sha = hashlib.sha256(data).hexdigest()
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", f'"{sha}"')
        else:
            blob = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
            self.send_header("ETag", f'"{blob}"')

    def _send_body(self, rel: str, data: bytes) -> None:
        if rel in self.hub.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self._meta_headers(rel, data)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        drop = self.hub.drop_after.pop(rel, None)
        if drop is None:
            self.wfile.write(data[start:])
            return
        self.wfile.write(data[start : start + drop])
        self.wfile.flush()
        self.hub.failing = self.hub.fail_after_drop
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _error(self, status: int, code: str | None) -> None:
        msg = b'{"error": "not found"}' if status == 404 else b'{"error": "unavailable"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", str(len(msg)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(msg)


@pytest.fixture
def mock_hub() -> Iterator[MockHub]:
    hub = MockHub()
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(autouse=True)
def _isolated_hf(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real hub, no user token, no user caches."""
    home = tmp_path_factory.mktemp("hfhome")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("GSVD_HOME", str(home / "gsvd"))
    monkeypatch.delenv("GSVD_MODELS_DIR", raising=False)
    monkeypatch.delenv("GSVD_VOICES_DIR", raising=False)

"""Shared pieces of the attack tests (tests/daemon/test_attacks_*.py): a guarded daemon with short timeouts,
raw HTTP over a socket (for requests no client library sends), a WebSocket session runner, and the checks every
attack ends with -- no slot held, no traceback logged, no server path or token in what a client reads."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import logging
import socket
import time
import uuid
import wave
from collections.abc import Iterable

import aiohttp
import numpy as np
import pytest

from .conftest import start_daemon

USER, ADMIN = "user-token-3f9a", "admin-token-77c1"
TOKENS = (USER, ADMIN)
OPTS = {"seed": 1, "top_k": 5, "language": "en", "max_new_tokens": 10}
CONSENT_FORM = {"consent_speaker": "Test Speaker", "consent_use": "tests", "consent_date": "2026-01-01",
                "consent_by": "gsvd tests"}


def wav_bytes(seconds: float = 4.0, rate: int = 16000, channels: int = 1) -> bytes:
    pcm = (np.random.default_rng(0).uniform(-0.3, 0.3, (int(seconds * rate), channels)) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def multipart(fields: dict[str, str | bytes], audio: bytes | None = None, boundary: str | None = None
              ) -> tuple[bytes, str]:
    boundary = boundary or uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        value = v if isinstance(v, bytes) else v.encode()
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode() + value + b"\r\n")
    if audio is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="c.wav"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + audio + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload_form(**change) -> tuple[bytes, str]:
    fields = {"name": "zs", "base_voice": "alice", "transcript": "Hello there.", "language": "en", **CONSENT_FORM}
    audio = change.pop("audio", wav_bytes())
    return multipart({**fields, **change}, audio)


def armed_daemon(root, **settings):
    """A daemon with a user and an admin token, the gateway, an audit log, a runs folder, 2 MB messages and
    short timeouts (slow reader / idle input 2 s, headers and bodies 1 s)."""
    (root / "runs").mkdir(parents=True, exist_ok=True)
    base = dict(token=USER, admin_token=ADMIN, http_port=0, max_streams=3, max_message_mb=2,
                audit_log=str(root / "audit.jsonl"), runs_dir=str(root / "runs"), slow_reader_timeout_s=2.0,
                idle_input_timeout_s=2.0, header_timeout_s=1.0, body_timeout_s=1.0, max_text_chars=300)
    return start_daemon(root, **{**base, **settings})


def daemon_fixture(name: str, armed: bool = True, prepare=None, **settings):
    """A module-scoped fixture: `armed_daemon` (or, with armed=False, a tokenless --no-auth daemon with the
    gateway and 3 slots) in a fresh folder that `prepare(root)` may fill first."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory):
        root = tmp_path_factory.mktemp(name)
        if prepare is not None:
            prepare(root)
        running = armed_daemon(root, **settings) if armed else start_daemon(root, **{"http_port": 0,
                                                                                      "max_streams": 3, **settings})
        yield running
        running.stop()

    return fixture


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def request(running, method: str, path: str, body: bytes | dict | None = None, token: str | None = USER,
            headers: dict[str, str] | None = None, timeout: float = 60, head_only: bool = False
            ) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one HTTP call to the gateway (http.client: headers exactly as given); with
    `head_only` the body is cut after its first bytes and the connection closed (a stream's slot is freed)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    conn = http.client.HTTPConnection("127.0.0.1", running.daemon.http_port, timeout=timeout)
    try:
        hdrs = {**({"Content-Type": "application/json"} if isinstance(body, dict) else {}), **auth(token),
                **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(64) if head_only else resp.read()
    finally:
        conn.close()


def json_error(status: int, head: dict, body: bytes) -> dict:
    """The `error` object of a JSON error answer (asserts the shape every 4xx answer has)."""
    assert head.get("content-type", "").startswith("application/json"), (status, head, body[:300])
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "code"} and error["message"], error
    return error


def raw(running, data: bytes, wait: float = 5.0, drip: Iterable[bytes] = (), drip_every: float = 0.0
        ) -> tuple[bytes, str, float]:
    """Send `data` over a plain socket (then each of `drip`, `drip_every` seconds apart) and read until the
    server closes or `wait` seconds pass: (bytes read, "closed" | "reset" | "open", seconds until then)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", running.daemon.http_port), timeout=wait) as sock:
        out, how = b"", "open"
        try:
            sock.sendall(data)
            for piece in drip:
                time.sleep(drip_every)
                sock.sendall(piece)
        except (ConnectionResetError, BrokenPipeError):
            how = "reset"  # the server closed while we were sending; read what it answered before that
        try:
            sock.settimeout(max(0.1, wait - (time.monotonic() - t0)))
            while chunk := sock.recv(1 << 16):
                out += chunk
            how = "closed" if how == "open" else how
        except ConnectionResetError:
            how = "reset"
        except TimeoutError:
            pass
        return out, how, time.monotonic() - t0


def ws_session(running, messages: Iterable, headers: dict[str, str] | None = None, protocols: tuple[str, ...] = (),
               timeout: float = 60, after=None) -> tuple[list, int | None]:
    """Open /v1/ws, send `messages` (dict -> JSON text, str -> text, bytes -> binary), call `after(ws)` if given,
    then read to the end: (each frame as a dict for JSON text or "BINARY", the close code)."""

    async def run():
        url = f"http://127.0.0.1:{running.daemon.http_port}/v1/ws"
        async with aiohttp.ClientSession() as s, s.ws_connect(url, headers=headers or {}, protocols=protocols,
                                                              max_msg_size=0) as ws:
            for m in messages:
                if isinstance(m, bytes):
                    await ws.send_bytes(m)
                else:
                    await ws.send_str(m if isinstance(m, str) else json.dumps(m))
            if after is not None:
                await after(ws)
            frames = []
            async for msg in ws:
                frames.append(json.loads(msg.data) if msg.type == aiohttp.WSMsgType.TEXT else msg.type.name)
            return frames, ws.close_code

    return asyncio.run(asyncio.wait_for(run(), timeout))


def no_slot_held(running, within: float = 15.0) -> None:
    """Every slot free again: the daemon holds no stream, the runtime none active, queued or taken."""
    deadline = time.monotonic() + within
    while True:
        stats = running.engine.stats()
        held = running.daemon.service.runner.active
        if held == 0 and stats["active_streams"] == 0 and stats["queued"] == 0 and \
                stats["slots_free"] == stats["slots_total"]:
            return
        assert time.monotonic() < deadline, f"slots still held: daemon {held}, runtime {stats}"
        time.sleep(0.05)


def assert_clean(text: str, running=None) -> None:
    """What a client read names no server folder, no token and no traceback."""
    assert "Traceback" not in text and 'File "' not in text, text[:2000]
    for token in TOKENS:
        assert token not in text, text[:2000]
    if running is not None and running.voices_dir is not None:
        root = running.voices_dir.parent
        assert str(root) not in text and str(root.resolve()) not in text, text[:2000]


class LogCapture(logging.Handler):
    """Every record of the loggers the daemon and aiohttp write to, formatted with its traceback."""

    NAMES = ("gsvd", "aiohttp", "grpc")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def __enter__(self) -> LogCapture:
        for name in self.NAMES:
            logger = logging.getLogger(name)
            logger.addHandler(self)
            self._levels = getattr(self, "_levels", {}) | {name: logger.level}
            logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc) -> None:
        for name in self.NAMES:
            logging.getLogger(name).removeHandler(self)
            logging.getLogger(name).setLevel(self._levels[name])

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

"""HTTP gateway (OpenAI speech + WebSocket), bearer-token auth on/off, admin token, TLS."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import wave

import grpc
import pytest

from gsvd.clients import Client

from .conftest import start_daemon


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    running = start_daemon(tmp_path_factory.mktemp("sec"), token="user-token", admin_token="admin-token", http_port=0,
                           max_streams=4)
    yield running
    running.stop()


def _http(running, path, body=None, token="user-token"):
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{running.daemon.http_port}{path}",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()


def test_openai_speech_wav_and_stream(secured):
    status, ctype, data = _http(secured, "/v1/audio/speech", {"model": "gsvd", "input": "Hello there.", "voice": "alice",
                                                              "response_format": "wav"})
    assert status == 200 and ctype == "audio/wav"
    with wave.open(io.BytesIO(data)) as w:
        assert w.getframerate() == 32000 and w.getnframes() > 0
    status, ctype, data = _http(secured, "/v1/audio/speech", {"model": "gsvd", "input": "Hello.", "voice": "alice",
                                                              "response_format": "pcm", "stream": True})
    assert status == 200 and ctype == "audio/pcm" and len(data) > 0 and len(data) % 2 == 0


@pytest.mark.parametrize("body, code, needle", [
    ({"input": "hi", "voice": "nobody"}, 404, "nobody"),
    ({"input": "hi", "voice": "alice", "response_format": "mp3"}, 400, "response_format"),
    ({"input": "", "voice": "alice"}, 400, "text"),
    ({"input": "hi", "voice": "alice", "speed": 9}, 400, "speed"),
])
def test_speech_errors(secured, body, code, needle):
    status, _, data = _http(secured, "/v1/audio/speech", body)
    assert status == code and needle in json.loads(data)["error"]["message"]


def test_http_needs_token(secured):
    status, _, _ = _http(secured, "/v1/audio/speech", {"input": "hi", "voice": "alice"}, token=None)
    assert status == 401


def test_websocket_stream(secured):
    import asyncio

    import aiohttp

    async def run():
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer user-token"}) as s:
            async with s.ws_connect(f"http://127.0.0.1:{secured.daemon.http_port}/v1/ws") as ws:
                await ws.send_json({"voice": "alice", "options": {"seed": 1, "max_new_tokens": 30, "language": "en"},
                                    "sample_rate": 16000})
                for piece in ["Hello ", "there. ", "Bye."]:
                    await ws.send_json({"text": piece})
                await ws.send_json({"end": True})
                events, audio = [], 0
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        events.append(json.loads(msg.data))
                        if events[-1]["type"] in ("end", "error"):
                            break
                    else:
                        audio += len(msg.data)
                return events, audio

    events, audio = asyncio.run(run())
    label = events[0].pop("label")
    assert events[0] == {"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1}
    assert label["ai_generated"] is True and label["voice"] == "alice"
    assert events[-1]["type"] == "end" and audio > 0
    chunks = [e for e in events if e["type"] == "chunk"]
    assert chunks[-1]["is_final"] and [c["sequence"] for c in chunks] == list(range(len(chunks)))


def test_grpc_auth_and_admin_token(secured):
    with Client(secured.address) as anon, pytest.raises(grpc.RpcError) as info:
        anon.voices()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with Client(secured.address, token="user-token") as user:
        assert {v.name for v in user.voices()} >= {"alice"}
        with pytest.raises(grpc.RpcError) as info:
            user.unload_voice("bob")
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED and "admin" in info.value.details()
    with Client(secured.address, token="admin-token") as admin:
        admin.unload_voice("bob")
        assert "bob" not in {v.name for v in admin.voices()}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not available to make a test certificate")
def test_tls(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    running = start_daemon(tmp_path, tls_cert=str(cert), tls_key=str(key))
    try:
        with Client(running.address, tls_ca=cert.read_bytes()) as c:
            assert {v.name for v in c.voices()} >= {"alice"}
            pcm, _ = c.synthesize("Hi there.", "alice", seed=1, max_new_tokens=20, language="en")
            assert len(pcm) > 0
        with Client(running.address) as plain, pytest.raises(grpc.RpcError):
            plain.voices()
    finally:
        running.stop()

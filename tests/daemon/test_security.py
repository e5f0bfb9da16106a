"""Security of a running daemon (issue 20, items 1-5 and the daemon CLI part of 18): who may manage
voices, TLS on every listener, how tokens are compared and where they come from, the one bundle-path
rule, busy or out-of-range ports, and the CLI's messages for set-up mistakes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys

import aiohttp
import grpc
import pytest

from gsvd.clients import Client
from gsvd.daemon.auth import Auth, bearer_token, is_loopback
from gsvd.daemon.config import DaemonConfig
from gsvd.engine.errors import InvalidInput
from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

from .certs import make_certs
from .conftest import start_daemon

ENV = dict(os.environ, GSVD_DEVICE="cpu", GSVD_GRACE_S="1", COLUMNS="200")


@pytest.fixture(scope="module")
def token_only(tmp_path_factory):
    """--token without --admin-token; its voices folder holds a symlink to a bundle outside it and an
    alias symlink to a bundle inside it."""
    from gsvd.engine.testing.bundle import write_tiny_voice

    root = tmp_path_factory.mktemp("token_only")
    write_tiny_voice(root / "outside", "evil", seed=2)
    (root / "voices").mkdir()
    (root / "voices" / "evil").symlink_to(root / "outside" / "evil", target_is_directory=True)
    running = start_daemon(root, token="user-token", http_port=0, max_streams=4)
    (root / "voices" / "alias").symlink_to("alice", target_is_directory=True)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tokenless(tmp_path_factory):
    running = start_daemon(tmp_path_factory.mktemp("tokenless"), no_auth=False, max_streams=4)
    yield running
    running.stop()


def _stub(running):
    return pbg.SynthesizerStub(grpc.insecure_channel(running.address))


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


# ------------------------------------------------------------ 1: admin calls are never open by accident


def test_token_alone_guards_voice_management(token_only):
    stub = _stub(token_only)
    code, details = _code(lambda: stub.UnloadVoice(pb.UnloadVoiceRequest(name="bob"), timeout=10))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "token" in details
    code, _ = _code(lambda: stub.LoadVoice(pb.LoadVoiceRequest(name="x", bundle_path="alice"), timeout=30))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = _code(lambda: stub.UnloadVoice(pb.UnloadVoiceRequest(name="bob"), timeout=10,
                                             metadata=(("authorization", "Bearer wrong"),)))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    with Client(token_only.address, token="user-token") as c:
        assert {"alice", "bob"} <= {v.name for v in c.voices()}  # nothing was unloaded
        assert c.load_voice("alice", name="alice2").name == "alice2"  # the only token is the admin token
        c.unload_voice("alice2")
        assert "alice2" not in {v.name for v in c.voices()}


def test_no_token_refuses_voice_management_but_serves(tokenless):
    stub = _stub(tokenless)
    code, details = _code(lambda: stub.UnloadVoice(pb.UnloadVoiceRequest(name="bob"), timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "--admin-token" in details and "--no-auth" in details
    code, _ = _code(lambda: stub.LoadVoice(pb.LoadVoiceRequest(name="x", bundle_path="alice"), timeout=30))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    with Client(tokenless.address) as c:
        assert {"alice", "bob"} <= {v.name for v in c.voices()}
        pcm, _ = c.synthesize("Hi.", "alice", seed=1, max_new_tokens=10, language="en")
        assert len(pcm) > 0


def test_no_auth_opens_voice_management_on_loopback_only(tmp_path):
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.5"):
        assert DaemonConfig.load(env={}, host=host, no_auth=True).no_auth
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        with pytest.raises(InvalidInput, match="loopback"):
            DaemonConfig.load(env={}, host=host, no_auth=True)
    with pytest.raises(InvalidInput, match="no_auth cannot be combined"):
        DaemonConfig.load(env={}, no_auth=True, admin_token="a")
    with pytest.raises(InvalidInput, match="loopback"):
        DaemonConfig.load(env={"GSVD_NO_AUTH": "true", "GSVD_HOST": "0.0.0.0"})
    assert Auth(no_auth=True).check(None, admin=True) is None
    assert is_loopback("[::1]") and not is_loopback("10.0.0.1")


def test_serve_logs_no_auth_and_warns_of_a_missing_voices_dir(tmp_path):
    missing = tmp_path / "no-such-folder"
    proc = subprocess.Popen([sys.executable, "-m", "gsvd", "serve", "--port", "0", "--no-auth", "--voices-dir",
                             str(missing)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        line = proc.stdout.readline()
        assert line.startswith("gsvd serving on"), line + proc.stderr.read()[-2000:]
        with Client(line.split()[-1]) as c:  # answers once started
            assert list(c.voices()) == []
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "authentication is off (--no-auth)" in err
    assert "WARNING" in err and f"voices folder {missing} does not exist" in err


# ------------------------------------------------------------ 3: comparison, scheme, token sources


def test_bearer_scheme_is_case_insensitive_on_every_transport(token_only):
    assert bearer_token("bearer abc") == bearer_token("BEARER  abc ") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token("Bearer") is None and bearer_token("") is None
    with Client(token_only.address) as c:
        reply = c.stub.ListVoices(pb.ListVoicesRequest(), metadata=(("authorization", "bearer user-token"),), timeout=10)
    assert "alice" in {v.name for v in reply.voices}

    async def get(header):
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{token_only.daemon.http_port}/v1/voices",
                             headers={"Authorization": header} if header else {}) as r:
                return r.status, await r.json()

    assert asyncio.run(get("BEARER user-token"))[0] == 200
    for header in (None, "Basic user-token", "Bearer user-tokenX", "Bearer"):
        status, body = asyncio.run(get(header))
        assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED", header


def test_every_allowed_token_is_compared_in_constant_time(monkeypatch):
    import hmac

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("gsvd.daemon.auth.hmac.compare_digest", spy)
    auth = Auth(token="user", admin_token="admin")
    auth.check("Bearer user")  # matches the first token: the second is compared all the same
    assert calls == [(b"user", b"user"), (b"user", b"admin")]
    calls.clear()
    with pytest.raises(Exception, match="admin token"):
        auth.check("Bearer user", admin=True)
    assert (b"user", b"admin") in calls
    auth.check("Bearer admin", admin=True)


def test_tokens_from_files_and_the_environment(tmp_path):
    user, admin = tmp_path / "user.token", tmp_path / "admin.token"
    user.write_text("u-secret\n")
    admin.write_text("a-secret")
    user.chmod(0o600)
    admin.chmod(0o600)
    cfg = DaemonConfig.load(env={"GSVD_ADMIN_TOKEN_FILE": str(admin)}, token_file=str(user))
    assert (cfg.token, cfg.admin_token) == ("u-secret", "a-secret")
    assert "secret" not in repr(cfg)
    cfg = DaemonConfig.load(env={"GSVD_TOKEN": "env-user", "GSVD_ADMIN_TOKEN": "env-admin"})
    assert (cfg.token, cfg.admin_token) == ("env-user", "env-admin")
    with pytest.raises(InvalidInput, match="not both"):
        DaemonConfig.load(env={"GSVD_TOKEN": "x"}, token_file=str(user))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InvalidInput, match="empty"):
        DaemonConfig.load(env={}, admin_token_file=str(tmp_path / "empty"))
    with pytest.raises(InvalidInput, match="cannot read"):
        DaemonConfig.load(env={}, token_file=str(tmp_path / "missing"))
    with pytest.raises(InvalidInput, match="visible ASCII"):
        DaemonConfig.load(env={}, token="two words")


def test_token_file_guards_a_running_daemon(tmp_path):
    (tmp_path / "admin.token").write_text("from-a-file\n")
    (tmp_path / "admin.token").chmod(0o600)
    running = start_daemon(tmp_path, admin_token_file=str(tmp_path / "admin.token"))
    try:
        with Client(running.address) as anon:
            code, _ = _code(lambda: anon.unload_voice("bob"))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        with Client(running.address, token="from-a-file") as admin:
            admin.unload_voice("bob")
            assert "bob" not in {v.name for v in admin.voices()}
    finally:
        running.stop()


# ------------------------------------------------------------ 4: one bundle-path rule


def test_symlink_out_of_the_voices_dir_is_refused_at_start_and_by_load_voice(token_only):
    with Client(token_only.address, token="user-token") as c:
        names = {v.name for v in c.voices()}
        assert "evil" not in names and {"alice", "bob"} <= names
        code, details = _code(lambda: c.load_voice("evil"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "voices directory" in details
        code, _ = _code(lambda: c.load_voice(str(token_only.voices_dir / "evil")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert c.load_voice("alias", name="alias").name == "alias"  # a symlink inside the folder is fine
        c.unload_voice("alias")


def test_start_skips_a_second_folder_of_the_same_voice(tmp_path, caplog):
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "alias").symlink_to("alice", target_is_directory=True)  # alice is written next
    caplog.set_level("ERROR", logger="gsvd.daemon")
    running = start_daemon(tmp_path)
    try:
        with Client(running.address) as c:
            assert sorted(v.name for v in c.voices()) == ["alice", "bob"]
        assert any("already loaded from another folder" in r.getMessage() for r in caplog.records)
    finally:
        running.stop()


# ------------------------------------------------------------ 2: TLS and mutual TLS on both listeners


@pytest.fixture(scope="module")
def mtls(tmp_path_factory):
    root = tmp_path_factory.mktemp("mtls")
    certs = make_certs(root / "certs")
    running = start_daemon(root, tls_cert=str(certs.server_cert), tls_key=str(certs.server_key),
                           tls_client_ca=str(certs.ca), http_port=0, max_streams=4)
    yield running, certs
    running.stop()


def _client_context(certs, cert=None, key=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _fetch(url: str, ctx: ssl.SSLContext | bool | None, body: dict | None = None):
    async def run():
        async with aiohttp.ClientSession() as s:
            if body is None:
                async with s.get(url, ssl=ctx) as r:
                    return r.status, await r.read()
            async with s.post(url, json=body, ssl=ctx) as r:
                return r.status, await r.read()

    return asyncio.run(run())


def test_gateway_serves_https_with_client_certificates_only(mtls):
    running, certs = mtls
    url = f"https://127.0.0.1:{running.daemon.http_port}"
    ok = _client_context(certs, certs.client_cert, certs.client_key)
    status, body = _fetch(f"{url}/v1/voices", ok)
    assert status == 200 and b"alice" in body
    status, audio = _fetch(f"{url}/v1/audio/speech", ok, {"input": "Hi.", "voice": "alice", "response_format": "pcm"})
    assert status == 200 and len(audio) > 0
    for ctx in (_client_context(certs), _client_context(certs, certs.stranger_cert, certs.stranger_key)):
        with pytest.raises(aiohttp.ClientError):
            _fetch(f"{url}/v1/voices", ctx)
    with pytest.raises(aiohttp.ClientError):  # plain HTTP is not served
        _fetch(f"http://127.0.0.1:{running.daemon.http_port}/v1/voices", None)


def test_websocket_over_tls_needs_a_client_certificate(mtls):
    running, certs = mtls
    url = f"wss://127.0.0.1:{running.daemon.http_port}/v1/ws"

    async def session(ctx):
        async with aiohttp.ClientSession() as s, s.ws_connect(url, ssl=ctx) as ws:
            await ws.send_json({"voice": "alice", "options": {"seed": 1, "max_new_tokens": 10, "language": "en"}})
            await ws.send_json({"text": "Hi."})
            await ws.send_json({"end": True})
            types = []
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    types.append(msg.json()["type"])
            return types

    types = asyncio.run(session(_client_context(certs, certs.client_cert, certs.client_key)))
    assert types[0] == "start" and types[-1] == "end"
    with pytest.raises(aiohttp.ClientError):
        asyncio.run(session(_client_context(certs)))


def test_grpc_mutual_tls(mtls):
    running, certs = mtls
    ca = certs.ca.read_bytes()
    with Client(running.address, tls_ca=ca, client_cert=certs.client_cert.read_bytes(),
                client_key=certs.client_key.read_bytes()) as c:
        assert "alice" in {v.name for v in c.voices()}
    with Client(running.address, tls_ca=ca, retries=0) as c:
        code, _ = _code(lambda: c.voices(timeout=5))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_tls_settings_are_checked_at_start(tmp_path):
    certs = make_certs(tmp_path / "certs")
    with pytest.raises(InvalidInput, match="tls_key is not"):
        DaemonConfig.load(env={}, tls_cert=str(certs.server_cert))
    with pytest.raises(InvalidInput, match="tls_cert is not"):
        DaemonConfig.load(env={}, tls_key=str(certs.server_key))
    with pytest.raises(InvalidInput, match="tls_cert is not"):
        DaemonConfig.load(env={}, tls_client_ca=str(certs.ca))
    with pytest.raises(InvalidInput, match="does not exist"):
        DaemonConfig.load(env={}, tls_cert=str(tmp_path / "nope.crt"), tls_key=str(certs.server_key))
    with pytest.raises(InvalidInput, match="is a folder"):
        DaemonConfig.load(env={}, tls_cert=str(tmp_path), tls_key=str(certs.server_key))
    with pytest.raises(InvalidInput, match="cannot load the certificate and key"):  # a key of another pair
        DaemonConfig.load(env={}, tls_cert=str(certs.server_cert), tls_key=str(certs.client_key))


# ------------------------------------------------------------ 5 and 18: ports and CLI messages


def test_port_ranges():
    for bad in ({"port": 99999}, {"port": -1}, {"http_port": 65536}, {"http_port": -2}, {"metrics_port": -1},
                {"metrics_port": 70000}):
        with pytest.raises(InvalidInput, match="1-65535"):
            DaemonConfig.load(env={}, **bad)
    cfg = DaemonConfig.load(env={}, port=0, http_port=0, metrics_port=65535)
    assert (cfg.port, cfg.http_port, cfg.metrics_port) == (0, 0, 65535)
    assert DaemonConfig.load(env={}, http_port=-1).http_port == -1


def _serve(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gsvd", "serve", "--voices-dir", "/nonexistent-gsvd-voices", *args],
                          capture_output=True, text=True, env=ENV, timeout=timeout)


def _clean_failure(out: subprocess.CompletedProcess, needle: str) -> None:
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert needle in " ".join(text.split()), text
    assert "Traceback" not in text and "Event loop is closed" not in text, text


def test_busy_grpc_port_fails_with_a_clear_error(tokenless):
    port = tokenless.address.rsplit(":", 1)[1]
    _clean_failure(_serve("--port", port), f"cannot listen on 127.0.0.1:{port}: the port is in use")
    with Client(tokenless.address) as c:  # the first daemon still answers alone
        assert "alice" in {v.name for v in c.voices()}


def test_busy_http_port_fails_without_a_traceback():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _clean_failure(_serve("--port", "0", "--http-port", str(port)), f"cannot listen on 127.0.0.1:{port} (http_port)")


@pytest.mark.parametrize("args, needle", [
    (["--port", "99999"], "port must be a TCP port 1-65535"),
    (["--http-port", "70000"], "http_port must be a TCP port 1-65535"),
    (["--tls-cert", "server.crt"], "tls_cert is set but tls_key is not"),
    (["--tls-key", "server.key"], "tls_key is set but tls_cert is not"),
    (["--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key"], "tls_cert: /nonexistent.crt does not exist"),
    (["--no-auth", "--host", "0.0.0.0"], "no_auth is accepted only on a loopback bind"),
    (["--token-file", "/nonexistent.token"], "token_file: cannot read /nonexistent.token"),
])
def test_cli_setup_mistakes_are_clear_errors(args, needle):
    _clean_failure(_serve(*args), needle)


def test_serve_help_names_the_serve_table():
    out = subprocess.run([sys.executable, "-m", "gsvd", "serve", "--help"], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0 and "[serve] table" in out.stdout, out.stdout
    for flag in ("--token-file", "--admin-token-file", "--no-auth"):
        assert flag in out.stdout

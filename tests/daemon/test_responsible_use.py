"""Responsible use in a real daemon with tiny voices and real clients: consent enforced at start and by
LoadVoice on both transports (unless the operator allows voices without it, logged), zero-shot uploads
refused without a consent record, the audit log (identity from the token's fingerprint and the client
certificate under mutual TLS; rotation), the AI-generated label on every transport and in the file
`gsvd say --out` writes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import grpc
import numpy as np
import pytest
from typer.testing import CliRunner

from gsvd.clients import Client
from gsvd.daemon.auth import token_fingerprint
from gsvd.engine.provenance.label import AiLabel, read_label
from gsvd.engine.testing.bundle import synthetic_clip
from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg
from gsvd.wavio import read_wav_metadata

from .certs import make_certs
from .conftest import CONSENT, start_daemon, unconsented

USER, ADMIN = "user-token", "admin-token"
OPTS = {"seed": 3, "top_k": 5, "language": "en", "max_new_tokens": 30}


def audit_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def http(running, method: str, path: str, body: dict | None = None, token: str | None = ADMIN,
         ctx: ssl.SSLContext | None = None) -> tuple[int, bytes, dict]:
    scheme = "https" if ctx else "http"
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(f"{scheme}://127.0.0.1:{running.daemon.http_port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120, context=ctx) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A daemon with tokens, an audit log, the gateway, and an unconsented bundle `ghost` beside alice/bob."""
    root = tmp_path_factory.mktemp("guarded")
    unconsented(root / "voices")
    running = start_daemon(root, token=USER, admin_token=ADMIN, http_port=0, max_streams=4,
                           audit_log=str(root / "audit.jsonl"), label_producer="TEST-0001")
    yield running, root / "audit.jsonl"
    running.stop()


# ------------------------------------------------------------------------------------------ consent


def test_unconsented_bundle_is_refused_at_start_and_the_audit_log_says_so(guarded):
    running, audit = guarded
    assert {v.name for v in running.engine.voices()} == {"alice", "bob"}
    starts = [e for e in audit_lines(audit) if e["caller"] == "daemon"]
    loads = {e["voice"]: e for e in starts if e["event"] == "load_voice"}
    assert loads["ghost"]["result"] == "FAILED_PRECONDITION" and "consent record" in loads["ghost"]["message"]
    assert loads["alice"]["result"] == "ok" and loads["alice"]["consent"] == "synthetic test voice, no real person"
    assert loads["alice"]["transport"] == "daemon" and loads["alice"]["bundle"] == "alice"
    start = next(e for e in starts if e["event"] == "daemon_start")
    assert start["consent_required"] is True and start["voices"] == ["alice", "bob"]
    assert start["tokens"] == {"token": f"user#{token_fingerprint(USER)}", "admin_token": f"admin#{token_fingerprint(ADMIN)}"}


def test_load_voice_refuses_an_unconsented_bundle_on_both_transports(guarded):
    running, audit = guarded
    with Client(running.address, ADMIN) as c:
        err = rpc_error(lambda: c.load_voice("ghost"))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "no consent record" in err.details()
        assert "allow_unconsented_voices" in err.details()
    status, body, _ = http(running, "POST", "/v1/voices", {"bundle_path": "ghost"})
    error = json.loads(body)["error"]
    assert status == 400 and error["code"] == "FAILED_PRECONDITION" and "no consent record" in error["message"]
    assert "ghost" not in {v.name for v in running.engine.voices()}
    refused = [e for e in audit_lines(audit) if e["event"] == "load_voice" and e.get("bundle") == "ghost"
               and e["caller"] != "daemon"]
    assert [(e["transport"], e["call"], e["result"]) for e in refused] == [
        ("grpc", "LoadVoice", "FAILED_PRECONDITION"), ("http", "POST /v1/voices", "FAILED_PRECONDITION")]
    assert all(e["caller"] == f"admin#{token_fingerprint(ADMIN)}" and e["voice"] == "ghost" for e in refused)
    assert all(e["peer"] for e in refused)


def test_upload_needs_a_complete_consent_record(guarded):
    running, audit = guarded
    clip = synthetic_clip(4.0, 16000)
    with Client(running.address, ADMIN) as c:
        for consent, needle in (({}, "missing: speaker, use, date, recorded_by"),
                                ({**CONSENT, "recorded_by": " "}, "missing: recorded_by"),
                                ({**CONSENT, "date": "last week"}, "ISO date")):
            err = rpc_error(lambda consent=consent: c.upload_voice("zs", "alice", clip, 16000, "Hello there.", "en",
                                                                   consent=consent))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("reference.consent")
            assert needle in err.details()
        assert "zs" not in {v.name for v in c.voices()}
        made = c.upload_voice("zs", "alice", clip, 16000, "Hello there.", "en",
                              consent={**CONSENT, "statement": "she said yes on tape"})
        assert made.consent.speaker == CONSENT["speaker"] and made.consent.statement == "she said yes on tape"
        assert made.consent.source == "zero-shot upload (gRPC LoadVoice)" and made.consent.recorded_at
        listed = {v.name: v for v in c.voices()}
        assert listed["zs"].consent.use == CONSENT["use"] and c.voice("zs").consent.date == CONSENT["date"]
        assert listed["alice"].consent.statement == "synthetic test voice, no real person"
        status, body, _ = http(running, "GET", "/v1/voices", token=USER)
        rows = {v["name"]: v for v in json.loads(body)["voices"]}
        assert status == 200 and rows["zs"]["consent"]["recorded_by"] == CONSENT["recorded_by"]
        c.unload_voice("zs")
    uploads = [e for e in audit_lines(audit) if e["event"] == "upload_voice"]
    assert [e["result"] for e in uploads] == ["INVALID_ARGUMENT"] * 3 + ["ok"]
    assert uploads[-1]["consent"].startswith(CONSENT["speaker"]) and uploads[-1]["base_voice"] == "alice"
    unload = [e for e in audit_lines(audit) if e["event"] == "unload_voice" and e["voice"] == "zs"]
    assert unload[-1]["result"] == "ok" and unload[-1]["caller"] == f"admin#{token_fingerprint(ADMIN)}"


def test_http_upload_without_consent_is_refused(guarded):
    running, _ = guarded
    form = aiohttp.FormData()
    for key, value in (("name", "zs-http"), ("base_voice", "alice"), ("transcript", "Hello there."), ("language", "en")):
        form.add_field(key, value)
    buf = io.BytesIO()
    import soundfile as sf

    sf.write(buf, synthetic_clip(4.0, 16000), 16000, format="WAV")
    form.add_field("audio", buf.getvalue(), filename="clip.wav", content_type="audio/wav")

    async def post():
        async with aiohttp.ClientSession() as s, s.post(f"http://127.0.0.1:{running.daemon.http_port}/v1/voices",
                                                        data=form, headers={"Authorization": f"Bearer {ADMIN}"}) as r:
            return r.status, await r.json()

    status, body = asyncio.run(post())
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT" and "consent record" in body["error"]["message"]
    assert "zs-http" not in {v.name for v in running.engine.voices()}


def test_allowing_unconsented_voices_is_explicit_and_logged(tmp_path, caplog):
    unconsented(tmp_path / "voices")
    with caplog.at_level(logging.WARNING, logger="gsvd.daemon"):
        running = start_daemon(tmp_path, allow_unconsented_voices=True, http_port=0)
    try:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("consent check is off (allow_unconsented_voices)" in w for w in warnings)
        assert any("voice ghost has no consent record; loaded" in w for w in warnings)
        with Client(running.address) as c:
            assert c.voice("ghost").consent == pb.ConsentRecord()  # listed without one
            assert c.load_voice("ghost", name="ghost2").name == "ghost2"  # LoadVoice too
            err = rpc_error(lambda: c.upload_voice("zs", "alice", synthetic_clip(4.0, 16000), 16000, "Hi.", "en",
                                                   consent={}))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT  # uploads always need a record
        status, _, _ = http(running, "POST", "/v1/voices", {"bundle_path": "ghost", "name": "ghost3"}, token=None)
        assert status == 201
    finally:
        running.stop()


# ------------------------------------------------------------------------------------------- audit


def test_audit_records_every_admin_call_with_who_made_it(guarded):
    running, audit = guarded
    before = len(audit_lines(audit))
    with Client(running.address, USER) as c:
        assert rpc_error(lambda: c.unload_voice("bob")).code() == grpc.StatusCode.PERMISSION_DENIED
    with Client(running.address) as c:
        assert rpc_error(lambda: c.load_voice("alice", name="x")).code() == grpc.StatusCode.UNAUTHENTICATED
    with Client(running.address, "guessed-token") as c:
        assert rpc_error(lambda: c.load_voice("alice", name="y")).code() == grpc.StatusCode.UNAUTHENTICATED
    assert http(running, "DELETE", "/v1/voices/bob", token=USER)[0] == 403
    with Client(running.address, ADMIN) as c:
        c.load_voice("alice", name="copy")
    assert http(running, "DELETE", "/v1/voices/copy")[0] == 200
    # this test's entries, in order (another test's late entry, e.g. a load its client gave up on, may sit between)
    lines = [e for e in audit_lines(audit)[before:] if e.get("voice") in {"bob", "x", "y", "copy"}]
    tail = [(e["event"], e["caller"], e["transport"], e["result"]) for e in lines]
    assert tail == [
        ("unload_voice", f"user#{token_fingerprint(USER)}", "grpc", "PERMISSION_DENIED"),
        ("load_voice", "anonymous", "grpc", "UNAUTHENTICATED"),
        ("load_voice", f"unknown#{token_fingerprint('guessed-token')}", "grpc", "UNAUTHENTICATED"),
        ("unload_voice", f"user#{token_fingerprint(USER)}", "http", "PERMISSION_DENIED"),
        ("load_voice", f"admin#{token_fingerprint(ADMIN)}", "grpc", "ok"),
        ("unload_voice", f"admin#{token_fingerprint(ADMIN)}", "http", "ok"),
    ]
    assert lines[-2]["voice"] == "copy" and lines[-2]["bundle"] == "alice" and lines[-1]["voice"] == "copy"
    raw = audit.read_text(encoding="utf-8")
    assert USER not in raw and ADMIN not in raw and "guessed-token" not in raw  # fingerprints, never tokens
    assert all(e["time"].endswith("Z") and e["time"][:4].isdigit() for e in audit_lines(audit))


def test_audit_names_the_client_certificate_under_mutual_tls(tmp_path):
    certs = make_certs(tmp_path / "certs")
    running = start_daemon(tmp_path, tls_cert=str(certs.server_cert), tls_key=str(certs.server_key),
                           tls_client_ca=str(certs.ca), http_port=0, admin_token=ADMIN,
                           audit_log=str(tmp_path / "audit.jsonl"))
    try:
        with Client(running.address, ADMIN, tls_ca=certs.ca.read_bytes(), client_cert=certs.client_cert.read_bytes(),
                    client_key=certs.client_key.read_bytes()) as c:
            c.load_voice("alice", name="viatls")
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        assert http(running, "DELETE", "/v1/voices/viatls", ctx=ctx)[0] == 200
    finally:
        running.stop()
    lines = audit_lines(tmp_path / "audit.jsonl")
    calls = [e for e in lines if e.get("voice") == "viatls"]
    assert [(e["event"], e["transport"], e["cert_subject"], e["result"]) for e in calls] == [
        ("load_voice", "grpc", "CN=client", "ok"), ("unload_voice", "http", "CN=client", "ok")]
    assert all(e["caller"] == f"admin#{token_fingerprint(ADMIN)}" for e in calls)
    assert lines[-1]["event"] == "daemon_stop"


def test_audit_log_rotates_by_size(tmp_path):
    log = tmp_path / "audit.jsonl"
    running = start_daemon(tmp_path, audit_log=str(log), audit_log_max_mb=0.002, audit_log_backups=2)
    try:
        with Client(running.address) as c:
            for i in range(30):
                assert rpc_error(lambda i=i: c.unload_voice(f"nobody{i}")).code() == grpc.StatusCode.NOT_FOUND
    finally:
        running.stop()
    files = sorted(p.name for p in tmp_path.glob("audit.jsonl*"))
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]  # two kept, older ones dropped
    for name in files:
        path = tmp_path / name
        assert 0 < path.stat().st_size <= 2097 + 400  # the limit, give or take the line that crossed it
        events = audit_lines(path)  # whole JSON lines only
        assert events and all(set(e) >= {"time", "event", "result", "caller", "transport"} for e in events)
    newest = audit_lines(log)
    assert newest[-1]["event"] == "daemon_stop" and newest[-2]["voice"] == "nobody29"


# ------------------------------------------------------------------------------------------- labels


def test_grpc_stream_starts_with_the_label(guarded):
    running, _ = guarded
    stub = pbg.SynthesizerStub(grpc.insecure_channel(running.address))
    req = pb.SynthesizeRequest(text="Hello there.", voice="alice", output=pb.OutputConfig(encoding=pb.PCM_S16LE),
                               options=pb.SynthesisOptions(**OPTS))
    first = next(iter(stub.Synthesize(req, metadata=(("authorization", f"Bearer {USER}"),), timeout=60)))
    label = first.start.label
    assert first.WhichOneof("event") == "start" and label.ai_generated and label.voice == "alice"
    assert label.generator.startswith("gsvd ") and label.producer == "TEST-0001" and len(label.produce_id) == 32
    assert "AI-generated" in label.statement and label.watermark == ""  # this daemon does not watermark
    with Client(running.address, USER) as c:
        stream = c.stream_text(iter(["Hi ", "there."]), "bob", **OPTS)
        chunks = list(stream)
    assert chunks and stream.label.voice == "bob" and stream.label.producer == "TEST-0001"


def test_http_speech_carries_the_label_in_headers_and_file(guarded, tmp_path):
    running, _ = guarded
    for stream in (False, True):
        status, body, headers = http(running, "POST", "/v1/audio/speech", {"input": "Hello there.", "voice": "alice",
                                                                          "stream": stream}, token=USER)
        assert status == 200 and headers["X-AI-Generated"] == "true"
        label = AiLabel.from_dict(json.loads(headers["X-AI-Label"]))
        assert label.voice == "alice" and label.producer == "TEST-0001"
        path = tmp_path / f"speech-{stream}.wav"
        path.write_bytes(body)
        assert read_label(path) == label  # the same label inside the file
        assert "AI-generated" in read_wav_metadata(path).info["ICMT"]
        import soundfile as sf

        if not stream:
            pcm, rate = sf.read(path, dtype="float32")
            assert rate == 32000 and pcm.size > 32000 and np.abs(pcm).max() > 0.01
    status, body, headers = http(running, "POST", "/v1/audio/speech", {"input": "Hi.", "voice": "alice",
                                                                      "response_format": "pcm"}, token=USER)
    assert status == 200 and headers["X-AI-Generated"] == "true" and len(body) % 2 == 0


def test_websocket_first_frame_carries_the_label(guarded):
    running, _ = guarded

    async def session():
        async with aiohttp.ClientSession() as s, s.ws_connect(f"http://127.0.0.1:{running.daemon.http_port}/v1/ws",
                                                            headers={"Authorization": f"Bearer {USER}"}) as ws:
            await ws.send_json({"voice": "alice", "options": OPTS})
            await ws.send_json({"text": "Hi."})
            await ws.send_json({"end": True})
            return [msg.json() async for msg in ws if msg.type == aiohttp.WSMsgType.TEXT]

    frames = asyncio.run(session())
    assert frames[0]["type"] == "start" and frames[-1]["type"] == "end"
    label = AiLabel.from_dict(frames[0]["label"])
    assert label.voice == "alice" and frames[0]["label"]["AIGC"]["Label"] == "1"


def test_say_prints_the_label_and_writes_it_into_the_file(guarded, tmp_path):
    from gsvd.cli import app

    running, _ = guarded
    out = tmp_path / "said.wav"
    res = CliRunner().invoke(app, ["say", "Hello there.", "--voice", "bob", "--server", running.address,
                                   "--token", USER, "--out", str(out), "--seed", "3", "--lang", "en"])
    assert res.exit_code == 0, res.output
    label = read_label(out)
    assert label is not None and label.voice == "bob" and label.producer == "TEST-0001"
    assert f"AI-generated speech (voice bob, {label.generator}, id {label.produce_id})" in res.output
    meta = read_wav_metadata(out)
    assert meta.info["IART"] == "bob (synthetic voice)" and meta.aigc["AIGC"]["ProduceID"] == label.produce_id


def test_voices_list_shows_each_voice_consent(guarded):
    from gsvd.cli import app

    running, _ = guarded
    res = CliRunner().invoke(app, ["voices", "list", "--server", running.address, "--token", USER])
    assert res.exit_code == 0, res.output
    rows = {line.split("\t")[0]: line for line in res.output.splitlines()}
    assert rows["alice"].endswith("\tconsent: synthetic test voice, no real person") and "ghost" not in rows

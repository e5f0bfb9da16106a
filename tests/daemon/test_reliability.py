"""Reliability on loopback (bounded in time and count) with real clients: concurrent streams with random
cancels and deadlines, oversized and malformed requests, unknown voices, load/unload during traffic;
clients that stop reading, disconnect or are killed (gRPC, HTTP, WebSocket); text input that never
ends; shutdown with streams in flight; a slow voice load; the async client. Afterwards no stream, slot
or runtime request may be left over.

Daemons here run with small timeouts (slow reader 1 s, idle input 1 s, deadline 3 s, grace 2-4 s) so
each case takes seconds; time bounds are generous, for a loaded 2-core machine."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import pytest

from gsvd.clients import AsyncClient, Client
from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

from .conftest import CONSENT, start_daemon

LONG_TEXT = "It keeps talking for a long while. " * 30  # minutes of audio, however early each sentence ends
LONG = {"max_new_tokens": 1500}  # up to 60 s of audio per sentence


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    yield from _module_daemon(tmp_path_factory, "rel", max_streams=64, slow_reader_timeout_s=1.0, max_message_mb=1)


def _req(i: int, voice: str = "alice", text: str = "", **opts) -> pb.SynthesizeRequest:
    options = {"seed": i, "top_k": 20, "language": "en", "max_new_tokens": 60, **opts}
    return pb.SynthesizeRequest(text=text or f"Stream number {i}. It keeps talking.", voice=voice,
                                output=pb.OutputConfig(encoding=pb.PCM_S16LE), options=pb.SynthesisOptions(**options))


def _long(i: int) -> pb.SynthesizeRequest:
    """A request for minutes of audio."""
    return _req(i, text=LONG_TEXT, max_new_tokens=1500)


async def _one(stub, i: int, rng: random.Random) -> str:
    mode = rng.choice(["full", "full", "cancel", "deadline", "unknown"])
    voice = "ghost" if mode == "unknown" else "alice"
    call = stub.Synthesize(_req(i, voice), timeout=0.3 if mode == "deadline" else 60)
    got = 0
    try:
        async for resp in call:
            if resp.WhichOneof("event") == "audio":
                got += 1
                if mode == "cancel" and got == 1:
                    call.cancel()
                    return "CANCELLED"
        return "OK"
    except asyncio.CancelledError:
        return "CANCELLED"
    except grpc.aio.AioRpcError as exc:
        return exc.code().name


def _settle(running, timeout=10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = running.engine.stats()
        if stats["active_streams"] == 0 and stats["queued"] == 0 and running.daemon.service.runner.active == 0:
            break
        time.sleep(0.05)
    return running.engine.stats()


def test_64_concurrent_streams_with_cancels_deadlines_and_unload(busy):
    rng = random.Random(7)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def run():
        async with grpc.aio.insecure_channel(busy.address) as channel:
            stub = pbg.SynthesizerStub(channel)
            admin = stub
            load = admin.LoadVoice(pb.LoadVoiceRequest(name="extra", bundle_path=str(busy.voices_dir / "bob")), timeout=60)
            results = await asyncio.gather(*[_one(stub, i, rng) for i in range(64)], load)
            await stub.UnloadVoice(pb.UnloadVoiceRequest(name="extra"), timeout=30)
            return results

    results = asyncio.run(run())
    codes = results[:-1]
    assert set(codes) <= {"OK", "CANCELLED", "DEADLINE_EXCEEDED", "NOT_FOUND"}, codes
    assert codes.count("OK") > 0 and "NOT_FOUND" in codes
    stats = _settle(busy)
    assert stats["active_streams"] == 0 and stats["queued"] == 0
    assert stats["slots_free"] == stats["slots_total"]
    assert busy.daemon.service.runner.active == 0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 1500, f"peak memory grew by {grown_mb:.0f} MB"


def test_oversized_and_malformed_requests(busy):
    stub = pbg.SynthesizerStub(grpc.insecure_channel(busy.address))
    big = pb.LoadVoiceRequest(name="huge", reference=pb.ReferenceUpload(base_voice="alice", audio=b"\0" * (2 << 20),
                                                                        encoding=pb.PCM_S16LE, sample_rate_hz=16000))
    with pytest.raises(grpc.RpcError) as info:
        stub.LoadVoice(big, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    odd = pb.LoadVoiceRequest(name="odd", reference=pb.ReferenceUpload(base_voice="alice", audio=b"\0" * 3,
                                                                       encoding=pb.PCM_S16LE, sample_rate_hz=16000,
                                                                       transcript="hi", consent=pb.ConsentRecord(**CONSENT)))
    with pytest.raises(grpc.RpcError) as info:
        stub.LoadVoice(odd, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "odd number" in info.value.details()
    raw = grpc.insecure_channel(busy.address).unary_stream(
        "/gsvd.v1.Synthesizer/Synthesize", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as info:
        list(raw(b"\xff\xff\xff\xff garbage", timeout=10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in info.value.details()
    # still serving afterwards
    assert len(list(stub.Synthesize(_req(3), timeout=60))) > 1
    assert _settle(busy)["active_streams"] == 0


# --------------------------------------------------------------------------------- shared pieces


def _module_daemon(tmp_path_factory, name: str, **settings):
    running = start_daemon(tmp_path_factory.mktemp(name), **settings)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """2 slots, a 1 s slow-reader timeout, 2 chunks of buffer and a 16 KiB socket send buffer."""
    yield from _module_daemon(tmp_path_factory, "strict", max_streams=2, slow_reader_timeout_s=1.0,
                              stream_buffer_chunks=2, send_buffer_kb=16, http_port=0)


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    """Long timeouts: here only a disconnect, a cancel or a kill can free a slot quickly."""
    yield from _module_daemon(tmp_path_factory, "patient", max_streams=4, slow_reader_timeout_s=120.0, http_port=0)


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    """A 3 s default deadline and a 1 s idle-input timeout."""
    yield from _module_daemon(tmp_path_factory, "timed", max_streams=4, default_deadline_s=3.0,
                              idle_input_timeout_s=1.0, http_port=0)


@pytest.fixture
def no_gc():
    """Slots must be freed by the code itself, not when the garbage collector finalizes an abandoned stream."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def _active(running) -> int:
    """Streams holding a slot, as GetServerInfo reports them."""
    with grpc.insecure_channel(running.address) as channel:
        return pbg.SynthesizerStub(channel).GetServerInfo(pb.GetServerInfoRequest(), timeout=10).active_streams


def _wait_freed(running, within: float, holding: int = 0) -> float:
    """Seconds until only `holding` streams hold slots (daemon and engine agree); fails after `within`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        stats = running.engine.stats()
        if _active(running) == holding and stats["active_streams"] == holding and stats["queued"] == 0:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"slots still held after {within} s: {_active(running)} streams, {running.engine.stats()}")


def _wait_held(running, n: int, within: float = 30) -> None:
    t0 = time.monotonic()
    while _active(running) < n:
        assert time.monotonic() - t0 < within, f"{n} streams did not start"
        time.sleep(0.05)


def _raw_speech(port: int, body: dict, rcvbuf: int | None = None) -> tuple[socket.socket, bytes]:
    """POST /v1/audio/speech over a plain socket (optionally with a tiny receive buffer); returns the socket and
    the response head, read once the first audio is on its way."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", port))
    data = json.dumps(body).encode()
    sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: gsvd\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    head = b""
    while b"\r\n\r\n" not in head:
        byte = sock.recv(1)
        assert byte, f"connection closed before the response head: {head!r}"
        head += byte
    return sock, head


def _read_to_end(sock: socket.socket) -> tuple[bytes, str]:
    """Everything the server still sends, and how the connection ended ("eof", "reset")."""
    data = b""
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
        return data, "eof"
    except ConnectionResetError:
        return data, "reset"


def _speech_body(**kw) -> dict:
    return {"model": "gsvd", "input": LONG_TEXT, "voice": "alice", "response_format": "pcm", "stream": True, **kw}


def _ws_config(**kw) -> dict:
    return {"voice": "alice", "options": {"seed": 2, "top_k": 20, "language": "en", **LONG}, **kw}


def test_stream_timeouts_and_buffers_are_checked():
    from gsvd.daemon.config import DaemonConfig
    from gsvd.engine.errors import InvalidInput

    cfg = DaemonConfig.load(env={"GSVD_IDLE_INPUT_TIMEOUT_S": "2.5", "GSVD_SEND_BUFFER_KB": "0"}, grace_s=0.0)
    assert (cfg.idle_input_timeout_s, cfg.send_buffer_kb, cfg.grace_s) == (2.5, 0, 0.0)
    for bad in ({"slow_reader_timeout_s": 0.0}, {"idle_input_timeout_s": -1.0}, {"default_deadline_s": 0.0},
                {"grace_s": -1.0}, {"stream_buffer_chunks": 0}, {"send_buffer_kb": -4}):
        with pytest.raises(InvalidInput, match=f"{next(iter(bad))} must be"):
            DaemonConfig.load(env={}, **bad)


# ---------------------------------------------------------------- 6: clients that stop reading


def test_stalled_grpc_readers_are_cut_off_and_free_their_slots(strict):
    stalled = []
    for i in range(2):  # every slot of the daemon
        # no BDP probing: the client's HTTP/2 window stays small, so unread audio backs up into the server
        channel = grpc.insecure_channel(strict.address, options=[("grpc.http2.bdp_probe", 0)])
        call = pbg.SynthesizerStub(channel).Synthesize(_long(i), timeout=120)
        assert next(call).WhichOneof("event") == "start"
        stalled.append(call)  # ... and read no more for now
    assert _active(strict) == 2
    _wait_freed(strict, within=30)
    with Client(strict.address) as c:  # served while the stalled clients still read nothing
        pcm, _ = c.synthesize("Still serving.", "alice", seed=1, max_new_tokens=20, language="en")
    assert len(pcm) > 0
    for call in stalled:  # reading again: what was already sent, then the slow-reader status
        with pytest.raises(grpc.RpcError) as info:
            for _ in call:
                pass
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "slow reader" in info.value.details()


def test_stalled_http_reader_is_cut_off(strict):
    sock, head = _raw_speech(strict.daemon.http_port, _speech_body(), rcvbuf=4096)
    try:
        assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower()
        assert _active(strict) == 1
        _wait_freed(strict, within=30)  # while this client reads nothing
        body, _ = _read_to_end(sock)
        # the audio sent before the cut, then the connection ends without the chunked body's last chunk
        assert len(body) > 4096 and not body.endswith(b"0\r\n\r\n")
    finally:
        sock.close()


def test_stalled_websocket_reader_is_cut_off(strict):
    import aiohttp

    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{strict.daemon.http_port}/v1/ws") as ws:
                await ws.send_json(_ws_config(encoding="pcm_f32le", sample_rate=192000))  # 768 KB per second
                await ws.send_json({"text": LONG_TEXT})
                await ws.send_json({"end": True})
                start = await ws.receive_json(timeout=30)
                await asyncio.to_thread(_wait_freed, strict, 30)  # meanwhile this client reads nothing
                events = [json.loads(m.data)["type"] async for m in ws if m.type == aiohttp.WSMsgType.TEXT]
                return start, events

    start, events = asyncio.run(run())
    assert start["type"] == "start" and "end" not in events
    assert not (set(events) - {"chunk", "error"})


# ------------------------------------------------------------------ 7: input that never ends


def test_grpc_input_that_never_ends_is_stopped_by_the_default_deadline(timed):
    stop = threading.Event()

    def requests():
        yield pb.StreamingSynthesizeRequest(config=pb.StreamingConfig(
            voice="alice", output=pb.OutputConfig(encoding=pb.PCM_S16LE), options=pb.SynthesisOptions(language="en")))
        while not stop.wait(0.2):  # text keeps coming (so the input is never idle), but never a sentence end
            yield pb.StreamingSynthesizeRequest(input=pb.TextInput(text="and more "))

    t0 = time.monotonic()
    try:
        with pytest.raises(grpc.RpcError) as info:
            for _ in pbg.SynthesizerStub(grpc.insecure_channel(timed.address)).StreamingSynthesize(requests()):
                pass  # no client deadline: only the server's default one can end this
    finally:
        stop.set()
    took = time.monotonic() - t0
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "deadline" in info.value.details()
    assert 2.5 < took < 15, took
    _wait_freed(timed, within=5)


def test_grpc_idle_input_is_cut_off(timed):
    stop = threading.Event()

    def requests():
        yield pb.StreamingSynthesizeRequest(config=pb.StreamingConfig(
            voice="alice", output=pb.OutputConfig(encoding=pb.PCM_S16LE), options=pb.SynthesisOptions(language="en")))
        yield pb.StreamingSynthesizeRequest(input=pb.TextInput(text="Hello there"))
        stop.wait(60)  # then silence, and the input is never ended

    t0 = time.monotonic()
    try:
        with pytest.raises(grpc.RpcError) as info:
            list(pbg.SynthesizerStub(grpc.insecure_channel(timed.address)).StreamingSynthesize(requests()))
    finally:
        stop.set()
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "idle input" in info.value.details()
    assert time.monotonic() - t0 < 10
    _wait_freed(timed, within=5)


@pytest.mark.parametrize("case", ["text that never ends", "idle after a piece", "no config"])
def test_websocket_input_that_never_ends_is_stopped(timed, case):
    import aiohttp

    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{timed.daemon.http_port}/v1/ws") as ws:
                feeding = None
                if case != "no config":
                    await ws.send_json(_ws_config())
                    await ws.send_json({"text": "Hello there"})
                if case == "text that never ends":
                    async def feed():
                        while True:
                            await asyncio.sleep(0.2)
                            await ws.send_json({"text": " and more"})
                    feeding = asyncio.create_task(feed())
                try:
                    while True:
                        msg = await ws.receive_json(timeout=20)
                        if msg["type"] in ("error", "end"):
                            return msg
                finally:
                    if feeding is not None:
                        feeding.cancel()

    t0 = time.monotonic()
    last = asyncio.run(run())
    took = time.monotonic() - t0
    assert last["type"] == "error" and last["code"] == "DEADLINE_EXCEEDED", last
    assert ("idle input" if case != "text that never ends" else "deadline") in last["message"]
    assert took < (15 if case == "text that never ends" else 10), took
    _wait_freed(timed, within=5)


# ------------------------------------------------------------ 8: clients that go away


def test_http_and_websocket_clients_that_disconnect_free_their_slots(patient, no_gc):
    import aiohttp

    base = f"http://127.0.0.1:{patient.daemon.http_port}"

    async def http_client(session):
        resp = await session.post(f"{base}/v1/audio/speech", json=_speech_body())
        assert resp.status == 200
        await resp.content.readexactly(8192)
        return resp

    async def ws_client(session):
        ws = await session.ws_connect(f"{base}/v1/ws")
        await ws.send_json(_ws_config())
        await ws.send_json({"text": LONG_TEXT})
        assert (await ws.receive_json(timeout=30))["type"] == "start"
        assert (await ws.receive_json(timeout=30))["type"] == "chunk"
        return ws

    async def run():
        async with aiohttp.ClientSession() as session:
            resp, ws = await http_client(session), await ws_client(session)
            assert await asyncio.to_thread(_active, patient) == 2
            resp.close()  # drops the HTTP connection mid-body
            await ws.close()  # the WebSocket's close handshake while audio is still coming
            return await asyncio.to_thread(_wait_freed, patient, 5)

    asyncio.run(run())


_KILLED_CLIENT = r"""
import asyncio, json, sys, time
kind, target = sys.argv[1], sys.argv[2]
text = "It keeps talking for a long while. " * 30
body = {"input": text, "voice": "alice", "response_format": "pcm", "stream": True}
config = {"voice": "alice", "options": {"seed": 2, "language": "en", "max_new_tokens": 1500}}
if kind == "grpc":
    import grpc
    from gsvd.v1 import gsvd_pb2 as pb, gsvd_pb2_grpc as pbg
    req = pb.SynthesizeRequest(text=text, voice="alice", output=pb.OutputConfig(encoding=pb.PCM_S16LE),
                               options=pb.SynthesisOptions(seed=1, language="en", max_new_tokens=1500))
    call = pbg.SynthesizerStub(grpc.insecure_channel(target)).Synthesize(req, timeout=300)
    next(call), next(call)
elif kind == "http":
    import http.client
    host, port = target.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    conn.request("POST", "/v1/audio/speech", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    resp.read(8192)
else:
    import aiohttp
    async def main():
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(f"http://{target}/v1/ws")
        await ws.send_json(config)
        await ws.send_json({"text": text})
        await ws.receive(), await ws.receive()
        print("streaming", flush=True)
        await asyncio.sleep(600)
    asyncio.run(main())
print("streaming", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("kind", ["grpc", "http", "ws"])
def test_killed_client_process_frees_its_slot(patient, no_gc, kind):
    target = patient.address if kind == "grpc" else f"127.0.0.1:{patient.daemon.http_port}"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_CLIENT, kind, target], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "streaming", line + proc.stderr.read()[-2000:]
        assert _active(patient) == 1
        proc.kill()
        proc.wait(10)
        _wait_freed(patient, within=5)
    finally:
        if proc.poll() is None:
            proc.kill()


# --------------------------------------------------------------------------- 9: shutdown


def _reader(call, results: list) -> threading.Thread:
    def read():
        try:
            results.append(("OK", sum(1 for r in call if r.WhichOneof("event") == "audio")))
        except grpc.RpcError as exc:
            results.append((exc.code().name, exc.details()))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_shutdown_refuses_new_work_at_once_and_ends_within_the_grace(tmp_path):
    grace = 4.0
    running = start_daemon(tmp_path, max_streams=8, grace_s=grace, http_port=0, slow_reader_timeout_s=120.0,
                           stream_buffer_chunks=2, send_buffer_kb=16)
    port, stub = running.daemon.http_port, pbg.SynthesizerStub(grpc.insecure_channel(running.address))
    stalled = None
    try:
        short, long_ = [], []  # a stream that ends within the grace, and one that would take a minute
        short_call = stub.Synthesize(_req(1, max_new_tokens=15), timeout=120)
        assert next(short_call).WhichOneof("event") == "start"
        threads = [_reader(short_call, short), _reader(stub.Synthesize(_long(2), timeout=120), long_)]
        http, _ = _raw_speech(port, _speech_body())  # a long HTTP stream, read to the end below
        stalled, _ = _raw_speech(port, _speech_body(), rcvbuf=4096)  # an HTTP client that stopped reading
        _wait_held(running, 4)

        t0 = time.monotonic()
        stopping = asyncio.run_coroutine_threadsafe(running.daemon.stop(), running.loop)
        while not running.daemon.service.runner.draining:
            time.sleep(0.01)
        with pytest.raises(grpc.RpcError) as info:  # new work is refused at once, on every transport
            list(stub.Synthesize(_req(3), timeout=10))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        try:
            sock, head = _raw_speech(port, _speech_body())
            sock.close()
            assert head.startswith(b"HTTP/1.1 503"), head
        except (ConnectionError, AssertionError) as exc:  # the listener is already closed
            assert isinstance(exc, ConnectionError) or "closed before" in str(exc), exc
        body, _ = _read_to_end(http)
        stopping.result(timeout=grace + 20)
        took = time.monotonic() - t0
        for t in threads:
            t.join(10)
    finally:
        for sock in (stalled,):
            if sock is not None:
                sock.close()
        running.loop.call_soon_threadsafe(running.loop.stop)
        running.engine.close()
    assert took < grace + 5, f"shutdown took {took:.1f} s with a grace of {grace} s"
    assert short[0][0] == "OK" and short[0][1] > 0, short  # finished within the grace
    assert long_[0][0] in ("CANCELLED", "UNAVAILABLE"), long_  # cut at the end of the grace
    assert len(body) > 0 and not body.endswith(b"0\r\n\r\n")  # the HTTP stream was cut, not completed


def test_sigterm_refuses_new_requests_and_exits_within_the_grace(tmp_path):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from gsvd.engine.testing.bundle import write_tiny_voice

    grace = 2.0
    write_tiny_voice(tmp_path / "voices", "alice")
    env = dict(os.environ, GSVD_DEVICE="cpu", GSVD_HTTP_PORT="0", GSVD_SLOW_READER_TIMEOUT_S="120")
    proc = subprocess.Popen([sys.executable, "-m", "gsvd", "serve", "--port", "0", "--grace", str(grace),
                             "--voices-dir", str(tmp_path / "voices")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    http = None
    try:
        line = proc.stdout.readline()
        assert line.startswith("gsvd serving on 127.0.0.1:"), line + "".join(log)[-2000:]
        address = line.split()[-1]
        t_boot = time.monotonic()
        while not (m := re.search(r"HTTP/WebSocket gateway on (?:https?://)?127\.0\.0\.1:(\d+)", "".join(log))):
            assert time.monotonic() - t_boot < 60 and proc.poll() is None, "".join(log)[-2000:]
            time.sleep(0.1)
        channel = grpc.insecure_channel(address)
        stub, health = pbg.SynthesizerStub(channel), health_pb2_grpc.HealthStub(channel)
        results: list = []
        reader = _reader(stub.Synthesize(_long(1), timeout=120), results)  # reads at full speed
        stalled = pbg.SynthesizerStub(grpc.insecure_channel(address, options=[("grpc.http2.bdp_probe", 0)]))
        stalled_call = stalled.Synthesize(_long(2), timeout=120)
        next(stalled_call)  # ... and no more: a slow reader
        http, _ = _raw_speech(int(m.group(1)), _speech_body())  # an HTTP stream in flight
        t0 = time.monotonic()
        while stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).active_streams < 3:
            assert time.monotonic() - t0 < 30
            time.sleep(0.05)

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while True:  # health turns NOT_SERVING (or the server is gone already)
            try:
                status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
            except grpc.RpcError:
                break
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            assert time.monotonic() - t0 < 10
            time.sleep(0.02)
        with pytest.raises(grpc.RpcError) as info:  # from then on nothing new is accepted
            list(stub.Synthesize(_req(3), timeout=10))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
        rc = proc.wait(timeout=grace + 30)
        took = time.monotonic() - t0
        reader.join(10)
    finally:
        if http is not None:
            http.close()
        if proc.poll() is None:
            proc.kill()
    assert rc == 0 and f"draining (grace {grace:g} s)" in "".join(log), "".join(log)[-2000:]
    assert took < grace + 10, f"exit took {took:.1f} s with a grace of {grace} s: " + "".join(log)[-1500:]
    assert results and results[0][0] in ("CANCELLED", "UNAVAILABLE"), results


# ------------------------------------------------------------------------- 10: slow loads


def test_a_slow_voice_load_blocks_no_reads_and_no_other_voice(patient):
    from gsvd.engine.testing.bundle import write_tiny_voice

    carol = write_tiny_voice(patient.voices_dir, "carol", seed=2)  # a model the daemon does not have yet
    built, release, loaded = threading.Event(), threading.Event(), []

    def hold(stage: str) -> None:  # the load stops here, its model built, until the test lets it go on
        if stage == "model":
            built.set()
            release.wait(60)

    loader = threading.Thread(target=lambda: loaded.append(patient.engine.load_voice(carol, progress=hold)))
    with Client(patient.address) as c:
        c.load_voice(str(patient.voices_dir / "bob"), "spare")
        loader.start()
        try:
            assert built.wait(60)
            queued_load = threading.Thread(target=lambda: c.load_voice(str(patient.voices_dir / "bob"), "extra"))
            queued_load.start()  # a LoadVoice RPC waits for the held load, in its own thread
            t0 = time.monotonic()
            names = {v.name for v in c.voices(timeout=10)}
            assert c.voice("alice", timeout=10).name == "alice"
            assert c.info(timeout=10).active_streams == 0
            pcm, _ = c.synthesize("Meanwhile.", "bob", seed=1, max_new_tokens=20, language="en", timeout=30)
            c.unload_voice("spare", timeout=10)
            took = time.monotonic() - t0
            assert names >= {"alice", "bob", "spare"} and "carol" not in names and len(pcm) > 0
            assert took < 15 and loader.is_alive(), took  # all of that while the load was still held
        finally:
            release.set()
            loader.join(60)
        queued_load.join(60)
        assert loaded and loaded[0].name == "carol"
        assert {"carol", "extra"} <= {v.name for v in c.voices()}
        c.unload_voice("carol")
        c.unload_voice("extra")


def test_a_load_that_fails_after_building_its_model_leaves_nothing_resident(patient):
    from gsvd.engine.testing.bundle import write_tiny_voice

    dave = write_tiny_voice(patient.voices_dir, "dave", seed=3)
    models = len(patient.engine.info()["models"])

    def give_up(stage: str) -> None:
        if stage == "model":
            raise RuntimeError("load abandoned after the model was built")

    with pytest.raises(RuntimeError, match="abandoned"):
        patient.engine.load_voice(dave, progress=give_up)
    assert len(patient.engine.info()["models"]) == models  # the built model is gone from the runtime again
    assert "dave" not in {v.name for v in patient.engine.voices()}
    assert patient.engine.load_voice(dave).name == "dave"  # and a second try works
    assert len(patient.engine.info()["models"]) == models + 1
    patient.engine.unload_voice("dave")
    assert len(patient.engine.info()["models"]) == models


# --------------------------------------------------------- 11: async client, admission order


@pytest.mark.parametrize("how", ["async with", "aclose", "reader task cancelled", "dropped after break"])
def test_async_client_cancels_the_call_when_the_caller_stops(patient, no_gc, how):
    async def streaming() -> None:  # the call is running on the server
        assert await asyncio.to_thread(_active, patient) == 1

    async def run():
        async with AsyncClient(patient.address) as c:
            audio = None
            if how == "async with":
                async with c.stream(LONG_TEXT, "alice", seed=1, language="en", **LONG) as audio:
                    async for _ in audio:
                        await streaming()
                        break
            elif how == "aclose":
                audio = c.stream(LONG_TEXT, "alice", seed=1, language="en", **LONG)
                await anext(audio)
                await streaming()
                await audio.aclose()
                assert [x async for x in audio] == []
            elif how == "reader task cancelled":
                first = asyncio.Event()

                async def read():
                    async for _ in c.stream(LONG_TEXT, "alice", seed=1, language="en", **LONG):
                        first.set()

                task = asyncio.create_task(read())
                await first.wait()
                await streaming()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            else:
                async for _ in c.stream(LONG_TEXT, "alice", seed=1, language="en", **LONG):
                    await streaming()
                    break
            # `audio` is still referenced here: the call must be cancelled by the stream itself
            return audio, await asyncio.to_thread(_wait_freed, patient, 5)

    asyncio.run(run())


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _pki(folder) -> dict[str, bytes]:
    """A CA, a server certificate for the name gsvd.test only (not 127.0.0.1), a client certificate."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(folder / "ca.key"), "-out",
             str(folder / "ca.pem"), "-days", "1", "-subj", "/CN=gsvd test CA")
    for who, ext in (("server", "subjectAltName=DNS:gsvd.test"), ("client", "extendedKeyUsage=clientAuth")):
        (folder / f"{who}.ext").write_text(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(folder / f"{who}.key"), "-out",
                 str(folder / f"{who}.csr"), "-subj", f"/CN={who}")
        _openssl("x509", "-req", "-in", str(folder / f"{who}.csr"), "-CA", str(folder / "ca.pem"), "-CAkey",
                 str(folder / "ca.key"), "-CAcreateserial", "-out", str(folder / f"{who}.pem"), "-days", "1",
                 "-extfile", str(folder / f"{who}.ext"))
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".pem", ".key")}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not available to make test certificates")
def test_async_and_sync_clients_speak_mutual_tls_with_a_server_name_override(tmp_path):
    pki = _pki(tmp_path)
    running = start_daemon(tmp_path, tls_cert=str(tmp_path / "server.pem"), tls_key=str(tmp_path / "server.key"),
                           tls_client_ca=str(tmp_path / "ca.pem"))
    tls = {"tls_ca": pki["ca.pem"], "client_cert": pki["client.pem"], "client_key": pki["client.key"]}

    async def run(**kw):
        async with AsyncClient(running.address, **kw) as c:
            names = {v.name for v in await c.voices()}
            async with c.stream("Hi there.", "alice", seed=1, max_new_tokens=20, language="en") as audio:
                chunks = [a async for a in audio]
            return names, chunks

    try:
        names, chunks = asyncio.run(run(server_name="gsvd.test", **tls))
        assert {"alice", "bob"} <= names and chunks[-1].is_final and sum(len(a.pcm) for a in chunks) > 0
        with Client(running.address, server_name="gsvd.test", **tls) as c:
            assert {v.name for v in c.voices()} >= {"alice"}
        for wrong in ({**tls}, {"tls_ca": pki["ca.pem"], "server_name": "gsvd.test"}):  # no override; no client cert
            with pytest.raises(grpc.aio.AioRpcError) as info:
                asyncio.run(run(**wrong))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(ValueError, match="client_key"):
            AsyncClient(running.address, tls_ca=pki["ca.pem"], client_cert=pki["client.pem"])
    finally:
        running.stop()


def test_a_refused_stream_gets_only_the_error_on_every_transport(tmp_path):
    import aiohttp

    running = start_daemon(tmp_path, max_streams=1, http_port=0)
    try:
        stub = pbg.SynthesizerStub(grpc.insecure_channel(running.address))
        holder = stub.Synthesize(_req(0, max_new_tokens=800), timeout=60)
        next(holder), next(holder)  # the one slot is taken
        got = []
        with pytest.raises(grpc.RpcError) as info:
            for resp in stub.Synthesize(_req(1), timeout=30):
                got.append(resp.WhichOneof("event"))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit of 1" in info.value.details()
        assert got == []  # not even the audio format

        async def others():
            async with AsyncClient(running.address) as c:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await anext(c.stream("Hi.", "alice"))
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            async with aiohttp.ClientSession() as session:
                base = f"http://127.0.0.1:{running.daemon.http_port}"
                async with session.ws_connect(f"{base}/v1/ws") as ws:
                    await ws.send_json({"voice": "alice"})
                    first = await ws.receive_json(timeout=30)
                async with session.post(f"{base}/v1/audio/speech", json={"input": "Hi.", "voice": "alice"}) as r:
                    return first, r.status, await r.json()

        first, status, body = asyncio.run(others())
        assert first["type"] == "error" and first["code"] == "RESOURCE_EXHAUSTED", first
        assert status == 429 and body["error"]["code"] == "RESOURCE_EXHAUSTED"
        holder.cancel()
    finally:
        running.stop()

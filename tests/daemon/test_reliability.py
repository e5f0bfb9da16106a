"""Reliability on loopback (bounded in time and count): concurrent streams with random cancels and
deadlines, slow readers, oversized and malformed requests, unknown voices, load/unload during
traffic. Afterwards no stream, slot or runtime request may be left over."""

from __future__ import annotations

import asyncio
import random
import resource
import time

import grpc
import pytest

from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

from .conftest import start_daemon


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    running = start_daemon(tmp_path_factory.mktemp("rel"), max_streams=64, slow_reader_timeout_s=1.0,
                           max_message_mb=1)
    yield running
    running.stop()


def _req(i: int, voice: str = "alice") -> pb.SynthesizeRequest:
    return pb.SynthesizeRequest(text=f"Stream number {i}. It keeps talking.", voice=voice,
                                output=pb.OutputConfig(encoding=pb.PCM_S16LE),
                                options=pb.SynthesisOptions(seed=i, top_k=20, language="en", max_new_tokens=60))


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


def test_slow_reader_gets_deadline_exceeded(busy):
    runner = busy.daemon.service.runner
    runner.queue_chunks, old = 1, runner.queue_chunks
    try:
        # no BDP probing: the client's HTTP/2 window stays small, so unread audio backs up into the server
        channel = grpc.insecure_channel(busy.address, options=[("grpc.http2.bdp_probe", 0)])
        stub = pbg.SynthesizerStub(channel)
        req = _req(1)
        req.options.max_new_tokens = 1500
        req.options.split_method = "cut0"
        call = stub.Synthesize(req, timeout=60)
        next(call)  # the start message, then stop reading
        time.sleep(3.0)
        with pytest.raises(grpc.RpcError) as info:
            for _ in call:
                pass
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "slow reader" in info.value.details()
    finally:
        runner.queue_chunks = old
    assert _settle(busy)["active_streams"] == 0


def test_oversized_and_malformed_requests(busy):
    stub = pbg.SynthesizerStub(grpc.insecure_channel(busy.address))
    big = pb.LoadVoiceRequest(name="huge", reference=pb.ReferenceUpload(base_voice="alice", audio=b"\0" * (2 << 20),
                                                                        encoding=pb.PCM_S16LE, sample_rate_hz=16000))
    with pytest.raises(grpc.RpcError) as info:
        stub.LoadVoice(big, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    odd = pb.LoadVoiceRequest(name="odd", reference=pb.ReferenceUpload(base_voice="alice", audio=b"\0" * 3,
                                                                       encoding=pb.PCM_S16LE, sample_rate_hz=16000,
                                                                       transcript="hi"))
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


def test_stream_limit_gives_resource_exhausted(tmp_path):
    running = start_daemon(tmp_path, max_streams=1)
    try:
        stub = pbg.SynthesizerStub(grpc.insecure_channel(running.address))
        req = _req(0)
        req.options.max_new_tokens = 800
        first = stub.Synthesize(req, timeout=60)
        next(first)
        next(first)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Synthesize(_req(1), timeout=30))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit of 1" in info.value.details()
        first.cancel()
    finally:
        running.stop()

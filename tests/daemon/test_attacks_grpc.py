"""Attacks on the gRPC service with the source at hand: every RPC without, with a wrong and with a user token;
bad numbers in every option; names and ids that are huge, hold control characters, homoglyphs or RTL marks;
corrupt and oversized messages; deadlines of zero and cancelled calls; more streams than slots. Each answer must be
a status with a short message naming no server folder, and afterwards no slot may be held."""

from __future__ import annotations

import json
import math
import time

import grpc
import numpy as np
import pytest

from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

from .attacks import ADMIN, OPTS, USER, assert_clean, daemon_fixture, no_slot_held
from .conftest import CONSENT

C = grpc.StatusCode
OUT = pb.OutputConfig(encoding=pb.PCM_S16LE)


armed = daemon_fixture("attacks_grpc")


@pytest.fixture(scope="module")
def stub(armed):
    with grpc.insecure_channel(armed.address) as channel:
        yield pbg.SynthesizerStub(channel)


def md(token: str | None) -> tuple:
    return (("authorization", f"Bearer {token}"),) if token else ()


def error_of(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, pb.Voice | pb.ServerInfo):
            list(result)
    return info.value


def _synth(text: str = "Hello there.", voice: str = "alice", options: dict | None = None, **fields):
    return pb.SynthesizeRequest(text=text, voice=voice, output=fields.pop("output", OUT),
                                options=pb.SynthesisOptions(**{**OPTS, **(options or {})}), **fields)


def _streaming(config: pb.StreamingConfig, *texts: str):
    yield pb.StreamingSynthesizeRequest(config=config)
    for t in texts:
        yield pb.StreamingSynthesizeRequest(input=pb.TextInput(text=t))


def _calls(stub, token: str | None) -> dict:
    """One call of every RPC with `token`; admin calls aim at names that do not exist (nothing changes)."""
    m = md(token)
    cfg = pb.StreamingConfig(voice="alice", output=OUT, options=pb.SynthesisOptions(**OPTS))
    return {
        "Synthesize": lambda: list(stub.Synthesize(_synth(), metadata=m, timeout=60)),
        "StreamingSynthesize": lambda: list(stub.StreamingSynthesize(_streaming(cfg, "Hi."), metadata=m, timeout=60)),
        "ListVoices": lambda: stub.ListVoices(pb.ListVoicesRequest(), metadata=m, timeout=10),
        "GetVoice": lambda: stub.GetVoice(pb.GetVoiceRequest(name="alice"), metadata=m, timeout=10),
        "GetServerInfo": lambda: stub.GetServerInfo(pb.GetServerInfoRequest(), metadata=m, timeout=10),
        "LoadVoice": lambda: stub.LoadVoice(pb.LoadVoiceRequest(name="x1", bundle_path="no-such-bundle"), metadata=m,
                                            timeout=30),
        "UnloadVoice": lambda: stub.UnloadVoice(pb.UnloadVoiceRequest(name="no-such-voice"), metadata=m, timeout=10),
    }


USER_RPCS = ("Synthesize", "StreamingSynthesize", "ListVoices", "GetVoice", "GetServerInfo")
ADMIN_RPCS = ("LoadVoice", "UnloadVoice")


# ------------------------------------------------------------------------------------------ auth


@pytest.mark.parametrize("token, user_code, admin_code", [
    (None, C.UNAUTHENTICATED, C.UNAUTHENTICATED),
    ("wrong-token", C.UNAUTHENTICATED, C.UNAUTHENTICATED),
    (USER + "x", C.UNAUTHENTICATED, C.UNAUTHENTICATED),  # a longer guess
    (USER[:-1], C.UNAUTHENTICATED, C.UNAUTHENTICATED),  # a prefix
    (USER, None, C.PERMISSION_DENIED),
    (ADMIN, None, "allowed"),
], ids=["none", "wrong", "longer", "prefix", "user", "admin"])
def test_every_rpc_under_every_credential(armed, stub, token, user_code, admin_code):
    calls = _calls(stub, token)
    for name in USER_RPCS:
        if user_code is None:
            calls[name]()  # served
        else:
            err = error_of(calls[name])
            assert err.code() == user_code and "token" in err.details(), (name, err)
    for name in ADMIN_RPCS:
        err = error_of(calls[name])
        if admin_code == "allowed":  # past auth: the call itself fails on the missing bundle / voice
            assert err.code() == C.NOT_FOUND, (name, err)
        else:
            assert err.code() == admin_code and "admin token" in err.details(), (name, err)
        assert_clean(err.details(), armed)
    no_slot_held(armed)


def test_odd_authorization_metadata(armed, stub):
    for value in ("Bearer", "Bearer ", "Basic " + USER, USER, "Bearer " + USER + " extra",
                  "Bearer " + "x" * 4000):
        err = error_of(lambda value=value: stub.ListVoices(pb.ListVoicesRequest(), timeout=10,
                                                           metadata=(("authorization", value),)))
        assert err.code() == C.UNAUTHENTICATED, (value[:30], err)
        assert_clean(err.details())
    # metadata past grpc's limit is refused by the transport, and the daemon keeps serving
    err = error_of(lambda: stub.ListVoices(pb.ListVoicesRequest(), timeout=10,
                                           metadata=(("authorization", "Bearer " + "y" * 20000),)))
    assert err.code() in (C.RESOURCE_EXHAUSTED, C.UNAUTHENTICATED, C.INTERNAL)
    assert stub.ListVoices(pb.ListVoicesRequest(), metadata=md(USER), timeout=10).voices


# ------------------------------------------------------------------------------------------ options


BAD_OPTIONS = [
    {"top_k": 0}, {"top_k": -1}, {"top_k": 2**31 - 1},
    {"top_p": math.nan}, {"top_p": math.inf}, {"top_p": 0.0}, {"top_p": -0.5}, {"top_p": 1.5},
    {"temperature": math.nan}, {"temperature": 0.0}, {"temperature": -1.0}, {"temperature": 3.4e38},
    {"repetition_penalty": math.nan}, {"repetition_penalty": 0.5}, {"repetition_penalty": -math.inf},
    {"noise_scale": math.nan}, {"noise_scale": -0.1}, {"noise_scale": 1e30},
    {"speed": math.nan}, {"speed": 0.0}, {"speed": -1.0}, {"speed": math.inf}, {"speed": 1e-30},
    {"max_new_tokens": 0}, {"max_new_tokens": -5}, {"max_new_tokens": 2**31 - 1},
    {"language": "xx"}, {"language": "en\0"}, {"language": "e" * 100_000},
    {"split_method": "cut9"}, {"split_method": "../cut0"},
]


@pytest.mark.parametrize("bad", BAD_OPTIONS, ids=lambda b: f"{next(iter(b))}={str(next(iter(b.values())))[:12]}")
def test_bad_option_is_invalid_argument_naming_it(armed, stub, bad):
    field = next(iter(bad))
    err = error_of(lambda: stub.Synthesize(_synth(options=bad), metadata=md(USER), timeout=30))
    assert err.code() == C.INVALID_ARGUMENT and field in err.details(), err
    assert len(err.details()) <= 1000
    cfg = pb.StreamingConfig(voice="alice", output=OUT, options=pb.SynthesisOptions(**{**OPTS, **bad}))
    err = error_of(lambda: stub.StreamingSynthesize(_streaming(cfg, "Hi."), metadata=md(USER), timeout=30))
    assert err.code() == C.INVALID_ARGUMENT and field in err.details(), err
    no_slot_held(armed)


@pytest.mark.parametrize("output", [
    pb.OutputConfig(), pb.OutputConfig(encoding=99), pb.OutputConfig(encoding=pb.PCM_S16LE, sample_rate_hz=-1),
    pb.OutputConfig(encoding=pb.PCM_S16LE, sample_rate_hz=7999),
    pb.OutputConfig(encoding=pb.PCM_S16LE, sample_rate_hz=192001),
    pb.OutputConfig(encoding=pb.PCM_F32LE, sample_rate_hz=2**31 - 1),
], ids=["unspecified", "enc99", "rate-1", "rate7999", "rate192001", "rate2^31"])
def test_bad_output_format(armed, stub, output):
    err = error_of(lambda: stub.Synthesize(_synth(output=output), metadata=md(USER), timeout=30))
    assert err.code() == C.INVALID_ARGUMENT and "output" in err.details(), err
    no_slot_held(armed)


def test_extreme_seeds_are_served(armed, stub):
    for seed in (-(2**63), -2, -1, 0, 2**63 - 1):  # negative: a random seed; the top of the range still works
        got = list(stub.Synthesize(_synth("One. Two. Three.", options={"seed": seed}), metadata=md(USER), timeout=60))
        assert got[0].WhichOneof("event") == "start" and got[-1].audio.is_final
    no_slot_held(armed)


# ------------------------------------------------------------------------------------------ names, ids, text


HUGE = 1_000_000


@pytest.mark.parametrize("name, code", [
    ("ghost", C.NOT_FOUND),
    ("\u0430lice", C.INVALID_ARGUMENT),  # Cyrillic a: a homoglyph of alice
    ("\u202eecila", C.INVALID_ARGUMENT),  # right-to-left override
    ("alice\u200b", C.INVALID_ARGUMENT),  # zero-width space
    ("alice\0", C.INVALID_ARGUMENT),
    ("../alice", C.INVALID_ARGUMENT),
    ("a" * 65, C.INVALID_ARGUMENT),
    ("!" * HUGE, C.INVALID_ARGUMENT),
], ids=["unknown", "homoglyph", "rtl", "zero-width", "nul", "traversal", "long", "huge"])
def test_voice_names_on_every_rpc_that_takes_one(armed, stub, name, code):
    u, a = md(USER), md(ADMIN)
    calls = [
        lambda: list(stub.Synthesize(_synth(voice=name), metadata=u, timeout=30)),
        lambda: list(stub.StreamingSynthesize(_streaming(pb.StreamingConfig(voice=name, output=OUT), "Hi."),
                                              metadata=u, timeout=30)),
        lambda: stub.GetVoice(pb.GetVoiceRequest(name=name), metadata=u, timeout=10),
        lambda: stub.UnloadVoice(pb.UnloadVoiceRequest(name=name), metadata=a, timeout=10),
    ]
    for call in calls:
        err = error_of(call)
        # a huge name must come back as INVALID_ARGUMENT with a short message, not as a trailer past grpc's limit
        assert err.code() == code, err
        assert len(err.details()) <= 1000 and ("voice" in err.details() or "name" in err.details()), err.details()[:300]
    if code == C.INVALID_ARGUMENT:
        err = error_of(lambda: stub.LoadVoice(pb.LoadVoiceRequest(name=name, bundle_path="alice"), metadata=a,
                                              timeout=30))
        assert err.code() == C.INVALID_ARGUMENT and len(err.details()) <= 1000, err.details()[:300]
    no_slot_held(armed)
    assert {v.name for v in stub.ListVoices(pb.ListVoicesRequest(), metadata=u, timeout=10).voices} == {"alice", "bob"}


@pytest.mark.parametrize("rid", ["a\nERROR forged log line", "tab\there", "x" * 200, "nul\0", "sp ace"],
                         ids=["newline", "tab", "long", "nul", "space"])
def test_request_ids_that_would_forge_log_lines_are_refused(armed, stub, rid):
    err = error_of(lambda: stub.Synthesize(_synth(request_id=rid), metadata=md(USER), timeout=30))
    assert err.code() == C.INVALID_ARGUMENT and "request_id" in err.details(), err
    cfg = pb.StreamingConfig(voice="alice", output=OUT, options=pb.SynthesisOptions(**OPTS), request_id=rid)
    err = error_of(lambda: stub.StreamingSynthesize(_streaming(cfg, "Hi."), metadata=md(USER), timeout=30))
    assert err.code() == C.INVALID_ARGUMENT and "request_id" in err.details(), err
    ok = list(stub.Synthesize(_synth(request_id="client-42.a:b"), metadata=md(USER), timeout=60))
    assert {r.request_id for r in ok} == {"client-42.a:b"}
    no_slot_held(armed)


@pytest.mark.parametrize("text", ["\u202e.ereht olleH", "Hel\u200blo the\u200dre.", "e\u0301" * 100, "😀 Hello. 😀",
                                  "Hello\0there.", "\u0430\u0440\u0440le there.", "\ufeff" * 50 + "Hi."],
                         ids=["rtl", "zero-width", "combining", "emoji", "nul", "homoglyphs", "bom"])
def test_odd_unicode_text_is_spoken_or_refused_never_a_crash(armed, stub, text):
    try:
        got = list(stub.Synthesize(_synth(text), metadata=md(USER), timeout=60))
        assert got[-1].audio.is_final
    except grpc.RpcError as err:
        assert err.code() == C.INVALID_ARGUMENT, err
        assert_clean(err.details(), armed)
    no_slot_held(armed)


def test_text_limit_counts_the_streamed_total(armed, stub):
    cfg = pb.StreamingConfig(voice="alice", output=OUT, options=pb.SynthesisOptions(**OPTS))
    err = error_of(lambda: stub.StreamingSynthesize(_streaming(cfg, *["abc " * 20] * 5), metadata=md(USER),
                                                    timeout=30))
    assert err.code() == C.INVALID_ARGUMENT and "limit of 300" in err.details()
    err = error_of(lambda: stub.StreamingSynthesize(_streaming(cfg, *[""] * 400), metadata=md(USER), timeout=30))
    assert err.code() == C.INVALID_ARGUMENT and "limit of 300" in err.details()  # empty pieces are not free
    err = error_of(lambda: stub.Synthesize(_synth("a" * 301), metadata=md(USER), timeout=30))
    assert err.code() == C.INVALID_ARGUMENT and "limit is 300" in err.details()
    no_slot_held(armed)


# ------------------------------------------------------------------------------------------ messages


def _raw_call(armed, method: str, kind: str = "unary_unary"):
    channel = grpc.insecure_channel(armed.address)
    return getattr(channel, kind)(f"/gsvd.v1.Synthesizer/{method}", request_serializer=lambda b: b,
                                  response_deserializer=lambda b: b)


@pytest.mark.parametrize("data", [b"\xff\xff\xff\xff garbage", b"\x0a\xff\xff\xff\xff\x0f", b"\x08\x01\x12\x01",
                                  b"\x0a\x05\x00\xff\xfe\xfd\xfc"],  # bad varint, past the end, wrong wire type,
                         ids=["garbage", "truncated", "wire-type", "bad-utf8"])  # invalid UTF-8 in a string field
def test_corrupt_messages_are_invalid_argument_on_every_rpc(armed, data):
    for method, kind in (("Synthesize", "unary_stream"), ("ListVoices", "unary_unary"), ("GetVoice", "unary_unary"),
                         ("LoadVoice", "unary_unary"), ("UnloadVoice", "unary_unary"),
                         ("GetServerInfo", "unary_unary")):
        call = _raw_call(armed, method, kind)
        token = md(ADMIN if method in ADMIN_RPCS else USER)
        try:
            result = call(data, metadata=token, timeout=10)
            list(result) if kind == "unary_stream" else None
        except grpc.RpcError as exc:
            assert exc.code() == C.INVALID_ARGUMENT and "malformed" in exc.details(), (method, exc)
        else:  # only a message without fields may parse: its unknown fields are skipped
            assert method in ("ListVoices", "GetServerInfo"), method
    stream = _raw_call(armed, "StreamingSynthesize", "stream_stream")
    with pytest.raises(grpc.RpcError) as info:
        list(stream(iter([data]), metadata=md(USER), timeout=10))
    assert info.value.code() == C.INVALID_ARGUMENT
    no_slot_held(armed)


def test_messages_past_the_limit_are_refused_by_size(armed, stub):
    big = "a" * (3 << 20)  # the armed daemon takes 2 MB messages
    err = error_of(lambda: stub.Synthesize(_synth(big), metadata=md(USER), timeout=30))
    assert err.code() == C.RESOURCE_EXHAUSTED
    cfg = pb.StreamingConfig(voice="alice", output=OUT, options=pb.SynthesisOptions(**OPTS))
    err = error_of(lambda: stub.StreamingSynthesize(_streaming(cfg, big), metadata=md(USER), timeout=30))
    assert err.code() == C.RESOURCE_EXHAUSTED
    no_slot_held(armed)
    assert list(stub.Synthesize(_synth(), metadata=md(USER), timeout=60))[-1].audio.is_final


def test_streaming_protocol_mistakes(armed, stub):
    cfg = pb.StreamingConfig(voice="alice", output=OUT, options=pb.SynthesisOptions(**OPTS))
    u = md(USER)

    def twice():
        yield pb.StreamingSynthesizeRequest(config=cfg)
        yield pb.StreamingSynthesizeRequest(config=cfg)

    err = error_of(lambda: stub.StreamingSynthesize(twice(), metadata=u, timeout=30))
    assert err.code() == C.INVALID_ARGUMENT and "config" in err.details()
    err = error_of(lambda: stub.StreamingSynthesize(iter([pb.StreamingSynthesizeRequest(input=pb.TextInput(text="x"))]),
                                                    metadata=u, timeout=30))
    assert err.code() == C.INVALID_ARGUMENT and "config" in err.details()
    err = error_of(lambda: stub.StreamingSynthesize(iter([]), metadata=u, timeout=30))
    assert err.code() == C.INVALID_ARGUMENT
    # the config alone, then the end of the input: nothing to say is not an error, and nothing is held
    responses = list(stub.StreamingSynthesize(iter([pb.StreamingSynthesizeRequest(config=cfg)]), metadata=u, timeout=30))
    assert responses[0].WhichOneof("event") == "start"
    no_slot_held(armed)


# ------------------------------------------------------------------------------------------ deadlines, cancels, load


def test_zero_and_tiny_deadlines_and_cancels_free_their_slots(armed, stub):
    u = md(USER)
    for timeout in (0.0, 0.001, 0.05):
        err = error_of(lambda timeout=timeout: stub.Synthesize(_synth("It keeps talking. " * 10), metadata=u,
                                                               timeout=timeout))
        assert err.code() == C.DEADLINE_EXCEEDED
    call = stub.Synthesize(_synth("It keeps talking. " * 10, options={"max_new_tokens": 500}), metadata=u, timeout=60)
    next(call)
    call.cancel()
    cfg = pb.StreamingConfig(voice="alice", output=OUT, options=pb.SynthesisOptions(**OPTS))
    streaming = stub.StreamingSynthesize(_streaming(cfg, "Hello there. It keeps going."), metadata=u, timeout=60)
    next(streaming)
    streaming.cancel()
    no_slot_held(armed)


def test_more_streams_than_slots(armed):
    """Ten long streams at once on three slots: three start, seven get RESOURCE_EXHAUSTED and nothing else."""
    import asyncio

    async def run():
        async with grpc.aio.insecure_channel(armed.address) as channel:
            s = pbg.SynthesizerStub(channel)
            calls = [s.Synthesize(_synth("It keeps talking for a long while. " * 8,
                                         options={"max_new_tokens": 500, "seed": i}), metadata=md(USER), timeout=60)
                     for i in range(10)]

            async def first(call):
                try:
                    return (await call.read()).WhichOneof("event")
                except grpc.aio.AioRpcError as exc:
                    return exc.code().name

            firsts = await asyncio.gather(*[first(c) for c in calls])
            for call in calls:
                call.cancel()
            return firsts

    firsts = asyncio.run(run())
    assert sorted(firsts) == ["RESOURCE_EXHAUSTED"] * 7 + ["start"] * 3, firsts
    no_slot_held(armed)


# ------------------------------------------------------------------------------------------ audit, secrets


def test_a_huge_refused_name_cannot_flood_the_audit_log(armed, stub):
    audit = armed.voices_dir.parent / "audit.jsonl"
    before = audit.stat().st_size
    for token in (None, ADMIN):
        err = error_of(lambda token=token: stub.UnloadVoice(pb.UnloadVoiceRequest(name="n" * HUGE), metadata=md(token),
                                                            timeout=10))
        assert err.code() in (C.UNAUTHENTICATED, C.INVALID_ARGUMENT)
    deadline = time.monotonic() + 10  # an entry is written as its call ends, just after the client has its answer
    while len(grown := audit.read_bytes()[before:].decode().splitlines()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in grown]
    assert [e["event"] for e in lines] == ["unload_voice", "unload_voice"]
    assert [e["result"] for e in lines] == ["UNAUTHENTICATED", "INVALID_ARGUMENT"]
    assert all(len(json.dumps(e)) < 4096 for e in lines), [len(json.dumps(e)) for e in lines]
    assert all(e["voice"].startswith("nnnn") for e in lines)  # the name is kept, cut short


def test_upload_fields_are_bounded(armed, stub):
    clip = (np.random.default_rng(0).uniform(-0.3, 0.3, 16000 * 4) * 32767).astype("<i2").tobytes()

    def upload(**change):
        ref = {"base_voice": "alice", "audio": clip, "encoding": pb.PCM_S16LE, "sample_rate_hz": 16000,
               "transcript": "Hello there.", "language": "en", "consent": pb.ConsentRecord(**CONSENT), **change}
        return stub.LoadVoice(pb.LoadVoiceRequest(name="zs", reference=pb.ReferenceUpload(**ref)), metadata=md(ADMIN),
                              timeout=60)

    for change, needle in (({"transcript": "Hello there. " * 40}, "limit"),  # the daemon's one text limit (300)
                           ({"base_voice": "b" * HUGE}, "base_voice"),
                           ({"language": "l" * HUGE}, "language"),
                           ({"consent": pb.ConsentRecord(**{**CONSENT, "speaker": "s" * HUGE})}, "consent")):
        t0 = time.monotonic()
        err = error_of(lambda change=change: upload(**change))
        assert err.code() == C.INVALID_ARGUMENT and needle in err.details(), (needle, err.details()[:300])
        assert len(err.details()) <= 1000 and time.monotonic() - t0 < 20
    assert "zs" not in {v.name for v in stub.ListVoices(pb.ListVoicesRequest(), metadata=md(USER), timeout=10).voices}


capped = daemon_fixture("attacks_grpc_cap", max_streams=2, queue_limit=2, idle_input_timeout_s=30.0)


def test_calls_in_flight_are_capped_and_the_cap_frees_when_they_end(capped):
    """A client opening text sessions that never send a word cannot make the server take calls without end: past
    max_streams + queue_limit + CALL_HEADROOM calls in flight the next one is RESOURCE_EXHAUSTED; once they end the
    server answers again and no slot is held."""
    import asyncio

    from gsvd.daemon.config import CALL_HEADROOM

    cap = 2 + 2 + CALL_HEADROOM

    async def run():
        stop = asyncio.Event()

        async def silent():
            await stop.wait()
            if False:  # an async generator that yields nothing until the end
                yield pb.StreamingSynthesizeRequest()

        async with grpc.aio.insecure_channel(capped.address) as channel:
            s = pbg.SynthesizerStub(channel)
            held = [s.StreamingSynthesize(silent(), metadata=md(USER), timeout=60) for _ in range(cap)]
            for call in held:  # each is open on the server once its metadata came back
                await call.wait_for_connection()
            await asyncio.sleep(0.3)
            try:
                await s.GetServerInfo(pb.GetServerInfoRequest(), metadata=md(USER), timeout=10)
                over = "OK"
            except grpc.aio.AioRpcError as exc:
                over = exc.code()
            stop.set()
            for call in held:
                call.cancel()
            await asyncio.sleep(0.3)
            info = await s.GetServerInfo(pb.GetServerInfoRequest(), metadata=md(USER), timeout=10)
            return over, info

    over, info = asyncio.run(run())
    assert over == C.RESOURCE_EXHAUSTED
    assert info.version
    no_slot_held(capped)

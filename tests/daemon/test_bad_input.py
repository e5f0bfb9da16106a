"""Bad input on every transport (issue 20, items 12-15): one text limit for gRPC, streamed gRPC, HTTP
and WebSocket; uploaded clips out of range; voice names and replacement; bodies and messages that
used to end in a 500, a crash or UNKNOWN, and server paths in error messages."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import grpc
import numpy as np
import pytest

from gsvd.clients import Client
from gsvd.daemon.config import DaemonConfig
from gsvd.engine.engine import MAX_TEXT_CHARS
from gsvd.engine.errors import InvalidInput
from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

from .conftest import CONSENT, start_daemon

LIMIT = 40  # the text limit of the `small` daemon
OPTIONS = pb.SynthesisOptions(seed=1, max_new_tokens=10, language="en")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    running = start_daemon(tmp_path_factory.mktemp("bad_input"), max_text_chars=LIMIT, http_port=0, max_streams=4,
                           max_message_mb=1)
    yield running
    running.stop()


def _rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def _no_server_path(running, details: str) -> None:
    root = running.voices_dir.parent
    assert str(root) not in details and str(root.resolve()) not in details, details


def _http(running, path: str, data: bytes):
    async def run():
        async with aiohttp.ClientSession() as s, s.post(f"http://127.0.0.1:{running.daemon.http_port}{path}",
                                                        data=data, headers={"Content-Type": "application/json"}) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.read()

    return asyncio.run(run())


def _ws(running, *messages):
    """Send `messages` (dict -> JSON text, str -> text, bytes -> binary); the server's JSON frames and close."""

    async def run():
        async with aiohttp.ClientSession() as s, s.ws_connect(f"http://127.0.0.1:{running.daemon.http_port}/v1/ws") as ws:
            for m in messages:
                if isinstance(m, bytes):
                    await ws.send_bytes(m)
                else:
                    await ws.send_str(m if isinstance(m, str) else json.dumps(m))
            frames = []
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    frames.append(json.loads(msg.data))
            return frames, ws.close_code

    return asyncio.run(asyncio.wait_for(run(), 60))


# ------------------------------------------------------------ 12: one text limit


def test_the_limit_is_one_number(daemon):
    assert DaemonConfig.load(env={}).max_text_chars == MAX_TEXT_CHARS
    with pytest.raises(InvalidInput, match="max_text_chars must be in"):
        DaemonConfig.load(env={}, max_text_chars=MAX_TEXT_CHARS + 1)
    with Client(daemon.address) as c:
        assert c.info().limits["max_text_chars"] == MAX_TEXT_CHARS
        err = _rpc_error(lambda: c.synthesize("a" * (MAX_TEXT_CHARS + 1), "alice"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and f"the limit is {MAX_TEXT_CHARS}" in err.details()


def test_grpc_text_limit_whole_and_streamed(small):
    stub = pbg.SynthesizerStub(grpc.insecure_channel(small.address))
    out = pb.OutputConfig(encoding=pb.PCM_S16LE)
    err = _rpc_error(lambda: list(stub.Synthesize(pb.SynthesizeRequest(text="a" * (LIMIT + 1), voice="alice",
                                                                        output=out), timeout=30)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and f"limit is {LIMIT}" in err.details()

    def pieces():
        yield pb.StreamingSynthesizeRequest(config=pb.StreamingConfig(voice="alice", output=out, options=OPTIONS))
        for _ in range(2):  # each under the limit, together over it (no sentence end: nothing is spoken)
            yield pb.StreamingSynthesizeRequest(input=pb.TextInput(text="abc " * 6))

    err = _rpc_error(lambda: list(stub.StreamingSynthesize(pieces(), timeout=30)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and f"limit of {LIMIT}" in err.details()


def test_http_text_limit(small):
    status, _, body = _http(small, "/v1/audio/speech", json.dumps({"input": "a" * (LIMIT + 1), "voice": "alice"}).encode())
    assert status == 400 and f"limit is {LIMIT}" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize("texts", [["a" * (LIMIT + 1)], ["abc " * 6, "abc " * 6]], ids=["one", "total"])
def test_websocket_text_limit(small, texts):
    frames, _ = _ws(small, {"voice": "alice", "options": {"seed": 1, "max_new_tokens": 10, "language": "en"}},
                    *[{"text": t} for t in texts], {"end": True})
    assert frames[0]["type"] == "start" and frames[-1]["type"] == "error", frames
    assert frames[-1]["code"] == "INVALID_ARGUMENT" and f"limit of {LIMIT}" in frames[-1]["message"]
    assert not [f for f in frames if f["type"] == "chunk"]


# ------------------------------------------------------------ 13: uploaded clips


@pytest.mark.parametrize("scale, nan, needle", [(32768.0, False, "outside [-1, 1]"), (1.5, False, "outside [-1, 1]"),
                                                (0.1, True, "NaN or infinite")])
def test_upload_out_of_range_or_non_finite_is_refused(small, scale, nan, needle):
    clip = np.random.default_rng(0).uniform(-1, 1, 16000 * 4).astype(np.float32) * scale
    if nan:
        clip[100] = np.nan
        clip[200] = np.inf
    with Client(small.address) as c:
        err = _rpc_error(lambda: c.upload_voice("carol", "alice", clip, 16000, "Hello there.", "en", consent=CONSENT))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in err.details()
        assert err.details().startswith("reference.audio")
        assert "carol" not in {v.name for v in c.voices()}


# ------------------------------------------------------------ 14: names and replacement


def test_load_voice_name_is_validated(small):
    with Client(small.address) as c:
        for bad in ("bad name!", "../x", "a" * 65, ".hidden"):
            err = _rpc_error(lambda bad=bad: c.load_voice("alice", name=bad))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "invalid voice name" in err.details()
            err = _rpc_error(lambda bad=bad: c.upload_voice(bad, "alice", np.zeros(64000, np.float32), 16000, "Hi.", "en",
                                                                         consent=CONSENT))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert {v.name for v in c.voices()} == {"alice", "bob"}


def test_replacing_a_voice_must_be_explicit(small):
    with Client(small.address) as c:
        alice, bob = c.voice("alice"), c.voice("bob")
        for load in (lambda: c.load_voice("alice"), lambda: c.load_voice("bob", name="alice"),
                     lambda: c.upload_voice("alice", "bob", np.zeros(64000, np.float32), 16000, "Hi.", "en",
                                             consent=CONSENT)):
            err = _rpc_error(load)
            assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "replace" in err.details()
        assert c.voice("alice").model_id == alice.model_id
        c.load_voice("alice", name="carol")
        assert c.load_voice("bob", name="carol", replace=True).model_id == bob.model_id
        assert c.voice("carol").model_id == bob.model_id
        c.unload_voice("carol")


def test_concurrent_loads_of_one_name_do_not_both_win(small):
    async def run():
        async with grpc.aio.insecure_channel(small.address) as ch:
            stub = pbg.SynthesizerStub(ch)
            calls = [stub.LoadVoice(pb.LoadVoiceRequest(name="dave", bundle_path=b, replace=False), timeout=60)
                     for b in ("alice", "bob")]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(run())
    errors = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(errors) == 1 and errors[0].code() == grpc.StatusCode.ALREADY_EXISTS
    with Client(small.address) as c:
        c.unload_voice("dave")


# ------------------------------------------------------------ 15: no 500s, crashes, UNKNOWN or leaked paths


@pytest.mark.parametrize("data, needle", [
    (b'{"input": "caf\xe9", "voice": "alice"}', "not valid UTF-8"),
    (b"[" * 100_000, "nested too deeply"),
    (b'{"a":' * 50_000, "nested too deeply"),
    (b'{"input": "Hi.", "voice": "alice", "speed": NaN}', "not valid JSON"),
    (b'{"input": "Hi.", "voice": "alice", "seed": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"input": ["Hi."], "voice": "alice"}', "input must be a string"),
    (b'{"input": "Hi.", "voice": 7}', "voice"),
])
def test_http_bad_bodies_are_400_json(small, data, needle):
    status, ctype, body = _http(small, "/v1/audio/speech", data)
    assert status == 400 and ctype.startswith("application/json"), body[:300]
    error = json.loads(body)["error"]
    assert error["code"] == "INVALID_ARGUMENT" and needle in error["message"]


def test_http_body_over_the_message_limit_is_413_json(small):
    status, ctype, body = _http(small, "/v1/audio/speech", b'{"input": "' + b"a" * (1 << 20) + b'"}')
    assert status == 413 and ctype.startswith("application/json")
    assert "limit of 1 MB" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize("first, needle", [
    ("[1, 2]", "config must be a JSON object"),
    ("5", "config must be a JSON object"),
    ("null", "config must be a JSON object"),
    ("{not json", "config is not valid JSON"),
    ("[" * 100_000, "nested too deeply"),
    (b"\x00\x01", "first message must be a JSON config"),
    ({"voice": "alice", "sample_rate": "fast"}, "sample_rate must be an integer"),
    ({"voice": "alice", "options": [1]}, "options must be a JSON object"),
    ({"voice": "alice", "encoding": ["pcm_s16le"]}, "encoding must be"),
    ({"voice": ["alice"]}, "voice"),
    ({"voice": "alice", "options": {"language": ["en"]}}, "language"),
])
def test_websocket_bad_config_gets_an_error_frame_and_a_clean_close(small, first, needle):
    frames, close_code = _ws(small, first)
    assert len(frames) == 1 and frames[0]["type"] == "error", frames
    assert frames[0]["code"] == "INVALID_ARGUMENT" and needle in frames[0]["message"]
    assert close_code == aiohttp.WSCloseCode.OK


@pytest.mark.parametrize("later", [[1, 2], "nope", b"\x00", {"text": 5}])
def test_websocket_bad_text_message_ends_with_an_error(small, later):
    frames, close_code = _ws(small, {"voice": "alice", "options": {"seed": 1, "max_new_tokens": 10, "language": "en"}},
                             later if isinstance(later, str | bytes) else json.dumps(later))
    assert frames[0]["type"] == "start" and frames[-1]["type"] == "error", frames
    assert frames[-1]["code"] == "INVALID_ARGUMENT" and close_code == aiohttp.WSCloseCode.OK


@pytest.mark.parametrize("path, code, needle", [
    ("alice\0/../../etc", grpc.StatusCode.INVALID_ARGUMENT, "NUL"),
    ("a" * 5000, grpc.StatusCode.INVALID_ARGUMENT, "too long"),
    ("x" * 300 + "/alice", grpc.StatusCode.INVALID_ARGUMENT, "too long"),
    ("../outside", grpc.StatusCode.INVALID_ARGUMENT, "not inside the server's voices directory"),
    ("/etc", grpc.StatusCode.INVALID_ARGUMENT, "not inside"),
    ("nothere", grpc.StatusCode.NOT_FOUND, "nothere"),
    ("empty", grpc.StatusCode.INVALID_ARGUMENT, "<voices_dir>/empty is not a voice bundle"),
])
def test_load_voice_bad_paths_are_refused_without_server_paths(small, path, code, needle):
    (small.voices_dir / "empty").mkdir(exist_ok=True)
    with Client(small.address) as c:
        err = _rpc_error(lambda: c.load_voice(path, name="zed"))
    assert err.code() == code and needle in err.details(), err.details()
    _no_server_path(small, err.details())


def test_load_voice_of_a_broken_bundle_names_no_server_path(small):
    import shutil

    broken = small.voices_dir / "broken"
    shutil.copytree(small.voices_dir / "alice", broken, dirs_exist_ok=True)
    manifest = broken / "voice.toml"
    manifest.write_text(manifest.read_text().replace('name = "alice"', 'name = "broken"'))
    for weights in broken.rglob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[:-8] + b"corrupt!")
        break
    with Client(small.address) as c:
        err = _rpc_error(lambda: c.load_voice("broken"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "checksum" in err.details(), err.details()
    _no_server_path(small, err.details())

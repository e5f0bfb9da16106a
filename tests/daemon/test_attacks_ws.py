"""Attacks on the WebSocket `/v1/ws` with the source at hand: credentials (header and subprotocol), pages of other
sites opening it (cross-site WebSocket hijacking), frames that are huge, binary or malformed, numbers out of range,
ping floods, a second stream asked for on one socket, closing mid-stream, and more sockets than slots. Each ends
with an error frame or a close code, nothing logs a traceback or a token, and no slot stays held."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import aiohttp
import pytest

from .attacks import (
    ADMIN,
    OPTS,
    USER,
    LogCapture,
    assert_clean,
    auth,
    daemon_fixture,
    no_slot_held,
    ws_session,
)

CFG = {"voice": "alice", "options": OPTS}


armed = daemon_fixture("attacks_ws")
open_daemon = daemon_fixture("attacks_ws_open", armed=False)


def bearer_protocol(token: str) -> str:
    return "gsvd.bearer." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def types(frames: list) -> list[str]:
    return [f["type"] if isinstance(f, dict) else f for f in frames]


def spoken(frames: list) -> bool:
    t = types(frames)
    return t[0] == "start" and t[-1] == "end" and "BINARY" in t


# ------------------------------------------------------------------------------------------ auth


@pytest.mark.parametrize("headers, protocols, ok", [
    ({}, (), False),
    (auth("wrong"), (), False),
    (auth(USER + "x"), (), False),
    ({}, ("gsvd.v1", bearer_protocol("wrong")), False),
    ({}, ("gsvd.v1", "gsvd.bearer.!!!not-base64"), False),
    ({"Authorization": "Basic " + USER}, (), False),
    (auth(USER), (), True),
    (auth(ADMIN), (), True),
    ({}, ("gsvd.v1", bearer_protocol(USER)), True),
], ids=["none", "wrong", "longer", "protocol-wrong", "protocol-garbage", "basic", "user", "admin", "protocol-user"])
def test_websocket_credentials(armed, headers, protocols, ok):
    frames, code = ws_session(armed, [CFG, {"text": "Hello there."}, {"end": True}], headers=headers,
                              protocols=protocols)
    if ok:
        assert spoken(frames), types(frames)
    else:
        assert types(frames) == ["error"] and frames[0]["code"] == "UNAUTHENTICATED", frames
        assert_clean(frames[0]["message"])
    no_slot_held(armed)


def test_a_bearer_subprotocol_never_reaches_the_logs(armed):
    """A page that offers only its token (no `gsvd.v1`): aiohttp logs the offered protocols it does not know."""
    with LogCapture() as logs:
        frames, _ = ws_session(armed, [CFG, {"text": "Hi."}, {"end": True}], protocols=(bearer_protocol(USER),))
        ws_session(armed, [CFG], protocols=(bearer_protocol("a-wrong-guess"),))
    assert spoken(frames)
    assert bearer_protocol(USER) not in logs.text and base64.urlsafe_b64encode(USER.encode()).decode()[:12] \
        not in logs.text, logs.text[-2000:]
    assert "a-wrong-guess" not in logs.text and bearer_protocol("a-wrong-guess") not in logs.text


# ------------------------------------------------------------------------------------------ other sites


def test_cross_site_websocket_hijacking_is_refused(open_daemon):
    port = open_daemon.daemon.http_port
    for origin in ("http://evil.example", "null", f"http://localhost.evil.example:{port}"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            ws_session(open_daemon, [CFG], headers={"Origin": origin})
        assert info.value.status == 403, origin
    for host in (f"evil.example:{port}", "10.1.2.3"):  # DNS rebinding onto a loopback daemon
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            ws_session(open_daemon, [CFG], headers={"Host": host, "Origin": f"http://{host}"})
        assert info.value.status == 403, host
    frames, _ = ws_session(open_daemon, [CFG, {"text": "Hi."}, {"end": True}],
                           headers={"Origin": f"http://127.0.0.1:{port}"})  # the console's own page
    assert spoken(frames)
    no_slot_held(open_daemon)


# ------------------------------------------------------------------------------------------ frames


@pytest.mark.parametrize("config, field", [
    ({"options": {"top_k": 10**30}}, "top_k"), ({"options": {"top_k": 5.5}}, "top_k"),
    ({"options": {"top_k": True}}, "top_k"), ({"options": {"top_k": "5"}}, "top_k"),
    ({"options": {"temperature": 10**400}}, "temperature"), ({"options": {"temperature": -1}}, "temperature"),
    ({"options": {"speed": 0}}, "speed"), ({"options": {"speed": [1]}}, "speed"),
    ({"options": {"seed": 2**64}}, "seed"), ({"options": {"seed": -2}}, "seed"), ({"options": {"seed": 1.5}}, "seed"),
    ({"options": {"max_new_tokens": 10**6}}, "max_new_tokens"), ({"options": {"max_new_tokens": 0}}, "max_new_tokens"),
    ({"options": {"noise_scale": "loud"}}, "noise_scale"), ({"options": {"language": {"en": 1}}}, "language"),
    ({"options": {"split_method": None, "evil": 1}}, "evil"),
    ({"sample_rate": 10**30}, "sample_rate"), ({"sample_rate": -1}, "sample_rate"), ({"sample_rate": 8000.5}, "sample_rate"),
    ({"sample_rate": 7999}, "sample_rate"), ({"encoding": "mp3"}, "encoding"), ({"encoding": None}, "encoding"),
    ({"voice": "../alice"}, "voice"), ({"voice": "\u0430lice"}, "voice"), ({"voice": "a" * 100_000}, "voice"),
], ids=lambda v: str(v)[:40])
def test_bad_config_values_get_an_error_frame(armed, config, field):
    cfg = {**CFG, **config, "options": {**OPTS, **config.get("options", {})}}
    frames, code = ws_session(armed, [json.dumps(cfg)], headers=auth(USER))
    assert types(frames) == ["error"] and frames[0]["code"] == "INVALID_ARGUMENT", frames
    assert field in frames[0]["message"] and len(frames[0]["message"]) <= 1000, frames[0]["message"][:300]
    assert code == aiohttp.WSCloseCode.OK
    no_slot_held(armed)


def test_unknown_voice_is_not_found(armed):
    frames, _ = ws_session(armed, [{**CFG, "voice": "ghost"}, {"text": "Hi."}, {"end": True}], headers=auth(USER))
    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "NOT_FOUND", frames
    no_slot_held(armed)


def test_huge_frames_close_the_socket_and_free_the_slot(armed):
    big = json.dumps({"text": "a" * (3 << 20)})  # past the 2 MB message limit
    with LogCapture() as logs:
        for messages in ([CFG, big], [big]):
            try:
                frames, code = ws_session(armed, messages, headers=auth(USER))
            except (aiohttp.ClientError, ConnectionError):
                continue  # the server closed while the frame was still being sent
            assert code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG and "chunk" not in types(frames), (types(frames), code)
        no_slot_held(armed)
    assert "Traceback" not in logs.text and "session failed" not in logs.text, logs.text[-3000:]
    frames, _ = ws_session(armed, [CFG, {"text": "Hi."}, {"end": True}], headers=auth(USER))
    assert spoken(frames)


def test_binary_and_control_frames_where_text_is_expected(armed):
    frames, _ = ws_session(armed, [b"\x00" * 1000], headers=auth(USER))
    assert types(frames) == ["error"] and "JSON config" in frames[0]["message"]
    frames, _ = ws_session(armed, [CFG, {"text": "Hi."}, b"{\"text\": \"binary\"}"], headers=auth(USER))
    assert types(frames)[0] == "start" and frames[-1]["type"] == "error" and "binary" in frames[-1]["message"]
    no_slot_held(armed)


def test_a_ping_flood_does_not_stop_the_stream(armed):
    async def flood(ws):
        for _ in range(3000):
            await ws.ping(b"p" * 125)
        await ws.send_json({"text": "Hello there."})
        await ws.send_json({"end": True})

    with LogCapture() as logs:
        frames, code = ws_session(armed, [CFG], headers=auth(USER), after=flood)
    assert spoken(frames) and code == aiohttp.WSCloseCode.OK, types(frames)[-3:]
    assert "Traceback" not in logs.text
    no_slot_held(armed)


def test_a_flood_of_empty_pieces_meets_the_text_limit(armed):
    """Empty text messages are not free: each counts as a character of the 300-character limit."""
    frames, _ = ws_session(armed, [CFG, *[{"text": ""}] * 400, {"end": True}], headers=auth(USER))
    assert frames[-1]["type"] == "error" and "limit of 300" in frames[-1]["message"], types(frames)[-3:]
    no_slot_held(armed)


def test_one_socket_carries_one_stream(armed):
    """A second config on the same socket is not a second stream: one start, one end, one slot."""
    second = {"voice": "bob", "options": {**OPTS, "seed": 2}}
    frames, _ = ws_session(armed, [CFG, second, second, {"text": "Hello there."}, {"end": True}], headers=auth(USER))
    assert types(frames).count("start") == 1 and types(frames).count("end") == 1 and spoken(frames), types(frames)
    assert frames[0]["label"]["voice"] == "alice"
    no_slot_held(armed)


@pytest.mark.parametrize("when", ["after-config", "after-start", "after-first-chunk"])
def test_closing_mid_stream_frees_the_slot_without_a_traceback(armed, when):
    async def close(ws):
        await ws.send_json({"text": "It keeps talking for a long while. " * 5})
        if when in ("after-start", "after-first-chunk"):
            await ws.receive()
        if when == "after-first-chunk":
            await ws.receive()
            await ws.receive()
        await ws.close()

    cfg = {**CFG, "options": {**OPTS, "max_new_tokens": 400}}
    with LogCapture() as logs:
        with contextlib.suppress(aiohttp.ClientError, ConnectionError):
            ws_session(armed, [cfg], headers=auth(USER), after=close)
        no_slot_held(armed)
    assert "Traceback" not in logs.text and "session failed" not in logs.text, logs.text[-3000:]


def test_more_sockets_than_slots(armed):
    """Eight sockets at once on three slots (each holds its stream open until all have their first frame): three
    start and end normally, five get a RESOURCE_EXHAUSTED error frame and nothing else."""
    async def run():
        async with aiohttp.ClientSession(headers=auth(USER)) as s:
            url = f"http://127.0.0.1:{armed.daemon.http_port}/v1/ws"
            sockets = await asyncio.gather(*[s.ws_connect(url) for _ in range(8)])
            for i, ws in enumerate(sockets):
                await ws.send_json({**CFG, "options": {**OPTS, "seed": i}})
            firsts = [json.loads((await ws.receive(timeout=30)).data) for ws in sockets]
            ends = []
            for ws, first in zip(sockets, firsts, strict=True):
                if first["type"] == "start":
                    await ws.send_json({"text": "Hi."})
                    await ws.send_json({"end": True})
                    frames = [json.loads(m.data) async for m in ws if m.type == aiohttp.WSMsgType.TEXT]
                    ends.append(frames[-1]["type"])
                await ws.close()
            return [f["type"] if f["type"] == "start" else f["code"] for f in firsts], ends

    firsts, ends = asyncio.run(asyncio.wait_for(run(), 120))
    assert sorted(firsts) == ["RESOURCE_EXHAUSTED"] * 5 + ["start"] * 3 and ends == ["end"] * 3, (firsts, ends)
    no_slot_held(armed)


def test_idle_sockets_without_a_config_are_closed(armed):
    """A socket that never sends its config holds no slot and is closed after the idle-input timeout (2 s)."""
    async def run():
        async with aiohttp.ClientSession(headers=auth(USER)) as s:
            sockets = [await s.ws_connect(f"http://127.0.0.1:{armed.daemon.http_port}/v1/ws") for _ in range(6)]
            assert armed.daemon.service.runner.active == 0
            closes = await asyncio.gather(*[asyncio.wait_for(ws.receive(), 10) for ws in sockets])
            for ws in sockets:
                await ws.close()
            return closes

    closes = asyncio.run(run())
    assert all(m.type == aiohttp.WSMsgType.TEXT and json.loads(m.data)["code"] == "DEADLINE_EXCEEDED" for m in closes)
    no_slot_held(armed)


capped = daemon_fixture("attacks_ws_cap", max_streams=2, queue_limit=2, idle_input_timeout_s=30.0)


def test_sockets_in_flight_are_capped_like_grpc_calls(capped):
    """WebSockets that never send their config count as calls in flight, as on gRPC: past max_streams +
    queue_limit + CALL_HEADROOM the next HTTP request is 429 JSON RESOURCE_EXHAUSTED; once they close, it is
    served again and no slot is held."""
    from gsvd.daemon.config import CALL_HEADROOM

    cap = 2 + 2 + CALL_HEADROOM
    base = f"http://127.0.0.1:{capped.daemon.http_port}"
    auth = {"Authorization": f"Bearer {USER}"}

    async def run():
        async with aiohttp.ClientSession() as s:
            sockets = [await s.ws_connect(f"{base}/v1/ws", headers=auth) for _ in range(cap)]
            await asyncio.sleep(0.3)
            async with s.get(f"{base}/v1/server", headers=auth) as r:
                over = (r.status, await r.json())
            for ws in sockets:
                await ws.close()
            await asyncio.sleep(0.3)
            async with s.get(f"{base}/v1/server", headers=auth) as r:
                after = r.status
            return over, after

    (status, body), after = asyncio.run(asyncio.wait_for(run(), 60))
    assert status == 429 and body["error"]["code"] == "RESOURCE_EXHAUSTED" and "in flight" in body["error"]["message"]
    assert after == 200
    no_slot_held(capped)

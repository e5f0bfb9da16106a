"""Attacks on the HTTP gateway and the console's JSON API with the source at hand: every route under every
credential, bodies that are nested, malformed, oversized, chunked or sent too slowly, multipart forms that are
broken, method and content-type confusion, protocol-level smuggling attempts, requests from other sites (CSRF and
DNS rebinding), cache headers, and the server paths and tokens an answer or a log could leak. Every refusal is a
4xx JSON error, nothing logs a traceback, and afterwards no slot is held."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from .attacks import (
    ADMIN,
    CONSENT_FORM,
    TOKENS,
    USER,
    LogCapture,
    assert_clean,
    daemon_fixture,
    json_error,
    multipart,
    no_slot_held,
    raw,
    request,
    upload_form,
)

SPEECH = {"input": "Hello there.", "voice": "alice", "response_format": "pcm"}
STREAMED = {**SPEECH, "stream": True}  # its answer's head comes with the first audio


def _a_run(root) -> None:
    (root / "runs" / "r1").mkdir(parents=True)
    (root / "runs" / "r1" / "run.json").write_text('{"name": "r1"}')


armed = daemon_fixture("attacks_http", prepare=_a_run)
# no tokens and --no-auth on loopback: the set-up a web page must not be able to drive
open_daemon = daemon_fixture("attacks_open", armed=False, allowed_origins="https://console.example")


# ------------------------------------------------------------------------------------------ auth


def _routes() -> list[tuple[str, str, bytes | dict | None, dict, bool]]:
    """(method, path, body, headers, admin) of every route that needs a token."""
    form, ctype = upload_form(base_voice="ghost")  # past auth: 404, nothing is made
    return [
        ("GET", "/v1/server", None, {}, False),
        ("GET", "/v1/voices", None, {}, False),
        ("HEAD", "/v1/voices", None, {}, False),
        ("GET", "/v1/runs", None, {}, False),
        ("GET", "/v1/runs/r1", None, {}, False),
        ("GET", "/v1/runs/r1/files/select/report.md", None, {}, False),
        ("POST", "/v1/audio/speech", SPEECH, {}, False),
        ("POST", "/v1/voices", {"bundle_path": "no-such-bundle"}, {}, True),
        ("POST", "/v1/voices", form, {"Content-Type": ctype}, True),
        ("DELETE", "/v1/voices/no-such-voice", None, {}, True),
        ("POST", "/v1/runs/r1/package", {"sovits_epoch": 0}, {}, True),
    ]


@pytest.mark.parametrize("token", [None, "wrong", USER + "x", USER, ADMIN], ids=["none", "wrong", "longer", "user",
                                                                              "admin"])
def test_every_route_under_every_credential(armed, token):
    for method, path, body, headers, admin in _routes():
        status, head, data = request(armed, method, path, body, token=token, headers=headers)
        if token in (None, "wrong", USER + "x"):
            assert status == 401, (method, path, status, data[:200])
        elif token == USER and admin:
            assert status == 403, (method, path, status, data[:200])
        else:
            assert status not in (401, 403), (method, path, status, data[:200])
        if status >= 400 and method != "HEAD":
            assert_clean(json_error(status, head, data)["message"], armed)
    assert {"alice", "bob"} <= {v["name"] for v in json.loads(request(armed, "GET", "/v1/voices")[2])["voices"]
                               if v["loaded"]}
    no_slot_held(armed)


def test_open_routes_change_nothing_and_reveal_nothing(armed):
    for path in ("/healthz", "/", "/console/app.js", "/console/index.html"):
        status, _, data = request(armed, "GET", path, token=None)
        assert status == 200 and b"alice" not in data and b"bob" not in data, path
        assert_clean(data.decode(), armed)
    for path in ("/console/..%2f..%2fvoices%2falice%2fvoice.toml", "/console/../../etc/passwd", "/console/%00",
                 "/console/app.js%00.html", "/voices/alice/voice.toml", "/v1/voices/alice/voice.toml"):
        status, head, data = request(armed, "GET", path, token=None)
        assert status in (401, 404, 405), (path, status)
        assert b"[consent]" not in data and b"safetensors" not in data


# ------------------------------------------------------------------------------------------ bodies


@pytest.mark.parametrize("path, status", [
    ("../outside/alice", 400), ("/etc", 400), ("alice/../../x", 400), ("alice\0", 400), ("a" * 5000, 400),
    ("~/voices/alice", 404), ("\u202ealice", 404), ("%2e%2e/alice", 404), ("alice/voice.toml", 400), (".", 400),
    ("", 400),
], ids=["dotdot", "absolute", "inner-dotdot", "nul", "long", "tilde", "rtl", "encoded", "file", "root", "empty"])
def test_bundle_paths_cannot_leave_the_voices_folder(armed, path, status):
    got, head, body = request(armed, "POST", "/v1/voices", {"bundle_path": path, "name": "escape"}, token=ADMIN)
    error = json_error(got, head, body)
    assert got == status, (path[:40], got, error)
    assert_clean(error["message"], armed)
    assert "escape" not in {v["name"] for v in json.loads(request(armed, "GET", "/v1/voices")[2])["voices"]}


@pytest.mark.parametrize("data, needle", [
    (b"[" * 100_000, "nested too deeply"),
    (b'{"a":' * 50_000, "nested too deeply"),
    (b'{"bundle_path": NaN}', "not valid JSON"),
    (b'{"bundle_path": "alice", "name": "x", "replace": Infinity}', "not valid JSON"),
    (b'{"bundle_path": "caf\xe9"}', "UTF-8"),
    (b"[1, 2]", "JSON object"),
    (b"", "not valid JSON"),
    (b'{"bundle_path": "alice", "x": ' + b"9" * 5000 + b"}", "not valid JSON"),
], ids=["nested-array", "nested-object", "nan", "infinity", "latin1", "array", "empty", "long-int"])
def test_console_json_bodies_are_400(armed, data, needle):
    for path in ("/v1/voices", "/v1/runs/r1/package"):
        status, head, body = request(armed, "POST", path, data, token=ADMIN,
                                     headers={"Content-Type": "application/json"})
        error = json_error(status, head, body)
        assert status == 400 and error["code"] == "INVALID_ARGUMENT" and needle in error["message"], (path, error)


def test_bodies_past_the_limit_are_413_json(armed):
    big = b'{"input": "' + b"a" * (3 << 20) + b'"}'
    for path, token in (("/v1/audio/speech", USER), ("/v1/voices", ADMIN), ("/v1/runs/r1/package", ADMIN)):
        status, head, body = request(armed, "POST", path, big, token=token, headers={"Content-Type": "application/json"})
        assert status == 413 and json_error(status, head, body)["code"] == "RESOURCE_EXHAUSTED", path
    form, ctype = upload_form(audio=b"\0" * (3 << 20))
    status, head, body = request(armed, "POST", "/v1/voices", form, token=ADMIN, headers={"Content-Type": ctype})
    assert status == 413 and json_error(status, head, body)["code"] == "RESOURCE_EXHAUSTED"


@pytest.mark.parametrize("case", ["no-boundary", "empty-boundary", "latin1-field", "rate-huge", "rate-negative",
                                  "rate-text", "rate-float", "audio-as-text", "unterminated", "garbage",
                                  "unknown-charset"])
def test_broken_upload_forms_are_400_json(armed, case):
    ok_form, ok_type = upload_form(encoding="pcm_s16le", sample_rate="16000",
                                   audio=(np.zeros(16000 * 4, "<i2")).tobytes())
    data, ctype = {
        "no-boundary": (ok_form, "multipart/form-data"),
        "empty-boundary": (ok_form, "multipart/form-data; boundary="),
        "latin1-field": upload_form(name=b"caf\xe9"),
        "rate-huge": upload_form(encoding="pcm_s16le", sample_rate="99999999999", audio=b"\0\0" * 64000),
        "rate-negative": upload_form(encoding="pcm_s16le", sample_rate="-16000", audio=b"\0\0" * 64000),
        "rate-text": upload_form(encoding="pcm_s16le", sample_rate="fast", audio=b"\0\0" * 64000),
        "rate-float": upload_form(encoding="pcm_f32le", sample_rate="16000.5", audio=b"\0\0\0\0" * 64000),
        "audio-as-text": multipart({"name": "zs", "base_voice": "alice", "audio": "not a file", **CONSENT_FORM}),
        "unterminated": (ok_form[: len(ok_form) // 2], ok_type),
        "garbage": (b"\xff" * 1000, ok_type),
        "unknown-charset": (b'--b\r\nContent-Disposition: form-data; name="name"\r\nContent-Type: text/plain; '
                            b'charset=no-such-codec\r\n\r\nzs\r\n--b--\r\n', "multipart/form-data; boundary=b"),
    }[case]
    with LogCapture() as logs:
        status, head, body = request(armed, "POST", "/v1/voices", data, token=ADMIN, headers={"Content-Type": ctype})
    error = json_error(status, head, body)
    assert status == 400 and error["code"] == "INVALID_ARGUMENT", (case, status, error)
    assert "Traceback" not in logs.text, logs.text[-3000:]
    assert "zs" not in {v["name"] for v in json.loads(request(armed, "GET", "/v1/voices")[2])["voices"]}


@pytest.mark.parametrize("change, needle", [
    ({"speed": 0}, "speed"), ({"speed": -1}, "speed"), (b'"speed": 1e400', "speed"), ({"speed": "fast"}, "speed"),
    ({"speed": True}, "speed"), ({"speed": 10**400}, "speed"), ({"speed": [1]}, "speed"),
    ({"input": 5}, "input"), ({"input": ""}, "empty"), ({"input": "a" * 301}, "limit is 300"),
    ({"voice": "../alice"}, "voice"), ({"voice": "\u0430lice"}, "voice"), ({"voice": None}, "voice"),
    ({"response_format": ["wav"]}, "response_format"), ({"response_format": "mp3"}, "response_format"),
], ids=lambda v: str(v)[:40])
def test_speech_fields(armed, change, needle):
    if isinstance(change, bytes):  # a number JSON allows and Python reads as infinity
        body = json.dumps(SPEECH).encode()[:-1] + b", " + change + b"}"
    else:
        body = json.dumps({**SPEECH, **change}).encode()
    status, head, data = request(armed, "POST", "/v1/audio/speech", body, headers={"Content-Type": "application/json"})
    error = json_error(status, head, data)
    assert status == 400 and needle in error["message"], error
    no_slot_held(armed)


@pytest.mark.parametrize("text", ["\ud800 Hello there.", "Hel\u0000lo \u202eevil\u200b there.", "e\u0301" * 100,
                                  "\U0001F600" * 50, "\ufffe\uffff Hi."], ids=["surrogate", "nul-rtl", "combining",
                                                                              "emoji", "nonchars"])
def test_odd_unicode_in_speech_is_spoken_or_refused(armed, text):
    body = json.dumps({**SPEECH, "input": text}).encode()  # \ud800 travels as a JSON escape
    status, head, data = request(armed, "POST", "/v1/audio/speech", body, headers={"Content-Type": "application/json"})
    assert status in (200, 400), (status, data[:300])
    if status == 400:
        assert_clean(json_error(status, head, data)["message"], armed)
    no_slot_held(armed)


# ------------------------------------------------------------------------------------------ methods, types, framing


def test_method_confusion_is_405_json(armed):
    for method, path in (("GET", "/v1/audio/speech"), ("PUT", "/v1/audio/speech"), ("PATCH", "/v1/voices"),
                         ("PUT", "/v1/voices"), ("DELETE", "/v1/server"), ("POST", "/v1/server"),
                         ("OPTIONS", "/v1/voices"), ("TRACE", "/v1/voices"), ("DELETE", "/v1/runs/r1"),
                         ("GET", "/v1/runs/r1/package")):
        status, head, data = request(armed, method, path, token=ADMIN)
        assert status == 405 and json_error(status, head, data)["code"] == "METHOD_NOT_ALLOWED", (method, path)
    status, head, data = request(armed, "HEAD", "/v1/voices", token=USER)
    assert status == 200 and data == b""


def test_content_type_confusion(armed):
    as_form = request(armed, "POST", "/v1/voices", {"bundle_path": "alice"}, token=ADMIN,
                      headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert as_form[0] == 400 and json_error(*as_form)["code"] == "INVALID_ARGUMENT"
    urlencoded = request(armed, "POST", "/v1/voices", b"bundle_path=alice&name=x", token=ADMIN,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert urlencoded[0] == 400 and json_error(*urlencoded)["code"] == "INVALID_ARGUMENT"
    # a non-browser client that labels its JSON text/plain is served (browsers are held by the origin check)
    plain = request(armed, "POST", "/v1/audio/speech", json.dumps(STREAMED).encode(),
                    headers={"Content-Type": "text/plain"}, head_only=True)
    assert plain[0] == 200 and len(plain[2]) > 0
    no_slot_held(armed)


def _http_head(armed, path: str, extra: str = "", token: str | None = USER) -> bytes:
    auth_line = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{armed.daemon.http_port}\r\n{auth_line}"
            f"Content-Type: application/json\r\n{extra}").encode()


def test_chunked_bodies(armed):
    body = json.dumps(SPEECH).encode()
    good = _http_head(armed, "/v1/audio/speech", "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    for i in range(0, len(body), 7):
        piece = body[i:i + 7]
        good += b"%x\r\n%s\r\n" % (len(piece), piece)
    out, how, _ = raw(armed, good + b"0\r\n\r\n", wait=60)
    assert out.startswith(b"HTTP/1.1 200") and how == "closed", out[:300]
    huge = _http_head(armed, "/v1/audio/speech", "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    chunk = b"a" * (1 << 20)
    out, _, _ = raw(armed, huge + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413") and b"application/json" in out.split(b"\r\n\r\n")[0], out[:300]
    with LogCapture() as logs:
        bad = _http_head(armed, "/v1/audio/speech", "Transfer-Encoding: chunked\r\n\r\n") + b"zz\r\nabc\r\n0\r\n\r\n"
        out, how, _ = raw(armed, bad)
    assert out.startswith(b"HTTP/1.1 400") or out.startswith(b"HTTP/1.0 400"), out[:300]
    assert "Traceback" not in logs.text, logs.text[-3000:]
    no_slot_held(armed)


@pytest.mark.parametrize("extra, expect", [
    ("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b" 400 "),
    ("Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", b" 400 "),
    ("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", b" 400 "),
    ("X-Long: " + "a" * 20000 + "\r\n\r\n", b" 4"),
    ("Connection: close\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(200)) + "\r\n", b" 4"),
    ("Content-Length: -1\r\n\r\n", b" 400 "),
    ("Content-Length: 99999999999999999999999\r\n\r\n", b" 4"),
], ids=["cl+te", "dup-cl", "dup-te", "long-header", "many-headers", "negative-cl", "huge-cl"])
def test_framing_attacks_get_4xx_and_log_no_traceback(armed, extra, expect):
    with LogCapture() as logs:
        out, how, _ = raw(armed, _http_head(armed, "/v1/audio/speech", extra))
    assert expect in out.split(b"\r\n", 1)[0], out[:300]
    assert how in ("closed", "reset")
    assert "Traceback" not in logs.text, logs.text[-3000:]
    no_slot_held(armed)


# ------------------------------------------------------------------------------------------ slow clients


def test_slow_headers_are_cut_off(armed):
    start = f"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1:{armed.daemon.http_port}\r\n".encode()
    out, how, took = raw(armed, start, wait=10, drip=[b"X-A: 1\r\n"] * 20, drip_every=0.2)
    assert how in ("closed", "reset") and took < 6, (how, took, out[:200])
    out, how, took = raw(armed, b"", wait=10)  # connected, never a byte
    assert how in ("closed", "reset") and took < 4, (how, took)


@pytest.mark.parametrize("path, token, ctype", [("/v1/audio/speech", USER, "application/json"),
                                                ("/v1/voices", ADMIN, "application/json"),
                                                ("/v1/voices", ADMIN, "multipart/form-data; boundary=b"),
                                                ("/v1/runs/r1/package", ADMIN, "application/json")])
def test_slow_bodies_get_408(armed, path, token, ctype):
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{armed.daemon.http_port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: 1000\r\n\r\n{{").encode()
    out, how, took = raw(armed, head, wait=10)
    assert took < 6 and how in ("closed", "reset"), (how, took, out[:200])
    assert out.startswith(b"HTTP/1.1 408"), out[:300]
    assert json.loads(out.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "DEADLINE_EXCEEDED"
    no_slot_held(armed)


def test_more_requests_than_slots_get_429(armed):
    """Nine streamed requests at once on three slots: three stream (held open until closed), six get 429 JSON."""
    import aiohttp

    async def run():
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {USER}"}) as s:
            url = f"http://127.0.0.1:{armed.daemon.http_port}/v1/audio/speech"
            responses = await asyncio.gather(*[s.post(url, json={**SPEECH, "stream": True}) for _ in range(9)])
            out = [(r.status, await (r.content.read(64) if r.status == 200 else r.read())) for r in responses]
            for r in responses:
                r.close()
            return out

    results = asyncio.run(asyncio.wait_for(run(), 60))
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 3 + [429] * 6, statuses
    assert all(json.loads(b)["error"]["code"] == "RESOURCE_EXHAUSTED" for s, b in results if s == 429)
    no_slot_held(armed)


# ------------------------------------------------------------------------------------------ other sites


def _voices(running) -> set[str]:
    return {v["name"] for v in json.loads(request(running, "GET", "/v1/voices", token=None)[2])["voices"] if v["loaded"]}


def test_a_page_of_another_site_cannot_change_voices_or_speak(open_daemon):
    port = open_daemon.daemon.http_port
    form, ctype = upload_form()
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}.evil"):
        for method, path, body, headers in (
                ("POST", "/v1/voices", {"bundle_path": "alice", "name": "csrf"}, {}),
                ("POST", "/v1/voices", json.dumps({"bundle_path": "alice", "name": "csrf"}).encode(),
                 {"Content-Type": "text/plain"}),  # a "simple" request: no preflight
                ("POST", "/v1/voices", form, {"Content-Type": ctype}),
                ("DELETE", "/v1/voices/bob", None, {}),
                ("POST", "/v1/audio/speech", json.dumps(SPEECH).encode(), {"Content-Type": "text/plain"}),
                ("GET", "/v1/voices", None, {})):
            status, head, data = request(open_daemon, method, path, body, token=None,
                                         headers={**headers, "Origin": origin})
            error = json_error(status, head, data)
            assert status == 403 and error["code"] == "PERMISSION_DENIED" and "origin" in error["message"], \
                (origin, method, path, status, error)
    assert _voices(open_daemon) == {"alice", "bob"}
    # a cross-site request without an Origin (an <img> or <audio> load) names itself in Sec-Fetch-Site
    status, head, data = request(open_daemon, "GET", "/v1/voices", token=None, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403 and json_error(status, head, data)["code"] == "PERMISSION_DENIED"


def test_the_console_itself_and_listed_origins_are_served(open_daemon):
    port = open_daemon.daemon.http_port
    for origin in (f"http://127.0.0.1:{port}", "https://console.example"):
        status, _, data = request(open_daemon, "POST", "/v1/voices", {"bundle_path": "alice", "name": "same"},
                                  token=None, headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"})
        assert status == 201, (origin, data[:300])
        status, _, _ = request(open_daemon, "DELETE", "/v1/voices/same", token=None, headers={"Origin": origin})
        assert status == 200
    assert request(open_daemon, "GET", "/", token=None, headers={"Sec-Fetch-Site": "cross-site"})[0] == 200  # a link


def test_dns_rebinding_is_refused_on_a_loopback_bind(open_daemon):
    port = open_daemon.daemon.http_port
    for host in (f"evil.example:{port}", f"10.0.0.1:{port}", "rebind.example"):
        status, head, data = request(open_daemon, "GET", "/v1/voices", token=None,
                                     headers={"Host": host, "Origin": f"http://{host}"})
        assert status == 403 and json_error(status, head, data)["code"] == "PERMISSION_DENIED", host
        status, head, data = request(open_daemon, "DELETE", "/v1/voices/bob", token=None,
                                     headers={"Host": host, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"})
        assert status == 403, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "127.0.0.1"):
        assert request(open_daemon, "GET", "/v1/voices", token=None,
                       headers={"Host": host, "Sec-Fetch-Site": "same-origin"})[0] == 200, host
    # a client that is not a browser may name the daemon as it likes (a proxy's or container's name)
    assert request(open_daemon, "GET", "/v1/voices", token=None, headers={"Host": "gsvd"})[0] == 200
    assert _voices(open_daemon) == {"alice", "bob"}


# ------------------------------------------------------------------------------------------ leaks


def test_api_answers_are_not_cached(armed):
    for method, path, body, token in (("GET", "/v1/voices", None, USER), ("GET", "/v1/server", None, USER),
                                      ("GET", "/v1/runs", None, USER), ("GET", "/v1/runs/r1", None, USER),
                                      ("GET", "/v1/voices", None, None), ("POST", "/v1/audio/speech", STREAMED, USER),
                                      ("GET", "/v1/nothing", None, USER)):
        status, head, _ = request(armed, method, path, body, token=token, head_only=True)
        assert "no-store" in head.get("cache-control", ""), (method, path, status, head)


def test_errors_and_listings_name_no_server_folder(armed):
    root = armed.voices_dir.parent
    (armed.voices_dir / "junk").mkdir(exist_ok=True)
    (armed.voices_dir / "junk" / "voice.toml").write_text("not = [toml")
    status, head, data = request(armed, "GET", "/v1/voices")
    rows = {v["name"]: v for v in json.loads(data)["voices"]}
    assert status == 200 and "junk" in rows and "TOML" in rows["junk"]["error"]
    for path in ("/v1/runs", "/v1/runs/nope", "/v1/runs/..", "/v1/runs/r1/files/select/report.md",
                 "/v1/runs/r1/files/fit/samples/..%2F..%2F..%2Fvoices/0.wav", "/v1/voices"):
        status, head, data = request(armed, "GET", path)
        assert str(root) not in data.decode() and str(root.resolve()) not in data.decode(), (path, data[:300])
    status, head, data = request(armed, "POST", "/v1/runs/r1/package", {"sovits_epoch": 0}, token=ADMIN)
    assert status == 400 and str(root) not in data.decode(), data[:300]


def test_tokens_appear_in_no_log_audit_metric_or_answer(armed):
    from prometheus_client import generate_latest

    with LogCapture() as logs:
        for token in (USER, ADMIN, USER + "x", ADMIN[:-1]):
            for method, path, body, headers, _ in _routes():
                request(armed, method, path, body, token=token, headers=headers)
        answers = [request(armed, "GET", p, token=ADMIN)[2].decode() for p in ("/v1/server", "/v1/voices", "/v1/runs")]
    exposed = "\n".join([logs.text, (armed.voices_dir.parent / "audit.jsonl").read_text(),
                         generate_latest(armed.daemon.metrics.registry).decode(), *answers])
    for token in (*TOKENS, USER + "x", ADMIN[:-1]):
        assert token not in exposed
    assert "Traceback" not in logs.text, logs.text[-3000:]

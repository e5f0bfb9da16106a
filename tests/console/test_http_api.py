"""The JSON API the console is built on (/v1/server, /v1/voices, /v1/runs), its auth and errors, the
static files, and the pieces behind them (bucket quantiles, the underrun clock)."""

from __future__ import annotations

import base64
import io
import json
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest

from .conftest import ADMIN, USER, base_url, call

pytestmark = pytest.mark.xdist_group("console")  # one worker builds the run folder and the daemon once


def _wav(seconds: float, rate: int = 16000) -> bytes:
    from gsvd.engine.testing.bundle import synthetic_clip

    pcm = (synthetic_clip(seconds, rate) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _multipart(fields: dict[str, str], audio: bytes, filename: str = "clip.wav") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="{filename}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + audio + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _upload(running, fields: dict[str, str], audio: bytes, token: str = ADMIN):
    body, ctype = _multipart(fields, audio)
    return call(running, "POST", "/v1/voices", body, token=token, content_type=ctype)


# ------------------------------------------------------------------------------------ voices


def test_voices_lists_loaded_and_on_disk_bundles_with_consent_and_defaults(console_daemon):
    from gsvd.engine.testing.bundle import write_tiny_voice

    write_tiny_voice(console_daemon.daemon.config.voices_dir, "carol", seed=2)  # on disk, not loaded
    status, data, _ = call(console_daemon, "GET", "/v1/voices")
    assert status == 200
    rows = {v["name"]: v for v in data["voices"]}
    alice, carol = rows["alice"], rows["carol"]
    assert alice["loaded"] and alice["source"] == "bundle" and alice["bundle_path"] == "alice"
    assert alice["version"] == "v2" and alice["languages"] == ["zh", "en", "ja"] and alice["reference_language"] == "zh"
    assert alice["consent"]["statement"] == "synthetic test voice, no real person"
    assert not carol["loaded"] and carol["bundle_path"] == "carol" and carol["consent"]["statement"]
    assert data["defaults"]["top_k"] == 15 and data["defaults"]["seed"] is None and "en" in data["languages"]


def test_admin_calls_need_the_admin_token(console_daemon):
    for token, code in ((None, 401), ("wrong", 401), (USER, 403)):
        status, data, _ = call(console_daemon, "DELETE", "/v1/voices/alice", token=token)
        assert status == code and data["error"]["code"] in ("UNAUTHENTICATED", "PERMISSION_DENIED"), data
        status, _, _ = call(console_daemon, "POST", "/v1/voices", {"bundle_path": "alice"}, token=token)
        assert status == code
    assert call(console_daemon, "GET", "/v1/voices", token=None)[0] == 401
    assert call(console_daemon, "GET", "/v1/voices", token=ADMIN)[0] == 200  # the admin token reads too


def test_load_and_unload_a_bundle(console_daemon):
    from gsvd.engine.testing.bundle import write_tiny_voice

    write_tiny_voice(console_daemon.daemon.config.voices_dir, "dave", seed=3)
    status, data, _ = call(console_daemon, "POST", "/v1/voices", {"bundle_path": "dave"}, token=ADMIN)
    assert status == 201 and data["voice"]["name"] == "dave" and data["voice"]["loaded"]
    assert "dave" in {v.name for v in console_daemon.engine.voices()}
    status, data, _ = call(console_daemon, "DELETE", "/v1/voices/dave", token=ADMIN)
    assert status == 200 and data == {"unloaded": "dave"}
    assert "dave" not in {v.name for v in console_daemon.engine.voices()}
    rows = {v["name"]: v for v in call(console_daemon, "GET", "/v1/voices")[1]["voices"]}
    assert rows["dave"]["loaded"] is False  # still on disk


@pytest.mark.parametrize("body, code, needle", [
    ({"bundle_path": "../../etc"}, 400, "inside the server's voices directory"),
    ({"bundle_path": "/tmp"}, 400, "inside the server's voices directory"),
    ({"bundle_path": "nobody"}, 404, "no voice bundle"),
    ({"name": "x"}, 400, "bundle_path"),
    ({"bundle_path": 3}, 400, "bundle_path"),
])
def test_load_errors_are_json(console_daemon, body, code, needle):
    status, data, _ = call(console_daemon, "POST", "/v1/voices", body, token=ADMIN)
    assert status == code and needle in data["error"]["message"], data


def test_unload_unknown_or_bad_name(console_daemon):
    status, data, _ = call(console_daemon, "DELETE", "/v1/voices/nobody", token=ADMIN)
    assert status == 404 and "nobody" in data["error"]["message"]
    status, data, _ = call(console_daemon, "DELETE", "/v1/voices/.hidden", token=ADMIN)
    assert status == 400 and data["error"]["code"] == "INVALID_ARGUMENT"


def test_zero_shot_upload_from_a_wav_and_from_raw_pcm(console_daemon):
    fields = {"name": "zs-wav", "base_voice": "alice", "transcript": "Hello there.", "language": "en",
              "consent": "speaker=Test Speaker; use=tests; date=2026-01-03; by=the test",
              "consent_statement": "recorded by the test"}
    status, data, _ = _upload(console_daemon, fields, _wav(4.0))
    assert status == 201, data
    assert data["voice"]["source"] == "upload" and data["voice"]["consent"]["statement"] == "recorded by the test"
    assert data["voice"]["consent"]["speaker"] == "Test Speaker" and data["voice"]["consent"]["recorded_by"] == "the test"
    assert data["voice"]["model_id"] == console_daemon.engine.voice("alice").model_id  # alice's model
    from gsvd.engine.testing.bundle import synthetic_clip

    raw = synthetic_clip(5.0, 24000).astype("<f4").tobytes()
    status, data, _ = _upload(console_daemon, {**fields, "name": "zs-raw", "encoding": "pcm_f32le", "sample_rate": "24000"},
                              raw)
    assert status == 201, data
    pcm, rate = console_daemon.engine.synthesize("Hi.", "zs-raw", _opts())
    assert rate == 32000 and pcm.size > 0 and np.isfinite(pcm).all()
    listed = {v["name"]: v for v in call(console_daemon, "GET", "/v1/voices")[1]["voices"]}
    assert listed["zs-raw"]["loaded"] and listed["zs-raw"]["source"] == "upload" and listed["zs-raw"]["bundle_path"] is None


def _opts():
    from gsvd.engine import SynthesisOptions

    return SynthesisOptions(seed=1, max_new_tokens=20, language="en")


@pytest.mark.parametrize("change, audio, code, needle", [
    ({}, _wav(2.0), 400, "3-10 s"),
    ({}, b"not audio at all", 400, "could not be read"),
    ({"name": ""}, _wav(4.0), 400, "name is required"),
    ({"name": "../evil"}, _wav(4.0), 400, "name"),
    ({"base_voice": "nobody"}, _wav(4.0), 404, "nobody"),
    ({"transcript": " "}, _wav(4.0), 400, "text is empty"),
    ({"encoding": "mp3"}, _wav(4.0), 400, "encoding"),
    ({"encoding": "pcm_s16le", "sample_rate": "fast"}, b"\0\0" * 64000, 400, "sample_rate"),
    ({"encoding": "pcm_s16le", "sample_rate": "16000"}, b"\0" * 3, 400, "odd number of bytes"),
    ({"consent": ""}, _wav(4.0), 400, "consent record"),
    ({"consent": "the speaker said yes"}, _wav(4.0), 400, "missing: speaker, use, date, recorded_by"),
    ({"consent": "speaker=A; use=b; date=soon; by=c"}, _wav(4.0), 400, "ISO date"),
])
def test_upload_errors_are_json(console_daemon, change, audio, code, needle):
    fields = {"name": "zs-bad", "base_voice": "alice", "transcript": "Hello.", "language": "en",
              "consent": "speaker=A; use=b; date=2026-01-01; by=c", **change}
    status, data, _ = _upload(console_daemon, fields, audio)
    assert status == code and needle in data["error"]["message"], data
    assert "zs-bad" not in {v.name for v in console_daemon.engine.voices()}


def test_upload_needs_the_admin_token_and_a_file(console_daemon):
    fields = {"name": "zs-user", "base_voice": "alice", "transcript": "Hello.", "language": "en"}
    assert _upload(console_daemon, fields, _wav(4.0), token=USER)[0] == 403
    boundary = uuid.uuid4().hex
    body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in
                   (("name", "x"), ("consent", "speaker=A; use=b; date=2026-01-01; by=c")))
    body = (body + f"--{boundary}--\r\n").encode()
    status, data, _ = call(console_daemon, "POST", "/v1/voices", body, token=ADMIN,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert status == 400 and "audio" in data["error"]["message"]


def test_routes_and_limits_answer_json(console_daemon):
    status, data, _ = call(console_daemon, "GET", "/v1/nothing")
    assert status == 404 and data["error"]["code"] == "NOT_FOUND"
    status, data, _ = call(console_daemon, "PUT", "/v1/voices")
    assert status == 405 and data["error"]["code"] == "METHOD_NOT_ALLOWED"
    big = b"x" * ((console_daemon.daemon.config.max_message_mb << 20) + 1024)
    status, data, _ = call(console_daemon, "POST", "/v1/voices", big, token=ADMIN)
    assert status == 413 and data["error"]["code"] == "RESOURCE_EXHAUSTED"
    status, data, _ = call(console_daemon, "POST", "/v1/voices", b"{not json", token=ADMIN)
    assert status == 400 and "not valid JSON" in data["error"]["message"]


# ------------------------------------------------------------------------------------ server


def test_server_reports_models_streams_and_metrics_after_speech(console_daemon):
    status, _, _ = call(console_daemon, "POST", "/v1/audio/speech",
                        {"input": "Hello there.", "voice": "alice", "response_format": "pcm"})
    assert status == 200
    status, info, _ = call(console_daemon, "GET", "/v1/server")
    assert status == 200
    assert info["device"] == "cpu" and info["gpu"] is None and info["sample_rate_hz"] == 32000
    assert info["limits"]["max_streams"] == 4 and info["active_streams"] == 0
    alice = next(r for r in info["resident"] if "alice" in r["voices"])
    assert alice["model_id"] in info["models"] and alice["weights_bytes"] > 100_000
    assert info["runtime"]["slots_total"] >= 4
    m = info["metrics"]
    assert m["requests"] >= 1 and m["first_audio_s"]["count"] >= 1 and m["underruns"] >= 0
    assert 0 < m["first_audio_s"]["p50"] <= m["first_audio_s"]["p95"] <= 10
    assert m["first_audio_s"]["buckets"][-1] == [None, m["first_audio_s"]["count"]]


def test_bucket_quantile_matches_prometheus_histogram_quantile():
    from gsvd.daemon.http_api import bucket_quantile

    inf = float("inf")
    buckets = [(0.1, 2), (0.5, 6), (1.0, 10), (inf, 10)]
    assert bucket_quantile(buckets, 0.5) == pytest.approx(0.1 + 0.4 * (5 - 2) / 4)
    assert bucket_quantile(buckets, 0.95) == pytest.approx(0.5 + 0.5 * (9.5 - 6) / 4)
    assert bucket_quantile([(0.1, 0), (inf, 0)], 0.5) is None
    assert bucket_quantile([(0.1, 1), (inf, 4)], 0.95) == 0.1  # in +Inf: the last finite bound


def test_play_clock_counts_a_stream_that_runs_dry_once():
    from gsvd.daemon.metrics import PlayClock

    now = [0.0]
    clock = PlayClock(now=lambda: now[0])
    assert clock.late(0.5) is False  # first audio at t=0: 0.5 s to play
    now[0] = 0.4
    assert clock.late(0.5) is False  # arrived while 0.1 s was still buffered
    now[0] = 1.3
    assert clock.late(0.0) is False  # a sentence's closing chunk has no audio
    assert clock.late(0.5) is True  # 1.0 s had played out by t=1.0: a gap of 0.3 s
    now[0] = 5.0
    assert clock.late(0.5) is False  # one underrun per stream


def test_websocket_takes_the_token_from_the_subprotocol(console_daemon):
    import asyncio

    import aiohttp

    def offer(token: str) -> list[str]:
        return ["gsvd.v1", "gsvd.bearer." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")]

    async def first_two(protocols):
        async with aiohttp.ClientSession() as s, s.ws_connect(f"{base_url(console_daemon)}/v1/ws", protocols=protocols) as ws:
            await ws.send_json({"voice": "alice", "options": {"seed": 1, "max_new_tokens": 20, "language": "en"}})
            await ws.send_json({"text": "Hi."})
            await ws.send_json({"end": True})
            first = await ws.receive_json(timeout=60)
            return ws.protocol, first

    protocol, first = asyncio.run(first_two(offer(USER)))
    assert protocol == "gsvd.v1" and first["type"] == "start"
    _, first = asyncio.run(first_two(offer("wrong")))
    assert first["type"] == "error" and first["code"] == "UNAUTHENTICATED" and "bearer token" in first["message"]
    _, first = asyncio.run(first_two(["gsvd.v1", "gsvd.bearer.***"]))  # not base64: no token
    assert first["code"] == "UNAUTHENTICATED"


# -------------------------------------------------------------------------------------- runs


def test_runs_list_and_detail(console_daemon, runs_dir):
    status, data, _ = call(console_daemon, "GET", "/v1/runs")
    assert status == 200 and data["runs_dir"] == runs_dir.name  # the folder's name, not a server path
    (run,) = [r for r in data["runs"] if r["name"] == "talker"]
    assert run["voice"] == "talker" and run["stages"] == 7 and run["stages_done"] >= 6
    status, d, _ = call(console_daemon, "GET", "/v1/runs/talker")
    assert status == 200 and "token" not in d["settings"] and d["consent"].startswith("synthetic")
    stages = {s["stage"]: s for s in d["stages"]}
    assert [s["stage"] for s in d["stages"]] == ["extract", "segment", "select", "transcribe", "features", "fit", "package"]
    assert stages["fit"]["done"] and stages["select"]["info"]["kept"] >= 1
    assert d["fit"]["sovits"] == {**d["fit"]["sovits"], "epochs": 2, "done": 2, "kept": [1, 2]}
    assert [r["epoch"] for r in d["fit"]["gpt"]["losses"]] == [1, 2]
    assert d["select"]["plot"] == "select/scores.png" and d["select"]["report"] == "select/report.md"
    assert d["select"]["scores"] and all("snr_db" in s for s in d["select"]["scores"])
    assert [s["tag"] for s in d["samples"]] == ["sovits-e1", "sovits-e2", "gpt-e1", "gpt-e2"]
    sentence = d["samples"][2]["sentences"][0]
    assert d["samples"][2]["weights"] and sentence["text"] == "A test sentence." and sentence["seconds"] > 0
    assert sentence["audio"] == "fit/samples/gpt-e1/0.wav"


def test_run_artifacts_and_nothing_else(console_daemon, runs_dir):
    status, png, head = call(console_daemon, "GET", "/v1/runs/talker/files/select/scores.png")
    assert status == 200 and head["Content-Type"] == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    status, audio, head = call(console_daemon, "GET", "/v1/runs/talker/files/fit/samples/gpt-e1/0.wav")
    assert status == 200 and head["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(audio)) as w:
        assert w.getframerate() == 32000 and w.getnframes() > 0
    for path in ("run.json", "fit/epochs/gpt-e1.ckpt", "fit/samples/..%2F..%2Frun.json/0.wav", "select/../run.json"):
        status, data, _ = call(console_daemon, "GET", f"/v1/runs/talker/files/{path}")
        assert status == 404, path
    assert call(console_daemon, "GET", "/v1/runs/talker/files/fit/samples/gpt-e9/0.wav")[0] == 404
    assert call(console_daemon, "GET", "/v1/runs/nobody")[0] == 404
    assert call(console_daemon, "GET", "/v1/runs/..")[0] == 404
    assert call(console_daemon, "GET", "/v1/runs/talker", token=None)[0] == 401


@pytest.mark.parametrize("body, token, code, needle", [
    ({"sovits_epoch": 1, "gpt_epoch": 1}, USER, 403, "admin token"),
    ({"sovits_epoch": 7, "gpt_epoch": 1}, ADMIN, 400, "no sovits weights were kept at epoch 7 (saved epochs: 1, 2)"),
    ({"sovits_epoch": -1}, ADMIN, 400, "sovits_epoch"),
    ({"gpt_epoch": "2"}, ADMIN, 400, "gpt_epoch"),
    ([1, 2], ADMIN, 400, "JSON object"),
])
def test_package_refuses_bad_requests(console_daemon, body, token, code, needle):
    status, data, _ = call(console_daemon, "POST", "/v1/runs/talker/package", body if isinstance(body, dict)
                           else json.dumps(body).encode(), token=token)
    assert status == code and needle in data["error"]["message"], data


def test_runs_dir_not_configured(tmp_path):
    from gsvd.daemon.background import serve_in_thread
    from gsvd.daemon.config import DaemonConfig
    from gsvd.engine import Engine

    cfg = DaemonConfig.load(None, env={}, port=0, device="cpu", grace_s=1.0, http_port=0, max_streams=2,
                            no_auth=True)  # no token: admin calls open only with --no-auth (on loopback)
    running = serve_in_thread(Engine(device="cpu", max_streams=2), cfg)
    try:
        status, data, _ = call(running, "GET", "/v1/runs", token=None)
        assert status == 200 and data == {"runs_dir": None, "runs": []}
        status, data, _ = call(running, "GET", "/v1/runs/talker", token=None)
        assert status == 404 and "--runs-dir" in data["error"]["message"]
        status, data, _ = call(running, "POST", "/v1/voices", {"bundle_path": "x"}, token=None)
        assert status == 400 and "voices directory" in data["error"]["message"]  # no voices folder at all
    finally:
        running.stop()


def test_stage_names_match_the_trainer():
    from gsvd.daemon.console_runs import STAGES
    from gsvd.trainer import workspace

    assert STAGES == workspace.STAGES


# ------------------------------------------------------------------------------------ static


def test_console_page_and_files_are_served_with_a_strict_policy(console_daemon):
    status, html, head = call(console_daemon, "GET", "/", token=None)
    assert status == 200 and head["Content-Type"].startswith("text/html") and b'src="/console/app.js"' in html
    assert "default-src 'self'" in head["Content-Security-Policy"] and head["X-Content-Type-Options"] == "nosniff"
    status, js, head = call(console_daemon, "GET", "/console/player-worklet.js", token=None)
    assert status == 200 and head["Content-Type"].startswith("text/javascript") and b"registerProcessor" in js
    status, data, _ = call(console_daemon, "GET", "/console/secret.py", token=None)
    assert status == 404 and data["error"]["code"] == "NOT_FOUND"


def test_static_files_ship_in_the_package():
    """Every file the page loads is package data (pyproject's patterns), and every module it imports exists."""
    import re
    import tomllib

    from gsvd.daemon.console import static_files

    files = static_files()
    folder = Path(__file__).resolve().parents[2] / "daemon" / "console_static"
    on_disk = {p.name for p in folder.iterdir() if p.suffix in (".html", ".js", ".css")}
    assert set(files) == on_disk and {"index.html", "app.js", "player-worklet.js", "console.css"} <= on_disk
    patterns = tomllib.loads((folder.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert {"*.html", "*.js", "*.css"} <= set(patterns)
    for name, body in files.items():
        for ref in re.findall(rb'(?:from |import |href=|src=|addModule\()"(\.?/[^"]+)"', body):
            target = ref.decode().rsplit("/", 1)[-1]
            assert target in files, f"{name} refers to {ref.decode()}, which is not shipped"


def test_package_picked_epochs_loads_the_voice_and_one_at_a_time(console_daemon, runs_dir):
    """Two requests at once: one packages SoVITS epoch 1 + GPT epoch 1 (the trainer's own command in a child
    process) and loads the voice, the other is told the run is busy."""
    from concurrent.futures import ThreadPoolExecutor

    from gsvd.engine.bundle import load_bundle

    body = {"sovits_epoch": 1, "gpt_epoch": 1}
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: call(console_daemon, "POST", "/v1/runs/talker/package", body, token=ADMIN),
                                range(2)))
    codes = sorted(r[0] for r in results)
    assert codes == [201, 409], [r[1] for r in results]
    made = next(r[1] for r in results if r[0] == 201)
    assert made["voice"] == "talker" and made["sovits_epoch"] == 1 and made["gpt_epoch"] == 1
    bundle = load_bundle(Path(made["bundle"]))
    assert Path(made["bundle"]).parent == Path(console_daemon.daemon.config.voices_dir).resolve()
    assert bundle.provenance["training"]["sovits_epoch"] == 1 and bundle.provenance["training"]["gpt_epoch"] == 1
    assert bundle.consent["statement"] == "synthetic test talker, no real person"
    pcm, _ = console_daemon.engine.synthesize("Hello.", "talker", _opts())
    assert pcm.size > 0 and np.isfinite(pcm).all()
    detail = call(console_daemon, "GET", "/v1/runs/talker")[1]
    assert detail["package"]["bundle"] == made["bundle"] and detail["packaging"] is False
    assert detail["settings"]["sovits_epoch"] == 1 and detail["stages"][-1]["done"]

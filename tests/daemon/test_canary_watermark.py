"""A daemon that watermarks its streams and runs the canary: the mark is read back from streamed audio,
the label says so; canary gauges appear after a round, drift is logged past its bound, and the canary
steps aside for clients (never speaking while they hold `canary_below_streams` slots, cancelled when
one arrives)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time

import grpc
import numpy as np
import pytest

from gsvd.clients import Client
from gsvd.daemon.canary import CanaryMonitor, Reading, drift
from gsvd.engine import Engine, SynthesisOptions
from gsvd.engine.provenance.watermark import WatermarkConfig, Watermarker, voice_hash
from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

from .conftest import start_daemon

INTERVAL_S = 1.0


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    running = start_daemon(tmp_path_factory.mktemp("canary"), max_streams=4, watermark=True, watermark_daemon_id=7,
                           canary_interval_s=INTERVAL_S, canary_below_streams=1, canary_max_tokens=40)
    yield running
    running.stop()


def on_loop(running, coro, timeout: float = 120):
    return asyncio.run_coroutine_threadsafe(coro, running.loop).result(timeout)


def sample(running, name: str, **labels) -> float | None:
    return running.daemon.metrics.registry.get_sample_value(name, labels or None)


def rounds(running, result: str) -> float:
    return sample(running, "gsvd_canary_rounds_total", result=result) or 0.0


def wait_for(check, timeout: float = 60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (value := check()):
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


# ----------------------------------------------------------------------------------------- watermark


def test_streamed_audio_carries_the_watermark_its_label_announces(monitored):
    stub = pbg.SynthesizerStub(grpc.insecure_channel(monitored.address))
    req = pb.SynthesizeRequest(text="Hello there. How are you today?", voice="alice",
                               output=pb.OutputConfig(encoding=pb.PCM_F32LE),
                               options=pb.SynthesisOptions(seed=4, language="en", max_new_tokens=100))
    responses = list(stub.Synthesize(req, timeout=120))
    label = responses[0].start.label
    pcm = np.concatenate([np.frombuffer(r.audio.audio, "<f4") for r in responses[1:]])
    assert pcm.size / 32000 >= 6.0 and np.sqrt(np.mean(pcm**2)) > 0.01  # enough speech-level audio to read
    assert f"daemon=7 voice=0x{voice_hash('alice'):03x}" in label.watermark and "key=public" in label.watermark
    # the daemon's audio is the unmarked stream marked with its configuration (daemon 7, the public key, alice):
    # the same request on a plain engine, marked whole, gives the same samples. (The detector itself is measured on
    # real speech in tests/provenance and benchmarks/watermark_bench.py; a tiny random voice's buzz is no host.)
    with Engine(device="cpu", max_streams=2) as plain:
        plain.load_voice(monitored.voices_dir / "alice")
        unmarked, rate = plain.synthesize("Hello there. How are you today?", "alice",
                                          SynthesisOptions(seed=4, language="en", max_new_tokens=100))
    assert rate == 32000 and unmarked.shape == pcm.shape and not np.allclose(pcm, unmarked, atol=1e-6)
    np.testing.assert_allclose(pcm, Watermarker(WatermarkConfig(daemon_id=7)).mark(unmarked, rate, "alice"), atol=1e-6)


# -------------------------------------------------------------------------------------------- canary


def test_canary_gauges_after_a_round(monitored):
    wait_for(lambda: rounds(monitored, "done") >= 1)
    for voice in ("alice", "bob"):
        for lang in ("zh", "en", "ja"):
            tokens = sample(monitored, "gsvd_canary_tokens", voice=voice, language=lang)
            duration = sample(monitored, "gsvd_canary_duration_seconds", voice=voice, language=lang)
            level = sample(monitored, "gsvd_canary_level_dbfs", voice=voice, language=lang)
            assert tokens is not None and 2 <= tokens <= 2 * 40  # two sentences, 40 tokens at most each
            assert duration == pytest.approx(tokens * 1280 / 32000)
            assert -60 < level < 0  # the tiny voice babbles at a speaking level
            assert sample(monitored, "gsvd_canary_eos_reached", voice=voice, language=lang) in (0.0, 1.0)
            similarity = sample(monitored, "gsvd_canary_speaker_similarity", voice=voice, language=lang)
            assert similarity is not None and -1.0 <= similarity <= 1.0  # resemblyzer is in the test environment
            assert sample(monitored, "gsvd_canary_drift", voice=voice, language=lang) == 0.0  # fixed seed: same


def test_drift_beyond_a_bound_is_logged(monitored, caplog):
    canary = monitored.daemon.canary
    first = Reading("zed", "en", 4.0, -20.0, 100, True, 0.8)
    assert canary.record(first) == [] and canary.first_reading("zed", "en") == first
    close = dataclasses.replace(first, duration_s=4.4, level_dbfs=-22.0, tokens=110, similarity=0.75)
    assert canary.record(close) == []
    with caplog.at_level(logging.WARNING, logger="gsvd.daemon"):
        far = dataclasses.replace(first, duration_s=9.0, level_dbfs=-35.0, tokens=225, eos=False, similarity=0.4)
        problems = canary.record(far)
    assert len(problems) == 5 and problems == drift(first, far)
    assert "duration 9.00 s (first 4.00 s)" in problems[0] and "token cap" in problems[3]
    assert any("canary: voice zed (en) drifted from its first reading" in r.getMessage() for r in caplog.records)
    assert sample(monitored, "gsvd_canary_drift", voice="zed", language="en") == 5.0
    assert sample(monitored, "gsvd_canary_eos_reached", voice="zed", language="en") == 0.0
    canary.record(dataclasses.replace(first, similarity=None))  # similarity not measurable: series dropped
    assert sample(monitored, "gsvd_canary_speaker_similarity", voice="zed", language="en") is None
    assert sample(monitored, "gsvd_canary_drift", voice="zed", language="en") == 0.0


def test_similarity_is_absent_without_the_encoder(monitored, monkeypatch):
    from gsvd.engine import speaker_embed

    monkeypatch.setattr(speaker_embed, "available", lambda: False)  # as when resemblyzer is not installed
    voice = monitored.engine.voice("bob")
    reading = on_loop(monitored, monitored.daemon.canary.measure(voice, "en"))
    assert reading.similarity is None and reading.tokens > 0 and reading.duration_s > 0


def test_canary_never_speaks_while_clients_hold_the_slots(monitored):
    with Client(monitored.address) as c:
        stream = c.stream("It keeps talking. " * 20, "alice", seed=1, language="en", max_new_tokens=1500)
        next(stream)  # admitted: one client stream holds a slot (canary_below_streams is 1)
        assert monitored.daemon.service.runner.active == 1
        time.sleep(0.5)  # a round in flight when the client came ends now
        done, skipped = rounds(monitored, "done"), rounds(monitored, "skipped")
        assert on_loop(monitored, monitored.daemon.canary.round()) == "skipped"
        time.sleep(2.5 * INTERVAL_S)
        assert rounds(monitored, "done") == done and rounds(monitored, "skipped") >= skipped + 2
        assert monitored.daemon.service.runner.active == 1
        stream.cancel()
    wait_for(lambda: rounds(monitored, "done") > done)  # and back once the client is gone


def test_a_client_arriving_cancels_the_canary_at_once(monitored):
    daemon = monitored.daemon
    slow = CanaryMonitor(monitored.engine, daemon.service.admin, daemon.service.runner, daemon.metrics,
                         dataclasses.replace(daemon.config, canary_max_tokens=1500))  # ~6 s per language here
    outcome: dict = {}
    task = threading.Thread(target=lambda: outcome.setdefault("round", on_loop(monitored, slow.round(), 300)))
    wait_for(lambda: daemon.service.runner.active == 0 and not daemon.canary.busy())
    task.start()
    wait_for(lambda: slow._speaking is not None)
    t0 = time.monotonic()
    with Client(monitored.address) as c:
        pcm, rate = c.synthesize("Hi.", "bob", seed=1, language="en", max_new_tokens=20)
    task.join(60)
    assert outcome["round"] in ("skipped", "cancelled") and time.monotonic() - t0 < 5.0
    assert rate == 32000 and pcm.size == 20 * 1280
    assert slow.first_reading("alice", "zh") is None  # nothing recorded from the cut round

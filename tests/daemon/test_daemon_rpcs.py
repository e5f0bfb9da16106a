"""Every RPC of gsvd.v1.Synthesizer against a real daemon on loopback, plus health and reflection."""

from __future__ import annotations

import subprocess
import sys

import grpc
import numpy as np
import pytest

from gsvd.clients import Client
from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

from .conftest import CONSENT

OPTS = {"seed": 3, "top_k": 5, "language": "en", "max_new_tokens": 40}


def _req(text="Hello there.", voice="alice", **out):
    output = pb.OutputConfig(encoding=out.pop("encoding", pb.PCM_S16LE), **out)
    return pb.SynthesizeRequest(text=text, voice=voice, output=output, request_id="r1",
                                options=pb.SynthesisOptions(seed=3, top_k=5, language="en", max_new_tokens=40))


def test_synthesize_stream_shape(daemon):
    stub = pbg.SynthesizerStub(grpc.insecure_channel(daemon.address))
    responses = list(stub.Synthesize(_req(), timeout=60))
    assert responses[0].WhichOneof("event") == "start"
    assert responses[0].start.sample_rate_hz == 32000 and responses[0].start.encoding == pb.PCM_S16LE
    chunks = [r.audio for r in responses[1:]]
    assert [c.sequence for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].is_final and all(r.request_id == "r1" for r in responses)
    offsets = np.cumsum([0] + [len(c.audio) // 2 for c in chunks[:-1]]).tolist()
    assert [c.offset_samples for c in chunks] == offsets
    assert chunks[0].text.startswith("Hello")


def test_resampling_float32_and_envelope(daemon):
    with Client(daemon.address) as c:
        native, rate = c.synthesize("Hello there.", "alice", **OPTS)
        chunks = list(c.stream("Hello there.", "alice", encoding="f32", sample_rate=16000, envelope=True, **OPTS))
    assert rate == 32000 and chunks[0].sample_rate == 16000
    total = sum(len(ch.pcm) for ch in chunks)
    assert abs(total - len(native) / 2) <= 64
    assert all(ch.envelope for ch in chunks if len(ch.pcm) >= 320)
    assert all(v >= 0 for ch in chunks for v in ch.envelope)


def test_streaming_synthesize_pieces(daemon):
    with Client(daemon.address) as c:
        chunks = list(c.stream_text(iter(["Hello ", "there. How", " are you?"]), "alice", **OPTS))
    texts = [ch.text for ch in chunks if ch.text]
    assert texts[0].startswith("Hello there") and chunks[-1].is_final


def test_streaming_first_message_must_be_config(daemon):
    stub = pbg.SynthesizerStub(grpc.insecure_channel(daemon.address))
    with pytest.raises(grpc.RpcError) as info:
        list(stub.StreamingSynthesize(iter([pb.StreamingSynthesizeRequest(input=pb.TextInput(text="hi"))]), timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "config" in info.value.details()


def test_voice_management_and_info(daemon):
    with Client(daemon.address) as c:
        names = {v.name for v in c.voices()}
        assert {"alice", "bob"} <= names
        assert c.voice("alice").version == "v2"
        info = c.info()
        assert info.device == "cpu" and info.sample_rate_hz == 32000 and info.limits["max_streams"] == 8
        v = c.load_voice(str(daemon.voices_dir / "alice"), name="alice_copy")
        assert v.model_id == c.voice("alice").model_id
        rng = np.random.default_rng(0)
        up = c.upload_voice("carol", "alice", rng.standard_normal(16000 * 4).astype(np.float32) * 0.1, 16000, "你好，世界。", "zh",
                            consent=CONSENT)
        assert up.model_id == v.model_id
        pcm, _ = c.synthesize("Hi there.", "carol", **OPTS)
        assert len(pcm) > 0
        c.unload_voice("alice_copy")
        c.unload_voice("carol")
        assert "alice_copy" not in {x.name for x in c.voices()}


@pytest.mark.parametrize(
    "request_, code, needle",
    [
        (_req(voice="nobody"), grpc.StatusCode.NOT_FOUND, "nobody"),
        (_req(voice="../etc"), grpc.StatusCode.INVALID_ARGUMENT, "voice"),
        (_req(text="   "), grpc.StatusCode.INVALID_ARGUMENT, "text"),
        (_req(text="x" * 6000), grpc.StatusCode.INVALID_ARGUMENT, "limit"),
        (_req(encoding=pb.AUDIO_ENCODING_UNSPECIFIED), grpc.StatusCode.INVALID_ARGUMENT, "output.encoding"),
        (_req(sample_rate_hz=100), grpc.StatusCode.INVALID_ARGUMENT, "sample_rate_hz"),
    ],
)
def test_bad_requests_get_codes_and_messages(daemon, request_, code, needle):
    stub = pbg.SynthesizerStub(grpc.insecure_channel(daemon.address))
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Synthesize(request_, timeout=30))
    assert info.value.code() == code and needle in info.value.details()


def test_bad_option_names_the_field(daemon):
    stub = pbg.SynthesizerStub(grpc.insecure_channel(daemon.address))
    req = _req()
    req.options.top_p = 1.5
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Synthesize(req, timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and info.value.details().startswith("top_p")


def test_load_voice_outside_voices_dir_is_refused(daemon, tmp_path):
    with Client(daemon.address) as c, pytest.raises(grpc.RpcError) as info:
        c.load_voice(str(tmp_path))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "voices directory" in info.value.details()


def test_health_and_reflection(daemon):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    channel = grpc.insecure_channel(daemon.address)
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="gsvd.v1.Synthesizer"), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    resp = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
    names = {s.name for s in resp.list_services_response.service}
    assert "gsvd.v1.Synthesizer" in names and "grpc.health.v1.Health" in names


def test_stubs_are_up_to_date():
    out = subprocess.run([sys.executable, "-m", "gsvd.v1.regen", "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_clients_do_not_import_torch():
    code = "import sys, gsvd.clients, gsvd.clients.cli, gsvd.clients.playback; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_word_timings_on_each_sentences_last_chunk(daemon):
    with Client(daemon.address) as c:
        chunks = list(c.stream("Hello there. Good morning.", "alice", **OPTS))
    timed = [ch for ch in chunks if ch.timings]
    assert [w for w, _, _ in timed[0].timings] == ["Hello", "there."]
    words = [t for ch in timed for t in ch.timings]
    starts = [s for _, s, _ in words]
    assert starts == sorted(starts) and all(e > s for _, s, e in words)
    total = sum(len(ch.pcm) for ch in chunks) / 32000
    assert abs(words[-1][2] - total) < 0.05


def test_metrics_count_requests_and_errors(daemon):
    reg = daemon.daemon.metrics.registry
    before = reg.get_sample_value("gsvd_time_to_first_audio_seconds_count") or 0
    with Client(daemon.address) as c:
        c.synthesize("Hello.", "alice", **OPTS)
        with pytest.raises(grpc.RpcError):
            c.synthesize("Hello.", "nobody", **OPTS)
    assert reg.get_sample_value("gsvd_time_to_first_audio_seconds_count") == before + 1
    assert reg.get_sample_value("gsvd_errors_total", {"method": "Synthesize", "code": "NOT_FOUND"}) >= 1
    assert reg.get_sample_value("gsvd_active_streams") == 0

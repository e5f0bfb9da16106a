"""Decoder bombs and odd clips in zero-shot uploads, on both transports (gRPC `LoadVoice` with a reference, the
console's multipart `POST /v1/voices`): sample rates whose resampling kernel takes gigabytes, files whose decoded
audio is far larger than the upload (FLAC of long silence, many channels), lying headers, truncated files. Each
must be refused from what the clip declares, before it is decoded in full, with a 400 / INVALID_ARGUMENT."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc

import grpc
import numpy as np
import pytest
import soundfile as sf

from gsvd.v1 import gsvd_pb2 as pb
from gsvd.v1 import gsvd_pb2_grpc as pbg

from .attacks import ADMIN, USER, daemon_fixture, json_error, no_slot_held, request, upload_form
from .conftest import CONSENT

armed = daemon_fixture("attacks_upload", max_message_mb=4)


def _clip(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.3, 0.3, (int(seconds * rate), channels)).astype(np.float32)


def _file(pcm: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _grpc_upload(armed, pcm: np.ndarray, rate: int, encoding=pb.PCM_S16LE):
    audio = (pcm[:, 0] * 32767).astype("<i2").tobytes() if encoding == pb.PCM_S16LE else pcm[:, 0].astype("<f4").tobytes()
    ref = pb.ReferenceUpload(base_voice="alice", audio=audio, encoding=encoding, sample_rate_hz=rate,
                             transcript="Hello there.", language="en", consent=pb.ConsentRecord(**CONSENT))
    with grpc.insecure_channel(armed.address) as channel:
        return pbg.SynthesizerStub(channel).LoadVoice(pb.LoadVoiceRequest(name="zs", reference=ref), timeout=60,
                                                      metadata=(("authorization", f"Bearer {ADMIN}"),))


def _http_upload(armed, audio: bytes, **fields):
    form, ctype = upload_form(audio=audio, **fields)
    return request(armed, "POST", "/v1/voices", form, token=ADMIN, headers={"Content-Type": ctype})


def _voices(armed) -> set[str]:
    import json

    return {v["name"] for v in json.loads(request(armed, "GET", "/v1/voices", token=USER)[2])["voices"] if v["loaded"]}


@pytest.mark.parametrize("rate", [8080, 8001, 47999, 2**31 - 1])
def test_odd_sample_rates_are_refused_on_both_transports(armed, rate):
    """8001 Hz -> 32 kHz has no common factor: the sinc kernel alone is 32000 x 8000 doubles (2 GB, 8 GB at peak)."""
    seconds = 4.0 if rate < 10**6 else 0.01
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        _grpc_upload(armed, _clip(seconds, min(rate, 96000)), rate)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "sample_rate" in info.value.details()
    if rate < 10**6:
        status, head, body = _http_upload(armed, _file(_clip(seconds, rate), rate))
        error = json_error(status, head, body)
        assert status == 400 and "sample_rate" in error["message"] and "16000" in error["message"], error
        status, head, body = _http_upload(armed, (_clip(seconds, rate)[:, 0] * 32767).astype("<i2").tobytes(),
                                          encoding="pcm_s16le", sample_rate=str(rate))
        assert status == 400 and "sample_rate" in json_error(status, head, body)["message"]
    assert time.monotonic() - t0 < 10
    assert "zs" not in _voices(armed)
    no_slot_held(armed)


def test_a_long_flac_is_refused_before_it_is_decoded(armed):
    """20 minutes of 48 kHz silence: 150 KB of FLAC, 230 MB of float samples once decoded."""
    data = _file(np.zeros((48000 * 1200, 1), np.int16), 48000, "FLAC", "PCM_16")
    assert len(data) < 1 << 20
    tracemalloc.start()
    try:
        status, head, body = _http_upload(armed, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    error = json_error(status, head, body)
    assert status == 400 and "3-10 s" in error["message"] and "1200" in error["message"], error
    assert peak < 40 << 20, f"{peak / 2**20:.0f} MB allocated while refusing it"


@pytest.mark.parametrize("channels, seconds", [(3, 4.0), (16, 4.0), (64, 1.0)])
def test_many_channels_are_refused(armed, channels, seconds):
    status, head, body = _http_upload(armed, _file(_clip(seconds, 16000, channels), 16000))
    error = json_error(status, head, body)
    assert status == 400 and "channels" in error["message"], error


def test_a_stereo_clip_is_accepted(armed):
    status, head, body = _http_upload(armed, _file(_clip(4.0, 44100, 2), 44100), name="stereo")
    assert status == 201, body[:300]
    assert request(armed, "DELETE", "/v1/voices/stereo", token=ADMIN)[0] == 200


def _wav_header(rate: int, channels: int, frames_declared: int, bits: int = 16) -> bytes:
    block = channels * bits // 8
    data_bytes = frames_declared * block
    return (b"RIFF" + struct.pack("<I", min(36 + data_bytes, 2**32 - 1)) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits) + b"data" +
            struct.pack("<I", min(data_bytes, 2**32 - 1)))


@pytest.mark.parametrize("case, needle", [
    ("declares-hours", "3-10 s"),  # a header claiming 2**31 bytes over 4 s of samples: read as what is there
    ("header-only", "3-10 s"),
    ("truncated", "could not be read"),
    ("zero-rate", "could not be read"),
    ("not-audio", "could not be read"),
    ("too-short", "3-10 s"),
    ("too-long", "3-10 s"),
])
def test_lying_and_broken_files(armed, case, needle):
    pcm = (_clip(4.0, 16000)[:, 0] * 32767).astype("<i2").tobytes()
    data = {
        "declares-hours": _wav_header(16000, 1, 2**30) + pcm[:16000 * 2],
        "header-only": _wav_header(16000, 1, 16000 * 4),
        "truncated": _file(_clip(4.0, 16000), 16000)[:30],
        "zero-rate": _wav_header(0, 1, 16000 * 4) + pcm,
        "not-audio": b"MZ\x90\x00" + bytes(range(256)) * 100,
        "too-short": _file(_clip(1.0, 16000), 16000),
        "too-long": _file(_clip(30.0, 16000), 16000),
    }[case]
    status, head, body = _http_upload(armed, data)
    error = json_error(status, head, body)
    assert status == 400 and needle in error["message"], (case, error)
    assert "zs" not in _voices(armed)


def test_raw_pcm_is_checked_by_length_before_resampling(armed):
    """Raw uploads say their length in bytes: a 4 MB s16 clip at 8 kHz is 4 minutes, refused at once."""
    samples = (np.zeros(2_000_000, "<i2")).tobytes()
    ref = pb.ReferenceUpload(base_voice="alice", audio=samples, encoding=pb.PCM_S16LE, sample_rate_hz=8000,
                             transcript="Hello there.", language="en", consent=pb.ConsentRecord(**CONSENT))
    with grpc.insecure_channel(armed.address, options=[("grpc.max_send_message_length", 8 << 20)]) as channel:
        with pytest.raises(grpc.RpcError) as info:
            pbg.SynthesizerStub(channel).LoadVoice(pb.LoadVoiceRequest(name="zs", reference=ref), timeout=60,
                                                   metadata=(("authorization", f"Bearer {ADMIN}"),))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "3-10 s" in info.value.details()
    assert "250" in info.value.details()  # 250.00 s

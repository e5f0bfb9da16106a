"""The streaming watermark: chunk-invariant embedding, quiet, keyed, and read back by the detector."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from gsvd.engine.provenance import ecc
from gsvd.engine.provenance.watermark import (
    PUBLIC_KEY,
    Detector,
    Payload,
    WatermarkConfig,
    Watermarker,
    voice_hash,
)

RATE = 32000


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced harmonics under a syllable-rate envelope, with pauses and a little noise (no files needed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 30))
    env = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.5 * (np.sin(2 * np.pi * 0.4 * t) > -0.6)
    x = 0.2 * env * voiced + 0.01 * env * rng.standard_normal(len(t))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def marker() -> Watermarker:
    return Watermarker(WatermarkConfig(daemon_id=42))


def test_chunked_marking_is_bit_identical_to_whole(marker: Watermarker) -> None:
    x = speechlike(7.0)  # crosses the 1.5 s period and many 20 ms frames
    whole = marker.mark(x, RATE, "alice")
    rng = np.random.default_rng(3)
    for sizes in ([1] * 700 + [len(x)], [639, 641, 1280, 17], None):
        stream, parts, pos = marker.stream("alice", RATE), [], 0
        while pos < len(x):
            n = int(rng.integers(1, 7000)) if sizes is None else sizes[len(parts) % len(sizes)]
            parts.append(stream.apply(x[pos : pos + n], pos))
            pos += n
        assert np.array_equal(np.concatenate(parts), whole)


def test_chunks_must_follow_on(marker: Watermarker) -> None:
    stream = marker.stream("alice", RATE)
    stream.apply(np.zeros(100, np.float32), 0)
    with pytest.raises(ValueError, match="expected 100"):
        stream.apply(np.zeros(100, np.float32), 300)


def test_mark_is_quiet_and_absent_in_silence(marker: Watermarker) -> None:
    x = speechlike(6.0)
    x[RATE : 2 * RATE] = 0.0  # a second of digital silence
    y = marker.mark(x, RATE, "alice")
    diff = y - x
    snr = 10 * np.log10(np.sum(x**2) / np.sum(diff**2))
    assert snr >= 35.0
    # in silence the mark dies out within two 20 ms frames (it follows the level of the frame before)
    assert np.all(diff[RATE + 2 * 640 : 2 * RATE] == 0.0)
    assert np.max(np.abs(np.diff(diff))) < 0.01  # no clicks: the mark moves in small steps


def test_detects_payload_and_rejects_unmarked_or_other_key(shared_speech, marker: Watermarker) -> None:
    from gsvd.engine.audio import load_audio

    x = load_audio(shared_speech / "ja" / "fleurs_ja_1837_clip4.wav", RATE)[: 4 * RATE]
    y = marker.mark(x, RATE, "alice")
    det = Detector()
    got = det.detect(y[RATE // 3 : RATE // 3 + 3 * RATE], RATE)  # a 3 s excerpt from an arbitrary sample
    assert got.found and got.payload == marker.payload("alice")
    assert got.payload.daemon_id == 42 and got.payload.voice_hash == voice_hash("alice")
    assert got.confidence > 0.8 and got.sync_z > 6
    assert not det.detect(x[: 3 * RATE], RATE).found
    assert not Detector("someone else's key").detect(y, RATE).found


def test_detects_after_resampling_real_speech(shared_speech, marker: Watermarker) -> None:
    import soxr

    from gsvd.engine.audio import load_audio

    x = load_audio(shared_speech / "en" / "moonshine_two_cities_librivox.wav", RATE)[: 8 * RATE]
    y = marker.mark(x, RATE, "bob")
    det = Detector()
    for rate in (16000, 48000):
        excerpt = soxr.resample(y[2 * RATE : 5 * RATE], RATE, rate)
        got = det.detect(excerpt, rate)
        assert got.found and got.payload == marker.payload("bob"), rate
        assert not det.detect(soxr.resample(x[2 * RATE : 5 * RATE], RATE, rate), rate).found


def test_payload_fields_and_ranges() -> None:
    p = Payload.for_voice(7, "alice", dt.datetime(2026, 11, 23, tzinfo=dt.UTC))
    assert Payload.from_bits(p.to_bits()) == p and len(p.to_bits()) == 32
    assert p.day(dt.date(2027, 1, 1)) == dt.date(2026, 11, 23)
    for bad in ((256, 0, 0), (0, 4096, 0), (0, 0, -1), (True, 0, 0)):
        with pytest.raises(ValueError):
            Payload(*bad)
    with pytest.raises(ValueError, match="strength"):
        WatermarkConfig(strength_db=0.0)
    with pytest.raises(ValueError, match="key"):
        WatermarkConfig(key="")
    assert WatermarkConfig().key == PUBLIC_KEY


def test_code_corrects_errors_and_crc_catches_the_rest() -> None:
    rng = np.random.default_rng(0)
    msg = rng.integers(0, 2, 32).astype(np.uint8)
    code = ecc.conv_encode(ecc.with_crc(msg))
    soft = 1.0 - 2.0 * code
    soft[rng.choice(len(soft), 6, replace=False)] *= -1  # six flipped symbols, spread out
    decoded = ecc.check_crc(ecc.viterbi_decode(soft, 48))
    assert decoded is not None and np.array_equal(decoded, msg)
    corrupt = ecc.with_crc(msg)
    corrupt[5] ^= 1
    assert ecc.check_crc(corrupt) is None

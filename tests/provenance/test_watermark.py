"""The streaming watermark: chunk-invariant embedding, quiet, keyed, and read back by the detector after
resampling, codecs, gain, noise and arbitrary (sub-sample) cuts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from gsvd.engine.provenance import ecc
from gsvd.engine.provenance.detector import MIN_SCORE, SPEED_MIN_Z, Detector, _agreement
from gsvd.engine.provenance.watermark import (
    PUBLIC_KEY,
    SCHEME,
    Payload,
    WatermarkConfig,
    Watermarker,
    describe,
    voice_hash,
)

from .conftest import round_trip

RATE = 32000
FRAME = 320  # 10 ms at 32 kHz


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


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


def _speech(shared_speech, name: str, seconds: float) -> np.ndarray:
    from gsvd.engine.audio import load_audio

    return load_audio(shared_speech / name, RATE)[: int(seconds * RATE)]


def test_chunks_on_the_frame_grid_mark_bit_identically_to_whole(marker: Watermarker) -> None:
    x = speechlike(7.0)  # crosses the 1.5 s period and many 10 ms frames
    whole = marker.mark(x, RATE, "alice")
    rng = np.random.default_rng(3)
    for sizes in ([FRAME] * 700 + [len(x)], [23 * FRAME, FRAME, 48 * 4 * FRAME, 7 * FRAME], None):
        stream, parts, pos = marker.stream("alice", RATE), [], 0
        while pos < len(x):
            n = int(rng.integers(1, 40)) * FRAME if sizes is None else sizes[len(parts) % len(sizes)]
            parts.append(stream.apply(x[pos : pos + n], pos))
            pos += n
        assert np.array_equal(np.concatenate(parts), whole)


def test_a_frame_split_by_a_chunk_is_left_unmarked_and_the_rest_is_unchanged(marker: Watermarker) -> None:
    x = speechlike(3.0)
    whole = marker.mark(x, RATE, "alice")
    stream = marker.stream("alice", RATE)
    cut = 10 * FRAME + 100  # inside frame 10
    got = np.concatenate([stream.apply(x[:cut], 0), stream.apply(x[cut:], cut)])
    frame10 = slice(10 * FRAME, 11 * FRAME)
    assert np.array_equal(got[frame10], x[frame10])  # passed through, both halves
    assert not np.array_equal(whole[frame10], x[frame10])
    rest = np.ones(len(x), bool)
    rest[frame10] = False
    assert np.array_equal(got[rest], whole[rest])


def test_chunks_must_follow_on(marker: Watermarker) -> None:
    stream = marker.stream("alice", RATE)
    stream.apply(np.zeros(100, np.float32), 0)
    with pytest.raises(ValueError, match="expected 100"):
        stream.apply(np.zeros(100, np.float32), 300)
    with pytest.raises(ValueError, match="multiple of 100"):
        marker.stream("alice", 22050)


def test_mark_is_quiet_and_absent_in_silence(marker: Watermarker) -> None:
    x = speechlike(6.0)
    x[RATE : 2 * RATE] = 0.0  # a second of digital silence
    y = marker.mark(x, RATE, "alice")
    diff = y.astype(np.float64) - x
    snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(diff**2))
    assert snr >= 35.0
    assert np.all(diff[RATE : 2 * RATE] == 0.0)  # frames of silence carry nothing
    assert np.max(np.abs(np.diff(diff))) < 0.01  # no clicks: each frame's mark is windowed to 0 at its edges
    assert np.max(np.abs(diff)) < 0.06 * np.max(np.abs(x))  # its peaks stay 24 dB under the speech's


def test_detects_payload_and_rejects_unmarked_or_other_key(shared_speech, marker: Watermarker,
                                                           detector: Detector) -> None:
    x = _speech(shared_speech, "ja/fleurs_ja_1837_clip4.wav", 4.0)
    y = marker.mark(x, RATE, "alice")
    got = detector.detect(y[RATE // 3 : RATE // 3 + 3 * RATE], RATE)  # a 3 s excerpt from an arbitrary sample
    assert got.found and got.payload == marker.payload("alice")
    assert got.payload.daemon_id == 42 and got.payload.voice_hash == voice_hash("alice")
    assert got.confidence > 9.5 and got.sync_z > 10 and got.symbol_errors == 0  # confidence is at most 10.4
    assert not detector.detect(x[: 3 * RATE], RATE).found
    assert not Detector("someone else's key").detect(y, RATE).found


def test_detects_after_resampling_gain_and_a_sub_sample_cut(shared_speech, marker: Watermarker,
                                                            detector: Detector) -> None:
    import soxr

    x = _speech(shared_speech, "en/moonshine_two_cities_librivox.wav", 8.0)
    y = marker.mark(x, RATE, "bob")
    for rate in (16000, 48000, 44100):  # at 44.1 kHz the excerpt's start falls between 32 kHz samples
        excerpt = soxr.resample(y, RATE, rate)[int(2.1234 * rate) : int(5.1234 * rate)]
        for gain in (1.0, 10 ** (-10 / 20), 10 ** (6 / 20)):
            got = detector.detect(np.clip(excerpt * gain, -1, 1), rate)
            assert got.found and got.payload == marker.payload("bob"), (rate, gain)
        assert not detector.detect(soxr.resample(x, RATE, rate)[2 * rate : 5 * rate], rate).found


def test_detects_after_mp3_and_20_db_noise_with_a_margin(shared_speech, tmp_path, marker: Watermarker,
                                                         detector: Detector) -> None:
    x = _speech(shared_speech, "en/moonshine_two_cities_librivox.wav", 12.0)
    y = marker.mark(x, RATE, "carol")
    excerpt = y[2 * RATE : 6 * RATE]
    coded, rate = round_trip(excerpt, RATE, "libmp3lame", tmp_path)
    got = detector.detect(coded, rate)
    assert got.found and got.payload == marker.payload("carol")
    assert got.score > MIN_SCORE + 15 and got.symbol_errors <= 10
    rng = np.random.default_rng(1)
    noisy = excerpt + rng.normal(0, np.sqrt(np.mean(excerpt.astype(np.float64) ** 2) / 100), len(excerpt))
    got = detector.detect(noisy, RATE)
    assert got.found and got.payload == marker.payload("carol")
    assert got.score > MIN_SCORE + 6


def _noisy(x: np.ndarray, seed: int) -> np.ndarray:
    """``x`` with white noise 20 dB under its power."""
    rng = np.random.default_rng(seed)
    return x + rng.normal(0, np.sqrt(np.mean(x.astype(np.float64) ** 2) / 100), len(x))


def test_reads_20_db_noise_that_only_the_loud_frames_survive(shared_speech, marker: Watermarker,
                                                             detector: Detector) -> None:
    """White noise 20 dB under the speech leaves the mark only in the frames within ~12 dB of the loudest: the
    acceptance once weighed every frame by the noise model's reliability (sum of the symbols' evidence), and
    these excerpts, whose CRC-valid payload was decoded, scored under its line; it now fits each level
    decile's reliability to the decoded path and reads them."""
    for name, start_s, seed in (("en/moonshine_two_cities_librivox.wav", 34.5, 69),
                                ("zh/fleurs_zh_1883_clip5.wav", 5.0, 10)):
        y = marker.mark(_speech(shared_speech, name, start_s + 3.0), RATE, "erin")
        got = detector.detect(_noisy(y[int(start_s * RATE) :], seed), RATE, speeds=())
        assert got.found and got.payload == marker.payload("erin"), name
        assert got.score > MIN_SCORE + 0.5


def test_agreement_discounts_frames_whose_copies_repeat() -> None:
    """The path score counts independent frames: when each symbol's copies (a period apart) agree exactly, as
    mains hum's do, the same per-frame agreements are worth about one copy's, not three."""
    rng = np.random.default_rng(0)
    frames = 300
    symbols = (np.arange(frames) * 37) % 108  # each symbol 2-3 times
    level = np.repeat(np.arange(10), 30)
    live = np.ones(frames, bool)
    independent = np.cos(rng.vonmises(0.0, 0.6, frames))  # marked phases of concentration 0.6: mean cos 0.29
    first = {}
    repeated = np.array([first.setdefault(s, v) for s, v in zip(symbols, independent)])  # copies = first copy
    a, b = _agreement(independent, live, level, symbols), _agreement(repeated, live, level, symbols)
    assert 5.5 < a < 9.0  # sqrt(2 GLR), GLR = 300 (0.6 * 0.29 - log I0(0.6)) = 26 expected
    assert b < 0.75 * a
    assert _agreement(np.zeros(frames), live, level, symbols) == 0.0
    assert _agreement(independent, np.zeros(frames, bool), level, symbols) == 0.0  # no live frame: no evidence


def test_detects_speed_changes_by_resampling_and_says_which(shared_speech, marker: Watermarker,
                                                           detector: Detector) -> None:
    """Played 10% faster (tempo and pitch up, as a resampler does) or 44.1 kHz audio played at 48 kHz: the
    detector undoes each of its speed changes in turn and reports the one it read the mark at."""
    import soxr

    x = _speech(shared_speech, "en/moonshine_two_cities_librivox.wav", 8.0)
    y = marker.mark(x, RATE, "dave")
    fast = soxr.resample(y, RATE, round(RATE / 1.1))[RATE : 4 * RATE]  # played at RATE: 3 s, 10% faster
    assert not detector.detect(fast, RATE, speeds=()).found  # the frame grid no longer lines up
    got = detector.detect(fast, RATE)
    assert got.found and got.payload == marker.payload("dave") and got.speed == pytest.approx(1.1)
    slow = soxr.resample(y, RATE, round(RATE / 0.95))[RATE : 4 * RATE]
    got = detector.detect(slow, RATE)
    assert got.found and got.payload == marker.payload("dave") and got.speed == pytest.approx(0.95)
    z = soxr.resample(x, RATE, 44100)
    mislabelled = marker.mark(z, 44100, "dave")[: 4 * 44100]  # made at 44.1 kHz, read as 48 kHz
    got = detector.detect(mislabelled, 48000)
    assert got.found and got.payload == marker.payload("dave") and got.speed == pytest.approx(48000 / 44100)
    assert not detector.detect(soxr.resample(x, RATE, round(RATE / 1.1))[RATE : 4 * RATE], RATE).found


def test_audio_whose_frames_repeat_does_not_look_marked() -> None:
    """Tones repeat exactly every 10 ms frame: every frame then agrees with every other, which once let the
    detector's agreement statistic (per frame, assuming independent frames) pass its threshold; the path
    score now discounts copies that agree beyond their decile's fit, so a 1 kHz tone and 50 Hz mains hum
    (its frames repeat every 20 ms, so every symbol's copies are equal; without the discount its best paths
    scored 14.5-16.8, over the line) stay clearly under it, and a chord whose frames repeat every 50 ms
    scores like unmarked speech (whose best path per try reaches up to about MIN_SCORE + 1). A buzz of
    constant pitch under a syllable envelope (a vocoder's) repeats every 1.08 s period too: a sync term that
    scored agreement a period apart without the dithers once put its peaks over z 8; the sync peaks stay
    under the line speed changes are decoded from."""
    t = np.arange(3 * RATE) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.5
    buzz = envelope * sum(np.sin(2 * np.pi * 125 * k * t) / k for k in range(1, 30)) / 10
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 40)) / 10
    for key in ("k0", "k1", "k2"):
        det = Detector(key)
        for x, under in ((0.3 * np.sin(2 * np.pi * 1000 * t), 2.0), (hum, 2.0),
                         (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 2000 * t), -1.0)):
            got = det.detect(x, RATE)
            assert not got.found and got.score < MIN_SCORE - under
        got = det.detect(buzz, RATE, speeds=())
        assert not got.found and got.sync_z < SPEED_MIN_Z and got.score < MIN_SCORE - 1.0


def test_payload_fields_and_ranges() -> None:
    p = Payload.for_voice(7, "alice", dt.datetime(2026, 11, 23, tzinfo=dt.UTC))
    assert Payload.from_bits(p.to_bits()) == p and len(p.to_bits()) == 32
    assert p.day(dt.date(2027, 1, 1)) == dt.date(2026, 11, 23)
    for bad in ((256, 0, 0), (0, 4096, 0), (0, 0, -1), (True, 0, 0)):
        with pytest.raises(ValueError):
            Payload(*bad)
    with pytest.raises(ValueError, match="key"):
        WatermarkConfig(key="")
    assert WatermarkConfig().key == PUBLIC_KEY
    assert describe(WatermarkConfig(daemon_id=9), "alice").startswith(f"{SCHEME} key=public daemon=9 voice=0x")


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


def test_list_viterbi_starts_with_the_best_path_and_rescues_payloads_it_misses() -> None:
    rng = np.random.default_rng(4)
    single = listed = 0
    for _ in range(120):
        msg = rng.integers(0, 2, 32).astype(np.uint8)
        soft = 1.0 - 2.0 * ecc.conv_encode(ecc.with_crc(msg)) + rng.normal(0, 1.0, 108)
        paths = ecc.viterbi_list(soft, 48, 8)
        assert len(paths) == 8 and np.array_equal(paths[0], ecc.viterbi_decode(soft, 48))
        assert len({p.tobytes() for p in paths}) == 8  # distinct messages
        best = ecc.check_crc(paths[0])
        single += best is not None and np.array_equal(best, msg)
        first = next((m for m in map(ecc.check_crc, paths) if m is not None), None)
        listed += first is not None and np.array_equal(first, msg)
    assert listed >= single + 10  # at one symbol-energy-to-noise ratio of 0 dB the list finds many more

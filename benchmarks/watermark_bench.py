"""Watermark benchmark: detection from random 3 s excerpts under attacks, false positives on unmarked
audio, inaudibility (PESQ wide band, SNR) per language, and cost (CPU, one thread).

    .venv/bin/python benchmarks/watermark_bench.py [--excerpts 100] [--fp-excerpts 2500 --fp-keys 4]
        [--fp-speed-excerpts 250] [--parts cost,quality,detection,fp] [--attacks A,B] [--langs en,zh]
        [--quick]

Sources: the real speech in ../shared/data/speech (en/zh/ja), upsampled to 32 kHz and marked, and gsvd's
own output from a tiny random model (a noise-like "voice": it checks the engine path, not how speech
sounds). Attacks: resampling to 16 and 48 kHz, MP3 and Opus at 64 kb/s (PyAV), gain -10/+6 dB, white
noise at 20 dB SNR (of the excerpt), 10% faster playback (resampled). Excerpts start at random samples;
each (source, attack) cell has its own seed, so ``--attacks``/``--langs`` subsets give the same cells as a
full run. Detection is ``Detector.detect``: as recorded, then (if nothing is found) at the detector's speed
changes. False positives: ``--fp-excerpts`` unmarked excerpts (the sources unmarked, speech/music/noise
mixes, white noise, silence, and audio whose frames repeat: a two-tone chord, a buzz, 50/60 Hz hum) read
as recorded under ``--fp-keys`` keys, and ``--fp-speed-excerpts`` more read with the whole search (every
speed change: what ``detect`` does to audio without a mark), whose best sync z at the tried speeds is
reported against ``SPEED_MIN_Z``. PESQ: the `pesq` package (ITU-T P.862.2 wide band) at 16 kHz, on each
file's first 20 s. Cost: marking on one thread, in the engine's chunk sizes (its default chunk policy) and
in 20 ms chunks, and detection time. ``--parts`` runs some of these only. Last line: JSON.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread, as in the engine's chunk path (set before numpy loads)

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soxr  # noqa: E402

from gsvd.engine.provenance import detector as _detector  # noqa: E402
from gsvd.engine.provenance.detector import Detector, decode_keys, detect_keys, prepare  # noqa: E402
from gsvd.engine.provenance.watermark import WatermarkConfig, Watermarker  # noqa: E402

RATE = 32000
EXCERPT = 3 * RATE
SPEECH = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "speech"
SOURCES = {
    "en": ["en/librispeech_refs/spk1688_ref.wav", "en/librispeech_refs/spk3080_ref.wav",
           "en/moonshine_two_cities_librivox.wav", "en/whisper_jfk.flac"],
    "zh": ["zh/css10_zh_call_to_arms_0023.wav", "zh/fleurs_zh_1883_clip5.wav", "zh/fleurs_zh_en_mix_1805_1830_clip6.wav",
           "zh/wenet_aishell-BAC009S0724W0121.wav"],
    "ja": ["ja/fleurs_ja_1837_clip4.wav", "ja/css10_ja_meian_0051.wav"],
}
UNMARKED_EXTRA = ["noisy/mix_librispeech3080_bbbmusic_snr0.wav", "noisy/mix_fleurs_zh_cc0noise_snr5.wav",
                  "noisy/mix_fleurs_ja_cc0noise_snr5.wav", "noisy/dfn_noise_freesound_573577.wav",
                  "multi_speaker/vad_test_en_zh_ja.wav"]
ATTACKS = ("none", "resample16k", "resample48k", "mp3_64k", "opus_64k", "gain-10dB", "gain+6dB", "noise20dB", "speed+10%")
TARGET = 0.99
ENGINE_CHUNK_TOKENS = (6, 12, 24, 48)
"""The engine's default chunk policy (first 6 tokens, doubling up to 48; 1280 samples a token)."""


def codec(pcm: np.ndarray, rate: int, name: str) -> tuple[np.ndarray, int]:
    """Encode at 64 kb/s and decode back with PyAV."""
    import av

    enc_rate = 48000 if name == "libopus" else rate
    x = soxr.resample(pcm, rate, enc_rate) if enc_rate != rate else pcm
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg" if name == "libopus" else "mp3") as out:
        stream = out.add_stream(name, rate=enc_rate)
        stream.bit_rate = 64000
        frame = av.AudioFrame.from_ndarray((np.clip(x, -1, 1) * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.rate = enc_rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        res = av.AudioResampler(format="flt", layout="mono", rate=enc_rate)
        pieces = [f.to_ndarray().reshape(-1) for fr in inp.decode(audio=0) for f in res.resample(fr)]
    return np.concatenate(pieces), enc_rate


def attack(x: np.ndarray, name: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    if name == "none":
        return x, RATE
    if name.startswith("resample"):
        rate = int(name[len("resample"):-1]) * 1000
        return soxr.resample(x, RATE, rate), rate
    if name == "mp3_64k":
        return codec(x, RATE, "libmp3lame")
    if name == "opus_64k":
        return codec(x, RATE, "libopus")
    if name.startswith("gain"):
        return np.clip(x * 10 ** (float(name[4:-2]) / 20), -1, 1), RATE
    if name == "noise20dB":
        return x + rng.normal(0, np.sqrt(np.mean(x.astype(np.float64) ** 2) / 100), len(x)), RATE
    if name == "speed+10%":
        return soxr.resample(x, RATE, round(RATE / 1.1)), RATE  # played at RATE: 10% faster, pitch up
    raise ValueError(name)


def repeating_audio(seconds: float) -> list[np.ndarray]:
    """Unmarked audio whose frames repeat (not independent): a chord of two tones, a buzz of constant pitch under a
    syllable envelope, and 50 and 60 Hz mains hum."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.5
    chord = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 2000 * t)
    buzz = envelope * sum(np.sin(2 * np.pi * 125 * k * t) / k for k in range(1, 30)) / 10
    hum = [sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 40)) / 10 for f in (50, 60)]
    return [x.astype(np.float32) for x in (chord, buzz, *hum)]


def gsvd_output(seconds: float) -> np.ndarray:
    """Unmarked audio from the engine (tiny random model, CPU)."""
    from gsvd.engine import Engine, SynthesisOptions
    from gsvd.engine.testing.bundle import write_tiny_voice

    with tempfile.TemporaryDirectory() as tmp:
        voice = write_tiny_voice(Path(tmp), name="bench")
        with Engine(device="cpu", max_streams=2) as engine:
            engine.load_voice(voice)
            parts, total, seed = [], 0.0, 0
            while total < seconds:
                pcm, _ = engine.synthesize("今天天气很好，我们一起去公园散步吧。The weather is nice.", "bench",
                                           SynthesisOptions(seed=seed))
                parts.append(pcm)
                total += len(pcm) / RATE
                seed += 1
    return np.concatenate(parts)


def active_seconds(x: np.ndarray) -> float:
    """Seconds of 10 ms frames within 40 dB of the excerpt's loudest one (and above -60 dBFS): the audio that
    can carry a mark that follows the host's level (pauses carry none)."""
    frames = x[: len(x) // 320 * 320].astype(np.float64).reshape(-1, 320)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    return float(np.sum(level > max(level.max() - 40.0, -60.0))) * 0.01


def detection(marked: dict[str, np.ndarray], payload, excerpts: int,
              attacks: tuple[str, ...] = ATTACKS) -> tuple[dict, dict, dict]:
    """Per source and attack: the rate over all excerpts, and over those with >= 1 s of active audio. Each cell
    draws its excerpts (and noise) from its own seed, so a cell is the same whichever others run."""
    det = Detector()
    rates: dict[str, dict[str, float]] = {}
    voiced: dict[str, dict[str, list[int]]] = {}
    scores: dict[str, dict[str, float]] = {}
    for lang, y in marked.items():
        rates[lang], voiced[lang], scores[lang] = {}, {}, {}
        for name in attacks:
            rng = np.random.default_rng(zlib.crc32(f"watermark_bench/{lang}/{name}".encode()))
            ok, ok_active, n_active, conf = 0, 0, 0, []
            for _ in range(excerpts):
                start = int(rng.integers(0, len(y) - EXCERPT))
                active = active_seconds(y[start : start + EXCERPT]) >= 1.0
                excerpt, rate = attack(y[start : start + EXCERPT], name, rng)
                got = det.detect(excerpt, rate)
                hit = bool(got.found and got.payload == payload)
                ok, ok_active, n_active = ok + hit, ok_active + (hit and active), n_active + active
                conf.append(got.confidence)
            rates[lang][name] = ok / excerpts
            voiced[lang][name] = [ok_active, n_active]
            scores[lang][name] = float(np.median(conf))
        print(f"  {lang}: " + " ".join(f"{n} {rates[lang][n]:.0%}" for n in attacks), file=sys.stderr, flush=True)
    return rates, voiced, scores


def false_positives(unmarked: list[np.ndarray], excerpts: int, keys: int, speed_excerpts: int = 0) -> dict:
    """Unmarked excerpts read as recorded (seed 1) and with the whole speed search (seed 2: the same excerpts
    whether or not the first part runs)."""
    detectors = [Detector(f"bench-key-{k}") for k in range(keys)]
    rng = np.random.default_rng(1)
    hits, trials, sync, conf, score = 0, 0, [0.0], [0.0], [0.0]
    for i in range(excerpts):
        src = unmarked[i % len(unmarked)]
        start = int(rng.integers(0, len(src) - EXCERPT))
        for got in decode_keys(prepare(src[start : start + EXCERPT], RATE), detectors):
            hits += got.found
            trials += 1
            sync.append(got.sync_z)
            conf.append(got.confidence)
            score.append(got.score)
        if (i + 1) % 250 == 0:
            print(f"  false positives: {hits} in {trials}", file=sys.stderr, flush=True)
    out = {"trials": trials, "false_positives": hits, "rate": hits / trials,
           "upper95": (3.0 if hits == 0 else hits * 2) / trials, "sync_z_p99": float(np.percentile(sync, 99)),
           "confidence_p99": float(np.percentile(conf, 99)), "confidence_max": float(np.max(conf)),
           "score_p99": float(np.percentile(score, 99)), "score_max": float(np.max(score)),
           "min_score": _detector.MIN_SCORE}
    # the whole search (every speed change) on more unmarked excerpts: its extra candidates are the sync
    # peaks of z >= SPEED_MIN_Z at a changed speed (``Candidate.z``, the damped z the floor compares), so
    # record how high unmarked audio's peaks get there
    peaks: list[float] = [0.0]
    finish = Detector._finish

    def spy(self: Detector, prepared, found):
        if prepared.speed != 1.0 and found:
            peaks.append(max(c.z for c in found))
        return finish(self, prepared, found)

    Detector._finish = spy
    rng = np.random.default_rng(2)
    s_hits, s_trials, t0 = 0, 0, time.process_time()
    try:
        for i in range(speed_excerpts):
            src = unmarked[(i * 7 + 3) % len(unmarked)]
            start = int(rng.integers(0, len(src) - EXCERPT))
            for got in detect_keys(src[start : start + EXCERPT], RATE, detectors):
                s_hits += got.found
                s_trials += 1
    finally:
        Detector._finish = finish
    if speed_excerpts:
        out["speed_search"] = {"trials": s_trials, "false_positives": s_hits, "sync_z_max": float(np.max(peaks)),
                               "sync_z_p99": float(np.percentile(peaks, 99)), "searches": len(peaks),
                               "min_z": _detector.SPEED_MIN_Z,
                               "cpu_s_per_excerpt_and_key": (time.process_time() - t0) / max(s_trials, 1)}
    return out


def quality(sources: dict[str, list[np.ndarray]], marker: Watermarker) -> dict[str, dict[str, float]]:
    from pesq import pesq

    out = {}
    for lang, clips in sources.items():
        scores, snrs, num, den = [], [], 0.0, 0.0
        for x in clips:
            x = x[: 20 * RATE]
            y = marker.mark(x, RATE, "bench")
            a, b = soxr.resample(x, RATE, 16000), soxr.resample(y, RATE, 16000)
            scores.append(pesq(16000, a, b, "wb"))
            signal, mark = np.sum(x.astype(np.float64) ** 2), np.sum((y - x).astype(np.float64) ** 2)
            snrs.append(10 * np.log10(signal / mark))
            num, den = num + signal, den + mark
        out[lang] = {"pesq_wb_min": min(scores), "pesq_wb_mean": float(np.mean(scores)), "snr_db_min": min(snrs),
                     "snr_db_all": float(10 * np.log10(num / den))}
    return out


def _engine_chunks(total: int) -> list[int]:
    """Chunk lengths the engine emits for an utterance of ``total`` samples (default policy, speed 1)."""
    sizes, pos, i = [], 0, 0
    while pos < total:
        n = ENGINE_CHUNK_TOKENS[min(i, len(ENGINE_CHUNK_TOKENS) - 1)] * 1280 - (320 if i == 0 else 0)
        n = min(n, total - pos)
        sizes.append(n)
        pos, i = pos + n, i + 1
    return sizes


def cost(x: np.ndarray, marker: Watermarker) -> dict[str, float]:
    out = {}
    x = x[: len(x) // 640 * 640]
    for label, sizes in (("engine_chunks", None), ("chunk640", [640]), ("chunk15360", [15360])):
        best = float("inf")
        for _ in range(3):  # best of three: other processes share this machine's cores
            stream, pos, utter = marker.stream("bench", RATE), 0, 0
            t = time.process_time()
            while pos < len(x):
                if sizes is None:  # 8 s utterances, each chunked as the engine does
                    if pos % (8 * RATE) == 0:
                        stream, utter = marker.stream("bench", RATE), pos
                        plan = iter(_engine_chunks(min(8 * RATE, len(x) - pos)))
                    n = next(plan)
                    stream.apply(x[pos : pos + n], pos - utter)
                else:
                    n = min(sizes[0], len(x) - pos)
                    stream.apply(x[pos : pos + n], pos)
                pos += n
            best = min(best, time.process_time() - t)
        out[f"us_per_20ms_{label}"] = best / (len(x) / 640) * 1e6
    det, y = Detector(), marker.mark(x, RATE, "bench")
    t = time.process_time()
    for i in range(10):
        det.detect(y[i * RATE : i * RATE + EXCERPT], RATE)
    out["detect_s_per_3s"] = (time.process_time() - t) / 10
    t = time.process_time()
    for i in range(10):  # unmarked: nothing is found, so every speed change is tried
        Detector(f"cost-{i}").detect(x[i * RATE : i * RATE + EXCERPT], RATE)
    out["detect_s_per_3s_unmarked"] = (time.process_time() - t) / 10
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--excerpts", type=int, default=100, help="3 s excerpts per language and attack")
    ap.add_argument("--fp-excerpts", type=int, default=2500)
    ap.add_argument("--fp-keys", type=int, default=4)
    ap.add_argument("--fp-speed-excerpts", type=int, default=250, help="unmarked excerpts read with every speed")
    ap.add_argument("--gsvd-seconds", type=float, default=30.0)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 4 excerpts, 50 x 4 for false positives")
    ap.add_argument("--parts", default="cost,quality,detection,fp",
                    help="which parts to run (comma-separated: cost, quality, detection, fp)")
    ap.add_argument("--attacks", default=",".join(ATTACKS), help="detection: which attacks (comma-separated)")
    ap.add_argument("--langs", default="en,zh,ja,gsvd_tiny_random", help="detection: which sources (comma-separated)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    attacks = tuple(args.attacks.split(","))
    for bad in (parts - {"cost", "quality", "detection", "fp"}) | (set(attacks) - set(ATTACKS)):
        sys.exit(f"unknown part or attack {bad!r}")
    if args.quick:
        args.excerpts, args.fp_excerpts, args.fp_keys, args.gsvd_seconds = 4, 50, 4, 8.0
        args.fp_speed_excerpts = 10
    if not SPEECH.is_dir():
        sys.exit(f"shared speech not found at {SPEECH}")
    from gsvd.engine.audio import load_audio

    wall = time.time()
    rng = np.random.default_rng(0)
    marker = Watermarker(WatermarkConfig(daemon_id=3))
    payload = marker.payload("bench")
    sources = {lang: [load_audio(SPEECH / f, RATE) for f in files] for lang, files in SOURCES.items()}
    sources["gsvd_tiny_random"] = [gsvd_output(args.gsvd_seconds)]
    langs = args.langs.split(",")
    if set(langs) - set(sources):
        sys.exit(f"unknown sources {sorted(set(langs) - set(sources))}; known: {sorted(sources)}")
    marked = {lang: marker.mark(np.concatenate(sources[lang]), RATE, "bench") for lang in langs}
    unmarked = [c for clips in sources.values() for c in clips if len(c) > EXCERPT]
    unmarked += [load_audio(SPEECH / f, RATE) for f in UNMARKED_EXTRA]
    unmarked.append((0.1 * rng.standard_normal(30 * RATE)).astype(np.float32))  # white noise
    unmarked.append(np.zeros(10 * RATE, np.float32))  # digital silence
    unmarked += repeating_audio(10.0)

    out: dict = {"excerpts": args.excerpts}
    if "cost" in parts:
        c = out["cost"] = cost(np.concatenate(sources["en"])[: 60 * RATE], marker)
    if "quality" in parts:
        q = out["quality"] = quality({k: v for k, v in sources.items() if k != "gsvd_tiny_random"}, marker)
    if "detection" in parts:
        det, voiced, conf = detection(marked, payload, args.excerpts, attacks)
        out.update(detection=det, detection_active_1s=voiced, confidence_median=conf)
    if "fp" in parts:
        fp = out["false_positives"] = false_positives(unmarked, args.fp_excerpts, args.fp_keys, args.fp_speed_excerpts)

    if "detection" in parts:
        print(f"detection rate from random 3 s excerpts ({args.excerpts} per cell; target >= {TARGET:.0%}, speed: >= 95%)")
        print(f"{'attack':<12}" + "".join(f"{lang:>18}" for lang in det))
        for name in attacks:
            print(f"{name:<12}" + "".join(f"{det[lang][name]:>18.1%}" for lang in det))
        print("the same over excerpts with >= 1 s of active audio (hits/excerpts):")
        for name in attacks:
            print(f"{name:<12}" + "".join(f"{voiced[lang][name][0]:>12d}/{voiced[lang][name][1]:<5d}" for lang in det))
    if "fp" in parts:
        print(f"false positives: {fp['false_positives']} in {fp['trials']} trials ({args.fp_excerpts} unmarked excerpts of "
              f"speech, music/noise mixes, white noise, silence, tones and hum x {args.fp_keys} keys); 95% upper bound "
              f"{fp['upper95']:.1e}; best path score p99 {fp['score_p99']:.2f}, max {fp['score_max']:.2f} "
              f"(accepted from {fp['min_score']:g} with a CRC match)")
        if "speed_search" in fp:
            sp = fp["speed_search"]
            print(f"  with every speed change tried: {sp['false_positives']} in {sp['trials']} trials; unmarked sync peaks "
                  f"at changed speeds: p99 {sp['sync_z_p99']:.2f}, max {sp['sync_z_max']:.2f} in {sp['searches']} searches "
                  f"(decoded only from {sp['min_z']:g})")
    if "quality" in parts:
        for lang, v in q.items():
            print(f"quality {lang}: PESQ-WB min {v['pesq_wb_min']:.2f} mean {v['pesq_wb_mean']:.2f}, "
                  f"SNR min {v['snr_db_min']:.1f} dB (all files {v['snr_db_all']:.1f} dB)")
    if "cost" in parts:
        print(f"cost (CPU, one thread): {c['us_per_20ms_engine_chunks']:.1f} us per 20 ms in the engine's chunks, "
              f"{c['us_per_20ms_chunk15360']:.1f} in 480 ms chunks, {c['us_per_20ms_chunk640']:.1f} in 20 ms chunks; "
              f"detection {c['detect_s_per_3s']:.2f} s per marked 3 s excerpt, {c['detect_s_per_3s_unmarked']:.2f} s per "
              f"unmarked one (every speed tried)")
    print(f"wall time {time.time() - wall:.0f} s")
    out["wall_s"] = round(time.time() - wall)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

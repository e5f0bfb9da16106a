"""Watermark benchmark: detection from random 3 s excerpts under attacks, false positives on unmarked
audio, inaudibility (PESQ wide band, SNR) per language, and cost (CPU here).

    .venv/bin/python benchmarks/watermark_bench.py [--excerpts 40] [--fp-excerpts 2000 --fp-keys 16] [--quick]

Sources: the real speech in ../shared/data/speech (en/zh/ja), upsampled to 32 kHz and marked, and gsvd's
own output from a tiny random model (a noise-like "voice": it checks the engine path, not how speech
sounds). Attacks: resampling to 16 and 48 kHz, MP3 and Opus at 64 kb/s (PyAV), gain -10/+6 dB, white
noise at 20 dB SNR, 10% faster playback (resampled). PESQ: the `pesq` package (ITU-T P.862.2 wide band)
at 16 kHz. Last line: JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr

from gsvd.engine.audio import load_audio
from gsvd.engine.provenance.watermark import Detector, WatermarkConfig, Watermarker, prepare

RATE = 32000
SPEECH = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "speech"
SOURCES = {
    "en": ["en/librispeech_refs/spk1688_ref.wav", "en/librispeech_refs/spk3080_ref.wav",
           "en/moonshine_two_cities_librivox.wav", "en/whisper_jfk.flac"],
    "zh": ["zh/css10_zh_call_to_arms_0023.wav", "zh/fleurs_zh_1883_clip5.wav", "zh/fleurs_zh_en_mix_1805_1830_clip6.wav",
           "zh/wenet_aishell-BAC009S0724W0121.wav"],
    "ja": ["ja/fleurs_ja_1837_clip4.wav", "ja/css10_ja_meian_0051.wav"],
}
UNMARKED_EXTRA = ["noisy/mix_librispeech3080_bbbmusic_snr0.wav", "noisy/mix_fleurs_zh_cc0noise_snr5.wav",
                  "noisy/mix_fleurs_ja_cc0noise_snr5.wav", "noisy/dfn_noise_freesound_573577.wav"]
ATTACKS = ("none", "resample16k", "resample48k", "mp3_64k", "opus_64k", "gain-10dB", "gain+6dB", "noise20dB", "speed+10%")
TARGET = 0.99


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
        return x + rng.normal(0, np.sqrt(np.mean(x**2) / 100), len(x)), RATE
    if name == "speed+10%":
        return soxr.resample(x, RATE, round(RATE / 1.1)), RATE  # played at RATE: 10% faster, pitch up
    raise ValueError(name)


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


def detection(marked: dict[str, np.ndarray], payload, excerpts: int, rng) -> dict[str, dict[str, float]]:
    det = Detector()
    out: dict[str, dict[str, float]] = {}
    for lang, y in marked.items():
        out[lang] = {}
        for name in ATTACKS:
            ok = 0
            for _ in range(excerpts):
                start = int(rng.integers(0, len(y) - 3 * RATE))
                excerpt, rate = attack(y[start : start + 3 * RATE], name, rng)
                got = det.detect(excerpt, rate)
                ok += got.found and got.payload == payload
            out[lang][name] = ok / excerpts
    return out


def false_positives(unmarked: list[np.ndarray], excerpts: int, keys: int, rng) -> dict:
    detectors = [Detector(f"bench-key-{k}") for k in range(keys)]
    hits, trials, sync = 0, 0, []
    for i in range(excerpts):
        src = unmarked[i % len(unmarked)]
        start = int(rng.integers(0, len(src) - 3 * RATE))
        folded = prepare(src[start : start + 3 * RATE], RATE)
        for det in detectors:
            got = det.decode(folded)
            hits += got.found
            trials += 1
            sync.append(got.sync_z)
    return {"trials": trials, "false_positives": hits, "rate": hits / trials,
            "upper95": (3.0 if hits == 0 else hits * 2) / trials, "sync_z_p99": float(np.percentile(sync, 99))}


def quality(sources: dict[str, list[np.ndarray]], marker: Watermarker) -> dict[str, dict[str, float]]:
    from pesq import pesq

    out = {}
    for lang, clips in sources.items():
        scores, snrs = [], []
        for x in clips:
            x = x[: 20 * RATE]
            y = marker.mark(x, RATE, "bench")
            a, b = soxr.resample(x, RATE, 16000), soxr.resample(y, RATE, 16000)
            scores.append(pesq(16000, a, b, "wb"))
            snrs.append(10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x).astype(np.float64) ** 2)))
        out[lang] = {"pesq_wb_min": min(scores), "pesq_wb_mean": float(np.mean(scores)), "snr_db_min": min(snrs)}
    return out


def cost(x: np.ndarray, marker: Watermarker) -> dict[str, float]:
    out = {}
    for chunk in (640, 5120):
        stream = marker.stream("bench", RATE)
        t = time.perf_counter()
        for pos in range(0, len(x) - chunk + 1, chunk):
            stream.apply(x[pos : pos + chunk], pos)
        out[f"us_per_20ms_chunk{chunk}"] = (time.perf_counter() - t) / ((len(x) // chunk * chunk) / 640) * 1e6
    det = Detector()
    t = time.perf_counter()
    for i in range(10):
        det.detect(x[i * RATE : i * RATE + 3 * RATE], RATE)
    out["detect_ms_per_3s"] = (time.perf_counter() - t) / 10 * 1e3
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--excerpts", type=int, default=40, help="3 s excerpts per language and attack")
    ap.add_argument("--fp-excerpts", type=int, default=2000)
    ap.add_argument("--fp-keys", type=int, default=16)
    ap.add_argument("--gsvd-seconds", type=float, default=20.0)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 4 excerpts, 50 x 4 for false positives")
    args = ap.parse_args()
    if args.quick:
        args.excerpts, args.fp_excerpts, args.fp_keys, args.gsvd_seconds = 4, 50, 4, 8.0
    if not SPEECH.is_dir():
        sys.exit(f"shared speech not found at {SPEECH}")
    rng = np.random.default_rng(0)
    marker = Watermarker(WatermarkConfig(daemon_id=3))
    payload = marker.payload("bench")
    sources = {lang: [load_audio(SPEECH / f, RATE) for f in files] for lang, files in SOURCES.items()}
    sources["gsvd_tiny_random"] = [gsvd_output(args.gsvd_seconds)]
    marked = {lang: marker.mark(np.concatenate(clips), RATE, "bench") for lang, clips in sources.items()}
    unmarked = [c for clips in sources.values() for c in clips if len(c) > 3 * RATE]
    unmarked += [load_audio(SPEECH / f, RATE) for f in UNMARKED_EXTRA]
    unmarked.append((0.1 * rng.standard_normal(30 * RATE)).astype(np.float32))  # white noise

    det = detection(marked, payload, args.excerpts, rng)
    fp = false_positives(unmarked, args.fp_excerpts, args.fp_keys, rng)
    q = quality({k: v for k, v in sources.items() if k != "gsvd_tiny_random"}, marker)
    c = cost(np.concatenate(sources["en"])[: 60 * RATE], marker)

    print(f"detection rate from random 3 s excerpts ({args.excerpts} per cell; target >= {TARGET:.0%}, speed: >= 95%)")
    print(f"{'attack':<12}" + "".join(f"{lang:>18}" for lang in det))
    for name in ATTACKS:
        print(f"{name:<12}" + "".join(f"{det[lang][name]:>18.1%}" for lang in det))
    print(f"false positives: {fp['false_positives']} in {fp['trials']} trials ({args.fp_excerpts} unmarked excerpts of "
          f"speech, music/noise mixes and white noise x {args.fp_keys} keys); 95% upper bound {fp['upper95']:.1e}")
    for lang, v in q.items():
        print(f"quality {lang}: PESQ-WB min {v['pesq_wb_min']:.2f} mean {v['pesq_wb_mean']:.2f}, SNR min {v['snr_db_min']:.1f} dB")
    print(f"cost (CPU, this machine): {c['us_per_20ms_chunk640']:.1f} us per 20 ms in 20 ms chunks, "
          f"{c['us_per_20ms_chunk5120']:.1f} us in 160 ms chunks; detection {c['detect_ms_per_3s']:.1f} ms per 3 s")
    print(json.dumps({"detection": det, "false_positives": fp, "quality": q, "cost": c, "excerpts": args.excerpts}))


if __name__ == "__main__":
    main()

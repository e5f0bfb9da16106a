"""End-to-end streaming benchmark through the public Engine (text frontend included), real v2 sizes
with random weights (so every sentence runs to the token cap: 75 tokens = 3 s of audio each).

    PYTHONPATH=. python3 benchmarks/runtime_bench.py [--streams 1,8,32,64,128,256] [--graphs 0|1] [--eager-streams 1,8,32]
        [--bert 1]   # zh sentences with BERT features from a roberta-large-sized random model (transformers);
                     # rows then split first audio by language (zh pays for BERT, en does not) and the JSON
                     # gets the BERT model's load and graph capture (`bert_model`)
        [--spread 2 --tokens 250]   # streams started evenly over 2 s, 10 s of audio each (all overlap)
        [--sustain 512:30[:250][:listen]]   # then 512 callers for 30 s, each sending its next request as the
                  # last one ends (250 tokens each; else --tokens), or (listen) as its audio has played out
        [--tick-stats 1]   # the scheduler's per-tick statistics of each level (phases, rows, device busy, late)
    .venv/bin/python benchmarks/runtime_bench.py --device cpu --streams 1 --min-samples 1   # smoke test

For each concurrency level N it starts N streams at once (alternating 20-character zh and en
sentences) and measures, per stream: time to first audio (request accepted -> first PCM chunk),
real-time factor (wall time / audio seconds) and whether it underran (a chunk arrived after the
audio before it would have finished playing, playback starting at the first chunk). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import torch

ZH = "今天天气很好，我们一起去公园散步吧。"  # 18 characters + punctuation ~ 20
EN = "The weather is nice, let us walk."


def make_voice(root: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).parent))
    from gpu_engine_check import _models

    from gsvd.engine.bundle import ReferenceCache, write_bundle
    from gsvd.engine.testing.gpt import real_v2_gpt_config
    from gsvd.engine.testing.sovits import real_sovits_config

    gpt, sov = _models()
    g = torch.Generator().manual_seed(0)
    ref = ReferenceCache(prompt_tokens=torch.randint(0, 1024, (150,), generator=g), spec=torch.rand(1025, 300, generator=g),
                         phone_ids=torch.randint(0, 732, (40,), generator=g), bert=torch.zeros(1024, 40), norm_text="参考。")
    write_bundle(root / "bench", name="bench", version="v2", gpt_state=gpt.state_dict(), gpt_config=real_v2_gpt_config(),
                 sovits_state=sov.state_dict(), sovits_config=real_sovits_config("v2"), reference=ref,
                 reference_text="参考。", reference_language="zh")
    return root / "bench"


def make_bert(root: Path) -> Path:
    """A chinese-roberta-wwm-ext-large sized BERT (24 layers, 1024 wide) with random weights and a vocabulary
    of the benchmark's characters, so zh sentences pay for real BERT features (needs transformers)."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    folder = root / "roberta"
    folder.mkdir(parents=True)
    chars = sorted(set(ZH + "参考" + "，。,.!?"))
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n",
                                      encoding="utf-8")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=5 + len(chars), hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                     intermediate_size=4096, max_position_embeddings=512)
    BertForMaskedLM(cfg).eval().save_pretrained(folder)
    return folder


def run_repeated(engine, n: int, repeat: int, spread: float = 0.0, tokens: int = 75) -> dict:
    """`repeat` rounds of n concurrent streams, one after another; percentiles over every stream."""
    rounds = [run_level(engine, n, keep=True, offset=k, spread=spread, tokens=tokens)  # zh and en alternate
              for k in range(repeat)]
    res = [r for rnd in rounds for r in rnd["results"]]
    return {"streams": n, "rounds": repeat, **summary(res), **by_language(res),
            "wall_s": sum(rnd["wall_s"] for rnd in rounds)}


def by_language(results: list[dict]) -> dict:
    """`summary` of the zh and of the en streams apart (with --bert 1 only zh pays for BERT features)."""
    return {lang: summary([r for r in results if r["lang"] == lang]) for lang in ("zh", "en")}


def measure(engine, i: int, tokens: int, voice: str = "bench") -> dict:
    """One request (zh for even i, en for odd, seed i) through `Engine.stream` on `voice`: first audio, real-time
    factor, whether (and where) it underran."""
    from gsvd.engine import SynthesisOptions

    text, lang = (ZH, "zh") if i % 2 == 0 else (EN, "en")
    t0 = time.perf_counter()
    arrivals, offsets = [], []
    audio = 0
    options = SynthesisOptions(seed=i, language=lang, max_new_tokens=tokens, split_method="cut0")
    for chunk in engine.stream(text, voice, options):
        if len(chunk.pcm) == 0:  # a sentence's closing chunk (word timings): nothing to play
            continue
        arrivals.append(time.perf_counter() - t0)
        offsets.append(chunk.offset / 32000)
        audio += len(chunk.pcm)
    first = arrivals[0]
    late = [k for k, (a, off) in enumerate(zip(arrivals, offsets, strict=True)) if a - first > off + 0.02]
    # late_chunk: the first piece that came after the audio before it had played (-1: none)
    return {"lang": lang, "start": t0, "end": time.perf_counter(), "ttfa": first, "audio_s": audio / 32000, "rtf": arrivals[-1] / (audio / 32000),
            "underrun": bool(late), "late_chunk": late[0] if late else -1,
            "late_s": arrivals[late[0]] - first - offsets[late[0]] if late else 0.0}


def summary(results: list[dict]) -> dict:
    if not results:
        return {"ttfa_p50_ms": None, "ttfa_p95_ms": None, "rtf_p50": None, "underruns": 0}
    ttfa = sorted(r["ttfa"] for r in results)
    return {"ttfa_p50_ms": 1000 * statistics.median(ttfa), "ttfa_p95_ms": 1000 * ttfa[math.ceil(0.95 * len(ttfa)) - 1],
            "rtf_p50": statistics.median(r["rtf"] for r in results), "underruns": sum(r["underrun"] for r in results)}


def run_callers(n: int, body) -> float:
    """n threads let go at the same moment, thread i running body(i, that moment) -> that moment (perf_counter)."""
    gate, start = threading.Event(), [0.0]

    def go(i: int) -> None:
        gate.wait()
        body(i, start[0])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start[0] = time.perf_counter()
    gate.set()
    for t in threads:
        t.join()
    return start[0]


def run_level(engine, n: int, keep: bool = False, offset: int = 0, spread: float = 0.0, tokens: int = 75) -> dict:
    """n streams of `tokens` tokens each, all started at once, or stream i at i * spread / n seconds."""
    results: list[dict] = []
    lock = threading.Lock()

    def one(i: int, wall0: float) -> None:
        if spread:
            time.sleep(max(0.0, wall0 + i * spread / n - time.perf_counter()))
        r = measure(engine, i + offset, tokens)
        with lock:
            results.append(r)

    wall0 = run_callers(n, one)
    if keep:
        return {"results": results, "wall_s": time.perf_counter() - wall0}
    return {"streams": n, **summary(results), "wall_s": time.perf_counter() - wall0}


def run_sustained(engine, n: int, seconds: float, tokens: int, keep: bool = False, listen: bool = False) -> dict:
    """n callers, each sending its next request as soon as the last one has ended, for `seconds`: n streams in
    flight at every moment once all have started (caller i starts at i / n of one utterance's play time, so
    that the streams' chunk ramps are spread). With `listen` each caller is a listener instead: its next
    request goes when the last one's audio has finished playing (playback from its first audio), so n
    real-time streams are heard at once, gaps of one first audio between utterances. Requests started after
    that first utterance time are the steady ones; mean_in_flight is the number of requests in flight
    averaged over the steady window."""
    results: list[dict] = []
    lock = threading.Lock()
    ramp = tokens / 25  # one utterance's play time

    def user(i: int, wall0: float) -> None:
        time.sleep(max(0.0, wall0 + i * ramp / n - time.perf_counter()))
        k = 0
        while time.perf_counter() < wall0 + seconds:
            r = measure(engine, i + n * k, tokens)
            with lock:
                results.append(r)
            k += 1
            if listen:  # until this utterance has played out
                time.sleep(max(0.0, r["start"] + r["ttfa"] + r["audio_s"] - time.perf_counter()))

    wall0 = run_callers(n, user)
    lo, hi = wall0 + ramp, wall0 + seconds
    steady = [r for r in results if r["start"] >= lo]
    busy = sum(max(0.0, min(r["end"], hi) - max(r["start"], lo)) for r in results)
    first_late = Counter(r["late_chunk"] for r in steady if r["underrun"])
    return {"streams": n, "sustained_s": seconds, "tokens": tokens, "listen": listen, "requests": len(results),
            "steady_requests": len(steady),
            "mean_in_flight": busy / max(1e-9, hi - lo), **summary(steady),
            "all": summary(results), "first_late_chunk": dict(sorted(first_late.items())),
            "wall_s": time.perf_counter() - wall0, **({"results": steady} if keep else {})}


def tick_delta(before: dict | None, after: dict | None) -> dict | None:
    """The scheduler's tick statistics of one level: the counters' difference between two snapshots."""
    if before is None or after is None:
        return None
    out = {k: after[k] - before[k] for k in ("wall_s", "ticks", "admissions", "admitted", "gpt_steps", "chunk_passes",
                                             "chunks", "late_chunks", "device_busy_s")}
    out["phase_s"] = {k: after["phase_s"][k] - before["phase_s"][k] for k in after["phase_s"]}
    rows = lambda key, n: after[key] * after[n] - before[key] * before[n]  # noqa: E731
    out["gpt_rows_mean"] = rows("gpt_rows_mean", "gpt_steps") / max(1, out["gpt_steps"])
    out["chunk_rows_mean"] = rows("chunk_rows_mean", "chunk_passes") / max(1, out["chunk_passes"])
    out["device_busy_share"] = out["device_busy_s"] / out["wall_s"] if out["wall_s"] > 0 else 0.0
    return out


def run_engine(voice: Path, levels: list[int], min_samples: int, device: str, bert: Path | None = None,
               spread: float = 0.0, tokens: int = 75, warm: list[int] = (),
               sustain: list[tuple[int, float, int, bool]] = (), graphs: bool = True,
               tick_stats: bool = False, watermark: bool = False) -> tuple[list[dict], dict]:
    """warm: levels run once first, not recorded (a fresh engine's first burst at a new size also pays for host
    and device allocations). sustain: (callers, seconds, tokens, listen) levels run after the others
    (`run_sustained`). tick_stats: each row gets the scheduler's statistics of its level (`ticks`).
    watermark: the engine marks every stream (`gsvd.engine.provenance`)."""
    from gsvd.engine import Engine
    from gsvd.engine.settings import RuntimeConfig

    rows = []
    slots = max([*levels, *(n for n, *_ in sustain)])
    from gsvd.engine.provenance import WatermarkConfig

    # defaults and the GSVD_* environment (the Triton kernel cache among them), then this run's own settings
    config = RuntimeConfig.load(device=device, max_streams=slots, queue_limit=1024, cuda_graphs=graphs,
                                tick_stats=tick_stats)
    mark = WatermarkConfig() if watermark else None
    with Engine(runtime=config, bert_folder=bert, watermark=mark) as engine:
        t0 = time.perf_counter()
        engine.load_voice(voice)  # the model serves from here on (its graphs: captured in the background)
        load_s = time.perf_counter() - t0
        ready_s = _ready(engine)
        for n in (1, *warm):  # warm-up: kernels chosen, memory pools grown
            run_level(engine, n)

        def measured(run):
            before = engine.tick_stats()
            row = run()
            if tick_stats:
                row["ticks"] = tick_delta(before, engine.tick_stats())
            print(row, flush=True)
            return row

        for n in levels:  # small levels run several rounds so that p50/p95 mean something
            rows.append(measured(lambda n=n: run_repeated(engine, n, max(1, min_samples // n), spread, tokens)))
        for n, seconds, sustain_tokens, listen in sustain:
            rows.append(measured(lambda n=n, s=seconds, t=sustain_tokens, li=listen: run_sustained(
                engine, n, s, t, listen=li)))
        return rows, {**engine.info(), "load_voice_s": load_s, "graphs_ready_s": ready_s, "stats": engine.stats()}


def _ready(engine) -> float:
    """Wait until the engine's graphs are captured (measured levels replay them) -> seconds waited."""
    t0 = time.perf_counter()
    engine.ready()
    return time.perf_counter() - t0


def _ms(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def print_table(title: str, rows: list[dict]) -> None:
    print(title)
    print(f"{'streams':>7s} {'rounds':>6s} {'TTFA p50':>9s} {'TTFA p95':>9s} {'RTF p50':>8s} {'underruns':>9s}"
          "   TTFA p50 / p95 by language")
    for r in rows:
        if "sustained_s" in r:
            print(f"{r['streams']:7d} {'listeners' if r['listen'] else 'sustained'} {r['sustained_s']:.0f} s, "
                  f"{r['tokens']} tokens: {r['steady_requests']} steady requests "
                  f"(mean in flight {r['mean_in_flight']:.1f}): TTFA {_ms(r['ttfa_p50_ms'])} / "
                  f"{_ms(r['ttfa_p95_ms'])} ms, RTF {_ms(r['rtf_p50'], 3)}, {r['underruns']} underran, first late chunks {r['first_late_chunk']}; "
                  f"all {r['requests']}: {r['all']}")
            continue
        print(f"{r['streams']:7d} {r['rounds']:6d} {r['ttfa_p50_ms']:8.1f}ms {r['ttfa_p95_ms']:8.1f}ms {r['rtf_p50']:8.3f} "
              f"{r['underruns']:9d}   " + ", ".join(f"{lang} {_ms(r[lang]['ttfa_p50_ms'])} / {_ms(r[lang]['ttfa_p95_ms'])} ms"
                                           for lang in ("zh", "en") if lang in r))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", default="1,8,32,64,128,256")
    ap.add_argument("--graphs", default="1")
    ap.add_argument("--min-samples", type=int, default=20, help="rounds at level N: max(1, this // N)")
    ap.add_argument("--eager-streams", default="", help="then these levels eager (cuda_graphs off), in this run")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--watermark", default="0", help="1: the engine marks every stream (gsvd.engine.provenance)")
    ap.add_argument("--bert", default="0", help="1: zh sentences get BERT features from a random roberta-large")
    ap.add_argument("--spread", type=float, default=0.0, help="start a level's streams evenly over this many s")
    ap.add_argument("--tokens", type=int, default=75, help="tokens per stream (75 = 3 s of audio)")
    ap.add_argument("--sustain", default="", help="e.g. 512:30,512:40:250,512:30:75:listen -- then N callers each "
                    "sending its next request as the last ends (listen: as its audio has played out), for S seconds "
                    "(T tokens each, else --tokens), on the same engine")
    ap.add_argument("--warm", default="", help="levels run once before the measured ones, not recorded")
    ap.add_argument("--eager-min-samples", type=int, default=0, help="--min-samples of the eager levels (0: same)")
    ap.add_argument("--tick-stats", default="0", help="1: each level's scheduler statistics (in the JSON rows)")
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)
    root = Path(tempfile.mkdtemp())
    voice = make_voice(root)
    bert = make_bert(root) if args.bert == "1" else None
    sustain = [(int(f[0]), float(f[1]), int(f[2]) if len(f) > 2 and f[2] else args.tokens, f[3:] == ["listen"])
               for f in (c.split(":") for c in args.sustain.split(",") if c)]
    levels = [int(x) for x in args.streams.split(",") if x]
    rows, info = run_engine(voice, levels, args.min_samples, args.device, bert, args.spread, args.tokens,
                            [int(x) for x in args.warm.split(",") if x], sustain, graphs=args.graphs == "1",
                            tick_stats=args.tick_stats == "1", watermark=args.watermark == "1")
    print_table(info["backend"] + ":", rows)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "none (CPU)"
    result = {"gpu": gpu, "backend": info["backend"], "graphs": args.graphs, "bert": args.bert,
              "watermark": args.watermark, "spread_s": args.spread, "tokens": args.tokens,
              "load_voice_s": info["load_voice_s"], "graphs_ready_s": info["graphs_ready_s"],
              "kv_slots": info["stats"].get("slots_total"), "rows": rows}
    print(f"voice loaded in {info['load_voice_s']:.1f} s, its graphs captured {info['graphs_ready_s']:.1f} s later")
    if bert is not None:  # loaded by the first zh request (the warm-up): weights, and on CUDA its graphs
        from gsvd.engine.text.bert import BertFeatures

        result["bert_model"] = BertFeatures.shared(bert, info["device"]).info()  # the engine's one copy
        print("BERT:", result["bert_model"])
    if args.eager_streams:
        eager, _ = run_engine(voice, [int(x) for x in args.eager_streams.split(",")],
                              args.eager_min_samples or args.min_samples, args.device, bert, graphs=False)
        print_table("eager (cuda_graphs off), same run:", eager)
        by = {r["streams"]: r for r in rows}
        result["eager_rows"] = eager
        result["ttfa_p50_eager_over_default"] = {r["streams"]: r["ttfa_p50_ms"] / by[r["streams"]]["ttfa_p50_ms"]
                                                 for r in eager if r["streams"] in by}
        print("first audio p50, eager / default:", result["ttfa_p50_eager_over_default"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()

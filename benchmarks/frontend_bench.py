"""Text frontend speed: median time per ~50-character sentence (zh, en) after warm-up, and cold start.

    .venv/bin/python benchmarks/frontend_bench.py

Measures TextFrontend.features (normalize + segment + G2P + ids; BERT off) on 200
sentences per language built from fixed templates, one call per sentence, after
a warm-up pass; cold start = a fresh process importing the frontend and reading
its first sentence. Last line: one JSON object.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

ZH = ["今天是2024年3月5日，天气很好，我们一起去公园散步吧。", "这个东西的价格是1,000元，比上个月贵了大约百分之十五。",
      "请在下午3:30之前把资料发到我的邮箱，谢谢你的帮忙。", "我不知道他为什么还没有来，可能是路上堵车了吧。",
      "春天来了，小孩儿们在院子里玩儿，笑声一阵接着一阵。"]
EN = ["The meeting starts at 3:30 pm, so please be there on time.", "It costs $12.50 and ships to 25 countries worldwide.",
      "Dr. Smith said the GPU runs 40% faster than before.", "We walked 5 km along the river on a bright morning.",
      "Call 555-123-4567 if you have any questions today."]


def _time_lang(fe, sentences: list[str], lang: str) -> list[float]:
    for s in sentences:
        fe.features(s, lang)  # warm-up
    times = []
    for i in range(200):
        s = sentences[i % len(sentences)]
        t0 = time.perf_counter()
        fe.features(s, lang)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def cold_start() -> float:
    code = ("import time; t=time.perf_counter(); from gsvd.engine.text import TextFrontend; "
            "TextFrontend().features('今天天气很好，我们去散步吧。', 'zh'); print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]) * 1000


def main() -> None:
    import logging

    logging.disable(logging.WARNING)
    from gsvd.engine.text import TextFrontend

    fe = TextFrontend()
    rows = {}
    zh50 = [ZH[i] + ZH[(i + 1) % len(ZH)] for i in range(len(ZH))]  # ~50 characters each
    for lang, sents in (("zh", zh50), ("en", EN)):
        t = _time_lang(fe, sents, lang)
        chars = statistics.mean(len(s) for s in sents)
        rows[lang] = {"median_ms": statistics.median(t), "p95_ms": sorted(t)[int(0.95 * len(t))], "mean_chars": chars}
    cold = cold_start()
    print(f"{'lang':5s} {'median ms':>10s} {'p95 ms':>8s} {'chars':>6s}")
    for lang, r in rows.items():
        print(f"{lang:5s} {r['median_ms']:10.3f} {r['p95_ms']:8.3f} {r['mean_chars']:6.1f}")
    print(f"cold start (import + first zh sentence): {cold:.0f} ms")
    print(json.dumps({"frontend": rows, "cold_start_ms": cold, "target_median_ms": 2.0}))


if __name__ == "__main__":
    main()

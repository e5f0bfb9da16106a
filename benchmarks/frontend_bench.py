"""Text frontend speed: warm time per ~50-character sentence (zh, en, ja) and `gsvd g2p` cold start.

    .venv/bin/python benchmarks/frontend_bench.py [--cold-runs 7]

Warm: `phonemize.analyze` (normalization, segmentation, G2P, ids: everything the frontend does per
sentence except BERT) on 10 distinct sentences per language of about 50 characters, after one
warm-up pass, 300 calls per language; median and p95. Cold: a fresh `python -m gsvd g2p SENTENCE`
process per run (interpreter start, CLI import, lexicon open, first sentence), median and min
over --cold-runs runs per language, plus whether torch was imported on that path (-X importtime).
The machine is shared: the min is the least disturbed run, the median what a user sees under load,
and cpu the process's own user+system time (what it costs, whatever the load).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ZH = ["今天是2024年3月5日，天气很好，我们一起去公园散步吧，顺便买点水果回来。",
      "这个东西的价格是1,000元，比上个月贵了大约百分之十五，我觉得还可以接受。",
      "请在下午3:30之前把资料发到我的邮箱，谢谢你的帮忙，我们明天再联系好不好？",
      "我不知道他为什么还没有来，可能是路上堵车了吧，我们再等他十分钟好不好呢。",
      "春天来了，小孩儿们在院子里玩儿，笑声一阵接着一阵，老人们坐在树下聊天。",
      "他把书还给了图书馆，然后骑自行车去了学校，一路上看见了很多漂亮的花儿。",
      "会议约为两个小时，请大家准时参加，并且提前准备好各自部门的工作报告。",
      "这次考试他得了第一名，老师非常高兴地表扬了他，同学们也都为他感到骄傲。",
      "北京今天最高气温25℃，最低气温-3℃，空气质量良好，适合外出活动和锻炼。",
      "我们公司的电话是010-12345678，工作时间是上午9:00到下午6:00，欢迎来电。"]
EN = ["The meeting starts at 3:30 pm, so please be there on time, okay?",
      "It costs $12.50 and ships to 25 countries worldwide every single day.",
      "Dr. Smith said the GPU runs 40% faster than before on GPT-4 workloads.",
      "We walked 5 km along the river on a bright morning in the 1990s.",
      "Call 555-123-4567 if you have any questions about the 3-5 day delivery.",
      "She read the record of the live show to the board on 2024-03-05.",
      "The NASA team and the US Army met in St. Louis on Jan. 5 this year.",
      "Our Q3 revenue rose to €1.5 million, up from £900,000 a year ago.",
      "I will lead the project and present the results to the whole team.",
      "The kubernetes cluster handled 12,000 requests per second at peak."]
JA = ["今日は2024年3月5日です。天気がいいので、公園を散歩しましょう。",
      "この商品の価格は1,500円で、先月より15%高くなりました。",
      "会議は10:30から始まりますので、資料を準備しておいてください。",
      "駅まで歩いて5分ぐらいです。電車で東京まで1時間かかります。",
      "友達と一緒に3本の映画を見て、そのあと晩ご飯を食べました。",
      "明日の最高気温は25℃で、午後から雨が降るでしょう。",
      "電話番号は090-1234-5678です。いつでもご連絡ください。",
      "日本語の勉強を始めてから、もう2年になりました。毎日楽しいです。",
      "新幹線で大阪から東京まで、およそ2時間半かかります。",
      "子供たちは3～5人のグループに分かれて、図書館で本を読みました。"]


def _warm(sentences: list[str], lang: str, calls: int = 300) -> dict:
    from gsvd.engine.text.phonemize import analyze

    for s in sentences:
        analyze(s, lang)  # warm-up: dictionaries open, word caches filled for these words
    times = []
    for i in range(calls):
        s = sentences[i % len(sentences)]
        t0 = time.perf_counter()
        analyze(s, lang)
        times.append((time.perf_counter() - t0) * 1000)
    chars = statistics.mean(len(s) for s in sentences)
    median = statistics.median(times)
    return {"median_ms": median, "p95_ms": sorted(times)[int(0.95 * len(times))], "mean_chars": chars,
            "per_50_chars_ms": median * 50 / chars}


def _cold(sentence: str, runs: int) -> dict:
    gsvd = [sys.executable, "-m", "gsvd", "g2p", sentence]
    probe = subprocess.run([sys.executable, "-X", "importtime", *gsvd[1:]], capture_output=True, text=True, check=True)
    torch = any(line.rstrip().endswith("| torch") for line in probe.stderr.splitlines())  # also builds the cache
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(gsvd, capture_output=True, check=True)
        times.append((time.perf_counter() - t0) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "cpu_median_ms": statistics.median(cpu),
            "torch_imported": torch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cold-runs", type=int, default=7)
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)
    warm = {"zh": _warm(ZH, "zh"), "en": _warm(EN, "en"), "ja": _warm(JA, "ja")}
    cold = {lang: _cold(sents[0], args.cold_runs) for lang, sents in (("zh", ZH), ("en", EN), ("ja", JA))}
    targets = {"zh": 1.0, "en": 1.0, "ja": 3.0}
    print(f"{'lang':5s} {'median ms':>10s} {'p95 ms':>8s} {'chars':>6s} {'ms/50ch':>8s} {'target':>7s} | "
          f"{'g2p cold median':>15s} {'min':>6s} {'cpu':>6s} torch")
    for lang, r in warm.items():
        c = cold[lang]
        print(f"{lang:5s} {r['median_ms']:10.3f} {r['p95_ms']:8.3f} {r['mean_chars']:6.1f} {r['per_50_chars_ms']:8.3f} "
              f"{targets[lang]:7.1f} | {c['median_ms']:15.0f} {c['min_ms']:6.0f} {c['cpu_median_ms']:6.0f} "
              f"{c['torch_imported']}")
    ok = all(warm[k]["per_50_chars_ms"] <= targets[k] for k in warm) and all(
        c["min_ms"] <= 1000 and not c["torch_imported"] for c in cold.values())
    print(json.dumps({"warm": warm, "cold_g2p": cold, "target_warm_ms": targets, "target_cold_ms": 1000,
                      "meets_targets": ok, "cpus": os.cpu_count(), "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()

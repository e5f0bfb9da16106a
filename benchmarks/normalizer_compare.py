"""Offline text normalizers compared on the golden set: accuracy, cold start and time per sentence.

    .venv/bin/python benchmarks/normalizer_compare.py [--candidates gsvd,wetext,wetextprocessing,nemo]

Each candidate normalizes the golden cases' text (zh, en, ja); gsvd's frontend then reads the result
(its own rules find no digits left to change) and the case is judged exactly as in
tests/text/test_frontend.py (`text.golden.check`). "gsvd" is the frontend's own rules with no
normalizer in front. Per candidate and language, in a fresh process: cold start (import + building
the normalizer), median time of one normalize call, and exact cases on the number classes and on
all cases of the language. A candidate that is not installed or fails to build is reported as such.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "text" / "golden.tsv"
CANDIDATES = ("gsvd", "wetext", "wetextprocessing", "nemo")
LANGS = ("zh", "en", "ja")


def _build(candidate: str, lang: str, cache: Path):
    """-> a text -> text normalizer (None for gsvd's own rules)."""
    if candidate == "gsvd":
        return None
    if candidate == "wetext":
        from wetext import Normalizer

        return Normalizer(lang=lang, operator="tn").normalize
    if candidate == "wetextprocessing":
        if lang == "zh":
            from tn.chinese.normalizer import Normalizer
        elif lang == "en":
            from tn.english.normalizer import Normalizer
        else:
            from tn.japanese.normalizer import Normalizer
        return Normalizer().normalize
    if candidate == "nemo":
        from nemo_text_processing.text_normalization.normalize import Normalizer

        nemo = Normalizer(input_case="cased", lang=lang, cache_dir=str(cache))
        return lambda text: nemo.normalize(text, punct_post_process=True)
    raise ValueError(candidate)


def _own_normalizer(lang: str):
    """gsvd's normalization step alone (for timing; its readings come from the frontend itself)."""
    from gsvd.engine.text import en, ja, zh

    fn = {"zh": zh.normalize, "en": en.normalize, "ja": ja.normalize}[lang]
    fn("1,500")  # first call opens nothing heavy; counted in cold start
    return fn


def one(candidate: str, lang: str, cache: Path) -> dict:
    import logging

    logging.disable(logging.WARNING)
    from gsvd.engine.text import golden

    cases = [c for c in golden.load(GOLDEN) if c.lang == lang]
    t0 = time.perf_counter()
    try:
        norm = _build(candidate, lang, cache)
        timed = norm or _own_normalizer(lang)
    except Exception as exc:  # report any failure to install or build as a result, not a crash
        return {"error": f"{type(exc).__name__}: {str(exc)[:160]}"}
    cold = (time.perf_counter() - t0) * 1000
    times, exact, exact_num, n_num, misses = [], 0, 0, 0, []
    for case in cases:
        t = time.perf_counter()
        with contextlib.suppress(Exception):
            timed(case.text)
        times.append((time.perf_counter() - t) * 1000)
        try:
            ok, _ = golden.check(case, norm)
        except Exception:
            ok = False
        exact += ok
        if case.is_number:
            n_num += 1
            exact_num += ok
        if not ok and case.is_number and len(misses) < 5:
            misses.append(case.text)
    return {"cold_ms": cold, "median_normalize_ms": statistics.median(times) if times else 0.0,
            "number_exact": exact_num, "number_cases": n_num, "all_exact": exact, "all_cases": len(cases),
            "number_misses_sample": misses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--one", nargs=2, metavar=("CANDIDATE", "LANG"), help=argparse.SUPPRESS)
    ap.add_argument("--cache", default="/tmp/gsvd-nemo-cache", help="where NeMo keeps its compiled grammars")
    ap.add_argument("--timeout", type=int, default=900)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], Path(args.cache))))
        return
    rows: dict[str, dict[str, dict]] = {}
    for cand in args.candidates.split(","):
        for lang in LANGS:
            cmd = [sys.executable, __file__, "--one", cand, lang, "--cache", args.cache]
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
                res = json.loads(last) if last.startswith("{") else {"error": out.stderr.strip()[-160:]}
            except subprocess.TimeoutExpired:
                res = {"error": f"timed out after {args.timeout} s"}
            rows.setdefault(cand, {})[lang] = res
    print(f"{'candidate':18s} {'lang':4s} {'numbers exact':>14s} {'all exact':>11s} {'cold ms':>9s} {'ms/call':>8s}")
    for cand, by_lang in rows.items():
        for lang, r in by_lang.items():
            if "error" in r:
                print(f"{cand:18s} {lang:4s} error: {r['error']}")
                continue
            print(f"{cand:18s} {lang:4s} {r['number_exact']:>6d}/{r['number_cases']:<7d} "
                  f"{r['all_exact']:>5d}/{r['all_cases']:<5d} {r['cold_ms']:9.0f} {r['median_normalize_ms']:8.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

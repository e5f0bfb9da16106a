"""Which calls make the host wait for the GPU while streams are served (GPU).

    python3 -P benchmarks/probe_syncs.py [--streams 8]

Runs N concurrent streams through `Engine.stream` (the voice and sentences of `runtime_bench.py`) with
torch's CUDA sync debug mode on, and counts every synchronizing torch call (a blocking copy, `.item()`,
`.tolist()` of a CUDA tensor, ...) by the innermost gsvd source line that made it and by thread. Waits on
CUDA events (`Event.synchronize`: the GPT step's read-back, a chunk pass's audio) are not torch ops and are
not counted. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import traceback
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=8)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    import torch
    from runtime_bench import make_voice, run_level

    from gsvd.engine import Engine

    counts: Counter = Counter()
    lock = threading.Lock()

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchronizing" not in str(message):
            return
        ours = [f for f in traceback.extract_stack()[:-1] if "/engine/" in f.filename or "/daemon/" in f.filename]
        where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno} {ours[-1].name}" if ours else f"{filename}:{lineno}"
        with lock:
            counts[(threading.current_thread().name, where)] += 1

    voice = make_voice(Path(tempfile.mkdtemp()))
    with Engine(device="cuda", max_streams=max(8, args.streams), queue_limit=1024) as eng:
        eng.load_voice(voice)
        run_level(eng, 1)  # warm-up outside the count
        warnings.showwarning = record
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        res = run_level(eng, args.streams)
        torch.cuda.set_sync_debug_mode("default")
    rows = [{"thread": t, "where": w, "syncs": n} for (t, w), n in counts.most_common()]
    print(f"{'syncs':>6s}  {'thread':24s} where")
    for r in rows:
        print(f"{r['syncs']:6d}  {r['thread']:24s} {r['where']}")
    sched = sum(r["syncs"] for r in rows if r["thread"] == "gsvd-scheduler")
    print(json.dumps({"streams": args.streams, "ttfa_p50_ms": res["ttfa_p50_ms"], "scheduler_syncs": sched,
                      "all_syncs": sum(counts.values()), "rows": rows[:30]}))


if __name__ == "__main__":
    main()

"""Condense `probe_sched_phases.py` output into one line per level (stdin -> stdout); other lines pass through.

    python3 -P benchmarks/probe_sched_phases.py ... | python3 benchmarks/summarize_probe.py
"""

from __future__ import annotations

import json
import sys


def line(row: dict) -> str:
    phases = row["phases"]

    def wall(phase: str) -> float:
        return phases.get(phase, {}).get("wall_ms", 0)

    return (f"{row['level']}: ttfa {row['ttfa_p50_ms']} / {row['ttfa_p95_ms']} ms, rtf {row['rtf_p50']}, underruns "
            f"{row['underruns']} first late {row['first_late_chunk']} by {row['late_ms_p50']} ms, gpu busy "
            f"{row['gpu_busy_pct']}%, passes {row['passes']} x {row['pass_rows_mean']} rows, ticks "
            f"{phases.get('tick', {}).get('calls', 0)}, ms: launch {wall('_launch')} collect {wall('_collect')} "
            f"execute {wall('execute')} admit {wall('_admit')}, wall {row['wall_s']:.2f} s")


def main() -> None:
    for text in sys.stdin:
        try:
            row = json.loads(text)
        except ValueError:
            print(text, end="", flush=True)
            continue
        if isinstance(row, dict) and "level" in row:
            print(line(row), flush=True)


if __name__ == "__main__":
    main()

"""The board journal's cost (SPEC.md §6.14): one relayed round (3 nodes, all clients and
members, tests/durable_round.py: host + node agents with their node state files) with
the fsync'ed journal against the same round without a journal, median of repeats, the
modes interleaved in the same run (one warm-up round first, for the JIT kernels).

    PYTHONPATH=. .venv/bin/python bench/durable.py [--repeats 3]

Prints one JSON line per mode in the bench/_common.py format: ``ours_s`` the journaled
round, ``baseline`` the round without journal, ``overhead`` = ours_s / baseline_s - 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import durable_round  # noqa: E402
from _common import emit  # noqa: E402

MODES = {"fsync journal": [], "journal, no fsync": ["--no-fsync"], "no journal": ["--no-journal"]}


def one_round(flags: list[str]) -> float:
    base = Path(tempfile.mkdtemp(prefix="pvss-durable-bench-"))
    try:
        durable_round.main([str(base), *flags])
        return float(json.loads((base / "result.json").read_text())["seconds"])
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    one_round([])  # warm-up
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(args.repeats):
        for mode, flags in MODES.items():
            times[mode].append(one_round(flags))
    baseline = statistics.median(times["no journal"])
    for mode in ("fsync journal", "journal, no fsync"):
        ours = statistics.median(times[mode])
        emit(
            {
                "bench": "round_journal",
                "params": {
                    "mode": mode,
                    "nodes": durable_round.NODES,
                    "committee": durable_round.COMMITTEE,
                    "dim": durable_round.DIM,
                    "repeats": args.repeats,
                },
                "ours_s": ours,
                "baseline": "the same round without journal",
                "baseline_s": baseline,
                "speedup": baseline / ours,
                "overhead": ours / baseline - 1.0,
                "runs_s": {m: [round(t, 4) for t in ts] for m, ts in times.items()},
            }
        )


if __name__ == "__main__":
    main()

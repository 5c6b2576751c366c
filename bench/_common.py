"""Shared helpers of the benchmarks in bench/.

Every benchmark line is one JSON object with at least

    bench       what was measured (e.g. "mask_expansion")
    params      dict of the parameters (sizes, bit widths, backends)
    ours_s      our time in seconds (median of repeats)
    baseline    what we compare against (a library function, or a formula)
    baseline_s  its time in seconds, measured in the same run
    speedup     baseline_s / ours_s

plus any extra fields (GB/s, targets, ...). :func:`emit` prints the line and appends it
to ``bench/results/<name>.jsonl``, ``<name>`` being the running script's file name
(``masking`` for bench/masking.py) unless given.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REQUIRED = ("bench", "params", "ours_s", "baseline", "baseline_s", "speedup")


def median_time(
    fn: Callable[[], object], repeats: int = 5, warmup: int = 1, inner: int = 1
) -> float:
    """Median over ``repeats`` of the mean wall time of ``inner`` calls of fn, after
    ``warmup`` untimed calls (JIT, page faults of first-touched memory, caches)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def paired_medians(
    fn_a: Callable[[], object], fn_b: Callable[[], object], repeats: int = 5, warmup: int = 1
) -> tuple[float, float]:
    """Medians of fn_a and fn_b timed alternately (a, b, a, b, ...) after ``warmup``
    untimed calls of each, so that both see the same machine noise."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    ta, tb = [], []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn_a()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fn_b()
        tb.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def _script_name() -> str:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else "")
    return Path(path).stem or "bench"


def emit(record: dict, name: str | None = None) -> dict:
    """Print ``record`` as one JSON line and append it to bench/results/<name>.jsonl.

    Adds ``ts`` (UTC time), ``host``, ``cpus`` and ``load1`` (1-minute load average,
    to tell a timing taken on a busy machine) if absent; raises KeyError naming any missing
    field of the shared format."""
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise KeyError(f"bench record lacks required field(s) {missing}: {record}")
    rec = dict(record)
    rec.setdefault("ts", datetime.now(UTC).isoformat(timespec="seconds"))
    rec.setdefault("host", f"{platform.machine()} {platform.processor() or ''}".strip())
    rec.setdefault("cpus", os.cpu_count())
    rec.setdefault("load1", round(os.getloadavg()[0], 2))  # a busy machine skews timings
    line = json.dumps(rec, sort_keys=False, default=float)
    print(line, flush=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(RESULTS_DIR / f"{name or _script_name()}.jsonl", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    return rec

"""Whole rounds on the memory board: per-role seconds and bytes (SPEC.md §6).

For each (n, d, dropout) it runs ``--repeats`` rounds and reports medians, one JSON
line per role in the shared bench format. The baseline here is plain, unprotected
FedAvg on the same data in the same run: a client serialises its float32 update, the
server sums the float vectors. (Flower's SecAgg+ side by side is bench/flower.py's job.)

    .venv/bin/python bench/round.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit  # noqa: E402

from secagg.simulate import SimParams, simulate  # noqa: E402


def regular_degree(n: int) -> int:
    """SecAgg+-style sparse graph: about 2*log2(n) neighbours (even, < n)."""
    k = min(n - 1, 2 * math.ceil(math.log2(n)))
    if (k * n) % 2:
        k -= 1
    return k


def plain_times(n: int, d: int, rng: np.random.Generator, repeats: int) -> tuple[float, float]:
    """Unprotected FedAvg: client = serialise float32 update; server = weighted sum."""
    updates = [rng.standard_normal(d).astype(np.float32) for _ in range(n)]
    weights = rng.integers(1, 11, n).astype(np.float32)
    client, server = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        blobs = [u.tobytes() for u in updates]
        client.append((time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        acc = np.zeros(d, dtype=np.float64)
        for w, b in zip(weights, blobs, strict=False):
            acc += w * np.frombuffer(b, dtype=np.float32)
        acc /= weights.sum()
        server.append(time.perf_counter() - t0)
    return statistics.median(client), statistics.median(server)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="n in {10, 50}, d in {1e4, 1e5}, dropout in {0, 0.1}"
    )
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--committee", type=int, default=10)
    ap.add_argument("--threshold", type=int, default=4)
    args = ap.parse_args()
    ns = [10, 50] if args.quick else [10, 50, 100]
    ds = [10**4, 10**5] if args.quick else [10**4, 10**5, 10**6]
    drops = [0.0, 0.1] if args.quick else [0.0, 0.1, 0.3]
    repeats = args.repeats or (1 if args.quick else 3)
    rng = np.random.default_rng(0)
    for n in ns:
        m = min(args.committee, n)
        t = min(args.threshold, (m - 1) // 2)
        graph = "complete" if n <= 10 else f"regular:{regular_degree(n)}"
        for d in ds:
            plain_client, plain_server = plain_times(n, d, rng, 3)
            for drop in drops:
                runs = []
                for rep in range(repeats):
                    params = SimParams(
                        clients=n,
                        committee=m,
                        threshold=t,
                        dim=d,
                        dropout=drop,
                        dropout_phase="upload",
                        graph=graph,
                        quant_bits=16,
                        max_weight=10,
                        seed=rep,
                    )
                    res = simulate(params)
                    if not res.verified:
                        raise SystemExit(
                            f"round n={n} d={d} dropout={drop} did not verify: {res.findings}"
                        )
                    runs.append(res)
                sec = {k: statistics.median(r.seconds[k] for r in runs) for k in runs[0].seconds}
                common = {
                    "params": {
                        "n": n,
                        "m": m,
                        "t": t,
                        "d": d,
                        "dropout": drop,
                        "graph": graph,
                        "bits": runs[0].params["bits"],
                        "repeats": repeats,
                    },
                    "baseline": "plain",
                    "seconds": sec,
                    "bytes_per_client": runs[0].bytes_per_client,
                    "masked_bytes_per_client": runs[0].masked_bytes_per_client,
                    "bytes_per_coordinate": runs[0].masked_bytes_per_client / (d + 1),
                    "max_abs_error": max(r.max_abs_error for r in runs),
                    "error_bound": runs[0].error_bound,
                    "included": runs[0].included,
                }
                emit(
                    {
                        "bench": "round_client",
                        "ours_s": sec["client_mean"],
                        "baseline_s": plain_client,
                        "speedup": plain_client / sec["client_mean"],
                        **common,
                    },
                    name="round",
                )
                emit(
                    {
                        "bench": "round_aggregator",
                        "ours_s": sec["aggregator"],
                        "baseline_s": plain_server,
                        "speedup": plain_server / sec["aggregator"],
                        **common,
                    },
                    name="round",
                )
                emit(
                    {
                        "bench": "round_verifier",
                        "ours_s": sec["verifier"],
                        "baseline": "our_aggregator",
                        "baseline_s": sec["aggregator"],
                        "speedup": sec["aggregator"] / sec["verifier"],
                        **{k: v for k, v in common.items() if k != "baseline"},
                    },
                    name="round",
                )


if __name__ == "__main__":
    main()

"""Whole rounds side by side: ours, Flower's SecAgg+ and plain FedAvg (SPEC.md §6).

For every (n, d, dropout) of the grid, in one process and alternately (bench/flower.py
has the details of each side): our round on the memory board, Flower's SecAgg+ driven
through Flower's own ``SecAggPlusWorkflow`` and ``secaggplus_mod``, and plain unprotected
summation; for n <= 10 (dropout 0.1) our round also runs on the embedded EVM chain
(``params.board: evm``; the chain's own time is the ``board`` entry, not a role's).
Per-role seconds are medians of ``--repeats`` rounds; one JSON line per (role, baseline)
goes to bench/results/round.jsonl:

* ``round_client`` / ``round_aggregator`` against ``flower_secaggplus`` and ``plain``;
* ``round_verifier`` (replays every proof) and ``round_verifier_chain`` (trusts the
  proofs a full-mode contract executed, SPEC.md §6.8) against ``our_aggregator``.

Grid (the issue's): n in {10, 50, 100}, d in {10^4, 10^5, 10^6}, dropout in
{0, 0.1, 0.3}; committee min(10, n), threshold 4. ``--quick`` is n in {10, 50},
d in {10^4, 10^5}, dropout in {0, 0.1}, 1 repeat (a smoke run).

    .venv/bin/python bench/round.py [--quick] [--repeats N] [--ns 10,50] [--ds 1e4]
        [--dropouts 0.1] [--evm-max-n 10] [--evm-dropouts 0.1] [--target-repeats N]
        [--backend cupy]

Larger configurations (the GPU machine): ``--ns 1000 --ds 1e7 --dropouts 0.1
--repeats 1 --evm-max-n 0 --backend cupy``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flower import compare  # noqa: E402

#: the configuration the issue's targets are stated at
TARGET = (100, 10**6, 0.1)


def _csv(text: str | None, cast, default: list) -> list:  # noqa: ANN001
    return (
        [cast(float(x)) if cast is int else cast(x) for x in text.split(",")] if text else default
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grid, 1 repeat")
    ap.add_argument("--repeats", type=int, default=None, help="rounds per configuration (3)")
    ap.add_argument(
        "--target-repeats",
        type=int,
        default=None,
        help="rounds for the target configuration n=100, d=1e6, dropout 0.1 (default: --repeats)",
    )
    ap.add_argument("--ns", default=None, help="comma-separated n (overrides the grid)")
    ap.add_argument("--ds", default=None, help="comma-separated d (overrides the grid)")
    ap.add_argument("--dropouts", default=None, help="comma-separated fractions")
    ap.add_argument(
        "--evm-max-n", type=int, default=10, help="also run ours on the EVM board for n <= this"
    )
    ap.add_argument(
        "--evm-dropouts", default="0.1", help="dropouts of the EVM-board runs (comma-separated)"
    )
    ap.add_argument(
        "--backend",
        default=None,
        help="our masking backend (numpy, numba, cupy; default: the fastest available)",
    )
    args = ap.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    ns = _csv(args.ns, int, [10, 50] if args.quick else [10, 50, 100])
    ds = _csv(args.ds, int, [10**4, 10**5] if args.quick else [10**4, 10**5, 10**6])
    drops = _csv(args.dropouts, float, [0.0, 0.1] if args.quick else [0.0, 0.1, 0.3])
    evm_drops = _csv(args.evm_dropouts, float, [])
    repeats = args.repeats or (1 if args.quick else 3)
    target_repeats = args.target_repeats or repeats
    compare(5, 1000, 0.0, 1, emit_name="")  # warm-up (imports, JIT, first touch): not recorded
    t_start = time.perf_counter()
    total = len(ns) * len(ds) * len(drops)
    done = 0
    for n in ns:
        for d in ds:
            for drop in drops:
                reps = target_repeats if (n, d, drop) == TARGET else repeats
                t0 = time.perf_counter()
                compare(n, d, drop, reps, backend=args.backend)
                if n <= args.evm_max_n and drop in evm_drops:
                    compare(n, d, drop, reps, board="evm", backend=args.backend)
                done += 1
                now = time.perf_counter()
                print(
                    f"# [{done}/{total}] n={n} d={d} dropout={drop} repeats={reps}: "
                    f"{now - t0:.0f} s (total {now - t_start:.0f} s)",
                    file=sys.stderr,
                )


if __name__ == "__main__":
    main()

"""A round with distributed DP against the same round without it (SPEC.md §10).

For every (n, d) of the grid, in one process and alternately, ``secagg.simulate`` runs
the same round (same seed, committee, dropouts: none) twice: with DP (clip to L2 norm
1, randomised Hadamard rotation, conditional rounding, discrete Gaussian noise
calibrated for (epsilon, delta) over ``--dp-rounds`` rounds at the default minimum
included set) and without (the named baseline: the plain quantizer path, q = 16 bits).
Medians over ``--repeats`` rounds; one JSON line per (role, n, d) goes to
bench/results/dp.jsonl:

* ``dp_client``: a client's protocol seconds (register + deal + privatize/quantize + mask);
* ``dp_aggregator``: the aggregator's seconds (unmask + postprocess / dequantize);

each with ``error_dp`` (max |noisy mean - mean of the clipped updates|, median over
repeats), ``error_plain`` (the baseline's quantization error), ``noise_stddev_mean`` (the
stated per-coordinate noise of the mean), the modulus bits of both and the DP report.

    .venv/bin/python bench/dp.py [--ns 10,20] [--ds 1e4,1e5] [--repeats 3]
        [--epsilon 4] [--delta 1e-5] [--dp-rounds 10] [--mechanism ddg]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit  # noqa: E402

from secagg.simulate import SimParams, simulate  # noqa: E402


def _csv(text: str, cast) -> list:  # noqa: ANN001
    return [cast(float(x)) for x in text.split(",")]


def compare(n: int, d: int, repeats: int, eps: float, delta: float, rounds: int, mech: str):  # noqa: ANN201
    base = SimParams(clients=n, committee=5, threshold=2, dim=d, clip=1.0, seed=7)
    dp = SimParams(
        **{
            **base.__dict__,
            "dp_epsilon": eps,
            "dp_delta": delta,
            "dp_rounds": rounds,
            "dp_mechanism": mech,
        }
    )
    runs: dict[str, list] = {"dp": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="bench-dp-") as tmp:
        for r in range(repeats):
            for name, params in (("dp", dp), ("plain", base)):
                res = simulate(params, Path(tmp) / f"{name}-{r}")
                if not res.verified:
                    raise SystemExit(f"{name} round n={n} d={d} did not verify: {res.findings}")
                runs[name].append(res)
    med = {
        name: {
            "client": statistics.median(x.seconds["client_mean"] for x in rs),
            "aggregator": statistics.median(x.seconds["aggregator"] for x in rs),
            "error": statistics.median(x.max_abs_error for x in rs),
        }
        for name, rs in runs.items()
    }
    one = runs["dp"][0]
    report = one.dp
    assert report is not None
    # stated noise of the mean: the sum's stddev at min_clients, scaled to |U|, / |U|
    min_clients = dp.dp_config().min_clients  # type: ignore[union-attr]
    sd_mean = report["noise_stddev_sum"] * math.sqrt(one.included / min_clients) / one.included
    params = {
        "n": n,
        "d": d,
        "committee": 5,
        "threshold": 2,
        "repeats": repeats,
        "bits_dp": one.params["bits"],
        "bits_plain": runs["plain"][0].params["bits"],
        "masked_bytes_dp": one.masked_bytes_per_client,
        "masked_bytes_plain": runs["plain"][0].masked_bytes_per_client,
    }
    extra = {
        "error_dp": med["dp"]["error"],
        "error_plain": med["plain"]["error"],
        "error_bound_dp": one.error_bound,
        "noise_stddev_mean": sd_mean,
        "dp": report,
    }
    for role in ("client", "aggregator"):
        ours, theirs = med["dp"][role], med["plain"][role]
        emit(
            {
                "bench": f"dp_{role}",
                "params": params,
                "ours_s": ours,
                "baseline": "the same round without DP (quantizer path, q=16)",
                "baseline_s": theirs,
                "speedup": theirs / ours if ours > 0 else math.inf,
                "overhead_s": ours - theirs,
                **extra,
            }
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="10,20")
    ap.add_argument("--ds", default="1e4,1e5")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epsilon", type=float, default=4.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--dp-rounds", type=int, default=10)
    ap.add_argument("--mechanism", default="ddg", choices=["ddg", "skellam"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dp-warmup-") as tmp:  # JIT, imports
        for eps in (args.epsilon, None):
            warm = SimParams(clients=5, committee=3, threshold=1, dim=256, dp_epsilon=eps)
            simulate(warm, Path(tmp) / str(eps))
    for n in _csv(args.ns, int):
        for d in _csv(args.ds, int):
            compare(n, d, args.repeats, args.epsilon, args.delta, args.dp_rounds, args.mechanism)


if __name__ == "__main__":
    main()

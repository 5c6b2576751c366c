"""Distributed DP (SPEC.md §10): round timings, noise overhead, accuracy vs epsilon.

Three parts (``--parts``, all by default; ``make bench`` runs the default), every JSON
line in the shared format of bench/_common.py, appended to bench/results/dp.jsonl:

1. ``timing``: for every (n, d) of the grid, in one process and alternately,
   ``secagg.simulate`` runs the same round (same seed, committee, dropouts: none) twice:
   with DP (clip to L2 norm 1, randomised Hadamard rotation, conditional rounding,
   discrete Gaussian noise calibrated for (epsilon, delta) over ``--dp-rounds`` rounds at
   the default minimum included set) and without (the named baseline: the plain
   quantizer path, q = 16 bits). Medians over ``--repeats`` rounds; one line per
   (role, n, d):

   * ``dp_client``: a client's protocol seconds (register + deal + privatize/quantize + mask);
   * ``dp_aggregator``: the aggregator's seconds (unmask + postprocess / dequantize);

   each with ``error_dp`` (max |noisy mean - mean of the clipped updates|, median over
   repeats), ``error_plain`` (the baseline's quantization error), ``noise_stddev_mean``
   (the stated per-coordinate noise of the mean), the modulus bits of both and the DP
   report.

2. ``noise``: ``dp_noise_overhead`` — one client's ``secagg.dp.privatize`` (clip + rotate
   + scale + conditional rounding + exact discrete Gaussian noise) of a d = ``--noise-d``
   (10^6) update, against the baseline: expanding ONE mask of d coordinates
   (``secagg.prg.mask``, numba backend, at the round's modulus ``overflow_bits``), timed
   alternately in the same run, medians of ``--noise-repeats``. Extra fields: the parts of
   privatize (rotate / round / noise), one mask of the padded length d' + 1 that a DP
   round really masks, and ``mask_and_pack`` with one seed (the self mask) at d' + 1.
   A client of a complete-graph round expands n such masks (self + n - 1 pairs).

3. ``accuracy``: ``dp_accuracy`` — the digits demo (``fl.demo.run_demo``: the deployed
   round, RoundHost + NodeAgent, memory board, every round verified; no shortcut) of
   ``--demo-clients`` (20) clients over ``--demo-rounds`` (5) rounds for each epsilon of
   ``--epsilons`` (default 1,2,4,8,16,32,64,inf: the issue's 1,2,4,8,inf plus 16-64,
   where the curve recovers; inf = the same secure run without DP, the quantizer path),
   with the plain non-private FedAvg of the same run beside. One line per epsilon:
   ``accuracy_dp`` (final test accuracy of the secure run at that epsilon),
   ``accuracy_plain_fedavg``, ``accuracy_secure_no_dp`` (the inf run), per-round
   accuracies, the DP report; ``ours_s`` = the run's wall seconds, baseline = the inf run
   (the same demo without DP). Writes bench/results/dp_accuracy_vs_eps.png. One seed:
   with 20 clients the noise of the mean is large and the curve is noisy.

    .venv/bin/python bench/dp.py [--parts timing,noise,accuracy] [--quick]
        [--ns 10,20] [--ds 1e4,1e5] [--repeats 3] [--epsilon 4] [--delta 1e-5]
        [--dp-rounds 10] [--mechanism ddg] [--noise-d 1e6] [--noise-repeats 5]
        [--epsilons 1,2,4,8,16,32,64,inf] [--demo-clients 20] [--demo-rounds 5] [--demo-seed 0]

``--quick`` (a smoke test, minutes less): timing n = 10, d = 10^4, 1 repeat; noise at
d = 10^5, 3 repeats; accuracy at epsilon 1, 8, inf over 2 rounds of 10 clients, and the
plot goes to $TMPDIR/dp_accuracy_vs_eps_quick.png (the evidence PNG is left alone). Every line
records ``"quick": true`` in its params.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# the demo's torch training and the numba kernels share the cores (see fl/demo.py)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from _common import RESULTS_DIR, emit, median_time, paired_medians  # noqa: E402

from secagg.simulate import SimParams, simulate  # noqa: E402

PARTS = ("timing", "noise", "accuracy")


def _csv(text: str, cast) -> list:  # noqa: ANN001
    return [cast(float(x)) for x in text.split(",")]


def compare(
    n: int,
    d: int,
    repeats: int,
    eps: float,
    delta: float,
    rounds: int,
    mech: str,
    quick: bool = False,
):  # noqa: ANN201
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
    if quick:
        params["quick"] = True
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


# ---------------------------------------------------------------------------------------
# noise overhead at large d
# ---------------------------------------------------------------------------------------


def noise_overhead(args: argparse.Namespace, d: int, repeats: int, quick: bool) -> dict:
    """privatize (one client) vs one mask expansion of d coordinates, same run."""
    from secagg import dp as dpm  # noqa: PLC0415
    from secagg import prg  # noqa: PLC0415
    from secagg.masking import mask_and_pack  # noqa: PLC0415

    n = 10
    sim = SimParams(
        clients=n,
        committee=5,
        threshold=2,
        dim=d,
        clip=1.0,
        dp_epsilon=args.epsilon,
        dp_delta=args.delta,
        dp_rounds=args.dp_rounds,
        dp_mechanism=args.mechanism,
    )
    cfg = sim.dp_config()
    assert cfg is not None
    bits = dpm.overflow_bits(cfg, n)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(d)
    seed, rot = rng.bytes(32), rng.bytes(32)
    mask_seed = rng.bytes(32)
    prg.warmup()
    priv_s, mask_s = paired_medians(
        lambda: dpm.privatize(x, cfg, seed, rot),
        lambda: prg.mask(mask_seed, d, bits, "numba"),
        repeats=repeats,
    )
    # the parts of privatize, each alone
    rotate_s = median_time(
        lambda: dpm.rotate(dpm.clip_l2(x, cfg.l2_clip), rot) * cfg.scale, repeats=repeats
    )
    y = dpm.rotate(dpm.clip_l2(x, cfg.l2_clip), rot) * cfg.scale
    round_s = median_time(
        lambda: dpm.conditional_round(y, cfg.l2_bound, dpm._Stream(seed, b"round")),
        repeats=repeats,
    )
    if cfg.mechanism == "ddg":
        noise_s = median_time(
            lambda: dpm.discrete_gaussian(cfg.padded_dim, cfg.noise, dpm._Stream(seed, b"ddg")),
            repeats=repeats,
        )
    else:
        noise_s = median_time(lambda: dpm.skellam(cfg.padded_dim, cfg.noise, seed), repeats=repeats)
    length = cfg.padded_dim + 1  # what a DP round masks: d' values + the weight
    mask_padded_s = median_time(lambda: prg.mask(mask_seed, length, bits, "numba"), repeats=repeats)
    q = np.append(dpm.to_ring(dpm.privatize(x, cfg, seed, rot), bits), np.uint64(1))
    pack_s = median_time(lambda: mask_and_pack(q, mask_seed, [], bits, "numba"), repeats=repeats)
    params = {
        "d": d,
        "padded_d": cfg.padded_dim,
        "n": n,
        "bits": bits,
        "mechanism": cfg.mechanism,
        "epsilon": cfg.epsilon,
        "delta": cfg.delta,
        "rounds": cfg.rounds,
        "min_clients": cfg.min_clients,
        "noise": cfg.noise,
        "repeats": repeats,
        "mask_backend": "numba",
        "threads": int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1)),
    }
    if quick:
        params["quick"] = True
    return emit(
        {
            "bench": "dp_noise_overhead",
            "params": params,
            "ours_s": priv_s,
            "baseline": f"expanding one mask of d coordinates (secagg.prg.mask, {bits} bits)",
            "baseline_s": mask_s,
            "speedup": mask_s / priv_s if priv_s > 0 else math.inf,
            "ratio_privatize_to_mask": priv_s / mask_s if mask_s > 0 else math.inf,
            "rotate_s": rotate_s,
            "round_s": round_s,
            "noise_s": noise_s,
            "mask_padded_s": mask_padded_s,
            "mask_and_pack_one_seed_s": pack_s,
            "masks_per_client_complete_graph": n,
        }
    )


# ---------------------------------------------------------------------------------------
# accuracy vs epsilon on the digits demo
# ---------------------------------------------------------------------------------------


def accuracy_sweep(
    args: argparse.Namespace, epsilons: list[float], clients: int, rounds: int, quick: bool
) -> list[dict]:
    """run_demo once per epsilon (inf first: it is the baseline of the others)."""
    from fl.demo import DemoParams, run_demo  # noqa: PLC0415

    order = sorted(epsilons, key=lambda e: (not math.isinf(e), -e))
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-dp-demo-") as tmp:
        for eps in (None, 8.0):  # untimed warm-up of both paths (JIT, imports, caches)
            warm = DemoParams(
                rounds=1,
                clients=5,
                committee=3,
                threshold=1,
                board="memory",
                out=str(Path(tmp) / f"warm-{eps}"),
                dp_epsilon=eps,
            )
            run_demo(warm, say=lambda _m: None)
        for eps in order:
            p = DemoParams(
                rounds=rounds,
                clients=clients,
                board="memory",
                seed=args.demo_seed,
                out=str(Path(tmp) / f"eps-{eps}"),
                dp_epsilon=None if math.isinf(eps) else float(eps),
                dp_delta=args.delta,
                dp_clip=args.dp_clip,
                dp_mechanism=args.mechanism,
            )
            t0 = time.perf_counter()
            res = run_demo(p, say=lambda _m: None)
            wall = time.perf_counter() - t0
            print(
                f"# epsilon={eps}: secure {res.accuracy_secure:.3f}  plain FedAvg "
                f"{res.accuracy_plain:.3f}  ({wall:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            if not res.all_verified:
                raise SystemExit(f"demo at epsilon={eps}: a round did not verify")
            results[eps] = (p, res, wall)
    inf_runs = [v for e, v in results.items() if math.isinf(e)]
    base = inf_runs[0] if inf_runs else None
    lines = []
    for eps in sorted(results, key=lambda e: (math.isinf(e), e)):
        p, res, wall = results[eps]
        params = {
            "epsilon": "inf" if math.isinf(eps) else eps,
            "clients": clients,
            "rounds": rounds,
            "committee": p.committee,
            "threshold": p.threshold,
            "dropout": p.dropout,
            "alpha": p.alpha,
            "epochs": p.epochs,
            "lr": p.lr,
            "hidden": p.hidden,
            "dp_delta": p.dp_delta,
            "dp_clip": p.dp_clip,
            "mechanism": p.dp_mechanism if not math.isinf(eps) else "none",
            "board": p.board,
            "seed": p.seed,
            "protocol": "fl.demo.run_demo: the full verified round (RoundHost + NodeAgent, "
            "memory board), no shortcut",
        }
        if quick:
            params["quick"] = True
        included = [len(r["included"]) for r in res.per_round if "included" in r]
        rec = {
            "bench": "dp_accuracy",
            "params": params,
            "ours_s": wall,
            "baseline": "the same demo run without DP (epsilon = inf: secure aggregation, "
            "quantizer path)",
            "baseline_s": base[2] if base else None,
            "speedup": (base[2] / wall) if base and wall > 0 else None,
            "accuracy_dp": res.accuracy_secure,
            "accuracy_plain_fedavg": res.accuracy_plain,
            "accuracy_secure_no_dp": base[1].accuracy_secure if base else None,
            "accuracy_per_round": [r.get("accuracy_secure") for r in res.per_round],
            "accuracy_plain_per_round": [r.get("accuracy_plain") for r in res.per_round],
            "included_per_round": included,
            "failed_rounds": res.failed_rounds,
            "all_verified": res.all_verified,
            "dp": res.dp,
        }
        if res.dp is not None and included:
            # stated per-coordinate noise of the mean update at the median |U|
            u = statistics.median(included)
            rec["noise_stddev_mean"] = (
                res.dp["noise_stddev_sum"] * math.sqrt(u / max(1, _min_clients(clients))) / u
            )
        lines.append(emit(rec))
    return lines


def _min_clients(n: int) -> int:
    from secagg.config import default_min_included  # noqa: PLC0415

    return default_min_included(n)


def plot(lines: list[dict], path: Path) -> Path:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    finite = [r for r in lines if r["params"]["epsilon"] != "inf"]
    inf = [r for r in lines if r["params"]["epsilon"] == "inf"]
    p = lines[0]["params"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xs = [r["params"]["epsilon"] for r in finite]
    ax.plot(xs, [r["accuracy_dp"] for r in finite], "o-", label="secure + distributed DP")
    ticks = list(xs)
    labels = [f"{x:g}" for x in xs]
    if inf:
        x_inf = (max(xs) * 2) if xs else 1.0
        ax.plot([x_inf], [inf[0]["accuracy_dp"]], "s", color="C0", label="secure, no DP (ε = ∞)")
        ticks.append(x_inf)
        labels.append("∞")
    ax.axhline(
        lines[0]["accuracy_plain_fedavg"], color="C1", ls="--", label="plain FedAvg (non-private)"
    )
    ax.axhline(0.1, color="grey", ls=":", label="chance (10 classes)")
    ax.set_xscale("log")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    ax.minorticks_off()
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"ε of the whole run (δ = {p['dp_delta']:g}, {p['rounds']} rounds)")
    ax.set_ylabel("final test accuracy")
    ax.set_title(
        f"digits, {p['clients']} clients, {p['dropout']:.0%} dropouts/round, "
        f"L2 clip {p['dp_clip']:g}, {p['mechanism'] if finite else ''}".rstrip(", "),
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="center left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"# wrote {path}", file=sys.stderr)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS), help="timing,noise,accuracy")
    ap.add_argument("--quick", action="store_true", help="a smoke-test variant (see --help)")
    ap.add_argument("--ns", default=None, help="timing: clients (default 10,20)")
    ap.add_argument("--ds", default=None, help="timing: dimensions (default 1e4,1e5)")
    ap.add_argument("--repeats", type=int, default=None, help="timing repeats (default 3)")
    ap.add_argument("--epsilon", type=float, default=4.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--dp-rounds", type=int, default=10)
    ap.add_argument("--mechanism", default="ddg", choices=["ddg", "skellam"])
    ap.add_argument("--noise-d", type=float, default=None, help="noise: d (default 1e6)")
    ap.add_argument("--noise-repeats", type=int, default=None, help="default 5")
    ap.add_argument("--epsilons", default=None, help="accuracy: default 1,2,4,8,16,32,64,inf")
    ap.add_argument("--demo-clients", type=int, default=None, help="default 20 (--quick: 10)")
    ap.add_argument("--demo-rounds", type=int, default=None, help="default 5")
    ap.add_argument("--demo-seed", type=int, default=0)
    ap.add_argument("--dp-clip", type=float, default=1.0, help="accuracy: L2 clip of an update")
    args = ap.parse_args()
    q = args.quick
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    bad = [x for x in parts if x not in PARTS]
    if bad:
        ap.error(f"--parts: unknown {bad}; choose from {PARTS}")
    t_start = time.perf_counter()
    if "timing" in parts:
        ns = _csv(args.ns or ("10" if q else "10,20"), int)
        ds = _csv(args.ds or ("1e4" if q else "1e4,1e5"), int)
        repeats = args.repeats or (1 if q else 3)
        with tempfile.TemporaryDirectory(prefix="bench-dp-warmup-") as tmp:  # JIT, imports
            for eps in (args.epsilon, None):
                warm = SimParams(clients=5, committee=3, threshold=1, dim=256, dp_epsilon=eps)
                simulate(warm, Path(tmp) / str(eps))
        for n in ns:
            for d in ds:
                compare(n, d, repeats, args.epsilon, args.delta, args.dp_rounds, args.mechanism, q)
    if "noise" in parts:
        d = int(args.noise_d or (1e5 if q else 1e6))
        noise_overhead(args, d, args.noise_repeats or (3 if q else 5), q)
    if "accuracy" in parts:
        eps_text = args.epsilons or ("1,8,inf" if q else "1,2,4,8,16,32,64,inf")
        epsilons = [float(x) for x in eps_text.split(",")]
        clients = args.demo_clients or (10 if q else 20)
        rounds = args.demo_rounds or (2 if q else 5)
        lines = accuracy_sweep(args, epsilons, clients, rounds, q)
        # --quick leaves the evidence PNG alone: its plot goes to the temp directory
        where = Path(tempfile.gettempdir()) / "dp_accuracy_vs_eps_quick.png" if q else None
        plot(lines, where or RESULTS_DIR / "dp_accuracy_vs_eps.png")
    print(f"# bench/dp.py: {time.perf_counter() - t_start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

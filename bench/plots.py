"""PNG plots of bench/results/round.jsonl (written by bench/round.py): ours (memory
board) vs Flower's SecAgg+ (and plain summation) per role.

    .venv/bin/python bench/plots.py [--jsonl bench/results/round.jsonl] [--dropout 0.1]

Writes into bench/results/:

* ``round_time_vs_d.png``  client and aggregator seconds against d, one line per n
  and side, at the chosen dropout;
* ``round_time_vs_n.png``  the same against n, at the largest d measured for every n;
* ``round_bytes_per_coordinate.png``  masked-vector bytes per coordinate against d
  (ours, Flower's int64, and float32 plain for scale);
* ``deployed_time_vs_n.png``  the deployed path (bench/deployed.py rows): every role's
  seconds per round against n on log-log axes, ours (client node, committee node,
  server total, third-party verifier) and Flower SecAgg+ (node, server), one panel per
  d measured at two or more n; each legend entry carries the least-squares slope of
  log t on log n (t ~ n^slope).

* ``gas_vs_n.png``  whole rounds on the chain (bench/gas.py ``round_total`` rows in
  bench/results/gas_rounds.jsonl): a client's own gas per round and the largest
  transaction against n, full and optimistic mode, with issue 13's targets (per
  client at n = 100) and ``TX_GAS_CAP``.

When a configuration was measured more than once, the latest line wins; EVM-board
lines (``params.board == "evm"``) are left out.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ROLES = (("round_client", "client (mean per client)"), ("round_aggregator", "aggregator / server"))


def load(path: Path) -> dict[tuple, dict]:
    """Latest record per (bench, baseline, n, d, dropout)."""
    rows: dict[tuple, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        p = rec["params"]
        if p.get("board", "memory") != "memory":
            continue
        rows[(rec["bench"], rec["baseline"], p["n"], p["d"], p["dropout"])] = rec
    return rows


def _series(rows: dict[tuple, dict], bench: str, baseline: str, **fixed: float) -> Iterable:
    out = []
    for (b, base, n, d, drop), rec in rows.items():
        key = {"n": n, "d": d, "dropout": drop}
        if b == bench and base == baseline and all(key[k] == v for k, v in fixed.items()):
            out.append((key, rec))
    return out


def _pick_dropout(rows: dict[tuple, dict], wanted: float) -> float:
    drops = sorted({k[4] for k in rows})
    return wanted if wanted in drops else drops[-1]


def _save(fig: plt.Figure, path: Path, title: str | None = None) -> Path:
    """Title (if any), lay out, write the PNG, free the figure."""
    if title is not None:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_time_vs_d(rows: dict[tuple, dict], dropout: float, out: Path) -> Path:
    ns = sorted({k[2] for k in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (bench, title) in zip(axes, ROLES, strict=True):
        for i, n in enumerate(ns):
            color = f"C{i}"
            pts = sorted(
                (k["d"], r)
                for k, r in _series(rows, bench, "flower_secaggplus", n=n, dropout=dropout)
            )
            if not pts:
                continue
            ds = [d for d, _ in pts]
            ax.plot(ds, [r["ours_s"] for _, r in pts], "o-", color=color, label=f"ours n={n}")
            ax.plot(
                ds,
                [r["baseline_s"] for _, r in pts],
                "s--",
                color=color,
                label=f"Flower SecAgg+ n={n}",
            )
            plain = sorted(
                (k["d"], r["baseline_s"])
                for k, r in _series(rows, bench, "plain", n=n, dropout=dropout)
            )
            if plain:
                ax.plot(
                    *zip(*plain, strict=True), ":", color=color, alpha=0.6, label=f"plain n={n}"
                )
        ax.set(xscale="log", yscale="log", xlabel="d (coordinates)", ylabel="seconds", title=title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    return _save(fig, out / "round_time_vs_d.png", f"time vs d, dropout {dropout:g}")


def plot_time_vs_n(rows: dict[tuple, dict], dropout: float, out: Path) -> Path:
    ns = sorted({k[2] for k in rows})
    common_ds = set.intersection(*({k[3] for k in rows if k[2] == n} for n in ns))
    d = max(common_ds) if common_ds else max(k[3] for k in rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (bench, title) in zip(axes, ROLES, strict=True):
        pts = sorted(
            (k["n"], r) for k, r in _series(rows, bench, "flower_secaggplus", d=d, dropout=dropout)
        )
        if pts:
            xs = [n for n, _ in pts]
            ax.plot(xs, [r["ours_s"] for _, r in pts], "o-", label="ours")
            ax.plot(xs, [r["baseline_s"] for _, r in pts], "s--", label="Flower SecAgg+")
        plain = sorted(
            (k["n"], r["baseline_s"])
            for k, r in _series(rows, bench, "plain", d=d, dropout=dropout)
        )
        if plain:
            ax.plot(*zip(*plain, strict=True), ":", label="plain")
        ax.set(xscale="log", yscale="log", xlabel="n (clients)", ylabel="seconds", title=title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out / "round_time_vs_n.png", f"time vs n, d={d:g}, dropout {dropout:g}")


DEPLOYED_ROLES = (  # (label, (record side, key), style, colour: a role's two sides share it)
    ("ours: client node", ("ours_seconds", "client_mean"), "o-", "C0"),
    ("ours: committee node", ("ours_seconds", "committee_mean"), "^-", "C1"),
    ("ours: server total", ("ours_seconds", "server_total"), "D-", "C2"),
    ("ours: verifier", ("ours_seconds", "verifier"), "v-", "C3"),
    ("Flower SecAgg+: node", ("flower_seconds", "client_mean"), "o--", "C0"),
    ("Flower SecAgg+: server", ("flower_seconds", "server"), "D--", "C2"),
)


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y on log x (y ~ x^slope); needs two distinct x."""
    import math

    if len(xs) != len(ys) or len(set(xs)) < 2:
        raise ValueError("a slope needs points at two or more distinct x")
    if min(xs) <= 0 or min(ys) <= 0:
        raise ValueError("log-log slope needs positive values")
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sxx


def deployed_series(rows: dict[tuple, dict], dropout: float) -> dict[int, dict[str, list]]:
    """{d: {role label: [(n, seconds), ...]}} from the round_client_deployed rows (each
    holds every role's clock of one configuration), for each d measured at >= 2 n."""
    by_d: dict[int, dict[str, list]] = {}
    for (bench, _base, n, d, drop), rec in rows.items():
        if bench != "round_client_deployed" or drop != dropout:
            continue
        for label, (side, key), _style, _colour in DEPLOYED_ROLES:
            value = rec.get(side, {}).get(key)
            if value:
                by_d.setdefault(d, {}).setdefault(label, []).append((n, value))
    return {
        d: {label: sorted(pts) for label, pts in roles.items()}
        for d, roles in sorted(by_d.items())
        if len({n for pts in roles.values() for n, _ in pts}) >= 2
    }


def plot_deployed_vs_n(rows: dict[tuple, dict], dropout: float, out: Path) -> Path | None:
    series = deployed_series(rows, dropout)
    if not series:
        return None
    fig, axes = plt.subplots(1, len(series), figsize=(6.2 * len(series), 4.6), squeeze=False)
    for ax, (d, roles) in zip(axes[0], series.items(), strict=True):
        for label, _key, style, colour in DEPLOYED_ROLES:
            pts = roles.get(label)
            if not pts:
                continue
            xs, ys = [n for n, _ in pts], [t for _, t in pts]
            slope = f", slope {loglog_slope(xs, ys):.2f}" if len(set(xs)) >= 2 else ""
            ax.plot(xs, ys, style, color=colour, label=f"{label}{slope}")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="n (clients)",
            ylabel="seconds per round",
            title=f"deployed, d={d:g}",
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out / "deployed_time_vs_n.png", f"per-role time vs n, dropout {dropout:g}")


def plot_bytes(rows: dict[tuple, dict], dropout: float, out: Path) -> Path:
    ns = sorted({k[2] for k in rows})
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, n in enumerate(ns):
        pts = sorted(
            (k["d"], r)
            for k, r in _series(rows, "round_client", "flower_secaggplus", n=n, dropout=dropout)
        )
        if not pts:
            continue
        ds = [d for d, _ in pts]
        ax.plot(
            ds,
            [r["ours_bytes_per_coordinate"] for _, r in pts],
            "o-",
            color=f"C{i}",
            label=f"ours n={n}",
        )
        ax.plot(
            ds,
            [r["flower_bytes_per_coordinate"] for _, r in pts],
            "s--",
            color=f"C{i}",
            label=f"Flower SecAgg+ n={n}",
        )
    ax.axhline(4, color="gray", ls=":", label="float32 (plain)")
    ax.set(
        xscale="log",
        xlabel="d (coordinates)",
        ylabel="masked-vector bytes / coordinate",
        title="upload size per coordinate",
        ylim=(0, None),
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out / "round_bytes_per_coordinate.png")


TX_GAS_CAP = 15_000_000  # secagg.boards.evm.TX_GAS_CAP (SPEC.md §7.5)
CLIENT_GAS_TARGET = {"full": 2_000_000, "optimistic": 400_000}  # issue 13, n = 100, m = 10


def gas_series(path: Path) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """Per mode: ``client`` (a client's own gas per round) and ``largest`` (the round's
    largest transaction) as sorted (n, gas) points; the latest row per (n, mode)."""
    latest: dict[tuple[int, str], dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("op") == "round_total":
                latest[(row["n"], row["mode"])] = row
    out: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for (n, mode), row in sorted(latest.items()):
        series = out.setdefault(mode, {"client": [], "largest": [], "partial": []})
        series["client"].append((n, row["client_gas_per_client"]))
        series["largest"].append((n, row["max_tx_gas"]))
        if row.get("measured", "round") != "round":  # member txs not sent at this n
            series["partial"].append((n, row["max_tx_gas"]))
    return out


def plot_gas(path: Path, out: Path) -> Path | None:
    """``gas_vs_n.png`` from ``path``'s round_total rows (None if it has none)."""
    series = gas_series(path) if path.exists() else {}
    if not series:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.4, 4.6))
    for i, (mode, pts) in enumerate(sorted(series.items())):
        colour = f"C{i}"
        ns, gas = zip(*pts["client"], strict=True)
        left.plot(ns, gas, "o-", color=colour, label=f"{mode}: client's own txs")
        if mode in CLIENT_GAS_TARGET:
            left.plot(
                [100],
                [CLIENT_GAS_TARGET[mode]],
                "*",
                ms=12,
                color=colour,
                label=f"{mode}: target at n = 100",
            )
        ns, gas = zip(*pts["largest"], strict=True)
        right.plot(ns, gas, "o-", color=colour, label=f"{mode}: largest transaction")
    right.axhline(TX_GAS_CAP, color="gray", ls=":", label="TX_GAS_CAP (15 M)")
    partial = sorted({n for pts in series.values() for n, _ in pts["partial"]})
    if partial:
        fig.text(
            0.5,
            0.005,
            f"n = {', '.join(map(str, partial))}: the creation, every client transaction and "
            "close() sent; the members' and aggregator's were not (split under a 12 M plan)",
            ha="center",
            fontsize=7,
        )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="n (clients)",
        ylabel="gas per client per round",
        title="a client's gas per round (m = 10)",
    )
    right.set(
        xscale="log",
        xlabel="n (clients)",
        ylabel="gas",
        ylim=(0, TX_GAS_CAP * 1.15),
        title="largest transaction of the round",
    )
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out / "gas_vs_n.png", "whole rounds on the chain (anvil)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jsonl", type=Path, default=RESULTS / "round.jsonl")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--gas-jsonl", type=Path, default=RESULTS / "gas_rounds.jsonl")
    args = ap.parse_args()
    rows = load(args.jsonl)
    if not rows:
        raise SystemExit(f"{args.jsonl}: no records")
    drop = _pick_dropout(rows, args.dropout)
    args.out.mkdir(parents=True, exist_ok=True)
    simulated = {k: r for k, r in rows.items() if r["params"].get("path") != "deployed"}
    for path in (
        plot_time_vs_d(simulated, drop, args.out),
        plot_time_vs_n(simulated, drop, args.out),
        plot_bytes(simulated, drop, args.out),
        plot_deployed_vs_n(rows, drop, args.out),
        plot_gas(args.gas_jsonl, args.out),
    ):
        if path is not None:
            print(path)


if __name__ == "__main__":
    main()

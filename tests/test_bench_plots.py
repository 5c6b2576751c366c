"""bench/plots.py: the deployed per-role plot's fitted slopes and the series it draws; the
whole-round gas plot's series."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import plots  # noqa: E402


def test_loglog_slope_recovers_the_exponent_of_a_power_law():
    xs = [10.0, 30.0, 100.0, 1000.0]
    assert plots.loglog_slope(xs, [3.0 * x**1.5 for x in xs]) == pytest.approx(1.5)
    assert plots.loglog_slope(xs, [7.0 for _ in xs]) == pytest.approx(0.0)
    # noisy points: the least-squares fit, not the end points' ratio
    ys = [x * (1.2 if i % 2 else 0.8) for i, x in enumerate(xs)]
    ends = math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0])
    assert plots.loglog_slope(xs, ys) != pytest.approx(ends)


@pytest.mark.parametrize(
    "xs, ys", [([10.0], [1.0]), ([10.0, 10.0], [1.0, 2.0]), ([0.0, 1.0], [1.0, 2.0])]
)
def test_loglog_slope_refuses_what_has_no_slope(xs, ys):
    with pytest.raises(ValueError):
        plots.loglog_slope(xs, ys)


def _row(n: int, d: int, client: float) -> dict:
    return {
        "bench": "round_client_deployed",
        "baseline": "flower_secaggplus",
        "params": {"n": n, "d": d, "dropout": 0.1, "path": "deployed"},
        "ours_seconds": {
            "client_mean": client,
            "committee_mean": 2 * client,
            "server_total": n * 0.01,
            "verifier": n * 0.008,
        },
        "flower_seconds": {"client_mean": 0.05 * n**0.5, "server": n * 0.02},
    }


def test_deployed_series_keeps_only_d_measured_at_two_n_and_draws_the_png(tmp_path):
    rows = {}
    for n, d, c in ((30, 10**5, 0.2), (100, 10**5, 0.5), (30, 10**6, 1.0)):
        rec = _row(n, d, c)
        rows[(rec["bench"], rec["baseline"], n, d, 0.1)] = rec
    series = plots.deployed_series(rows, 0.1)
    assert list(series) == [10**5]  # d = 1e6 was measured at one n only
    assert series[10**5]["ours: client node"] == [(30, 0.2), (100, 0.5)]
    assert series[10**5]["Flower SecAgg+: server"] == [(30, 0.6), (100, 2.0)]
    path = plots.plot_deployed_vs_n(rows, 0.1, tmp_path)
    assert path is not None and path.stat().st_size > 1000
    assert plots.plot_deployed_vs_n({}, 0.1, tmp_path) is None


def test_gas_series_takes_the_latest_round_rows_per_mode_and_draws_the_png(tmp_path):
    def row(n: int, mode: str, client: int, largest: int, **extra: str) -> dict:
        gas = {"client_gas_per_client": client, "max_tx_gas": largest}
        return {"op": "round_total", "n": n, "mode": mode, **gas, **extra}

    rows = [
        row(100, "full", 9, 9),  # measured again below: the later row wins
        {"op": "dealing_full", "m": 4, "gas": 1},  # a per-op row: not drawn
        row(10, "full", 2, 3, measured="round"),
        row(100, "full", 4, 5),
        row(10, "optimistic", 1, 2),
        row(1000, "optimistic", 6, 7, measured="close+client-txs"),
    ]
    path = tmp_path / "gas_rounds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    series = plots.gas_series(path)
    assert series["full"]["client"] == [(10, 2), (100, 4)]
    assert series["full"]["largest"] == [(10, 3), (100, 5)]
    assert series["full"]["partial"] == []  # every row measured a whole round
    assert series["optimistic"] == {
        "client": [(10, 1), (1000, 6)],
        "largest": [(10, 2), (1000, 7)],
        "partial": [(1000, 7)],  # its member transactions were not sent
    }
    png = plots.plot_gas(path, tmp_path)
    assert png is not None and png.stat().st_size > 1000
    assert plots.plot_gas(tmp_path / "missing.jsonl", tmp_path) is None

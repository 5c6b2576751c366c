"""Smoke test of bench/flower.py (the per-configuration driver of bench/round.py): the
smallest configuration (n=5, d=1000, one dropout) through the same code path as the
benchmark, ours and Flower's SecAgg+ side by side. Takes a few seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("flwr")

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import flower as bench_flower  # noqa: E402
from _common import REQUIRED  # noqa: E402


def test_smallest_configuration_both_sides() -> None:
    records = bench_flower.compare(5, 1000, 0.2, repeats=1, emit_name="")  # not written

    assert {(r["bench"], r["baseline"]) for r in records} == {
        ("round_client", "flower_secaggplus"),
        ("round_aggregator", "flower_secaggplus"),
        ("round_client", "plain"),
        ("round_aggregator", "plain"),
        ("round_verifier", "our_aggregator"),
        ("round_verifier_chain", "our_aggregator"),
    }
    for rec in records:
        for key in REQUIRED:
            assert key in rec
        assert rec["ours_s"] > 0 and rec["baseline_s"] > 0 and rec["speedup"] > 0
        assert rec["params"]["n"] == 5 and rec["params"]["d"] == 1000
        assert rec["params"]["board"] == "memory"
        for role in ("client_mean", "aggregator", "verifier", "verifier_chain", "committee_mean"):
            assert rec["ours_seconds"][role] > 0
        for role in ("client_mean", "server", "transport"):
            assert rec["flower_seconds"][role] > 0
        assert rec["ours_included"] == rec["flower_included"] == 4  # one node dropped
        assert rec["flower_max_abs_error"] < 1e-3
        assert rec["flower_bytes_per_coordinate"] > 8  # Flower ships int64
        assert 0 < rec["ours_bytes_per_coordinate"] < rec["flower_bytes_per_coordinate"]
        assert rec["flower_bytes_per_client"] > rec["flower_masked_bytes_per_client"] / 2
        assert set(rec["targets"]) == {
            "client_le_flower",
            "aggregator_le_flower",
            "bytes_per_coord_le_half_flower",
            "verifier_le_1.2x_aggregator",
            "verifier_chain_le_1.2x_aggregator",
        }


def test_deployed_path_smallest_configuration() -> None:
    """bench/deployed.py: ours through PvssSecAggWorkflow + pvss_secagg_mod over Flower's
    serde, beside SecAgg+ on the same grid; one non-committee node drops at upload."""
    import deployed  # noqa: PLC0415

    records = deployed.compare_deployed(6, 500, 0.2, 1, emit_name="")  # not written
    assert [r["bench"] for r in records] == [
        "round_client_deployed",
        "round_committee_deployed",
        "round_server_total",
        "round_verifier_deployed",
        "round_relay_bytes",
    ]
    for rec in records:
        for key in REQUIRED:
            assert key in rec
        assert rec["ours_s"] > 0 and rec["baseline_s"] > 0
        assert rec["params"]["path"] == "deployed" and rec["params"]["n"] == 6
        assert rec["ours_included"] == rec["flower_included"] == 5  # the same node dropped
        assert rec["ours_max_abs_error"] < 1e-3
    relay = records[-1]
    assert relay["unit"] == "bytes" and relay["baseline"] == "flower_secaggplus"
    assert relay["ours_relay_bytes_per_node"] == relay["ours_s"] > 0
    assert relay["params"]["m"] == 3

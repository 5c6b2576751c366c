"""``pvss-secagg demo``: secure and plain FedAvg reach the same accuracy (within one
point), every round verifies, and the round directories pass ``pvss-secagg verify``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from fl.cli import main  # noqa: E402


def test_demo_secure_matches_plain_fedavg(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--rounds", "3", "--clients", "6", "--committee", "3", "--threshold", "1"]
    argv += ["--hidden", "16", "--dropout", "0.17", "--out", str(out), "--json"]
    argv += ["--board", "memory"]  # the demo's default is the embedded EVM; memory is faster
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["rounds"] == 3 and res["board"] == "memory" and res["all_verified"] is True
    assert abs(res["accuracy_secure"] - res["accuracy_plain"]) <= 0.01
    assert res["accuracy_secure"] > 0.3  # it learns (10 classes: chance is 0.1)
    for rnd in res["per_round"]:
        # the same clients were averaged on both sides, with the scheduled dropouts
        assert rnd["included"] == rnd["plain_included"]
        assert len(rnd["dropouts"]) == 1 and rnd["verified"] is True
        assert abs(rnd["accuracy_secure"] - rnd["accuracy_plain"]) <= 0.01
    assert set(res["seconds"]) >= {"client_mean", "committee_mean", "aggregator", "verifier"}
    for k in (1, 2, 3):
        assert main(["verify", str(out / f"round-{k}")]) == 0
    assert "round verified" in capsys.readouterr().out


def test_demo_refuses_an_unknown_board(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--rounds", "1", "--board", "pigeon", "--out", str(tmp_path)]) == 2
    assert "pigeon" in capsys.readouterr().err

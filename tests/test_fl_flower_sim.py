"""PvssSecAggWorkflow + pvss_secagg_mod under Flower's simulation runtime
(flwr.simulation.run_simulation, Ray backend): two rounds, one node failing mid-round,
the aggregate equal to plain FedAvg within the quantization bound, every round
verified and its transcript publicly verifiable."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray", reason="flwr[simulation] (ray) is needed for run_simulation")

APP_DIR = Path(__file__).parent / "flower_app"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))  # Ray workers get this sys.path too

from flwr.client import ClientApp  # noqa: E402
from flwr.server import LegacyContext, ServerApp, ServerConfig  # noqa: E402
from flwr.server.workflow import DefaultWorkflow  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402
from pvss_flower_app.task import (  # noqa: E402
    CLIP,
    COUNTER,
    RecordingFedAvg,
    client_fn,
    expected_fedavg,
    initial_arrays,
)

from fl.flower import (  # noqa: E402
    DEPLOYMENT_ENV,
    RECORD_KEY,
    PvssSecAggWorkflow,
    pvss_secagg_mod,
)
from secagg.quantize import quantization_error_bound  # noqa: E402
from secagg.roster import make_deployment  # noqa: E402
from secagg.verifier import load_round, verify_round  # noqa: E402

NODES = 4
FAILING_PARTITION, FAILING_ROUND, FAILING_STAGE = 3, 2, "upload"


def failing_node_mod(msg, ctxt, call_next):  # noqa: ANN001, ANN201
    """Partition 3 crashes at the upload stage of round 2 (an error reply: a dropout)."""
    rec = msg.content.config_records.get(RECORD_KEY)
    if (
        rec is not None
        and int(ctxt.node_config["partition-id"]) == FAILING_PARTITION
        and msg.metadata.group_id == str(FAILING_ROUND)
        and rec["stage"] == FAILING_STAGE
    ):
        raise RuntimeError("simulated crash while training")
    return call_next(msg, ctxt)


def test_two_rounds_in_simulation_equal_plain_fedavg(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # restored after
    strategy = RecordingFedAvg(NODES)
    # the deployment: every node's own identity file and the roster (committee = 0..2)
    roster, _ = make_deployment(tmp_path / "deployment", NODES, 3, 1)
    monkeypatch.setenv(DEPLOYMENT_ENV, str(tmp_path / "deployment"))
    workflow = PvssSecAggWorkflow(
        roster,
        clipping_range=CLIP,
        max_weight=100,
        round_dir=tmp_path / "rounds",
        seed=5,
    )
    server_app = ServerApp()

    @server_app.main()
    def main(grid, context) -> None:  # noqa: ANN001
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=2), strategy=strategy
        )
        DefaultWorkflow(fit_workflow=workflow)(grid, legacy)

    client_app = ClientApp(client_fn=client_fn, mods=[failing_node_mod, pvss_secagg_mod])
    caplog.set_level(logging.INFO, logger="flwr")
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=NODES,
        backend_config={"client_resources": {"num_cpus": 1}, "init_args": {"num_cpus": 2}},
    )

    assert [o.round_id for o in workflow.outcomes] == [1, 2]
    assert all(o.verified for o in workflow.outcomes)
    assert [r["partitions"] for r in strategy.rounds] == [[0, 1, 2, 3], [0, 1, 2]]
    assert workflow.outcomes[1].dropped["upload"]  # the crashed node, as a dropout
    bound = quantization_error_bound(CLIP, 16) + 1e-6  # + float32 rounding of the result
    previous = initial_arrays()
    for rec in strategy.rounds:
        got = [np.asarray(a) for a in rec["arrays"]]
        want = expected_fedavg(previous, rec["partitions"])
        for g, w in zip(got[:-1], want, strict=True):
            assert np.abs(g - w).max() < bound
        assert got[-1].tolist() == [COUNTER]  # integer array carried, not averaged
        previous = [*(g.astype(np.float32) for g in got[:-1]), np.array([COUNTER])]
    for outcome in workflow.outcomes:
        transcript, blobs = load_round(outcome.round_dir)
        assert verify_round(transcript, blobs).ok
        assert outcome.round_dir.name == f"round-{outcome.round_id}"
        assert outcome.round_dir.parent.parent == tmp_path / "rounds"  # <base>/<run-id>/
    # the ServerApp's log lines went through Flower's logger
    lines = [r.getMessage() for r in caplog.records if r.name == "flwr"]
    assert sum("Secure aggregation completed" in m for m in lines) == 2
    assert any("dropped out at upload" in m for m in lines)

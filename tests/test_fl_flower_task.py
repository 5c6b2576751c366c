"""``PvssSecAggWorkflow(board="rpc:URL", chain_native=True, task=...)`` on anvil, in
process (the fake grid of tests/test_fl_native.py hands every message to
``pvss_secagg_mod``; each node reads the chain through its own ``pvss-rpc``): with
``run_config["pvss-task"] = "new"`` the first Flower round deploys one task whose
roster is that round's sampled nodes, and every later round is opened under it (round
ids 1, 2 on the task, a fresh contract each). A later round that samples a node outside
the task's sealed roster is refused naming the node (``RoundFailed``; skipped with
``on_failure="skip"``); a task seat whose node is not sampled is absent (a dropout)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")
pytest.importorskip("web3")

from fl.flower import PvssSecAggWorkflow  # noqa: E402
from fl.host import RoundFailed  # noqa: E402
from secagg.boards.evm import fund_accounts  # noqa: E402
from secagg.errors import ConfigError  # noqa: E402
from secagg.identity import Identity  # noqa: E402
from secagg.quantize import quantization_error_bound  # noqa: E402

from .test_fl_native import RUN_ID, SHAPES, FakeGrid, run_round  # noqa: E402

CLIP = 8.0  # the workflow's default clipping_range


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch) -> None:
    """Flower stamps messages with the running task's identity; give this process one."""
    identity = pytest.importorskip("flwr.supercore.task_identity").TaskIdentity
    monkeypatch.setattr(identity, "_task_id", 1)
    monkeypatch.setattr(identity, "_run_id", RUN_ID)
    monkeypatch.setattr(identity, "_node_id", 1)


def _chain_grid(tmp_path: Path, url: str, server: Identity) -> FakeGrid:
    """Five nodes (100..104; 100..102 the committee), each with its own RPC endpoint
    and its identity's account funded, like the server's."""
    grid = FakeGrid(tmp_path, 5, 3, 1, [10, 20, 30, 40, 50])
    for ctxt in grid.contexts.values():
        ctxt.node_config["pvss-rpc"] = url
    idents = [Identity.load(str(c.node_config["pvss-identity"])) for c in grid.contexts.values()]
    fund_accounts(url, [server.address, *(i.address for i in idents)])
    return grid


def _expected_mean(grid: FakeGrid, nodes: list[int]) -> np.ndarray:
    """FakeGrid's training adds 0.1 * (p + 1) to the zero model at partition p."""
    parts = [grid.nodes.index(n) for n in nodes]
    w = np.array([grid.examples[p] for p in parts], dtype=float)
    step = np.array([0.1 * (p + 1) for p in parts])
    return np.full(sum(int(np.prod(s)) for s in SHAPES), float(w @ step / w.sum()))


def test_flower_rounds_reuse_one_task(anvil_url: str, tmp_path: Path, caplog) -> None:
    server = Identity.generate()
    grid = _chain_grid(tmp_path, anvil_url, server)
    wf = PvssSecAggWorkflow(
        grid.roster,
        identity=server,
        board=f"rpc:{anvil_url}",
        chain_native=True,
        round_dir=tmp_path / "rounds",
    )
    assert wf.task is None  # from run_config, at the first round
    run_config = {"pvss-task": "new"}
    grid.offline = {104}  # round 1 samples 100..103: the task's four client seats
    with caplog.at_level(logging.INFO, logger="flwr"):
        run_round(grid, wf, 1, run_config=run_config)
    task = wf._task
    assert wf.task == "new" and task is not None and task.last_round == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "flwr"]
    assert sum(f"task deployed {task.address}" in m for m in lines) == 1
    members, clients = task.roster()
    assert clients == tuple(wf._addresses[n] for n in (100, 101, 102, 103))
    # round 2 samples node 104, which is not on the sealed roster: refused, naming it
    grid.offline = set()
    with pytest.raises(RoundFailed, match=r"sampled nodes \[104\].*not on the sealed roster"):
        run_round(grid, wf, 2, run_config=run_config)
    wf.on_failure = "skip"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="flwr"):
        run_round(grid, wf, 2, run_config=run_config)
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("skipped" in m and "[104]" in m for m in skipped)
    assert task.last_round == 1 and len(wf.outcomes) == 1  # nothing opened for them
    # round 3: node 103 not sampled, its seat 4 absent; round 2 of the task
    grid.offline = {103, 104}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="flwr"):
        run_round(grid, wf, 3, run_config=run_config)
    assert not any("task deployed" in r.getMessage() for r in caplog.records)  # logged once
    assert any("seats [4] not sampled" in r.getMessage() for r in caplog.records)
    first, second = wf.outcomes
    assert (first.round_id, second.round_id) == (1, 2) and task.last_round == 2
    assert first.verified and second.verified
    assert first.config.board != second.config.board
    for rid, outcome in ((1, first), (2, second)):
        assert task.round_address(rid).lower() == "0x" + outcome.config.board.hex()
        assert outcome.config.clients == clients and outcome.config.n_clients == 4
    assert first.included_nodes == (100, 101, 102, 103)
    assert second.included_nodes == (100, 101, 102)
    bound = quantization_error_bound(CLIP, 16) + 1e-6
    assert np.abs(first.mean - _expected_mean(grid, [100, 101, 102, 103])).max() < bound
    assert np.abs(second.mean - _expected_mean(grid, [100, 101, 102])).max() < bound


def test_task_parameter_is_checked(tmp_path: Path) -> None:
    grid = FakeGrid(tmp_path, 4, 3, 1, [1, 1, 1, 1])
    with pytest.raises(ConfigError, match="task='new'.*chain-native"):
        PvssSecAggWorkflow(grid.roster, task="new")
    with pytest.raises(ConfigError, match="'0x12' is neither 'new' nor"):
        PvssSecAggWorkflow(
            grid.roster, board="rpc:http://127.0.0.1:1", chain_native=True, task="0x12"
        )

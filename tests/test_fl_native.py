"""Flower-native behaviour of PvssSecAggWorkflow (issue 15): configuration errors
raised at construction or at the first round naming the workflow's own parameters,
rounds that cannot run failing loudly (or skipped with a warning on request), log
lines through Flower's logger, run-scoped round directories with retention, weights
above max_weight clamped with a warning. The rounds run in process: a fake grid hands
each message to pvss_secagg_mod (no Flower runtime)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Context, Message, RecordDict  # noqa: E402
from flwr.app.error import Error  # noqa: E402
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters  # noqa: E402
from flwr.common import parameters_to_ndarrays as to_ndarrays  # noqa: E402
from flwr.compat.common import recorddict_compat as compat  # noqa: E402
from flwr.server import LegacyContext, ServerConfig  # noqa: E402
from flwr.server.compat.grid_client_proxy import GridClientProxy  # noqa: E402
from flwr.server.strategy import FedAvg  # noqa: E402
from flwr.server.workflow.constant import (  # noqa: E402
    MAIN_CONFIGS_RECORD,
    MAIN_PARAMS_RECORD,
)
from flwr.server.workflow.constant import Key as WorkflowKey  # noqa: E402

from fl.flower import PvssSecAggWorkflow, pvss_secagg_mod  # noqa: E402
from fl.host import RoundFailed  # noqa: E402
from secagg.errors import ConfigError  # noqa: E402
from secagg.roster import Roster, make_deployment  # noqa: E402
from secagg.verifier import load_round, verify_round  # noqa: E402

SHAPES = [(2, 3), (3,)]
RUN_ID = 4242


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch) -> None:
    """Flower stamps messages with the running task's identity; give this process one."""
    identity = pytest.importorskip("flwr.supercore.task_identity").TaskIdentity
    monkeypatch.setattr(identity, "_task_id", 1)
    monkeypatch.setattr(identity, "_run_id", RUN_ID)
    monkeypatch.setattr(identity, "_node_id", 1)


class FakeGrid:
    """Delivers every message to ``pvss_secagg_mod`` of its node, in process."""

    def __init__(self, tmp_path: Path, n: int, m: int, t: int, examples: list[int]) -> None:
        self.roster, paths = make_deployment(tmp_path / "deployment", n, m, t)
        roster_path = str(tmp_path / "deployment" / "roster.json")
        self.nodes = [100 + i for i in range(n)]
        self.examples = examples
        self.offline: set[int] = set()  # nodes that answer nothing at all
        self.contexts = {
            node: Context(
                run_id=RUN_ID,
                node_id=node,
                node_config={
                    "partition-id": i,
                    "pvss-identity": str(paths[i]),
                    "pvss-roster": roster_path,
                },
                state=RecordDict(),
                run_config={},
            )
            for i, node in enumerate(self.nodes)
        }

    def get_node_ids(self) -> list[int]:
        return [n for n in self.nodes if n not in self.offline]

    def _train(self, msg: Message, ctxt: Context) -> Message:
        p = int(ctxt.node_config["partition-id"])
        ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        trained = [a + 0.1 * (p + 1) for a in to_ndarrays(ins.parameters)]
        res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(trained), self.examples[p], {})
        return Message(compat.fitres_to_recorddict(res, keep_input=True), reply_to=msg)

    def send_and_receive(self, messages, timeout=None):  # noqa: ANN001, ANN201, ARG002
        out = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            if node in self.offline:
                continue
            try:
                out.append(pvss_secagg_mod(msg, self.contexts[node], self._train))
            except Exception as exc:  # noqa: BLE001 (Flower turns it into an error reply)
                out.append(Message(Error(code=0, reason=str(exc)), reply_to=msg))
        return out


def run_round(grid: FakeGrid, workflow: PvssSecAggWorkflow, rnd: int, **context_kw) -> None:
    """One fit round of ``workflow`` on ``grid``, as DefaultWorkflow calls it."""
    base = Context(
        run_id=context_kw.pop("run_id", RUN_ID),
        node_id=0,
        node_config={},
        state=RecordDict(),
        run_config=context_kw.pop("run_config", {}),
    )
    strategy = FedAvg(fraction_fit=1.0, min_fit_clients=2, min_available_clients=2)
    legacy = LegacyContext(context=base, config=ServerConfig(num_rounds=rnd), strategy=strategy)
    for node in grid.get_node_ids():
        legacy.client_manager.register(GridClientProxy(node_id=node, grid=grid, run_id=RUN_ID))
    from flwr.app import ConfigRecord  # noqa: PLC0415

    legacy.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {WorkflowKey.CURRENT_ROUND: rnd}
    )
    arrays = [np.zeros(s, dtype=np.float32) for s in SHAPES]
    legacy.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
        ndarrays_to_parameters(arrays), True
    )
    workflow(grid, legacy)


# -- configuration errors, at construction --------------------------------------------


def test_honest_majority_is_checked_at_construction_and_exposed(tmp_path: Path) -> None:
    roster, _ = make_deployment(tmp_path / "d", 4, 3, 2)  # t = 2, m = 3: 2t >= m
    with pytest.raises(ConfigError, match="honest_majority") as info:
        PvssSecAggWorkflow(roster)
    assert "roster" in str(info.value) and "PvssSecAggWorkflow" in str(info.value)
    wf = PvssSecAggWorkflow(roster, honest_majority=False)
    assert wf.honest_majority is False and wf.threshold == 2 and wf.committee_size == 3


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"max_weight": 2**40, "quantization_bits": 30}, ["max_weight", "quantization_bits"]),
        ({"modulus_bits": 8}, ["modulus_bits"]),
        ({"quantization_bits": 0}, ["quantization_bits"]),
        ({"clipping_range": 0.0}, ["clipping_range"]),
        ({"max_weight": 0}, ["max_weight"]),
        ({"on_failure": "ignore"}, ["on_failure"]),
        ({"keep_rounds": 0}, ["keep_rounds"]),
    ],
)
def test_configuration_errors_name_the_workflow_parameter(tmp_path: Path, kwargs, names) -> None:  # noqa: ANN001
    roster, _ = make_deployment(tmp_path / "d", 4, 3, 1)
    with pytest.raises(ConfigError) as info:
        PvssSecAggWorkflow(roster, **kwargs)
    for name in names:
        assert name in str(info.value)
    assert "quant_bits" not in str(info.value)  # the RoundConfig's names are translated


def test_min_included_above_the_admissible_clients(tmp_path: Path) -> None:
    base, _ = make_deployment(tmp_path / "d", 3, 3, 1)
    roster = Roster(base.committee, base.threshold, base.clients, min_included=5)
    with pytest.raises(ConfigError, match="min_included"):
        PvssSecAggWorkflow(roster)


# -- rounds that cannot run -------------------------------------------------------------


def test_committee_not_connected_raises_by_default_and_skips_on_request(
    tmp_path: Path, caplog
) -> None:
    grid = FakeGrid(tmp_path, 4, 3, 1, [1, 2, 3, 4])
    grid.offline = {100}  # committee seat 1
    wf = PvssSecAggWorkflow(grid.roster, round_dir=tmp_path / "rounds", seed=1)
    with pytest.raises(RoundFailed, match=r"committee seats \[1\].*not connected"):
        run_round(grid, wf, 1)
    skip = PvssSecAggWorkflow(grid.roster, round_dir=tmp_path / "rounds", on_failure="skip")
    with caplog.at_level(logging.INFO, logger="flwr"):
        run_round(grid, skip, 1)
    assert skip.outcomes == []
    warned = [r for r in caplog.records if r.name == "flwr" and r.levelno == logging.WARNING]
    assert any("skipped" in r.getMessage() and "not connected" in r.getMessage() for r in warned)


def test_too_few_admissible_sampled_nodes_raises(tmp_path: Path) -> None:
    grid = FakeGrid(tmp_path, 4, 3, 1, [1, 2, 3, 4])
    closed = Roster(grid.roster.committee, 1, grid.roster.clients[:1] + grid.roster.clients[:0])
    with pytest.raises(ConfigError, match="admits 1 client"):
        PvssSecAggWorkflow(closed)
    # open membership: the roster cannot know; the round does, and names min_included
    opened = Roster(grid.roster.committee, 1, None, min_included=4)
    grid.offline = {103}  # 3 sampled nodes, the floor is 4
    wf = PvssSecAggWorkflow(opened, round_dir=tmp_path / "rounds")
    with pytest.raises(RoundFailed, match="3 admissible sampled nodes.*min_included"):
        run_round(grid, wf, 1)


def test_a_config_error_at_the_first_round_names_the_parameter(tmp_path: Path) -> None:
    grid = FakeGrid(tmp_path, 4, 3, 1, [1, 2, 3, 4])
    open_roster = Roster(grid.roster.committee, 1, None)
    # fine for the n = 2 checked at construction, an overflow for the 4 sampled nodes
    wf = PvssSecAggWorkflow(
        open_roster, max_weight=1, quantization_bits=8, modulus_bits=9, round_dir=tmp_path
    )
    with pytest.raises(ConfigError, match="modulus_bits"):
        run_round(grid, wf, 1)


def test_a_halted_round_raises_round_failed(tmp_path: Path, monkeypatch) -> None:
    grid = FakeGrid(tmp_path, 4, 3, 1, [1, 2, 3, 4])
    wf = PvssSecAggWorkflow(grid.roster, round_dir=tmp_path / "rounds", seed=2)
    real = grid.send_and_receive

    def no_seed(messages, timeout=None):  # noqa: ANN001, ANN202
        from fl.flower import RECORD_KEY  # noqa: PLC0415

        if any(m.content.config_records[RECORD_KEY]["stage"] == "seed" for m in messages):
            return []  # every member withholds its seed reveal
        return real(messages, timeout)

    monkeypatch.setattr(grid, "send_and_receive", no_seed)
    with pytest.raises(RoundFailed, match="withheld their seed reveal"):
        run_round(grid, wf, 1)


# -- a round through Flower's logger, run directories, retention, the weight clamp ------


def test_round_logs_through_flower_scoped_dirs_retention_and_clamp(tmp_path: Path, caplog) -> None:
    grid = FakeGrid(tmp_path, 4, 3, 1, [5000, 2, 3, 4])  # partition 0 reports 5000
    wf = PvssSecAggWorkflow(
        grid.roster,
        clipping_range=2.0,
        max_weight=100,
        round_dir=tmp_path / "rounds",
        keep_rounds=2,
        keep_blobs=False,
        seed=3,
    )
    with caplog.at_level(logging.INFO, logger="flwr"):
        for rnd in (1, 2, 3):
            run_round(grid, wf, rnd)
    assert [o.round_id for o in wf.outcomes] == [1, 2, 3]
    first = wf.outcomes[0]
    assert first.included_nodes == (100, 101, 102, 103)  # clamped, not excluded
    # weights 100 (clamped), 2, 3, 4
    weights = np.array([100.0, 2.0, 3.0, 4.0])
    want = (weights * 0.1 * np.arange(1, 5)).sum() / weights.sum()
    assert first.total_weight == 109
    assert np.abs(first.mean - want).max() < first.config.masking().step
    flwr_lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "flwr"]
    text = "\n".join(m for _, m in flwr_lines)
    for needle in (
        "Secure aggregation commencing",
        "[Stage 1 register] Sending requests to 4 nodes",
        "[Stage 6 unmask] Accepted posts",
        "verified (all",
        "Secure aggregation completed",
    ):
        assert needle in text
    clamps = [m for lv, m in flwr_lines if lv == logging.WARNING and "above max_weight" in m]
    assert len(clamps) == 3  # once per node per round
    assert all("node 100" in m and "num_examples 5000" in m for m in clamps)
    # <round_dir>/<run-id>/round-<k>, the last two kept, their blobs dropped
    run_dir = tmp_path / "rounds" / str(RUN_ID)
    assert sorted(p.name for p in run_dir.iterdir()) == ["round-2", "round-3"]
    last = wf.outcomes[-1].round_dir
    assert last == run_dir / "round-3"
    assert sorted(p.name for p in last.iterdir()) == ["head.hex", "transcript.msgpack"]


def test_round_dir_from_run_config_and_blobs_kept_by_default(tmp_path: Path, caplog) -> None:
    config = {"pvss-round-dir": str(tmp_path / "from-run-config")}
    counts = []
    with caplog.at_level(logging.INFO, logger="flwr"):
        for rerun in ("first", "second"):  # a rerun under the same run id: replaced
            grid = FakeGrid(tmp_path / rerun, 3, 3, 1, [1, 2, 3])
            wf = PvssSecAggWorkflow(grid.roster, max_weight=10, seed=4)
            run_round(grid, wf, 1, run_id=77, run_config=config)
            counts.append(len(list((wf.outcomes[0].round_dir / "blobs").iterdir())))
    (again,) = wf.outcomes
    assert again.round_dir == tmp_path / "from-run-config" / "77" / "round-1"
    transcript, blobs = load_round(again.round_dir)
    assert verify_round(transcript, blobs).ok
    assert counts[0] == counts[1] > 0  # the rerun's blobs only, none mixed in
    assert any("replacing" in r.getMessage() for r in caplog.records if r.name == "flwr")


def test_a_dropout_is_logged_by_node_id(tmp_path: Path, caplog) -> None:
    grid = FakeGrid(tmp_path, 5, 3, 1, [1, 2, 3, 4, 0])  # node 104: weight 0 is refused
    wf = PvssSecAggWorkflow(grid.roster, max_weight=10, round_dir=tmp_path, seed=5)
    with caplog.at_level(logging.INFO, logger="flwr"):
        run_round(grid, wf, 1)
    assert wf.outcomes[0].dropped["upload"] == [104]
    assert any(
        r.levelno == logging.WARNING and "node 104 dropped out at upload" in r.getMessage()
        for r in caplog.records
        if r.name == "flwr"
    )

"""pvss_secagg_mod in process (no Flower runtime): the six stages as Flower messages
relayed by a RoundHost, the state kept in the node's Context between stages, only the
masked vector leaving the node, other messages passing through untouched."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Context, Message, RecordDict  # noqa: E402
from flwr.app.message_type import MessageType  # noqa: E402
from flwr.common import (  # noqa: E402
    Code,
    FitIns,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.compat.common import recorddict_compat as compat  # noqa: E402

from fl.flower import (  # noqa: E402
    RECORD_KEY,
    STATE_KEY,
    pvss_secagg_mod,
    reply_from_record,
    request_from_record,
    request_to_record,
)
from fl.host import NodeRoles, RoundHost, drive_round, make_round_config  # noqa: E402
from fl.relay import StageRequest  # noqa: E402
from secagg.errors import ProtocolError  # noqa: E402
from secagg.identity import Identity  # noqa: E402
from secagg.roster import make_deployment  # noqa: E402

SHAPES = [(2, 3), (3,)]


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch) -> None:
    """Flower stamps messages with the running task's identity; give this process one."""
    identity = pytest.importorskip("flwr.supercore.task_identity").TaskIdentity
    monkeypatch.setattr(identity, "_task_id", 1)
    monkeypatch.setattr(identity, "_run_id", 1)
    monkeypatch.setattr(identity, "_node_id", 1)


def _trained(partition: int, parameters) -> list[np.ndarray]:  # noqa: ANN001
    return [a + 0.1 * (partition + 1) for a in parameters_to_ndarrays(parameters)]


def test_the_mod_runs_a_round_and_only_the_masked_vector_leaves(tmp_path: Path) -> None:
    nodes = [11, 22, 33]
    global_arrays = [np.zeros(s, dtype=np.float32) for s in SHAPES]
    dim = sum(a.size for a in global_arrays)
    roster, paths = make_deployment(tmp_path / "deployment", 3, 3, 1)
    server = Identity.generate()
    cfg = make_round_config(
        round_id=1,
        n_clients=3,
        committee_size=3,
        threshold=1,
        dim=dim,
        clip=2.0,
        quant_bits=16,
        max_weight=10,
        aggregator=server.address,
        members=roster.committee,
        clients=roster.clients,
    )
    roles = [NodeRoles(n, i + 1, i + 1) for i, n in enumerate(nodes)]
    host = RoundHost(cfg, tmp_path / "round-1", roles, identity=server)
    roster_path = str(tmp_path / "deployment" / "roster.json")
    contexts = {
        n: Context(
            run_id=1,
            node_id=n,
            node_config={
                "partition-id": i,
                "pvss-identity": str(paths[i]),
                "pvss-roster": roster_path,
            },
            state=RecordDict(),
            run_config={},
        )
        for i, n in enumerate(nodes)
    }
    upload_contents: dict[int, RecordDict] = {}

    def train(msg: Message, ctxt: Context) -> Message:
        p = int(ctxt.node_config["partition-id"])
        ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        res = FitRes(
            Status(Code.OK, ""),
            ndarrays_to_parameters(_trained(p, ins.parameters)),
            p + 1,
            {"partition": p},
        )
        return Message(compat.fitres_to_recorddict(res, keep_input=True), reply_to=msg)

    def send(stage: str, requests: Mapping[int, StageRequest]):
        replies = {}
        for node, req in requests.items():
            content = (
                compat.fitins_to_recorddict(FitIns(ndarrays_to_parameters(global_arrays), {}), True)
                if stage == "upload"
                else RecordDict()
            )
            content.config_records[RECORD_KEY] = request_to_record(req)
            msg = Message(content, dst_node_id=node, message_type=MessageType.TRAIN, group_id="1")
            out = pvss_secagg_mod(msg, contexts[node], train)
            assert STATE_KEY in contexts[node].state.config_records
            if stage == "upload":
                upload_contents[node] = out.content
            replies[node] = reply_from_record(out.content.config_records[RECORD_KEY])
        return replies

    outcome = drive_round(host, send)
    assert outcome.verified and outcome.included_nodes == tuple(nodes)
    weights = np.array([1.0, 2.0, 3.0])
    want = sum(w * (0.1 * (i + 1)) for i, w in enumerate(weights)) / weights.sum()
    assert np.abs(outcome.mean - want).max() < cfg.masking().step
    for content in upload_contents.values():
        fitres = compat.recorddict_to_fitres(content, keep_input=True)
        assert fitres.parameters.tensors == []  # the trained parameters never leave
        assert fitres.num_examples in (1, 2, 3)


def test_other_messages_pass_through_untouched() -> None:
    seen = []

    def call_next(msg, ctxt):  # noqa: ANN001, ANN202
        seen.append(msg)
        return Message(RecordDict(), reply_to=msg)

    ctxt = Context(run_id=1, node_id=5, node_config={}, state=RecordDict(), run_config={})
    for mtype, content in [
        (MessageType.EVALUATE, RecordDict()),
        (MessageType.TRAIN, RecordDict({"other": ConfigRecord({"a": 1})})),
    ]:
        msg = Message(content, dst_node_id=5, message_type=mtype, group_id="1")
        pvss_secagg_mod(msg, ctxt, call_next)
    assert len(seen) == 2 and STATE_KEY not in ctxt.state.config_records


def test_envelope_round_trip_and_malformed_requests() -> None:
    req = StageRequest("deal", 3, b"\x01\x02", client=4, member=0, since=7)
    assert request_from_record(request_to_record(req)) == req
    chain = StageRequest("upload", 0, b"", 1, 0, contract=bytes(range(20)), dp=b"\x9c\x01")
    assert request_from_record(request_to_record(chain)) == chain  # a DP round's record
    with pytest.raises(ProtocolError, match="dp must be .* with the round's contract"):
        StageRequest("upload", 0, b"", 1, 0, dp=b"\x9c\x01")  # no contract: no record
    with pytest.raises(ProtocolError, match="height"):
        request_from_record(
            {"stage": "deal", "height": "3", "transcript": b"", "client": 1, "member": 0}
        )
    with pytest.raises(ProtocolError, match="since"):
        request_from_record(
            {"stage": "deal", "height": 3, "transcript": b"", "client": 1, "member": 0, "since": -1}
        )
    with pytest.raises(ProtocolError, match="missing"):
        request_from_record({"stage": "deal"})
    with pytest.raises(ProtocolError, match="unknown stage"):
        request_from_record(
            {
                "stage": "gossip",
                "height": 0,
                "transcript": b"",
                "client": 1,
                "member": 0,
                "since": 0,
            }
        )

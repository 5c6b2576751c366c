"""The same defences on the Flower path: a malicious ServerApp that forks the relayed
board or brings its own committee, against honest ClientApps behind
``pvss_secagg_mod`` (in process, no Flower runtime; Flower turns the raised error into an
error reply, which the server counts as a dropout)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Context, Message, RecordDict  # noqa: E402
from flwr.app.message_type import MessageType  # noqa: E402

from fl.flower import (  # noqa: E402
    RECORD_KEY,
    STATE_KEY,
    pvss_secagg_mod,
    reply_from_record,
    request_to_record,  # noqa: E402
)
from fl.host import NodeRoles, RoundHost, make_round_config  # noqa: E402
from fl.relay import STAGE_REGISTER, STAGE_SEED, StageRequest, _NodeState  # noqa: E402
from secagg import codec  # noqa: E402
from secagg.boards import MemoryBoard, Phase  # noqa: E402
from secagg.errors import ProtocolError  # noqa: E402
from secagg.identity import Identity  # noqa: E402
from secagg.messages import SignedPost  # noqa: E402
from secagg.roster import make_deployment  # noqa: E402

NODES = [11, 22, 33]


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch) -> None:  # noqa: ANN001
    """Flower stamps messages with the running task's identity; give this process one."""
    identity = pytest.importorskip("flwr.supercore.task_identity").TaskIdentity
    monkeypatch.setattr(identity, "_task_id", 1)
    monkeypatch.setattr(identity, "_run_id", 1)
    monkeypatch.setattr(identity, "_node_id", 1)


def _setup(tmp_path: Path):  # noqa: ANN202
    roster, paths = make_deployment(tmp_path / "deployment", 3, 3, 1)
    server = Identity.generate()
    cfg = make_round_config(
        round_id=1,
        n_clients=3,
        committee_size=3,
        threshold=1,
        dim=4,
        clip=1.0,
        quant_bits=8,
        max_weight=4,
        aggregator=server.address,
        members=roster.committee,
        clients=roster.clients,
    )
    contexts = {
        n: Context(
            run_id=1,
            node_id=n,
            node_config={
                "partition-id": i,
                "pvss-identity": str(paths[i]),
                "pvss-roster": str(tmp_path / "deployment" / "roster.json"),
            },
            state=RecordDict(),
            run_config={},
        )
        for i, n in enumerate(NODES)
    }
    return roster, server, cfg, contexts


def _send(contexts: Mapping[int, Context], node: int, req: StageRequest):  # noqa: ANN202
    content = RecordDict()
    content.config_records[RECORD_KEY] = request_to_record(req)
    msg = Message(content, dst_node_id=node, message_type=MessageType.TRAIN, group_id="1")
    out = pvss_secagg_mod(msg, contexts[node], lambda m, c: None)
    return reply_from_record(out.content.config_records[RECORD_KEY])


def test_the_mod_refuses_a_forked_relay(tmp_path: Path) -> None:
    """After a member acted on a board, the server re-chains the registrations in
    another order (each still validly signed) and relays that: the member refuses it —
    the transcript does not extend what it pinned — and reveals nothing more."""
    _, server, cfg, contexts = _setup(tmp_path)
    roles = [NodeRoles(n, i + 1, i + 1) for i, n in enumerate(NODES)]
    host = RoundHost(cfg, tmp_path / "round", roles, identity=server)
    for stage in (STAGE_REGISTER, STAGE_SEED):
        for node, req in host.requests(stage).items():
            assert host.accept(stage, node, _send(contexts, node, req))
    regs = [
        SignedPost(ev.role, ev.sender, ev.body, ev.view, ev.sig)
        for ev in host.board.events()[1:]
        if ev.height < cfg.register_blocks
    ]
    fork = MemoryBoard.create(cfg, server)
    for post in reversed(regs):  # the server chooses the order: every post still valid
        fork.submit(post)
    fork.advance(cfg.register_blocks)
    assert fork.head != host.board.state().phase_heads[Phase.DEAL]
    node = NODES[0]
    before = contexts[node].state.config_records[STATE_KEY]["state"]
    forked = StageRequest(STAGE_SEED, fork.height(), codec.encode(fork.transcript()), 0, 1)
    with pytest.raises(ProtocolError, match="forked"):
        _send(contexts, node, forked)
    # control: the honest board's transcript at the same stage is accepted as extending
    # the pin (the member then refuses only because it already revealed its seed: asked
    # again, it would resend that reveal, which the board already holds)
    honest = dataclasses.replace(forked, transcript=host.transcript_bytes())
    with pytest.raises(ProtocolError, match="seed asked again.*seed already revealed"):
        _send(contexts, node, honest)
    assert _NodeState.from_bytes(before).pin_seq >= 0


def test_the_mod_refuses_a_committee_the_roster_does_not_name(tmp_path: Path) -> None:
    """The server brings its own committee (identities it generated): every honest node
    refuses the round at registration — before making a key or a post."""
    _, server, cfg, contexts = _setup(tmp_path)
    own = tuple(Identity.generate().address for _ in range(3))
    rogue = dataclasses.replace(cfg, members=own)
    board = MemoryBoard.create(rogue, server)
    for i, node in enumerate(NODES):
        req = StageRequest(STAGE_REGISTER, 0, codec.encode(board.transcript()), i + 1, 0)
        with pytest.raises(ProtocolError, match="committee"):
            _send(contexts, node, req)
    # control: the deployment's own config is accepted by the same node
    ok = MemoryBoard.create(cfg, server)
    reply = _send(
        contexts, NODES[0], StageRequest(STAGE_REGISTER, 0, codec.encode(ok.transcript()), 1, 0)
    )
    assert len(reply.posts) == 1 and np.frombuffer(reply.identity, np.uint8).size == 20

"""Chain-native rounds under one task contract (SPEC.md §7.4, §7.8), on anvil, in
process: ``RoundHost(chain_native=True, task=EvmTask)`` opens each round through the
task (round ids 1, 2, ... assigned by the task, a fresh contract each) from the server's
own account; every node (``NodeAgent(rpc=...)``) attaches to the round itself, checks
that the task opened it, and posts from its own account. A task seat no node holds is
absent (a dropout at registration). The server holds no party's key but its own."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("web3")

from fl.host import NodeRoles, RoundHost, drive_round, make_round_config  # noqa: E402
from fl.relay import STAGE_REGISTER, NodeAgent, StageReply, StageRequest, _NodeState  # noqa: E402
from secagg import codec  # noqa: E402
from secagg.boards.evm import fund_accounts  # noqa: E402
from secagg.boards.task import EvmTask  # noqa: E402
from secagg.errors import ConfigError, ProtocolError, PvssError  # noqa: E402
from secagg.identity import Identity  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    KeysImported,
    Registration,
)
from secagg.roster import make_deployment  # noqa: E402
from secagg.simulate import make_board  # noqa: E402
from secagg.verifier import load_round, verify_round  # noqa: E402

N, M, T, DIM = 4, 3, 1, 6
LEVELS = (1 << 16) - 1  # quant_bits 16: +-clip quantize to exactly 0 and LEVELS


def _config(server: Identity, members, clients, round_id: int = 1):  # noqa: ANN001, ANN202
    return make_round_config(
        round_id=round_id,
        n_clients=len(clients),
        committee_size=M,
        threshold=T,
        dim=DIM,
        clip=1.0,
        quant_bits=16,
        max_weight=10,
        aggregator=server.address,
        members=members,
        clients=clients,
    )


def _nodes(anvil_url: str, roster, idents, updates, weights, states=None, persisted=None):  # noqa: ANN001, ANN202
    """A transport that hands each request to the node's own NodeAgent (own identity,
    own RPC endpoint, own state: ``states``, node -> state bytes, kept across rounds
    when the caller passes it; ``persisted``: each node's task keys at each ``persist``
    call, the first before its task registration, the others before its own posts)."""
    states = {} if states is None else states
    persisted = {} if persisted is None else persisted

    def send(stage: str, requests: Mapping[int, StageRequest]) -> dict[int, object]:
        replies: dict[int, StageReply | BaseException] = {}
        for node, req in requests.items():
            assert req.contract and req.task and not req.transcript

            def persist(state: bytes, node: int = node) -> None:
                states[node] = state
                persisted.setdefault(node, []).append(_NodeState.from_bytes(state).task_keys)

            agent = NodeAgent(
                states.get(node, b""),
                identity=idents[node],
                roster=roster,
                rpc=anvil_url,
                backend="reference",
                persist=persist,
            )
            try:
                replies[node] = agent.handle(req, lambda node=node: (updates[node], weights[node]))
            except PvssError as exc:
                replies[node] = exc
            states[node] = agent.state_bytes()
        return replies

    return send


def _task_deployment(anvil_url: str, tmp_path: Path):  # noqa: ANN202
    """A deployment (roster, node identities), a funded server identity and its task
    with the roster sealed: (roster, idents, server, task, client addresses)."""
    roster, paths = make_deployment(tmp_path / "deployment", N, M, T)
    idents = [Identity.load(p) for p in paths]
    server = Identity.generate()
    fund_accounts(anvil_url, [server.address, *(i.address for i in idents)])
    task = EvmTask.deploy(f"rpc:{anvil_url}", server, M)
    clients = tuple(i.address for i in idents)
    task.add_roster(list(roster.committee), list(clients))
    return roster, idents, server, task, clients


def test_two_chain_native_rounds_run_under_one_task(anvil_url: str, tmp_path: Path) -> None:
    roster, idents, server, task, clients = _task_deployment(anvil_url, tmp_path)
    # every coordinate at +-clip: the quantized values are exact, so is the sum
    rng = np.random.default_rng(7)
    updates = {node: rng.choice([-1.0, 1.0], DIM) for node in range(N)}
    weights = {node: node + 1 for node in range(N)}
    contracts = []
    states: dict[int, bytes] = {}  # each node's state, across both rounds
    persisted: dict[int, int] = {}
    for rnd, holders in ((1, range(N)), (2, range(N - 1))):  # round 2: client seat 4 absent
        roles = [NodeRoles(n, n + 1, n + 1 if n < M else 0) for n in holders]
        host = RoundHost(
            _config(server, roster.committee, clients, round_id=99),  # the task's id wins
            tmp_path / f"round-{rnd}",
            roles,
            identity=server,
            board=f"rpc:{anvil_url}",
            chain_native=True,
            backend="reference",
            task=task,
        )
        board = host.board
        send = _nodes(anvil_url, roster, idents, updates, weights, states, persisted)
        outcome = drive_round(host, send)
        assert outcome.verified and not outcome.faults
        assert outcome.round_id == rnd and board.config.round_id == rnd
        assert outcome.included == tuple(n + 1 for n in holders)
        want = sum(weights[n] * np.where(updates[n] > 0, LEVELS, 0) for n in holders)
        assert outcome.total[:-1].tolist() == want.tolist()
        assert outcome.total_weight == sum(weights[n] for n in holders)
        # the task opened it under this id
        assert task.last_round == rnd and task.round_address(rnd) == board.address
        contracts.append(board.address)
        # the server sent only from its own account (board and task), created no other
        assert board._accounts == {}
        assert board._own.address.lower() == "0x" + server.address.hex()
        assert task._acct.address.lower() == "0x" + server.address.hex()
        # every post's transaction comes from the posting party's own account
        owner = {(ROLE_AGGREGATOR, 0): server.address}
        owner.update({(ROLE_MEMBER, k + 1): a for k, a in enumerate(board.config.members)})
        owner.update({(ROLE_CLIENT, i + 1): a for i, a in enumerate(board.config.clients)})
        for name in ("Registered", "MaskedInput", "SharesPosted", "ResultPosted"):
            for log in getattr(board.contract.events, name)().get_logs(
                from_block=board.start_block
            ):
                a = log["args"]
                role = a.get("role", ROLE_MEMBER if "member" in a else ROLE_CLIENT)
                party = a.get("party", a.get("member", a.get("client", 0)))
                if name == "ResultPosted":
                    role, party = ROLE_AGGREGATOR, 0
                sender = board.w3.eth.get_transaction(log["transactionHash"])["from"]
                assert sender.lower() == "0x" + owner[(role, party)].hex(), (name, role, party)
        # imported keys (SPEC.md §7.8): no client Registration in the round; one
        # KeysImported from the server's account registered the sampled seats
        assert not [
            log
            for log in board.contract.events.Registered().get_logs(from_block=board.start_block)
            if log["args"]["role"] == ROLE_CLIENT
        ]
        regs = [
            ev
            for ev in board.events()
            if ev.role == ROLE_CLIENT and isinstance(codec.decode(ev.body), Registration)
        ]
        assert regs == []
        imports = [codec.decode(ev.body) for ev in board.events() if ev.role == ROLE_AGGREGATOR]
        imports = [msg for msg in imports if isinstance(msg, KeysImported)]
        assert [(m.task, m.parties) for m in imports] == [
            (task.raw_address, tuple(n + 1 for n in holders))
        ]
        (log,) = board.contract.events.KeysImported().get_logs(from_block=board.start_block)
        sender = board.w3.eth.get_transaction(log["transactionHash"])["from"]
        assert sender.lower() == "0x" + server.address.hex()
        assert board.state().clients == {
            p: task.key(ROLE_CLIENT, p) for p in (n + 1 for n in holders)
        }
        transcript, blobs = load_round(outcome.round_dir)
        head = bytes(board.contract.functions.head().call())
        keys = board.task_keys()
        assert verify_round(transcript, blobs, head, task_keys=keys).ok
        assert not verify_round(transcript, blobs, head).ok  # the import needs the task's keys
    assert contracts[0] != contracts[1]
    # every client registered on the task once (round 1), from its own account
    logs = task.contract.events.TaskRegistered().get_logs(from_block=0)
    assert sorted(log["args"]["party"] for log in logs if log["args"]["role"] == ROLE_CLIENT) == [
        1,
        2,
        3,
        4,
    ]
    for log in logs:
        sender = task.w3.eth.get_transaction(log["transactionHash"])["from"]
        assert sender.lower() == "0x" + clients[log["args"]["party"] - 1].hex()
    # each node kept its new task key (its first persist) before registering it, and
    # the same one key in every state it kept after (made once, never replaced)
    assert sorted(persisted) == list(range(N))
    for node, kept in persisted.items():
        assert len(kept[0]) == 1 and all(k == kept[0] for k in kept), node
    assert [name for name, _ in task.gas].count("register") == 0  # the server registered none


def test_a_client_seat_without_a_task_key_is_absent(anvil_url: str, tmp_path: Path) -> None:
    """A client node that answers the register stage but never registered on the task
    (here: it replies without acting) is not imported: absent, a dropout at register,
    logged; the round completes with the others."""
    roster, idents, server, task, clients = _task_deployment(anvil_url, tmp_path)
    rng = np.random.default_rng(8)
    updates = {node: rng.choice([-1.0, 1.0], DIM) for node in range(N)}
    weights = {node: 1 for node in range(N)}
    roles = [NodeRoles(n, n + 1, n + 1 if n < M else 0) for n in range(N)]
    host = RoundHost(
        _config(server, roster.committee, clients),
        tmp_path / "round",
        roles,
        identity=server,
        board=f"rpc:{anvil_url}",
        chain_native=True,
        backend="reference",
        task=task,
    )
    board = host.board
    honest = _nodes(anvil_url, roster, idents, updates, weights)
    lazy = N - 1  # client seat 4 (no member seat)

    def send(stage: str, requests: Mapping[int, StageRequest]) -> dict[int, object]:
        replies = honest(stage, {k: v for k, v in requests.items() if k != lazy})
        if stage == STAGE_REGISTER and lazy in requests:
            replies[lazy] = StageReply(identity=idents[lazy].address)  # ready, but no key
        return replies

    outcome = drive_round(host, send)
    assert outcome.verified and not outcome.faults
    assert task.key(ROLE_CLIENT, N) is None
    assert outcome.dropped["register"] == [lazy]
    assert outcome.included == (1, 2, 3) and N not in board.state().clients
    want = sum(np.where(updates[n] > 0, LEVELS, 0) for n in range(N - 1))
    assert outcome.total[:-1].tolist() == want.tolist() and outcome.total_weight == N - 1


def test_a_task_round_refuses_a_roster_other_than_the_tasks(anvil_url: str, tmp_path: Path) -> None:
    roster, paths = make_deployment(tmp_path / "deployment", N, M, T)
    idents = [Identity.load(p) for p in paths]
    server, stranger = Identity.generate(), Identity.generate()
    fund_accounts(anvil_url, [server.address])
    task = EvmTask.deploy(f"rpc:{anvil_url}", server, M)
    clients = tuple(i.address for i in idents)
    task.add_roster(list(roster.committee), list(clients))
    roles = [NodeRoles(n, n + 1, n + 1 if n < M else 0) for n in range(N)]
    kw = dict(identity=server, board=f"rpc:{anvil_url}", chain_native=True, task=task)
    # a client seat for an identity outside the task's sealed roster
    outside = (*clients[:-1], stranger.address)
    with pytest.raises(ConfigError, match="not on its sealed roster: 0x" + stranger.address.hex()):
        RoundHost(_config(server, roster.committee, outside), tmp_path / "a", roles, **kw)
    # another server may not open the task's rounds
    other = Identity.generate()
    with pytest.raises(ConfigError, match="0x" + other.address.hex()):
        RoundHost(
            _config(other, roster.committee, clients),
            tmp_path / "b",
            roles,
            **{**kw, "identity": other},
        )
    # a task round is chain-native
    with pytest.raises(ConfigError, match="chain_native=True"):
        RoundHost(
            _config(server, roster.committee, clients),
            tmp_path / "c",
            roles,
            **{**kw, "chain_native": False},
        )
    # two nodes on one seat
    twice = [*roles[:-1], NodeRoles(N - 1, 1, 0)]
    with pytest.raises(ConfigError, match="distinct seats of the task's roster"):
        RoundHost(_config(server, roster.committee, clients), tmp_path / "d", twice, **kw)
    assert task.last_round == 0  # nothing was opened


def test_a_node_refuses_a_round_the_task_did_not_open(anvil_url: str, tmp_path: Path) -> None:
    roster, paths = make_deployment(tmp_path / "deployment", N, M, T)
    idents = [Identity.load(p) for p in paths]
    server = Identity.generate()
    fund_accounts(anvil_url, [server.address, idents[0].address])
    task = EvmTask.deploy(f"rpc:{anvil_url}", server, M)
    clients = tuple(i.address for i in idents)
    task.add_roster(list(roster.committee), list(clients))
    # a standalone round with the task's roster and round id 1, never opened by the task
    loose = make_board(
        f"rpc:{anvil_url}", _config(server, roster.committee, clients), server, own_account=True
    )
    req = StageRequest(
        STAGE_REGISTER,
        loose.height(),
        b"",
        1,
        1,
        contract=bytes.fromhex(loose.address[2:]),
        task=task.raw_address,
    )
    agent = NodeAgent(identity=idents[0], roster=roster, rpc=anvil_url, backend="reference")
    with pytest.raises(ProtocolError, match=f"{loose.address} is not round 1 of task"):
        agent.handle(req)
    assert not loose.state().members  # the node posted nothing

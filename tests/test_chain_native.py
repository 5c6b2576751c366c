"""Chain-native rounds (SPEC.md §7.4), on anvil, in process: the server
(``RoundHost(chain_native=True)``) deploys the round contract from its own account and
only orchestrates; every node (``NodeAgent(rpc=...)``) attaches to the contract itself,
re-verifies the round from the chain, and submits its posts from its own account. The
server holds no party's key but its own: its board never creates a relayer account,
and every post's transaction ``from`` is the posting party's own address."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("web3")

from fl.host import NodeRoles, RoundHost, drive_round, make_round_config  # noqa: E402
from fl.relay import NodeAgent, StageReply, StageRequest  # noqa: E402
from secagg.boards.evm import fund_accounts  # noqa: E402
from secagg.config import RoundConfig  # noqa: E402
from secagg.dp import calibrate, mean_error_bound, overflow_bits  # noqa: E402
from secagg.errors import PvssError  # noqa: E402
from secagg.identity import Identity  # noqa: E402
from secagg.messages import ROLE_AGGREGATOR, ROLE_CLIENT, ROLE_MEMBER  # noqa: E402
from secagg.roster import make_deployment  # noqa: E402
from secagg.verifier import load_round, verify_round  # noqa: E402

N, M, T, DIM = 4, 3, 1, 6


def chain_parties(anvil_url: str, base: Path) -> tuple:
    """N nodes (node k: client k+1, member k+1 for k < M), each with its own identity
    file, and a server identity, every account funded on anvil; the round config
    (no DP). (roster, idents, server, config)."""
    roster, paths = make_deployment(base / "deployment", N, M, T)
    idents = [Identity.load(p) for p in paths]  # each node's own file, loaded by that node
    server = Identity.generate()
    fund_accounts(anvil_url, [server.address, *(i.address for i in idents)])
    cfg = make_round_config(
        round_id=1,
        n_clients=N,
        committee_size=M,
        threshold=T,
        dim=DIM,
        clip=1.0,
        quant_bits=16,
        max_weight=10,
        aggregator=server.address,
        members=roster.committee,
        clients=tuple(i.address for i in idents),
    )
    return roster, idents, server, cfg


def with_dp(cfg: RoundConfig, epsilon: float = 8.0) -> RoundConfig:
    """``cfg`` under distributed DP: a record calibrated for epsilon, one round."""
    record = calibrate(epsilon, 1e-5, 1, 1.0, cfg.min_included, 1.0, cfg.dim)
    return dataclasses.replace(cfg, dp=record, bits=overflow_bits(record, cfg.n_clients))


def _chain_native_round(anvil_url: str, tmp_path: Path, dp: bool = False) -> tuple:
    """A chain-native round on anvil, every node attaching itself (with ``dp``, under
    distributed DP: clipped, noised updates, the record the server sends checked
    against the chain's hash by each node). (outcome, host, updates, idents, server)."""
    roster, idents, server, cfg = chain_parties(anvil_url, tmp_path)
    if dp:
        cfg = with_dp(cfg)
    roles = [NodeRoles(node, node + 1, node + 1 if node < M else 0) for node in range(N)]
    host = RoundHost(
        cfg,
        tmp_path / "round",
        roles,
        identity=server,
        board=f"rpc:{anvil_url}",
        chain_native=True,
        backend="reference",
    )
    rng = np.random.default_rng(1)
    updates = {node: rng.uniform(-1, 1, DIM) for node in range(N)}
    if dp:  # inside the L2 clip, so the mean is the plain one within the noise bound
        updates = {node: 0.3 * u / np.linalg.norm(u) for node, u in updates.items()}
    states: dict[int, bytes] = {}

    def send(stage: str, requests: Mapping[int, StageRequest]) -> dict[int, object]:
        replies: dict[int, StageReply | BaseException] = {}
        for node, req in requests.items():
            assert req.contract and not req.transcript  # the node reads the chain itself
            assert bool(req.dp) == dp  # a DP round's record travels with every request
            agent = NodeAgent(
                states.get(node, b""),
                identity=idents[node],
                roster=roster,
                rpc=anvil_url,
                backend="reference",
            )
            try:
                replies[node] = agent.handle(req, lambda node=node: (updates[node], node + 1))
            except PvssError as exc:
                replies[node] = exc
            states[node] = agent.state_bytes()
        return replies

    return drive_round(host, send), host, updates, idents, server


def test_a_chain_native_round_posts_from_every_partys_own_account(
    anvil_url: str, tmp_path: Path
) -> None:
    outcome, host, _, _, server = _chain_native_round(anvil_url, tmp_path)
    board = host.board
    assert outcome.verified and outcome.included == (1, 2, 3, 4) and not outcome.faults
    # the server's board sent only from the server's own account, created no other
    assert board._accounts == {} and board._own.address.lower() == "0x" + server.address.hex()
    # every post's transaction comes from the posting party's own account
    cfg = board.config
    owner = {(ROLE_AGGREGATOR, 0): server.address}
    owner.update({(ROLE_MEMBER, k + 1): a for k, a in enumerate(cfg.members)})
    owner.update({(ROLE_CLIENT, i + 1): a for i, a in enumerate(cfg.clients)})
    seen = set()
    for name in (
        "Registered",
        "SeedRevealed",
        "DealingsPosted",
        "MaskedInput",
        "Confirmed",
        "SharesPosted",
        "ResultPosted",
    ):
        for log in getattr(board.contract.events, name)().get_logs(from_block=board.start_block):
            a = log["args"]
            role = a.get("role", ROLE_MEMBER if "member" in a else ROLE_CLIENT)
            party = a.get("party", a.get("member", a.get("dealer", a.get("client", 0))))
            if name == "ResultPosted":
                role, party = ROLE_AGGREGATOR, 0
            sender = board.w3.eth.get_transaction(log["transactionHash"])["from"]
            assert sender.lower() == "0x" + owner[(role, party)].hex(), (name, role, party)
            seen.add(name)
    assert len(seen) == 7
    # the round directory verifies, and against the chain
    transcript, blobs = load_round(outcome.round_dir)
    assert verify_round(transcript, blobs, bytes(board.contract.functions.head().call())).ok


def test_a_chain_native_round_under_distributed_dp(anvil_url: str, tmp_path: Path) -> None:
    """Distributed DP in a chain-native round: the contract holds the dp record as a
    hash, the server sends the record with each request and every node attaches with
    it (the chain checks it); the round verifies, from the chain too (the record from
    the round directory), and the mean is the clients' within the DP error bound."""
    from secagg.cli import main as cli  # noqa: PLC0415 - needs the evm extra

    outcome, host, updates, _, _ = _chain_native_round(anvil_url, tmp_path, dp=True)
    assert outcome.verified and outcome.included == (1, 2, 3, 4) and not outcome.faults
    assert host.board.config.has_dp and host.board.config.dp == outcome.config.dp
    want = np.mean([updates[node] for node in range(N)], axis=0)  # unweighted under DP
    err = np.abs(outcome.mean - want).max()
    assert 0 < err <= mean_error_bound(outcome.config.dp, N), err  # noised, within bound
    contract = host.board.address
    assert cli(["verify", str(outcome.round_dir), "--rpc", anvil_url, "--contract", contract]) == 0

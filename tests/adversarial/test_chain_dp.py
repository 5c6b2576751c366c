"""Distributed DP in a chain-native round (SPEC.md §7.4): the contract holds the dp
record as a hash only, so the server sends the record with every request. The server
is the attacker: it strips the record (the node would then send un-noised updates if
it believed the round had no DP), swaps in a weaker one (less noise), sends garbage,
or adds a record to a round without DP; and whoever can write its round directory
edits the record in ``chain.json`` before a restart. Every node must refuse before it
posts anything, and the resume must refuse too — the chain's hash decides. Each test
fails if the altered record were taken."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("web3")

from fl.host import CHAIN_FILE, NodeRoles, RoundHost  # noqa: E402
from fl.relay import STAGE_REGISTER, NodeAgent, StageRequest  # noqa: E402
from secagg.config import dp_record_bytes  # noqa: E402
from secagg.errors import ProtocolError  # noqa: E402
from tests.test_chain_native import M, N, chain_parties, with_dp  # noqa: E402


@pytest.fixture(scope="module")
def rounds(anvil_url: str, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A chain-native DP round and one without DP, both deployed by the same server,
    the nodes' roster and identities."""
    base = tmp_path_factory.mktemp("chain-dp")
    roster, idents, server, plain = chain_parties(anvil_url, base)
    dp = with_dp(plain, epsilon=4.0)
    roles = [NodeRoles(n, n + 1, n + 1 if n < M else 0) for n in range(N)]
    hosts = [
        RoundHost(
            cfg,
            base / name,
            roles,
            identity=server,
            board=f"rpc:{anvil_url}",
            chain_native=True,
            backend="reference",
        )
        for cfg, name in ((dp, "dp"), (plain, "plain"))
    ]
    return hosts, roster, idents, server, anvil_url


def _handle(rounds, node: int, request: StageRequest) -> object:  # noqa: ANN001
    """Node ``node`` (a fresh agent with its own identity) handles ``request``."""
    _, roster, idents, _, url = rounds
    agent = NodeAgent(b"", identity=idents[node], roster=roster, rpc=url, backend="reference")
    return agent.handle(request, lambda: (None, 1))


def test_the_honest_record_is_taken(rounds) -> None:  # noqa: ANN001
    """Control: the request the server makes for the DP round carries the record the
    chain holds, and the node registers."""
    dp_host = rounds[0][0]
    request = dp_host.request(STAGE_REGISTER, 0)
    assert request.dp == dp_record_bytes(dp_host.config.dp)
    reply = _handle(rounds, 0, request)
    assert reply.posts  # its registrations, sent from its own account


def test_a_stripped_weaker_or_garbled_record_is_refused(rounds) -> None:  # noqa: ANN001
    dp_host, plain_host = rounds[0]
    request = dp_host.request(STAGE_REGISTER, 1)
    weaker = dataclasses.replace(dp_host.config.dp, epsilon=8.0)  # same noise, weaker promise
    with pytest.raises(ProtocolError, match="a DP round: give its dp record"):
        _handle(rounds, 1, dataclasses.replace(request, dp=b""))
    less_noise = with_dp(dp_host.config, epsilon=64.0).dp
    for forged in (less_noise, weaker):
        with pytest.raises(ProtocolError, match="not the given one's"):
            _handle(rounds, 1, dataclasses.replace(request, dp=dp_record_bytes(forged)))
    with pytest.raises(ProtocolError, match="stage request: dp"):
        _handle(rounds, 1, dataclasses.replace(request, dp=b"\x93\x01\x02\x03"))
    # a record added to a round without DP
    plain = plain_host.request(STAGE_REGISTER, 1)
    with pytest.raises(ProtocolError, match="not the given one's"):
        _handle(rounds, 1, dataclasses.replace(plain, dp=request.dp))
    # nothing was posted by the refused node on either contract
    for host in (dp_host, plain_host):  # node 1 holds client 2 and member 2
        assert not [ev for ev in host.board.events() if ev.seq > 0 and ev.sender == 2]


def test_an_edited_record_in_chain_json_is_refused_at_resume(rounds, tmp_path: Path) -> None:  # noqa: ANN001
    hosts, _, _, server, _ = rounds
    dp_host = hosts[0]
    weaker = with_dp(dp_host.config, epsilon=64.0).dp
    for name, value in (("stripped", None), ("weaker", dp_record_bytes(weaker).hex())):
        where = tmp_path / name
        shutil.copytree(dp_host.round_dir, where)
        record = json.loads((where / CHAIN_FILE).read_text())
        assert record["dp"] == dp_record_bytes(dp_host.config.dp).hex()
        record["dp"] = value
        (where / CHAIN_FILE).write_text(json.dumps(record))
        with pytest.raises(ProtocolError, match="dp record|not the given one's"):
            RoundHost.resume(where, identity=server, backend="reference")
    record["dp"] = "zz"  # not hex
    (where / CHAIN_FILE).write_text(json.dumps(record))
    with pytest.raises(ProtocolError, match="unreadable"):
        RoundHost.resume(where, identity=server, backend="reference")
    # control: the record as written resumes
    assert RoundHost.resume(dp_host.round_dir, identity=server, backend="reference").config.has_dp

"""A chain-native round's resume record (SPEC.md §6.14 "Chain-native rounds"): whoever
can write the server's round directory (or an operator who copied the wrong one) points
``chain.json`` at another contract. ``RoundHost.resume`` must refuse, naming why, and
never drive a round it did not open: a contract another aggregator deployed, a contract
its task did not open as that round id, an address that is not a PvssRound, and an
unreadable record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("web3")

from fl.host import CHAIN_FILE, ROLES_FILE, NodeRoles, RoundHost  # noqa: E402
from secagg.boards.evm import fund_accounts  # noqa: E402
from secagg.errors import ConfigError, ProtocolError  # noqa: E402
from secagg.identity import Identity  # noqa: E402
from tests.test_fl_task_rounds import M, N, _config, _task_deployment  # noqa: E402


def _host(url: str, server: Identity, roster, clients, where: Path, task=None) -> RoundHost:  # noqa: ANN001
    roles = [NodeRoles(n, n + 1, n + 1 if n < M else 0) for n in range(N)]
    return RoundHost(
        _config(server, roster.committee, clients),
        where,
        roles,
        identity=server,
        board=f"rpc:{url}",
        chain_native=True,
        backend="reference",
        task=task,
    )


@pytest.fixture(scope="module")
def rounds(anvil_url: str, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The server's task round (resumable: chain.json + roles.json written), its
    standalone round, and a round another identity deployed."""
    base = tmp_path_factory.mktemp("resume-record")
    roster, _, server, task, clients = _task_deployment(anvil_url, base)
    other = Identity.generate()
    fund_accounts(anvil_url, [other.address])
    ours = _host(anvil_url, server, roster, clients, base / "ours", task=task)
    alone = _host(anvil_url, server, roster, clients, base / "alone")
    theirs = _host(anvil_url, other, roster, clients, base / "theirs")
    return server, task, ours, alone, theirs


def _record(src: RoundHost, where: Path, **changes: object) -> Path:
    """``src``'s round directory copied to ``where`` with chain.json's fields changed."""
    shutil.copytree(src.round_dir, where)
    record = json.loads((where / CHAIN_FILE).read_text())
    record.update(changes)
    (where / CHAIN_FILE).write_text(json.dumps(record))
    return where


def test_the_honest_record_resumes(rounds, tmp_path: Path) -> None:  # noqa: ANN001
    """The control: the server's own record resumes its task round."""
    server, task, ours, _, _ = rounds
    assert RoundHost.can_resume(ours.round_dir)
    assert (ours.round_dir / ROLES_FILE).is_file()
    host = RoundHost.resume(_record(ours, tmp_path / "r"), identity=server, backend="reference")
    assert host.resumed and host.board.address == ours.board.address
    assert host.task is not None and host.task.address == task.address


def test_a_contract_another_aggregator_deployed_is_refused(rounds, tmp_path: Path) -> None:  # noqa: ANN001
    server, _, ours, _, theirs = rounds
    where = _record(ours, tmp_path / "r", contract=theirs.board.address, task=None)
    with pytest.raises(ConfigError, match="opened by aggregator"):
        RoundHost.resume(where, identity=server)


def test_a_contract_the_task_did_not_open_is_refused(rounds, tmp_path: Path) -> None:  # noqa: ANN001
    server, task, ours, alone, _ = rounds
    where = _record(ours, tmp_path / "r", contract=alone.board.address)  # task kept
    with pytest.raises(ProtocolError, match=f"is not round 1 of task {task.address}"):
        RoundHost.resume(where, identity=server)


def test_an_address_that_is_not_a_round_is_refused(rounds, tmp_path: Path) -> None:  # noqa: ANN001
    server, task, ours, _, _ = rounds
    where = _record(ours, tmp_path / "r", contract=task.address)  # the task's own code
    with pytest.raises(ProtocolError):
        RoundHost.resume(where, identity=server)


@pytest.mark.parametrize(
    "text", ["", "{", '{"board": "memory", "contract": "0x00", "task": null}', "[1]"]
)
def test_an_unreadable_record_is_refused(rounds, tmp_path: Path, text: str) -> None:  # noqa: ANN001
    server, _, ours, _, _ = rounds
    where = _record(ours, tmp_path / "r")
    (where / CHAIN_FILE).write_text(text)
    with pytest.raises(ProtocolError, match="chain.json: unreadable"):
        RoundHost.resume(where, identity=server)

"""Shared helpers of the task-rewards tests (SPEC.md §7.9): a task on the embedded
chain, test contracts from contracts/build/, and ``RoundStub`` rounds (PvssRound's
getters set by hand) opened on the task."""

from __future__ import annotations

import json
from typing import Any

from secagg.boards.evm import ContractRevert, _checksum, fund_accounts
from secagg.boards.task import EvmTask

from .conftest import ROOT
from .evm_round import identity


def artifact(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "contracts" / "build" / f"{name}.json").read_text())


def deploy(task: EvmTask, name: str, *args: Any) -> Any:
    """Deploys test contract ``name`` from the task owner's account."""
    art = artifact(name)
    factory = task.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    receipt = task._send(factory.constructor(*args), f"deploy{name}")
    return task.w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])


def make_task(w3: Any, members: list[bytes], clients: list[bytes]) -> tuple[EvmTask, Any]:
    owner = identity()
    fund_accounts(w3, [owner.address])
    task = EvmTask.deploy(w3, owner, len(members))
    task.add_roster(members, clients)
    return task, owner


def open_stub(
    task: EvmTask,
    members: list[bytes],
    shares: list[int],
    clients: list[bytes],
    included: list[bool],
    *,
    posted: bool = True,
    forfeit_to: str | None = None,
) -> tuple[int, Any]:
    """Opens a RoundStub as the task's next round; returns (round id, stub). With
    ``forfeit_to`` the stub says it is an optimistic round forfeiting to that address."""
    rid = task.last_round + 1
    stub = deploy(task, "RoundStub", rid, _checksum(task.owner.address))
    f = stub.functions
    task._send(f.setMembers([_checksum(a) for a in members], shares), "stubMembers")
    for j in range(0, len(clients), 200):
        part = [_checksum(a) for a in clients[j : j + 200]]
        task._send(f.addClients(part, included[j : j + 200]), "stubClients")
    if forfeit_to is not None:
        task._send(f.setMode(True, forfeit_to), "stubMode")
    task._send(task.contract.functions.openRound(stub.address), "openRound")
    if posted:
        task._send(stub.functions.postResult(), "stubResult")
    return rid, stub


def reverts(name: str, fn: Any, *args: Any, **kw: Any) -> ContractRevert:
    try:
        fn(*args, **kw)
    except ContractRevert as exc:
        assert exc.name == name, exc
        return exc
    raise AssertionError(f"expected the revert {name}")

"""The task contract (contracts/src/PvssTask.sol) through ``secagg.boards.task.EvmTask``
on the embedded py-evm chain: a roster in storage (added in batches, sealed), every
seat's PVSS key registered once per task (PoP and signature bound to the task, each
field tampered), rounds opened by a call with increasing round ids, each round its own
``PvssRound`` whose roster is the task's."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from pvss.keys import KeyPair  # noqa: E402
from secagg.boards.evm import (  # noqa: E402
    INIT_ARTIFACT,
    MAX_CHAIN_CLIENTS,
    NO_ADDRESS,
    TX_GAS_CAP,
    ContractRevert,
    EvmBoard,
    _artifact,
    clone_initcode,
    connect,
    contract_config,
    fund_accounts,
)
from secagg.boards.task import EvmTask, task_registration, task_signing_digest  # noqa: E402
from secagg.config import RoundConfig  # noqa: E402
from secagg.messages import ROLE_CLIENT, ROLE_MEMBER, Registration  # noqa: E402
from secagg.posts import post_digest  # noqa: E402

from .evm_round import identity, round_config  # noqa: E402

INITCODE_CAP = 49_152  # EIP-3860


def _task(w3: Any, m: int = 3, n: int = 4, **kw: Any) -> tuple[EvmTask, Any, list, list]:
    owner = identity()
    members = [identity() for _ in range(m)]
    clients = [identity() for _ in range(n)]
    fund_accounts(w3, [owner.address])
    task = EvmTask.deploy(w3, owner, m, **kw)
    task.add_roster([i.address for i in members], [i.address for i in clients])
    return task, owner, members, clients


@pytest.fixture(scope="module")
def w3() -> Any:
    return connect("evm")[0]


def _digest(task: EvmTask, msg: Registration) -> bytes:
    return task_signing_digest(
        task.chain_id, task.raw_address, msg.role, msg.party, post_digest(msg)
    )


def _reverts(name: str, fn: Any, *args: Any) -> ContractRevert:
    with pytest.raises(ContractRevert) as info:
        fn(*args)
    assert info.value.name == name, info.value
    return info.value


def test_register_once_keys_read_back_and_reverified(w3: Any) -> None:
    task, _, members, clients = _task(w3)
    keys = {}
    for role, seats in ((ROLE_MEMBER, members), (ROLE_CLIENT, clients)):
        for party, ident in enumerate(seats, 1):
            keys[(role, party)] = KeyPair.generate()
            task.register(role, party, keys[(role, party)], ident)
    f = task.contract.functions
    assert (f.registeredMembers().call(), f.registeredClients().call()) == (3, 4)
    for (role, party), key in keys.items():
        assert task.key(role, party) == key.pk
    assert task.verified_keys() == {seat: key.pk for seat, key in keys.items()}
    attached = EvmTask.attach(w3, task.address)  # code, verifier, storage audited vs logs
    assert attached.roster() == task.roster() and attached.owner is None
    assert task.roster() == (
        tuple(i.address for i in members),
        tuple(i.address for i in clients),
    )
    # once per task: a second registration of the same seat (even with a new key) reverts
    _reverts("TaskAlreadyRegistered", task.register, ROLE_CLIENT, 1, KeyPair.generate(), clients[0])


def test_every_registration_field_is_checked(w3: Any) -> None:
    task, _, members, clients = _task(w3)
    cid, addr = task.chain_id, task.raw_address
    key = KeyPair.generate()
    msg, sig = task_registration(cid, addr, ROLE_CLIENT, 2, key, clients[1])

    def send(m: Registration, s: bytes) -> None:
        task.submit_registration(m, s)

    # role: a client's registration (PoP for role 0) presented as member 2's, signed by
    # member 2: the PoP binds role * 2^24 + party
    as_member = Registration(ROLE_MEMBER, 2, msg.pk, msg.pop)
    _reverts("PopFailed", send, as_member, members[1].sign(_digest(task, as_member)))
    # party, pk, pop changed after signing: the signature no longer recovers the seat
    other = KeyPair.generate().pk.to_bytes()
    flipped = msg.pop[:-1] + bytes([msg.pop[-1] ^ 1])
    for bad in (
        Registration(ROLE_CLIENT, 3, msg.pk, msg.pop),
        Registration(ROLE_CLIENT, 2, other, msg.pop),
        Registration(ROLE_CLIENT, 2, msg.pk, flipped),
    ):
        _reverts("TaskWrongSigner", send, bad, sig)
    # signature: by another identity, malformed, high-s
    _, by_other = task_registration(cid, addr, ROLE_CLIENT, 2, key, clients[0])
    _reverts("TaskWrongSigner", send, msg, by_other)
    _reverts("TaskBadSignature", send, msg, sig[:64])
    _reverts("TaskBadSignature", send, msg, sig[:64] + bytes([29]))
    # a PoP that does not verify, correctly signed by the seat
    bad_pop = Registration(ROLE_CLIENT, 2, msg.pk, flipped)
    _reverts("PopFailed", send, bad_pop, clients[1].sign(_digest(task, bad_pop)))
    # out of range, unknown role
    _reverts("TaskIdOutOfRange", send, Registration(ROLE_CLIENT, 5, msg.pk, msg.pop), sig)
    fn = task.contract.functions.register(2, 1, msg.pk, msg.pop, sig)  # Registration refuses role 2
    _reverts("TaskInvalidRole", task._send, fn, "register")
    send(msg, sig)  # the untampered one is accepted
    assert task.key(ROLE_CLIENT, 2) == key.pk


def test_registration_for_one_task_does_not_replay_on_another(w3: Any) -> None:
    task_a, owner, members, clients = _task(w3)
    task_b = EvmTask.deploy(w3, owner, 3, verifier=task_a.verifier)
    task_b.add_roster([i.address for i in members], [i.address for i in clients])
    key = KeyPair.generate()
    msg, sig = task_registration(
        task_a.chain_id, task_a.raw_address, ROLE_CLIENT, 1, key, clients[0]
    )
    # same roster, same seat: the signature and the PoP name task A
    _reverts("TaskWrongSigner", task_b.submit_registration, msg, sig)
    task_a.submit_registration(msg, sig)
    assert task_b.key(ROLE_CLIENT, 1) is None


def test_roster_rules_and_only_the_owner(w3: Any) -> None:
    owner = identity()
    fund_accounts(w3, [owner.address])
    task = EvmTask.deploy(w3, owner, 3)
    f = task.contract.functions
    a, b = identity(), identity()
    _reverts("BadSeat", task._send, f.addClients([a.address, a.address]), "addClients")
    _reverts("TaskIdOutOfRange", task._send, f.addMembers([identity().address] * 4), "addMembers")
    _reverts("TaskIdOutOfRange", task._send, f.sealRoster(), "sealRoster")  # 0 of 3 members
    stranger = identity()
    fund_accounts(w3, [stranger.address])
    as_stranger = EvmTask.attach(w3, task.address, stranger)
    _reverts("NotOwner", as_stranger._send, f.addClients([b.address]), "addClients")
    cfg = round_config()[0]
    with pytest.raises(Exception, match="owner"):
        as_stranger.open_round(cfg)
    task.add_roster([identity().address for _ in range(3)], [a.address, b.address])
    _reverts("RosterSealed", task._send, f.addClients([identity().address]), "addClients")
    # the attached copy checks the code: a PvssRound address is not a task
    with pytest.raises(Exception, match="does not run the PvssTask contract"):
        EvmTask.attach(w3, task.verifier)


def _largest(cfg: RoundConfig) -> RoundConfig:
    """``cfg`` at the contract's caps: MAX_CHAIN_CLIENTS fresh closed-roster clients,
    255 members (a regular:20 graph, windows long enough for every seat)."""
    return dataclasses.replace(
        cfg,
        n_clients=MAX_CHAIN_CLIENTS,
        clients=tuple(identity().address for _ in range(MAX_CHAIN_CLIENTS)),
        members=tuple(identity().address for _ in range(255)),
        committee_size=255,
        threshold=127,
        confirm_quorum=255,
        min_included=2,
        graph="regular:20",
        bits=24,
        register_blocks=2000,
        deal_blocks=2000,
        upload_blocks=2000,
    )


def test_a_roster_beyond_the_initcode_cap(w3: Any) -> None:
    """600 closed-membership clients, stored by the task in batches of transactions
    each under TX_GAS_CAP. A round is a clone (SPEC.md §7.3): its creation code is 50
    bytes and the initializer's call, so even the largest closed roster a round takes
    (MAX_CHAIN_CLIENTS clients, 255 members) fits EIP-3860's initcode cap, which
    bounded a round's roster to ≈ 570 clients while its 24 KB of code travelled in the
    creation code."""
    n = 600
    clients = [identity().address for _ in range(n)]
    members = [identity().address for _ in range(3)]
    cfg = round_config(n=3, m=3)[0]
    big = _largest(cfg)
    init = w3.eth.contract(abi=_artifact(INIT_ARTIFACT)["abi"])
    call = init.encode_abi("init", args=[contract_config(big), bytes(65), NO_ADDRESS])
    initcode = len(clone_initcode(bytes(20))) + len(bytes.fromhex(call[2:]))
    assert 40_000 < initcode <= INITCODE_CAP, initcode
    # the same roster in a full contract's creation code (the design before clones)
    assert initcode + len(bytes.fromhex(_artifact()["bytecode"][2:])) > INITCODE_CAP
    owner = identity()
    fund_accounts(w3, [owner.address])
    task = EvmTask.deploy(w3, owner, 3)
    task.add_roster(members, clients)
    assert task.contract.functions.clientCount().call() == n
    assert task.roster() == (tuple(members), tuple(clients))
    batches = [g for name, g in task.gas if name == "addClients"]
    assert len(batches) == 3 and max(batches) < TX_GAS_CAP, batches


def test_the_largest_closed_roster_is_created_under_the_gas_cap(w3: Any) -> None:
    """A round with MAX_CHAIN_CLIENTS closed-membership client seats and 255 members is
    created in one transaction under TX_GAS_CAP: the client seats are one contract's
    code (SPEC.md §7.3 "Roster"), not a storage slot each (≈ 22 k gas a seat, 23 M for
    1 024: a round that could never be created). Every seat reads its roster identity
    and the attached copy checks the roster code against event 0 (a squatter's
    registration on a closed seat: tests/adversarial/test_contract_seats.py)."""
    cfg, agg, _, _ = round_config(n=3, m=3)
    big = _largest(cfg)
    clients = big.clients
    fund_accounts(w3, [agg.address])
    board = EvmBoard(big, w3, aggregator=agg)
    deploy = max(g for name, g in board.gas if name == "deploy")
    assert deploy < TX_GAS_CAP, deploy
    f = board.contract.functions
    for seat in (1, 2, 513, MAX_CHAIN_CLIENTS):
        assert bytes.fromhex(f.clientIdentity(seat).call()[2:]) == clients[seat - 1]
    assert int(f.clientIdentity(MAX_CHAIN_CLIENTS + 1).call(), 16) == 0  # out of range
    assert int(f.clients(1).call()[0], 16) == 0  # nothing stored until it registers
    assert EvmBoard.attach(w3, board.address).config == board.config


def test_rounds_opened_by_call_with_the_task_roster(w3: Any) -> None:
    task, owner, members, clients = _task(w3)
    cfg = round_config(n=4, m=3)[0]
    b1 = task.open_round(cfg)
    b2 = task.open_round(cfg)
    assert (b1.config.round_id, b2.config.round_id) == (1, 2)
    assert task.last_round == 2
    assert task.round_address(1) == b1.address and task.round_address(2) == b2.address
    # the second round shares the first's roster code (same seats: not created again)
    r1, r2 = (b.contract.functions.rosterData().call() for b in (b1, b2))
    assert r1 == r2 and int(r1, 16) != 0
    d1, d2 = (next(g for name, g in b.gas if name == "deploy") for b in (b1, b2))
    assert d2 < d1 - 20 * 4 * 200, (d1, d2)  # no code deposit for the 4 seats
    for b in (b1, b2):
        assert b.config.members == tuple(i.address for i in members)
        assert b.config.clients == tuple(i.address for i in clients)
        assert b.config.aggregator == owner.address
        # an attached copy passes every code / immutables / event-0 check
        EvmBoard.attach(w3, b.address)
    opened = task.contract.events.RoundOpened().get_logs(from_block=0)
    assert [(e["args"]["roundId"], e["args"]["round"]) for e in opened] == [
        (1, b1.address),
        (2, b2.address),
    ]
    # a round contract for another round id than the next is refused
    from dataclasses import replace

    stale = EvmBoard(replace(b1.config, round_id=1), w3, aggregator=owner, verifier=task.verifier)
    _reverts(
        "WrongRoundId", task._send, task.contract.functions.openRound(stale.address), "openRound"
    )
    # a round run by another aggregator is refused
    cfg_x, agg_x, _, _ = round_config(n=4, m=3, round_id=3)
    fund_accounts(w3, [agg_x.address])
    foreign = EvmBoard(cfg_x, w3, aggregator=agg_x, verifier=task.verifier)
    _reverts(
        "WrongAggregator",
        task._send,
        task.contract.functions.openRound(foreign.address),
        "openRound",
    )
    assert task.last_round == 2


def test_gas_of_task_registration_is_recorded(w3: Any) -> None:
    task, _, members, clients = _task(w3)
    for party, ident in enumerate(clients, 1):
        task.register(ROLE_CLIENT, party, KeyPair.generate(), ident)
    regs = [g for name, g in task.gas if name == "register"]
    assert len(regs) == 4 and all(50_000 < g < 400_000 for g in regs), regs


def test_on_anvil_attach_audits_storage_against_the_logs(anvil_url: str) -> None:
    """Round trip on anvil (deploy, roster, register, open a round, attach), then the
    stored key of a registered client is overwritten (anvil_setStorageAt): attach
    refuses the task, naming the seat — the code check alone would pass."""
    from eth_utils import keccak

    w3 = connect(f"rpc:{anvil_url}")[0]
    task, owner, _, clients = _task(w3)
    key = KeyPair.generate()
    task.register(ROLE_CLIENT, 1, key, clients[0])
    board = task.open_round(round_config(n=4, m=3)[0])
    again = EvmTask.attach(f"rpc:{anvil_url}", task.address, owner)
    assert again.owner is owner and again.key(ROLE_CLIENT, 1) == key.pk
    assert again.round_address(1) == board.address
    # clients: mapping(uint32 => Seat) at slot 3; Seat = (identity, registered), pk[2]
    base = int.from_bytes(keccak((1).to_bytes(32, "big") + (3).to_bytes(32, "big")), "big")
    other = KeyPair.generate().pk.to_bytes()
    for i in (1, 2):
        slot = hex(base + i)
        w3.provider.make_request(
            "anvil_setStorageAt", [task.address, slot, "0x" + other[32 * (i - 1) : 32 * i].hex()]
        )
    assert task.key(ROLE_CLIENT, 1) != key.pk  # the write landed where the key is
    with pytest.raises(Exception, match="client 1: its stored key is not its TaskRegistered"):
        EvmTask.attach(f"rpc:{anvil_url}", task.address)

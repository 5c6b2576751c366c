"""Rounds are clones (SPEC.md §7.3 "Clones"): the attacker is whoever deploys a round —
it writes the creation code, so it chooses the runtime code and the config bytes the
clone reads. An auditor or node opening a round with ``EvmBoard.attach`` must refuse
every clone whose behaviour is not PvssRound's under event 0's config:

- a clone whose config bytes disagree with its event 0 (the real initializer ran —
  storage, hash chain and ``RoundCreated`` are genuine — and then the creation code
  flipped the stake in the code it deployed): the getter that reads it is named;
- a clone whose roster code (the client seats, SPEC.md §7.3 "Roster") is not event 0's;
- a proxy to an implementation that is not PvssRound's code;
- a proxy to a genuine PvssRound implementation that was never initialised (no event 0);
- the initializer run twice in one storage (``BadConfig(13)``), and a clone's calls
  never reach the initializer (it delegates to the implementation only).

Each test fails if the attack worked (attach accepted the clone, or init re-ran).
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from eth_account import Account  # noqa: E402

from secagg.boards.evm import (  # noqa: E402
    ARGS_BYTES,
    INIT_ARTIFACT,
    NO_ADDRESS,
    PROXY_HEAD,
    PROXY_TAIL,
    ContractRevert,
    EvmBoard,
    _artifact,
    _create_address,
    _revert_data,
    clone_initcode,
    config_signature,
    contract_config,
    fund_accounts,
)
from secagg.errors import ProtocolError  # noqa: E402

from ..evm_round import ChainRound, identity  # noqa: E402

STAKE_OFFSET = 116  # PvssRoundBase: uint256 stake at byte 116 of the config bytes


def _deploy_raw(w3: Any, data: bytes, acct: Any = None) -> str:
    """Sends a creation transaction of ``data`` as the first transaction of ``acct``
    (a fresh funded account if None)."""
    if acct is None:
        acct = Account.create()
        fund_accounts(w3, [bytes.fromhex(acct.address[2:])])
    base = w3.eth.get_block("latest").get("baseFeePerGas", 10**9)
    tx = {
        "data": "0x" + data.hex(),
        "gas": 15_000_000,
        "nonce": 0,
        "chainId": w3.eth.chain_id,
        "maxFeePerGas": 2 * base + 10**9,
        "maxPriorityFeePerGas": 10**9,
        "value": 0,
    }
    txh = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(txh, timeout=120)
    assert receipt["status"] == 1
    return receipt["contractAddress"]


def _returning(code: bytes) -> bytes:
    """Creation code that deploys ``code`` as it is (no initializer)."""
    n = len(code)
    # PUSH2 n, DUP1, PUSH1 14, PUSH0, CODECOPY, PUSH0, RETURN — then the code
    prefix = bytes([0x61, n >> 8, n & 0xFF, 0x80, 0x60, 0x0E, 0x5F, 0x39, 0x5F, 0xF3])
    prefix += bytes(14 - len(prefix))  # pad to 14 (STOPs never run)
    return prefix + code


def _patched_clone(rnd: ChainRound, patch: bytes) -> str:
    """A clone of ``rnd``'s config made by the attacker's creation code: the genuine
    initializer's delegate call, then ``patch``, then the initializer's RETURN."""
    board, w3 = rnd.board, rnd.board.w3
    init = clone_initcode(bytes.fromhex(board.round_init[2:]))
    assert init[-4:] == bytes.fromhex("5b3d5ff3")  # JUMPDEST RETURNDATASIZE PUSH0 RETURN
    evil = init[:-3] + patch + init[-3:]
    assert evil[:1] == b"\x60" and evil[1] == 0x32  # its own length is no longer 50
    evil = evil[:1] + bytes([len(evil)]) + evil[2:6] + bytes([len(evil)]) + evil[7:]
    acct = Account.create()
    fund_accounts(w3, [bytes.fromhex(acct.address[2:])])
    address = _create_address(acct.address, 0)
    cfg = rnd.cfg.__class__(**{**rnd.cfg.__dict__, "board": address})
    sig = config_signature(rnd.aggregator, cfg)
    iabi = w3.eth.contract(abi=_artifact(INIT_ARTIFACT)["abi"])
    call = bytes.fromhex(iabi.encode_abi("init", args=[contract_config(cfg), sig, NO_ADDRESS])[2:])
    return _deploy_raw(w3, evil + call, acct)


def test_a_clone_whose_config_bytes_disagree_with_event0_is_refused() -> None:
    rnd = ChainRound.create(n=3, m=3, mode="optimistic")
    board, w3 = rnd.board, rnd.board.w3
    # the attacker's creation code: the genuine initializer, then the stake's last
    # byte in the returned code overwritten (MSTORE8) before RETURN
    where = len(PROXY_HEAD) + 20 + len(PROXY_TAIL) + STAKE_OFFSET + 31
    patch = bytes([0x60, 0x07, 0x61, where >> 8, where & 0xFF, 0x53])  # PUSH1 7 PUSH2 w MSTORE8
    clone = _patched_clone(rnd, patch)
    code = bytes(w3.eth.get_code(clone))
    honest = bytes(w3.eth.get_code(board.address))
    assert len(code) == len(honest) and code != honest  # only config bytes differ
    with pytest.raises(ProtocolError, match=r"stake\(\) = .* disagrees with its config"):
        EvmBoard.attach(w3, clone)
    # control: the honest clone of the same config attaches
    assert EvmBoard.attach(w3, board.address).config == rnd.cfg


def test_a_clone_whose_roster_code_is_swapped_is_refused() -> None:
    """The genuine initializer ran (event 0 lists the real client seats), then the
    creation code pointed ``rosterData`` at the attacker's own roster code, its identity
    in client seat 1: the contract now takes that identity's signature for seat 1.
    ``attach`` compares the roster code with event 0's seats and refuses the clone."""
    rnd = ChainRound.create(n=3, m=3)
    board, w3 = rnd.board, rnd.board.w3
    genuine = int(board.contract.functions.rosterData().call(), 16)
    # rosterData's storage slot, found in an honest clone: it shares the slot with
    # registeredClients and excludedClients (two uint32, 0 at creation), below it
    slot = next(
        k
        for k in range(256)
        if int.from_bytes(w3.eth.get_storage_at(board.address, k)) == genuine << 64
    )
    attacker = identity()
    seats = attacker.address + b"".join(rnd.cfg.clients[1:])
    fake = int(_deploy_raw(w3, _returning(b"\x00" + seats)), 16)
    word = (fake << 64).to_bytes(32, "big")
    clone = _patched_clone(rnd, b"\x7f" + word + bytes([0x60, slot, 0x55]))  # PUSH32 PUSH1 SSTORE
    f = w3.eth.contract(address=clone, abi=board.contract.abi).functions
    assert bytes.fromhex(f.clientIdentity(1).call()[2:]) == attacker.address  # the attack
    with pytest.raises(ProtocolError, match="roster data .* is not its config's 3 client seats"):
        EvmBoard.attach(w3, clone)
    assert EvmBoard.attach(w3, board.address).config == rnd.cfg  # control


def test_a_roster_code_hint_that_is_not_the_seats_is_ignored() -> None:
    """Whoever creates a round names an existing contract as its roster code
    (``roster_code``, SPEC.md §7.3 "Roster"): one whose code is the roster with the
    attacker in seat 1, or any other contract. ``init`` takes a hint only if its code
    hash is the round's own seats' code: the round gets its own roster code, every
    seat reads event 0's identity, and the round attaches."""
    rnd = ChainRound.create(n=3, m=3)
    board, w3 = rnd.board, rnd.board.w3
    seats = b"".join(rnd.cfg.clients)
    forged = _deploy_raw(w3, _returning(b"\x00" + identity().address + seats[20:]))
    cfg = rnd.cfg.__class__(**{**rnd.cfg.__dict__, "round_id": 2})
    for hint in (forged, board.verifier):
        other = EvmBoard(cfg, w3, aggregator=rnd.aggregator, round_init=board.round_init,
                         roster_code=hint)  # fmt: skip
        f = other.contract.functions
        assert f.rosterData().call() not in (hint, board.contract.functions.rosterData().call())
        for i, a in enumerate(rnd.cfg.clients, 1):
            assert bytes.fromhex(f.clientIdentity(i).call()[2:]) == a
        assert EvmBoard.attach(w3, other.address).config == other.config
    # control: the honest round's own roster code is taken
    same = EvmBoard(cfg, w3, aggregator=rnd.aggregator, round_init=board.round_init,
                    roster_code=board.contract.functions.rosterData().call())  # fmt: skip
    assert (
        same.contract.functions.rosterData().call() == board.contract.functions.rosterData().call()
    )


def test_a_proxy_to_other_code_or_an_uninitialised_clone_is_refused() -> None:
    rnd = ChainRound.create(n=2, m=3)
    board, w3 = rnd.board, rnd.board.w3
    args = bytes(w3.eth.get_code(board.address))[-ARGS_BYTES:]
    # a proxy whose implementation is the verifier (code, but not PvssRound's)
    fake = _deploy_raw(
        w3, _returning(PROXY_HEAD + bytes.fromhex(board.verifier[2:]) + PROXY_TAIL + args)
    )
    with pytest.raises(ProtocolError, match="its implementation .* runs other code"):
        EvmBoard.attach(w3, fake)
    # a proxy to the genuine implementation with a copy of the genuine config bytes,
    # never initialised: no event 0, no hash chain
    bare = _deploy_raw(
        w3,
        _returning(PROXY_HEAD + bytes.fromhex(board.implementation[2:]) + PROXY_TAIL + args),
    )
    with pytest.raises(ProtocolError, match="has no RoundCreated event"):
        EvmBoard.attach(w3, bare)
    # a proxy with its config cut short is not a clone
    short = _deploy_raw(
        w3, _returning(PROXY_HEAD + bytes.fromhex(board.implementation[2:]) + PROXY_TAIL)
    )
    with pytest.raises(ProtocolError, match="not a round clone"):
        EvmBoard.attach(w3, short)


def test_the_initializer_runs_once_per_storage_and_never_through_a_clone() -> None:
    rnd = ChainRound.create(n=2, m=3)
    board, w3 = rnd.board, rnd.board.w3
    sig = config_signature(rnd.aggregator, rnd.cfg)
    # through the clone: it delegates to PvssRound, which has no init function
    clone = w3.eth.contract(address=board.address, abi=_artifact(INIT_ARTIFACT)["abi"])
    with pytest.raises(Exception) as raw:  # noqa: PT011 - a bare revert, no error data
        clone.functions.init(contract_config(rnd.cfg), sig, NO_ADDRESS).call({"gas": 15_000_000})
    data = _revert_data(raw.value)
    assert not data  # no selector matched: a plain revert, storage untouched
    assert board.head == bytes(board.contract.functions.head().call())
    # the initializer called directly initialises its own storage once, then refuses
    init = w3.eth.contract(address=board.round_init, abi=_artifact(INIT_ARTIFACT)["abi"])
    cfg = rnd.cfg.__class__(**{**rnd.cfg.__dict__, "board": bytes.fromhex(board.round_init[2:])})
    sig = config_signature(rnd.aggregator, cfg)
    tx = {"from": w3.eth.accounts[0], "gas": 15_000_000}
    init.functions.init(contract_config(cfg), sig, NO_ADDRESS).transact(tx)
    with pytest.raises(Exception) as raw:  # noqa: PT011 - mapped below
        init.functions.init(contract_config(cfg), sig, NO_ADDRESS).call(tx)
    err = ContractRevert(_revert_data(raw.value), board._errors)
    assert err.name == "BadConfig" and err.args_ == (13,)

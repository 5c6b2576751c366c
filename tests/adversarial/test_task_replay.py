"""Replays across the rounds of one task (SPEC.md §7.8). Two rounds opened by the same
``PvssTask`` share its roster and may share the seats' PVSS keys, but each round is its
own contract with its own round id: a post signed for round 1 is refused by round 2, a
round-1 proof of possession re-signed for round 2 is refused, and a registration signed
for the task itself is refused by every round. Each attack would pass if the contexts
(board, round id) did not bind the round."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from pvss.keys import KeyPair  # noqa: E402
from secagg.boards import RuleViolation  # noqa: E402
from secagg.boards.evm import connect, fund_accounts  # noqa: E402
from secagg.boards.task import EvmTask, task_registration  # noqa: E402
from secagg.graph import compute_round_seed  # noqa: E402
from secagg.messages import ROLE_CLIENT, ROLE_MEMBER  # noqa: E402

from ..evm_round import ChainRound, identity, round_config  # noqa: E402


def _task() -> tuple[EvmTask, Any]:
    """A task with a sealed 3-member, 3-client roster, and ``open(member_keys=None)``
    that opens its next round (long-lived client keys; member keys as given, else the
    same long-lived ones)."""
    w3: Any = connect("evm")[0]
    owner = identity()
    members = [identity() for _ in range(3)]
    clients = [identity() for _ in range(3)]
    fund_accounts(w3, [owner.address])
    task = EvmTask.deploy(w3, owner, 3)
    task.add_roster([i.address for i in members], [i.address for i in clients])
    member_keys = [KeyPair.generate() for _ in members]
    client_keys = [KeyPair.generate() for _ in clients]
    cfg = round_config(n=3, m=3)[0]

    def open_round(keys: list[KeyPair] | None = None) -> ChainRound:
        rnd = ChainRound(task.open_round(cfg), owner, members, clients)
        rnd.member_keys, rnd.client_keys = keys or member_keys, client_keys
        return rnd

    return task, open_round


def _two_rounds() -> tuple[EvmTask, ChainRound, ChainRound]:
    task, open_round = _task()
    return task, open_round(), open_round()


def _refused(rnd: ChainRound, post: Any, rule: str, error: str) -> None:
    with pytest.raises(RuleViolation) as info:
        rnd.board.submit(post)
    assert info.value.fault.rule == rule, info.value
    assert error in str(info.value), info.value


def test_a_round_one_post_does_not_replay_into_round_two() -> None:
    task, r1, r2 = _two_rounds()
    assert (r1.cfg.round_id, r2.cfg.round_id) == (1, 2)
    assert r1.cfg.members == r2.cfg.members and r1.cfg.clients == r2.cfg.clients
    # client 1's registration, signed for round 1 (with round 2's current view so only
    # the round binding differs), accepted by round 1 ...
    reg1 = r1.registration(ROLE_CLIENT, 1)
    r1.board.submit(r1.sign(ROLE_CLIENT, 1, reg1))
    # ... and refused by round 2: the signing digest names round 1's board and id
    _refused(r2, r1.sign(ROLE_CLIENT, 1, reg1, view=r2.board.view()), "signature", "WrongSigner")
    # the same PoP, re-signed for round 2 by the seat itself: the PoP binds round 1
    _refused(r2, r2.sign(ROLE_CLIENT, 1, reg1), "proof-of-possession", "PopFailed")
    # a member's round-1 registration likewise
    m1 = r1.registration(ROLE_MEMBER, 2)
    r1.board.submit(r1.sign(ROLE_MEMBER, 2, m1))
    _refused(r2, r2.sign(ROLE_MEMBER, 2, m1), "proof-of-possession", "PopFailed")
    # the honest round-2 registration (same long-lived key, round-2 PoP) is accepted
    r2.board.submit(r2.sign(ROLE_CLIENT, 1, r2.registration(ROLE_CLIENT, 1)))
    assert r2.board.state().clients[1] == r1.board.state().clients[1]


def test_a_task_registration_does_not_replay_into_a_round() -> None:
    task, r1, _ = _two_rounds()
    key = r1.client_keys[0]
    msg, sig = task_registration(
        task.chain_id, task.raw_address, ROLE_CLIENT, 1, key, r1.clients[0]
    )
    task.submit_registration(msg, sig)
    # the task registration's PoP (round 0 of the task) presented to round 1, signed for
    # round 1 by the seat: refused
    _refused(r1, r1.sign(ROLE_CLIENT, 1, msg), "proof-of-possession", "PopFailed")


def test_a_reused_member_key_makes_the_next_round_seed_predictable() -> None:
    """Why member keys rotate every round (SPEC.md §7.8): Γ = sk·H_SEED does not depend
    on the round, so with round 1's public reveals anyone computes round 2's seed from
    its registration head alone, before any round-2 reveal — the server, which orders
    registrations, could grind the graph. With fresh member keys (control) it cannot."""
    _, open_round = _task()
    r1 = open_round()
    r1.register_all().reveal_all()
    gammas = [r1.board.state().reveals[k] for k in range(1, 4)]
    fresh = [KeyPair.generate() for _ in range(3)]
    for keys, reused in ((None, True), (fresh, False)):
        rnd = open_round(keys)
        rnd.register_all()
        rnd.to("deal")
        registration_head = bytes(rnd.board.contract.functions.head().call())
        predicted = compute_round_seed(registration_head, gammas)
        rnd.reveal_all()
        assert (rnd.board.state().round_seed == predicted) is reused

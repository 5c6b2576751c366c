"""Attacks on the task's reward pool (SPEC.md §7.9), on the embedded chain with
``RoundStub`` rounds (PvssRound's getters set by hand, so each case is exact): a
re-entrant receiver withdraws once; a second settle, a settle of a round the task did
not open or whose result is not posted, is refused; a short pool pays pro rata and never
more than it holds; identities that hold no task seat and faulted identities get
nothing; paging changes no credit."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from eth_utils import keccak  # noqa: E402

from secagg.boards.evm import _checksum, connect  # noqa: E402
from tests.evm_round import identity  # noqa: E402
from tests.task_rewards import deploy, make_task, open_stub, reverts  # noqa: E402


@pytest.fixture(scope="module")
def w3() -> Any:
    return connect("evm")[0]


def _ids(n: int) -> list[bytes]:
    return [identity().address for _ in range(n)]


def test_a_reentrant_receiver_is_paid_once(w3: Any) -> None:
    members = _ids(2)
    clients = _ids(2)
    owner = identity()
    from secagg.boards.evm import fund_accounts
    from secagg.boards.task import EvmTask

    fund_accounts(w3, [owner.address])
    task = EvmTask.deploy(w3, owner, 2)
    claimer = deploy(task, "ReentrantClaimer")
    claimer_raw = bytes.fromhex(claimer.address[2:])
    task.add_roster(members, [*clients, claimer_raw])
    task._send(claimer.functions.setTask(task.address), "setTask")
    task.set_rewards(10**15, 10**14)
    task.fund(10**17)
    open_stub(task, members, [1, 1], [*clients, claimer_raw], [True, True, True])
    task.settle(1)
    assert task.credit(claimer_raw) == 10**15
    before = w3.eth.get_balance(task.address)
    task._send(claimer.functions.claim(), "claim")
    f = claimer.functions
    assert f.payments().call() == 1
    assert f.reentryFailed().call() is True and f.reentrySucceeded().call() is False
    # it was the lock that refused it (the credit, zeroed first, would refuse it too)
    assert bytes(f.reentryError().call()) == keccak(b"TaskReentrant()")[:4]
    assert f.received().call() == 10**15
    assert task.credit(claimer_raw) == 0
    assert w3.eth.get_balance(task.address) == before - 10**15
    # nothing left to claim: a second claim reverts (NoTaskCredit names the account)
    exc = reverts("NoTaskCredit", task._send, claimer.functions.claim(), "claim")
    assert exc.args_[0].lower() == claimer.address.lower()


def test_settle_rules(w3: Any) -> None:
    members, clients = _ids(2), _ids(3)
    task, _ = make_task(w3, members, clients)
    task.set_rewards(7, 3)
    task.fund(10**6)
    f = task.contract.functions
    # no round 1 yet: refused
    reverts("UnknownRound", task._send, f.settle(1, 10), "settle")
    rid, stub = open_stub(task, members, [2, 2], clients, [True, True, False], posted=False)
    exc = reverts("ResultNotPosted", task._send, f.settle(rid, 10), "settle")
    assert (exc.args_[0], exc.args_[1].lower()) == (rid, stub.address.lower())
    task._send(stub.functions.postResult(), "stubResult")
    reverts("EmptyPage", task._send, f.settle(rid, 0), "settle")
    task.settle(rid)
    assert task.payout(rid)["paid"] == 2 * 7 + 4 * 3
    exc = reverts("AlreadySettled", task._send, f.settle(rid, 10), "settle")
    assert exc.args_ == (rid,)
    # a round contract of another task (never opened by this one) cannot be settled:
    # settle takes this task's round ids only, and round 2 is not opened
    other, _ = make_task(w3, members, clients)
    open_stub(other, members, [2, 2], clients, [True, True, True])
    reverts("UnknownRound", task._send, f.settle(2, 10), "settle")
    assert task.pool_state()["credited"] == 26
    # funding needs Ether; only the owner sets rewards
    reverts("NothingToFund", task.fund, 0)
    outsider = identity()
    from secagg.boards.evm import fund_accounts
    from secagg.boards.task import EvmTask

    fund_accounts(w3, [outsider.address])
    as_outsider = EvmTask.attach(w3, task.address, outsider)
    exc = reverts("NotOwner", as_outsider.set_rewards, 10**18, 10**18)
    assert exc.args_[0].lower() == "0x" + outsider.address.hex()
    as_outsider.fund(5)  # anyone may fund
    assert task.pool_state()["funded"] == 10**6 + 5


def test_a_short_pool_pays_pro_rata_and_never_more_than_it_holds(w3: Any) -> None:
    members, clients = _ids(3), _ids(4)
    task, _ = make_task(w3, members, clients)
    task.set_rewards(10, 5)
    task.fund(30)
    rid, _ = open_stub(task, members, [2, 1, 0], clients, [True, True, False, True])
    task.settle(rid)
    p = task.payout(rid)
    assert (p["owed"], p["reserved"]) == (3 * 10 + 3 * 5, 30)
    # every credit scaled by 30 / 45, floored: clients 6, members 6 and 3, member 3 none
    credits = {c["identity"]: c["amount"] for c in task.credits(rid)}
    want = {_checksum(clients[i]): 6 for i in (0, 1, 3)}
    want |= {_checksum(members[0]): 6, _checksum(members[1]): 3}
    assert credits == want
    st = task.pool_state()
    assert st["credited"] == 27 == p["paid"] <= st["funded"] == 30
    assert st["pool"] == 3  # the rounding dust is back in the pool
    # a later round with an empty-ish pool credits only what is left
    rid2, _ = open_stub(task, members, [0, 0, 0], clients, [True, True, True, True])
    task.settle(rid2)
    assert task.payout(rid2)["paid"] == 0 and task.pool_state()["pool"] == 3
    assert sum(task.credit(a) for a in members + clients) == 27 <= 30


def test_no_seat_and_faulted_identities_get_nothing(w3: Any) -> None:
    members, clients = _ids(2), _ids(3)
    task, _ = make_task(w3, members, clients)
    task.set_rewards(100, 10)
    task.fund(10**6)
    sybil_member, sybil_client = identity().address, identity().address
    # the round's seats hold identities the task never seated (the owner could deploy
    # such a round): they earn nothing; a faulted client and member earn nothing
    rid, stub = open_stub(
        task,
        [members[0], sybil_member],
        [4, 4],
        [clients[0], sybil_client, clients[2]],
        [True, True, True],
        posted=False,
    )
    task._send(stub.functions.setFault(_checksum(clients[2]), 1), "stubFault")
    task._send(stub.functions.postResult(), "stubResult")
    task.settle(rid)
    paid = {c["identity"]: c["amount"] for c in task.credits(rid)}
    assert paid == {_checksum(members[0]): 40, _checksum(clients[0]): 100}
    assert task.credit(sybil_member) == task.credit(sybil_client) == 0
    assert task.credit(clients[2]) == 0
    p = task.payout(rid)
    # owed counts |U| = 3 and the seated members' 4 shares; what no one earned went back
    assert p["owed"] == 3 * 100 + 4 * 10 and p["paid"] == 140
    assert task.pool_state()["pool"] == 10**6 - 140
    # a member seat held by another seat's identity (member 2's in member 1's place)
    rid2, stub2 = open_stub(task, [members[1], members[0]], [5, 5], clients, [False] * 3)
    task.settle(rid2)
    assert task.credits(rid2) == []


def test_paging_changes_no_credit(w3: Any) -> None:
    members, clients = _ids(3), _ids(20)
    task, _ = make_task(w3, members, clients)
    task.set_rewards(11, 2)
    task.fund(10**6)
    inc = [i % 3 != 0 for i in range(20)]
    r1, _ = open_stub(task, members, [3, 1, 2], clients, inc)
    r2, _ = open_stub(task, members, [3, 1, 2], clients, inc)
    assert task.settle(r1, page=4) == 6  # 23 seats, 4 a page
    assert task.settle(r2, page=100) == 1
    strip = [[(c["role"], c["party"], c["amount"]) for c in task.credits(r)] for r in (r1, r2)]
    assert strip[0] == strip[1] and len(strip[0]) == 3 + sum(inc)
    assert task.payout(r1)["paid"] == task.payout(r2)["paid"] == sum(inc) * 11 + 6 * 2


def test_a_round_whose_getters_change_between_pages_gets_no_more_than_reserved(w3: Any) -> None:
    """A round contract the owner opened may be anything (§7.8: its code is not checked
    on chain): a stub that, after the first page, lists the task's client identities
    again in new seats (a real PvssRound's seats and U are frozen by then) still gets
    only what the first page reserved."""
    members, clients = _ids(2), _ids(6)
    task, _ = make_task(w3, members, clients)
    task.set_rewards(10, 1)
    task.fund(10**6)
    rid, stub = open_stub(task, members, [0, 0], clients, [True] * 6)
    f = task.contract.functions
    task._send(f.settle(rid, 3), "settle")  # members 1, 2 (no shares), client 1
    p = task.payout(rid)
    assert (p["owed"], p["reserved"], p["paid"]) == (60, 60, 10)
    # the "round" now has 12 client seats, every identity twice, all included: 11 more
    # credits of 10 would be 110 on top of the 10 paid
    task._send(stub.functions.addClients([_checksum(a) for a in clients], [True] * 6), "x")
    assert stub.functions.nClients().call() == 12
    task._send(f.settle(rid, 100), "settle")
    p = task.payout(rid)
    assert p["done"] and p["paid"] == 60 == p["reserved"]
    st = task.pool_state()
    assert st["credited"] == 60 and st["pool"] == 10**6 - 60
    assert sum(task.credit(a) for a in members + clients) == 60


def _transfer(task: Any, value: int) -> None:
    """A plain Ether transfer to the task from its owner's account (pre-flight only)."""
    from secagg.boards.evm import ContractRevert, _revert_data

    tx = {"from": _checksum(task.owner.address), "to": task.address, "value": value}
    try:
        task.w3.eth.call(tx, "pending")
    except Exception as exc:  # noqa: BLE001 - providers raise different types
        data = _revert_data(exc)
        if data is None:
            raise
        raise ContractRevert(data, task._errors) from None
    raise AssertionError("the transfer was accepted")


def test_an_optimistic_round_must_forfeit_to_the_task(w3: Any) -> None:
    """A round whose slashed stakes would go elsewhere (its own pool, or an account the
    owner picked) is not opened: every optimistic round's forfeits reach the task."""
    members, clients = _ids(2), _ids(2)
    task, _ = make_task(w3, members, clients)
    other = _checksum(identity().address)
    for to in (other, "0x" + "00" * 20):
        exc = reverts(
            "WrongForfeitTo", open_stub, task, members, [0, 0], clients, [True, True], forfeit_to=to
        )
        assert exc.args_[0].lower() == to.lower()
        assert task.last_round == 0
    rid, _stub = open_stub(task, members, [0, 0], clients, [True, True], forfeit_to=task.address)
    assert rid == task.last_round == 1


def test_collect_counts_what_arrived_and_nothing_else(w3: Any) -> None:
    """collect() moves exactly the round's credit into the pool; Ether sent to the task
    any other way is refused; a round that re-enters collect() collects nothing; the
    credits settle pays never exceed funded + slashed."""
    members, clients = _ids(2), _ids(2)
    task, _ = make_task(w3, members, clients)
    task.set_rewards(400, 0)
    task.fund(500)
    rid, stub = open_stub(task, members, [0, 0], clients, [True, True], forfeit_to=task.address)
    # nothing slashed yet: nothing to collect
    reverts("NothingToCollect", task._send, task.contract.functions.collect(rid), "collect")
    reverts("UnknownRound", task._send, task.contract.functions.collect(rid + 1), "collect")
    task._send(stub.functions.slash(task.address), "slash", 300)
    # a plain transfer to the task is not a deposit and not a forfeit
    reverts("UnexpectedPayment", _transfer, task, 1)
    # a round that re-enters collect() while paying: the whole collect reverts
    task._send(stub.functions.setReenter(True, rid), "reenter")
    reverts("TaskReentrant", task._send, task.contract.functions.collect(rid), "collect")
    assert task.pool_state()["slashed"] == 0
    task._send(stub.functions.setReenter(False, rid), "reenter")
    assert task.collect(rid) == 300
    st = task.pool_state()
    assert (st["slashed"], st["pool"], st["balance"]) == (300, 800, 800)
    assert task.forfeits(rid) == {"collected": 300, "due": 0}
    task.settle(rid)  # owed 2 x 400 = 800: the slashed stake makes the pool whole
    st = task.pool_state()
    assert st["credited"] == 800 == st["funded"] + st["slashed"]
    assert st["pool"] == 0

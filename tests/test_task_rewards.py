"""Rewards for verified work on a task (SPEC.md §7.9), with real rounds on the embedded
chain: round 1 (full mode) has a client that drops before upload and a member that posts
no shares; round 2 (optimistic) has a client whose bad pair dealing is challenged (its
stake slashed, its identity faulted). After each result the task credits each included
client and each member per valid share exactly the rewards the round was opened with;
the dropout, the silent member and the faulted client get nothing; the slashed stake
(less the challenger's reward) and a false accuser's bond flow into the task's pool;
what the task credits never exceeds what was deposited plus what was slashed."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from pvss.group import ORDER as R  # noqa: E402
from pvss.keys import KeyPair  # noqa: E402
from pvss.transcript import PURPOSE_PAIR  # noqa: E402
from secagg.boards.evm import ContractRevert, _checksum, connect  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    DealingItem,
    DealingsPost,
)

from .evm_round import ChainRound, identity, round_config  # noqa: E402
from .task_rewards import make_task  # noqa: E402

PER_CLIENT = 3 * 10**12
PER_SHARE = 10**11


@pytest.fixture(scope="module")
def w3() -> Any:
    return connect("evm")[0]


def _round(task: Any, owner: Any, members: list, clients: list, **kw: Any) -> ChainRound:
    mode = kw.pop("mode", None)
    extra = {"mode": mode, "challenge_blocks": 8} if mode else {}
    cfg = round_config(n=len(clients), m=len(members), **kw)[0]
    board = task.open_round(cfg, **extra)
    rnd = ChainRound(board, owner, members, clients)
    rnd.member_keys = [KeyPair.generate() for _ in members]  # member keys rotate (§7.8)
    rnd.client_keys = [KeyPair.generate() for _ in clients]
    return rnd


def _shares_and_result(rnd: ChainRound, members: list[int]) -> dict[int, int]:
    posted = {}
    for k in members:
        post = rnd.shares(k)
        rnd.post(ROLE_MEMBER, k, post)
        posted[k] = len(post.items)
    rnd.to("result")
    rnd.post(ROLE_AGGREGATOR, 0, rnd.result())
    return posted


def _expected(rnd: ChainRound, posted: dict[int, int], per_client: int, per_share: int) -> dict:
    want: dict[str, int] = {}
    for k, count in posted.items():
        if count:
            want[_checksum(rnd.members[k - 1].address)] = count * per_share
    for i in rnd.board.included():
        want[_checksum(rnd.clients[i - 1].address)] = per_client
    return want


def test_payouts_across_rounds_with_dropouts_faults_and_slashing(w3: Any) -> None:
    members = [identity() for _ in range(3)]
    clients = [identity() for _ in range(4)]
    task, owner = make_task(w3, [i.address for i in members], [i.address for i in clients])
    task.set_rewards(PER_CLIENT, PER_SHARE)
    deposit = 10**16
    task.fund(deposit)

    # round 1, full mode: client 4 drops before upload, member 3 posts no shares
    r1 = _round(task, owner, members, clients)
    r1.register_all().reveal_all().deal_all().upload_all([1, 2, 3]).confirm_all()
    with pytest.raises(ContractRevert, match="ResultNotPosted"):
        task.settle(1)  # nothing is paid before the result
    posted1 = _shares_and_result(r1, [1, 2])
    assert r1.board.included() == (1, 2, 3)
    # the rewards change: round 1 keeps the ones it was opened with, round 2 gets these
    task.set_rewards(2 * PER_CLIENT, 2 * PER_SHARE)

    # round 2, optimistic: client 1's pair dealing to 2 is bad and is challenged
    r2 = _round(task, owner, members, clients, mode="optimistic", deal_blocks=24)
    r2.register_all().reveal_all()
    post = r2.dealings(1)
    pair = post.items[1].dealing
    off = 5 + 288 + 256
    z = int.from_bytes(pair[off : off + 32], "big")
    bad = pair[:off] + ((z + 1) % R).to_bytes(32, "big") + pair[off + 32 :]
    items = list(post.items)
    items[1] = DealingItem(PURPOSE_PAIR, 2, bad)
    r2.post(ROLE_CLIENT, 1, DealingsPost(1, tuple(items)))
    assert r2.board.challenge((1, PURPOSE_PAIR, 2)) is True
    r2.deal_all([2, 3, 4])
    # a false accusation: client 2's pair dealing to 3 is valid, the accuser's bond is
    # forfeited to the task as well
    assert r2.board.challenge((2, PURPOSE_PAIR, 3)) is False
    r2.upload_all([2, 3, 4]).confirm_all()
    posted2 = _shares_and_result(r2, [1, 2, 3])
    assert r2.board.included() == (2, 3, 4)
    assert r2.board.reputation(clients[0].address)[2] == 1  # the fault, on the round

    # the round credited the task, not its own pool (forfeitTo = the task, §7.9)
    rfn = r2.board.contract.functions
    stake, reward, bond = rfn.stake().call(), rfn.reward().call(), rfn.bond().call()
    forfeited = stake - reward + bond
    assert rfn.forfeitTo().call() == task.address
    assert rfn.pool().call() == 0
    assert rfn.credit(task.address).call() == forfeited
    assert task.collect(1) == 0  # round 1 (full mode) owes nothing: nothing is sent
    with pytest.raises(ContractRevert, match="NothingToCollect"):
        task._send(task.contract.functions.collect(1), "collect")
    # round 2 is settled before and after its forfeits arrive: the pool grows between
    task.settle(1)
    assert task.collect(2) == forfeited
    assert task.collect(2) == 0
    assert rfn.credit(task.address).call() == 0
    for rid in (1, 2):
        if rid == 1:
            with pytest.raises(ContractRevert, match="AlreadySettled"):
                task.settle(rid)
            continue
        task.settle(rid)
        with pytest.raises(ContractRevert, match="AlreadySettled"):
            task.settle(rid)

    want1 = _expected(r1, posted1, PER_CLIENT, PER_SHARE)
    want2 = _expected(r2, posted2, 2 * PER_CLIENT, 2 * PER_SHARE)
    got1 = {c["identity"]: c["amount"] for c in task.credits(1)}
    got2 = {c["identity"]: c["amount"] for c in task.credits(2)}
    assert got1 == want1 and got2 == want2
    # the dropout and the silent member got nothing in round 1; the faulted client
    # nothing in round 2 (its identity earned in round 1, where it was honest)
    assert _checksum(clients[3].address) not in got1
    assert _checksum(members[2].address) not in got1
    assert _checksum(clients[0].address) not in got2
    assert _checksum(clients[0].address) in got1
    # members' units are the valid shares the round counted for them
    for k in (1, 2, 3):
        assert r2.board.reputation(members[k - 1].address)[1] == posted2[k]

    st = task.pool_state()
    total = sum(want1.values()) + sum(want2.values())
    assert st["slashed"] == forfeited
    assert st["credited"] == total <= st["funded"] + st["slashed"] == deposit + forfeited
    assert st["pool"] == deposit + forfeited - total
    every = [i.address for i in members + clients]
    assert sum(task.credit(a) for a in every) == total
    assert w3.eth.get_balance(task.address) == deposit + forfeited

    # an identity withdraws its credit once (from its own account: identities are keys)
    from secagg.boards.evm import fund_accounts
    from secagg.boards.task import EvmTask

    m1 = members[0]
    fund_accounts(w3, [m1.address])
    as_m1 = EvmTask.attach(w3, task.address, m1)
    owed = task.credit(m1.address)
    assert as_m1.withdraw() == owed > 0
    assert task.credit(m1.address) == 0
    assert w3.eth.get_balance(task.address) == deposit + forfeited - owed
    with pytest.raises(ContractRevert, match="NoTaskCredit"):
        as_m1.withdraw()

    # reputation counters read back from the round contracts
    reps = {(r["role"], r["party"]): r for r in task.reputations(2)}
    assert reps[("client", 1)]["faults"] == 1 and reps[("client", 1)]["included"] is False
    assert reps[("member", 1)]["valid_shares"] == posted2[1]


def _stub_task(w3: Any) -> tuple[Any, list[bytes], list[bytes]]:
    from .task_rewards import open_stub

    members = [identity().address for _ in range(2)]
    clients = [identity().address for _ in range(3)]
    task, _ = make_task(w3, members, clients)
    task.set_rewards(50, 7)
    task.fund(1000)
    open_stub(task, members, [3, 0], clients, [True, False, True])
    task.settle(1)
    open_stub(task, members, [1, 1], clients, [True, True, True])  # not settled
    return task, members, clients


def test_cli_payouts_shows_credits_and_reputation(w3: Any, capsys: Any) -> None:
    import json

    from secagg.cli import run_payouts

    task, members, clients = _stub_task(w3)
    assert run_payouts(w3, task.address, None, True) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pool"] == {
        "funded": 1000,
        "slashed": 0,
        "pool": 1000 - 121,
        "credited": 121,
        "balance": 1000,
    }
    r1, r2 = out["rounds"]
    assert r1["payout"]["done"] is True and r2["payout"]["started"] is False
    assert [(c["role"], c["party"], c["units"], c["amount"]) for c in r1["credits"]] == [
        ("member", 1, 3, 21),
        ("client", 1, 1, 50),
        ("client", 3, 1, 50),
    ]
    assert r2["credits"] == []
    rep = {(q["role"], q["party"]): q for q in r1["reputation"]}
    assert rep[("member", 1)]["valid_shares"] == 3 and rep[("member", 2)]["valid_shares"] == 0
    assert rep[("client", 2)]["included"] is False
    # prose, one round
    assert run_payouts(w3, task.address, 1, False) == 0
    text = capsys.readouterr().out
    assert "round 1" in text and "round 2" not in text and "settled" in text
    assert f"credit client 3 {_checksum(clients[2])}: 50 wei" in text
    # a round the task did not open: exit 2, named
    assert run_payouts(w3, task.address, 3, False) == 2
    assert "--round 3" in capsys.readouterr().err


def test_cli_payouts_on_anvil(tmp_path: Any, capsys: Any) -> None:
    import json

    from secagg.boards.evm import ANVIL, start_anvil, stop_process
    from secagg.cli import main

    if not ANVIL.exists():
        pytest.skip(f"anvil not installed ({ANVIL} missing): run `make install` (npm ci)")
    proc, url = start_anvil(tmp_path / "anvil.log")
    try:
        task, _, _ = _stub_task(connect(f"rpc:{url}")[0])
        assert main(["payouts", "--rpc", url, "--task", task.address, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["pool"]["credited"] == 121
        assert [c["amount"] for c in out["rounds"][0]["credits"]] == [21, 50, 50]
    finally:
        stop_process(proc)

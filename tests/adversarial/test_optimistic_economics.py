"""Optimistic mode that bites (SPEC.md §7.7): a dealer that challenges its own bad
dealing (from an account it controls) ends worse off than an honest client; an
honest recipient finds and challenges a bad pair dealing inside the window
(``secagg.roles.dealings_to_challenge`` + ``EvmBoard.challenge_invalid``), so the
cheater is excluded and not its victim; payments are pull-based and a re-entrant
receiver is paid once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from pvss.group import ORDER as R  # noqa: E402
from pvss.transcript import PURPOSE_PAIR  # noqa: E402
from secagg.boards import RuleViolation  # noqa: E402
from secagg.boards.evm import ContractRevert  # noqa: E402
from secagg.messages import ROLE_CLIENT, ROLE_MEMBER, DealingItem, DealingsPost  # noqa: E402
from secagg.roles import dealings_to_challenge  # noqa: E402
from tests.evm_round import ChainRound  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _bad_pair_round(**kw: object) -> tuple[ChainRound, bytes]:
    """n = 3 optimistic: client 1's pair dealing to client 2 has a wrong response z_1;
    clients 1 and 2 have posted."""
    rnd = ChainRound.create(deal_blocks=24, mode="optimistic", challenge_blocks=8, **kw)
    rnd.register_all().reveal_all()
    post = rnd.dealings(1)
    pair = post.items[1].dealing
    off = 5 + 288 + 256  # point 1's z (point 0 is the recipient's)
    z = int.from_bytes(pair[off : off + 32], "big")
    bad = pair[:off] + ((z + 1) % R).to_bytes(32, "big") + pair[off + 32 :]
    rnd.post(
        ROLE_CLIENT,
        1,
        DealingsPost(1, (post.items[0], DealingItem(PURPOSE_PAIR, 2, bad), post.items[2])),
    )
    rnd.post(ROLE_CLIENT, 2, rnd.dealings(2))
    return rnd, bad


def _last_fee(w3) -> int:  # noqa: ANN001
    """Wei the sender of the latest transaction paid for its gas."""
    txh = w3.eth.get_block("latest")["transactions"][-1]
    receipt = w3.eth.get_transaction_receipt(txh)
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def test_a_self_challenge_leaves_the_dealer_worse_off_than_honesty() -> None:
    rnd, _ = _bad_pair_round()
    board, w3 = rnd.board, rnd.board.w3
    fn = board.contract.functions
    stake, reward, bond = fn.stake().call(), fn.reward().call(), board.bond
    wallet = board.account("dealer1-wallet")  # an account client 1 controls
    start = w3.eth.get_balance(wallet)
    # the cheater races every watcher: its own account challenges its bad dealing
    assert board.challenge((1, PURPOSE_PAIR, 2), "dealer1-wallet") is True
    gas = _last_fee(w3)
    rnd.post(ROLE_CLIENT, 3, rnd.dealings(3))
    rnd.to("result")
    # the excluded dealer gets nothing back, ever
    with pytest.raises(RuleViolation, match="NothingToWithdraw"):
        board.withdraw_stake(1)
    for i in (2, 3):
        board.withdraw_stake(i)
    paid = board.withdraw("dealer1-wallet")
    gas += _last_fee(w3)
    assert paid == reward + bond
    assert w3.eth.get_balance(wallet) == start - bond + paid - gas
    # net of the cheating coalition (identity 1 + its wallet): stake paid in, reward out
    cheater = -stake + (w3.eth.get_balance(wallet) - start)
    # an honest client: stake in, stake and a share of the pool credited to its identity
    share = (stake - reward) // 2
    honest = -stake + board.credit(rnd.clients[1].address)
    assert board.credit(rnd.clients[1].address) == stake + share
    assert cheater <= reward - stake < 0 <= honest
    assert cheater < honest
    # the honest identities withdraw themselves: nothing stays locked but rounding dust
    assert fn.credit(rnd.clients[0].address).call() == 0
    assert w3.eth.get_balance(board.address) == 2 * (stake + share) + (stake - reward) % 2


def test_an_honest_recipient_challenges_a_bad_pair_dealing_within_the_window() -> None:
    rnd, _ = _bad_pair_round()
    board = rnd.board
    st = board.state()
    # control: nothing to challenge for client 3 (no pair dealing of client 1 to it is bad)
    assert dealings_to_challenge(st, ROLE_CLIENT, 3) == []
    # the victim and every member find the bad pair dealing, and only it
    assert dealings_to_challenge(st, ROLE_CLIENT, 2) == [(1, PURPOSE_PAIR, 2)]
    assert dealings_to_challenge(st, ROLE_MEMBER, 1) == [(1, PURPOSE_PAIR, 2)]
    window = board.contract.functions.challengeBlocks().call()
    dealt_at = board.contract.functions.clients(1).call()[2]
    assert board.height() <= dealt_at + window  # still inside the window
    assert board.challenge_invalid(dealings_to_challenge(st, ROLE_CLIENT, 2), "client2") == [
        (1, PURPOSE_PAIR, 2)
    ]
    st = board.state()
    assert 1 not in st.dealers and 2 in st.dealers
    assert dealings_to_challenge(st, ROLE_CLIENT, 2) == []  # nothing left to dispute
    rnd.post(ROLE_CLIENT, 3, rnd.dealings(3))
    rnd.to("upload")
    rnd.post(ROLE_CLIENT, 2, rnd.masked(2))  # the victim stays in the round
    with pytest.raises(RuleViolation, match="NoAcceptedDealings"):
        rnd.post(ROLE_CLIENT, 1, rnd.masked(1))


def test_honest_dealings_give_nobody_anything_to_challenge() -> None:
    rnd = ChainRound.create(deal_blocks=24, mode="optimistic", challenge_blocks=8)
    rnd.register_all().reveal_all().deal_all()
    st = rnd.board.state()
    for i in (1, 2, 3):
        assert dealings_to_challenge(st, ROLE_CLIENT, i) == []
    assert dealings_to_challenge(st, ROLE_MEMBER, 2) == []


def test_withdrawals_are_pulled_once_and_a_reentrant_receiver_fails() -> None:
    rnd, bad = _bad_pair_round()
    board, w3 = rnd.board, rnd.board.w3
    fn = board.contract.functions
    art = json.loads((ROOT / "contracts" / "build" / "ReentrantChallenger.json").read_text())
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    relayer = board._account("relayer")
    receipt = board._send(relayer, factory.constructor(board.address), "deployAttacker", 10**17)
    attacker = w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])
    committee = board._committee(board.state())
    board._send(
        relayer,
        attacker.functions.challengeAndWithdraw(1, PURPOSE_PAIR, 2, bad, committee),
        "attack",
    )
    reward = fn.reward().call()
    assert attacker.functions.payments().call() == 1
    assert attacker.functions.received().call() == reward + board.bond
    assert attacker.functions.reentryFailed().call() is True
    assert attacker.functions.reentrySucceeded().call() is False
    assert fn.credit(attacker.address).call() == 0
    assert 1 not in board.state().dealers
    with pytest.raises(ContractRevert) as info:  # nothing left to pull
        board._send(relayer, fn.withdraw(), "withdraw")
    assert info.value.name == "NothingToWithdraw"
    # an honest client's stake is credited after the round, to its identity, once
    rnd.post(ROLE_CLIENT, 3, rnd.dealings(3))
    with pytest.raises(RuleViolation, match="WrongPhase"):
        board.withdraw_stake(2)  # not before the result phase
    rnd.to("result")
    board.withdraw_stake(2)
    with pytest.raises(RuleViolation, match="NothingToWithdraw"):
        board.withdraw_stake(2)
    assert board.credit(rnd.clients[1].address) == fn.stake().call() + fn.pool().call() // 2

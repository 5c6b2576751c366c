"""The round contract (contracts/src/PvssRound.sol) through ``secagg.boards.evm.EvmBoard``.

Every post is a ``SignedPost`` relayed from the board's one account (tests/evm_round.py
signs with each seat's own identity). Rejections: every tampered dealing field in full
mode, deadlines, shares from non-members and shares U does not allow, replays from
another contract or round. The contract's hash chain is the transcript's: every
on-chain round replays under ``MemoryBoard`` with the contract's ``head()``.
Optimistic mode: a challenge of a bad dealing excludes and slashes the dealer (an
Exclusion event enters the chain), of a good one costs the challenger its bond. Whole
rounds with dropouts through ``simulate(SimParams(board=...))`` on py-evm and anvil
verify publicly from the chain-derived transcript and give the memory board's sum.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from pvss.group import ORDER, G  # noqa: E402
from pvss.keys import KeyPair  # noqa: E402
from pvss.scrape import deal  # noqa: E402
from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF  # noqa: E402
from secagg.boards import MemoryBoard, RuleViolation, compute_included  # noqa: E402
from secagg.boards.evm import ContractRevert, EvmBoard  # noqa: E402
from secagg.graph import dealing_context  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Confirmation,
    DealingItem,
    DealingsPost,
    Exclusion,
    MaskedInputPost,
    ResultPost,
    SharesPost,
)
from secagg.simulate import SimParams, simulate  # noqa: E402
from secagg.verifier import load_round, verify_round  # noqa: E402

from .evm_round import ChainRound, identity, round_config  # noqa: E402

R = int(ORDER)


def _rejects(
    rnd: ChainRound,
    role: int,
    sender: int,
    msg: object,
    rule: str,
    error: str,
    *,
    calldata: bool = False,
    **kw: object,
) -> None:
    """``calldata``: sent to the contract as it is, not wire-encoded (SPEC.md §6.2)."""
    with pytest.raises(RuleViolation) as info:
        if calldata:
            rnd.post_calldata(role, sender, msg)
        else:
            rnd.post(role, sender, msg, **kw)
    assert info.value.fault.rule == rule, info.value
    assert info.value.fault.party == sender
    assert error in str(info.value), info.value


def _tamper(dealing: bytes, offset: int, new: bytes) -> bytes:
    return dealing[:offset] + new + dealing[offset + len(new) :]


def _chain_head(board: EvmBoard) -> bytes:
    return bytes(board.contract.functions.head().call())


# ---------------------------------------------------------------------------
# Event 0, the hash chain
# ---------------------------------------------------------------------------


def test_event0_is_the_enforced_config_signed_by_the_aggregator() -> None:
    rnd = ChainRound.create()
    board, cfg = rnd.board, rnd.cfg
    ev0 = board.events()[0]
    assert ev0.role == ROLE_AGGREGATOR and ev0.view == bytes(32)
    assert board.contract.functions.configDigest().call() == ev0.digest
    assert _chain_head(board) == board.head
    # a config signed by someone else is refused by the clone's initializer
    wrong = identity()
    with pytest.raises(ContractRevert) as info:
        EvmBoard(
            cfg, board.w3, sign_config=lambda c: wrong.sign(b"\0" * 32), round_init=board.round_init
        )
    assert info.value.name == "WrongSigner"
    # a verifier with other code is refused
    with pytest.raises(ContractRevert) as info:
        EvmBoard(cfg, board.w3, aggregator=rnd.aggregator, verifier=board.address)
    assert info.value.name == "BadConfig" and info.value.args_ == (12,)
    # the contract itself refuses a full-mode config that forfeits stakes anywhere
    # (RoundConfig refuses it first; this bypasses it with a hand-made tuple)
    from secagg.boards.evm import (
        INIT_ARTIFACT,
        _artifact,
        _revert_data,
        clone_initcode,
        config_signature,
        contract_config,
    )

    fields = list(contract_config(cfg))
    assert fields[-2] == "0x" + "00" * 20  # forfeitTo, before the dp digest
    fields[-2] = "0x" + "11" * 20
    init = board.w3.eth.contract(address=board.round_init, abi=_artifact(INIT_ARTIFACT)["abi"])
    sig = config_signature(rnd.aggregator, cfg)
    call = init.encode_abi("init", args=[tuple(fields), sig, "0x" + "00" * 20])
    data = clone_initcode(bytes.fromhex(board.round_init[2:])) + bytes.fromhex(call[2:])
    tx = {"from": board.w3.eth.accounts[0], "gas": 15_000_000, "data": "0x" + data.hex()}
    with pytest.raises(Exception) as raw:
        board.w3.eth.call(tx)
    err = ContractRevert(_revert_data(raw.value), board._errors)
    assert err.name == "BadConfig" and err.args_ == (11,)


def test_the_chain_transcript_replays_under_memory_board_rules() -> None:
    rnd = ChainRound.create(n=4).register_all().reveal_all().deal_all()
    rnd.upload_all([1, 2, 3]).confirm_all()
    for k in (1, 2):
        rnd.post(ROLE_MEMBER, k, rnd.shares(k))
    rnd.to("result")
    rnd.post(ROLE_AGGREGATOR, 0, rnd.result())
    board = rnd.board
    head = _chain_head(board)
    assert head == board.head
    replayed = MemoryBoard.replay(board.transcript(), head)
    assert replayed.state().included == (1, 2, 3) == board.state().included
    assert replayed.state().round_seed == board.state().round_seed
    MemoryBoard.replay(board.transcript(), head, proofs=False)
    assert board.reputation(rnd.members[0].address)[1] == len(board.allowed_shares())


# ---------------------------------------------------------------------------
# Full mode: every dealing verified on submission
# ---------------------------------------------------------------------------


def test_full_mode_rejects_each_tampered_dealing_field() -> None:
    rnd = ChainRound.create().register_all().reveal_all()
    post = rnd.dealings(1)
    assert [(it.purpose, it.partner) for it in post.items] == [(0, 0), (1, 2), (1, 3)]
    pair = post.items[1].dealing  # recipient at point 0, N = 4
    other = (G * 7).to_bytes()
    rec = lambda k: 5 + 288 * k  # noqa: E731 - record k of the dealing
    z1 = int.from_bytes(pair[rec(1) + 256 : rec(1) + 288], "big")
    cases = {
        "v": (_tamper(pair, rec(1), other), "dealing-proof", "DleqFailed"),
        "s_hat": (_tamper(pair, rec(1) + 64, other), "dealing-proof", "DleqFailed"),
        "a1": (_tamper(pair, rec(2) + 128, other), "dealing-proof", "DleqFailed"),
        "a2": (_tamper(pair, rec(0) + 192, other), "dealing-proof", "DleqFailed"),
        "z": (
            _tamper(pair, rec(1) + 256, ((z1 + 1) % R).to_bytes(32, "big")),
            "dealing-proof",
            "DleqFailed",
        ),
        "z >= r": (
            _tamper(pair, rec(1) + 256, R.to_bytes(32, "big")),
            "dealing-encoding",
            "InvalidEncoding",
        ),
        "v off curve": (
            _tamper(pair, rec(1), (1).to_bytes(32, "big") * 2),
            "dealing-encoding",
            "InvalidEncoding",
        ),
        "threshold": (_tamper(pair, 0, (2).to_bytes(2, "big")), "dealing", "ThresholdMismatch"),
        "has_recipient": (_tamper(pair, 2, b"\x00"), "dealing", "RecipientMismatch"),
        "length": (pair[:-1], "dealing-encoding", "InvalidLength"),
    }
    for name, (bad, rule, error) in cases.items():
        items = (post.items[0], DealingItem(PURPOSE_PAIR, 2, bad), post.items[2])
        try:
            _rejects(rnd, ROLE_CLIENT, 1, DealingsPost(1, items), rule, error)
        except AssertionError as exc:
            raise AssertionError(f"tampered {name}: {exc}") from None
    # a dealing bound to another context (a pair dealing for recipient 3 posted for 2)
    items = (post.items[0], DealingItem(PURPOSE_PAIR, 2, post.items[2].dealing), post.items[2])
    _rejects(rnd, ROLE_CLIENT, 1, DealingsPost(1, items), "dealing-proof", "DleqFailed")
    # the wrong set of items
    _rejects(rnd, ROLE_CLIENT, 1, DealingsPost(1, post.items[:2]), "dealings", "WrongDealingSet")
    swapped = (post.items[0], post.items[2], post.items[1])
    _rejects(rnd, ROLE_CLIENT, 1, DealingsPost(1, swapped), "dealings", "WrongDealingSet")
    board = rnd.board
    assert board.state().dealers == set()
    rnd.post(ROLE_CLIENT, 1, post)  # the honest post goes through
    assert board.state().dealers == {1}
    assert board.reputation(rnd.clients[0].address) == (3, 0, 0)
    _rejects(rnd, ROLE_CLIENT, 1, post, "dealings", "AlreadyDealt")


def test_deadlines_and_the_seed_are_enforced() -> None:
    rnd = ChainRound.create().register_all()
    cfg = rnd.cfg
    # dealing in the register phase
    pks = [k.pk for k in rnd.member_keys]
    dealing, _ = deal(pks, 1, dealing_context(cfg, (1, PURPOSE_SELF, 0)))
    early = DealingsPost(1, (DealingItem(PURPOSE_SELF, 0, dealing.to_bytes()),))
    _rejects(rnd, ROLE_CLIENT, 1, early, "stage", "WrongPhase(1, 0")
    rnd.to("deal")
    late = rnd.registration(ROLE_CLIENT, 1, KeyPair.generate())
    _rejects(rnd, ROLE_CLIENT, 1, late, "stage", "WrongPhase(0, 1")
    # dealings before every member revealed: no graph yet
    for k in (1, 2):
        rnd.post(ROLE_MEMBER, k, rnd.seed_reveal(k))
    _rejects(rnd, ROLE_CLIENT, 1, early, "dealings", "SeedNotFixed(2, 3)")
    _rejects(rnd, ROLE_MEMBER, 1, rnd.seed_reveal(1), "seed", "AlreadyRevealed")
    bad = rnd.seed_reveal(3)
    bad = replace(bad, gamma=(G * 5).to_bytes())
    _rejects(rnd, ROLE_MEMBER, 3, bad, "seed", "SeedRevealFailed")
    rnd.post(ROLE_MEMBER, 3, rnd.seed_reveal(3))
    assert rnd.board.state().round_seed == rnd.board.contract.functions.roundSeed().call()
    rnd.deal_all()
    masked = rnd.masked(1)
    _rejects(rnd, ROLE_CLIENT, 1, masked, "stage", "WrongPhase(2, 1")
    rnd.to("unmask")
    _rejects(rnd, ROLE_CLIENT, 1, masked, "stage", "WrongPhase(2, 3")
    _rejects(rnd, ROLE_AGGREGATOR, 0, ResultPost(bytes(32), (), 0), "stage", "WrongPhase(4, 3")


# ---------------------------------------------------------------------------
# Shares: members only, only what U allows, only after a quorum
# ---------------------------------------------------------------------------


def test_shares_only_from_members_and_only_what_u_allows() -> None:
    rnd = ChainRound.create(n=4).register_all().reveal_all().deal_all()
    rnd.upload_all([1, 2, 3])  # client 4 drops before uploading
    _rejects(rnd, ROLE_CLIENT, 2, rnd.masked(2), "upload", "AlreadyUploaded")
    rnd.confirm_all()
    board = rnd.board
    st = board.state()
    assert st.included == (1, 2, 3) == compute_included(st)
    allowed = board.allowed_shares()
    assert (4, PURPOSE_SELF, 0) not in allowed and (1, PURPOSE_PAIR, 4) in allowed
    # the self dealing of a client outside U, a pair dealing with both ends in U
    for key in [(4, PURPOSE_SELF, 0), (1, PURPOSE_PAIR, 2)]:
        _rejects(rnd, ROLE_MEMBER, 1, rnd.shares(1, [key]), "share-not-allowed", "ShareNotAllowed")
    key = (1, PURPOSE_PAIR, 4)
    # member 2's share post re-labelled as member 1's: its proof is not member 1's
    other = rnd.shares(2, [key])
    _rejects(
        rnd,
        ROLE_MEMBER,
        1,
        SharesPost(1, other.items, other.proof),
        "share-proof",
        "SharePostFailed",
    )
    honest = rnd.shares(1, [key])
    raw = honest.items[0].share
    bad = raw[:-1] + bytes([raw[-1] ^ 1])  # S_i off the curve: no wire form carries it
    _rejects(
        rnd,
        ROLE_MEMBER,
        1,
        SharesPost(1, (replace(honest.items[0], share=bad),), honest.proof),
        "share-encoding",
        "InvalidEncoding",
        calldata=True,
    )
    # a client's identity signing for member seat 1; member 2 signing for member 1
    for who in (rnd.clients[0], rnd.members[1]):
        _rejects(rnd, ROLE_MEMBER, 1, honest, "signature", "WrongSigner", by=who)
    # the honest post, then a duplicate
    rnd.post(ROLE_MEMBER, 1, rnd.shares(1))
    assert board.state().included == (1, 2, 3)
    assert board.reputation(rnd.members[0].address) == (0, len(allowed), 0)
    _rejects(rnd, ROLE_MEMBER, 1, honest, "share", "ShareAlreadyPosted")
    rnd.to("result")
    _rejects(
        rnd, ROLE_AGGREGATOR, 0, ResultPost(bytes(32), (1, 2, 3), 3), "result", "NotEnoughShares"
    )
    _rejects(
        rnd, ROLE_AGGREGATOR, 0, ResultPost(bytes(32), (1, 2), 3), "result", "IncludedMismatch"
    )


# ---------------------------------------------------------------------------
# Replay from another contract / round
# ---------------------------------------------------------------------------


def test_replay_from_another_contract_or_round_is_rejected() -> None:
    a = ChainRound.create(register=60, deal_blocks=40).register_all()
    cfg_b, *_ = round_config(register=60, deal_blocks=40)
    # B: same roster and keys, another contract on the same chain
    cfg_b = replace(a.cfg, board=bytes(20), round_id=2)
    b = ChainRound(
        EvmBoard(cfg_b, a.board.w3, aggregator=a.aggregator), a.aggregator, a.members, a.clients
    )
    b.member_keys, b.client_keys = a.member_keys, a.client_keys
    assert b.cfg.board != a.cfg.board
    # client 1's registration from round A (signed for A, PoP bound to A) replayed on B
    reg_a = a.registration(ROLE_CLIENT, 1)
    post_a = a.sign(ROLE_CLIENT, 1, reg_a, view=b.board.view())
    with pytest.raises(RuleViolation) as info:
        b.board.submit(post_a)
    assert info.value.fault.rule == "signature"
    # re-signed for B by its own identity, the PoP still binds A: refused
    _rejects(b, ROLE_CLIENT, 1, reg_a, "proof-of-possession", "PopFailed")
    b.register_all()
    a.reveal_all()
    b.board.advance(max(0, b.cfg.register_blocks - b.board.height()))
    for k in range(1, 4):
        b.post(ROLE_MEMBER, k, b.seed_reveal(k))
    post = a.dealings(1)
    _rejects(b, ROLE_CLIENT, 1, post, "dealing-proof", "DleqFailed")
    a.post(ROLE_CLIENT, 1, post)


# ---------------------------------------------------------------------------
# Optimistic mode: challenges
# ---------------------------------------------------------------------------


def test_optimistic_challenge_slashes_a_bad_dealer_and_not_a_good_one() -> None:
    rnd = ChainRound.create(deal_blocks=20, mode="optimistic", challenge_blocks=6)
    rnd.register_all().reveal_all()
    board = rnd.board
    w3 = board.w3
    bad_post = rnd.dealings(1)
    pair = bad_post.items[1].dealing
    z = int.from_bytes(pair[5 + 288 + 256 : 5 + 288 * 2], "big")
    bad = _tamper(pair, 5 + 288 + 256, ((z + 1) % R).to_bytes(32, "big"))
    items = (bad_post.items[0], DealingItem(PURPOSE_PAIR, 2, bad), bad_post.items[2])
    rnd.post(ROLE_CLIENT, 1, DealingsPost(1, items))  # accepted: nothing verified
    rnd.post(ROLE_CLIENT, 2, rnd.dealings(2))
    assert board.state().dealers == {1, 2}
    board.account("challenger")  # funded before the balances are read

    fn = board.contract.functions
    before = w3.eth.get_balance(board.address)
    assert board.challenge((2, PURPOSE_PAIR, 3)) is False  # valid: the bond goes to the pool
    assert w3.eth.get_balance(board.address) == before + board.bond
    assert fn.pool().call() == board.bond
    assert board.credit(board.account("challenger")) == 0
    assert board.state().dealers == {1, 2}

    before = w3.eth.get_balance(board.address)
    assert board.challenge((1, PURPOSE_PAIR, 2)) is True  # invalid: excluded, slashed
    stake, reward = fn.stake().call(), fn.reward().call()
    assert 0 < reward < stake
    assert w3.eth.get_balance(board.address) == before + board.bond  # pull payments
    assert board.credit(board.account("challenger")) == reward + board.bond
    assert fn.pool().call() == board.bond + stake - reward
    st = board.state()
    assert st.dealers == {2} and not any(k[0] == 1 for k in st.dealings)
    assert board.reputation(rnd.clients[0].address) == (0, 0, 1)
    last = board.events()[-1]
    assert last.role == ROLE_AGGREGATOR and last.sig == bytes(65)
    from secagg import codec

    assert codec.decode(last.body) == Exclusion(1, PURPOSE_PAIR, 2)
    assert _chain_head(board) == board.head
    with pytest.raises(ContractRevert) as info:  # an excluded dealer cannot be challenged again
        board.transact(
            "challenger",
            "challenge",
            1,
            PURPOSE_PAIR,
            2,
            bad,
            board._committee(st),
            value=board.bond,
        )
    assert info.value.name == "NothingToChallenge"
    board.advance(7)
    with pytest.raises(ContractRevert) as info:
        board.challenge((2, PURPOSE_SELF, 0))
    assert info.value.name == "ChallengeWindowClosed"
    # the rest of the round ignores the excluded dealer
    rnd.to("upload")
    rnd.post(ROLE_CLIENT, 2, rnd.masked(2))
    _rejects(rnd, ROLE_CLIENT, 1, rnd.masked(1), "upload", "NoAcceptedDealings")


def test_optimistic_dealing_window_closes_before_upload() -> None:
    rnd = ChainRound.create(deal_blocks=8, mode="optimistic", challenge_blocks=3)
    rnd.register_all().reveal_all()  # heights R .. R+2
    rnd.board.advance(3)  # R + 6 + 3 >= R + 8
    _rejects(rnd, ROLE_CLIENT, 1, rnd.dealings(1), "stage", "DealingWindowClosed")


# ---------------------------------------------------------------------------
# Whole rounds
# ---------------------------------------------------------------------------


def _round(board: str, tmp: Path, **kw: object) -> tuple[object, np.ndarray]:
    base: dict[str, object] = dict(
        clients=5,
        committee=3,
        threshold=1,
        dim=12,
        dropout=0.4,
        dropout_phase="mixed",
        committee_dropout=1,
        seed=5,
        board=board,
    )
    params = SimParams(**{**base, **kw})  # type: ignore[arg-type]
    result = simulate(params, tmp)
    transcript, blobs = load_round(tmp)
    report = verify_round(transcript, blobs)
    assert report.ok, report.findings
    assert report.total is not None
    return result, report.total


def test_round_on_py_evm_verifies_and_matches_memory(tmp_path: Path) -> None:
    mem, mem_total = _round("memory", tmp_path / "memory")
    evm, evm_total = _round("evm", tmp_path / "evm")
    assert evm.verified and mem.verified
    assert evm.included == mem.included
    assert np.array_equal(evm_total, mem_total)


def test_round_on_py_evm_regular_graph(tmp_path: Path) -> None:
    """regular:2: the contract's permutation, neighbours and U agree with Python (no
    client dropout: on a 2-regular graph the default min_neighbours 2 leaves no 2-core
    once a client drops, and the round would abort)."""
    res, _ = _round("evm", tmp_path, graph="regular:2", dropout=0.0)
    assert res.verified


def test_round_on_anvil_verifies_and_matches_memory(tmp_path: Path, anvil_url: str) -> None:
    mem, mem_total = _round("memory", tmp_path / "memory")
    evm, evm_total = _round(f"rpc:{anvil_url}", tmp_path / "anvil")
    assert evm.verified
    assert np.array_equal(evm_total, mem_total)


def test_rejection_on_anvil(anvil_url: str) -> None:
    rnd = ChainRound.create(f"rpc:{anvil_url}").register_all().reveal_all()
    post = rnd.dealings(1)
    pair = post.items[1].dealing
    bad = _tamper(pair, 5 + 64, (G * 5).to_bytes())
    items = (post.items[0], DealingItem(PURPOSE_PAIR, 2, bad), post.items[2])
    _rejects(rnd, ROLE_CLIENT, 1, DealingsPost(1, items), "dealing-proof", "DleqFailed")
    rnd.post(ROLE_CLIENT, 1, post)
    assert _chain_head(rnd.board) == rnd.board.head


def test_confirmation_rules() -> None:
    rnd = ChainRound.create(n=3, m=3).register_all().reveal_all().deal_all().upload_all()
    rnd.to("unmask")
    u_head = rnd.board.view()
    _rejects(rnd, ROLE_MEMBER, 1, Confirmation(1, bytes(32)), "confirm", "WrongConfirmation")
    rnd.post(ROLE_MEMBER, 1, Confirmation(1, u_head))
    _rejects(rnd, ROLE_MEMBER, 1, Confirmation(1, u_head), "confirm", "AlreadyConfirmed")
    # Q = 3 for m = 3, t = 1: shares refused with 1 and 2 confirmations
    assert rnd.cfg.confirm_quorum == 3
    _rejects(rnd, ROLE_MEMBER, 1, rnd.shares(1), "confirm", "NotConfirmed(1, 3)")
    rnd.post(ROLE_MEMBER, 2, Confirmation(2, u_head))
    _rejects(rnd, ROLE_MEMBER, 1, rnd.shares(1), "confirm", "NotConfirmed(2, 3)")
    rnd.post(ROLE_MEMBER, 3, Confirmation(3, u_head))
    rnd.post(ROLE_MEMBER, 1, rnd.shares(1))
    assert set(rnd.board.state().confirmations) == {1, 2, 3}


def test_masked_input_size_rule() -> None:
    rnd = ChainRound.create().register_all().reveal_all().deal_all()
    rnd.to("upload")
    m = rnd.masked(1)
    _rejects(rnd, ROLE_CLIENT, 1, MaskedInputPost(1, m.digest, m.size + 1), "upload", "WrongSize")

"""The round contract (contracts/src/PvssRound.sol) through ``secagg.boards.evm.EvmBoard``.

Rejections: every tampered dealing field in full mode, deadlines, shares from
non-members and shares U does not allow, replays from another contract or round.
Optimistic mode: a challenge of a bad dealing excludes and slashes the dealer, of a good
one costs the challenger its bond. Whole rounds with dropouts through
``simulate(SimParams(board=...))`` on py-evm and on anvil verify publicly from the
chain-derived transcript and give the memory board's sum.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from pvss.group import ORDER, G  # noqa: E402
from pvss.keys import prove_possession  # noqa: E402
from pvss.scrape import deal  # noqa: E402
from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF  # noqa: E402
from secagg.blobs import BlobStore  # noqa: E402
from secagg.boards import RuleViolation, compute_included, pop_party  # noqa: E402
from secagg.boards.evm import ANVIL, ContractRevert, EvmBoard, start_anvil, stop_process  # noqa: E402
from secagg.config import RoundConfig  # noqa: E402
from secagg.graph import dealing_context  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_CLIENT,
    ROLE_MEMBER,
    DealingItem,
    DealingsPost,
    MaskedInputPost,
    Registration,
    ResultPost,
    ShareItem,
    SharesPost,
)
from secagg.roles import Client, CommitteeMember  # noqa: E402
from secagg.simulate import SimParams, simulate  # noqa: E402
from secagg.verifier import load_round, verify_round  # noqa: E402

R = int(ORDER)


def _config(
    n: int = 3, m: int = 3, t: int = 1, graph: str = "complete", deal: int = 8, register: int = 0
) -> RoundConfig:
    return RoundConfig(
        chain_id=1,
        board=bytes(20),
        round_id=1,
        n_clients=n,
        committee_size=m,
        threshold=t,
        graph=graph,
        dim=4,
        quant_bits=8,
        bits=16,
        max_weight=1,
        register_blocks=register or n + m + 3,
        deal_blocks=deal,
        upload_blocks=n + 3,
        unmask_blocks=m + 4,
    )


class Round:
    """A board plus its roles, registered."""

    def __init__(self, board: EvmBoard) -> None:
        self.board = board
        cfg = self.cfg = board.config
        rng = np.random.default_rng(1)
        self.clients = [
            Client(cfg, i, rng.uniform(-1, 1, cfg.dim), 1, rng=np.random.default_rng(i))
            for i in range(1, cfg.n_clients + 1)
        ]
        self.members = [CommitteeMember(cfg, k) for k in range(1, cfg.committee_size + 1)]

    def register(self) -> Round:
        for p in [*self.clients, *self.members]:
            p.register(self.board)
        return self

    def to(self, phase_end: str) -> None:
        c = self.cfg
        ends = {
            "deal": c.register_blocks,
            "upload": c.register_blocks + c.deal_blocks,
            "unmask": c.register_blocks + c.deal_blocks + c.upload_blocks,
            "result": c.register_blocks + c.deal_blocks + c.upload_blocks + c.unmask_blocks,
        }
        self.board.advance(max(0, ends[phase_end] - self.board.height()))


def _rejects(board: EvmBoard, role: int, sender: int, msg: object, rule: str, error: str) -> None:
    with pytest.raises(RuleViolation) as info:
        board.submit(role, sender, msg)
    assert info.value.fault.rule == rule, info.value
    assert info.value.fault.party == sender
    assert error in str(info.value), info.value


def _tamper(dealing: bytes, offset: int, new: bytes) -> bytes:
    return dealing[:offset] + new + dealing[offset + len(new) :]


# ---------------------------------------------------------------------------
# Full mode: every dealing verified on submission
# ---------------------------------------------------------------------------


def test_full_mode_rejects_each_tampered_dealing_field() -> None:
    rnd = Round(EvmBoard(_config())).register()
    board = rnd.board
    rnd.to("deal")
    post = rnd.clients[0].make_dealings(board)
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
            _rejects(board, ROLE_CLIENT, 1, DealingsPost(1, items), rule, error)
        except AssertionError as exc:
            raise AssertionError(f"tampered {name}: {exc}") from None
    # a dealing bound to another context (a pair dealing for recipient 3 posted for 2)
    items = (post.items[0], DealingItem(PURPOSE_PAIR, 2, post.items[2].dealing), post.items[2])
    _rejects(board, ROLE_CLIENT, 1, DealingsPost(1, items), "dealing-proof", "DleqFailed")
    # the wrong set of items
    _rejects(board, ROLE_CLIENT, 1, DealingsPost(1, post.items[:2]), "dealings", "WrongDealingSet")
    swapped = (post.items[0], post.items[2], post.items[1])
    _rejects(board, ROLE_CLIENT, 1, DealingsPost(1, swapped), "dealings", "WrongDealingSet")
    assert board.state().dealers == set()
    board.submit(ROLE_CLIENT, 1, post)  # the honest post goes through
    assert board.state().dealers == {1}
    assert board.reputation((ROLE_CLIENT, 1)) == (3, 0, 0)
    _rejects(board, ROLE_CLIENT, 1, post, "dealings", "AlreadyDealt")


def test_deadlines_are_enforced() -> None:
    rnd = Round(EvmBoard(_config()))
    board = rnd.board
    c1 = rnd.clients[0]
    rnd.register()
    # dealing in the register phase
    dealing, _ = deal(
        [mb.key.pk for mb in rnd.members], 1, dealing_context(rnd.cfg, (1, PURPOSE_SELF, 0))
    )
    early = DealingsPost(1, (DealingItem(PURPOSE_SELF, 0, dealing.to_bytes()),))
    _rejects(board, ROLE_CLIENT, 1, early, "stage", "WrongPhase(1, 0")
    rnd.to("deal")
    late = Registration(ROLE_CLIENT, 1, c1.key.pk.to_bytes(), bytes(64))
    _rejects(board, ROLE_CLIENT, 1, late, "stage", "WrongPhase(0, 1")
    for c in rnd.clients:
        c.deal(board)
    masked = MaskedInputPost(1, bytes(32), 9)
    _rejects(board, ROLE_CLIENT, 1, masked, "stage", "WrongPhase(2, 1")
    rnd.to("unmask")
    _rejects(board, ROLE_CLIENT, 1, masked, "stage", "WrongPhase(2, 3")
    _rejects(board, 2, 0, ResultPost(bytes(32), (), 0), "stage", "WrongPhase(4, 3")


# ---------------------------------------------------------------------------
# Shares: members only, only what U allows
# ---------------------------------------------------------------------------


def test_shares_only_from_members_and_only_what_u_allows(tmp_path: Path) -> None:
    rnd = Round(EvmBoard(_config(n=4))).register()
    board, blobs = rnd.board, BlobStore(tmp_path)
    rnd.to("deal")
    for c in rnd.clients:
        c.deal(board)
    rnd.to("upload")
    for c in rnd.clients[:3]:  # client 4 drops before uploading
        c.upload(board, blobs)
    _rejects(board, ROLE_CLIENT, 2, MaskedInputPost(2, bytes(32), 9), "upload", "AlreadyUploaded")
    rnd.to("unmask")
    st = board.state()
    assert st.included == (1, 2, 3) == compute_included(st)
    m1 = rnd.members[0]
    allowed = board.allowed_shares()
    assert (4, PURPOSE_SELF, 0) not in allowed and (1, PURPOSE_PAIR, 4) in allowed
    good = {(it.dealer, it.purpose, it.partner): it for it in m1.make_shares(board).items}

    def share_for(key: tuple[int, int, int], member: CommitteeMember = m1) -> ShareItem:
        from pvss.scrape import decrypt_share

        s = decrypt_share(st.dealings[key], member.party, member.key, dealing_context(rnd.cfg, key))
        return ShareItem(*key, s.to_bytes())

    # the self dealing of a client outside U, a pair dealing with both ends in U
    for key in [(4, PURPOSE_SELF, 0), (1, PURPOSE_PAIR, 2)]:
        msg = SharesPost(1, (share_for(key),))
        _rejects(board, ROLE_MEMBER, 1, msg, "share-not-allowed", "ShareNotAllowed")
    # member 2's share posted by member 1; a broken proof
    key = (1, PURPOSE_PAIR, 4)
    _rejects(
        board,
        ROLE_MEMBER,
        1,
        SharesPost(1, (share_for(key, rnd.members[1]),)),
        "share",
        "ShareIndexMismatch",
    )
    raw = good[key].share
    bad = raw[:-1] + bytes([raw[-1] ^ 1])
    _rejects(
        board,
        ROLE_MEMBER,
        1,
        SharesPost(1, (ShareItem(*key, bad),)),
        "share-proof",
        "ShareProofFailed",
    )
    # non-members: a client's account, an unregistered account
    for who in [(ROLE_CLIENT, 1), "outsider"]:
        with pytest.raises(ContractRevert) as info:
            board.transact(who, "postShares", [(1, PURPOSE_PAIR, 4, raw, board._raw_dealings[key])])
        assert info.value.name == "NotRegistered"
    # the honest post, then a duplicate
    m1.reveal(board)
    assert board._chain_included == (1, 2, 3)
    assert board.reputation((ROLE_MEMBER, 1)) == (0, len(allowed), 0)
    _rejects(board, ROLE_MEMBER, 1, SharesPost(1, (good[key],)), "share", "ShareAlreadyPosted")
    rnd.to("result")
    _rejects(board, 2, 0, ResultPost(bytes(32), (1, 2, 3), 3), "result", "NotEnoughShares")
    _rejects(board, 2, 0, ResultPost(bytes(32), (1, 2), 3), "result", "IncludedMismatch")


# ---------------------------------------------------------------------------
# Replay from another contract / round
# ---------------------------------------------------------------------------


def test_replay_from_another_contract_or_round_is_rejected() -> None:
    # two round contracts on one chain (each one's blocks pass for the other too)
    a = Round(EvmBoard(_config(register=60, deal=40)))
    b_board = EvmBoard(_config(register=60, deal=40), a.board.w3)
    a.register()
    assert b_board.config.board != a.cfg.board
    c1 = a.clients[0]
    # client 1's registration from round A (PoP bound to A's address) replayed on B
    replayed = Registration(ROLE_CLIENT, 1, c1.key.pk.to_bytes(), _pop(c1, a.cfg))
    _rejects(b_board, ROLE_CLIENT, 1, replayed, "proof-of-possession", "PopFailed")
    # B with the same keys, proper PoPs; then A's dealings posted on B
    for p in [*a.clients, *a.members]:
        b_board.submit(
            p.role,
            p.party,
            Registration(p.role, p.party, p.key.pk.to_bytes(), _pop(p, b_board.config)),
        )
    b_board.advance(max(0, b_board.config.register_blocks - b_board.height()))
    a.to("deal")
    post = c1.make_dealings(a.board)
    _rejects(b_board, ROLE_CLIENT, 1, post, "dealing-proof", "DleqFailed")
    # a dealing for another round id of the same contract
    other = _config()
    from dataclasses import replace

    ctx_cfg = replace(a.cfg, round_id=2)
    pks = [mb.key.pk for mb in a.members]
    forged = []
    for it in post.items:
        rpk = a.board.state().clients[it.partner] if it.purpose == PURPOSE_PAIR else None
        d, _ = deal(pks, 1, dealing_context(ctx_cfg, (1, it.purpose, it.partner)), rpk)
        forged.append(DealingItem(it.purpose, it.partner, d.to_bytes()))
    _rejects(a.board, ROLE_CLIENT, 1, DealingsPost(1, tuple(forged)), "dealing-proof", "DleqFailed")
    a.board.submit(ROLE_CLIENT, 1, post)
    assert other.round_id == 1


def _pop(party: Client | CommitteeMember, cfg: RoundConfig) -> bytes:
    return prove_possession(
        party.key, cfg.chain_id, cfg.board, pop_party(party.role, party.party)
    ).to_bytes()


# ---------------------------------------------------------------------------
# Optimistic mode: challenges
# ---------------------------------------------------------------------------


def test_optimistic_challenge_slashes_a_bad_dealer_and_not_a_good_one(tmp_path: Path) -> None:
    board = EvmBoard(_config(deal=16), mode="optimistic", challenge_blocks=6)
    rnd = Round(board).register()
    w3 = board.w3
    rnd.to("deal")
    bad_post = rnd.clients[0].make_dealings(board)
    pair = bad_post.items[1].dealing
    z = int.from_bytes(pair[5 + 288 + 256 : 5 + 288 * 2], "big")
    bad = _tamper(pair, 5 + 288 + 256, ((z + 1) % R).to_bytes(32, "big"))
    items = (bad_post.items[0], DealingItem(PURPOSE_PAIR, 2, bad), bad_post.items[2])
    board.submit(ROLE_CLIENT, 1, DealingsPost(1, items))  # accepted: nothing verified
    rnd.clients[1].deal(board)
    assert board.state().dealers == {1, 2}
    board.account("challenger")  # funded before the balances are read

    before = w3.eth.get_balance(board.address)
    assert board.challenge((2, PURPOSE_PAIR, 3)) is False  # valid: bond lost
    assert w3.eth.get_balance(board.address) == before + board.bond
    assert board.state().dealers == {1, 2}
    assert board.reputation((ROLE_CLIENT, 2))[2] == 0

    before = w3.eth.get_balance(board.address)
    assert board.challenge((1, PURPOSE_PAIR, 2)) is True  # invalid: excluded, slashed
    stake = board.contract.functions.stake().call()
    assert w3.eth.get_balance(board.address) == before - stake
    st = board.state()
    assert st.dealers == {2} and not any(k[0] == 1 for k in st.dealings)
    assert board.reputation((ROLE_CLIENT, 1)) == (0, 0, 1)
    assert not any(
        ev.role == ROLE_CLIENT and ev.sender == 1 and ev.body[:3] != b"\x96\x01\x02"
        for ev in board.events()
    )
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
    # the window closes
    board.advance(7)
    with pytest.raises(ContractRevert) as info:
        board.challenge((2, PURPOSE_SELF, 0))
    assert info.value.name == "ChallengeWindowClosed"
    # the rest of the round ignores the excluded dealer
    rnd.to("upload")
    blobs = BlobStore(tmp_path)
    rnd.clients[1].upload(board, blobs)
    size = board.state().masked[2][1]
    _rejects(
        board, ROLE_CLIENT, 1, MaskedInputPost(1, bytes(32), size), "upload", "NoAcceptedDealings"
    )


def test_optimistic_dealing_window_closes_before_upload() -> None:
    board = EvmBoard(_config(deal=5), mode="optimistic", challenge_blocks=3)
    rnd = Round(board).register()
    rnd.to("deal")
    board.advance(2)  # heights R+2 .. : R + 2 + 3 >= R + 5
    post = rnd.clients[0].make_dealings(board)
    _rejects(board, ROLE_CLIENT, 1, post, "stage", "DealingWindowClosed")


# ---------------------------------------------------------------------------
# Whole rounds
# ---------------------------------------------------------------------------


def _round(board: str, tmp: Path, **kw: object) -> tuple[object, np.ndarray]:
    params = SimParams(
        clients=5,
        committee=3,
        threshold=1,
        dim=12,
        dropout=0.4,
        dropout_phase="mixed",
        committee_dropout=1,
        seed=5,
        board=board,
        **kw,  # type: ignore[arg-type]
    )
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
    """regular:2: the contract's permutation, neighbours and U agree with Python."""
    res, _ = _round("evm", tmp_path, graph="regular:2")
    assert res.verified


@pytest.fixture(scope="module")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not ANVIL.exists():
        pytest.skip(f"anvil not installed ({ANVIL} missing): run `make install` (npm ci)")
    proc, url = start_anvil(tmp_path_factory.mktemp("anvil") / "anvil.log")
    try:
        yield url
    finally:
        stop_process(proc)


def test_round_on_anvil_verifies_and_matches_memory(tmp_path: Path, anvil_url: str) -> None:
    mem, mem_total = _round("memory", tmp_path / "memory")
    evm, evm_total = _round(f"rpc:{anvil_url}", tmp_path / "anvil")
    assert evm.verified
    assert np.array_equal(evm_total, mem_total)


def test_rejection_on_anvil(anvil_url: str) -> None:
    rnd = Round(EvmBoard(_config(), f"rpc:{anvil_url}")).register()
    rnd.to("deal")
    post = rnd.clients[0].make_dealings(rnd.board)
    pair = post.items[1].dealing
    bad = _tamper(pair, 5 + 64, (G * 5).to_bytes())
    items = (post.items[0], DealingItem(PURPOSE_PAIR, 2, bad), post.items[2])
    _rejects(rnd.board, ROLE_CLIENT, 1, DealingsPost(1, items), "dealing-proof", "DleqFailed")
    rnd.board.submit(ROLE_CLIENT, 1, post)

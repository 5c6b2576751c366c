"""The view, confirmation and minimum-included-set rules hold on the chain (issue 11,
"one board for everyone" on the EVM board): a post signed on another view reverts,
shares before a confirmation quorum revert, and an aborted round (|U| < min_included)
accepts no confirmation, no share and no result; postShares calldata the board never
builds (references cut short, none, another index, swapped dealings, a short share
post) reverts with the named error. Each test fails if the contract accepted what
MemoryBoard refuses."""

from __future__ import annotations

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from secagg.boards import MemoryBoard, RuleViolation  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Confirmation,
    ResultPost,
)

from ..evm_round import ChainRound  # noqa: E402


def _refused(rnd: ChainRound, role: int, sender: int, msg: object, rule: str, **kw: object) -> None:
    before = rnd.board.events()
    with pytest.raises(RuleViolation) as info:
        rnd.post(role, sender, msg, **kw)
    assert info.value.fault.rule == rule, info.value
    assert rnd.board.events() == before, "the contract appended the refused post"


def test_a_post_on_a_stale_or_foreign_view_reverts() -> None:
    rnd = ChainRound.create(n=4).register_all().reveal_all()
    board = rnd.board
    reg_head = board.view()
    rnd.deal_all([1, 2, 3])
    # UPLOAD: the view must contain every dealing; the registration head is stale
    rnd.to("upload")
    assert board.view() != reg_head
    _refused(rnd, ROLE_CLIENT, 1, rnd.masked(1), "view", view=reg_head)
    # a view of another board (the split-board attack's head) is refused too
    other = bytes(31) + b"\x01"
    _refused(rnd, ROLE_CLIENT, 1, rnd.masked(1), "view", view=other)
    # the current head (after an upload in this phase) is not the phase head either
    rnd.post(ROLE_CLIENT, 1, rnd.masked(1))
    _refused(rnd, ROLE_CLIENT, 2, rnd.masked(2), "view", view=board.head)
    rnd.post(ROLE_CLIENT, 2, rnd.masked(2))
    rnd.post(ROLE_CLIENT, 3, rnd.masked(3))
    # UNMASK: confirmations and shares view the U-fixing head
    rnd.to("unmask")
    u_head = board.view()
    _refused(rnd, ROLE_MEMBER, 1, Confirmation(1, u_head), "view", view=reg_head)
    _refused(rnd, ROLE_MEMBER, 1, Confirmation(1, reg_head), "confirm")
    rnd.confirm_all()
    _refused(rnd, ROLE_MEMBER, 1, rnd.shares(1), "view", view=reg_head)
    # the chain's view rule is MemoryBoard's: the transcript replays
    MemoryBoard.replay(board.transcript(), bytes(board.contract.functions.head().call()))


def test_shares_before_a_confirmation_quorum_revert() -> None:
    rnd = ChainRound.create(n=3, m=5, t=2).register_all().reveal_all().deal_all()
    rnd.upload_all()
    q = rnd.cfg.confirm_quorum
    assert q == 4  # ceil((m + t + 1) / 2)
    rnd.confirm_all(list(range(1, q)))  # Q - 1 confirmations
    for k in range(1, q):
        _refused(rnd, ROLE_MEMBER, k, rnd.shares(k), "confirm")
    assert not rnd.board.state().shares
    rnd.post(ROLE_MEMBER, q, Confirmation(q, rnd.board.view()))
    rnd.post(ROLE_MEMBER, 1, rnd.shares(1))
    assert rnd.board.state().shares


def test_an_aborted_round_accepts_no_share_and_no_result() -> None:
    # n = 6: min_included = floor(6/3) + 2 = 4; only 3 clients upload
    rnd = ChainRound.create(n=6, m=3).register_all().reveal_all().deal_all()
    assert rnd.cfg.min_included == 4
    rnd.upload_all([1, 2, 3])
    rnd.to("unmask")
    board = rnd.board
    st = board.state()
    assert st.included == () and st.aborted
    u_head = board.view()
    _refused(rnd, ROLE_MEMBER, 1, Confirmation(1, u_head), "aborted")
    board.transact("anyone", "close")  # a revert rolled the implicit close back
    assert board.contract.functions.aborted().call() is True
    assert board.contract.functions.includedCount().call() == 0
    assert board.allowed_shares() == []
    # a share the member could make of a self dealing (computed off the board) reverts
    _refused(rnd, ROLE_MEMBER, 1, rnd.shares(1, [(1, 0, 0)]), "aborted")
    rnd.to("result")
    _refused(rnd, ROLE_AGGREGATOR, 0, ResultPost(bytes(32), (), 0), "aborted")
    _refused(rnd, ROLE_AGGREGATOR, 0, ResultPost(bytes(32), (1, 2, 3), 3), "aborted")
    assert board.contract.functions.resultPosted().call() is False


def test_the_k_core_on_chain_is_pythons() -> None:
    """regular:4 with min_neighbours 3: the contract's peeling gives compute_included."""
    from secagg.boards import compute_included

    rnd = ChainRound.create(n=8, m=3, graph="regular:4", min_neighbours=3, min_included=2)
    rnd.register_all().reveal_all().deal_all()
    rnd.upload_all([1, 2, 3, 5, 6, 8])
    rnd.to("unmask")
    rnd.board.transact("anyone", "close")
    st = rnd.board.state()
    assert st.included == compute_included(st)
    on_chain = [i for i in range(1, 9) if rnd.board.contract.functions.isIncluded(i).call()]
    assert tuple(on_chain) == st.included


def _raw_shares(rnd: ChainRound, member: int, refs: bytes, dealings: list, post: bytes) -> None:
    """postShares with calldata the EvmBoard would never build, signed by the member
    over exactly that calldata (so only the contract's own checks stand in the way)."""
    from pvss.transcript import keccak256
    from secagg.posts import signing_digest

    digest = keccak256(
        bytes([5]) + member.to_bytes(4, "big") + len(dealings).to_bytes(4, "big") + refs + post
    )
    view = rnd.board.view()
    sig = rnd.members[member - 1].sign(signing_digest(rnd.cfg, ROLE_MEMBER, member, view, digest))
    rnd.board.transact("anyone", "postShares", member, refs, dealings, post, view, sig)


def test_share_post_calldata_the_board_never_builds_reverts_by_name() -> None:
    from secagg.boards.evm import ContractRevert

    rnd = ChainRound.create(n=4).register_all().reveal_all().deal_all().upload_all()
    rnd.confirm_all()
    board = rnd.board
    keys = board.allowed_shares()[:2]
    msg = rnd.shares(1, keys)
    refs = b"".join(
        it.dealer.to_bytes(4, "big") + bytes([it.purpose]) + it.partner.to_bytes(4, "big")
        for it in msg.items
    )
    dealings = [board._raw_dealings[k] for k in keys]
    post = msg.share_post_bytes()
    cases = {
        "ShareRefsMismatch": (refs[:-1], dealings, post),  # a reference cut short
        "ShareRefsMismatch(0, 0)": (b"", [], post),  # no share at all
        "ShareIndexMismatch(2, 1)": (refs, dealings, (2).to_bytes(2, "big") + post[2:]),
        "DealingMismatch": (refs, [dealings[1], dealings[0]], post),  # dealings swapped
        "InvalidLength": (refs, dealings, post[:-1]),  # the share post cut short
    }
    for error, (r, d, p) in cases.items():
        with pytest.raises(ContractRevert, match=error.replace("(", r"\(").replace(")", r"\)")):
            _raw_shares(rnd, 1, r, d, p)
    assert not board.state().shares
    _raw_shares(rnd, 1, refs, dealings, post)  # the same calldata, untampered, is accepted
    assert {k for k, by in board.state().shares.items() if 1 in by} == set(keys)

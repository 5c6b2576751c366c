"""An optimistic round contract checks only a dealing's header, so a dealer can get
bytes accepted that do not decode as a dealing (a point off the curve). The attack:
halt the round for everyone — before this was fixed, ``EvmBoard._sync`` raised
``InvalidEncoding`` on every later read (state, events, transcript, challenge), and
every replica of the transcript refused it. Now the adapter names the dealer (a
``Fault`` with rule ``dealing-encoding``) and skips it: everyone else deals, uploads,
confirms and reveals; a challenge excludes the dealer on-chain; the verifier replays
the round (and names the dealer while no challenge has excluded it). Control: the
honest dealers' posts are accepted and the honest part of the round verifies.
On anvil (the embedded py-evm chain is too slow for a whole round here)."""

from __future__ import annotations

import pytest

pytest.importorskip("web3")

from pvss.transcript import PURPOSE_PAIR  # noqa: E402
from secagg.boards import MemoryBoard  # noqa: E402
from secagg.boards.evm import EvmBoard  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    DealingItem,
    DealingsPost,
    TranscriptFile,
)
from secagg.verifier import verify_round  # noqa: E402

from ..evm_round import ChainRound  # noqa: E402

OFF_CURVE = (1).to_bytes(32, "big") * 2  # (1, 1) is not on BN254


def _malformed(dealing: bytes) -> bytes:
    """The same header and length, the first point replaced by one off the curve."""
    return dealing[:5] + OFF_CURVE + dealing[5 + 64 :]


def test_a_malformed_optimistic_dealing_does_not_halt_the_adapter(anvil_url: str) -> None:
    rnd = ChainRound.create(
        f"rpc:{anvil_url}", n=4, deal_blocks=24, mode="optimistic", challenge_blocks=8
    )
    rnd.register_all().reveal_all()
    board = rnd.board
    post = rnd.dealings(1)
    bad_key = (1, PURPOSE_PAIR, 2)
    items = list(post.items)
    items[1] = DealingItem(PURPOSE_PAIR, 2, _malformed(items[1].dealing))
    rnd.post(ROLE_CLIENT, 1, DealingsPost(1, tuple(items)))  # the header passes on-chain

    # the adapter names the dealer and skips it; every read still works
    st = board.state()
    assert [(f.role, f.party, f.rule) for f in board.faults] == [
        (ROLE_CLIENT, 1, "dealing-encoding")
    ]
    assert board.malformed == {1: {bad_key}}
    assert 1 not in st.dealers and not any(k[0] == 1 for k in st.dealings)
    assert board.events()[-1].sender == 1  # the post is in the transcript (hash chain)
    # another reader (an auditor, a node) attaches and syncs past it too
    other = EvmBoard.attach(anvil_url, board.address)
    assert other.head == board.head and other.malformed == {1: {bad_key}}
    # a replica of the transcript (what a relayed node and the verifier build) too
    replica = MemoryBoard.replay(board.transcript(), board.head)
    assert replica.malformed == {1: {bad_key}} and 1 not in replica.state().dealers
    # the verifier names the dealer while no challenge has excluded it
    early = verify_round(board.transcript(), None, board.head)
    assert any(f.party == "client 1" and f.rule == "dealing-encoding" for f in early.findings), (
        early.findings
    )

    # control: everyone else deals (their posts are accepted as usual)
    for i in (2, 3, 4):
        rnd.post(ROLE_CLIENT, i, rnd.dealings(i))
    assert board.state().dealers == {2, 3, 4}

    # a challenge of the undecodable dealing excludes its dealer on-chain
    assert board.challenge(bad_key) is True
    assert bytes(board.contract.functions.head().call()) == board.head
    assert board.reputation(rnd.clients[0].address)[2] == 1

    # the rest of the round runs without client 1 and its transcript verifies
    rnd.upload_all([2, 3, 4]).confirm_all()
    for k in range(1, rnd.cfg.committee_size + 1):
        rnd.post(ROLE_MEMBER, k, rnd.shares(k))
    rnd.to("result")
    rnd.post(ROLE_AGGREGATOR, 0, rnd.result())
    assert board.state().included == (2, 3, 4)
    report = verify_round(board.transcript(), None, board.head)
    assert report.ok and not report.sum_checked, report.findings
    assert ("client 1's undecodable dealing was excluded by a challenge", True) in report.checks
    # the verdict is the same from a fresh attach (what `verify --rpc --contract` reads)
    fresh = EvmBoard.attach(anvil_url, board.address)
    assert fresh.transcript() == board.transcript()
    # and the early transcript (before the exclusion) still names client 1
    cut = next(ev.seq for ev in board.events() if ev.role == ROLE_AGGREGATOR and ev.seq > 0)
    before = verify_round(TranscriptFile(board.events()[:cut]), None)
    assert any(f.party == "client 1" for f in before.findings)

"""A SharesPost carries, per item, a dealing reference and S_i, and ONE aggregated DLEQ
for the whole post (SPEC.md §4.5 *Share post*, §6.2). A member signing a post with any
field changed — each S_i, each reference field, each proof field, the member id — must
be refused whole, naming the member, by the memory board and by the round contract
(the same rule on both), and nothing of the post may enter the state. The aggregator,
handed such a post by a lying board, drops it whole and names the member.

The tampered posts are re-signed by the member's own identity: a relay changing a post
fails the signature check before any of this (tests/adversarial/test_relay_*.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import msgpack
import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from pvss.dleq import DleqProof  # noqa: E402
from pvss.errors import InvalidEncoding  # noqa: E402
from pvss.group import ORDER, G, G1Point  # noqa: E402
from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF  # noqa: E402
from secagg import codec  # noqa: E402
from secagg.aggregate import recover_seeds, removal_plan  # noqa: E402
from secagg.boards import MemoryBoard, PostedShares, RuleViolation  # noqa: E402
from secagg.errors import ProtocolError  # noqa: E402
from secagg.messages import ROLE_MEMBER, SharesPost  # noqa: E402

from ..evm_round import ChainRound  # noqa: E402

R = int(ORDER)


@pytest.fixture(scope="module")
def rounds() -> tuple[ChainRound, MemoryBoard]:
    """A chain round in UNMASK, every member confirmed, no share posted; and the memory
    board replayed from its events (same state, same view)."""
    rnd = ChainRound.create(n=5, m=4, t=1).register_all().reveal_all().deal_all()
    rnd.upload_all([1, 2, 3, 4])  # client 5 drops: its pair dealings cross U's boundary
    rnd.confirm_all()
    mem = MemoryBoard.replay(rnd.board.transcript(), rnd.board.contract.functions.head().call())
    assert mem.view() == rnd.board.view() and mem.state().included == (1, 2, 3, 4)
    return rnd, mem


def _point(raw: bytes) -> G1Point:
    return G1Point.from_bytes(raw)


def _with_item(post: SharesPost, i: int, **change: object) -> SharesPost:
    items = list(post.items)
    items[i] = dataclasses.replace(items[i], **change)
    return dataclasses.replace(post, items=tuple(items))


def _with_proof(post: SharesPost, **change: object) -> SharesPost:
    proof = dataclasses.replace(DleqProof.from_bytes(post.proof), **change)
    return dataclasses.replace(post, proof=proof.to_bytes())


def _tampers(rnd: ChainRound, post: SharesPost) -> dict[str, tuple[SharesPost, str]]:
    """name -> (the tampered post, the rule both boards must refuse it under)."""
    allowed = rnd.board.allowed_shares()
    outside = [k for k in allowed if k not in post.keys]
    assert outside, "the test needs an allowed dealing the post does not hold"
    out: dict[str, tuple[SharesPost, str]] = {}
    for i, it in enumerate(post.items):
        moved = (_point(it.share) + G).to_bytes()
        out[f"share[{i}] moved"] = (_with_item(post, i, share=moved), "share-proof")
    a, b = post.items[0], post.items[1]
    swapped = dataclasses.replace(post, items=(b, a) + post.items[2:])
    out["references swapped with their shares"] = (swapped, "share-proof")
    s_swapped = _with_item(_with_item(post, 0, share=b.share), 1, share=a.share)
    out["shares swapped under their references"] = (s_swapped, "share-proof")
    # every reference field: pointed at another dealing U allows, S_i is re-bound to a
    # dealing it does not decrypt (the proof fails); pointed anywhere else, the dealing
    # is not one U reveals
    i_self = next(i for i, it in enumerate(post.items) if it.purpose == PURPOSE_SELF)
    i_pair = next(i for i, it in enumerate(post.items) if it.purpose == PURPOSE_PAIR)
    s, p = post.items[i_self], post.items[i_pair]
    self_out = next(k for k in outside if k[1] == PURPOSE_SELF)
    pair_out = next(k for k in outside if k[1:] == (p.purpose, p.partner))
    out["self dealer, re-bound"] = (_with_item(post, i_self, dealer=self_out[0]), "share-proof")
    out["pair dealer, re-bound"] = (_with_item(post, i_pair, dealer=pair_out[0]), "share-proof")
    out["self dealer, outside U"] = (_with_item(post, i_self, dealer=5), "share-not-allowed")
    out["pair partner, inside U"] = (
        _with_item(post, i_pair, partner=next(j for j in (2, 3, 4) if j != p.dealer)),
        "share-not-allowed",
    )
    out["self partner"] = (_with_item(post, i_self, partner=2), "share-not-allowed")
    out["self purpose"] = (_with_item(post, i_self, purpose=PURPOSE_PAIR), "share-not-allowed")
    out["pair purpose"] = (_with_item(post, i_pair, purpose=PURPOSE_SELF), "share-not-allowed")
    assert s.key in post.keys
    # the proof's three fields
    proof = DleqProof.from_bytes(post.proof)
    out["proof.A1"] = (_with_proof(post, a1=proof.a1 + G), "share-proof")
    out["proof.A2"] = (_with_proof(post, a2=proof.a2 + G), "share-proof")
    out["proof.z"] = (_with_proof(post, response=(proof.response + 1) % R), "share-proof")
    # one share dropped, one share of another dealing added under the same proof
    out["a share dropped"] = (
        dataclasses.replace(post, items=post.items[:-1]),
        "share-proof",
    )
    extra = rnd.shares(1, [outside[0]]).items[0]
    out["a share added"] = (
        dataclasses.replace(post, items=post.items + (extra,)),
        "share-proof",
    )
    return out


def _refused(
    submit: Callable[[], object], board: object, member: int, rule: str, what: str
) -> None:
    before = len(board.state().share_posts)  # type: ignore[attr-defined]
    with pytest.raises(RuleViolation) as info:
        submit()
    assert info.value.fault.party == member and info.value.fault.role == ROLE_MEMBER, what
    assert info.value.fault.rule == rule, (what, info.value)
    st = board.state()  # type: ignore[attr-defined]
    assert len(st.share_posts) == before, what
    assert not any(member in by for by in st.shares.values()), what


def test_every_field_of_a_shares_post_is_bound_on_both_boards(rounds) -> None:  # noqa: ANN001
    rnd, mem = rounds
    allowed = rnd.board.allowed_shares()
    keys = [k for k in allowed if k[1] == PURPOSE_SELF][:2] + [
        k for k in allowed if k[1] == PURPOSE_PAIR
    ][:1]
    honest = rnd.shares(1, keys)
    tampers = _tampers(rnd, honest)
    assert len(tampers) >= 15
    for what, (post, rule) in tampers.items():
        _refused(lambda p=post: rnd.post(ROLE_MEMBER, 1, p), rnd.board, 1, rule, f"chain: {what}")
        _refused(
            lambda p=post: mem.submit(rnd.sign(ROLE_MEMBER, 1, p)), mem, 1, rule, f"memory: {what}"
        )
    # re-labelled as another member's post (signed by that member): not its proof
    other = dataclasses.replace(honest, member=2)
    _refused(lambda: rnd.post(ROLE_MEMBER, 2, other), rnd.board, 2, "share-proof", "chain: member")
    _refused(
        lambda: mem.submit(rnd.sign(ROLE_MEMBER, 2, other)), mem, 2, "share-proof", "memory: member"
    )
    # the untampered post is accepted by both, with the same head
    rnd.post(ROLE_MEMBER, 1, honest)
    mem.submit(rnd.sign(ROLE_MEMBER, 1, honest))
    chain_ev, mem_ev = rnd.board.events()[-1], mem.events()[-1]
    assert (chain_ev.digest, chain_ev.body, chain_ev.sig) == (
        mem_ev.digest,
        mem_ev.body,
        mem_ev.sig,
    )
    head = bytes(rnd.board.contract.functions.head().call())  # the contract's digest agrees
    assert MemoryBoard.replay(rnd.board.transcript(), head).state().share_posts[0].keys == tuple(
        keys
    )
    for board in (rnd.board, mem):
        st = board.state()
        assert [p.keys for p in st.share_posts] == [tuple(keys)]
        assert all(
            st.shares[k][1] == _point(it.share) for k, it in zip(keys, honest.items, strict=True)
        )


def _no_point_x() -> bytes:
    """A compressed S_i whose x is no point's (x^3 + 3 is not a square mod p)."""
    for x in range(1, 100):
        try:
            G1Point.from_compressed(x.to_bytes(32, "big"))
        except InvalidEncoding:
            return x.to_bytes(32, "big")
    raise AssertionError("every small x is on the curve")


def test_a_share_that_is_no_point_is_refused_on_both_wires(rounds) -> None:  # noqa: ANN001
    """S_i is 64 bytes in calldata and 32 compressed on the memory board's wire (SPEC.md
    §6.2). On the chain a 64-byte S_i off the curve is refused as share-encoding. On
    the wire no such S_i can even be written (the codec refuses to encode a non-point),
    and the one undecodable thing a sender can write, an x with no point, is refused as
    encoding, naming the member (member 4, whom the other tests leave alone); nothing of
    the post enters either state."""
    rnd, mem = rounds
    keys = [k for k in rnd.board.allowed_shares() if k[1] == PURPOSE_SELF][:2]
    honest = rnd.shares(4, keys)
    for i, it in enumerate(honest.items):
        off = it.share[:-1] + bytes([it.share[-1] ^ 1])  # no point any more
        bad = _with_item(honest, i, share=off)
        _refused(
            lambda p=bad: rnd.post_calldata(ROLE_MEMBER, 4, p),
            rnd.board,
            4,
            "share-encoding",
            "chain",
        )
        with pytest.raises(InvalidEncoding, match="to encode"):
            codec.encode(bad)
        signed = rnd.sign(ROLE_MEMBER, 4, honest)
        wire = msgpack.unpackb(signed.body)
        assert wire[3][i][3] == G1Point.from_bytes(it.share).to_compressed()
        wire[3][i][3] = _no_point_x()
        forged = dataclasses.replace(signed, body=msgpack.packb(wire))
        _refused(lambda f=forged: mem.submit(f), mem, 4, "encoding", "memory: no point")
        assert f"items[{i}].share: no point" in str(mem.faults[-1]), mem.faults[-1]


def test_one_bad_share_refuses_the_whole_post_naming_the_member(rounds) -> None:  # noqa: ANN001
    rnd, mem = rounds
    keys = [k for k in rnd.board.allowed_shares() if 3 not in rnd.board.state().shares.get(k, {})]
    honest = rnd.shares(3, keys)
    assert len(honest.items) >= 5
    bad = _with_item(honest, 3, share=(_point(honest.items[3].share) + G).to_bytes())
    for board, submit, says in (
        (rnd.board, lambda: rnd.post(ROLE_MEMBER, 3, bad), "SharePostFailed(3,)"),
        (mem, lambda: mem.submit(rnd.sign(ROLE_MEMBER, 3, bad)), "member 3: share post"),
    ):
        with pytest.raises(RuleViolation, match=r"member 3: share-proof") as info:
            submit()
        assert info.value.fault.party == 3 and says in str(info.value), info.value
        # none of the post's shares entered, not even the good ones
        assert not any(3 in by for by in board.state().shares.values())
    assert mem.faults[-1].who == "member 3"


def test_the_aggregator_drops_a_bad_post_a_lying_board_shows_it() -> None:
    """A board that accepted a post with a wrong S_i (it is lying): the aggregator's own
    batch check fails, it names the member, drops the whole post and reconstructs from
    the other members' posts."""
    rnd = ChainRound.create(n=4, m=4, t=1).register_all().reveal_all().deal_all()
    rnd.upload_all()
    rnd.confirm_all()
    for k in (1, 2, 3):
        rnd.post(ROLE_MEMBER, k, rnd.shares(k))
    st = rnd.board.state()
    plan = removal_plan(st)
    want = recover_seeds(st, plan)
    # the lie: member 1's post with S_0 moved (shares and posts as a board would keep)
    posted = st.share_posts[0]
    assert posted.post.index == 1
    moved = posted.post.shares[0] + G
    forged = dataclasses.replace(posted.post, shares=(moved,) + posted.post.shares[1:])
    st.share_posts[0] = PostedShares(posted.keys, forged)
    st.shares[posted.keys[0]][1] = moved
    named: list[tuple[int, str]] = []
    got = recover_seeds(st, plan, on_invalid=lambda member, why: named.append((member, why)))
    assert got == want  # from members 2 and 3 (t + 1 = 2)
    assert [m for m, _ in named] == [1] and "share post" in named[0][1]
    # a lie in the S_k table alone (member 2's post untouched) is never read: every S_k
    # comes from the post its proof covers
    key2 = st.share_posts[1].keys[0]
    st.shares[key2][2] = st.shares[key2][2] + G
    assert recover_seeds(st, plan) == want
    # without member 1, member 2's post is not enough once it lies too
    p2 = st.share_posts[1]
    st.share_posts[1] = PostedShares(
        p2.keys, dataclasses.replace(p2.post, shares=(p2.post.shares[0] + G,) + p2.post.shares[1:])
    )
    with pytest.raises(ProtocolError, match=r"valid shares, need t\+1 = 2"):
        recover_seeds(st, plan)


def test_a_batch_checked_shares_post_that_fails_is_named_by_its_own_submit(rounds) -> None:  # noqa: ANN001
    """The server checks an unmask stage's share posts in one batch before submitting
    them (``MemoryBoard.preverify_share_posts``, SPEC.md §8.3): a post that fails the
    batch is not marked, so its own submit checks it and names its member (3, whom the
    other tests leave alone); the honest post beside it (member 2) is accepted; a post
    the batch never saw is checked in full as before."""
    rnd, mem = rounds
    keys = [k for k in rnd.board.allowed_shares() if k[1] == PURPOSE_PAIR][:2]
    good = rnd.sign(ROLE_MEMBER, 2, rnd.shares(2, keys))
    honest = rnd.shares(3, keys)
    proof = DleqProof.from_bytes(honest.proof)
    bad = rnd.sign(ROLE_MEMBER, 3, _with_proof(honest, response=(proof.response + 1) % R))
    assert mem.preverify_share_posts([good, bad]) == 1
    _refused(lambda: mem.submit(bad), mem, 3, "share-proof", "after a failed batch")
    mem.submit(good)
    assert [p.post.index for p in mem.state().share_posts][-1] == 2
    # a forged post submitted without a batch: refused the same way
    _refused(lambda: mem.submit(bad), mem, 3, "share-proof", "without a batch")

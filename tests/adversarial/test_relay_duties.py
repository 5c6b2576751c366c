"""A relay node checks the proofs it relies on (issue 14, SPEC.md §8.2) — and no more.

Since a node's replica no longer re-verifies every proof of every party, each proof
the per-role duties name is attacked here through a server whose board accepts
anything (the attacker hosts the board and skips the proof checks) together with a
colluding party that signs the bad post (so every signature is genuine):

* a colluding member's seed reveal with a proof for another key: an honest client
  refuses to deal on that graph;
* a colluding member's registration with a proof of possession of another key: an
  honest client refuses to deal to that committee;
* a colluding client's self dealing with a broken proof: an honest member refuses to
  decrypt any share of the round (nothing leaves it);
* a colluding client's pair dealing to an honest client with a broken proof: the
  recipient refuses to upload.

Each attack has its control: the same round with the honest post goes through.
"""

from __future__ import annotations

import dataclasses

import pytest

from fl.relay import STAGE_CONFIRM, STAGE_DEAL, STAGE_UNMASK, STAGE_UPLOAD
from pvss.keys import KeyPair, prove_possession, prove_seed_reveal
from pvss.scrape import Dealing
from pvss.transcript import PURPOSE_PAIR
from secagg import codec
from secagg.boards import MemoryBoard, Phase, pop_party
from secagg.errors import ProtocolError
from secagg.messages import (
    ROLE_CLIENT,
    ROLE_MEMBER,
    DealingItem,
    DealingsPost,
    Registration,
    SeedReveal,
    SignedPost,
)
from secagg.posts import sign_post

from .conftest import Colluder, MaliciousServer


def _unchecking(board: MemoryBoard) -> MemoryBoard:
    """The attacker's board: every rule but no proof (the server runs what it likes)."""
    board._check_proofs = False
    return board


class _BadRevealColluder(Colluder):
    def reveal_seed(self, board: MemoryBoard) -> None:
        c = self.cfg
        gamma, proof = prove_seed_reveal(KeyPair.generate(), c.chain_id, c.board, c.round_id, 1)
        self._post(board, SeedReveal(self.index, gamma.to_bytes(), proof.to_bytes()))


class _BadPopColluder(Colluder):
    def register(self, board: MemoryBoard) -> None:
        c = self.cfg
        other = KeyPair.generate()  # a proof of possession of another key
        pop = prove_possession(other, c.chain_id, c.board, c.round_id, pop_party(ROLE_MEMBER, 1))
        self._post(
            board, Registration(ROLE_MEMBER, self.index, self.key.pk.to_bytes(), pop.to_bytes())
        )


@pytest.mark.parametrize("bad", [False, True], ids=["control", "attack"])
def test_a_seed_reveal_with_a_bad_proof_stops_an_honest_client(deploy, bad: bool) -> None:
    dep = deploy(n=3, m=3, t=1)
    srv = MaliciousServer(dep, colluding_members=[1])
    if bad:
        srv.colluders[1] = _BadRevealColluder(srv.cfg, 1, dep.idents[dep.member_node(1)])
    board = _unchecking(srv.new_board())
    srv.run_stage(board, "register", [1, 2, 3], [1, 2, 3])
    srv.run_stage(board, "seed", members=[1, 2, 3])
    if bad:
        with pytest.raises(ProtocolError, match="invalid proof.*member 1.*seed"):
            srv.ask_client(board, 1, STAGE_DEAL)
    else:
        assert srv.ask_client(board, 1, STAGE_DEAL).posts


@pytest.mark.parametrize("bad", [False, True], ids=["control", "attack"])
def test_a_member_key_without_possession_stops_honest_nodes(deploy, bad: bool) -> None:
    """Member keys are checked as soon as the committee is complete: an honest client
    refuses to register into that round, an honest member to reveal its seed share."""
    dep = deploy(n=3, m=3, t=1)
    srv = MaliciousServer(dep, colluding_members=[2])
    if bad:
        srv.colluders[2] = _BadPopColluder(srv.cfg, 2, dep.idents[dep.member_node(2)])
    board = _unchecking(srv.new_board())
    srv.run_stage(board, "register", members=[1, 2, 3])
    if not bad:
        assert srv.ask_client(board, 1, "register").posts
        srv.open(board, Phase.DEAL)
        assert srv.ask_member(board, 1, "seed").posts
        return
    with pytest.raises(ProtocolError, match="invalid proof.*member 2.*proof-of-possession"):
        srv.ask_client(board, 1, "register")
    srv.open(board, Phase.DEAL)
    with pytest.raises(ProtocolError, match="invalid proof.*member 2.*proof-of-possession"):
        srv.ask_member(board, 3, "seed")


def _broken(post_raw: bytes, srv: MaliciousServer, board: MemoryBoard, which) -> SignedPost:  # noqa: ANN001
    """The colluding client's signed DealingsPost with the dealing ``which(key)`` picks
    made invalid (one response scalar changed), re-signed by the client itself."""
    post = codec.decode(post_raw, SignedPost)
    msg = codec.decode(post.body, DealingsPost)
    items = []
    for it in msg.items:
        if which((msg.dealer, it.purpose, it.partner)):
            d = Dealing.from_bytes(it.dealing)
            d = dataclasses.replace(d, z=((d.z[0] + 1) % (2**252),) + d.z[1:])
            it = DealingItem(it.purpose, it.partner, d.to_bytes())
        items.append(it)
    ident = srv.dep.idents[srv.dep.client_node(msg.dealer)]
    return sign_post(
        ident, srv.cfg, ROLE_CLIENT, msg.dealer, DealingsPost(msg.dealer, tuple(items)), post.view
    )


def _deal_all(srv: MaliciousServer, board: MemoryBoard, bad_client: int, which) -> None:  # noqa: ANN001
    srv.run_stage(board, "register", [1, 2, 3], [1, 2, 3])
    srv.run_stage(board, "seed", members=[1, 2, 3])
    for i in (1, 2, 3):
        reply = srv.ask_client(board, i, STAGE_DEAL)
        if i == bad_client and which is not None:
            board.submit(_broken(reply.posts[0], srv, board, which))
        else:
            srv.post(board, reply)


@pytest.mark.parametrize("bad", [False, True], ids=["control", "attack"])
def test_a_bad_self_dealing_is_never_decrypted_by_an_honest_member(deploy, bad: bool) -> None:
    dep = deploy(n=3, m=3, t=1)
    srv = MaliciousServer(dep, colluding_clients=[2])
    board = _unchecking(srv.new_board())
    _deal_all(srv, board, 2, (lambda k: k == (2, 0, 0)) if bad else None)
    srv.run_stage(board, STAGE_UPLOAD, [1, 2, 3])
    srv.run_stage(board, STAGE_CONFIRM, members=[1, 2, 3])
    if bad:
        with pytest.raises(ProtocolError, match=r"invalid proof.*client 2.*dealing-proof"):
            srv.ask_member(board, 1, STAGE_UNMASK)
        assert not any(stage == STAGE_UNMASK for _, stage, _ in srv.replies)  # no share left
    else:
        assert srv.ask_member(board, 1, STAGE_UNMASK).posts


@pytest.mark.parametrize("bad", [False, True], ids=["control", "attack"])
def test_a_bad_incoming_pair_dealing_stops_its_recipient(deploy, bad: bool) -> None:
    dep = deploy(n=3, m=3, t=1)
    srv = MaliciousServer(dep, colluding_clients=[1])
    board = _unchecking(srv.new_board())
    _deal_all(srv, board, 1, (lambda k: k == (1, PURPOSE_PAIR, 3)) if bad else None)
    srv.open(board, Phase.UPLOAD)
    if bad:
        with pytest.raises(ProtocolError, match="invalid dealing"):
            srv.ask_client(board, 3, STAGE_UPLOAD)
    else:
        assert srv.ask_client(board, 3, STAGE_UPLOAD).blob
    assert srv.ask_client(board, 2, STAGE_UPLOAD).blob  # client 2 never relies on it

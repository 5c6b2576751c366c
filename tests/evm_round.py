"""A round on the ``PvssRound`` contract driven by signed posts, without the roles: each
seat's identity signs its own posts (``secagg.posts.sign_post``), and the board relays
them from its one relayer account. Used by tests/test_evm_board.py and the contract
adversarial tests (tests/adversarial/test_contract_*.py)."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

from pvss.keys import KeyPair, prove_possession, prove_seed_reveal
from pvss.scrape import deal
from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF, keccak256
from secagg.boards import pop_party
from secagg.boards.evm import EvmBoard
from secagg.config import RoundConfig
from secagg.graph import dealing_context
from secagg.identity import Identity
from secagg.messages import (
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Confirmation,
    DealingItem,
    DealingsPost,
    Event,
    MaskedInputPost,
    Registration,
    ResultPost,
    SeedReveal,
    SharesPost,
    SignedPost,
)
from secagg.packing import packed_size
from secagg.posts import post_digest, sign_post, signing_digest
from secagg.roles import shares_post

_KEYS = itertools.count(1)


def identity() -> Identity:
    """A fresh deterministic identity (distinct within a session)."""
    return Identity.from_key(keccak256(b"pvss-secagg/tests/evm" + next(_KEYS).to_bytes(8, "big")))


def round_config(
    n: int = 3,
    m: int = 3,
    t: int = 1,
    *,
    graph: str = "complete",
    deal_blocks: int = 0,
    register: int = 0,
    open_membership: bool = False,
    **kw: Any,
) -> tuple[RoundConfig, Identity, list[Identity], list[Identity]]:
    """A config with a fresh roster: (config, aggregator, members, clients); phase
    lengths leave a block per post (R >= n+m+3, D >= n+m+3, X >= 2m+4)."""
    agg = identity()
    members = [identity() for _ in range(m)]
    clients = [identity() for _ in range(n)]
    base = dict(
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
        deal_blocks=deal_blocks or n + m + 3,
        upload_blocks=n + 3,
        unmask_blocks=2 * m + 4,
        aggregator=agg.address,
        members=tuple(i.address for i in members),
        clients=() if open_membership else tuple(i.address for i in clients),
    )
    base.update(kw)
    return RoundConfig(**base), agg, members, clients


@dataclass
class ChainRound:
    """A board and every seat's identity and round key."""

    board: EvmBoard
    aggregator: Identity
    members: list[Identity]
    clients: list[Identity]
    member_keys: list[KeyPair] = field(default_factory=list)
    client_keys: list[KeyPair] = field(default_factory=list)

    @classmethod
    def create(cls, provider: Any = "evm", **kw: Any) -> ChainRound:
        mode = kw.pop("mode", None)
        extra = {k: kw.pop(k) for k in ("challenge_blocks", "stake", "bond") if k in kw}
        cfg, agg, members, clients = round_config(**kw)
        board = EvmBoard(cfg, provider, aggregator=agg, mode=mode, **extra)
        rnd = cls(board, agg, members, clients)
        rnd.member_keys = [KeyPair.generate() for _ in members]
        rnd.client_keys = [KeyPair.generate() for _ in clients]
        return rnd

    @property
    def cfg(self) -> RoundConfig:
        return self.board.config

    # -- signing -----------------------------------------------------------------------
    def identity(self, role: int, sender: int) -> Identity:
        if role == ROLE_AGGREGATOR:
            return self.aggregator
        return (self.members if role == ROLE_MEMBER else self.clients)[sender - 1]

    def sign(
        self,
        role: int,
        sender: int,
        msg: Any,
        *,
        by: Identity | None = None,
        view: bytes | None = None,
    ) -> SignedPost:
        return sign_post(
            by or self.identity(role, sender),
            self.cfg,
            role,
            sender,
            msg,
            self.board.view() if view is None else view,
        )

    def post(self, role: int, sender: int, msg: Any, **kw: Any) -> Event:
        return self.board.submit(self.sign(role, sender, msg, **kw))

    def post_calldata(self, role: int, sender: int, msg: Any) -> Event:
        """``msg`` straight to the contract, signed, never wire-encoded: calldata the
        wire cannot carry (a 64-byte S_i off the curve), as a party with its own account
        can send it."""
        view = self.board.view()
        digest = post_digest(msg)
        sig = self.identity(role, sender).sign(signing_digest(self.cfg, role, sender, view, digest))
        return self.board.submit_message(role, sender, msg, view, sig)

    # -- messages ----------------------------------------------------------------------
    def registration(self, role: int, party: int, key: KeyPair | None = None) -> Registration:
        cfg = self.cfg
        if key is None:
            key = (self.member_keys if role == ROLE_MEMBER else self.client_keys)[party - 1]
        pop = prove_possession(key, cfg.chain_id, cfg.board, cfg.round_id, pop_party(role, party))
        return Registration(role, party, key.pk.to_bytes(), pop.to_bytes())

    def seed_reveal(self, member: int) -> SeedReveal:
        cfg = self.cfg
        gamma, proof = prove_seed_reveal(
            self.member_keys[member - 1], cfg.chain_id, cfg.board, cfg.round_id, member
        )
        return SeedReveal(member, gamma.to_bytes(), proof.to_bytes())

    def dealings(self, dealer: int) -> DealingsPost:
        st = self.board.state()
        assert st.graph is not None, "round seed not fixed"
        pks = [st.members[k] for k in range(1, self.cfg.committee_size + 1)]
        keys = [(dealer, PURPOSE_SELF, 0)] + [
            (dealer, PURPOSE_PAIR, j) for j in st.graph[dealer] if j > dealer and j in st.clients
        ]
        items = []
        for key in keys:
            rpk = st.clients[key[2]] if key[1] == PURPOSE_PAIR else None
            d, _ = deal(pks, self.cfg.threshold, dealing_context(self.cfg, key), rpk)
            items.append(DealingItem(key[1], key[2], d.to_bytes()))
        return DealingsPost(dealer, tuple(items))

    def masked(self, client: int) -> MaskedInputPost:
        size = packed_size(self.cfg.vector_length, self.cfg.bits)
        tag = bytes([client]) if client < 256 else client.to_bytes(4, "big")  # n > 255 rounds
        return MaskedInputPost(client, hashlib.sha256(tag).digest(), size)

    def shares(self, member: int, keys: list | None = None) -> SharesPost:
        """Member ``member``'s share post of ``keys`` (default: every allowed dealing)."""
        keys = self.board.allowed_shares() if keys is None else keys
        st = self.board.state()
        return shares_post(self.cfg, st, member, self.member_keys[member - 1], keys)

    def result(self) -> ResultPost:
        u = self.board.included()
        return ResultPost(bytes(32), tuple(u), len(u))

    # -- phases ------------------------------------------------------------------------
    def to(self, phase: str) -> None:
        c = self.cfg
        ends = {
            "deal": c.register_blocks,
            "upload": c.register_blocks + c.deal_blocks,
            "unmask": c.register_blocks + c.deal_blocks + c.upload_blocks,
            "result": c.register_blocks + c.deal_blocks + c.upload_blocks + c.unmask_blocks,
        }
        self.board.advance(max(0, ends[phase] - self.board.height()))

    def register_all(self) -> ChainRound:
        for i in range(1, self.cfg.n_clients + 1):
            self.post(ROLE_CLIENT, i, self.registration(ROLE_CLIENT, i))
        for k in range(1, self.cfg.committee_size + 1):
            self.post(ROLE_MEMBER, k, self.registration(ROLE_MEMBER, k))
        return self

    def reveal_all(self) -> ChainRound:
        self.to("deal")
        for k in range(1, self.cfg.committee_size + 1):
            self.post(ROLE_MEMBER, k, self.seed_reveal(k))
        return self

    def deal_all(self, clients: list[int] | None = None) -> ChainRound:
        for i in clients or range(1, self.cfg.n_clients + 1):
            self.post(ROLE_CLIENT, i, self.dealings(i))
        return self

    def upload_all(self, clients: list[int] | None = None) -> ChainRound:
        self.to("upload")
        for i in clients or range(1, self.cfg.n_clients + 1):
            self.post(ROLE_CLIENT, i, self.masked(i))
        return self

    def confirm_all(self, members: list[int] | None = None) -> ChainRound:
        self.to("unmask")
        for k in members or range(1, self.cfg.committee_size + 1):
            self.post(ROLE_MEMBER, k, Confirmation(k, self.board.view()))
        return self

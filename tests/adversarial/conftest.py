"""Shared machinery of the adversarial tests (issue 11, SPEC.md §6.9–§6.13).

The attacker is the **server**: it hosts the board, so it builds whatever
``MemoryBoard`` s it likes (it holds the aggregator identity and signs event 0 of any
board), re-chains, drops and reorders posts, and sends ``StageRequest`` s to honest
nodes. The honest nodes are real :class:`fl.relay.NodeAgent` s, each with its own
``Identity`` and the deployment's ``Roster`` from :func:`secagg.roster.make_deployment`
(never taken from the server). Colluding parties are modelled explicitly: a colluding
member's round key is the attacker's (:class:`Colluder`), a colluding client's node
state is read by the attacker.

:class:`Loot` is everything the attacker has collected: every decrypted share any
honest node ever returned (on any board), every dealing it saw, every masked vector
with the pair edges its client masked with, the colluders' secrets. ``Loot.recover``
tries to unmask an individual input from that; each attack test asserts it fails, and
where cheap a control shows the same attack *succeeds* against a weakened setting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fl.host import make_round_config
from fl.relay import (
    STAGE_CONFIRM,
    STAGE_DEAL,
    STAGE_REGISTER,
    STAGE_SEED,
    STAGE_UNMASK,
    STAGE_UPLOAD,
    NodeAgent,
    StageReply,
    StageRequest,
    _NodeState,
)
from pvss.group import G1Point
from pvss.keys import KeyPair, prove_possession, prove_seed_reveal
from pvss.scrape import Dealing, decrypt_share, reconstruct, recover_as_recipient
from pvss.transcript import PURPOSE_PAIR
from secagg import codec
from secagg.boards import MemoryBoard, Phase, pop_party
from secagg.config import RoundConfig
from secagg.graph import DealingKey, compute_mask_seed, dealing_context, pair_key, pair_sign
from secagg.identity import Identity
from secagg.masking import unmask_sum
from secagg.messages import (
    ROLE_MEMBER,
    Confirmation,
    Registration,
    SeedReveal,
    SharesPost,
    SignedPost,
)
from secagg.posts import sign_post
from secagg.quantize import dequantize_sum
from secagg.roles import shares_post
from secagg.roster import Roster, make_deployment

DIM = 8
CLIP = 1.0
QUANT_BITS = 16
MAX_WEIGHT = 10
BOARD_ADDRESS = bytes(range(20))


# -- the deployment --------------------------------------------------------------------


@dataclass
class Deployment:
    """A deployment ceremony's output: node k-1 holds member seat k (k = 1..m), node
    m+i-1 holds client seat i (i = 1..n). ``idents[node]`` is that node's own secret;
    ``server`` is the server's identity (the attacker's)."""

    roster: Roster
    idents: list[Identity]
    server: Identity
    n: int
    m: int
    t: int

    def member_node(self, k: int) -> int:
        return k - 1

    def client_node(self, i: int) -> int:
        return self.m + i - 1

    def config(self, round_id: int = 1, graph: str = "complete", **kw) -> RoundConfig:  # noqa: ANN003
        return make_round_config(
            round_id=round_id,
            n_clients=self.n,
            committee_size=self.m,
            threshold=self.t,
            dim=DIM,
            clip=CLIP,
            quant_bits=QUANT_BITS,
            max_weight=MAX_WEIGHT,
            graph=graph,
            board_address=BOARD_ADDRESS,
            aggregator=self.server.address,
            members=self.roster.committee,
            clients=tuple(self.idents[self.client_node(i)].address for i in range(1, self.n + 1)),
            **kw,
        )


@pytest.fixture
def deploy(tmp_path: Path) -> Callable[..., Deployment]:
    """``deploy(n, m, t)``: a fresh deployment ceremony (identity files + roster)."""

    def make(n: int = 4, m: int = 3, t: int = 1) -> Deployment:
        roster, paths = make_deployment(tmp_path / f"deployment-{n}-{m}-{t}", n + m, m, t)
        return Deployment(roster, [Identity.load(p) for p in paths], Identity.generate(), n, m, t)

    return make


# -- colluders -------------------------------------------------------------------------


class Colluder:
    """A corrupt committee member: its identity and round key belong to the attacker,
    which posts for it on any board it likes (it confirms every head)."""

    def __init__(self, cfg: RoundConfig, index: int, identity: Identity) -> None:
        self.cfg, self.index, self.identity = cfg, index, identity
        self.key = KeyPair.generate()

    def _post(self, board: MemoryBoard, msg: object) -> None:
        board.submit(sign_post(self.identity, self.cfg, ROLE_MEMBER, self.index, msg, board.view()))

    def register(self, board: MemoryBoard) -> None:
        c = self.cfg
        pop = prove_possession(
            self.key, c.chain_id, c.board, c.round_id, pop_party(ROLE_MEMBER, self.index)
        )
        self._post(
            board, Registration(ROLE_MEMBER, self.index, self.key.pk.to_bytes(), pop.to_bytes())
        )

    def reveal_seed(self, board: MemoryBoard) -> None:
        c = self.cfg
        gamma, proof = prove_seed_reveal(self.key, c.chain_id, c.board, c.round_id, self.index)
        self._post(board, SeedReveal(self.index, gamma.to_bytes(), proof.to_bytes()))

    def confirm(self, board: MemoryBoard) -> None:
        self._post(board, Confirmation(self.index, board.view()))

    def decrypt(self, dealing: Dealing, key: DealingKey) -> G1Point:
        """S_k of ``dealing`` (a colluder needs no proof for itself)."""
        return decrypt_share(dealing, self.index, self.key, dealing_context(self.cfg, key)).share

    def reveal(self, board: MemoryBoard) -> None:
        st = board.state()
        self._post(board, shares_post(self.cfg, st, self.index, self.key, board.allowed_shares()))


# -- what the attacker holds ----------------------------------------------------------


@dataclass
class Upload:
    """A masked vector the attacker got from ``client``, and the pair edges (partner,
    dealing key) the client masked it with, as on the board it was shown."""

    client: int
    blob: bytes
    edges: list[tuple[int, DealingKey]]


@dataclass
class Loot:
    """Everything the attacker collected from honest replies and from its colluders."""

    cfg: RoundConfig
    shares: dict[DealingKey, dict[int, G1Point]] = field(default_factory=dict)
    dealings: dict[DealingKey, Dealing] = field(default_factory=dict)
    uploads: list[Upload] = field(default_factory=list)
    colluders: list[Colluder] = field(default_factory=list)
    # colluding clients: their dealt secrets and round keys (read from their node state)
    client_secrets: dict[DealingKey, G1Point] = field(default_factory=dict)
    client_keys: dict[int, KeyPair] = field(default_factory=dict)

    def see_board(self, board: MemoryBoard) -> None:
        self.dealings.update(board.state().dealings)

    def take_shares(self, member: int, post: SharesPost) -> None:
        for key, pt in zip(post.keys, post.share_post().shares, strict=True):
            self.shares.setdefault(key, {})[member] = pt

    def honest_share_count(self, key: DealingKey) -> int:
        return len(self.shares.get(key, {}))

    def secret(self, key: DealingKey) -> G1Point | None:
        """The secret of dealing ``key`` if the attacker can get it: a colluding client
        dealt or receives it, or t+1 distinct members' shares (honest replies plus
        the colluding members' own decryptions)."""
        if key in self.client_secrets:
            return self.client_secrets[key]
        dealing = self.dealings.get(key)
        if dealing is None:
            return None
        if key[1] == PURPOSE_PAIR and key[2] in self.client_keys:
            return recover_as_recipient(dealing, self.client_keys[key[2]])
        shares = dict(self.shares.get(key, {}))
        for c in self.colluders:
            shares.setdefault(c.index, c.decrypt(dealing, key))
        if len(shares) < self.cfg.threshold + 1:
            return None
        return reconstruct(shares, self.cfg.threshold)

    def recover(self, client: int) -> np.ndarray | None:
        """The individual (dequantized) input of ``client`` if any masked vector the
        attacker holds from it can be fully unmasked, else None."""
        cfg = self.cfg
        for up in (u for u in self.uploads if u.client == client):
            keys = [(client, 0, 0)] + [k for _, k in up.edges]
            secrets = [self.secret(k) for k in keys]
            if any(s is None for s in secrets):
                continue
            seeds = [(compute_mask_seed(dealing_context(cfg, keys[0]), secrets[0]), 1)]
            for (j, k), s in zip(up.edges, secrets[1:], strict=True):
                seeds.append((compute_mask_seed(dealing_context(cfg, k), s), pair_sign(client, j)))
            total = unmask_sum([up.blob], cfg.vector_length, cfg.bits, seeds)
            if 0 < int(total[-1]) <= cfg.max_weight:
                return dequantize_sum(total, cfg.clip, cfg.quant_bits)
        return None

    def exposes(self, client: int, update: np.ndarray) -> bool:
        got = self.recover(client)
        return got is not None and bool(np.allclose(got, update, atol=1e-3))


# -- the malicious server -------------------------------------------------------------


def update_of(i: int) -> np.ndarray:
    return np.random.default_rng(1000 + i).uniform(-0.9, 0.9, DIM)


class MaliciousServer:
    """The relay, played by the attacker. Honest nodes are ``NodeAgent`` s whose state
    blobs stay node-local (the server never edits them; tests that model a weakened
    node say so)."""

    def __init__(
        self,
        dep: Deployment,
        cfg: RoundConfig | None = None,
        *,
        colluding_members: Iterable[int] = (),
        colluding_clients: Iterable[int] = (),
    ) -> None:
        self.dep = dep
        self.cfg = cfg if cfg is not None else dep.config()
        self.states: dict[int, bytes] = {}
        self.colluders = {
            k: Colluder(self.cfg, k, dep.idents[dep.member_node(k)]) for k in colluding_members
        }
        self.colluding_clients = set(colluding_clients)
        self.loot = Loot(self.cfg, colluders=list(self.colluders.values()))
        self.replies: list[tuple[int, str, StageReply]] = []

    # boards the server builds at will
    def new_board(self, cfg: RoundConfig | None = None) -> MemoryBoard:
        return MemoryBoard.create(cfg or self.cfg, self.dep.server)

    @staticmethod
    def open(board: MemoryBoard, phase: Phase) -> None:
        c = board.config
        start = sum([c.register_blocks, c.deal_blocks, c.upload_blocks, c.unmask_blocks][:phase])
        if board.height() < start:
            board.advance(start - board.height())

    @staticmethod
    def post(board: MemoryBoard, reply: StageReply) -> None:
        for raw in reply.posts:
            board.submit(codec.decode(raw, SignedPost))

    # talking to honest nodes
    def agent(self, node: int) -> NodeAgent:
        return NodeAgent(
            self.states.get(node, b""),
            identity=self.dep.idents[node],
            roster=self.dep.roster,
            rng=np.random.default_rng(node),
        )

    def ask(
        self,
        node: int,
        board: MemoryBoard,
        stage: str,
        *,
        client: int = 0,
        member: int = 0,
        transcript: bytes | None = None,
    ) -> StageReply:
        """Send one request; whatever the node answers is loot. Raises what it raises."""
        req = StageRequest(
            stage,
            board.height(),
            transcript if transcript is not None else codec.encode(board.transcript()),
            client,
            member,
        )
        agent = self.agent(node)
        update = (lambda: (update_of(client), 1 + client % MAX_WEIGHT)) if client else None
        try:
            reply = agent.handle(req, update)
        finally:
            self.states[node] = agent.state_bytes()
        self.replies.append((node, stage, reply))
        self._loot(board, stage, client, member, reply)
        if client in self.colluding_clients:
            s = _NodeState.from_bytes(self.states[node])
            self.loot.client_secrets.update(s.secrets)
            if s.client_sk:
                self.loot.client_keys[client] = KeyPair.generate(s.client_sk)
        return reply

    def _loot(
        self, board: MemoryBoard, stage: str, client: int, member: int, reply: StageReply
    ) -> None:
        self.loot.see_board(board)
        for raw in reply.posts:
            msg = codec.decode(codec.decode(raw, SignedPost).body)
            if isinstance(msg, SharesPost):
                self.loot.take_shares(msg.member, msg)
        if stage == STAGE_UPLOAD and reply.blob:
            st = board.state()
            assert st.graph is not None
            edges = [(j, pair_key(client, j)) for j in st.graph[client]]
            used = [(j, k) for j, k in edges if k in st.dealings]
            self.loot.uploads.append(Upload(client, reply.blob, used))

    def ask_client(self, board: MemoryBoard, i: int, stage: str, **kw) -> StageReply:  # noqa: ANN003
        return self.ask(self.dep.client_node(i), board, stage, client=i, **kw)

    def ask_member(self, board: MemoryBoard, k: int, stage: str, **kw) -> StageReply:  # noqa: ANN003
        return self.ask(self.dep.member_node(k), board, stage, member=k, **kw)

    # honest stages on one board
    def run_stage(
        self,
        board: MemoryBoard,
        stage: str,
        clients: Iterable[int] = (),
        members: Iterable[int] = (),
    ) -> None:
        """Ask the given honest seats (colluding members act for themselves) and post
        their replies on ``board``."""
        phase = {
            STAGE_REGISTER: Phase.REGISTER,
            STAGE_SEED: Phase.DEAL,
            STAGE_DEAL: Phase.DEAL,
            STAGE_UPLOAD: Phase.UPLOAD,
            STAGE_CONFIRM: Phase.UNMASK,
            STAGE_UNMASK: Phase.UNMASK,
        }[stage]
        self.open(board, phase)
        for k in members:
            if k in self.colluders:
                col = self.colluders[k]
                {
                    STAGE_REGISTER: col.register,
                    STAGE_SEED: col.reveal_seed,
                    STAGE_CONFIRM: col.confirm,
                    STAGE_UNMASK: col.reveal,
                }[stage](board)
            else:
                self.post(board, self.ask_member(board, k, stage))
        for i in clients:
            self.post(board, self.ask_client(board, i, stage))
        self.loot.see_board(board)

    def through_deal(self, board: MemoryBoard, clients: Iterable[int] | None = None) -> None:
        """Registration, seed reveals and dealings, honestly, for every member and the
        given clients (default all)."""
        cl = list(range(1, self.cfg.n_clients + 1)) if clients is None else list(clients)
        ms = list(range(1, self.cfg.committee_size + 1))
        self.run_stage(board, STAGE_REGISTER, cl, ms)
        self.run_stage(board, STAGE_SEED, members=ms)
        self.run_stage(board, STAGE_DEAL, cl)

    def honest_round(self, board: MemoryBoard, uploaders: Iterable[int] | None = None) -> None:
        ms = list(range(1, self.cfg.committee_size + 1))
        self.through_deal(board)
        up = list(range(1, self.cfg.n_clients + 1)) if uploaders is None else list(uploaders)
        self.run_stage(board, STAGE_UPLOAD, up)
        self.run_stage(board, STAGE_CONFIRM, members=ms)
        self.run_stage(board, STAGE_UNMASK, members=ms)


def rechain(cfg: RoundConfig, server: Identity, events: Iterable, heights: Iterable[int]):  # noqa: ANN201
    """A new board on which the server re-submits the given events' signed posts, each
    at the given height (the server's own, freely chosen history)."""
    board = MemoryBoard.create(cfg, server)
    for ev, h in zip(events, heights, strict=True):
        if board.height() < h:
            board.advance(h - board.height())
        board.submit(SignedPost(ev.role, ev.sender, ev.body, ev.view, ev.sig))
    return board


def signed(ev) -> SignedPost:  # noqa: ANN001
    """The signed post an event was made from (what a server can re-submit anywhere)."""
    return SignedPost(ev.role, ev.sender, ev.body, ev.view, ev.sig)


def registration_post(
    board: MemoryBoard, identity: Identity, role: int, party: int, key: KeyPair | None = None
) -> tuple[SignedPost, KeyPair]:
    """A registration for seat (role, party) with a valid proof of possession of ``key``
    (fresh by default), signed by ``identity`` on ``board`` 's current view."""
    cfg = board.config
    key = key or KeyPair.generate()
    pop = prove_possession(key, cfg.chain_id, cfg.board, cfg.round_id, pop_party(role, party))
    msg = Registration(role, party, key.pk.to_bytes(), pop.to_bytes())
    return sign_post(identity, cfg, role, party, msg, board.view()), key


def bypass_signatures(mp: pytest.MonkeyPatch) -> None:
    """WEAKENED SETTING (controls only): every board and every node replica accepts any
    signature and treats the post as signed by the seat's identity."""

    def check(self, post, msg, identity):  # noqa: ANN001, ANN202, ARG001
        return identity if identity is not None else post.sig[:20]

    mp.setattr(MemoryBoard, "_check_signature", check)

"""The roles as explicit state machines (SPEC.md §6.5).

Each role checks its own stage before acting (``ProtocolError`` otherwise) and verifies
whatever it uses that came from someone else — including what the board relays. Every
post is signed by the role's identity on the board's current view (SPEC.md §6.9, §6.11).
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

from pvss.errors import InvalidProof
from pvss.group import G1Point
from pvss.keys import KeyPair, prove_possession, prove_seed_reveal
from pvss.scrape import (
    DealingClaim,
    DealRequest,
    deal_many,
    decrypt_share_post,
    recover_as_recipient,
    verify_dealings,
)
from pvss.transcript import PURPOSE_PAIR
from secagg.aggregate import (
    check_dp_included,
    compute_sum,
    dp_rotation_seed,
    recover_seeds,
    removal_plan,
    result_blob,
    result_mean,
)
from secagg.blobs import BlobStore, blob_digest
from secagg.boards import Board, Phase, RoundState, compute_included, pop_party
from secagg.config import RoundConfig
from secagg.dp import privatize, to_ring
from secagg.errors import ProtocolError
from secagg.graph import (
    DealingKey,
    compute_mask_seed,
    dealing_context,
    pair_key,
    pair_sign,
    self_key,
)
from secagg.identity import Identity
from secagg.masking import mask_and_pack
from secagg.messages import (
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Confirmation,
    DealingItem,
    DealingsPost,
    MaskedInputPost,
    Registration,
    ResultPost,
    SeedReveal,
    SharesPost,
)
from secagg.posts import sign_post
from secagg.quantize import quantize, rounding_key


class Stage(enum.Enum):
    NEW = "new"
    REGISTERED = "registered"
    DEALT = "dealt"
    UPLOADED = "uploaded"
    SEEDED = "seeded"
    CONFIRMED = "confirmed"
    REVEALED = "revealed"
    DONE = "done"


class _Role:
    role: int
    party: int
    stage: Stage
    config: RoundConfig
    identity: Identity

    def _post(self, board: Board, msg: Any) -> None:
        """Sign ``msg`` on the board's current view and submit it."""
        board.submit(
            sign_post(self.identity, self.config, self.role, self.party, msg, board.view())
        )

    def _expect(self, stage: Stage, board: Board | None = None, phase: Phase | None = None) -> None:
        who = f"{type(self).__name__.lower()} {self.party}"
        if self.stage != stage:
            raise ProtocolError(
                f"{who}: action needs stage {stage.value}, it is {self.stage.value}"
            )
        if board is not None and phase is not None and board.phase() != phase:
            raise ProtocolError(
                f"{who}: action needs board phase {phase.name}, it is {board.phase().name}"
            )


class Client(_Role):
    """A client: registers, deals (self + pair dealings), masks and uploads once.

    By default its round key is fresh (``KeyPair.generate()``), registered with a
    ``Registration`` and erased after upload (with its dealt seeds and its update).

    ``key`` given: the client's long-lived key registered once on the task that opened
    the round (SPEC.md §7.8 "Imported keys"): the aggregator's ``KeysImported`` post
    registers the seat with it, so :meth:`register` posts nothing, and :meth:`forget`
    keeps the key (it serves the task's later rounds; dealt seeds and the update are
    still erased). The price is forward secrecy (SPEC.md §7.8 "Which keys may be
    reused"): a task key stolen later opens the pair dealings addressed to this client in
    every round that used it, where an erased round key opens none."""

    role = ROLE_CLIENT

    def __init__(
        self,
        config: RoundConfig,
        party: int,
        update: Any,
        weight: int = 1,
        *,
        identity: Identity,
        rng: np.random.Generator | None = None,
        backend: str | None = None,
        key: KeyPair | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.party = party
        self.update = update
        self.weight = config.masking().check_weight(weight)
        self.rng = rng if rng is not None else np.random.default_rng()
        self._own_rng = rng is not None  # a caller's generator also seeds the DP noise
        self.backend = backend
        # a given key is the task's (imported, long-lived); else a fresh round key
        self.imported = key is not None
        self.key: KeyPair | None = key if key is not None else KeyPair.generate()
        self.stage = Stage.NEW
        self._dealt_secrets: dict[tuple[int, int, int], G1Point] = {}
        self._tables: dict = {}  # this client's own key tables, as in its own process

    def _key(self) -> KeyPair:
        if self.key is None:
            raise ProtocolError(f"client {self.party}: its round key was erased after upload")
        return self.key

    def register(self, board: Board) -> None:
        """Posts the round key's ``Registration``; with an imported key nothing (the
        aggregator's ``KeysImported`` registers the seat with its task key)."""
        self._expect(Stage.NEW, board, Phase.REGISTER)
        if self.imported:
            self.stage = Stage.REGISTERED
            return
        cfg, key = self.config, self._key()
        pop = prove_possession(
            key, cfg.chain_id, cfg.board, cfg.round_id, pop_party(ROLE_CLIENT, self.party)
        )
        self._post(board, Registration(ROLE_CLIENT, self.party, key.pk.to_bytes(), pop.to_bytes()))
        self.stage = Stage.REGISTERED

    def make_dealings(self, board: Board) -> DealingsPost:
        """The self dealing and one pair dealing per neighbour j > self (recipient j)."""
        st = board.state()
        if st.graph is None:
            raise ProtocolError(
                f"client {self.party}: the mask graph is not fixed yet (seed reveals missing)"
            )
        pks = board.member_keys()
        items = []
        keys = [self_key(self.party)] + [
            pair_key(self.party, j)
            for j in st.graph[self.party]
            if j > self.party and j in st.clients
        ]
        requests = [
            DealRequest(
                tuple(pks),
                self.config.threshold,
                dealing_context(self.config, key),
                st.clients[key[2]] if key[1] == PURPOSE_PAIR else None,
            )
            for key in keys
        ]
        for key, (dealing, secret) in zip(
            keys, deal_many(requests, table_cache=self._tables), strict=True
        ):
            self._dealt_secrets[key] = secret
            items.append(DealingItem(key[1], key[2], dealing.to_bytes()))
        return DealingsPost(self.party, tuple(items))

    def deal(self, board: Board) -> None:
        self._expect(Stage.REGISTERED, board, Phase.DEAL)
        self._post(board, self.make_dealings(board))
        self.stage = Stage.DEALT
        # optimistic boards: dispute, inside their windows, the pair dealings already
        # addressed to this client that fail verification (SPEC.md §7.7)
        if board.config.optimistic:
            board.challenge_invalid(dealings_to_challenge(board.state(), ROLE_CLIENT, self.party))

    def masked_input(self, board: Board) -> bytes:
        """y_i, packed: Q_i + PRG(self) + sum_{j>i} PRG(pair_ij) - sum_{j<i} PRG(pair_ji)
        over the edges whose pair dealing the board accepted. Incoming pair dealings are
        verified here before their secret is used."""
        cfg = self.config
        st = board.state()
        if st.graph is None:
            raise ProtocolError(
                f"client {self.party}: the mask graph is not fixed yet (seed reveals missing)"
            )
        me = self.party
        self_seed = compute_mask_seed(
            dealing_context(cfg, self_key(me)), self._dealt_secrets[self_key(me)]
        )
        members = tuple(board.member_keys())
        edges = [(j, pair_key(me, j)) for j in st.graph[me] if pair_key(me, j) in st.dealings]
        # (edges missing from st.dealings: the lower end never dealt, or j never registered)
        key_pair = self._key()
        incoming = [
            DealingClaim(st.dealings[key], members, dealing_context(cfg, key), key_pair.pk)
            for _, key in edges
            if key[0] != me
        ]
        try:
            verify_dealings(incoming)  # one batch; names the bad dealing if any
        except InvalidProof as exc:
            raise ProtocolError(f"client {me}: board relayed an invalid dealing: {exc}") from None
        pairs: list[tuple[bytes, int]] = []
        for j, key in edges:
            if key[0] == me:
                secret = self._dealt_secrets[key]
            else:
                secret = recover_as_recipient(st.dealings[key], key_pair)
            pairs.append((compute_mask_seed(dealing_context(cfg, key), secret), pair_sign(me, j)))
        if cfg.has_dp:
            quantized = self._privatized(dp_rotation_seed(st))
        else:
            quantized = quantize(
                self.update, cfg.masking(), self.weight, self.rng, backend=self.backend
            )
        return mask_and_pack(quantized, self_seed, pairs, cfg.bits, backend=self.backend)

    def _privatized(self, rotation_seed: bytes) -> np.ndarray:
        """DP (SPEC.md §10.6): Q = (privatize(x) mod 2^b) || 1 — d' + 1 values, weight 1
        (the reported weight is not summed). The noise seed is 32 bytes from the OS
        (``secrets``), or from the caller's generator when it passed one (simulations)."""
        cfg = self.config
        seed = rounding_key(self.rng) if self._own_rng else secrets.token_bytes(32)
        z = privatize(_to_host(self.update), cfg.dp, seed, rotation_seed)
        return np.append(to_ring(z, cfg.bits), np.uint64(1))

    def upload(self, board: Board, blobs: BlobStore) -> bytes:
        """Mask, store the blob, post its hash. After this the client is never needed."""
        self._expect(Stage.DEALT, board, Phase.UPLOAD)
        data = self.masked_input(board)
        digest = blobs.put(data)
        self._post(board, MaskedInputPost(self.party, digest, len(data)))
        self.stage = Stage.UPLOADED
        self.forget()
        return digest

    def forget(self) -> None:
        """One-shot: erase every round secret (dealt seeds, the round key, the update);
        an imported key is the task's, not the round's: it is kept."""
        self._dealt_secrets.clear()
        self._tables.clear()
        if not self.imported:
            self.key = None
        self.update = None


def _to_host(x: Any) -> np.ndarray:
    """A flat float64 numpy copy of a numpy / torch / cupy vector."""
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu().numpy()
    elif hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        x = x.get()
    return np.asarray(x, dtype=np.float64).reshape(-1)


class CommitteeMember(_Role):
    """A committee member: registers, then decrypts exactly what the board allows."""

    role = ROLE_MEMBER

    def __init__(self, config: RoundConfig, index: int, *, identity: Identity) -> None:
        self.config = config
        self.identity = identity
        self.party = index
        self.key: KeyPair | None = KeyPair.generate()
        self.stage = Stage.NEW
        self.confirmed_head: bytes | None = None

    def _key(self) -> KeyPair:
        if self.key is None:
            raise ProtocolError(f"member {self.party}: its round key was erased after reveal")
        return self.key

    def register(self, board: Board) -> None:
        self._expect(Stage.NEW, board, Phase.REGISTER)
        cfg, key = self.config, self._key()
        pop = prove_possession(
            key, cfg.chain_id, cfg.board, cfg.round_id, pop_party(ROLE_MEMBER, self.party)
        )
        self._post(board, Registration(ROLE_MEMBER, self.party, key.pk.to_bytes(), pop.to_bytes()))
        self.stage = Stage.REGISTERED

    def reveal_seed(self, board: Board) -> None:
        """DEAL phase: the member's contribution to the graph seed (SPEC.md §6.10)."""
        self._expect(Stage.REGISTERED, board, Phase.DEAL)
        cfg = self.config
        gamma, proof = prove_seed_reveal(
            self._key(), cfg.chain_id, cfg.board, cfg.round_id, self.party
        )
        self._post(board, SeedReveal(self.party, gamma.to_bytes(), proof.to_bytes()))
        self.stage = Stage.SEEDED

    def confirm(self, board: Board) -> None:
        """UNMASK phase: confirm the head that fixed U — once; the member decrypts only
        for this head (SPEC.md §6.11). Refuses an aborted round (it reveals nothing)."""
        self._expect(Stage.SEEDED, board, Phase.UNMASK)
        st = board.state()
        if st.included is None or compute_included(st) != st.included:
            raise ProtocolError(f"member {self.party}: included set missing or inconsistent")
        if st.aborted:
            self.key = None  # the round is over for it: its round key goes now
            raise ProtocolError(
                f"member {self.party}: the round aborted (|U| below min_included "
                f"{self.config.min_included}): nothing is revealed"
            )
        head = board.view()
        self._post(board, Confirmation(self.party, head))
        self.confirmed_head = head
        self.stage = Stage.CONFIRMED

    def make_shares(self, board: Board) -> tuple[SharesPost, ...]:
        """Decrypted shares for self dealings of included clients and for pair dealings
        with exactly one end included — recomputed here from the board's public data,
        never taken on the aggregator's word, and only once a quorum of members
        confirmed the very head this member confirmed. One share post (one DLEQ,
        SPEC.md §4.5) per chunk of at most ``board.max_share_items()`` dealings: under a
        chain's gas cap every chunk proves itself."""
        st = board.state()
        if st.included is None or compute_included(st) != st.included or st.aborted:
            raise ProtocolError(f"member {self.party}: included set missing or inconsistent")
        head = board.view()
        if self.confirmed_head is None or head != self.confirmed_head:
            raise ProtocolError(
                f"member {self.party}: the board's U-fixing head is not the one it confirmed"
            )
        agreeing = sum(1 for h in st.confirmations.values() if h == head)
        if agreeing < self.config.confirm_quorum:
            raise ProtocolError(
                f"member {self.party}: {agreeing} confirmations of its head < quorum "
                f"{self.config.confirm_quorum}: it does not decrypt"
            )
        key = self._key()
        keys = board.allowed_shares()
        per = board.max_share_items() or len(keys) or 1
        posts = []
        for at in range(0, len(keys), per):  # one post, or several under a cap
            posts.append(shares_post(self.config, st, self.party, key, keys[at : at + per]))
        return tuple(posts)

    def reveal(self, board: Board) -> None:
        self._expect(Stage.CONFIRMED, board, Phase.UNMASK)
        for post in self.make_shares(board):
            self._post(board, post)
        self.stage = Stage.REVEALED
        self.key = None  # its round key is not needed again


def shares_post(
    config: RoundConfig,
    state: RoundState,
    member: int,
    key: KeyPair,
    keys: Sequence[DealingKey],
    *,
    nonce: int | None = None,
) -> SharesPost:
    """Member ``member``'s share post (SPEC.md §4.5) of the accepted dealings ``keys``,
    in that order: S_i of each and one DLEQ for all. No rule is checked here (the role
    checks them; tests use this to build posts a board must refuse)."""
    items = [(state.dealings[k], dealing_context(config, k)) for k in keys]
    return SharesPost.of(tuple(keys), decrypt_share_post(member, key, items, nonce=nonce))


class Aggregator(_Role):
    """Collects masked inputs, unmasks with the revealed secrets, posts the result."""

    role = ROLE_AGGREGATOR

    def __init__(
        self, config: RoundConfig, *, identity: Identity, backend: str | None = None
    ) -> None:
        self.config = config
        self.identity = identity
        self.party = 0
        self.backend = backend
        self.stage = Stage.NEW
        self.total: np.ndarray | None = None
        self.rotation_seed: bytes | None = None  # with DP: the round's (public)

    def aggregate(
        self, board: Board, blobs: BlobStore, *, shares_verified: bool = False
    ) -> np.ndarray:
        """The integer weighted sum (``vector_length`` values, last = total weight; with
        DP the noisy sum mod 2^b, last = |U|); posts it. With DP, refuses (ProtocolError)
        an included set below dp.min_clients.

        ``shares_verified``: the caller vouches that ``board`` checked every share
        post's proof when it accepted it (the server's own memory board, SPEC.md §8.3),
        so they are not checked again; otherwise the aggregator trusts nothing the
        board says about them (``recover_seeds``)."""
        if self.stage != Stage.NEW:
            raise ProtocolError(f"aggregator: already aggregated (stage {self.stage.value})")
        if board.phase() != Phase.RESULT:
            raise ProtocolError(f"aggregator: needs board phase RESULT, it is {board.phase().name}")
        st = board.state()
        included = board.included()
        check_dp_included(self.config, len(included))
        if self.config.has_dp:
            self.rotation_seed = dp_rotation_seed(st)
        inputs = [blobs.get(st.masked[i][0]) for i in included]  # re-hashed by the store
        seeds = recover_seeds(st, removal_plan(st), verify=not shares_verified)
        total = compute_sum(st, inputs, seeds, backend=self.backend)
        blob = result_blob(total, self.config.bits)
        digest = blobs.put(blob)
        assert digest == blob_digest(blob)
        self._post(board, ResultPost(digest, included, int(total[-1])))
        self.total = total
        self.stage = Stage.DONE
        return total

    def mean(self) -> np.ndarray:
        """The dequantized weighted mean of the included clients' updates; with DP the
        noisy unweighted mean of their clipped updates (SPEC.md §10.6)."""
        if self.total is None:
            raise ProtocolError("aggregator: no result yet")
        return result_mean(self.config, self.total, self.rotation_seed)


def dealings_to_challenge(state: Any, role: int, party: int) -> list[tuple[int, int, int]]:
    """The accepted dealings addressed to this party that fail verification — what an
    honest party challenges in optimistic mode while the window is open (SPEC.md §7.7):
    for client ``party`` its pair dealings (it is their recipient), for member
    ``party`` every accepted dealing (it holds a share of each). ``state`` is the
    board's ``RoundState``. One batch check; the reference verifier names the invalid
    ones only when the batch fails."""
    cfg = state.config
    pks = tuple(state.members[k] for k in sorted(state.members))
    if len(pks) != cfg.committee_size:
        return []  # without the whole committee no dealing was accepted
    keys = sorted(
        key
        for key in state.dealings
        if key[0] in state.dealers
        and (
            role == ROLE_MEMBER
            or (role == ROLE_CLIENT and key[1] == PURPOSE_PAIR and key[2] == party)
        )
    )
    claims = [
        DealingClaim(
            state.dealings[key],
            pks,
            dealing_context(cfg, key),
            state.clients.get(key[2]) if key[1] == PURPOSE_PAIR else None,
        )
        for key in keys
    ]
    if not claims:
        return []
    try:
        verify_dealings(claims)
    except InvalidProof as exc:
        return [keys[pos] for pos in getattr(exc, "invalid", [])]
    return []

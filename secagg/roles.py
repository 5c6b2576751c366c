"""The roles as explicit state machines (SPEC.md §6.5).

Each role checks its own stage before acting (``ProtocolError`` otherwise) and verifies
whatever it uses that came from someone else — including what the board relays.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from pvss.errors import InvalidProof
from pvss.group import G1Point
from pvss.keys import KeyPair, prove_possession
from pvss.scrape import (
    DealingClaim,
    DealRequest,
    deal_many,
    decrypt_share,
    recover_as_recipient,
    verify_dealings,
)
from pvss.transcript import PURPOSE_PAIR
from secagg.aggregate import compute_sum, recover_seeds, removal_plan, result_blob
from secagg.blobs import BlobStore, blob_digest
from secagg.boards import Board, Phase, compute_included, pop_party
from secagg.config import RoundConfig
from secagg.errors import ProtocolError
from secagg.graph import compute_mask_seed, dealing_context, pair_key, pair_sign, self_key
from secagg.masking import mask_and_pack
from secagg.messages import (
    ROLE_AGGREGATOR,
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
from secagg.quantize import dequantize_sum, quantize


class Stage(enum.Enum):
    NEW = "new"
    REGISTERED = "registered"
    DEALT = "dealt"
    UPLOADED = "uploaded"
    REVEALED = "revealed"
    DONE = "done"


class _Role:
    role: int
    party: int
    stage: Stage

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
    """A client: registers, deals (self + pair dealings), masks and uploads once."""

    role = ROLE_CLIENT

    def __init__(
        self,
        config: RoundConfig,
        party: int,
        update: Any,
        weight: int = 1,
        *,
        rng: np.random.Generator | None = None,
        backend: str | None = None,
    ) -> None:
        self.config = config
        self.party = party
        self.update = update
        self.weight = config.masking().check_weight(weight)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.backend = backend
        self.key = KeyPair.generate()
        self.stage = Stage.NEW
        self._dealt_secrets: dict[tuple[int, int, int], G1Point] = {}
        self._tables: dict = {}  # this client's own key tables, as in its own process

    def register(self, board: Board) -> None:
        self._expect(Stage.NEW, board, Phase.REGISTER)
        cfg = self.config
        pop = prove_possession(
            self.key, cfg.chain_id, cfg.board, pop_party(ROLE_CLIENT, self.party)
        )
        board.submit(
            ROLE_CLIENT,
            self.party,
            Registration(ROLE_CLIENT, self.party, self.key.pk.to_bytes(), pop.to_bytes()),
        )
        self.stage = Stage.REGISTERED

    def make_dealings(self, board: Board) -> DealingsPost:
        """The self dealing and one pair dealing per neighbour j > self (recipient j)."""
        st = board.state()
        assert st.graph is not None
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
        board.submit(ROLE_CLIENT, self.party, self.make_dealings(board))
        self.stage = Stage.DEALT

    def masked_input(self, board: Board) -> bytes:
        """y_i, packed: Q_i + PRG(self) + sum_{j>i} PRG(pair_ij) - sum_{j<i} PRG(pair_ji)
        over the edges whose pair dealing the board accepted. Incoming pair dealings are
        verified here before their secret is used."""
        cfg = self.config
        st = board.state()
        assert st.graph is not None
        me = self.party
        self_seed = compute_mask_seed(
            dealing_context(cfg, self_key(me)), self._dealt_secrets[self_key(me)]
        )
        members = tuple(board.member_keys())
        edges = [(j, pair_key(me, j)) for j in st.graph[me] if pair_key(me, j) in st.dealings]
        # (edges missing from st.dealings: the lower end never dealt, or j never registered)
        incoming = [
            DealingClaim(st.dealings[key], members, dealing_context(cfg, key), self.key.pk)
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
                secret = recover_as_recipient(st.dealings[key], self.key)
            pairs.append((compute_mask_seed(dealing_context(cfg, key), secret), pair_sign(me, j)))
        quantized = quantize(
            self.update, cfg.masking(), self.weight, self.rng, backend=self.backend
        )
        return mask_and_pack(quantized, self_seed, pairs, cfg.bits, backend=self.backend)

    def upload(self, board: Board, blobs: BlobStore) -> bytes:
        """Mask, store the blob, post its hash. After this the client is never needed."""
        self._expect(Stage.DEALT, board, Phase.UPLOAD)
        data = self.masked_input(board)
        digest = blobs.put(data)
        board.submit(ROLE_CLIENT, self.party, MaskedInputPost(self.party, digest, len(data)))
        self.stage = Stage.UPLOADED
        self._dealt_secrets.clear()  # one-shot: nothing secret is kept
        self._tables.clear()
        return digest


class CommitteeMember(_Role):
    """A committee member: registers, then decrypts exactly what the board allows."""

    role = ROLE_MEMBER

    def __init__(self, config: RoundConfig, index: int) -> None:
        self.config = config
        self.party = index
        self.key = KeyPair.generate()
        self.stage = Stage.NEW

    def register(self, board: Board) -> None:
        self._expect(Stage.NEW, board, Phase.REGISTER)
        cfg = self.config
        pop = prove_possession(
            self.key, cfg.chain_id, cfg.board, pop_party(ROLE_MEMBER, self.party)
        )
        board.submit(
            ROLE_MEMBER,
            self.party,
            Registration(ROLE_MEMBER, self.party, self.key.pk.to_bytes(), pop.to_bytes()),
        )
        self.stage = Stage.REGISTERED

    def make_shares(self, board: Board) -> SharesPost:
        """Decrypted shares for self dealings of included clients and for pair dealings
        with exactly one end included — recomputed here from the board's public data,
        never taken on the aggregator's word."""
        st = board.state()
        if st.included is None or compute_included(st) != st.included:
            raise ProtocolError(f"member {self.party}: included set missing or inconsistent")
        items = []
        for key in board.allowed_shares():
            share = decrypt_share(
                st.dealings[key], self.party, self.key, dealing_context(self.config, key)
            )
            items.append(ShareItem(key[0], key[1], key[2], share.to_bytes()))
        return SharesPost(self.party, tuple(items))

    def reveal(self, board: Board) -> None:
        self._expect(Stage.REGISTERED, board, Phase.UNMASK)
        board.submit(ROLE_MEMBER, self.party, self.make_shares(board))
        self.stage = Stage.REVEALED


class Aggregator(_Role):
    """Collects masked inputs, unmasks with the revealed secrets, posts the result."""

    role = ROLE_AGGREGATOR

    def __init__(self, config: RoundConfig, *, backend: str | None = None) -> None:
        self.config = config
        self.party = 0
        self.backend = backend
        self.stage = Stage.NEW
        self.total: np.ndarray | None = None

    def aggregate(self, board: Board, blobs: BlobStore) -> np.ndarray:
        """The integer weighted sum (length dim + 1, last = total weight); posts it."""
        if self.stage != Stage.NEW:
            raise ProtocolError(f"aggregator: already aggregated (stage {self.stage.value})")
        if board.phase() != Phase.RESULT:
            raise ProtocolError(f"aggregator: needs board phase RESULT, it is {board.phase().name}")
        st = board.state()
        included = board.included()
        inputs = [blobs.get(st.masked[i][0]) for i in included]  # re-hashed by the store
        seeds = recover_seeds(st, removal_plan(st))
        total = compute_sum(st, inputs, seeds, backend=self.backend)
        blob = result_blob(total, self.config.bits)
        digest = blobs.put(blob)
        assert digest == blob_digest(blob)
        board.submit(ROLE_AGGREGATOR, 0, ResultPost(digest, included, int(total[-1])))
        self.total = total
        self.stage = Stage.DONE
        return total

    def mean(self) -> np.ndarray:
        """The dequantized weighted mean of the included clients' updates."""
        if self.total is None:
            raise ProtocolError("aggregator: no result yet")
        return dequantize_sum(self.total, self.config.clip, self.config.quant_bits)

"""The node side of a relayed round, independent of any FL framework.

In an FL deployment the nodes do not talk to the board themselves: the server hosts
(or fronts) the board and relays. At each stage the server sends every node involved a
:class:`StageRequest` (the stage, the board's transcript so far, its height, and the
party ids the node holds this round) and the node answers with a :class:`StageReply`
(codec-encoded posts, plus the masked vector for an upload), which the server submits
to the board under the ids it assigned — the board checks every post.

Stages map one to one onto the board's phases (SPEC.md §6.4):

==========  ==========  =====================================================
stage       phase       what the node does
==========  ==========  =====================================================
register    REGISTER    fresh keys; a ``Registration`` per role it holds
deal        DEAL        the client's ``DealingsPost`` (self + pair dealings)
upload      UPLOAD      trains, masks its weighted update: ``MaskedInputPost`` + blob
unmask      UNMASK      the member's ``SharesPost`` for what the board allows
==========  ==========  =====================================================

A node never takes the relayed transcript on trust: :class:`NodeAgent` replays it
through a fresh ``MemoryBoard`` (hash chain, every board rule, every proof), advances
the replica to the relayed height, checks that the keys registered under its ids are
its own, and only then runs the ``secagg.roles`` state machines against that replica.
Its posts are first accepted by the replica (so a node never sends what an honest board
would refuse) and the accepted event bodies are what it relays.

Between stages the node keeps its secrets (two secret keys and the seeds of its own
dealings) in a small opaque state blob, :meth:`NodeAgent.state_bytes`, which a Flower
ClientApp stores in its node-local ``Context.state``; nothing of it ever leaves the
node. The client forgets its dealt secrets after uploading (one-shot).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from pvss.group import G1Point, scalar_from_bytes, scalar_to_bytes
from pvss.keys import KeyPair
from pvss.transcript import keccak256
from secagg import codec
from secagg.blobs import BlobStore, blob_digest
from secagg.boards import MemoryBoard, Phase
from secagg.errors import ProtocolError
from secagg.messages import TranscriptFile
from secagg.roles import Client, CommitteeMember, Stage

__all__ = [
    "STAGES",
    "STAGE_PHASE",
    "StageRequest",
    "StageReply",
    "NodeAgent",
    "round_key",
]

STAGE_REGISTER = "register"
STAGE_DEAL = "deal"
STAGE_UPLOAD = "upload"
STAGE_UNMASK = "unmask"
STAGES = (STAGE_REGISTER, STAGE_DEAL, STAGE_UPLOAD, STAGE_UNMASK)
STAGE_PHASE = {
    STAGE_REGISTER: Phase.REGISTER,
    STAGE_DEAL: Phase.DEAL,
    STAGE_UPLOAD: Phase.UPLOAD,
    STAGE_UNMASK: Phase.UNMASK,
}

STATE_VERSION = 1


@dataclass(frozen=True)
class StageRequest:
    """Server -> node: act for ``stage`` on the board whose events are ``transcript``
    (codec-encoded ``TranscriptFile``) at block ``height``, as client ``client`` and/or
    member ``member`` (0 = the node does not hold that role this round)."""

    stage: str
    height: int
    transcript: bytes
    client: int = 0
    member: int = 0

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ProtocolError(f"stage request: unknown stage {self.stage!r}")
        if self.client < 0 or self.member < 0 or self.height < 0:
            raise ProtocolError("stage request: ids and height must be >= 0")


@dataclass(frozen=True)
class StageReply:
    """Node -> server: codec-encoded posts (in the order to submit), the masked vector
    for an upload (empty otherwise) and the seconds the node computed."""

    posts: tuple[bytes, ...] = ()
    blob: bytes = b""
    seconds: float = 0.0


def round_key(transcript: TranscriptFile) -> bytes:
    """keccak256 of event 0 (the ``RoundConfig``: chain, board, round id, parameters):
    what identifies a round to a node."""
    return keccak256(transcript.events[0].body)


class _Outbox(BlobStore):
    """A blob store that keeps the one blob a client uploads in memory (the node sends
    it to the server; the server's store is the real one)."""

    def __init__(self) -> None:  # no directory: nothing touches the disk on a node
        self.data: dict[bytes, bytes] = {}

    def put(self, data: bytes) -> bytes:
        digest = blob_digest(data)
        self.data[digest] = bytes(data)
        return digest

    def get(self, digest: bytes) -> bytes:
        return self.data[digest]

    def __contains__(self, digest: bytes) -> bool:
        return digest in self.data


@dataclass
class _NodeState:
    round: bytes = b""
    client: int = 0
    client_sk: int = 0
    client_stage: str = Stage.NEW.value
    secrets: dict[tuple[int, int, int], G1Point] = field(default_factory=dict)
    member: int = 0
    member_sk: int = 0
    member_stage: str = Stage.NEW.value

    def to_bytes(self) -> bytes:
        return msgpack.packb(
            [
                STATE_VERSION,
                self.round,
                self.client,
                scalar_to_bytes(self.client_sk),
                self.client_stage,
                [[*key, point.to_bytes()] for key, point in sorted(self.secrets.items())],
                self.member,
                scalar_to_bytes(self.member_sk),
                self.member_stage,
            ],
            use_bin_type=True,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> _NodeState:
        if not data:
            return cls()
        try:
            v, rnd, client, csk, cstage, secrets, member, msk, mstage = msgpack.unpackb(
                data, raw=False
            )
        except Exception as exc:  # msgpack raises several unrelated types
            raise ProtocolError(f"node state: unreadable ({type(exc).__name__})") from None
        if v != STATE_VERSION:
            raise ProtocolError(f"node state: version {v!r}, expected {STATE_VERSION}")
        return cls(
            rnd,
            client,
            scalar_from_bytes(csk, field="state.client_sk"),
            cstage,
            {(d, p, q): G1Point.from_bytes(pt, field="state.secret") for d, p, q, pt in secrets},
            member,
            scalar_from_bytes(msk, field="state.member_sk"),
            mstage,
        )


UpdateFn = Callable[[], tuple[Any, int]]


class NodeAgent:
    """A node's side of relayed rounds: answers :class:`StageRequest` s.

    Parameters
    ----------
    state : bytes, optional
        What :meth:`state_bytes` returned after the previous request (a ClientApp
        keeps it in ``Context.state``); empty for a fresh node.
    rng : numpy.random.Generator, optional
        Randomness for the stochastic rounding of the update (default: fresh from the
        OS). Keys and dealings always use the cryptographic generator of ``pvss``.
    backend : str, optional
        Masking backend (``numba``, ``reference``, ``cupy``; default: the fastest).
    """

    def __init__(
        self,
        state: bytes = b"",
        *,
        rng: np.random.Generator | None = None,
        backend: str | None = None,
    ) -> None:
        self._state = _NodeState.from_bytes(state)
        self.rng = rng
        self.backend = backend

    def state_bytes(self) -> bytes:
        """The node's secrets between stages (node-local; never sent anywhere)."""
        return self._state.to_bytes()

    # -- the board replica -----------------------------------------------------------
    def _replica(self, request: StageRequest) -> MemoryBoard:
        """The relayed board, re-verified: hash chain, every rule and every proof."""
        transcript = codec.decode(request.transcript, TranscriptFile)
        board = MemoryBoard.replay(transcript)
        if request.height < board.height():
            raise ProtocolError(
                f"relay: height {request.height} is below the transcript's {board.height()}"
            )
        board.advance(request.height - board.height())
        want = _stage_phase(request.stage)
        if board.phase() != want:
            raise ProtocolError(
                f"relay: stage {request.stage} needs phase {want.name}, "
                f"the board is in {board.phase().name}"
            )
        key = round_key(transcript)
        if request.stage == STAGE_REGISTER:
            if self._state.round != key:
                self._state = _NodeState(round=key)
        elif self._state.round != key:
            raise ProtocolError(f"relay: stage {request.stage} for a round this node never joined")
        return board

    def _check_own_key(self, board: MemoryBoard, role: str, party: int, key: KeyPair) -> None:
        st = board.state()
        table = st.clients if role == "client" else st.members
        if table.get(party) != key.pk:
            raise ProtocolError(f"relay: the board does not hold this node's key as {role} {party}")

    # -- roles, restored from the state -----------------------------------------------
    def _client(self, board: MemoryBoard) -> Client:
        s = self._state
        if not s.client:
            raise ProtocolError("relay: this node is no client in this round")
        c = Client(board.config, s.client, None, 1, rng=self.rng, backend=self.backend)
        c.key = KeyPair.generate(s.client_sk)
        c.stage = Stage(s.client_stage)
        c._dealt_secrets = dict(s.secrets)  # the role's own field, restored verbatim
        return c

    def _save_client(self, c: Client) -> None:
        self._state.client_stage = c.stage.value
        self._state.secrets = dict(c._dealt_secrets)

    def _member(self, board: MemoryBoard) -> CommitteeMember:
        s = self._state
        if not s.member:
            raise ProtocolError("relay: this node is no committee member in this round")
        mb = CommitteeMember(board.config, s.member)
        mb.key = KeyPair.generate(s.member_sk)
        mb.stage = Stage(s.member_stage)
        return mb

    # -- stages ------------------------------------------------------------------------
    def handle(self, request: StageRequest, update: UpdateFn | None = None) -> StageReply:
        """Act for one stage and return the posts to relay.

        ``update`` (upload stage only) trains and returns ``(vector, weight)``: the
        flat float update (numpy / torch / cupy) and its integer weight (FedAvg:
        ``num_examples``, at most the round's ``max_weight``).

        Raises ``ProtocolError`` (wrong stage, unknown round, a relayed board that does
        not verify, a key that is not ours), ``InvalidParameters`` (weight out of
        range) — the server then counts this node as a dropout for the stage.
        """
        t0 = time.perf_counter()
        board = self._replica(request)
        posts: list[bytes] = []
        blob = b""
        s = self._state
        if request.stage == STAGE_REGISTER:
            if request.client:
                if s.client:
                    raise ProtocolError(f"relay: already registered as client {s.client}")
                c = Client(board.config, request.client, None, 1, rng=self.rng)
                c.register(board)
                posts.append(board.events()[-1].body)
                s.client, s.client_sk, s.client_stage = request.client, c.key.sk, c.stage.value
            if request.member:
                if s.member:
                    raise ProtocolError(f"relay: already registered as member {s.member}")
                mb = CommitteeMember(board.config, request.member)
                mb.register(board)
                posts.append(board.events()[-1].body)
                s.member, s.member_sk, s.member_stage = request.member, mb.key.sk, mb.stage.value
            if not posts:
                raise ProtocolError("relay: register request names no role")
        elif request.stage == STAGE_DEAL:
            self._expect_ids(request, client=True)
            c = self._client(board)
            self._check_own_key(board, "client", c.party, c.key)
            c.deal(board)
            posts.append(board.events()[-1].body)
            self._save_client(c)
        elif request.stage == STAGE_UPLOAD:
            self._expect_ids(request, client=True)
            if update is None:
                raise ProtocolError("relay: upload needs the node's update")
            c = self._client(board)
            self._check_own_key(board, "client", c.party, c.key)
            t_train = time.perf_counter()
            vector, weight = update()
            t0 += time.perf_counter() - t_train  # training is not protocol time
            shape = tuple(getattr(vector, "shape", np.shape(vector)))
            if shape != (board.config.dim,):
                raise ProtocolError(
                    f"client {c.party}: update has shape {shape}, "
                    f"the round needs {board.config.dim} coordinates"
                )
            c.update = vector
            c.weight = board.config.masking().check_weight(weight)
            outbox = _Outbox()
            c.upload(board, outbox)
            posts.append(board.events()[-1].body)
            (blob,) = outbox.data.values()
            self._save_client(c)  # UPLOADED, secrets cleared by the role
        else:  # STAGE_UNMASK
            self._expect_ids(request, member=True)
            mb = self._member(board)
            self._check_own_key(board, "member", mb.party, mb.key)
            mb.reveal(board)
            posts.append(board.events()[-1].body)
            self._state.member_stage = mb.stage.value
        return StageReply(tuple(posts), blob, time.perf_counter() - t0)

    def _expect_ids(self, request: StageRequest, *, client: bool = False, member: bool = False):
        s = self._state
        if client and (not request.client or request.client != s.client):
            raise ProtocolError(
                f"relay: {request.stage} for client {request.client}, this node is client "
                f"{s.client or 'none'}"
            )
        if member and (not request.member or request.member != s.member):
            raise ProtocolError(
                f"relay: {request.stage} for member {request.member}, this node is member "
                f"{s.member or 'none'}"
            )


def _stage_phase(stage: str) -> Phase:
    return STAGE_PHASE[stage]

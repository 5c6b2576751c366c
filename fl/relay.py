"""The node side of a relayed round, independent of any FL framework.

In an FL deployment the nodes do not talk to the board themselves: the server hosts
(or fronts) the board and relays. At each stage the server sends every node involved a
:class:`StageRequest` (the stage, the board's events the node has not seen, its
height, and the party ids the node holds this round) and the node answers with a :class:`StageReply`
(codec-encoded posts, plus the masked vector for an upload), which the server submits
to the board under the ids it assigned — the board checks every post.

Stages map one to one onto the board's phases (SPEC.md §6.4):

==========  ==========  =====================================================
stage       phase       what the node does
==========  ==========  =====================================================
hello       (none)      tells its identity's address (no board involved)
register    REGISTER    fresh round keys; a ``Registration`` per seat it holds
                        (a task round's client seat: its task key, registered on
                        the task once; no post, the server imports it)
seed        DEAL        the member's ``SeedReveal`` (SPEC.md §6.10)
deal        DEAL        the client's ``DealingsPost`` (self + pair dealings)
upload      UPLOAD      trains, masks its weighted update: ``MaskedInputPost`` + blob
confirm     UNMASK      the member's ``Confirmation`` of the U-fixing head (§6.11)
unmask      UNMASK      the member's ``SharesPost``, once a quorum confirmed that head
==========  ==========  =====================================================

A node never takes the relayed transcript on trust: :class:`NodeAgent` replays it
through a fresh ``MemoryBoard`` (hash chain, every signature, every board rule, and
the BN254 proofs its own safety rests on — SPEC.md §8.2: the members' proofs of
possession and seed reveals once, a member the dealings it decrypts, a client its
incoming pair dealings), checks the round's config against the deployment's roster it holds itself
(``secagg.roster.Roster.check``), checks that the transcript extends the one it acted
on before (pinning, §6.11), that the seats it is asked to act in belong to its own
identity and carry its own keys, and only then runs the ``secagg.roles`` state
machines against that replica. Its posts are signed by its identity on the replica's
view and first accepted by the replica (so a node never sends what an honest board
would refuse); the signed posts are what it relays.

Between stages the node keeps its round secrets (two round keys and the seeds of its
own dealings) and its pin in a small opaque state blob, :meth:`NodeAgent.state_bytes`,
which a Flower ClientApp stores in its node-local ``Context.state``; nothing of it ever
leaves the node. The client forgets its round key and dealt secrets after uploading,
the member its round key after revealing; the identity key lives in the node's
identity file, never in the state. The one long-lived secret the state holds is a task
key (a task round's client key, registered on the task once; SPEC.md §7.8): it stays
across rounds, so keep the state durable (``NodeStateFile``) for tasks that outlive a
process.

Durable nodes (SPEC.md §6.14). :class:`NodeStateFile` keeps that state in a file
(0600, written atomically and fsync'ed, the previous copy overwritten with zeros
before it is replaced, so erased keys leave the file too), so a node whose process
restarts continues its round. The state also keeps the node's last reply: a server that
crashed before recording it asks the same stage again, and the node sends the same
signed posts (and the same masked vector) again — never new ones, which for an upload
would mask a second vector with the same masks — once its replica board accepts them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from pvss.group import G1Point, scalar_from_bytes, scalar_to_bytes
from pvss.keys import KeyPair
from pvss.transcript import keccak256
from secagg import codec
from secagg.blobs import BlobStore, blob_digest, fsync_dir
from secagg.boards import MemoryBoard, Phase, RuleViolation, event_hash, seat_identity
from secagg.boards.memory import TaskKeys
from secagg.config import DP_RECORD_MAX_BYTES, RoundConfig, dp_record_decode
from secagg.errors import ConfigError, InvalidEncoding, ProtocolError
from secagg.identity import Identity
from secagg.messages import (
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Event,
    KeysImported,
    SignedPost,
    TranscriptFile,
)
from secagg.roles import Client, CommitteeMember, Stage
from secagg.roster import Roster

__all__ = [
    "STAGES",
    "STAGE_PHASE",
    "StageRequest",
    "StageReply",
    "NodeAgent",
    "NodeStateFile",
    "round_key",
    "imports_client_keys",
]

STAGE_HELLO = "hello"
STAGE_REGISTER = "register"
STAGE_SEED = "seed"
STAGE_DEAL = "deal"
STAGE_UPLOAD = "upload"
STAGE_CONFIRM = "confirm"
STAGE_UNMASK = "unmask"
# the board stages, in order (hello comes before a round has a board)
STAGES = (STAGE_REGISTER, STAGE_SEED, STAGE_DEAL, STAGE_UPLOAD, STAGE_CONFIRM, STAGE_UNMASK)
STAGE_PHASE = {
    STAGE_REGISTER: Phase.REGISTER,
    STAGE_SEED: Phase.DEAL,
    STAGE_DEAL: Phase.DEAL,
    STAGE_UPLOAD: Phase.UPLOAD,
    STAGE_CONFIRM: Phase.UNMASK,
    STAGE_UNMASK: Phase.UNMASK,
}

STATE_VERSION = 5  # 5: + task_keys, client_task (version 4 states load without them)
# _NodeState.verified bits: proofs this node checked once and relies on from then on
_VERIFIED_MEMBER_POPS = 1  # every member seat's proof of possession
_VERIFIED_REVEALS = 2  # every member's seed reveal (the graph)


@dataclass(frozen=True)
class StageRequest:
    """Server -> node: act for ``stage`` on the board whose events are ``transcript``
    (codec-encoded ``TranscriptFile``) at block ``height``, as client ``client`` and/or
    member ``member`` (0 = the node does not hold that role this round).

    ``since`` > 0: ``transcript`` holds only the events from sequence number ``since``
    on — the ones after the transcript this node acted on last (the server sends each
    node only what is new, SPEC.md §8.2); 0: the whole transcript."""

    stage: str
    height: int
    transcript: bytes
    client: int = 0
    member: int = 0
    # chain-native rounds (SPEC.md §7.4): the round contract's address; the node reads
    # the round from the chain itself (transcript and height above are then unused)
    # and submits its posts from its own account
    contract: bytes = b""
    since: int = 0
    # a delta's earlier events sent again with more of their dealings in full (a
    # member's decrypted dealings at unmask): codec-encoded TranscriptFile, each event
    # equal to the pinned one but for a body with the same post digest; b"" if none
    fill: bytes = b""
    # a chain-native round opened under a task contract (SPEC.md §7.8): the task's
    # address; at registration the node checks that ``contract`` is the round the task
    # opened under the round's id (b"": a standalone round)
    task: bytes = b""
    # a chain-native DP round: its dp record (secagg.config.dp_record_bytes), which the
    # chain holds as a hash only; the node attaches with it, so the chain checks it
    # (b"": no DP — a DP round then fails to attach, a non-DP one with a record too)
    dp: bytes = b""

    def __post_init__(self) -> None:
        if self.stage not in STAGES and self.stage != STAGE_HELLO:
            raise ProtocolError(f"stage request: unknown stage {self.stage!r}")
        if self.client < 0 or self.member < 0 or self.height < 0 or self.since < 0:
            raise ProtocolError("stage request: ids, height and since must be >= 0")
        if self.contract and len(self.contract) != 20:
            raise ProtocolError("stage request: contract must be a 20-byte address")
        if self.fill and not self.since:
            raise ProtocolError("stage request: fill needs a delta (since > 0)")
        if self.dp and (not self.contract or len(self.dp) > DP_RECORD_MAX_BYTES):
            raise ProtocolError(
                f"stage request: dp must be at most {DP_RECORD_MAX_BYTES} bytes, with the "
                "round's contract"
            )
        if self.task and (len(self.task) != 20 or not self.contract):
            raise ProtocolError(
                "stage request: task must be a 20-byte address, with the round's contract"
            )


@dataclass(frozen=True)
class StageReply:
    """Node -> server: codec-encoded ``SignedPost`` s (in the order to submit), the
    masked vector for an upload (empty otherwise), the seconds the node computed and
    the node's identity address (what ``hello`` asks for)."""

    posts: tuple[bytes, ...] = ()
    blob: bytes = b""
    seconds: float = 0.0
    identity: bytes = b""


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
    client_sk: int = 0  # 0 once erased (after upload)
    client_stage: str = Stage.NEW.value
    secrets: dict[tuple[int, int, int], G1Point] = field(default_factory=dict)
    member: int = 0
    member_sk: int = 0  # 0 once erased (after reveal)
    member_stage: str = Stage.NEW.value
    confirmed: bytes = b""  # the U-fixing head this member confirmed
    pin_seq: int = -1  # the last transcript this node acted on: its last event ...
    pin_head: bytes = b""  # ... and that event's hash
    # the last reply, sent again (never re-made) if a restarted server asks again
    last_stage: str = ""
    last_seats: tuple[int, int] = (0, 0)  # (client, member) it answered for
    last_posts: tuple[bytes, ...] = ()
    last_blob: bytes = b""
    extra: bytes = b""  # the framework's own record of that reply (the mod's FitRes)
    known: bytes = b""  # that transcript (codec-encoded): what a delta request extends
    verified: int = 0  # _VERIFIED_* bits
    # long-lived, across rounds (SPEC.md §7.8 "Imported keys"): task address -> (the
    # client seat this node holds on that task, the secret of the key it registered
    # there once); kept when a new round resets the rest
    task_keys: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    client_task: bytes = b""  # this round's client key is that task's key (imported)

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
                self.confirmed,
                self.pin_seq,
                self.pin_head,
                self.last_stage,
                list(self.last_seats),
                list(self.last_posts),
                self.last_blob,
                self.extra,
                self.known,
                self.verified,
                [[t, p, scalar_to_bytes(sk)] for t, (p, sk) in sorted(self.task_keys.items())],
                self.client_task,
            ],
            use_bin_type=True,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> _NodeState:
        if not data:
            return cls()
        try:
            fields = msgpack.unpackb(data, raw=False)
            v = fields[0]
        except Exception as exc:  # msgpack raises several unrelated types
            raise ProtocolError(f"node state: unreadable ({type(exc).__name__})") from None
        if v == 4 and len(fields) == 19:  # before task keys: none held
            fields = [*fields, [], b""]
        elif v != STATE_VERSION or len(fields) != 21:
            raise ProtocolError(f"node state: version {v!r}, expected {STATE_VERSION}")
        try:
            (
                _,
                rnd,
                client,
                csk,
                cstage,
                secrets,
                member,
                msk,
                mstage,
                conf,
                pseq,
                phead,
                lstage,
                lseats,
                lposts,
                lblob,
                extra,
                known,
                verified,
                tkeys,
                ctask,
            ) = fields
            lseats = (int(lseats[0]), int(lseats[1]))
            if not all(isinstance(p, bytes) for p in lposts) or not isinstance(lblob, bytes):
                raise TypeError
            if not isinstance(known, bytes) or not isinstance(verified, int):
                raise TypeError
            if not isinstance(ctask, bytes):
                raise TypeError
            task_keys = {
                bytes(t): (int(p), scalar_from_bytes(sk, field="state.task_key"))
                for t, p, sk in tkeys
            }
        except (TypeError, ValueError, IndexError):
            raise ProtocolError("node state: malformed fields") from None
        return cls(
            rnd,
            client,
            scalar_from_bytes(csk, field="state.client_sk"),
            cstage,
            {(d, p, q): G1Point.from_bytes(pt, field="state.secret") for d, p, q, pt in secrets},
            member,
            scalar_from_bytes(msk, field="state.member_sk"),
            mstage,
            conf,
            pseq,
            phead,
            lstage,
            lseats,
            tuple(lposts),
            lblob,
            extra,
            known,
            verified,
            task_keys,
            ctask,
        )


_STATE_MAGIC = b"PVSSNST1"


class NodeStateFile:
    """A node's state (:meth:`NodeAgent.state_bytes`) in ``<directory>/node-<address>.state``
    (SPEC.md §6.14), so that a node whose process restarts continues its round.

    ``save`` writes ``MAGIC || sha256(state) || state`` to ``<file>.new`` (mode 0600,
    fsync'ed), overwrites the previous file in place with zeros (fsync'ed: a round key
    the protocol erased from memory is erased from the file too — the blocks a copying
    filesystem or an SSD keeps elsewhere are beyond a program's reach), renames the new
    file over it and fsyncs the directory. ``load`` takes ``<file>.new`` when it is
    complete (a crash after writing it), else the file; a file that fails its checksum
    is refused (``ProtocolError``), never taken for an empty state."""

    def __init__(self, directory: str | os.PathLike[str], address: bytes) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = self.dir / f"node-{address.hex()}.state"
        self._new = self.path.with_name(self.path.name + ".new")

    def _parse(self, data: bytes) -> bytes | None:
        head = len(_STATE_MAGIC) + 32
        if len(data) < head or data[: len(_STATE_MAGIC)] != _STATE_MAGIC:
            return None
        body = data[head:]
        return body if hashlib.sha256(body).digest() == data[len(_STATE_MAGIC) : head] else None

    def load(self) -> bytes:
        """The saved state (empty for a node that never saved one)."""
        if self._new.exists():
            body = self._parse(self._new.read_bytes())
            if body is not None:
                return body  # the crash came after the new state was complete
        if not self.path.exists():
            return b""
        data = self.path.read_bytes()
        body = self._parse(data)
        if body is None:
            raise ProtocolError(f"node state {self.path}: corrupted (checksum mismatch)")
        return body

    def save(self, state: bytes) -> None:
        data = _STATE_MAGIC + hashlib.sha256(state).digest() + state
        fd = os.open(self._new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if self.path.exists():  # scrub the old copy before it is unlinked by the rename
            with open(self.path, "r+b") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(0)
                fh.write(bytes(size))
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(self._new, self.path)
        fsync_dir(self.dir)


UpdateFn = Callable[[], tuple[Any, int]]


class NodeAgent:
    """A node's side of relayed rounds: answers :class:`StageRequest` s.

    Parameters
    ----------
    state : bytes, optional
        What :meth:`state_bytes` returned after the previous request (a ClientApp
        keeps it in ``Context.state``); empty for a fresh node.
    identity : Identity
        The node's own long-term identity (from its identity file); it signs every
        post and must be the identity of every seat the node is asked to act in.
    roster : Roster
        The deployment's roster, as this node holds it (never taken from the server).
    rng : numpy.random.Generator, optional
        Randomness for the stochastic rounding of the update (default: fresh from the
        OS). Keys and dealings always use the cryptographic generator of ``pvss``.
    backend : str, optional
        Masking backend (``numba``, ``reference``, ``cupy``; default: the fastest).
    rpc : str or Web3, optional
        Chain-native rounds (SPEC.md §7.4): the node's own JSON-RPC endpoint.
    persist : callable, optional
        Called with :meth:`state_bytes` when the node must not lose its state before it
        goes on: right after it made its task key and before the transaction that
        registers it on the task (a ``NodeStateFile.save``; without it a crash between
        the two loses a key the task then holds for good).

    Task rounds (SPEC.md §7.8 "Imported keys"). In a round a task opened (a request
    with ``task``; not optimistic) the node's client seat uses its task key as the round
    key: at the register stage the node, if it holds no key for that task yet, makes
    one, keeps it in its state (``task_keys``; kept when a new round resets the rest,
    saved with the state: a ``NodeStateFile`` keeps it across restarts, a Flower
    ``Context.state`` for the run only) and registers it on the task itself, from its
    own account, once. It then posts no client ``Registration``: the server's
    ``KeysImported`` registers the seat; the node replies with its member seat's posts
    only (none for a client-only node). Every replay of such a round's transcript is
    checked against the task's verified keys (``EvmBoard.task_keys``), cached per task
    in this process and fetched again when an import names a key not in the cache.
    """

    def __init__(
        self,
        state: bytes = b"",
        *,
        identity: Identity,
        roster: Roster,
        rng: np.random.Generator | None = None,
        backend: str | None = None,
        rpc: str | Any | None = None,
        persist: Callable[[bytes], None] | None = None,
    ) -> None:
        self._state = _NodeState.from_bytes(state)
        self.persist = persist
        # chain-native rounds: the node's own JSON-RPC endpoint (or a Web3); never the
        # server's word for what the chain says
        self.rpc = rpc
        self.identity = identity
        self.roster = roster
        self.rng = rng
        self.backend = backend
        # (reported, used): the upload's weight was above the round's max_weight and
        # was clamped to it (the caller logs it, naming its node)
        self.clamped: tuple[int, int] | None = None
        self._resent = False
        self._verified_now = 0  # _VERIFIED_* bits checked on the transcript being acted on

    @property
    def last_extra(self) -> bytes:
        """The caller's own record of the last reply (see :meth:`set_last_extra`)."""
        return self._state.extra

    def set_last_extra(self, extra: bytes) -> None:
        """Keep ``extra`` with the last reply (a ClientApp's FitRes without parameters),
        so that a resent upload carries it again."""
        self._state.extra = bytes(extra)

    def state_bytes(self) -> bytes:
        """The node's round secrets and pin between stages (node-local; never sent)."""
        return self._state.to_bytes()

    def round_has_dp(self, request: StageRequest) -> bool:
        """Whether the round ``request`` asks about runs DP, before :meth:`handle`
        checks it: chain-native, whether the request carries a dp record (attaching
        with it fails unless the chain holds its hash); else the relayed config's."""
        if request.contract:
            return bool(request.dp)
        return self.relayed_config(request).has_dp

    def relayed_config(self, request: StageRequest) -> RoundConfig:
        """The round config (event 0) of the relayed transcript — of the one this node
        pinned when ``request`` is a delta — decoded but NOT yet verified (``handle``
        re-verifies everything before acting). ``ProtocolError`` if unreadable."""
        data = self._state.known if request.since else request.transcript
        try:
            events = codec.decode(data, TranscriptFile).events
            if not events:
                raise ProtocolError("relay: empty transcript")
            return codec.decode(events[0].body, RoundConfig)
        except (InvalidEncoding, ConfigError) as exc:
            raise ProtocolError(f"node: unreadable round config: {exc}") from None

    # -- the board replica -----------------------------------------------------------
    def _replica(
        self, request: StageRequest, task_keys: TaskKeys | None = None
    ) -> tuple[MemoryBoard, TranscriptFile]:
        """The relayed board, re-checked: hash chain, every signature and board rule;
        the config against this node's roster; the transcript against the pin; the BN254
        proofs this node relies on (SPEC.md §8.2: every member's proof of possession
        and seed reveal, once; the role checks its own dealings' proofs)."""
        s = self._state
        relayed = codec.decode(request.transcript, TranscriptFile)
        if request.since:  # a delta: the events from ``since`` on, over what it pinned
            known = codec.decode(s.known, TranscriptFile) if s.known else None
            if known is None or len(known.events) < request.since:
                raise ProtocolError(
                    f"relay: a delta from event {request.since}, but this node acted on "
                    f"{len(known.events) if known else 0} events: ask with the whole transcript"
                )
            base = _filled(known.events[: request.since], request.fill)
            if relayed.events and relayed.events[0].prev != event_hash(base[-1]):
                raise ProtocolError(
                    f"relay: the delta does not extend the transcript this node acted on "
                    f"(event {request.since - 1}): the server forked the board"
                )
            transcript = TranscriptFile(base + relayed.events)  # the pin check follows
        else:
            transcript = relayed
        if not transcript.events:
            raise ProtocolError("relay: empty transcript")
        # the prefix this node checked and pinned at an earlier stage of this round is
        # not re-authenticated signature by signature: its pin head fixes it
        ev = transcript.events
        trusted = 0
        if (
            s.pin_seq >= 0
            and s.round == round_key(transcript)
            and len(ev) > s.pin_seq
            and event_hash(ev[s.pin_seq]) == s.pin_head
        ):
            trusted = s.pin_seq + 1
        board = MemoryBoard.replay(
            transcript, defer_proofs=True, trusted=trusted, task_keys=task_keys
        )
        try:
            self.roster.check(board.config)
        except ConfigError as exc:
            raise ProtocolError(f"relay: {exc}") from None
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
        if request.stage == STAGE_REGISTER and s.round != key:
            # an earlier round's secrets go; the task keys stay (they are long-lived)
            self._state = s = _NodeState(round=key, task_keys=s.task_keys)
        elif s.round != key:
            raise ProtocolError(f"relay: stage {request.stage} for a round this node never joined")
        events = transcript.events
        if s.pin_seq >= 0 and (
            len(events) <= s.pin_seq or event_hash(events[s.pin_seq]) != s.pin_head
        ):
            raise ProtocolError(
                f"relay: the transcript does not extend the one this node acted on "
                f"(event {s.pin_seq}): the server forked the board"
            )
        self._check_relied_on(board)
        return board, transcript

    def _check_relied_on(self, board: MemoryBoard, dealings: list | None = None) -> None:
        """The proofs this node relies on that it has not checked before (its pin makes
        an earlier check final): every member's proof of possession once the committee
        is complete (clients deal to those keys), every seed reveal once all are in (the
        graph), and ``dealings`` (a member: the dealings it is about to decrypt)."""
        s, st, m = self._state, board.state(), board.config.committee_size
        pops: tuple[tuple[int, int], ...] = ()
        reveals: tuple[int, ...] = ()
        done = s.verified | self._verified_now
        if not done & _VERIFIED_MEMBER_POPS and len(st.members) == m:
            pops = tuple((ROLE_MEMBER, k) for k in range(1, m + 1))
        if not done & _VERIFIED_REVEALS and len(st.reveals) == m:
            reveals = tuple(range(1, m + 1))
        try:
            board.verify_proofs(pops=pops, reveals=reveals, dealings=dealings or ())
        except RuleViolation as exc:
            raise ProtocolError(
                f"relay: the relayed board accepted an invalid proof: {exc}"
            ) from None
        # final only once the node pins this transcript (a later fork must not ride on it)
        if pops:
            self._verified_now |= _VERIFIED_MEMBER_POPS
        if reveals:
            self._verified_now |= _VERIFIED_REVEALS

    def _pin(self, transcript: TranscriptFile) -> None:
        self._state.pin_seq = len(transcript.events) - 1
        self._state.pin_head = event_hash(transcript.events[-1])
        self._state.known = codec.encode(transcript)
        self._state.verified |= self._verified_now

    def _check_seat(self, board: MemoryBoard, role: str, party: int, key: KeyPair) -> None:
        """The seat is this node's identity's and holds this node's round key."""
        st = board.state()
        rid, table = (ROLE_CLIENT, st.clients) if role == "client" else (ROLE_MEMBER, st.members)
        owner = seat_identity(board.config, st, rid, party)
        if owner != self.identity.address or table.get(party) != key.pk:
            raise ProtocolError(f"relay: the board does not hold this node's key as {role} {party}")

    def _check_offer(self, board: MemoryBoard, role: str, party: int) -> None:
        """Before registering: the seat exists and the roster gives it to this node (or,
        under open membership, it is free)."""
        cfg = board.config
        rid, limit = (
            (ROLE_CLIENT, cfg.n_clients) if role == "client" else (ROLE_MEMBER, cfg.committee_size)
        )
        if not 1 <= party <= limit:
            raise ProtocolError(f"relay: {role} seat {party} does not exist")
        owner = seat_identity(cfg, board.state(), rid, party)
        free = rid == ROLE_CLIENT and owner is None
        if not free and owner != self.identity.address:
            raise ProtocolError(f"relay: {role} seat {party} is not this node's identity's")

    # -- roles, restored from the state -----------------------------------------------
    def _client(self, board: MemoryBoard) -> Client:
        s = self._state
        if not s.client:
            raise ProtocolError("relay: this node is no client in this round")
        if not s.client_sk:
            raise ProtocolError(f"relay: client {s.client} already uploaded (key erased)")
        key = KeyPair.generate(s.client_sk)
        c = Client(
            board.config,
            s.client,
            None,
            1,
            identity=self.identity,
            rng=self.rng,
            backend=self.backend,
            key=key if s.client_task else None,  # imported: the task's key
        )
        c.key = key
        c.stage = Stage(s.client_stage)
        c._dealt_secrets = dict(s.secrets)  # the role's own field, restored verbatim
        self._check_seat(board, "client", c.party, c.key)
        return c

    def _save_client(self, c: Client) -> None:
        self._state.client_stage = c.stage.value
        self._state.secrets = dict(c._dealt_secrets)
        # the round's copy of its key goes after upload (an imported key lives on in
        # task_keys, for the task's later rounds)
        keep = c.key is not None and c.stage != Stage.UPLOADED
        self._state.client_sk = c.key.sk if keep else 0

    def _member(self, board: MemoryBoard) -> CommitteeMember:
        s = self._state
        if not s.member:
            raise ProtocolError("relay: this node is no committee member in this round")
        if not s.member_sk:
            raise ProtocolError(f"relay: member {s.member} already revealed (key erased)")
        mb = CommitteeMember(board.config, s.member, identity=self.identity)
        mb.key = KeyPair.generate(s.member_sk)
        mb.stage = Stage(s.member_stage)
        mb.confirmed_head = s.confirmed or None
        self._check_seat(board, "member", mb.party, mb.key)
        return mb

    def _save_member(self, mb: CommitteeMember) -> None:
        self._state.member_stage = mb.stage.value
        self._state.confirmed = mb.confirmed_head or b""
        self._state.member_sk = mb.key.sk if mb.key is not None else 0

    # -- stages ------------------------------------------------------------------------
    def handle(self, request: StageRequest, update: UpdateFn | None = None) -> StageReply:
        """Act for one stage and return the signed posts to relay.

        ``update`` (upload stage only) trains and returns ``(vector, weight)``: the
        flat float update (numpy / torch / cupy) and its integer weight (FedAvg:
        ``num_examples``; one above the round's ``max_weight`` is clamped to it and
        recorded in :attr:`clamped`).

        Raises ``ProtocolError`` (wrong stage, unknown round, a relayed board that does
        not verify or does not extend the pinned one, a config the roster refuses, a
        seat or key that is not ours, too few confirmations) or ``InvalidParameters``
        (weight out of range) — the server then counts this node as a dropout.
        """
        t0 = time.perf_counter()
        self._resent = False
        if request.stage == STAGE_HELLO:
            return StageReply(identity=self.identity.address)
        chain = None
        task_keys = None
        if request.contract:  # chain-native: the round as the chain has it
            chain, request = self._from_chain(request)
            task_keys = self._task_keys(chain, request.task)
        board, transcript = self._replica(request, task_keys)
        posts: list[bytes] = []
        blob = b""
        s = self._state

        def relay(before: int) -> None:  # the signed posts the replica accepted
            for ev in board.events()[before:]:
                posts.append(codec.encode(SignedPost(ev.role, ev.sender, ev.body, ev.view, ev.sig)))

        before = len(board.events())
        if (
            s.last_stage == request.stage
            and (request.client or request.member)
            and request.client in (0, s.last_seats[0])
            and request.member in (0, s.last_seats[1])
        ):  # asked again (for all or some of the seats it answered for)
            self._resent = True
            return self._resend(board, transcript, request, t0, chain=chain)
        if request.stage == STAGE_REGISTER:
            if request.client:
                if s.client:
                    raise ProtocolError(f"relay: already registered as client {s.client}")
                self._check_offer(board, "client", request.client)
                key = None
                if request.task and imports_client_keys(board.config):
                    # registered on the task by _from_chain; the server imports it
                    party, sk = s.task_keys[request.task]
                    if party != request.client:
                        raise ProtocolError(
                            f"relay: client {request.client}: this node holds client seat "
                            f"{party} of task 0x{request.task.hex()}"
                        )
                    key = KeyPair.generate(sk)
                    s.client_task = request.task
                c = Client(board.config, request.client, None, 1, identity=self.identity, key=key)
                c.register(board)  # imported: posts nothing
                s.client = request.client
                self._save_client(c)
            if request.member:
                if s.member:
                    raise ProtocolError(f"relay: already registered as member {s.member}")
                self._check_offer(board, "member", request.member)
                mb = CommitteeMember(board.config, request.member, identity=self.identity)
                mb.register(board)
                s.member = request.member
                self._save_member(mb)
            if not request.client and not request.member:
                raise ProtocolError("relay: register request names no seat")
        elif request.stage == STAGE_SEED:
            self._expect_ids(request, member=True)
            mb = self._member(board)
            mb.reveal_seed(board)
            self._save_member(mb)
        elif request.stage == STAGE_DEAL:
            self._expect_ids(request, client=True)
            c = self._client(board)
            c.deal(board)
            self._save_client(c)
        elif request.stage == STAGE_UPLOAD:
            self._expect_ids(request, client=True)
            if update is None:
                raise ProtocolError("relay: upload needs the node's update")
            c = self._client(board)
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
            top = board.config.max_weight
            if isinstance(weight, (int, np.integer)) and not isinstance(weight, bool):
                if weight > top:  # FedAvg's num_examples above W: clamped, not excluded
                    self.clamped = (int(weight), top)
                    weight = top
            c.weight = board.config.masking().check_weight(weight)
            outbox = _Outbox()
            c.upload(board, outbox)
            (blob,) = outbox.data.values()
            self._save_client(c)  # UPLOADED: round key and dealt secrets erased
        elif request.stage == STAGE_CONFIRM:
            self._expect_ids(request, member=True)
            mb = self._member(board)
            try:
                mb.confirm(board)
            finally:  # an aborted round erases the round key even though it raises
                self._save_member(mb)
        else:  # STAGE_UNMASK
            self._expect_ids(request, member=True)
            mb = self._member(board)
            # the dealings it decrypts, in one batch, before any share leaves the node
            self._check_relied_on(board, board.allowed_shares())
            mb.reveal(board)
            self._save_member(mb)  # REVEALED: round key erased
        relay(before)
        self._pin(transcript)
        s.last_stage, s.last_seats = request.stage, (request.client, request.member)
        s.last_posts, s.last_blob, s.extra = tuple(posts), blob, b""
        if chain is not None:  # the node's own transactions, from its own account
            if self.persist is not None:  # write-ahead: kept before the chain holds them
                self.persist(self.state_bytes())
            self._submit_own(chain, [codec.decode(raw, SignedPost) for raw in posts])
        return StageReply(tuple(posts), blob, time.perf_counter() - t0, self.identity.address)

    @staticmethod
    def _submit_own(chain: Any, posts: list[SignedPost]) -> None:
        """Chain-native: this node's posts sent from its own account (SPEC.md §7.4)."""
        for post in posts:
            try:
                chain.submit(post)
            except ProtocolError as exc:
                raise ProtocolError(f"relay: the chain refused this node's post: {exc}") from None

    def _resend(
        self,
        board: MemoryBoard,
        transcript: TranscriptFile,
        request: StageRequest,
        t0: float,
        *,
        chain: Any = None,
    ) -> StageReply:
        """The same stage asked again (a server that restarted without our reply): the
        same signed posts and blob, once the replica accepts them on this board — a
        relayed board that holds them already, or moved to another view, is refused.
        Chain-native (``chain``: the round contract), the node sends its posts itself:
        those the chain holds already are not sent again, any it does not (the node
        stopped between keeping its state and its transaction) are sent now, checked
        first on the replica read from the chain."""
        s = self._state
        wanted = {(ROLE_CLIENT, request.client), (ROLE_MEMBER, request.member)}
        posts, missing = [], []
        held = set()
        if chain is not None:
            held = {(ev.role, ev.sender, ev.body, ev.sig) for ev in board.events()}
        for raw in s.last_posts:  # the posts of the seats asked for (a server may hold some)
            post = codec.decode(raw, SignedPost)
            if (post.role, post.sender) not in wanted:
                continue
            posts.append(raw)
            if chain is not None and (post.role, post.sender, post.body, post.sig) in held:
                continue  # chain-native: this node's own transaction is on the chain already
            try:
                board.submit(post)
            except RuleViolation as exc:
                raise ProtocolError(
                    f"relay: {request.stage} asked again, the board refuses the posts this "
                    f"node already sent ({exc.fault.rule}: {exc.fault.detail})"
                ) from None
            missing.append(post)
        if chain is not None:
            self._submit_own(chain, missing)
        imported = request.stage == STAGE_REGISTER and request.client and s.client_task
        if not posts and not imported:  # an imported client seat posts nothing there
            raise ProtocolError(f"relay: {request.stage} asked again for seats it never posted for")
        self._pin(transcript)
        blob = s.last_blob if request.client else b""
        return StageReply(tuple(posts), blob, time.perf_counter() - t0, self.identity.address)

    @property
    def resent(self) -> bool:
        """Whether the last :meth:`handle` sent a stored reply again."""
        return self._resent

    def _from_chain(self, request: StageRequest) -> tuple[Any, StageRequest]:
        """Attach to the round contract the request names with this node's identity
        (its account pays for its posts); the request's transcript and height are
        replaced by the chain's (checked against the contract's head and code by
        ``EvmBoard.attach``)."""
        if self.rpc is None:
            raise ProtocolError(
                "relay: a chain-native round, but this node has no RPC endpoint "
                "(node_config pvss-rpc)"
            )
        from secagg.boards.evm import EvmBoard  # noqa: PLC0415 - needs the evm extra

        try:
            dp = dp_record_decode(request.dp, "stage request: dp") if request.dp else None
        except InvalidEncoding as exc:
            raise ProtocolError(str(exc)) from None
        chain = EvmBoard.attach(self.rpc, request.contract, self.identity, dp=dp)
        if request.task and request.stage == STAGE_REGISTER:  # joining: pinned from then on
            task = self._check_task_round(chain, request.task)
            if request.client and imports_client_keys(chain.config):
                if self._task_registration(task, request.client):
                    # the task transaction went from this account: attach again, so the
                    # board's posts take the account's next nonce
                    chain = EvmBoard.attach(self.rpc, request.contract, self.identity, dp=dp)
        transcript = codec.encode(chain.transcript())
        return chain, dataclasses.replace(request, transcript=transcript, height=chain.height())

    def _check_task_round(self, chain: Any, task_address: bytes) -> Any:
        """The round contract ``chain`` is the one the task at ``task_address`` opened
        under the round's id (the task's code checked from the chain: a PvssTask);
        returns that ``EvmTask``, attached with this node's identity (its account pays
        the node's own task registration)."""
        from secagg.boards.task import EvmTask  # noqa: PLC0415 - needs the evm extra

        try:
            task = EvmTask.attach(chain.w3, task_address, self.identity)
        except ProtocolError as exc:
            raise ProtocolError(f"relay: the round's task: {exc}") from None
        rid = chain.config.round_id
        opened = task.round_address(rid)
        if opened.lower() != chain.address.lower():
            raise ProtocolError(
                f"relay: contract {chain.address} is not round {rid} of task {task.address} "
                f"(the task opened {opened} as round {rid})"
            )
        return task

    def _task_registration(self, task: Any, party: int) -> bool:
        """This node's key for client seat ``party`` of ``task``, registered there once
        (SPEC.md §7.8): made and kept in the state (``persist`` called) the first time,
        then registered from this node's own account; a key kept but not on the task yet
        (a crash before the transaction) is registered now. True if a transaction was
        sent. ``ProtocolError`` for a seat that is not this identity's, a task key held
        for another seat, or a task that holds a key this node does not have."""
        s, addr = self._state, task.raw_address
        where = f"relay: client {party} of task {task.address}"
        clients = task.roster()[1]
        if not 1 <= party <= len(clients) or clients[party - 1] != self.identity.address:
            raise ProtocolError(f"{where}: the seat is not this node's identity's")
        held = s.task_keys.get(addr)
        if held is not None and held[0] != party:
            raise ProtocolError(f"{where}: this node registered on the task as client {held[0]}")
        on_task = task.key(ROLE_CLIENT, party)
        if held is None:
            if on_task is not None:
                raise ProtocolError(
                    f"{where}: the task holds a key for this seat that this node does not "
                    "(its state was lost): the seat cannot take part in the task's rounds"
                )
            key = KeyPair.generate()
            s.task_keys[addr] = (party, key.sk)
            if self.persist is not None:  # kept before the task holds it
                self.persist(self.state_bytes())
        else:
            key = KeyPair.generate(held[1])
        if on_task is not None:
            if on_task != key.pk:
                raise ProtocolError(f"{where}: the task holds another key for this seat")
            return False
        try:
            task.register(ROLE_CLIENT, party, key, self.identity)
        except Exception as exc:  # noqa: BLE001 - a revert or the provider's error
            raise ProtocolError(f"{where}: its task registration failed: {exc}") from None
        return True

    @staticmethod
    def _task_keys(chain: Any, task_address: bytes) -> TaskKeys | None:
        """The verified client keys of the task this round imported keys from (None if
        it imported none), for the replay: from the process-wide cache when it holds
        every key the round's ``KeysImported`` posts name, else fetched again from the
        chain (``EvmBoard.task_keys``: the task's code, that it opened this round, every
        registration's proof of possession and signature). The replay checks every
        imported key against them, so a stale cache entry can only refuse, never admit."""
        named: dict[int, bytes] = {}
        for ev in chain.events():
            if ev.role != ROLE_AGGREGATOR or ev.seq == 0:
                continue
            msg = codec.decode(ev.body)
            if isinstance(msg, KeysImported):
                if msg.task != task_address:
                    raise ProtocolError(
                        f"relay: the round imported keys from task 0x{msg.task.hex()}, "
                        f"not from its task 0x{task_address.hex()}"
                    )
                named.update(zip(msg.parties, msg.keys, strict=True))
        if not named:
            return None
        slot = (chain.config.chain_id, task_address)
        cached = _TASK_KEYS.get(slot)
        if cached is None or any(
            p not in cached or cached[p][1].to_bytes() != raw for p, raw in named.items()
        ):
            fetched = chain.task_keys()
            if task_address not in fetched:
                raise ProtocolError(f"relay: no keys of task 0x{task_address.hex()} on the chain")
            cached = dict(fetched[task_address])
            _TASK_KEYS[slot] = cached
        return {task_address: cached}

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


def imports_client_keys(config: RoundConfig) -> bool:
    """Whether a round opened under a task takes its client keys from the task
    (SPEC.md §7.8 "Imported keys"): yes, but in optimistic mode (a client stakes at its
    own registration) and under open membership (no seat to import for)."""
    return not config.optimistic and bool(config.clients)


# (chain id, task address) -> client party -> (identity, key): verified task keys,
# per process (a task key never changes once registered; new ones are fetched)
_TASK_KEYS: dict[tuple[int, bytes], dict[int, tuple[bytes, G1Point]]] = {}


def _filled(base: tuple[Event, ...], fill: bytes) -> tuple[Event, ...]:
    """``base`` (the pinned events before a delta) with the events of ``fill`` swapped
    in: each must be a pinned event's sequence number with every field but the body
    equal; the body's post digest is checked against ``digest`` by the replay that
    follows, so a fill can add elided dealings' bytes and nothing else."""
    if not fill:
        return base
    try:
        events = codec.decode(fill, TranscriptFile).events
    except InvalidEncoding as exc:
        raise ProtocolError(f"relay: unreadable fill: {exc}") from None
    out = list(base)
    for ev in events:
        if not 0 <= ev.seq < len(out):
            raise ProtocolError(f"relay: fill event {ev.seq} is not one this node pinned")
        if dataclasses.replace(ev, body=out[ev.seq].body) != out[ev.seq]:
            raise ProtocolError(
                f"relay: fill event {ev.seq} differs from the pinned one: the server forked "
                f"the board"
            )
        out[ev.seq] = ev
    return tuple(out)


def _stage_phase(stage: str) -> Phase:
    return STAGE_PHASE[stage]

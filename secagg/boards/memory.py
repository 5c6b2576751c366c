"""``MemoryBoard``: every board rule in Python over a hash-chained event log (each event
commits to the previous one, so altering any byte of the transcript is detected) —
tests, simulation, the FL server's board, and the replay every verifier runs.

With a journal (SPEC.md §6.14) the board is durable: every accepted event and every
height change is appended to ``journal.bin`` and fsync'ed before the board acknowledges
it (inside :meth:`MemoryBoard.batch`, once at the end of the batch: a group commit), and
:meth:`MemoryBoard.open` rebuilds the board from that file after a crash."""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack

from pvss.dleq import DleqProof
from pvss.errors import InvalidEncoding, InvalidProof
from pvss.group import G1Point
from pvss.keys import ProofOfPossession, verify_possession, verify_seed_reveal
from pvss.scrape import (
    DEALING_HEADER_BYTES,
    SHARE_RECORD_BYTES,
    Dealing,
    DealingClaim,
    SeedRevealClaim,
    SharePostClaim,
    invalid_seed_reveals,
    invalid_share_posts,
    is_valid_dealing_batch,
    is_valid_dealing_batch_split,
    share_post_claim,
    verify_dealing,
)
from pvss.transcript import PURPOSE_PAIR
from secagg import codec
from secagg.boards.base import (
    ZERO_HASH,
    Board,
    Fault,
    Phase,
    PostedShares,
    RoundState,
    RuleViolation,
    allowed_share_keys,
    compute_included,
    event_hash,
    pop_party,
    seat_identity,
)
from secagg.config import RoundConfig
from secagg.errors import ProtocolError
from secagg.graph import (
    DealingKey,
    compute_mask_graph,
    compute_round_seed,
    dealing_context,
    pair_key,
    self_key,
)
from secagg.identity import Identity, InvalidSignature, recover
from secagg.messages import (
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Confirmation,
    DealingsPost,
    ElidedDealingsPost,
    Event,
    Exclusion,
    KeysImported,
    MaskedInputPost,
    Registration,
    RelayDealingItem,
    ResultPost,
    SeedReveal,
    SharesPost,
    SignedPost,
    TranscriptFile,
    party_name,
)
from secagg.packing import packed_size
from secagg.posts import NO_SIGNATURE, post_digest, sign_post, signing_digest

_log = logging.getLogger(__name__)

# task address -> client party -> (identity, key): a task's verified registrations
TaskKeys = Mapping[bytes, Mapping[int, tuple[bytes, G1Point]]]

JOURNAL_FILE = "journal.bin"
JOURNAL_MAGIC = b"PVSSJRN\x01"
_REC_EVENT = 0  # payload: one accepted event (a one-event TranscriptFile)
_REC_HEIGHT = 1  # payload: the board's new height
_REC_HEADER = struct.Struct(">I32s")  # payload length, sha256(payload)
MAX_JOURNAL_RECORD = 1 << 30
# a large batch of dealing proofs is checked in this many parts at once, one thread each
# (pvss.scrape.is_valid_dealing_batch_split; SPEC.md §4.4)
BATCH_PARTS = max(1, min(4, os.cpu_count() or 1))


class JournalCorrupt(ProtocolError):
    """A journal record that is complete but does not check (its checksum, its
    encoding, its place in the log): the file was altered, not torn by a crash. The
    board is not rebuilt from it."""


class Journal:
    """An append-only record file (SPEC.md §6.14): ``JOURNAL_MAGIC``, then records
    ``uint32 length || sha256(payload) || payload`` with payload the msgpack array
    ``[kind, data]``. ``append`` returns only once the record is written and (with
    ``fsync``) on disk — or, while ``deferred``, written and flushed, with the fsync left
    to ``commit``."""

    def __init__(self, path: Path, *, fsync: bool = True, _fh: Any = None) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._fh = _fh
        self.deferred = False  # group commit (MemoryBoard.batch): fsync in commit()
        self._dirty = False

    @classmethod
    def create(cls, path: str | os.PathLike[str], *, fsync: bool = True) -> Journal:
        """A new journal (``ProtocolError`` if the file exists: open it instead)."""
        path = Path(path)
        try:
            fh = open(path, "xb")  # noqa: SIM115 - kept open for appends
        except FileExistsError:
            raise ProtocolError(
                f"journal {path} exists: open it to resume the round (MemoryBoard.open)"
            ) from None
        journal = cls(path, fsync=fsync, _fh=fh)
        fh.write(JOURNAL_MAGIC)
        journal._sync()
        if fsync:
            from secagg.blobs import fsync_dir  # noqa: PLC0415

            fsync_dir(path.parent)
        return journal

    @staticmethod
    def read(path: str | os.PathLike[str]) -> tuple[list[tuple[int, Any]], int, int]:
        """``(records, good_bytes, torn_bytes)``: the records ``(kind, data)`` in
        order, the length of the well-formed prefix, and how many bytes after it
        belong to a torn last record (a crash in mid-append: the record is incomplete,
        and was never acknowledged). A complete record that does not check raises
        :class:`JournalCorrupt` naming its number and offset."""
        path = Path(path)
        data = path.read_bytes()
        if len(data) < len(JOURNAL_MAGIC):
            if JOURNAL_MAGIC.startswith(data):
                return [], 0, len(data)
            raise JournalCorrupt(f"journal {path}: not a journal (bad magic)")
        if data[: len(JOURNAL_MAGIC)] != JOURNAL_MAGIC:
            raise JournalCorrupt(f"journal {path}: not a journal (bad magic)")
        pos = len(JOURNAL_MAGIC)
        records: list[tuple[int, Any]] = []
        while pos < len(data):
            where = f"journal {path}: record {len(records)} at byte {pos}"
            if len(data) - pos < _REC_HEADER.size:
                break  # torn inside the header
            size, check = _REC_HEADER.unpack_from(data, pos)
            if size > MAX_JOURNAL_RECORD:
                raise JournalCorrupt(f"{where}: length {size} is out of range")
            end = pos + _REC_HEADER.size + size
            if end > len(data):
                break  # torn inside the payload
            payload = data[pos + _REC_HEADER.size : end]
            if hashlib.sha256(payload).digest() != check:
                raise JournalCorrupt(f"{where}: checksum mismatch (the record was altered)")
            try:
                kind, body = msgpack.unpackb(payload, raw=False)
            except Exception as exc:  # msgpack raises several unrelated types
                raise JournalCorrupt(f"{where}: undecodable ({type(exc).__name__})") from None
            if kind == _REC_EVENT and isinstance(body, bytes):
                try:
                    (event,) = codec.decode(body, TranscriptFile).events
                except (InvalidEncoding, ValueError) as exc:
                    raise JournalCorrupt(f"{where}: bad event: {exc}") from None
                records.append((kind, event))
            elif kind == _REC_HEIGHT and isinstance(body, int) and body >= 0:
                records.append((kind, body))
            else:
                raise JournalCorrupt(f"{where}: unknown record kind {kind!r}")
            pos = end
        return records, pos, len(data) - pos

    def append_event(self, event: Event) -> None:
        self._append(_REC_EVENT, codec.encode(TranscriptFile((event,))))

    def append_height(self, height: int) -> None:
        self._append(_REC_HEIGHT, height)

    def _append(self, kind: int, body: Any) -> None:
        if self._fh is None:
            raise ProtocolError(f"journal {self.path}: closed")
        payload = msgpack.packb([kind, body], use_bin_type=True)
        record = _REC_HEADER.pack(len(payload), hashlib.sha256(payload).digest()) + payload
        self._fh.write(record)
        self._sync()

    def _sync(self) -> None:
        self._fh.flush()
        if self.fsync and self.deferred:
            self._dirty = True
        elif self.fsync:
            os.fsync(self._fh.fileno())

    def commit(self) -> None:
        """fsync what was appended while ``deferred`` (nothing to do otherwise)."""
        if self._dirty and self._fh is not None:
            os.fsync(self._fh.fileno())
        self._dirty = False

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _LazyDealing:
    """A dealing in a relay replica (``replay(defer_proofs=True)``): its header (length,
    threshold, recipient flag) is validated at once, its points — validated by
    ``Dealing.from_bytes`` — only when something reads them (the node's own pair
    dealings, the ones a member decrypts). Reading an undecodable one raises
    ``InvalidEncoding``. Every attribute is the decoded ``Dealing`` 's."""

    __slots__ = ("_raw", "_dealing", "threshold", "has_recipient")

    def __init__(self, raw: bytes) -> None:
        raw = bytes(raw)
        if len(raw) < DEALING_HEADER_BYTES:
            raise InvalidEncoding(f"dealing: {len(raw)} bytes is shorter than the header")
        if raw[2] not in (0, 1):
            raise InvalidEncoding(f"dealing.has_recipient: byte {raw[2]} is not 0 or 1")
        count = int.from_bytes(raw[3:5], "big")
        if len(raw) != DEALING_HEADER_BYTES + count * SHARE_RECORD_BYTES:
            raise InvalidEncoding(f"dealing: wrong length {len(raw)} for N={count}")
        self._raw = raw
        self._dealing: Dealing | None = None
        self.threshold = int.from_bytes(raw[0:2], "big")
        self.has_recipient = bool(raw[2])

    def decoded(self) -> Dealing:
        if self._dealing is None:
            self._dealing = Dealing.from_bytes(self._raw)
        return self._dealing

    def __getattr__(self, name: str) -> Any:
        return getattr(self.decoded(), name)

    def to_bytes(self) -> bytes:
        return self._raw


class _ElidedDealing:
    """A dealing whose hash only the relay sent (``ElidedDealingsPost``): the node does
    not rely on it (SPEC.md §8.2); reading it raises ``ProtocolError``."""

    __slots__ = ("key",)

    def __init__(self, key: DealingKey) -> None:
        self.key = key

    def __getattr__(self, name: str) -> Any:
        raise ProtocolError(
            f"relay: the server sent only the hash of dealing {self.key}, which this node needs"
        )


class _Unchecked:
    """The proofs a relay replica accepted without checking (``replay(defer_proofs=
    True)``), by seat / dealing key, for :meth:`MemoryBoard.verify_proofs`."""

    def __init__(self) -> None:
        self.pops: dict[tuple[int, int], tuple[G1Point, ProofOfPossession]] = {}
        self.reveals: dict[int, tuple[G1Point, DleqProof]] = {}
        self.dealings: dict[DealingKey, DealingClaim] = {}


class MemoryBoard(Board):
    """In-memory board with a hash-chained event log (tests, simulation, the FL
    server's board, and every replay).

    Create one with :meth:`create` (the aggregator signs event 0, the config) or rebuild
    one from a transcript with :meth:`replay`."""

    def __init__(self, config: RoundConfig, config_sig: bytes, *, _trusted: int = 0) -> None:
        self.config = config
        self._height = 0
        self._events: list[Event] = []
        self._state = RoundState(config)
        self.faults: list[Fault] = []
        # replay of an optimistic chain only: dealer -> its accepted dealings that do not
        # decode (the contract checked their headers only); the dealer is skipped, named
        # in ``faults``, and a challenge's Exclusion event may follow (SPEC.md §7.3)
        self.malformed: dict[int, set[DealingKey]] = {}
        self.excluded: set[int] = set()  # dealers an Exclusion event removed
        # replay only: dealing claims whose proofs are checked in one batch at the end
        self._deferred: list[tuple[DealingKey, DealingClaim]] | None = None
        # replay only: share-post claims, checked in one batch at the end (SPEC.md §4.5)
        self._deferred_posts: list[tuple[int, SharePostClaim]] | None = None
        # replay only: False when the proofs were checked by a full-mode round contract
        # (the auditor read the events from that chain), see ``replay(proofs=...)``
        self._check_proofs = True
        # replay(trusted=k) only: events 0..k-1 were checked by this same party before
        # (its pin); their seats' signatures are not recovered again
        self._trusted = _trusted
        self._journal: Journal | None = None  # set by create(journal=...) / open()
        # replay(defer_proofs=True) only: the proofs the replay accepted unchecked, for
        # ``verify_proofs`` to check the ones a relay node relies on (SPEC.md §8.2)
        self._unchecked: _Unchecked | None = None
        # replay(proofs=False) of a full-mode round: whoever checked the proofs decoded
        # every dealing; the replay validates each one's header and decodes its points
        # only if something reads them (_LazyDealing)
        self._lazy_dealings = False
        # preverify_dealings: digests of DealingsPosts whose proofs one batch verified;
        # _collect gathers their claims while it dry-runs the rules
        self._preverified: set[bytes] = set()
        self._collect: list[DealingClaim] | None = None
        # preverify_share_posts: the same for one unmask stage's share posts
        self._preverified_posts: set[bytes] = set()
        self._collect_posts: list[tuple[bytes, SharePostClaim]] | None = None
        # what a preverify dry run decoded (post bodies; dealings, by their bytes) for the
        # submit that follows it; two maps, so that no bytes can stand for the other kind
        self._decoded: dict[bytes, Any] = {}
        self._decoded_dealings: dict[bytes, Dealing] = {}
        self._current_digest = b""
        # the keys client seats registered on task contracts (SPEC.md §7.8 "Imported
        # keys"): task address -> client party -> (identity, key), for KeysImported
        # posts; None: such a post is refused (this board cannot check it)
        self.task_keys: TaskKeys | None = None
        post = SignedPost(ROLE_AGGREGATOR, 0, codec.encode(config), ZERO_HASH, config_sig)
        digest = post_digest(config)
        self._check_signature(post, digest, config.aggregator)
        self._append(post, digest)
        self._state.phase_heads[Phase.REGISTER] = self.head

    @classmethod
    def create(
        cls,
        config: RoundConfig,
        aggregator: Identity,
        *,
        journal: str | os.PathLike[str] | None = None,
        fsync: bool = True,
    ) -> MemoryBoard:
        """A fresh board whose event 0 (the config) the aggregator signs; with
        ``journal`` (a path that must not exist yet) a durable one (SPEC.md §6.14):
        event 0 is written there first, and every later event and height change is
        appended (and, with ``fsync``, on disk) before the board acknowledges it."""
        if aggregator.address != config.aggregator:
            raise ProtocolError("board: the config names another aggregator identity")
        post = sign_post(aggregator, config, ROLE_AGGREGATOR, 0, config, ZERO_HASH)
        board = cls(config, post.sig)
        if journal is not None:
            board._journal = Journal.create(journal, fsync=fsync)
            board._journal.append_event(board._events[0])
        return board

    @classmethod
    def open(cls, journal: str | os.PathLike[str], *, fsync: bool = True) -> MemoryBoard:
        """The board a journal recorded, rebuilt after a crash (SPEC.md §6.14), and
        journaling again from where it stopped.

        Every event is re-checked as in :meth:`replay` (hash chain, signatures, views,
        every rule and proof) at the height the journal recorded, so the board comes
        back exactly as it was acknowledged: same events, same phase, same phase heads.
        A torn last record (the crash hit an append, which therefore was never
        acknowledged) is discarded with a WARNING and cut from the file; a complete
        record that does not check raises :class:`JournalCorrupt`, an event the rules
        refuse ``RuleViolation`` / ``ProtocolError``: a journal that was altered is
        never resumed."""
        path = Path(journal)
        records, good, torn = Journal.read(path)
        if torn:
            _log.warning(
                "journal %s: discarding a torn last record (%d bytes at byte %d): the "
                "crash interrupted its append, so it was never acknowledged",
                path,
                torn,
                good,
            )
        if not records or records[0][0] != _REC_EVENT:
            raise JournalCorrupt(f"journal {path}: does not start with the round config")
        events = [rec for kind, rec in records if kind == _REC_EVENT]
        board = cls._from_first_event(events[0], f"journal {path}")
        if board._events[0] != events[0]:
            raise JournalCorrupt(f"journal {path}: event 0 does not rebuild")
        board._deferred = []
        board._deferred_posts = []
        for pos, (kind, rec) in enumerate(records[1:], 1):
            where = f"journal {path}: record {pos}"
            if kind == _REC_HEIGHT:
                if rec < board._height:
                    raise JournalCorrupt(f"{where}: height {rec} goes back in time")
                board.advance(rec - board._height)
                continue
            if rec.seq != len(board._events) or rec.prev != board.head:
                raise JournalCorrupt(f"{where}: event {rec.seq} does not chain to the log")
            if rec.height != board._height:
                raise JournalCorrupt(
                    f"{where}: event {rec.seq} at height {rec.height}, the log is at "
                    f"{board._height}"
                )
            board._replay_event(rec)
        if board._deferred:
            board._check_deferred()
        if board._deferred_posts:
            board._check_deferred_posts()
        board._deferred = None
        board._deferred_posts = None
        if torn:
            with open(path, "r+b") as fh:
                fh.truncate(good)
                fh.flush()
                os.fsync(fh.fileno())
        board._journal = Journal(path, fsync=fsync, _fh=open(path, "ab"))  # noqa: SIM115
        return board

    @property
    def journal(self) -> Journal | None:
        """The journal this board writes (None: an in-memory board)."""
        return self._journal

    def close(self) -> None:
        """Close the journal (the board keeps answering reads)."""
        if self._journal is not None:
            self._journal.commit()
            self._journal.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit (SPEC.md §6.14): inside the block every accepted event is
        written to the journal and flushed as it is accepted, and fsync'ed once when the
        block ends, normally or by an exception — so a caller that accepts a stage's
        replies in one batch acknowledges them (sends the next stage) only after all of
        them are on disk, with one fsync instead of one per event. Without a journal, or
        nested in another batch, it does nothing."""
        journal = self._journal
        if journal is None or journal.deferred:
            yield
            return
        journal.deferred = True
        try:
            yield
        finally:
            journal.deferred = False
            journal.commit()

    # -- Board interface ---------------------------------------------------------
    def height(self) -> int:
        return self._height

    def advance(self, blocks: int) -> None:
        if blocks < 0:
            raise ValueError("advance: blocks must be >= 0")
        if blocks and self._journal is not None:
            self._journal.append_height(self._height + blocks)  # durable first
        self._height += blocks
        self._on_height()

    def state(self) -> RoundState:
        return self._state

    def events(self) -> list[Event]:
        return list(self._events)

    @property
    def checks_proofs(self) -> bool:
        """True if every post this board holds had its BN254 proofs checked when it was
        accepted (not a ``replay(proofs=False)`` nor a relay node's deferred replica)."""
        return self._check_proofs and self._unchecked is None

    @property
    def head(self) -> bytes:
        return event_hash(self._events[-1])

    def submit(self, post: SignedPost) -> Event:
        try:
            msg, digest, apply = self._check_post(post)
        except RuleViolation as exc:
            self.faults.append(exc.fault)
            raise
        ev = self._next_event(post, digest)
        if self._journal is not None:
            self._journal.append_event(ev)  # on disk before anything changes
        apply()
        self._events.append(ev)
        return ev

    # -- transcript --------------------------------------------------------------
    def transcript(self) -> TranscriptFile:
        return TranscriptFile(tuple(self._events))

    @classmethod
    def replay(
        cls,
        transcript: TranscriptFile,
        expected_head: bytes | None = None,
        *,
        proofs: bool = True,
        defer_proofs: bool = False,
        trusted: int = 0,
        task_keys: TaskKeys | None = None,
    ) -> MemoryBoard:
        """Rebuild a board from its events, re-checking the hash chain and every rule.

        The whole chain is checked first (a broken link is the board's fault, never the
        sender's), then every event is re-submitted under the rules — signature, view,
        stage, proofs: the first one an honest board would have refused raises
        ``RuleViolation`` naming its sender. Dealing proofs of all posts are checked in
        one batch at the end (faster); if that batch fails, the dealer of the first
        bad dealing is named. ``expected_head``, the head hash from a trusted source
        (the chain, a published digest), also protects the last event; without it, the
        last event is only as trustworthy as the file — though every event is signed by
        its sender, so a forged last event frames nobody.

        ``proofs=False`` (SPEC.md §6.8, "chain" verification) skips the BN254 proofs a
        full-mode round contract executed on-chain — proofs of possession, seed
        reveals, dealing proofs, share-post proofs — and keeps every other rule
        (signatures included: they are cheap). It needs ``expected_head`` read from
        that chain: without it, a forged file could carry proofs no chain ever
        checked. Outside optimistic mode it also leaves each dealing's points
        undecoded until something reads them (its header is validated): the party
        that checked its proof decoded them.

        ``defer_proofs=True`` (a relay node's replica, SPEC.md §8.2) checks every rule
        but no BN254 proof and keeps the proofs it accepted unchecked; the caller then
        checks the ones it relies on with :meth:`verify_proofs`. Such a board vouches
        for nothing else: never use it to verify a round.

        ``trusted=k`` (with ``defer_proofs`` only: a relay node replaying over the
        transcript it pinned, SPEC.md §8.2): events 0..k-1 are the ones this party
        checked in full before and pinned — the caller has checked that event k-1's hash
        is its pin — so a closed seat's signature on them is not recovered again; every
        rule is still applied to them, the hash chain is checked throughout, and every
        event from k on is checked in full.

        ``task_keys`` (a round whose client keys were imported from the task that
        opened it, SPEC.md §7.8): task address -> client party -> (identity, key), the
        task's verified registrations (``EvmTask.verified_keys``); a ``KeysImported``
        event is checked against them, and refused without them."""
        if trusted and not defer_proofs:
            raise ProtocolError("transcript: trusted events are a relay node's own pin only")
        if not proofs and expected_head is None:
            raise ProtocolError(
                "transcript: skipping the proof checks needs the expected head from the "
                "chain that checked them"
            )
        events = transcript.events
        if not events:
            raise ProtocolError("transcript: empty")
        for pos, ev in enumerate(events):
            if ev.seq != pos:
                raise ProtocolError(f"transcript: event {pos} carries sequence number {ev.seq}")
            want = ZERO_HASH if pos == 0 else event_hash(events[pos - 1])
            if ev.prev != want:
                raise ProtocolError(f"transcript: event {pos} does not chain to event {pos - 1}")
            if pos and ev.height < events[pos - 1].height:
                raise ProtocolError(f"transcript: event {pos} goes back in time")
        if expected_head is not None and event_hash(events[-1]) != expected_head:
            raise ProtocolError("transcript: head does not match the expected head")
        board = cls._from_first_event(events[0], "transcript", trusted)
        board.task_keys = task_keys
        board._check_proofs = proofs and not defer_proofs
        board._lazy_dealings = not proofs and not board.config.optimistic
        if defer_proofs:
            board._unchecked = _Unchecked()
        board._deferred = []
        board._deferred_posts = []
        for ev in events[1:]:
            board.advance(ev.height - board._height)
            board._replay_event(ev)
        if board._check_proofs and board._deferred:
            board._check_deferred()
        if board._check_proofs and board._deferred_posts:
            board._check_deferred_posts()
        board._deferred = None
        board._deferred_posts = None
        board._trusted = 0
        board._lazy_dealings = False  # what is submitted from now on is decoded at once
        return board

    @classmethod
    def _from_first_event(cls, first: Event, where: str, trusted: int = 0) -> MemoryBoard:
        """A board from event 0 (the signed round config), checked (its signature not
        recovered again when ``trusted``: see ``replay``)."""
        if first.seq != 0 or first.prev != ZERO_HASH:
            raise ProtocolError(f"{where}: event 0 must be the round config")
        if first.role != ROLE_AGGREGATOR or first.sender != 0 or first.height != 0:
            raise ProtocolError(f"{where}: event 0 must be the round config")
        try:
            config = codec.decode(first.body, RoundConfig)
        except InvalidEncoding as exc:
            raise ProtocolError(f"{where}: event 0 is not a round config: {exc}") from None
        if first.digest != post_digest(config) or first.view != ZERO_HASH:
            raise ProtocolError(f"{where}: event 0's digest or view is wrong")
        try:
            return cls(config, first.sig, _trusted=trusted)
        except RuleViolation as exc:
            raise ProtocolError(f"{where}: event 0: {exc}") from None

    def _replay_event(self, ev: Event) -> None:
        post = SignedPost(ev.role, ev.sender, ev.body, ev.view, ev.sig)
        try:
            _, digest, apply = self._check_post(post)
        except RuleViolation as exc:
            self.faults.append(exc.fault)
            raise
        if digest != ev.digest:
            raise RuleViolation(
                Fault(ev.role, ev.sender, "encoding", "event digest is not its body's")
            )
        apply()
        self._append(post, digest)
        if self._events[-1] != ev:  # pragma: no cover - the chain check above
            raise ProtocolError(f"transcript: event {ev.seq} does not rebuild")

    def _check_deferred(self) -> None:
        assert self._deferred is not None
        claims = [claim for _, claim in self._deferred]
        if is_valid_dealing_batch_split(claims, BATCH_PARTS):
            return
        for key, claim in self._deferred:  # name the first bad dealing's dealer
            try:
                verify_dealing(
                    claim.dealing, claim.committee_pks, claim.context, claim.recipient_pk
                )
            except InvalidProof as exc:
                fault = Fault(ROLE_CLIENT, key[0], "dealing-proof", f"{key}: {exc}")
                self.faults.append(fault)
                raise RuleViolation(fault) from None
        raise ProtocolError("transcript: batch and per-dealing checks disagree")  # pragma: no cover

    def _check_deferred_posts(self) -> None:
        """Every share post a replay accepted, in one batch; on failure the member of
        the first failing post is named (``share-proof``)."""
        assert self._deferred_posts is not None
        bad = invalid_share_posts([claim for _, claim in self._deferred_posts])
        if bad:
            pos, why = bad[0]
            fault = Fault(ROLE_MEMBER, self._deferred_posts[pos][0], "share-proof", why)
            self.faults.append(fault)
            raise RuleViolation(fault)

    @property
    def _can_preverify(self) -> bool:
        """A board that checks each post's proofs itself, as it accepts it (not a relay
        replica, a chain-verification replay, or a replay collecting its batch)."""
        return self._unchecked is None and self._check_proofs and self._deferred is None

    def _dry_run(self, posts: Sequence[SignedPost]) -> list[tuple[Any, bytes]]:
        """(message, digest) of each post the rules would accept now, nothing applied;
        a post a rule refuses is left out (its own ``submit`` reports it). The caller's
        collector (``_collect`` / ``_collect_posts``) gathers the proof claims."""
        self._decoded.clear()  # what an earlier dry run decoded and nobody submitted
        self._decoded_dealings.clear()
        out = []
        for post in posts:
            try:
                msg, digest, _ = self._check_post(post)
            except RuleViolation:
                continue
            out.append((msg, digest))
        return out

    def preverify_dealings(self, posts: Sequence[SignedPost]) -> int:
        """Check the proofs of many ``DealingsPost`` s (one deal stage's replies) in ONE
        batch before they are submitted one by one; returns how many passed. Nothing
        changes on the board: each post is dry-run through every rule (a post that
        breaks one is left out, its own ``submit`` reports it) and, if the whole batch
        verifies, its ``submit`` skips the proof check it would repeat. If the batch
        fails, nothing is marked and every ``submit`` checks its own post (naming the
        bad dealer) — so the result is exactly that of submitting them one by one."""
        if not self._can_preverify:
            return 0
        self._collect = []
        try:
            digests = [d for msg, d in self._dry_run(posts) if isinstance(msg, DealingsPost)]
            claims = self._collect
        finally:
            self._collect = None
        # one check per core (SPEC.md §4.4): a deal stage's batch is the server's
        # largest single piece of work, and the nodes wait for it
        if not claims or not is_valid_dealing_batch_split(claims, BATCH_PARTS):
            return 0
        self._preverified.update(digests)
        return len(digests)

    def preverify_share_posts(self, posts: Sequence[SignedPost]) -> int:
        """``preverify_dealings`` for one unmask stage's ``SharesPost`` s: each dry-run
        through every rule, their proofs checked in one batch (``invalid_share_posts``),
        and each post that verified marked so that its ``submit`` skips the proof check
        it would repeat; a post that failed is not marked, so its own ``submit`` checks
        it and names its member. Returns how many passed; nothing else changes."""
        if not self._can_preverify:
            return 0
        self._collect_posts = []
        try:
            self._dry_run(posts)
            collected = self._collect_posts
        finally:
            self._collect_posts = None
        if not collected:
            return 0
        bad = {pos for pos, _ in invalid_share_posts([claim for _, claim in collected])}
        good = [digest for pos, (digest, _) in enumerate(collected) if pos not in bad]
        self._preverified_posts.update(good)
        return len(good)

    def verify_proofs(
        self,
        *,
        pops: Sequence[tuple[int, int]] = (),
        reveals: Sequence[int] = (),
        dealings: Sequence[DealingKey] = (),
    ) -> int:
        """Check the proofs a ``replay(defer_proofs=True)`` accepted unchecked: the
        proofs of possession of ``pops`` ((role, party) seats), the seed reveals of
        ``reveals`` (member seats) and the dealings ``dealings`` (one batch). A seat or
        dealing the board does not hold is skipped. Raises ``RuleViolation`` naming the
        first party whose proof fails (as the board would have); returns how many proofs
        were checked."""
        if self._unchecked is None:
            raise ProtocolError("board: verify_proofs needs a replay(defer_proofs=True)")
        cfg, st, u = self.config, self._state, self._unchecked
        done = 0
        for role, party in pops:
            if (role, party) not in u.pops:
                continue
            pk, pop = u.pops[(role, party)]
            try:
                verify_possession(
                    pk, pop, cfg.chain_id, cfg.board, cfg.round_id, pop_party(role, party)
                )
            except InvalidProof as exc:
                raise self._fail(role, party, "proof-of-possession", str(exc)) from None
            done += 1
        claims = [
            SeedRevealClaim(st.members[k], *u.reveals[k], cfg.chain_id, cfg.board, cfg.round_id, k)
            for k in reveals
            if k in u.reveals
        ]
        bad = invalid_seed_reveals(claims)  # one batch; one by one only to name the first
        if bad:
            pos, why = bad[0]
            raise self._fail(ROLE_MEMBER, claims[pos].member, "seed", why)
        done += len(claims)
        keys = [k for k in dealings if k in u.dealings and k in st.dealings]
        for key in keys:
            lazy = u.dealings[key].dealing
            try:
                if isinstance(lazy, _ElidedDealing):
                    lazy.decoded()  # raises: withheld
                if isinstance(lazy, _LazyDealing):
                    lazy.decoded()
            except InvalidEncoding as exc:
                raise self._fail(ROLE_CLIENT, key[0], "dealing-encoding", f"{key}: {exc}") from None
        if keys:
            claims = [u.dealings[k] for k in keys]
            if not is_valid_dealing_batch_split(claims, BATCH_PARTS):
                for key, claim in zip(keys, claims, strict=True):
                    try:
                        verify_dealing(
                            claim.dealing, claim.committee_pks, claim.context, claim.recipient_pk
                        )
                    except InvalidProof as exc:
                        raise self._fail(
                            ROLE_CLIENT, key[0], "dealing-proof", f"{key}: {exc}"
                        ) from None
                raise ProtocolError(
                    "board: batch and per-dealing checks disagree"
                )  # pragma: no cover
            done += len(keys)
        return done

    # -- internals ---------------------------------------------------------------
    def _append(self, post: SignedPost, digest: bytes) -> Event:
        ev = self._next_event(post, digest)
        self._events.append(ev)
        return ev

    def _next_event(self, post: SignedPost, digest: bytes) -> Event:
        prev = self.head if self._events else ZERO_HASH
        return Event(
            len(self._events),
            self._height,
            post.role,
            post.sender,
            post.body,
            digest,
            post.view,
            post.sig,
            prev,
        )

    def _on_height(self) -> None:
        st = self._state
        phase = self.phase()
        for p in Phase:  # every phase that began records the head it began with
            if p <= phase and p not in st.phase_heads:
                st.phase_heads[p] = self.head
        if phase >= Phase.UNMASK and st.included is None and st.graph is not None:
            st.included = compute_included(st)
            st.aborted = not st.included
        elif phase >= Phase.UNMASK and st.included is None:  # the graph never formed
            st.included, st.aborted = (), True

    def _fail(self, role: int, sender: int, rule: str, detail: str) -> RuleViolation:
        return RuleViolation(Fault(role, sender, rule, detail))

    def _need_phase(self, role: int, sender: int, want: Phase) -> None:
        now = self.phase()
        if now != want:
            raise self._fail(role, sender, "stage", f"{want.name} message in phase {now.name}")

    def _check_signature(self, post: SignedPost, digest: bytes, identity: bytes | None) -> bytes:
        """The signer's address, for the post whose post digest is ``digest``;
        ``identity`` is the one the seat requires (None: a free seat under open
        membership, any identity)."""
        if identity is not None and len(self._events) < self._trusted:
            return identity  # this party checked it before pinning it (replay(trusted=))
        digest = signing_digest(self.config, post.role, post.sender, post.view, digest)
        try:
            signer = recover(digest, post.sig, f"{party_name(post.role, post.sender)}: signature")
        except InvalidSignature as exc:
            raise self._fail(post.role, post.sender, "signature", str(exc)) from None
        if identity is not None and signer != identity:
            raise self._fail(
                post.role,
                post.sender,
                "signature",
                f"signed by 0x{signer.hex()}, the seat belongs to 0x{identity.hex()}",
            )
        return signer

    def _check_post(self, post: SignedPost):  # noqa: ANN202 - (msg, digest, thunk)
        role, sender = post.role, post.sender
        msg: Any = self._decoded.pop(post.body, None)
        if msg is None:
            try:
                msg = codec.decode(post.body)
            except InvalidEncoding as exc:
                raise self._fail(role, sender, "encoding", str(exc)) from None
            if self._collect is not None or self._collect_posts is not None:
                self._decoded[post.body] = msg  # a dry run: for the submit that follows
        if isinstance(msg, RoundConfig):
            raise self._fail(role, sender, "message", "the config is event 0 only")
        if isinstance(msg, ElidedDealingsPost) and self._unchecked is None:
            raise self._fail(role, sender, "message", "an elided post exists in a relay only")
        digest = post_digest(msg)
        self._current_digest = digest
        if isinstance(msg, Exclusion):
            return msg, digest, self._check_exclusion(post, msg)
        st = self._state
        if role not in (ROLE_CLIENT, ROLE_MEMBER, ROLE_AGGREGATOR):
            raise self._fail(role, sender, "sender", f"unknown role {role}")
        limit = {ROLE_CLIENT: self.config.n_clients, ROLE_MEMBER: self.config.committee_size}
        if role != ROLE_AGGREGATOR and not 1 <= sender <= limit[role]:
            raise self._fail(role, sender, "sender", f"id outside 1..{limit[role]}")
        if role == ROLE_AGGREGATOR and sender != 0:
            raise self._fail(role, sender, "sender", "the aggregator is sender 0")
        identity = seat_identity(self.config, st, role, sender)
        if identity is None and not isinstance(msg, Registration):
            raise self._fail(role, sender, "signature", "the seat has no identity (not registered)")
        signer = self._check_signature(post, digest, identity)
        phase = self.phase()
        if post.view != st.phase_heads.get(phase):
            raise self._fail(
                role,
                sender,
                "view",
                f"signed on view {post.view.hex()[:16]}…, the board's {phase.name} phase "
                f"began at {st.phase_heads.get(phase, ZERO_HASH).hex()[:16]}…",
            )
        if isinstance(msg, Registration):
            return msg, digest, self._check_registration(role, sender, msg, signer)
        if isinstance(msg, KeysImported):
            return msg, digest, self._check_import(role, sender, msg)
        if isinstance(msg, SeedReveal):
            return msg, digest, self._check_reveal(role, sender, msg)
        if isinstance(msg, DealingsPost):
            return msg, digest, self._check_dealings(role, sender, msg)
        if isinstance(msg, ElidedDealingsPost):
            return msg, digest, self._check_dealings(role, sender, msg)
        if isinstance(msg, MaskedInputPost):
            return msg, digest, self._check_masked(role, sender, msg)
        if isinstance(msg, Confirmation):
            return msg, digest, self._check_confirmation(role, sender, msg)
        if isinstance(msg, SharesPost):
            return msg, digest, self._check_shares(role, sender, msg)
        if isinstance(msg, ResultPost):
            return msg, digest, self._check_result(role, sender, msg)
        raise self._fail(role, sender, "message", f"{type(msg).__name__} cannot be posted")

    def _check_registration(self, role: int, sender: int, msg: Registration, signer: bytes):  # noqa: ANN202
        cfg, st = self.config, self._state
        self._need_phase(role, sender, Phase.REGISTER)
        if msg.role != role or msg.party != sender:
            raise self._fail(role, sender, "sender", "registration for another party")
        if role not in (ROLE_CLIENT, ROLE_MEMBER):
            raise self._fail(role, sender, "registration", "only clients and members register")
        table = st.clients if role == ROLE_CLIENT else st.members
        if sender in table:
            raise self._fail(role, sender, "registration", "already registered")
        if role == ROLE_CLIENT and signer in st.client_ids.values():
            raise self._fail(
                role, sender, "registration", f"identity 0x{signer.hex()} already holds a seat"
            )
        try:
            pk = G1Point.from_bytes(msg.pk, field="registration.pk")
            pop = ProofOfPossession.from_bytes(msg.pop)
            if self._check_proofs:
                verify_possession(
                    pk, pop, cfg.chain_id, cfg.board, cfg.round_id, pop_party(role, sender)
                )
            elif self._unchecked is not None:
                self._unchecked.pops[(role, sender)] = (pk, pop)
        except (InvalidEncoding, InvalidProof) as exc:
            raise self._fail(role, sender, "proof-of-possession", str(exc)) from None

        def apply() -> None:
            table[sender] = pk
            if role == ROLE_CLIENT:
                st.client_ids[sender] = signer

        return apply

    def _check_import(self, role: int, sender: int, msg: KeysImported):  # noqa: ANN202
        """SPEC.md §7.8 "Imported keys": the contract's importKeys rules, in its order."""
        cfg, st = self.config, self._state
        if role != ROLE_AGGREGATOR:
            raise self._fail(role, sender, "import", "only the aggregator imports keys")
        self._need_phase(role, sender, Phase.REGISTER)
        if not cfg.clients:
            raise self._fail(role, sender, "import", "open membership: no seat to import for")
        if cfg.optimistic:
            raise self._fail(
                role, sender, "import", "optimistic mode: a client stakes at its own registration"
            )
        task = f"task 0x{msg.task.hex()}"
        known = None if self.task_keys is None else self.task_keys.get(msg.task)
        if known is None:
            raise self._fail(
                role,
                sender,
                "import",
                f"keys imported from {task}: this board holds no verified keys of that task "
                "(the task that opened the round; replay with task_keys=)",
            )
        for p in msg.parties:
            if p > cfg.n_clients:
                raise self._fail(role, sender, "import", f"client {p} outside 1..{cfg.n_clients}")
            if p in st.clients:
                raise self._fail(role, sender, "import", f"client {p} already registered")
        keys: list[G1Point] = []
        for p, raw in zip(msg.parties, msg.keys, strict=True):
            entry = known.get(p)
            if entry is None or entry[0] != cfg.clients[p - 1]:
                raise self._fail(
                    role,
                    sender,
                    "import",
                    f"client {p}: {task} has no key registered by this round's seat identity",
                )
            if entry[1].to_bytes() != raw:
                raise self._fail(
                    role, sender, "import", f"client {p}: not the key it registered on {task}"
                )
            keys.append(entry[1])

        def apply() -> None:
            for p, pk in zip(msg.parties, keys, strict=True):
                st.clients[p] = pk
                st.client_ids[p] = cfg.clients[p - 1]

        return apply

    def _check_reveal(self, role: int, sender: int, msg: SeedReveal):  # noqa: ANN202
        cfg, st = self.config, self._state
        self._need_phase(role, sender, Phase.DEAL)
        if role != ROLE_MEMBER or msg.member != sender or sender not in st.members:
            raise self._fail(role, sender, "seed", "seed reveal from a non-member or for another")
        if sender in st.reveals:
            raise self._fail(role, sender, "seed", "seed already revealed")
        if len(st.members) != cfg.committee_size:
            raise self._fail(role, sender, "seed", "committee incomplete: round cannot proceed")
        try:
            gamma = G1Point.from_bytes(msg.gamma, field="seed_reveal.gamma")
            proof = DleqProof.from_bytes(msg.proof, field="seed_reveal.proof")
            if self._check_proofs:
                verify_seed_reveal(
                    st.members[sender], gamma, proof, cfg.chain_id, cfg.board, cfg.round_id, sender
                )
            elif self._unchecked is not None:
                self._unchecked.reveals[sender] = (gamma, proof)
        except (InvalidEncoding, InvalidProof) as exc:
            raise self._fail(role, sender, "seed", str(exc)) from None

        def apply() -> None:
            st.reveals[sender] = gamma
            if len(st.reveals) == cfg.committee_size:
                assert st.registration_head is not None
                gammas = [st.reveals[k] for k in range(1, cfg.committee_size + 1)]
                st.round_seed = compute_round_seed(st.registration_head, gammas)
                st.graph = compute_mask_graph(cfg, st.round_seed)

        return apply

    def _check_dealings(self, role: int, sender: int, msg: DealingsPost | ElidedDealingsPost):  # noqa: ANN202
        cfg, st = self.config, self._state
        self._need_phase(role, sender, Phase.DEAL)
        if role != ROLE_CLIENT or msg.dealer != sender:
            raise self._fail(role, sender, "sender", "dealings for another client")
        if sender not in st.clients:
            raise self._fail(role, sender, "dealings", "dealer is not registered")
        if sender in st.dealers:
            raise self._fail(role, sender, "dealings", "already posted its dealings")
        if st.graph is None:
            raise self._fail(
                role,
                sender,
                "dealings",
                f"the graph is not fixed yet: {len(st.reveals)} of {cfg.committee_size} "
                "seed reveals",
            )
        want = {self_key(sender)} | {
            pair_key(sender, j) for j in st.graph[sender] if j > sender and j in st.clients
        }
        got = [(sender, it.purpose, it.partner) for it in msg.items]
        if len(set(got)) != len(got) or set(got) != want:
            raise self._fail(
                role,
                sender,
                "dealings",
                "expected exactly self + pair dealings for "
                f"{sorted(k[2] for k in want if k[1] == PURPOSE_PAIR)}",
            )
        pks = tuple(self.member_keys())
        claims = []
        malformed: list[tuple[DealingKey, str]] = []
        for it, key in zip(msg.items, got, strict=True):
            try:  # a relay replica decodes a dealing's points only when it uses it
                if isinstance(it, RelayDealingItem) and not it.dealing:
                    dealing: Any = _ElidedDealing(key)  # the relay sent its hash only
                elif self._unchecked is not None or self._lazy_dealings:
                    dealing = _LazyDealing(it.dealing)
                else:
                    dealing = self._decoded_dealings.pop(it.dealing, None)
                    if dealing is None:
                        dealing = Dealing.from_bytes(it.dealing)
                        if self._collect is not None:  # a dry run: for its submit
                            self._decoded_dealings[it.dealing] = dealing
            except InvalidEncoding as exc:
                if cfg.optimistic and self._deferred is not None:
                    malformed.append((key, str(exc)))  # accepted on a header check
                    continue
                raise self._fail(role, sender, "dealing-encoding", f"{key}: {exc}") from None
            if not isinstance(dealing, _ElidedDealing) and dealing.threshold != cfg.threshold:
                raise self._fail(
                    role,
                    sender,
                    "dealing",
                    f"{key}: threshold {dealing.threshold} != {cfg.threshold}",
                )
            rpk = st.clients[key[2]] if key[1] == PURPOSE_PAIR else None
            claims.append(DealingClaim(dealing, pks, dealing_context(cfg, key), rpk))
        if malformed:  # the dealer is skipped: none of its dealings enters the state

            def skip() -> None:
                self.malformed[sender] = {key for key, _ in malformed}
                for key, detail in malformed:
                    self.faults.append(Fault(role, sender, "dealing-encoding", f"{key}: {detail}"))

            return skip
        if self._unchecked is not None:  # a relay replica: the caller checks what it needs
            self._unchecked.dealings.update(zip(got, claims, strict=True))
        elif self._collect is not None:  # preverify_dealings' dry run
            self._collect.extend(claims)
        elif self._current_digest in self._preverified:
            self._preverified.discard(self._current_digest)  # one batch checked it
        elif not self._check_proofs:
            pass  # a full-mode contract verified them on-chain (chain verification)
        elif self._deferred is not None:  # replay: one batch at the end
            self._deferred.extend(zip(got, claims, strict=True))
        elif not is_valid_dealing_batch(claims):
            for claim, key in zip(claims, got, strict=True):
                try:
                    verify_dealing(
                        claim.dealing, claim.committee_pks, claim.context, claim.recipient_pk
                    )
                except InvalidProof as exc:
                    raise self._fail(role, sender, "dealing-proof", f"{key}: {exc}") from None
            raise self._fail(
                role, sender, "dealing-proof", "batch check failed"
            )  # pragma: no cover

        def apply() -> None:
            st.dealers.add(sender)
            for claim, key in zip(claims, got, strict=True):
                st.dealings[key] = claim.dealing

        return apply

    def _check_exclusion(self, post: SignedPost, msg: Exclusion):  # noqa: ANN202
        """An optimistic chain's exclusion of a dealer whose dealing a challenge proved
        invalid: accepted only if that dealing really does not verify."""
        cfg, st = self.config, self._state
        role, sender = post.role, post.sender
        if not cfg.optimistic or role != ROLE_AGGREGATOR or sender != 0:
            raise self._fail(role, sender, "message", "exclusions exist in optimistic rounds only")
        if post.sig != NO_SIGNATURE or post.view != st.phase_heads.get(self.phase()):
            raise self._fail(
                role, sender, "view", "an exclusion carries the phase view, no signature"
            )
        self._need_phase(role, sender, Phase.DEAL)
        key = (msg.dealer, msg.purpose, msg.partner)
        dealing = st.dealings.get(key)
        undecodable = key in self.malformed.get(msg.dealer, ()) and msg.dealer not in self.excluded
        if dealing is None and not undecodable:
            raise self._fail(role, sender, "exclusion", f"{key}: no such accepted dealing")
        rpk = st.clients[key[2]] if key[1] == PURPOSE_PAIR else None
        if (self._check_proofs or self._unchecked is not None) and dealing is not None:
            try:
                verify_dealing(dealing, tuple(self.member_keys()), dealing_context(cfg, key), rpk)
            except InvalidProof:
                pass
            else:
                raise self._fail(role, sender, "exclusion", f"{key}: the dealing is valid")

        def apply() -> None:
            st.dealers.discard(msg.dealer)
            self.excluded.add(msg.dealer)
            for k in [k for k in st.dealings if k[0] == msg.dealer]:
                del st.dealings[k]
            if self._deferred is not None:
                self._deferred[:] = [(k, c) for k, c in self._deferred if k[0] != msg.dealer]

        return apply

    def _check_masked(self, role: int, sender: int, msg: MaskedInputPost):  # noqa: ANN202
        cfg, st = self.config, self._state
        self._need_phase(role, sender, Phase.UPLOAD)
        if role != ROLE_CLIENT or msg.client != sender:
            raise self._fail(role, sender, "sender", "masked input for another client")
        if sender not in st.dealers:
            raise self._fail(role, sender, "upload", "client has no accepted dealings")
        if sender in st.masked:
            raise self._fail(
                role, sender, "upload", "masked input already posted (clients upload once)"
            )
        size = packed_size(cfg.vector_length, cfg.bits)
        if msg.size != size:
            raise self._fail(role, sender, "upload", f"size {msg.size} != {size} bytes")

        def apply() -> None:
            st.masked[sender] = (msg.digest, msg.size)

        return apply

    def _check_confirmation(self, role: int, sender: int, msg: Confirmation):  # noqa: ANN202
        st = self._state
        self._need_phase(role, sender, Phase.UNMASK)
        if role != ROLE_MEMBER or msg.member != sender or sender not in st.members:
            raise self._fail(role, sender, "confirm", "confirmation from a non-member")
        if sender in st.confirmations:
            raise self._fail(role, sender, "confirm", "already confirmed")
        if st.aborted:
            raise self._fail(role, sender, "aborted", "the round aborted (|U| < min_included)")
        if msg.head != st.phase_heads[Phase.UNMASK]:
            raise self._fail(role, sender, "confirm", "confirms another head than the U-fixing one")

        def apply() -> None:
            st.confirmations[sender] = msg.head

        return apply

    def _check_shares(self, role: int, sender: int, msg: SharesPost):  # noqa: ANN202
        cfg, st = self.config, self._state
        self._need_phase(role, sender, Phase.UNMASK)
        if role != ROLE_MEMBER or msg.member != sender or sender not in st.members:
            raise self._fail(
                role, sender, "sender", "shares from a non-member or for another member"
            )
        if st.aborted:
            raise self._fail(role, sender, "aborted", "the round aborted (|U| < min_included)")
        if len(st.confirmations) < cfg.confirm_quorum:
            raise self._fail(
                role,
                sender,
                "confirm",
                f"{len(st.confirmations)} confirmations < quorum {cfg.confirm_quorum}",
            )
        allowed = set(allowed_share_keys(st))
        keys = msg.keys
        seen: set[DealingKey] = set()
        for key in keys:
            if key not in allowed:
                raise self._fail(
                    role, sender, "share-not-allowed", f"{key} is not revealed by the included set"
                )
            if key in seen or sender in st.shares.get(key, {}):
                raise self._fail(role, sender, "share", f"{key}: share already posted")
            seen.add(key)
        try:  # after the references, as the contract decodes in its verifier call
            share_post = msg.share_post()
        except InvalidEncoding as exc:
            raise self._fail(role, sender, "share-encoding", str(exc)) from None
        if self._check_proofs:  # the whole post is one claim (SPEC.md §4.5)
            try:
                claim = share_post_claim(
                    share_post,
                    st.members[sender],
                    [(st.dealings[k], dealing_context(cfg, k)) for k in keys],
                )
            except InvalidProof as exc:
                raise self._fail(role, sender, "share-proof", str(exc)) from None
            if self._deferred_posts is not None:  # a replay: one batch at the end
                self._deferred_posts.append((sender, claim))
            elif self._collect_posts is not None:  # preverify_share_posts' dry run
                self._collect_posts.append((self._current_digest, claim))
            elif self._current_digest in self._preverified_posts:
                self._preverified_posts.discard(self._current_digest)  # batch-checked
            else:
                bad = invalid_share_posts([claim])
                if bad:
                    raise self._fail(role, sender, "share-proof", bad[0][1])

        def apply() -> None:
            for key, pt in zip(keys, share_post.shares, strict=True):
                st.shares.setdefault(key, {})[sender] = pt
            st.share_posts.append(PostedShares(keys, share_post))

        return apply

    def _check_result(self, role: int, sender: int, msg: ResultPost):  # noqa: ANN202
        cfg, st = self.config, self._state
        self._need_phase(role, sender, Phase.RESULT)
        if role != ROLE_AGGREGATOR:
            raise self._fail(role, sender, "sender", "only the aggregator posts the result")
        if st.result is not None:
            raise self._fail(role, sender, "result", "result already posted")
        if st.aborted:
            raise self._fail(role, sender, "aborted", "the round aborted (|U| < min_included)")
        if msg.included != st.included:
            raise self._fail(
                role,
                sender,
                "result",
                f"included set {list(msg.included)} != board's {list(st.included or ())}",
            )
        for key in allowed_share_keys(st):
            have = len(st.shares.get(key, {}))
            if have < cfg.threshold + 1:
                raise self._fail(
                    role, sender, "result", f"{key}: {have} shares < t+1 = {cfg.threshold + 1}"
                )

        def apply() -> None:
            st.result = msg

        return apply

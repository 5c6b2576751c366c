"""The server side of a relayed round: hosts the board, relays, aggregates, verifies.

:class:`RoundHost` owns one round's board (``memory`` or an EVM board, through
:func:`make_board`) and blob store under ``round_dir``, with the server's own identity
(it signs the config and the result; it holds no other key). It hands out
:class:`~fl.relay.StageRequest` s, submits the nodes' signed posts after checking each
is for a seat the replying node holds (the board checks the signature against the
seat's roster identity), moves the board height from phase to phase, and at the end
aggregates as the ``Aggregator`` role, writes the transcript and re-verifies the whole
round with ``secagg.verifier.verify_round`` before anyone may use the result.

:func:`drive_round` runs the stages over any transport: the Flower workflow sends the
requests as Flower messages, the demo calls :class:`~fl.relay.NodeAgent` s directly;
the protocol code is the same.

Durability (SPEC.md §6.14). With the memory board the host journals the board under
``round_dir`` (``journal.bin``: every accepted event and height change, fsync'ed before
it is acknowledged), stores each masked blob durably before its post is journaled, and
writes the seat table (``roles.json``). :meth:`RoundHost.resume` rebuilds the host of a
round whose server was killed from that directory; :func:`drive_round` then continues
from the board's phase, asking only the seats whose post the board does not hold yet.

Failures, by kind:

- a node that does not answer a stage (timeout, crash, an error reply) is a
  **dropout** for the rest of the round — the protocol tolerates it;
- a reply the board refuses (bad encoding, wrong message, a rule or proof that fails)
  is a **fault**, attributed to the node and party, and the node is also dropped;
- a round that cannot finish (the committee incomplete, fewer than t+1 shares for a
  revealed dealing, nobody included) raises :class:`RoundFailed`;
- a result that does not verify raises :class:`RoundVerificationError` naming the
  faulty party; the result is never returned.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fl.relay import (
    STAGE_CONFIRM,
    STAGE_DEAL,
    STAGE_PHASE,
    STAGE_REGISTER,
    STAGE_SEED,
    STAGE_UNMASK,
    STAGE_UPLOAD,
    STAGES,
    StageReply,
    StageRequest,
    imports_client_keys,
)
from pvss.transcript import PURPOSE_PAIR, keccak256
from secagg import codec
from secagg.aggregate import dp_rotation_seed
from secagg.blobs import BlobStore, StagedBlob, durable_write
from secagg.boards import JOURNAL_FILE, Board, Fault, MemoryBoard, Phase, RuleViolation, event_hash
from secagg.config import RoundConfig, dp_record_bytes, dp_record_decode
from secagg.errors import ConfigError, InvalidEncoding, ProtocolError
from secagg.graph import DealingKey
from secagg.identity import Identity
from secagg.messages import (
    ROLE_CLIENT,
    ROLE_MEMBER,
    Confirmation,
    DealingsPost,
    ElidedDealingsPost,
    Event,
    MaskedInputPost,
    Registration,
    SeedReveal,
    SharesPost,
    SignedPost,
    TranscriptFile,
)
from secagg.packing import check_encoding, packed_size
from secagg.quantize import MaskingConfig
from secagg.roles import Aggregator, Stage
from secagg.unixfs import blob_id
from secagg.verifier import BLOB_DIR, Finding, save_round, verify_round

if TYPE_CHECKING:
    from secagg.boards.task import EvmTask

__all__ = [
    "BOARD_KINDS",
    "NodeRoles",
    "RoundFailed",
    "RoundVerificationError",
    "RoundOutcome",
    "RoundHost",
    "make_board",
    "make_round_config",
    "drive_round",
]

_stdlog = logging.getLogger(__name__)


def log(level: int, msg: str, *args: object) -> None:
    """Log through Flower's logger (``flwr.common.logger.log``, the ``flwr`` logger)
    when Flower is loaded, as in any Flower run; else through the stdlib logger
    ``fl.host`` (this module imports without flwr, and importing it is slow)."""
    flwr_logger = sys.modules.get("flwr.common.logger")
    if flwr_logger is not None:
        flwr_logger.log(level, msg, *args)
    else:
        _stdlog.log(level, msg, *args)


BOARD_KINDS = ("memory", "evm", "anvil", "rpc:URL")
DEFAULT_CHAIN_ID = 31337
# how many bytes of accepted uploads a server keeps in memory for its aggregation and
# self-check (RoundHost ``hold_blob_bytes``; past it, blobs are re-read from disk)
HOLD_BLOB_BYTES = 2 << 30
# threads hashing and writing an upload stage's blobs (RoundHost.precheck); they mostly
# wait on the disk, so more than the cores (4 vs 2: 0.29 vs 0.32 s for 90 blobs of 4 MB)
UPLOAD_WORKERS = 4


class RoundFailed(ProtocolError):
    """The round could not produce a result (too many dropouts for the protocol)."""


class RoundVerificationError(ProtocolError):
    """The round's result did not pass public verification; ``findings`` name the
    faulty parties. The result must not be used."""

    def __init__(self, round_id: int, findings: Sequence[Finding], round_dir: Path) -> None:
        names = "; ".join(str(f) for f in findings) or "no finding recorded"
        super().__init__(f"round {round_id} NOT verified ({round_dir}): {names}")
        self.findings = list(findings)
        self.round_dir = round_dir


def make_board(
    kind: str,
    config: RoundConfig,
    aggregator: Identity,
    *,
    journal: Path | None = None,
    fsync: bool = True,
    own_account: bool = False,
) -> Board:
    """A fresh board of ``kind`` for one round, its config signed by ``aggregator``:
    ``memory`` (in process; durable with ``journal``, SPEC.md §6.14), or an EVM board
    (``evm`` embedded py-evm, ``anvil``, ``rpc:URL``) through ``secagg.simulate``'s
    factory. An EVM board carries its own chain id, contract address and phase lengths
    in its ``config``; use that one, not the one passed in. ``own_account``: the EVM
    board sends from the aggregator identity's own account (chain-native rounds)
    instead of a relayer account."""
    if kind == "memory":
        return MemoryBoard.create(config, aggregator, journal=journal, fsync=fsync)
    if kind in ("evm", "anvil") or kind.startswith("rpc:"):
        from secagg.simulate import make_board as make_secagg_board  # noqa: PLC0415

        return make_secagg_board(kind, config, aggregator, own_account=own_account)
    raise ConfigError(f"board: {kind!r} is not available (choose from {', '.join(BOARD_KINDS)})")


def make_round_config(
    *,
    round_id: int,
    n_clients: int,
    committee_size: int,
    threshold: int,
    dim: int,
    clip: float,
    quant_bits: int,
    max_weight: int,
    bits: int | None = None,
    graph: str = "complete",
    board_address: bytes = bytes(20),
    chain_id: int = DEFAULT_CHAIN_ID,
    aggregator: bytes,
    members: Sequence[bytes],
    clients: Sequence[bytes] = (),
    min_included: int = 0,
    min_neighbours: int = 0,
    honest_majority: bool = True,
) -> RoundConfig:
    """A ``RoundConfig`` with one block per phase; ``bits=None`` takes the smallest
    modulus that cannot overflow for these n, W and q (``ConfigError`` if over 64).
    ``aggregator``, ``members``, ``clients``: the seats' identities (SPEC.md §6.9)."""
    if bits is None:
        bits = MaskingConfig.minimal(quant_bits, float(clip), max_weight, n_clients).bits
    return RoundConfig(
        chain_id=chain_id,
        board=board_address,
        round_id=round_id,
        n_clients=n_clients,
        committee_size=committee_size,
        threshold=threshold,
        graph=graph,
        dim=dim,
        quant_bits=quant_bits,
        bits=bits,
        clip=float(clip),
        max_weight=max_weight,
        register_blocks=1,
        deal_blocks=1,
        upload_blocks=1,
        unmask_blocks=1,
        aggregator=aggregator,
        members=tuple(members),
        clients=tuple(clients),
        min_included=min_included,
        min_neighbours=min_neighbours,
        honest_majority=honest_majority,
    )


def _check_task(
    task: EvmTask, config: RoundConfig, identity: Identity, board: str, chain_native: bool
) -> None:
    """A round opened under ``task`` (RoundHost ``task=``): chain-native, by the task's
    owner, for the task's own roster (``ConfigError`` naming what differs)."""
    if not chain_native or board == "memory":
        raise ConfigError(
            "task: rounds under a task contract are chain-native: pass chain_native=True "
            "and a chain board (rpc:URL)"
        )
    if task.owner_address != identity.address:
        raise ConfigError(
            f"task: {task.address} is owned by 0x{task.owner_address.hex()}, not by this "
            f"server (0x{identity.address.hex()}): only its owner opens its rounds"
        )
    members, clients = task.roster()
    if tuple(config.members) != members:
        raise ConfigError(f"task: {task.address}: config.members are not the task's committee")
    if tuple(config.clients) != clients:
        strangers = [a for a in config.clients if a not in clients]
        raise ConfigError(
            f"task: {task.address}: config.clients are not the task's {len(clients)} client "
            "seats (in seat order)"
            + (
                ": not on its sealed roster: " + ", ".join("0x" + a.hex() for a in strangers)
                if strangers
                else ""
            )
        )


def _open_task_round(task: EvmTask, config: RoundConfig, identity: Identity) -> Board:
    """Round ``task.last_round + 1``, deployed from ``identity``'s own account and opened
    on ``task``; the returned board is that contract attached afresh with ``identity``
    (re-checked from the chain, and reading the account's nonce after the task's
    ``openRound`` transaction, which the deploying board did not send)."""
    from secagg.boards.evm import EvmBoard  # noqa: PLC0415 - needs the evm extra
    from secagg.boards.task import IMPORT_CHUNK  # noqa: PLC0415
    from secagg.simulate import chain_phases  # noqa: PLC0415

    cfg = chain_phases(config)
    if imports_client_keys(cfg):  # the register window also holds, one block each, the
        # clients' one-time task registrations (a task's first rounds) and the imports
        n, m = cfg.n_clients, cfg.committee_size
        imports = -(-n // IMPORT_CHUNK)
        cfg = dataclasses.replace(
            cfg, register_blocks=max(cfg.register_blocks, 2 + 2 * n + m + imports)
        )
    opened = task.open_round(cfg, account=identity)
    board = EvmBoard.attach(task.w3, opened.address, identity, config=opened.config)
    log(
        logging.INFO,
        "round %d: opened under task %s: contract %s",
        board.config.round_id,
        task.address,
        board.address,
    )
    return board


@dataclass
class NodeRoles:
    """The seats a node holds in one round: a client seat and/or a member seat
    (0 = none; a committee node need not be a client)."""

    node: int
    client: int
    member: int = 0


@dataclass
class RoundOutcome:
    """A finished, verified round."""

    round_id: int
    config: RoundConfig
    round_dir: Path
    included: tuple[int, ...]
    included_nodes: tuple[int, ...]
    total: np.ndarray
    mean: np.ndarray
    total_weight: int
    checks: list[tuple[str, bool]]
    faults: list[str] = field(default_factory=list)
    dropped: dict[str, list[int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        """Always true: an unverified round raises instead of returning an outcome."""
        return all(ok for _, ok in self.checks)


_EXPECTED = {
    STAGE_REGISTER: Registration,
    STAGE_SEED: SeedReveal,
    STAGE_DEAL: DealingsPost,
    STAGE_UPLOAD: MaskedInputPost,
    STAGE_CONFIRM: Confirmation,
    STAGE_UNMASK: SharesPost,
}
_MEMBER_STAGES = (STAGE_SEED, STAGE_CONFIRM, STAGE_UNMASK)
ROLES_FILE = "roles.json"
# a chain-native round's resume record (SPEC.md §6.14): the board kind, the round
# contract and its task, written before any stage request is sent
CHAIN_FILE = "chain.json"


def posted(stage: str, board: Board) -> set[int]:
    """The seats (client seats for deal / upload, member seats for seed / confirm /
    unmask) whose post for ``stage`` the board holds: they are never asked again."""
    st = board.state()
    if stage == STAGE_SEED:
        return set(st.reveals)
    if stage == STAGE_DEAL:
        return set(st.dealers)
    if stage == STAGE_UPLOAD:
        return set(st.masked)
    if stage == STAGE_CONFIRM:
        return set(st.confirmations)
    if stage == STAGE_UNMASK:
        return {k for shares in st.shares.values() for k in shares}
    return set()


def _check_aggregator(config: RoundConfig, identity: Identity) -> None:
    """A round is resumed only by the server that opened it (its config's aggregator)."""
    if identity.address != config.aggregator:
        raise ConfigError(
            f"resume: the round was opened by aggregator 0x{config.aggregator.hex()}, "
            f"this server is 0x{identity.address.hex()}: resume with the same identity"
        )


class RoundHost:
    """One round on the server: board, blob store, relay bookkeeping, result.

    Parameters
    ----------
    config : RoundConfig
        The round (n clients, m members, the roster, masking parameters...).
    round_dir : Path
        Where ``transcript.msgpack`` and ``blobs/`` go (created).
    roles : Sequence[NodeRoles]
        Client seats 1..n and member seats 1..m, each held by a transport node id.
    identity : Identity
        The server's own identity (the config's ``aggregator``): signs event 0 and the
        result. The server holds no other key.
    board : str
        Board kind for :func:`make_board`.
    backend : str, optional
        Masking backend of the aggregator and the verifier.
    journal : bool (default True)
        Memory board only: journal the board under ``round_dir`` (SPEC.md §6.14) so
        that :meth:`resume` can finish the round after a crash; ``fsync`` False skips
        the fsyncs (tests, benchmarks: a crash may then lose acknowledged events).
    hold_blob_bytes : int (default 2 GiB)
        How many bytes of accepted masked vectors stay in memory for the aggregation
        and the self-check (each is on disk first); the rest are re-read from disk.
    chain_native : bool (default False)
        The round's contract is deployed from ``identity``'s own account and every
        node posts itself (SPEC.md §7.4); needs a chain ``board``.
    task : secagg.boards.task.EvmTask, optional
        Chain-native only: open the round under this task contract (SPEC.md §7.8),
        owned by ``identity``, instead of deploying a standalone round — the task
        assigns the round id (``last_round + 1``; ``config.round_id`` is replaced) and
        the roster: ``config.members`` / ``config.clients`` must be the task's sealed
        roster, in seat order. Seats need not all be held: a client seat no node
        holds is absent (never asked: a dropout at registration); every member seat
        must be held. Each stage request carries the task's address
        (``StageRequest.task``) so a node can check the round is one the task opened.
        The clients' keys are the task's (SPEC.md §7.8 "Imported keys"; not in
        optimistic mode): at the register stage a client node registers its key on the
        task once, itself, and posts no round ``Registration``; once the stage's replies
        are in, the server imports the keys of the client seats that answered
        (:meth:`import_clients`, ``KeysImported`` from its own account). A seat with no
        key on the task is not imported: absent (a dropout), logged.
    """

    def __init__(
        self,
        config: RoundConfig,
        round_dir: Path,
        roles: Sequence[NodeRoles],
        *,
        identity: Identity,
        board: str = "memory",
        backend: str | None = None,
        journal: bool = True,
        fsync: bool = True,
        chain_native: bool = False,
        hold_blob_bytes: int = HOLD_BLOB_BYTES,
        task: EvmTask | None = None,
        _board: Board | None = None,
    ) -> None:
        if task is not None:
            _check_task(task, config, identity, board, chain_native)
        clients = sorted(r.client for r in roles if r.client)
        if task is not None:  # the task's seats no sampled node holds are absent
            if len(set(clients)) != len(clients) or not set(clients) <= set(
                range(1, config.n_clients + 1)
            ):
                raise ConfigError(
                    f"roles: client seats must be distinct seats of the task's roster "
                    f"1..{config.n_clients}, got {clients}"
                )
        elif clients != list(range(1, config.n_clients + 1)):
            raise ConfigError(f"roles: client seats must be 1..{config.n_clients}, got {clients}")
        members = sorted(r.member for r in roles if r.member)
        if members != list(range(1, config.committee_size + 1)):
            raise ConfigError(
                f"roles: member seats must be 1..{config.committee_size}, got {members}"
            )
        self.round_dir = Path(round_dir)
        self.roles: dict[int, NodeRoles] = {
            r.node: NodeRoles(r.node, r.client, r.member) for r in roles
        }
        self.identity = identity
        self.board_kind = board
        if chain_native and board == "memory":
            raise ConfigError("chain_native: needs a chain board (anvil, rpc:URL)")
        # chain-native (SPEC.md §7.4): the contract is deployed from the server's own
        # account; every node reads it and posts from its own; the server only checks
        self.chain_native = chain_native
        self.task = task
        self.resumed = _board is not None
        if _board is not None:  # resume(): the journal's board
            self.board = _board
        elif task is not None:
            self.board = _open_task_round(task, config, identity)
        elif board == "memory" and journal:
            self.round_dir.mkdir(parents=True, exist_ok=True)
            roles_doc = [[r.node, r.client, r.member] for r in self.roles.values()]
            durable_write(self.round_dir / ROLES_FILE, json.dumps(roles_doc).encode())
            self.board = make_board(
                board, config, identity, journal=self.round_dir / JOURNAL_FILE, fsync=fsync
            )
        else:
            self.board = make_board(board, config, identity, own_account=chain_native)
        self.config = self.board.config  # an EVM board fixes chain, address, phase lengths
        if _board is None and chain_native and board.startswith("rpc:"):
            self._write_chain_record(board)  # resumable from the chain (SPEC.md §6.14)
        # a task round takes its client keys from the task (SPEC.md §7.8)
        self.imports = task is not None and imports_client_keys(self.config)
        self._ready: set[int] = set()  # client seats whose node answered the register stage
        self._task_keys_cache: dict | None = None
        # the accepted uploads stay in memory for the aggregator and the self-check
        # (SPEC.md §6.6): each is read right after the last stage, where SecAgg+'s
        # server holds every masked vector in memory too
        self.blobs = BlobStore(self.round_dir / BLOB_DIR, hold_bytes=hold_blob_bytes)
        # upload stage: each reply's blob hashed and written to a temp file on a worker
        # thread while the replies before it are checked and accepted (precheck)
        self._staged: dict[int, Future[StagedBlob]] = {}
        self._packed: dict[tuple[int, tuple | None], bytes] = {}  # relay_bytes' events
        self._pool: ThreadPoolExecutor | None = None
        self.backend = backend
        self.faults: list[str] = []
        self.dropped: dict[str, list[int]] = {s: [] for s in STAGES}
        self.board_seconds = 0.0
        self.client_seconds: dict[int, float] = {}
        self.member_seconds: dict[int, float] = {}
        # who is no longer asked: a node that misses a client stage is still asked as a
        # member (its training may have failed, its key has not); a fault ends both
        self._client_out: set[int] = set()
        self._member_out: set[int] = set()
        self._transcript_cache: tuple[int, bytes] | None = None
        # deltas (SPEC.md §8.2): the event count of each node's last request, and of the
        # last one whose reply the board accepted (the node pinned those events)
        self._asked: dict[int, int] = {}
        self._acked: dict[int, int] = {}
        # every accepted DealingsPost by event seq, and its elided bodies (by kept items)
        self._dealing_posts: dict[int, DealingsPost] = {}
        self._elided: dict[tuple[int, tuple[tuple[int, int], ...]], bytes] = {}
        self._dealing_hashes: dict[int, tuple[bytes, ...]] = {}  # per dealings post

    # -- resuming ----------------------------------------------------------------------
    def _write_chain_record(self, board: str) -> None:
        """Chain-native on an external node (``rpc:URL``): the seat table and the round's
        contract (and task) on disk before any request goes out, so that :meth:`resume`
        can rebuild the round from the chain (SPEC.md §6.14)."""
        self.round_dir.mkdir(parents=True, exist_ok=True)
        roles_doc = [[r.node, r.client, r.member] for r in self.roles.values()]
        durable_write(self.round_dir / ROLES_FILE, json.dumps(roles_doc).encode())
        record = {
            "board": board,
            "contract": self.board.address,  # type: ignore[attr-defined]
            "task": None if self.task is None else self.task.address,
            # a DP round's record: the chain holds its hash only (checked at resume)
            "dp": dp_record_bytes(self.config.dp).hex() if self.config.has_dp else None,
        }
        durable_write(self.round_dir / CHAIN_FILE, json.dumps(record).encode())

    @staticmethod
    def can_resume(round_dir: Path) -> bool:
        """Whether ``round_dir`` holds a round that did not verify yet: its seat table and
        either its journal (memory board) or its chain record (a chain-native round on
        ``rpc:URL``). :meth:`finish` removes ``roles.json`` once the round verified; a
        round killed after posting its result is resumable and finishes."""
        round_dir = Path(round_dir)
        return (round_dir / ROLES_FILE).is_file() and (
            (round_dir / JOURNAL_FILE).is_file() or (round_dir / CHAIN_FILE).is_file()
        )

    @classmethod
    def resume(
        cls,
        round_dir: Path,
        *,
        identity: Identity,
        backend: str | None = None,
        fsync: bool = True,
    ) -> RoundHost:
        """The host of a round whose server stopped (SPEC.md §6.14): the board rebuilt
        from ``round_dir/journal.bin`` (every event re-checked; a torn last record is
        dropped, an altered one refused), the seats from ``roles.json``, the blobs
        already stored. ``identity`` must be the config's aggregator (it signs the
        result). :func:`drive_round` on it continues the round from the board's phase."""
        round_dir = Path(round_dir)
        try:
            roles_doc = json.loads((round_dir / ROLES_FILE).read_text())
            roles = [NodeRoles(int(n), int(c), int(m)) for n, c, m in roles_doc]
        except (OSError, ValueError, TypeError) as exc:
            raise ProtocolError(f"resume: {round_dir / ROLES_FILE}: unreadable ({exc})") from None
        if (round_dir / CHAIN_FILE).is_file():
            return cls._resume_from_chain(round_dir, roles, identity=identity, backend=backend)
        board = MemoryBoard.open(round_dir / JOURNAL_FILE, fsync=fsync)
        _check_aggregator(board.config, identity)
        host = cls(board.config, round_dir, roles, identity=identity, backend=backend, _board=board)
        host._log_resumed(str(round_dir / JOURNAL_FILE))
        return host

    @classmethod
    def _resume_from_chain(
        cls, round_dir: Path, roles: list[NodeRoles], *, identity: Identity, backend: str | None
    ) -> RoundHost:
        """A chain-native round rebuilt from the chain (SPEC.md §6.14): the contract of
        ``chain.json`` attached with the server's identity (code, config and head checked
        by ``EvmBoard.attach``), its task attached and checked to have opened it, the
        blobs already stored under ``round_dir``."""
        from secagg.boards.evm import EvmBoard  # noqa: PLC0415 - needs the evm extra
        from secagg.boards.task import EvmTask  # noqa: PLC0415

        where = round_dir / CHAIN_FILE
        try:
            record = json.loads(where.read_text())
            kind, contract, task_addr = record["board"], record["contract"], record["task"]
            if not (isinstance(kind, str) and kind.startswith("rpc:")):
                raise ValueError(f"board {kind!r} is not rpc:URL")
            dp_hex = record.get("dp")
            dp = None if dp_hex is None else dp_record_decode(bytes.fromhex(dp_hex), "dp")
        except (OSError, ValueError, TypeError, KeyError, AttributeError, InvalidEncoding) as exc:
            raise ProtocolError(f"resume: {where}: unreadable ({exc})") from None
        board = EvmBoard.attach(kind[len("rpc:") :], contract, identity, dp=dp)
        _check_aggregator(board.config, identity)
        task = None
        if task_addr is not None:
            task = EvmTask.attach(board.w3, task_addr, identity)
            opened = task.round_address(board.config.round_id)
            if opened.lower() != board.address.lower():
                raise ProtocolError(
                    f"resume: {contract} is not round {board.config.round_id} of task "
                    f"{task.address} (the task opened {opened})"
                )
        host = cls(
            board.config,
            round_dir,
            roles,
            identity=identity,
            board=kind,
            backend=backend,
            chain_native=True,
            task=task,
            _board=board,
        )
        host._log_resumed(f"the chain (contract {board.address})")
        return host

    def _log_resumed(self, source: str) -> None:
        board, st = self.board, self.board.state()
        log(
            logging.INFO,
            "round %d: resumed from %s at %s (height %d, %d events): %d registered, "
            "%d dealt, %d uploaded (%d blobs held), %d confirmed",
            board.config.round_id,
            source,
            board.phase().name,
            board.height(),
            len(board.events()),
            len(st.clients),
            len(st.dealers),
            len(st.masked),
            sum(d in self.blobs for d, _ in st.masked.values()),
            len(st.confirmations),
        )

    @property
    def board_checks_proofs(self) -> bool:
        """True if the board is this server's own memory board checking every proof as
        it accepts a post (not a chain, not a replay that defers them)."""
        return isinstance(self.board, MemoryBoard) and self.board.checks_proofs

    # -- phases ------------------------------------------------------------------------
    def phase_start(self, phase: Phase) -> int:
        """The first block height of ``phase``."""
        cfg = self.config
        lengths = [cfg.register_blocks, cfg.deal_blocks, cfg.upload_blocks, cfg.unmask_blocks]
        return sum(lengths[: int(phase)])

    def open(self, phase: Phase) -> None:
        """Let blocks pass until the board is in ``phase`` (never goes back)."""
        target = self.phase_start(phase)
        if self.board.height() > target and self.board.phase() != phase:
            raise ProtocolError(f"host: board already past {phase.name}")
        if self.board.height() < target:
            self.board.advance(target - self.board.height())

    # -- requests ----------------------------------------------------------------------
    def transcript_bytes(self) -> bytes:
        """The board's events so far, codec-encoded (cached per event count)."""
        events = self.board.events()
        if self._transcript_cache is None or self._transcript_cache[0] != len(events):
            self._transcript_cache = (len(events), codec.encode(TranscriptFile(tuple(events))))
        return self._transcript_cache[1]

    @staticmethod
    def _kept(post: DealingsPost, keep: Callable[[DealingKey], bool]) -> tuple:
        """The (purpose, partner) items of a dealings post that ``keep`` selects."""
        return tuple(
            (it.purpose, it.partner)
            for it in post.items
            if keep((post.dealer, it.purpose, it.partner))
        )

    def _elided_body(
        self, seq: int, keep: Callable[[DealingKey], bool]
    ) -> tuple[tuple[tuple[int, int], ...], bytes]:
        """The (purpose, partner) items ``keep`` selects of the dealings post at event
        ``seq``, and that post as an ``ElidedDealingsPost`` with only those dealings whole
        (cached per kept set)."""
        post = self._dealing_posts[seq]
        kept = self._kept(post, keep)
        body = self._elided.get((seq, kept))
        if body is None:
            hashes = self._dealing_hashes.get(seq)
            if hashes is None:
                hashes = tuple(keccak256(it.dealing) for it in post.items)
                self._dealing_hashes[seq] = hashes
            body = codec.encode(ElidedDealingsPost.of(post, keep, hashes))
            self._elided[(seq, kept)] = body
        return kept, body

    def _packed_event(self, ev: Event, keep: Callable[[DealingKey], bool]) -> bytes:
        """One event as a node gets it (a dealings post elided to what ``keep`` selects),
        packed as a ``TranscriptFile`` element: cached per event and kept set, since
        every node's request repeats most of them (``codec.encode_list_parts``)."""
        post = self._dealing_posts.get(ev.seq) if ev.role == ROLE_CLIENT else None
        kept = None if post is None else self._kept(post, keep)
        packed = self._packed.get((ev.seq, kept))
        if packed is None:
            if post is not None:
                ev = dataclasses.replace(ev, body=self._elided_body(ev.seq, keep)[1])
            packed = self._packed[(ev.seq, kept)] = codec.pack_item(TranscriptFile, ev)
        return packed

    def relay_bytes(self, since: int, keep: Callable[[DealingKey], bool]) -> bytes:
        """The events from sequence number ``since`` on as a node gets them, codec-encoded:
        every ``DealingsPost`` as an ``ElidedDealingsPost`` carrying only the dealings
        ``keep`` selects (the others by hash; SPEC.md §8.2)."""
        out = [self._packed_event(ev, keep) for ev in self.board.events()[since:]]
        return codec.encode_list_parts(TranscriptFile, out)

    def relay_fill(self, since: int, keep: Callable[[DealingKey], bool]) -> bytes:
        """The dealings posts *before* ``since`` (events the node already pinned, with
        their dealings elided) that hold a dealing ``keep`` now selects, again, with
        those dealings in full: codec-encoded ``TranscriptFile``, or b"" if none. The
        node swaps each for its pinned event only if every other field is the pinned
        one's and the body has the same post digest (SPEC.md §8.2)."""
        events = self.board.events()
        out = []
        for seq in sorted(q for q in self._dealing_posts if q < since):
            kept, body = self._elided_body(seq, keep)
            if kept:
                out.append(dataclasses.replace(events[seq], body=body))
        return codec.encode(TranscriptFile(tuple(out))) if out else b""

    def _needs(self, node: int, stage: str, client: int) -> Callable[[DealingKey], bool]:
        """The dealings a node relies on (SPEC.md §8.2), as far as the server knows at
        ``stage``: a client at upload its incoming pair dealings; a member at unmask the
        dealings it decrypts (``allowed_shares``, fixed with U); nobody else any."""
        pair = stage == STAGE_UPLOAD and client
        decrypts: set[DealingKey] = set()
        if self.roles[node].member and stage == STAGE_UNMASK:
            decrypts = set(self.board.allowed_shares())
        return lambda key: (
            key in decrypts or bool(pair and key[1] == PURPOSE_PAIR and key[2] == client)
        )

    def request(
        self, stage: str, node: int, *, client: int | None = None, member: int | None = None
    ) -> StageRequest:
        """The request for one node (``client`` / ``member`` override the seats it is
        asked to act in). It carries only the events after those the node pinned with
        its last accepted reply (the whole transcript the first time, or after a reply
        that was not accepted)."""
        r = self.roles[node]
        client = r.client if client is None else client
        member = r.member if member is None else member
        if self.chain_native:  # the node reads the chain itself
            return StageRequest(
                stage,
                self.board.height(),
                b"",
                client,
                member,
                contract=bytes.fromhex(self.board.address[2:]),  # type: ignore[attr-defined]
                task=b"" if self.task is None else self.task.raw_address,
                dp=dp_record_bytes(self.config.dp) if self.config.has_dp else b"",
            )
        since = self._acked.get(node, 0)
        self._asked[node] = len(self.board.events())
        needs = self._needs(node, stage, client)
        return StageRequest(
            stage,
            self.board.height(),
            self.relay_bytes(since, needs),
            client,
            member,
            since=since,
            fill=self.relay_fill(since, needs) if since else b"",
        )

    def requests(self, stage: str) -> dict[int, StageRequest]:
        """Every node asked at ``stage``: all at registration; then the clients whose
        previous post the board accepted (deal, upload) or the members whose previous
        post it accepted (seed, confirm, unmask). A node that dropped out of a client
        stage is still asked as a member; one that faulted is not asked again."""
        self.open(STAGE_PHASE[stage])
        st = self.board.state()
        if stage == STAGE_CONFIRM and st.aborted:
            raise RoundFailed(
                f"round {self.config.round_id}: aborted: the included set "
                f"({len(st.masked)} uploaded) is below min_included {self.config.min_included}"
                f" / min_neighbours {self.config.min_neighbours}; nothing is revealed"
            )
        # a seat is asked once the board accepted its previous post
        previous = {
            STAGE_DEAL: st.clients,
            STAGE_UPLOAD: st.dealers,
            STAGE_SEED: st.members,
            STAGE_CONFIRM: st.reveals,
            STAGE_UNMASK: st.confirmations,
        }.get(stage, {})
        out: dict[int, StageRequest] = {}
        done = posted(stage, self.board)  # a resumed round: never asked again
        if stage == STAGE_UPLOAD and self.chain_native:
            # a chain-native client posts its digest itself: one whose blob the server
            # never stored (it stopped before the reply came) is asked again for it
            done = {c for c in done if st.masked[c][0] in self.blobs}
        for node, r in self.roles.items():
            client = r.client if r.client and node not in self._client_out else 0
            member = r.member if r.member and node not in self._member_out else 0
            if stage == STAGE_REGISTER:
                client = client if client not in st.clients else 0
                member = member if member not in st.members else 0
            elif stage in _MEMBER_STAGES:
                member = member if member not in done else 0
            else:
                client = client if client not in done else 0
            if stage == STAGE_REGISTER:
                if client or member:
                    out[node] = self.request(stage, node, client=client, member=member)
            elif stage in _MEMBER_STAGES:
                if member in previous:
                    out[node] = self.request(stage, node, client=0)
            elif client in previous:
                out[node] = self.request(stage, node, member=0)
        return out

    # -- imported client keys (SPEC.md §7.8) ---------------------------------------------
    def import_clients(self) -> tuple[int, ...]:
        """A task round, after the register stage's replies: the server's
        ``KeysImported`` (``task.import_keys``, from its own account) registers the
        client seats whose node answered with the keys they registered on the task; a
        seat whose key the task does not hold is absent (a dropout, logged), as is one
        that registered itself with a round ``Registration``. Returns the imported
        seats (``RoundFailed`` if the chain refuses the import)."""
        if not self.imports:
            return ()
        assert self.task is not None
        st = self.board.state()
        by_client = {r.client: node for node, r in self.roles.items() if r.client}
        parties = []
        for p in sorted(self._ready):
            if p in st.clients:
                continue  # registered already (its own Registration, or a resumed import)
            if self.task.key(ROLE_CLIENT, p) is None:
                node = by_client[p]
                self._client_out.add(node)
                self.dropped[STAGE_REGISTER].append(node)
                log(
                    logging.WARNING,
                    "round %d: client %d (node %d) has no key registered on task %s: not "
                    "imported, absent this round",
                    self.config.round_id,
                    p,
                    node,
                    self.task.address,
                )
                continue
            parties.append(p)
        if not parties:
            return ()
        from secagg.boards.evm import ContractRevert  # noqa: PLC0415 - needs the evm extra

        t0 = time.perf_counter()
        try:
            self.task.import_keys(self.board, parties)  # type: ignore[arg-type]
        except (ProtocolError, ContractRevert) as exc:
            raise RoundFailed(
                f"round {self.config.round_id}: importing client keys {parties} from task "
                f"{self.task.address} failed: {exc}"
            ) from None
        finally:
            self.board_seconds += time.perf_counter() - t0
        log(
            logging.INFO,
            "round %d: imported the task keys of client seats %s",
            self.config.round_id,
            parties,
        )
        return tuple(parties)

    def task_keys(self) -> dict | None:
        """The verified keys of the task this round imported client keys from, for its
        replays (``EvmBoard.task_keys``: re-checked from the chain, once per round);
        None for a round that imported none."""
        if not self.imports:
            return None
        if self._task_keys_cache is None:
            self._task_keys_cache = self.board.task_keys()  # type: ignore[attr-defined]
        return self._task_keys_cache

    # -- committee ---------------------------------------------------------------------
    def missing_members(self) -> list[int]:
        """Member seats with no accepted registration."""
        st = self.board.state()
        return [k for k in range(1, self.config.committee_size + 1) if k not in st.members]

    def missing_reveals(self) -> list[int]:
        """Member seats whose seed reveal the board has not accepted."""
        st = self.board.state()
        return [k for k in range(1, self.config.committee_size + 1) if k not in st.reveals]

    # -- replies -----------------------------------------------------------------------
    def close(self) -> None:
        """Release the board (an EVM board may own a node process) and the upload
        workers (any blob still staged is removed)."""
        for node in list(self._staged):
            self._unstage(node)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        close = getattr(self.board, "close", None)
        if close is not None:
            close()

    def drop(self, stage: str, node: int, reason: str, *, fault: bool = False) -> None:
        """Count ``node`` as a dropout at ``stage``: a missed registration or a fault
        ends its round; a missed deal / upload ends its client seat; a missed member
        stage its member seat."""
        if stage in (STAGE_REGISTER, STAGE_DEAL, STAGE_UPLOAD) or fault:
            self._client_out.add(node)
            if stage == STAGE_REGISTER:  # not imported
                self._ready.discard(self.roles[node].client)
        if stage in (STAGE_REGISTER, *_MEMBER_STAGES) or fault:
            self._member_out.add(node)
        if node not in self.dropped[stage]:
            self.dropped[stage].append(node)
        self._acked.pop(node, None)  # what it pinned is unknown: next time, everything
        log(
            logging.WARNING,
            "round %d: node %d dropped out at %s: %s",
            self.config.round_id,
            node,
            stage,
            reason,
        )

    def _fault(self, stage: str, node: int, who: str, detail: str) -> None:
        text = f"{who} (node {node}) at {stage}: {detail}"
        self.faults.append(text)
        log(logging.ERROR, "round %d: fault: %s", self.config.round_id, text)
        self.drop(stage, node, "fault", fault=True)

    def precheck(self, stage: str, replies: Mapping[int, object]) -> None:
        """Before a deal (unmask) stage's replies are accepted one by one: their dealing
        (share-post) proofs in one batch (``MemoryBoard.preverify_dealings`` /
        ``preverify_share_posts``; same outcome, one multi-scalar multiplication instead
        of one per post). At the upload stage: the blobs staged (``_stage_uploads``)."""
        # only replies already in hand (Flower's grid returns them together); a
        # transport that yields them one by one keeps each accepted (journaled) as it
        # comes, so nothing is held back in memory for the batch
        if not isinstance(replies, dict) or self.chain_native:
            return
        if stage == STAGE_UPLOAD:
            self._stage_uploads(replies)
        name = {STAGE_DEAL: "preverify_dealings", STAGE_UNMASK: "preverify_share_posts"}.get(stage)
        pre = getattr(self.board, name, None) if name else None
        if pre is None:
            return
        posts = []
        for reply in replies.values():
            if isinstance(reply, StageReply):
                for raw in reply.posts:
                    try:
                        posts.append(codec.decode(raw, SignedPost))
                    except InvalidEncoding:
                        pass  # accept() reports it
        t0 = time.perf_counter()
        pre(posts)
        self.board_seconds += time.perf_counter() - t0

    def _stage_uploads(self, replies: Mapping[int, object]) -> None:
        """Upload stage, replies in hand: every blob of the expected size is hashed for
        its CID and written (fsync'ed) to a temp file by UPLOAD_WORKERS threads (hashlib
        and file I/O release the GIL; the writes wait on the disk) while ``accept``
        checks the replies in order; accept then only renames the file of a blob whose
        post the board takes, before the board journals its digest, and removes any
        other (SPEC.md §6.14)."""
        want = packed_size(self.config.vector_length, self.config.bits)
        for node, reply in replies.items():
            blob = reply.blob if isinstance(reply, StageReply) else None
            if type(blob) is not bytes or len(blob) != want:
                continue  # accept() reports it, or it has no blob
            if self._pool is None:
                self._pool = ThreadPoolExecutor(UPLOAD_WORKERS, thread_name_prefix="pvss-blobs")
            self._staged[node] = self._pool.submit(self.blobs.stage, blob)

    def _take_staged(self, node: int, blob: bytes) -> StagedBlob | None:
        """The staged upload of ``node`` if it is of these very bytes (None: none, or
        staging failed; the caller then hashes and writes the blob itself)."""
        job = self._staged.pop(node, None)
        if job is None:
            return None
        try:
            staged = job.result()
        except OSError:
            return None  # put_new() below raises it again, in order
        if staged.data is not blob:
            self.blobs.abort(staged)
            return None
        return staged

    def _unstage(self, node: int) -> None:
        """Drop what was staged for ``node`` (its reply was not accepted)."""
        job = self._staged.pop(node, None)
        if job is not None:
            try:
                self.blobs.abort(job.result())
            except OSError:
                pass

    def batch(self, replies: Mapping[int, object]) -> AbstractContextManager[None]:
        """The block that accepts a stage's replies: one group commit of the board's
        journal (``MemoryBoard.batch``: one fsync for the stage, before the next stage
        is sent) when the replies are all in hand, as ``precheck`` requires; a transport
        that yields them one by one keeps one fsync per accepted event."""
        batch = getattr(self.board, "batch", None)
        if batch is None or not isinstance(replies, dict):
            return nullcontext()
        return batch()

    def accept(self, stage: str, node: int, reply: StageReply | BaseException | None) -> bool:
        """Submit a node's signed posts to the board; False (and the node dropped) if it
        did not answer, answered with an error, or the board refused any of its posts."""
        try:
            return self._accept(stage, node, reply)
        finally:
            self._unstage(node)  # a staged blob not taken by an accepted post

    def _accept(self, stage: str, node: int, reply: StageReply | BaseException | None) -> bool:
        if reply is None or isinstance(reply, BaseException):
            self.drop(stage, node, "no reply" if reply is None else f"error: {reply}")
            return False
        r = self.roles[node]
        if stage == STAGE_REGISTER and self.imports and r.client:
            self._ready.add(r.client)  # its key is imported, if the task holds one
            if not reply.posts and not r.member:  # a client-only node posts nothing
                self.client_seconds[node] = self.client_seconds.get(node, 0.0) + reply.seconds
                return True
        if not reply.posts:
            self._ready.discard(r.client)
            self._fault(stage, node, f"node {node}", "empty reply")
            return False
        for raw in reply.posts:  # the first refused post ends the node's round
            try:
                post = codec.decode(raw, SignedPost)
                msg: object = codec.decode(post.body)
            except InvalidEncoding as exc:
                self._fault(stage, node, f"node {node}", f"undecodable post: {exc}")
                return False
            want = _EXPECTED[stage]
            if not isinstance(msg, want):
                self._fault(stage, node, f"node {node}", f"{type(msg).__name__} at {stage}")
                return False
            seat = {ROLE_CLIENT: r.client, ROLE_MEMBER: r.member}.get(post.role, 0)
            if not seat or post.sender != seat:
                self._fault(stage, node, f"node {node}", "posts for a seat it does not hold")
                return False
            stored: bytes | None = None  # the digest of a blob stored for this post
            if isinstance(msg, MaskedInputPost):
                staged = self._take_staged(node, reply.blob)
                cid = staged.cid if staged is not None else blob_id(reply.blob)
                if cid[1] != msg.digest or len(reply.blob) != msg.size:
                    if staged is not None:
                        self.blobs.abort(staged)
                    self._fault(
                        stage, node, f"client {seat}", "blob does not match its posted digest"
                    )
                    return False
                try:  # length and zero padding: a malformed blob is its client's fault
                    check_encoding(reply.blob, self.config.vector_length, self.config.bits)
                except InvalidEncoding as exc:
                    if staged is not None:
                        self.blobs.abort(staged)
                    self._fault(stage, node, f"client {seat}", f"blob encoding: {exc}")
                    return False
                # on disk before the board journals its digest (SPEC.md §6.14)
                if staged is not None:
                    digest, new = self.blobs.commit(staged)
                else:
                    digest, new = self.blobs.put_new(reply.blob, cid)
                stored = digest if new else None
            t0 = time.perf_counter()
            try:
                if self.chain_native:
                    self._on_chain(post)
                    event = None
                else:
                    event = self.board.submit(post)
            except RuleViolation as exc:
                if stored is not None:  # the store keeps only blobs the board accepted
                    self.blobs.discard(stored)
                self._fault(stage, node, exc.fault.who, f"{exc.fault.rule}: {exc.fault.detail}")
                return False
            finally:
                self.board_seconds += time.perf_counter() - t0
            if isinstance(msg, DealingsPost) and event is not None:
                self._dealing_posts[event.seq] = msg
        if node in self._asked:  # the node pinned the events of its request
            self._acked[node] = self._asked[node]
        if stage in _MEMBER_STAGES or (stage == STAGE_REGISTER and not r.client):
            self.member_seconds[node] = self.member_seconds.get(node, 0.0) + reply.seconds
        else:
            self.client_seconds[node] = self.client_seconds.get(node, 0.0) + reply.seconds
        return True

    def _on_chain(self, post: SignedPost) -> None:
        """Chain-native: the node submitted ``post`` itself; the server only checks that
        the chain accepted it (same seat, same signature) — it submits nothing."""
        for ev in reversed(self.board.events()):
            if (ev.role, ev.sender, ev.body, ev.sig) == (
                post.role,
                post.sender,
                post.body,
                post.sig,
            ):
                return
        raise RuleViolation(
            Fault(post.role, post.sender, "chain", "the node's post is not on the chain")
        )

    # -- result ------------------------------------------------------------------------
    def finish(self) -> RoundOutcome:
        """Aggregate, write the round directory, verify it publicly; the outcome only
        if every check passed (``RoundVerificationError`` otherwise)."""
        cfg = self.config
        self.open(Phase.RESULT)
        aggregator = Aggregator(cfg, identity=self.identity, backend=self.backend)
        t0 = time.perf_counter()
        try:
            if not self.board.included():
                raise RoundFailed(f"round {cfg.round_id}: no client is included")
            if self.board.state().result is not None:  # resumed after the result post
                total = self._posted_total(aggregator)
            else:
                # its own memory board checked every share post's proof on accepting
                # it (SPEC.md §8.3); any other board's are checked here
                total = aggregator.aggregate(
                    self.board, self.blobs, shares_verified=self.board_checks_proofs
                )
        except ProtocolError as exc:
            save_round(self.round_dir, TranscriptFile(tuple(self.board.events())))
            if isinstance(exc, RoundFailed):
                raise
            raise RoundFailed(f"round {cfg.round_id}: no result: {exc}") from exc
        aggregator_s = time.perf_counter() - t0
        transcript = TranscriptFile(tuple(self.board.events()))
        save_round(self.round_dir, transcript)
        t0 = time.perf_counter()
        # every proof on a memory board was checked by this board when it accepted the
        # post; the re-verification re-checks everything else (chain, signatures, every
        # rule, the sum from the blobs). A third party replays the proofs too (SPEC §8.3)
        own = isinstance(self.board, MemoryBoard)
        report = verify_round(
            transcript,
            self.blobs,  # the accepted bytes (held, or re-read and re-hashed from disk)
            event_hash(transcript.events[-1]) if own else None,
            trust_chain_proofs=own,
            task_keys=self.task_keys(),
        )
        verifier_s = time.perf_counter() - t0
        if not report.ok:
            raise RoundVerificationError(cfg.round_id, report.findings, self.round_dir)
        if report.total is None or not np.array_equal(report.total, total):
            raise RoundVerificationError(
                cfg.round_id,
                [Finding("aggregator", "result", "sum differs from the verifier's")],
                self.round_dir,
            )
        (self.round_dir / ROLES_FILE).unlink(missing_ok=True)  # verified: nothing to resume
        included = self.board.included()
        by_client = {r.client: node for node, r in self.roles.items() if r.client}
        return RoundOutcome(
            round_id=cfg.round_id,
            config=cfg,
            round_dir=self.round_dir,
            included=included,
            included_nodes=tuple(by_client[i] for i in included),
            total=total,
            mean=aggregator.mean(),
            total_weight=int(total[-1]),
            checks=list(report.checks),
            faults=list(self.faults),
            dropped={k: list(v) for k, v in self.dropped.items()},
            seconds={
                "client_mean": _mean(self.client_seconds.values()),
                "committee_mean": _mean(self.member_seconds.values()),
                "board": self.board_seconds,
                "aggregator": aggregator_s,
                "verifier": verifier_s,
            },
        )

    def _posted_total(self, aggregator: Aggregator) -> np.ndarray:
        """The sum of a result the board holds already (a server that crashed after
        posting it): recomputed from the board and blobs by the verifier."""
        report = verify_round(
            TranscriptFile(tuple(self.board.events())), self.blobs, task_keys=self.task_keys()
        )
        if not report.ok or report.total is None:
            raise RoundVerificationError(self.config.round_id, report.findings, self.round_dir)
        aggregator.total = report.total
        if self.config.has_dp:
            aggregator.rotation_seed = dp_rotation_seed(self.board.state())
        aggregator.stage = Stage.DONE
        return report.total


def _mean(values) -> float:  # noqa: ANN001
    vals = list(values)
    return float(np.mean(vals)) if vals else 0.0


Transport = Callable[[str, Mapping[int, StageRequest]], Mapping[int, StageReply | BaseException]]


def drive_round(host: RoundHost, send: Transport) -> RoundOutcome:
    """Run every stage of ``host``'s round over ``send`` and return the verified result.

    ``send(stage, requests)`` delivers each request to its node and returns the replies
    it got, by node; a node missing from the answer timed out (a dropout), an exception
    in its place is an error reply (also a dropout). The committee is the roster's: a
    member seat that does not register or reveal its seed halts the round (SPEC.md
    §6.10) with :class:`RoundFailed` naming it — no server may re-draw a seat.
    """
    rid = host.config.round_id
    log(logging.INFO, "round %d: Secure aggregation commencing.", rid)
    try:
        for k, stage in enumerate(STAGES, 1):
            if STAGE_PHASE[stage] < host.board.phase():
                continue  # a resumed round: that phase is over
            reqs = host.requests(stage)
            log(
                logging.INFO,
                "round %d: [Stage %d %s] Sending requests to %d nodes.",
                rid,
                k,
                stage,
                len(reqs),
            )
            replies = send(stage, reqs) if reqs else {}
            host.precheck(stage, replies)
            with host.batch(replies):
                accepted = [node for node in reqs if host.accept(stage, node, replies.get(node))]
            log(
                logging.INFO,
                "round %d: [Stage %d %s] Accepted posts from %d of %d nodes.",
                rid,
                k,
                stage,
                len(accepted),
                len(reqs),
            )
            if stage == STAGE_REGISTER:
                host.import_clients()  # a task round: the clients' task keys
            if stage == STAGE_REGISTER and host.missing_members():
                raise RoundFailed(
                    f"round {host.config.round_id}: committee incomplete, member seats "
                    f"{host.missing_members()} never registered"
                )
            if stage == STAGE_SEED and host.missing_reveals():
                raise RoundFailed(
                    f"round {host.config.round_id}: member seats {host.missing_reveals()} "
                    "withheld their seed reveal: the graph cannot be drawn"
                )
        outcome = host.finish()
    except RoundVerificationError as exc:
        log(logging.ERROR, "round %d: %s", rid, exc)
        raise
    except RoundFailed as exc:
        log(logging.ERROR, "round %d: secure aggregation halted: %s", rid, exc)
        raise
    finally:
        host.close()
    log(
        logging.INFO,
        "round %d: verified (all %d checks passed), %d clients included (nodes %s), "
        "dropouts %s, faults %s",
        rid,
        len(outcome.checks),
        len(outcome.included),
        list(outcome.included_nodes),
        {k: v for k, v in outcome.dropped.items() if v} or "none",
        outcome.faults or "none",
    )
    log(logging.INFO, "round %d: Secure aggregation completed.", rid)
    return outcome

"""Simulate a whole round with dropouts, time every role, verify it publicly
(what ``pvss-secagg simulate`` runs)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from secagg.blobs import BlobStore
from secagg.boards import Board, MemoryBoard
from secagg.config import RoundConfig, default_min_included
from secagg.dp import DpConfig, DpSpec, clip_l2, dp_report, mean_error_bound, overflow_bits
from secagg.errors import ConfigError
from secagg.identity import Identity
from secagg.messages import Event, SignedPost
from secagg.quantize import MaskingConfig
from secagg.roles import Aggregator, Client, CommitteeMember
from secagg.verifier import BLOB_DIR, save_round, verify_round

DROPOUT_PHASES = ("deal", "upload", "unmask", "mixed")


@dataclass(frozen=True)
class SimParams:
    """One simulated round."""

    clients: int = 10
    committee: int = 5
    threshold: int = 2
    dim: int = 1000
    dropout: float = 0.0
    dropout_phase: str = "upload"
    committee_dropout: int = 0
    graph: str = "complete"
    quant_bits: int = 16
    bits: int | None = None  # None: the smallest modulus that cannot overflow
    clip: float = 1.0
    max_weight: int = 10
    seed: int = 0
    backend: str | None = None
    board: str = "memory"  # memory | evm | anvil | rpc:URL (secagg.boards.evm)
    # anvil: leave the node running after the round (its pid in the result) so that
    # the round can be verified from the chain afterwards; the caller stops it
    keep_chain: bool = False
    # distributed DP (SPEC.md §10): None = off; clip is then the L2 clip, the noise is
    # calibrated for min_included clients and the modulus is overflow_bits
    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    dp_rounds: int = 1
    dp_mechanism: str = "ddg"

    def __post_init__(self) -> None:
        for name in ("clients", "committee", "threshold", "dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {v!r}")
        if self.clients < 2:
            raise ConfigError(f"clients: a sum needs at least 2 clients, got {self.clients}")
        if self.threshold >= self.committee:
            raise ConfigError(
                f"threshold: t={self.threshold} must be below committee m={self.committee} "
                "(t+1 members reconstruct)"
            )
        if 2 * self.threshold >= self.committee:
            raise ConfigError(
                f"threshold: an honest majority needs 2t < m, got t={self.threshold}, "
                f"committee m={self.committee}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: fraction must be in [0, 1), got {self.dropout}")
        if self.dropout_phase not in DROPOUT_PHASES:
            raise ConfigError(f"dropout_phase: {self.dropout_phase!r} not in {DROPOUT_PHASES}")
        n_drop = int(round(self.dropout * self.clients))
        floor = default_min_included(self.clients)
        if self.dropout_phase != "unmask" and self.clients - n_drop < floor:
            raise ConfigError(
                f"dropout: {self.dropout} of {self.clients} clients leaves "
                f"{self.clients - n_drop} included, below min_included = {floor} "
                f"(floor(n/3)+2): the board would abort the round; at most "
                f"{(self.clients - floor) / self.clients:.2f} may drop"
            )
        if not 0 <= self.committee_dropout <= self.committee - self.threshold - 1:
            raise ConfigError(
                f"committee_dropout: {self.committee_dropout} members may drop at most "
                f"m - t - 1 = {self.committee - self.threshold - 1}"
            )

    def round_config(self, roster: Roster | None = None) -> RoundConfig:
        """The round's config; ``roster`` (aggregator, members, clients identities)
        defaults to fresh identities (see ``SimParams.identities``)."""
        roster = roster if roster is not None else self.identities()
        bits = self.bits
        dp = self.dp_config()
        if dp is not None and bits is None:
            bits = overflow_bits(dp, self.clients)
        if bits is None:
            bits = MaskingConfig.minimal(
                self.quant_bits, self.clip, self.max_weight, self.clients
            ).bits
        extra: dict[str, Any] = {} if dp is None else {"dp": dp}
        return RoundConfig(
            chain_id=31337,
            board=bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"),
            round_id=1,
            n_clients=self.clients,
            committee_size=self.committee,
            threshold=self.threshold,
            graph=self.graph,
            dim=self.dim,
            quant_bits=self.quant_bits,
            bits=bits,
            clip=float(self.clip),
            max_weight=self.max_weight,
            aggregator=roster.aggregator.address if roster else bytes(20),
            members=tuple(i.address for i in roster.members) if roster else (),
            clients=tuple(i.address for i in roster.clients) if roster else (),
            **extra,
        )

    def dp_config(self) -> DpConfig | None:
        """The round's DpConfig (noise for the default min_included clients), or None."""
        if self.dp_epsilon is None:
            return None
        spec = DpSpec(
            float(self.dp_epsilon),
            float(self.dp_delta),
            int(self.dp_rounds),
            float(self.clip),
            self.dp_mechanism,
        )
        return spec.calibrate(self.dim, default_min_included(self.clients))

    def identities(self) -> Roster:
        """Fresh identities for the aggregator, every member and every client seat."""
        return Roster(
            Identity.generate(),
            [Identity.generate() for _ in range(self.committee)],
            [Identity.generate() for _ in range(self.clients)],
        )


@dataclass
class Roster:
    """The identities of one simulated round (each party holds its own)."""

    aggregator: Identity
    members: list[Identity]
    clients: list[Identity]


class TimedBoard(MemoryBoard):
    """A memory board that adds up the time it spends validating posts."""

    busy = 0.0

    def submit(self, post: SignedPost) -> Event:
        t0 = time.perf_counter()
        try:
            return super().submit(post)
        finally:
            self.busy += time.perf_counter() - t0


def chain_phases(cfg: RoundConfig) -> RoundConfig:
    """``cfg`` with phase lengths that leave one block per post on a chain board (every
    post is its own transaction, mined in its own block): register and deal n + m + 2
    blocks, upload n + 2, unmask 2m + 2 (longer ones kept)."""
    n, m = cfg.n_clients, cfg.committee_size
    return replace(
        cfg,
        register_blocks=max(cfg.register_blocks, n + m + 2),
        deal_blocks=max(cfg.deal_blocks, n + m + 2),
        upload_blocks=max(cfg.upload_blocks, n + 2),
        unmask_blocks=max(cfg.unmask_blocks, 2 * m + 2),
    )


def make_board(
    kind: str, cfg: RoundConfig, aggregator: Identity, *, own_account: bool = False
) -> Any:
    """memory -> TimedBoard; evm / anvil / rpc:URL -> EvmBoard (its ``config`` carries
    the chain id and contract address; phase lengths leave one block per post)."""
    if kind == "memory":
        return TimedBoard.create(cfg, aggregator)
    if kind in ("evm", "anvil") or kind.startswith("rpc:"):
        from secagg.boards.evm import EvmBoard

        return EvmBoard(
            chain_phases(cfg),
            kind,
            aggregator=aggregator,
            account=aggregator if own_account else None,
        )
    raise ConfigError(f"board: {kind!r} is not memory, evm, anvil or rpc:URL")


def _advance_to(board: Board, height: int) -> None:
    board.advance(max(0, height - board.height()))


@dataclass
class SimResult:
    verified: bool
    max_abs_error: float
    error_bound: float
    included: int
    seconds: dict[str, float]
    bytes_per_client: float
    masked_bytes_per_client: float
    findings: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    dp: dict[str, Any] | None = None  # secagg.dp.dp_report of a DP round
    # chain boards: the node's JSON-RPC URL (None for the in-process py-evm chain),
    # the round contract's address, and the pid of an anvil left running (keep_chain)
    rpc: str | None = None
    contract: str | None = None
    anvil_pid: int | None = None

    def to_json(self) -> str:
        out = asdict(self)
        for key in ("dp", "rpc", "contract", "anvil_pid"):
            if out[key] is None:
                del out[key]
        return json.dumps(out, sort_keys=True)


def _progress(total: int, enabled: bool):  # noqa: ANN202
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="round", unit="step", leave=False)


def _params_dict(params: SimParams) -> dict[str, Any]:
    """The parameters as JSON; the dp_* keys only when DP is on."""
    out = asdict(params)
    if params.dp_epsilon is None:
        out = {k: v for k, v in out.items() if not k.startswith("dp_")}
    return out


def simulate(
    params: SimParams,
    out_dir: Path | None = None,
    *,
    progress: bool = False,
    roster: Roster | None = None,
) -> SimResult:
    """Run one round end to end on a memory board and verify it as a third party.
    ``roster``: the parties' identities (default: fresh ones)."""
    roster = roster if roster is not None else params.identities()
    cfg = params.round_config(roster)
    if out_dir is not None:
        return _simulate(params, roster, cfg, Path(out_dir), progress)
    import shutil
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="pvss-secagg-round-"))
    try:
        return _simulate(params, roster, cfg, out, progress)
    except BaseException:  # a failed round leaves no temporary directory behind
        shutil.rmtree(out, ignore_errors=True)
        raise


def _simulate(
    params: SimParams, roster: Roster, cfg: RoundConfig, out: Path, progress: bool
) -> SimResult:
    rng = np.random.default_rng(params.seed)
    blobs = BlobStore(out / BLOB_DIR)
    n, m = cfg.n_clients, cfg.committee_size
    updates = [rng.uniform(-1.2 * cfg.clip, 1.2 * cfg.clip, cfg.dim) for _ in range(n)]
    weights = [int(w) for w in rng.integers(1, cfg.max_weight + 1, n)]
    n_drop = int(round(params.dropout * n))
    dropped = (
        set(int(i) for i in rng.choice(np.arange(1, n + 1), n_drop, replace=False))
        if n_drop
        else set()
    )
    phases = ("deal", "upload", "unmask")
    drop_phase = {
        i: (
            params.dropout_phase
            if params.dropout_phase != "mixed"
            else phases[int(rng.integers(0, 3))]
        )
        for i in dropped
    }
    member_drop = set(
        int(k) for k in rng.choice(np.arange(1, m + 1), params.committee_dropout, replace=False)
    )

    board = make_board(params.board, cfg, roster.aggregator)
    cfg = board.config
    clients = [
        Client(
            cfg,
            i,
            updates[i - 1],
            weights[i - 1],
            identity=roster.clients[i - 1],
            rng=np.random.default_rng(params.seed * 1000 + i),
            backend=params.backend,
        )
        for i in range(1, n + 1)
    ]
    members = [CommitteeMember(cfg, k, identity=roster.members[k - 1]) for k in range(1, m + 1)]
    client_time = {c.party: 0.0 for c in clients}
    member_time = {mb.party: 0.0 for mb in members}
    sent = {c.party: 0 for c in clients}
    bar = _progress(3 * n + 4 * m + 2, progress)

    def timed(who: dict[int, float], party: int, fn, *args):  # noqa: ANN001, ANN202
        busy0, t0 = board.busy, time.perf_counter()
        out_ = fn(*args)
        who[party] += (time.perf_counter() - t0) - (board.busy - busy0)
        if bar is not None:
            bar.update(1)
        return out_

    for c in clients:
        timed(client_time, c.party, c.register, board)
        sent[c.party] += len(board.events()[-1].body)
    for mb in members:
        timed(member_time, mb.party, mb.register, board)
    _advance_to(board, cfg.register_blocks)
    for mb in members:
        timed(member_time, mb.party, mb.reveal_seed, board)
    for c in clients:
        if drop_phase.get(c.party) == "deal":
            continue
        timed(client_time, c.party, c.deal, board)
        sent[c.party] += len(board.events()[-1].body)
    _advance_to(board, cfg.register_blocks + cfg.deal_blocks)
    masked_sizes = []
    for c in clients:
        if drop_phase.get(c.party) in ("deal", "upload"):
            continue
        timed(client_time, c.party, c.upload, board, blobs)
        size = board.state().masked[c.party][1]
        masked_sizes.append(size)
        sent[c.party] += len(board.events()[-1].body) + size
    _advance_to(board, cfg.register_blocks + cfg.deal_blocks + cfg.upload_blocks)
    for mb in members:
        timed(member_time, mb.party, mb.confirm, board)
    for mb in members:
        if mb.party in member_drop:
            continue
        timed(member_time, mb.party, mb.reveal, board)
    _advance_to(
        board,
        cfg.register_blocks + cfg.deal_blocks + cfg.upload_blocks + cfg.unmask_blocks,
    )
    aggregator = Aggregator(cfg, identity=roster.aggregator, backend=params.backend)
    t0, busy0 = time.perf_counter(), board.busy
    aggregator.aggregate(board, blobs)
    aggregator_s = (time.perf_counter() - t0) - (board.busy - busy0)
    transcript = board.transcript()  # final: the result is posted
    save_round(out, transcript)
    if bar is not None:
        bar.update(1)

    t0 = time.perf_counter()
    report = verify_round(transcript, blobs)
    verifier_s = time.perf_counter() - t0
    # "chain" verification: the proofs were checked by the board (a full-mode contract)
    t0 = time.perf_counter()
    chain_report = verify_round(transcript, blobs, board.head, trust_chain_proofs=True)
    verifier_chain_s = time.perf_counter() - t0
    if bar is not None:
        bar.update(1)
        bar.close()

    included = board.included()
    chain: dict[str, Any] = {}
    if hasattr(board, "address"):
        chain = {"rpc": board.rpc_url, "contract": board.address}
        if params.keep_chain:
            proc = board.keep_process()
            chain["anvil_pid"] = proc.pid if proc is not None else None
    if hasattr(board, "close"):
        board.close()
    mean = aggregator.mean()
    if cfg.has_dp:  # the unweighted mean of the L2-clipped updates, plus the noise
        plain = np.mean([clip_l2(updates[i - 1], cfg.clip) for i in included], axis=0)
        bound = mean_error_bound(cfg.dp, len(included))
    else:
        w = np.array([weights[i - 1] for i in included], dtype=np.float64)
        clipped = np.array([np.clip(updates[i - 1], -cfg.clip, cfg.clip) for i in included])
        plain = (w[:, None] * clipped).sum(axis=0) / w.sum()
        bound = cfg.masking().step
    err = float(np.abs(mean - plain).max())
    active = [c.party for c in clients if drop_phase.get(c.party) != "deal"]
    return SimResult(
        verified=report.ok and chain_report.ok,
        max_abs_error=err,
        error_bound=bound,
        included=len(included),
        seconds={
            "client_mean": float(np.mean([client_time[i] for i in active])),
            "committee_mean": float(
                np.mean([member_time[k] for k in member_time if k not in member_drop])
            ),
            "aggregator": aggregator_s,
            "verifier": verifier_s,
            "verifier_chain": verifier_chain_s,
            "board": board.busy,
        },
        bytes_per_client=float(np.mean([sent[i] for i in active])),
        masked_bytes_per_client=float(np.mean(masked_sizes)) if masked_sizes else 0.0,
        findings=[str(f) for f in report.findings + chain_report.findings],
        params={**_params_dict(params), "bits": cfg.bits, "out": str(out)},
        dp=dp_report(cfg.dp) if cfg.has_dp else None,
        **chain,
    )

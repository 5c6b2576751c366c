"""The public verifier (SPEC.md §6.8): anyone holding a round's transcript and blobs
re-derives the result and names whoever deviated."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from secagg import codec
from secagg.aggregate import (
    compute_sum,
    dp_rotation_seed,
    recover_seeds,
    removal_plan,
    result_blob,
    result_mean,
)
from secagg.blobs import BlobStore, blob_digest
from secagg.boards import MemoryBoard, RuleViolation, event_hash
from secagg.boards.memory import TaskKeys
from secagg.config import RoundConfig
from secagg.dp import dp_report, from_ring, noise_tail
from secagg.errors import ConfigError, InvalidEncoding, ProtocolError
from secagg.messages import TranscriptFile, party_name
from secagg.packing import check_encoding

TRANSCRIPT_FILE = "transcript.msgpack"
HEAD_FILE = "head.hex"
BLOB_DIR = "blobs"


@dataclass(frozen=True)
class Finding:
    """A failed check: the party at fault (e.g. 'aggregator', 'member 3', 'board'),
    the rule and the details."""

    party: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.party}: {self.rule}: {self.detail}"


@dataclass
class RoundReport:
    """What ``verify_round`` found."""

    checks: list[tuple[str, bool]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    included: tuple[int, ...] = ()
    total: np.ndarray | None = None
    mean: np.ndarray | None = None
    dp: dict | None = None  # the round's DP promise (secagg.dp.dp_report), None without DP
    unusable: bool = False  # the input could not be read at all (exit 2, not 1)
    sum_checked: bool = True  # False: no blobs were given, the sum was not recomputed

    @property
    def ok(self) -> bool:
        return not self.findings and all(passed for _, passed in self.checks)

    def check(self, name: str, passed: bool, finding: Finding | None = None) -> bool:
        self.checks.append((name, passed))
        if not passed and finding is not None:
            self.findings.append(finding)
        return passed


def verify_round(
    transcript: TranscriptFile,
    blobs: BlobStore | None,
    expected_head: bytes | None = None,
    *,
    trust_chain_proofs: bool = False,
    task_keys: TaskKeys | None = None,
) -> RoundReport:
    """Replay the board (hash chain, every rule, every proof), then recompute the
    weighted sum from the blobs and the revealed secrets and compare it with the
    aggregator's posted digest. ``expected_head`` (from a trusted source) pins the
    last event too.

    ``trust_chain_proofs`` is "chain" verification (SPEC.md §6.8): the events were read
    from a full-mode round contract, which verified every proof of possession, dealing
    and share post when it accepted them; those proofs are not re-verified, every
    other rule and the sum are. It requires ``expected_head`` from that chain.

    ``task_keys``: the verified keys of the task a round imported its client keys
    from (SPEC.md §7.8 "Imported keys"; ``EvmBoard.task_keys()``); without them a
    ``KeysImported`` event is a finding against the aggregator.

    ``blobs`` None: everything but the sum (an auditor reading a round from the chain
    without its masked vectors); the report says ``sum_checked = False``.

    Never raises on bad input: anything that cannot be read becomes a finding and
    ``unusable``; bounded work (the config's caps are checked when event 0 decodes,
    before any graph or vector is allocated)."""
    try:
        return _verify_round(transcript, blobs, expected_head, trust_chain_proofs, task_keys)
    except Exception as exc:  # noqa: BLE001 - a verifier reports, it does not crash
        report = RoundReport(unusable=True)
        report.check(
            "input is usable",
            False,
            Finding("input", "unusable", f"{type(exc).__name__}: {exc}"),
        )
        return report


def _verify_round(
    transcript: TranscriptFile,
    blobs: BlobStore | None,
    expected_head: bytes | None,
    trust_chain_proofs: bool,
    task_keys: TaskKeys | None = None,
) -> RoundReport:
    report = RoundReport()
    if trust_chain_proofs and expected_head is None:
        report.check(
            "chain verification has the chain's head",
            False,
            Finding("auditor", "head", "trusting the chain's proof checks needs its head"),
        )
        return report
    try:
        board = MemoryBoard.replay(
            transcript, expected_head, proofs=not trust_chain_proofs, task_keys=task_keys
        )
    except RuleViolation as exc:
        f = exc.fault
        # a post its seat's identity did not sign, whose body is not the signed digest's,
        # or signed on another history than this file's: the board's doing (an honest
        # board refuses it), never evidence against the sender
        who = "board" if f.rule in ("signature", "encoding", "view") else f.who
        report.check(
            "transcript replays under the board rules", False, Finding(who, f.rule, f.detail)
        )
        return report
    except (ProtocolError, InvalidEncoding, ConfigError) as exc:
        report.check("transcript hash chain", False, Finding("board", "transcript", str(exc)))
        return report
    report.check(
        "hash chain and board rules (proofs checked on-chain, not re-verified)"
        if trust_chain_proofs
        else "hash chain and board rules (every proof re-verified)",
        True,
    )
    for dealer, keys in sorted(board.malformed.items()):  # optimistic chains only
        report.check(
            f"client {dealer}'s undecodable dealing was excluded by a challenge",
            dealer in board.excluded,
            Finding(
                f"client {dealer}",
                "dealing-encoding",
                f"{sorted(keys)[0]}: accepted on its header, never challenged",
            ),
        )
    st = board.state()
    if st.config.has_dp:
        report.dp = dp_report(st.config.dp)
    if st.result is None:
        report.check(
            "result posted", False, Finding("aggregator", "result", "no result on the board")
        )
        return report
    report.included = st.included or ()
    cfg = st.config
    if blobs is None:
        report.sum_checked = False
        return report
    inputs = []
    for i in report.included:
        digest = st.masked[i][0]
        try:
            data = blobs.get(digest)
        except ProtocolError as exc:
            report.check(
                f"blob of client {i}",
                False,
                Finding("blob store", "masked-input", f"client {i}: {exc}"),
            )
            continue
        try:  # the client signed this blob's digest: a malformed blob is its fault
            inputs.append(check_encoding(data, cfg.vector_length, cfg.bits, f"client {i} blob"))
        except InvalidEncoding as exc:
            report.check(
                f"blob of client {i}", False, Finding(f"client {i}", "masked-input", str(exc))
            )
    if len(inputs) != len(report.included):
        return report
    seeds = recover_seeds(st, removal_plan(st), verify=False)
    total = compute_sum(st, inputs, seeds)
    report.total = total
    digest = blob_digest(result_blob(total, st.config.bits))
    report.check(
        "result digest equals the recomputed sum",
        digest == st.result.digest,
        Finding(
            "aggregator",
            "result",
            f"posted digest {st.result.digest.hex()[:16]}… != recomputed {digest.hex()[:16]}…",
        ),
    )
    report.check(
        "total weight equals the recomputed sum's weight coordinate",
        int(total[-1]) == st.result.total_weight,
        Finding(
            "aggregator",
            "result",
            f"posted total weight {st.result.total_weight} != {int(total[-1])}",
        ),
    )
    if cfg.has_dp:
        _check_dp_sum(report, cfg, total)
        if int(total[-1]) > 0:
            report.mean = result_mean(cfg, total, dp_rotation_seed(st))
        return report
    # sanity: a sum of |U| honest weighted inputs cannot exceed these (SPEC.md §6.8)
    n_u, w_max = len(report.included), cfg.max_weight
    top = n_u * w_max * ((1 << cfg.quant_bits) - 1)
    report.check(
        "total weight within |U| * max_weight",
        1 <= int(total[-1]) <= n_u * w_max,
        Finding("included clients", "range", f"total weight {int(total[-1])} > {n_u * w_max}"),
    )
    report.check(
        "every coordinate within |U| * max_weight * (2^q - 1)",
        int(total[:-1].max(initial=0)) <= top,
        Finding(
            "included clients",
            "range",
            f"a coordinate of the sum is {int(total[:-1].max(initial=0))} > {top}: "
            "some included input was out of range (masked: not attributable)",
        ),
    )
    if int(total[-1]) > 0:
        report.mean = result_mean(cfg, total)
    return report


def _check_dp_sum(report: RoundReport, cfg, total: np.ndarray) -> None:  # noqa: ANN001
    """DP sanity (SPEC.md §10.6): every weight is 1, so the weight coordinate is |U|; every
    centred coordinate is within |U| * floor(l2_bound) + the noise tail (exceeded with
    probability <= 2^tail_log2 by an honest round)."""
    n_u, dp = len(report.included), cfg.dp
    report.check(
        "|U| >= dp.min_clients (the noise the promised epsilon needs)",
        n_u >= dp.min_clients,
        Finding("board", "included", f"|U| = {n_u} < dp.min_clients = {dp.min_clients}"),
    )
    report.check(
        "total weight equals |U| (DP: every weight is 1)",
        int(total[-1]) == n_u,
        Finding("included clients", "range", f"total weight {int(total[-1])} != |U| = {n_u}"),
    )
    top = n_u * int(dp.l2_bound) + noise_tail(dp, n_u)
    big = int(np.abs(from_ring(total[:-1], cfg.bits)).max(initial=0))
    report.check(
        "every coordinate within |U| * l2_bound + noise tail",
        big <= top,
        Finding(
            "included clients",
            "range",
            f"a coordinate of the sum is {big} in absolute value > {top}: some included "
            "input was out of range (masked: not attributable)",
        ),
    )


def compare_transcripts(local: TranscriptFile, chain: TranscriptFile) -> Finding | None:
    """None if ``local`` (a round directory's transcript) is the chain's event for
    event; else a ``Finding`` naming the first event that differs, whose it is and
    which fields (SPEC.md §7.6)."""
    fields = ("height", "role", "sender", "body", "digest", "view", "sig", "prev")
    for mine, theirs in zip(local.events, chain.events, strict=False):
        if mine == theirs:
            continue
        differ = [f for f in fields if getattr(mine, f) != getattr(theirs, f)]
        what = _event_name(theirs)
        detail = f"event {theirs.seq} ({what}) differs from the chain's: {', '.join(differ)}"
        if "body" in differ:
            detail += _body_difference(mine.body, theirs.body)
        return Finding("round directory", "chain", detail)
    if len(local.events) != len(chain.events):
        return Finding(
            "round directory",
            "chain",
            f"{len(local.events)} events, the chain has {len(chain.events)}",
        )
    return None


def _event_name(ev) -> str:  # noqa: ANN001
    try:
        kind = type(codec.decode(ev.body)).__name__
    except (InvalidEncoding, ConfigError):
        kind = "undecodable body"
    return f"{party_name(ev.role, ev.sender)}'s {kind}"


def _body_difference(mine: bytes, theirs: bytes) -> str:
    """': field digest 1a2b… (chain 3c4d…)' for the message fields that differ."""
    import dataclasses

    try:
        a, b = codec.decode(mine), codec.decode(theirs)
    except (InvalidEncoding, ConfigError):
        return ""
    if type(a) is not type(b) or not dataclasses.is_dataclass(a):
        return f": a {type(a).__name__} in place of the chain's {type(b).__name__}"
    out = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x != y:
            show = (lambda v: v.hex()[:16] + "…") if isinstance(x, bytes) else repr
            out.append(f"{f.name} {show(x)} (chain {show(y)})")
    return ": " + "; ".join(out) if out else ""


def chain_transcript(
    rpc: str, contract: str, config: RoundConfig | None = None
) -> tuple[TranscriptFile, bytes, str, TaskKeys]:
    """(transcript rebuilt from the round contract's logs, the contract's ``head()``,
    the board mode, the verified keys of the tasks it imported client keys from) —
    ``EvmBoard.attach`` checks the contract's code and that the rebuilt head is
    ``head()``; ``EvmBoard.task_keys`` re-checks every task registration (SPEC.md §7.8).
    ``config`` for a DP round (the chain holds its dp record as a hash only)."""
    from secagg.boards.evm import EvmBoard

    board = EvmBoard.attach(rpc, contract, config=config)
    transcript = board.transcript()
    head = bytes(board.contract.functions.head().call())
    return transcript, head, board.mode, board.task_keys()


def save_round(out_dir: Path, transcript: TranscriptFile) -> Path:
    """Write transcript.msgpack and head.hex (the last event's hash, to publish or
    compare with the chain's); blobs are already under out_dir/blobs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TRANSCRIPT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(codec.encode(transcript))
    tmp.replace(path)
    (out_dir / HEAD_FILE).write_text(event_hash(transcript.events[-1]).hex() + "\n")
    return path


def load_round(round_dir: Path) -> tuple[TranscriptFile, BlobStore]:
    """Read a round directory (transcript.msgpack + blobs/)."""
    path = round_dir / TRANSCRIPT_FILE
    if not path.exists():
        raise ProtocolError(f"{path}: no transcript")
    return (
        codec.decode(path.read_bytes(), TranscriptFile),
        BlobStore(round_dir / BLOB_DIR, create=False),
    )


__all__ = [
    "Finding",
    "RoundReport",
    "chain_transcript",
    "compare_transcripts",
    "verify_round",
    "save_round",
    "load_round",
    "party_name",
]

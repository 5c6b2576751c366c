"""Round configuration (SPEC.md §6.1) — validated on construction."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

import msgpack

from secagg.codec import Bool, Bytes, Float, Kind, ListOf, Str, UInt, message, unpack_value
from secagg.codec import record as codec_record
from secagg.dp import NO_DP, DpConfig, overflow_bits, padded_dim
from secagg.errors import ConfigError, InvalidEncoding
from secagg.quantize import MaskingConfig

# caps checked before anything is allocated (SPEC.md §6.1): ids stay below 2^24 so that
# role * 2^24 + id (the proof of possession's party) never collides across roles
MAX_CLIENTS = 1 << 20
MAX_COMMITTEE = 255  # the contract's share bitmap
MAX_GRAPH_EDGES = 1 << 24  # n*K/2: a complete graph on more than ~5800 clients is refused
MAX_DIM = 1 << 28
_REGULAR = re.compile(r"regular:[1-9][0-9]{0,9}")


def confirm_quorum(m: int, t: int) -> int:
    """The smallest Q with 2Q - m >= t + 1: two sets of Q members share at least t + 1,
    so (at most t corrupt) an honest member is in both, and it confirms one head only
    (SPEC.md §6.11)."""
    return (m + t + 2) // 2


def default_min_included(n: int) -> int:
    """floor(n/3) + 2 (at most n): with fewer than n/3 of the seated clients colluding
    with the server, U then holds the target and at least one other honest client
    (SPEC.md §6.12)."""
    return min(n, max(2, n // 3 + 2))


def default_min_neighbours(n: int, graph: str) -> int:
    """1 on a complete graph (min_included already gives every included client an
    honest included neighbour); floor(K/2) + 1 on regular:K, so isolating a client
    among colluders needs a majority of its K random neighbours corrupt
    (SPEC.md §6.12)."""
    k = parse_graph(graph, n)
    return 1 if k is None else k // 2 + 1


def parse_graph(spec: str, n_clients: int) -> int | None:
    """'complete' -> None; 'regular:K' -> K (validated against n). Only the canonical
    spellings are accepted (no spaces, signs, leading zeros or non-ASCII digits)."""
    if spec == "complete":
        return None
    if isinstance(spec, str) and spec.startswith("regular:"):
        if not _REGULAR.fullmatch(spec):
            raise ConfigError(
                f"graph: {spec!r} is not regular:K with K written in ASCII digits, no sign, "
                "spaces or leading zeros"
            )
        k = int(spec[len("regular:") :])
        if not 1 <= k < n_clients:
            raise ConfigError(f"graph: degree K={k} must be in [1, n_clients-1={n_clients - 1}]")
        if (k * n_clients) % 2:
            raise ConfigError(
                f"graph: a {k}-regular graph on n={n_clients} vertices needs n*K even"
            )
        return k
    raise ConfigError(f"graph: {spec!r} is neither 'complete' nor 'regular:K'")


@dataclasses.dataclass(frozen=True)
class Int(Kind):
    """A signed integer in [-2^(bits-1), 2^(bits-1))."""

    bits: int

    def check(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidEncoding(f"{where}: expected an integer, got {type(value).__name__}")
        if not -(1 << (self.bits - 1)) <= value < (1 << (self.bits - 1)):
            raise InvalidEncoding(f"{where}: {value} outside int{self.bits}")
        return value


# the DP parameters of a round (SPEC.md §10.6): the 12 DpConfig fields in order
DP_RECORD = codec_record(
    DpConfig,
    ("mechanism", Str(16)),
    ("epsilon", Float()),
    ("delta", Float()),
    ("rounds", UInt(32)),
    ("sampling_rate", Float()),
    ("min_clients", UInt(32)),
    ("l2_clip", Float()),
    ("dim", UInt(32)),
    ("noise", Float()),
    ("scale", Float()),
    ("beta", Float()),
    ("tail_log2", Int(16)),
)
_DP_FLOATS = ("epsilon", "delta", "sampling_rate", "l2_clip", "noise", "scale", "beta")
_DP_INTS = ("rounds", "min_clients", "dim", "tail_log2")


def dp_record_bytes(dp: DpConfig) -> bytes:
    """The msgpack bytes of the dp record exactly as they sit inside the RoundConfig's
    codec encoding (a 12-element array); config_packed commits to their keccak256."""
    return msgpack.packb(DP_RECORD.dump(dp), use_bin_type=True)


DP_RECORD_MAX_BYTES = 256  # a calibrated DDG record's msgpack bytes are 73


def dp_record_decode(data: bytes, where: str = "dp") -> DpConfig:
    """The ``DpConfig`` whose ``dp_record_bytes`` are ``data`` (validated: field types,
    the DpConfig's own checks, and the one canonical encoding); ``InvalidEncoding``
    naming ``where`` and the field otherwise."""
    if not isinstance(data, bytes) or not 0 < len(data) <= DP_RECORD_MAX_BYTES:
        raise InvalidEncoding(f"{where}: expected 1..{DP_RECORD_MAX_BYTES} bytes of dp record")
    dp = _normalise_dp(DP_RECORD.check(unpack_value(data, where), where))
    if dp_record_bytes(dp) != data:
        raise InvalidEncoding(f"{where}: not the canonical encoding of its dp record")
    return dp


def _normalise_dp(dp: object) -> DpConfig:
    """One encoding per DpConfig: float fields as floats, int fields as ints."""
    if dp is None:
        return NO_DP
    if not isinstance(dp, DpConfig):
        raise ConfigError(f"dp: expected a DpConfig, got {type(dp).__name__}")
    fixed: dict[str, Any] = {f: float(getattr(dp, f)) for f in _DP_FLOATS}
    fixed.update({f: int(getattr(dp, f)) for f in _DP_INTS})
    if all(type(getattr(dp, f)) is type(v) for f, v in fixed.items()):
        return dp
    return dataclasses.replace(dp, **fixed)


@message(
    1,
    ("chain_id", UInt(256)),
    ("board", Bytes(20)),
    ("round_id", UInt(64)),
    ("n_clients", UInt(32)),
    ("committee_size", UInt(16)),
    ("threshold", UInt(16)),
    ("graph", Str(32)),
    ("dim", UInt(32)),
    ("quant_bits", UInt(8)),
    ("bits", UInt(8)),
    ("clip", Float()),
    ("max_weight", UInt(32)),
    ("register_blocks", UInt(32)),
    ("deal_blocks", UInt(32)),
    ("upload_blocks", UInt(32)),
    ("unmask_blocks", UInt(32)),
    ("honest_majority", Bool()),
    ("aggregator", Bytes(20)),
    ("members", ListOf(Bytes(20), MAX_COMMITTEE)),
    ("clients", ListOf(Bytes(20), MAX_CLIENTS)),
    ("min_included", UInt(32)),
    ("min_neighbours", UInt(32)),
    ("confirm_quorum", UInt(16)),
    ("optimistic", Bool()),
    ("challenge_blocks", UInt(32)),
    ("stake", UInt(256)),
    ("bond", UInt(256)),
    ("forfeit_to", Bytes(20)),
    ("dp", DP_RECORD),
)
@dataclass(frozen=True)
class RoundConfig:
    """Everything fixed before a round starts.

    n_clients clients 1..n, committee members 1..m with threshold t (any t+1 of them
    reconstruct, t learn nothing; 2t < m unless honest_majority is False), the mask
    graph ('complete' = SecAgg, 'regular:K' = SecAgg+), the masking parameters
    (dim coordinates, quant_bits q, modulus bits b, clip c, max_weight W) and the
    length of each phase in board blocks.

    The roster (SPEC.md §6.9): ``aggregator`` and ``members`` (seat k = members[k-1])
    are identity addresses; ``clients`` lists the identity of every client seat
    (closed membership) or is empty (open membership: any identity, one seat each).
    ``min_included`` and ``min_neighbours`` bound the included set (§6.12; 0 = the
    documented default), ``confirm_quorum`` the member confirmations before anyone
    decrypts (§6.11; 0 = the smallest safe quorum). ``optimistic``,
    ``challenge_blocks``, ``stake``, ``bond`` and ``forfeit_to`` (where slashed stakes
    and forfeited bonds go: a task contract, §7.9; zero: the round's own pool, §7.7) are
    the round contract's mode (§7.3); a memory board runs full mode only.

    ``dp`` (SPEC.md §10.6): distributed differential privacy, or ``NO_DP`` (mechanism
    "none": the quantizer path, unchanged). With DP each client privatizes its update
    (clip to L2 norm ``clip`` = dp.l2_clip, rotate, round, add noise) instead of
    quantizing it, the masked vector has d' + 1 coordinates (``vector_length``; the
    weight coordinate is 1: an unweighted mean), ``bits`` must be at least
    ``overflow_bits(dp, n_clients)``, ``quant_bits`` is unused and ``max_weight`` only
    bounds the weight a client may report (it is not summed). dp.min_clients must not
    exceed ``min_included``: the board aborts any round with fewer included clients, so
    every result carries the noise the promised epsilon needs (to allow for t included
    clients whose noise the adversary knows, use dp.min_clients = min_included - t)."""

    chain_id: int
    board: bytes
    round_id: int
    n_clients: int
    committee_size: int
    threshold: int
    graph: str = "complete"
    dim: int = 1000
    quant_bits: int = 16
    bits: int = 32
    clip: float = 1.0
    max_weight: int = 1
    register_blocks: int = 10
    deal_blocks: int = 10
    upload_blocks: int = 10
    unmask_blocks: int = 10
    honest_majority: bool = True
    aggregator: bytes = bytes(20)
    members: tuple[bytes, ...] = ()
    clients: tuple[bytes, ...] = ()
    min_included: int = 0
    min_neighbours: int = 0
    confirm_quorum: int = 0
    optimistic: bool = False
    challenge_blocks: int = 0
    stake: int = 0
    bond: int = 0
    forfeit_to: bytes = bytes(20)
    dp: DpConfig = NO_DP

    def __post_init__(self) -> None:
        if not isinstance(self.board, bytes) or len(self.board) != 20:
            raise ConfigError("board: expected a 20-byte address")
        for name in ("n_clients", "committee_size", "threshold", "dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {v!r}")
        if self.n_clients > MAX_CLIENTS:
            raise ConfigError(f"n_clients: {self.n_clients} > the cap {MAX_CLIENTS}")
        if self.committee_size > MAX_COMMITTEE:
            raise ConfigError(f"committee_size: {self.committee_size} > the cap {MAX_COMMITTEE}")
        if self.dim > MAX_DIM:
            raise ConfigError(f"dim: {self.dim} > the cap {MAX_DIM}")
        m, t = self.committee_size, self.threshold
        if t >= m:
            raise ConfigError(
                f"threshold: t={t} must be < committee_size m={m} (t+1 must be able to reconstruct)"
            )
        if self.honest_majority and 2 * t >= m:
            raise ConfigError(
                f"threshold: 2t < m required (t={t}, m={m}); set honest_majority=False to allow"
            )
        if self.n_clients < 2:
            raise ConfigError(f"n_clients: a sum needs at least 2 clients, got {self.n_clients}")
        k = parse_graph(self.graph, self.n_clients)
        degree = self.n_clients - 1 if k is None else k
        if self.n_clients * degree // 2 > MAX_GRAPH_EDGES:
            raise ConfigError(
                f"graph: {self.n_clients} clients on {self.graph} make "
                f"{self.n_clients * degree // 2} edges > the cap {MAX_GRAPH_EDGES}"
            )
        self._check_roster(degree)
        if not isinstance(self.clip, float) or not math.isfinite(self.clip) or self.clip <= 0:
            raise ConfigError(f"clip: must be a finite float > 0, got {self.clip!r}")
        for name in ("register_blocks", "deal_blocks", "upload_blocks", "unmask_blocks"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {v!r}")
        object.__setattr__(self, "dp", _normalise_dp(self.dp))
        if self.has_dp:
            self._check_dp()
        elif self.dp != NO_DP:
            raise ConfigError("dp: mechanism 'none' is written as the canonical NO_DP record only")
        self.masking()  # overflow and range checks, ConfigError naming the numbers

    @property
    def has_dp(self) -> bool:
        """True iff the round adds distributed DP noise (dp is not NO_DP)."""
        return self.dp.mechanism != "none"

    def _check_dp(self) -> None:
        dp = self.dp
        if dp.dim != self.dim:
            raise ConfigError(f"dp: dim {dp.dim} != the round's dim {self.dim}")
        if dp.l2_clip != self.clip:
            raise ConfigError(
                f"clip: with DP the round's clip is the L2 clip: {self.clip} != dp.l2_clip "
                f"{dp.l2_clip}"
            )
        if padded_dim(self.dim) > MAX_DIM:
            raise ConfigError(f"dp: padded dimension {padded_dim(self.dim)} > the cap {MAX_DIM}")
        if dp.min_clients > self.min_included:
            raise ConfigError(
                f"dp: min_clients={dp.min_clients} > min_included={self.min_included}: a round "
                f"may complete with {self.min_included} included clients, whose noise cannot "
                f"give epsilon={dp.epsilon}; raise min_included or recalibrate the noise for "
                f"{self.min_included} clients"
            )
        need = overflow_bits(dp, self.n_clients)
        if self.bits < need:
            raise ConfigError(
                f"bits: {self.bits} < overflow_bits(dp, n_clients={self.n_clients}) = {need} "
                f"(sum bound plus the noise tail, wrap-around <= 2^{dp.tail_log2})"
            )

    def _check_roster(self, degree: int) -> None:
        n, m, t = self.n_clients, self.committee_size, self.threshold
        if not isinstance(self.aggregator, bytes) or len(self.aggregator) != 20:
            raise ConfigError("aggregator: expected a 20-byte address")
        if len(self.members) != m:
            raise ConfigError(
                f"members: the roster names {len(self.members)} member identities, "
                f"committee_size is {m}"
            )
        if len(set(self.members)) != m or bytes(20) in self.members:
            raise ConfigError("members: identities must be distinct and non-zero")
        if self.clients and len(self.clients) != n:
            raise ConfigError(
                f"clients: the roster names {len(self.clients)} client identities, "
                f"n_clients is {n} (or leave it empty for open membership)"
            )
        if len(set(self.clients)) != len(self.clients) or bytes(20) in self.clients:
            raise ConfigError("clients: identities must be distinct and non-zero")
        if self.min_included == 0:
            object.__setattr__(self, "min_included", default_min_included(n))
        if self.min_neighbours == 0:
            object.__setattr__(self, "min_neighbours", default_min_neighbours(n, self.graph))
        if self.confirm_quorum == 0:
            object.__setattr__(self, "confirm_quorum", confirm_quorum(m, t))
        if not 2 <= self.min_included <= n:
            raise ConfigError(f"min_included: {self.min_included} must be in [2, n={n}]")
        if not 1 <= self.min_neighbours <= degree:
            raise ConfigError(
                f"min_neighbours: {self.min_neighbours} must be in [1, degree={degree}]"
            )
        if not confirm_quorum(m, t) <= self.confirm_quorum <= m:
            raise ConfigError(
                f"confirm_quorum: {self.confirm_quorum} must be in "
                f"[ceil((m+t+1)/2)={confirm_quorum(m, t)}, m={m}]"
            )
        if not isinstance(self.forfeit_to, bytes) or len(self.forfeit_to) != 20:
            raise ConfigError("forfeit_to: expected a 20-byte address")
        if not self.optimistic and (
            self.challenge_blocks or self.stake or self.bond or any(self.forfeit_to)
        ):
            raise ConfigError(
                "challenge_blocks, stake, bond, forfeit_to: only an optimistic round has them"
            )

    def masking(self) -> MaskingConfig:
        """The masking parameters; refuses n*W*(2^q-1) >= 2^b. With DP the quantizer is
        not used: the config returned then only checks a reported weight (1..max_weight,
        not summed); its bits (64) and quant_bits (1) are placeholders, the DP modulus
        rule is ``overflow_bits`` (checked on construction)."""
        if self.has_dp:
            return MaskingConfig(64, 1, self.clip, self.max_weight, self.n_clients)
        return MaskingConfig(self.bits, self.quant_bits, self.clip, self.max_weight, self.n_clients)

    @property
    def degree(self) -> int:
        """Neighbours per client in the mask graph."""
        k = parse_graph(self.graph, self.n_clients)
        return self.n_clients - 1 if k is None else k

    def member_identity(self, member: int) -> bytes:
        return self.members[member - 1]

    def client_identity(self, client: int) -> bytes | None:
        """The identity seat ``client`` requires, or None (open membership)."""
        return self.clients[client - 1] if self.clients else None

    @property
    def vector_length(self) -> int:
        """dim + 1 (the weight rides as the last coordinate); with DP d' + 1, d' the
        rotation's padded dimension (the next power of two >= dim)."""
        if self.has_dp:
            return padded_dim(self.dim) + 1
        return self.dim + 1

"""Round configuration (SPEC.md §6.1) — validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from secagg.codec import Bool, Bytes, Float, Str, UInt, message
from secagg.errors import ConfigError
from secagg.quantize import MaskingConfig


def parse_graph(spec: str, n_clients: int) -> int | None:
    """'complete' -> None; 'regular:K' -> K (validated against n)."""
    if spec == "complete":
        return None
    if spec.startswith("regular:"):
        try:
            k = int(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"graph: {spec!r} is not regular:K with an integer K") from None
        if not 1 <= k < n_clients:
            raise ConfigError(f"graph: degree K={k} must be in [1, n_clients-1={n_clients - 1}]")
        if (k * n_clients) % 2:
            raise ConfigError(
                f"graph: a {k}-regular graph on n={n_clients} vertices needs n*K even"
            )
        return k
    raise ConfigError(f"graph: {spec!r} is neither 'complete' nor 'regular:K'")


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
)
@dataclass(frozen=True)
class RoundConfig:
    """Everything fixed before a round starts.

    n_clients clients 1..n, committee members 1..m with threshold t (any t+1 of them
    reconstruct, t learn nothing; 2t < m unless honest_majority is False), the mask
    graph ('complete' = SecAgg, 'regular:K' = SecAgg+), the masking parameters
    (dim coordinates, quant_bits q, modulus bits b, clip c, max_weight W) and the
    length of each phase in board blocks."""

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

    def __post_init__(self) -> None:
        if not isinstance(self.board, bytes) or len(self.board) != 20:
            raise ConfigError("board: expected a 20-byte address")
        for name in ("n_clients", "committee_size", "threshold", "dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {v!r}")
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
        parse_graph(self.graph, self.n_clients)
        if not isinstance(self.clip, float) or not math.isfinite(self.clip) or self.clip <= 0:
            raise ConfigError(f"clip: must be a finite float > 0, got {self.clip!r}")
        for name in ("register_blocks", "deal_blocks", "upload_blocks", "unmask_blocks"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {v!r}")
        self.masking()  # overflow and range checks, ConfigError naming the numbers

    def masking(self) -> MaskingConfig:
        """The masking parameters; refuses n*W*(2^q-1) >= 2^b."""
        return MaskingConfig(self.bits, self.quant_bits, self.clip, self.max_weight, self.n_clients)

    @property
    def degree(self) -> int:
        """Neighbours per client in the mask graph."""
        k = parse_graph(self.graph, self.n_clients)
        return self.n_clients - 1 if k is None else k

    @property
    def vector_length(self) -> int:
        """dim + 1: the weight rides as the last coordinate."""
        return self.dim + 1

"""Mask graph, round seed and mask-seed derivation (SPEC.md §6.3)."""

from __future__ import annotations

from pvss.group import G1Point
from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF, Context, keccak256
from secagg.config import RoundConfig, parse_graph

DST_ROUND_SEED = b"pvss-secagg/v1/round-seed"
DST_GRAPH = b"pvss-secagg/v1/graph"
DST_MASK_SEED = b"pvss-secagg/v1/mask-seed"

DealingKey = tuple[int, int, int]  # (dealer, purpose, partner)


def compute_round_seed(registration_head: bytes, reveals: list[G1Point]) -> bytes:
    """keccak256(DST_ROUND_SEED || registration head || Gamma_1 || ... || Gamma_m):
    the registrations, and every member's seed reveal (SPEC.md §6.10), which nobody
    can choose once the keys are registered."""
    return keccak256(DST_ROUND_SEED + registration_head + b"".join(g.to_bytes() for g in reveals))


def _permutation(n: int, seed: bytes) -> list[int]:
    """Fisher–Yates over 1..n with
    j = uint256(keccak256(DST_GRAPH || seed || uint32 i)) mod (i+1)."""
    perm = list(range(1, n + 1))
    for i in range(n - 1, 0, -1):
        j = int.from_bytes(keccak256(DST_GRAPH + seed + i.to_bytes(4, "big")), "big") % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def compute_mask_graph(config: RoundConfig, round_seed: bytes) -> dict[int, tuple[int, ...]]:
    """Neighbours of every client 1..n.

    complete: everyone. regular:K: a circulant graph relabelled by a seeded random
    permutation pi — pi[i] is joined to pi[i +- 1 .. K//2] (indices mod n) and, for odd
    K, to pi[i + n/2]. Every vertex has exactly K neighbours; nobody can choose the
    graph after registration closes because the seed commits to every registration."""
    n = config.n_clients
    k = parse_graph(config.graph, n)
    if k is None:
        return {i: tuple(j for j in range(1, n + 1) if j != i) for i in range(1, n + 1)}
    perm = _permutation(n, round_seed)
    adj: dict[int, set[int]] = {i: set() for i in range(1, n + 1)}
    for pos in range(n):
        a = perm[pos]
        for step in range(1, k // 2 + 1):
            b = perm[(pos + step) % n]
            adj[a].add(b)
            adj[b].add(a)
        if k % 2:
            b = perm[(pos + n // 2) % n]
            adj[a].add(b)
            adj[b].add(a)
    return {i: tuple(sorted(v)) for i, v in adj.items()}


def edges(graph: dict[int, tuple[int, ...]]) -> list[tuple[int, int]]:
    """Every edge once as (i, j) with i < j: i deals the pair dealing, j receives it."""
    return sorted((i, j) for i, nbrs in graph.items() for j in nbrs if i < j)


def dealing_context(config: RoundConfig, key: DealingKey) -> Context:
    """The PVSS context of dealing (dealer, purpose, partner) in this round."""
    dealer, purpose, partner = key
    return Context(config.chain_id, config.board, config.round_id, dealer, purpose, partner)


def self_key(client: int) -> DealingKey:
    return (client, PURPOSE_SELF, 0)


def pair_key(i: int, j: int) -> DealingKey:
    """The pair dealing of edge {i, j}: dealt by min, received by max."""
    lo, hi = min(i, j), max(i, j)
    return (lo, PURPOSE_PAIR, hi)


def pair_sign(client: int, partner: int) -> int:
    """+1 if the client adds the pair mask (client < partner), -1 if it subtracts it."""
    return 1 if client < partner else -1


def compute_mask_seed(context: Context, secret: G1Point) -> bytes:
    """seed = keccak256(DST_MASK_SEED || context(69) || S(64)): 32 bytes for ChaCha20."""
    return keccak256(DST_MASK_SEED + context.to_bytes() + secret.to_bytes())

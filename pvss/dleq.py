"""Chaum–Pedersen proofs of discrete-log equality (SPEC.md §3.3).

Statement: (B1, X1, B2, X2) with X1 = x*B1 and X2 = x*B2. Proof (compact form):
the challenge e and the response z. The prover picks w, commits A1 = w*B1,
A2 = w*B2, takes e = challenge(prefix || A1 || A2) and answers z = w - e*x (mod r).
The verifier recomputes A1 = z*B1 + e*X1, A2 = z*B2 + e*X2 and checks e.

The transcript prefix is built by the caller and must contain the whole statement;
see ``pvss.scrape`` (decrypted shares) and ``pvss.keys`` (proof of possession).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from pvss.errors import InvalidEncoding, InvalidProof
from pvss.group import (
    ORDER,
    FixedBaseTable,
    G1Point,
    msm,
    random_scalar,
    scalar_from_bytes,
    scalar_to_bytes,
)
from pvss.transcript import Transcript

R = int(ORDER)
DLEQ_PROOF_BYTES = 64


@dataclass(frozen=True)
class DleqProof:
    """(e, z): challenge and response, both scalars in [0, r)."""

    challenge: int  # e
    response: int  # z

    def __post_init__(self) -> None:
        for name in ("challenge", "response"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 0 <= v < R:
                raise InvalidEncoding(f"dleq.{name}: not a scalar in [0, r)")

    def to_bytes(self) -> bytes:
        """64 bytes: e || z, each 32 bytes big-endian."""
        return scalar_to_bytes(self.challenge) + scalar_to_bytes(self.response)

    @classmethod
    def from_bytes(cls, data: bytes, *, field: str = "dleq") -> DleqProof:
        if len(data) != DLEQ_PROOF_BYTES:
            raise InvalidEncoding(f"{field}: expected {DLEQ_PROOF_BYTES} bytes, got {len(data)}")
        return cls(
            scalar_from_bytes(data[:32], field=f"{field}.challenge"),
            scalar_from_bytes(data[32:], field=f"{field}.response"),
        )


def prove_dleq(
    x: int, base1: G1Point, base2: G1Point, prefix: Transcript, *, nonce: int | None = None
) -> DleqProof:
    """Prove log_{base1}(x*base1) = log_{base2}(x*base2); ``prefix`` holds the statement."""
    while True:
        w = nonce if nonce is not None else random_scalar()
        a1 = base1 * w
        a2 = base2 * w
        e = copy.deepcopy(prefix).point(a1).point(a2).challenge()
        if e or nonce is not None:
            return DleqProof(e, (w - e * x) % R)


def recompute_commitments(
    proof: DleqProof,
    base1: G1Point,
    pub1: G1Point,
    base2: G1Point,
    pub2: G1Point,
    tables1: tuple[FixedBaseTable, FixedBaseTable] | None = None,
) -> tuple[G1Point, G1Point]:
    """A1 = z*B1 + e*X1, A2 = z*B2 + e*X2 (what the verifier hashes). ``tables1`` are
    precomputed tables of (B1, X1) when those points recur (H and a member's key)."""
    e, z = proof.challenge, proof.response
    if tables1 is not None:
        a1 = tables1[0].mul(z) + tables1[1].mul(e)
    else:
        a1 = msm([base1, pub1], [z, e])
    return a1, msm([base2, pub2], [z, e])


def verify_dleq(
    proof: DleqProof,
    base1: G1Point,
    pub1: G1Point,
    base2: G1Point,
    pub2: G1Point,
    prefix: Transcript,
    *,
    what: str = "dleq",
    tables1: tuple[FixedBaseTable, FixedBaseTable] | None = None,
) -> None:
    """Raise ``InvalidProof`` unless the proof verifies for the statement in ``prefix``."""
    a1, a2 = recompute_commitments(proof, base1, pub1, base2, pub2, tables1)
    if copy.deepcopy(prefix).point(a1).point(a2).challenge() != proof.challenge:
        raise InvalidProof(f"{what}: DLEQ proof does not verify")

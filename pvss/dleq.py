"""Chaum–Pedersen proofs of discrete-log equality (SPEC.md §3.3).

Statement: (B1, X1, B2, X2) with X1 = x*B1 and X2 = x*B2. Proof (commitment form):
the commitments A1 = w*B1, A2 = w*B2 and the response z = w - e*x (mod r), where
e = challenge(prefix || A1 || A2). The verifier recomputes e from the proof and checks
z*B1 + e*X1 = A1 and z*B2 + e*X2 = A2. Carrying A1, A2 (rather than e) costs 96 bytes
per proof and lets many proofs be checked with one random linear combination
(``pvss.scrape.is_valid_share_batch``, SPEC.md §4.5).

The transcript prefix is built by the caller and must contain the whole statement;
see ``pvss.scrape`` (decrypted shares).
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
DLEQ_PROOF_BYTES = 64 + 64 + 32


@dataclass(frozen=True)
class DleqProof:
    """(A1, A2, z): the prover's commitments and its response (a scalar in [0, r))."""

    a1: G1Point
    a2: G1Point
    response: int  # z

    def __post_init__(self) -> None:
        for name in ("a1", "a2"):
            if not isinstance(getattr(self, name), G1Point):
                raise InvalidEncoding(f"dleq.{name}: not a point")
        if not isinstance(self.response, int) or not 0 <= self.response < R:
            raise InvalidEncoding("dleq.response: not a scalar in [0, r)")

    def to_bytes(self) -> bytes:
        """160 bytes: A1 || A2 || z (points as in §2.3, z 32 bytes big-endian)."""
        return self.a1.to_bytes() + self.a2.to_bytes() + scalar_to_bytes(self.response)

    @classmethod
    def from_bytes(cls, data: bytes, *, field: str = "dleq") -> DleqProof:
        if len(data) != DLEQ_PROOF_BYTES:
            raise InvalidEncoding(f"{field}: expected {DLEQ_PROOF_BYTES} bytes, got {len(data)}")
        return cls(
            G1Point.from_bytes(data[:64], field=f"{field}.a1"),
            G1Point.from_bytes(data[64:128], field=f"{field}.a2"),
            scalar_from_bytes(data[128:], field=f"{field}.response"),
        )

    def challenge(self, prefix: Transcript) -> int:
        """e = challenge(prefix || A1 || A2)."""
        return copy.deepcopy(prefix).point(self.a1).point(self.a2).challenge()


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
            return DleqProof(a1, a2, (w - e * x) % R)


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
    """Raise ``InvalidProof`` unless z*B1 + e*X1 = A1 and z*B2 + e*X2 = A2 for the
    challenge e of the statement in ``prefix``. ``tables1`` are precomputed tables of
    (B1, X1) when those points recur (H and a member's key)."""
    e, z = proof.challenge(prefix), proof.response
    if tables1 is not None:
        a1 = tables1[0].mul(z) + tables1[1].mul(e)
    else:
        a1 = msm([base1, pub1], [z, e])
    if a1 != proof.a1:
        raise InvalidProof(f"{what}: DLEQ proof does not verify (first base)")
    if msm([base2, pub2], [z, e]) != proof.a2:
        raise InvalidProof(f"{what}: DLEQ proof does not verify (second base)")

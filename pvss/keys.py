"""Key pairs and Schnorr proofs of possession (SPEC.md §3.4).

sk is uniform in [1, r); pk = sk*H (keys live on the second generator so that a
decrypted share S_k = sk^-1 * s_hat_k is a multiple of H, like the secret S = s*H).
A party registers pk with a Schnorr proof of possession bound to the board
(chain id, contract address) and to its party id, so a key cannot be replayed on
another board or under another id, and nobody can register a key it cannot use.

PoP: w random, A = w*H, e = keccak256(DST_POP || chainId || board || uint64 round ||
uint32 party || pk || A) mod r, z = w - e*sk. Verify: A = z*H + e*pk, recompute e. The
round id stops a registration of one round being replayed into another round on the
same board.

Seed reveal (SPEC.md §6.10): a member's contribution to the mask-graph seed is a
verifiable unpredictable function of the key it registered: Gamma = sk*H_SEED with a
DLEQ proof that log_H pk = log_{H_SEED} Gamma. H_SEED is hashed to the curve like H, so
nobody knows its logarithm and Gamma cannot be computed from pk; and Gamma is unique
for pk, so once pk is on the board the member can withhold its reveal but not choose it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pvss.dleq import DleqProof, prove_dleq, verify_dleq
from pvss.errors import InvalidEncoding, InvalidProof
from pvss.group import (
    ORDER,
    G1Point,
    H,
    compute_h_generator,
    h_table,
    msm,
    random_scalar,
    scalar_from_bytes,
    scalar_to_bytes,
)
from pvss.transcript import DST_POP, DST_SEED_REVEAL, Transcript

R = int(ORDER)
POP_BYTES = 64
H_SEED_TAG = b"pvss-secagg/v1/generator-seed"
H_SEED, H_SEED_COUNTER = compute_h_generator(H_SEED_TAG)


@dataclass(frozen=True)
class KeyPair:
    """A party's long-term key: sk in [1, r), pk = sk*H."""

    sk: int
    pk: G1Point

    @classmethod
    def generate(cls, sk: int | None = None) -> KeyPair:
        """A fresh key pair (or the one for a given sk, for test vectors)."""
        if sk is None:
            sk = random_scalar()
        if not 0 < sk < R:
            raise InvalidEncoding("keypair.sk: must be in [1, r)")
        return cls(sk, h_table().mul(sk))

    def __repr__(self) -> str:  # never print the secret
        return f"KeyPair(pk={self.pk!r})"


@dataclass(frozen=True)
class ProofOfPossession:
    """Schnorr proof (e, z) that the registrant knows sk for pk = sk*H."""

    challenge: int
    response: int

    def __post_init__(self) -> None:
        for name in ("challenge", "response"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 0 <= v < R:
                raise InvalidEncoding(f"pop.{name}: not a scalar in [0, r)")

    def to_bytes(self) -> bytes:
        return scalar_to_bytes(self.challenge) + scalar_to_bytes(self.response)

    @classmethod
    def from_bytes(cls, data: bytes) -> ProofOfPossession:
        if len(data) != POP_BYTES:
            raise InvalidEncoding(f"pop: expected {POP_BYTES} bytes, got {len(data)}")
        return cls(
            scalar_from_bytes(data[:32], field="pop.challenge"),
            scalar_from_bytes(data[32:], field="pop.response"),
        )


def pop_transcript(
    chain_id: int, board: bytes, round_id: int, party: int, pk: G1Point
) -> Transcript:
    """DST_POP || uint256 chainId || address board || uint64 round || uint32 party || pk."""
    if not isinstance(board, bytes) or len(board) != 20:
        raise InvalidEncoding("pop.board: expected a 20-byte address")
    return (
        Transcript(DST_POP)
        .uint(chain_id, 256, "pop.chain_id")
        .raw(board)
        .uint(round_id, 64, "pop.round_id")
        .uint(party, 32, "pop.party")
        .point(pk)
    )


def prove_possession(
    key: KeyPair,
    chain_id: int,
    board: bytes,
    round_id: int,
    party: int,
    *,
    nonce: int | None = None,
) -> ProofOfPossession:
    """Schnorr proof of possession of ``key`` for ``party`` in round ``round_id`` on
    (chain_id, board)."""
    while True:
        w = nonce if nonce is not None else random_scalar()
        a = h_table().mul(w)
        e = pop_transcript(chain_id, board, round_id, party, key.pk).point(a).challenge()
        if e or nonce is not None:
            return ProofOfPossession(e, (w - e * key.sk) % R)


def verify_possession(
    pk: G1Point,
    proof: ProofOfPossession,
    chain_id: int,
    board: bytes,
    round_id: int,
    party: int,
) -> None:
    """Raise ``InvalidProof`` (naming the party) unless the PoP verifies."""
    if pk.is_identity:
        raise InvalidProof(f"party {party}: public key is the identity")
    a = msm([H, pk], [proof.response, proof.challenge])
    prefix = pop_transcript(chain_id, board, round_id, party, pk)
    if prefix.point(a).challenge() != proof.challenge:
        raise InvalidProof(f"party {party}: proof of possession does not verify")


# -- seed reveal (a DLEQ-based verifiable unpredictable function, SPEC.md §6.10) -------

SEED_REVEAL_BYTES = 64 + 160  # Gamma || DLEQ proof (A1, A2, z)


def seed_reveal_transcript(
    chain_id: int, board: bytes, round_id: int, member: int, pk: G1Point, gamma: G1Point
) -> Transcript:
    """DST_SEED_REVEAL || uint256 chainId || address board || uint64 round ||
    uint32 member || pk || H_SEED || Gamma (then A1 || A2 from the proof)."""
    if not isinstance(board, bytes) or len(board) != 20:
        raise InvalidEncoding("seed_reveal.board: expected a 20-byte address")
    return (
        Transcript(DST_SEED_REVEAL)
        .uint(chain_id, 256, "seed_reveal.chain_id")
        .raw(board)
        .uint(round_id, 64, "seed_reveal.round_id")
        .uint(member, 32, "seed_reveal.member")
        .point(pk)
        .point(H_SEED)
        .point(gamma)
    )


def prove_seed_reveal(
    key: KeyPair, chain_id: int, board: bytes, round_id: int, member: int
) -> tuple[G1Point, DleqProof]:
    """(Gamma = sk*H_SEED, proof that log_H pk = log_{H_SEED} Gamma)."""
    gamma = H_SEED * key.sk
    prefix = seed_reveal_transcript(chain_id, board, round_id, member, key.pk, gamma)
    return gamma, prove_dleq(key.sk, H, H_SEED, prefix)


def verify_seed_reveal(
    pk: G1Point,
    gamma: G1Point,
    proof: DleqProof,
    chain_id: int,
    board: bytes,
    round_id: int,
    member: int,
) -> None:
    """Raise ``InvalidProof`` naming the member unless Gamma is its key's reveal."""
    if pk.is_identity or gamma.is_identity:
        raise InvalidProof(f"member {member}: seed reveal with an identity point")
    prefix = seed_reveal_transcript(chain_id, board, round_id, member, pk, gamma)
    verify_dleq(proof, H, pk, H_SEED, gamma, prefix, what=f"member {member}: seed reveal")

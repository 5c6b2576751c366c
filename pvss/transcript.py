"""Fiat–Shamir transcripts (SPEC.md §3).

A ``Transcript`` is a typed, append-only byte string whose layout is exactly Solidity's
``abi.encodePacked`` of the same values in the same order: unsigned integers as
big-endian of their declared width, an address as 20 bytes, a point as 64 bytes
x || y, a scalar as 32 bytes. It starts with a domain-separation tag. The challenge is
``uint256(keccak256(bytes)) mod r``.

The one structured value every proof binds is the ``Context``: which chain, which board
(contract address), which round, which dealer, for what purpose. A proof made under one
context does not verify under another.
"""

from __future__ import annotations

from dataclasses import dataclass

from pvss.errors import InvalidEncoding
from pvss.group import ORDER, G1Point, keccak256  # keccak256: safe-pysha3's C Keccak

# Domain-separation tags (SPEC.md §3.1)
DST_DEALING = b"pvss-secagg/v1/dealing"
DST_RS_DUAL = b"pvss-secagg/v1/rs-dual"
DST_DECRYPTED_SHARE = b"pvss-secagg/v1/decrypted-share"
DST_POP = b"pvss-secagg/v1/proof-of-possession"
DST_SEED_REVEAL = b"pvss-secagg/v1/seed-reveal"
DST_SHARE_POST = b"pvss-secagg/v1/share-post"
DST_SHARE_POST_PROOF = b"pvss-secagg/v1/share-post-proof"

CONTEXT_BYTES = 69

#: purposes a dealing can have (SPEC.md §3.2)
PURPOSE_SELF = 0
PURPOSE_PAIR = 1
PURPOSE_OTHER = 2


def hash_to_scalar(data: bytes) -> int:
    """``uint256(keccak256(data)) mod r`` — what Solidity computes with ``% R``."""
    return int.from_bytes(keccak256(data), "big") % int(ORDER)


def _uint(value: int, bits: int, field: str) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEncoding(f"{field}: expected an integer, got {type(value).__name__}")
    if not 0 <= value < (1 << bits):
        raise InvalidEncoding(f"{field}: {value} does not fit uint{bits}")
    return value.to_bytes(bits // 8, "big")


@dataclass(frozen=True)
class Context:
    """What a dealing or proof is bound to (SPEC.md §3.2).

    Layout (69 bytes, ``abi.encodePacked(uint256 chainId, address board, uint64 round,
    uint32 dealer, uint8 purpose, uint32 partner)``)."""

    chain_id: int
    board: bytes
    round_id: int
    dealer: int
    purpose: int = PURPOSE_OTHER
    partner: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.board, bytes) or len(self.board) != 20:
            raise InvalidEncoding("context.board: expected a 20-byte address")
        if self.purpose not in (PURPOSE_SELF, PURPOSE_PAIR, PURPOSE_OTHER):
            raise InvalidEncoding(f"context.purpose: unknown purpose {self.purpose}")
        self.to_bytes()  # validates every width

    def to_bytes(self) -> bytes:
        return (
            _uint(self.chain_id, 256, "context.chain_id")
            + self.board
            + _uint(self.round_id, 64, "context.round_id")
            + _uint(self.dealer, 32, "context.dealer")
            + _uint(self.purpose, 8, "context.purpose")
            + _uint(self.partner, 32, "context.partner")
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Context:
        if len(data) != CONTEXT_BYTES:
            raise InvalidEncoding(f"context: expected {CONTEXT_BYTES} bytes, got {len(data)}")
        return cls(
            chain_id=int.from_bytes(data[0:32], "big"),
            board=bytes(data[32:52]),
            round_id=int.from_bytes(data[52:60], "big"),
            dealer=int.from_bytes(data[60:64], "big"),
            purpose=data[64],
            partner=int.from_bytes(data[65:69], "big"),
        )


class Transcript:
    """Append-only Fiat–Shamir transcript; ``bytes()`` is what keccak256 hashes."""

    __slots__ = ("_parts",)

    def __init__(self, dst: bytes) -> None:
        self._parts: list[bytes] = [dst]

    def uint(self, value: int, bits: int, field: str = "uint") -> Transcript:
        self._parts.append(_uint(value, bits, field))
        return self

    def raw(self, data: bytes) -> Transcript:
        self._parts.append(bytes(data))
        return self

    def context(self, ctx: Context) -> Transcript:
        self._parts.append(ctx.to_bytes())
        return self

    def point(self, pt: G1Point) -> Transcript:
        self._parts.append(pt.to_bytes())
        return self

    def scalar(self, k: int) -> Transcript:
        self._parts.append(int(k).to_bytes(32, "big"))
        return self

    def to_bytes(self) -> bytes:
        return b"".join(self._parts)

    def challenge(self) -> int:
        """``uint256(keccak256(transcript)) mod r``."""
        return hash_to_scalar(self.to_bytes())

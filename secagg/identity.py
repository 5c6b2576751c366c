"""Long-term party identities and post signatures (SPEC.md §6.9).

An identity is an Ethereum account: a secp256k1 key that the party generates and keeps
itself. Its 20-byte address is the party's name on the roster, its account on a chain
(the round contract checks its signature with ``ecrecover``, whoever relays the
transaction), and the signer of every post it makes on any board — one identity for
the chain and the off-chain board alike. Signatures are 65 bytes r || s || v (v in {27, 28}) over
the EIP-191 personal-message hash of a 32-byte digest, with low s (s <= n/2) so that a
signature has exactly one encoding; ``recover`` refuses anything else. eth-keys signs and
coincurve (libsecp256k1) recovers.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from coincurve import PublicKey
from eth_keys import keys
from eth_keys.datatypes import PrivateKey

from pvss.transcript import keccak256
from secagg.errors import InvalidEncoding, ProtocolError

SIGNATURE_BYTES = 65
ADDRESS_BYTES = 20
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
EIP191_PREFIX = b"\x19Ethereum Signed Message:\n32"
IDENTITY_FILE_VERSION = 1


class InvalidSignature(ProtocolError):
    """A post's signature is malformed or not by the identity its seat requires."""


def personal_hash(digest: bytes) -> bytes:
    """keccak256("\\x19Ethereum Signed Message:\\n32" || digest): what a wallet's
    ``personal_sign`` of the 32-byte digest signs, and what ``ecrecover`` is given."""
    if len(digest) != 32:
        raise InvalidEncoding(f"signature.digest: expected 32 bytes, got {len(digest)}")
    return keccak256(EIP191_PREFIX + digest)


@dataclass(frozen=True)
class Identity:
    """A party's long-term key. Never leaves the party; ``repr`` shows the address only."""

    _key: PrivateKey

    @classmethod
    def generate(cls) -> Identity:
        while True:
            sk = secrets.randbelow(SECP256K1_N)
            if sk:
                return cls(keys.PrivateKey(sk.to_bytes(32, "big")))

    @classmethod
    def from_key(cls, key: bytes) -> Identity:
        if len(key) != 32 or not 0 < int.from_bytes(key, "big") < SECP256K1_N:
            raise InvalidEncoding("identity.key: not a secp256k1 private key")
        return cls(keys.PrivateKey(key))

    @property
    def address(self) -> bytes:
        return self._key.public_key.to_canonical_address()

    @property
    def key_bytes(self) -> bytes:
        """The private key (to save it in the party's own identity file)."""
        return self._key.to_bytes()

    def sign(self, digest: bytes) -> bytes:
        """65-byte r || s || v signature of ``digest`` (EIP-191 personal message)."""
        sig = self._key.sign_msg_hash(personal_hash(digest))  # RFC 6979, low s
        return sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes([27 + sig.v])

    def __repr__(self) -> str:
        return f"Identity(0x{self.address.hex()})"

    # -- files -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the identity file (JSON, mode 0600): the party's own secret."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": IDENTITY_FILE_VERSION,
            "address": "0x" + self.address.hex(),
            "private_key": self.key_bytes.hex(),
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        """Read an identity file; ``ProtocolError`` naming the file and field if bad."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            key = bytes.fromhex(data["private_key"])
            ident = cls.from_key(key)
        except FileNotFoundError:
            raise ProtocolError(f"identity file {path}: not found") from None
        except (ValueError, KeyError, TypeError, InvalidEncoding) as exc:
            raise ProtocolError(f"identity file {path}: unreadable ({exc})") from None
        if data.get("address") not in (None, "0x" + ident.address.hex()):
            raise ProtocolError(f"identity file {path}: address does not match the key")
        return ident


def check_signature_bytes(sig: bytes, where: str = "signature") -> None:
    """Length 65, v in {27, 28}, 1 <= r, s < n and s <= n/2 (one encoding per signature)."""
    if not isinstance(sig, bytes) or len(sig) != SIGNATURE_BYTES:
        raise InvalidSignature(f"{where}: expected {SIGNATURE_BYTES} bytes")
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if v not in (27, 28):
        raise InvalidSignature(f"{where}: v must be 27 or 28, got {v}")
    if not (0 < r < SECP256K1_N and 0 < s <= SECP256K1_N // 2):
        raise InvalidSignature(f"{where}: r, s out of range (s must be low)")


def recover(digest: bytes, sig: bytes, where: str = "signature") -> bytes:
    """The address that signed ``digest`` (``ecrecover`` semantics), or
    ``InvalidSignature``."""
    check_signature_bytes(sig, where)
    # libsecp256k1 through coincurve directly (eth-keys' wrapper around the same call
    # costs ~40 % more, and a node recovers every post's signer: SPEC.md §8.2)
    try:
        pub = PublicKey.from_signature_and_message(
            sig[:64] + bytes([sig[64] - 27]), personal_hash(digest), hasher=None
        )
    except ValueError as exc:  # no point recovers (r not an x-coordinate, ...)
        raise InvalidSignature(f"{where}: does not recover ({exc})") from None
    return keccak256(pub.format(compressed=False)[1:])[12:]


def verify(digest: bytes, sig: bytes, address: bytes, where: str = "signature") -> None:
    """Raise ``InvalidSignature`` unless ``sig`` is ``address``'s signature of ``digest``."""
    if recover(digest, sig, where) != address:
        raise InvalidSignature(f"{where}: not signed by 0x{address.hex()}")


def parse_address(text: str, where: str = "address") -> bytes:
    """'0x' + 40 hex digits -> 20 bytes."""
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 42:
        raise ProtocolError(f"{where}: expected 0x and 40 hex digits, got {text!r}")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise ProtocolError(f"{where}: not hex: {text!r}") from None

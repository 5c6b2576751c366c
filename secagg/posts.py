"""Post digests, signing digests and event hashes (SPEC.md §6.9).

Every message has a *post digest*: keccak256 of a fixed packed layout of its fields
(``abi.encodePacked`` of the same values, as transcripts are, §3.1), led by the message's
codec tag so that two message types never share a digest. The codec is canonical, so
the digest of a body is the digest of its one message. The round contract computes the
same digests from its calldata; the hash chain, every signature and every view are
built on them, never on msgpack bytes.

A sender signs ``signing_digest`` = keccak256(DST_POST || uint256 chainId ||
address board || uint64 round || uint8 role || uint32 sender || view || post digest)
with its identity (EIP-191, ``secagg.identity``). ``view`` is the board head when the
phase of the post began (§6.11).
"""

from __future__ import annotations

import struct
from typing import Any

from pvss.transcript import keccak256
from secagg import codec
from secagg.config import RoundConfig, dp_record_bytes
from secagg.errors import InvalidEncoding
from secagg.identity import Identity
from secagg.messages import (
    Confirmation,
    DealingsPost,
    ElidedDealingsPost,
    Event,
    Exclusion,
    KeysImported,
    MaskedInputPost,
    Registration,
    ResultPost,
    SeedReveal,
    SharesPost,
    SignedPost,
)

DST_POST = b"pvss-secagg/v1/post"
ZERO_HASH = b"\x00" * 32
NO_SIGNATURE = b"\x00" * 65  # an event the chain itself produced (``Exclusion``)


def _u(value: int, bits: int) -> bytes:
    return value.to_bytes(bits // 8, "big")


def config_packed(c: RoundConfig) -> bytes:
    """The packed layout of a ``RoundConfig`` (tag 1), field order of §6.1; the dp
    record (SPEC.md §10.6) enters as keccak256 of its msgpack bytes, last."""
    graph = c.graph.encode("ascii")
    return b"".join(
        [
            _u(1, 8),
            _u(c.chain_id, 256),
            c.board,
            _u(c.round_id, 64),
            _u(c.n_clients, 32),
            _u(c.committee_size, 16),
            _u(c.threshold, 16),
            _u(len(graph), 8),
            graph,
            _u(c.dim, 32),
            _u(c.quant_bits, 8),
            _u(c.bits, 8),
            struct.pack(">d", c.clip),
            _u(c.max_weight, 32),
            _u(c.register_blocks, 32),
            _u(c.deal_blocks, 32),
            _u(c.upload_blocks, 32),
            _u(c.unmask_blocks, 32),
            _u(int(c.honest_majority), 8),
            c.aggregator,
            _u(len(c.members), 16),
            *c.members,
            _u(len(c.clients), 32),
            *c.clients,
            _u(c.min_included, 32),
            _u(c.min_neighbours, 32),
            _u(c.confirm_quorum, 16),
            _u(int(c.optimistic), 8),
            _u(c.challenge_blocks, 32),
            _u(c.stake, 256),
            _u(c.bond, 256),
            c.forfeit_to,
            keccak256(dp_record_bytes(c.dp)),
        ]
    )


class _Reader:
    """Reads a packed layout front to back; ``InvalidEncoding`` naming the field."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.pos, self.where = bytes(data), 0, where

    def take(self, n: int, field: str) -> bytes:
        if self.pos + n > len(self.data):
            raise InvalidEncoding(f"{self.where}.{field}: truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, bits: int, field: str) -> int:
        return int.from_bytes(self.take(bits // 8, field), "big")


def config_unpack(packed: bytes, dp: Any = None) -> RoundConfig:
    """The ``RoundConfig`` whose ``config_packed`` is ``packed`` (what the round
    contract emits as event 0). The dp record enters the packed layout as its hash
    only: without ``dp`` it must be the "no DP" record's hash; with ``dp`` (a
    ``DpConfig``) that record's. ``InvalidEncoding`` naming the field, or
    ``ConfigError`` from the config's own checks; ``unpack(pack(c)) == c``."""
    from secagg.dp import NO_DP

    r = _Reader(packed, "config")
    if r.uint(8, "tag") != 1:
        raise InvalidEncoding("config.tag: not a round config (tag 1)")
    fields: dict[str, Any] = {
        "chain_id": r.uint(256, "chain_id"),
        "board": r.take(20, "board"),
        "round_id": r.uint(64, "round_id"),
        "n_clients": r.uint(32, "n_clients"),
        "committee_size": r.uint(16, "committee_size"),
        "threshold": r.uint(16, "threshold"),
    }
    try:
        fields["graph"] = r.take(r.uint(8, "graph"), "graph").decode("ascii")
    except UnicodeDecodeError:
        raise InvalidEncoding("config.graph: not ASCII") from None
    fields["dim"] = r.uint(32, "dim")
    fields["quant_bits"] = r.uint(8, "quant_bits")
    fields["bits"] = r.uint(8, "bits")
    (fields["clip"],) = struct.unpack(">d", r.take(8, "clip"))
    for name in ("max_weight", "register_blocks", "deal_blocks", "upload_blocks"):
        fields[name] = r.uint(32, name)
    fields["unmask_blocks"] = r.uint(32, "unmask_blocks")
    flag = r.uint(8, "honest_majority")
    if flag > 1:
        raise InvalidEncoding("config.honest_majority: not a bool")
    fields["honest_majority"] = bool(flag)
    fields["aggregator"] = r.take(20, "aggregator")
    fields["members"] = tuple(r.take(20, "members") for _ in range(r.uint(16, "members")))
    n_listed = r.uint(32, "clients")
    if n_listed * 20 > len(packed):
        raise InvalidEncoding("config.clients: truncated")
    fields["clients"] = tuple(r.take(20, "clients") for _ in range(n_listed))
    fields["min_included"] = r.uint(32, "min_included")
    fields["min_neighbours"] = r.uint(32, "min_neighbours")
    fields["confirm_quorum"] = r.uint(16, "confirm_quorum")
    flag = r.uint(8, "optimistic")
    if flag > 1:
        raise InvalidEncoding("config.optimistic: not a bool")
    fields["optimistic"] = bool(flag)
    fields["challenge_blocks"] = r.uint(32, "challenge_blocks")
    fields["stake"] = r.uint(256, "stake")
    fields["bond"] = r.uint(256, "bond")
    fields["forfeit_to"] = r.take(20, "forfeit_to")
    dp_hash = r.take(32, "dp")
    if r.pos != len(packed):
        raise InvalidEncoding(f"config: {len(packed) - r.pos} trailing bytes")
    record = NO_DP if dp is None else dp
    if keccak256(dp_record_bytes(record)) != dp_hash:
        raise InvalidEncoding(
            "config.dp: the dp record is committed by its hash only and this is not the "
            + ("no-DP record's (a DP round: give its dp record)" if dp is None else "given one's")
        )
    cfg = RoundConfig(**fields, dp=record)
    if config_packed(cfg) != packed:  # pragma: no cover - every field is read above
        raise InvalidEncoding("config: does not re-pack to the same bytes")
    return cfg


def post_packed(msg: Any) -> bytes:
    """The packed layout of any message that can be an event (SPEC.md §6.9 table)."""
    if isinstance(msg, RoundConfig):
        return config_packed(msg)
    if isinstance(msg, Registration):
        return _u(2, 8) + _u(msg.role, 8) + _u(msg.party, 32) + msg.pk + msg.pop
    if isinstance(msg, DealingsPost):
        items = b"".join(
            _u(it.purpose, 8) + _u(it.partner, 32) + keccak256(it.dealing) for it in msg.items
        )
        return _u(3, 8) + _u(msg.dealer, 32) + _u(len(msg.items), 32) + items
    if isinstance(msg, ElidedDealingsPost):  # the original DealingsPost's layout
        items = b"".join(
            _u(it.purpose, 8) + _u(it.partner, 32) + it.dealing_hash for it in msg.items
        )
        return _u(3, 8) + _u(msg.dealer, 32) + _u(len(msg.items), 32) + items
    if isinstance(msg, MaskedInputPost):
        return _u(4, 8) + _u(msg.client, 32) + msg.digest + _u(msg.size, 64)
    if isinstance(msg, SharesPost):
        # the dealing references, then the share post's own bytes (SPEC.md §4.5): the
        # round contract hashes its calldata `refs` and `post` as they come
        refs = b"".join(
            _u(it.dealer, 32) + _u(it.purpose, 8) + _u(it.partner, 32) for it in msg.items
        )
        head = _u(5, 8) + _u(msg.member, 32) + _u(len(msg.items), 32)
        return head + refs + msg.share_post_bytes()
    if isinstance(msg, ResultPost):
        included = b"".join(_u(i, 32) for i in msg.included)
        return (
            _u(6, 8) + msg.digest + _u(len(msg.included), 32) + included + _u(msg.total_weight, 64)
        )
    if isinstance(msg, SeedReveal):
        return _u(8, 8) + _u(msg.member, 32) + msg.gamma + msg.proof
    if isinstance(msg, Confirmation):
        return _u(9, 8) + _u(msg.member, 32) + msg.head
    if isinstance(msg, Exclusion):
        return _u(11, 8) + _u(msg.dealer, 32) + _u(msg.purpose, 8) + _u(msg.partner, 32)
    if isinstance(msg, KeysImported):
        parties = b"".join(_u(p, 32) for p in msg.parties)
        return _u(13, 8) + msg.task + _u(len(msg.parties), 32) + parties + b"".join(msg.keys)
    raise InvalidEncoding(f"post: {type(msg).__name__} is not a board message")


def post_digest(msg: Any) -> bytes:
    """keccak256 of the packed layout."""
    return keccak256(post_packed(msg))


def signing_digest(
    config: RoundConfig, role: int, sender: int, view: bytes, digest: bytes
) -> bytes:
    """What a sender signs: its round (chain, board, round id), seat, view and post."""
    if len(view) != 32 or len(digest) != 32:
        raise InvalidEncoding("post: view and digest are 32 bytes")
    return keccak256(
        DST_POST
        + _u(config.chain_id, 256)
        + config.board
        + _u(config.round_id, 64)
        + _u(role, 8)
        + _u(sender, 32)
        + view
        + digest
    )


def event_hash(ev: Event) -> bytes:
    """keccak256(prev || uint64 seq || uint64 height || uint8 role || uint32 sender ||
    view || digest)."""
    return keccak256(
        ev.prev
        + ev.seq.to_bytes(8, "big")
        + ev.height.to_bytes(8, "big")
        + bytes([ev.role])
        + ev.sender.to_bytes(4, "big")
        + ev.view
        + ev.digest
    )


def sign_post(
    identity: Identity, config: RoundConfig, role: int, sender: int, msg: Any, view: bytes
) -> SignedPost:
    """``msg`` from seat (role, sender), signed by ``identity`` on ``view``."""
    digest = post_digest(msg)
    sig = identity.sign(signing_digest(config, role, sender, view, digest))
    return SignedPost(role, sender, codec.encode(msg), view, sig)

"""Protocol messages (SPEC.md §6.2): frozen dataclasses, serialised only by
``secagg.codec``. Field validation that does not need round state happens here; the
board checks the rest (stage, membership, proofs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from pvss.dleq import DLEQ_PROOF_BYTES
from pvss.scrape import MAX_POST_SHARES, SharePost
from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF, keccak256
from secagg.codec import Bytes, CompressedPoint, ListOf, UInt, message, record
from secagg.errors import InvalidEncoding

ROLE_CLIENT = 0
ROLE_MEMBER = 1
ROLE_AGGREGATOR = 2
MAX_IMPORTED = 1024  # clients one KeysImported post registers (MAX_CHAIN_CLIENTS)
ROLE_NAMES = {ROLE_CLIENT: "client", ROLE_MEMBER: "member", ROLE_AGGREGATOR: "aggregator"}


def party_name(role: int, party: int) -> str:
    """'client 7', 'member 3', 'aggregator'."""
    name = ROLE_NAMES.get(role, f"role{role}")
    return name if role == ROLE_AGGREGATOR else f"{name} {party}"


@message(2, ("role", UInt(8)), ("party", UInt(32)), ("pk", Bytes(64)), ("pop", Bytes(64)))
@dataclass(frozen=True)
class Registration:
    """A client or committee member registers its key with a proof of possession."""

    role: int
    party: int
    pk: bytes
    pop: bytes

    def __post_init__(self) -> None:
        if self.role not in (ROLE_CLIENT, ROLE_MEMBER):
            raise InvalidEncoding(f"registration.role: {self.role} is neither client nor member")
        if self.party < 1:
            raise InvalidEncoding("registration.party: ids start at 1")


@dataclass(frozen=True)
class DealingItem:
    """One dealing: purpose SELF (partner 0) or PAIR (recipient = partner)."""

    purpose: int
    partner: int
    dealing: bytes

    def __post_init__(self) -> None:
        if self.purpose == PURPOSE_SELF and self.partner != 0:
            raise InvalidEncoding("dealing_item.partner: a self dealing has partner 0")
        if self.purpose == PURPOSE_PAIR and self.partner < 1:
            raise InvalidEncoding("dealing_item.partner: a pair dealing names a client >= 1")
        if self.purpose not in (PURPOSE_SELF, PURPOSE_PAIR):
            raise InvalidEncoding(f"dealing_item.purpose: {self.purpose} is neither self nor pair")


DEALING_ITEM = record(
    DealingItem, ("purpose", UInt(8)), ("partner", UInt(32)), ("dealing", Bytes())
)


@message(3, ("dealer", UInt(32)), ("items", ListOf(DEALING_ITEM, 1 << 16)))
@dataclass(frozen=True)
class DealingsPost:
    """All dealings of one client, posted once in the deal phase."""

    dealer: int
    items: tuple[DealingItem, ...]


@dataclass(frozen=True)
class RelayDealingItem:
    """A dealing as a relay sends it to a node that does not need it: its hash only
    (``dealing`` empty), or the dealing with its hash (SPEC.md §8.2)."""

    purpose: int
    partner: int
    dealing_hash: bytes
    dealing: bytes

    def __post_init__(self) -> None:
        DealingItem(self.purpose, self.partner, b"")  # the same purpose / partner rules
        if self.dealing and keccak256(self.dealing) != self.dealing_hash:
            raise InvalidEncoding("relay_dealing_item.dealing_hash: not the dealing's hash")


RELAY_DEALING_ITEM = record(
    RelayDealingItem,
    ("purpose", UInt(8)),
    ("partner", UInt(32)),
    ("dealing_hash", Bytes(32)),
    ("dealing", Bytes()),
)


@message(12, ("dealer", UInt(32)), ("items", ListOf(RELAY_DEALING_ITEM, 1 << 16)))
@dataclass(frozen=True)
class ElidedDealingsPost:
    """A ``DealingsPost`` as the relay sends it (never on a board): the dealings the
    node does not need replaced by their hashes. Its post digest is the original's, so
    the node checks the sender's signature and the hash chain as for the original."""

    dealer: int
    items: tuple[RelayDealingItem, ...]

    @classmethod
    def of(
        cls,
        post: DealingsPost,
        keep: Callable[[tuple[int, int, int]], bool],
        hashes: Sequence[bytes] | None = None,
    ) -> ElidedDealingsPost:
        """``post`` with the dealings whose key ``keep`` rejects elided; ``hashes`` the
        keccak256 of its dealings in item order (computed here if None), for a relay
        that elides the same post for many nodes."""
        if hashes is None:
            hashes = [keccak256(it.dealing) for it in post.items]
        return cls(
            post.dealer,
            tuple(
                RelayDealingItem(
                    it.purpose,
                    it.partner,
                    h,
                    it.dealing if keep((post.dealer, it.purpose, it.partner)) else b"",
                )
                for it, h in zip(post.items, hashes, strict=True)
            ),
        )


@message(4, ("client", UInt(32)), ("digest", Bytes(32)), ("size", UInt(64)))
@dataclass(frozen=True)
class MaskedInputPost:
    """CID digest (SPEC.md §6.6) and size of the client's packed masked vector (the
    blob itself goes to the aggregator / blob store)."""

    client: int
    digest: bytes
    size: int


@dataclass(frozen=True)
class ShareItem:
    """Member k's decryption S_i (64 bytes here, 32 compressed on the wire: SPEC.md
    §6.2) of its encrypted share in dealing (dealer, purpose, partner); no proof of its
    own: the post's one DLEQ proves every S_i (SPEC.md §4.5 *Share post*)."""

    dealer: int
    purpose: int
    partner: int
    share: bytes

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.dealer, self.purpose, self.partner)


SHARE_ITEM = record(
    ShareItem,
    ("dealer", UInt(32)),
    ("purpose", UInt(8)),
    ("partner", UInt(32)),
    ("share", CompressedPoint()),
)


@message(
    5,
    ("member", UInt(32)),
    ("items", ListOf(SHARE_ITEM, MAX_POST_SHARES)),
    ("proof", Bytes(DLEQ_PROOF_BYTES)),
)
@dataclass(frozen=True)
class SharesPost:
    """A committee member's decryptions of the shares U reveals, in one share post
    (SPEC.md §4.5): per item the dealing reference and S_i, and one aggregated DLEQ
    proof for the whole post."""

    member: int
    items: tuple[ShareItem, ...]
    proof: bytes

    def __post_init__(self) -> None:
        if not self.items:
            raise InvalidEncoding("shares_post.items: a post holds at least one share")
        if not 1 <= self.member <= 0xFFFF:
            raise InvalidEncoding(f"shares_post.member: {self.member} outside 1..65535")

    @classmethod
    def of(cls, keys: Sequence[tuple[int, int, int]], post: SharePost) -> SharesPost:
        """The message for share post ``post`` of the dealings ``keys`` (post order)."""
        if len(keys) != len(post.shares):
            raise InvalidEncoding(
                f"shares_post.items: {len(keys)} dealings for {len(post.shares)} shares"
            )
        items = tuple(ShareItem(*k, pt.to_bytes()) for k, pt in zip(keys, post.shares, strict=True))
        return cls(post.index, items, post.proof.to_bytes())

    @property
    def keys(self) -> tuple[tuple[int, int, int], ...]:
        return tuple(it.key for it in self.items)

    def share_post_bytes(self) -> bytes:
        """The share post (SPEC.md §4.5 bytes): uint16 k || uint16 N || N x S_i || proof."""
        return (
            self.member.to_bytes(2, "big")
            + len(self.items).to_bytes(2, "big")
            + b"".join(it.share for it in self.items)
            + self.proof
        )

    def share_post(self) -> SharePost:
        """The decoded share post; ``InvalidEncoding`` naming the field
        (``share_post.share[3]``, ``share_post.proof``) for a point off the curve or a
        response >= r."""
        return SharePost.from_bytes(self.share_post_bytes())


@message(6, ("digest", Bytes(32)), ("included", ListOf(UInt(32))), ("total_weight", UInt(64)))
@dataclass(frozen=True)
class ResultPost:
    """The aggregator's result: CID digest (SPEC.md §6.6) of the packed integer sum (a
    blob), the included set it used and the total weight (the sum's last coordinate)."""

    digest: bytes
    included: tuple[int, ...]
    total_weight: int


@message(
    13,
    ("task", Bytes(20)),
    ("parties", ListOf(UInt(32), MAX_IMPORTED)),
    ("keys", ListOf(Bytes(64), MAX_IMPORTED)),
)
@dataclass(frozen=True)
class KeysImported:
    """The aggregator registers client seats ``parties`` (strictly increasing) with the
    keys (``keys``, in order, 64 bytes each) their identities registered once on the
    task contract ``task`` (SPEC.md §7.8 "Imported keys") instead of a
    ``Registration`` per client. A board accepts it only with that task's verified
    keys at hand (the round contract reads them from the task itself)."""

    task: bytes
    parties: tuple[int, ...]
    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.parties:
            raise InvalidEncoding("keys_imported.parties: imports at least one client")
        if len(self.keys) != len(self.parties):
            raise InvalidEncoding(
                f"keys_imported.keys: {len(self.keys)} keys for {len(self.parties)} parties"
            )
        if any(b <= a for a, b in pairwise(self.parties)) or self.parties[0] < 1:
            raise InvalidEncoding("keys_imported.parties: ids >= 1, strictly increasing")


@message(8, ("member", UInt(32)), ("gamma", Bytes(64)), ("proof", Bytes(160)))
@dataclass(frozen=True)
class SeedReveal:
    """A member's contribution to the mask-graph seed: Gamma = sk*H_SEED and the DLEQ
    proof tying it to the key it registered (SPEC.md §6.10)."""

    member: int
    gamma: bytes
    proof: bytes


@message(9, ("member", UInt(32)), ("head", Bytes(32)))
@dataclass(frozen=True)
class Confirmation:
    """A member confirms the head that fixed the included set; nobody decrypts before a
    quorum of members confirmed the same head (SPEC.md §6.11)."""

    member: int
    head: bytes


@message(11, ("dealer", UInt(32)), ("purpose", UInt(8)), ("partner", UInt(32)))
@dataclass(frozen=True)
class Exclusion:
    """Optimistic mode on a chain: a challenge proved dealing (dealer, purpose, partner)
    invalid and the contract excluded the dealer. The chain itself produces this event
    (role aggregator, sender 0, no signature); a replay accepts it only in an optimistic
    round and only if that dealing really does not verify (SPEC.md §7.3)."""

    dealer: int
    purpose: int
    partner: int


@message(
    10,
    ("role", UInt(8)),
    ("sender", UInt(32)),
    ("body", Bytes()),
    ("view", Bytes(32)),
    ("sig", Bytes(65)),
)
@dataclass(frozen=True)
class SignedPost:
    """A post as its sender hands it to a relay or a board: the codec-encoded message,
    the view (the head it acted on) and the sender identity's signature over
    (context, post digest, view) (SPEC.md §6.9)."""

    role: int
    sender: int
    body: bytes
    view: bytes
    sig: bytes


@dataclass(frozen=True)
class Event:
    """One accepted post on the board. ``digest`` is the post digest of ``body``
    (SPEC.md §6.9), ``view`` the head its sender acted on, ``sig`` the sender's
    signature, ``prev`` the previous event's hash (32 zero bytes for the first);
    hash = keccak256(prev || uint64 seq || uint64 height || uint8 role ||
    uint32 sender || view || digest). The signature is evidence, not hashed: the head
    commits to what was said and on what view."""

    seq: int
    height: int
    role: int
    sender: int
    body: bytes
    digest: bytes
    view: bytes
    sig: bytes
    prev: bytes


EVENT = record(
    Event,
    ("seq", UInt(64)),
    ("height", UInt(64)),
    ("role", UInt(8)),
    ("sender", UInt(32)),
    ("body", Bytes()),
    ("digest", Bytes(32)),
    ("view", Bytes(32)),
    ("sig", Bytes(65)),
    ("prev", Bytes(32)),
)


@message(7, ("events", ListOf(EVENT, 1 << 24)))
@dataclass(frozen=True)
class TranscriptFile:
    """transcript.msgpack: every board event in order."""

    events: tuple[Event, ...]

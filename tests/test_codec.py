"""The wire codec: round trips, strictness, fuzzing."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pvss.group import FIELD_MODULUS, G
from secagg import codec
from secagg.codec import CODEC_VERSION
from secagg.config import RoundConfig
from secagg.errors import InvalidEncoding
from secagg.messages import (
    Confirmation,
    DealingItem,
    DealingsPost,
    Event,
    Exclusion,
    MaskedInputPost,
    Registration,
    ResultPost,
    SeedReveal,
    ShareItem,
    SharesPost,
    SignedPost,
    TranscriptFile,
)
from secagg.posts import post_digest, post_packed

P = int(FIELD_MODULUS)
u32 = st.integers(min_value=1, max_value=2**32 - 1)
b32 = st.binary(min_size=32, max_size=32)
b64 = st.binary(min_size=64, max_size=64)
b65 = st.binary(min_size=65, max_size=65)
b160 = st.binary(min_size=160, max_size=160)
#: S_i: a point (64-byte layout in the message, 32 compressed on the wire)
points = st.sampled_from([(G * k).to_bytes() for k in (1, 2, 3, 5, 1 << 200)] + [bytes(64)])

messages = st.one_of(
    st.builds(Registration, st.sampled_from([0, 1]), u32, b64, b64),
    st.builds(
        DealingsPost,
        u32,
        st.lists(
            st.one_of(
                st.builds(DealingItem, st.just(0), st.just(0), st.binary(max_size=64)),
                st.builds(DealingItem, st.just(1), u32, st.binary(max_size=64)),
            ),
            max_size=4,
        ).map(tuple),
    ),
    st.builds(MaskedInputPost, u32, b32, st.integers(min_value=0, max_value=2**64 - 1)),
    st.builds(
        SharesPost,
        st.integers(min_value=1, max_value=0xFFFF),
        st.lists(
            st.builds(ShareItem, u32, st.sampled_from([0, 1]), u32, points),
            min_size=1,
            max_size=3,
        ).map(tuple),
        b160,
    ),
    st.builds(
        ResultPost,
        b32,
        st.lists(u32, max_size=5).map(tuple),
        st.integers(min_value=0, max_value=2**64 - 1),
    ),
    st.builds(
        TranscriptFile,
        st.lists(
            st.builds(
                Event,
                st.integers(0, 2**64 - 1),
                st.integers(0, 2**64 - 1),
                st.integers(0, 2),
                u32,
                st.binary(max_size=40),
                b32,
                b32,
                b65,
                b32,
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(SeedReveal, u32, b64, b160),
    st.builds(Confirmation, u32, b32),
    st.builds(SignedPost, st.integers(0, 2), u32, st.binary(max_size=80), b32, b65),
    st.builds(Exclusion, u32, st.sampled_from([0, 1]), u32),
)


@given(messages)
def test_round_trip(msg) -> None:
    data = codec.encode(msg)
    assert codec.decode(data) == msg
    assert codec.decode(data, type(msg)) == msg


def _roster(m: int, n: int) -> dict:
    return {
        "aggregator": b"\xa0" * 20,
        "members": tuple(bytes([0xB0, k]) * 10 for k in range(1, m + 1)),
        "clients": tuple(bytes([0xC0, i]) * 10 for i in range(1, n + 1)),
    }


def test_round_config_round_trip() -> None:
    cfg = RoundConfig(
        1, b"\x01" * 20, 3, 10, 5, 2, "regular:4", 100, 16, 32, 0.5, 7, **_roster(5, 10)
    )
    assert codec.decode(codec.encode(cfg), RoundConfig) == cfg
    # the defaults were filled in and travel as numbers (a decoder never re-derives them)
    assert (cfg.min_included, cfg.min_neighbours, cfg.confirm_quorum) == (5, 3, 4)
    # every extended field: open membership, explicit bounds, optimistic mode
    full = RoundConfig(
        chain_id=2**64 - 1,
        board=b"\x02" * 20,
        round_id=2**64 - 1,
        n_clients=6,
        committee_size=5,
        threshold=2,
        graph="complete",
        dim=8,
        quant_bits=8,
        bits=24,
        clip=0.25,
        max_weight=3,
        honest_majority=True,
        min_included=6,
        min_neighbours=5,
        confirm_quorum=5,
        optimistic=True,
        challenge_blocks=7,
        stake=10**18,
        bond=2**64 - 1,
        **{**_roster(5, 6), "clients": ()},
    )
    data = codec.encode(full)
    assert codec.decode(data, RoundConfig) == full
    assert codec.decode(data).clients == () and codec.decode(data).bond == 2**64 - 1
    # the post digest commits to the roster and the new fields too
    digests = {
        post_digest(full),
        post_digest(dataclasses.replace(full, stake=10**18 + 1)),
        post_digest(dataclasses.replace(full, members=full.members[::-1])),
        post_digest(dataclasses.replace(full, clients=_roster(5, 6)["clients"])),
    }
    assert len(digests) == 4


def test_round_config_uint256_fields_above_2_64() -> None:
    cfg = RoundConfig(
        2**200,
        b"\x01" * 20,
        3,
        10,
        5,
        2,
        "complete",
        100,
        16,
        32,
        0.5,
        7,
        **_roster(5, 10),
        optimistic=True,
        stake=20 * 10**18,
    )
    assert codec.decode(codec.encode(cfg), RoundConfig) == cfg


def test_wide_uints_have_one_encoding() -> None:
    """A uint256 of 2^64 or more is 32 big-endian bytes; a small one as bytes, or a wide
    one of another length, is refused."""
    kind = codec.UInt(256)
    assert kind.check(kind.dump(2**64), "x") == 2**64
    assert kind.dump(5) == 5
    with pytest.raises(codec.InvalidEncoding, match="not canonical"):
        kind.check((5).to_bytes(32, "big"), "x")
    with pytest.raises(codec.InvalidEncoding, match="32 bytes"):
        kind.check((2**70).to_bytes(16, "big"), "x")
    with pytest.raises(codec.InvalidEncoding, match="outside uint64"):
        codec.UInt(64).check(2**64, "x")


def test_signed_post_and_event_round_trip_with_the_new_messages() -> None:
    reveal = SeedReveal(3, b"\x05" * 64, b"\x06" * 160)
    confirm = Confirmation(2, b"\x07" * 32)
    for msg in (reveal, confirm, Exclusion(4, 1, 5)):
        post = SignedPost(1, 3, codec.encode(msg), b"\x08" * 32, b"\x09" * 65)
        assert codec.decode(codec.encode(post), SignedPost) == post
        assert codec.decode(post.body) == msg
        ev = Event(7, 9, 1, 3, post.body, post_digest(msg), post.view, post.sig, b"\x0a" * 32)
        tr = TranscriptFile((ev,))
        assert codec.decode(codec.encode(tr), TranscriptFile) == tr
    # the packed layouts of SPEC.md §6.9 (tag first)
    assert post_packed(reveal) == bytes([8]) + (3).to_bytes(4, "big") + reveal.gamma + reveal.proof
    assert post_packed(confirm) == bytes([9]) + (2).to_bytes(4, "big") + confirm.head
    with pytest.raises(InvalidEncoding, match="proof: expected 160 bytes"):
        codec.decode(msgpack.packb([CODEC_VERSION, 8, 3, b"\x05" * 64, b"\x06" * 159]))
    with pytest.raises(InvalidEncoding, match="head: expected 32 bytes"):
        codec.decode(msgpack.packb([CODEC_VERSION, 9, 2, b"\x07" * 31]))
    with pytest.raises(InvalidEncoding, match="sig: expected 65 bytes"):
        codec.decode(msgpack.packb([CODEC_VERSION, 10, 1, 3, b"", b"\x08" * 32, b"\x09" * 64]))
    with pytest.raises(InvalidEncoding, match="expected 9 fields"):
        codec.decode(msgpack.packb([CODEC_VERSION, 7, [[0, 0, 0, 0, b"", b"\x00" * 32]]]))


def test_shares_post_wire_layout_and_strictness() -> None:
    """SPEC.md §6.2, §6.9: per item the dealing reference and S_i (compressed, 32 bytes
    on the wire), one 160-byte proof per post; the packed layout (what is hashed and
    what the chain's calldata carries) is the references then the share post's bytes,
    with S_i in its 64-byte form."""
    s = [G.to_bytes(), (G * 7).to_bytes(), (G + G).to_bytes()]
    items = (ShareItem(3, 0, 0, s[0]), ShareItem(3, 1, 7, s[1]), ShareItem(9, 1, 12, s[2]))
    post = SharesPost(2, items, b"\x05" * 160)
    assert codec.decode(codec.encode(post), SharesPost) == post
    wire = msgpack.unpackb(codec.encode(post))
    assert wire[3][1] == [3, 1, 7, (G * 7).to_compressed()]
    refs = b"".join(
        it.dealer.to_bytes(4, "big") + bytes([it.purpose]) + it.partner.to_bytes(4, "big")
        for it in items
    )
    share_post = (2).to_bytes(2, "big") + (3).to_bytes(2, "big") + b"".join(s) + b"\x05" * 160
    assert post.share_post_bytes() == share_post
    assert post_packed(post) == bytes([5]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (
        refs + share_post
    )
    # the bytes one share adds on the wire: 38 with ids < 128 (msgpack fixints), 42 with
    # ids below 2^16 — the target is <= 66
    more = SharesPost(2, items + (ShareItem(9, 1, 13, s[0]),), post.proof)
    assert len(codec.encode(more)) - len(codec.encode(post)) == 38
    wide = SharesPost(2, items + (ShareItem(900, 1, 1300, s[0]),), post.proof)
    assert len(codec.encode(wide)) - len(codec.encode(post)) == 42
    c0 = G.to_compressed()
    bad = [CODEC_VERSION, 5, 2, [[3, 0, 0, c0]], b"\x05" * 160]
    codec.decode(msgpack.packb(bad))  # the well-formed one decodes
    with pytest.raises(InvalidEncoding, match="at least one share"):
        codec.decode(msgpack.packb([CODEC_VERSION, 5, 2, [], b"\x05" * 160]))
    with pytest.raises(InvalidEncoding, match=r"items\[0\]\.share: expected 32 bytes"):
        codec.decode(msgpack.packb([CODEC_VERSION, 5, 2, [[3, 0, 0, s[0]]], post.proof]))
    no_point = next(
        x.to_bytes(32, "big") for x in range(1, 40) if pow(x**3 + 3, (P - 1) // 2, P) != 1
    )
    with pytest.raises(InvalidEncoding, match=r"items\[0\]\.share: no point"):
        codec.decode(msgpack.packb([CODEC_VERSION, 5, 2, [[3, 0, 0, no_point]], post.proof]))
    with pytest.raises(InvalidEncoding, match=r"items\[0\]\.share: the identity flag"):
        codec.decode(
            msgpack.packb([CODEC_VERSION, 5, 2, [[3, 0, 0, b"\xc0" + c0[1:]]], post.proof])
        )
    with pytest.raises(InvalidEncoding, match="proof: expected 160 bytes"):
        codec.decode(msgpack.packb([CODEC_VERSION, 5, 2, [[3, 0, 0, c0]], b"\x05" * 226]))
    with pytest.raises(InvalidEncoding, match="shares_post.member"):
        codec.decode(msgpack.packb([CODEC_VERSION, 5, 0, [[3, 0, 0, c0]], post.proof]))
    # a value that is no point has no wire form: the codec refuses to encode it
    off = SharesPost(2, (ShareItem(3, 0, 0, b"\x11" * 64),), post.proof)
    with pytest.raises(InvalidEncoding, match="to encode"):
        codec.encode(off)
    # the share post itself (the chain's calldata, 64-byte S_i) names the bad point
    with pytest.raises(InvalidEncoding, match=r"share_post\.share\[0\]"):
        off.share_post()
    # version 1 (S_i uncompressed) is refused by name, not misread
    with pytest.raises(InvalidEncoding, match="version 1"):
        codec.decode(msgpack.packb([1, 5, 2, [[3, 0, 0, s[0]]], post.proof]))


@given(st.binary(max_size=300))
def test_fuzzed_bytes_raise_only_invalid_encoding(blob: bytes) -> None:
    try:
        msg = codec.decode(blob)
    except InvalidEncoding:
        return
    assert codec.encode(msg) == blob


@given(messages, st.data())
def test_mutated_encodings_raise_only_invalid_encoding(msg, data) -> None:
    blob = bytearray(codec.encode(msg))
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] ^= data.draw(st.integers(1, 255))
    try:
        out = codec.decode(bytes(blob))
    except InvalidEncoding:
        return
    assert codec.encode(out) == bytes(blob)


def test_strictness() -> None:
    msg = MaskedInputPost(3, b"\x01" * 32, 100)
    data = codec.encode(msg)
    with pytest.raises(InvalidEncoding, match="canonical|not a msgpack"):
        codec.decode(data + b"\x00")  # trailing bytes
    with pytest.raises(InvalidEncoding, match="version"):
        codec.decode(msgpack.packb([CODEC_VERSION + 1, 4, 3, b"\x01" * 32, 100]))
    with pytest.raises(InvalidEncoding, match="tag"):
        codec.decode(msgpack.packb([CODEC_VERSION, 99, 3]))
    with pytest.raises(InvalidEncoding, match="expected 3 fields"):
        codec.decode(msgpack.packb([CODEC_VERSION, 4, 3, b"\x01" * 32, 100, 5]))
    with pytest.raises(InvalidEncoding, match="digest: expected 32 bytes"):
        codec.decode(msgpack.packb([CODEC_VERSION, 4, 3, b"\x01" * 31, 100]))
    with pytest.raises(InvalidEncoding, match="client: expected an unsigned integer"):
        codec.decode(msgpack.packb([CODEC_VERSION, 4, "3", b"\x01" * 32, 100]))
    with pytest.raises(InvalidEncoding, match="outside uint32"):
        codec.decode(msgpack.packb([CODEC_VERSION, 4, 2**32, b"\x01" * 32, 100]))
    # 3 as a uint32 (0xce) instead of a positive fixint: same value, not canonical
    noncanon = (
        bytes([0x95, CODEC_VERSION, 0x04, 0xCE, 0, 0, 0, 3])
        + msgpack.packb(b"\x01" * 32)
        + msgpack.packb(100)
    )
    with pytest.raises(InvalidEncoding, match="not canonically encoded"):
        codec.decode(noncanon)
    with pytest.raises(InvalidEncoding, match="expected MaskedInputPost"):
        codec.decode(codec.encode(ResultPost(b"\x00" * 32, (), 0)), MaskedInputPost)
    with pytest.raises(InvalidEncoding, match="purpose"):
        codec.decode(msgpack.packb([CODEC_VERSION, 3, 1, [[7, 0, b""]]]))
    with pytest.raises(InvalidEncoding, match="self dealing has partner 0"):
        codec.decode(msgpack.packb([CODEC_VERSION, 3, 1, [[0, 5, b""]]]))
    with pytest.raises(InvalidEncoding, match="board"):
        n_fields = len(dataclasses.fields(RoundConfig))
        codec.decode(msgpack.packb([CODEC_VERSION, 1, 1, b"\x00" * 19] + [1] * (n_fields - 2)))


def test_a_transcript_assembled_from_packed_events_is_the_encoding() -> None:
    """``encode_list_parts`` (a server packing each relayed event once): byte-identical
    to ``encode`` for every array header size msgpack has (fix, 16- and 32-bit), and
    it decodes to the same events."""
    from secagg.messages import Event, TranscriptFile  # noqa: PLC0415

    def event(i: int) -> Event:
        return Event(
            seq=i,
            height=i // 3,
            role=i % 3,
            sender=i % 7,
            body=bytes([i % 251]) * (i % 40),
            digest=bytes([i % 256]) * 32,
            view=bytes(32),
            sig=bytes([1]) * 65,
            prev=bytes([2]) * 32,
        )

    pool = [event(i) for i in range(70_000)]
    for n in (0, 1, 15, 16, 65_535, 65_536, 70_000):
        events = tuple(pool[:n])
        parts = [codec.pack_item(TranscriptFile, ev) for ev in events]
        got = codec.encode_list_parts(TranscriptFile, parts)
        assert got == codec.encode(TranscriptFile(events)), n
    assert codec.decode(got, TranscriptFile).events == events

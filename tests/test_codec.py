"""The wire codec: round trips, strictness, fuzzing."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pvss.scrape import DECRYPTED_SHARE_BYTES
from secagg import codec
from secagg.codec import CODEC_VERSION
from secagg.config import RoundConfig
from secagg.errors import InvalidEncoding
from secagg.messages import (
    DealingItem,
    DealingsPost,
    Event,
    MaskedInputPost,
    Registration,
    ResultPost,
    ShareItem,
    SharesPost,
    TranscriptFile,
)

u32 = st.integers(min_value=1, max_value=2**32 - 1)
b32 = st.binary(min_size=32, max_size=32)
b64 = st.binary(min_size=64, max_size=64)

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
        u32,
        st.lists(
            st.builds(
                ShareItem,
                u32,
                st.sampled_from([0, 1]),
                u32,
                st.binary(min_size=DECRYPTED_SHARE_BYTES, max_size=DECRYPTED_SHARE_BYTES),
            ),
            max_size=3,
        ).map(tuple),
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
            ),
            max_size=3,
        ).map(tuple),
    ),
)


@given(messages)
def test_round_trip(msg) -> None:
    data = codec.encode(msg)
    assert codec.decode(data) == msg
    assert codec.decode(data, type(msg)) == msg


def test_round_config_round_trip() -> None:
    cfg = RoundConfig(1, b"\x01" * 20, 3, 10, 5, 2, "regular:4", 100, 16, 32, 0.5, 7)
    assert codec.decode(codec.encode(cfg), RoundConfig) == cfg


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
        bytes([0x95, 0x01, 0x04, 0xCE, 0, 0, 0, 3])
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
        codec.decode(msgpack.packb([CODEC_VERSION, 1, 1, b"\x00" * 19] + [1] * 15))

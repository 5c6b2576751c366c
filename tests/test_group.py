"""BN254 G1: EVM precompile vectors, py_ecc cross-checks, group laws, strict decoding."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from py_ecc import optimized_bn128 as pe

from pvss.errors import InvalidEncoding
from pvss.group import (
    FIELD_MODULUS,
    GLV_LAMBDA,
    H_COUNTER,
    ORDER,
    FixedBaseTable,
    G,
    G1Point,
    H,
    _batch_add,
    compute_h_generator,
    g_table,
    glv_decompose,
    h_table,
    msm,
    msm_signed,
    mul_each,
    point_sum,
    scalar_from_bytes,
    scalar_to_bytes,
    table_for,
)

from .conftest import EVM_VECTORS

P = int(FIELD_MODULUS)
R = int(ORDER)
scalars = st.integers(min_value=0, max_value=R - 1)
any_ints = st.integers(min_value=0, max_value=2**256 - 1)


def to_pe(pt: G1Point):
    if pt.is_identity:
        return pe.Z1
    return (pe.FQ(int(pt.x)), pe.FQ(int(pt.y)), pe.FQ(1))


def from_pe(q) -> G1Point:
    if pe.is_inf(q):
        return G1Point.identity()
    x, y = pe.normalize(q)
    return G1Point(int(x), int(y))


def rand_point(rng: random.Random) -> G1Point:
    return from_pe(pe.multiply(pe.G1, rng.randrange(1, R)))


# -- EVM precompile known-answer vectors ------------------------------------------


def _load(name: str) -> list[dict]:
    return json.loads((EVM_VECTORS / f"{name}.json").read_text())


def _padded(hex_input: str, size: int) -> bytes:
    raw = bytes.fromhex(hex_input)
    return (raw + b"\x00" * size)[:size]


@pytest.mark.parametrize("vec", _load("bn256Add"), ids=lambda v: v["Name"])
def test_evm_ecadd_vectors(vec: dict) -> None:
    data = _padded(vec["Input"], 128)
    a = G1Point.from_bytes(data[:64])
    b = G1Point.from_bytes(data[64:])
    assert (a + b).to_bytes().hex() == vec["Expected"]


@pytest.mark.parametrize("vec", _load("bn256ScalarMul"), ids=lambda v: v["Name"])
def test_evm_ecmul_vectors(vec: dict) -> None:
    data = _padded(vec["Input"], 96)
    a = G1Point.from_bytes(data[:64])
    k = int.from_bytes(data[64:], "big")  # the precompile accepts any 256-bit scalar
    assert (a * k).to_bytes().hex() == vec["Expected"]
    assert g_table().mul(k) == G * k if a == G else True


# -- constants -----------------------------------------------------------------------


def test_constants_match_py_ecc_and_evm() -> None:
    assert P == pe.field_modulus
    assert R == pe.curve_order
    assert G == from_pe(pe.G1)
    assert pe.is_on_curve(to_pe(H), pe.b)
    assert H != G and not H.is_identity
    assert pe.is_inf(pe.multiply(to_pe(H), R))


def test_h_is_try_and_increment_of_its_tag() -> None:
    h, ctr = compute_h_generator()
    assert h == H and ctr == H_COUNTER
    other, _ = compute_h_generator(b"another tag")
    assert other != H


# -- cross-checks against py_ecc ------------------------------------------------------


def test_operations_match_py_ecc() -> None:
    rng = random.Random(1)
    for _ in range(15):
        a, b = rand_point(rng), rand_point(rng)
        k = rng.randrange(2**256)
        assert a + b == from_pe(pe.add(to_pe(a), to_pe(b)))
        assert a - b == from_pe(pe.add(to_pe(a), pe.neg(to_pe(b))))
        assert -a == from_pe(pe.neg(to_pe(a)))
        assert a * k == from_pe(pe.multiply(to_pe(a), k % R))
        assert k * a == a * k
        assert g_table().mul(k) == from_pe(pe.multiply(pe.G1, k % R))
        assert h_table().mul(k) == from_pe(pe.multiply(to_pe(H), k % R))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 9, 40])
def test_msm_matches_py_ecc(n: int) -> None:
    rng = random.Random(n)
    pts = [rand_point(rng) for _ in range(n)]
    ks = [rng.randrange(R) for _ in range(n)]
    ref = pe.Z1
    for p_, k in zip(pts, ks, strict=False):
        ref = pe.add(ref, pe.multiply(to_pe(p_), k))
    assert msm(pts, ks) == from_pe(ref)
    small = [rng.randrange(-(2**130), 2**130) for _ in range(n)]
    ref = pe.Z1
    for p_, k in zip(pts, small, strict=False):
        ref = pe.add(ref, pe.multiply(to_pe(p_), k % R))
    assert msm_signed(pts, small) == from_pe(ref)


def test_msm_with_repeated_and_opposite_points() -> None:
    a = G * 12345
    pts = [a, a, -a, G1Point.identity(), a, G, G]
    ks = [3, 5, 8, 77, R - 1, 1, R - 1]
    # 3a + 5a - 8a + 0 - a + G - G = -a
    assert msm(pts, ks) == -a
    assert msm_signed([a, a, -a], [2**140, 2**140, 2**141]) == G1Point.identity()


def test_fixed_base_tables_and_mul_each() -> None:
    rng = random.Random(7)
    pts = [rand_point(rng) for _ in range(4)]
    ks = [0, 1, R - 1, rng.randrange(R)]
    for window in (2, 5, 8):
        table = FixedBaseTable(pts[0], window)
        assert table.mul_many(ks) == [pts[0] * k for k in ks]
    tabs = [table_for(p_) for p_ in pts]
    assert mul_each(tabs, ks) == [p_ * k for p_, k in zip(pts, ks, strict=False)]
    assert FixedBaseTable(G1Point.identity(), 4).mul(5).is_identity


def test_batch_add_special_cases() -> None:
    a = (G * 5)._affine()
    b = (G * 9)._affine()
    na = (-(G * 5))._affine()
    out = _batch_add([a, a, a, None, None, b], [a, na, None, b, None, a])
    assert G1Point._from_affine(out[0]) == G * 10
    assert out[1] is None
    assert G1Point._from_affine(out[2]) == G * 5
    assert G1Point._from_affine(out[3]) == G * 9
    assert out[4] is None
    assert G1Point._from_affine(out[5]) == G * 14
    assert point_sum([G, G, -G, G * 3]) == G * 4


@given(scalars)
def test_glv_decomposition_is_short_and_exact(k: int) -> None:
    k1, k2 = glv_decompose(k)
    assert (k1 + k2 * GLV_LAMBDA - k) % R == 0
    assert abs(k1) < 2**128 and abs(k2) < 2**128


# -- group laws (hypothesis) ------------------------------------------------------------


@given(scalars, scalars, scalars)
def test_group_laws(a: int, b: int, c: int) -> None:
    A, B, C = G * a, G * b, H * c
    O = G1Point.identity()
    assert A + B == B + A
    assert (A + B) + C == A + (B + C)
    assert A + O == A and O + A == A
    assert A - A == O
    assert A * b == G * (a * b % R)
    assert (A + B) * c == A * c + B * c
    assert G * ((a + b) % R) == A + B


# -- encoding ---------------------------------------------------------------------------


@given(scalars)
def test_encoding_round_trip(k: int) -> None:
    pt = H * k
    data = pt.to_bytes()
    assert len(data) == 64
    assert G1Point.from_bytes(data) == pt
    assert G1Point.from_bytes(data).to_bytes() == data


def test_identity_encoding_is_zero() -> None:
    assert G1Point.identity().to_bytes() == b"\x00" * 64
    assert G1Point.from_bytes(b"\x00" * 64).is_identity


@pytest.mark.parametrize("length", [0, 1, 32, 63, 65, 128])
def test_wrong_length_rejected(length: int) -> None:
    with pytest.raises(InvalidEncoding, match="expected 64 bytes"):
        G1Point.from_bytes(b"\x01" * length)


def test_every_byte_position_tampered_is_rejected() -> None:
    data = (G * 987654321).to_bytes()
    for pos in range(64):
        for flip in (0x01, 0x80):
            bad = bytearray(data)
            bad[pos] ^= flip
            with pytest.raises(InvalidEncoding):
                G1Point.from_bytes(bytes(bad))


@given(st.integers(min_value=P, max_value=2**256 - 1), st.integers(min_value=0, max_value=P - 1))
def test_coordinates_not_below_p_rejected(big: int, small: int) -> None:
    for x, y in ((big, small), (small, big)):
        with pytest.raises(InvalidEncoding, match="field modulus"):
            G1Point.from_bytes(x.to_bytes(32, "big") + y.to_bytes(32, "big"))


def test_point_equal_to_valid_plus_p_rejected() -> None:
    # (1, 2) and (1, 2 + p) are the same residue; the encoding must be canonical
    bad = (1).to_bytes(32, "big") + (2 + P).to_bytes(32, "big")
    with pytest.raises(InvalidEncoding):
        G1Point.from_bytes(bad)


@given(any_ints.filter(lambda v: v < P), any_ints.filter(lambda v: v < P))
def test_off_curve_rejected(x: int, y: int) -> None:
    on_curve = (y * y - x**3 - 3) % P == 0
    data = x.to_bytes(32, "big") + y.to_bytes(32, "big")
    if on_curve or (x == 0 and y == 0):
        G1Point.from_bytes(data)
    else:
        with pytest.raises(InvalidEncoding, match="not on the curve"):
            G1Point.from_bytes(data)


# -- compressed form (SPEC.md §2.1: S_i on the wire, §6.2) --------------------------------


@given(scalars)
def test_compressed_round_trip_and_parity_flag(k: int) -> None:
    k = k or 1  # the identity: test_compressed_identity
    pt = H * k
    data = pt.to_compressed()
    assert len(data) == 32
    assert G1Point.from_compressed(data) == pt
    assert int.from_bytes(data, "big") & ((1 << 254) - 1) == int(pt.x)
    assert bool(data[0] & 0x80) == bool(pt.y & 1) and not data[0] & 0x40
    neg = (-pt).to_compressed()  # -P: the same x, the other parity
    assert neg[1:] == data[1:] and neg[0] ^ data[0] == 0x80
    # the y that decompression finds is py-ecc's
    ref = pe.normalize(pe.multiply((pe.FQ(int(H.x)), pe.FQ(int(H.y)), pe.FQ.one()), k))
    got = G1Point.from_compressed(data)
    assert (int(got.x), int(got.y)) == (int(ref[0]), int(ref[1]))


def test_compressed_identity() -> None:
    assert G1Point.identity().to_compressed() == b"\x40" + bytes(31)
    assert G1Point.from_compressed(b"\x40" + bytes(31)).is_identity


def test_compressed_form_is_strict() -> None:
    good = (G * 424242).to_compressed()
    for length in (0, 31, 33, 64):
        with pytest.raises(InvalidEncoding, match="expected 32 bytes"):
            G1Point.from_compressed(b"\x01" * length)
    with pytest.raises(InvalidEncoding, match="identity flag"):
        G1Point.from_compressed(bytes([good[0] | 0x40]) + good[1:])  # identity flag and x
    with pytest.raises(InvalidEncoding, match="identity flag"):
        G1Point.from_compressed(b"\xc0" + bytes(31))  # both flags
    with pytest.raises(InvalidEncoding, match="field modulus"):
        G1Point.from_compressed(P.to_bytes(32, "big"))  # x = p, not below it
    with pytest.raises(InvalidEncoding, match="field modulus"):
        G1Point.from_compressed((P + 1 | 1 << 255).to_bytes(32, "big"))
    none = [x for x in range(1, 40) if pow(x**3 + 3, (P - 1) // 2, P) != 1]
    assert none, "some small x has no point"
    for x in none:
        with pytest.raises(InvalidEncoding, match="no point"):
            G1Point.from_compressed(x.to_bytes(32, "big"))


@given(st.binary(min_size=32, max_size=32))
def test_compressed_decoding_is_canonical(data: bytes) -> None:
    """Any 32 bytes decode to at most one point, and then re-encode to themselves."""
    try:
        pt = G1Point.from_compressed(data)
    except InvalidEncoding:
        return
    assert pt.to_compressed() == data
    assert G1Point.from_bytes(pt.to_bytes()) == pt


def test_scalar_codec() -> None:
    assert scalar_from_bytes(scalar_to_bytes(R - 1)) == R - 1
    with pytest.raises(InvalidEncoding, match="group order"):
        scalar_from_bytes(R.to_bytes(32, "big"))
    with pytest.raises(InvalidEncoding, match="expected 32 bytes"):
        scalar_from_bytes(b"\x00" * 31)
    with pytest.raises(InvalidEncoding):
        scalar_to_bytes(R)


def test_points_are_immutable() -> None:
    with pytest.raises(AttributeError):
        G.x = 5  # type: ignore[misc]

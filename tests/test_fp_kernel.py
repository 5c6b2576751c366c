"""The numba BN254 kernel (pvss._fp_kernel) against Python integers and against the
pure-Python reference path of pvss.group: field operations, sums of groups, signed
digits, and msm / msm_signed / mul_each with the kernel on and off."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pvss.group as grp
from pvss import _fp_kernel as K
from pvss.group import (
    FIELD_MODULUS,
    ORDER,
    FixedBaseTable,
    G,
    G1Point,
    H,
    msm,
    msm_signed,
    mul_each,
    table_for,
    tables_for,
)

P = int(FIELD_MODULUS)
R = int(ORDER)
EDGE = [0, 1, 2, P - 1, P - 2, (P - 1) // 2, (P + 1) // 2, 2**253, 2**253 + 1, 2**32 - 1, 2**32]


def mont(values: list[int]) -> np.ndarray:
    return K.field_to_mont(values)


def plain(arr: np.ndarray) -> list[int]:
    raw = K.limbs_to_bytes(K.from_mont(arr))
    return [int.from_bytes(raw[32 * i : 32 * i + 32], "little") for i in range(arr.shape[0])]


@pytest.fixture(scope="module", autouse=True)
def kernel_everywhere() -> Iterator[None]:
    """The kernel on, for every input size, in this module (each test still compares
    it with the reference path by switching it off)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(grp, "KERNEL_ENABLED", True)
        mp.setattr(grp, "KERNEL_MIN_MSM_POINTS", 1)
        mp.setattr(grp, "KERNEL_MIN_FIXED_ADDS", 1)
        yield


def on_and_off(fn: Callable[[], Any]) -> tuple[Any, Any]:
    """fn() with the kernel forced on and forced off."""
    old = grp.set_kernel(True)
    try:
        on = fn()
        grp.set_kernel(False)
        off = fn()
    finally:
        grp.set_kernel(old)
    return on, off


# -- field arithmetic --------------------------------------------------------------


def _pairs(rng: random.Random, n: int) -> tuple[list[int], list[int]]:
    a = EDGE + [rng.randrange(P) for _ in range(n)]
    b = [rng.choice(EDGE) if rng.random() < 0.2 else rng.randrange(P) for _ in a]
    return a, b


def test_constants() -> None:
    assert int.from_bytes(K.limbs_to_bytes(K.P_LIMBS.reshape(1, 8)), "little") == P
    assert (int(K.N_PRIME) * P) % 2**32 == 2**32 - 1
    assert plain(K.ONE_MONT.reshape(1, 8).copy()) == [1]


def test_limb_round_trip_and_montgomery_form() -> None:
    rng = random.Random(1)
    vals, _ = _pairs(rng, 200)
    limbs = K.ints_to_limbs(vals)
    assert limbs.dtype == np.uint64 and limbs.shape == (len(vals), 8)
    raw = K.limbs_to_bytes(limbs)
    assert [int.from_bytes(raw[32 * i : 32 * i + 32], "little") for i in range(len(vals))] == vals
    m = mont(vals)
    for v, row in zip(vals, m, strict=True):
        as_int = sum(int(x) << (32 * j) for j, x in enumerate(row))
        assert as_int == v * 2**256 % P
    assert plain(m) == vals


def test_field_ops_match_python_ints() -> None:
    rng = random.Random(2)
    a, b = _pairs(rng, 300)
    A, B = mont(a), mont(b)
    n = len(a)
    out = np.empty_like(A)
    for i in range(n):
        K.mont_mul(A, i, B, i, out, i)
    assert plain(out) == [x * y % P for x, y in zip(a, b, strict=True)]
    for i in range(n):
        K.fadd(A, i, B, i, out, i)
    assert plain(out) == [(x + y) % P for x, y in zip(a, b, strict=True)]
    for i in range(n):
        K.fsub(A, i, B, i, out, i)
    assert plain(out) == [(x - y) % P for x, y in zip(a, b, strict=True)]
    for i in range(n):
        K.fneg(A, i, out, i)
    assert plain(out) == [(-x) % P for x in a]
    for i in range(n):
        K.finv(A, i, out, i)
    assert plain(out) == [pow(x, P - 2, P) for x in a]
    assert [bool(K.feq(A, i, B, i)) for i in range(n)] == [
        x == y for x, y in zip(a, b, strict=True)
    ]
    assert [bool(K.fis_zero(A, i)) for i in range(n)] == [x == 0 for x in a]


def test_field_ops_allow_aliasing() -> None:
    rng = random.Random(3)
    a, b = _pairs(rng, 50)
    A, B = mont(a), mont(b)
    for i in range(len(a)):
        K.mont_mul(A, i, A, i, A, i)  # square in place
        K.fadd(B, i, A, i, B, i)
    assert plain(A) == [x * x % P for x in a]
    assert plain(B) == [(y + x * x) % P for x, y in zip(a, b, strict=True)]


@given(st.integers(0, P - 1), st.integers(0, P - 1))
def test_mont_mul_hypothesis(x: int, y: int) -> None:
    A, B = mont([x]), mont([y])
    out = np.empty_like(A)
    K.mont_mul(A, 0, B, 0, out, 0)
    assert plain(out) == [x * y % P]
    K.fsub(A, 0, B, 0, out, 0)
    assert plain(out) == [(x - y) % P]


# -- signed digits ------------------------------------------------------------------


@pytest.mark.parametrize("c", [2, 3, 4, 5, 8, 12, 13, 16])
def test_signed_digits_match_reference(c: int) -> None:
    rng = random.Random(c)
    ks = [0, 1, R - 1, 2**254 - 1, 2**128, (1 << (c * 3)) - 1] + [
        rng.randrange(R) for _ in range(30)
    ]
    count = (255 + c - 1) // c + 1
    got = K.signed_digits(K.ints_to_limbs(ks), c, count)
    for k, row in zip(ks, got, strict=True):
        assert row.tolist() == grp._signed_digits(k, c, count)


def test_signed_digits_reject_overflow() -> None:
    with pytest.raises(ValueError):
        K.signed_digits(K.ints_to_limbs([2**40]), 4, 5)


# -- sums of groups -----------------------------------------------------------------


def _rand_affine(rng: random.Random) -> tuple[int, int]:
    pt = G * rng.randrange(1, R)
    return (int(pt.x), int(pt.y))


def _kernel_sum_groups(groups: list[list[grp.Affine]]) -> list[grp.Affine]:
    flat = [a for g in groups for a in g]
    xs = mont([0 if a is None else int(a[0]) for a in flat])
    ys = mont([0 if a is None else int(a[1]) for a in flat])
    inf = np.array([a is None for a in flat], dtype=np.uint8)
    starts = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum([len(g) for g in groups], out=starts[1:])
    ox, oy, oinf = K.sum_groups(xs, ys, inf, starts)
    return [
        None if f else (x, y) for x, y, f in zip(plain(ox), plain(oy), oinf.tolist(), strict=True)
    ]


def _reference(groups: list[list[grp.Affine]]) -> list[grp.Affine]:
    out = grp._reduce_lists(
        [[(grp.mpz(a[0]), grp.mpz(a[1])) if a else None for a in g] for g in groups]
    )
    return [None if a is None else (int(a[0]), int(a[1])) for a in out]


def test_sum_groups_special_cases() -> None:
    rng = random.Random(11)
    a = _rand_affine(rng)
    b = _rand_affine(rng)
    na = (a[0], (-a[1]) % P)
    groups: list[list[grp.Affine]] = [
        [],
        [a],
        [None],
        [a, a],  # doubling
        [a, na],  # inverse pair
        [a, None],
        [None, a],
        [None, None, None],
        [a, a, a, a],  # doublings at two levels
        [a, b, na, b],  # (a + b) + (-a + b): equal sums at level two
        [a, b, na],  # odd length
        [a, na, a, na, b],
        [b, a, b, na, na, a, None, b],
    ]
    assert _kernel_sum_groups(groups) == _reference(groups)
    expect_2a = G1Point._from_affine((grp.mpz(a[0]), grp.mpz(a[1]))) * 2
    assert _kernel_sum_groups([[a, a]])[0] == (int(expect_2a.x), int(expect_2a.y))


def test_sum_groups_random() -> None:
    rng = random.Random(12)
    pool = [_rand_affine(rng) for _ in range(12)]
    pool += [(x, (-y) % P) for x, y in pool[:6]]
    groups = []
    for _ in range(150):
        size = rng.choice([0, 1, 2, 3, 5, 8, 13, 40])
        groups.append([None if rng.random() < 0.05 else rng.choice(pool) for _ in range(size)])
    assert _kernel_sum_groups(groups) == _reference(groups)


# -- msm, msm_signed, mul_each: kernel on vs off -------------------------------------

point_idx = st.integers(0, 7)


def _pool() -> list[G1Point]:
    rng = random.Random(99)
    base = [G * rng.randrange(1, R) for _ in range(5)]
    return base + [-base[0], base[1], G1Point.identity()]


POOL = _pool()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(point_idx, st.one_of(st.integers(0, R - 1), st.sampled_from([0, 1, R - 1]))),
        min_size=0,
        max_size=30,
    )
)
def test_msm_kernel_matches_reference(terms: list) -> None:
    pts = [POOL[i] for i, _ in terms]
    ks = [k for _, k in terms]
    on, off = on_and_off(lambda: msm(pts, ks))
    assert on == off


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(point_idx, st.integers(-(2**140), 2**140)),
        min_size=0,
        max_size=30,
    )
)
def test_msm_signed_kernel_matches_reference(terms: list) -> None:
    pts = [POOL[i] for i, _ in terms]
    ks = [k for _, k in terms]
    on, off = on_and_off(lambda: msm_signed(pts, ks))
    assert on == off


def test_msm_cancellation_and_large() -> None:
    rng = random.Random(5)
    a = POOL[0]
    pts = [a, a, -a, G1Point.identity(), a, G, G] * 4
    ks = [3, 5, 8, 77, R - 1, 1, R - 1] * 4
    on, off = on_and_off(lambda: msm(pts, ks))
    assert on == off == -a * 4
    assert msm_signed([a] * 20, [2**140] * 10 + [-(2**140)] * 10).is_identity
    big_pts = [G * rng.randrange(1, R) for _ in range(300)]
    big_ks = [rng.randrange(R) for _ in range(300)]
    on, off = on_and_off(lambda: msm(big_pts, big_ks))
    assert on == off
    huge = [rng.randrange(2**300) for _ in range(40)]  # msm_signed takes any size
    on, off = on_and_off(lambda: msm_signed(big_pts[:40], huge))
    assert on == off


@pytest.mark.parametrize("affine_sums", [False, True])
def test_msm_many_kernel(affine_sums: bool) -> None:
    rng = random.Random(6)
    jobs = []
    for n in (0, 1, 3, 20, 7, 2):
        pts = [POOL[rng.randrange(len(POOL))] for _ in range(n)]
        jobs.append((pts, [rng.randrange(-(2**130), 2**130) for _ in range(n)]))
    jobs.append(([POOL[0], POOL[0], POOL[5]], [3, 4, 7]))  # cancels: POOL[5] == -POOL[0]
    jobs.append(([POOL[1], POOL[6]], [2**129, 2**129]))  # POOL[6] == POOL[1]: doublings
    aff = []
    for pts, ks in jobs:
        aff.append(
            (
                [p._affine() if k > 0 else (-p)._affine() for p, k in zip(pts, ks, strict=True)],
                [abs(k) for k in ks],
            )
        )
    got = [G1Point._from_affine(a) for a in grp._msm_many_kernel(aff, affine_sums)]
    on, want = on_and_off(lambda: grp.msm_signed_many(jobs))
    assert on == got
    assert want == [msm_signed(pts, ks) for pts, ks in jobs]
    assert got == want
    assert want[-2].is_identity


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(point_idx, st.integers(0, R - 1)), min_size=1, max_size=12))
def test_mul_each_kernel_matches_reference(terms: list) -> None:
    tabs = [table_for(POOL[i], 4) for i, _ in terms]
    ks = [k for _, k in terms]
    on, off = on_and_off(lambda: mul_each(tabs, ks))
    assert on == off


def test_fixed_base_windows_and_edges() -> None:
    rng = random.Random(8)
    ks = [0, 1, 2, R - 1, R - 2, 2**253, 2**256 - 1] + [rng.randrange(R) for _ in range(10)]
    for window in (2, 3, 5, 8, 12):
        table = FixedBaseTable(H, window)
        on, off = on_and_off(partial(table.mul_many, ks))
        assert on == off == [H * k for k in ks]
    ident = FixedBaseTable(G1Point.identity(), 4)
    tabs = [ident, table_for(POOL[0], 4), ident]
    on, off = on_and_off(lambda: mul_each(tabs, [5, 7, 0]))
    assert on == off == [G1Point.identity(), POOL[0] * 7, G1Point.identity()]
    on, off = on_and_off(lambda: grp.g_table().mul_many(ks))
    assert on == off


def _pure_tables(points: list[G1Point], window: int) -> list[FixedBaseTable]:
    old = grp.set_kernel(False)
    try:
        return tables_for(points, window, {})
    finally:
        grp.set_kernel(old)


@pytest.mark.parametrize("window", [2, 3, 4, 5, 8])
def test_kernel_built_tables_match_reference(window: int) -> None:
    """tables_for on the kernel (fixed_tables, all tables in one call) gives the very
    entries of the reference constructor, as Python rows and as limbs, and the same
    products through mul / mul_many / mul_each (the reference path reading the
    kernel-built rows, the kernel reading the reference-built limbs)."""
    rng = random.Random(window)
    ident = G1Point.identity()
    pts = [G, H, -G, POOL[1], ident, POOL[2], POOL[1]] + [G * rng.randrange(1, R) for _ in range(3)]
    cache: dict = {}
    built = tables_for(pts, window, cache)
    assert built[3] is built[6]  # the same key twice: one table
    assert len(cache) == len(set(pts))
    assert all(table_for(p, window, cache) is t for p, t in zip(pts, built, strict=True))
    ref = _pure_tables(pts, window)
    assert all(t._rows is None for p, t in zip(pts, built, strict=True) if not p.is_identity)
    for kt, rt in zip(built, ref, strict=True):
        assert kt.count == rt.count and kt.window == rt.window == window
        if kt.point.is_identity:
            assert kt.rows == rt.rows
            continue
        kx, ky = kt._kernel_rows()
        rx, ry = rt._kernel_rows()
        assert np.array_equal(kx, rx) and np.array_equal(ky, ry)
        assert kt.rows == rt.rows  # lazy conversion, entry for entry
        assert kt.rows[0][0] == kt.point._affine()
    ks = [0, 1, 2, R - 1, R, R + 1, 2 * R - 1, 2**256 - 1] + [rng.randrange(R) for _ in range(6)]
    fresh = tables_for(pts, window, {})  # rows not yet converted
    for kt, rt in zip(fresh, ref, strict=True):
        want = [kt.point * k for k in ks]
        on, off = on_and_off(partial(kt.mul_many, ks))
        assert on == off == want
        on, off = on_and_off(partial(rt.mul_many, ks))
        assert on == off == want
        assert [kt.mul(k) for k in ks] == [rt.mul(k) for k in ks] == want
    pick = [rng.randrange(len(pts)) for _ in range(20)]
    scal = [rng.choice(ks) for _ in pick]
    want = [pts[i] * k for i, k in zip(pick, scal, strict=True)]
    for tabs in (built, ref):
        on, off = on_and_off(partial(mul_each, [tabs[i] for i in pick], scal))
        assert on == off == want


def test_deal_many_kernel_tables_bit_identical() -> None:
    """A dealer's batch with a fresh table cache: same dealings with the tables built
    on the kernel or by the reference (and with the whole kernel off)."""
    from pvss.scrape import DealRequest, deal_many
    from pvss.transcript import Context

    rng = random.Random(6)
    keys = [G * rng.randrange(1, R) for _ in range(8)]
    committee = tuple(keys[:6])
    ctx = Context(1, bytes(20), 2, 3)
    reqs = [DealRequest(committee, 3, ctx)] + [
        DealRequest(committee, 3, ctx, keys[6 + j]) for j in range(2)
    ]

    def run() -> list:
        return [(d.to_bytes(), s) for d, s in deal_many(reqs, rng=random.Random(5), table_cache={})]

    on, off = on_and_off(run)
    assert on == off


def test_switch_environment_default() -> None:
    assert isinstance(grp.KERNEL_ENABLED, bool)
    old = grp.set_kernel(False)
    assert grp.set_kernel(old) is False


# -- Jacobian helpers (Pippenger's running sums and Horner step) ----------------------


def _jac_rows(points: list[grp.Affine], rng: random.Random) -> np.ndarray:
    """Rows x, y, z per point with a random z (z = 0 for the identity)."""
    vals = []
    for a in points:
        if a is None:
            vals += [1, 1, 0]
        else:
            z = rng.randrange(1, P)
            vals += [int(a[0]) * z * z % P, int(a[1]) * z**3 % P, z]
    return mont(vals)


def _jac_affine(J: np.ndarray, row: int) -> grp.Affine:
    ox = np.zeros((1, 8), dtype=np.uint64)
    oy = np.zeros((1, 8), dtype=np.uint64)
    oinf = np.zeros(1, dtype=np.uint8)
    W = np.zeros((12, 8), dtype=np.uint64)
    K._jac_to_affine(J, row, row + 1, row + 2, ox, oy, oinf, 0, W)
    return None if oinf[0] else (plain(ox)[0], plain(oy)[0])


def _ref_add(a: grp.Affine, b: grp.Affine) -> grp.Affine:
    out = grp._batch_add([a], [b])[0]
    return None if out is None else (int(out[0]), int(out[1]))


def test_jacobian_helpers_special_cases() -> None:
    rng = random.Random(21)
    a = G * 77
    b = H * 5
    A, B, NA = a._affine(), b._affine(), (-a)._affine()
    W = np.zeros((12, 8), dtype=np.uint64)
    cases = [(A, B), (A, A), (A, NA), (None, A), (A, None), (None, None)]
    for left, right in cases:
        J = _jac_rows([left, right], rng)
        K._jac_add(J, 0, 1, 2, J, 3, 4, 5, W)
        assert _jac_affine(J, 0) == _ref_add(left, right), (left, right)
        J = _jac_rows([left], rng)
        if right is not None:
            AX, AY = mont([int(right[0])]), mont([int(right[1])])
            K._jac_add_affine(J, 0, 1, 2, AX, AY, 0, W)
            assert _jac_affine(J, 0) == _ref_add(left, right), (left, right)
        J = _jac_rows([left], rng)
        K._jac_dbl(J, 0, 1, 2, W)
        assert _jac_affine(J, 0) == _ref_add(left, left)

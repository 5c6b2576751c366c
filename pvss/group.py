"""BN254 (alt_bn128) G1 on gmpy2 — SPEC.md §2.

The curve is y^2 = x^3 + 3 over F_p, the group G1 = E(F_p) of prime order r (cofactor
1), exactly the group of the EVM precompiles ecAdd (0x06) and ecMul (0x07).

Two layers live here:

* ``G1Point`` — the readable, immutable affine point with ``+``, ``-``, ``==``,
  ``k * P``, ``to_bytes`` / ``from_bytes`` in the EVM layout.
* fast paths on raw tuples — Jacobian formulas with lazy reduction, GLV + wNAF
  variable-base multiplication, signed-window fixed-base tables evaluated in lock
  step with batched affine additions (one field inversion per step for a whole
  batch, Montgomery's trick), and a Pippenger multi-scalar multiplication whose
  bucket sums are reduced the same way.

Internal representations (never exposed): an affine point is ``(x, y)`` of ``mpz``
or ``None`` for the identity; a Jacobian point is ``(X, Y, Z)`` with ``Z == 0`` for
the identity. Every fast path is checked against ``py_ecc`` in the tests.

The Python code here is the reference. Pippenger (``_msm_affine``, ``msm_signed_many``)
and fixed-base multiplication (``mul_each``) run on the compiled kernel of
``pvss._fp_kernel`` (numba, Montgomery limbs) when it is on (default; environment
``PVSS_KERNEL=0`` or ``set_kernel(False)`` turns it off) and the input is large enough;
both paths return the same points (tests/test_fp_kernel.py runs them side by side).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import gmpy2
from gmpy2 import mpz
from sha3 import keccak_256

from pvss.errors import InvalidEncoding

# ---------------------------------------------------------------------------
# Constants (SPEC.md §2.1). Checked when the module loads (bottom of the file).
# ---------------------------------------------------------------------------

FIELD_MODULUS = mpz(0x30644E72E131A029B85045B68181585D97816A916871CA8D3C208C16D87CFD47)
ORDER = mpz(0x30644E72E131A029B85045B68181585D2833E84879B9709143E1F593F0000001)
CURVE_B = mpz(3)
POINT_BYTES = 64
#: a point on the wire in compressed form (SPEC.md §2.1, §6.2): x, the flags in its top bits
COMPRESSED_POINT_BYTES = 32
SCALAR_BYTES = 32
H_TAG = b"pvss-secagg/v1/generator-h"
#: cube root of unity in F_p: (x, y) -> (GLV_BETA * x, y) is multiplication by GLV_LAMBDA
GLV_BETA = mpz(0x59E26BCEA0D48BACD4F263F1ACDB5C4F5763473177FFFFFE)
GLV_LAMBDA = mpz(0xB3C4D79D41A917585BFC41088D8DAAA78B17EA66B99C90DD)

_P = FIELD_MODULUS
_R = ORDER
_invert = gmpy2.invert
_SQRT_EXP = (_P + 1) // 4  # p = 3 mod 4
_FLAG_ODD = 0x80  # compressed form: y is odd
_FLAG_IDENTITY = 0x40  # compressed form: the identity (every other bit zero)
_X_MASK = (1 << 254) - 1  # p < 2^254: the top two bits of x are the flags

Affine = tuple[Any, Any] | None
Jacobian = tuple[Any, Any, Any]
_JAC_INF: Jacobian = (mpz(1), mpz(1), mpz(0))

# ---------------------------------------------------------------------------
# Compiled kernel switch (SPEC.md §2.5). The pure-Python code below is the reference;
# ``pvss._fp_kernel`` (numba) runs Pippenger and fixed-base multiplication on limbs
# and must return the very same points. PVSS_KERNEL=0 in the environment, or
# ``set_kernel(False)``, keeps everything on the reference path.
# ---------------------------------------------------------------------------

KERNEL_ENABLED = os.environ.get("PVSS_KERNEL", "1").strip().lower() not in ("0", "false", "off")
#: a Pippenger MSM (after the GLV split) goes to the kernel from this many points; the
#: kernel already wins at the smallest Pippenger size (9 points: ~2x, measured)
KERNEL_MIN_MSM_POINTS = 9
#: ``mul_each`` goes to the kernel from this many table look-ups (scalars x windows):
#: below ~50 the kernel's fixed costs (conversions, one inversion per tree level) lose
KERNEL_MIN_FIXED_ADDS = 64
_KERNEL: Any = None


def set_kernel(enabled: bool) -> bool:
    """Turn the compiled kernel on or off for this process; returns the old setting."""
    global KERNEL_ENABLED
    old = KERNEL_ENABLED
    KERNEL_ENABLED = bool(enabled)
    return old


def _kernel() -> Any:
    """The kernel module (imported, and its functions compiled or loaded from numba's
    cache, on first use)."""
    global _KERNEL
    if _KERNEL is None:
        from pvss import _fp_kernel

        _KERNEL = _fp_kernel
    return _KERNEL


def _kernel_points_in(xs: Sequence[Any], ys: Sequence[Any]) -> tuple[Any, Any]:
    k = _kernel()
    return k.field_to_mont(xs), k.field_to_mont(ys)


def _kernel_points_out(ox: Any, oy: Any, oinf: Any) -> list[Affine]:
    """(x, y, inf) rows in Montgomery form -> affine tuples of mpz (None: identity)."""
    k = _kernel()
    bx = k.limbs_to_bytes(k.from_mont(ox))
    by = k.limbs_to_bytes(k.from_mont(oy))
    frm = mpz.from_bytes
    out: list[Affine] = []
    for i, flag in enumerate(oinf.tolist()):
        if flag:
            out.append(None)
        else:
            lo = 32 * i
            out.append((frm(bx[lo : lo + 32], "little"), frm(by[lo : lo + 32], "little")))
    return out


# ---------------------------------------------------------------------------
# Raw affine / Jacobian arithmetic
# ---------------------------------------------------------------------------


def _is_on_curve(x: Any, y: Any) -> bool:
    return (y * y - x * x * x - CURVE_B) % _P == 0


def _jac_double(X: Any, Y: Any, Z: Any) -> Jacobian:
    """dbl-2009-l for a = 0 (2M + 5S). Inputs and outputs reduced mod p; the
    intermediates are not (a product of unreduced values is still only ~1000 bits,
    and a skipped reduction is a skipped interpreter round trip)."""
    if not Z or not Y:
        return _JAC_INF
    p = _P
    A = X * X
    B = Y * Y % p
    C = B * B
    D = 2 * ((X + B) ** 2 - A - C)
    E = 3 * A
    X3 = (E * E - 2 * D) % p
    Y3 = (E * (D - X3) - 8 * C) % p
    return X3, Y3, 2 * Y * Z % p


def _jac_add_affine(X1: Any, Y1: Any, Z1: Any, x2: Any, y2: Any) -> Jacobian:
    """madd-2007-bl: Jacobian + affine (x2, y2) (7M + 4S), lazy reduction as above."""
    if not Z1:
        return x2, y2, mpz(1)
    p = _P
    Z1Z1 = Z1 * Z1 % p
    H = x2 * Z1Z1 % p - X1
    r_ = 2 * (y2 * Z1 * Z1Z1 % p - Y1)
    if not H:  # both coordinates are reduced, so equal x means H == 0 exactly
        if not r_:
            return _jac_double(X1, Y1, Z1)
        return _JAC_INF
    HH = H * H
    I_ = 4 * HH
    J = H * I_
    V = X1 * I_
    X3 = (r_ * r_ - J - 2 * V) % p
    Y3 = (r_ * (V - X3) - 2 * Y1 * J) % p
    Z3 = ((Z1 + H) ** 2 - Z1Z1 - HH) % p
    return X3, Y3, Z3


def _jac_add(X1: Any, Y1: Any, Z1: Any, X2: Any, Y2: Any, Z2: Any) -> Jacobian:
    """add-2007-bl: general Jacobian addition."""
    if not Z1:
        return X2, Y2, Z2
    if not Z2:
        return X1, Y1, Z1
    p = _P
    Z1Z1 = Z1 * Z1 % p
    Z2Z2 = Z2 * Z2 % p
    U1 = X1 * Z2Z2 % p
    U2 = X2 * Z1Z1 % p
    S1 = Y1 * Z2 * Z2Z2 % p
    S2 = Y2 * Z1 * Z1Z1 % p
    H = U2 - U1
    r_ = 2 * (S2 - S1)
    if H % p == 0:
        if r_ % p == 0:
            return _jac_double(X1, Y1, Z1)
        return _JAC_INF
    I_ = (2 * H) ** 2 % p
    J = H * I_ % p
    V = U1 * I_ % p
    X3 = (r_ * r_ - J - 2 * V) % p
    Y3 = (r_ * (V - X3) - 2 * S1 * J) % p
    Z3 = ((Z1 + Z2) ** 2 - Z1Z1 - Z2Z2) * H % p
    return X3, Y3, Z3


def _to_affine(X: Any, Y: Any, Z: Any) -> Affine:
    if not Z:
        return None
    p = _P
    zi = _invert(Z, p)
    zi2 = zi * zi % p
    return X * zi2 % p, Y * zi2 * zi % p


def _batch_inverse(values: Sequence[Any]) -> list[Any]:
    """Montgomery's trick: all inverses mod p for one inversion and 3 products each.
    Every value must be non-zero mod p."""
    p = _P
    n = len(values)
    if n == 0:
        return []
    prefix = [None] * n
    acc = mpz(1)
    for i in range(n):
        prefix[i] = acc
        acc = acc * values[i] % p
    inv = _invert(acc, p)
    out: list[Any] = [None] * n
    for i in range(n - 1, -1, -1):
        out[i] = inv * prefix[i] % p
        inv = inv * values[i] % p
    return out


def _batch_to_affine(points: Sequence[Jacobian]) -> list[Affine]:
    idx = [i for i, pt in enumerate(points) if pt[2]]
    invs = _batch_inverse([points[i][2] for i in idx])
    out: list[Affine] = [None] * len(points)
    p = _P
    for i, zi in zip(idx, invs, strict=True):
        X, Y, _ = points[i]
        zi2 = zi * zi % p
        out[i] = (X * zi2 % p, Y * zi2 * zi % p)
    return out


def _batch_add(left: Sequence[Affine], right: Sequence[Affine]) -> list[Affine]:
    """Pairwise affine sums left[i] + right[i] with one shared inversion.

    Fast path: no identity and no equal x-coordinates (the product of all
    denominators is then non-zero). Anything else — the identity, P + P, P + (-P) —
    goes to ``_batch_add_general``, which is exact for every input."""
    if None in left or None in right:
        return _batch_add_general(left, right)
    p = _P
    dens = [b[0] - a[0] for a, b in zip(left, right, strict=True)]  # type: ignore[index]
    n = len(dens)
    if n == 0:
        return []
    prefix: list[Any] = [None] * n
    acc = mpz(1)
    for j in range(n):
        prefix[j] = acc
        acc = acc * dens[j] % p
    if not acc:
        return _batch_add_general(left, right)
    inv = _invert(acc, p)
    out: list[Affine] = [None] * n
    for j in range(n - 1, -1, -1):
        d_inv = inv * prefix[j] % p
        inv = inv * dens[j] % p
        x1, y1 = left[j]  # type: ignore[misc]
        x2, y2 = right[j]  # type: ignore[misc]
        lam = (y2 - y1) * d_inv % p
        x3 = (lam * lam - x1 - x2) % p
        out[j] = (x3, (lam * (x1 - x3) - y1) % p)
    return out


def _batch_add_general(left: Sequence[Affine], right: Sequence[Affine]) -> list[Affine]:
    """``_batch_add`` for any inputs, including the identity, doublings and inverses."""
    p = _P
    n = len(left)
    out: list[Affine] = [None] * n
    dens: list[Any] = []
    slots: list[int] = []
    for i in range(n):
        a = left[i]
        b = right[i]
        if a is None:
            out[i] = b
        elif b is None:
            out[i] = a
        elif a[0] != b[0]:
            dens.append(b[0] - a[0])
            slots.append(i)
        elif a[1] == b[1] and a[1]:
            dens.append(2 * a[1])
            slots.append(~i)  # marks a doubling
        # else: a == -b, the sum is the identity (out[i] stays None)
    for j, d_inv in enumerate(_batch_inverse(dens)):
        i = slots[j]
        if i >= 0:
            x1, y1 = left[i]  # type: ignore[misc]
            x2, y2 = right[i]  # type: ignore[misc]
            lam = (y2 - y1) * d_inv % p
        else:
            i = ~i
            x1, y1 = left[i]  # type: ignore[misc]
            x2 = x1
            lam = 3 * x1 * x1 * d_inv % p
        x3 = (lam * lam - x1 - x2) % p
        out[i] = (x3, (lam * (x1 - x3) - y1) % p)
    return out


def _neg(a: Affine) -> Affine:
    if a is None:
        return None
    return (a[0], (-a[1]) % _P)


# ---------------------------------------------------------------------------
# Scalar recoding: GLV decomposition, wNAF, signed windows
# ---------------------------------------------------------------------------


def _glv_basis() -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """Short basis of the lattice {(a, b): a + b*lambda = 0 mod r} by the extended
    Euclidean algorithm stopped at sqrt(r) (Gallant–Lambert–Vanstone, 2001)."""
    sqrt_r = gmpy2.isqrt(_R)
    r0, r1 = _R, GLV_LAMBDA
    t0, t1 = mpz(0), mpz(1)
    while r1 >= sqrt_r:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        t0, t1 = t1, t0 - q * t1
    # now r1 < sqrt(r) <= r0: (r1, -t1) is short; pick the shorter of the two neighbours
    v1 = (r1, -t1)
    q = r0 // r1
    r2, t2 = r0 - q * r1, t0 - q * t1
    cand_a = (r0, -t0)
    cand_b = (r2, -t2)
    v2 = cand_a if cand_a[0] ** 2 + cand_a[1] ** 2 <= cand_b[0] ** 2 + cand_b[1] ** 2 else cand_b
    return v1, v2


(_GLV_A1, _GLV_B1), (_GLV_A2, _GLV_B2) = _glv_basis()
_GLV_DET = _GLV_A1 * _GLV_B2 - _GLV_A2 * _GLV_B1


def _round_div(num: Any, den: Any) -> Any:
    # nearest integer to num/den for den > 0
    return (2 * num + den) // (2 * den)


def glv_decompose(k: int) -> tuple[Any, Any]:
    """Split k (mod r) into (k1, k2) with k = k1 + k2*GLV_LAMBDA (mod r), |k1|, |k2| < 2^128."""
    k = mpz(k) % _R
    det = _GLV_DET
    if det > 0:
        c1 = _round_div(_GLV_B2 * k, det)
        c2 = _round_div(-_GLV_B1 * k, det)
    else:
        c1 = _round_div(-_GLV_B2 * k, -det)
        c2 = _round_div(_GLV_B1 * k, -det)
    k1 = k - c1 * _GLV_A1 - c2 * _GLV_A2
    k2 = -c1 * _GLV_B1 - c2 * _GLV_B2
    return k1, k2


def _endo(a: Affine) -> Affine:
    """phi(x, y) = (beta*x, y) = GLV_LAMBDA * (x, y)."""
    if a is None:
        return None
    return (GLV_BETA * a[0] % _P, a[1])


def _wnaf(k: Any, w: int) -> list[int]:
    """Width-w NAF of k >= 0, least significant digit first."""
    digits: list[int] = []
    k = int(k)
    full = 1 << w
    half = 1 << (w - 1)
    while k:
        if k & 1:
            d = k & (full - 1)
            if d >= half:
                d -= full
            k -= d
        else:
            d = 0
        digits.append(d)
        k >>= 1
    return digits


def _signed_digits(k: int, c: int, count: int) -> list[int]:
    """Radix-2^c digits of k in [-2^(c-1), 2^(c-1)], least significant first.
    Requires k < 2^(c*count - 1) so the final carry fits in the last digit."""
    digits = [0] * count
    full = 1 << c
    half = 1 << (c - 1)
    mask = full - 1
    for i in range(count):
        d = k & mask
        k >>= c
        if d > half:
            d -= full
            k += 1
        digits[i] = d
    if k:
        raise ValueError("scalar too large for the signed-digit recoding")
    return digits


# ---------------------------------------------------------------------------
# Variable-base multiplication: GLV + interleaved wNAF
# ---------------------------------------------------------------------------

_WNAF_W = 5


def _odd_multiples(a: tuple[Any, Any], count: int) -> list[Affine]:
    """[P, 3P, 5P, ...] (count entries) in affine, one shared inversion."""
    X, Y, Z = a[0], a[1], mpz(1)
    twice = _jac_double(X, Y, Z)
    jac = [(X, Y, Z)]
    for _ in range(count - 1):
        jac.append(_jac_add(*jac[-1], *twice))
    return _batch_to_affine(jac)


def _mul_var(a: Affine, k: int) -> Affine:
    """k * a for an arbitrary point: GLV split, then Straus over (a, phi(a)) with wNAF."""
    if a is None:
        return None
    k = mpz(k) % _R
    if not k:
        return None
    k1, k2 = glv_decompose(k)
    table1 = _odd_multiples(a, 1 << (_WNAF_W - 2))
    if k1 < 0:
        k1 = -k1
        table1 = [_neg(t) for t in table1]
    table2 = [_endo(t) for t in _odd_multiples(a, 1 << (_WNAF_W - 2))]
    if k2 < 0:
        k2 = -k2
        table2 = [_neg(t) for t in table2]
    neg1 = [_neg(t) for t in table1]
    neg2 = [_neg(t) for t in table2]
    n1 = _wnaf(k1, _WNAF_W)
    n2 = _wnaf(k2, _WNAF_W)
    length = max(len(n1), len(n2))
    n1 += [0] * (length - len(n1))
    n2 += [0] * (length - len(n2))
    X, Y, Z = _JAC_INF
    for i in range(length - 1, -1, -1):
        if Z:
            X, Y, Z = _jac_double(X, Y, Z)
        d = n1[i]
        if d:
            t = table1[d >> 1] if d > 0 else neg1[(-d) >> 1]
            X, Y, Z = _jac_add_affine(X, Y, Z, t[0], t[1])  # type: ignore[index]
        d = n2[i]
        if d:
            t = table2[d >> 1] if d > 0 else neg2[(-d) >> 1]
            X, Y, Z = _jac_add_affine(X, Y, Z, t[0], t[1])  # type: ignore[index]
    return _to_affine(X, Y, Z)


# ---------------------------------------------------------------------------
# Fixed-base tables
# ---------------------------------------------------------------------------


class FixedBaseTable:
    """Precomputed signed-window table of a point P for fast ``k * P``.

    Window w (radix 2^c): entries j * 2^(c*w) * P for j = 1 .. 2^(c-1). A scalar is
    recoded into signed digits, so ``k * P`` is one table look-up and one addition per
    window and no doubling at all. ``mul_many`` runs many scalars in lock step with one
    shared inversion per window (batched affine additions).
    """

    __slots__ = ("point", "window", "count", "_rows", "_limbs")
    point: G1Point
    window: int
    count: int
    _rows: list[list[Affine]] | None
    _limbs: tuple[Any, Any] | None

    def __init__(self, point: G1Point, window: int = 8) -> None:
        self._setup(point, window)
        half = 1 << (window - 1)
        base = point._affine()
        if base is None:
            empty: list[Affine] = [None] * half
            self._rows = [list(empty) for _ in range(self.count)]
            return
        # bases B_w = 2^(c*w) P
        bases: list[Affine] = [base]
        jac = (base[0], base[1], mpz(1))
        bases_jac = [jac]
        for _ in range(self.count - 1):
            for _ in range(window):
                jac = _jac_double(*jac)
            bases_jac.append(jac)
        bases = _batch_to_affine(bases_jac)
        # rows: row[w][j-1] = j * B_w, built in lock step across windows
        rows: list[list[Affine]] = [[b] for b in bases]
        current = list(bases)
        for _ in range(half - 1):
            current = _batch_add(current, bases)
            for w in range(self.count):
                rows[w].append(current[w])
        self._rows = rows

    def _setup(self, point: G1Point, window: int) -> None:
        if not 2 <= window <= 16:
            raise ValueError(f"window must be in [2, 16], got {window}")
        self.point = point
        self.window = window
        self._limbs = None
        self._rows = None
        self.count = (_R.bit_length() + 1 + window - 1) // window + 1

    @classmethod
    def _from_kernel(cls, point: G1Point, window: int, limbs: tuple[Any, Any]) -> FixedBaseTable:
        """A table whose entries were computed by the kernel (``fixed_tables``): kept
        as limbs, the Python ``rows`` made from them only if the reference path asks."""
        table = object.__new__(cls)
        table._setup(point, window)
        table._limbs = limbs
        return table

    @property
    def rows(self) -> list[list[Affine]]:
        """rows[w][j-1] = j * 2^(c*w) * P (affine tuples)."""
        if self._rows is None:
            import numpy as np

            assert self._limbs is not None
            tx, ty = self._limbs
            flat = _kernel_points_out(tx, ty, np.zeros(len(tx), dtype=np.uint8))
            half = 1 << (self.window - 1)
            self._rows = [flat[w * half : (w + 1) * half] for w in range(self.count)]
        return self._rows

    def _kernel_rows(self) -> tuple[Any, Any]:
        """The entries as Montgomery-form limb arrays (xs, ys), row w * 2^(c-1) + j - 1
        holding j * 2^(c*w) * P; converted once, on first use by the kernel."""
        if self._limbs is None:
            flat = [e for row in self.rows for e in row]
            self._limbs = _kernel_points_in([e[0] for e in flat], [e[1] for e in flat])  # type: ignore[index]
        return self._limbs

    def _digits(self, k: int) -> list[int]:
        return _signed_digits(int(mpz(k) % _R), self.window, self.count)

    def mul(self, k: int) -> G1Point:
        """k * P with mixed Jacobian additions (no inversion until the end)."""
        X, Y, Z = _JAC_INF
        rows = self.rows
        for w, d in enumerate(self._digits(k)):
            if d:
                t = rows[w][d - 1] if d > 0 else _neg(rows[w][-d - 1])
                if t is not None:
                    X, Y, Z = _jac_add_affine(X, Y, Z, t[0], t[1])
        return G1Point._from_affine(_to_affine(X, Y, Z))

    def mul_many(self, scalars: Sequence[int]) -> list[G1Point]:
        """[k * P for k in scalars], all windows in lock step (batched affine adds)."""
        return mul_each([self] * len(scalars), scalars)


def mul_each(tables: Sequence[FixedBaseTable], scalars: Sequence[int]) -> list[G1Point]:
    """[k_i * P_i] for tables of possibly different points P_i (same window width),
    evaluated in lock step: one batched affine addition (one inversion) per window."""
    if len(tables) != len(scalars):
        raise ValueError(f"mul_each: {len(tables)} tables but {len(scalars)} scalars")
    if not tables:
        return []
    window = tables[0].window
    if any(t.window != window for t in tables):
        raise ValueError("mul_each: all tables must use the same window width")
    if KERNEL_ENABLED and len(scalars) * tables[0].count >= KERNEL_MIN_FIXED_ADDS:
        return [G1Point._from_affine(a) for a in _mul_each_kernel(tables, scalars)]
    digits = [t._digits(k) for t, k in zip(tables, scalars, strict=True)]
    all_rows = [t.rows for t in tables]
    acc: list[Affine] = [None] * len(scalars)
    for w in range(tables[0].count):
        addend: list[Affine] = []
        for rows, ds in zip(all_rows, digits, strict=True):
            d = ds[w]
            if d > 0:
                addend.append(rows[w][d - 1])
            elif d < 0:
                addend.append(_neg(rows[w][-d - 1]))
            else:
                addend.append(None)
        acc = _batch_add(acc, addend)
    return [G1Point._from_affine(a) for a in acc]


def _mul_each_kernel(tables: Sequence[FixedBaseTable], scalars: Sequence[int]) -> list[Affine]:
    """``mul_each`` on the kernel: every k_i * P_i is the sum of its signed table
    entries, and all those sums are one ``sum_groups`` call (scalars grouped by table
    for the gather, results put back in order)."""
    import numpy as np

    k = _kernel()
    by_table: dict[int, list[int]] = {}
    for i, t in enumerate(tables):
        by_table.setdefault(id(t), []).append(i)
    gxs: list[Any] = []
    gys: list[Any] = []
    sizes: list[Any] = []
    order: list[int] = []
    for idxs in by_table.values():
        t = tables[idxs[0]]
        if t.point.is_identity:
            continue  # every multiple is the identity
        tx, ty = t._kernel_rows()
        ks = k.ints_to_limbs([mpz(scalars[i]) % _R for i in idxs])
        gx, gy, sz = k.fixed_gather(tx, ty, ks, t.window, t.count)
        gxs.append(gx)
        gys.append(gy)
        sizes.append(sz)
        order += idxs
    out: list[Affine] = [None] * len(scalars)
    if not order:
        return out
    size_all = np.concatenate(sizes)
    starts = np.zeros(len(size_all) + 1, dtype=np.int64)
    np.cumsum(size_all, out=starts[1:])
    xs = np.concatenate(gxs)
    ox, oy, oinf = k.sum_groups(xs, np.concatenate(gys), np.zeros(len(xs), np.uint8), starts)
    for i, a in zip(order, _kernel_points_out(ox, oy, oinf), strict=True):
        out[i] = a
    return out


_TABLE_CACHE: dict[tuple[int, int, int], FixedBaseTable] = {}
_TABLE_CACHE_MAX = 512
KEY_TABLE_WINDOW = 8
DEALER_TABLE_WINDOW = 4


def table_for(
    point: G1Point,
    window: int = KEY_TABLE_WINDOW,
    cache: dict[tuple[int, int, int], FixedBaseTable] | None = None,
) -> FixedBaseTable:
    """A cached fixed-base table for a point used many times (committee public keys).

    At window 8 a table costs about 20 variable-base multiplications to build and each
    multiplication through it about a seventh of one: right for verifiers, who use a
    key thousands of times. A dealer uses each key a dozen times; DEALER_TABLE_WINDOW
    (4) builds in about two multiplications and still saves two thirds of each.
    ``cache`` lets a party keep its own tables (a client process in a real deployment
    has only what it built itself); the default is this process's shared cache."""
    return tables_for([point], window, cache)[0]


def tables_for(
    points: Sequence[G1Point],
    window: int = KEY_TABLE_WINDOW,
    cache: dict[tuple[int, int, int], FixedBaseTable] | None = None,
) -> list[FixedBaseTable]:
    """[table_for(P, window, cache) for P in points], the missing tables built together:
    on the kernel one ``fixed_tables`` call computes all their entries (Jacobian
    doublings, then batched affine additions in lock step across every table)."""
    store = _TABLE_CACHE if cache is None else cache
    out: list[FixedBaseTable | None] = [None] * len(points)
    missing: dict[tuple[int, int, int], list[int]] = {}
    for i, point in enumerate(points):
        key = (int(point.x), int(point.y), window)
        table = store.get(key)
        if table is None:
            missing.setdefault(key, []).append(i)
        else:
            out[i] = table
    if missing:
        todo = [points[idxs[0]] for idxs in missing.values()]
        built = _build_tables(todo, window)
        for (key, idxs), table in zip(missing.items(), built, strict=True):
            if len(store) >= _TABLE_CACHE_MAX:
                store.pop(next(iter(store)))
            store[key] = table
            for i in idxs:
                out[i] = table
    return out  # type: ignore[return-value]


def _build_tables(points: Sequence[G1Point], window: int) -> list[FixedBaseTable]:
    """Fixed-base tables of the given points: on the kernel (all in one call) when it
    is on, else by the reference constructor; the identity always by the reference."""
    if not KERNEL_ENABLED or not 2 <= window <= 16:
        return [FixedBaseTable(p, window) for p in points]
    out: list[FixedBaseTable | None] = [None] * len(points)
    todo = []
    for i, p in enumerate(points):
        if p.is_identity:
            out[i] = FixedBaseTable(p, window)
        else:
            todo.append(i)
    if todo:
        k = _kernel()
        count = (_R.bit_length() + 1 + window - 1) // window + 1
        size = count << (window - 1)
        kx, ky = _kernel_points_in([points[i].x for i in todo], [points[i].y for i in todo])
        tx, ty = k.fixed_tables(kx, ky, window, count)
        for n, i in enumerate(todo):
            out[i] = FixedBaseTable._from_kernel(
                points[i], window, (tx[n * size : (n + 1) * size], ty[n * size : (n + 1) * size])
            )
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------
# Multi-scalar multiplication (Pippenger, signed buckets, batched affine sums)
# ---------------------------------------------------------------------------


def _reduce_lists(lists: list[list[Affine]]) -> list[Affine]:
    """Sum every list of affine points; all lists are reduced together, pairwise,
    one batched addition (one inversion) per level of the tree."""
    result: list[Affine] = [None] * len(lists)
    active: list[tuple[int, list[Affine]]] = []
    for i, lst in enumerate(lists):
        if len(lst) == 1:
            result[i] = lst[0]
        elif lst:
            active.append((i, lst))
    while active:
        left: list[Affine] = []
        right: list[Affine] = []
        for _, lst in active:
            h = len(lst) >> 1
            left += lst[:h]
            right += lst[h : 2 * h]
        sums = _batch_add(left, right)
        pos = 0
        nxt: list[tuple[int, list[Affine]]] = []
        for i, lst in active:
            h = len(lst) >> 1
            new = sums[pos : pos + h]
            pos += h
            if len(lst) & 1:
                new.append(lst[-1])
            if len(new) == 1:
                result[i] = new[0]
            else:
                nxt.append((i, new))
        active = nxt
    return result


def _pippenger_window(n_points: int, bits: int) -> int:
    if n_points < 4:
        return 2
    best_c, best_cost = 2, None
    for c in range(2, 16):
        windows = (bits + c) // c + 1
        cost = windows * (n_points + 2 * (1 << (c - 1)))
        if best_cost is None or cost < best_cost:
            best_c, best_cost = c, cost
    return best_c


def _msm_affine(points: Sequence[Affine], scalars: Sequence[Any]) -> Affine:
    """sum k_i * P_i for non-negative scalars of any size (no reduction mod r here)."""
    pts: list[tuple[Any, Any]] = []
    ks: list[int] = []
    for a, k in zip(points, scalars, strict=True):
        if a is not None and k:
            pts.append(a)
            ks.append(int(k))
    if not pts:
        return None
    if KERNEL_ENABLED and len(pts) >= KERNEL_MIN_MSM_POINTS:
        return _msm_many_kernel([(pts, ks)])[0]
    bits = max(k.bit_length() for k in ks)
    c = _pippenger_window(len(pts), bits)
    count = (bits + 1 + c - 1) // c + 1
    half = 1 << (c - 1)
    # buckets[w][b-1] collects the points whose digit in window w is +-b
    buckets: list[list[list[Affine]]] = [[[] for _ in range(half)] for _ in range(count)]
    for a, k in zip(pts, ks, strict=True):
        neg = None
        for w, d in enumerate(_signed_digits(k, c, count)):
            if d > 0:
                buckets[w][d - 1].append(a)
            elif d < 0:
                if neg is None:
                    neg = (a[0], (-a[1]) % _P)
                buckets[w][-d - 1].append(neg)
    flat = [b for row in buckets for b in row]
    sums = _reduce_lists(flat)
    # per window: sum_b b * B_b by running sums, all windows in lock step
    running: list[Affine] = [None] * count
    total: list[Affine] = [None] * count
    for b in range(half - 1, -1, -1):
        running = _batch_add(running, [sums[w * half + b] for w in range(count)])
        total = _batch_add(total, running)
    # Horner over windows, most significant first, in Jacobian
    X, Y, Z = _JAC_INF
    for w in range(count - 1, -1, -1):
        for _ in range(c):
            X, Y, Z = _jac_double(X, Y, Z)
        t = total[w]
        if t is not None:
            X, Y, Z = _jac_add_affine(X, Y, Z, t[0], t[1])
    return _to_affine(X, Y, Z)


def _kernel_window(n_points: int, n_msm: int, bits: int) -> tuple[int, bool]:
    """Pippenger window for the kernel, and whether the running sums go in lock step as
    batched affine additions. Costs in field products: a point is one batched affine
    addition (~6) per window; a bucket costs a mixed and a full Jacobian addition (~27)
    or two batched affine additions (~12) plus two inversions (~250 each) per bucket
    index shared by all (msm, window) pairs; Horner is ~9 per doubling."""
    best: tuple[int, bool] = (2, False)
    best_cost = None
    for c in range(2, 16):
        windows = (bits + c) // c + 1
        half = 1 << (c - 1)
        common = windows * 6 * n_points + n_msm * windows * c * 9
        for affine, per_bucket in (
            (False, 27 * n_msm * half * windows),
            (True, (12 * n_msm * windows + 500) * half),
        ):
            cost = common + per_bucket
            if best_cost is None or cost < best_cost:
                best, best_cost = (c, affine), cost
    return best


def _msm_many_kernel(
    jobs: Sequence[tuple[Sequence[Affine], Sequence[int]]], affine_sums: bool | None = None
) -> list[Affine]:
    """Several Pippenger MSMs (non-identity points, non-negative scalars) in one kernel
    call: the buckets of all of them are reduced together."""
    import numpy as np

    k = _kernel()
    xs: list[Any] = []
    ys: list[Any] = []
    ks: list[Any] = []
    mstarts = [0]
    for pts, scal in jobs:
        for a, s in zip(pts, scal, strict=True):
            if a is not None and s:
                xs.append(a[0])
                ys.append(a[1])
                ks.append(mpz(s))
        mstarts.append(len(xs))
    if not xs:
        return [None] * len(jobs)
    bits = max(s.bit_length() for s in ks)
    c, best_affine = _kernel_window(len(xs), len(jobs), bits)
    if affine_sums is None:  # tests force either way
        affine_sums = best_affine
    count = (bits + 1 + c - 1) // c + 1
    n_limbs = max(1, (bits + 31) // 32)
    kx, ky = _kernel_points_in(xs, ys)
    ox, oy, oinf = k.msm_many(
        kx,
        ky,
        k.ints_to_limbs(ks, n_limbs),
        np.array(mstarts, dtype=np.int64),
        c,
        count,
        affine_sums,
    )
    return _kernel_points_out(ox, oy, oinf)


def _straus_affine(points: Sequence[Affine], scalars: Sequence[Any]) -> Affine:
    """sum k_i * P_i by interleaved wNAF (shared doublings): best for a few points."""
    entries = []
    for a, k in zip(points, scalars, strict=True):
        if a is None or not k:
            continue
        table = _odd_multiples(a, 1 << (_WNAF_W - 2))
        entries.append((table, [_neg(t) for t in table], _wnaf(k, _WNAF_W)))
    if not entries:
        return None
    length = max(len(e[2]) for e in entries)
    X, Y, Z = _JAC_INF
    for i in range(length - 1, -1, -1):
        if Z:
            X, Y, Z = _jac_double(X, Y, Z)
        for table, neg, naf in entries:
            if i < len(naf):
                d = naf[i]
                if d:
                    t = table[d >> 1] if d > 0 else neg[(-d) >> 1]
                    X, Y, Z = _jac_add_affine(X, Y, Z, t[0], t[1])  # type: ignore[index]
    return _to_affine(X, Y, Z)


STRAUS_MAX_POINTS = 8


def msm(points: Sequence[G1Point], scalars: Sequence[int]) -> G1Point:
    """Multi-scalar multiplication sum(k_i * P_i).

    Scalars are taken mod r; each is split as k = k1 + k2*lambda so the work is on
    ~128-bit scalars, and small scalars (random batch weights) stay small. Up to
    STRAUS_MAX_POINTS split points use Straus (interleaved wNAF), more use Pippenger
    with signed buckets reduced by batched affine additions."""
    if len(points) != len(scalars):
        raise ValueError(f"msm: {len(points)} points but {len(scalars)} scalars")
    aff: list[Affine] = []
    ks: list[Any] = []
    for pt, k in zip(points, scalars, strict=True):
        a = pt._affine()
        if a is None:
            continue
        k1, k2 = glv_decompose(k)
        if k1:
            aff.append(a if k1 > 0 else _neg(a))
            ks.append(abs(k1))
        if k2:
            e = _endo(a)
            aff.append(e if k2 > 0 else _neg(e))
            ks.append(abs(k2))
    if len(aff) <= STRAUS_MAX_POINTS:
        return G1Point._from_affine(_straus_affine(aff, ks))
    return G1Point._from_affine(_msm_affine(aff, ks))


def _signed_terms(
    points: Sequence[G1Point], scalars: Sequence[int], who: str
) -> tuple[list[Affine], list[int]]:
    """Affine points and non-negative scalars of sum k_i * P_i for signed short k_i:
    the identity and zero terms dropped, a negative k_i moved onto -P_i."""
    if len(points) != len(scalars):
        raise ValueError(f"{who}: {len(points)} points but {len(scalars)} scalars")
    aff: list[Affine] = []
    ks: list[int] = []
    for pt, k in zip(points, scalars, strict=True):
        a = pt._affine()
        if a is None or not k:
            continue
        aff.append(a if k > 0 else _neg(a))
        ks.append(abs(int(k)))
    return aff, ks


def msm_signed(points: Sequence[G1Point], scalars: Sequence[int]) -> G1Point:
    """sum k_i * P_i for signed integer scalars that are *short* (e.g. random 128-bit
    batch weights): no reduction mod r and no GLV split, so a 150-bit scalar costs
    150 bits of work. Use ``msm`` for arbitrary scalars."""
    aff, ks = _signed_terms(points, scalars, "msm_signed")
    if len(aff) <= STRAUS_MAX_POINTS:
        return G1Point._from_affine(_straus_affine(aff, ks))
    return G1Point._from_affine(_msm_affine(aff, ks))


def msm_signed_many(jobs: Sequence[tuple[Sequence[G1Point], Sequence[int]]]) -> list[G1Point]:
    """[msm_signed(points, scalars) for (points, scalars) in jobs]. On the kernel all the
    MSMs are one call: their buckets are reduced together (one inversion per tree level
    for all of them) and, with many of them, their running sums advance in lock step."""
    if not KERNEL_ENABLED or len(jobs) < 2:
        return [msm_signed(pts, ks) for pts, ks in jobs]
    prepared = [_signed_terms(pts, scal, "msm_signed_many") for pts, scal in jobs]
    return [G1Point._from_affine(a) for a in _msm_many_kernel(prepared)]


# ---------------------------------------------------------------------------
# The public point type
# ---------------------------------------------------------------------------


class G1Point:
    """An immutable point of BN254 G1 in affine coordinates.

    The identity is stored as (0, 0), which is also its EVM encoding (64 zero bytes);
    (0, 0) is not on the curve, so there is no ambiguity.
    """

    __slots__ = ("x", "y")
    x: Any
    y: Any

    def __init__(self, x: int, y: int) -> None:
        x, y = mpz(x), mpz(y)
        if not (x == 0 and y == 0):
            if not (0 <= x < _P and 0 <= y < _P):
                raise InvalidEncoding("point: coordinate outside [0, p)")
            if not _is_on_curve(x, y):
                raise InvalidEncoding("point: (x, y) is not on y^2 = x^3 + 3")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __setattr__(self, name: str, value: object) -> None:  # immutability
        raise AttributeError("G1Point is immutable")

    @classmethod
    def _from_affine(cls, a: Affine) -> G1Point:
        """Wrap an internal affine tuple known to be valid (no curve check)."""
        pt = object.__new__(cls)
        if a is None:
            object.__setattr__(pt, "x", mpz(0))
            object.__setattr__(pt, "y", mpz(0))
        else:
            object.__setattr__(pt, "x", a[0])
            object.__setattr__(pt, "y", a[1])
        return pt

    def _affine(self) -> Affine:
        if not self.x and not self.y:
            return None
        return (self.x, self.y)

    @classmethod
    def identity(cls) -> G1Point:
        return cls._from_affine(None)

    @property
    def is_identity(self) -> bool:
        return not self.x and not self.y

    # -- encoding ----------------------------------------------------------
    def to_bytes(self) -> bytes:
        """64 bytes x || y big-endian; the identity is 64 zero bytes (EVM layout)."""
        return int(self.x).to_bytes(32, "big") + int(self.y).to_bytes(32, "big")

    @staticmethod
    def _valid_coords(x: Any, y: Any) -> bool:
        """What ``from_bytes`` accepts, on coordinates already split (mpz): both < p and
        (x, y) the identity (0, 0) or on the curve. Decoders of long messages use it in
        their loop and call ``from_bytes`` only to raise its error."""
        if x >= _P or y >= _P:
            return False
        return not (x or y) or _is_on_curve(x, y)

    @classmethod
    def from_bytes(cls, data: bytes, *, field: str = "point") -> G1Point:
        """Decode the EVM layout, validating length, range and curve membership."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidEncoding(f"{field}: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) != POINT_BYTES:
            raise InvalidEncoding(f"{field}: expected {POINT_BYTES} bytes, got {len(data)}")
        x = int.from_bytes(data[:32], "big")
        y = int.from_bytes(data[32:], "big")
        if x >= _P or y >= _P:
            raise InvalidEncoding(f"{field}: coordinate >= field modulus p")
        if (x or y) and not _is_on_curve(mpz(x), mpz(y)):
            raise InvalidEncoding(f"{field}: not on the curve y^2 = x^3 + 3")
        return cls._from_affine((mpz(x), mpz(y)) if (x or y) else None)

    def to_compressed(self) -> bytes:
        """32 bytes (SPEC.md §2.1 *Compressed points*): x big-endian, its top bit set
        when y is odd; the identity is 0x40 followed by 31 zero bytes."""
        if self.is_identity:
            return bytes([_FLAG_IDENTITY]) + bytes(31)
        out = int(self.x).to_bytes(32, "big")
        return bytes([out[0] | _FLAG_ODD]) + out[1:] if self.y & 1 else out

    @classmethod
    def from_compressed(cls, data: bytes, *, field: str = "point") -> G1Point:
        """Decode the compressed form, validating length, flags, x < p and that x is on
        the curve (y = the square root of x^3 + 3 with the flagged parity; p = 3 mod 4,
        so one exponentiation). Every 32-byte string decodes to at most one point and
        every point has exactly one compressed form."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidEncoding(f"{field}: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) != COMPRESSED_POINT_BYTES:
            raise InvalidEncoding(
                f"{field}: expected {COMPRESSED_POINT_BYTES} bytes (compressed), got {len(data)}"
            )
        flags = data[0] & (_FLAG_ODD | _FLAG_IDENTITY)
        x = mpz(int.from_bytes(data, "big") & _X_MASK)
        if flags & _FLAG_IDENTITY:
            if flags != _FLAG_IDENTITY or x:
                raise InvalidEncoding(f"{field}: the identity flag with other bits set")
            return cls.identity()
        if x >= _P:
            raise InvalidEncoding(f"{field}: x >= field modulus p")
        rhs = (x * x * x + CURVE_B) % _P
        y = gmpy2.powmod(rhs, _SQRT_EXP, _P)
        if y * y % _P != rhs:
            raise InvalidEncoding(f"{field}: no point of the curve y^2 = x^3 + 3 has this x")
        if (y & 1) != (1 if flags else 0):  # y != 0: G1 has prime order, no 2-torsion
            y = _P - y
        return cls._from_affine((x, y))

    # -- group law -----------------------------------------------------------
    def __add__(self, other: G1Point) -> G1Point:
        if not isinstance(other, G1Point):
            return NotImplemented
        return G1Point._from_affine(_batch_add([self._affine()], [other._affine()])[0])

    def __neg__(self) -> G1Point:
        return G1Point._from_affine(_neg(self._affine()))

    def __sub__(self, other: G1Point) -> G1Point:
        if not isinstance(other, G1Point):
            return NotImplemented
        return self + (-other)

    def __mul__(self, k: int) -> G1Point:
        if not isinstance(k, int | type(mpz(0))):
            return NotImplemented
        return G1Point._from_affine(_mul_var(self._affine(), k))

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, G1Point):
            return NotImplemented
        return self.x == other.x and self.y == other.y

    def __hash__(self) -> int:
        return hash((int(self.x), int(self.y)))

    def __repr__(self) -> str:
        if self.is_identity:
            return "G1Point(identity)"
        return f"G1Point(0x{int(self.x):064x}, 0x{int(self.y):064x})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (G1Point.from_bytes, (self.to_bytes(),))


def point_sum(points: Iterable[G1Point]) -> G1Point:
    """Sum of many points with one inversion at the end."""
    X, Y, Z = _JAC_INF
    for pt in points:
        a = pt._affine()
        if a is not None:
            X, Y, Z = _jac_add_affine(X, Y, Z, a[0], a[1])
    return G1Point._from_affine(_to_affine(X, Y, Z))


# ---------------------------------------------------------------------------
# Generators and scalars
# ---------------------------------------------------------------------------


def keccak256(data: bytes) -> bytes:
    """The EVM's keccak256 (original Keccak padding, not NIST SHA3); defined here, below
    every other module of ``pvss``, and re-exported by ``pvss.transcript``."""
    return keccak_256(data).digest()


def compute_h_generator(tag: bytes = H_TAG) -> tuple[G1Point, int]:
    """Try-and-increment hash to G1 (SPEC.md §2.2).

    For ctr = 0, 1, ...: x = keccak256(tag || uint32_be(ctr)) mod p; if x^3 + 3 is a
    square, y = its square root with the smaller representative (y <= (p-1)/2) and
    (x, y) is h. Cofactor 1, so every curve point is in G1; nobody knows log_g h
    because x comes out of a hash. Returns (h, ctr)."""
    ctr = 0
    while True:
        x = mpz(int.from_bytes(keccak256(tag + ctr.to_bytes(4, "big")), "big")) % _P
        rhs = (x * x * x + CURVE_B) % _P
        y = gmpy2.powmod(rhs, _SQRT_EXP, _P)
        if y * y % _P == rhs:
            if y > (_P - 1) // 2:
                y = _P - y
            return G1Point(x, y), ctr
        ctr += 1


G = G1Point(1, 2)
H, H_COUNTER = compute_h_generator()


def random_scalar(nonzero: bool = True) -> int:
    """Uniform scalar in [1, r) (or [0, r)) from the OS CSPRNG."""
    while True:
        k = secrets.randbelow(int(_R))
        if k or not nonzero:
            return k


def scalar_to_bytes(k: int) -> bytes:
    """32-byte big-endian encoding of a scalar in [0, r)."""
    if not 0 <= k < _R:
        raise InvalidEncoding("scalar: outside [0, r)")
    return int(k).to_bytes(32, "big")


def scalar_from_bytes(data: bytes, *, field: str = "scalar") -> int:
    """Decode a 32-byte big-endian scalar, rejecting values >= r."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidEncoding(f"{field}: expected bytes, got {type(data).__name__}")
    if len(data) != SCALAR_BYTES:
        raise InvalidEncoding(f"{field}: expected {SCALAR_BYTES} bytes, got {len(data)}")
    k = int.from_bytes(bytes(data), "big")
    if k >= _R:
        raise InvalidEncoding(f"{field}: scalar >= group order r")
    return k


_G_TABLE: FixedBaseTable | None = None
_H_TABLE: FixedBaseTable | None = None
FIXED_BASE_WINDOW = 12


def g_table() -> FixedBaseTable:
    """The fixed-base table of G (built on first use, ~0.1 s)."""
    global _G_TABLE
    if _G_TABLE is None:
        _G_TABLE = FixedBaseTable(G, FIXED_BASE_WINDOW)
    return _G_TABLE


def h_table() -> FixedBaseTable:
    """The fixed-base table of H (built on first use, ~0.1 s)."""
    global _H_TABLE
    if _H_TABLE is None:
        _H_TABLE = FixedBaseTable(H, FIXED_BASE_WINDOW)
    return _H_TABLE


# ---------------------------------------------------------------------------
# Load-time checks (SPEC.md §2.1)
# ---------------------------------------------------------------------------


def _check_constants() -> None:
    assert gmpy2.is_prime(_P, 50) and gmpy2.is_prime(_R, 50), "p and r must be prime"
    assert _P % 4 == 3, "square roots use p = 3 mod 4"
    assert _is_on_curve(G.x, G.y), "G must be on the curve"
    assert _is_on_curve(H.x, H.y), "H must be on the curve"
    assert GLV_BETA != 1 and gmpy2.powmod(GLV_BETA, 3, _P) == 1, "beta: cube root of 1 mod p"
    assert GLV_LAMBDA != 1 and gmpy2.powmod(GLV_LAMBDA, 3, _R) == 1, "lambda: cube root mod r"
    assert (_GLV_A1 + _GLV_B1 * GLV_LAMBDA) % _R == 0
    assert (_GLV_A2 + _GLV_B2 * GLV_LAMBDA) % _R == 0
    # order r: r*G is the identity, by a plain double-and-add independent of GLV
    X, Y, Z = _JAC_INF
    for bit in bin(int(_R))[2:]:
        X, Y, Z = _jac_double(X, Y, Z)
        if bit == "1":
            X, Y, Z = _jac_add_affine(X, Y, Z, G.x, G.y)
    assert not Z, "G must have order r"
    # phi(G) = lambda * G (the endomorphism matches the eigenvalue)
    X, Y, Z = _JAC_INF
    for bit in bin(int(GLV_LAMBDA))[2:]:
        X, Y, Z = _jac_double(X, Y, Z)
        if bit == "1":
            X, Y, Z = _jac_add_affine(X, Y, Z, G.x, G.y)
    assert _to_affine(X, Y, Z) == _endo((G.x, G.y)), "phi must act as lambda"


_check_constants()

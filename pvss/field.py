"""Arithmetic in the scalar field Z_r (SPEC.md §2.3): polynomials, Lagrange
coefficients, and the small-entry basis of the Reed–Solomon dual code used by the
SCRAPE check."""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import gmpy2

from pvss.errors import InvalidParameters
from pvss.group import ORDER

R = int(ORDER)


def inv_mod_r(a: int) -> int:
    """Inverse of a non-zero scalar mod r."""
    a %= R
    if a == 0:
        raise ZeroDivisionError("inverse of 0 mod r")
    return int(gmpy2.invert(a, R))


def eval_poly(coeffs: Sequence[int], x: int) -> int:
    """p(x) mod r for p = coeffs[0] + coeffs[1] X + ... (Horner)."""
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * x + c) % R
    return acc


def lagrange_at_zero(indices: Sequence[int]) -> list[int]:
    """Coefficients l_k with p(0) = sum_k l_k p(k) for every p of degree < len(indices).

    l_k = prod_{j != k} j / (j - k)  (mod r). Indices must be distinct."""
    if len(set(indices)) != len(indices):
        raise InvalidParameters(f"lagrange: indices are not distinct: {list(indices)}")
    out = []
    for k in indices:
        num, den = 1, 1
        for j in indices:
            if j != k:
                num = num * j % R
                den = den * (j - k) % R
        out.append(num * inv_mod_r(den) % R)
    return out


def dual_code_basis(n_points: int, threshold: int) -> list[list[tuple[int, int]]]:
    """A basis of the dual of the Reed–Solomon code {(p(a), p(a+1), ..., p(a+N-1)) :
    deg p <= t} on N consecutive evaluation points (SPEC.md §4.3).

    Basis vector j (j = 0 .. N-t-2) is the (t+1)-th forward difference at offset j:
    entry j+i is (-1)^(t+1-i) * C(t+1, i) for i = 0 .. t+1, zero elsewhere. The
    (t+1)-th difference of a degree-t polynomial vanishes, the N-t-1 vectors are in
    echelon form, so they span the whole dual code. Entries are small integers, which
    keeps random combinations of them short (fast batch verification) and needs no
    inversion on-chain. Each vector is returned sparse as [(position, signed entry)]."""
    if threshold < 0 or n_points < threshold + 1:
        raise InvalidParameters(f"dual code: need N >= t+1, got N={n_points}, t={threshold}")
    d = threshold + 1
    row = [((-1) ** (d - i)) * comb(d, i) for i in range(d + 1)]
    return [[(j + i, row[i]) for i in range(d + 1)] for j in range(n_points - threshold - 1)]


def dual_codeword(
    n_points: int, threshold: int, weights: Sequence[int], *, reduce: bool = True
) -> list[int]:
    """c = sum_j weights[j] * basis_j: a dual codeword, one weight per basis vector.

    With ``reduce=False`` the entries are the exact (signed, short) integers, which the
    batch verifier feeds to its multi-scalar multiplication."""
    basis = dual_code_basis(n_points, threshold)
    if len(weights) != len(basis):
        raise InvalidParameters(f"dual code: {len(basis)} weights needed, got {len(weights)}")
    c = [0] * n_points
    for w, vec in zip(weights, basis, strict=True):
        for pos, entry in vec:
            c[pos] += w * entry
    return [x % R for x in c] if reduce else c

"""Fused client / aggregator masking ops (secagg.masking)."""

from __future__ import annotations

import numpy as np
import pytest

from secagg import masking, packing, prg
from secagg.errors import InvalidEncoding, InvalidParameters
from secagg.quantize import (
    MaskingConfig,
    dequantize_sum,
    quantization_error_bound,
    quantize,
)

HAS_CUPY = "cupy" in prg.available_backends()
CPU_BACKENDS = [b for b in ("reference", "numba") if b in prg.available_backends()]
FAST_BACKENDS = [
    "numba",
    pytest.param(
        "cupy",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not HAS_CUPY, reason="cupy / CUDA device not present"),
        ],
    ),
]


@pytest.fixture(scope="module", autouse=True)
def _warm():
    masking.warmup()


class Round:
    """n clients, each with a self seed, and one seed per pair {i, j}: i < j adds it
    (+1), j subtracts it (-1)."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.n = n
        self.self_seeds = [rng.bytes(32) for _ in range(n)]
        self.pair = {(i, j): rng.bytes(32) for i in range(n) for j in range(i + 1, n)}

    def pairs_of(self, i: int, among=None) -> list[tuple[bytes, int]]:
        others = range(self.n) if among is None else among
        return [(self.pair[(min(i, j), max(i, j))], 1 if i < j else -1) for j in others if j != i]


def _values(rng, length, bits):
    return rng.integers(0, 2**bits - 1, size=length, dtype=np.uint64, endpoint=True)


@pytest.mark.parametrize("bits", [1, 7, 16, 31, 32, 33, 48, 63, 64])
def test_masks_cancel_and_match_reference(bits):
    rng = np.random.default_rng(bits)
    n = 5
    rnd = Round(n, rng)
    for length in (0, 1, 17, 1000, 4099):
        qs = [_values(rng, length, bits) for _ in range(n)]
        ys = {}
        for backend in CPU_BACKENDS:
            ys[backend] = [
                masking.mask_and_pack(qs[i], rnd.self_seeds[i], rnd.pairs_of(i), bits, backend)
                for i in range(n)
            ]
        assert ys["numba"] == ys["reference"], (bits, length)
        y = ys["numba"]
        assert all(len(b) == packing.packed_size(length, bits) for b in y)
        # a masked vector does not reveal its input
        if length >= 17 and bits >= 7:
            assert packing.unpack(y[0], length, bits).tolist() != qs[0].tolist()
        want = np.zeros(length, dtype=np.uint64)
        for q in qs:
            want = (want + q) & np.uint64((1 << bits) - 1)
        remove = [(s, 1) for s in rnd.self_seeds]
        for backend in CPU_BACKENDS:
            got = masking.unmask_sum(y, length, bits, remove, backend=backend)
            assert got.dtype == np.uint64
            np.testing.assert_array_equal(got, want, err_msg=f"{backend} bits={bits}")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dropout_recovery(backend):
    """Client 3 drops after the pair seeds were set up: survivors' y contain their pair
    masks with 3; the aggregator removes them with the survivors' signs."""
    rng = np.random.default_rng(17)
    n, bits, length = 6, 37, 3001
    rnd = Round(n, rng)
    qs = [_values(rng, length, 30) for _ in range(n)]
    dropped = 3
    alive = [i for i in range(n) if i != dropped]
    ys = [
        masking.mask_and_pack(qs[i], rnd.self_seeds[i], rnd.pairs_of(i), bits, backend)
        for i in alive
    ]
    remove = [(rnd.self_seeds[i], 1) for i in alive]
    for i in alive:
        remove.append((rnd.pair[(min(i, dropped), max(i, dropped))], 1 if i < dropped else -1))
    got = masking.unmask_sum(ys, length, bits, remove, backend=backend)
    want = sum(qs[i] for i in alive) & np.uint64((1 << bits) - 1)
    np.testing.assert_array_equal(got, want)
    # forgetting one seed leaves noise
    bad = masking.unmask_sum(ys, length, bits, remove[:-1], backend=backend)
    assert not np.array_equal(bad, want)


def test_unmask_sign_convention():
    """unmask_sum subtracts sign * PRG(seed): removing (s, -1) adds PRG(s) back."""
    rng = np.random.default_rng(2)
    s = rng.bytes(32)
    q = _values(rng, 100, 20)
    y = masking.mask_and_pack(q, rng.bytes(32), [], 20)  # any self seed
    y_minus = masking.mask_and_pack(q, s, [], 20)
    m = prg.mask(s, 100, 20, backend="reference").astype(np.uint64)
    got = masking.unmask_sum([y_minus], 100, 20, [(s, 1)])
    np.testing.assert_array_equal(got, q)
    got2 = masking.unmask_sum([packing.pack(q, 20)], 100, 20, [(s, -1)])
    np.testing.assert_array_equal(got2, (q + m) & np.uint64(2**20 - 1))
    assert len(y) == packing.packed_size(100, 20)


def test_end_to_end_weighted_mean():
    rng = np.random.default_rng(23)
    n, d = 7, 20_000
    cfg = MaskingConfig.minimal(quant_bits=16, clip=1.0, max_weight=64, n_clients=n)
    rnd = Round(n, rng)
    xs = [rng.normal(scale=0.4, size=d).astype(np.float32) for _ in range(n)]
    ws = [int(w) for w in rng.integers(1, 65, size=n)]
    ys = []
    for i in range(n):
        q = quantize(xs[i], cfg, ws[i], np.random.default_rng(1000 + i))
        ys.append(masking.mask_and_pack(q, rnd.self_seeds[i], rnd.pairs_of(i), cfg.bits))
    total = masking.unmask_sum(ys, d + 1, cfg.bits, [(s, 1) for s in rnd.self_seeds])
    assert int(total[-1]) == sum(ws)
    mean = dequantize_sum(total, cfg.clip, cfg.quant_bits)
    want = sum(w * np.clip(x.astype(np.float64), -1, 1) for x, w in zip(xs, ws, strict=True))
    want /= sum(ws)
    assert np.abs(mean - want).max() < quantization_error_bound(cfg.clip, cfg.quant_bits)
    # the packed size per coordinate is the config's bit width
    assert len(ys[0]) == -(-(d + 1) * cfg.bits // 8)


def test_errors():
    seed = bytes(32)
    for backend in CPU_BACKENDS:
        with pytest.raises(InvalidEncoding, match=r"quantized\[2\]: value 256 does not fit 8"):
            masking.mask_and_pack(np.array([1, 2, 256], dtype=np.uint64), seed, [], 8, backend)
        with pytest.raises(InvalidParameters, match=r"self_seed\[0\]: expected exactly 32"):
            masking.mask_and_pack(np.zeros(3, np.uint64), b"short", [], 8, backend)
        with pytest.raises(InvalidParameters, match=r"pair_seeds\[k\]\.sign\[1\]: must be"):
            masking.mask_and_pack(np.zeros(3, np.uint64), seed, [(seed, 1), (seed, 2)], 8, backend)
        with pytest.raises(TypeError, match=r"pair_seeds\[0\]: expected a \(seed, sign\)"):
            masking.mask_and_pack(np.zeros(3, np.uint64), seed, [seed], 8, backend)
        good = masking.mask_and_pack(np.zeros(3, np.uint64), seed, [], 8, backend)
        with pytest.raises(InvalidEncoding, match=r"packed_inputs\[1\]: expected exactly 3"):
            masking.unmask_sum([good, good + b"\0"], 3, 8, [], backend)
        with pytest.raises(InvalidParameters, match="bits: must be in"):
            masking.unmask_sum([good], 3, 65, [], backend)
    y = masking.mask_and_pack(np.zeros(3, np.uint64), seed, [], 5)  # 15 bits -> 2 bytes
    tampered = y[:-1] + bytes([y[-1] | 0x80])
    with pytest.raises(InvalidEncoding, match=r"packed_inputs\[0\]: padding bits"):
        masking.unmask_sum([tampered], 3, 5, [(seed, 1)])


def test_no_inputs_no_seeds():
    seed = bytes(range(32))
    for backend in CPU_BACKENDS:
        got = masking.unmask_sum([], 50, 33, [(seed, -1)], backend=backend)
        np.testing.assert_array_equal(got, prg.mask(seed, 50, 33, backend="reference"))
        assert masking.unmask_sum([], 0, 33, [], backend=backend).shape == (0,)


@pytest.mark.parametrize("backend", FAST_BACKENDS[1:])
def test_cupy_matches_numba(backend):
    import cupy as cp

    rng = np.random.default_rng(31)
    rnd = Round(4, rng)
    for bits in (30, 47):
        qs = [_values(rng, 10_007, bits - 3) for _ in range(4)]
        y_nb = [
            masking.mask_and_pack(qs[i], rnd.self_seeds[i], rnd.pairs_of(i), bits, "numba")
            for i in range(4)
        ]
        y_cp = [
            masking.mask_and_pack(
                cp.asarray(qs[i]), rnd.self_seeds[i], rnd.pairs_of(i), bits, backend
            )
            for i in range(4)
        ]
        assert y_nb == y_cp
        remove = [(s, 1) for s in rnd.self_seeds]
        np.testing.assert_array_equal(
            masking.unmask_sum(y_cp, 10_007, bits, remove, backend=backend),
            masking.unmask_sum(y_nb, 10_007, bits, remove, backend="numba"),
        )


@pytest.mark.parametrize("bits", [30, 45])
def test_fused_client_op_matches_composition(bits):
    """quantize_mask_and_pack == mask_and_pack(quantize(...)), byte for byte."""
    rng = np.random.default_rng(bits)
    cfg = MaskingConfig(bits=bits, quant_bits=12, clip=1.0, max_weight=100, n_clients=8)
    rnd = Round(3, rng)
    for d in (0, 1, 1023, 1024, 2047, 2048, 5001):
        for dtype in (np.float32, np.float64):
            x = rng.normal(size=d).astype(dtype)
            fused = masking.quantize_mask_and_pack(
                x, cfg, 77, np.random.default_rng(d), rnd.self_seeds[1], rnd.pairs_of(1), "numba"
            )
            q = quantize(x, cfg, 77, np.random.default_rng(d), backend="reference")
            want = masking.mask_and_pack_reference(q, rnd.self_seeds[1], rnd.pairs_of(1), bits)
            assert fused == want, (d, dtype)
    x = np.zeros(3000)
    x[2999] = np.nan
    with pytest.raises(InvalidParameters, match="x: NaN at index 2999"):
        masking.quantize_mask_and_pack(x, cfg, 1, rng, rnd.self_seeds[0], [], "numba")

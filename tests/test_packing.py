"""Bit-packing (secagg.packing): layout, round trips, malformed encodings."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import packing, prg
from secagg.errors import InvalidEncoding, InvalidParameters

HAS_CUPY = "cupy" in prg.available_backends()
CPU_BACKENDS = [b for b in ("reference", "numba") if b in prg.available_backends()]
ALL_BACKENDS = [
    *CPU_BACKENDS,
    pytest.param(
        "cupy",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not HAS_CUPY, reason="cupy / CUDA device not present"),
        ],
    ),
]
BITS = [1, 7, 16, 31, 32, 33, 48, 63, 64]
LENGTHS = [0, 1, 15, 16, 17, 63, 64, 65, 1000, 4097, 100_003]


@pytest.fixture(scope="module", autouse=True)
def _warm():
    packing.warmup()


def _random_values(rng: np.random.Generator, length: int, bits: int) -> np.ndarray:
    return rng.integers(0, 2**bits - 1, size=length, dtype=np.uint64, endpoint=True)


def test_layout_by_hand():
    # 3 values of 5 bits: 0b10110, 0b00001, 0b11111 -> stream bits LSB first
    data = packing.pack(np.array([0b10110, 0b00001, 0b11111]), 5, backend="numba")
    stream = 0b10110 | (0b00001 << 5) | (0b11111 << 10)
    assert data == stream.to_bytes(2, "little")
    assert packing.pack(np.array([1, 0, 1]), 1) == bytes([0b101])
    assert packing.pack(np.array([0xABCD, 0x1234], dtype=np.uint64), 16) == bytes.fromhex(
        "cdab3412"
    )
    assert packing.pack(np.array([2**64 - 1], dtype=np.uint64), 64) == b"\xff" * 8
    assert packing.pack(np.array([], dtype=np.uint64), 13) == b""


@pytest.mark.parametrize("bits", BITS)
def test_numba_matches_reference_and_definition(bits):
    rng = np.random.default_rng(bits)
    for length in LENGTHS:
        vals = _random_values(rng, length, bits)
        ref = packing.pack(vals, bits, backend="reference")
        assert len(ref) == packing.packed_size(length, bits) == -(-length * bits // 8)
        assert packing.pack(vals, bits, backend="numba") == ref, (bits, length)
        if length <= 1000:
            stream = sum(int(v) << (k * bits) for k, v in enumerate(vals))
            assert ref == stream.to_bytes(len(ref), "little")
        for backend in CPU_BACKENDS:
            np.testing.assert_array_equal(packing.unpack(ref, length, bits, backend), vals)


@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(1, 64),
    data=st.data(),
)
def test_roundtrip_hypothesis(bits, data):
    vals = data.draw(st.lists(st.integers(0, 2**bits - 1), max_size=200))
    arr = np.array(vals, dtype=np.uint64)
    for backend in CPU_BACKENDS:
        enc = packing.pack(arr, bits, backend=backend)
        assert len(enc) == -(-len(vals) * bits // 8)
        assert [int(v) for v in packing.unpack(enc, len(vals), bits, backend=backend)] == vals


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 64), length=st.integers(0, 150), data=st.data())
def test_malformed_rejected_hypothesis(bits, length, data):
    """Any other length, and any nonzero padding bit, is refused with InvalidEncoding."""
    size = -(-length * bits // 8)
    wrong = data.draw(st.integers(0, size + 9).filter(lambda s: s != size))
    blob = data.draw(st.binary(min_size=wrong, max_size=wrong))
    for backend in CPU_BACKENDS:
        with pytest.raises(InvalidEncoding, match=f"expected exactly {size} bytes"):
            packing.unpack(blob, length, bits, backend=backend)
    used = (length * bits) % 8
    if used:
        good = bytearray(data.draw(st.binary(min_size=size, max_size=size)))
        pad_bit = data.draw(st.integers(used, 7))
        good[-1] |= 1 << pad_bit
        for backend in CPU_BACKENDS:
            with pytest.raises(InvalidEncoding, match="padding bits"):
                packing.unpack(bytes(good), length, bits, backend=backend)


def test_invalid_arguments():
    for backend in CPU_BACKENDS:
        with pytest.raises(InvalidEncoding, match=r"values\[1\]: value 256 does not fit 8 bits"):
            packing.pack(np.array([1, 256, 3]), 8, backend=backend)
        with pytest.raises(InvalidEncoding, match=r"values\[0\]: negative value -1"):
            packing.pack(np.array([-1, 2]), 8, backend=backend)
        with pytest.raises(InvalidParameters, match="bits: must be in"):
            packing.pack(np.array([1]), 0, backend=backend)
        with pytest.raises(InvalidParameters, match="1-D"):
            packing.pack(np.zeros((2, 2), dtype=np.uint64), 8, backend=backend)
        with pytest.raises(TypeError, match="data: expected bytes"):
            packing.unpack([1, 2], 2, 8, backend=backend)
    # a value out of range deep inside a large array (numba's in-kernel check)
    vals = np.zeros(50_000, dtype=np.uint64)
    vals[43_210] = 2**20
    with pytest.raises(InvalidEncoding, match=r"values\[43210\]"):
        packing.pack(vals, 20, backend="numba")


# --------------------------------------------------------------------------- CUDA source

CUDA_SHIM = r"""
struct secagg_dim3 { unsigned int x, y, z; };
static secagg_dim3 blockIdx, blockDim, threadIdx, gridDim;
#define __global__
#define __device__
"""
CUDA_LAUNCHERS = r"""
#define SECAGG_LAUNCH(grid, block, call)                                        \
    blockDim.x = block; gridDim.x = grid;                                       \
    for (unsigned b = 0; b < grid; ++b)                                         \
        for (unsigned t = 0; t < block; ++t) { blockIdx.x = b; threadIdx.x = t; call; }
extern "C" void launch_pack(unsigned grid, unsigned block, const unsigned long long* vals,
                            unsigned long long n, int bits, unsigned long long nwords,
                            unsigned long long* out) {
    SECAGG_LAUNCH(grid, block, secagg_pack(vals, n, bits, nwords, out))
}
extern "C" void launch_unpack(unsigned grid, unsigned block, const unsigned long long* words,
                              unsigned long long n, int bits, unsigned long long modmask,
                              int add, unsigned long long* out) {
    SECAGG_LAUNCH(grid, block, secagg_unpack(words, n, bits, modmask, add, out))
}
"""


def test_cuda_pack_source_logic_on_cpu(tmp_path):
    """The cupy kernels' CUDA C, compiled as C++ with a shim and run thread by thread."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to emulate the CUDA source on the CPU")
    src = tmp_path / "pack.cpp"
    src.write_text(CUDA_SHIM + packing.CUDA_PACK_SOURCE + CUDA_LAUNCHERS)
    lib_path = tmp_path / "pack.so"
    subprocess.run([cxx, "-O1", "-shared", "-fPIC", "-o", str(lib_path), str(src)], check=True)
    lib = ctypes.CDLL(str(lib_path))
    u64 = ctypes.c_uint64
    rng = np.random.default_rng(4)

    def ptr(a):
        return a.ctypes.data_as(ctypes.c_void_p)

    for bits in BITS:
        for length in (1, 17, 65, 1001):
            vals = _random_values(rng, length, bits)
            nwords = -(-length * bits // 64)
            out = np.zeros(nwords, dtype=np.uint64)
            lib.launch_pack(
                -(-nwords // 32),
                32,
                ptr(vals),
                u64(length),
                ctypes.c_int(bits),
                u64(nwords),
                ptr(out),
            )
            enc = out.view(np.uint8)[: packing.packed_size(length, bits)].tobytes()
            assert enc == packing.pack(vals, bits, backend="reference"), (bits, length)
            padded = np.zeros((nwords + 1) * 8, dtype=np.uint8)
            padded[: len(enc)] = np.frombuffer(enc, dtype=np.uint8)
            back = np.full(length, 7, dtype=np.uint64)
            lib.launch_unpack(
                -(-length // 32),
                32,
                ptr(padded.view(np.uint64)),
                u64(length),
                ctypes.c_int(bits),
                u64((1 << bits) - 1),
                ctypes.c_int(0),
                ptr(back),
            )
            np.testing.assert_array_equal(back, vals)


@pytest.mark.parametrize("backend", ALL_BACKENDS[2:])
def test_cupy_roundtrip(backend):
    rng = np.random.default_rng(8)
    for bits in BITS:
        vals = _random_values(rng, 10_001, bits)
        enc = packing.pack(vals, bits, backend=backend)
        assert enc == packing.pack(vals, bits, backend="reference")
        np.testing.assert_array_equal(packing.unpack(enc, 10_001, bits, backend=backend), vals)

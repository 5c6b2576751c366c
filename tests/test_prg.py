"""ChaCha20 mask PRG: RFC 8439 vectors and backend equivalence (secagg.prg)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from secagg import prg
from secagg.errors import ConfigError, InvalidParameters

CPU_BACKENDS = [b for b in ("reference", "numba") if b in prg.available_backends()]
HAS_CUPY = "cupy" in prg.available_backends()
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
FAST_BACKENDS = ALL_BACKENDS[1:]  # everything compared against "reference"

BITS = [1, 7, 16, 31, 32, 33, 48, 63, 64]
LENGTHS = [0, 1, 15, 16, 17, 1000, 100_003]

# RFC 8439 §2.3.2: key 00..1f, nonce 00:00:00:09:00:00:00:4a:00:00:00:00, counter 1.
RFC_KEY = bytes(range(32))
RFC_232_NONCE = bytes.fromhex("000000090000004a00000000")
RFC_232_BLOCK = bytes.fromhex(
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
    "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
)
# RFC 8439 §2.4.2: same key, nonce 00:00:00:00:00:00:00:4a:00:00:00:00, counter 1.
RFC_242_NONCE = bytes.fromhex("000000000000004a00000000")
RFC_242_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
RFC_242_CIPHERTEXT = bytes.fromhex(
    "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
    "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
    "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
    "5af90bbf74a35be6b40b8eedf2785e42874d"
)


def _seed(rng: np.random.Generator) -> bytes:
    return rng.bytes(32)


@pytest.fixture(scope="module", autouse=True)
def _warm():
    prg.warmup([b for b in CPU_BACKENDS if b != "reference"])


# --------------------------------------------------------------------------- RFC 8439


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_rfc8439_232_block_function(backend):
    assert prg.chacha20_block(RFC_KEY, 1, RFC_232_NONCE, backend=backend) == RFC_232_BLOCK


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_rfc8439_242_encryption(backend):
    n = len(RFC_242_PLAINTEXT)
    words = prg.keystream_words(
        RFC_KEY, -(-n // 4), nonce=RFC_242_NONCE, counter=1, backend=backend
    )
    ks = words.astype("<u4").tobytes()[:n]
    ct = bytes(p ^ k for p, k in zip(RFC_242_PLAINTEXT, ks, strict=True))
    assert ct == RFC_242_CIPHERTEXT


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("counter", [0, 1, 7, 2**32 - 40])
def test_keystream_nonce_counter_match_reference(backend, counter):
    rng = np.random.default_rng(counter)
    key, nonce = rng.bytes(32), rng.bytes(12)
    nwords = 16 * 40 - 3  # crosses one 32-block SIMD step, ends mid-block
    ref = prg.keystream_words(key, nwords, nonce=nonce, counter=counter, backend="reference")
    got = prg.keystream_words(key, nwords, nonce=nonce, counter=counter, backend=backend)
    assert got.dtype == np.uint32
    np.testing.assert_array_equal(got, ref)


def test_mask_is_the_keystream_layout():
    """Element k = k-th LE uint32 (bits <= 32) / uint64 (bits > 32) of the stream mod 2^b."""
    seed = bytes(range(100, 132))
    ks = prg.keystream_words(seed, 64, backend="reference").astype("<u4").tobytes()
    m32 = prg.mask(seed, 10, 20, backend="reference")
    assert [int(v) for v in m32] == [
        int.from_bytes(ks[4 * k : 4 * k + 4], "little") % 2**20 for k in range(10)
    ]
    m64 = prg.mask(seed, 10, 45, backend="reference")
    assert m64.dtype == np.uint64
    assert [int(v) for v in m64] == [
        int.from_bytes(ks[8 * k : 8 * k + 8], "little") % 2**45 for k in range(10)
    ]


# --------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("bits", BITS)
def test_mask_matches_reference(backend, bits):
    rng = np.random.default_rng(bits)
    for length in LENGTHS:
        seed = _seed(rng)
        ref = prg.mask(seed, length, bits, backend="reference")
        got = prg.mask(seed, length, bits, backend=backend)
        assert got.dtype == (np.uint32 if bits <= 32 else np.uint64)
        assert got.shape == (length,)
        np.testing.assert_array_equal(got, ref, err_msg=f"bits={bits} length={length}")
        if length:
            assert int(got.max()) < 2**bits


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("bits", BITS)
def test_accumulate_matches_reference(backend, bits):
    rng = np.random.default_rng(1000 + bits)
    for length in LENGTHS:
        acc0 = rng.integers(0, 2**64 - 1, size=length, dtype=np.uint64, endpoint=True)
        seeds = [_seed(rng) for _ in range(3)]
        signs = [1, -1, 1]
        ref = prg.accumulate_masks(acc0.copy(), seeds, signs, bits, backend="reference")
        got = prg.accumulate_masks(acc0.copy(), seeds, signs, bits, backend=backend)
        np.testing.assert_array_equal(got, ref, err_msg=f"bits={bits} length={length}")
        # and the definition, with numpy object arithmetic
        if length in (17, 1000):
            want = [int(a) for a in acc0]
            for s, sign in zip(seeds, signs, strict=True):
                m = prg.mask(s, length, bits, backend="reference")
                want = [(w + sign * int(v)) for w, v in zip(want, m, strict=True)]
            assert [int(v) for v in got] == [w % 2**bits for w in want]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_accumulate_plus_minus_cancels(backend):
    rng = np.random.default_rng(5)
    acc0 = rng.integers(0, 2**31, size=5000, dtype=np.uint64)
    s = _seed(rng)
    acc = prg.accumulate_masks(acc0.copy(), [s, s], [1, -1], 31, backend=backend)
    np.testing.assert_array_equal(acc, acc0)
    # no seeds: still reduced mod 2^bits
    big = np.full(4, 2**40 + 5, dtype=np.uint64)
    np.testing.assert_array_equal(prg.accumulate_masks(big, [], [], 8, backend=backend), 5)


def test_numba_not_a_function_of_chunking():
    """Lengths around the chunk / SIMD-step boundaries agree with the reference."""
    rng = np.random.default_rng(9)
    seed = _seed(rng)
    for bits in (32, 33):
        per = prg.CHUNK_WORDS // prg.element_words(bits)
        for length in (per - 1, per, per + 1, 3 * per + 17, prg.CALL_WORDS + 1):
            np.testing.assert_array_equal(
                prg.mask(seed, length, bits, backend="numba"),
                prg.mask(seed, length, bits, backend="reference"),
            )


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_refusals(backend):
    seed = bytes(32)
    with pytest.raises(InvalidParameters, match="seed: expected exactly 32 bytes, got 31"):
        prg.mask(bytes(31), 10, 8, backend=backend)
    with pytest.raises(InvalidParameters, match="seed: .* got 33"):
        prg.mask(bytes(33), 10, 8, backend=backend)
    with pytest.raises(TypeError, match="seed"):
        prg.mask("0" * 32, 10, 8, backend=backend)
    for bits in (0, 65, -1):
        with pytest.raises(InvalidParameters, match=f"bits: must be in \\[1, 64\\], got {bits}"):
            prg.mask(seed, 10, bits, backend=backend)
    with pytest.raises(TypeError, match="bits"):
        prg.mask(seed, 10, 8.0, backend=backend)
    with pytest.raises(InvalidParameters, match="length: must be >= 0, got -1"):
        prg.mask(seed, -1, 8, backend=backend)
    # 2^32 blocks hold 2^36 narrow / 2^35 wide elements; refuse one more (before allocating)
    with pytest.raises(InvalidParameters, match="2\\^32-block counter"):
        prg.mask(seed, 2**36 + 1, 32, backend=backend)
    with pytest.raises(InvalidParameters, match="2\\^32-block counter"):
        prg.mask(seed, 2**35 + 1, 33, backend=backend)
    with pytest.raises(InvalidParameters, match="2\\^32-block counter"):
        prg.keystream_words(seed, 32, counter=2**32 - 1, backend=backend)
    acc = np.zeros(4, dtype=np.uint64)
    with pytest.raises(InvalidParameters, match="signs\\[1\\]: must be \\+1 or -1, got 0"):
        prg.accumulate_masks(acc, [seed, seed], [1, 0], 8, backend=backend)
    with pytest.raises(InvalidParameters, match="signs: expected one sign per seed"):
        prg.accumulate_masks(acc, [seed], [1, 1], 8, backend=backend)
    with pytest.raises(InvalidParameters, match="seeds\\[0\\]: expected exactly 32 bytes"):
        prg.accumulate_masks(acc, [b"x"], [1], 8, backend=backend)
    with pytest.raises(InvalidParameters, match="acc: expected a 1-D uint64 array"):
        prg.accumulate_masks(np.zeros(4, np.uint32), [seed], [1], 8, backend=backend)


def test_backend_selection():
    assert prg.default_backend() == prg.available_backends()[0]
    assert prg.default_backend() in ("cupy", "numba")
    with pytest.raises(InvalidParameters, match="backend: unknown 'gpu'"):
        prg.mask(bytes(32), 4, 8, backend="gpu")
    if not HAS_CUPY:
        with pytest.raises(ConfigError, match="cupy / CUDA device not present"):
            prg.mask(bytes(32), 4, 8, backend="cupy")


# --------------------------------------------------------------------------- CUDA source
#
# Without a GPU the CUDA C source still gets its logic checked: compiled as C++ on the
# CPU with a shim for the CUDA built-ins, every "thread" run in a loop (the kernels have
# no inter-thread communication), and compared with the reference backend.

CUDA_SHIM = r"""
#include <cmath>
struct secagg_dim3 { unsigned int x, y, z; };
static secagg_dim3 blockIdx, blockDim, threadIdx, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
"""

CUDA_LAUNCHERS = r"""
#define SECAGG_LAUNCH(grid, block, call)                                        \
    blockDim.x = block; gridDim.x = grid;                                       \
    for (unsigned b = 0; b < grid; ++b)                                         \
        for (unsigned t = 0; t < block; ++t) { blockIdx.x = b; threadIdx.x = t; call; }

extern "C" void launch_fill(unsigned grid, unsigned block, unsigned int* out,
                            unsigned long long nwords, const unsigned int* init,
                            unsigned int counter0, unsigned int me, unsigned int mo) {
    SECAGG_LAUNCH(grid, block, secagg_chacha_fill(out, nwords, init, counter0, me, mo))
}
extern "C" void launch_accumulate(unsigned grid, unsigned block, unsigned long long* acc,
                                  unsigned long long n, const unsigned int* inits,
                                  const unsigned char* negates, int nseeds,
                                  unsigned int counter0, int wide,
                                  unsigned long long modmask) {
    SECAGG_LAUNCH(grid, block, secagg_chacha_accumulate(acc, n, inits, negates, nseeds,
                                                        counter0, wide, modmask))
}
"""


def compile_cuda_as_cpp(tmp_path, source: str, launchers: str) -> ctypes.CDLL:
    """Build ``source`` (CUDA C) + launchers as a shared library with g++."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to emulate the CUDA source on the CPU")
    src = tmp_path / "kernels.cpp"
    src.write_text(CUDA_SHIM + source + launchers)
    lib = tmp_path / "kernels.so"
    subprocess.run([cxx, "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return ctypes.CDLL(str(lib))


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(ctypes.c_void_p)


def test_cuda_source_logic_on_cpu(tmp_path):
    lib = compile_cuda_as_cpp(tmp_path, prg.CUDA_SOURCE, CUDA_LAUNCHERS)
    u32, u64 = ctypes.c_uint32, ctypes.c_uint64
    rng = np.random.default_rng(11)
    # fill: RFC vector and masked words
    init = prg._init_state(RFC_KEY, RFC_232_NONCE)
    out = np.zeros(16, dtype=np.uint32)
    lib.launch_fill(1, 8, _ptr(out), u64(16), _ptr(init), u32(1), u32(0xFFFFFFFF), u32(0xFFFFFFFF))
    assert out.astype("<u4").tobytes() == RFC_232_BLOCK
    for bits, length in ((13, 1001), (32, 77), (40, 333), (64, 50)):
        seed = _seed(rng)
        wpe = prg.element_words(bits)
        me, mo = ((1 << bits) - 1,) * 2 if wpe == 1 else (0xFFFFFFFF, (1 << (bits - 32)) - 1)
        words = np.zeros(wpe * length, dtype=np.uint32)
        nblocks = -(-words.size // 16)
        lib.launch_fill(
            -(-nblocks // 64),
            64,
            _ptr(words),
            u64(words.size),
            _ptr(prg._init_state(seed)),
            u32(0),
            u32(me),
            u32(mo),
        )
        got = words.view(np.uint64) if wpe == 2 else words
        np.testing.assert_array_equal(got, prg.mask(seed, length, bits, backend="reference"))
    # accumulate with mixed signs, narrow and wide
    for bits, length in ((1, 100), (31, 1003), (33, 517), (64, 200)):
        seeds = [_seed(rng) for _ in range(3)]
        negates = np.array([0, 1, 0], dtype=np.uint8)
        inits = np.stack([prg._init_state(s) for s in seeds])
        acc0 = rng.integers(0, 2**64 - 1, size=length, dtype=np.uint64, endpoint=True)
        acc = acc0.copy()
        nblocks = -(-length * prg.element_words(bits) // 16)
        lib.launch_accumulate(
            -(-nblocks // 32),
            32,
            _ptr(acc),
            u64(length),
            _ptr(inits),
            _ptr(negates),
            ctypes.c_int(3),
            u32(0),
            ctypes.c_int(int(bits > 32)),
            u64((1 << bits) - 1),
        )
        want = prg.accumulate_masks(acc0.copy(), seeds, [1, -1, 1], bits, backend="reference")
        np.testing.assert_array_equal(acc, want)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUPY, reason="cupy / CUDA device not present")
def test_cupy_device_accumulate():
    import cupy as cp

    rng = np.random.default_rng(3)
    seeds = [_seed(rng) for _ in range(4)]
    acc0 = rng.integers(0, 2**40, size=70_001, dtype=np.uint64)
    want = prg.accumulate_masks(acc0.copy(), seeds, [1, -1, -1, 1], 40, backend="reference")
    dev = cp.asarray(acc0)
    prg.accumulate_masks(dev, seeds, [1, -1, -1, 1], 40, backend="cupy")
    np.testing.assert_array_equal(dev.get(), want)


def test_run_parallel_restores_thread_count():
    import numba

    before = numba.get_num_threads()
    prg.mask(bytes(32), 10, 32, backend="numba")  # small: runs on one thread
    prg.mask(bytes(32), 3 * prg.MIN_WORK_PER_THREAD, 32, backend="numba")
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_mask_out_parameter(backend):
    seed = bytes(range(1, 33))
    for bits, dtype in ((20, np.uint32), (40, np.uint64)):
        out = np.full(1001, 7, dtype=dtype)
        got = prg.mask(seed, 1001, bits, backend=backend, out=out)
        assert got is out
        np.testing.assert_array_equal(out, prg.mask(seed, 1001, bits, backend="reference"))
    with pytest.raises(InvalidParameters, match=r"out: expected shape \(5,\) uint32"):
        prg.mask(seed, 5, 8, backend=backend, out=np.zeros(5, np.uint64))
    with pytest.raises(InvalidParameters, match=r"out: expected shape \(5,\)"):
        prg.mask(seed, 5, 8, backend=backend, out=np.zeros(6, np.uint32))

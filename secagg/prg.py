"""ChaCha20 mask PRG (RFC 8439) with three bit-identical backends.

Layout (normative, SPEC.md "Mask PRG")
--------------------------------------
* key = the 32-byte seed, nonce = 12 zero bytes, 32-bit block counter starting at 0;
  the keystream is the concatenation of the 64-byte blocks ``ChaCha20(key, counter=j,
  nonce)`` for j = 0, 1, 2, ...
* A mask of ``length`` elements in Z_{2^bits}:
  - 1 <= bits <= 32: element k = (k-th little-endian uint32 of the keystream) mod 2^bits;
  - 32 < bits <= 64: element k = (k-th little-endian uint64 of the keystream) mod 2^bits.
  It consumes ``ceil(4*length/64)`` (resp. ``ceil(8*length/64)``) blocks; a request that
  would need more than 2^32 blocks (counter overflow) is refused.

Backends
--------
* ``"reference"``: the ``cryptography`` package's ChaCha20 (its 16-byte "nonce" argument
  is the 4-byte little-endian counter followed by the 12-byte RFC nonce).
* ``"numba"``: 32 blocks per step as 16-lane SIMD vectors (LLVM vector IR generated
  below, so it compiles to AVX-512/AVX2/NEON as the host allows), parallel over chunks
  with ``prange`` (dynamic scheduling); the accumulate kernels add or subtract the
  keystream straight into a per-chunk accumulator (uint32 for bits <= 32, uint64 above;
  8 KiB), never materialising a mask array.
* ``"cupy"``: one CUDA thread per 64-byte block (``cupy.RawKernel`` source below).

Public functions: :func:`mask`, :func:`accumulate_masks`, :func:`keystream_words`,
:func:`chacha20_block`, :func:`available_backends`, :func:`default_backend`,
:func:`warmup`. First use of a numba kernel compiles it (a few seconds each, about 40 s
for every kernel of secagg on a 2-core machine); later processes load it from the
on-disk cache in well under a second.

Numba kernels are compiled with ``cache=True``. Numba re-validates a cached kernel only
against its own source file; after editing a helper module by hand, delete
``secagg/__pycache__/*.nbi``/``*.nbc`` (a normal reinstall changes every file anyway).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from secagg.errors import ConfigError, InvalidParameters

__all__ = [
    "SEED_BYTES",
    "NONCE_BYTES",
    "BACKENDS",
    "MAX_BLOCKS",
    "available_backends",
    "default_backend",
    "resolve_backend",
    "check_bits",
    "element_words",
    "blocks_needed",
    "keystream_words",
    "chacha20_block",
    "mask",
    "accumulate_masks",
    "warmup",
    "CUDA_SOURCE",
]

SEED_BYTES = 32
NONCE_BYTES = 12
BLOCK_BYTES = 64
BLOCK_WORDS = 16
MAX_BLOCKS = 1 << 32
BACKENDS = ("reference", "numba", "cupy")
ZERO_NONCE = bytes(NONCE_BYTES)
_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"

# ---------------------------------------------------------------------------------------
# argument checks shared by every backend
# ---------------------------------------------------------------------------------------


def check_bits(bits: int, field: str = "bits") -> int:
    """Return ``bits`` as an int if 1 <= bits <= 64, else raise InvalidParameters."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{field}: expected an int, got {type(bits).__name__}")
    bits = int(bits)
    if not 1 <= bits <= 64:
        raise InvalidParameters(f"{field}: must be in [1, 64], got {bits}")
    return bits


def _check_length(length: int, field: str = "length") -> int:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise TypeError(f"{field}: expected an int, got {type(length).__name__}")
    length = int(length)
    if length < 0:
        raise InvalidParameters(f"{field}: must be >= 0, got {length}")
    return length


def _check_bytes(value: object, size: int, field: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{field}: expected bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != size:
        raise InvalidParameters(f"{field}: expected exactly {size} bytes, got {len(value)}")
    return value


def _check_counter(counter: int, nblocks: int) -> int:
    if isinstance(counter, bool) or not isinstance(counter, (int, np.integer)):
        raise TypeError(f"counter: expected an int, got {type(counter).__name__}")
    counter = int(counter)
    if not 0 <= counter < MAX_BLOCKS:
        raise InvalidParameters(f"counter: must be in [0, 2^32), got {counter}")
    if counter + nblocks > MAX_BLOCKS:
        raise InvalidParameters(
            f"length: needs {nblocks} ChaCha20 blocks from counter {counter}, "
            f"beyond the 2^32-block counter limit ({MAX_BLOCKS})"
        )
    return counter


def element_words(bits: int) -> int:
    """32-bit keystream words per mask element: 1 for bits <= 32, 2 above."""
    return 1 if check_bits(bits) <= 32 else 2


def blocks_needed(length: int, bits: int) -> int:
    """ChaCha20 blocks consumed by a mask of ``length`` elements of ``bits`` bits."""
    words = _check_length(length) * element_words(bits)
    return -(-words // BLOCK_WORDS)


def _modmask(bits: int) -> int:
    return (1 << bits) - 1


def _init_state(seed: bytes, nonce: bytes = ZERO_NONCE) -> np.ndarray:
    """The 16-word ChaCha20 input state with the counter word (12) left at 0."""
    state = np.zeros(16, dtype=np.uint32)
    state[0:4] = _SIGMA
    state[4:12] = np.frombuffer(seed, dtype="<u4")
    state[13:16] = np.frombuffer(nonce, dtype="<u4")
    return state


# ---------------------------------------------------------------------------------------
# backend selection
# ---------------------------------------------------------------------------------------


@functools.cache
def _cupy():
    """The cupy module if it imports and sees a CUDA device, else None."""
    try:
        import cupy  # noqa: PLC0415

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # ImportError, CUDARuntimeError, missing driver, ...
        return None


def _numba_ok() -> bool:
    # The numba kernels reinterpret uint64 arrays as pairs of uint32 words.
    return sys.byteorder == "little"


def available_backends() -> tuple[str, ...]:
    """Backends usable in this process, fastest first."""
    out = []
    if _cupy() is not None:
        out.append("cupy")
    if _numba_ok():
        out.append("numba")
    out.append("reference")
    return tuple(out)


def default_backend() -> str:
    """cupy when cupy and a CUDA device are present, else numba (else reference)."""
    return available_backends()[0]


def resolve_backend(backend: str | None) -> str:
    """Validate an explicit backend name, or pick the default for ``None``."""
    if backend is None:
        return default_backend()
    if backend not in BACKENDS:
        raise InvalidParameters(f"backend: unknown {backend!r}, expected one of {BACKENDS}")
    if backend not in available_backends():
        why = "cupy / CUDA device not present" if backend == "cupy" else "big-endian host"
        raise ConfigError(f"backend: {backend!r} is not available here ({why})")
    return backend


# ---------------------------------------------------------------------------------------
# reference backend (cryptography / OpenSSL)
# ---------------------------------------------------------------------------------------


def _ref_keystream(seed: bytes, nbytes: int, nonce: bytes, counter: int) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms  # noqa: PLC0415

    full_nonce = counter.to_bytes(4, "little") + nonce
    enc = Cipher(algorithms.ChaCha20(seed, full_nonce), mode=None).encryptor()
    return enc.update(bytes(nbytes))


# ---------------------------------------------------------------------------------------
# numba backend
# ---------------------------------------------------------------------------------------
#
# Two LLVM intrinsics compute the 32 consecutive blocks counter .. counter+31 in one
# step: two independent sets of 16 states are kept as <16 x i32> vectors (lane l of set
# s computes block counter + 16*s + l; two sets give the out-of-order core two
# independent dependency chains), the 20 rounds use add / xor / funnel-shift rotate,
# and a 4-stage shuffle network transposes each 16x16 word matrix back to block order.
# LLVM lowers the vectors to whatever the host has (AVX-512, AVX2, NEON, ...).
#
# * _chacha_x32(out, off, init, counter): store the 512 keystream words (RFC byte order)
#   to the uint32 array out[off : off+512].
# * _chacha_x32_add(buf, off, init, counter, negate): add (negate: subtract) the 32
#   blocks' mask elements, wrapping, into buf[off : ...]: buf uint32 takes 512 elements
#   (one word each, bits <= 32), buf uint64 takes 256 elements (two words each, the
#   little-endian uint64 of the keystream, bits > 32). Reduction mod 2^bits is left to
#   the caller (2^bits divides 2^32 resp. 2^64).

_LANES = 16
_SETS = 2
CALL_BLOCKS = _LANES * _SETS  # 32 blocks per intrinsic call
CALL_WORDS = CALL_BLOCKS * BLOCK_WORDS  # 512 words
CHUNK_WORDS = 2048  # keystream words per parallel chunk (8 KiB scratch)
PAR_CHUNKSIZE = 4  # prange iterations a worker takes at a time (dynamic scheduling)

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_VTY = ir.VectorType(_I32, _LANES)
_V64TY = ir.VectorType(_I64, _LANES // 2)


def _splat(builder, scalar):
    undef = ir.Constant(_VTY, ir.Undefined)
    v = builder.insert_element(undef, scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, v, ir.Constant(_VTY, [0] * _LANES))


def _emit_blocks(context, builder, init_ty, init_v, ctr_v):
    """IR for 32 blocks; returns rows[s][lane] = <16 x i32> words of block 16*s + lane."""
    inita = context.make_array(init_ty)(context, builder, value=init_v)
    fshl = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_VTY, [_VTY, _VTY, _VTY]), "llvm.fshl.v16i32"
    )
    rot = {n: ir.Constant(_VTY, [n] * _LANES) for n in (16, 12, 8, 7)}
    words = [builder.load(builder.gep(inita.data, [ir.Constant(_I64, w)])) for w in range(16)]
    ctr32 = builder.trunc(ctr_v, _I32)  # the block counter is the low 32 bits
    sets = []
    for s in range(_SETS):
        start = [_splat(builder, words[w]) for w in range(16)]
        start[12] = builder.add(
            _splat(builder, ctr32),
            ir.Constant(_VTY, [s * _LANES + lane for lane in range(_LANES)]),
        )
        sets.append((start, list(start)))

    def rotl(v, n):
        return builder.call(fshl, [v, v, rot[n]])

    def qr(x, a, b, c, d):
        x[a] = builder.add(x[a], x[b])
        x[d] = rotl(builder.xor(x[d], x[a]), 16)
        x[c] = builder.add(x[c], x[d])
        x[b] = rotl(builder.xor(x[b], x[c]), 12)
        x[a] = builder.add(x[a], x[b])
        x[d] = rotl(builder.xor(x[d], x[a]), 8)
        x[c] = builder.add(x[c], x[d])
        x[b] = rotl(builder.xor(x[b], x[c]), 7)

    # 10 double rounds as an IR loop (a compact body keeps compile times low):
    # pre -> loop (phi state, one double round of every set) -> loop | done
    pre = builder.block
    loop = builder.append_basic_block("chacha.rounds")
    done = builder.append_basic_block("chacha.done")
    builder.branch(loop)
    builder.position_at_end(loop)
    i_phi = builder.phi(_I32)
    i_phi.add_incoming(ir.Constant(_I32, 0), pre)
    phis = []
    for _start, x in sets:
        set_phis = []
        for w in range(16):
            phi = builder.phi(_VTY)
            phi.add_incoming(x[w], pre)
            x[w] = phi
            set_phis.append(phi)
        phis.append(set_phis)
    for _start, x in sets:
        qr(x, 0, 4, 8, 12)
        qr(x, 1, 5, 9, 13)
        qr(x, 2, 6, 10, 14)
        qr(x, 3, 7, 11, 15)
        qr(x, 0, 5, 10, 15)
        qr(x, 1, 6, 11, 12)
        qr(x, 2, 7, 8, 13)
        qr(x, 3, 4, 9, 14)
    i_next = builder.add(i_phi, ir.Constant(_I32, 1))
    latch = builder.block
    i_phi.add_incoming(i_next, latch)
    for set_phis, (_start, x) in zip(phis, sets, strict=True):
        for w in range(16):
            set_phis[w].add_incoming(x[w], latch)
    builder.cbranch(builder.icmp_unsigned("<", i_next, ir.Constant(_I32, 10)), loop, done)
    builder.position_at_end(done)

    rows = []
    for start, x in sets:
        r = [builder.add(x[w], start[w]) for w in range(16)]
        # r[w][lane] = word w of block lane; swapping the off-diagonal h x h blocks for
        # h = 8, 4, 2, 1 turns it into r[lane][w].
        h = 8
        while h >= 1:
            nr = list(r)
            for i in range(16):
                if i & h:
                    continue
                j = i + h
                lo = [c if not c & h else _LANES + c - h for c in range(_LANES)]
                hi = [_LANES + c if c & h else c + h for c in range(_LANES)]
                nr[i] = builder.shuffle_vector(r[i], r[j], ir.Constant(_VTY, lo))
                nr[j] = builder.shuffle_vector(r[i], r[j], ir.Constant(_VTY, hi))
            r = nr
            h //= 2
        rows.append(r)
    return rows


def _is_i64(ty) -> bool:
    return isinstance(ty, types.Integer) and ty.bitwidth == 64


@intrinsic
def _chacha_x32(typingctx, out, off, init, counter):
    if not (_is_i64(off) and _is_i64(counter) and out.dtype == types.uint32):
        return None
    sig = types.void(out, off, init, counter)

    def codegen(context, builder, signature, args):
        out_v, off_v, init_v, ctr_v = args
        rows = _emit_blocks(context, builder, signature.args[2], init_v, ctr_v)
        outa = context.make_array(signature.args[0])(context, builder, value=out_v)
        base = builder.bitcast(builder.gep(outa.data, [off_v]), _VTY.as_pointer())
        for s, r in enumerate(rows):
            for lane in range(_LANES):
                ptr = builder.gep(base, [ir.Constant(_I64, s * _LANES + lane)])
                builder.store(r[lane], ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _chacha_x32_add(typingctx, buf, off, init, counter, negate):
    if not (_is_i64(off) and _is_i64(counter) and buf.dtype in (types.uint32, types.uint64)):
        return None
    sig = types.void(buf, off, init, counter, negate)
    wide = buf.dtype == types.uint64

    def codegen(context, builder, signature, args):
        buf_v, off_v, init_v, ctr_v, neg_v = args
        rows = _emit_blocks(context, builder, signature.args[2], init_v, ctr_v)
        bufa = context.make_array(signature.args[0])(context, builder, value=buf_v)
        vty = _V64TY if wide else _VTY
        align = 8 if wide else 4
        base = builder.bitcast(builder.gep(bufa.data, [off_v]), vty.as_pointer())
        vals = [builder.bitcast(v, vty) if wide else v for r in rows for v in r]
        ptrs = [builder.gep(base, [ir.Constant(_I64, k)]) for k in range(len(vals))]
        is_neg = builder.icmp_unsigned("!=", neg_v, ir.Constant(neg_v.type, 0))
        with builder.if_else(is_neg) as (then, otherwise):
            with then:
                for p, v in zip(ptrs, vals, strict=True):
                    builder.store(builder.sub(builder.load(p, align=align), v), p, align=align)
            with otherwise:
                for p, v in zip(ptrs, vals, strict=True):
                    builder.store(builder.add(builder.load(p, align=align), v), p, align=align)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def keystream_into(out, off, init, block0, ncalls):
    """out[off : off + 512*ncalls] <- keystream words of blocks block0, block0+1, ..."""
    for c in range(ncalls):
        _chacha_x32(out, np.int64(off + c * CALL_WORDS), init, np.int64(block0 + c * CALL_BLOCKS))


@njit(cache=True, inline="always")
def add_masks_into(buf, nelems, inits, negates, block0):
    """buf[0 : nelems rounded up to a call] +/-= the mask of every inits[j] starting at
    block block0 (wrapping arithmetic; buf uint32: narrow, uint64: wide elements)."""
    per_call = CALL_WORDS if buf.itemsize == 4 else CALL_WORDS // 2
    ncalls = (nelems + per_call - 1) // per_call
    for j in range(inits.shape[0]):
        for c in range(ncalls):
            _chacha_x32_add(
                buf,
                np.int64(c * per_call),
                inits[j],
                np.int64(block0 + c * CALL_BLOCKS),
                negates[j],
            )


@njit(cache=True, parallel=True)
def fill_kernel(out32, init, counter0, mask_even, mask_odd):
    """out32[i] = keystream word i (from block counter0), AND mask_even/mask_odd by
    the parity of i (a uint64 mask array viewed as uint32 words)."""
    nwords = out32.shape[0]
    nchunks = (nwords + CHUNK_WORDS - 1) // CHUNK_WORDS
    full_mask = mask_even == 0xFFFFFFFF and mask_odd == 0xFFFFFFFF
    for ch in prange(nchunks):
        start = ch * CHUNK_WORDS
        m = min(nwords - start, CHUNK_WORDS)
        block0 = counter0 + start // BLOCK_WORDS
        ncalls = m // CALL_WORDS
        keystream_into(out32, start, init, block0, ncalls)
        rem = m - ncalls * CALL_WORDS
        if rem > 0:
            tmp = np.empty(CALL_WORDS, np.uint32)
            keystream_into(tmp, 0, init, block0 + ncalls * CALL_BLOCKS, 1)
            for i in range(rem):
                out32[start + ncalls * CALL_WORDS + i] = tmp[i]
        if not full_mask:
            for i in range(start, start + m, 2):
                out32[i] &= mask_even
            for i in range(start + 1, start + m, 2):
                out32[i] &= mask_odd


@njit(cache=True, parallel=True)
def accumulate_kernel(acc, inits, negates, counter0, wide, modmask):
    """acc = (acc + sum_j (-1)^negates[j] PRG(inits[j])) mod 2^bits, chunk by chunk
    through a scratch buffer (uint32 for bits <= 32: 2^bits divides 2^32)."""
    n = acc.shape[0]
    per = CHUNK_WORDS // 2 if wide else CHUNK_WORDS
    nchunks = (n + per - 1) // per
    for ch in prange(nchunks):
        start = ch * per
        m = min(n - start, per)
        block0 = counter0 + start * (2 if wide else 1) // BLOCK_WORDS
        if wide:
            buf64 = np.empty(per, np.uint64)
            for i in range(m):
                buf64[i] = acc[start + i]
            add_masks_into(buf64, m, inits, negates, block0)
            for i in range(m):
                acc[start + i] = buf64[i] & modmask
        else:
            buf32 = np.empty(per, np.uint32)
            for i in range(m):
                buf32[i] = np.uint32(acc[start + i] & 0xFFFFFFFF)
            add_masks_into(buf32, m, inits, negates, block0)
            for i in range(m):
                acc[start + i] = np.uint64(buf32[i]) & modmask


MIN_WORK_PER_THREAD = 1 << 20  # work units (keystream words / values) per extra thread


def run_parallel(kernel, work: int, *args):
    """Call a parallel numba kernel on ``args``.

    * Dynamic scheduling: workers take PAR_CHUNKSIZE prange iterations at a time, so a
      worker that the OS preempts (busy or shared machine) does not hold up the call as
      with the static default split.
    * At most ``work // MIN_WORK_PER_THREAD`` threads (at least 1): waking a worker costs
      tens of microseconds on an idle machine and up to a scheduler time slice
      (milliseconds) on a busy one, more than a small call's whole work. The thread
      count is restored afterwards (numba's setting is per calling thread)."""
    old = numba.get_num_threads()
    want = max(1, min(old, int(work) // MIN_WORK_PER_THREAD))
    if want != old:
        numba.set_num_threads(want)
    try:
        with numba.parallel_chunksize(PAR_CHUNKSIZE):
            return kernel(*args)
    finally:
        if want != old:
            numba.set_num_threads(old)


PREFAULT_BYTES = 1 << 20  # outputs from this size on are first touched by the caller


def empty_output(n: int, dtype) -> np.ndarray:
    """np.empty for a kernel's output, with its pages first touched by the calling
    thread when it is large: on some virtual machines concurrent page faults from the
    worker threads cost several times a serial first touch (measured on the 2-core
    development VM: 10-80 ms versus 3.5 ms for 40 MB)."""
    out = np.empty(n, dtype=dtype)
    if out.nbytes >= PREFAULT_BYTES:
        out.view(np.uint8)[::4096] = 0
    return out


def numba_kernels() -> dict:
    """The numba kernels by name (compiled lazily on first call, cached on disk)."""
    return {
        "keystream_into": keystream_into,
        "add_masks_into": add_masks_into,
        "fill": fill_kernel,
        "accumulate": accumulate_kernel,
    }


def _nb_keystream_words(seed: bytes, nwords: int, nonce: bytes, counter: int) -> np.ndarray:
    out = empty_output(nwords, np.uint32)
    if nwords:
        run_parallel(
            fill_kernel,
            nwords,
            out,
            _init_state(seed, nonce),
            np.int64(counter),
            np.uint32(0xFFFFFFFF),
            np.uint32(0xFFFFFFFF),
        )
    return out


# ---------------------------------------------------------------------------------------
# cupy backend
# ---------------------------------------------------------------------------------------

CUDA_SOURCE = r"""
#define SECAGG_ROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define SECAGG_QR(a, b, c, d)                         \
    a += b; d ^= a; d = SECAGG_ROTL(d, 16);           \
    c += d; b ^= c; b = SECAGG_ROTL(b, 12);           \
    a += b; d ^= a; d = SECAGG_ROTL(d, 8);            \
    c += d; b ^= c; b = SECAGG_ROTL(b, 7);

/* One RFC 8439 block: init = 16-word input state (word 12 ignored), ks = output words. */
__device__ __forceinline__ void secagg_chacha_block(const unsigned int* init,
                                                    unsigned int counter,
                                                    unsigned int* ks) {
    unsigned int x[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) x[i] = init[i];
    x[12] = counter;
#pragma unroll
    for (int r = 0; r < 10; ++r) {
        SECAGG_QR(x[0], x[4], x[8], x[12])
        SECAGG_QR(x[1], x[5], x[9], x[13])
        SECAGG_QR(x[2], x[6], x[10], x[14])
        SECAGG_QR(x[3], x[7], x[11], x[15])
        SECAGG_QR(x[0], x[5], x[10], x[15])
        SECAGG_QR(x[1], x[6], x[11], x[12])
        SECAGG_QR(x[2], x[7], x[8], x[13])
        SECAGG_QR(x[3], x[4], x[9], x[14])
    }
#pragma unroll
    for (int i = 0; i < 16; ++i) ks[i] = x[i] + (i == 12 ? counter : init[i]);
}

/* out[i] = keystream word i & (i odd ? mask_odd : mask_even); one thread per block. */
extern "C" __global__ void secagg_chacha_fill(unsigned int* out, unsigned long long nwords,
                                              const unsigned int* init,
                                              unsigned int counter0,
                                              unsigned int mask_even,
                                              unsigned int mask_odd) {
    unsigned long long blk = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned long long w0 = blk * 16ULL;
    if (w0 >= nwords) return;
    unsigned int ks[16];
    secagg_chacha_block(init, counter0 + (unsigned int)blk, ks);
#pragma unroll
    for (int i = 0; i < 16; ++i) {
        if (w0 + i < nwords) out[w0 + i] = ks[i] & ((i & 1) ? mask_odd : mask_even);
    }
}

/* acc[k] = (acc[k] + sum_j (negate[j] ? -1 : +1) * mask_j[k]) & modmask, mask_j from
   inits[16*j .. 16*j+15]; one thread per block index (16 narrow / 8 wide elements). */
extern "C" __global__ void secagg_chacha_accumulate(unsigned long long* acc,
                                                    unsigned long long n,
                                                    const unsigned int* inits,
                                                    const unsigned char* negates,
                                                    int nseeds,
                                                    unsigned int counter0,
                                                    int wide,
                                                    unsigned long long modmask) {
    unsigned long long blk = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    int per = wide ? 8 : 16;
    unsigned long long e0 = blk * (unsigned long long)per;
    if (e0 >= n) return;
    unsigned long long v[16];
    unsigned int ks[16];
#pragma unroll
    for (int e = 0; e < 16; ++e) v[e] = (e < per && e0 + e < n) ? acc[e0 + e] : 0ULL;
    for (int j = 0; j < nseeds; ++j) {
        secagg_chacha_block(inits + 16 * j, counter0 + (unsigned int)blk, ks);
#pragma unroll
        for (int e = 0; e < 16; ++e) {
            if (e < per) {
                unsigned long long m = wide
                    ? ((unsigned long long)ks[2 * (e & 7)]
                       | ((unsigned long long)ks[2 * (e & 7) + 1] << 32))
                    : (unsigned long long)ks[e];
                v[e] = negates[j] ? v[e] - m : v[e] + m;
            }
        }
    }
#pragma unroll
    for (int e = 0; e < 16; ++e) {
        if (e < per && e0 + e < n) acc[e0 + e] = v[e] & modmask;
    }
}
"""

CUDA_THREADS = 256


@functools.cache
def _cupy_module():
    cp = _cupy()
    return cp.RawModule(code=CUDA_SOURCE, options=("--std=c++11",))


def _cupy_kernel(name: str):
    return _cupy_module().get_function(name)


def _grid(nthreads: int) -> tuple[int]:
    return (max(1, -(-nthreads // CUDA_THREADS)),)


def _cp_fill(nwords: int, init: np.ndarray, counter: int, mask_even: int, mask_odd: int):
    """Device array (uint32, nwords) of masked keystream words."""
    cp = _cupy()
    out = cp.empty(nwords, dtype=cp.uint32)
    if nwords:
        nblocks = -(-nwords // BLOCK_WORDS)
        _cupy_kernel("secagg_chacha_fill")(
            _grid(nblocks),
            (CUDA_THREADS,),
            (
                out,
                np.uint64(nwords),
                cp.asarray(init),
                np.uint32(counter),
                np.uint32(mask_even),
                np.uint32(mask_odd),
            ),
        )
    return out


def cupy_accumulate(acc_dev, inits: np.ndarray, negates: np.ndarray, bits: int) -> None:
    """In-place masked accumulation on a cupy uint64 array (shared with masking)."""
    cp = _cupy()
    n = int(acc_dev.shape[0])
    if n == 0:
        return
    wide = bits > 32
    nblocks = -(-n * (2 if wide else 1) // BLOCK_WORDS)
    nseeds = int(inits.shape[0])
    inits_dev = cp.asarray(
        np.ascontiguousarray(inits.reshape(-1)) if nseeds else np.zeros(16, np.uint32)
    )
    neg_dev = cp.asarray(negates.astype(np.uint8) if nseeds else np.zeros(1, np.uint8))
    _cupy_kernel("secagg_chacha_accumulate")(
        _grid(nblocks),
        (CUDA_THREADS,),
        (
            acc_dev,
            np.uint64(n),
            inits_dev,
            neg_dev,
            np.int32(nseeds),
            np.uint32(0),
            np.int32(1 if wide else 0),
            np.uint64(_modmask(bits)),
        ),
    )


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------


def keystream_words(
    seed: bytes,
    nwords: int,
    *,
    nonce: bytes = ZERO_NONCE,
    counter: int = 0,
    backend: str | None = None,
) -> np.ndarray:
    """The first ``nwords`` little-endian uint32 words of the ChaCha20 keystream for
    (key=seed, nonce, initial block counter). Exposes nonce and counter so the RFC 8439
    test vectors can be run on every backend; masks always use nonce 0, counter 0."""
    seed = _check_bytes(seed, SEED_BYTES, "seed")
    nonce = _check_bytes(nonce, NONCE_BYTES, "nonce")
    nwords = _check_length(nwords, "nwords")
    counter = _check_counter(counter, -(-nwords // BLOCK_WORDS))
    backend = resolve_backend(backend)
    if backend == "reference":
        return np.frombuffer(_ref_keystream(seed, 4 * nwords, nonce, counter), "<u4").astype(
            np.uint32
        )
    if backend == "numba":
        return _nb_keystream_words(seed, nwords, nonce, counter)
    out = _cp_fill(nwords, _init_state(seed, nonce), counter, 0xFFFFFFFF, 0xFFFFFFFF)
    return out.get()


def chacha20_block(seed: bytes, counter: int, nonce: bytes, backend: str | None = None) -> bytes:
    """The 64-byte serialized ChaCha20 block function output (RFC 8439 §2.3)."""
    words = keystream_words(seed, BLOCK_WORDS, nonce=nonce, counter=counter, backend=backend)
    return words.astype("<u4").tobytes()


def mask(
    seed: bytes,
    length: int,
    bits: int,
    backend: str | None = None,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The mask PRG(seed) of ``length`` elements in Z_{2^bits} (see module docstring).

    Returns uint32 for bits <= 32 and uint64 above, every value already reduced mod
    2^bits. ``out``: optional writable C-contiguous array of that dtype and shape
    (length,) to fill instead of allocating (saves the page faults of fresh memory on
    large masks). Raises InvalidParameters for a seed that is not 32 bytes, bits outside
    [1, 64], a length beyond the 2^32-block counter or an unfit ``out``; TypeError for
    wrong types."""
    seed = _check_bytes(seed, SEED_BYTES, "seed")
    bits = check_bits(bits)
    length = _check_length(length)
    wpe = element_words(bits)
    _check_counter(0, blocks_needed(length, bits))
    backend = resolve_backend(backend)
    dtype = np.uint32 if wpe == 1 else np.uint64
    if out is not None:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out: expected a numpy array, got {type(out).__name__}")
        if out.dtype != dtype or out.shape != (length,):
            raise InvalidParameters(
                f"out: expected shape ({length},) {np.dtype(dtype).name}, "
                f"got {out.shape} {out.dtype}"
            )
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise InvalidParameters("out: must be C-contiguous and writable")
    if backend == "reference":
        raw = np.frombuffer(
            _ref_keystream(seed, 4 * wpe * length, ZERO_NONCE, 0), "<u4" if wpe == 1 else "<u8"
        )
        res = raw.astype(dtype)
        if bits not in (32, 64):
            res &= dtype(_modmask(bits))
    else:
        # numba / cupy: fill uint32 words, masking odd words (the high halves) for wide
        if wpe == 1:
            mask_even = mask_odd = _modmask(bits)
        else:
            mask_even, mask_odd = 0xFFFFFFFF, _modmask(bits - 32)
        if backend == "numba":
            res = empty_output(length, dtype) if out is None else out
            if length:
                run_parallel(
                    fill_kernel,
                    wpe * length,
                    res.view(np.uint32),
                    _init_state(seed),
                    np.int64(0),
                    np.uint32(mask_even),
                    np.uint32(mask_odd),
                )
            return res
        words = _cp_fill(wpe * length, _init_state(seed), 0, mask_even, mask_odd)
        res = words.view(_cupy().uint64 if wpe == 2 else _cupy().uint32).get()
    if out is None:
        return res
    out[...] = res
    return out


def _check_seed_list(
    seeds: Sequence[bytes], signs: Sequence[int], field: str = "seeds", sign_field: str = "signs"
) -> tuple[np.ndarray, np.ndarray]:
    """(inits (n,16) uint32, negates (n,) bool) from seeds and +/-1 signs; error
    messages name ``field[k]`` / ``sign_field[k]``."""
    if isinstance(seeds, (bytes, bytearray)):
        raise TypeError(f"{field}: expected a sequence of 32-byte seeds, got a single bytes")
    seeds = list(seeds)
    signs = list(signs)
    if len(seeds) != len(signs):
        raise InvalidParameters(
            f"{sign_field}: expected one sign per seed ({len(seeds)} seeds), got {len(signs)}"
        )
    inits = np.zeros((len(seeds), 16), dtype=np.uint32)
    negates = np.zeros(len(seeds), dtype=np.bool_)
    for j, (seed, sign) in enumerate(zip(seeds, signs, strict=True)):
        seed = _check_bytes(seed, SEED_BYTES, f"{field}[{j}]")
        if isinstance(sign, bool) or not isinstance(sign, (int, np.integer)) or sign not in (1, -1):
            raise InvalidParameters(f"{sign_field}[{j}]: must be +1 or -1, got {sign!r}")
        inits[j] = _init_state(seed)
        negates[j] = sign == -1
    return inits, negates


def accumulate_masks(
    acc: np.ndarray,
    seeds: Sequence[bytes],
    signs: Sequence[int],
    bits: int,
    backend: str | None = None,
) -> np.ndarray:
    """In place: ``acc[k] = (acc[k] + sum_j signs[j] * mask(seeds[j])[k]) mod 2^bits``.

    ``acc`` must be a writable, C-contiguous 1-D uint64 numpy array (or, for the cupy
    backend, a cupy uint64 array); its length is the mask length. Every value of acc is
    reduced mod 2^bits on return, also when ``seeds`` is empty. The numba and cupy
    backends expand each keystream straight into the accumulator (no mask array).
    Returns ``acc``."""
    bits = check_bits(bits)
    inits, negates = _check_seed_list(seeds, signs)
    backend = resolve_backend(backend)
    cp = _cupy()
    on_device = cp is not None and isinstance(acc, cp.ndarray)
    if on_device and (acc.dtype != cp.uint64 or acc.ndim != 1 or not acc.flags.c_contiguous):
        raise InvalidParameters(
            f"acc: expected a C-contiguous 1-D uint64 cupy array, got {acc.ndim}-D {acc.dtype}"
        )
    if not on_device:
        if not isinstance(acc, np.ndarray):
            raise TypeError(f"acc: expected a numpy uint64 array, got {type(acc).__name__}")
        if acc.dtype != np.uint64 or acc.ndim != 1:
            raise InvalidParameters(
                f"acc: expected a 1-D uint64 array, got {acc.ndim}-D {acc.dtype}"
            )
        if not acc.flags.c_contiguous or not acc.flags.writeable:
            raise InvalidParameters("acc: must be C-contiguous and writable")
    n = int(acc.shape[0])
    _check_counter(0, blocks_needed(n, bits))
    modmask = _modmask(bits)
    if on_device and backend != "cupy":
        raise InvalidParameters(f"acc: a cupy array needs backend 'cupy', got {backend!r}")
    if backend == "cupy":
        if on_device:
            cupy_accumulate(acc, inits, negates, bits)
        else:
            dev = cp.asarray(acc)
            cupy_accumulate(dev, inits, negates, bits)
            if not inits.shape[0]:
                dev &= np.uint64(modmask)
            acc[...] = dev.get()
            return acc
        if not inits.shape[0]:
            acc &= np.uint64(modmask)
        return acc
    if backend == "numba":
        if inits.shape[0] and n:
            run_parallel(
                accumulate_kernel,
                n * (2 if bits > 32 else 1) * inits.shape[0],
                acc,
                inits,
                negates,
                np.int64(0),
                bits > 32,
                np.uint64(modmask),
            )
        else:
            acc &= np.uint64(modmask)
        return acc
    # reference: materialise each mask with OpenSSL and add it with numpy
    acc &= np.uint64(modmask)
    for j in range(inits.shape[0]):
        seed = inits[j, 4:12].astype("<u4").tobytes()
        m = mask(seed, n, bits, backend="reference").astype(np.uint64)
        if negates[j]:
            np.subtract(acc, m, out=acc)
        else:
            np.add(acc, m, out=acc)
        acc &= np.uint64(modmask)
    return acc


def warmup(backends: Sequence[str] | None = None) -> None:
    """Compile (or load from the numba cache) every kernel of the given backends so a
    later timing does not include JIT time. Safe to call repeatedly."""
    for backend in backends or available_backends():
        if backend == "reference":
            continue
        seed = bytes(range(32))
        for bits in (32, 64):
            mask(seed, 40, bits, backend=backend)
            acc = np.zeros(40, dtype=np.uint64)
            accumulate_masks(acc, [seed, seed], [1, -1], bits, backend=backend)

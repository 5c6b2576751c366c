"""Bit-packing of vectors in Z_{2^bits} (SPEC.md "Bit-packing").

Layout (normative): L values v_0 .. v_{L-1}, each < 2^bits (1 <= bits <= 64), form one
little-endian bit stream, LSB first: value k occupies stream bits [k*bits, (k+1)*bits)
with its bit i at stream bit k*bits + i, and stream bit j is bit (j mod 8) of byte j // 8.
The encoding is exactly ceil(L*bits/8) bytes; the padding bits of the last byte are 0.
:func:`unpack` accepts only that exact length and zero padding (anything else raises
:class:`secagg.errors.InvalidEncoding`, a ValueError), so every vector has exactly one
encoding.

Backends: ``"reference"`` (numpy bit matrices, readable), ``"numba"`` (parallel over
64-value chunks, each of which starts on a 64-bit word boundary), ``"cupy"`` (one CUDA
thread per output word / per value).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange
from numba import types as nbtypes
from numba.typed import List as NumbaList

from secagg.errors import InvalidEncoding, InvalidParameters
from secagg.prg import _cupy, check_bits, empty_output, resolve_backend, run_parallel

__all__ = [
    "packed_size",
    "pack",
    "unpack",
    "PACK_CHUNK",
    "CUDA_PACK_SOURCE",
]

PACK_CHUNK = 4096  # values per parallel chunk (a multiple of 64: chunks start on words)


def packed_size(length: int, bits: int) -> int:
    """Bytes of the packed encoding of ``length`` values of ``bits`` bits."""
    return -(-int(length) * check_bits(bits) // 8)


def _modmask(bits: int) -> int:
    return (1 << bits) - 1


# ---------------------------------------------------------------------------------------
# numba kernels (the chunk helpers are shared with secagg.masking)
# ---------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def pack_into(vals, m, bits, modmask, out, woff):
    """Pack (vals[:m] & modmask) LSB-first into the uint64 words
    out[woff : woff + ceil(m*bits/64)]; the first value starts on a word boundary and
    the last word is zero-padded. vals may be uint32 or uint64."""
    if bits == 64:
        for i in range(m):
            out[woff + i] = np.uint64(vals[i])
        return
    cur = np.uint64(0)
    nb = 0
    w = woff
    for i in range(m):
        v = np.uint64(vals[i]) & modmask
        cur |= v << np.uint64(nb)
        nb += bits
        if nb >= 64:
            out[w] = cur
            w += 1
            nb -= 64
            if nb > 0:
                cur = v >> np.uint64(bits - nb)
            else:
                cur = np.uint64(0)
    if nb > 0:
        out[w] = cur


@njit(cache=True, inline="always")
def _word(main, nfull, tail, w):
    if w < nfull:
        return main[w]
    return tail


@njit(cache=True, inline="always")
def unpack_add_into(buf, m, e0, main, nfull, tail, bits, modmask, add):
    """buf[i] = value e0+i of the stream (add: buf[i] = buf[i] + value, wrapping in
    buf's dtype), for i < m; e0 is a multiple of 64 so value e0 starts on word
    e0*bits/64. The stream is main[0:nfull] (full words) followed by ``tail`` (the
    zero-padded partial last word, or 0). Reads the words sequentially."""
    w = (e0 * bits) >> 6
    if bits == 64:
        for i in range(m):
            v = _word(main, nfull, tail, w + i)
            if add:
                buf[i] = buf[i] + v
            else:
                buf[i] = v
        return
    cur = _word(main, nfull, tail, w)
    avail = 64  # unread bits left in cur (at its bottom)
    for i in range(m):
        if avail >= bits:
            v = cur & modmask
            cur >>= np.uint64(bits)
            avail -= bits
        else:
            w += 1
            nxt = _word(main, nfull, tail, w)
            v = (cur | (nxt << np.uint64(avail))) & modmask
            used = bits - avail  # bits taken from nxt, 1 .. bits
            cur = nxt >> np.uint64(used)
            avail = 64 - used
        if add:
            buf[i] = buf[i] + v
        else:
            buf[i] = v


@njit(cache=True, parallel=True)
def _pack_kernel(vals, bits, himask, out, bad):
    """out (uint64 words) <- packing of vals; bad[ch] = OR of (value & himask), where
    himask has the bits >= ``bits`` set (so nonzero means out of range)."""
    n = vals.shape[0]
    nchunks = (n + PACK_CHUNK - 1) // PACK_CHUNK
    modmask = ~himask
    for ch in prange(nchunks):
        start = ch * PACK_CHUNK
        m = min(n - start, PACK_CHUNK)
        chunk = vals[start : start + m]
        acc = np.uint64(0)
        for i in range(m):
            acc |= chunk[i] & himask
        bad[ch] = acc
        pack_into(chunk, m, bits, modmask, out, (start * bits) // 64)


@njit(cache=True, parallel=True)
def _unpack_kernel(mains, nfull, tails, n, bits, modmask, out):
    """out = sum over streams s of unpack(stream s) mod 2^bits (one stream: plain unpack)."""
    nchunks = (n + PACK_CHUNK - 1) // PACK_CHUNK
    for ch in prange(nchunks):
        start = ch * PACK_CHUNK
        m = min(n - start, PACK_CHUNK)
        buf = out[start : start + m]
        for s in range(len(mains)):
            unpack_add_into(buf, m, start, mains[s], nfull, tails[s], bits, modmask, s > 0)


_STREAM_TYPE = nbtypes.Array(nbtypes.uint64, 1, "C", readonly=True)


def stream_views(datas: list[bytes]) -> tuple[NumbaList, int, np.ndarray]:
    """Zero-copy uint64 views of packed encodings for the numba kernels:
    (typed list of the full-word views, number of full words, tail words)."""
    mains = NumbaList.empty_list(_STREAM_TYPE)
    nfull = len(datas[0]) // 8 if datas else 0
    tails = np.zeros(len(datas), dtype=np.uint64)
    for s, data in enumerate(datas):
        main = np.frombuffer(data, dtype=np.uint64, count=nfull)
        if not main.flags.aligned or main.flags.writeable:
            main = main.copy()
            main.flags.writeable = False
        mains.append(main)
        rest = bytes(data[nfull * 8 :])
        tails[s] = int.from_bytes(rest, "little") if rest else 0
    return mains, nfull, tails


# ---------------------------------------------------------------------------------------
# cupy kernels
# ---------------------------------------------------------------------------------------

CUDA_PACK_SOURCE = r"""
/* out word t = stream bits [64t, 64t+64); one thread per output word. */
extern "C" __global__ void secagg_pack(const unsigned long long* vals, unsigned long long n,
                                       int bits, unsigned long long nwords,
                                       unsigned long long* out) {
    unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= nwords) return;
    unsigned long long lo = t * 64ULL;
    unsigned long long k = lo / (unsigned long long)bits;
    unsigned long long word = 0ULL;
    for (; k < n; ++k) {
        unsigned long long o = k * (unsigned long long)bits;
        if (o >= lo + 64ULL) break;
        unsigned long long v = vals[k];
        if (o >= lo) word |= v << (o - lo);           /* o - lo in [0, 63] */
        else word |= v >> (lo - o);                   /* lo - o in [1, bits-1] */
    }
    out[t] = word;
}

/* out[k] (+)= value k of the stream in words[] (zero-padded by one extra word). */
extern "C" __global__ void secagg_unpack(const unsigned long long* words,
                                         unsigned long long n, int bits,
                                         unsigned long long modmask, int add,
                                         unsigned long long* out) {
    unsigned long long k = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n) return;
    unsigned long long o = k * (unsigned long long)bits;
    unsigned long long w = o >> 6;
    unsigned int sh = (unsigned int)(o & 63ULL);
    unsigned long long v = words[w] >> sh;
    if (sh + (unsigned int)bits > 64u) v |= words[w + 1] << (64u - sh);
    v &= modmask;
    out[k] = add ? ((out[k] + v) & modmask) : v;
}
"""


@functools.cache
def _cupy_pack_module():
    return _cupy().RawModule(code=CUDA_PACK_SOURCE, options=("--std=c++11",))


def cupy_pack(vals_dev, bits: int) -> bytes:
    """Pack a cupy uint64 array (values already < 2^bits) into bytes."""
    from secagg.prg import CUDA_THREADS, _grid

    cp = _cupy()
    n = int(vals_dev.shape[0])
    nbytes = packed_size(n, bits)
    nwords = -(-n * bits // 64)
    out = cp.zeros(max(nwords, 1), dtype=cp.uint64)
    if nwords:
        _cupy_pack_module().get_function("secagg_pack")(
            _grid(nwords),
            (CUDA_THREADS,),
            (vals_dev, np.uint64(n), np.int32(bits), np.uint64(nwords), out),
        )
    return out.get().view(np.uint8)[:nbytes].tobytes()


def cupy_unpack_add(data: bytes, n: int, bits: int, out_dev, add: bool) -> None:
    """out_dev (cupy uint64, length n) = / += the values of one checked encoding."""
    from secagg.prg import CUDA_THREADS, _grid

    cp = _cupy()
    if n == 0:
        return
    nwords = -(-len(data) // 8) + 1
    host = np.zeros(nwords * 8, dtype=np.uint8)
    host[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    words = cp.asarray(host.view(np.uint64))
    _cupy_pack_module().get_function("secagg_unpack")(
        _grid(n),
        (CUDA_THREADS,),
        (
            words,
            np.uint64(n),
            np.int32(bits),
            np.uint64(_modmask(bits)),
            np.int32(1 if add else 0),
            out_dev,
        ),
    )


# ---------------------------------------------------------------------------------------
# checks and public API
# ---------------------------------------------------------------------------------------


def as_values(values: object, field: str = "values") -> np.ndarray:
    """A 1-D uint64 array from an integer array-like with no negative entries."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidParameters(f"{field}: expected a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "ui" and not (arr.dtype == object or arr.size == 0):
        raise TypeError(f"{field}: expected integers, got dtype {arr.dtype}")
    if arr.dtype == object:
        try:
            arr = np.array([int(v) for v in arr], dtype=np.uint64)
        except OverflowError as exc:
            raise InvalidEncoding(f"{field}: a value does not fit 64 bits") from exc
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        k = int(np.argmin(arr))
        raise InvalidEncoding(f"{field}[{k}]: negative value {int(arr[k])}")
    return np.ascontiguousarray(arr, dtype=np.uint64)


def check_encoding(data: object, length: int, bits: int, field: str = "data") -> bytes:
    """Raise InvalidEncoding unless ``data`` is exactly packed_size(length, bits) bytes
    with zero padding bits; return it as bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{field}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    want = packed_size(length, bits)
    if len(data) != want:
        raise InvalidEncoding(
            f"{field}: expected exactly {want} bytes for {length} values of {bits} bits, "
            f"got {len(data)}"
        )
    used = (length * bits) % 8
    if used and data[-1] >> used:
        raise InvalidEncoding(
            f"{field}: padding bits {used}..7 of the last byte must be 0, "
            f"last byte is 0x{data[-1]:02x}"
        )
    return data


def _check_range(vals: np.ndarray, bits: int, field: str = "values") -> None:
    if bits < 64 and vals.size:
        over = vals >> np.uint64(bits)
        if over.any():
            k = int(np.flatnonzero(over)[0])
            raise InvalidEncoding(
                f"{field}[{k}]: value {int(vals[k])} does not fit {bits} bits (>= 2^{bits})"
            )


def pack_reference(vals: np.ndarray, bits: int) -> bytes:
    """Readable numpy packing: an L x bits matrix of bits, LSB first, then packbits."""
    shifts = np.arange(bits, dtype=np.uint64)
    bitmat = ((vals[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bitmat.reshape(-1), bitorder="little").tobytes()


def unpack_reference(data: bytes, length: int, bits: int) -> np.ndarray:
    """Readable numpy unpacking (no checks; see :func:`unpack`)."""
    stream = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    bitmat = stream[: length * bits].reshape(length, bits).astype(np.uint64)
    shifts = np.arange(bits, dtype=np.uint64)
    return (bitmat << shifts[None, :]).sum(axis=1, dtype=np.uint64)


def pack(values: object, bits: int, backend: str | None = None) -> bytes:
    """Pack values (each in [0, 2^bits)) into ceil(L*bits/8) bytes, LSB first.

    Raises InvalidEncoding for a negative value or one >= 2^bits, InvalidParameters for
    bits outside [1, 64] or a non 1-D input."""
    bits = check_bits(bits)
    backend = resolve_backend(backend)
    cp = _cupy()
    if cp is not None and isinstance(values, cp.ndarray):
        if backend != "cupy":
            values = values.get()
        else:
            vals_dev = cp.ascontiguousarray(values.reshape(-1), dtype=cp.uint64)
            if bits < 64 and vals_dev.size and bool((vals_dev >> np.uint64(bits)).any()):
                _check_range(vals_dev.get(), bits)
            return cupy_pack(vals_dev, bits)
    vals = as_values(values)
    if backend == "reference":
        _check_range(vals, bits)
        return pack_reference(vals, bits)
    if backend == "cupy":
        _check_range(vals, bits)
        return cupy_pack(cp.asarray(vals), bits)
    n = vals.shape[0]
    nbytes = packed_size(n, bits)
    nwords = -(-n * bits // 64)
    out = empty_output(nwords, np.uint64)
    bad = np.zeros(-(-n // PACK_CHUNK), dtype=np.uint64)
    if n:
        himask = np.uint64(~_modmask(bits) & 0xFFFFFFFFFFFFFFFF)
        run_parallel(_pack_kernel, n, vals, bits, himask, out, bad)
    if bad.any():
        _check_range(vals, bits)
    return out.view(np.uint8)[:nbytes].tobytes()


def unpack(data: object, length: int, bits: int, backend: str | None = None) -> np.ndarray:
    """Inverse of :func:`pack`: a uint64 array of ``length`` values.

    Raises InvalidEncoding if ``data`` is not exactly ceil(length*bits/8) bytes or its
    padding bits are not zero."""
    bits = check_bits(bits)
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise InvalidParameters(f"length: expected an int >= 0, got {length!r}")
    length = int(length)
    data = check_encoding(data, length, bits)
    backend = resolve_backend(backend)
    if backend == "reference":
        return unpack_reference(data, length, bits)
    if backend == "cupy":
        cp = _cupy()
        out = cp.zeros(length, dtype=cp.uint64)
        cupy_unpack_add(data, length, bits, out, add=False)
        return out.get()
    out = empty_output(length, np.uint64)
    if length:
        mains, nfull, tails = stream_views([data])
        run_parallel(
            _unpack_kernel,
            length,
            mains,
            nfull,
            tails,
            length,
            bits,
            np.uint64(_modmask(bits)),
            out,
        )
    return out


def warmup() -> None:
    """Compile / load the numba packing kernels."""
    for bits in (3, 64):
        v = np.arange(100, dtype=np.uint64) & np.uint64(_modmask(bits))
        unpack(pack(v, bits, backend="numba"), 100, bits, backend="numba")

"""Fused double-masking operations (SPEC.md "Masked vectors").

Client i sends the packed vector

    y_i = Q_i + PRG(self_i) + sum_{(s, +1)} PRG(s) - sum_{(s, -1)} PRG(s)   (mod 2^bits)

where Q_i is its quantized vector (secagg.quantize), PRG is the ChaCha20 mask of
secagg.prg and the (seed, sign) pairs are its pairwise seeds (for the pair {i, j} one
side uses +1 and the other -1, so the pair masks cancel in a sum). The packing is that of
secagg.packing (ceil(L*bits/8) bytes).

The aggregator computes

    unmask_sum(ys, L, bits, seeds_to_remove) = sum_i y_i - sum_{(s, sign)} sign * PRG(s)

(mod 2^bits), where every (s, sign) of ``seeds_to_remove`` carries the sign its mask
had INSIDE the y_i: the self seed of every surviving client as (self_i, +1), and for a
client j that dropped out, every pair seed it shared with a survivor i as
(s_ij, sign used by i). Subtracting sign * PRG(s) removes exactly what was added.

Both operations are fused: the numba backend walks the vector in cache-sized chunks and,
per chunk, adds every mask (and packs / unpacks) before moving on, so no mask-sized
temporary is ever allocated. ``mask_and_pack_reference`` and ``unmask_sum_reference`` are
the plain-numpy versions the tests compare against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from secagg.errors import InvalidParameters
from secagg.packing import (
    _check_range,
    as_values,
    check_encoding,
    cupy_pack,
    cupy_unpack_add,
    pack_into,
    pack_reference,
    packed_size,
    stream_views,
    unpack_add_into,
    unpack_reference,
)
from secagg.prg import (
    BLOCK_WORDS,
    CHUNK_WORDS,
    MAX_BLOCKS,
    _check_seed_list,
    _cupy,
    add_keystream_chunk,
    blocks_needed,
    check_bits,
    cupy_accumulate,
    mask,
    resolve_backend,
)

__all__ = [
    "mask_and_pack",
    "unmask_sum",
    "mask_and_pack_reference",
    "unmask_sum_reference",
    "warmup",
]


def _modmask(bits: int) -> int:
    return (1 << bits) - 1


# ---------------------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def _mask_and_pack_kernel(q, inits, negates, wide, modmask, bits, out_words, bad):
    """Per chunk: buf = q chunk; buf +/-= every mask; pack buf into out_words.
    bad[ch] = OR of (q & ~modmask) over the chunk (nonzero: a value >= 2^bits)."""
    n = q.shape[0]
    per = CHUNK_WORDS // 2 if wide else CHUNK_WORDS
    wpe = 2 if wide else 1
    himask = ~modmask
    nchunks = (n + per - 1) // per
    for ch in prange(nchunks):
        kw = np.empty(CHUNK_WORDS, np.uint32)
        buf = np.empty(per, np.uint64)
        start = ch * per
        m = min(n - start, per)
        acc = np.uint64(0)
        for i in range(m):
            v = q[start + i]
            acc |= v & himask
            buf[i] = v
        bad[ch] = acc
        block0 = (start * wpe) // BLOCK_WORDS
        for j in range(inits.shape[0]):
            add_keystream_chunk(buf, m, kw, inits[j], block0, wide, negates[j], modmask)
        pack_into(buf, m, bits, out_words, (start * bits) // 64)


@njit(cache=True, parallel=True)
def _unmask_sum_kernel(mains, nfull, tails, n, bits, inits, negates, wide, modmask, out):
    """Per chunk: out chunk = sum of the unpacked streams, then +/- every mask."""
    per = CHUNK_WORDS // 2 if wide else CHUNK_WORDS
    wpe = 2 if wide else 1
    nchunks = (n + per - 1) // per
    for ch in prange(nchunks):
        kw = np.empty(CHUNK_WORDS, np.uint32)
        start = ch * per
        m = min(n - start, per)
        buf = out[start : start + m]
        if len(mains) == 0:
            for i in range(m):
                buf[i] = 0
        for s in range(len(mains)):
            unpack_add_into(buf, m, start, mains[s], nfull, tails[s], bits, modmask, s > 0)
        block0 = (start * wpe) // BLOCK_WORDS
        for j in range(inits.shape[0]):
            add_keystream_chunk(buf, m, kw, inits[j], block0, wide, negates[j], modmask)


# ---------------------------------------------------------------------------------------
# argument handling
# ---------------------------------------------------------------------------------------


def _seed_pairs(pairs: Sequence[tuple[bytes, int]], field: str) -> tuple[np.ndarray, np.ndarray]:
    """(inits, negates) of (seed, sign) tuples; errors name ``field[k]``."""
    if isinstance(pairs, (bytes, bytearray)) or not isinstance(pairs, Sequence):
        raise TypeError(f"{field}: expected a list of (seed, sign) tuples")
    seeds, signs = [], []
    for k, item in enumerate(pairs):
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"{field}[{k}]: expected a (seed, sign) tuple, got {item!r}")
        seeds.append(item[0])
        signs.append(item[1])
    return _check_seed_list(seeds, signs, f"{field}[k].seed", f"{field}[k].sign")


def _check_len(length: int) -> int:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise InvalidParameters(f"length: expected an int >= 0, got {length!r}")
    return int(length)


def _check_blocks(length: int, bits: int) -> None:
    need = blocks_needed(length, bits)
    if need > MAX_BLOCKS:
        raise InvalidParameters(
            f"length: {length} elements of {bits} bits need {need} ChaCha20 blocks > 2^32"
        )


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------


def mask_and_pack(
    quantized: object,
    self_seed: bytes,
    pair_seeds: Sequence[tuple[bytes, int]],
    bits: int,
    backend: str | None = None,
) -> bytes:
    """Client op: pack((Q + PRG(self_seed) + sum_j sign_j * PRG(seed_j)) mod 2^bits).

    quantized: 1-D uint64 values < 2^bits (numpy, or cupy for the cupy backend).
    pair_seeds: (32-byte seed, +1 or -1) tuples. Returns ceil(L*bits/8) bytes.
    Raises InvalidEncoding for a value >= 2^bits, InvalidParameters for bad seeds or
    signs, bits outside [1, 64]."""
    bits = check_bits(bits)
    self_init, self_neg = _check_seed_list([self_seed], [1], "self_seed")
    pair_inits, pair_neg = _seed_pairs(pair_seeds, "pair_seeds")
    inits = np.concatenate([self_init, pair_inits])
    negates = np.concatenate([self_neg, pair_neg])
    backend = resolve_backend(backend)
    modmask = _modmask(bits)
    cp = _cupy()
    if cp is not None and isinstance(quantized, cp.ndarray):
        if backend == "cupy":
            acc = cp.array(quantized.reshape(-1), dtype=cp.uint64)
            if bits < 64 and acc.size and bool((acc >> np.uint64(bits)).any()):
                _check_range(acc.get(), bits, "quantized")
            _check_blocks(int(acc.shape[0]), bits)
            cupy_accumulate(acc, inits, negates, bits)
            return cupy_pack(acc, bits)
        quantized = quantized.get()
    q = as_values(quantized, "quantized")
    n = q.shape[0]
    _check_blocks(n, bits)
    if backend == "reference":
        _check_range(q, bits, "quantized")
        return _mask_and_pack_ref(q, inits, negates, bits)
    if backend == "cupy":
        _check_range(q, bits, "quantized")
        acc = cp.asarray(q)
        cupy_accumulate(acc, inits, negates, bits)
        return cupy_pack(acc, bits)
    wide = bits > 32
    per = CHUNK_WORDS // 2 if wide else CHUNK_WORDS
    out = np.empty(-(-n * bits // 64), dtype=np.uint64)
    bad = np.zeros(max(1, -(-n // per)), dtype=np.uint64)
    if n:
        _mask_and_pack_kernel(q, inits, negates, wide, np.uint64(modmask), bits, out, bad)
    if bad.any():
        _check_range(q, bits, "quantized")
    return out.view(np.uint8)[: packed_size(n, bits)].tobytes()


def unmask_sum(
    packed_inputs: Sequence[bytes],
    length: int,
    bits: int,
    seeds_to_remove: Sequence[tuple[bytes, int]],
    backend: str | None = None,
) -> np.ndarray:
    """Aggregator op: (sum_i unpack(y_i) - sum_{(s, sign)} sign * PRG(s)) mod 2^bits.

    packed_inputs: the clients' y_i, each exactly ceil(length*bits/8) bytes with zero
    padding (else InvalidEncoding naming the index). seeds_to_remove: (seed, sign) with
    the sign the mask had inside the y_i (self seeds of survivors: +1; pair seeds of a
    dropped client j as used by survivor i: that survivor's sign). Returns a uint64
    numpy array of ``length`` values < 2^bits."""
    bits = check_bits(bits)
    length = _check_len(length)
    _check_blocks(length, bits)
    if isinstance(packed_inputs, (bytes, bytearray)):
        raise TypeError("packed_inputs: expected a sequence of bytes, got a single bytes")
    datas = [
        check_encoding(d, length, bits, f"packed_inputs[{k}]") for k, d in enumerate(packed_inputs)
    ]
    inits, negates = _seed_pairs(seeds_to_remove, "seeds_to_remove")
    negates = ~negates  # subtracting sign * PRG(s) = accumulating with the opposite sign
    backend = resolve_backend(backend)
    modmask = _modmask(bits)
    if backend == "reference":
        return _unmask_sum_ref(datas, length, inits, negates, bits)
    if backend == "cupy":
        cp = _cupy()
        acc = cp.zeros(length, dtype=cp.uint64)
        for k, data in enumerate(datas):
            cupy_unpack_add(data, length, bits, acc, add=k > 0)
        cupy_accumulate(acc, inits, negates, bits)
        return acc.get()
    out = np.empty(length, dtype=np.uint64)
    if length:
        mains, nfull, tails = stream_views(datas)
        _unmask_sum_kernel(
            mains,
            nfull,
            tails,
            length,
            bits,
            inits,
            negates,
            bits > 32,
            np.uint64(modmask),
            out,
        )
    return out


# ---------------------------------------------------------------------------------------
# plain numpy references
# ---------------------------------------------------------------------------------------


def _seed_of(init_row: np.ndarray) -> bytes:
    return init_row[4:12].astype("<u4").tobytes()


def _mask_and_pack_ref(q, inits, negates, bits) -> bytes:
    modmask = np.uint64(_modmask(bits))
    y = q.copy()
    for j in range(inits.shape[0]):
        m = mask(_seed_of(inits[j]), q.shape[0], bits, backend="reference").astype(np.uint64)
        y = (y - m if negates[j] else y + m) & modmask
    return pack_reference(y, bits)


def _unmask_sum_ref(datas, length, inits, negates, bits) -> np.ndarray:
    modmask = np.uint64(_modmask(bits))
    total = np.zeros(length, dtype=np.uint64)
    for data in datas:
        total = (total + unpack_reference(data, length, bits)) & modmask
    for j in range(inits.shape[0]):
        m = mask(_seed_of(inits[j]), length, bits, backend="reference").astype(np.uint64)
        total = (total - m if negates[j] else total + m) & modmask
    return total


def mask_and_pack_reference(
    quantized: object,
    self_seed: bytes,
    pair_seeds: Sequence[tuple[bytes, int]],
    bits: int,
) -> bytes:
    """Readable version of :func:`mask_and_pack`: materialise every mask with the
    OpenSSL ChaCha20, add with numpy, pack bit by bit."""
    return mask_and_pack(quantized, self_seed, pair_seeds, bits, backend="reference")


def unmask_sum_reference(
    packed_inputs: Sequence[bytes],
    length: int,
    bits: int,
    seeds_to_remove: Sequence[tuple[bytes, int]],
) -> np.ndarray:
    """Readable version of :func:`unmask_sum` (same checks, numpy arithmetic)."""
    return unmask_sum(packed_inputs, length, bits, seeds_to_remove, backend="reference")


def warmup() -> None:
    """Compile / load the fused numba kernels (narrow and wide element paths)."""
    seed = bytes(32)
    for bits in (30, 40):
        q = np.zeros(10, dtype=np.uint64)
        y = mask_and_pack(q, seed, [(seed, -1)], bits, backend="numba")
        unmask_sum([y], 10, bits, [(seed, 1)], backend="numba")

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
    CALL_WORDS,
    CHUNK_WORDS,
    MAX_BLOCKS,
    _check_seed_list,
    _cupy,
    _init_state,
    add_masks_into,
    blocks_needed,
    check_bits,
    cupy_accumulate,
    empty_output,
    keystream_into,
    mask,
    resolve_backend,
    run_parallel,
)
from secagg.quantize import (
    MaskingConfig,
    _host_array,
    _is_torch,
    _quantize_one,
    quantize,
    rounding_key,
)

__all__ = [
    "mask_and_pack",
    "quantize_mask_and_pack",
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


@njit(cache=True, inline="always")
def _load_chunk(q, start, m, buf, himask):
    """buf[:m] = q[start : start+m] (truncated to buf's dtype); returns the OR of
    (value & himask), nonzero iff some value is >= 2^bits."""
    acc = np.uint64(0)
    for i in range(m):
        v = q[start + i]
        acc |= v & himask
        buf[i] = v
    return acc


@njit(cache=True, parallel=True)
def _mask_and_pack_kernel(q, inits, negates, wide, modmask, bits, out_words, bad):
    """Per chunk: buf = q chunk; buf +/-= every mask; pack buf & modmask into out_words.
    bad[ch] != 0 iff the chunk holds a value >= 2^bits. Narrow (bits <= 32) chunks are
    accumulated in uint32, wide ones in uint64 (2^bits divides either)."""
    n = q.shape[0]
    per = CHUNK_WORDS // 2 if wide else CHUNK_WORDS
    himask = ~modmask
    nchunks = (n + per - 1) // per
    for ch in prange(nchunks):
        start = ch * per
        m = min(n - start, per)
        block0 = start * (2 if wide else 1) // BLOCK_WORDS
        woff = (start * bits) // 64
        if wide:
            buf64 = np.empty(per, np.uint64)
            bad[ch] = _load_chunk(q, start, m, buf64, himask)
            add_masks_into(buf64, m, inits, negates, block0)
            pack_into(buf64, m, bits, modmask, out_words, woff)
        else:
            buf32 = np.empty(per, np.uint32)
            bad[ch] = _load_chunk(q, start, m, buf32, himask | np.uint64(0xFFFFFFFF00000000))
            add_masks_into(buf32, m, inits, negates, block0)
            pack_into(buf32, m, bits, modmask, out_words, woff)


@njit(cache=True, inline="always")
def _quantize_chunk(x, start, m, d, kw, qinit, clip, levels, weight, buf):
    """buf[:m] = quantized coordinates start .. start+m-1 of the (d+1)-vector (the last
    one is the weight); returns 1 if a NaN was met."""
    nq = min(m, d - start)
    if nq > 0:
        keystream_into(kw, 0, qinit, start // BLOCK_WORDS, (nq + CALL_WORDS - 1) // CALL_WORDS)
    two_clip = 2.0 * clip
    lev = np.float64(levels)
    nan = 0
    for i in range(nq):
        xi = x[start + i]
        if xi != xi:
            nan = 1
        buf[i] = _quantize_one(xi, kw[i], clip, two_clip, lev, weight)
    if start + m == d + 1:
        buf[m - 1] = weight
    return nan


@njit(cache=True, parallel=True)
def _client_kernel(
    x, qinit, clip, levels, weight, inits, negates, wide, modmask, bits, out_words, nan_flags
):
    """Fused quantize + masks + pack of the (d+1)-vector, chunk by chunk."""
    d = x.shape[0]
    n = d + 1
    per = CHUNK_WORDS // 2 if wide else CHUNK_WORDS
    nchunks = (n + per - 1) // per
    for ch in prange(nchunks):
        start = ch * per
        m = min(n - start, per)
        block0 = start * (2 if wide else 1) // BLOCK_WORDS
        woff = (start * bits) // 64
        kw = np.empty(per, np.uint32)
        if wide:
            buf64 = np.empty(per, np.uint64)
            nan_flags[ch] = _quantize_chunk(x, start, m, d, kw, qinit, clip, levels, weight, buf64)
            add_masks_into(buf64, m, inits, negates, block0)
            pack_into(buf64, m, bits, modmask, out_words, woff)
        else:
            buf32 = np.empty(per, np.uint32)
            nan_flags[ch] = _quantize_chunk(x, start, m, d, kw, qinit, clip, levels, weight, buf32)
            add_masks_into(buf32, m, inits, negates, block0)
            pack_into(buf32, m, bits, modmask, out_words, woff)


@njit(cache=True, parallel=True)
def _unmask_sum_kernel(mains, nfull, tails, n, bits, inits, negates, wide, modmask, out):
    """Per chunk: sum of the unpacked streams, then +/- every mask, reduced into out."""
    per = CHUNK_WORDS // 2 if wide else CHUNK_WORDS
    nchunks = (n + per - 1) // per
    for ch in prange(nchunks):
        start = ch * per
        m = min(n - start, per)
        block0 = start * (2 if wide else 1) // BLOCK_WORDS
        if wide:
            buf64 = np.zeros(per, np.uint64)
            for s in range(len(mains)):
                unpack_add_into(buf64, m, start, mains[s], nfull, tails[s], bits, modmask, True)
            add_masks_into(buf64, m, inits, negates, block0)
            for i in range(m):
                out[start + i] = buf64[i] & modmask
        else:
            buf32 = np.zeros(per, np.uint32)
            for s in range(len(mains)):
                unpack_add_into(buf32, m, start, mains[s], nfull, tails[s], bits, modmask, True)
            add_masks_into(buf32, m, inits, negates, block0)
            for i in range(m):
                out[start + i] = np.uint64(buf32[i]) & modmask


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
    out = empty_output(-(-n * bits // 64), np.uint64)
    bad = np.zeros(max(1, -(-n // per)), dtype=np.uint64)
    if n:
        run_parallel(
            _mask_and_pack_kernel,
            n * (2 if wide else 1) * inits.shape[0],
            q,
            inits,
            negates,
            wide,
            np.uint64(modmask),
            bits,
            out,
            bad,
        )
    if bad.any():
        _check_range(q, bits, "quantized")
    return out.view(np.uint8)[: packed_size(n, bits)].tobytes()


def quantize_mask_and_pack(
    x: object,
    config: MaskingConfig,
    weight: int,
    rng: object,
    self_seed: bytes,
    pair_seeds: Sequence[tuple[bytes, int]],
    backend: str | None = None,
) -> bytes:
    """The whole client op in one pass:
    ``mask_and_pack(quantize(x, config, weight, rng), self_seed, pair_seeds, config.bits)``
    with identical output bytes (same rounding key drawn from ``rng``), but the numba
    backend quantizes, masks and packs each cache-sized chunk before the next, so the
    (d+1)-element quantized vector is never materialised. Other backends (and CUDA
    tensors / cupy arrays) run the two steps."""
    if not isinstance(config, MaskingConfig):
        raise TypeError(f"config: expected MaskingConfig, got {type(config).__name__}")
    cp = _cupy()
    device_input = (_is_torch(x) and x.is_cuda) or (cp is not None and isinstance(x, cp.ndarray))
    chosen = resolve_backend(backend)
    if chosen != "numba" or device_input:
        q = quantize(x, config, weight, rng, backend=backend)
        return mask_and_pack(q, self_seed, pair_seeds, config.bits, backend=backend)
    weight = config.check_weight(weight)
    bits = config.bits
    self_init, self_neg = _check_seed_list([self_seed], [1], "self_seed")
    pair_inits, pair_neg = _seed_pairs(pair_seeds, "pair_seeds")
    inits = np.concatenate([self_init, pair_inits])
    negates = np.concatenate([self_neg, pair_neg])
    qinit = _init_state(rounding_key(rng))
    if _is_torch(x):
        t = x.detach()
        x = (t if t.dtype in _torch_float_types() else t.double()).contiguous().numpy()
    xs = _host_array(x)
    n = xs.shape[0] + 1
    _check_blocks(n, bits)
    wide = bits > 32
    per = CHUNK_WORDS // 2 if wide else CHUNK_WORDS
    out = empty_output(-(-n * bits // 64), np.uint64)
    nan_flags = np.zeros(-(-n // per), dtype=np.uint8)
    run_parallel(
        _client_kernel,
        n * (2 if wide else 1) * (inits.shape[0] + 1),
        xs,
        qinit,
        float(config.clip),
        np.uint64(config.levels),
        np.uint64(weight),
        inits,
        negates,
        wide,
        np.uint64(_modmask(bits)),
        bits,
        out,
        nan_flags,
    )
    if nan_flags.any():
        raise InvalidParameters(f"x: NaN at index {int(np.flatnonzero(np.isnan(xs))[0])}")
    return out.view(np.uint8)[: packed_size(n, bits)].tobytes()


def _torch_float_types():
    import torch  # noqa: PLC0415

    return (torch.float32, torch.float64)


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
    out = empty_output(length, np.uint64)
    if length:
        mains, nfull, tails = stream_views(datas)
        run_parallel(
            _unmask_sum_kernel,
            length * (len(datas) + (2 if bits > 32 else 1) * inits.shape[0]),
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
    rng = np.random.default_rng(0)
    for bits in (30, 40):
        q = np.zeros(10, dtype=np.uint64)
        y = mask_and_pack(q, seed, [(seed, -1)], bits, backend="numba")
        unmask_sum([y], 10, bits, [(seed, 1)], backend="numba")
        cfg = MaskingConfig(bits, 8, 1.0, 1, 1)
        for dtype in (np.float32, np.float64):
            quantize_mask_and_pack(np.zeros(9, dtype), cfg, 1, rng, seed, [], backend="numba")

"""Weighted stochastic quantization into Z_{2^bits} (SPEC.md "Quantization").

Client side, for a real vector x of d coordinates, clip c > 0, q quantization bits and an
integer weight w in [1, W]:

1. clip:   x_k <- min(max(x_k, -c), c)
2. scale:  u_k = (x_k + c) / (2c) * (2^q - 1)              (so 0 <= u_k <= 2^q - 1)
3. round:  v_k = floor(u_k) + B_k,  B_k ~ Bernoulli(u_k - floor(u_k))   (unbiased)
4. weight: Q_k = w * v_k   for k < d,  and  Q_d = w  (the weight is the LAST coordinate)

Q is a uint64 vector of d + 1 entries. The rounding bits come from the caller's
generator: a 32-byte key is drawn from it (``Generator.bytes(32)`` for numpy,
``torch.randint(0, 256, (32,), dtype=uint8, generator=g)`` for torch) and B_k =
[r_k < frac(u_k) * 2^32], r_k = the k-th uint32 of ChaCha20(key, nonce 0, counter 0)
(the mask PRG layout of secagg.prg). P(B_k = 1) = ceil(frac*2^32)/2^32, so the rounding
bias is below 2^-32 of a quantization step.

Server side, from the sum S (mod 2^bits, already reduced) of the clients' Q vectors, with
total weight W_sum = S[d] = sum_i w_i, the weighted mean is

    xbar_k = S[k] / W_sum * (2c / (2^q - 1)) - c.

Error bound: every v_k differs from u_k by less than 1 (one quantization step), so the
weighted mean of the clipped vectors is recovered with absolute error per coordinate

    |xbar_k - sum_i w_i clip(x_i)_k / W_sum| < 2c / (2^q - 1) = quantization_error_bound(c, q),

deterministically, provided no sum overflowed, which MaskingConfig guarantees:
n * W * (2^q - 1) < 2^bits and n * W < 2^bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from secagg.errors import ConfigError, InvalidParameters
from secagg.prg import (
    CALL_WORDS,
    CHUNK_WORDS,
    _cp_fill,
    _cupy,
    _init_state,
    empty_output,
    keystream_into,
    mask,
    resolve_backend,
    run_parallel,
)

__all__ = [
    "MAX_QUANT_BITS",
    "MaskingConfig",
    "bits_needed",
    "quantization_error_bound",
    "rounding_key",
    "quantize",
    "quantize_reference",
    "dequantize_sum",
]

MAX_QUANT_BITS = 52  # u_k and floor(u_k) stay exact in float64


def bits_needed(n_clients: int, max_weight: int, quant_bits: int) -> int:
    """ceil(log2(n*W*(2^q - 1) + 1)): the smallest modulus bit width with no overflow."""
    return (int(n_clients) * int(max_weight) * ((1 << int(quant_bits)) - 1)).bit_length()


def quantization_error_bound(clip: float, quant_bits: int) -> float:
    """Per-coordinate bound on |dequantized weighted mean - weighted mean of the clipped
    inputs|: one quantization step, 2c / (2^q - 1) (stochastic rounding moves every
    coordinate by less than one step, and a weighted mean of such errors is also < 1 step)."""
    return 2.0 * float(clip) / float((1 << int(quant_bits)) - 1)


def _int_field(value: object, field: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{field}: expected an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ConfigError(f"{field}: must be {rng}, got {value}")
    return value


@dataclass(frozen=True)
class MaskingConfig:
    """Masking / quantization parameters of a round.

    bits (b): modulus 2^b of the masked vectors, 1..64.
    quant_bits (q): quantization levels 2^q, 1..52.
    clip (c): clipping range [-c, c], finite and > 0.
    max_weight (W): largest integer client weight, >= 1.
    n_clients (n): most clients whose vectors are summed, >= 1.

    Validated on construction: raises ConfigError (a ValueError) naming the field and
    the numbers, in particular unless n*W*(2^q - 1) < 2^b and n*W < 2^b."""

    bits: int
    quant_bits: int
    clip: float
    max_weight: int
    n_clients: int

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ConfigError if any field is out of range or the sum could overflow."""
        b = _int_field(self.bits, "bits", 1, 64)
        q = _int_field(self.quant_bits, "quant_bits", 1, MAX_QUANT_BITS)
        w = _int_field(self.max_weight, "max_weight", 1)
        n = _int_field(self.n_clients, "n_clients", 1)
        if isinstance(self.clip, bool) or not isinstance(
            self.clip, (int, float, np.floating, np.integer)
        ):
            raise ConfigError(f"clip: expected a float, got {type(self.clip).__name__}")
        if not (math.isfinite(float(self.clip)) and float(self.clip) > 0):
            raise ConfigError(f"clip: must be finite and > 0, got {self.clip!r}")
        top = n * w * ((1 << q) - 1)
        if top >= 1 << b:
            raise ConfigError(
                f"overflow: n_clients*max_weight*(2^quant_bits-1) = {n}*{w}*{(1 << q) - 1} "
                f"= {top} >= 2^bits = 2^{b} = {1 << b}; need bits >= {top.bit_length()} "
                f"(n_clients={n}, max_weight={w}, quant_bits={q}, bits={b})"
            )
        if n * w >= 1 << b:
            raise ConfigError(
                f"overflow: weight coordinate n_clients*max_weight = {n}*{w} = {n * w} "
                f">= 2^bits = {1 << b} (bits={b})"
            )

    def bits_needed(self) -> int:
        """ceil(log2(n*W*(2^q - 1) + 1)), the minimal bits for these n, W, q."""
        return bits_needed(self.n_clients, self.max_weight, self.quant_bits)

    @classmethod
    def minimal(
        cls, quant_bits: int, clip: float, max_weight: int, n_clients: int
    ) -> MaskingConfig:
        """The config with the smallest modulus that cannot overflow."""
        b = bits_needed(n_clients, max_weight, quant_bits)
        if b > 64:
            raise ConfigError(
                f"overflow: n_clients*max_weight*(2^quant_bits-1) needs {b} bits > 64 "
                f"(n_clients={n_clients}, max_weight={max_weight}, quant_bits={quant_bits})"
            )
        return cls(max(b, 1), quant_bits, clip, max_weight, n_clients)

    @property
    def levels(self) -> int:
        """2^q - 1, the largest unweighted quantized value."""
        return (1 << self.quant_bits) - 1

    @property
    def step(self) -> float:
        """One quantization step, 2c / (2^q - 1)."""
        return quantization_error_bound(self.clip, self.quant_bits)

    def check_weight(self, weight: object) -> int:
        if isinstance(weight, bool) or not isinstance(weight, (int, np.integer)):
            raise TypeError(f"weight: expected an int, got {type(weight).__name__}")
        weight = int(weight)
        if not 1 <= weight <= self.max_weight:
            raise InvalidParameters(
                f"weight: must be in [1, max_weight={self.max_weight}], got {weight}"
            )
        return weight


# ---------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------

_TWO32 = 4294967296.0


@njit(cache=True, inline="always")
def _quantize_one(x, r, clip, two_clip, levels, weight):
    xi = np.float64(x)
    if xi < -clip:
        xi = -clip
    elif xi > clip:
        xi = clip
    u = (xi + clip) / two_clip * levels
    fl = np.floor(u)
    v = np.uint64(fl)
    if np.float64(r) < (u - fl) * _TWO32:
        v += np.uint64(1)
    return v * weight


@njit(cache=True, parallel=True)
def _quantize_kernel(x, out, init, clip, levels, weight, nan_flags):
    """out[:d] = weight * stochastic_round(scale(clip(x))), out[d] = weight; rounding
    word k = keystream word k of ``init``; nan_flags[ch] = 1 if chunk ch had a NaN."""
    d = x.shape[0]
    two_clip = 2.0 * clip
    lev = np.float64(levels)
    nchunks = (d + CHUNK_WORDS - 1) // CHUNK_WORDS
    for ch in prange(nchunks):
        kw = np.empty(CHUNK_WORDS, np.uint32)
        start = ch * CHUNK_WORDS
        m = min(d - start, CHUNK_WORDS)
        keystream_into(kw, 0, init, start // 16, (m + CALL_WORDS - 1) // CALL_WORDS)
        bad = 0
        for i in range(m):
            xi = x[start + i]
            if xi != xi:
                bad = 1
            out[start + i] = _quantize_one(xi, kw[i], clip, two_clip, lev, weight)
        nan_flags[ch] = bad
    out[d] = weight


_CUDA_QUANTIZE = r"""
double xi = (double)x;
if (xi < -clip) xi = -clip; else if (xi > clip) xi = clip;
double u = (xi + clip) / (2.0 * clip) * levels;
double fl = floor(u);
unsigned long long v = (unsigned long long)fl;
if ((double)r < (u - fl) * 4294967296.0) v += 1ULL;
q = v * weight;
"""


def _cupy_quantize(x_dev, init: np.ndarray, clip: float, levels: int, weight: int):
    cp = _cupy()
    kern = _cupy_quantize_kernel()
    d = int(x_dev.shape[0])
    out = cp.empty(d + 1, dtype=cp.uint64)
    if bool(cp.isnan(x_dev).any()):
        raise InvalidParameters("x: contains NaN")
    r = _cp_fill(d, init, 0, 0xFFFFFFFF, 0xFFFFFFFF)
    kern(x_dev, r, np.float64(clip), np.float64(levels), np.uint64(weight), out[:d])
    out[d] = weight
    return out


_CUPY_QKERNEL = None


def _cupy_quantize_kernel():
    global _CUPY_QKERNEL
    if _CUPY_QKERNEL is None:
        _CUPY_QKERNEL = _cupy().ElementwiseKernel(
            "T x, uint32 r, float64 clip, float64 levels, uint64 weight",
            "uint64 q",
            _CUDA_QUANTIZE,
            "secagg_quantize",
        )
    return _CUPY_QKERNEL


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------


def _is_torch(x: object) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch") and type(x).__name__ == "Tensor"


def rounding_key(rng: object) -> bytes:
    """Draw the 32-byte rounding key from a numpy Generator or a torch.Generator."""
    if isinstance(rng, np.random.Generator):
        return rng.bytes(32)
    if type(rng).__module__.startswith("torch") and type(rng).__name__ == "Generator":
        import torch  # noqa: PLC0415

        key = torch.randint(0, 256, (32,), dtype=torch.uint8, generator=rng, device=rng.device)
        return bytes(key.cpu().numpy().tobytes())
    raise TypeError(
        f"rng: expected numpy.random.Generator or torch.Generator, got {type(rng).__name__}"
    )


def _host_array(x: object) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"x: expected a real-valued array, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return np.ascontiguousarray(arr.reshape(-1))


def quantize_reference(x: object, config: MaskingConfig, weight: int, key: bytes) -> np.ndarray:
    """Readable numpy version of :func:`quantize` with an explicit rounding key
    (bit-identical to the numba kernel)."""
    xs = _host_array(x).astype(np.float64)
    if np.isnan(xs).any():
        raise InvalidParameters(f"x: NaN at index {int(np.flatnonzero(np.isnan(xs))[0])}")
    weight = config.check_weight(weight)
    c = float(config.clip)
    r = mask(key, xs.shape[0], 32, backend="reference").astype(np.float64)
    u = (np.clip(xs, -c, c) + c) / (2.0 * c) * float(config.levels)
    fl = np.floor(u)
    v = fl.astype(np.uint64) + (r < (u - fl) * _TWO32).astype(np.uint64)
    return np.append(v * np.uint64(weight), np.uint64(weight))


def quantize(
    x: object,
    config: MaskingConfig,
    weight: int,
    rng: object,
    *,
    backend: str | None = None,
):
    """Quantize a real vector (see module docstring) to d + 1 uint64 values < 2^bits.

    x: numpy array-like or torch tensor of any shape (flattened in C order); NaN is
    refused, +-inf is clipped. weight: int in [1, config.max_weight]. rng: numpy
    Generator (torch.Generator for torch input) supplying the rounding randomness.

    Returns a numpy uint64 array; for a CUDA torch tensor with cupy present, a cupy
    uint64 array on the same device (the tensor goes to cupy through DLPack, no host
    copy). Without cupy a CUDA tensor is copied to the host. backend: "numba"
    (default on CPU), "reference", or "cupy"."""
    if not isinstance(config, MaskingConfig):
        raise TypeError(f"config: expected MaskingConfig, got {type(config).__name__}")
    weight = config.check_weight(weight)
    key = rounding_key(rng)
    cp = _cupy()
    if _is_torch(x):
        t = x.detach()
        if t.dtype not in _torch_float_types():
            t = t.double()
        if t.is_cuda and cp is not None and backend in (None, "cupy"):
            x_dev = cp.from_dlpack(t.contiguous().reshape(-1))
            return _cupy_quantize(x_dev, _init_state(key), config.clip, config.levels, weight)
        x = t.cpu().contiguous().numpy()
    if cp is not None and isinstance(x, cp.ndarray):
        if backend in (None, "cupy"):
            x_dev = cp.ascontiguousarray(x.reshape(-1))
            if x_dev.dtype not in (cp.float32, cp.float64):
                x_dev = x_dev.astype(cp.float64)
            return _cupy_quantize(x_dev, _init_state(key), config.clip, config.levels, weight)
        x = x.get()
    backend = resolve_backend(backend)
    if backend == "reference":
        return quantize_reference(x, config, weight, key)
    xs = _host_array(x)
    if backend == "cupy":
        out = _cupy_quantize(cp.asarray(xs), _init_state(key), config.clip, config.levels, weight)
        return out.get()
    d = xs.shape[0]
    out = empty_output(d + 1, np.uint64)
    nan_flags = np.zeros(max(1, -(-d // CHUNK_WORDS)), dtype=np.uint8)
    run_parallel(
        _quantize_kernel,
        2 * d,
        xs,
        out,
        _init_state(key),
        float(config.clip),
        np.uint64(config.levels),
        np.uint64(weight),
        nan_flags,
    )
    if nan_flags.any():
        raise InvalidParameters(f"x: NaN at index {int(np.flatnonzero(np.isnan(xs))[0])}")
    return out


def _torch_float_types():
    import torch  # noqa: PLC0415

    return (torch.float32, torch.float64)


def dequantize_sum(summed: object, clip: float, quant_bits: int) -> np.ndarray:
    """The weighted mean from an aggregated sum S (d + 1 integers, the last one the
    total weight): xbar = S[:d] / S[d] * (2c / (2^q - 1)) - c, as float64.

    Error versus the weighted mean of the clipped inputs: < quantization_error_bound(c, q)
    per coordinate, if the config ruled out overflow. Raises InvalidParameters for a
    sum of fewer than 2 entries or a total weight of 0."""
    cp = _cupy()
    if cp is not None and isinstance(summed, cp.ndarray):
        summed = summed.get()
    s = np.asarray(summed)
    if s.ndim != 1 or s.shape[0] < 2:
        raise InvalidParameters(f"summed: expected a 1-D array of d+1 >= 2 entries, got {s.shape}")
    if s.dtype.kind not in "ui":
        raise TypeError(f"summed: expected integers, got dtype {s.dtype}")
    q = int(quant_bits)
    if not 1 <= q <= MAX_QUANT_BITS:
        raise InvalidParameters(f"quant_bits: must be in [1, {MAX_QUANT_BITS}], got {q}")
    c = float(clip)
    if not (math.isfinite(c) and c > 0):
        raise InvalidParameters(f"clip: must be finite and > 0, got {clip!r}")
    total = int(s[-1])
    if total <= 0:
        raise InvalidParameters(f"summed[-1]: total weight must be > 0, got {total}")
    step = 2.0 * c / float((1 << q) - 1)
    return s[:-1].astype(np.float64) / float(total) * step - c

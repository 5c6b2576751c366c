"""Quantization (secagg.quantize): config checks, bounds, unbiasedness, dequantization."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from secagg import prg
from secagg.errors import ConfigError, InvalidParameters
from secagg.quantize import (
    MaskingConfig,
    bits_needed,
    dequantize_sum,
    quantization_error_bound,
    quantize,
)

HAS_CUPY = "cupy" in prg.available_backends()
CPU_BACKENDS = [b for b in ("reference", "numba") if b in prg.available_backends()]


# --------------------------------------------------------------------------- config


def test_config_overflow_refused_with_numbers():
    # 4 * 8 * 255 = 8160 needs 13 bits
    assert bits_needed(4, 8, 8) == 13 == math.ceil(math.log2(4 * 8 * 255 + 1))
    MaskingConfig(bits=13, quant_bits=8, clip=1.0, max_weight=8, n_clients=4)
    with pytest.raises(ConfigError) as exc:
        MaskingConfig(bits=12, quant_bits=8, clip=1.0, max_weight=8, n_clients=4)
    msg = str(exc.value)
    for part in (
        "n_clients=4",
        "max_weight=8",
        "quant_bits=8",
        "bits=12",
        "8160",
        "4096",
        "need bits >= 13",
    ):
        assert part in msg, (part, msg)
    assert isinstance(exc.value, ValueError)


def test_config_weight_coordinate_check():
    # q = 1: n*W*(2^q-1) = n*W, so the two conditions coincide at the boundary
    MaskingConfig(bits=4, quant_bits=1, clip=1.0, max_weight=3, n_clients=5)  # 15 < 16
    with pytest.raises(ConfigError, match="n_clients\\*max_weight"):
        MaskingConfig(bits=4, quant_bits=1, clip=1.0, max_weight=4, n_clients=4)  # 16


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("bits", 0, "bits: must be \\[1, 64\\], got 0"),
        ("bits", 65, "bits: must be \\[1, 64\\], got 65"),
        ("quant_bits", 0, "quant_bits: must be \\[1, 52\\], got 0"),
        ("quant_bits", 53, "quant_bits: must be \\[1, 52\\], got 53"),
        ("max_weight", 0, "max_weight: must be >= 1, got 0"),
        ("n_clients", 0, "n_clients: must be >= 1, got 0"),
        ("clip", 0.0, "clip: must be finite and > 0"),
        ("clip", float("inf"), "clip: must be finite and > 0"),
        ("clip", float("nan"), "clip: must be finite and > 0"),
        ("bits", 32.0, "bits: expected an int"),
    ],
)
def test_config_field_errors(field, value, match):
    kwargs = dict(bits=64, quant_bits=8, clip=1.0, max_weight=10, n_clients=10)
    kwargs[field] = value
    with pytest.raises(ConfigError, match=match):
        MaskingConfig(**kwargs)


def test_config_minimal_and_bits_needed():
    cfg = MaskingConfig.minimal(quant_bits=16, clip=0.5, max_weight=1024, n_clients=11)
    assert cfg.bits == cfg.bits_needed() == (11 * 1024 * 65535).bit_length() == 30
    assert cfg.bits <= math.ceil(16 + math.log2(11 * 1024))
    assert cfg.levels == 65535
    assert cfg.step == quantization_error_bound(0.5, 16) == 1.0 / 65535
    with pytest.raises(ConfigError, match="needs 72 bits > 64"):
        MaskingConfig.minimal(quant_bits=52, clip=1.0, max_weight=2**10, n_clients=2**10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.bits = 40  # type: ignore[misc]


# --------------------------------------------------------------------------- quantize


CFG = MaskingConfig(bits=40, quant_bits=12, clip=2.0, max_weight=50, n_clients=100)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bounds_clipping_and_weight_coordinate(backend):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(scale=3.0, size=5000), [np.inf, -np.inf, 2.0, -2.0, 0.0]])
    q = quantize(x, CFG, 7, np.random.default_rng(1), backend=backend)
    assert q.dtype == np.uint64 and q.shape == (x.size + 1,)
    assert q[-1] == 7
    assert int(q[:-1].max()) <= 7 * CFG.levels
    assert np.all(q[:-1] % 7 == 0)
    # clipped extremes land exactly on the end points, deterministically
    assert q[5000] == q[5002] == 7 * CFG.levels
    assert q[5001] == q[5003] == 0
    big = x[:5000] > 2.0
    assert np.all(q[:5000][big] == 7 * CFG.levels)
    assert np.all(q[:5000][x[:5000] < -2.0] == 0)
    # every other coordinate is floor(u) or floor(u) + 1
    u = (np.clip(x[:5000], -2, 2) + 2) / 4 * CFG.levels
    v = q[:5000] // 7
    assert np.all((v == np.floor(u)) | (v == np.floor(u) + 1))


def test_numba_matches_reference_bitwise():
    rng = np.random.default_rng(2)
    for d in (0, 1, 2047, 2048, 2049, 50_001):
        x = rng.uniform(-3, 3, size=d).astype(np.float32 if d % 2 else np.float64)
        a = quantize(x, CFG, 13, np.random.default_rng(d), backend="numba")
        b = quantize(x, CFG, 13, np.random.default_rng(d), backend="reference")
        np.testing.assert_array_equal(a, b)


def test_unbiased_stochastic_rounding():
    """Mean of N independent roundings of a fixed off-grid value is u within 5 sigma.

    v = floor(u) + Bernoulli(f); the mean of N draws has standard deviation
    sqrt(f (1 - f) / N). A biased rounding (e.g. round-to-nearest, or a 16-bit random
    threshold off by 1e-3) fails this: the tolerance at N = 400000, f ~ 0.3 is ~3.6e-3."""
    cfg = MaskingConfig(bits=32, quant_bits=4, clip=1.0, max_weight=1, n_clients=1)
    n = 400_000
    for k, x0 in enumerate((0.123456, -0.77, 0.999)):
        u = (x0 + 1.0) / 2.0 * cfg.levels
        f = u - math.floor(u)
        q = quantize(np.full(n, x0), cfg, 1, np.random.default_rng(100 + k))
        mean = q[:-1].astype(np.float64).mean()
        sigma = math.sqrt(f * (1 - f) / n)
        assert abs(mean - u) <= 5 * sigma, (x0, mean, u, sigma)
    # on-grid values are exact
    q = quantize(np.full(1000, 1.0 / 15.0 * 2 - 1.0), cfg, 1, np.random.default_rng(0))
    assert set(np.unique(q[:-1]).tolist()) <= {1, 2}


def test_dequantized_weighted_mean_within_bound():
    rng = np.random.default_rng(5)
    d, n = 3000, 9
    cfg = MaskingConfig.minimal(quant_bits=10, clip=1.5, max_weight=40, n_clients=n)
    xs = [rng.normal(scale=1.0, size=d) for _ in range(n)]
    ws = [int(w) for w in rng.integers(1, 41, size=n)]
    total = np.zeros(d + 1, dtype=np.uint64)
    for i, (x, w) in enumerate(zip(xs, ws, strict=True)):
        total = (total + quantize(x, cfg, w, np.random.default_rng(i))) % np.uint64(2**cfg.bits)
    assert int(total[-1]) == sum(ws)
    mean = dequantize_sum(total, cfg.clip, cfg.quant_bits)
    want = sum(w * np.clip(x, -1.5, 1.5) for x, w in zip(xs, ws, strict=True)) / sum(ws)
    err = np.abs(mean - want)
    bound = quantization_error_bound(cfg.clip, cfg.quant_bits)
    assert bound == 3.0 / 1023
    assert err.max() < bound
    # the error is a mean of independent roundings: typically far below the bound
    assert err.mean() < bound / 2


def test_dequantize_single_client_exact_grid():
    cfg = MaskingConfig(bits=20, quant_bits=8, clip=1.0, max_weight=4, n_clients=1)
    grid = -1.0 + np.arange(256) * cfg.step
    q = quantize(grid, cfg, 4, np.random.default_rng(0))
    np.testing.assert_allclose(dequantize_sum(q, 1.0, 8), grid, atol=1e-12)


def test_quantize_errors():
    rng = np.random.default_rng(0)
    x = np.zeros(10)
    for w in (0, 51):
        with pytest.raises(
            InvalidParameters, match=f"weight: must be in \\[1, max_weight=50\\], got {w}"
        ):
            quantize(x, CFG, w, rng)
    with pytest.raises(TypeError, match="weight"):
        quantize(x, CFG, 1.5, rng)
    with pytest.raises(TypeError, match="rng"):
        quantize(x, CFG, 1, 42)
    bad = np.zeros(5000)
    bad[4321] = np.nan
    for backend in CPU_BACKENDS:
        with pytest.raises(InvalidParameters, match="x: NaN at index 4321"):
            quantize(bad, CFG, 1, rng, backend=backend)
    with pytest.raises(InvalidParameters, match="total weight must be > 0"):
        dequantize_sum(np.zeros(4, dtype=np.uint64), 1.0, 8)
    with pytest.raises(InvalidParameters, match="d\\+1 >= 2"):
        dequantize_sum(np.zeros(1, dtype=np.uint64), 1.0, 8)


def test_deterministic_given_generator_state():
    x = np.linspace(-1, 1, 777)
    a = quantize(x, CFG, 3, np.random.default_rng(42))
    b = quantize(x, CFG, 3, np.random.default_rng(42))
    c = quantize(x, CFG, 3, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_torch_cpu_input():
    torch = pytest.importorskip("torch")
    g1 = torch.Generator().manual_seed(7)
    g2 = torch.Generator().manual_seed(7)
    t = torch.linspace(-3, 3, 1001, dtype=torch.float32).reshape(7, 143)
    a = quantize(t, CFG, 5, g1)
    b = quantize(t.numpy().reshape(-1), CFG, 5, np.random.default_rng(0))
    assert a.shape == b.shape == (1002,)
    assert np.all(np.abs(a.astype(np.int64) - b.astype(np.int64)) <= 5)  # same up to rounding
    np.testing.assert_array_equal(a, quantize(t, CFG, 5, g2))
    with pytest.raises(TypeError, match="rng"):
        quantize(t, CFG, 5, None)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUPY, reason="cupy / CUDA device not present")
def test_cuda_tensor_goes_through_dlpack():
    torch = pytest.importorskip("torch")
    import cupy as cp

    if not torch.cuda.is_available():
        pytest.skip("cupy / CUDA device not present (torch has no CUDA)")
    t = torch.linspace(-3, 3, 10_001, device="cuda", dtype=torch.float64)
    g = torch.Generator(device="cuda").manual_seed(3)
    out = quantize(t, CFG, 9, g)
    assert isinstance(out, cp.ndarray) and out.dtype == cp.uint64
    key_gen = torch.Generator(device="cuda").manual_seed(3)
    from secagg.quantize import quantize_reference, rounding_key

    want = quantize_reference(t.cpu().numpy(), CFG, 9, rounding_key(key_gen))
    np.testing.assert_array_equal(out.get(), want)


def test_cuda_quantize_snippet_logic_on_cpu(tmp_path):
    """The cupy ElementwiseKernel body, compiled as C++ and compared with the reference."""
    import ctypes
    import shutil
    import subprocess

    from secagg import quantize as qmod

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to emulate the CUDA source on the CPU")
    src = tmp_path / "q.cpp"
    src.write_text(
        "#include <math.h>\n"
        'extern "C" void quant(const double* xs, const unsigned int* rs, long n, double clip,\n'
        "                      double levels, unsigned long long weight,\n"
        "                      unsigned long long* out) {\n"
        "  for (long i = 0; i < n; ++i) {\n"
        "    double x = xs[i]; unsigned int r = rs[i]; unsigned long long q;\n"
        "    {" + qmod._CUDA_QUANTIZE + "}\n"
        "    out[i] = q;\n"
        "  }\n"
        "}\n"
    )
    lib_path = tmp_path / "q.so"
    subprocess.run([cxx, "-O1", "-shared", "-fPIC", "-o", str(lib_path), str(src)], check=True)
    lib = ctypes.CDLL(str(lib_path))
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.normal(scale=2.0, size=20_000), [np.inf, -np.inf, 2.0, -2.0]])
    key = rng.bytes(32)
    r = prg.mask(key, x.size, 32, backend="reference")
    out = np.zeros(x.size, dtype=np.uint64)
    lib.quant(
        x.ctypes.data_as(ctypes.c_void_p),
        r.ctypes.data_as(ctypes.c_void_p),
        ctypes.c_long(x.size),
        ctypes.c_double(CFG.clip),
        ctypes.c_double(CFG.levels),
        ctypes.c_ulonglong(9),
        out.ctypes.data_as(ctypes.c_void_p),
    )
    want = qmod.quantize_reference(x, CFG, 9, key)
    np.testing.assert_array_equal(out, want[:-1])

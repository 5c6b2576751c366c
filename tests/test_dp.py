"""Distributed DP (secagg/dp.py, SPEC.md §10): rotation, clipping, exact samplers against
their pmf, determinism, calibration through dp-accounting, overflow tail, end to end.

Chi-square tests use a fixed seed and reject at significance 1e-4 (each can fail: a
sampler off by a few percent on one bin fails them)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from secagg import dp
from secagg.errors import ConfigError, InvalidParameters

SEED = bytes(range(32))
ROT = bytes(range(32, 64))
ALPHA = 1e-4


def _seed(i: int) -> bytes:
    return i.to_bytes(4, "little") * 8


def _chi2_pvalue(samples: np.ndarray, pmf: dict[int, float]) -> float:
    """Pearson chi-square over the support points of expected count >= 5, the rest
    merged into one tail bin."""
    n = samples.shape[0]
    keys = sorted(k for k, p in pmf.items() if p * n >= 5)
    vals, counts = np.unique(samples, return_counts=True)
    got = dict(zip(vals.tolist(), counts.tolist(), strict=True))
    obs = [got.get(k, 0) for k in keys]
    exp = [pmf[k] * n for k in keys]
    rest_obs = n - sum(obs)
    rest_exp = n - sum(exp)
    if rest_exp >= 5:
        obs.append(rest_obs)
        exp.append(rest_exp)
    else:
        assert rest_obs <= max(5, 10 * rest_exp), (rest_obs, rest_exp)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(obs, exp, strict=True))
    return float(stats.chi2.sf(chi2, len(obs) - 1))


def _dg_pmf(sigma: float) -> dict[int, float]:
    k = int(40 * sigma) + 10
    xs = np.arange(-k, k + 1)
    w = np.exp(-(xs.astype(np.float64) ** 2) / (2 * sigma * sigma))
    w /= w.sum()
    return dict(zip(xs.tolist(), w.tolist(), strict=True))


# --- rotation and clipping ---------------------------------------------------------------


def test_fwht_matches_the_hadamard_matrix():
    from scipy.linalg import hadamard

    a = np.random.default_rng(1).normal(size=16)
    assert np.allclose(dp.fwht(a), hadamard(16) @ a)
    with pytest.raises(InvalidParameters, match="power of two"):
        dp.fwht(np.ones(12))


@pytest.mark.parametrize("dim", [1, 7, 64, 1000])
def test_rotation_round_trip_and_isometry(dim):
    x = np.random.default_rng(dim).normal(size=dim)
    y = dp.rotate(x, ROT)
    assert y.shape == (dp.padded_dim(dim),)
    assert np.linalg.norm(y) == pytest.approx(np.linalg.norm(x), rel=1e-12)
    assert np.allclose(dp.unrotate(y, ROT, dim), x, atol=1e-12)
    if dim > 1:  # a different seed is a different rotation
        assert not np.allclose(dp.rotate(x, SEED), y)


def test_clipping():
    x = np.array([3.0, 4.0])
    assert np.linalg.norm(dp.clip_l2(x, 1.0)) == pytest.approx(1.0, rel=1e-15)
    assert np.allclose(dp.clip_l2(x, 1.0), [0.6, 0.8])
    assert np.array_equal(dp.clip_l2(x, 10.0), x)


def test_conditional_rounding_respects_the_bound_and_is_nearly_unbiased():
    y = np.random.default_rng(2).uniform(-3, 3, size=4096)
    bound = dp.rounded_l2_bound(float(np.linalg.norm(y)), y.shape[0], dp.DEFAULT_BETA)
    vs = np.array([dp.conditional_round(y, bound, dp._Stream(_seed(i), b"t")) for i in range(60)])
    assert (np.einsum("ij,ij->i", vs, vs) <= bound * bound).all()
    assert (np.abs(vs - y) < 1).all()
    # bias of the conditioning: the mean rounding error is far below one step
    assert abs(float((vs - y).mean())) < 0.01


# --- samplers ----------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.7, 1.5, 4.0])
def test_discrete_gaussian_matches_its_pmf(sigma):
    x = dp.discrete_gaussian(100_000, sigma, SEED)
    pmf = _dg_pmf(sigma)
    assert _chi2_pvalue(x, pmf) > ALPHA
    var = sum(k * k * p for k, p in pmf.items())
    assert abs(x.mean()) < 5 * math.sqrt(var / x.shape[0])
    assert x.var() == pytest.approx(var, rel=0.02)


def test_discrete_gaussian_large_sigma_moments_and_tail():
    sigma = 1e4
    x = dp.discrete_gaussian(1 << 16, sigma, SEED)
    assert x.dtype == np.int64
    assert abs(x.mean()) < 5 * sigma / math.sqrt(x.shape[0])
    assert x.std() == pytest.approx(sigma, rel=0.02)
    # sub-Gaussian tail: P(|x| > 4.5 sigma) <= 2 exp(-4.5^2 / 2) ~ 8e-5 -> a handful at most
    assert int((np.abs(x) > 4.5 * sigma).sum()) <= 20


def test_exact_path_of_bernoulli_exp():
    """margin = 1 sends every element through the decimal path: frequency = exp(-g)."""
    s = dp._Stream(SEED, b"bern")
    g = Fraction(7, 10)
    out = dp.bernoulli_exp(s, np.full(4000, 0.7), lambda _k: g, margin=1.0)
    p = math.exp(-0.7)
    assert abs(out.mean() - p) < 4 * math.sqrt(p * (1 - p) / 4000)
    big = dp.bernoulli_exp(s, np.full(200, 800.0), lambda _k: Fraction(800), margin=1.0)
    assert not big.any()


def test_discrete_gaussian_through_the_exact_path_matches_its_pmf():
    x = dp.discrete_gaussian(3000, 1.5, SEED, margin=1.0)
    assert _chi2_pvalue(x, _dg_pmf(1.5)) > ALPHA


def test_skellam_matches_its_pmf_and_sums_to_skellam():
    mu = 3.0
    x = dp.skellam(100_000, mu, SEED)
    ks = range(-60, 61)
    pmf = dict(zip(ks, stats.skellam.pmf(list(ks), mu, mu).tolist(), strict=True))
    assert _chi2_pvalue(x, pmf) > ALPHA
    assert x.var() == pytest.approx(2 * mu, rel=0.02)
    # the sum of n clients' Skellam(mu) noise is Skellam(n mu)
    n, m = 5, 2.0
    total = sum(dp.skellam(50_000, m, _seed(i)) for i in range(n))
    pmf_n = dict(zip(ks, stats.skellam.pmf(list(ks), n * m, n * m).tolist(), strict=True))
    assert _chi2_pvalue(total, pmf_n) > ALPHA


def test_samplers_are_deterministic_in_the_seed():
    a = dp.discrete_gaussian(5000, 2.5, SEED)
    assert np.array_equal(a, dp.discrete_gaussian(5000, 2.5, SEED))
    assert not np.array_equal(a, dp.discrete_gaussian(5000, 2.5, _seed(9)))
    b = dp.skellam(5000, 4.0, SEED)
    assert np.array_equal(b, dp.skellam(5000, 4.0, SEED))
    assert not np.array_equal(b, dp.skellam(5000, 4.0, _seed(9)))
    with pytest.raises(InvalidParameters, match="seed"):
        dp.skellam(10, 1.0, b"short")


# --- calibration and accounting ------------------------------------------------------------


def _cal(mech="ddg", eps=1.0, rounds=100, n=10, dim=1000):
    return dp.calibrate(eps, 1e-5, rounds, 1.0, n, 1.0, dim, mech)


@pytest.mark.parametrize("mech", ["ddg", "skellam"])
def test_calibration_hits_the_target_and_is_monotone(mech):
    base = _cal(mech)
    got = dp.accountant_epsilon(base)
    assert 0.99 <= got <= 1.0
    assert _cal(mech, n=100).noise < base.noise  # more clients: less noise each
    assert _cal(mech, rounds=400).noise > base.noise  # more rounds: more noise
    assert _cal(mech, eps=0.5).noise > base.noise  # smaller epsilon: more noise
    # what protects is the noise of the sum, about the same for any n
    assert _cal(mech, n=100).noise_stddev_sum() == pytest.approx(base.noise_stddev_sum(), rel=0.02)
    # the guarantee degrades with fewer clients than calibrated for
    fewer = dp.DpConfig(**{**base.__dict__, "min_clients": 5, "epsilon": 10.0})
    assert dp.accountant_epsilon(fewer) > got


def test_accountant_agrees_with_dp_accounting_gaussian_and_zcdp_conversion():
    from dp_accounting import GaussianDpEvent, SelfComposedDpEvent
    from dp_accounting.rdp import RdpAccountant

    cfg = dp.DpConfig("ddg", 2.0, 1e-5, 50, 1.0, 20, 1.0, 1000, 600.0, 128.0)
    # sigma >> 1: tau ~ 0, so the DDG sum is exactly the Gaussian of the same variance
    z = math.sqrt(cfg.min_clients) * cfg.noise / cfg.l2_bound
    acc = RdpAccountant(orders=list(dp.RDP_ORDERS))
    acc.compose(SelfComposedDpEvent(GaussianDpEvent(noise_multiplier=z), cfg.rounds))
    assert dp.accountant_epsilon(cfg) == pytest.approx(acc.get_epsilon(1e-5), rel=1e-9)
    # hand check: rho-zCDP over T rounds gives eps <= T rho + 2 sqrt(T rho ln(1/delta))
    rho = cfg.rounds / (2 * z * z)
    classic = rho + 2 * math.sqrt(rho * math.log(1e5))
    assert 0.8 * classic < dp.accountant_epsilon(cfg) <= classic


def test_small_sigma_pays_the_tau_term():
    """With per-client sigma near 1/2 the sum is not Gaussian and tau > 0 costs epsilon."""
    loose = dp.DpConfig("ddg", 1e9, 1e-5, 1, 1.0, 50, 1.0, 64, 0.5, 1.0)
    tight = dp.DpConfig("ddg", 1e9, 1e-5, 1, 1.0, 1, 1.0, 64, 0.5 * math.sqrt(50), 1.0)
    assert dp.accountant_epsilon(loose) > dp.accountant_epsilon(tight)


@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(1, 200),
    rounds=st.integers(1, 500),
    eps=st.floats(0.3, 16.0),
    mech=st.sampled_from(["ddg", "skellam"]),
)
def test_calibration_never_under_noises(n, rounds, eps, mech):
    cfg = dp.calibrate(eps, 1e-6, rounds, 1.0, n, 1.0, 5000, mech)
    assert dp.accountant_epsilon(cfg) <= eps
    # and every set of >= min_clients clients carries at least that noise
    assert cfg.noise_stddev_sum(n + 7) >= cfg.noise_stddev_sum()
    with pytest.raises(ConfigError, match="min_clients"):
        dp.check_included(cfg, n - 1)
    dp.check_included(cfg, n)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mechanism": "laplace"}, "mechanism"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"epsilon": True}, "epsilon"),
        ({"delta": 1.0}, "delta"),
        ({"rounds": 0}, "rounds"),
        ({"sampling_rate": 0.0}, "sampling_rate"),
        ({"min_clients": 0}, "min_clients"),
        ({"l2_clip": float("nan")}, "l2_clip"),
        ({"dim": 0}, "dim"),
        ({"scale": -2.0}, "scale"),
        ({"beta": 1.0}, "beta"),
        ({"tail_log2": -30}, "tail_log2"),
        ({"noise": 0.4}, "noise"),
        ({"noise": 1.0}, "noise"),  # too little noise for the promised epsilon
        ({"scale": 1e19}, "scale"),
    ],
)
def test_config_errors_name_the_field(change, field):
    good = _cal()
    with pytest.raises(ConfigError, match=field):
        dp.DpConfig(**{**good.__dict__, **change})


def test_calibrate_refusals_and_none():
    with pytest.raises(ConfigError, match="epsilon"):
        dp.calibrate(0.0, 1e-5, 10, 1.0, 10, 1.0, 100)
    with pytest.raises(ConfigError, match="mechanism"):
        dp.calibrate(1.0, 1e-5, 10, 1.0, 10, 1.0, 100, "gauss")
    with pytest.raises(ConfigError, match="min_clients"):
        dp.calibrate(1.0, 1e-5, 10, 1.0, 0, 1.0, 100)
    none = dp.calibrate(1.0, 1e-5, 10, 1.0, 10, 1.0, 100, "none")
    assert dp.dp_report(none)["epsilon"] == math.inf
    assert dp.dp_report(none)["noise_stddev_sum"] == 0.0
    with pytest.raises(ConfigError, match="epsilon"):
        dp.DpConfig(**{**none.__dict__, "epsilon": 1.0})


def test_dp_report_keys():
    rep = dp.dp_report(_cal())
    assert set(rep) == {"mechanism", "epsilon", "delta", "rounds", "noise_stddev_sum", "l2_clip"}
    assert rep["mechanism"] == "ddg" and rep["epsilon"] == 1.0 and rep["rounds"] == 100


# --- overflow ------------------------------------------------------------------------------


@pytest.mark.parametrize("mech", ["ddg", "skellam"])
def test_overflow_bound_covers_the_noise_tail(mech):
    cfg = _cal(mech, n=4, dim=4000)
    b4, b64 = dp.overflow_bits(cfg, 4), dp.overflow_bits(cfg, 64)
    assert b64 > b4
    tail = dp.noise_tail(cfg, 4)
    sd = math.sqrt(4 * cfg.noise_variance_client)
    # 2^-40 over d' coordinates: at least the Gaussian quantile, at most a few sigma more
    assert 7.0 * sd < tail < 12.0 * sd
    draw = dp.discrete_gaussian if mech == "ddg" else dp.skellam
    total = sum(draw(cfg.padded_dim * 4, cfg.noise, _seed(i)) for i in range(4))
    assert int(np.abs(total).max()) < tail
    assert 4 * math.floor(cfg.l2_bound) + tail < 2 ** (b4 - 1)


# --- end to end ----------------------------------------------------------------------------


@pytest.mark.parametrize("mech", ["ddg", "skellam", "none"])
def test_end_to_end_sum_mod_2b(mech):
    n, dim = 8, 3000
    cfg = dp.calibrate(8.0, 1e-5, 10, 1.0, n, 1.0, dim, mech)
    rng = np.random.default_rng(5)
    xs = [rng.normal(size=dim) * rng.uniform(0.01, 0.1) for _ in range(n)]
    xs[0] = xs[0] * 100  # one update over the clip
    bits = dp.overflow_bits(cfg, n)
    acc = np.zeros(cfg.padded_dim + 1, dtype=np.uint64)
    mod = np.uint64((1 << bits) - 1)
    for i, x in enumerate(xs):
        z = dp.privatize(x, cfg, _seed(100 + i), ROT)
        assert z.dtype == np.int64 and z.shape == (cfg.padded_dim,)
        q = np.append(dp.to_ring(z, bits), np.uint64(1))
        assert int(q.max()) < 1 << bits
        acc = (acc + q) & mod
    total = int(acc[-1])
    assert total == n
    mean = dp.postprocess(acc[:-1], cfg, ROT, total, bits=bits)
    truth = np.mean([dp.clip_l2(x, cfg.l2_clip) for x in xs], axis=0)
    err = mean - truth
    rounding = math.sqrt(n * 0.25) / cfg.scale / n  # rounding noise, per coordinate
    expected = math.hypot(cfg.noise_stddev_sum(n) / n, rounding)
    rms = float(np.sqrt(np.mean(err**2)))
    if mech == "none":
        assert rms < 1.2 * rounding
    else:
        assert rms == pytest.approx(expected, rel=0.1)
    # the same client seed gives the same vector
    z1 = dp.privatize(xs[1], cfg, _seed(101), ROT)
    assert np.array_equal(z1, dp.privatize(xs[1], cfg, _seed(101), ROT))


def test_ring_lift_round_trip_and_bad_inputs():
    z = np.array([-5, 0, 7, -(1 << 20), (1 << 20) - 1], dtype=np.int64)
    assert np.array_equal(dp.from_ring(dp.to_ring(z, 22), 22), z)
    assert np.array_equal(dp.from_ring(dp.to_ring(z, 64), 64), z)
    cfg = _cal(dim=10)
    with pytest.raises(InvalidParameters, match="coordinates"):
        dp.privatize(np.zeros(11), cfg, SEED, ROT)
    with pytest.raises(InvalidParameters, match="non-finite"):
        dp.privatize(np.full(10, np.nan), cfg, SEED, ROT)
    with pytest.raises(InvalidParameters, match="rotation_seed"):
        dp.privatize(np.zeros(10), cfg, SEED, b"x")
    with pytest.raises(InvalidParameters, match="total"):
        dp.postprocess(np.zeros(16, dtype=np.int64), cfg, ROT, 0)

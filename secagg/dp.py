"""Distributed differential privacy in the integer domain (SPEC.md §10).

Every client turns its real update x (d coordinates) into an integer vector z that
already carries its share of the noise; the masked sum of any set U of >= min_clients
such vectors is (epsilon, delta)-DP over ``rounds`` rounds, and nobody (server
included) ever sees a noiseless sum.

Client pipeline, :func:`privatize` (x, cfg, seed, rotation_seed) -> int64[d']
---------------------------------------------------------------------------------
1. clip:    x <- x * min(1, c / ||x||_2)                         (c = cfg.l2_clip)
2. rotate:  y = H D pad(x) / sqrt(d'),  d' = the next power of two >= d, D = diag of
            random signs from ``rotation_seed`` (the SAME for every client of a round),
            H the Walsh-Hadamard matrix (fast transform, O(d' log d')); an isometry.
3. scale:   y <- s * y                                            (s = cfg.scale)
4. round:   conditional randomised rounding (Kairouz-Liu-Steinke 2021): v = floor(y) +
            Bernoulli(frac(y)), redrawn until ||v||_2 <= cfg.l2_bound (the integer
            sensitivity, see :meth:`DpConfig.l2_bound`); the accepted v is slightly
            biased towards the origin (the paper's bias; below 1e-3 of a step per
            coordinate at the default scale, measured in tests/test_dp.py).
5. noise:   z = v + N, N_k iid: discrete Gaussian N_Z(0, sigma^2) ("ddg", exact sampler
            of Canonne-Kamath-Steinke 2020) or Skellam(mu, mu) = Poisson(mu) - Poisson(mu)
            ("skellam"); "none" adds nothing.

Randomness. Rounding bits and the discrete Gaussian come from ChaCha20 (the
``cryptography`` package, key = SHA-256("pvss-secagg/dp/v1/" label 0x00 seed), nonce 0),
a cryptographic stream: the noise is as unpredictable as the 32-byte seed. The discrete
Gaussian is sampled EXACTLY: every Bernoulli(exp(-g)) compares a 64-bit uniform with
exp(-g) through a float64 fast path that only decides when it is right by a margin of
2^-40 relative (far above float64's error), and otherwise extends the uniform by 64 bits
at a time and decides with ``decimal`` at a precision that makes the decision exact
(correctly rounded exp, rigorous error bound). Skellam uses numpy's Poisson sampler
(``Generator(Philox)``, key = first 16 bytes of SHA-256 of the seed): numpy's Poisson is
floating-point based (PTRS transformed rejection for mu >= 10); its outputs are integers,
so the low-order-bits leak of floating noise (Mironov 2012) cannot occur, and the only
error is a deviation of the pmf of order 2^-50 relative from float64 rounding in the
acceptance tests, which the accountant does not cover (use "ddg" where that matters).
Philox is counter-based with a 128-bit key, not a CSPRNG; its outputs never leave the
client unmasked. Both choices are deterministic in the seed.

Server side, :func:`postprocess` (sum, cfg, rotation_seed, total) -> float64[d]
------------------------------------------------------------------------------
x_mean = (D H (sum / s) / sqrt(d'))[:d] / total : the mean of the clipped updates plus
noise of standard deviation ``noise_stddev_sum / total`` per coordinate (the rotation is
orthonormal, so iid noise keeps its variance).

Integration with the masking engine (secagg.masking)
----------------------------------------------------
The masked vectors live in Z_{2^b}. A client sends ``Q = np.append(to_ring(z, b), 1)``
(d' + 1 uint64 values < 2^b; the last coordinate is the weight, fixed to 1: with DP the
average is unweighted, since a weight would scale the sensitivity). The aggregator gets
S = unmask_sum(...) (mod 2^b), total = int(S[-1]) (= |U|, public anyway), and
``postprocess(from_ring(S[:-1], b), cfg, rotation_seed, total)``. The modulus must be
``b >= overflow_bits(cfg, n_clients)``: then |sum_k| <= n * l2_bound + noise_tail(...)
< 2^(b-1) for every coordinate except with probability <= 2^cfg.tail_log2 <= 2^-40 per
round, and the centred lift of :func:`from_ring` is exact. ``MaskingConfig``'s own
quantizer is not used on this path (the vector length is d' + 1, not d + 1).

Accounting, :func:`accountant_epsilon` / :func:`calibrate`
---------------------------------------------------------
Neighbouring relation: one client's update replaced by zero (the client still adds its
noise share), as in Kairouz et al. and TFF's distributed DP. The per-round Renyi bound is
the paper's: DDG, Kairouz-Liu-Steinke 2021 Prop. 14 with tau = 10 sum_{k<n} exp(-2 pi^2
sigma^2 k/(k+1)); Skellam, Agarwal-Kairouz-Liu 2021 Cor. 4.1. Each of their linear-in-order
branches is a ``dp_accounting.ZCDpEvent(rho, xi)``; composition over the rounds and the
conversion to (epsilon, delta) are ``dp_accounting.rdp.RdpAccountant`` (integer orders
2..1024); the smallest epsilon over the branches is reported. n = min_clients: the noise
of a sum over >= min_clients honest clients; dropouts below that are refused
(:func:`check_included`). If an adversary may know the noise of t included clients, set
min_clients = (minimum |U|) - t. sampling_rate < 1 is recorded but NOT used for
amplification (dp-accounting's Poisson-subsampling analysis covers only the continuous
Gaussian); the bound holds for any sampling, conservatively.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from secagg.errors import ConfigError, InvalidParameters

__all__ = [
    "MECHANISMS",
    "DEFAULT_BETA",
    "DEFAULT_SCALE_FACTOR",
    "MAX_TAIL_LOG2",
    "RDP_ORDERS",
    "DpConfig",
    "padded_dim",
    "clip_l2",
    "rotation_signs",
    "fwht",
    "rotate",
    "unrotate",
    "rounded_l2_bound",
    "conditional_round",
    "discrete_gaussian",
    "skellam",
    "bernoulli_exp",
    "round_events",
    "accountant_epsilon",
    "calibrate",
    "noise_tail",
    "overflow_bits",
    "check_included",
    "privatize",
    "postprocess",
    "to_ring",
    "from_ring",
    "dp_report",
    "NO_DP",
    "DST_DP_ROTATION",
    "DpSpec",
    "round_rotation_seed",
    "mean_error_bound",
]

MECHANISMS = ("skellam", "ddg", "none")
DEFAULT_BETA = math.exp(-0.5)  # conditional-rounding parameter of Kairouz et al.
DEFAULT_SCALE_FACTOR = 4.0  # default scale s = 4 sqrt(d') / c: rounding inflates l2 by ~1.6 %
MAX_TAIL_LOG2 = -40  # the wrap-around probability per round is at most 2^tail_log2
RDP_ORDERS = tuple(range(2, 65)) + (80, 96, 128, 160, 192, 256, 384, 512, 768, 1024)
MAX_ROUND_RETRIES = 10_000
_MARGIN = 2.0**-40
_TWO64 = 18446744073709551616.0
_U64MAX = np.uint64(0xFFFFFFFFFFFFFFFF)


# ---------------------------------------------------------------------------------------
# randomness
# ---------------------------------------------------------------------------------------


class _Stream:
    """ChaCha20 keystream as uint64 words, key = SHA-256(domain, label, seed)."""

    def __init__(self, seed: bytes, label: bytes) -> None:
        seed = _check_seed(seed, "seed")
        key = hashlib.sha256(b"pvss-secagg/dp/v1/" + label + b"\x00" + seed).digest()
        self._enc = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()

    def words(self, n: int) -> np.ndarray:
        if n <= 0:
            return np.zeros(0, dtype=np.uint64)
        return np.frombuffer(self._enc.update(bytes(8 * n)), dtype="<u8").astype(np.uint64)

    def word(self) -> int:
        return int(self.words(1)[0])


def _check_seed(seed: object, field: str) -> bytes:
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
        raise InvalidParameters(f"{field}: expected 32 bytes, got {type(seed).__name__}")
    return bytes(seed)


def _below(stream: _Stream, m: np.ndarray) -> np.ndarray:
    """Uniform integers in [0, m_k) (m_k >= 1, uint64), exactly, by rejection."""
    m = np.asarray(m, dtype=np.uint64)
    rem = (np.uint64(0) - m) % m  # 2^64 mod m
    lim = _U64MAX - rem  # accept w <= lim  <=>  w < 2^64 - rem
    out = stream.words(m.shape[0])
    bad = np.flatnonzero(out > lim)
    while bad.size:
        out[bad] = stream.words(bad.size)
        bad = bad[out[bad] > lim[bad]]
    return out % m


def _exact_less(stream: _Stream, u: int, gamma: Fraction) -> bool:
    """Decide U < exp(-gamma) exactly, U uniform in [0, 1) whose first 64 bits are u;
    further bits are drawn from ``stream`` 64 at a time until the decision is certain."""
    num, bits = u, 64
    glog = max(1, len(str(abs(gamma.numerator) // max(1, gamma.denominator))))
    while True:
        prec = int((bits + 64) * 0.30103) + glog + 20
        with localcontext() as ctx:
            ctx.prec = prec
            ctx.Emin = -(10**17)
            ctx.Emax = 10**17
            e = (Decimal(-gamma.numerator) / Decimal(gamma.denominator)).exp()
            e = e * (Decimal(2) ** bits)
            # quotient, exp and product each within 1/2 ulp: relative error below
            # (|gamma| + 3) * 10^(1 - prec); take twice that.
            tol = e * (Decimal(math.ceil(abs(gamma))) + 3) * Decimal(10) ** (1 - prec) * 2
            if num + 1 <= e - tol:
                return True
            if num >= e + tol:
                return False
        num = (num << 64) | stream.word()
        bits += 64


def bernoulli_exp(
    stream: _Stream,
    gamma: np.ndarray,
    exact: Callable[[int], Fraction],
    *,
    margin: float = _MARGIN,
) -> np.ndarray:
    """Bernoulli(exp(-gamma_k)) for each k, exactly. ``gamma`` is a float64 approximation
    (relative error far below ``margin``) used for the fast path; ``exact(k)`` returns the
    exact rational gamma_k for the rare undecided elements (handled in index order, so the
    result is a deterministic function of the stream)."""
    g = np.asarray(gamma, dtype=np.float64)
    u = stream.words(g.shape[0])
    uf = u.astype(np.float64)
    f = np.exp(-g) * _TWO64
    m = margin * (1.0 + g)
    out = (uf + 1.0) < f * (1.0 - m)
    undecided = np.flatnonzero(~out & (uf <= f * (1.0 + m)))
    for k in undecided.tolist():
        out[k] = _exact_less(stream, int(u[k]), exact(k))
    return out


def _geometric(stream: _Stream, n: int, margin: float) -> np.ndarray:
    """V with P(V >= k) = e^-k: count Bernoulli(e^-1) successes before the first failure."""
    v = np.zeros(n, dtype=np.int64)
    alive = np.arange(n)
    one = Fraction(1)
    while alive.size:
        hit = bernoulli_exp(stream, np.ones(alive.size), lambda _k: one, margin=margin)
        alive = alive[hit]
        v[alive] += 1
    return v


def _sigma2(sigma: float) -> Fraction:
    s = Fraction(float(sigma))
    return s * s


def _laplace_gamma(u: np.ndarray, t: int) -> Callable[[int], Fraction]:
    return lambda k: Fraction(int(u[k]), t)


def _gauss_gamma(y: np.ndarray, mu: Fraction, s2: Fraction) -> Callable[[int], Fraction]:
    return lambda k: (abs(int(y[k])) - mu) ** 2 / (2 * s2)


def discrete_gaussian(
    n: int, sigma: float, seed: bytes | _Stream, *, margin: float = _MARGIN
) -> np.ndarray:
    """n iid samples of the discrete Gaussian N_Z(0, sigma^2), P(x) ∝ exp(-x^2/(2 sigma^2))
    on the integers, sigma^2 = the exact square of the float ``sigma``. Algorithm 3 of
    Canonne-Kamath-Steinke 2020 (rejection from the discrete Laplace of scale
    t = floor(sigma) + 1, itself Algorithm 2), vectorised over batches; exact (see
    :func:`bernoulli_exp`). ``seed``: 32 bytes (ChaCha20 stream) or a stream."""
    n = int(n)
    if not (math.isfinite(float(sigma)) and float(sigma) > 0):
        raise InvalidParameters(f"sigma: must be finite and > 0, got {sigma!r}")
    stream = seed if isinstance(seed, _Stream) else _Stream(seed, b"ddg")
    s2 = _sigma2(sigma)
    t = math.isqrt(s2.numerator * s2.denominator) // s2.denominator + 1
    mu = s2 / t
    s2f, muf = float(s2), float(mu)
    ft = float(t)
    out: list[np.ndarray] = []
    need = n
    rate = 0.5
    while need > 0:
        batch = int(need / rate * 1.05) + 64
        u = _below(stream, np.full(batch, t, dtype=np.uint64)).astype(np.int64)
        d = bernoulli_exp(stream, u / ft, _laplace_gamma(u, t), margin=margin)
        u = u[d]
        x = u + t * _geometric(stream, u.shape[0], margin)
        b = (stream.words(x.shape[0]) & np.uint64(1)).astype(bool)
        keep = ~(b & (x == 0))
        y = np.where(b, -x, x)[keep]
        ay = np.abs(y).astype(np.float64)
        g = (ay - muf) ** 2 / (2.0 * s2f)
        c = bernoulli_exp(stream, g, _gauss_gamma(y, mu, s2), margin=margin)
        got = y[c]
        rate = max(0.05, got.shape[0] / batch)
        out.append(got)
        need -= got.shape[0]
    return np.concatenate(out)[:n] if out else np.zeros(0, dtype=np.int64)


def skellam(n: int, mu: float, seed: bytes) -> np.ndarray:
    """n iid samples of Skellam(mu, mu) = Poisson(mu) - Poisson(mu) (variance 2 mu), from
    numpy's Poisson sampler on ``Generator(Philox(key))``, key = SHA-256 of the seed
    (floating-point based; see the module docstring for why that is accepted)."""
    seed = _check_seed(seed, "seed")
    if not (math.isfinite(float(mu)) and float(mu) > 0):
        raise InvalidParameters(f"mu: must be finite and > 0, got {mu!r}")
    key = int.from_bytes(hashlib.sha256(b"pvss-secagg/dp/v1/skellam\x00" + seed).digest()[:16])
    rng = np.random.Generator(np.random.Philox(key=key))
    a = rng.poisson(float(mu), int(n))
    b = rng.poisson(float(mu), int(n))
    return (a - b).astype(np.int64)


# ---------------------------------------------------------------------------------------
# clipping, rotation, rounding
# ---------------------------------------------------------------------------------------


def padded_dim(dim: int) -> int:
    """d' = the smallest power of two >= dim."""
    dim = int(dim)
    if dim < 1:
        raise InvalidParameters(f"dim: must be >= 1, got {dim}")
    return 1 << (dim - 1).bit_length()


def clip_l2(x: np.ndarray, clip: float) -> np.ndarray:
    """x * min(1, clip / ||x||_2) as float64 (a copy)."""
    x = np.array(x, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(x))
    if norm > clip:
        x *= clip / norm
    return x


def fwht(a: np.ndarray) -> np.ndarray:
    """Unnormalised fast Walsh-Hadamard transform H a (length a power of two; H^2 = n I)."""
    a = np.array(a, dtype=np.float64).reshape(-1)
    n = a.shape[0]
    if n & (n - 1):
        raise InvalidParameters(f"a: length must be a power of two, got {n}")
    h = 1
    while h < n:
        v = a.reshape(-1, 2, h)
        top = v[:, 0, :].copy()
        v[:, 0, :] += v[:, 1, :]
        np.subtract(top, v[:, 1, :], out=v[:, 1, :])
        h *= 2
    return a


def rotation_signs(rotation_seed: bytes, dpad: int) -> np.ndarray:
    """The diagonal D of the randomised Hadamard rotation: +-1.0 from ChaCha20 words."""
    w = _Stream(rotation_seed, b"rotation").words(int(dpad))
    return 1.0 - 2.0 * (w & np.uint64(1)).astype(np.float64)


def rotate(x: np.ndarray, rotation_seed: bytes) -> np.ndarray:
    """H D pad(x) / sqrt(d') (orthonormal), length d'."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    dp = padded_dim(x.shape[0])
    xp = np.zeros(dp)
    xp[: x.shape[0]] = x
    return fwht(xp * rotation_signs(rotation_seed, dp)) / math.sqrt(dp)


def unrotate(y: np.ndarray, rotation_seed: bytes, dim: int) -> np.ndarray:
    """The inverse of :func:`rotate`: (D H y / sqrt(d'))[:dim]."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    dp = y.shape[0]
    if dp != padded_dim(dim):
        raise InvalidParameters(f"y: length {dp} is not padded_dim({dim}) = {padded_dim(dim)}")
    return (fwht(y) * rotation_signs(rotation_seed, dp) / math.sqrt(dp))[: int(dim)]


def rounded_l2_bound(scaled_norm: float, dpad: int, beta: float) -> float:
    """Kairouz et al. 2021 Thm. 1: a randomised rounding of a vector of l2 norm <= scaled_norm
    in d' coordinates has norm <= min(scaled_norm + sqrt(d'), sqrt(scaled_norm^2 + d'/4 +
    sqrt(2 ln(1/beta)) (scaled_norm + sqrt(d')/2))) with probability >= 1 - beta."""
    c, d = float(scaled_norm), float(dpad)
    hard = c + math.sqrt(d)
    if beta <= 0:
        return hard
    soft = math.sqrt(c * c + d / 4 + math.sqrt(2 * math.log(1 / beta)) * (c + math.sqrt(d) / 2))
    return min(hard, soft)


def conditional_round(y: np.ndarray, bound: float, stream: _Stream) -> np.ndarray:
    """v = floor(y) + Bernoulli(frac(y)) (uniform 64-bit words against frac * 2^64),
    redrawn until ||v||_2^2 <= bound^2 (checked in exact integers)."""
    y = np.asarray(y, dtype=np.float64)
    fl = np.floor(y)
    frac = (y - fl) * _TWO64
    base = fl.astype(np.int64)
    limit = Fraction(float(bound)) ** 2
    for _ in range(MAX_ROUND_RETRIES):
        v = base + (stream.words(y.shape[0]).astype(np.float64) < frac)
        if int(np.dot(v, v)) <= limit:
            return v
    raise InvalidParameters(
        f"conditional rounding: no rounding within l2 bound {bound} after "
        f"{MAX_ROUND_RETRIES} draws (input norm {float(np.linalg.norm(y))})"
    )


# ---------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------


def _num(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{field}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _int(value: object, field: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{field}: expected an int, got {type(value).__name__} {value!r}")
    if int(value) < lo:
        raise ConfigError(f"{field}: must be >= {lo}, got {value}")
    return int(value)


@dataclass(frozen=True)
class DpConfig:
    """Parameters of distributed DP for a run of ``rounds`` rounds.

    mechanism: "ddg" | "skellam" | "none". epsilon, delta: the promise for the whole run
    (epsilon = inf iff mechanism "none"). rounds: rounds composed. sampling_rate: in
    (0, 1], recorded, not used for amplification. min_clients: the minimum included set
    |U| whose noise the guarantee counts. l2_clip: c, in update units. dim: d, the update
    length. noise: per-client noise in integer units — DDG sigma (>= 1/2) or Skellam mu
    (> 0); 0 for "none". scale: s, integer units per update unit. beta: conditional
    rounding parameter in [0, 1). tail_log2: per-round wrap-around probability bound,
    an int <= -40.

    Validated on construction (ConfigError naming the field), including that the
    accountant's epsilon at min_clients does not exceed the promised epsilon."""

    mechanism: str
    epsilon: float
    delta: float
    rounds: int
    sampling_rate: float
    min_clients: int
    l2_clip: float
    dim: int
    noise: float
    scale: float
    beta: float = DEFAULT_BETA
    tail_log2: int = MAX_TAIL_LOG2

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ConfigError(f"mechanism: must be one of {MECHANISMS}, got {self.mechanism!r}")
        eps = _num(self.epsilon, "epsilon")
        if self.mechanism == "none":
            if eps != math.inf:
                raise ConfigError(f"epsilon: must be inf for mechanism 'none', got {eps}")
        elif not (math.isfinite(eps) and eps > 0):
            raise ConfigError(f"epsilon: must be finite and > 0, got {self.epsilon!r}")
        delta = _num(self.delta, "delta")
        if not 0 < delta < 1:
            raise ConfigError(f"delta: must be in (0, 1), got {self.delta!r}")
        _int(self.rounds, "rounds", 1)
        q = _num(self.sampling_rate, "sampling_rate")
        if not 0 < q <= 1:
            raise ConfigError(f"sampling_rate: must be in (0, 1], got {self.sampling_rate!r}")
        _int(self.min_clients, "min_clients", 1)
        c = _num(self.l2_clip, "l2_clip")
        if not (math.isfinite(c) and c > 0):
            raise ConfigError(f"l2_clip: must be finite and > 0, got {self.l2_clip!r}")
        _int(self.dim, "dim", 1)
        s = _num(self.scale, "scale")
        if not (math.isfinite(s) and s > 0):
            raise ConfigError(f"scale: must be finite and > 0, got {self.scale!r}")
        b = _num(self.beta, "beta")
        if not 0 <= b < 1:
            raise ConfigError(f"beta: must be in [0, 1), got {self.beta!r}")
        tl = self.tail_log2
        if isinstance(tl, bool) or not isinstance(tl, (int, np.integer)) or tl > MAX_TAIL_LOG2:
            raise ConfigError(f"tail_log2: must be an int <= {MAX_TAIL_LOG2}, got {tl!r}")
        z = _num(self.noise, "noise")
        if self.mechanism == "none" and z != 0:
            raise ConfigError(f"noise: must be 0 for mechanism 'none', got {z}")
        if self.mechanism == "ddg" and not (math.isfinite(z) and z >= 0.5):
            raise ConfigError(f"noise: DDG sigma must be finite and >= 1/2, got {self.noise!r}")
        if self.mechanism == "skellam" and not (math.isfinite(z) and z > 0):
            raise ConfigError(f"noise: Skellam mu must be finite and > 0, got {self.noise!r}")
        if (s * c + math.sqrt(self.padded_dim)) ** 2 >= 2.0**62:
            raise ConfigError(
                f"scale: scale*l2_clip = {s * c} too large for int64 norms "
                f"((scale*l2_clip + sqrt(d'))^2 must be < 2^62)"
            )
        if self.mechanism != "none":
            got = accountant_epsilon(self)
            if got > eps * (1 + 1e-9):
                raise ConfigError(
                    f"noise: {self.mechanism} noise={z} at min_clients={self.min_clients} "
                    f"gives epsilon={got:.6g} > promised epsilon={eps} over rounds="
                    f"{self.rounds} (delta={delta}); raise noise or min_clients"
                )

    @property
    def padded_dim(self) -> int:
        return padded_dim(self.dim)

    @property
    def l2_bound(self) -> float:
        """Integer-unit l2 sensitivity: the conditional-rounding bound on ||v||_2."""
        return rounded_l2_bound(self.scale * self.l2_clip, self.padded_dim, self.beta)

    @property
    def noise_variance_client(self) -> float:
        """Per-coordinate variance of one client's noise, integer units (sigma^2 is an
        upper bound on the discrete Gaussian's variance)."""
        if self.mechanism == "ddg":
            return float(self.noise) ** 2
        if self.mechanism == "skellam":
            return 2.0 * float(self.noise)
        return 0.0

    def noise_stddev_sum(self, n_clients: int | None = None) -> float:
        """Per-coordinate noise stddev of the sum over n_clients (default min_clients),
        in update units."""
        n = self.min_clients if n_clients is None else int(n_clients)
        return math.sqrt(n * self.noise_variance_client) / self.scale


def check_included(cfg: DpConfig, n_included: int) -> None:
    """Refuse (ConfigError) a round whose included set is below cfg.min_clients."""
    if int(n_included) < cfg.min_clients:
        raise ConfigError(
            f"min_clients: {n_included} included clients < min_clients={cfg.min_clients}; "
            f"the sum would carry too little noise for epsilon={cfg.epsilon}"
        )


# ---------------------------------------------------------------------------------------
# accounting
# ---------------------------------------------------------------------------------------


def round_events(cfg: DpConfig) -> list[tuple[float, float]]:
    """Per-round RDP bounds of the sum over min_clients, each as (rho, xi) with
    RDP(alpha) <= xi + rho * alpha for every integer alpha > 1 (each a valid bound)."""
    return _events(cfg.mechanism, float(cfg.noise), cfg.min_clients, cfg.l2_bound, cfg.padded_dim)


def _events(mech: str, noise: float, n: int, l2: float, dp: int) -> list[tuple[float, float]]:
    l1 = l2 * min(math.sqrt(dp), l2)  # integer vectors: ||v||_1 <= min(sqrt(d')||v||_2, ||v||_2^2)
    if mech == "ddg":
        var = n * noise * noise
        tau = 10.0 * sum(
            math.exp(-2.0 * math.pi**2 * noise * noise * k / (k + 1)) for k in range(1, n)
        )
        sd = math.sqrt(var)
        return [
            (l2 * l2 / (2 * var), tau * dp),
            ((l2 * l2 / var + 2 * l1 * tau / sd + tau * tau * dp) / 2, 0.0),
            ((l2 / sd + tau * math.sqrt(dp)) ** 2 / 2, 0.0),
        ]
    if mech == "skellam":
        var = 2.0 * n * noise
        first = l2 * l2 / (2 * var)
        return [
            (first, 3 * l1 / (2 * var)),
            (first + l2 * l2 / (2 * var * var), max(0.0, 6 * l1 - l2 * l2) / (4 * var * var)),
        ]
    return []


def _epsilon_of(rho: float, xi: float, rounds: int, delta: float) -> float:
    from dp_accounting import SelfComposedDpEvent, ZCDpEvent  # noqa: PLC0415
    from dp_accounting.rdp import RdpAccountant  # noqa: PLC0415

    acc = RdpAccountant(orders=list(RDP_ORDERS))
    acc.compose(SelfComposedDpEvent(ZCDpEvent(rho=rho, xi=xi), int(rounds)))
    return float(acc.get_epsilon(delta))


def accountant_epsilon(cfg: DpConfig) -> float:
    """epsilon of the whole run (rounds compositions) at cfg.delta, via dp_accounting's
    RdpAccountant: the smallest over the mechanism's RDP branches (:func:`round_events`)."""
    if cfg.mechanism == "none":
        return math.inf
    return min(_epsilon_of(r, x, cfg.rounds, cfg.delta) for r, x in round_events(cfg))


def calibrate(
    epsilon: float,
    delta: float,
    rounds: int,
    sampling_rate: float,
    min_clients: int,
    l2_clip: float,
    dim: int,
    mechanism: str = "ddg",
    *,
    scale: float | None = None,
    beta: float = DEFAULT_BETA,
    tail_log2: int = MAX_TAIL_LOG2,
    rel_tol: float = 1e-4,
) -> DpConfig:
    """The DpConfig with the smallest per-client noise (to rel_tol) whose sum over any
    >= min_clients clients is (epsilon, delta)-DP over ``rounds`` rounds (accountant:
    :func:`accountant_epsilon`). scale defaults to DEFAULT_SCALE_FACTOR * sqrt(d') / l2_clip.
    Raises ConfigError (naming the field) for invalid inputs or an unreachable target."""
    if mechanism == "none":
        s = 1.0 if scale is None else scale
        return DpConfig(
            "none",
            math.inf,
            delta,
            rounds,
            sampling_rate,
            min_clients,
            l2_clip,
            dim,
            0.0,
            s,
            beta,
            tail_log2,
        )
    if mechanism not in MECHANISMS:
        raise ConfigError(f"mechanism: must be one of {MECHANISMS}, got {mechanism!r}")
    _int(dim, "dim", 1)
    c = _num(l2_clip, "l2_clip")
    if not (math.isfinite(c) and c > 0):
        raise ConfigError(f"l2_clip: must be finite and > 0, got {l2_clip!r}")
    s = DEFAULT_SCALE_FACTOR * math.sqrt(padded_dim(dim)) / c if scale is None else scale
    lo = 0.5 if mechanism == "ddg" else 1e-6

    def make(z: float, eps: float) -> DpConfig:
        return DpConfig(
            mechanism,
            eps,
            delta,
            rounds,
            sampling_rate,
            min_clients,
            l2_clip,
            dim,
            z,
            s,
            beta,
            tail_log2,
        )

    probe = make(lo, 1e300)  # validates every other field
    target = _num(epsilon, "epsilon")
    if not (math.isfinite(target) and target > 0):
        raise ConfigError(f"epsilon: must be finite and > 0, got {epsilon!r}")
    l2, dp = probe.l2_bound, probe.padded_dim

    def eps_at(z: float) -> float:
        events = _events(mechanism, z, probe.min_clients, l2, dp)
        return min(_epsilon_of(r, x, probe.rounds, probe.delta) for r, x in events)

    if eps_at(lo) <= target:
        return make(lo, target)
    hi = lo * 2
    while eps_at(hi) > target:
        hi *= 2
        if hi > 2.0**60:
            raise ConfigError(
                f"epsilon: target {target} unreachable for min_clients={min_clients}, "
                f"rounds={rounds}, delta={delta} (noise would exceed 2^60)"
            )
    low = hi / 2 if hi > lo * 2 else lo
    while hi - low > rel_tol * hi:
        mid = (low + hi) / 2
        if eps_at(mid) <= target:
            hi = mid
        else:
            low = mid
    return make(hi, target)


# ---------------------------------------------------------------------------------------
# overflow
# ---------------------------------------------------------------------------------------


def noise_tail(cfg: DpConfig, n_clients: int) -> int:
    """T with P(max_k |noise sum_k| > T) <= 2^tail_log2 over the d' coordinates of a sum
    of n_clients noise vectors (union bound; DDG: the sum is n sigma^2-subgaussian,
    Canonne et al. 2020; Skellam: the Chernoff bound of Skellam(n mu, n mu))."""
    n = _int(n_clients, "n_clients", 1)
    if cfg.mechanism == "none":
        return 0
    log_p = cfg.tail_log2 * math.log(2) - math.log(2 * cfg.padded_dim)  # per coordinate, side
    if cfg.mechanism == "ddg":
        return math.ceil(math.sqrt(2 * n * float(cfg.noise) ** 2 * -log_p))
    m = n * float(cfg.noise)

    def log_tail(t: float) -> float:  # ln P(S >= t) <= 2m(cosh l - 1) - l t, sinh l = t/(2m)
        lam = math.asinh(t / (2 * m))
        return 2 * m * (math.cosh(lam) - 1) - lam * t

    lo, hi = 0.0, max(1.0, 2 * m)
    while log_tail(hi) > log_p:
        hi *= 2
    while hi - lo > 0.5:
        mid = (lo + hi) / 2
        if log_tail(mid) > log_p:
            lo = mid
        else:
            hi = mid
    return math.ceil(hi)


def overflow_bits(cfg: DpConfig, n_clients: int) -> int:
    """The smallest modulus bit width b such that n * floor(l2_bound) + noise_tail(cfg, n)
    < 2^(b-1) (the centred lift of every coordinate of the noisy sum is exact, except with
    probability <= 2^tail_log2 per round) and the weight coordinate n < 2^b."""
    n = _int(n_clients, "n_clients", 1)
    top = n * math.floor(cfg.l2_bound) + noise_tail(cfg, n)
    b = max(top.bit_length() + 1, n.bit_length())
    if b > 64:
        raise ConfigError(
            f"n_clients: {n} clients need {b} > 64 bits (l2_bound={cfg.l2_bound:.6g}, "
            f"noise tail={noise_tail(cfg, n)}); lower scale"
        )
    return b


# ---------------------------------------------------------------------------------------
# client and server operations
# ---------------------------------------------------------------------------------------


def privatize(x: object, cfg: DpConfig, seed: bytes, rotation_seed: bytes) -> np.ndarray:
    """clip -> rotate -> scale -> conditional round -> add noise: int64 vector of d'
    coordinates (module docstring). seed: the client's private 32 bytes (rounding and
    noise); rotation_seed: 32 bytes shared by all clients of the round."""
    if not isinstance(cfg, DpConfig):
        raise TypeError(f"cfg: expected DpConfig, got {type(cfg).__name__}")
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    if xs.shape[0] != cfg.dim:
        raise InvalidParameters(f"x: expected {cfg.dim} coordinates, got {xs.shape[0]}")
    if not np.isfinite(xs).all():
        bad = int(np.flatnonzero(~np.isfinite(xs))[0])
        raise InvalidParameters(f"x: non-finite at index {bad}")
    _check_seed(seed, "seed")
    _check_seed(rotation_seed, "rotation_seed")
    y = rotate(clip_l2(xs, cfg.l2_clip), rotation_seed) * cfg.scale
    v = conditional_round(y, cfg.l2_bound, _Stream(seed, b"round"))
    if cfg.mechanism == "ddg":
        v += discrete_gaussian(v.shape[0], cfg.noise, _Stream(seed, b"ddg"))
    elif cfg.mechanism == "skellam":
        v += skellam(v.shape[0], cfg.noise, seed)
    return v


def to_ring(z: np.ndarray, bits: int) -> np.ndarray:
    """Signed integers -> uint64 values mod 2^bits (two's complement reduction)."""
    bits = _int(bits, "bits", 1)
    if bits > 64:
        raise InvalidParameters(f"bits: must be <= 64, got {bits}")
    u = np.asarray(z, dtype=np.int64).view(np.uint64)
    return u if bits == 64 else u & np.uint64((1 << bits) - 1)


def from_ring(s: np.ndarray, bits: int) -> np.ndarray:
    """uint64 values mod 2^bits -> the centred representatives in [-2^(bits-1), 2^(bits-1))."""
    bits = _int(bits, "bits", 1)
    u = np.asarray(s, dtype=np.uint64)
    if bits == 64:
        return u.view(np.int64)
    half = np.uint64(1 << (bits - 1))
    u = u & np.uint64((1 << bits) - 1)
    return u.astype(np.int64) - np.where(u >= half, np.int64(1 << bits), np.int64(0))


def postprocess(
    sum_vector: np.ndarray,
    cfg: DpConfig,
    rotation_seed: bytes,
    total: int,
    *,
    bits: int | None = None,
) -> np.ndarray:
    """The noisy mean of the clipped updates from the sum of ``total`` privatized vectors:
    unrotate(sum / scale)[:dim] / total. sum_vector: d' signed integers, or values mod
    2^bits when ``bits`` is given (centred lift first)."""
    total = int(total)
    if total < 1:
        raise InvalidParameters(f"total: must be >= 1, got {total}")
    s = from_ring(sum_vector, bits) if bits is not None else np.asarray(sum_vector)
    if s.shape[0] != cfg.padded_dim:
        raise InvalidParameters(f"sum_vector: expected {cfg.padded_dim} entries, got {s.shape[0]}")
    return unrotate(s.astype(np.float64) / cfg.scale, rotation_seed, cfg.dim) / total


def mean_error_bound(cfg: DpConfig, n_included: int) -> float:
    """A bound on max_k |postprocess mean - mean of the clipped updates| that holds except
    with probability <= 2^tail_log2: per coordinate, the error is the rotated sum of
    n noise draws (variance proxy sigma^2 or 2 mu, Skellam's being subgaussian only
    approximately) and n rounding errors (each in an interval of length 1: variance proxy
    1/4), divided by scale * n; union bound over the d' coordinates, both tails.
    Conditional rounding's bias (below 1e-2 of a step) is absorbed in the margin."""
    n = _int(n_included, "n_included", 1)
    var = n * (cfg.noise_variance_client + 0.25)
    log_p = -cfg.tail_log2 * math.log(2) + math.log(2 * cfg.padded_dim)
    return (math.sqrt(2 * var * log_p) + 0.01 * n) / (cfg.scale * n)


# the canonical "no DP" record of a RoundConfig (SPEC.md §10.6): the quantizer path
NO_DP = DpConfig("none", math.inf, 0.5, 1, 1.0, 1, 1.0, 1, 0.0, 1.0, DEFAULT_BETA, MAX_TAIL_LOG2)

DST_DP_ROTATION = b"pvss-secagg/v1/dp-rotation"


def round_rotation_seed(round_seed: bytes) -> bytes:
    """The round's public rotation seed: keccak256(DST_DP_ROTATION || round seed). The
    round seed is fixed by the registrations and every member's seed reveal (SPEC.md
    §6.10), so nobody chooses the rotation; it is the same for every client and the
    verifier."""
    from pvss.transcript import keccak256  # noqa: PLC0415

    if not isinstance(round_seed, (bytes, bytearray)) or len(round_seed) != 32:
        raise InvalidParameters("round_seed: expected 32 bytes")
    return keccak256(DST_DP_ROTATION + bytes(round_seed))


@dataclass(frozen=True)
class DpSpec:
    """What a deployment promises, before n and d are known: (epsilon, delta) over
    ``rounds`` rounds, the L2 clip, the mechanism. ``colluders``: included clients whose
    noise the adversary may know (SPEC.md §10.3): the noise is counted for
    min_included - colluders clients. :meth:`calibrate` gives the round's DpConfig."""

    epsilon: float
    delta: float = 1e-5
    rounds: int = 1
    l2_clip: float = 1.0
    mechanism: str = "ddg"
    sampling_rate: float = 1.0
    colluders: int = 0

    def __post_init__(self) -> None:
        if self.mechanism not in ("ddg", "skellam"):
            raise ConfigError(f"mechanism: must be 'ddg' or 'skellam', got {self.mechanism!r}")
        _int(self.colluders, "colluders", 0)

    def calibrate(self, dim: int, min_included: int) -> DpConfig:
        """The DpConfig for a round of ``dim`` coordinates whose included set has at
        least ``min_included`` clients (ConfigError if min_included - colluders < 1)."""
        n = int(min_included) - int(self.colluders)
        if n < 1:
            raise ConfigError(
                f"colluders: min_included {min_included} - colluders {self.colluders} < 1: "
                "no honest noise is counted"
            )
        return calibrate(
            float(self.epsilon),
            float(self.delta),
            int(self.rounds),
            float(self.sampling_rate),
            n,
            float(self.l2_clip),
            int(dim),
            self.mechanism,
        )


def dp_report(cfg: DpConfig) -> dict:
    """{mechanism, epsilon, delta, rounds, noise_stddev_sum, l2_clip}; noise_stddev_sum is
    per coordinate of the sum over min_clients, in update units."""
    return {
        "mechanism": cfg.mechanism,
        "epsilon": float(cfg.epsilon),
        "delta": float(cfg.delta),
        "rounds": int(cfg.rounds),
        "noise_stddev_sum": cfg.noise_stddev_sum(),
        "l2_clip": float(cfg.l2_clip),
    }

"""Distributed DP (SPEC.md §10), the issue's remaining checks: calibration never
under-noises for the minimum included set over random configurations (hypothesis), no
wrap-around in 10^4 simulated rounds at the modulus ``overflow_bits`` promises, and the
DP parameters round-trip through the codec, a saved round directory and the demo's
transcripts. Nothing here is skipped."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import codec
from secagg import dp as dpm
from secagg.config import RoundConfig, dp_record_bytes
from secagg.errors import ConfigError
from secagg.simulate import SimParams, simulate
from secagg.verifier import load_round, verify_round

MEMBERS = tuple(bytes([0xB1, k]) * 10 for k in range(1, 4))


def _seed(i: int) -> bytes:
    return i.to_bytes(4, "big") * 8


def _independent_epsilon(cfg: dpm.DpConfig) -> float:
    """The run's epsilon recomputed here, straight from dp_accounting: every per-round
    RDP branch composed ``rounds`` times, the best branch (no use of accountant_epsilon)."""
    from dp_accounting import SelfComposedDpEvent, ZCDpEvent
    from dp_accounting.rdp import RdpAccountant

    best = math.inf
    for rho, xi in dpm.round_events(cfg):
        acc = RdpAccountant(orders=list(dpm.RDP_ORDERS))
        acc.compose(SelfComposedDpEvent(ZCDpEvent(rho=rho, xi=xi), cfg.rounds))
        best = min(best, float(acc.get_epsilon(cfg.delta)))
    return best


# --- calibration --------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(
    eps=st.floats(0.25, 32.0),
    delta_exp=st.floats(4.0, 10.0),
    rounds=st.integers(1, 300),
    min_clients=st.integers(1, 120),
    colluders=st.integers(0, 3),
    clip=st.floats(1e-3, 100.0),
    dim=st.integers(1, 200_000),
    mech=st.sampled_from(["ddg", "skellam"]),
)
def test_calibration_never_under_noises_for_the_minimum_included_set(
    eps, delta_exp, rounds, min_clients, colluders, clip, dim, mech
):
    delta = 10.0**-delta_exp
    spec = dpm.DpSpec(eps, delta, rounds, clip, mech, colluders=colluders)
    cfg = spec.calibrate(dim, min_clients + colluders)
    # the noise is counted for the honest part of the minimum included set only
    assert cfg.min_clients == min_clients and cfg.dim == dim and cfg.l2_clip == clip
    # the promise holds at min_clients, by the library's accountant and recomputed here
    assert dpm.accountant_epsilon(cfg) <= eps * (1 + 1e-9)
    assert _independent_epsilon(cfg) <= eps * (1 + 1e-9)
    # more included clients only add noise: the same per-client noise still validates
    more = dataclasses.replace(cfg, min_clients=min_clients + 5)
    assert _independent_epsilon(more) <= _independent_epsilon(cfg) * (1 + 1e-9)
    # a round below the minimum is refused
    if min_clients > 1:
        with pytest.raises(ConfigError, match="min_clients"):
            dpm.check_included(cfg, min_clients - 1)
    dpm.check_included(cfg, min_clients)
    # and the calibration is not vacuous: 2% less noise breaks the promise (unless the
    # noise sits at the mechanism's floor, DDG sigma = 1/2)
    floor = 0.5 if mech == "ddg" else 1e-6
    if cfg.noise > floor * 1.03:
        less = dataclasses.replace(cfg, noise=cfg.noise * 0.98, epsilon=1e300)
        assert _independent_epsilon(less) > eps
        with pytest.raises(ConfigError, match="noise"):
            dataclasses.replace(cfg, noise=cfg.noise * 0.98)


# --- no wrap-around ---------------------------------------------------------------------------

ROUNDS = 10_000


def _noise(cfg: dpm.DpConfig, size: int, seed: bytes) -> np.ndarray:
    if cfg.mechanism == "ddg":
        return dpm.discrete_gaussian(size, cfg.noise, seed)
    return dpm.skellam(size, cfg.noise, seed)


@pytest.mark.parametrize(
    ("mech", "eps", "rounds", "n"),
    [
        ("ddg", 16.0, 1, 8),  # little noise: the signal dominates the bound
        ("ddg", 1.0, 10, 8),  # much noise: the tail dominates
        ("skellam", 16.0, 1, 8),
        ("skellam", 1.0, 10, 8),
    ],
)
def test_no_wrap_around_in_ten_thousand_rounds(mech, eps, rounds, n):
    """10^4 rounds of n clients at the worst-case signal (every client's integer vector
    is +-floor(l2_bound) on coordinate 0, the most a conditionally rounded vector can put
    on one coordinate) plus the real sampler's noise on all d' = 16 coordinates: the
    mod-2^b sum's centred lift equals the true integer sum in every coordinate of every
    round, b = overflow_bits(cfg, n)."""
    cfg = dpm.calibrate(eps, 1e-5, rounds, 1.0, n, 1.0, 16, mech)
    bits = dpm.overflow_bits(cfg, n)
    dpad = cfg.padded_dim
    peak = math.floor(cfg.l2_bound)
    signal = np.zeros((ROUNDS, n, dpad), dtype=np.int64)
    signal[:, :, 0] = peak * np.where(np.arange(ROUNDS) % 2 == 0, 1, -1)[:, None]
    noise = _noise(cfg, ROUNDS * n * dpad, _seed(17)).reshape(ROUNDS, n, dpad)
    clients = signal + noise
    truth = clients.sum(axis=1)
    mod = np.uint64((1 << bits) - 1)
    ring = np.zeros((ROUNDS, dpad), dtype=np.uint64)
    for k in range(n):  # each client's vector mod 2^b, summed mod 2^b (what unmasking gives)
        ring = (ring + dpm.to_ring(clients[:, k, :], bits)) & mod
    lifted = dpm.from_ring(ring.reshape(-1), bits).reshape(ROUNDS, dpad)
    assert np.array_equal(lifted, truth), "a coordinate wrapped around"
    assert int(np.abs(truth).max()) < 2 ** (bits - 1)
    # the noise stayed inside its stated tail, and the noise is really there
    noise_sum = noise.sum(axis=1)
    assert int(np.abs(noise_sum).max()) <= dpm.noise_tail(cfg, n)
    sd = math.sqrt(n * cfg.noise_variance_client)
    assert float(noise_sum.std()) == pytest.approx(sd, rel=0.05)
    # control: without room for the noise the same check catches wrap-around
    small = (n * peak).bit_length()  # 2^(small-1) <= n * peak: the signal alone wraps
    ring_small = np.zeros((ROUNDS, dpad), dtype=np.uint64)
    for k in range(n):
        ring_small = (ring_small + dpm.to_ring(clients[:, k, :], small)) & np.uint64(
            (1 << small) - 1
        )
    lifted_small = dpm.from_ring(ring_small.reshape(-1), small).reshape(ROUNDS, dpad)
    assert not np.array_equal(lifted_small, truth)


# --- the transcript records the DP parameters ----------------------------------------------


def _round_config(dp: dpm.DpConfig, n: int, dim: int) -> RoundConfig:
    base = RoundConfig(
        chain_id=1,
        board=b"\x02" * 20,
        round_id=5,
        n_clients=n,
        committee_size=3,
        threshold=1,
        dim=dim,
        clip=float(dp.l2_clip),
        members=MEMBERS,
    )
    return dataclasses.replace(base, dp=dp, bits=dpm.overflow_bits(dp, n))


@settings(max_examples=8, deadline=None)
@given(
    eps=st.floats(0.5, 16.0),
    delta=st.sampled_from([1e-4, 1e-5, 1e-7]),
    rounds=st.integers(1, 100),
    n=st.integers(6, 40),
    clip=st.floats(0.05, 20.0),
    dim=st.integers(1, 5000),
    mech=st.sampled_from(["ddg", "skellam"]),
)
def test_codec_round_trips_the_dp_record(eps, delta, rounds, n, clip, dim, mech):
    from secagg.config import default_min_included

    dp = dpm.DpSpec(eps, delta, rounds, clip, mech).calibrate(dim, default_min_included(n))
    cfg = _round_config(dp, n, dim)
    data = codec.encode(cfg)
    back = codec.decode(data, RoundConfig)
    assert back == cfg and back.has_dp
    assert back.dp == dp and dpm.dp_report(back.dp) == dpm.dp_report(dp)
    for f in dataclasses.fields(dpm.DpConfig):  # exact values and types, field by field
        got, want = getattr(back.dp, f.name), getattr(dp, f.name)
        assert got == want and type(got) is type(want), f.name
    assert dp_record_bytes(back.dp) == dp_record_bytes(dp)
    assert data.endswith(dp_record_bytes(dp))
    assert codec.encode(back) == data  # one encoding per config


@pytest.mark.parametrize("mech", ["ddg", "skellam"])
def test_saved_round_directory_decodes_to_the_same_dp_record(tmp_path: Path, mech):
    params = SimParams(
        clients=6,
        committee=3,
        threshold=1,
        dim=200,
        clip=0.5,
        dp_epsilon=3.0,
        dp_delta=1e-6,
        dp_rounds=7,
        dp_mechanism=mech,
        seed=3,
    )
    res = simulate(params, tmp_path / "round")
    assert res.verified, res.findings
    want = params.dp_config()
    transcript, blobs = load_round(tmp_path / "round")
    cfg = codec.decode(transcript.events[0].body, RoundConfig)
    assert cfg.dp == want
    assert dp_record_bytes(cfg.dp) == dp_record_bytes(want)
    assert (cfg.dp.mechanism, cfg.dp.epsilon, cfg.dp.delta, cfg.dp.rounds) == (
        mech,
        3.0,
        1e-6,
        7,
    )
    assert cfg.dp.l2_clip == 0.5 == cfg.clip and cfg.bits == dpm.overflow_bits(want, 6)
    report = verify_round(transcript, blobs)
    assert report.ok and report.dp == dpm.dp_report(want) == res.dp


def test_demo_round_transcript_records_its_dp(tmp_path: Path):
    """The demo's (deployed) round path writes the calibrated DpConfig in every round."""
    from fl.demo import DemoParams, run_demo

    p = DemoParams(
        rounds=1,
        clients=5,
        committee=3,
        threshold=1,
        dropout=0.0,
        board="memory",
        out=str(tmp_path / "demo"),
        dp_epsilon=6.0,
        dp_clip=0.7,
        dp_mechanism="skellam",
    )
    res = run_demo(p, say=lambda _m: None)
    assert res.all_verified and not res.failed_rounds
    transcript, blobs = load_round(tmp_path / "demo" / "round-1")
    cfg = codec.decode(transcript.events[0].body, RoundConfig)
    want = p.dp_spec().calibrate(cfg.dim, cfg.min_included)
    assert cfg.dp == want and cfg.dp.rounds == 1 and cfg.dp.l2_clip == 0.7
    assert res.dp == dpm.dp_report(want) == verify_round(transcript, blobs).dp

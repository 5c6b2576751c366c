"""Distributed DP wired into the round (SPEC.md §10.6): the config and its codec record,
a simulated round that verifies with the noisy mean within the stated noise, the
transcript and ``verify --json`` reporting the promise, refusals, the CLI, and the
Flower mod in process."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from pvss.transcript import keccak256
from secagg import codec
from secagg.aggregate import check_dp_included
from secagg.cli import main as cli_main
from secagg.config import RoundConfig, dp_record_bytes
from secagg.dp import NO_DP, DpSpec, calibrate, overflow_bits, padded_dim
from secagg.errors import ConfigError, ProtocolError
from secagg.messages import TranscriptFile
from secagg.posts import config_packed
from secagg.simulate import SimParams, simulate
from secagg.verifier import load_round, verify_round

MEMBERS = tuple(bytes([0xB0, k]) * 10 for k in range(1, 4))


def _base(**kw) -> RoundConfig:  # noqa: ANN003
    args = dict(
        chain_id=1,
        board=b"\x01" * 20,
        round_id=3,
        n_clients=6,
        committee_size=3,
        threshold=1,
        dim=100,
        clip=1.0,
        members=MEMBERS,
    )
    args.update(kw)
    return RoundConfig(**args)


def test_config_without_dp_is_unchanged_but_the_appended_record() -> None:
    cfg = _base()
    assert cfg.dp == NO_DP and not cfg.has_dp and cfg.vector_length == 101
    data = codec.encode(cfg)
    assert codec.decode(data, RoundConfig) == cfg
    packed = config_packed(cfg)
    assert packed[-32:] == keccak256(dp_record_bytes(NO_DP))
    # the record is the trailing element of the codec array, byte for byte
    assert data.endswith(dp_record_bytes(NO_DP))
    # only the canonical NO_DP stands for "no DP"
    other_none = calibrate(1.0, 1e-5, 1, 1.0, 2, 1.0, 100, "none")
    with pytest.raises(ConfigError, match="dp"):
        _base(dp=dataclasses.replace(other_none, dim=7))


def test_config_with_dp_round_trips_and_checks_the_minimum() -> None:
    cfg0 = _base()
    dp = calibrate(2.0, 1e-5, 4, 1.0, cfg0.min_included, 1.0, 100)
    cfg = dataclasses.replace(cfg0, dp=dp, bits=overflow_bits(dp, 6))
    assert cfg.has_dp and cfg.vector_length == padded_dim(100) + 1 == 129
    assert codec.decode(codec.encode(cfg), RoundConfig) == cfg
    assert config_packed(cfg)[-32:] == keccak256(dp_record_bytes(dp))
    # everything before the appended hash is the non-DP layout (at the same modulus)
    assert config_packed(dataclasses.replace(cfg, bits=32))[:-32] == config_packed(cfg0)[:-32]
    # a minimum included set that cannot give the promised epsilon is refused
    short = calibrate(2.0, 1e-5, 4, 1.0, cfg0.min_included + 1, 1.0, 100)
    with pytest.raises(ConfigError, match="min_clients"):
        dataclasses.replace(cfg0, dp=short, bits=30)
    # too small a modulus for the noise tail, a dim or clip that disagree
    with pytest.raises(ConfigError, match="overflow_bits"):
        dataclasses.replace(cfg0, dp=dp, bits=overflow_bits(dp, 6) - 1)
    with pytest.raises(ConfigError, match="dim"):
        dataclasses.replace(cfg0, dp=dataclasses.replace(dp, dim=99), bits=30)
    with pytest.raises(ConfigError, match="clip"):
        dataclasses.replace(cfg0, dp=dp, bits=30, clip=0.5)
    # integers where floats belong are normalised: one encoding per config
    ints = dataclasses.replace(dp, epsilon=2, l2_clip=1)
    assert codec.encode(dataclasses.replace(cfg, dp=ints)) == codec.encode(cfg)
    # the aggregator's guard
    check_dp_included(cfg, dp.min_clients)
    with pytest.raises(ProtocolError, match="min_clients"):
        check_dp_included(cfg, dp.min_clients - 1)


def test_simulated_dp_round_verifies_within_the_stated_noise(tmp_path: Path, capsys) -> None:
    params = SimParams(
        clients=6, committee=3, threshold=1, dim=300, dp_epsilon=4.0, dp_rounds=3, seed=1
    )
    res = simulate(params, tmp_path / "round")
    assert res.verified, res.findings
    assert res.dp is not None and res.dp["mechanism"] == "ddg" and res.dp["epsilon"] == 4.0
    assert 0 < res.max_abs_error <= res.error_bound
    # the noise is really there: the error is of the order of the stated stddev
    sd = res.dp["noise_stddev_sum"] * math.sqrt(res.included / 4) / res.included
    assert res.max_abs_error > 0.5 * sd
    # the transcript records the DpConfig
    transcript, blobs = load_round(tmp_path / "round")
    cfg = codec.decode(transcript.events[0].body, RoundConfig)
    assert cfg.dp == params.dp_config() and cfg.bits == overflow_bits(cfg.dp, 6)
    report = verify_round(transcript, blobs)
    assert report.ok and report.dp == res.dp
    assert cli_main(["verify", str(tmp_path / "round"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["verified"] and out["dp"] == res.dp
    assert isinstance(codec.decode(codec.encode(transcript), TranscriptFile), TranscriptFile)


def test_cli_simulate_dp_json(capsys, tmp_path: Path) -> None:
    argv = ["simulate", "--clients", "5", "--committee", "3", "--threshold", "1", "--dim", "64"]
    code = cli_main(
        argv
        + ["--dp-epsilon", "3", "--dp-delta", "1e-6", "--dp-rounds", "2"]
        + ["--dp-mechanism", "skellam", "--out", str(tmp_path / "r"), "--json"]
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["verified"]
    assert set(out["dp"]) == {
        "mechanism",
        "epsilon",
        "delta",
        "rounds",
        "noise_stddev_sum",
        "l2_clip",
    }
    assert out["dp"]["mechanism"] == "skellam" and out["dp"]["delta"] == 1e-6
    # unreachable targets are a usage error, not a traceback
    assert cli_main(argv + ["--dp-epsilon", "-1", "--json"]) == 2


def test_dp_record_decode_round_trips_and_refuses_every_malformed_record() -> None:
    """The record a chain-native node is sent (StageRequest.dp): its canonical bytes
    decode to the same DpConfig; anything else is an InvalidEncoding naming the field."""
    import msgpack

    from secagg.config import DP_RECORD_MAX_BYTES, dp_record_decode
    from secagg.errors import InvalidEncoding

    dp = calibrate(2.0, 1e-5, 4, 1.0, 3, 1.0, 100)
    good = dp_record_bytes(dp)
    assert dp_record_decode(good) == dp and dp_record_decode(dp_record_bytes(NO_DP)) == NO_DP
    fields = msgpack.unpackb(good)
    assert fields[3] == 4  # rounds
    for data, match in (
        (b"", "expected 1..256 bytes"),
        (good + b"\x00" * DP_RECORD_MAX_BYTES, "expected 1..256 bytes"),
        (good[:-3], "not a msgpack value"),
        (msgpack.packb(["ddg", "2.0", *fields[2:]]), r"dp\.epsilon"),  # a string
        (msgpack.packb(fields[:-1]), "expected 12 fields"),
        (msgpack.packb([*fields[:3], 4.0, *fields[4:]]), r"dp\.rounds"),  # a float
        (msgpack.packb([fields[0], 1e-9, *fields[2:]]), "dp"),  # below the accountant's
    ):
        with pytest.raises(InvalidEncoding, match=match):
            dp_record_decode(data)
    # the same values in another msgpack encoding (rounds = 4 as a uint16, not a
    # fixint) are not the canonical bytes whose hash the chain holds
    parts = [msgpack.packb(f) for f in fields]
    parts[3] = b"\xcd\x00\x04"
    other = bytes([0x90 | len(parts)]) + b"".join(parts)
    assert msgpack.unpackb(other) == fields and other != good
    with pytest.raises(InvalidEncoding, match="canonical"):
        dp_record_decode(other)


@pytest.mark.parametrize("chain", [False, True], ids=["relayed", "chain-native"])
def test_flower_mod_round_with_dp(tmp_path: Path, monkeypatch, request, chain: bool) -> None:
    """The Flower mod in a DP round: nodes send their clipped, noised update (trained
    minus received parameters), unweighted. Relayed (memory board behind the server) or
    chain-native on anvil (each node attaches with the dp record the server sends, the
    chain holding its hash; the server holds no node's key)."""
    pytest.importorskip("flwr")
    from flwr.app import Context, Message, RecordDict
    from flwr.app.message_type import MessageType
    from flwr.common import (
        Code,
        FitIns,
        FitRes,
        Status,
        ndarrays_to_parameters,
        parameters_to_ndarrays,
    )
    from flwr.compat.common import recorddict_compat as compat

    from fl.flower import (
        RECORD_KEY,
        PvssSecAggWorkflow,
        pvss_secagg_mod,
        reply_from_record,
        request_to_record,
    )
    from fl.host import NodeRoles, RoundHost, drive_round, make_round_config
    from fl.relay import StageRequest
    from secagg.identity import Identity
    from secagg.roster import make_deployment

    identity = pytest.importorskip("flwr.supercore.task_identity").TaskIdentity
    monkeypatch.setattr(identity, "_task_id", 1)
    monkeypatch.setattr(identity, "_run_id", 1)
    monkeypatch.setattr(identity, "_node_id", 1)

    nodes = [11, 22, 33, 44]
    shapes = [(4, 8), (8,)]
    global_arrays = [np.full(s, 0.5, dtype=np.float32) for s in shapes]
    dim = sum(a.size for a in global_arrays)
    roster, paths = make_deployment(tmp_path / "deployment", 4, 3, 1)
    server = Identity.generate()
    workflow = PvssSecAggWorkflow(
        roster, identity=server, dp=DpSpec(epsilon=8.0, rounds=2, l2_clip=1.0)
    )
    cfg = workflow.with_dp(
        make_round_config(
            round_id=1,
            n_clients=4,
            committee_size=3,
            threshold=1,
            dim=dim,
            clip=8.0,
            quant_bits=16,
            max_weight=100,
            aggregator=server.address,
            members=roster.committee,
            clients=roster.clients,
        )
    )
    assert cfg.has_dp and cfg.dp.min_clients == cfg.min_included and cfg.clip == 1.0
    roles = [NodeRoles(n, i + 1, i + 1 if i < 3 else 0) for i, n in enumerate(nodes)]
    extra: dict = {}
    node_extra: dict = {}
    if chain:
        pytest.importorskip("web3")
        from secagg.boards.evm import fund_accounts

        url = request.getfixturevalue("anvil_url")
        fund_accounts(url, [server.address, *(Identity.load(p).address for p in paths)])
        extra = {"board": f"rpc:{url}", "chain_native": True}
        node_extra = {"pvss-rpc": url}
    host = RoundHost(cfg, tmp_path / "round-1", roles, identity=server, **extra)
    roster_path = str(tmp_path / "deployment" / "roster.json")
    contexts = {
        n: Context(
            run_id=1,
            node_id=n,
            node_config={
                "partition-id": i,
                "pvss-identity": str(paths[i]),
                "pvss-roster": roster_path,
                **node_extra,
            },
            state=RecordDict(),
            run_config={},
        )
        for i, n in enumerate(nodes)
    }
    step = np.random.default_rng(0).normal(size=dim)
    step *= 0.6 / np.linalg.norm(step)  # every update has L2 norm 0.6 < the clip

    def train(msg: Message, ctxt: Context) -> Message:
        p = int(ctxt.node_config["partition-id"])
        ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        arrays = parameters_to_ndarrays(ins.parameters)
        flat = np.concatenate([a.reshape(-1) for a in arrays]) + step
        out, k = [], 0
        for a in arrays:
            out.append(flat[k : k + a.size].reshape(a.shape).astype(np.float32))
            k += a.size
        res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(out), 10 * (p + 1), {})
        return Message(compat.fitres_to_recorddict(res, keep_input=True), reply_to=msg)

    def send(stage: str, requests: Mapping[int, StageRequest]):  # noqa: ANN202
        replies = {}
        for node, req in requests.items():
            content = (
                compat.fitins_to_recorddict(FitIns(ndarrays_to_parameters(global_arrays), {}), True)
                if stage == "upload"
                else RecordDict()
            )
            content.config_records[RECORD_KEY] = request_to_record(req)
            msg = Message(content, dst_node_id=node, message_type=MessageType.TRAIN, group_id="1")
            out = pvss_secagg_mod(msg, contexts[node], train)
            replies[node] = reply_from_record(out.content.config_records[RECORD_KEY])
        return replies

    outcome = drive_round(host, send)
    assert outcome.verified and outcome.total_weight == 4  # unweighted: every weight is 1
    assert host.board.config.dp == cfg.dp  # on the chain: the record its hash commits to
    # the mean of the updates (not of the parameters), within the stated noise
    from secagg.dp import mean_error_bound

    err = np.abs(outcome.mean - step.astype(np.float32).astype(np.float64)).max()
    assert err <= mean_error_bound(cfg.dp, 4)


def test_a_dp_round_verifies_on_the_embedded_chain(tmp_path) -> None:
    """The round contract sizes a DP round's masked vectors like RoundConfig (padded
    dimension + 1) and the chain's transcript verifies."""
    pytest.importorskip("eth_tester", reason="the evm extra is needed for the chain board")
    from secagg.simulate import SimParams, simulate

    r = simulate(
        SimParams(clients=6, committee=3, threshold=1, dim=24, board="evm", dp_epsilon=8.0, seed=3),
        tmp_path / "round",
    )
    assert r.verified, r.findings
    assert r.included == 6 and r.params["dp_epsilon"] == 8.0

"""A chain-native Flower deployment on loopback: anvil, ``flower-superlink`` and three
``flower-supernode`` processes run tests/flower_app with ``rpc`` set, so the ServerApp's
``PvssSecAggWorkflow(board="rpc:URL", chain_native=True)`` deploys the round contracts
from the server's own (funded) account, and each node's ``pvss_secagg_mod`` reads the
round from anvil through its own ``node_config["pvss-rpc"]`` and posts from its own
identity's (funded) account. Two Flower rounds run under one task contract
(``run_config["pvss-task"] = "new"``): the first deploys the task with its roster, both
are opened under it (round ids 1 and 2, a contract each). The server process holds no
party's key: the only identity file it reads is its own, and every post's transaction
``from`` is the posting party's address. The clients' keys are imported (SPEC.md §7.8):
each node registered its key on the task once (round 1, from its own account), neither
round holds a client ``Registration``, and the server's ``KeysImported`` registered
every client seat in each round. Each round verifies, also against the chain,
and equals FedAvg within the quantization bound. Every process (anvil included) is
stopped by PID afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")
pytest.importorskip("web3")

from .test_fl_deployment import (  # noqa: E402
    APP_DIR,
    BIN,
    NODES,
    Deployment,
    _app_with_its_dependencies,
)

pytestmark = pytest.mark.slow


def test_chain_native_rounds_under_one_task_on_a_loopback_deployment(
    wheel: Path, tmp_path: Path
) -> None:
    from secagg.boards.evm import ANVIL, EvmBoard, fund_accounts, start_anvil, stop_process
    from secagg.boards.task import EvmTask
    from secagg.identity import Identity
    from secagg.messages import ROLE_AGGREGATOR, ROLE_CLIENT, ROLE_MEMBER
    from secagg.quantize import quantization_error_bound
    from secagg.verifier import load_round, verify_round

    if not ANVIL.exists():
        pytest.skip(f"anvil not installed ({ANVIL} missing)")
    sys.path.insert(0, str(APP_DIR))
    try:
        from pvss_flower_app.task import CLIP, COUNTER, expected_fedavg, initial_arrays
    finally:
        sys.path.remove(str(APP_DIR))

    rounds = tmp_path / "rounds"
    server_path = tmp_path / "server" / "identity.json"
    server = Identity.generate()
    server.save(server_path)
    anvil, url = start_anvil(tmp_path / "anvil.log")
    dep = None
    try:
        dep = Deployment(tmp_path)
        nodes = [Identity.load(p) for p in dep.identities]  # the setup funds their accounts
        fund_accounts(url, [server.address, *(n.address for n in nodes)])
        dep.extra_node_config = f' pvss-rpc="{url}"'
        dep.start()
        run = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                str(_app_with_its_dependencies(wheel, tmp_path / "app")),
                "loopback",
                "--run-config",
                f'round-dir="{rounds}" num-nodes={NODES} roster="{dep.roster_path}" '
                f'rpc="{url}" pvss-identity="{server_path}" num-server-rounds=2 '
                'pvss-task="new"',
                "--stream",
            ],
            env=dep.env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=540,
        )
        summary_path = rounds / "summary.json"
        assert summary_path.exists(), (
            f"flwr run exited {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}\n"
            + dep.tail()
        )
        summary = json.loads(summary_path.read_text())
        assert summary["verified"] == [True, True]
        # the server process read one identity file: its own
        assert summary["identities_loaded"] == [str(server_path)]
        contracts = summary["contracts"]
        assert len(set(contracts)) == 2  # a fresh contract per round
        task = EvmTask.attach(url, summary["task"])  # PvssTask code, audited
        assert task.owner_address == server.address and task.last_round == 2
        for rid, contract in enumerate(contracts, 1):  # the task opened both, in order
            assert task.round_address(rid).lower() == "0x" + contract
        heads, task_keys = [], []
        for contract in contracts:
            board = EvmBoard.attach(url, "0x" + contract)
            cfg = board.config
            owner = {(ROLE_AGGREGATOR, 0): server.address}
            owner.update({(ROLE_MEMBER, k + 1): a for k, a in enumerate(cfg.members)})
            owner.update({(ROLE_CLIENT, i + 1): a for i, a in enumerate(cfg.clients)})
            assert cfg.clients == task.roster()[1]
            posts = 0
            assert (
                not [  # imported client keys: no client registers in the round
                    log
                    for log in board.contract.events.Registered().get_logs(
                        from_block=board.start_block
                    )
                    if log["args"]["role"] == ROLE_CLIENT
                ]
            )
            for name in (
                "Registered",
                "KeysImported",
                "SeedRevealed",
                "DealingsPosted",
                "MaskedInput",
                "Confirmed",
                "SharesPosted",
                "ResultPosted",
            ):
                for log in getattr(board.contract.events, name)().get_logs(
                    from_block=board.start_block
                ):
                    a = log["args"]
                    role = a.get("role", ROLE_MEMBER if "member" in a else ROLE_CLIENT)
                    party = a.get("party", a.get("member", a.get("dealer", a.get("client", 0))))
                    if name in ("ResultPosted", "KeysImported"):
                        role, party = ROLE_AGGREGATOR, 0
                    if name == "KeysImported":
                        assert list(a["parties"]) == list(range(1, NODES + 1))
                    sender = board.w3.eth.get_transaction(log["transactionHash"])["from"]
                    assert sender.lower() == "0x" + owner[(role, party)].hex(), (name, role, party)
                    posts += 1
            assert posts == len(board.events()) - 1  # every post but event 0 (the deployment)
            heads.append(bytes(board.contract.functions.head().call()))
            task_keys.append(board.task_keys())
        # every client registered on the task once, from its own account
        clients = task.roster()[1]
        regs = [
            log
            for log in task.contract.events.TaskRegistered().get_logs(from_block=0)
            if log["args"]["role"] == ROLE_CLIENT
        ]
        assert sorted(log["args"]["party"] for log in regs) == list(range(1, NODES + 1))
        for log in regs:
            sender = task.w3.eth.get_transaction(log["transactionHash"])["from"]
            assert sender.lower() == "0x" + clients[log["args"]["party"] - 1].hex()
    finally:
        if dep is not None:
            dep.stop()
        stop_process(anvil)
    assert dep is not None and all(p.poll() is not None for p in dep.procs)
    assert anvil.poll() is not None

    assert [rec["partitions"] for rec in summary["rounds"]] == [[0, 1, 2], [0, 1, 2]]
    bound = quantization_error_bound(CLIP, 16) + 1e-6  # + float32 rounding of the result
    previous = initial_arrays()
    for rec in summary["rounds"]:
        got = [np.asarray(a) for a in rec["arrays"]]
        want = expected_fedavg(previous, rec["partitions"])
        for g, w in zip(got[:-1], want, strict=True):
            assert np.abs(g - w).max() < bound
        assert got[-1].tolist() == [COUNTER]  # integer array carried, not averaged
        previous = [*(g.astype(np.float32) for g in got[:-1]), np.array([COUNTER])]
    for round_dir, head, keys in zip(summary["round_dirs"], heads, task_keys, strict=True):
        transcript, blobs = load_round(Path(round_dir))
        # the round directory is the chain's; its imported keys the task's
        report = verify_round(transcript, blobs, head, task_keys=keys)
        assert report.ok and len(report.included) == NODES

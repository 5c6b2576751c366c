"""kill -9 of the ServerApp in a chain-native Flower deployment on loopback (SPEC.md
§6.14): anvil, ``flower-superlink`` and three ``flower-supernode`` s (each node with its
own ``pvss-rpc`` and ``pvss-state-dir``) run tests/flower_app under a task the first run
deploys (``pvss-task="new"``). Once the stage's first post is on the chain (the nodes
post it from their own accounts) the ``flwr-serverapp`` process is killed with SIGKILL.
A second ``flwr run`` under the same ``pvss-run-name`` and server identity attaches the
task the first one kept in ``task.json`` (no second task is deployed), rebuilds the
round from the chain (``chain.json``), finishes it: it verifies against the chain, is
plain FedAvg within the quantization bound with all three clients included, and no
seat whose post the chain held is asked for that stage again (an upload whose blob the
dead server never stored is the one exception: asked again, its node sends the same
masked vector, whose digest is already on-chain). anvil outlives the killed server, as
a chain does; every process is stopped by PID, also on failure."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")
pytest.importorskip("web3")

from secagg import codec  # noqa: E402
from secagg.messages import Confirmation, MaskedInputPost, SharesPost  # noqa: E402
from tests.test_fl_crash_recovery import (  # noqa: E402
    _serverapp_pids,
    kill_serverapp,
    rerun,
    stage_requests,
)
from tests.test_fl_deployment import (  # noqa: E402
    APP_DIR,
    BIN,
    NODES,
    Deployment,
    _app_with_its_dependencies,
)

pytestmark = pytest.mark.slow

RUN_NAME = "chain-crash"
WANT = {"upload": MaskedInputPost, "unmask": SharesPost}


def _chain_messages(board: object) -> list[object]:
    return [codec.decode(ev.body) for ev in board.events() if ev.seq > 0]  # type: ignore[attr-defined]


@pytest.mark.parametrize("stage", ["upload", "unmask"])
def test_chain_native_serverapp_killed_then_rerun_resumes_from_the_chain(
    stage: str, wheel: Path, tmp_path: Path
) -> None:
    from fl.host import CHAIN_FILE
    from secagg.blobs import BlobStore
    from secagg.boards.evm import ANVIL, EvmBoard, fund_accounts, start_anvil, stop_process
    from secagg.boards.task import EvmTask
    from secagg.identity import Identity
    from secagg.quantize import quantization_error_bound
    from secagg.verifier import BLOB_DIR, load_round, verify_round

    if not ANVIL.exists():
        pytest.skip(f"anvil not installed ({ANVIL} missing)")
    sys.path.insert(0, str(APP_DIR))
    try:
        from pvss_flower_app.task import CLIP, expected_fedavg, initial_arrays
    finally:
        sys.path.remove(str(APP_DIR))

    want = WANT[stage]
    rounds = tmp_path / "rounds"
    round_dir = rounds / RUN_NAME / "round-1"
    server_path = tmp_path / "server" / "identity.json"
    server = Identity.generate()
    server.save(server_path)
    anvil, url = start_anvil(tmp_path / "anvil.log")
    dep = None
    try:
        dep = Deployment(tmp_path)
        fund_accounts(url, [server.address, *(Identity.load(p).address for p in dep.identities)])
        dep.extra_node_config = f' pvss-rpc="{url}" pvss-state-dir="{tmp_path}/node-state-{{i}}"'
        run_config = (
            f'round-dir="{rounds}" num-nodes={NODES} roster="{dep.roster_path}" '
            f'rpc="{url}" pvss-identity="{server_path}" pvss-task="new" '
            f'pvss-run-name="{RUN_NAME}"'
        )
        app = _app_with_its_dependencies(wheel, tmp_path / "app")
        flwr_run = [str(BIN / "flwr"), "run", str(app), "loopback", "--run-config", run_config]
        dep.start()
        first = subprocess.run(
            flwr_run, env=dep.env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
        deadline = time.monotonic() + 400
        board = None
        while board is None or not any(isinstance(m, want) for m in _chain_messages(board)):
            assert time.monotonic() < deadline, f"no {want.__name__} in 400 s\n" + dep.tail()
            assert not (rounds / "summary.json").exists(), "the round ended before the kill"
            if board is None and (round_dir / CHAIN_FILE).is_file():
                contract = json.loads((round_dir / CHAIN_FILE).read_text())["contract"]
                board = EvmBoard.attach(url, contract)  # read-only, as an auditor
            time.sleep(0.05)
        kill_serverapp(dep)
        assert not (rounds / "summary.json").exists()
        time.sleep(1.0)  # a node's transaction already on its way lands
        before = _chain_messages(board)
        stored = BlobStore(round_dir / BLOB_DIR)
        kept_blobs = sum(isinstance(m, MaskedInputPost) and m.digest in stored for m in before)
        task_kept = json.loads((rounds / RUN_NAME / "task.json").read_text())["task"]

        second, summary_path = rerun(flwr_run, dep, tmp_path, rounds, timeout=400)
        summary = json.loads(summary_path.read_text())
        task = EvmTask.attach(url, task_kept)
        assert summary["task"].lower() == task_kept.lower()  # the kept task, not a second one
        assert task.last_round == 1  # one round opened: the resumed one
        assert summary["contracts"] == [contract.lower().removeprefix("0x")]
        head = bytes(board.contract.functions.head().call())
        keys = board.task_keys()
        after = _chain_messages(board)
    finally:
        if dep is not None:
            dep.stop()
        stop_process(anvil)
    assert dep is not None and all(p.poll() is not None for p in dep.procs)
    assert anvil.poll() is not None
    assert not _serverapp_pids(dep.link_port)

    out = second.stdout
    assert "resumed from the chain" in out, out[-3000:]
    assert summary["verified"] == [True]
    (rec,) = summary["rounds"]
    assert rec["partitions"] == [0, 1, 2]
    want_mean = expected_fedavg(initial_arrays(), rec["partitions"])
    bound = quantization_error_bound(CLIP, 16) + 1e-6
    for got, expect in zip(rec["arrays"][:-1], want_mean, strict=True):
        assert np.abs(np.asarray(got) - expect).max() < bound
    transcript, blobs = load_round(Path(summary["round_dirs"][0]))
    report = verify_round(transcript, blobs, head, task_keys=keys)  # the chain's head
    assert report.ok and len(report.included) == NODES
    # nothing lost: the chain at the kill opens the final transcript, unchanged
    assert after[: len(before)] == before
    assert [codec.decode(ev.body) for ev in transcript.events[1:]] == after
    # nothing re-asked: only the seats the chain lacked (or whose blob was lost)
    asked = stage_requests(out)
    if stage == "upload":
        assert asked.get("upload", 0) == NODES - kept_blobs, (asked, kept_blobs)
        assert "register" not in asked and "deal" not in asked
    else:
        shared = {m.member for m in before if isinstance(m, SharesPost)}
        assert asked.get("unmask", 0) == NODES - len(shared), (asked, shared)
        confirmed = sum(isinstance(m, Confirmation) for m in before)
        assert asked.get("confirm", 0) == NODES - confirmed, (asked, confirmed)
        assert "upload" not in asked

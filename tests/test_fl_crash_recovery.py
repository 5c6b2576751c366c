"""kill -9 of the ServerApp in a real Flower deployment on loopback (SPEC.md §6.14).

``flower-superlink`` and three ``flower-supernode`` s (tests/test_fl_deployment.py's
``Deployment``, each node with its own ``pvss-state-dir``) run tests/flower_app. The
first ``flwr run`` is watched from outside: once the round's journal holds every post
of the stage before (so the stage's requests are out) and a node's state file shows it
acted on the stage (a client that uploaded has erased its round key), the
``flwr-serverapp`` process (where Flower ≥ 1.13 runs our
ServerApp and its ``RoundHost``) is killed with SIGKILL, found by its command line. A
second ``flwr run`` under the same ``pvss-run-name`` and server identity resumes the
round from its journal: it must finish, verify publicly, give plain FedAvg within the
quantization bound with all three clients included (so a client that had uploaded and
erased its key sent its upload again), and not ask again any client whose upload (or
member whose shares) the journal held. The per-stage sweep runs in
tests/test_durable.py (a round process over a plain transport); here the
representative stages upload and unmask. Every process is stopped by PID, also on
failure."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from secagg import codec  # noqa: E402
from secagg.boards import JOURNAL_FILE, Journal, JournalCorrupt  # noqa: E402
from secagg.messages import (  # noqa: E402
    Confirmation,
    DealingsPost,
    MaskedInputPost,
    SharesPost,
)
from tests.test_fl_deployment import (  # noqa: E402
    APP_DIR,
    BIN,
    NODES,
    Deployment,
    _app_with_its_dependencies,
)

pytestmark = pytest.mark.slow

RUN_NAME = "crash"


def _journal_messages(path: Path) -> list[object]:
    if not path.exists():
        return []
    try:
        records, _, _ = Journal.read(path)
    except (JournalCorrupt, OSError):
        return []
    return [codec.decode(ev.body) for kind, ev in records if kind == 0 and ev.seq > 0]


def _serverapp_pids(link_port: int) -> list[int]:
    """The flwr-serverapp processes of this deployment's SuperLink."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "flwr-serverapp" in cmd and f"127.0.0.1:{link_port}" in cmd:
            pids.append(int(entry.name))
    return pids


def _state_mtimes(base: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in base.glob("node-state-*/*.state")}


def kill_serverapp(dep: Deployment) -> None:
    """SIGKILL the deployment's one flwr-serverapp process and wait until it is gone."""
    pids = _serverapp_pids(dep.link_port)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    end = time.monotonic() + 20
    while Path(f"/proc/{pids[0]}").exists() and time.monotonic() < end:
        time.sleep(0.1)  # gone (or a zombie its parent reaps)


def rerun(
    flwr_run: list[str], dep: Deployment, cwd: Path, rounds: Path, *, timeout: int
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The second ``flwr run`` (streamed, to read the server's log), which must finish
    the round: (the process, its summary.json)."""
    second = subprocess.run(
        [*flwr_run, "--stream"],
        env=dep.env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    summary_path = rounds / "summary.json"
    assert summary_path.exists(), (
        f"flwr run exited {second.returncode}\n{second.stdout[-3000:]}\n"
        f"{second.stderr[-2000:]}\n" + dep.tail()
    )
    return second, summary_path


def stage_requests(out: str) -> dict[str, int]:
    """stage -> how many nodes the server's log says it sent that stage's requests to."""
    found = re.findall(r"\[Stage \d (\w+)\] Sending requests to (\d+) nodes", out)
    return {stage: int(n) for stage, n in found}


@pytest.mark.parametrize("stage", ["upload", "unmask"])
def test_serverapp_killed_then_rerun_resumes(stage: str, wheel: Path, tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(APP_DIR))
    try:
        from pvss_flower_app.task import CLIP, expected_fedavg, initial_arrays
    finally:
        sys.path.remove(str(APP_DIR))
    from secagg.identity import Identity
    from secagg.quantize import quantization_error_bound
    from secagg.verifier import load_round, verify_round

    # the stage's requests are out once the journal holds all posts of the stage before
    want, count = {"upload": (DealingsPost, NODES), "unmask": (Confirmation, NODES)}[stage]
    rounds = tmp_path / "rounds"
    server_id = Identity.generate().save(tmp_path / "server.json")
    journal = rounds / RUN_NAME / "round-1" / JOURNAL_FILE
    dep = Deployment(tmp_path)
    dep.extra_node_config = f' pvss-state-dir="{tmp_path}/node-state-{{i}}"'
    run_config = (
        f'round-dir="{rounds}" num-nodes={NODES} roster="{dep.roster_path}" '
        f'pvss-run-name="{RUN_NAME}" pvss-identity="{server_id}"'
    )
    app = _app_with_its_dependencies(wheel, tmp_path / "app")  # as the README's recipe
    flwr_run = [str(BIN / "flwr"), "run", str(app), "loopback", "--run-config", run_config]
    try:
        dep.start()
        first = subprocess.run(
            flwr_run, env=dep.env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
        deadline = time.monotonic() + 300
        while sum(isinstance(m, want) for m in _journal_messages(journal)) < count:
            assert time.monotonic() < deadline, f"no {want.__name__} in 300 s\n" + dep.tail()
            assert not (rounds / "summary.json").exists(), "the round ended before the kill"
            time.sleep(0.05)
        # then a node acts on the stage (its state file changes: a client that uploaded
        # has erased its round key, a member that sent its shares its member key)
        seen = _state_mtimes(tmp_path)
        while _state_mtimes(tmp_path) == seen:
            assert time.monotonic() < deadline, f"no node acted at {stage}\n" + dep.tail()
            time.sleep(0.01)
        kill_serverapp(dep)
        before = _journal_messages(journal)
        assert not (rounds / "summary.json").exists()
        second, summary_path = rerun(flwr_run, dep, tmp_path, rounds, timeout=300)
    finally:
        dep.stop()
    assert all(p.poll() is not None for p in dep.procs)
    assert not _serverapp_pids(dep.link_port)

    out = second.stdout
    assert "resumed from" in out, out[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["verified"] == [True]
    (rec,) = summary["rounds"]
    assert rec["partitions"] == [0, 1, 2]
    want_mean = expected_fedavg(initial_arrays(), rec["partitions"])
    bound = quantization_error_bound(CLIP, 16) + 1e-6
    for got, expect in zip(rec["arrays"][:-1], want_mean, strict=True):
        assert np.abs(np.asarray(got) - expect).max() < bound
    transcript, blobs = load_round(Path(summary["round_dirs"][0]))
    report = verify_round(transcript, blobs)
    assert report.ok and len(report.included) == NODES
    # nothing lost: the killed run's events open the final transcript, unchanged
    final = [codec.decode(ev.body) for ev in transcript.events[1:]]
    assert final[: len(before)] == before
    # nothing re-asked: the resumed server asked only the seats the journal lacked
    uploaded = sum(isinstance(m, MaskedInputPost) for m in before)
    shared = {m.member for m in before if isinstance(m, SharesPost)}
    asked = stage_requests(out)
    if stage == "upload":
        assert asked.get("upload", 0) == NODES - uploaded, (asked, uploaded)
        assert "register" not in asked and "deal" not in asked
    else:
        assert asked.get("unmask", 0) == len(set(range(1, 4)) - shared), (asked, shared)
        confirmed = sum(isinstance(m, Confirmation) for m in before)
        assert asked.get("confirm", 0) == NODES - confirmed, (asked, confirmed)
        assert "upload" not in asked

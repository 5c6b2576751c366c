"""A real Flower deployment on loopback: ``flower-superlink`` and three
``flower-supernode`` processes (insecure, 127.0.0.1, free ports, each with its own
``FLWR_HOME`` as on its own machine) run the Flower app in tests/flower_app
(``PvssSecAggWorkflow`` + ``pvss_secagg_mod``) for one round, started with ``flwr run``.
The app declares its real dependencies, README "pip install into your Flower app"
followed literally: ``pvss-secagg @ file://<checkout>/dist/<wheel>`` (the wheel built by
the README's command, the ``wheel`` fixture); the SuperLink installs
them for the ServerApp at run time (``uv sync``, Flower's runtime dependency
installation), which must have installed pvss-secagg from that wheel; the SuperNodes
have it pre-installed (this venv) and runtime installation off, as README advises. The round must
verify, its transcript must pass the public verifier, and the result must equal plain
FedAvg within the quantization bound. Every process is stopped afterwards, also when
the test fails. Needs the package index uv is configured with (PyPI by default) for the
app's other dependencies."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from .conftest import README_CHECKOUT_PLACEHOLDER, readme_app_dependencies

pytest.importorskip("flwr")

APP_DIR = Path(__file__).parent / "flower_app"
BIN = Path(sys.executable).parent
NODES = 3
# every ServerApp/ClientApp launch gets a fresh runtime environment: without
# NUMBA_CACHE_DIR each compiles the numba kernels it uses anew; even with it, each
# node compiles them once (the run took 10-15 min on a 2-core machine under load 5-10)
STAGE_TIMEOUT = 1200.0
RUN_TIMEOUT = 1800

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _descendants_by_marker(markers: list[str]) -> list[int]:
    """PIDs of processes whose command line names one of our ports: the SuperExec /
    ServerApp / ClientApp processes Flower starts detached (their own session)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmd for m in markers):
            pids.append(int(entry.name))
    return pids


class Deployment:
    """Starts the processes; ``stop`` ends every one of them (by process id)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.link_port = _free_port()
        self.node_ports = [_free_port() for _ in range(NODES)]
        # the deployment ceremony: each node's own identity file, everyone's roster
        from secagg.roster import make_deployment

        self.roster, self.identities = make_deployment(tmp / "deployment", NODES, 3, 1)
        self.roster_path = tmp / "deployment" / "roster.json"
        self.extra_node_config = ""  # appended to every node's --node-config
        # the CLI's home holds the federation; the SuperLink and each SuperNode get their
        # own (installed apps, runtime environments), as on machines of their own
        home = tmp / "flwr-home" / "cli"
        home.mkdir(parents=True)
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\n'
            f'address = "127.0.0.1:{self.link_port}"\ninsecure = true\n'
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FLWR_")},
            "FLWR_HOME": str(home),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        home = self.tmp / "flwr-home" / name
        home.mkdir(parents=True)
        fh = log.open("wb")
        proc = subprocess.Popen(
            [str(BIN / args[0]), *args[1:]],
            stdout=fh,
            stderr=subprocess.STDOUT,
            # a numba cache outside the per-launch runtime environment: each node then
            # compiles a kernel once per run, not once per ClientApp launch
            env={**self.env, "FLWR_HOME": str(home), "NUMBA_CACHE_DIR": str(home / "numba")},
            cwd=self.tmp,
            start_new_session=True,
        )
        fh.close()
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def start(self) -> None:
        link = self._start(
            "superlink",
            [
                "flower-superlink",
                "--insecure",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.link_port),
            ],
        )
        _wait_listening(self.link_port, link, self.logs[-1])
        for i, port in enumerate(self.node_ports):
            node = self._start(
                f"supernode-{i}",
                [
                    "flower-supernode",
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{self.link_port}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--node-config",
                    f"partition-id={i} num-partitions={NODES} "
                    f'pvss-identity="{self.identities[i]}" pvss-roster="{self.roster_path}"'
                    + self.extra_node_config.format(i=i),
                ],
            )
            _wait_listening(port, node, self.logs[-1])

    def stop(self) -> None:
        markers = [f"127.0.0.1:{p}" for p in (self.link_port, *self.node_ports)]
        markers += [f"--parent-pid {p.pid}" for p in self.procs]
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        deadline = time.monotonic() + 10
        while (left := _descendants_by_marker(markers)) and time.monotonic() < deadline:
            time.sleep(0.5)  # Flower's detached helpers exit once their parent is gone
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in self.logs
        )


def _app_with_its_dependencies(wheel: Path, dest: Path) -> Path:
    """tests/flower_app copied to ``dest``, its pyproject's placeholder replaced by the
    path of the checkout the wheel was built in (README: "/ABSOLUTE/PATH/TO replaced by
    this checkout's absolute path")."""
    shutil.copytree(APP_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = dest / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    # the app declares what the README tells a user to declare (and numpy, which it imports)
    assert [d for d in declared if d in readme_app_dependencies()] == readme_app_dependencies()
    text = pyproject.read_text().replace(README_CHECKOUT_PLACEHOLDER, str(wheel.parent.parent))
    pyproject.write_text(text)
    deps = tomllib.loads(text)["project"]["dependencies"]
    assert f"pvss-secagg @ {wheel.as_uri()}" in deps, deps
    return dest


def _installed_from_the_wheel(log: str, wheel: Path) -> int:
    """How many app launches in ``log`` installed pvss-secagg from ``wheel`` (Flower
    logs ``Installed: [...]`` after each runtime ``uv sync``)."""
    pattern = re.compile(r"Installed: \[([^\]]*)\]")
    want = f"pvss-secagg==0.1.0 (from {wheel.as_uri()})"
    return sum(want in m.group(1).split(", ") for m in pattern.finditer(log))


def test_one_round_on_a_loopback_deployment(wheel: Path, tmp_path: Path) -> None:
    app_dir = _app_with_its_dependencies(wheel, tmp_path / "app")
    sys.path.insert(0, str(APP_DIR))
    try:
        from pvss_flower_app.task import CLIP, expected_fedavg, initial_arrays
    finally:
        sys.path.remove(str(APP_DIR))
    from secagg.quantize import quantization_error_bound
    from secagg.verifier import load_round, verify_round

    rounds = tmp_path / "rounds"
    dep = Deployment(tmp_path)
    try:
        dep.start()
        run = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                str(app_dir),
                "loopback",
                "--run-config",
                f'round-dir="{rounds}" num-nodes={NODES} roster="{dep.roster_path}" '
                f"timeout={STAGE_TIMEOUT}",
                "--stream",
            ],
            env=dep.env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
        summary_path = rounds / "summary.json"
        assert summary_path.exists(), (
            f"flwr run exited {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}\n"
            + dep.tail()
        )
    finally:
        dep.stop()
    assert all(p.poll() is not None for p in dep.procs)

    # the ServerApp (its logs stream to `flwr run`) installed pvss-secagg from the wheel;
    # the SuperNodes run with runtime installation off (pvss-secagg pre-installed: this
    # venv), as README says: Flower 1.42 pushes a ClientApp's Context only after deleting
    # its runtime environment, so a node's next stage could start from stale state
    assert _installed_from_the_wheel(run.stdout, wheel) == 1, run.stdout[-3000:]
    for log in dep.logs[1:]:
        assert _installed_from_the_wheel(log.read_text(errors="replace"), wheel) == 0, log

    summary = json.loads(summary_path.read_text())
    assert summary["verified"] == [True]
    (rec,) = summary["rounds"]
    assert rec["partitions"] == [0, 1, 2]
    want = expected_fedavg(initial_arrays(), rec["partitions"])
    bound = quantization_error_bound(CLIP, 16) + 1e-6
    for got, expect in zip(rec["arrays"][:-1], want, strict=True):
        assert np.abs(np.asarray(got) - expect).max() < bound
    assert rec["arrays"][-1] == [7]  # the integer array, carried through
    transcript, blobs = load_round(Path(summary["round_dirs"][0]))
    report = verify_round(transcript, blobs)
    assert report.ok and len(report.included) == NODES

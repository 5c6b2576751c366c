"""The package as a user gets it: the wheel (only pvss/, secagg/, fl/ at top level, the
contract artifacts as package data) installed outside the checkout runs
``simulate --board evm`` from another directory; and the EVM board's failures a pip user
meets first (no evm extra, no anvil, a dead RPC URL) are one-line typed errors that say
what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from secagg.errors import ConfigError, ProtocolError

from .conftest import README_CHECKOUT_PLACEHOLDER, ROOT, readme_app_dependencies

PACKAGED = ("PvssRound.json", "PvssRoundInit.json", "PvssTask.json", "PvssVerifier.json")


def test_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"pvss", "secagg", "fl"}, sorted(top)
    for name in PACKAGED:
        data = zipfile.ZipFile(wheel).read(f"secagg/boards/artifacts/{name}")
        assert data == (ROOT / "contracts" / "build" / name).read_bytes(), name
    (info,) = dist_info
    assert f"{info}/licenses/LICENSE" in names
    meta = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in meta
    assert "Requires-Dist: py-ecc" in meta and 'extra == "dev"' in meta.split("py-ecc", 1)[1]


def test_wheel_runs_the_evm_board_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """Installed with ``pip install --target`` (dependencies: this venv's site-packages,
    no download) and run with ``python -S`` (no .pth files, so not the editable install
    of this checkout) from a directory outside it."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
        + ["--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME") and not k.startswith("PVSS_SECAGG")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )

    def run(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-S", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            # a fresh install has no numba kernel cache: the round compiles every kernel
            # (about 40 s of CPU on 2 cores; minutes when the cores are shared)
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    where = run("-c", "import fl, pvss, secagg.boards.evm as e; print(e.__file__, fl.__file__)")
    assert all(Path(p).is_relative_to(target) for p in where.split()), where
    assert run("-m", "fl.cli", "--version").strip() == "pvss-secagg 0.1.0"
    out = run(
        "-m", "fl.cli", "simulate", "--board", "evm", "--clients", "4", "--committee", "3",
        "--threshold", "1", "--dim", "16", "--json", "--out", str(tmp_path / "round"),
    )  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    assert result["verified"] is True and result["params"]["board"] == "evm"
    assert not (cwd / "contracts").exists() and not any(cwd.iterdir())


def test_packaged_artifacts_equal_the_build() -> None:
    """secagg/boards/artifacts/ holds byte-identical copies of contracts/build/ (both
    written by `make contracts`; test_artifacts_are_reproducible compiles them)."""
    packaged = ROOT / "secagg" / "boards" / "artifacts"
    assert sorted(p.name for p in packaged.glob("*.json")) == sorted(PACKAGED)
    for name in PACKAGED:
        assert (packaged / name).read_bytes() == (
            ROOT / "contracts" / "build" / name
        ).read_bytes(), (
            f"secagg/boards/artifacts/{name} differs from contracts/build/: run `make contracts`"
        )


# -- the errors a pip user meets first ---------------------------------------------


def test_missing_evm_extra_names_the_extra() -> None:
    """Without eth_abi (the evm extra), importing the board is a ConfigError naming
    ``pip install 'pvss-secagg[evm]'``, not a ModuleNotFoundError."""
    code = (
        "import sys; sys.modules['eth_abi'] = None\n"
        "from secagg.errors import ConfigError\n"
        "try:\n    import secagg.boards.evm\n"
        "except ConfigError as exc:\n    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'pvss-secagg[evm]'" in proc.stdout and "eth_abi" in proc.stdout


def test_anvil_from_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from secagg.boards import evm

    monkeypatch.setenv(evm.ANVIL_ENV, "/nonexistent/anvil")
    with pytest.raises(ConfigError, match="PVSS_SECAGG_ANVIL=/nonexistent/anvil"):
        evm.find_anvil()
    if evm.ANVIL.exists():
        monkeypatch.setenv(evm.ANVIL_ENV, str(evm.ANVIL))
        assert evm.find_anvil() == evm.ANVIL


def test_missing_anvil_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from secagg.boards import evm

    monkeypatch.delenv(evm.ANVIL_ENV, raising=False)
    monkeypatch.setattr(evm, "ANVIL", tmp_path / "node_modules" / ".bin" / "anvil")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        evm.find_anvil()
    msg = str(info.value)
    assert "\n" not in msg
    for hint in ("@foundry-rs/anvil", "getfoundry.sh", "PVSS_SECAGG_ANVIL", "PATH"):
        assert hint in msg


def test_dead_rpc_url_is_one_line() -> None:
    from secagg.boards import evm

    url = f"http://127.0.0.1:{evm.free_port()}"
    with pytest.raises(ProtocolError) as info:
        evm.connect(f"rpc:{url}")
    msg = str(info.value)
    assert url in msg and "\n" not in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_an_app_depends_on_the_wheel_by_file_url(wheel: Path, tmp_path: Path) -> None:
    """README "pip install into your Flower app", followed literally: the wheel built by
    its command (the ``wheel`` fixture), an app whose ``[project] dependencies`` are the
    README's, its placeholder replaced by the checkout's path; pip resolves the app
    offline (``--no-index``: every other dependency is already in this venv) and would
    install pvss-secagg from that wheel. A dry run: this venv's editable install is
    untouched. (tests/test_fl_deployment.py has ``flwr run`` install the same
    dependencies on a SuperLink and its SuperNodes.)"""
    checkout = wheel.parent.parent
    deps = readme_app_dependencies(checkout)
    assert f"pvss-secagg @ {wheel.as_uri()}" in deps, (deps, README_CHECKOUT_PLACEHOLDER)
    app = tmp_path / "my-flower-app"
    (app / "my_flower_app").mkdir(parents=True)
    (app / "my_flower_app" / "__init__.py").write_text("")
    (app / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["setuptools>=77"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        'name = "my-flower-app"\n'
        'version = "1.0.0"\n'
        f"dependencies = {json.dumps(deps)}\n\n"
        "[tool.setuptools]\n"
        'packages = ["my_flower_app"]\n'
    )
    report = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-q"]
        + ["--no-build-isolation", "--report", str(report), str(app)],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    planned = {
        item["metadata"]["name"]: item["download_info"]["url"]
        for item in json.loads(report.read_text())["install"]
    }
    assert planned["pvss-secagg"] == wheel.as_uri()
    assert set(planned) == {"my-flower-app", "pvss-secagg"}, planned


def test_sdist_holds_what_its_tests_need(tmp_path: Path) -> None:
    """The sdist (MANIFEST.in) carries the suite, its vectors (the EVM ones included),
    the contracts with their committed build, the spec and the npm lock."""
    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (sdist,) = tmp_path.glob("pvss_secagg-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for need in (
        "LICENSE",
        "SPEC.md",
        "Makefile",
        "package-lock.json",
        "tests/conftest.py",
        "tests/vectors/evm-bn254/bn256Add.json",
        "tests/vectors/evm-bn254/README.md",
        "contracts/build.js",
        "contracts/build/PvssRound.json",
        "secagg/boards/artifacts/PvssRound.json",
    ):
        assert need in names, need
    assert not any("__pycache__" in n for n in names)

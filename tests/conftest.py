"""Shared fixtures and hypothesis profile; ``Seats``, the identities of a round's roster
with a helper that signs posts for them (every board post is signed, SPEC.md §6.9); the
README's "pip install into your Flower app" recipe (its wheel-building command and the
app dependencies it prints), read from README.md so the tests that follow it cannot
drift from it, and the ``wheel`` it builds."""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from pvss.transcript import keccak256
from secagg.identity import Identity
from secagg.messages import ROLE_AGGREGATOR, ROLE_CLIENT, ROLE_MEMBER, Event, SignedPost
from secagg.posts import sign_post

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
# the go-ethereum BN254 precompile vectors, copied in (see its README.md)
EVM_VECTORS = VECTORS / "evm-bn254"

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")

_KEYS = itertools.count(1)


def fresh_identity() -> Identity:
    """A fresh, deterministic identity (cheap; distinct within a test session)."""
    return Identity.from_key(
        keccak256(b"pvss-secagg/tests/identity" + next(_KEYS).to_bytes(8, "big"))
    )


@dataclass
class Seats:
    """The identities of one round's seats: the aggregator, members 1..m (seat k =
    ``members[k-1]``) and clients 1..n (seat i = ``clients[i-1]``), each party's own."""

    aggregator: Identity
    members: list[Identity]
    clients: list[Identity]

    @classmethod
    def generate(cls, n_clients: int, committee_size: int) -> Seats:
        return cls(
            fresh_identity(),
            [fresh_identity() for _ in range(committee_size)],
            [fresh_identity() for _ in range(n_clients)],
        )

    def roster(self, *, open_membership: bool = False) -> dict[str, Any]:
        """The ``RoundConfig`` roster fields (``clients`` empty for open membership)."""
        return {
            "aggregator": self.aggregator.address,
            "members": tuple(i.address for i in self.members),
            "clients": () if open_membership else tuple(i.address for i in self.clients),
        }

    def identity(self, role: int, sender: int) -> Identity:
        """The identity that holds seat (role, sender)."""
        if role == ROLE_AGGREGATOR:
            return self.aggregator
        if role == ROLE_MEMBER:
            return self.members[sender - 1]
        if role == ROLE_CLIENT:
            return self.clients[sender - 1]
        raise ValueError(f"no seat for role {role}")

    def sign(
        self,
        board: Any,
        role: int,
        sender: int,
        msg: Any,
        *,
        identity: Identity | None = None,
        view: bytes | None = None,
    ) -> SignedPost:
        """``msg`` from seat (role, sender), signed by the seat's identity (or
        ``identity``) on the board's current view (or ``view``)."""
        return sign_post(
            identity if identity is not None else self.identity(role, sender),
            board.config,
            role,
            sender,
            msg,
            board.view() if view is None else view,
        )

    def post(self, board: Any, role: int, sender: int, msg: Any, **kw: Any) -> Event:
        """Sign (see :meth:`sign`) and submit; returns the accepted event."""
        return board.submit(self.sign(board, role, sender, msg, **kw))


@pytest.fixture
def seats():
    """``seats(n, m)``: fresh identities for n client seats and m member seats."""
    return Seats.generate


# -- README "pip install into your Flower app", followed literally -------------------

README_APP_SECTION = "## pip install into your Flower app"
# what the README tells a user to replace with the absolute path of their checkout
README_CHECKOUT_PLACEHOLDER = "/ABSOLUTE/PATH/TO"
# what the wheel is built from (the sdist's package sources; tests/ is not in a wheel)
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "pvss", "secagg", "fl")


def _readme_blocks() -> list[tuple[str, str]]:
    """The fenced blocks (language, text) of the README's app section, in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index(README_APP_SECTION + "\n")
    end = text.find("\n## ", start + len(README_APP_SECTION))
    blocks = []
    for chunk in text[start:end].split("```")[1::2]:
        lang, _, body = chunk.partition("\n")
        blocks.append((lang.strip(), body))
    return blocks


def readme_wheel_command() -> list[str]:
    """The README's command that builds the wheel in a checkout (``python`` is the
    interpreter running the tests)."""
    (body,) = [body for lang, body in _readme_blocks() if lang == ""]
    argv = shlex.split(body, comments=True)
    assert argv[0] == "python", argv
    return [sys.executable, *argv[1:]]


def readme_app_dependencies(checkout: Path | None = None) -> list[str]:
    """The ``[project] dependencies`` of the README's app ``pyproject.toml``; with
    ``checkout``, its placeholder replaced by that checkout's path, as the README says."""
    (body,) = [body for lang, body in _readme_blocks() if lang == "toml"]
    deps = tomllib.loads(body)["project"]["dependencies"]
    if checkout is None:
        return deps
    return [d.replace(README_CHECKOUT_PLACEHOLDER, str(checkout)) for d in deps]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built by the README's command in a copy of the checkout's package
    sources (so nothing is written into the checkout): ``<copy>/dist/<name>.whl``."""
    checkout = tmp_path_factory.mktemp("checkout")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in WHEEL_SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, checkout / name, ignore=ignore)
        else:
            shutil.copy2(src, checkout / name)
    proc = subprocess.run(
        readme_wheel_command(), cwd=checkout, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (whl,) = (checkout / "dist").glob("pvss_secagg-*.whl")
    return whl


@pytest.fixture(scope="module")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A fresh anvil on loopback for one test module, stopped by its PID after it (a
    module may define its own). Skips, saying why, without anvil."""
    from secagg.boards.evm import ANVIL, start_anvil, stop_process

    if not ANVIL.exists():
        pytest.skip(f"anvil not installed ({ANVIL} missing): run `make install` (npm ci)")
    proc, url = start_anvil(tmp_path_factory.mktemp("anvil") / "anvil.log")
    try:
        yield url
    finally:
        stop_process(proc)
    assert proc.poll() is not None

"""The deployment's roster (SPEC.md §6.9): who may sit where, fixed outside any server.

A ``Roster`` is a small JSON file that the deployment gives every node and the server:
the committee's identities in seat order, the threshold, the identities admissible as
clients (closed membership; ``None`` = open membership) and the floors the deployment
insists on. Every node checks each round's ``RoundConfig`` against its own copy
(:meth:`Roster.check`) before acting, so the server alone never decides who sits on
the committee, who counts as a client, or how small an included set may be.

:func:`make_deployment` writes what a deployment ceremony produces — one identity file
per node (each node's own secret) and the roster — for tests, demos and benchmarks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from secagg.config import (
    RoundConfig,
    confirm_quorum,
    default_min_included,
    default_min_neighbours,
)
from secagg.errors import ConfigError, ProtocolError
from secagg.identity import Identity, parse_address

ROSTER_VERSION = 1


@dataclass(frozen=True)
class Roster:
    """committee: member identities, seat k = committee[k-1]; threshold t;
    clients: the admissible client identities (None: open membership);
    min_included: an absolute floor on |U| (0: the default for each round's n, §6.12);
    min_neighbours: a floor on the included degree (0: the default for the graph);
    aggregator: the server's identity, if the deployment pins it (None: any)."""

    committee: tuple[bytes, ...]
    threshold: int
    clients: tuple[bytes, ...] | None = None
    min_included: int = 0
    min_neighbours: int = 0
    aggregator: bytes | None = None

    def __post_init__(self) -> None:
        if not self.committee or len(set(self.committee)) != len(self.committee):
            raise ConfigError("roster.committee: distinct member identities required")
        if not 1 <= self.threshold < len(self.committee):
            raise ConfigError(
                f"roster.threshold: need 1 <= t < m, got t={self.threshold}, "
                f"m={len(self.committee)}"
            )
        if self.clients is not None and len(set(self.clients)) != len(self.clients):
            raise ConfigError("roster.clients: identities must be distinct")

    @property
    def committee_size(self) -> int:
        return len(self.committee)

    def admits_client(self, address: bytes) -> bool:
        return self.clients is None or address in self.clients

    def check(self, config: RoundConfig) -> None:
        """Refuse (``ConfigError`` naming the field) a round this deployment did not
        agree to: another committee or threshold, a client seat for an identity not on
        the roster, floors below the deployment's."""
        if tuple(config.members) != self.committee:
            raise ConfigError("round config: members are not the deployment's committee")
        if config.threshold != self.threshold:
            raise ConfigError(
                f"round config: threshold {config.threshold} != the deployment's {self.threshold}"
            )
        if self.clients is not None:
            if not config.clients:
                raise ConfigError("round config: open membership in a closed deployment")
            strangers = [a for a in config.clients if a not in self.clients]
            if strangers:
                raise ConfigError(
                    f"round config: client seat for 0x{strangers[0].hex()}, "
                    "which is not on the roster"
                )
        floor = max(self.min_included, default_min_included(config.n_clients))
        if config.min_included < floor:
            raise ConfigError(
                f"round config: min_included {config.min_included} (n = {config.n_clients}) "
                f"below the deployment's floor {floor}"
            )
        kfloor = max(self.min_neighbours, default_min_neighbours(config.n_clients, config.graph))
        if config.min_neighbours < kfloor:
            raise ConfigError(
                f"round config: min_neighbours {config.min_neighbours} below the floor {kfloor}"
            )
        if config.confirm_quorum < confirm_quorum(config.committee_size, config.threshold):
            raise ConfigError("round config: confirm_quorum below the safe quorum")
        if self.aggregator is not None and config.aggregator != self.aggregator:
            raise ConfigError("round config: the aggregator is not the deployment's server")

    # -- files -----------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "version": ROSTER_VERSION,
            "committee": ["0x" + a.hex() for a in self.committee],
            "threshold": self.threshold,
            "clients": None if self.clients is None else ["0x" + a.hex() for a in self.clients],
            "min_included": self.min_included,
            "min_neighbours": self.min_neighbours,
            "aggregator": None if self.aggregator is None else "0x" + self.aggregator.hex(),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Roster:
        """Read a roster file; ``ProtocolError`` naming the file and field if bad."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ProtocolError(f"roster file {path}: not found") from None
        except ValueError as exc:
            raise ProtocolError(f"roster file {path}: not JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != ROSTER_VERSION:
            raise ProtocolError(f"roster file {path}: version must be {ROSTER_VERSION}")
        try:
            clients = data.get("clients")
            agg = data.get("aggregator")
            return cls(
                tuple(parse_address(a, f"{path}: committee") for a in data["committee"]),
                int(data["threshold"]),
                None
                if clients is None
                else tuple(parse_address(a, f"{path}: clients") for a in clients),
                int(data.get("min_included", 0)),
                int(data.get("min_neighbours", 0)),
                None if agg is None else parse_address(agg, f"{path}: aggregator"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"roster file {path}: bad field ({exc!r})") from None


def make_deployment(
    out_dir: str | os.PathLike[str],
    nodes: int,
    committee_size: int,
    threshold: int,
    *,
    open_membership: bool = False,
    min_included: int = 0,
) -> tuple[Roster, list[Path]]:
    """A deployment ceremony for ``nodes`` nodes: ``identities/node-<i>.json`` (node i's
    own key, i = 0..nodes-1) and ``roster.json``; nodes 0..m-1 sit on the committee,
    every node is an admissible client. Returns (roster, identity paths)."""
    out = Path(out_dir)
    if not 1 <= committee_size <= nodes:
        raise ConfigError(f"committee_size: must be in [1, nodes={nodes}]")
    idents = [Identity.generate() for _ in range(nodes)]
    paths = [ident.save(out / "identities" / f"node-{i}.json") for i, ident in enumerate(idents)]
    roster = Roster(
        tuple(i.address for i in idents[:committee_size]),
        threshold,
        None if open_membership else tuple(i.address for i in idents),
        min_included,
    )
    roster.save(out / "roster.json")
    return roster, paths

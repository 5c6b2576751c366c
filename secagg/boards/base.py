"""The board interface and the rules every board shares (SPEC.md §6.4).

``Board`` is what the roles use; ``secagg.boards.memory.MemoryBoard`` implements every
rule in Python with a hash-chained event log, ``secagg.boards.evm.EvmBoard`` runs them
through the round contract. A post is atomic: accepted whole, or rejected whole with a
typed error naming the sender and the rule (and a ``Fault`` record).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from pvss.group import G1Point
from pvss.scrape import (
    Dealing,
    DecryptedShare,
)
from pvss.transcript import PURPOSE_PAIR, keccak256
from secagg.config import RoundConfig
from secagg.errors import ProtocolError
from secagg.graph import (
    DealingKey,
    self_key,
)
from secagg.messages import (
    Event,
    ResultPost,
    party_name,
)

ZERO_HASH = b"\x00" * 32


class Phase(enum.IntEnum):
    """Phases by block height (SPEC.md §6.4)."""

    REGISTER = 0
    DEAL = 1
    UPLOAD = 2
    UNMASK = 3
    RESULT = 4


def pop_party(role: int, party: int) -> int:
    """The uint32 'party' a proof of possession binds: role * 2^24 + id, so a member's
    proof cannot be replayed as a client's registration and vice versa."""
    return (role << 24) | party


def event_hash(ev: Event) -> bytes:
    """keccak256(prev || uint64 seq || uint64 height || uint8 role || uint32 sender || body)."""
    return keccak256(
        ev.prev
        + ev.seq.to_bytes(8, "big")
        + ev.height.to_bytes(8, "big")
        + bytes([ev.role])
        + ev.sender.to_bytes(4, "big")
        + ev.body
    )


@dataclass(frozen=True)
class Fault:
    """A rejected post: who, which rule, details."""

    role: int
    party: int
    rule: str
    detail: str

    @property
    def who(self) -> str:
        return party_name(self.role, self.party)


class RuleViolation(ProtocolError):
    """A post broke a board rule; ``fault`` says who and which rule."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(f"{fault.who}: {fault.rule}: {fault.detail}")
        self.fault = fault


@dataclass
class RoundState:
    """Everything the board has accepted (derived from the events alone)."""

    config: RoundConfig
    clients: dict[int, G1Point] = field(default_factory=dict)
    members: dict[int, G1Point] = field(default_factory=dict)
    registration_head: bytes | None = None
    graph: dict[int, tuple[int, ...]] | None = None
    dealers: set[int] = field(default_factory=set)
    dealings: dict[DealingKey, Dealing] = field(default_factory=dict)
    masked: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    included: tuple[int, ...] | None = None
    shares: dict[DealingKey, dict[int, DecryptedShare]] = field(default_factory=dict)
    result: ResultPost | None = None


class Board(ABC):
    """What roles need from a board. Reads return what the board has accepted."""

    config: RoundConfig

    @abstractmethod
    def height(self) -> int: ...

    @abstractmethod
    def advance(self, blocks: int) -> None:
        """Let ``blocks`` blocks pass (a chain mines them; the memory board counts)."""

    @abstractmethod
    def submit(self, role: int, sender: int, msg: Any) -> Event:
        """Post a message; raises ``RuleViolation`` (and records a fault) if rejected."""

    @abstractmethod
    def state(self) -> RoundState: ...

    @abstractmethod
    def events(self) -> list[Event]: ...

    # -- derived reads -----------------------------------------------------------
    def phase(self) -> Phase:
        return phase_at(self.config, self.height())

    def member_keys(self) -> list[G1Point]:
        st = self.state()
        return [st.members[k] for k in range(1, self.config.committee_size + 1)]

    def included(self) -> tuple[int, ...]:
        st = self.state()
        if st.included is None:
            raise ProtocolError(
                f"included set is fixed at the upload deadline (phase now {self.phase().name})"
            )
        return st.included

    def allowed_shares(self) -> list[DealingKey]:
        """The dealings whose shares the committee must reveal (SPEC.md §6.5)."""
        return allowed_share_keys(self.state())


def phase_at(config: RoundConfig, height: int) -> Phase:
    ends = [
        config.register_blocks,
        config.register_blocks + config.deal_blocks,
        config.register_blocks + config.deal_blocks + config.upload_blocks,
        config.register_blocks + config.deal_blocks + config.upload_blocks + config.unmask_blocks,
    ]
    for phase, end in zip(Phase, ends, strict=False):
        if height < end:
            return phase
    return Phase.RESULT


def compute_included(state: RoundState) -> tuple[int, ...]:
    """U: clients that uploaded and have at least one uploaded neighbour (so no included
    client's self and pair secrets are ever all revealed). This is SPEC §6.4's fixpoint
    in one pass: a client with no uploaded neighbour is nobody's uploaded neighbour, so
    dropping it cannot strip anyone else's last neighbour."""
    assert state.graph is not None
    uploaded = set(state.masked)
    return tuple(i for i in sorted(uploaded) if any(j in uploaded for j in state.graph[i]))


def allowed_share_keys(state: RoundState) -> list[DealingKey]:
    """Self dealings of i in U; pair dealings of edges with exactly one end in U."""
    if state.included is None:
        return []
    u = set(state.included)
    keys = [self_key(i) for i in sorted(u)]
    for key in sorted(state.dealings):
        dealer, purpose, partner = key
        if purpose == PURPOSE_PAIR and ((dealer in u) != (partner in u)):
            keys.append(key)
    return keys

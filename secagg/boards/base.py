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

from pvss.group import G1Point
from pvss.scrape import Dealing, SharePost
from pvss.transcript import PURPOSE_PAIR
from secagg.config import RoundConfig
from secagg.errors import ProtocolError
from secagg.graph import (
    DealingKey,
    self_key,
)
from secagg.messages import (
    ROLE_AGGREGATOR,
    ROLE_MEMBER,
    Event,
    ResultPost,
    SignedPost,
    party_name,
)
from secagg.posts import ZERO_HASH, event_hash

__all__ = ["ZERO_HASH", "event_hash"]


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


@dataclass(frozen=True)
class PostedShares:
    """An accepted share post: member ``post.index``'s S_i of dealings ``keys``."""

    keys: tuple[DealingKey, ...]
    post: SharePost


@dataclass
class RoundState:
    """Everything the board has accepted (derived from the events alone)."""

    config: RoundConfig
    clients: dict[int, G1Point] = field(default_factory=dict)
    members: dict[int, G1Point] = field(default_factory=dict)
    # the identity (address) that holds each seated client (open membership records
    # the registrant; closed membership the roster's)
    client_ids: dict[int, bytes] = field(default_factory=dict)
    # head of the board when each phase began (SPEC.md §6.11): every post's view
    phase_heads: dict[int, bytes] = field(default_factory=dict)
    reveals: dict[int, G1Point] = field(default_factory=dict)
    round_seed: bytes | None = None
    graph: dict[int, tuple[int, ...]] | None = None
    dealers: set[int] = field(default_factory=set)
    dealings: dict[DealingKey, Dealing] = field(default_factory=dict)
    masked: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    included: tuple[int, ...] | None = None
    aborted: bool = False  # |U| < min_included: nothing is revealed (SPEC.md §6.12)
    confirmations: dict[int, bytes] = field(default_factory=dict)
    # S_k per dealing and member, from the accepted share posts
    shares: dict[DealingKey, dict[int, G1Point]] = field(default_factory=dict)
    # every accepted share post with the dealings it decrypts, in post order (what the
    # aggregator and a verifier re-check, SPEC.md §4.5)
    share_posts: list[PostedShares] = field(default_factory=list)
    result: ResultPost | None = None

    @property
    def registration_head(self) -> bytes | None:
        """The head when registration closed (the DEAL phase's view), once it has."""
        return self.phase_heads.get(Phase.DEAL)


class Board(ABC):
    """What roles need from a board. Reads return what the board has accepted."""

    config: RoundConfig

    @abstractmethod
    def height(self) -> int: ...

    @abstractmethod
    def advance(self, blocks: int) -> None:
        """Let ``blocks`` blocks pass (a chain mines them; the memory board counts)."""

    @abstractmethod
    def submit(self, post: SignedPost) -> Event:
        """Post a signed message; raises ``RuleViolation`` (and records a fault) if
        rejected."""

    @abstractmethod
    def state(self) -> RoundState: ...

    @abstractmethod
    def events(self) -> list[Event]: ...

    # -- derived reads -----------------------------------------------------------
    def phase(self) -> Phase:
        return phase_at(self.config, self.height())

    def view(self) -> bytes:
        """The view a post made now must carry: the head when this phase began."""
        st = self.state()
        phase = self.phase()
        if phase not in st.phase_heads:
            raise ProtocolError(f"board: no head recorded for phase {phase.name}")
        return st.phase_heads[phase]

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

    def challenge_invalid(self, keys: list[DealingKey]) -> list[DealingKey]:
        """Dispute accepted dealings that failed the caller's verification; returns those
        whose dealer was excluded. Boards that verify every dealing on submission (the
        memory board) hold no invalid one: nothing to do."""
        return []

    def max_share_items(self) -> int | None:
        """The most items one SharesPost should carry on this board (a chain's
        per-transaction gas cap); None: no limit. Members split their shares into
        posts of at most this many items, each its own share post (own DLEQ, own
        signature)."""
        return None

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


def seat_identity(config: RoundConfig, state: RoundState, role: int, party: int) -> bytes | None:
    """The identity that must sign for seat (role, party); None for a free client seat
    under open membership (any identity not seated yet may take it)."""
    if role == ROLE_AGGREGATOR:
        return config.aggregator
    if role == ROLE_MEMBER:
        return config.member_identity(party) if 1 <= party <= config.committee_size else None
    if party in state.client_ids:
        return state.client_ids[party]
    return config.client_identity(party) if 1 <= party <= config.n_clients else None


def kcore(graph: dict[int, tuple[int, ...]], nodes: set[int], k: int) -> set[int]:
    """The k-core of ``graph`` restricted to ``nodes``: repeatedly drop a node with
    fewer than k neighbours left (the result does not depend on the order)."""
    alive = set(nodes)
    degree = {i: sum(1 for j in graph[i] if j in alive) for i in alive}
    queue = [i for i in alive if degree[i] < k]
    while queue:
        i = queue.pop()
        if i not in alive:
            continue
        alive.discard(i)
        for j in graph[i]:
            if j in alive:
                degree[j] -= 1
                if degree[j] < k:
                    queue.append(j)
    return alive


def compute_included(state: RoundState) -> tuple[int, ...]:
    """U (SPEC.md §6.12): the min_neighbours-core of the clients that uploaded, or ()
    when it has fewer than min_included clients (the round aborts). Every included
    client keeps at least min_neighbours >= 1 edges inside U, whose pair secrets are
    never revealed."""
    assert state.graph is not None
    cfg = state.config
    core = kcore(state.graph, set(state.masked), cfg.min_neighbours)
    return tuple(sorted(core)) if len(core) >= cfg.min_included else ()


def allowed_share_keys(state: RoundState) -> list[DealingKey]:
    """Self dealings of i in U; pair dealings of edges with exactly one end in U;
    nothing when the round aborted."""
    if state.included is None or state.aborted:
        return []
    u = set(state.included)
    keys = [self_key(i) for i in sorted(u)]
    for key in sorted(state.dealings):
        dealer, purpose, partner = key
        if purpose == PURPOSE_PAIR and ((dealer in u) != (partner in u)):
            keys.append(key)
    return keys

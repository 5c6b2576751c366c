"""Invariants over random board histories (issue 11, SPEC.md §6.5, §6.11, §6.12).

1. On any history — random registrations, dealers, uploaders, graphs (``complete``,
   ``regular:K``), ``min_neighbours`` and ``min_included`` — the included set is the
   maximal ``min_neighbours``-core of the uploaders if it has at least
   ``min_included`` clients and empty (aborted) otherwise, and ``allowed_share_keys``
   never holds an included client's self dealing together with every pair dealing it
   masked with (at least ``min_neighbours`` of its pairs stay secret).
2. A malicious server forks one real board at UPLOAD into two boards with different
   included sets and sends honest ``NodeAgent`` members confirm / unmask requests for
   either fork in any order (one colluding member confirms whatever it likes): no
   honest member ever produces shares for two forks, at most one fork ever decrypts,
   and no client's input can be unmasked from everything the attacker collected.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fl.relay import STAGE_CONFIRM, STAGE_UNMASK, STAGE_UPLOAD
from pvss.group import G
from secagg.boards import MemoryBoard, Phase, RoundState, allowed_share_keys, compute_included
from secagg.config import RoundConfig
from secagg.errors import ProtocolError
from secagg.graph import compute_mask_graph, pair_key, self_key
from secagg.identity import Identity
from secagg.messages import TranscriptFile
from secagg.roster import make_deployment
from tests.adversarial.conftest import Deployment, Loot, MaliciousServer

# -- 1. the included set and what it reveals, on synthetic histories -------------------


@st.composite
def histories(draw):  # noqa: ANN001, ANN201
    n = draw(st.integers(3, 9))
    if draw(st.booleans()):
        graph, degree = "complete", n - 1
    else:
        ks = [k for k in range(1, n) if (n * k) % 2 == 0]
        degree = draw(st.sampled_from(ks))
        graph = f"regular:{degree}"
    cfg = RoundConfig(
        chain_id=1,
        board=bytes(20),
        round_id=1,
        n_clients=n,
        committee_size=3,
        threshold=1,
        graph=graph,
        dim=4,
        quant_bits=8,
        bits=32,
        clip=1.0,
        max_weight=4,
        register_blocks=1,
        deal_blocks=1,
        upload_blocks=1,
        unmask_blocks=1,
        aggregator=b"\x01" * 20,
        members=tuple(bytes([k]) * 20 for k in (2, 3, 4)),
        min_included=draw(st.integers(2, n)),
        min_neighbours=draw(st.integers(1, degree)),
    )
    everyone = list(range(1, n + 1))
    registered = draw(st.sets(st.sampled_from(everyone)))
    dealers = draw(st.sets(st.sampled_from(sorted(registered)))) if registered else set()
    uploaders = draw(st.sets(st.sampled_from(sorted(dealers)))) if dealers else set()
    seed = draw(st.binary(min_size=32, max_size=32))
    return cfg, registered, dealers, uploaders, seed


def _state(cfg: RoundConfig, registered, dealers, uploaders, seed) -> RoundState:  # noqa: ANN001
    s = RoundState(cfg)
    s.graph = compute_mask_graph(cfg, seed)
    s.clients = {i: G for i in registered}
    for d in dealers:  # exactly what the board accepts from a dealer (SPEC.md §6.4)
        s.dealings[self_key(d)] = None  # type: ignore[assignment]
        for j in s.graph[d]:
            if j > d and j in registered:
                s.dealings[pair_key(d, j)] = None  # type: ignore[assignment]
    s.dealers = set(dealers)
    s.masked = {i: (b"", 0) for i in uploaders}
    s.included = compute_included(s)
    s.aborted = not s.included
    return s


def _max_core(graph: dict[int, tuple[int, ...]], nodes: set[int], k: int) -> set[int]:
    """Brute force: the union of every subset of ``nodes`` with min degree >= k."""
    best: set[int] = set()
    items = sorted(nodes)
    for r in range(1, len(items) + 1):
        for sub in itertools.combinations(items, r):
            ss = set(sub)
            if all(sum(1 for j in graph[i] if j in ss) >= k for i in ss):
                best |= ss
    return best


@settings(max_examples=150, deadline=None)
@given(histories())
def test_included_set_is_a_large_enough_k_core_and_never_fully_revealed(h) -> None:  # noqa: ANN001
    cfg, registered, dealers, uploaders, seed = h
    s = _state(cfg, registered, dealers, uploaders, seed)
    u = set(s.included)
    k, mu = cfg.min_neighbours, cfg.min_included
    # U: the maximal k-core of the uploaders, at least min_included, else empty
    core = _max_core(s.graph, set(uploaders), k)
    assert u == (core if len(core) >= mu else set())
    assert u <= set(uploaders)
    assert not u or len(u) >= mu
    for i in u:
        assert sum(1 for j in s.graph[i] if j in u) >= k
    allowed = set(allowed_share_keys(s))
    if not u:
        assert allowed == set()  # an aborted round reveals nothing
    for i in u:
        masked_with = {pair_key(i, j) for j in s.graph[i] if pair_key(i, j) in s.dealings}
        secret = masked_with - allowed
        # never the self dealing and every pair dealing; at least k pairs stay secret
        assert not ({self_key(i)} | masked_with) <= allowed
        assert len(secret) >= k
    for j in set(range(1, cfg.n_clients + 1)) - u:
        assert self_key(j) not in allowed  # a client outside U keeps its self secret


# -- 2. honest members on two forks ---------------------------------------------------


class Forks:
    """One real board through DEAL (m = 5, t = 2, quorum 4; member 5 colludes), every
    client's upload reply on the common UPLOAD-start view, and the members' node
    states at that point — the world each example starts from."""

    def __init__(self, tmp) -> None:  # noqa: ANN001
        n, m, t = 4, 5, 2
        roster, paths = make_deployment(tmp, n + m, m, t)
        dep = Deployment(roster, [Identity.load(p) for p in paths], Identity.generate(), n, m, t)
        self.server = MaliciousServer(dep, colluding_members=[5])
        board = self.server.new_board()
        self.server.through_deal(board)
        self.server.open(board, Phase.UPLOAD)
        self.prefix = board.transcript()
        self.head = board.head
        self.uploads = {i: self.server.ask_client(board, i, STAGE_UPLOAD) for i in range(1, 5)}
        self.states = dict(self.server.states)
        self.loot_uploads = list(self.server.loot.uploads)
        self.dealings = dict(board.state().dealings)

    def fork(self, uploaders: set[int]) -> MemoryBoard:
        # the server's own board: it trusts its own proofs (the nodes re-check all)
        b = MemoryBoard.replay(
            TranscriptFile(self.prefix.events), expected_head=self.head, proofs=False
        )
        b.advance(self.server.cfg.register_blocks + self.server.cfg.deal_blocks - b.height())
        for i in sorted(uploaders):
            self.server.post(b, self.uploads[i])
        self.server.open(b, Phase.UNMASK)
        return b

    def reset(self) -> None:
        srv = self.server
        srv.states = dict(self.states)
        srv.replies = []
        srv.loot = Loot(
            srv.cfg,
            dealings=dict(self.dealings),
            uploads=list(self.loot_uploads),
            colluders=list(srv.colluders.values()),
        )


@pytest.fixture(scope="module")
def forks(tmp_path_factory) -> Forks:  # noqa: ANN001
    return Forks(tmp_path_factory.mktemp("forks"))


clients = st.sets(st.integers(1, 4))
extra = st.lists(
    st.tuples(st.integers(1, 4), st.sampled_from([STAGE_CONFIRM, STAGE_UNMASK]), st.integers(0, 1)),
    max_size=4,
)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    clients,
    clients,
    st.sets(st.integers(0, 1)),
    st.tuples(*[st.integers(0, 1)] * 4),
    st.permutations([1, 2, 3, 4]),
    extra,
)
def test_no_honest_member_decrypts_for_two_forks(  # noqa: PLR0913
    forks,  # noqa: ANN001
    up_a,  # noqa: ANN001
    up_b,  # noqa: ANN001
    col_confirms,  # noqa: ANN001
    sides,  # noqa: ANN001
    order,  # noqa: ANN001
    extra_requests,  # noqa: ANN001
) -> None:
    """Each honest member is first shown the fork ``sides[k-1]`` (confirm, then
    unmask, in ``order``), then the server tries ``extra_requests`` on either fork."""
    forks.reset()
    srv = forks.server
    boards = [forks.fork(up_a), forks.fork(up_b)]
    col = srv.colluders[5]
    for f in sorted(col_confirms):
        if not boards[f].state().aborted:
            col.confirm(boards[f])
    reqs = [(k, STAGE_CONFIRM, sides[k - 1]) for k in order]
    reqs += [(k, STAGE_UNMASK, sides[k - 1]) for k in order]
    reqs += list(extra_requests)
    produced: dict[int, set[bytes]] = {k: set() for k in range(1, 5)}
    confirmed: dict[int, set[bytes]] = {k: set() for k in range(1, 5)}
    decrypted_on: set[int] = set()
    for member, stage, f in reqs:
        board = boards[f]
        try:
            reply = srv.ask_member(board, member, stage)
        except ProtocolError:
            continue
        srv.post(board, reply)  # every reply an honest node gives, the board accepts
        (confirmed if stage == STAGE_CONFIRM else produced)[member].add(board.view())
        if stage == STAGE_UNMASK:
            decrypted_on.add(f)
    heads = {h for hs in produced.values() for h in hs}
    assert all(len(hs) <= 1 for hs in confirmed.values())
    assert all(len(hs) <= 1 for hs in produced.values())
    assert len(heads) <= 1  # at most one U-fixing head is ever decrypted for
    for f in decrypted_on:  # shares only behind a quorum of confirmations of that head
        b = boards[f]
        assert sum(h == b.view() for h in b.state().confirmations.values()) >= 4
    for i in range(1, 5):
        assert srv.loot.recover(i) is None

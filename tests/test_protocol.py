"""The secure-aggregation round: end to end with dropouts, every adversary detected and
attributed, the privacy invariant, stage rules, and the public verifier."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from pvss.dleq import DleqProof
from pvss.group import ORDER, G, G1Point, g_table, mul_each, table_for
from pvss.keys import KeyPair, prove_possession, prove_seed_reveal
from pvss.scrape import Dealing, dealing_transcript
from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF
from secagg import codec
from secagg.blobs import BlobStore
from secagg.boards import (
    ZERO_HASH,
    MemoryBoard,
    Phase,
    RuleViolation,
    allowed_share_keys,
    event_hash,
    phase_at,
    pop_party,
)
from secagg.cli import main as cli_main
from secagg.config import (
    MAX_CLIENTS,
    MAX_COMMITTEE,
    MAX_DIM,
    MAX_GRAPH_EDGES,
    RoundConfig,
    confirm_quorum,
    default_min_included,
    parse_graph,
)
from secagg.errors import ConfigError, ProtocolError
from secagg.graph import compute_round_seed, dealing_context, pair_key, self_key
from secagg.identity import SECP256K1_N
from secagg.messages import (
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Confirmation,
    DealingItem,
    DealingsPost,
    Exclusion,
    MaskedInputPost,
    Registration,
    ResultPost,
    SeedReveal,
    ShareItem,
    SharesPost,
    SignedPost,
    TranscriptFile,
)
from secagg.posts import NO_SIGNATURE, post_digest
from secagg.roles import Aggregator, Client, CommitteeMember, shares_post
from secagg.simulate import SimParams, simulate
from secagg.verifier import BLOB_DIR, load_round, save_round, verify_round
from tests.conftest import Seats, fresh_identity

R = int(ORDER)


def make_config(seats: Seats | None = None, **kw) -> RoundConfig:
    """A small round; ``seats`` (default: fresh identities) fills the roster."""
    base = dict(
        chain_id=31337,
        board=b"\x42" * 20,
        round_id=1,
        n_clients=6,
        committee_size=5,
        threshold=2,
        graph="complete",
        dim=50,
        quant_bits=12,
        bits=24,
        clip=1.0,
        max_weight=4,
    )
    base.update(kw)
    if seats is None:
        seats = Seats.generate(base["n_clients"], base["committee_size"])
    return RoundConfig(**{**seats.roster(), **base})


class Round:
    """A round driven step by step, so tests can interfere at any point. ``seats``
    holds every party's identity; ``post`` signs a message for a seat and submits it."""

    def __init__(
        self,
        cfg: RoundConfig | None = None,
        seed: int = 0,
        seats: Seats | None = None,
        blobs: Path | None = None,
        **kw,
    ) -> None:
        if cfg is None:
            n, m = kw.get("n_clients", 6), kw.get("committee_size", 5)
            seats = seats or Seats.generate(n, m)
            cfg = make_config(seats, **kw)
        assert seats is not None, "a config needs the seats it was made with"
        self.cfg, self.seats = cfg, seats
        self.board = MemoryBoard.create(self.cfg, seats.aggregator)
        self.blobs = BlobStore(blobs if blobs is not None else tempfile.mkdtemp())
        rng = np.random.default_rng(seed)
        n = self.cfg.n_clients
        self.updates = [rng.uniform(-1, 1, self.cfg.dim) for _ in range(n)]
        self.weights = [int(w) for w in rng.integers(1, self.cfg.max_weight + 1, n)]
        self.clients = [
            Client(
                self.cfg,
                i + 1,
                self.updates[i],
                self.weights[i],
                identity=seats.clients[i],
                rng=np.random.default_rng(i),
            )
            for i in range(n)
        ]
        self.members = [
            CommitteeMember(self.cfg, k + 1, identity=seats.members[k])
            for k in range(self.cfg.committee_size)
        ]

    def post(self, role: int, sender: int, msg, **kw):  # noqa: ANN001, ANN201
        return self.seats.post(self.board, role, sender, msg, **kw)

    def register(self, reveal: bool = True) -> Round:
        """REGISTER, then (into DEAL) every member's seed reveal unless ``reveal`` is
        False: the graph is fixed and clients may deal."""
        for c in self.clients:
            c.register(self.board)
        for m in self.members:
            m.register(self.board)
        self.board.advance(self.cfg.register_blocks)
        if reveal:
            for m in self.members:
                m.reveal_seed(self.board)
        return self

    def deal(self, skip: set[int] = frozenset()) -> Round:  # type: ignore[assignment]
        for c in self.clients:
            if c.party not in skip:
                c.deal(self.board)
        self.board.advance(self.cfg.deal_blocks)
        return self

    def upload(self, skip: set[int] = frozenset()) -> Round:  # type: ignore[assignment]
        for c in self.clients:
            if c.party not in skip and c.party in self.board.state().dealers:
                c.upload(self.board, self.blobs)
        self.board.advance(self.cfg.upload_blocks)
        return self

    def confirm(self, skip: set[int] = frozenset()) -> Round:  # type: ignore[assignment]
        for m in self.members:
            if m.party not in skip:
                m.confirm(self.board)
        return self

    def reveal(self, skip: set[int] = frozenset()) -> Round:  # type: ignore[assignment]
        """Every member confirms (if none did yet), those not in ``skip`` reveal."""
        if not self.board.state().confirmations:
            self.confirm()
        for m in self.members:
            if m.party not in skip:
                m.reveal(self.board)
        self.board.advance(self.cfg.unmask_blocks)
        return self

    def aggregate(self) -> Aggregator:
        agg = Aggregator(self.cfg, identity=self.seats.aggregator)
        agg.aggregate(self.board, self.blobs)
        return agg

    def plain_mean(self) -> np.ndarray:
        u = self.board.included()
        w = np.array([self.weights[i - 1] for i in u], dtype=float)
        x = np.array([np.clip(self.updates[i - 1], -self.cfg.clip, self.cfg.clip) for i in u])
        return (w[:, None] * x).sum(0) / w.sum()


def assert_privacy_invariant(board: MemoryBoard) -> None:
    """No client ever has its self secret and all of its pair secrets revealed."""
    st = board.state()
    revealed = set(st.shares)
    for i in st.clients:
        pair_keys = [pair_key(i, j) for j in st.graph[i] if pair_key(i, j) in st.dealings]
        if self_key(i) in revealed:
            assert pair_keys, f"client {i} included with no masked edge"
            assert not all(k in revealed for k in pair_keys), f"client {i}: everything revealed"


# -- end to end ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        SimParams(clients=6, committee=3, threshold=1, dim=64),
        SimParams(clients=8, committee=5, threshold=2, dim=100, dropout=0.25, dropout_phase="deal"),
        SimParams(
            clients=8,
            committee=5,
            threshold=2,
            dim=100,
            dropout=0.25,
            dropout_phase="upload",
            committee_dropout=2,
        ),
        SimParams(
            clients=8, committee=5, threshold=2, dim=100, dropout=0.25, dropout_phase="unmask"
        ),
        SimParams(
            # two dropouts on regular:6: every other client keeps >= 4 = min_neighbours
            # of its 6 neighbours (on regular:4 the default kappa = 3 may abort the round)
            clients=10,
            committee=7,
            threshold=3,
            dim=80,
            dropout=0.2,
            dropout_phase="mixed",
            committee_dropout=3,
            graph="regular:6",
        ),
        SimParams(
            # no dropout: on a ring the default kappa = 2 aborts at the first one, by
            # design (test_a_ring_with_a_dropout_aborts_under_the_default_min_neighbours)
            clients=9,
            committee=4,
            threshold=1,
            dim=33,
            graph="regular:2",
            quant_bits=8,
        ),
    ],
    ids=["small", "deal-drop", "upload-drop+members", "unmask-drop", "mixed-regular", "ring"],
)
def test_round_end_to_end(params: SimParams, tmp_path: Path) -> None:
    res = simulate(params, tmp_path)
    assert res.verified, res.findings
    assert res.max_abs_error <= res.error_bound
    assert res.included >= 2
    transcript, blobs = load_round(tmp_path)
    assert verify_round(transcript, blobs).ok
    board = MemoryBoard.replay(transcript)
    assert_privacy_invariant(board)


def test_sum_is_exact_weighted_integer_sum() -> None:
    rnd = Round().register().deal().upload(skip={2}).reveal(skip={1, 4})
    agg = rnd.aggregate()
    u = rnd.board.included()
    assert u == (1, 3, 4, 5, 6)
    assert int(agg.total[-1]) == sum(rnd.weights[i - 1] for i in u)
    assert np.abs(agg.mean() - rnd.plain_mean()).max() <= rnd.cfg.masking().step
    assert_privacy_invariant(rnd.board)


def test_client_whose_neighbours_all_drop_is_excluded() -> None:
    # min_neighbours 1 (the default on a ring is 2, see the next test)
    rnd = Round(n_clients=6, graph="regular:2", min_neighbours=1, min_included=3).register()
    graph = rnd.board.state().graph
    lonely = 1
    rnd.deal().upload(skip=set(graph[lonely]))
    assert lonely not in rnd.board.included() and len(rnd.board.included()) == 3
    rnd.reveal()
    assert_privacy_invariant(rnd.board)
    assert self_key(lonely) not in rnd.board.state().shares


def test_included_set_is_the_min_neighbours_core() -> None:
    """SPEC §6.12: U is the kappa-core of the uploaders (kappa = floor(K/2)+1 = 3 on
    regular:4): a client that kept only 2 of its 4 neighbours is peeled off, not only
    an isolated one, and every included client keeps >= kappa included neighbours."""
    rnd = Round(n_clients=10, graph="regular:4").register()
    assert rnd.cfg.min_neighbours == 3
    graph = rnd.board.state().graph
    lonely = 1
    rnd.deal().upload(skip=set(graph[lonely][:2]))
    u = set(rnd.board.included())
    assert lonely not in u
    assert all(sum(j in u for j in graph[i]) >= 3 for i in u)
    outside = set(rnd.board.state().masked) - u
    assert all(sum(j in u for j in graph[i]) < 3 for i in outside)  # nothing more fits
    if u:
        rnd.reveal()
        assert_privacy_invariant(rnd.board)


def test_a_ring_with_a_dropout_aborts_under_the_default_min_neighbours() -> None:
    """By design (SPEC §6.12): on regular:2 the default kappa is 2, so one dropout breaks
    the ring into a path whose 2-core is empty: U is empty, the round aborts and nothing
    is revealed."""
    rnd = Round(n_clients=6, graph="regular:2").register().deal().upload(skip={1})
    st = rnd.board.state()
    assert st.included == () and st.aborted and not rnd.board.allowed_shares()
    with pytest.raises(ProtocolError, match="aborted"):
        rnd.members[0].confirm(rnd.board)


def test_too_many_committee_dropouts_cannot_finish() -> None:
    rnd = Round().register().deal().upload().reveal(skip={1, 2, 3})  # only 2 < t+1 = 3 remain
    with pytest.raises(ProtocolError, match="valid shares, need t\\+1"):
        rnd.aggregate()


# -- adversaries --------------------------------------------------------------------------


def test_dealer_with_bad_proof_is_rejected_and_named() -> None:
    rnd = Round().register()
    post = rnd.clients[2].make_dealings(rnd.board)
    d = Dealing.from_bytes(post.items[0].dealing)
    bad = dataclasses.replace(d, z=((d.z[0] + 1) % R,) + d.z[1:])
    items = (dataclasses.replace(post.items[0], dealing=bad.to_bytes()),) + post.items[1:]
    with pytest.raises(RuleViolation, match="client 3: dealing-proof") as exc:
        rnd.post(ROLE_CLIENT, 3, DealingsPost(3, items))
    assert exc.value.fault.party == 3 and exc.value.fault.role == ROLE_CLIENT
    assert 3 not in rnd.board.state().dealers and not rnd.board.state().dealings
    assert rnd.board.faults[-1].rule == "dealing-proof"


def _forged_pair_dealing(rnd: Round, dealer: int, partner: int) -> bytes:
    """A pair dealing with valid DLEQ proofs at every point whose recipient value at 0
    is NOT on the committee's polynomial (the partner would learn another secret)."""
    cfg = rnd.cfg
    key = (dealer, PURPOSE_PAIR, partner)
    ctx = dealing_context(cfg, key)
    keys = [rnd.board.state().clients[partner]] + rnd.board.member_keys()
    coeffs = [5, 7, 11]
    evals = [sum(c * k**j for j, c in enumerate(coeffs)) % R for k in range(len(keys))]
    evals[0] = (evals[0] + 1) % R  # inconsistent share for the recipient
    tables = [table_for(pk) for pk in keys]
    v = g_table().mul_many(evals)
    s_hat = mul_each(tables, evals)
    w = [13 + k for k in range(len(keys))]
    a1 = g_table().mul_many(w)
    a2 = mul_each(tables, w)
    e = dealing_transcript(ctx, cfg.threshold, keys, True, v, s_hat, a1, a2).challenge()
    z = tuple((wk - e * x) % R for wk, x in zip(w, evals, strict=False))
    return Dealing(cfg.threshold, True, tuple(v), tuple(s_hat), tuple(a1), tuple(a2), z).to_bytes()


def test_dealer_inconsistent_share_to_partner_is_rejected() -> None:
    rnd = Round().register()
    post = rnd.clients[0].make_dealings(rnd.board)
    items = list(post.items)
    pos = next(i for i, it in enumerate(items) if it.purpose == PURPOSE_PAIR and it.partner == 2)
    items[pos] = DealingItem(PURPOSE_PAIR, 2, _forged_pair_dealing(rnd, 1, 2))
    with pytest.raises(RuleViolation, match=r"client 1: dealing-proof: \(1, 1, 2\).*RS check"):
        rnd.post(ROLE_CLIENT, 1, DealingsPost(1, tuple(items)))


def test_member_with_bad_share_is_rejected_and_named() -> None:
    rnd = Round().register().deal().upload().confirm()
    (post,) = rnd.members[1].make_shares(rnd.board)
    assert len(post.items) > 1
    # one wrong S_i among many: the whole post is refused, naming its member
    sh = G1Point.from_bytes(post.items[1].share)
    items = list(post.items)
    items[1] = dataclasses.replace(items[1], share=(sh + G).to_bytes())
    with pytest.raises(RuleViolation, match="member 2: share-proof: .*share post"):
        rnd.post(ROLE_MEMBER, 2, dataclasses.replace(post, items=tuple(items)))
    assert not rnd.board.state().shares and not rnd.board.state().share_posts
    assert rnd.board.faults[-1].who == "member 2"
    rnd.post(ROLE_MEMBER, 2, post)  # the honest post is still accepted after
    assert rnd.board.state().share_posts[0].post.index == 2


def test_member_revealing_what_u_forbids_is_rejected() -> None:
    rnd = Round().register().deal().upload(skip={6}).confirm()
    st = rnd.board.state()
    forbidden = pair_key(1, 2)  # both ends included: must never be revealed
    assert forbidden not in allowed_share_keys(st)
    m = rnd.members[0]
    post = shares_post(rnd.cfg, st, 1, m.key, [forbidden])
    with pytest.raises(RuleViolation, match="member 1: share-not-allowed"):
        rnd.post(ROLE_MEMBER, 1, post)
    # the self dealing of the dropped client 6 must never be revealed either, not even
    # among allowed ones
    post = shares_post(rnd.cfg, st, 1, m.key, [self_key(1), self_key(6)])
    with pytest.raises(RuleViolation, match="share-not-allowed"):
        rnd.post(ROLE_MEMBER, 1, post)
    assert not rnd.board.state().shares


def test_aggregator_posting_a_wrong_sum_is_named_by_the_verifier() -> None:
    rnd = Round().register().deal().upload().reveal()
    st = rnd.board.state()
    rnd.post(ROLE_AGGREGATOR, 0, ResultPost(b"\x13" * 32, st.included, 5))
    report = verify_round(rnd.board.transcript(), rnd.blobs)
    assert not report.ok
    assert {f.party for f in report.findings} == {"aggregator"}


def test_replay_from_another_round_or_board_is_rejected() -> None:
    seats = Seats.generate(6, 5)
    rnd_a = Round(make_config(seats), seed=1, seats=seats).register()
    post = rnd_a.clients[0].make_dealings(rnd_a.board)
    signed_a = rnd_a.seats.sign(rnd_a.board, ROLE_CLIENT, 1, post)
    for change in ({"round_id": 2}, {"board": b"\x43" * 20}, {"chain_id": 1}):
        rnd_b = Round(make_config(seats, **change), seed=1, seats=seats)
        # same parties, same identities, same keys: only the round/board differs
        for c_b, c_a in zip(rnd_b.clients, rnd_a.clients, strict=False):
            c_b.key = c_a.key
        for m_b, m_a in zip(rnd_b.members, rnd_a.members, strict=False):
            m_b.key = m_a.key
        rnd_b.register()
        # the post as signed for board A: its signature binds chain, board and round
        with pytest.raises(RuleViolation, match="client 1: signature") as exc:
            rnd_b.board.submit(signed_a)
        assert exc.value.fault.rule == "signature"
        # re-signed by the same identity for board B: the dealing proofs still bind A
        with pytest.raises(RuleViolation, match="client 1: dealing-proof"):
            rnd_b.post(ROLE_CLIENT, 1, post)
    # a proof of possession from board A does not register on board B
    reg = Registration(
        ROLE_CLIENT,
        1,
        rnd_a.clients[0].key.pk.to_bytes(),
        codec.decode(rnd_a.board.events()[1].body, Registration).pop,
    )
    rnd_c = Round(make_config(seats, board=b"\x44" * 20), seats=seats)
    with pytest.raises(RuleViolation, match="client 1: proof-of-possession"):
        rnd_c.post(ROLE_CLIENT, 1, reg)


def test_client_uploads_only_once() -> None:
    rnd = Round().register().deal()
    c = rnd.clients[0]
    digest = c.upload(rnd.board, rnd.blobs)
    size = rnd.board.state().masked[1][1]
    with pytest.raises(RuleViolation, match="client 1: upload: masked input already posted"):
        rnd.post(ROLE_CLIENT, 1, MaskedInputPost(1, digest, size))
    with pytest.raises(ProtocolError, match="stage dealt, it is uploaded"):
        c.upload(rnd.board, rnd.blobs)


def test_impersonation_is_rejected() -> None:
    rnd = Round().register().deal()
    # seat 2's own identity posting client 1's message
    with pytest.raises(RuleViolation, match="client 2: sender"):
        rnd.post(ROLE_CLIENT, 2, MaskedInputPost(1, b"\x00" * 32, 10))
    # client 1's message claimed for seat 1 but signed by client 2's identity
    with pytest.raises(RuleViolation, match="client 1: signature: signed by 0x"):
        rnd.post(
            ROLE_CLIENT, 1, MaskedInputPost(1, b"\x00" * 32, 10), identity=rnd.seats.clients[1]
        )
    rnd.board.advance(rnd.cfg.upload_blocks)
    with pytest.raises(RuleViolation, match="sender"):
        item = ShareItem(*self_key(1), G.to_bytes())
        rnd.post(ROLE_CLIENT, 1, SharesPost(1, (item,), bytes(160)))
    assert 1 not in rnd.board.state().masked


def _stage_messages(seats: Seats) -> list:
    """(phase, role, sender, message) for one message of every kind."""
    return [
        (Phase.REGISTER, ROLE_CLIENT, 1, Registration(ROLE_CLIENT, 1, G.to_bytes(), b"\x00" * 64)),
        (Phase.DEAL, ROLE_MEMBER, 1, SeedReveal(1, G.to_bytes(), b"\x00" * 160)),
        (Phase.DEAL, ROLE_CLIENT, 1, DealingsPost(1, ())),
        (Phase.UPLOAD, ROLE_CLIENT, 1, MaskedInputPost(1, b"\x00" * 32, 1)),
        (Phase.UNMASK, ROLE_MEMBER, 1, Confirmation(1, b"\x00" * 32)),
        (
            Phase.UNMASK,
            ROLE_MEMBER,
            1,
            SharesPost(1, (ShareItem(1, PURPOSE_SELF, 0, G.to_bytes()),), bytes(160)),
        ),
        (Phase.RESULT, ROLE_AGGREGATOR, 0, ResultPost(b"\x00" * 32, (), 0)),
    ]


@pytest.mark.parametrize("now", list(Phase), ids=lambda p: p.name)
@pytest.mark.parametrize(
    "kind", range(7), ids=["reg", "seed", "deal", "upload", "confirm", "shares", "result"]
)
def test_every_stage_violation_is_rejected(now: Phase, kind: int) -> None:
    seats = Seats.generate(6, 5)
    cfg = make_config(seats)
    msg_phase, role, sender, msg = _stage_messages(seats)[kind]
    if now == msg_phase:
        return
    board = MemoryBoard.create(cfg, seats.aggregator)
    heights = {
        Phase.REGISTER: 0,
        Phase.DEAL: 10,
        Phase.UPLOAD: 20,
        Phase.UNMASK: 30,
        Phase.RESULT: 40,
    }
    board.advance(heights[now])
    assert board.phase() == now
    n_events = len(board.events())
    # correctly signed by the seat's identity on the board's current view: only the
    # stage is wrong
    with pytest.raises(RuleViolation, match=f"stage: {msg_phase.name} message in phase {now.name}"):
        seats.post(board, role, sender, msg)
    assert len(board.events()) == n_events
    assert board.faults[-1].rule == "stage"


def test_role_state_machines_refuse_out_of_order_actions() -> None:
    rnd = Round()
    c, m = rnd.clients[0], rnd.members[0]
    with pytest.raises(ProtocolError, match="stage registered, it is new"):
        c.deal(rnd.board)
    with pytest.raises(ProtocolError, match="stage registered, it is new"):
        m.reveal_seed(rnd.board)
    with pytest.raises(ProtocolError, match="stage seeded, it is new"):
        m.confirm(rnd.board)
    with pytest.raises(ProtocolError, match="stage confirmed, it is new"):
        m.reveal(rnd.board)
    c.register(rnd.board)
    with pytest.raises(ProtocolError, match="board phase DEAL"):
        c.deal(rnd.board)
    with pytest.raises(ProtocolError, match="stage new"):
        c.register(rnd.board)
    with pytest.raises(ProtocolError, match="phase RESULT"):
        Aggregator(rnd.cfg, identity=rnd.seats.aggregator).aggregate(rnd.board, rnd.blobs)
    m.register(rnd.board)
    with pytest.raises(ProtocolError, match="board phase DEAL"):
        m.reveal_seed(rnd.board)


# -- transcript and verifier --------------------------------------------------------------


def _finished_round(tmp_path: Path) -> Round:
    """A verified round (5 clients, client 2 drops before uploading) saved under
    ``tmp_path``; the returned ``Round`` holds every party's identity, so tests can
    forge what a cheating party would sign."""
    rnd = Round(n_clients=5, committee_size=3, threshold=1, dim=20, blobs=tmp_path / BLOB_DIR)
    rnd.register().deal().upload(skip={2}).reveal()
    rnd.aggregate()
    save_round(tmp_path, rnd.board.transcript())
    assert verify_round(*load_round(tmp_path)).ok
    return rnd


def _resigned(events: list, rnd: Round) -> TranscriptFile:
    """What a board and its colluding parties do after editing an event: re-link the
    chain and re-sign every event on the view the edited history gives it (SPEC.md
    §6.11: the head when its phase began)."""
    cfg = rnd.cfg
    out = [events[0]]
    for ev in events[1:]:
        start = _phase_start(cfg, phase_at(cfg, ev.height))
        view = (
            event_hash(out[0])
            if start == 0
            else event_hash([e for e in out if e.height < start][-1])
        )
        msg = codec.decode(ev.body)
        if isinstance(msg, Confirmation):  # a member confirms the head it was shown
            msg = dataclasses.replace(msg, head=view)
        post = rnd.seats.sign(rnd.board, ev.role, ev.sender, msg, view=view)
        out.append(
            dataclasses.replace(
                ev,
                seq=len(out),
                body=codec.encode(msg),
                digest=post_digest(msg),
                view=view,
                sig=post.sig,
                prev=event_hash(out[-1]),
            )
        )
    return TranscriptFile(tuple(out))


def _phase_start(cfg: RoundConfig, phase: Phase) -> int:
    lengths = [cfg.register_blocks, cfg.deal_blocks, cfg.upload_blocks, cfg.unmask_blocks]
    return sum(lengths[: int(phase)])


def _rechained(events: list) -> TranscriptFile:
    """What a forger without anybody's key does after editing an event: re-link the
    chain (the signatures and views stay as they were)."""
    for i in range(1, len(events)):
        events[i] = dataclasses.replace(events[i], prev=event_hash(events[i - 1]))
    return TranscriptFile(tuple(events))


def test_tampered_transcript_is_detected(tmp_path: Path) -> None:
    _finished_round(tmp_path)
    transcript, blobs = load_round(tmp_path)
    events = list(transcript.events)
    for pos in (1, 3, len(events) - 2):
        ev = events[pos]
        body = bytearray(ev.body)
        body[len(body) // 2] ^= 1
        tampered = TranscriptFile(
            tuple(events[:pos] + [dataclasses.replace(ev, body=bytes(body))] + events[pos + 1 :])
        )
        report = verify_round(tampered, blobs)
        assert not report.ok
        assert report.findings, "a failing verification must name a party"
        # the body is not what its sender signed: the board's doing, not the sender's
        assert [f.party for f in report.findings] == ["board"]
    dropped = TranscriptFile(tuple(events[:2] + events[3:]))
    assert not verify_round(dropped, blobs).ok


def test_missing_or_corrupt_blob_is_reported(tmp_path: Path) -> None:
    _finished_round(tmp_path)
    transcript, blobs = load_round(tmp_path)
    board = MemoryBoard.replay(transcript)
    digest = board.state().masked[board.included()[0]][0]
    path = blobs.path(digest)
    path.write_bytes(path.read_bytes()[:-1] + b"\x01")
    report = verify_round(transcript, blobs)
    assert not report.ok and report.findings[0].party == "blob store"


def test_verify_cli_exit_codes(tmp_path: Path, capsys) -> None:
    rnd = _finished_round(tmp_path)
    assert cli_main(["verify", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    transcript, _ = load_round(tmp_path)
    events = list(transcript.events)
    res = codec.decode(events[-1].body, ResultPost)
    wrong = codec.encode(dataclasses.replace(res, total_weight=res.total_weight + 1))
    # the aggregator signs a wrong total weight: the verifier names the aggregator
    events[-1] = dataclasses.replace(events[-1], body=wrong)
    (tmp_path / "transcript.msgpack").write_bytes(codec.encode(_resigned(events, rnd)))
    assert cli_main(["verify", str(tmp_path)]) == 1
    assert "faulty party: aggregator" in capsys.readouterr().out
    # the same edit by someone without the aggregator's key: the board is named
    (tmp_path / "transcript.msgpack").write_bytes(codec.encode(TranscriptFile(tuple(events))))
    assert cli_main(["verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "faulty party: board" in out and "aggregator" not in out.split("faulty party")[1]


def test_simulate_cli_json(tmp_path: Path, capsys) -> None:
    code = cli_main(
        [
            "simulate",
            "--clients",
            "5",
            "--committee",
            "3",
            "--threshold",
            "1",
            "--dim",
            "30",
            "--dropout",
            "0.2",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and line["verified"] is True
    for key in ("max_abs_error", "error_bound", "included", "bytes_per_client"):
        assert key in line
    assert set(line["seconds"]) >= {"client_mean", "committee_mean", "aggregator", "verifier"}


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="threshold: 2t < m"):
        make_config(committee_size=4, threshold=2)
    with pytest.raises(ConfigError, match="graph"):
        make_config(graph="regular:3", n_clients=5)
    with pytest.raises(ConfigError, match="overflow"):
        make_config(n_clients=1000, max_weight=100, quant_bits=16, bits=24)
    with pytest.raises(ConfigError, match="committee_dropout"):
        SimParams(committee=5, threshold=2, committee_dropout=3)


def test_tampering_with_a_middle_event_blames_the_board_not_the_sender(tmp_path: Path) -> None:
    _finished_round(tmp_path)
    transcript, blobs = load_round(tmp_path)
    events = list(transcript.events)
    ev = events[2]
    forged = dataclasses.replace(ev, body=ev.body[:-1] + bytes([ev.body[-1] ^ 1]))
    report = verify_round(TranscriptFile(tuple(events[:2] + [forged] + events[3:])), blobs)
    assert [f.party for f in report.findings] == ["board"]
    # re-chained, with the forged digest: every later view breaks, still the board
    events[2] = dataclasses.replace(forged, digest=post_digest(codec.decode(forged.body)))
    report = verify_round(_rechained(events), blobs)
    assert [f.party for f in report.findings] == ["board"]


def test_expected_head_pins_the_last_event(tmp_path: Path) -> None:
    rnd = _finished_round(tmp_path)
    head = (tmp_path / "head.hex").read_text().strip()
    assert cli_main(["verify", str(tmp_path), "--head", head]) == 0
    transcript, blobs = load_round(tmp_path)
    events = list(transcript.events)
    res = codec.decode(events[-1].body, ResultPost)
    forged_body = codec.encode(dataclasses.replace(res, digest=b"\x00" * 32))
    # a second, validly signed last event (the aggregator equivocating): the file alone
    # cannot say which one the chain holds; the head does
    forged = _resigned(events[:-1] + [dataclasses.replace(events[-1], body=forged_body)], rnd)
    report = verify_round(forged, blobs, bytes.fromhex(head))
    assert not report.ok and report.findings[0].party == "board"
    assert "expected head" in report.findings[0].detail
    # the body alone edited (digest, and so the head, unchanged): the signature catches it
    body_only = TranscriptFile(
        tuple(events[:-1] + [dataclasses.replace(events[-1], body=forged_body)])
    )
    report = verify_round(body_only, blobs, bytes.fromhex(head))
    assert not report.ok and [f.party for f in report.findings] == ["board"]


def test_board_that_accepted_a_bad_dealing_is_caught_and_the_dealer_named(tmp_path: Path) -> None:
    """A dealer signs an invalid dealing and a dishonest board accepts it: the deferred
    batch check fails and the post-by-post replay names the dealer (its signature is
    the evidence). Every party that acted afterwards signed the forged history too."""
    rnd = _finished_round(tmp_path)
    transcript, blobs = load_round(tmp_path)
    events = list(transcript.events)
    pos = next(i for i, ev in enumerate(events) if isinstance(codec.decode(ev.body), DealingsPost))
    post = codec.decode(events[pos].body, DealingsPost)
    d = Dealing.from_bytes(post.items[0].dealing)
    bad = dataclasses.replace(d, z=((d.z[0] + 1) % R,) + d.z[1:])
    items = (dataclasses.replace(post.items[0], dealing=bad.to_bytes()),) + post.items[1:]
    events[pos] = dataclasses.replace(
        events[pos], body=codec.encode(DealingsPost(post.dealer, items))
    )
    forged = _resigned(events, rnd)
    report = verify_round(forged, blobs)
    assert [(f.party, f.rule) for f in report.findings] == [
        (f"client {post.dealer}", "dealing-proof")
    ]
    # without the later parties' signatures on the forged history, the board is named
    report = verify_round(_rechained(list(forged.events[: pos + 1]) + events[pos + 1 :]), blobs)
    assert [f.party for f in report.findings] == ["board"]


def test_chain_verification_rechecks_rules_and_sum_not_proofs(tmp_path: Path, capsys) -> None:
    """SPEC §6.8 "chain" verification: proofs are the full-mode contract's job, every
    other rule and the sum are re-checked, and the chain's head is mandatory."""
    rnd = _finished_round(tmp_path)
    transcript, blobs = load_round(tmp_path)
    head = bytes.fromhex((tmp_path / "head.hex").read_text().strip())
    assert verify_round(transcript, blobs, head, trust_chain_proofs=True).ok
    no_head = verify_round(transcript, blobs, trust_chain_proofs=True)
    assert not no_head.ok and no_head.findings[0].party == "auditor"
    assert cli_main(["verify", str(tmp_path), "--trust-chain-proofs"]) == 2
    assert cli_main(["verify", str(tmp_path), "--head", head.hex(), "--trust-chain-proofs"]) == 0
    capsys.readouterr()

    events = list(transcript.events)
    # a wrong sum, signed by the aggregator, on a new head: caught in chain mode, named
    res = codec.decode(events[-1].body, ResultPost)
    events[-1] = dataclasses.replace(
        events[-1], body=codec.encode(dataclasses.replace(res, digest=b"\x07" * 32))
    )
    forged = _resigned(events, rnd)
    report = verify_round(forged, blobs, event_hash(forged.events[-1]), trust_chain_proofs=True)
    assert [f.party for f in report.findings] == ["aggregator"]
    # a rule a contract enforces without any proof (a second upload): caught, sender named
    events = list(transcript.events)
    pos = next(
        i for i, ev in enumerate(events) if isinstance(codec.decode(ev.body), MaskedInputPost)
    )
    events.insert(pos + 1, events[pos])
    forged = _resigned(events, rnd)
    report = verify_round(forged, blobs, event_hash(forged.events[-1]), trust_chain_proofs=True)
    assert [(f.party, f.rule) for f in report.findings] == [
        (f"client {events[pos].sender}", "upload")
    ]
    # a forged share proof is not re-verified in chain mode (the contract refused such
    # posts when they were made); the full replay still names the member
    events = list(transcript.events)
    pos = next(i for i, ev in enumerate(events) if isinstance(codec.decode(ev.body), SharesPost))
    post = codec.decode(events[pos].body, SharesPost)
    proof = DleqProof.from_bytes(post.proof)
    bad = dataclasses.replace(proof, response=(proof.response + 1) % R)
    events[pos] = dataclasses.replace(
        events[pos], body=codec.encode(dataclasses.replace(post, proof=bad.to_bytes()))
    )
    forged = _resigned(events, rnd)
    new_head = event_hash(forged.events[-1])
    assert verify_round(forged, blobs, new_head, trust_chain_proofs=True).ok
    full = verify_round(forged, blobs, new_head)
    assert [(f.party, f.rule) for f in full.findings] == [(f"member {post.member}", "share-proof")]


def test_client_refuses_an_invalid_dealing_relayed_by_the_board() -> None:
    rnd = Round().register().deal()
    st = rnd.board.state()
    key = pair_key(1, 3)  # dealt by client 1 to recipient 3
    d = st.dealings[key]
    # a lying board relays a dealing it should have refused
    st.dealings[key] = dataclasses.replace(d, s_hat=(d.s_hat[0] + G,) + d.s_hat[1:])
    with pytest.raises(ProtocolError, match=r"client 3: board relayed an invalid dealing.*DLEQ"):
        rnd.clients[2].masked_input(rnd.board)


# -- signed posts, views, seed reveals, confirmations, the included set (SPEC §6.9-§6.12) --


def _refused(rnd: Round, rule: str, post: SignedPost) -> RuleViolation:
    """Submit ``post``; it must be refused with ``rule`` and leave the board unchanged."""
    n_events, n_faults = len(rnd.board.events()), len(rnd.board.faults)
    with pytest.raises(RuleViolation) as exc:
        rnd.board.submit(post)
    assert exc.value.fault.rule == rule, exc.value
    assert len(rnd.board.events()) == n_events
    assert len(rnd.board.faults) == n_faults + 1 and rnd.board.faults[-1].rule == rule
    return exc.value


def _registration(rnd: Round, role: int, party: int) -> Registration:
    key = KeyPair.generate()
    cfg = rnd.cfg
    pop = prove_possession(key, cfg.chain_id, cfg.board, cfg.round_id, pop_party(role, party))
    return Registration(role, party, key.pk.to_bytes(), pop.to_bytes())


def test_a_post_not_signed_by_its_seat_is_refused() -> None:
    rnd = Round()
    reg = _registration(rnd, ROLE_CLIENT, 1)
    # signed by another seat's identity, by a stranger, or by the member seat's
    for ident in (rnd.seats.clients[1], fresh_identity(), rnd.seats.members[0]):
        exc = _refused(
            rnd, "signature", rnd.seats.sign(rnd.board, ROLE_CLIENT, 1, reg, identity=ident)
        )
        assert exc.fault.who == "client 1" and f"0x{ident.address.hex()}" in str(exc)
    good = rnd.seats.sign(rnd.board, ROLE_CLIENT, 1, reg)
    # a flipped bit in r, in v; the high-s twin of a valid signature; a zero signature
    r, s_, v = good.sig[:32], int.from_bytes(good.sig[32:64], "big"), good.sig[64]
    high_s = r + (SECP256K1_N - s_).to_bytes(32, "big") + bytes([55 - v])
    for sig in (
        bytes([good.sig[0] ^ 1]) + good.sig[1:],
        good.sig[:64] + bytes([55 - v]),
        high_s,
        b"\x00" * 65,
    ):
        _refused(rnd, "signature", dataclasses.replace(good, sig=sig))
    # the signature covers the body and the seat: another body, another seat
    other = codec.encode(_registration(rnd, ROLE_CLIENT, 1))
    _refused(rnd, "signature", dataclasses.replace(good, body=other))
    assert not rnd.board.state().clients
    rnd.board.submit(good)
    assert 1 in rnd.board.state().clients
    # the aggregator's seat: a result signed by a member is refused
    rnd.board.advance(40)
    res = ResultPost(b"\x00" * 32, (), 0)
    _refused(
        rnd,
        "signature",
        rnd.seats.sign(rnd.board, ROLE_AGGREGATOR, 0, res, identity=rnd.seats.members[0]),
    )


def test_a_post_on_another_view_is_refused() -> None:
    rnd = Round()
    reg = _registration(rnd, ROLE_CLIENT, 1)
    for view in (ZERO_HASH, b"\x13" * 32):
        exc = _refused(rnd, "view", rnd.seats.sign(rnd.board, ROLE_CLIENT, 1, reg, view=view))
        assert exc.fault.who == "client 1"
    rnd.seats.post(rnd.board, ROLE_CLIENT, 1, reg)
    # the REGISTER view is the head after event 0; a later post keeps it (the head
    # when the phase began), not the board's current head
    assert rnd.board.view() == event_hash(rnd.board.events()[0]) != rnd.board.head
    _refused(
        rnd,
        "view",
        rnd.seats.sign(
            rnd.board, ROLE_CLIENT, 2, _registration(rnd, ROLE_CLIENT, 2), view=rnd.board.head
        ),
    )
    for c in rnd.clients[1:]:
        c.register(rnd.board)
    for m in rnd.members:
        m.register(rnd.board)
    rnd.board.advance(rnd.cfg.register_blocks)
    # in DEAL the view is the registration head; the REGISTER phase's view is stale
    assert rnd.board.view() == rnd.board.state().registration_head == rnd.board.head
    member = rnd.members[0]
    gamma, proof = prove_seed_reveal(member.key, 31337, rnd.cfg.board, 1, 1)
    reveal = SeedReveal(1, gamma.to_bytes(), proof.to_bytes())
    stale = event_hash(rnd.board.events()[0])
    _refused(rnd, "view", rnd.seats.sign(rnd.board, ROLE_MEMBER, 1, reveal, view=stale))
    rnd.post(ROLE_MEMBER, 1, reveal)
    assert 1 in rnd.board.state().reveals


def test_no_dealing_before_every_seed_reveal() -> None:
    rnd = Round().register(reveal=False)
    st = rnd.board.state()
    for m in rnd.members[:-1]:
        m.reveal_seed(rnd.board)
    assert st.graph is None and st.round_seed is None
    exc = _refused(rnd, "dealings", rnd.seats.sign(rnd.board, ROLE_CLIENT, 1, DealingsPost(1, ())))
    assert "4 of 5 seed reveals" in str(exc)
    rnd.members[-1].reveal_seed(rnd.board)
    # the m-th reveal fixes the seed from the registration head and every Gamma
    gammas = [st.reveals[k] for k in range(1, 6)]
    assert st.round_seed == compute_round_seed(st.registration_head, gammas)
    assert st.graph is not None
    rnd.clients[0].deal(rnd.board)
    assert 1 in st.dealers


def test_one_seed_reveal_per_member() -> None:
    rnd = Round().register(reveal=False)
    member = rnd.members[1]
    cfg = rnd.cfg
    member.reveal_seed(rnd.board)
    # the same reveal again, and a different one (another key's Gamma and a valid
    # proof for that key): the first reveal stands
    gamma, proof = prove_seed_reveal(member.key, cfg.chain_id, cfg.board, cfg.round_id, 2)
    other = KeyPair.generate()
    g2, p2 = prove_seed_reveal(other, cfg.chain_id, cfg.board, cfg.round_id, 2)
    for msg in (
        SeedReveal(2, gamma.to_bytes(), proof.to_bytes()),
        SeedReveal(2, g2.to_bytes(), p2.to_bytes()),
    ):
        exc = _refused(rnd, "seed", rnd.seats.sign(rnd.board, ROLE_MEMBER, 2, msg))
        assert "already revealed" in str(exc)
    assert rnd.board.state().reveals[2] == gamma
    # a first reveal that is not of the member's registered key fails its proof
    exc = _refused(
        rnd,
        "seed",
        rnd.seats.sign(rnd.board, ROLE_MEMBER, 3, SeedReveal(3, g2.to_bytes(), p2.to_bytes())),
    )
    assert exc.fault.who == "member 3" and 3 not in rnd.board.state().reveals
    # a reveal for another member, or from a client seat
    _refused(
        rnd,
        "seed",
        rnd.seats.sign(rnd.board, ROLE_MEMBER, 3, SeedReveal(4, g2.to_bytes(), p2.to_bytes())),
    )
    _refused(
        rnd,
        "seed",
        rnd.seats.sign(rnd.board, ROLE_CLIENT, 3, SeedReveal(3, g2.to_bytes(), p2.to_bytes())),
    )


def _shares(rnd: Round, member: CommitteeMember) -> SharesPost:
    """Member ``member``'s share post of every allowed dealing, computed directly
    (the role itself refuses to decrypt before the quorum)."""
    st = rnd.board.state()
    return shares_post(rnd.cfg, st, member.party, member.key, rnd.board.allowed_shares())


def test_no_shares_before_a_quorum_of_confirmations() -> None:
    rnd = Round().register().deal().upload()
    q = rnd.cfg.confirm_quorum
    assert q == 4  # ceil((m + t + 1) / 2) for m = 5, t = 2
    rnd.confirm(skip={4, 5})  # 3 < Q
    post = _shares(rnd, rnd.members[0])
    exc = _refused(rnd, "confirm", rnd.seats.sign(rnd.board, ROLE_MEMBER, 1, post))
    assert "3 confirmations < quorum 4" in str(exc)
    with pytest.raises(ProtocolError, match="3 confirmations of its head < quorum 4"):
        rnd.members[0].reveal(rnd.board)
    rnd.members[3].confirm(rnd.board)
    rnd.post(ROLE_MEMBER, 1, post)
    shares = rnd.board.state().shares
    assert rnd.board.allowed_shares() and all(
        1 in shares[key] for key in rnd.board.allowed_shares()
    )


def test_a_confirmation_of_another_head_is_refused() -> None:
    rnd = Round().register().deal().upload()
    u_head = rnd.board.view()
    for head in (
        b"\x13" * 32,
        rnd.board.state().registration_head,
        event_hash(rnd.board.events()[0]),
    ):
        _refused(rnd, "confirm", rnd.seats.sign(rnd.board, ROLE_MEMBER, 1, Confirmation(1, head)))
    # for another member, from a client, twice
    _refused(rnd, "confirm", rnd.seats.sign(rnd.board, ROLE_MEMBER, 1, Confirmation(2, u_head)))
    _refused(rnd, "confirm", rnd.seats.sign(rnd.board, ROLE_CLIENT, 1, Confirmation(1, u_head)))
    rnd.post(ROLE_MEMBER, 1, Confirmation(1, u_head))
    _refused(rnd, "confirm", rnd.seats.sign(rnd.board, ROLE_MEMBER, 1, Confirmation(1, u_head)))
    assert rnd.board.state().confirmations == {1: u_head}


def test_an_aborted_round_reveals_nothing_and_posts_no_result() -> None:
    rnd = Round().register().deal()
    assert rnd.cfg.min_included == 4
    # only 3 of 6 upload: |U| = 3 < min_included = 4
    rnd.upload(skip={4, 5, 6})
    st = rnd.board.state()
    assert st.aborted and st.included == () and not rnd.board.allowed_shares()
    key = rnd.members[0].key  # (a corrupt member keeps it; an honest one erases it:)
    with pytest.raises(ProtocolError, match="aborted"):
        rnd.members[0].confirm(rnd.board)
    assert rnd.members[0].key is None
    _refused(
        rnd,
        "aborted",
        rnd.seats.sign(rnd.board, ROLE_MEMBER, 1, Confirmation(1, rnd.board.view())),
    )
    # the self dealing of an uploader: a share an unaborted U would allow
    post = shares_post(rnd.cfg, st, 1, key, [self_key(1)])
    _refused(rnd, "aborted", rnd.seats.sign(rnd.board, ROLE_MEMBER, 1, post))
    rnd.board.advance(rnd.cfg.unmask_blocks)
    for res in (ResultPost(b"\x00" * 32, (), 0), ResultPost(b"\x00" * 32, (1, 2, 3), 3)):
        _refused(rnd, "aborted", rnd.seats.sign(rnd.board, ROLE_AGGREGATOR, 0, res))
    assert not st.shares and not st.confirmations and st.result is None


def test_open_membership_one_seat_per_identity() -> None:
    seats = Seats.generate(6, 5)
    cfg = RoundConfig(
        **{
            **make_config(seats).__dict__,
            "clients": (),
            "min_included": 0,
            "min_neighbours": 0,
            "confirm_quorum": 0,
        }
    )
    assert cfg.clients == () and cfg.client_identity(1) is None
    rnd = Round(cfg, seats=seats)
    someone = fresh_identity()  # on no roster: open membership admits it
    rnd.seats.post(rnd.board, ROLE_CLIENT, 1, _registration(rnd, ROLE_CLIENT, 1), identity=someone)
    assert rnd.board.state().client_ids[1] == someone.address
    exc = _refused(
        rnd,
        "registration",
        rnd.seats.sign(
            rnd.board, ROLE_CLIENT, 2, _registration(rnd, ROLE_CLIENT, 2), identity=someone
        ),
    )
    assert "already holds a seat" in str(exc)
    # the seat is now someone's: another identity cannot post for it
    _refused(
        rnd,
        "signature",
        rnd.seats.sign(rnd.board, ROLE_CLIENT, 1, _registration(rnd, ROLE_CLIENT, 1)),
    )
    # a post for a free seat that is not a registration: the seat has no identity yet
    rnd.board.advance(rnd.cfg.register_blocks)
    _refused(
        rnd,
        "signature",
        rnd.seats.sign(rnd.board, ROLE_CLIENT, 3, DealingsPost(3, ()), identity=someone),
    )


def test_closed_membership_seats_belong_to_the_roster() -> None:
    rnd = Round()
    stranger = fresh_identity()
    _refused(
        rnd,
        "signature",
        rnd.seats.sign(
            rnd.board, ROLE_CLIENT, 1, _registration(rnd, ROLE_CLIENT, 1), identity=stranger
        ),
    )
    # a roster identity registering a seat that is not its own
    _refused(
        rnd,
        "signature",
        rnd.seats.sign(
            rnd.board,
            ROLE_CLIENT,
            2,
            _registration(rnd, ROLE_CLIENT, 2),
            identity=rnd.seats.clients[0],
        ),
    )
    # a board is created only by the config's aggregator
    with pytest.raises(ProtocolError, match="another aggregator"):
        MemoryBoard.create(rnd.cfg, stranger)


@pytest.mark.parametrize(
    "graph",
    [
        "regular: 4",
        "regular:+4",
        "regular:04",
        "regular:\u0664",
        "regular:4 ",
        " regular:4",
        "regular:",
        "regular:-4",
        "regular:4.0",
        "Regular:4",
        "complete ",
    ],
)
def test_graph_strings_are_canonical_only(graph: str) -> None:
    with pytest.raises(ConfigError, match="graph"):
        make_config(graph=graph)
    with pytest.raises(ConfigError, match="graph"):
        parse_graph(graph, 6)


def test_config_caps_are_checked_before_anything_is_allocated() -> None:
    seats = Seats.generate(2, 5)
    roster = seats.roster(open_membership=True)
    with pytest.raises(ConfigError, match=f"n_clients: {MAX_CLIENTS + 1} > the cap"):
        make_config(seats, n_clients=MAX_CLIENTS + 1, **roster)
    # a complete graph over the edge cap: refused from the numbers, even with an empty
    # roster (the cap comes before the roster and before any graph is built)
    n = 5800
    assert n * (n - 1) // 2 > MAX_GRAPH_EDGES
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="edges > the cap"):
        make_config(seats, n_clients=n, max_weight=1, bits=32, members=())
    assert time.perf_counter() - t0 < 0.5
    make_config(seats, n_clients=5000, max_weight=1, bits=32, **roster)  # under the cap
    with pytest.raises(ConfigError, match="committee_size"):
        make_config(seats, committee_size=MAX_COMMITTEE + 1)
    with pytest.raises(ConfigError, match="dim"):
        make_config(seats, dim=MAX_DIM + 1)


def test_config_roster_must_match_the_seats() -> None:
    seats = Seats.generate(6, 5)
    members, clients = seats.roster()["members"], seats.roster()["clients"]
    bad = {
        "members: the roster names 4": {"members": members[:4]},
        "members: identities must be distinct": {"members": members[:4] + members[:1]},
        "members: identities must be distinct and non-zero": {
            "members": members[:4] + (bytes(20),)
        },
        "clients: the roster names 5": {"clients": clients[:5]},
        "clients: identities must be distinct": {"clients": clients[:5] + clients[:1]},
        "clients: identities must be distinct and non-zero": {
            "clients": clients[:5] + (bytes(20),)
        },
        "aggregator": {"aggregator": b"\x01" * 19},
    }
    for match, kw in bad.items():
        with pytest.raises(ConfigError, match=match):
            make_config(seats, **kw)
    assert make_config(seats, clients=()).clients == ()  # open membership


def test_config_bounds_on_included_set_and_quorum() -> None:
    seats = Seats.generate(6, 5)
    cfg = make_config(seats)  # defaults: SPEC §6.11, §6.12
    assert (cfg.min_included, cfg.min_neighbours, cfg.confirm_quorum) == (4, 1, 4)
    assert make_config(seats, graph="regular:4").min_neighbours == 3
    assert make_config(seats, graph="regular:2").min_neighbours == 2
    assert confirm_quorum(10, 4) == 8 and confirm_quorum(5, 2) == 4
    assert default_min_included(100) == 35 and default_min_included(3) == 3
    for kw, match in (
        ({"min_included": 1}, "min_included: 1 must be in \\[2, n=6\\]"),
        ({"min_included": 7}, "min_included"),
        ({"min_neighbours": 6}, "min_neighbours: 6 must be in \\[1, degree=5\\]"),
        ({"graph": "regular:2", "min_neighbours": 3}, "min_neighbours"),
        ({"confirm_quorum": 3}, "confirm_quorum: 3 must be in"),
        ({"confirm_quorum": 6}, "confirm_quorum"),
        ({"challenge_blocks": 5}, "only an optimistic round"),
        ({"stake": 1}, "only an optimistic round"),
        ({"forfeit_to": b"\x01" * 20}, "only an optimistic round"),
        ({"forfeit_to": b"\x01" * 19}, "forfeit_to: expected a 20-byte address"),
    ):
        with pytest.raises(ConfigError, match=match):
            make_config(seats, **kw)
    edge = make_config(seats, min_included=6, min_neighbours=5, confirm_quorum=5)
    assert (edge.min_included, edge.min_neighbours, edge.confirm_quorum) == (6, 5, 5)
    assert make_config(seats, min_included=2).min_included == 2


def test_exclusions_exist_in_optimistic_rounds_only() -> None:
    rnd = Round().register().deal()
    post = SignedPost(
        ROLE_AGGREGATOR, 0, codec.encode(Exclusion(1, 0, 0)), rnd.board.view(), NO_SIGNATURE
    )
    exc = _refused(rnd, "message", post)
    assert "optimistic" in str(exc)


def test_replay_trusts_signatures_only_on_the_pinned_prefix() -> None:
    """``replay(trusted=k)`` (a relay node over the transcript it pinned): a seat's
    signature on events 0..k-1 is not recovered again — the event hash does not cover
    the signature, and the node checked that same digest's signature before pinning —
    while every event from k on is authenticated in full, and only a node replica
    (``defer_proofs``) may trust a prefix."""
    rnd = Round().register().deal()
    events = list(rnd.board.transcript().events)
    j = 2
    bad = dataclasses.replace(events[j], sig=bytes(64) + b"\x1b")
    forged = TranscriptFile((*events[:j], bad, *events[j + 1 :]))
    assert event_hash(bad) == event_hash(events[j])
    board = MemoryBoard.replay(forged, defer_proofs=True, trusted=j + 1)
    assert board.head == rnd.board.head
    who = f"{'client' if bad.role == ROLE_CLIENT else 'member'} {bad.sender}: signature"
    with pytest.raises(RuleViolation, match=who):
        MemoryBoard.replay(forged, defer_proofs=True, trusted=j)
    with pytest.raises(RuleViolation, match=who):
        MemoryBoard.replay(forged, defer_proofs=True)
    with pytest.raises(ProtocolError, match="relay node's own pin"):
        MemoryBoard.replay(forged, trusted=j + 1)

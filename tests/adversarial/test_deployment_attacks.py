"""Issue 11, "trust nobody in deployment": every attack of the issue, played by a
malicious server (it hosts and re-chains boards, forges what it can, sends
``StageRequest`` s) against honest ``NodeAgent`` s holding their own identities and the
deployment's roster.

Each test asserts (a) the attacker cannot unmask the target's individual input from
everything it collected (``Loot.recover``: t+1 shares of the self dealing *and* of
every pair dealing the target masked with, from honest replies plus colluders), and
(b) the deviation is refused — ``RuleViolation`` naming the rule, or ``ProtocolError``
from the honest node. Comments name the check that stops each step; ``control``
tests run the same attack against a deliberately weakened setting (monkeypatched) and
show it then *succeeds*, so the tests cannot pass vacuously.
"""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from fl.relay import (
    STAGE_CONFIRM,
    STAGE_DEAL,
    STAGE_REGISTER,
    STAGE_SEED,
    STAGE_UNMASK,
    STAGE_UPLOAD,
    _NodeState,
)
from pvss.keys import KeyPair, prove_seed_reveal
from pvss.scrape import DealRequest, deal_many
from secagg import codec
from secagg.boards import MemoryBoard, Phase, RuleViolation
from secagg.errors import ProtocolError
from secagg.graph import (
    compute_mask_graph,
    compute_round_seed,
    dealing_context,
    pair_key,
    self_key,
)
from secagg.identity import Identity
from secagg.messages import (
    ROLE_CLIENT,
    ROLE_MEMBER,
    DealingItem,
    DealingsPost,
    Event,
    MaskedInputPost,
    SeedReveal,
    SignedPost,
)
from secagg.posts import event_hash, post_digest, sign_post
from tests.adversarial.conftest import (
    Colluder,
    Loot,
    MaliciousServer,
    Upload,
    bypass_signatures,
    rechain,
    registration_post,
    signed,
    update_of,
)


def _rule(exc: pytest.ExceptionInfo) -> str:
    assert isinstance(exc.value, RuleViolation), exc.value
    return exc.value.fault.rule


def _body(ev: Event) -> object:
    return codec.decode(ev.body)


def _shares_for(loot: Loot, key: tuple[int, int, int]) -> int:
    return loot.honest_share_count(key)


# ---------------------------------------------------------------------------------------
# 1. Solo view at upload
# ---------------------------------------------------------------------------------------


def _solo_view(server: MaliciousServer, target: int) -> tuple[MemoryBoard, MemoryBoard]:
    """The real board B, and the solo view S the server shows ``target`` at upload: B's
    history without the other clients' dealings, re-chained under the server's own
    signature on event 0. ``target`` is the highest id, so every pair dealing of its
    edges has another dealer and S leaves it masking with its self mask only. It
    deals first, so its pin (the registrations and reveals) is a prefix of S."""
    cfg = server.cfg
    n, m = cfg.n_clients, cfg.committee_size
    real = server.new_board()
    server.run_stage(real, STAGE_REGISTER, range(1, n + 1), range(1, m + 1))
    server.run_stage(real, STAGE_SEED, members=range(1, m + 1))
    server.run_stage(real, STAGE_DEAL, [target] + [i for i in range(1, n + 1) if i != target])
    keep = [
        ev
        for ev in real.events()[1:]
        if not (isinstance(_body(ev), DealingsPost) and ev.sender != target)
    ]
    solo = rechain(cfg, server.dep.server, keep, [ev.height for ev in keep])
    for b in (real, solo):
        server.open(b, Phase.UPLOAD)
    assert solo.state().dealers == {target}
    return real, solo


def test_solo_view_at_upload_is_refused(deploy) -> None:  # noqa: ANN001
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep)
    target = 4
    real, solo = _solo_view(server, target)

    # The target cannot tell S from a round where the others dropped out: it uploads,
    # masking with its self mask only. The attacker now holds that vector.
    reply = server.ask_client(solo, target, STAGE_UPLOAD)
    assert server.loot.uploads[-1].edges == []

    # (b) Placing the signed MaskedInputPost on the real board: refused, rule "view"
    # (its view is S's UPLOAD head; the post is signed on it, so it cannot be moved).
    with pytest.raises(RuleViolation) as exc:
        server.post(real, reply)
    assert _rule(exc) == "view"
    # ... forging the target's post under the server's own key: rule "signature".
    (raw,) = reply.posts
    msg = codec.decode(codec.decode(raw, SignedPost).body)
    assert isinstance(msg, MaskedInputPost)
    forged = sign_post(dep.server, server.cfg, ROLE_CLIENT, target, msg, real.view())
    with pytest.raises(RuleViolation) as exc:
        real.submit(forged)
    assert _rule(exc) == "signature" and exc.value.fault.party == target
    # ... asking the target to upload again on the real board: its round key is gone.
    with pytest.raises(ProtocolError):
        server.ask_client(real, target, STAGE_UPLOAD)

    # On S itself only the target uploaded: U would be {target} < min_included, the
    # round aborts and honest members refuse to confirm (MemoryBoard: included set
    # below min_included; CommitteeMember.confirm: "aborted").
    server.open(solo, Phase.UNMASK)
    assert solo.state().aborted and solo.state().included == ()

    # The real board finishes without the target: members reveal every pair secret of
    # the target's edges (boundary pairs) but never its self secret.
    server.run_stage(real, STAGE_UPLOAD, [1, 2, 3])
    server.run_stage(real, STAGE_CONFIRM, members=range(1, 4))
    server.run_stage(real, STAGE_UNMASK, members=range(1, 4))
    assert real.state().included == (1, 2, 3)
    loot = server.loot
    assert all(loot.secret(pair_key(j, target)) is not None for j in (1, 2, 3))
    # (a) ... so the solo vector stays masked by PRG(self): nothing recovers the input,
    # and the members, shown the solo board afterwards, act on it no more (round key
    # erased after revealing; the solo board also forks their pin).
    for k in range(1, 4):
        with pytest.raises(ProtocolError):
            server.ask_member(solo, k, STAGE_CONFIRM)
    assert _shares_for(loot, self_key(target)) == 0
    assert loot.recover(target) is None


def test_a_member_shown_an_aborted_board_erases_its_round_key(deploy) -> None:  # noqa: ANN001
    """A member that refuses an aborted round (|U| < min_included) erases its round key
    there and then: t+1 member states stolen after an abort decrypt nothing."""
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep)
    board = server.new_board()
    server.run_stage(board, STAGE_REGISTER, range(1, 5), range(1, 4))
    server.run_stage(board, STAGE_SEED, members=range(1, 4))
    server.run_stage(board, STAGE_DEAL, range(1, 5))
    server.run_stage(board, STAGE_UPLOAD, [1])  # |U| <= 1 < min_included: aborted
    server.open(board, Phase.UNMASK)
    assert board.state().aborted
    for k in range(1, 4):
        with pytest.raises(ProtocolError, match="aborted"):
            server.ask_member(board, k, STAGE_CONFIRM)
        state = _NodeState.from_bytes(server.states[dep.member_node(k)])
        assert state.member == k and state.member_sk == 0


def test_solo_view_control_without_view_binding_exposes_the_target(deploy, monkeypatch) -> None:  # noqa: ANN001
    """Control: with the view rule and the signatures that bind it removed (the code
    before issue 11), the same attack reads the target's update."""
    original = MemoryBoard._check_post

    def no_view_rule(self, post):  # noqa: ANN001, ANN202
        view = self.state().phase_heads.get(self.phase(), post.view)
        return original(self, dataclasses.replace(post, view=view))

    bypass_signatures(monkeypatch)
    monkeypatch.setattr(MemoryBoard, "_check_post", no_view_rule)
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep)
    target = 4
    real, solo = _solo_view(server, target)
    server.post(real, server.ask_client(solo, target, STAGE_UPLOAD))  # now accepted
    server.run_stage(real, STAGE_UPLOAD, [1, 2, 3])
    server.run_stage(real, STAGE_CONFIRM, members=range(1, 4))
    server.run_stage(real, STAGE_UNMASK, members=range(1, 4))
    assert server.loot.exposes(target, update_of(target))


# ---------------------------------------------------------------------------------------
# 2. Split committee (m = 5, t = 2, quorum 4), with and without one colluding member
# ---------------------------------------------------------------------------------------


def _split(
    server: MaliciousServer,
    target: int,
    side_a: set[int],
    side_b: set[int],
    *,
    rollback: bool = False,
) -> dict[int, set[str]]:
    """One common history through UPLOAD's start; fork A holds every upload, fork B all
    but the target's, re-chained. Members of side_a are shown A, side_b B, then each is
    asked to confirm and unmask on the *other* fork too. Colluders act on both.
    ``rollback`` (WEAKENED, control only): honest members forget what they confirmed
    and pinned (their state is restored) before the other fork. Returns, per honest
    member, the forks it produced shares for."""
    cfg = server.cfg
    n, m = cfg.n_clients, cfg.committee_size
    base = server.new_board()
    server.through_deal(base)
    server.open(base, Phase.UPLOAD)
    prefix = base.events()
    uploads = {i: server.ask_client(base, i, STAGE_UPLOAD) for i in range(1, n + 1)}
    fork_a = base
    fork_b = rechain(cfg, server.dep.server, prefix[1:], [ev.height for ev in prefix[1:]])
    server.open(fork_b, Phase.UPLOAD)
    for i, reply in uploads.items():
        server.post(fork_a, reply)
        if i != target:
            server.post(fork_b, reply)
    forks = {"A": fork_a, "B": fork_b}
    for b in forks.values():
        server.open(b, Phase.UNMASK)
    assert target in fork_a.state().included and target not in fork_b.state().included

    honest = [k for k in range(1, m + 1) if k not in server.colluders]
    produced: dict[int, set[str]] = {k: set() for k in honest}
    before = {k: server.states.get(server.dep.member_node(k), b"") for k in honest}

    def attempt(k: int, name: str, stage: str) -> None:
        board = forks[name]
        try:
            reply = server.ask_member(board, k, stage)
        except ProtocolError:
            return
        server.post(board, reply)
        if stage == STAGE_UNMASK:
            produced[k].add(name)

    for col in server.colluders.values():  # a colluder confirms both heads
        for b in forks.values():
            col.confirm(b)
    order = [(k, "A") for k in sorted(side_a)] + [(k, "B") for k in sorted(side_b)]
    for stage in (STAGE_CONFIRM, STAGE_UNMASK):
        for k, name in order:
            if k in produced:
                attempt(k, name, stage)
    for stage in (STAGE_CONFIRM, STAGE_UNMASK):  # now the other fork, for everyone
        for k, name in order:
            if k not in produced:
                continue
            if rollback and stage == STAGE_CONFIRM:
                server.states[server.dep.member_node(k)] = before[k]
            attempt(k, "B" if name == "A" else "A", stage)
    for k, _ in order:  # and once more, now that both forks hold every confirmation
        if k in produced:
            for name in forks:
                attempt(k, name, STAGE_UNMASK)
    return produced


SPLITS_HONEST = [({1, 2}, {3, 4, 5}), ({1, 2, 3, 4}, {5}), ({1, 2, 3}, {4, 5})]
SPLITS_ONE_COLLUDER = [({1, 2, 3}, {4}), ({1, 2}, {3, 4}), ({1}, {2, 3, 4})]


@pytest.mark.parametrize(("side_a", "side_b"), SPLITS_HONEST)
def test_split_committee_without_collusion(deploy, side_a, side_b) -> None:  # noqa: ANN001
    dep = deploy(n=4, m=5, t=2)
    server = MaliciousServer(dep)
    assert server.cfg.confirm_quorum == 4
    produced = _split(server, 1, side_a, side_b)
    # (b) no honest member decrypts for two U-fixing heads (NodeAgent pin +
    # CommitteeMember.confirmed_head; and below quorum nobody decrypts at all)
    assert all(len(forks) <= 1 for forks in produced.values())
    # (a) the attacker never holds t+1 shares of the self dealing and of every pair
    loot = server.loot
    assert loot.recover(1) is None


@pytest.mark.parametrize(("side_a", "side_b"), SPLITS_ONE_COLLUDER)
def test_split_committee_with_one_colluding_member(deploy, side_a, side_b) -> None:  # noqa: ANN001
    dep = deploy(n=4, m=5, t=2)
    server = MaliciousServer(dep, colluding_members=[5])
    produced = _split(server, 1, side_a, side_b)
    assert all(len(forks) <= 1 for forks in produced.values())
    # the quorum: 2Q - m = 3 = t+1 members confirm both heads' quorums only if one
    # honest member confirmed both; so at most one fork gets past the quorum check
    decrypting = {f for forks in produced.values() for f in forks}
    assert len(decrypting) <= 1
    assert server.loot.recover(1) is None


def test_split_committee_control_stateless_members_expose_the_target(deploy) -> None:  # noqa: ANN001
    """Control: members that do not remember the head they confirmed (state restored,
    so no pin and no confirmed head) decrypt on both forks: the target is exposed."""
    dep = deploy(n=4, m=5, t=2)
    server = MaliciousServer(dep)
    produced = _split(server, 1, {1, 2, 3, 4, 5}, set(), rollback=True)
    assert all(forks == {"A", "B"} for forks in produced.values())
    assert server.loot.exposes(1, update_of(1))


def test_split_committee_control_quorum_t_plus_one_exposes_the_target(
    deploy,  # noqa: ANN001
    monkeypatch,  # noqa: ANN001
) -> None:
    """Control: with a naive quorum of t+1 confirmations one colluder suffices."""
    monkeypatch.setattr("secagg.config.confirm_quorum", lambda m, t: t + 1)
    monkeypatch.setattr("secagg.roster.confirm_quorum", lambda m, t: t + 1)
    dep = deploy(n=4, m=5, t=2)
    server = MaliciousServer(dep, colluding_members=[5])
    assert server.cfg.confirm_quorum == 3
    produced = _split(server, 1, {1, 2}, {3, 4})
    assert {f for forks in produced.values() for f in forks} == {"A", "B"}
    assert server.loot.exposes(1, update_of(1))


# ---------------------------------------------------------------------------------------
# 3. Substituted committee
# ---------------------------------------------------------------------------------------


def _fake_committee_board(
    server: MaliciousServer, fakes: list[Colluder], *, clients: range
) -> MemoryBoard:
    """The real config; the honest clients register; then the server seats member keys
    it generated (signatures bypassed while it builds the board) and reveals for them."""
    board = server.new_board()
    server.run_stage(board, STAGE_REGISTER, clients)
    with pytest.MonkeyPatch.context() as mp:
        bypass_signatures(mp)
        for f in fakes:
            f.register(board)
        server.open(board, Phase.DEAL)
        for f in fakes:
            f.reveal_seed(board)
    return board


def test_substituted_committee_is_refused(deploy) -> None:  # noqa: ANN001
    dep = deploy(n=4, m=3, t=1)
    n, m = 4, 3

    # (i) a config naming a committee of the server's own identities: every honest
    # node refuses at once (Roster.check, via NodeAgent._replica).
    fake_ids = [Identity.generate() for _ in range(m)]
    cfg_fake = dataclasses.replace(dep.config(), members=tuple(f.address for f in fake_ids))
    server = MaliciousServer(dep, cfg_fake)
    board = server.new_board()
    for k, ident in enumerate(fake_ids, 1):
        Colluder(cfg_fake, k, ident).register(board)  # its own board accepts them
    for i in range(1, n + 1):
        with pytest.raises(ProtocolError, match="committee"):
            server.ask_client(board, i, STAGE_REGISTER)
    for k in range(1, m + 1):
        with pytest.raises(ProtocolError, match="committee"):
            server.ask_member(board, k, STAGE_REGISTER)

    # (ii) the real config, member seats registered with server keys: rule "signature"
    # (seat k belongs to roster.committee[k-1]), attributed to that seat.
    server = MaliciousServer(dep)
    board = server.new_board()
    for k, ident in enumerate(fake_ids, 1):
        with pytest.raises(RuleViolation) as exc:
            Colluder(server.cfg, k, ident).register(board)
        assert _rule(exc) == "signature"
        assert (exc.value.fault.role, exc.value.fault.party) == (ROLE_MEMBER, k)

    # (iii) a transcript the server edited by hand to seat its keys: an honest client's
    # replica refuses it (MemoryBoard._check_signature on replay) and deals nothing.
    fakes = [Colluder(server.cfg, k, ident) for k, ident in enumerate(fake_ids, 1)]
    board = _fake_committee_board(server, fakes, clients=range(1, n + 1))
    for i in range(1, n + 1):
        with pytest.raises(RuleViolation) as exc:
            server.ask_client(board, i, STAGE_DEAL)
        assert _rule(exc) == "signature" and exc.value.fault.role == ROLE_MEMBER
    assert not any(st == STAGE_DEAL for _, st, _ in server.replies)
    # (a) so no dealing of any client is ever encrypted to the server's keys
    loot = Loot(server.cfg, colluders=fakes)
    loot.see_board(board)
    assert loot.dealings == {} and all(loot.secret(self_key(i)) is None for i in range(1, 5))


def test_substituted_committee_control_without_signatures_leaks_the_self_secret(
    deploy,  # noqa: ANN001
    monkeypatch,  # noqa: ANN001
) -> None:
    """Control: without signature checks the client deals to the server's keys and
    the server alone reconstructs its self secret (compared with the client's own)."""
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep)
    fakes = [Colluder(server.cfg, k, Identity.generate()) for k in range(1, 4)]
    board = _fake_committee_board(server, fakes, clients=range(1, 5))
    bypass_signatures(monkeypatch)
    server.post(board, server.ask_client(board, 1, STAGE_DEAL))  # deals to fake keys
    dealt = _NodeState.from_bytes(server.states[dep.client_node(1)]).secrets[self_key(1)]
    loot = Loot(server.cfg, colluders=fakes)  # the server's own member keys, no one else
    loot.see_board(board)
    key = self_key(1)
    assert loot.secret(key) == dealt


# ---------------------------------------------------------------------------------------
# 4. Drop + Sybil
# ---------------------------------------------------------------------------------------


def test_sybil_registrations_are_refused(deploy) -> None:  # noqa: ANN001
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep)
    board = server.new_board()
    # the server's own identity, not on the roster, takes client seat 3: "signature"
    post, _ = registration_post(board, dep.server, ROLE_CLIENT, 3)
    with pytest.raises(RuleViolation) as exc:
        board.submit(post)
    assert _rule(exc) == "signature" and exc.value.fault.party == 3
    # a roster identity's seat without that identity's key (a fresh one): "signature"
    post, _ = registration_post(board, Identity.generate(), ROLE_CLIENT, 4)
    with pytest.raises(RuleViolation) as exc:
        board.submit(post)
    assert _rule(exc) == "signature"
    assert board.state().clients == {}
    # a config that seats the server's identity as client 3: honest nodes refuse the
    # round (Roster.check: "not on the roster")
    clients = list(server.cfg.clients)
    clients[2] = dep.server.address
    cfg = dataclasses.replace(server.cfg, clients=tuple(clients))
    sybil = MaliciousServer(dep, cfg)
    board = sybil.new_board()
    board.submit(registration_post(board, dep.server, ROLE_CLIENT, 3)[0])
    for i in (1, 2, 4):
        with pytest.raises(ProtocolError, match="not on the roster"):
            sybil.ask_client(board, i, STAGE_REGISTER)
    for k in (1, 2, 3):
        with pytest.raises(ProtocolError, match="not on the roster"):
            sybil.ask_member(board, k, STAGE_REGISTER)


def _drop_all_but(server: MaliciousServer, keep: list[int]) -> MemoryBoard:
    board = server.new_board()
    server.through_deal(board)
    server.run_stage(board, STAGE_UPLOAD, keep)  # the others' uploads are dropped
    server.open(board, Phase.UNMASK)
    return board


def test_drop_leaving_only_a_colluding_client_aborts(deploy) -> None:  # noqa: ANN001
    """U = {target, colluding roster client}: |U| = 2 < min_included = 3 (n = 4), the
    round aborts (compute_included) and honest members reveal nothing."""
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep, colluding_clients=[2])
    assert server.cfg.min_included == 3
    board = _drop_all_but(server, [1, 2])
    st = board.state()
    assert st.aborted and st.included == ()
    for k in (1, 2, 3):
        with pytest.raises(ProtocolError, match="aborted"):
            server.ask_member(board, k, STAGE_CONFIRM)
        with pytest.raises(ProtocolError):  # never confirmed: it does not decrypt
            server.ask_member(board, k, STAGE_UNMASK)
    # the board itself refuses confirmations and shares of an aborted round
    col = Colluder(server.cfg, 1, dep.idents[dep.member_node(1)])
    with pytest.raises(RuleViolation) as exc:
        col.confirm(board)
    assert _rule(exc) == "aborted"
    assert server.loot.shares == {}
    assert server.loot.recover(1) is None


def test_drop_control_min_included_two_exposes_the_target(deploy, monkeypatch) -> None:  # noqa: ANN001
    """Control: with no minimum included set (|U| >= 2, the code before issue 11) the
    same drop exposes the target: self secret and boundary pairs revealed, the pair with
    the colluding client known to it."""
    monkeypatch.setattr("secagg.config.default_min_included", lambda n: 2)
    monkeypatch.setattr("secagg.roster.default_min_included", lambda n: 2)
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep, colluding_clients=[2])
    board = _drop_all_but(server, [1, 2])
    assert board.state().included == (1, 2)
    server.run_stage(board, STAGE_CONFIRM, members=[1, 2, 3])
    server.run_stage(board, STAGE_UNMASK, members=[1, 2, 3])
    assert server.loot.exposes(1, update_of(1))


# ---------------------------------------------------------------------------------------
# 5. Graph grinding
# ---------------------------------------------------------------------------------------


def test_seed_reveal_is_unique_and_bound_to_the_members_key(deploy) -> None:  # noqa: ANN001
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep, colluding_members=[1])
    board = server.new_board()
    server.run_stage(board, STAGE_REGISTER, range(1, 5), range(1, 4))
    server.open(board, Phase.DEAL)
    col = server.colluders[1]
    cfg = server.cfg

    def reveal_post(sender: int, member: int, key: KeyPair, ident: Identity):  # noqa: ANN202
        gamma, proof = prove_seed_reveal(key, cfg.chain_id, cfg.board, cfg.round_id, member)
        msg = SeedReveal(member, gamma.to_bytes(), proof.to_bytes())
        return sign_post(ident, cfg, ROLE_MEMBER, sender, msg, board.view())

    # (i) a different Gamma with a valid DLEQ proof (for another key) is refused: the
    # proof must hold for the *registered* pk (verify_seed_reveal, rule "seed")
    other = KeyPair.generate()
    with pytest.raises(RuleViolation) as exc:
        board.submit(reveal_post(1, 1, other, col.identity))
    assert _rule(exc) == "seed"
    col.reveal_seed(board)  # its one Gamma
    with pytest.raises(RuleViolation) as exc:  # and no second one
        board.submit(reveal_post(1, 1, other, col.identity))
    assert _rule(exc) == "seed" and "already" in str(exc.value)
    # (ii) member 1 cannot reveal for member 2: as sender 1 ("seed"), as seat 2
    # under its own signature ("signature")
    with pytest.raises(RuleViolation) as exc:
        board.submit(reveal_post(1, 2, col.key, col.identity))
    assert _rule(exc) == "seed"
    with pytest.raises(RuleViolation) as exc:
        board.submit(reveal_post(2, 2, col.key, col.identity))
    assert _rule(exc) == "signature"
    # (iii) dealings before all m reveals: refused by the board (rule "dealings") ...
    server.run_stage(board, STAGE_SEED, members=[2])
    assert board.state().graph is None
    req = DealRequest(tuple(board.member_keys()), 1, dealing_context(cfg, self_key(3)), None)
    ((dealing, _),) = deal_many([req])
    early = DealingsPost(3, (DealingItem(0, 0, dealing.to_bytes()),))
    ident3 = dep.idents[dep.client_node(3)]
    with pytest.raises(RuleViolation) as exc:
        board.submit(sign_post(ident3, cfg, ROLE_CLIENT, 3, early, board.view()))
    assert _rule(exc) == "dealings" and "not fixed" in str(exc.value)
    # ... and an honest client asked to deal then produces nothing
    with pytest.raises(ProtocolError, match="not fixed"):
        server.ask_client(board, 4, STAGE_DEAL)
    assert not [r for _, st, r in server.replies if st == STAGE_DEAL]


def test_honest_client_asked_to_deal_before_the_graph_raises_protocol_error(deploy) -> None:  # noqa: ANN001
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep)
    board = server.new_board()
    server.run_stage(board, STAGE_REGISTER, range(1, 5), range(1, 4))
    server.run_stage(board, STAGE_SEED, members=[1, 2])
    with pytest.raises(ProtocolError, match="graph is not fixed"):
        server.ask_client(board, 1, STAGE_DEAL)


def _grind(
    server: MaliciousServer, board: MemoryBoard, grinder: int, target: int, colluders: set[int]
) -> tuple[MemoryBoard, dict[int, tuple[int, ...]]]:
    """Knowing every Gamma (revealed on ``board``), re-draw the grinder's registration
    until the predicted graph surrounds ``target`` with colluders; returns the
    re-chained registration board and its predicted graph."""
    cfg, st = server.cfg, board.state()
    gammas = [st.reveals[k] for k in range(1, cfg.committee_size + 1)]
    regs = [ev for ev in board.events()[1:] if ev.height < cfg.register_blocks]
    others = [ev for ev in regs if not (ev.role == ROLE_CLIENT and ev.sender == grinder)]
    ident = server.dep.idents[server.dep.client_node(grinder)]
    scratch = server.new_board()
    for _ in range(400):
        post, _key = registration_post(scratch, ident, ROLE_CLIENT, grinder)
        last = others[-1]
        ev = Event(
            len(others) + 1,
            0,
            ROLE_CLIENT,
            grinder,
            post.body,
            post_digest(codec.decode(post.body)),
            post.view,
            post.sig,
            event_hash(last),
        )
        graph = compute_mask_graph(cfg, compute_round_seed(event_hash(ev), gammas))
        if set(graph[target]) <= colluders:
            ground = rechain(cfg, server.dep.server, others, [0] * len(others))
            ground.submit(post)
            server.open(ground, Phase.DEAL)
            return ground, graph
    raise AssertionError("grinding did not find a graph in 400 tries")


def _grinding_setup(deploy):  # noqa: ANN001, ANN202
    dep = deploy(n=6, m=3, t=1)
    cfg = dep.config(graph="regular:2")
    server = MaliciousServer(dep, cfg, colluding_clients=[5, 6])
    board = server.new_board()
    server.run_stage(board, STAGE_REGISTER, range(1, 7), range(1, 4))
    seeded_states = dict(server.states)
    server.run_stage(board, STAGE_SEED, members=range(1, 4))
    return server, board, seeded_states


def test_regrinding_registrations_after_the_reveals_is_refused(deploy) -> None:  # noqa: ANN001
    """The graph is fixed by the reveals on the registration head; a server that learnt
    the Gammas and re-draws a colluding client's registration to surround the target
    needs the members to reveal again on the new head: their reveal posts are bound to
    the old head (rule "view") and honest members reveal once (stage / pin)."""
    server, board, _ = _grinding_setup(deploy)
    target, colluders = 1, {5, 6}
    ground, _graph = _grind(server, board, 6, target, colluders)
    reveals = [ev for ev in board.events() if isinstance(_body(ev), SeedReveal)]
    for ev in reveals:
        with pytest.raises(RuleViolation) as exc:
            ground.submit(signed(ev))
        assert _rule(exc) == "view"
    for k in (1, 2, 3):
        with pytest.raises(ProtocolError):
            server.ask_member(ground, k, STAGE_SEED)
    assert ground.state().graph is None  # no graph, no dealings on the ground board
    # and on the real board the graph is the one the reveals fixed, not the ground one
    assert board.state().graph is not None
    # (a) the target's honest neighbours on the real board are what the reveals drew;
    # nothing the attacker did selected them (nothing else was accepted anywhere)
    assert [st for _, st, _ in server.replies].count(STAGE_SEED) == 3


def test_grinding_control_members_revealing_twice_let_the_server_choose(deploy) -> None:  # noqa: ANN001
    """Control: members that reveal again on a new registration head (their state
    restored: WEAKENED) let the server pick the graph it ground."""
    server, board, seeded_states = _grinding_setup(deploy)
    target, colluders = 1, {5, 6}
    ground, graph = _grind(server, board, 6, target, colluders)
    for k in (1, 2, 3):
        node = server.dep.member_node(k)
        server.states[node] = seeded_states[node]
        server.post(ground, server.ask_member(ground, k, STAGE_SEED))
    assert ground.state().graph == graph and set(graph[target]) <= colluders


# ---------------------------------------------------------------------------------------
# 6. Cross-round replay
# ---------------------------------------------------------------------------------------


def test_cross_round_replay_is_refused(deploy, monkeypatch) -> None:  # noqa: ANN001
    dep = deploy(n=4, m=3, t=1)
    s1 = MaliciousServer(dep, dep.config(round_id=1))
    b1 = s1.new_board()
    s1.through_deal(b1)
    s1.run_stage(b1, STAGE_UPLOAD, range(1, 5))
    cfg2 = dep.config(round_id=2)  # same chain, same board address
    s2 = MaliciousServer(dep, cfg2)
    s2.states = s1.states  # the same nodes, the same node-local state
    b2 = s2.new_board()
    regs = [ev for ev in b1.events() if ev.height < cfg2.register_blocks and ev.seq]
    # every round-1 registration into round 2: rule "signature" (binds round_id) ...
    for ev in regs:
        with pytest.raises(RuleViolation) as exc:
            b2.submit(signed(ev))
        assert _rule(exc) == "signature"
    # ... with signatures bypassed, the view (round 1's event 0 is not round 2's) ...
    # ... and with the view re-labelled too, the proof of possession (binds round_id)
    with monkeypatch.context() as mp:
        bypass_signatures(mp)
        for ev in regs:
            with pytest.raises(RuleViolation) as exc:
                b2.submit(signed(ev))
            assert _rule(exc) == "view"
            with pytest.raises(RuleViolation) as exc:
                b2.submit(dataclasses.replace(signed(ev), view=b2.view()))
            assert _rule(exc) == "proof-of-possession"
    assert b2.state().clients == {} and b2.state().members == {}
    # later posts replayed into round 2 (after its own registrations): "signature"
    s2.run_stage(b2, STAGE_REGISTER, range(1, 5), range(1, 4))
    s2.open(b2, Phase.DEAL)
    for ev in b1.events():
        if isinstance(_body(ev), SeedReveal | DealingsPost):
            with pytest.raises(RuleViolation) as exc:
                b2.submit(signed(ev))
            assert _rule(exc) == "signature"
    # a node is not dragged back into round 1 once it joined round 2
    s1.open(b1, Phase.UNMASK)
    with pytest.raises(ProtocolError, match="never joined"):
        s1.ask_member(b1, 1, STAGE_CONFIRM)
    # (a) round 2 seats only round-2 keys: no honest client deals to a round-1 key
    s2.run_stage(b2, STAGE_SEED, members=range(1, 4))
    s2.run_stage(b2, STAGE_DEAL, range(1, 5))
    old = set(b1.state().members.values()) | set(b1.state().clients.values())
    new = set(b2.state().members.values()) | set(b2.state().clients.values())
    assert not old & new


# ---------------------------------------------------------------------------------------
# 7. Leftover node state
# ---------------------------------------------------------------------------------------


def _raw_state(blob: bytes) -> list:
    return msgpack.unpackb(blob, raw=False)


def _loot_from_states(server: MaliciousServer, board: MemoryBoard, stolen: dict[int, bytes]):  # noqa: ANN202
    """The public round (the transcript: dealings, posted shares; the masked vectors)
    plus stolen node states."""
    loot = Loot(server.cfg)
    loot.see_board(board)
    st = board.state()
    for key, shares in st.shares.items():
        loot.shares.setdefault(key, {}).update(shares)
    loot.uploads = [Upload(u.client, u.blob, u.edges) for u in server.loot.uploads]
    for node, blob in stolen.items():
        s = _NodeState.from_bytes(blob)
        loot.client_secrets.update(s.secrets)
        if s.client and s.client_sk:
            loot.client_keys[s.client] = KeyPair.generate(s.client_sk)
        if s.member and s.member_sk:
            c = Colluder(server.cfg, s.member, server.dep.idents[node])
            c.key = KeyPair.generate(s.member_sk)
            loot.colluders.append(c)
    return loot


def test_leftover_state_holds_no_round_secret(deploy) -> None:  # noqa: ANN001
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep)
    board = server.new_board()
    server.through_deal(board)
    after_deal = dict(server.states)
    server.run_stage(board, STAGE_UPLOAD, range(1, 5))
    server.run_stage(board, STAGE_CONFIRM, members=range(1, 4))
    before_unmask = dict(server.states)
    server.run_stage(board, STAGE_UNMASK, members=range(1, 4))
    zero = bytes(32)
    for i in range(1, 5):
        node = dep.client_node(i)
        raw = _raw_state(server.states[node])
        # [v, round, client, client_sk, stage, secrets, member, member_sk, ...]
        assert raw[2] == i and raw[3] == zero and raw[5] == [], f"client {i}: {raw}"
        old = _NodeState.from_bytes(after_deal[node])
        for secret in [old.client_sk.to_bytes(32, "big")] + [
            p.to_bytes() for p in old.secrets.values()
        ]:
            assert secret not in server.states[node]
    for k in range(1, 4):
        node = dep.member_node(k)
        raw = _raw_state(server.states[node])
        assert raw[6] == k and raw[7] == zero, f"member {k}: {raw}"
        old = _NodeState.from_bytes(before_unmask[node])
        assert old.member_sk.to_bytes(32, "big") not in server.states[node]
    # (a) every node's state stolen after the round + the public round: no input
    loot = _loot_from_states(server, board, server.states)
    assert all(loot.recover(i) is None for i in range(1, 5))
    # Control: the same theft before the secrets were erased works — a client's state
    # after dealing (its round key + dealt seeds) unmasks its upload; t+1 member states
    # before unmasking decrypt the pair dealings that are never revealed.
    assert _loot_from_states(
        server, board, {dep.client_node(1): after_deal[dep.client_node(1)]}
    ).exposes(1, update_of(1))
    members = {dep.member_node(k): before_unmask[dep.member_node(k)] for k in (1, 2)}
    assert _loot_from_states(server, board, members).exposes(2, update_of(2))


# ---------------------------------------------------------------------------------------
# 8. Pinning
# ---------------------------------------------------------------------------------------


def test_relay_that_does_not_extend_the_pin_is_refused(deploy) -> None:  # noqa: ANN001
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep)
    board = server.new_board()
    server.through_deal(board)  # client 4 deals last: its pin covers 1..3's dealings
    server.open(board, Phase.UPLOAD)
    evs = board.events()
    deals = [ev for ev in evs if isinstance(_body(ev), DealingsPost)]
    rest = [ev for ev in evs[1:] if ev not in deals]
    # the same posts, dealings in another order: a different, valid history
    reordered = rechain(
        server.cfg, dep.server, rest + deals[::-1], [ev.height for ev in rest + deals[::-1]]
    )
    server.open(reordered, Phase.UPLOAD)
    assert reordered.view() != board.view()
    # a truncated history: the pinned event (client 3's dealing) and client 4's dropped
    truncated = rechain(server.cfg, dep.server, evs[1:-2], [ev.height for ev in evs[1:-2]])
    server.open(truncated, Phase.UPLOAD)
    for fork in (reordered, truncated):
        with pytest.raises(ProtocolError, match="forked"):
            server.ask_client(fork, 4, STAGE_UPLOAD)
    assert not server.loot.uploads  # (a) no masked vector on a forked view
    # control: a node without its pin (WEAKENED: pin cleared) uploads on the fork ...
    node = dep.client_node(4)
    s = _NodeState.from_bytes(server.states[node])
    pinned = server.states[node]
    s.pin_seq, s.pin_head = -1, b""
    server.states[node] = s.to_bytes()
    server.ask_client(reordered, 4, STAGE_UPLOAD)
    assert server.loot.uploads[-1].client == 4
    # ... while the pinned node uploads on the board that extends what it acted on
    server.states[node] = pinned
    server.post(board, server.ask_client(board, 4, STAGE_UPLOAD))
    assert 4 in board.state().masked


def test_member_pinned_at_confirm_refuses_another_fork(deploy) -> None:  # noqa: ANN001
    dep = deploy(n=4, m=3, t=1)
    server = MaliciousServer(dep)
    board = server.new_board()
    server.through_deal(board)
    server.open(board, Phase.UPLOAD)
    prefix = board.events()[1:]
    ups = {i: server.ask_client(board, i, STAGE_UPLOAD) for i in range(1, 5)}
    for r in ups.values():
        server.post(board, r)
    fork = rechain(server.cfg, dep.server, prefix, [ev.height for ev in prefix])
    server.open(fork, Phase.UPLOAD)
    for i in (2, 3, 4):
        server.post(fork, ups[i])
    for b in (board, fork):
        server.open(b, Phase.UNMASK)
    server.run_stage(board, STAGE_CONFIRM, members=range(1, 4))
    for k in range(1, 4):
        with pytest.raises(ProtocolError, match="forked"):
            server.ask_member(fork, k, STAGE_UNMASK)
    assert server.loot.shares == {}
    assert server.loot.recover(1) is None

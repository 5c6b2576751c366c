"""fl.relay + fl.host: a relayed round end to end without any FL framework — dropouts
at every stage, a committee fixed by the deployment's roster (a missing member halts
the round: nobody re-draws a seat), nodes refusing a tampered, forked or foreign relay,
faults attributed, a cheating aggregator caught before its result is used."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fl.host import (
    NodeRoles,
    RoundFailed,
    RoundHost,
    RoundVerificationError,
    drive_round,
    make_board,
    make_round_config,
)
from fl.relay import STAGES, NodeAgent, StageReply, StageRequest
from secagg import codec
from secagg.aggregate import compute_sum, recover_seeds, removal_plan, result_blob
from secagg.boards import MemoryBoard, RuleViolation
from secagg.errors import ConfigError, ProtocolError, PvssError
from secagg.identity import Identity
from secagg.messages import MaskedInputPost, ResultPost, TranscriptFile
from secagg.roles import Aggregator, Stage
from secagg.roster import Roster, make_deployment
from secagg.verifier import load_round, verify_round

DIM = 40
ORDER = {s: i for i, s in enumerate(STAGES)}


def _roles(n: int, committee: list[int]) -> list[NodeRoles]:
    """Node ids 100.. (transport ids are not party ids)."""
    return [
        NodeRoles(100 + i, i + 1, committee.index(i) + 1 if i in committee else 0) for i in range(n)
    ]


@dataclass
class Deployment:
    """What a deployment ceremony gives: every node's identity (node 100 + i holds
    ``nodes[i]``), the roster every node holds, and the server's identity."""

    roster: Roster
    nodes: list[Identity]
    server: Identity

    @classmethod
    def make(cls, tmp: Path, n: int, committee: list[int], t: int) -> Deployment:
        roster, paths = make_deployment(tmp / "deployment", n, len(committee), t)
        idents = [Identity.load(q) for q in paths]  # nodes 0..m-1 sit on the committee
        order = committee + [i for i in range(n) if i not in committee]
        nodes = [None] * n
        for pos, i in enumerate(order):  # node i gets the identity of its seat
            nodes[i] = idents[pos]
        return cls(roster, nodes, Identity.generate())


class Harness:
    """A host and in-process node agents; ``offline[node] = stage`` silences a node from
    that stage on; ``tamper(stage, node, reply)`` may rewrite a reply."""

    def __init__(
        self,
        tmp: Path,
        n: int = 5,
        m: int = 3,
        t: int = 1,
        committee: list[int] | None = None,
        offline: Mapping[int, str] | None = None,
        tamper: Callable[[str, int, StageReply], StageReply] | None = None,
        weights: list[int] | None = None,
        deployment: Deployment | None = None,
    ) -> None:
        committee = committee or list(range(m))
        self.deployment = deployment or Deployment.make(tmp, n, committee, t)
        dep = self.deployment
        self.cfg = make_round_config(
            round_id=1,
            n_clients=n,
            committee_size=m,
            threshold=t,
            dim=DIM,
            clip=1.0,
            quant_bits=16,
            max_weight=50,
            board_address=bytes(range(20)),
            aggregator=dep.server.address,
            members=dep.roster.committee,
            clients=tuple(i.address for i in dep.nodes),
        )
        rng = np.random.default_rng(7)
        self.updates = {100 + i: rng.uniform(-1.2, 1.2, DIM) for i in range(n)}
        self.weights = {100 + i: (weights[i] if weights else i + 1) for i in range(n)}
        self.host = RoundHost(self.cfg, tmp / "round-1", _roles(n, committee), identity=dep.server)
        self.offline = dict(offline or {})
        self.tamper = tamper
        self.states: dict[int, bytes] = {}

    def agent(self, node: int, state: bytes | None = None) -> NodeAgent:
        """Node ``node``'s agent, with its own identity and roster."""
        return NodeAgent(
            self.states.get(node, b"") if state is None else state,
            identity=self.deployment.nodes[node - 100],
            roster=self.deployment.roster,
            rng=np.random.default_rng(node),
        )

    def send(self, stage: str, requests: Mapping[int, StageRequest]):
        replies: dict[int, StageReply | BaseException] = {}
        for node, req in requests.items():
            gone = self.offline.get(node)
            if gone is not None and ORDER[stage] >= ORDER[gone]:
                continue
            agent = self.agent(node)
            try:
                reply = agent.handle(
                    req, lambda node=node: (self.updates[node], self.weights[node])
                )
            except PvssError as exc:
                replies[node] = exc
                continue
            self.states[node] = agent.state_bytes()
            replies[node] = self.tamper(stage, node, reply) if self.tamper else reply
        return replies

    def run(self):
        return drive_round(self.host, self.send)

    def plain_mean(self, nodes) -> np.ndarray:
        w = np.array([self.weights[k] for k in nodes], dtype=np.float64)
        x = np.array([np.clip(self.updates[k], -1.0, 1.0) for k in nodes])
        return (w[:, None] * x).sum(0) / w.sum()


def test_round_with_dropouts_at_every_stage_is_the_weighted_mean(tmp_path: Path) -> None:
    # node 104 vanishes before dealing, 103 before uploading; 102 (member 3) after uploading
    h = Harness(tmp_path, n=6, m=3, offline={104: "deal", 103: "upload", 102: "unmask"})
    out = h.run()
    assert out.verified
    assert out.included_nodes == (100, 101, 102, 105)  # 102 uploaded: it is included
    assert out.dropped["deal"] == [104] and out.dropped["upload"] == [103]
    assert out.dropped["unmask"] == [102] and out.faults == []
    assert out.total_weight == sum(h.weights[k] for k in out.included_nodes)
    err = np.abs(out.mean - h.plain_mean(out.included_nodes)).max()
    assert err < h.cfg.masking().step
    # the round directory is publicly verifiable on its own
    transcript, blobs = load_round(out.round_dir)
    report = verify_round(transcript, blobs)
    assert report.ok and np.array_equal(report.total, out.total)
    assert set(out.seconds) >= {"client_mean", "committee_mean", "board", "aggregator", "verifier"}


def test_a_node_authenticates_each_event_once(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A node's replica re-applies every rule at every stage but recovers a seat's
    signature only on the events it has not pinned yet (SPEC.md §8.2): over a round,
    each node recovers each event's signer once, not once per stage (its own posts
    twice: when it checks the post it makes against its replica, and when the post
    comes back as an event)."""
    import secagg.boards.memory as memory_module  # noqa: PLC0415

    h = Harness(tmp_path, n=5, m=3)
    recovered: dict[int, list[tuple[bytes, str]]] = {}
    real = memory_module.recover
    node_now: list[int] = []

    def counting(digest: bytes, sig: bytes, where: str = "signature") -> bytes:
        if node_now:
            recovered.setdefault(node_now[0], []).append((digest, where))
        return real(digest, sig, where)

    monkeypatch.setattr(memory_module, "recover", counting)
    send = h.send

    def tracked(stage: str, requests):  # noqa: ANN001, ANN202
        out = {}
        for node, req in requests.items():
            node_now[:] = [node]
            out.update(send(stage, {node: req}))
            node_now.clear()
        return out

    h.send = tracked
    out = h.run()
    assert out.verified
    events = len(h.host.board.events())
    assert set(recovered) == set(h.host.roles)
    for node, seen in recovered.items():
        r = h.host.roles[node]
        own = {f"client {r.client}: signature", f"member {r.member}: signature"}
        counts: dict[bytes, int] = {}
        for digest, where in seen:
            counts[digest] = counts.get(digest, 0) + 1
            limit = 2 if where in own else 1
            assert counts[digest] <= limit, f"node {node} recovered {where} {counts[digest]}x"
        assert len(counts) <= events  # never the whole transcript per stage


def test_a_member_that_never_registers_halts_the_round(tmp_path: Path) -> None:
    """By design (SPEC §6.9-§6.10): the roster fixes the committee, so the server cannot
    re-draw a missing member's seat; the round fails loudly naming the seat."""
    h = Harness(tmp_path, n=5, m=3, committee=[0, 1, 2], offline={101: "register"})
    with pytest.raises(RoundFailed, match=r"committee incomplete, member seats \[2\]"):
        h.run()
    assert {r.member: r.node for r in h.host.roles.values() if r.member} == {
        1: 100,
        2: 101,
        3: 102,
    }
    assert not h.host.board.state().dealers  # nobody dealt to an incomplete committee


def test_a_member_that_withholds_its_seed_reveal_halts_the_round(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=4, m=3, offline={102: "seed"})
    with pytest.raises(RoundFailed, match=r"member seats \[3\] withheld their seed reveal"):
        h.run()
    st = h.host.board.state()
    assert st.graph is None and not st.dealers


def test_members_beyond_the_confirm_quorum_may_drop(tmp_path: Path) -> None:
    # m = 5, t = 2: Q = 4 confirmations, so one member may miss the confirm stage
    h = Harness(tmp_path, n=5, m=5, t=2, offline={101: "confirm"})
    out = h.run()
    assert out.verified and out.dropped["confirm"] == [101]
    st = h.host.board.state()
    assert sorted(st.confirmations) == [1, 3, 4, 5] and h.cfg.confirm_quorum == 4
    assert all(2 not in by_member for by_member in st.shares.values())


def test_fewer_confirmations_than_the_quorum_reveal_nothing(tmp_path: Path) -> None:
    # m = 3, t = 1: Q = 3; a member missing at confirm leaves 2 < Q: nobody decrypts
    h = Harness(tmp_path, n=4, m=3, offline={101: "confirm"})
    with pytest.raises(RoundFailed, match="no result"):
        h.run()
    st = h.host.board.state()
    assert len(st.confirmations) == 2 and not st.shares
    assert sorted(h.host.dropped["unmask"]) == [100, 102]  # they refused to decrypt


def test_too_few_members_left_fails_the_round_loudly(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=5, m=3, t=1, offline={100: "unmask", 101: "unmask"})
    with pytest.raises(RoundFailed, match="no result"):
        h.run()
    assert (tmp_path / "round-1" / "transcript.msgpack").exists()  # kept for the audit


def test_a_failed_client_stage_keeps_the_node_on_the_committee(tmp_path: Path) -> None:
    # node 102 is member 3; its upload fails (weight 0: not in [1, max_weight]; one above
    # max_weight is clamped, see tests/test_fl_native.py), its key does not
    h = Harness(tmp_path, n=4, m=3, weights=[1, 2, 0, 4])
    out = h.run()
    assert out.dropped["upload"] == [102] and 102 not in out.included_nodes
    assert out.dropped["unmask"] == []
    shares = h.host.board.state().shares
    assert all(3 in by_member for by_member in shares.values())  # member 3 revealed


def test_a_reply_the_board_refuses_is_a_fault_attributed_to_its_party(tmp_path: Path) -> None:
    def tamper(stage: str, node: int, reply: StageReply) -> StageReply:
        if stage == "upload" and node == 101:
            return dataclasses.replace(reply, blob=reply.blob[:-1] + b"\x00")
        if stage == "deal" and node == 103:
            return dataclasses.replace(reply, posts=(reply.posts[0][:-1] + b"\x00",))
        return reply

    # the faulty nodes hold no member seat: a fault ends a node's member seat too, and
    # with m = 3, t = 1 the quorum Q = 3 needs every member (see the confirm tests)
    h = Harness(tmp_path, n=5, m=3, committee=[0, 2, 4], tamper=tamper)
    out = h.run()
    assert out.verified and set(out.included_nodes) == {100, 102, 104}
    assert any(f.startswith("client 2 (node 101) at upload: blob") for f in out.faults)
    # a relayed post whose signature was altered: the board names the seat, rule signature
    assert any(f.startswith("client 4 (node 103) at deal: signature") for f in out.faults)
    # the refused blob was staged (hashed, written to a temp file) like every upload and
    # then removed: the store holds the three accepted uploads and the result, nothing else
    names = sorted(p.name for p in (out.round_dir / "blobs").iterdir())
    assert len(names) == 4 and not [x for x in names if x.startswith(".")], names


def test_a_member_that_signs_a_bad_shares_post_is_named_through_the_host(tmp_path: Path) -> None:
    """The host checks an unmask stage's share posts in one batch before submitting them
    (``MemoryBoard.preverify_share_posts``, SPEC.md §8.3). A member that signs a shares
    post with a broken proof (its own identity, its own seat) fails the batch: the host
    names it (rule share-proof), accepts the honest members' posts, and the round still
    verifies from the t + 1 = 2 honest shares of every dealing."""
    from pvss.dleq import DleqProof  # noqa: PLC0415
    from pvss.group import ORDER  # noqa: PLC0415
    from secagg.messages import SharesPost, SignedPost  # noqa: PLC0415
    from secagg.posts import sign_post  # noqa: PLC0415

    holder: dict[str, Harness] = {}

    def tamper(stage: str, node: int, reply: StageReply) -> StageReply:
        if stage != "unmask" or node != 104:  # member 3 (committee nodes 100, 102, 104)
            return reply
        h = holder["h"]
        posts = []
        for raw in reply.posts:
            post = codec.decode(raw, SignedPost)
            msg = codec.decode(post.body, SharesPost)
            proof = DleqProof.from_bytes(msg.proof)
            bad = dataclasses.replace(proof, response=int((proof.response + 1) % ORDER))
            msg = dataclasses.replace(msg, proof=bad.to_bytes())
            signed = sign_post(h.deployment.nodes[4], h.cfg, post.role, post.sender, msg, post.view)
            posts.append(codec.encode(signed))
        return dataclasses.replace(reply, posts=tuple(posts))

    h = holder["h"] = Harness(tmp_path, n=5, m=3, committee=[0, 2, 4], tamper=tamper)
    out = h.run()
    assert out.verified and set(out.included_nodes) == {100, 101, 102, 103, 104}
    assert any(f.startswith("member 3 (node 104) at unmask: share-proof") for f in out.faults)
    shares = h.host.board.state().shares
    assert shares and all(3 not in by_member for by_member in shares.values())
    np.testing.assert_allclose(out.mean, h.plain_mean(out.included_nodes), atol=1e-3)


def test_a_server_that_fails_mid_upload_leaves_no_staged_blob(tmp_path: Path, monkeypatch) -> None:
    """Every upload of a stage is staged (hashed, written to a temp file) before the
    replies are accepted one by one (SPEC.md §6.14): when accepting stops half-way —
    here the board raises on the second upload — ``drive_round`` closes the host, which
    removes every blob still staged and stops its workers; the accepted upload's blob is
    in the store under its name, nothing else is."""
    h = Harness(tmp_path, n=5, m=3, committee=[0, 2, 4])
    board = h.host.board  # the server's board only: the nodes' replicas are left alone
    real = board.submit
    seen: list[int] = []

    def submit(post):  # noqa: ANN001, ANN202
        if isinstance(codec.decode(post.body), MaskedInputPost):
            seen.append(post.sender)
            if len(seen) == 2:
                raise RuntimeError("the server process is going down")
        return real(post)

    monkeypatch.setattr(board, "submit", submit)
    with pytest.raises(RuntimeError, match="going down"):
        h.run()
    assert seen == [1, 2] and list(board.state().masked) == [1]
    names = sorted(p.name for p in (h.host.round_dir / "blobs").iterdir())
    # client 1's blob (accepted) and client 2's (renamed into place just before its
    # submit failed: content-addressed, harmless); the other three staged temp files
    # are gone
    assert len(names) == 2 and not [x for x in names if x.startswith(".")], names
    assert h.host._pool is None and not h.host._staged  # noqa: SLF001


def test_nodes_refuse_a_tampered_relay(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=4, m=3)
    host = h.host
    for node, req in host.requests("register").items():
        host.accept("register", node, h.send("register", {node: req})[node])
    for node, req in host.requests("seed").items():
        host.accept("seed", node, h.send("seed", {node: req})[node])
    req = host.requests("deal")[100]
    tr = codec.decode(req.transcript, TranscriptFile)
    # 1. a flipped byte in an event body: no longer what its sender signed
    ev = tr.events[2]
    bad = dataclasses.replace(ev, body=ev.body[:-1] + bytes([ev.body[-1] ^ 1]))
    forged = codec.encode(TranscriptFile((*tr.events[:2], bad, *tr.events[3:])))
    with pytest.raises(PvssError):
        h.agent(100).handle(dataclasses.replace(req, transcript=forged))
    # 2. a relay that registered someone else's key under this node's seat (same
    # deployment, same config and event 0: only the registrations differ). Node 103
    # (client 4, no member seat) acted on event 0 only, so the pin does not fire first
    other = Harness(tmp_path / "other", n=4, m=3, deployment=h.deployment)
    for stage in ("register", "seed"):
        for node, oreq in other.host.requests(stage).items():
            other.host.accept(stage, node, other.send(stage, {node: oreq})[node])
    assert h.host.board.events()[0] == other.host.board.events()[0]
    with pytest.raises(PvssError, match="does not hold this node's key as client 4"):
        h.agent(103).handle(other.host.requests("deal")[103])
    # 3. a stage for a phase the board is not in
    with pytest.raises(PvssError, match="phase"):
        h.agent(100).handle(dataclasses.replace(req, stage="upload"))
    # 4. node 100 revealed its seed on this board: the other board is a fork of it
    with pytest.raises(PvssError, match="forked"):
        h.agent(100).handle(other.host.requests("deal")[100])
    assert h.agent(100).handle(req).posts  # the real relay still works
    # 5. a round whose config another deployment drew (another committee): refused
    # against the node's own roster
    stranger = Harness(tmp_path / "stranger", n=4, m=3)
    sreq = stranger.host.requests("register")[100]
    with pytest.raises(PvssError, match="committee"):
        h.agent(100, b"").handle(sreq)


def test_a_node_never_signs_for_a_seat_of_another_identity(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=4, m=3)
    req = h.host.request("register", 100)  # node 100: client 1, member 1
    with pytest.raises(PvssError, match="client seat 2 is not this node's"):
        h.agent(100).handle(dataclasses.replace(req, client=2, member=0))
    with pytest.raises(PvssError, match="member seat 2 is not this node's"):
        h.agent(100).handle(dataclasses.replace(req, client=0, member=2))
    hello = h.agent(100).handle(dataclasses.replace(req, stage="hello"))
    assert hello.identity == h.deployment.nodes[0].address and not hello.posts


class CheatingAggregator(Aggregator):
    """Posts a sum with one coordinate nudged."""

    def aggregate(self, board, blobs, **_):  # noqa: ANN001, ANN003, ANN201
        st = board.state()
        included = board.included()
        inputs = [blobs.get(st.masked[i][0]) for i in included]
        total = compute_sum(st, inputs, recover_seeds(st, removal_plan(st)))
        total[0] = (int(total[0]) + 1) % (1 << self.config.bits)
        digest = blobs.put(result_blob(total, self.config.bits))
        self._post(board, ResultPost(digest, included, int(total[-1])))
        self.total, self.stage = total, Stage.DONE
        return total


def test_a_result_that_does_not_verify_is_never_used(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("fl.host.Aggregator", CheatingAggregator)
    h = Harness(tmp_path, n=4, m=3)
    with pytest.raises(RoundVerificationError, match="aggregator") as info:
        h.run()
    assert info.value.findings and info.value.findings[0].party == "aggregator"


def test_unknown_board_kind_is_a_config_error() -> None:
    server = Identity.generate()
    cfg = make_round_config(
        round_id=1,
        n_clients=2,
        committee_size=3,
        threshold=1,
        dim=4,
        clip=1.0,
        quant_bits=8,
        max_weight=1,
        aggregator=server.address,
        members=tuple(Identity.generate().address for _ in range(3)),
    )
    with pytest.raises(ConfigError, match="pigeon"):
        make_board("pigeon", cfg, server)
    board = make_board("memory", cfg, server)
    assert isinstance(board, MemoryBoard) and board.config == cfg
    with pytest.raises(ProtocolError, match="another aggregator"):
        make_board("memory", cfg, Identity.generate())


def test_the_same_relay_runs_on_the_evm_board(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("web3")
    pytest.importorskip("eth_tester")
    real_init = RoundHost.__init__

    def on_evm(self, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        real_init(self, *args, **{**kwargs, "board": "evm"})

    monkeypatch.setattr(RoundHost, "__init__", on_evm)
    # node 103 (client 4, no member seat) drops before uploading; a member silent from
    # upload on would miss the confirm stage, and m = 3, t = 1 needs all Q = 3
    h = Harness(tmp_path, n=4, m=3, offline={103: "upload"})
    assert h.host.config.chain_id != h.cfg.chain_id  # the chain's own id and contract
    out = h.run()
    assert out.verified and out.included_nodes == (100, 101, 102)
    assert np.abs(out.mean - h.plain_mean(out.included_nodes)).max() < h.cfg.masking().step
    transcript, blobs = load_round(out.round_dir)
    assert verify_round(transcript, blobs).ok


def test_requests_carry_only_the_events_a_node_has_not_seen(tmp_path: Path) -> None:
    """SPEC.md §8.2: after a node's first accepted reply the server sends it only the
    events after those it pinned; the round is the same verified round."""
    h = Harness(tmp_path, n=4, m=3)
    seen: list[tuple[str, int, StageRequest, int]] = []
    plain_send = h.send

    def send(stage, requests):  # noqa: ANN001, ANN202
        for node, req in requests.items():
            seen.append((stage, node, req, len(h.host.board.events())))
        return plain_send(stage, requests)

    outcome = drive_round(h.host, send)
    assert outcome.verified
    first: dict[int, StageRequest] = {}
    for stage, node, req, count in seen:
        events = codec.decode(req.transcript, TranscriptFile).events
        if node not in first:  # the first request: the whole transcript
            first[node] = req
            assert req.since == 0 and len(events) == count
        else:  # then only what is new since the node's last accepted reply
            assert req.since > 0 and len(events) == count - req.since, (stage, node)
            assert len(req.transcript) < len(h.host.transcript_bytes())
    # a client's upload request is far smaller than the transcript it extends
    up = [req for stage, _, req, _ in seen if stage == "upload"]
    assert all(req.since > 1 for req in up)


def test_a_node_refuses_a_delta_it_cannot_extend(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=4, m=3)
    host = h.host
    for stage in ("register", "seed"):
        for node, req in host.requests(stage).items():
            assert host.accept(stage, node, h.send(stage, {node: req})[node])
    req = host.requests("deal")[103]  # client 4: acted on the registration stage only
    assert req.since > 0
    # a delta that starts elsewhere than where the node's transcript ends
    with pytest.raises(ProtocolError, match="ask with the whole transcript"):
        h.agent(103).handle(dataclasses.replace(req, since=req.since + 1))
    # a delta of another board (same config, other registrations): a fork
    other = Harness(tmp_path / "other", n=4, m=3, deployment=h.deployment)
    for stage in ("register", "seed"):
        for node, oreq in other.host.requests(stage).items():
            other.host.accept(stage, node, other.send(stage, {node: oreq})[node])
    # node 100 (member 1, client 1) pinned this board's registrations when it revealed
    ours, theirs = host.requests("deal")[100], other.host.requests("deal")[100]
    assert ours.since == theirs.since > 1
    with pytest.raises(ProtocolError, match="forked"):
        h.agent(100).handle(theirs)
    # the whole transcript (what a restarted server sends) is still accepted
    whole = dataclasses.replace(req, transcript=host.transcript_bytes(), since=0)
    assert h.agent(103).handle(whole).posts
    assert h.agent(103).handle(req).posts  # and so is the delta


def test_a_node_checks_each_seed_reveal_once(tmp_path: Path, monkeypatch) -> None:
    """Incremental: what a node checked under its pin is not checked again (SPEC.md
    §8.2) — a client verifies the m seed reveals once over the round, not per stage."""
    import secagg.boards.memory as memory  # noqa: PLC0415

    h = Harness(tmp_path, n=4, m=3)
    calls = {"node": 0}
    counting = {"on": False}
    real = memory.invalid_seed_reveals  # one batch of the reveals a node checks

    def counted(claims):  # noqa: ANN001, ANN202
        if counting["on"]:
            calls["node"] += len(claims)
        return real(claims)

    monkeypatch.setattr(memory, "invalid_seed_reveals", counted)
    plain_send = h.send

    def send(stage, requests):  # noqa: ANN001, ANN202
        out = {}
        for node, req in requests.items():
            counting["on"] = node == 103  # client 4, no committee seat
            out.update(plain_send(stage, {node: req}))
            counting["on"] = False
        return out

    assert drive_round(h.host, send).verified
    assert calls["node"] == h.cfg.committee_size  # deal and upload: one check each


def test_a_client_gets_only_the_dealings_it_relies_on(tmp_path: Path) -> None:
    """Other clients' dealings reach a client without a committee seat as hashes only
    (ElidedDealingsPost: same post digest, so the signature and chain still check);
    its incoming pair dealings come whole. A server that withholds one of those is
    refused, naming the dealing."""
    from pvss.transcript import PURPOSE_PAIR  # noqa: PLC0415
    from secagg.messages import DealingsPost, ElidedDealingsPost, SignedPost  # noqa: PLC0415

    h = Harness(tmp_path, n=5, m=3)
    host = h.host
    for stage in ("register", "seed", "deal"):
        for node, req in host.requests(stage).items():
            assert host.accept(stage, node, h.send(stage, {node: req})[node])
    req = host.requests("upload")[104]  # client 5, no committee seat
    bodies = [codec.decode(ev.body) for ev in codec.decode(req.transcript, TranscriptFile).events]
    assert not any(isinstance(b, DealingsPost) for b in bodies)
    elided = [b for b in bodies if isinstance(b, ElidedDealingsPost)]
    assert len(elided) == 5
    for post in elided:
        for it in post.items:
            whole = it.purpose == PURPOSE_PAIR and it.partner == 5
            assert bool(it.dealing) == whole, (post.dealer, it)
    assert h.agent(104).handle(req, lambda: (h.updates[104], h.weights[104])).blob
    # the same request with client 5's incoming dealing from client 1 withheld
    events = list(codec.decode(req.transcript, TranscriptFile).events)
    for pos, ev in enumerate(events):
        body = codec.decode(ev.body)
        if isinstance(body, ElidedDealingsPost) and body.dealer == 1:
            items = tuple(
                dataclasses.replace(it, dealing=b"") if it.partner == 5 else it for it in body.items
            )
            events[pos] = dataclasses.replace(ev, body=codec.encode(ElidedDealingsPost(1, items)))
    withheld = dataclasses.replace(req, transcript=codec.encode(TranscriptFile(tuple(events))))
    with pytest.raises(ProtocolError, match=r"only the hash of dealing \(1, 1, 5\)"):
        h.agent(104).handle(withheld, lambda: (h.updates[104], h.weights[104]))
    # and an elided post is never accepted by a real board
    with pytest.raises(RuleViolation, match="relay only"):
        ev = next(e for e in events if isinstance(codec.decode(e.body), ElidedDealingsPost))
        host.board.submit(SignedPost(ev.role, ev.sender, ev.body, ev.view, ev.sig))


def test_one_batch_per_deal_stage_still_names_a_bad_dealer(tmp_path: Path) -> None:
    """RoundHost.precheck verifies a deal stage's dealings in one batch; when one
    client's dealing is bad the batch fails and the per-post checks name that client
    alone — the others are accepted, the round completes without it."""
    from pvss.scrape import Dealing  # noqa: PLC0415
    from secagg.messages import ROLE_CLIENT, DealingItem, DealingsPost, SignedPost  # noqa: PLC0415
    from secagg.posts import sign_post  # noqa: PLC0415

    dep_holder: list = []

    def tamper(stage: str, node: int, reply: StageReply) -> StageReply:
        if stage != "deal" or node != 103:
            return reply
        post = codec.decode(reply.posts[0], SignedPost)
        msg = codec.decode(post.body, DealingsPost)
        d = Dealing.from_bytes(msg.items[0].dealing)
        bad = dataclasses.replace(d, z=((d.z[0] + 1),) + d.z[1:])
        items = (DealingItem(msg.items[0].purpose, msg.items[0].partner, bad.to_bytes()),)
        forged = DealingsPost(msg.dealer, items + msg.items[1:])
        h = dep_holder[0]
        signed = sign_post(h.deployment.nodes[3], h.cfg, ROLE_CLIENT, 4, forged, post.view)
        return dataclasses.replace(reply, posts=(codec.encode(signed),))

    h = Harness(tmp_path, n=5, m=3, tamper=tamper)
    dep_holder.append(h)
    outcome = h.run()
    assert outcome.verified
    assert any("client 4" in f and "dealing-proof" in f for f in outcome.faults)
    assert 103 in outcome.dropped["deal"] and 103 not in outcome.included_nodes
    assert sorted(outcome.included_nodes) == [100, 101, 102, 104]

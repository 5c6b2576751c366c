"""Durable rounds (SPEC.md §6.14): the journal, its torn tail and altered records, node
state files, and a round process killed with SIGKILL at every stage and started again
(tests/durable_round.py: the host and the nodes in one process, both durable, so the
kill loses every byte of memory on both sides)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fl.relay import NodeStateFile
from secagg import codec
from secagg.boards import JOURNAL_FILE, Journal, JournalCorrupt, MemoryBoard, Phase
from secagg.errors import ProtocolError
from secagg.messages import (
    Confirmation,
    DealingsPost,
    MaskedInputPost,
    Registration,
    ResultPost,
    SeedReveal,
    SharesPost,
)
from secagg.quantize import quantization_error_bound
from secagg.verifier import load_round, verify_round

SCRIPT = Path(__file__).parent / "durable_round.py"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
import durable_round  # noqa: E402

STAGE_MESSAGE = {
    "register": Registration,
    "seed": SeedReveal,
    "deal": DealingsPost,
    "upload": MaskedInputPost,
    "confirm": Confirmation,
    "unmask": SharesPost,
    "result": ResultPost,
}
# the (stage, node) a post answers (node k holds client k+1 and member k+1)
SEAT_OF = {
    Registration: lambda m: ("register", m.party - 1),
    SeedReveal: lambda m: ("seed", m.member - 1),
    DealingsPost: lambda m: ("deal", m.dealer - 1),
    MaskedInputPost: lambda m: ("upload", m.client - 1),
    Confirmation: lambda m: ("confirm", m.member - 1),
    SharesPost: lambda m: ("unmask", m.member - 1),
}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _journal_messages(path: Path) -> list[object]:
    """The messages the journal holds (tolerating a torn tail), read from outside."""
    if not path.exists():
        return []
    try:
        records, _, _ = Journal.read(path)
    except (JournalCorrupt, OSError):
        return []
    return [codec.decode(ev.body) for kind, ev in records if kind == 0 and ev.seq > 0]


def _finished_round(base: Path) -> Path:
    """A round run to its end in ``base`` (a fresh directory), as the baseline."""
    subprocess.run([sys.executable, str(SCRIPT), str(base)], env=_env(), check=True, timeout=300)
    return base / "round"


# ---------------------------------------------------------------------------------------
# journal unit tests
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def journaled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _finished_round(tmp_path_factory.mktemp("durable-base"))


def test_open_rebuilds_the_board_exactly(journaled: Path, tmp_path: Path) -> None:
    copy = tmp_path / JOURNAL_FILE
    copy.write_bytes((journaled / JOURNAL_FILE).read_bytes())
    board = MemoryBoard.open(copy)
    transcript, _ = load_round(journaled)
    assert tuple(board.events()) == transcript.events
    assert board.phase() == Phase.RESULT and board.state().result is not None
    board.close()


def test_a_batch_is_one_group_commit(
    journaled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside ``MemoryBoard.batch`` records are written and flushed at once (a killed
    process loses none of them) and fsync'ed once when the block ends, also when it
    ends by an exception; outside it every record is fsync'ed on its own."""
    copy = tmp_path / JOURNAL_FILE
    copy.write_bytes((journaled / JOURNAL_FILE).read_bytes())
    board = MemoryBoard.open(copy)
    start, records = board.height(), len(Journal.read(copy)[0])
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    board.advance(1)
    assert len(calls) == 1
    with board.batch():
        for _ in range(3):
            board.advance(1)
        assert len(calls) == 1  # not yet on disk ...
        assert len(Journal.read(copy)[0]) == records + 4  # ... but in the file
        with board.batch():  # nested: the outer block commits
            board.advance(1)
        assert len(calls) == 1
    assert len(calls) == 2
    with pytest.raises(RuntimeError), board.batch():
        board.advance(1)
        raise RuntimeError("a stage fails half way")
    assert len(calls) == 3
    board.advance(1)
    assert len(calls) == 4
    board.close()
    again = MemoryBoard.open(copy)
    assert again.height() == start + 7
    again.close()


def test_torn_tail_is_discarded_and_the_round_resumes(journaled: Path, tmp_path: Path) -> None:
    data = (journaled / JOURNAL_FILE).read_bytes()
    records, good, torn = Journal.read(journaled / JOURNAL_FILE)
    assert torn == 0 and good == len(data)
    # cut the file inside the last record: a crash in mid-append
    copy = tmp_path / JOURNAL_FILE
    copy.write_bytes(data[:-7])
    board = MemoryBoard.open(copy)
    assert len(board.events()) == sum(1 for k, _ in records if k == 0) - 1  # result lost
    assert board.state().result is None and board.phase() == Phase.RESULT
    assert Journal.read(copy)[2] == 0  # the torn bytes were cut from the file
    board.close()


def test_altered_middle_record_is_refused(journaled: Path, tmp_path: Path) -> None:
    data = bytearray((journaled / JOURNAL_FILE).read_bytes())
    mid = len(data) // 2
    data[mid] ^= 0x01
    copy = tmp_path / JOURNAL_FILE
    copy.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt, match="checksum mismatch"):
        MemoryBoard.open(copy)


def test_altered_event_with_a_fixed_checksum_is_refused(journaled: Path, tmp_path: Path) -> None:
    """An attacker who rewrites a record *and* its checksum still breaks the hash chain
    or a signature: the board is not rebuilt."""
    import hashlib
    import struct

    import msgpack

    from secagg.messages import TranscriptFile

    path = journaled / JOURNAL_FILE
    records, _, _ = Journal.read(path)
    out = bytearray(b"PVSSJRN\x01")
    for n, (kind, rec) in enumerate(records):
        if kind == 0:
            if n == len(records) // 2:  # flip a byte of one event's body
                body = bytearray(rec.body)
                body[-1] ^= 1
                rec = type(rec)(**{**rec.__dict__, "body": bytes(body)})
            payload = msgpack.packb([0, codec.encode(TranscriptFile((rec,)))], use_bin_type=True)
        else:
            payload = msgpack.packb([1, rec], use_bin_type=True)
        out += struct.pack(">I32s", len(payload), hashlib.sha256(payload).digest()) + payload
    copy = tmp_path / JOURNAL_FILE
    copy.write_bytes(bytes(out))
    with pytest.raises(ProtocolError):
        MemoryBoard.open(copy)


def test_node_state_file_is_private_durable_and_scrubbed(tmp_path: Path) -> None:
    f = NodeStateFile(tmp_path / "nodes", bytes(range(20)))
    assert f.load() == b""
    secret = b"round-key:" + os.urandom(32)
    f.save(secret)
    assert f.path.stat().st_mode & 0o777 == 0o600
    assert NodeStateFile(tmp_path / "nodes", bytes(range(20))).load() == secret
    # the next state (key erased) replaces it; the old inode was zeroed before unlink
    fd = os.open(f.path, os.O_RDONLY)
    try:
        f.save(b"erased")
        old = os.pread(fd, 4096, 0)
    finally:
        os.close(fd)
    assert old == bytes(len(old)) and secret not in old
    assert f.load() == b"erased"
    # a crash after the new copy was complete: load takes it
    good = f.path.read_bytes()
    f._new.write_bytes(good.replace(b"erased", b"newer!"))
    assert f.load() == b"erased"  # a torn / wrong new copy: the complete old file is used
    f.save(b"newer!")
    f._new.write_bytes(f.path.read_bytes())
    f.path.write_bytes(bytes(len(good)))  # the crash hit between scrub and rename
    assert f.load() == b"newer!"
    f.path.write_bytes(good[:-1] + b"X")
    f._new.unlink()
    with pytest.raises(ProtocolError, match="corrupted"):
        f.load()


# ---------------------------------------------------------------------------------------
# kill -9 at every stage
# ---------------------------------------------------------------------------------------


def _state_mtimes(base: Path) -> dict[str, int]:
    nodes = base / "nodes"
    if not nodes.is_dir():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in nodes.glob("*.state")}


def check_mean(mean: list[float]) -> None:
    """``mean`` is durable_round's plain weighted mean within the quantization bound."""
    xs = [durable_round.inputs(k) for k in range(durable_round.NODES)]
    clip = durable_round.CLIP
    expect = sum(w * np.clip(v, -clip, clip) for v, w in xs) / sum(w for _, w in xs)
    bound = quantization_error_bound(clip, durable_round.QBITS) + 1e-9
    assert np.abs(np.asarray(mean) - expect).max() < bound


def held_seats(before: list[object]) -> set[tuple[str, int]]:
    """The (stage, node) seats whose post ``before`` holds: never to be asked again.
    Node k registers two seats (client k+1, member k+1): if the kill fell between its
    two registrations it is rightly asked again for the missing one."""
    held = {SEAT_OF[type(m)](m) for m in before if type(m) in SEAT_OF}
    for party in {m.party for m in before if isinstance(m, Registration)}:
        if sum(isinstance(m, Registration) and m.party == party for m in before) < 2:
            held.discard(("register", party - 1))
    return held


def kill_mid_round(
    base: Path,
    args: list[str],
    reached: Callable[[], bool],
    changed: Callable[[], object] | None = None,
    *,
    what: str,
) -> int:
    """Run the round script on ``base`` with ``args``, wait (240 s at most) until
    ``reached()``; with ``changed``, wait further until its value differs from the one it
    had then (a further node acted, its reply still in transit); SIGKILL the process
    and return its pid. The process is stopped by PID whatever happens."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(base), *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not reached():
            assert proc.poll() is None, f"the round ended before any {what}"
            assert time.monotonic() < deadline, f"no {what} within 240 s"
            time.sleep(0.02)
        if changed is not None:
            seen = changed()
            while changed() == seen:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (base / "result.json").exists()
    return proc.pid


def resume_round(base: Path, args: list[str]) -> dict:
    """Start the killed round on ``base`` again (300 s at most): it resumes, finishes,
    verifies and includes every client; its ``result.json``."""
    rerun = subprocess.run(
        [sys.executable, str(SCRIPT), str(base), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    result = json.loads((base / "result.json").read_text())
    assert result["verified"] and result["resumed"]
    assert result["included"] == [1, 2, 3]
    return result


def requests_after(base: Path, killed_pid: int) -> list[tuple[str, int]]:
    """The (stage, node) requests the restarted process made (``requests.log``: one
    ``pid stage node`` line per request, ``resent-<stage>`` for a kept reply sent again)."""
    words = (base / "requests.log").read_text().split()
    return [
        (words[i + 1], int(words[i + 2]))
        for i in range(0, len(words), 3)
        if int(words[i]) != killed_pid
    ]


CASES = [(stage, False) for stage in STAGE_MESSAGE] + [
    ("deal", True),
    ("upload", True),
    ("confirm", True),
    ("unmask", True),
]


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "in_transit"), CASES)
def test_kill_9_at_each_stage_then_resume(stage: str, in_transit: bool, tmp_path: Path) -> None:
    """Start the round, watch its journal from outside for the stage's first accepted
    post, SIGKILL the process, start it again: the round finishes, verifies, the mean
    is the plain weighted mean within the quantization bound, and no seat whose post
    was journaled before the kill is asked for that stage again.

    ``in_transit``: the kill waits, after that first post, until a further node has
    acted (its state file changed: a client that uploaded has erased its key) while its
    reply is still on its way, so the restarted server asks that node again and the
    node must send the very same posts (and masked vector) again."""
    want = STAGE_MESSAGE[stage]
    journal = tmp_path / "round" / JOURNAL_FILE
    timing = ["--transit", "0.5"] if in_transit else ["--delay", "0.4"]
    if stage == "result":  # the result is the round's last post: hold the process
        # between it and the verification (which ends what can be resumed), or a loaded
        # machine's poll can see it only once the round is complete
        timing += ["--hold-result", "5"]
    killed_pid = kill_mid_round(
        tmp_path,
        timing,
        lambda: any(isinstance(m, want) for m in _journal_messages(journal)),
        (lambda: _state_mtimes(tmp_path)) if in_transit else None,
        what=want.__name__,
    )
    before = _journal_messages(journal)
    assert any(isinstance(m, want) for m in before)

    result = resume_round(tmp_path, [])

    # the round directory verifies publicly, and the sum is exact
    transcript, blobs = load_round(tmp_path / "round")
    report = verify_round(transcript, blobs)
    assert report.ok, report.findings
    check_mean(result["mean"])

    # nobody whose post the journal held at the kill is asked for that stage again
    held = held_seats(before)
    asked = requests_after(tmp_path, killed_pid)
    asked_again = {(s, n) for s, n in asked if not s.startswith("resent-")}
    assert not held & asked_again, f"asked again: {sorted(held & asked_again)}"
    if in_transit:  # the node that acted before the kill sent the same reply again
        assert any(s == f"resent-{stage}" for s, _ in asked), asked
    # every event of the killed run is in the final transcript, unchanged (nothing lost)
    final = [codec.decode(ev.body) for ev in transcript.events[1:]]
    assert final[: len(before)] == before


def test_can_resume_only_an_unfinished_round(journaled: Path, tmp_path: Path) -> None:
    from fl.host import ROLES_FILE, RoundHost

    assert not RoundHost.can_resume(journaled)  # verified: its seat table is gone
    assert not (journaled / ROLES_FILE).exists()
    (tmp_path / ROLES_FILE).write_text("[[0, 1, 1], [1, 2, 2], [2, 3, 3]]")
    (tmp_path / JOURNAL_FILE).write_bytes((journaled / JOURNAL_FILE).read_bytes()[:-5])
    assert RoundHost.can_resume(tmp_path)  # a seat table: the round did not verify
    (tmp_path / ROLES_FILE).unlink()
    assert not RoundHost.can_resume(tmp_path)  # no seat table: nothing to resume


def test_node_resends_its_reply_once_and_never_makes_a_new_one(tmp_path: Path) -> None:
    """A server that lost a node's upload asks again: the node sends the very same posts
    and masked vector (no retraining, no new masking); once the board holds them, the
    host does not ask again, and a server that does anyway is refused."""
    from fl.host import NodeRoles, RoundHost, make_round_config
    from fl.relay import STAGES, NodeAgent
    from secagg.identity import Identity
    from secagg.roster import make_deployment

    roster, paths = make_deployment(tmp_path / "dep", 3, 3, 1)
    idents = [Identity.load(p) for p in paths]
    server = Identity.generate()
    cfg = make_round_config(
        round_id=1,
        n_clients=3,
        committee_size=3,
        threshold=1,
        dim=durable_round.DIM,
        clip=durable_round.CLIP,
        quant_bits=durable_round.QBITS,
        max_weight=10,
        aggregator=server.address,
        members=roster.committee,
        clients=tuple(i.address for i in idents),
    )
    host = RoundHost(
        cfg, tmp_path / "round", [NodeRoles(k, k + 1, k + 1) for k in range(3)], identity=server
    )
    states = {k: b"" for k in range(3)}
    trained: list[int] = []

    def ask(stage: str, node: int, req):  # noqa: ANN001, ANN202
        agent = NodeAgent(states[node], identity=idents[node], roster=roster)

        def update():  # noqa: ANN202
            trained.append(node)
            return durable_round.inputs(node)

        reply = agent.handle(req, update)
        states[node] = agent.state_bytes()
        return reply, agent.resent

    for stage in STAGES[:3]:
        for node, req in host.requests(stage).items():
            assert host.accept(stage, node, ask(stage, node, req)[0])
    req = host.requests("upload")[0]
    first, resent = ask("upload", 0, req)
    assert not resent and trained == [0]
    again, resent = ask("upload", 0, req)  # the server lost the first reply
    assert resent and trained == [0]
    assert again.posts == first.posts and again.blob == first.blob
    assert host.accept("upload", 0, again)
    assert 0 not in host.requests("upload")  # the board holds it: not asked again
    with pytest.raises(ProtocolError, match="refuses the posts"):
        ask("upload", 0, host.request("upload", 0, member=0))
    host.close()

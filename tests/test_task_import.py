"""Rounds that take their client keys from the task (SPEC.md §7.8 "Imported keys"), on
the embedded py-evm chain: the clients register once on the task; in each round the
aggregator's one ``KeysImported`` post registers them with those keys (the contract
reads them from the task), the members register fresh keys, and the round runs as any
other. Its transcript replays under the memory board's rules against the task's
verified keys (``EvmBoard.task_keys``), and not without them.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from pvss.keys import KeyPair  # noqa: E402
from secagg.boards import MemoryBoard, RuleViolation  # noqa: E402
from secagg.boards.evm import EvmBoard, connect, fund_accounts  # noqa: E402
from secagg.boards.task import EvmTask  # noqa: E402
from secagg.messages import ROLE_AGGREGATOR, ROLE_CLIENT, ROLE_MEMBER  # noqa: E402
from secagg.verifier import verify_round  # noqa: E402

from .evm_round import ChainRound, identity, round_config  # noqa: E402


@pytest.fixture(scope="module")
def w3() -> Any:
    return connect("evm")[0]


def task_round(w3: Any, n: int = 4, m: int = 3, task: Any = None) -> tuple[EvmTask, ChainRound]:
    """A task whose n clients registered their keys on it (once), and a round it opened
    (``task`` reuses an earlier one); the ChainRound holds the task keys as the
    clients' keys and fresh member keys."""
    if task is None:
        owner = identity()
        members = [identity() for _ in range(m)]
        clients = [identity() for _ in range(n)]
        fund_accounts(w3, [owner.address])
        task = EvmTask.deploy(w3, owner, m)
        task.add_roster([i.address for i in members], [i.address for i in clients])
        task.client_keys = [KeyPair.generate() for _ in clients]
        for p, (ident, key) in enumerate(zip(clients, task.client_keys, strict=True), 1):
            task.register(ROLE_CLIENT, p, key, ident)
        task.seats = (members, clients)
    members, clients = task.seats
    board = task.open_round(round_config(n=n, m=m)[0])
    rnd = ChainRound(board, task.owner, members, clients)
    rnd.member_keys = [KeyPair.generate() for _ in members]  # fresh every round
    rnd.client_keys = task.client_keys
    return task, rnd


def run_to_result(task: EvmTask, rnd: ChainRound, parties: list[int] | None = None) -> None:
    task.import_keys(rnd.board, parties)
    for k in range(1, rnd.cfg.committee_size + 1):
        rnd.post(ROLE_MEMBER, k, rnd.registration(ROLE_MEMBER, k))
    rnd.reveal_all()
    ids = parties or list(range(1, rnd.cfg.n_clients + 1))
    rnd.deal_all(ids).upload_all(ids).confirm_all()
    for k in range(1, rnd.cfg.committee_size + 1):
        rnd.post(ROLE_MEMBER, k, rnd.shares(k))
    rnd.to("result")
    rnd.post(ROLE_AGGREGATOR, 0, rnd.result())


def test_a_round_with_imported_client_keys_runs_and_replays(w3: Any) -> None:
    task, rnd = task_round(w3)
    run_to_result(task, rnd)
    board = rnd.board
    st = board.state()
    assert st.included == (1, 2, 3, 4)
    assert {p: st.clients[p] for p in st.clients} == {
        p: key.pk for p, key in enumerate(task.client_keys, 1)
    }
    names = [name for name, _ in board.gas]
    assert names.count("importKeys") == 1 and "register" in names  # members only
    assert sum(1 for name in names if name == "register") == rnd.cfg.committee_size
    # the transcript: one aggregator event for the n clients' keys
    events = board.events()
    assert [ev.role for ev in events[1:2]] == [ROLE_AGGREGATOR]
    keys = board.task_keys()
    assert list(keys) == [task.raw_address]
    replayed = MemoryBoard.replay(board.transcript(), board.head, task_keys=keys)
    assert replayed.state().included == st.included
    assert replayed.state().clients == st.clients
    report = verify_round(board.transcript(), None, board.head, task_keys=keys)
    assert report.ok and not report.sum_checked, report
    # an attached reader (an auditor) gets the same keys from the chain alone
    assert EvmBoard.attach(w3, board.address).task_keys() == keys
    # without the task's keys the import cannot be checked: named, the aggregator's
    with pytest.raises(RuleViolation) as info:
        MemoryBoard.replay(board.transcript(), board.head)
    assert info.value.fault.rule == "import" and info.value.fault.role == ROLE_AGGREGATOR
    assert "task_keys" in info.value.fault.detail
    assert not verify_round(board.transcript(), None, board.head).ok


def test_the_same_task_keys_serve_every_round_and_a_subset_may_take_part(w3: Any) -> None:
    task, r1 = task_round(w3)
    run_to_result(task, r1)
    _, r2 = task_round(w3, task=task)
    run_to_result(task, r2, parties=[1, 2, 4])  # client 3 sits this round out
    assert r2.cfg.round_id == 2 and r2.board.address != r1.board.address
    assert r2.board.state().included == (1, 2, 4)
    assert 3 not in r2.board.state().clients
    MemoryBoard.replay(r2.board.transcript(), r2.board.head, task_keys=r2.board.task_keys())
    # the client registrations happened once, on the task: 4 task transactions in all
    assert [name for name, _ in task.gas].count("register") == 4


def test_a_malformed_keys_imported_post_is_a_typed_decoding_error() -> None:
    """The decoder validates every field: parties strictly increasing from 1, one
    64-byte key per party, a 20-byte task; each failure is InvalidEncoding naming it."""
    from secagg import codec
    from secagg.errors import InvalidEncoding
    from secagg.messages import KeysImported

    key = KeyPair.generate().pk.to_bytes()
    good = KeysImported(b"\x11" * 20, (1, 3), (key, key))
    assert codec.decode(codec.encode(good)) == good
    cases = {
        "keys_imported.parties": dict(parties=(3, 1)),
        "keys_imported.parties ": dict(parties=(0, 1)),
        "keys_imported.keys": dict(keys=(key,)),
    }
    for field, change in cases.items():
        with pytest.raises(InvalidEncoding, match=field.strip()):
            KeysImported(**{**good.__dict__, **change})
    with pytest.raises(InvalidEncoding, match="parties"):
        KeysImported(good.task, (), ())
    wire = codec.encode(good)
    for cut in (1, 10, len(wire) - 1):
        with pytest.raises(InvalidEncoding):
            codec.decode(wire[:cut])
    with pytest.raises(InvalidEncoding):  # a 19-byte task
        codec.decode(codec.encode(good).replace(b"\x11" * 20, b"\x11" * 19 + b"", 1))

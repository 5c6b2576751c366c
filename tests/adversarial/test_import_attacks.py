"""Attacks on imported client keys (SPEC.md §7.8 "Imported keys"). The attacker is the
server: it holds the aggregator identity (it signs ``KeysImported``), owns the task,
deploys rounds, and hands nodes transcripts. It must not be able to make a round use
a client key the client did not register on the task that opened the round:

- keys from another task (one the same clients registered on too): ``NotTaskRound``;
- a round opened on the task with another identity in a seat: ``ImportMismatch``;
- a client key swapped in the transcript (the import re-signed by the aggregator,
  the chain re-hashed): a replay against the task's verified keys names the import;
  a control replay against the attacker's own key table accepts it;
- an import posted by a client, twice, after the seat registered itself, outside the
  register phase, in an optimistic round: refused, each with its rule;
- keys from a fake task (a contract answering the task's calls with the server's own
  keys): the chain cannot tell, every reader refuses it (the task's code is checked).

Every test fails if the attack worked (the import accepted, the key in the state).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from pvss.keys import KeyPair  # noqa: E402
from secagg import codec  # noqa: E402
from secagg.boards import MemoryBoard, RuleViolation, event_hash  # noqa: E402
from secagg.boards.evm import EvmBoard, connect  # noqa: E402
from secagg.boards.task import EvmTask  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    Event,
    KeysImported,
    TranscriptFile,
)
from secagg.posts import post_digest, signing_digest  # noqa: E402

from ..evm_round import identity, round_config  # noqa: E402
from ..test_task_import import run_to_result, task_round  # noqa: E402


@pytest.fixture(scope="module")
def w3() -> Any:
    return connect("evm")[0]


def _refused(board: EvmBoard, post: Any, rule: str) -> RuleViolation:
    with pytest.raises(RuleViolation) as info:
        board.submit(post)
    assert info.value.fault.rule == rule, info.value.fault
    return info.value


def _sign(
    task: EvmTask,
    board: EvmBoard,
    msg: KeysImported,
    role: int = ROLE_AGGREGATOR,
    sender: int = 0,
    by: Any = None,
) -> Any:
    from secagg.posts import sign_post

    return sign_post(by or task.owner, board.config, role, sender, msg, board.view())


def test_keys_from_a_task_that_did_not_open_the_round_are_refused(w3: Any) -> None:
    task, first = task_round(w3)
    # task B: the same owner and seats; the clients registered keys there too
    other = EvmTask.deploy(w3, task.owner, first.cfg.committee_size)
    members, clients = task.seats
    other.add_roster([i.address for i in members], [i.address for i in clients])
    for p, ident in enumerate(clients, 1):
        other.register(ROLE_CLIENT, p, KeyPair.generate(), ident)
    _, rnd = task_round(w3, task=task)  # a fresh round of task A, in its register phase
    msg = other.keys_imported(rnd.board)
    exc = _refused(rnd.board, _sign(task, rnd.board, msg), "import")
    assert "NotTaskRound" in str(exc)
    assert not rnd.board.state().clients
    # control: the task that opened the round imports
    task.import_keys(rnd.board)
    assert len(rnd.board.state().clients) == rnd.cfg.n_clients


def test_a_round_whose_seat_is_another_identity_cannot_import_that_seat(w3: Any) -> None:
    task, rnd = task_round(w3)
    # the owner deploys round 2 with a stranger in client seat 1 and opens it on the
    # task (openRound checks the round id and aggregator, not the roster)
    stranger = identity()
    cfg = replace(rnd.cfg, round_id=2, clients=(stranger.address, *rnd.cfg.clients[1:]))
    board = EvmBoard(cfg, w3, aggregator=task.owner, round_init=task.round_init)
    task._send(task.contract.functions.openRound(board.address), "openRound")
    exc = _refused(board, _sign(task, board, task.keys_imported(board)), "import")
    assert "ImportMismatch(1,)" in str(exc)
    # the other seats are the task's identities: they import
    task.import_keys(board, [2, 3, 4])
    assert sorted(board.state().clients) == [2, 3, 4]


def test_a_key_swapped_in_the_transcript_is_named_against_the_task_keys(w3: Any) -> None:
    task, rnd = task_round(w3)
    task.import_keys(rnd.board)
    board = rnd.board
    events = board.events()
    ev = events[1]
    honest = codec.decode(ev.body)
    assert isinstance(honest, KeysImported)
    evil_key = KeyPair.generate().pk.to_bytes()  # the attacker's, for client 1
    forged = replace(honest, keys=(evil_key, *honest.keys[1:]))
    digest = post_digest(forged)
    sig = task.owner.sign(signing_digest(board.config, ROLE_AGGREGATOR, 0, ev.view, digest))
    fake = Event(
        1,
        ev.height,
        ROLE_AGGREGATOR,
        0,
        codec.encode(forged),
        digest,
        ev.view,
        sig,
        event_hash(events[0]),
    )
    transcript = TranscriptFile((events[0], fake))
    with pytest.raises(RuleViolation) as info:
        MemoryBoard.replay(transcript, event_hash(fake), task_keys=board.task_keys())
    f = info.value.fault
    assert (f.rule, f.role) == ("import", ROLE_AGGREGATOR)
    assert "client 1: not the key it registered" in f.detail
    # control: against the attacker's own key table the forgery replays (so it is the
    # check against the task's verified keys that catches it)
    from pvss.group import G1Point

    theirs = {
        p: (board.config.clients[p - 1], G1Point.from_bytes(k))
        for p, k in zip(forged.parties, forged.keys, strict=True)
    }
    got = MemoryBoard.replay(transcript, event_hash(fake), task_keys={forged.task: theirs})
    assert got.state().clients[1].to_bytes() == evil_key


def test_imports_out_of_turn_are_refused_each_with_its_rule(w3: Any) -> None:
    task, rnd = task_round(w3)
    board = rnd.board
    msg = task.keys_imported(board, [1, 2])
    # a client cannot post it (the board names the rule before any transaction)
    _refused(board, _sign(task, board, msg, ROLE_CLIENT, 1, by=rnd.clients[0]), "import")
    # a seat that registered itself is not imported over
    rnd.post(ROLE_CLIENT, 3, rnd.registration(ROLE_CLIENT, 3))
    exc = _refused(board, _sign(task, board, task.keys_imported(board, [3])), "import")
    assert "AlreadyRegistered" in str(exc) or "already registered" in str(exc)
    task.import_keys(board, [1, 2])
    _refused(board, _sign(task, board, msg), "import")  # twice
    assert sorted(board.state().clients) == [1, 2, 3]
    # outside the register phase
    rnd.to("deal")
    _refused(board, _sign(task, board, task.keys_imported(board, [4])), "stage")
    assert 4 not in board.state().clients


def test_an_optimistic_round_takes_no_imported_keys(w3: Any) -> None:
    task, _ = task_round(w3)
    board = task.open_round(
        replace(
            round_config(n=4, m=3)[0],
            optimistic=True,
            challenge_blocks=2,
            stake=10**15,
            bond=10**15,
        )
    )
    exc = _refused(board, _sign(task, board, task.keys_imported(board)), "import")
    assert "BadImport" in str(exc)
    assert not board.state().clients


def test_a_full_round_still_verifies_after_the_refused_attempts(w3: Any) -> None:
    """The refusals leave nothing behind: the same round runs to its result."""
    task, rnd = task_round(w3)
    other = KeysImported(task.raw_address, (1,), (KeyPair.generate().pk.to_bytes(),))
    _refused(rnd.board, _sign(task, rnd.board, other), "signature")  # digest != keys read
    run_to_result(task, rnd)
    assert rnd.board.state().included == (1, 2, 3, 4)


def test_keys_from_a_fake_task_are_caught_by_every_reader(w3: Any) -> None:
    """The contract asks the task it is given whether it opened the round and for its
    seats; it cannot tell PvssTask's code from a contract that answers the same calls
    (``contracts/test/FakeTask.sol``, deployed by the server with its own keys in the
    clients' seats). So the chain accepts that import — and every reader refuses it:
    ``EvmBoard.task_keys`` checks the task's code (``EvmTask.attach``), and a replay
    against the genuine task's keys names the import (SPEC.md §7.8)."""
    from ..task_rewards import artifact

    task, _ = task_round(w3)
    art = artifact("FakeTask")
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    fake = w3.eth.contract(
        address=task._send(factory.constructor(), "deployFakeTask")["contractAddress"],
        abi=art["abi"],
    )
    _, clients = task.seats
    evil = [KeyPair.generate() for _ in clients]
    for p, (ident, key) in enumerate(zip(clients, evil, strict=True), 1):
        raw = key.pk.to_bytes()
        x, y = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        task._send(fake.functions.setSeat(p, _cs(ident.address), x, y), "setSeat")
    _, rnd = task_round(w3, task=task)
    task._send(fake.functions.setRound(rnd.cfg.round_id, rnd.board.address), "setRound")
    msg = KeysImported(
        bytes.fromhex(fake.address[2:]),
        tuple(range(1, len(clients) + 1)),
        tuple(k.pk.to_bytes() for k in evil),
    )
    rnd.board.submit(_sign(task, rnd.board, msg))  # the chain alone cannot tell
    assert rnd.board.state().clients[1] == evil[0].pk
    with pytest.raises(Exception, match="does not run the PvssTask contract"):
        EvmBoard.attach(w3, rnd.board.address).task_keys()
    genuine = {
        task.raw_address: {
            p: (clients[p - 1].address, k.pk) for p, k in enumerate(task.client_keys, 1)
        }
    }
    with pytest.raises(RuleViolation) as info:
        MemoryBoard.replay(rnd.board.transcript(), rnd.board.head, task_keys=genuine)
    assert info.value.fault.rule == "import" and info.value.fault.role == ROLE_AGGREGATOR


def _cs(address: bytes) -> str:
    from secagg.boards.evm import _checksum

    return _checksum(address)

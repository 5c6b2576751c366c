"""A node's task key (SPEC.md §7.8 "Imported keys") in its state: kept across rounds
and serialization, a version-4 state (before task keys) still loads, and a ``Client``
given that key posts no registration and keeps the key after it forgets the round."""

from __future__ import annotations

import msgpack
import pytest

from fl.host import make_round_config
from fl.relay import STATE_VERSION, _NodeState
from pvss.keys import KeyPair
from secagg.errors import ProtocolError
from secagg.identity import Identity
from secagg.roles import Client, Stage
from secagg.simulate import make_board


def test_task_keys_survive_serialization_and_a_new_round() -> None:
    key = KeyPair.generate()
    task = bytes(range(20))
    s = _NodeState(round=b"r1", client=2, task_keys={task: (2, key.sk)}, client_task=task)
    back = _NodeState.from_bytes(s.to_bytes())
    assert back.task_keys == {task: (2, key.sk)} and back.client_task == task
    assert msgpack.unpackb(s.to_bytes())[0] == STATE_VERSION == 5


def test_a_version_4_state_loads_without_task_keys() -> None:
    fields = msgpack.unpackb(_NodeState(round=b"r").to_bytes())[:19]
    fields[0] = 4
    old = _NodeState.from_bytes(msgpack.packb(fields, use_bin_type=True))
    assert old.round == b"r" and old.task_keys == {} and old.client_task == b""
    fields[0] = 3
    with pytest.raises(ProtocolError, match="version 3"):
        _NodeState.from_bytes(msgpack.packb(fields, use_bin_type=True))


def test_a_client_with_a_task_key_posts_no_registration_and_keeps_it() -> None:
    server = Identity.generate()
    cfg = make_round_config(
        round_id=1,
        n_clients=2,
        committee_size=3,
        threshold=1,
        dim=2,
        clip=1.0,
        quant_bits=16,
        max_weight=1,
        aggregator=server.address,
        members=tuple(Identity.generate().address for _ in range(3)),
    )
    board = make_board("memory", cfg, server)
    key = KeyPair.generate()
    c = Client(board.config, 1, [0.0, 0.0], identity=Identity.generate(), key=key)
    assert c.imported and c.key is key
    before = len(board.events())
    c.register(board)
    assert c.stage == Stage.REGISTERED and len(board.events()) == before  # nothing posted
    c.forget()
    assert c.key is key and c.update is None  # the task's key outlives the round
    fresh = Client(board.config, 2, [0.0, 0.0], identity=Identity.generate())
    assert not fresh.imported
    fresh.forget()
    assert fresh.key is None  # a round key is erased

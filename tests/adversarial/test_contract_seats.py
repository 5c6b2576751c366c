"""Seat squatting and cross-round replay on the round contract (issue 11, attack 6),
on the embedded py-evm chain and on anvil.

The attacker is whoever relays transactions (the FL server, any account): it can send
any calldata, but holds no seat's identity key. Each test attempts the attack and
fails if it worked: a seat taken by an identity the roster does not give it, a member
key the attacker chose sitting in the committee, a registration of another round
accepted. Open membership is the documented exception (any identity may take a free
client seat, one seat per identity).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from pvss.keys import KeyPair  # noqa: E402
from secagg.boards import RuleViolation  # noqa: E402
from secagg.boards.evm import ANVIL, EvmBoard, start_anvil, stop_process  # noqa: E402
from secagg.messages import ROLE_CLIENT, ROLE_MEMBER  # noqa: E402

from ..evm_round import ChainRound, identity  # noqa: E402

PROVIDERS = ["evm", "anvil"]


@pytest.fixture(scope="module")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not ANVIL.exists():
        pytest.skip(f"anvil not installed ({ANVIL} missing): run `make install` (npm ci)")
    proc, url = start_anvil(tmp_path_factory.mktemp("anvil") / "anvil.log", timeout=30)
    try:
        yield url
    finally:
        stop_process(proc)  # by its own PID


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    if request.param == "anvil":
        return "rpc:" + request.getfixturevalue("anvil_url")
    return "evm"


def _refused(rnd: ChainRound, role: int, party: int, msg: object, rule: str, **kw: object) -> None:
    """The post must be refused with ``rule``, and the seat must stay free."""
    before = rnd.board.events()
    with pytest.raises(RuleViolation) as info:
        rnd.post(role, party, msg, **kw)
    assert info.value.fault.rule == rule, info.value
    st = rnd.board.state()
    assert party not in (st.members if role == ROLE_MEMBER else st.clients), "the seat was taken"
    assert rnd.board.events() == before


def test_a_non_roster_identity_cannot_take_a_member_seat(provider: str) -> None:
    rnd = ChainRound.create(provider)
    attacker, key = identity(), KeyPair.generate()
    for k in range(1, rnd.cfg.committee_size + 1):
        reg = rnd.registration(ROLE_MEMBER, k, key)  # the attacker's key, a valid PoP
        _refused(rnd, ROLE_MEMBER, k, reg, "signature", by=attacker)
    # the relayer account itself is no identity either: there is no msg.sender seat
    rnd.register_all()
    st = rnd.board.state()
    assert all(st.members[k] == rnd.member_keys[k - 1].pk for k in st.members)


def test_a_member_cannot_take_another_members_seat(provider: str) -> None:
    rnd = ChainRound.create(provider, m=3)
    # member 1's identity signs registrations for seats 2 and 3 (its key, valid PoPs)
    for k in (2, 3):
        reg = rnd.registration(ROLE_MEMBER, k, rnd.member_keys[0])
        _refused(rnd, ROLE_MEMBER, k, reg, "signature", by=rnd.members[0])
    # and a member identity cannot take a client seat under closed membership
    reg = rnd.registration(ROLE_CLIENT, 1, rnd.member_keys[0])
    _refused(rnd, ROLE_CLIENT, 1, reg, "signature", by=rnd.members[0])
    rnd.post(ROLE_MEMBER, 1, rnd.registration(ROLE_MEMBER, 1))
    # once seated, a seat cannot be re-registered, even by its own identity
    _refused_again = rnd.registration(ROLE_MEMBER, 1, KeyPair.generate())
    with pytest.raises(RuleViolation) as info:
        rnd.post(ROLE_MEMBER, 1, _refused_again)
    assert info.value.fault.rule == "registration"
    assert rnd.board.state().members[1] == rnd.member_keys[0].pk


def test_closed_membership_client_seats_belong_to_the_roster(provider: str) -> None:
    rnd = ChainRound.create(provider, n=3)
    squatter = identity()
    for i in (1, 2, 3):
        reg = rnd.registration(ROLE_CLIENT, i, KeyPair.generate())
        _refused(rnd, ROLE_CLIENT, i, reg, "signature", by=squatter)
    # client 1's identity cannot take seat 2
    _refused(rnd, ROLE_CLIENT, 2, rnd.registration(ROLE_CLIENT, 2), "signature", by=rnd.clients[0])
    rnd.register_all()
    assert rnd.board.state().client_ids == {i: rnd.clients[i - 1].address for i in (1, 2, 3)}


def test_open_membership_one_seat_per_identity(provider: str) -> None:
    rnd = ChainRound.create(provider, n=3, open_membership=True)
    sybil = identity()
    rnd.post(ROLE_CLIENT, 1, rnd.registration(ROLE_CLIENT, 1), by=sybil)
    _refused(rnd, ROLE_CLIENT, 2, rnd.registration(ROLE_CLIENT, 2), "registration", by=sybil)
    # the seat it took is its own: nobody else signs for it
    st = rnd.board.state()
    assert st.client_ids[1] == sybil.address
    # member seats stay rostered under open membership
    _refused(rnd, ROLE_MEMBER, 1, rnd.registration(ROLE_MEMBER, 1), "signature", by=sybil)


def test_a_registration_from_another_round_does_not_replay(provider: str) -> None:
    a = ChainRound.create(provider)
    a.register_all()
    # round B: the same roster, the same chain, another contract and round id
    cfg_b = replace(a.cfg, board=bytes(20), round_id=a.cfg.round_id + 1)
    board_b = EvmBoard(cfg_b, a.board.w3, aggregator=a.aggregator, verifier=a.board.verifier)
    b = ChainRound(board_b, a.aggregator, a.members, a.clients)
    b.member_keys, b.client_keys = a.member_keys, a.client_keys
    for role, party in [(ROLE_CLIENT, 1), (ROLE_MEMBER, 1)]:
        reg = a.registration(role, party)
        # the exact post of round A (signature over A's board and round)
        signed_a = a.sign(role, party, reg, view=board_b.view())
        with pytest.raises(RuleViolation) as info:
            board_b.submit(signed_a)
        assert info.value.fault.rule == "signature"
        # the relayer re-wraps A's body under B's view without the key: still A's
        # signature; the seat's own identity re-signing it: the PoP binds A
        _refused(b, role, party, reg, "proof-of-possession")
    b.register_all()
    assert board_b.state().members[1] == a.member_keys[0].pk

"""Keys and proofs of possession; the Fiat–Shamir transcript layout."""

from __future__ import annotations

import dataclasses

import pytest

from pvss.errors import InvalidEncoding, InvalidProof
from pvss.group import ORDER, G, G1Point, H
from pvss.keys import (
    H_SEED,
    KeyPair,
    ProofOfPossession,
    prove_possession,
    prove_seed_reveal,
    verify_possession,
    verify_seed_reveal,
)
from pvss.transcript import (
    CONTEXT_BYTES,
    DST_DEALING,
    PURPOSE_PAIR,
    Context,
    Transcript,
    hash_to_scalar,
    keccak256,
)

R = int(ORDER)
BOARD = bytes(range(20))


def test_keccak_is_the_evm_one() -> None:
    # keccak256("") as the EVM computes it (not NIST SHA3-256)
    assert (
        keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


def test_context_layout_is_abi_encode_packed() -> None:
    ctx = Context(chain_id=1, board=BOARD, round_id=2, dealer=3, purpose=PURPOSE_PAIR, partner=4)
    data = ctx.to_bytes()
    assert len(data) == CONTEXT_BYTES
    assert data == (
        (1).to_bytes(32, "big")
        + BOARD
        + (2).to_bytes(8, "big")
        + (3).to_bytes(4, "big")
        + bytes([1])
        + (4).to_bytes(4, "big")
    )
    assert Context.from_bytes(data) == ctx


@pytest.mark.parametrize(
    "kwargs",
    [
        {"board": b"\x00" * 19},
        {"round_id": 2**64},
        {"dealer": -1},
        {"purpose": 7},
        {"partner": 2**32},
        {"chain_id": 2**256},
    ],
)
def test_context_rejects_out_of_range_fields(kwargs: dict) -> None:
    base = {"chain_id": 1, "board": BOARD, "round_id": 2, "dealer": 3}
    base.update(kwargs)
    with pytest.raises(InvalidEncoding):
        Context(**base)


def test_transcript_challenge_is_keccak_mod_r() -> None:
    tr = Transcript(DST_DEALING).uint(7, 16).point(G).scalar(5)
    data = DST_DEALING + (7).to_bytes(2, "big") + G.to_bytes() + (5).to_bytes(32, "big")
    assert tr.to_bytes() == data
    assert tr.challenge() == int.from_bytes(keccak256(data), "big") % R == hash_to_scalar(data)
    with pytest.raises(InvalidEncoding, match="uint16"):
        Transcript(DST_DEALING).uint(2**16, 16)


def test_keys_live_on_h() -> None:
    key = KeyPair.generate(12345)
    assert key.pk == H * 12345
    assert "12345" not in repr(key)
    with pytest.raises(InvalidEncoding):
        KeyPair.generate(0)


def test_proof_of_possession_and_every_tamper() -> None:
    key = KeyPair.generate()
    pop = prove_possession(key, 31337, BOARD, 7, party=4)
    verify_possession(key.pk, pop, 31337, BOARD, 7, 4)
    assert ProofOfPossession.from_bytes(pop.to_bytes()) == pop
    cases = [
        (key.pk, dataclasses.replace(pop, challenge=(pop.challenge + 1) % R), 31337, BOARD, 7, 4),
        (key.pk, dataclasses.replace(pop, response=(pop.response + 1) % R), 31337, BOARD, 7, 4),
        (key.pk + G, pop, 31337, BOARD, 7, 4),
        (key.pk, pop, 1, BOARD, 7, 4),
        (key.pk, pop, 31337, b"\x01" * 20, 7, 4),
        (key.pk, pop, 31337, BOARD, 8, 4),  # another round: a PoP is per round
        (key.pk, pop, 31337, BOARD, 7, 5),
        (G1Point.identity(), pop, 31337, BOARD, 7, 4),
    ]
    for pk, proof, chain, board, rnd, party in cases:
        with pytest.raises(InvalidProof, match=f"party {party}"):
            verify_possession(pk, proof, chain, board, rnd, party)


def test_seed_reveal_and_every_tamper() -> None:
    """SPEC §6.10: Gamma = sk*H_SEED with a DLEQ proof tying it to pk = sk*H, bound to
    chain, board, round and member; H_SEED is another nothing-up-my-sleeve generator."""
    key = KeyPair.generate()
    gamma, proof = prove_seed_reveal(key, 31337, BOARD, 7, 3)
    assert gamma == H_SEED * key.sk and H_SEED not in (G, H)
    verify_seed_reveal(key.pk, gamma, proof, 31337, BOARD, 7, 3)
    other = KeyPair.generate()
    cases = [
        (other.pk, gamma, 31337, BOARD, 7, 3),  # another key's reveal
        (key.pk, H_SEED * other.sk, 31337, BOARD, 7, 3),  # another Gamma
        (key.pk, gamma + G, 31337, BOARD, 7, 3),
        (key.pk, gamma, 1, BOARD, 7, 3),
        (key.pk, gamma, 31337, b"\x01" * 20, 7, 3),
        (key.pk, gamma, 31337, BOARD, 8, 3),
        (key.pk, gamma, 31337, BOARD, 7, 4),
    ]
    for pk, g, chain, board, rnd, member in cases:
        with pytest.raises(InvalidProof, match=f"member {member}"):
            verify_seed_reveal(pk, g, proof, chain, board, rnd, member)
    with pytest.raises(InvalidProof, match="identity"):
        verify_seed_reveal(key.pk, G1Point.identity(), proof, 31337, BOARD, 7, 3)


def test_pop_codec_rejects_bad_bytes() -> None:
    with pytest.raises(InvalidEncoding):
        ProofOfPossession.from_bytes(b"\x00" * 63)
    with pytest.raises(InvalidEncoding, match="challenge"):
        ProofOfPossession.from_bytes(R.to_bytes(32, "big") + b"\x00" * 32)

"""The shared vectors: committed files equal their deterministic regeneration, and
every valid case verifies while every invalid_* case is rejected."""

from __future__ import annotations

import json

import pytest

from pvss.dleq import DleqProof
from pvss.errors import InvalidEncoding, InvalidProof
from pvss.group import H_COUNTER, G1Point, H
from pvss.keys import H_SEED, ProofOfPossession, verify_possession, verify_seed_reveal
from pvss.scrape import (
    Dealing,
    DealingClaim,
    DecryptedShare,
    SharePost,
    SharePostClaim,
    compute_dealing_challenge,
    compute_rs_weights,
    is_valid_dealing_batch,
    is_valid_share_post_batch,
    verify_dealing,
    verify_decrypted_share,
    verify_share_post,
)

from .vector_gen import VECTOR_DIR, build, ctx_from_json, load_dealing_case, render

BUILT = build()


def cases(op: str) -> list[str]:
    return sorted(rel for rel in BUILT if rel.startswith(op + "/"))


def load(rel: str) -> dict:
    return json.loads((VECTOR_DIR / rel).read_text())


@pytest.mark.parametrize("rel", sorted(BUILT))
def test_committed_vectors_are_reproducible(rel: str) -> None:
    path = VECTOR_DIR / rel
    assert path.exists(), f"{rel} missing: run python -m tests.vector_gen"
    assert path.read_text() == render(BUILT[rel])


def test_hash_to_g1_vector() -> None:
    vec = load("hash_to_g1/h.json")
    assert vec["output"]["point"] == H.to_bytes().hex()
    assert vec["output"]["counter"] == H_COUNTER


@pytest.mark.parametrize("rel", cases("dealing"))
def test_dealing_vectors(rel: str) -> None:
    vec = load(rel)
    dealing, pks, ctx, rpk = load_dealing_case(vec["input"])
    valid = vec["output"]["valid"]
    claim = DealingClaim(dealing, tuple(pks), ctx, rpk)
    if valid:
        verify_dealing(dealing, pks, ctx, rpk)
        assert hex(compute_dealing_challenge(dealing, pks, ctx, rpk)) == vec["output"]["challenge"]
    else:
        with pytest.raises(InvalidProof):
            verify_dealing(dealing, pks, ctx, rpk)
    assert is_valid_dealing_batch([claim]) is valid


@pytest.mark.parametrize("rel", cases("transcript"))
def test_transcript_vectors(rel: str) -> None:
    vec = load(rel)
    dealing, pks, ctx, rpk = load_dealing_case(vec["input"])
    assert hex(compute_dealing_challenge(dealing, pks, ctx, rpk)) == vec["output"]["challenge"]
    assert bytes.fromhex(vec["input"]["context"]["bytes"]) == ctx.to_bytes()


@pytest.mark.parametrize("rel", cases("rs_weights"))
def test_rs_weight_vectors(rel: str) -> None:
    vec = load(rel)
    mus = compute_rs_weights(int(vec["input"]["challenge"], 16), vec["input"]["count"])
    assert [hex(m) for m in mus] == vec["output"]["mu"]


@pytest.mark.parametrize("rel", cases("decrypted_share"))
def test_decrypted_share_vectors(rel: str) -> None:
    vec = load(rel)
    inp = vec["input"]
    dealing = Dealing.from_bytes(bytes.fromhex(inp["dealing"]))
    pk = G1Point.from_bytes(bytes.fromhex(inp["pk"]))
    ctx = ctx_from_json(inp["context"])
    if vec["output"]["valid"]:
        verify_decrypted_share(
            DecryptedShare.from_bytes(bytes.fromhex(inp["share"])), dealing, pk, ctx
        )
    else:
        with pytest.raises((InvalidProof, InvalidEncoding)):
            share = DecryptedShare.from_bytes(bytes.fromhex(inp["share"]))
            verify_decrypted_share(share, dealing, pk, ctx)


def _share_post_claim(inp: dict) -> SharePostClaim:
    index = inp["index"]
    dealings = [Dealing.from_bytes(bytes.fromhex(d)) for d in inp["dealings"]]
    s_hats = tuple(G1Point.from_bytes(bytes.fromhex(h)) for h in inp["s_hats"])
    # the vector's s_hat_k are the dealings' own (the contract takes them cut out)
    assert s_hats == tuple(d.s_hat[d.position(index)] for d in dealings)
    return SharePostClaim(
        SharePost.from_bytes(bytes.fromhex(inp["post"])),
        G1Point.from_bytes(bytes.fromhex(inp["pk"])),
        tuple(ctx_from_json(c) for c in inp["contexts"]),
        s_hats,
    )


@pytest.mark.parametrize("rel", cases("share_post"))
def test_share_post_vectors(rel: str) -> None:
    vec = load(rel)
    claim = _share_post_claim(vec["input"])
    member = vec["input"]["index"]
    if vec["output"]["valid"]:
        verify_share_post(claim)
        assert is_valid_share_post_batch([claim])
    else:
        with pytest.raises(InvalidProof, match=f"member {member}: share post"):
            verify_share_post(claim)
        assert not is_valid_share_post_batch([claim])


@pytest.mark.parametrize("rel", cases("pop"))
def test_pop_vectors(rel: str) -> None:
    vec = load(rel)
    inp = vec["input"]
    pk = G1Point.from_bytes(bytes.fromhex(inp["pk"]))
    proof = ProofOfPossession.from_bytes(bytes.fromhex(inp["proof"]))
    board = bytes.fromhex(inp["board"][2:])
    if vec["output"]["valid"]:
        verify_possession(pk, proof, inp["chain_id"], board, inp["round_id"], inp["party"])
    else:
        with pytest.raises(InvalidProof):
            verify_possession(pk, proof, inp["chain_id"], board, inp["round_id"], inp["party"])


@pytest.mark.parametrize("rel", cases("seed_reveal"))
def test_seed_reveal_vectors(rel: str) -> None:
    vec = load(rel)
    inp = vec["input"]
    pk, gamma = (G1Point.from_bytes(bytes.fromhex(inp[k])) for k in ("pk", "gamma"))
    proof = DleqProof.from_bytes(bytes.fromhex(inp["proof"]))
    args = (inp["chain_id"], bytes.fromhex(inp["board"][2:]), inp["round_id"], inp["member"])
    if vec["output"]["valid"]:
        assert vec["output"]["h_seed"] == H_SEED.to_bytes().hex()
        verify_seed_reveal(pk, gamma, proof, *args)
    else:
        with pytest.raises(InvalidProof):
            verify_seed_reveal(pk, gamma, proof, *args)


@pytest.mark.parametrize(
    "rel", [r for r in cases("dealing") if r.endswith(("_rs.json", "_key_side_dleq.json"))]
)
def test_forged_vectors_fail_where_they_claim(rel: str) -> None:
    """The forged vectors reach the RS check / key-side DLEQ with everything before passing."""
    dealing, pks, ctx, rpk = load_dealing_case(load(rel)["input"])
    what = "RS check" if rel.endswith("_rs.json") else "DLEQ \\(key side\\)"
    with pytest.raises(InvalidProof, match=what):
        verify_dealing(dealing, pks, ctx, rpk)

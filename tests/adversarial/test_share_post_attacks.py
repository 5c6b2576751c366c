"""Attacks on the aggregated DLEQ of a share post (SPEC.md §4.5, pvss.scrape).

A member proves all its decryptions S_i of a post with one DLEQ for
S* = sum rho_i S_i and s_hat* = sum rho_i s_hat_i. The attacks try to get wrong S_i
accepted; each test would fail if its attack worked, and each has a control that
shows the forged post is otherwise well formed (or that the attack would work against
a verifier that fixed the weights before the shares).
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from pvss.dleq import prove_dleq
from pvss.errors import InvalidProof
from pvss.field import inv_mod_r
from pvss.group import ORDER, H, msm_signed
from pvss.keys import KeyPair
from pvss.scrape import (
    SharePost,
    deal,
    decrypt_share_post,
    invalid_share_posts,
    is_valid_share_post_batch,
    share_post_claim,
    share_post_prefix,
    share_post_seed,
    share_post_weights,
    verify_share_post,
)
from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF, Context

R = int(ORDER)
BOARD = bytes(range(20))
KEYS = [KeyPair.generate(sk) for sk in (1001, 1002, 1003, 1004, 1005)]
PKS = [k.pk for k in KEYS]


def _items(count: int, round_id: int = 3) -> list:
    out = []
    for d in range(count):
        purpose = PURPOSE_SELF if d % 2 == 0 else PURPOSE_PAIR
        ctx = Context(31337, BOARD, round_id, 10 + d, purpose, 0 if d % 2 == 0 else 50 + d)
        rpk = KEYS[0].pk if purpose == PURPOSE_PAIR else None
        out.append((deal(PKS, 2, ctx, rpk, rng=random.Random(d))[0], ctx))
    return out


def test_cancelling_errors_with_weights_fixed_before_the_shares() -> None:
    """Member 2 shifts S_0 by D and S_1 by -(rho_0/rho_1) D so that S* stays the honest
    S* under the *honest post's* weights, then proves that S*. The weights of the
    forged post are rehashed from its own shares, so the proof fails and the member is
    named. Control: under the stale weights the forgery's S* equals the honest one,
    i.e. the attack succeeds against a verifier whose weights do not hash the shares."""
    k, key = 2, KEYS[1]
    items = _items(4)
    honest = decrypt_share_post(k, key, items, nonce=77)
    claim = share_post_claim(honest, PKS[k - 1], items)
    verify_share_post(claim)
    seed = share_post_seed(k, key.pk, claim.contexts, claim.s_hats, honest.shares)
    rho = share_post_weights(seed, 4)
    d = H * 12345
    shares = list(honest.shares)
    shares[0] = shares[0] + d
    shares[1] = shares[1] - d * (rho[0] * inv_mod_r(rho[1]) % R)
    # control: with the stale weights the two errors cancel
    assert msm_signed(shares, rho) == msm_signed(list(honest.shares), rho)
    s_star, s_hat_star = msm_signed(shares, rho), msm_signed(list(claim.s_hats), rho)
    proof = prove_dleq(key.sk, H, s_star, share_post_prefix(seed, s_star, s_hat_star), nonce=5)
    forged = dataclasses.replace(claim, post=SharePost(k, tuple(shares), proof))
    with pytest.raises(InvalidProof, match="member 2: share post"):
        verify_share_post(forged)
    assert not is_valid_share_post_batch([forged])


def test_one_bad_share_names_the_member_in_a_batch_of_posts() -> None:
    """Three members post; member 3 replaces one share by a wrong point and re-proves
    with the honest proof. The batch fails and the fallback names member 3 only."""
    items = _items(5)
    claims = []
    for k in (1, 3, 4):
        post = decrypt_share_post(k, KEYS[k - 1], items, nonce=100 + k)
        claims.append(share_post_claim(post, PKS[k - 1], items))
    assert is_valid_share_post_batch(claims)  # control: the honest posts pass together
    bad = claims[1].post
    wrong = bad.shares[:2] + (bad.shares[2] + H,) + bad.shares[3:]
    claims[1] = dataclasses.replace(claims[1], post=SharePost(3, wrong, bad.proof))
    assert not is_valid_share_post_batch(claims)
    found = invalid_share_posts(claims)
    assert [pos for pos, _ in found] == [1]
    assert "member 3" in found[0][1]


def test_swapping_proofs_between_posts_does_not_balance_a_batch() -> None:
    """Two members exchange their proofs: each post alone fails, and the batch (whose
    weights gamma the verifier draws) does not let the two failures cancel."""
    items = _items(3)
    a = share_post_claim(decrypt_share_post(1, KEYS[0], items, nonce=9), PKS[0], items)
    b = share_post_claim(decrypt_share_post(4, KEYS[3], items, nonce=9), PKS[3], items)
    a2 = dataclasses.replace(a, post=SharePost(1, a.post.shares, b.post.proof))
    b2 = dataclasses.replace(b, post=SharePost(4, b.post.shares, a.post.proof))
    assert is_valid_share_post_batch([a, b])  # control
    assert not is_valid_share_post_batch([a2, b2])
    assert [pos for pos, _ in invalid_share_posts([a2, b2])] == [0, 1]


def test_replaying_a_post_into_another_round() -> None:
    """A valid post of round 3 offered for round 4's dealings with the same dealers
    (the contexts differ in the round only): rejected naming the member."""
    k = 5
    items3 = _items(2, round_id=3)
    post = decrypt_share_post(k, KEYS[k - 1], items3, nonce=3)
    verify_share_post(share_post_claim(post, PKS[k - 1], items3))  # control
    claim = share_post_claim(post, PKS[k - 1], items3)
    replay = dataclasses.replace(
        claim, contexts=tuple(dataclasses.replace(c, round_id=4) for c in claim.contexts)
    )
    with pytest.raises(InvalidProof, match="member 5: share post"):
        verify_share_post(replay)

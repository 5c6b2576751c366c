"""SCRAPE PVSS: round trips, reconstruction from every subset, every single-field
tamper rejected by both verifiers, context binding, codecs."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pvss.dleq import DleqProof
from pvss.errors import InvalidEncoding, InvalidParameters, InvalidProof
from pvss.group import FIELD_MODULUS, ORDER, G, G1Point
from pvss.keys import KeyPair
from pvss.scrape import (
    Dealing,
    DealingClaim,
    DecryptedShare,
    ShareClaim,
    SharePost,
    deal,
    decrypt_share,
    decrypt_share_post,
    invalid_share_posts,
    invalid_shares,
    is_valid_dealing,
    is_valid_dealing_batch,
    is_valid_dealing_batch_split,
    is_valid_share_batch,
    is_valid_share_post_batch,
    reconstruct,
    recover_as_recipient,
    share_post_claim,
    verify_dealing,
    verify_dealings,
    verify_decrypted_share,
    verify_share_post,
)
from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF, Context

R = int(ORDER)
P = int(FIELD_MODULUS)
CTX = Context(
    chain_id=31337, board=b"\xab" * 20, round_id=5, dealer=9, purpose=PURPOSE_PAIR, partner=11
)


def committee(m: int, seed: int = 0) -> list[KeyPair]:
    rng = random.Random(seed)
    return [KeyPair.generate(rng.randrange(1, R)) for _ in range(m)]


def both_reject(dealing: Dealing, pks, ctx, rpk) -> None:
    with pytest.raises(InvalidProof):
        verify_dealing(dealing, pks, ctx, rpk)
    assert not is_valid_dealing_batch([DealingClaim(dealing, tuple(pks), ctx, rpk)])


@pytest.mark.parametrize(
    ("m", "t", "with_recipient"),
    [
        (2, 1, False),
        (3, 1, True),
        (4, 1, False),
        (5, 2, True),
        (7, 3, False),
        (10, 4, True),
        (16, 7, True),
    ],
)
def test_round_trip(m: int, t: int, with_recipient: bool) -> None:
    keys = committee(m, seed=m)
    pks = [k.pk for k in keys]
    rkey = KeyPair.generate() if with_recipient else None
    rpk = rkey.pk if rkey else None
    dealing, secret = deal(pks, t, CTX, rpk)
    verify_dealing(dealing, pks, CTX, rpk)
    assert is_valid_dealing_batch([DealingClaim(dealing, tuple(pks), CTX, rpk)])
    shares = [decrypt_share(dealing, k + 1, keys[k], CTX) for k in range(m)]
    for sh, key in zip(shares, keys, strict=False):
        verify_decrypted_share(sh, dealing, key.pk, CTX)
    assert reconstruct(shares, t) == secret
    if rkey:
        assert recover_as_recipient(dealing, rkey) == secret
    assert Dealing.from_bytes(dealing.to_bytes()) == dealing


@pytest.mark.parametrize(("m", "t"), [(3, 1), (4, 1), (5, 2), (6, 2)])
def test_every_t_plus_1_subset_reconstructs_the_same_secret(m: int, t: int) -> None:
    keys = committee(m, seed=100 + m)
    pks = [k.pk for k in keys]
    dealing, secret = deal(pks, t, CTX)
    shares = [decrypt_share(dealing, k + 1, keys[k], CTX) for k in range(m)]
    for subset in itertools.combinations(shares, t + 1):
        assert reconstruct(list(subset), t) == secret
    for subset in itertools.combinations(shares, t):
        with pytest.raises(InvalidParameters, match="need t\\+1"):
            reconstruct(list(subset), t)


def _tampered_dealings(d: Dealing):
    """Every single-field tamper of a dealing: (label, tampered dealing)."""
    for name in ("v", "s_hat", "a1", "a2"):
        for i in range(d.n_points):
            col = list(getattr(d, name))
            col[i] = col[i] + G
            yield f"{name}[{i}]", dataclasses.replace(d, **{name: tuple(col)})
    for i in range(d.n_points):
        z = list(d.z)
        z[i] = (z[i] + 1) % R
        yield f"z[{i}]", dataclasses.replace(d, z=tuple(z))
    if d.committee_size >= d.threshold + 2:
        yield "threshold+1", dataclasses.replace(d, threshold=d.threshold + 1)
    if d.threshold > 1:
        yield "threshold-1", dataclasses.replace(d, threshold=d.threshold - 1)


@pytest.mark.parametrize("with_recipient", [False, True])
def test_every_single_field_tamper_is_rejected(with_recipient: bool) -> None:
    keys = committee(5, seed=3)
    pks = [k.pk for k in keys]
    rpk = KeyPair.generate().pk if with_recipient else None
    dealing, _ = deal(pks, 2, CTX, rpk)
    labels = []
    for label, bad in _tampered_dealings(dealing):
        both_reject(bad, pks, CTX, rpk)
        labels.append(label)
    assert len(labels) == 5 * dealing.n_points + 2


def test_rs_check_alone_catches_a_high_degree_dealing() -> None:
    """A dealer using a degree-(t+1) polynomial with perfectly valid DLEQ proofs must
    fail the Reed–Solomon check (and only it)."""
    keys = committee(6, seed=4)
    pks = [k.pk for k in keys]
    t = 2
    honest, _ = deal(pks, t + 1, CTX)  # a valid degree-3 dealing ...
    cheat = dataclasses.replace(honest, threshold=t)  # ... claimed as degree 2
    with pytest.raises(InvalidProof, match="RS check|DLEQ"):
        verify_dealing(cheat, pks, CTX)
    assert not is_valid_dealing_batch([DealingClaim(cheat, tuple(pks), CTX)])


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": 1},
        {"board": b"\xac" * 20},
        {"round_id": 6},
        {"dealer": 10},
        {"purpose": PURPOSE_SELF},
        {"partner": 12},
    ],
    ids=lambda c: next(iter(c)),
)
def test_dealing_is_bound_to_its_context(change: dict) -> None:
    keys = committee(4, seed=5)
    pks = [k.pk for k in keys]
    dealing, _ = deal(pks, 1, CTX)
    other = dataclasses.replace(CTX, **change)
    both_reject(dealing, pks, other, None)
    share = decrypt_share(dealing, 2, keys[1], CTX)
    with pytest.raises(InvalidProof, match="member 2"):
        verify_decrypted_share(share, dealing, keys[1].pk, other)


def test_wrong_keys_or_recipient_mismatch_rejected() -> None:
    keys = committee(4, seed=6)
    pks = [k.pk for k in keys]
    rpk = KeyPair.generate().pk
    dealing, _ = deal(pks, 1, CTX, rpk)
    both_reject(dealing, pks, CTX, None)  # recipient key missing
    both_reject(dealing, pks[::-1], CTX, rpk)  # keys permuted
    both_reject(dealing, pks[:3], CTX, rpk)  # wrong committee size
    both_reject(dealing, pks, CTX, pks[0])  # another recipient


def test_batch_and_reference_agree_on_mixed_batches() -> None:
    keys = committee(5, seed=7)
    pks = tuple(k.pk for k in keys)
    rng = random.Random(9)
    claims = []
    for i in range(6):
        rpk = KeyPair.generate().pk if i % 2 else None
        ctx = dataclasses.replace(CTX, dealer=i)
        d, _ = deal(pks, 2, ctx, rpk)
        claims.append(DealingClaim(d, pks, ctx, rpk))
    assert is_valid_dealing_batch(claims, rng=rng)
    verify_dealings(claims)
    bad = list(claims)
    tampers = list(_tampered_dealings(claims[1].dealing))[3:5]
    for pos, (_, tampered) in zip((1, 4), tampers, strict=True):
        bad[pos] = dataclasses.replace(bad[pos], dealing=tampered)
    bad[4] = dataclasses.replace(claims[4], context=dataclasses.replace(CTX, dealer=99))
    for claim in bad:
        assert is_valid_dealing_batch([claim]) == is_valid_dealing(
            claim.dealing, claim.committee_pks, claim.context, claim.recipient_pk
        )
    assert not is_valid_dealing_batch(bad)
    with pytest.raises(InvalidProof, match="2 invalid") as exc:
        verify_dealings(bad)
    assert exc.value.invalid == [1, 4]  # type: ignore[attr-defined]


def test_decrypted_share_tampers_rejected() -> None:
    keys = committee(4, seed=8)
    pks = [k.pk for k in keys]
    dealing, _ = deal(pks, 1, CTX)
    share = decrypt_share(dealing, 3, keys[2], CTX)
    verify_decrypted_share(share, dealing, pks[2], CTX)
    a1, a2, z = share.proof.a1, share.proof.a2, share.proof.response
    tampers = {
        "index": dataclasses.replace(share, index=2),
        "share": dataclasses.replace(share, share=share.share + G),
        "a1": dataclasses.replace(share, proof=DleqProof(a1 + G, a2, z)),
        "a2": dataclasses.replace(share, proof=DleqProof(a1, a2 + G, z)),
        "response": dataclasses.replace(share, proof=DleqProof(a1, a2, (z + 1) % R)),
        "index-out-of-range": dataclasses.replace(share, index=9),
    }
    good = [
        ShareClaim(decrypt_share(dealing, k, keys[k - 1], CTX), dealing, pks[k - 1], CTX)
        for k in (1, 2, 4)
    ]
    assert is_valid_share_batch(good + [ShareClaim(share, dealing, pks[2], CTX)])
    for label, bad in tampers.items():
        pk = pks[bad.index - 1] if bad.index <= 4 else pks[0]
        with pytest.raises(InvalidProof, match="member"):
            verify_decrypted_share(bad, dealing, pk, CTX)
        # the batch path rejects every tamper too, and names the bad share's position
        claims = good[:2] + [ShareClaim(bad, dealing, pk, CTX)] + good[2:]
        assert not is_valid_share_batch(claims), label
        assert [pos for pos, _ in invalid_shares(claims)] == [2], label
        assert label
    with pytest.raises(InvalidProof, match="member 3"):
        verify_decrypted_share(share, dealing, pks[1], CTX)  # another member's key


def test_wrong_decryption_key_gives_a_share_that_fails() -> None:
    keys = committee(4, seed=10)
    pks = [k.pk for k in keys]
    dealing, _ = deal(pks, 1, CTX)
    forged = decrypt_share(dealing, 1, keys[1], CTX)  # member 2 decrypts member 1's share
    with pytest.raises(InvalidProof):
        verify_decrypted_share(forged, dealing, pks[0], CTX)


def test_deal_parameter_errors() -> None:
    pks = [k.pk for k in committee(3)]
    with pytest.raises(InvalidParameters, match="threshold"):
        deal(pks, 3, CTX)
    with pytest.raises(InvalidParameters, match="threshold"):
        deal(pks, 0, CTX)
    with pytest.raises(InvalidParameters, match="identity"):
        deal([pks[0], G1Point.identity(), pks[2]], 1, CTX)
    d, _ = deal(pks, 1, CTX)
    with pytest.raises(InvalidParameters, match="no recipient"):
        recover_as_recipient(d, KeyPair.generate())


# -- codecs ------------------------------------------------------------------------------


def test_dealing_codec_rejects_malformed_bytes() -> None:
    pks = [k.pk for k in committee(3, seed=11)]
    data = deal(pks, 1, CTX, KeyPair.generate().pk)[0].to_bytes()
    for cut in (0, 4, 5, 100, len(data) - 1):
        with pytest.raises(InvalidEncoding):
            Dealing.from_bytes(data[:cut])
    with pytest.raises(InvalidEncoding, match="expected"):
        Dealing.from_bytes(data + b"\x00")
    bad = bytearray(data)
    bad[2] = 2
    with pytest.raises(InvalidEncoding, match="has_recipient"):
        Dealing.from_bytes(bytes(bad))
    bad = bytearray(data)
    bad[5 + 4 * 64 : 5 + 4 * 64 + 32] = R.to_bytes(32, "big")  # z[0] = r
    with pytest.raises(InvalidEncoding, match=r"dealing.z\[0\]"):
        Dealing.from_bytes(bytes(bad))
    bad = bytearray(data)
    bad[5 + 64 + 10] ^= 1  # s_hat[0] off the curve
    with pytest.raises(InvalidEncoding, match=r"dealing.s_hat\[0\]"):
        Dealing.from_bytes(bytes(bad))
    bad = bytearray(data)
    bad[0:2] = (0).to_bytes(2, "big")
    with pytest.raises(InvalidEncoding, match="threshold"):
        Dealing.from_bytes(bytes(bad))
    # record i at 5 + 288*i: v, s_hat, a1 (+128), a2, z; a coordinate >= p is named
    bad = bytearray(data)
    bad[5 + 288 + 128 : 5 + 288 + 160] = P.to_bytes(32, "big")  # a1[1].x = p
    with pytest.raises(InvalidEncoding, match=r"dealing.a1\[1\]: coordinate >= field modulus"):
        Dealing.from_bytes(bytes(bad))
    # the identity (64 zero bytes) decodes to the identity, as G1Point.from_bytes does
    ident = bytearray(data)
    ident[5 + 288 + 192 : 5 + 288 + 256] = bytes(64)  # a2[1]
    assert Dealing.from_bytes(bytes(ident)).a2[1] == G1Point.identity()


@given(st.binary(max_size=700))
def test_dealing_codec_fuzz_raises_only_invalid_encoding(blob: bytes) -> None:
    try:
        d = Dealing.from_bytes(blob)
    except InvalidEncoding:
        return
    assert d.to_bytes() == blob


def test_decrypted_share_codec() -> None:
    keys = committee(3, seed=12)
    dealing, _ = deal([k.pk for k in keys], 1, CTX)
    sh = decrypt_share(dealing, 2, keys[1], CTX)
    data = sh.to_bytes()
    assert DecryptedShare.from_bytes(data) == sh
    with pytest.raises(InvalidEncoding):
        DecryptedShare.from_bytes(data[:-1])
    with pytest.raises(InvalidEncoding, match="index"):
        DecryptedShare.from_bytes(b"\x00\x00" + data[2:])
    # every field of uint16 k || S_k || A1 || A2 || z is decoded and validated
    for lo, hi, name, value in (
        (2, 34, "share", P.to_bytes(32, "big")),
        (66, 98, "a1", P.to_bytes(32, "big")),
        (130, 162, "a2", (1).to_bytes(32, "big")),  # (1, y) off the curve
        (194, 226, "response", R.to_bytes(32, "big")),
    ):
        bad = bytearray(data)
        bad[lo:hi] = value
        with pytest.raises(InvalidEncoding, match=name):
            DecryptedShare.from_bytes(bytes(bad))


def test_identity_key_is_rejected_by_both_verifiers() -> None:
    pks = [k.pk for k in committee(4, seed=13)]
    dealing, _ = deal(pks, 1, CTX)
    bad_keys = [pks[0], G1Point.identity(), pks[2], pks[3]]
    with pytest.raises(InvalidProof, match="point 2 is the identity"):
        verify_dealing(dealing, bad_keys, CTX)
    assert not is_valid_dealing_batch([DealingClaim(dealing, tuple(bad_keys), CTX)])


def test_deal_many_matches_deal_and_verifies() -> None:
    from pvss.scrape import DealRequest, deal_many

    keys = committee(5, seed=14)
    pks = tuple(k.pk for k in keys)
    rkeys = [KeyPair.generate() for _ in range(3)]
    reqs = [DealRequest(pks, 2, CTX)] + [
        DealRequest(pks, 2, dataclasses.replace(CTX, partner=i + 20), rk.pk)
        for i, rk in enumerate(rkeys)
    ]
    out = deal_many(reqs, table_cache={})
    claims = [
        DealingClaim(d, pks, r.context, r.recipient_pk) for (d, _), r in zip(out, reqs, strict=True)
    ]
    verify_dealings(claims)
    for (d, secret), rk in zip(out[1:], rkeys, strict=True):
        assert recover_as_recipient(d, rk) == secret
    # same randomness, same dealing, whether made alone or in a batch
    alone = deal(pks, 2, CTX, rng=random.Random(3))
    batched = deal_many([reqs[0]], rng=random.Random(3))[0]
    assert alone == batched


# ---------------------------------------------------------------------------
# Share posts: one aggregated DLEQ per post (SPEC.md §4.5)
# ---------------------------------------------------------------------------


def _share_post_items(count: int) -> list[tuple[Dealing, Context]]:
    out = []
    for d in range(count):
        ctx = dataclasses.replace(CTX, dealer=d + 1, purpose=PURPOSE_SELF, partner=0)
        out.append((deal([k.pk for k in SP_KEYS], 2, ctx, rng=random.Random(d))[0], ctx))
    return out


SP_KEYS = [KeyPair.generate(sk) for sk in (31, 32, 33, 34)]


def test_share_post_roundtrip_and_reconstruction() -> None:
    """Every member's post verifies (alone and batched), its shares are the S_k of
    decrypt_share, and t+1 posts reconstruct each dealing's secret."""
    pks = [k.pk for k in SP_KEYS]
    secrets_, items = [], []
    for d in range(3):
        ctx = dataclasses.replace(CTX, dealer=d + 1, purpose=PURPOSE_SELF, partner=0)
        dealing, secret = deal(pks, 2, ctx, rng=random.Random(40 + d))
        items.append((dealing, ctx))
        secrets_.append(secret)
    posts = [decrypt_share_post(k, SP_KEYS[k - 1], items) for k in (1, 2, 3, 4)]
    claims = [share_post_claim(p, pks[p.index - 1], items) for p in posts]
    for c in claims:
        verify_share_post(c)
        assert SharePost.from_bytes(c.post.to_bytes()) == c.post
        assert len(c.post.to_bytes()) == 164 + 64 * 3
    assert is_valid_share_post_batch(claims)
    assert invalid_share_posts(claims) == []
    for d, (dealing, ctx) in enumerate(items):
        assert posts[0].shares[d] == decrypt_share(dealing, 1, SP_KEYS[0], ctx).share
        shares = [
            DecryptedShare(p.index, p.shares[d], decrypt_share(dealing, 1, SP_KEYS[0], ctx).proof)
            for p in posts[1:]
        ]
        assert reconstruct(shares, 2) == secrets_[d]


def test_share_post_codec_names_the_field() -> None:
    items = _share_post_items(2)
    raw = decrypt_share_post(2, SP_KEYS[1], items).to_bytes()
    y = int.from_bytes(raw[4 + 64 + 32 : 4 + 128], "big")
    cases = {
        "share_post:": raw[:-1],
        "share_post.count": raw[:2] + b"\0\0" + raw[4:],
        "share_post.index": b"\0\0" + raw[2:],
        r"share_post.share\[1\]": raw[:100] + ((y + 1) % P).to_bytes(32, "big") + raw[132:],
        "share_post.proof.response": raw[:-32] + (R + 1).to_bytes(32, "big"),
    }
    for field, blob in cases.items():
        with pytest.raises(InvalidEncoding, match=field):
            SharePost.from_bytes(blob)


def test_share_post_claim_needs_one_dealing_per_share() -> None:
    items = _share_post_items(2)
    post = decrypt_share_post(3, SP_KEYS[2], items)
    with pytest.raises(InvalidProof, match="member 3: 2 shares for 1 dealings"):
        share_post_claim(post, SP_KEYS[2].pk, items[:1])
    with pytest.raises(InvalidParameters):
        decrypt_share_post(0, SP_KEYS[0], items)
    with pytest.raises(InvalidParameters):
        decrypt_share_post(1, SP_KEYS[0], [])
    # a post whose statement lists another number of s_hat than shares fails, naming k
    claim = share_post_claim(post, SP_KEYS[2].pk, items)
    short = dataclasses.replace(claim, s_hats=claim.s_hats[:1])
    with pytest.raises(InvalidProof, match="member 3"):
        verify_share_post(short)
    assert not is_valid_share_post_batch([short])


def test_seed_reveal_batch_and_a_tamper_of_each_field() -> None:
    """``is_valid_seed_reveal_batch`` accepts m honest reveals and refuses any batch in
    which one field of one reveal changed; ``invalid_seed_reveals`` names that member."""
    from pvss.group import H  # noqa: PLC0415
    from pvss.keys import prove_seed_reveal  # noqa: PLC0415
    from pvss.scrape import (  # noqa: PLC0415
        SeedRevealClaim,
        invalid_seed_reveals,
        is_valid_seed_reveal_batch,
    )

    chain, board, rid = 31337, b"\x42" * 20, 7
    keys = [KeyPair.generate() for _ in range(5)]
    claims = []
    for k, kp in enumerate(keys, 1):
        gamma, proof = prove_seed_reveal(kp, chain, board, rid, k)
        claims.append(SeedRevealClaim(kp.pk, gamma, proof, chain, board, rid, k))
    assert is_valid_seed_reveal_batch(claims) and invalid_seed_reveals(claims) == []
    c = claims[2]
    other = claims[3]
    tampered = {
        "pk": dataclasses.replace(c, pk=other.pk),
        "gamma": dataclasses.replace(c, gamma=c.gamma + H),
        "a1": dataclasses.replace(c, proof=dataclasses.replace(c.proof, a1=c.proof.a1 + H)),
        "a2": dataclasses.replace(c, proof=dataclasses.replace(c.proof, a2=c.proof.a2 + H)),
        "z": dataclasses.replace(
            c, proof=dataclasses.replace(c.proof, response=int((c.proof.response + 1) % ORDER))
        ),
        "member": dataclasses.replace(c, member=9),
        "round": dataclasses.replace(c, round_id=rid + 1),
        "board": dataclasses.replace(c, board=b"\x43" * 20),
        "chain": dataclasses.replace(c, chain_id=1),
        "swapped proofs": dataclasses.replace(c, proof=other.proof),
    }
    for name, bad in tampered.items():
        batch = [*claims[:2], bad, *claims[3:]]
        assert not is_valid_seed_reveal_batch(batch), name
        found = invalid_seed_reveals(batch)
        assert [pos for pos, _ in found] == [2], name
        assert f"member {bad.member}" in found[0][1], name


def test_a_split_batch_catches_a_bad_dealing_in_any_part(monkeypatch) -> None:
    """``is_valid_dealing_batch_split`` (SPEC.md §4.4): the parts run on threads; a bad
    dealing in the first, the last or a middle part fails the whole batch, and below
    the per-part minimum it is one batch (same answer)."""
    import pvss.scrape as scrape  # noqa: PLC0415

    monkeypatch.setattr(scrape, "MIN_DEALINGS_PER_PART", 2)
    keys = committee(4, seed=11)
    pks = tuple(k.pk for k in keys)
    claims = []
    for i in range(7):
        ctx = dataclasses.replace(CTX, dealer=i)
        d, _ = deal(pks, 1, ctx)
        claims.append(DealingClaim(d, pks, ctx))
    for parts in (1, 2, 3):
        assert is_valid_dealing_batch_split(claims, parts)
    z = claims[0].dealing.z
    cheat = dataclasses.replace(claims[0].dealing, z=(z[0] + 1, *z[1:]))
    for pos in (0, 3, 6):  # first, middle, last part of a 3-way split
        bad = list(claims)
        bad[pos] = dataclasses.replace(claims[pos], dealing=cheat)
        for parts in (1, 2, 3):
            assert not is_valid_dealing_batch_split(bad, parts), (pos, parts)
    monkeypatch.setattr(scrape, "MIN_DEALINGS_PER_PART", 64)  # 7 dealings: one batch
    assert is_valid_dealing_batch_split(claims, 4)
    assert not is_valid_dealing_batch_split(bad, 4)

"""Group and PVSS micro-benchmarks against py_ecc, measured side by side in one run.

Prints one JSON object per line (bench, params, ours_s, baseline, baseline_s,
speedup = baseline_s / ours_s, ...) and appends the same lines to
bench/results/group_ops.jsonl. Times are medians of ``--repeats`` runs.

    .venv/bin/python bench/group_ops.py [--quick] [--repeats N] [--only share_post]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from py_ecc import optimized_bn128 as pe

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit, median_time  # noqa: E402

from pvss.field import dual_codeword  # noqa: E402
from pvss.group import ORDER, G, G1Point, H, g_table, msm, table_for  # noqa: E402
from pvss.keys import KeyPair  # noqa: E402
from pvss.scrape import (  # noqa: E402
    DealingClaim,
    ShareClaim,
    compute_dealing_challenge,
    compute_rs_weights,
    deal,
    decrypt_share,
    decrypt_share_post,
    is_valid_dealing_batch,
    is_valid_share_batch,
    is_valid_share_post_batch,
    share_post_claim,
    share_transcript,
    verify_dealing,
    verify_decrypted_share,
)
from pvss.transcript import Context  # noqa: E402

R = int(ORDER)


def median_seconds(fn: Callable[[], object], repeats: int, inner: int = 1) -> float:
    """Median over ``repeats`` of the mean time of ``inner`` calls (no warm-up: the
    py_ecc baselines are too slow to run an extra time)."""
    return median_time(fn, repeats=repeats, warmup=0, inner=inner)


def paired_medians(
    ours: Callable[[], object],
    base: Callable[[], object],
    repeats: int,
    inner_ours: int = 1,
    inner_base: int = 1,
) -> tuple[float, float]:
    """Time ours and the baseline alternately (one repeat of each in turn), so both
    see the same machine noise; medians of the per-call means."""
    t_ours, t_base = [], []
    for _ in range(repeats):
        t_ours.append(median_time(ours, repeats=1, warmup=0, inner=inner_ours))
        t_base.append(median_time(base, repeats=1, warmup=0, inner=inner_base))
    return statistics.median(t_ours), statistics.median(t_base)


def to_pe(pt: G1Point):
    if pt.is_identity:
        return pe.Z1
    return (pe.FQ(int(pt.x)), pe.FQ(int(pt.y)), pe.FQ(1))


def pe_verify_dealing(dealing, pks, ctx, rpk) -> bool:
    """The same verification as pvss.scrape.verify_dealing, written plainly on py_ecc."""
    keys = ([rpk] if rpk else []) + list(pks)
    e = compute_dealing_challenge(dealing, pks, ctx, rpk)  # hashing is not the group work timed
    for i in range(dealing.n_points):
        lhs = pe.add(pe.multiply(pe.G1, dealing.z[i]), pe.multiply(to_pe(dealing.v[i]), e))
        if not pe.eq(lhs, to_pe(dealing.a1[i])):
            return False
        lhs = pe.add(
            pe.multiply(to_pe(keys[i]), dealing.z[i]), pe.multiply(to_pe(dealing.s_hat[i]), e)
        )
        if not pe.eq(lhs, to_pe(dealing.a2[i])):
            return False
    n, t = dealing.n_points, dealing.threshold
    c = dual_codeword(n, t, compute_rs_weights(e, n - t - 1))
    acc = pe.Z1
    for ck, vk in zip(c, dealing.v, strict=False):
        acc = pe.add(acc, pe.multiply(to_pe(vk), ck))
    return pe.is_inf(acc)


def pe_deal(pks, t: int, rng: random.Random) -> None:
    """The dealer's group work on py_ecc: v, s_hat, a1, a2 for every point."""
    coeffs = [rng.randrange(R) for _ in range(t + 1)]
    for k, pk in enumerate(pks, start=1):
        p_k = sum(c * k**j for j, c in enumerate(coeffs)) % R
        w = rng.randrange(R)
        pe.multiply(pe.G1, p_k)
        pe.multiply(to_pe(pk), p_k)
        pe.multiply(pe.G1, w)
        pe.multiply(to_pe(pk), w)


def pe_verify_share(c: ShareClaim) -> bool:
    """The decrypted-share check (SPEC §4.5) on py_ecc: e from the transcript, then
    z*H + e*pk == A1 and z*S + e*s_hat == A2."""
    sh, pr = c.share, c.share.proof
    s_hat = c.dealing.s_hat[c.dealing.position(sh.index)]
    e = share_transcript(c.context, sh.index, c.pk, s_hat, sh.share).point(pr.a1).point(pr.a2)
    e = e.challenge()
    z = pr.response
    a1 = pe.add(pe.multiply(to_pe(H), z), pe.multiply(to_pe(c.pk), e))
    a2 = pe.add(pe.multiply(to_pe(sh.share), z), pe.multiply(to_pe(s_hat), e))
    return pe.eq(a1, to_pe(pr.a1)) and pe.eq(a2, to_pe(pr.a2))


def record(
    bench: str, params: dict, ours: float, base: float, baseline: str = "py_ecc", **extra
) -> None:
    emit(
        {
            "bench": bench,
            "params": params,
            "ours_s": ours,
            "baseline": baseline,
            "baseline_s": base,
            "speedup": base / ours,
            **extra,
        }
    )


def share_post_rows(reps: int, sizes: tuple[int, ...] = (22, 220)) -> None:
    """Aggregated share posts (one DLEQ per post, SPEC.md §4.5) against today's
    commitment-form batch (one DLEQ per share, ``is_valid_share_batch``) on the same
    shares, timed alternately: a committee of m = 10 (t = 4), each member posting its
    shares of ``size`` dealings (22 and 220: n = 10 and n = 100 clients with 2 dealings
    each on average). Rows per share: one post (the board's check of a post) and all
    m posts at once (the aggregator's and the verifier's check)."""
    m, t = 10, 4
    keys = [KeyPair.generate() for _ in range(m)]
    pks = [k.pk for k in keys]
    recipient = KeyPair.generate().pk
    items = []
    for d in range(max(sizes)):
        ctx = Context(31337, b"\x01" * 20, 1, d + 1, 1 if d % 2 else 0, d + 2 if d % 2 else 0)
        items.append((deal(pks, t, ctx, recipient if d % 2 else None)[0], ctx))
    for size in sizes:
        its = items[:size]
        posts = [
            share_post_claim(decrypt_share_post(k, keys[k - 1], its), pks[k - 1], its)
            for k in range(1, m + 1)
        ]
        olds = [
            [ShareClaim(decrypt_share(d, k, keys[k - 1], c), d, pks[k - 1], c) for d, c in its]
            for k in range(1, m + 1)
        ]
        flat = [c for per in olds for c in per]
        assert is_valid_share_post_batch(posts) and is_valid_share_batch(flat)
        for label, new, old, count in (
            ("one post", posts[:1], olds[0], size),
            ("all posts", posts, flat, size * m),
        ):
            ours, base = paired_medians(
                lambda new=new: is_valid_share_post_batch(new),
                lambda old=old: is_valid_share_batch(old),
                reps,
            )
            record(
                "verify_share_post_batched",
                {"m": m, "post": size, "posts": len(new)},
                ours / count,
                base / count,
                baseline="ours_share_batch",
                target_speedup=2,
                note=f"seconds per share, {label}; baseline: the same shares each with "
                "its own DLEQ in one commitment-form batch",
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, m = 8 for PVSS")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--only", choices=["share_post"], help="run only these rows")
    args = ap.parse_args()
    reps = args.repeats or (3 if args.quick else 7)
    if args.only == "share_post":
        share_post_rows(reps)
        return
    rng = random.Random(1)
    p = G * rng.randrange(1, R)
    ks = [rng.randrange(R) for _ in range(8)]
    it = iter(ks * 1000)

    ours, base = paired_medians(
        lambda: p * next(it), lambda: pe.multiply(to_pe(p), next(it)), reps, 20, 2
    )
    record("var_base_mul", {}, ours, base, target_speedup=20)

    g_table()  # built once per process (~0.1 s), not part of a multiplication
    ours, base = paired_medians(
        lambda: g_table().mul(next(it)), lambda: pe.multiply(pe.G1, next(it)), reps, 50, 2
    )
    record("fixed_base_mul", {"window": g_table().window}, ours, base, target_speedup=60)

    key_table = table_for(p)
    ours = median_seconds(lambda: key_table.mul(next(it)), reps, 50)
    record("key_table_mul", {"window": key_table.window}, ours, base)

    n = 64
    pts = [G * rng.randrange(1, R) for _ in range(n)]
    scal = [rng.randrange(R) for _ in range(n)]
    pe_pts = [to_pe(q) for q in pts]

    def pe_msm() -> None:
        acc = pe.Z1
        for q, k in zip(pe_pts, scal, strict=False):
            acc = pe.add(acc, pe.multiply(q, k))

    ours, base = paired_medians(lambda: msm(pts, scal), pe_msm, max(3, reps // 2))
    record("msm", {"n": n}, ours, base)

    m = 8 if args.quick else 32
    t = m // 2 - 1
    keys = [KeyPair.generate() for _ in range(m)]
    pks = [k.pk for k in keys]
    ctx = Context(31337, b"\x01" * 20, 1, 1)
    deal(pks, t, ctx)  # builds the committee's key tables once (per committee, not per dealing)
    ours, base = paired_medians(lambda: deal(pks, t, ctx), lambda: pe_deal(pks, t, rng), 3)
    record("deal", {"m": m, "t": t}, ours, base)

    batch = [DealingClaim(deal(pks, t, ctx)[0], tuple(pks), ctx) for _ in range(10)]
    d0 = batch[0].dealing
    assert pe_verify_dealing(d0, pks, ctx, None)
    base = median_seconds(lambda: pe_verify_dealing(d0, pks, ctx, None), max(1, reps // 3))
    ours = median_seconds(lambda: verify_dealing(d0, pks, ctx), reps)
    record("verify_dealing_reference", {"m": m, "t": t}, ours, base)
    ours = median_seconds(lambda: is_valid_dealing_batch(batch[:1]), reps)
    record("verify_dealing_batched", {"m": m, "t": t, "batch": 1}, ours, base, target_speedup=100)
    ours = median_seconds(lambda: is_valid_dealing_batch(batch), reps) / len(batch)
    record(
        "verify_dealing_batched",
        {"m": m, "t": t, "batch": len(batch)},
        ours,
        base,
        target_speedup=100,
        note="seconds per dealing in a batch of 10",
    )

    # decrypted shares: one by one (reference) and in one batch (the board, aggregator)
    shares = []
    for j in range(10):
        dj = batch[j].dealing
        for k in range(1, t + 2):
            shares.append(ShareClaim(decrypt_share(dj, k, keys[k - 1], ctx), dj, pks[k - 1], ctx))
    c0 = shares[0]
    assert pe_verify_share(c0) and is_valid_share_batch(shares)
    base = median_seconds(lambda: pe_verify_share(c0), max(1, reps // 3))

    def one_by_one() -> None:
        for c in shares:
            verify_decrypted_share(c.share, c.dealing, c.pk, c.context)

    ours1, ours_b = paired_medians(one_by_one, lambda: is_valid_share_batch(shares), reps)
    ours1, ours_b = ours1 / len(shares), ours_b / len(shares)
    record("verify_decrypted_share", {"m": m}, ours1, base)
    record(
        "verify_decrypted_share_batched",
        {"m": m, "batch": len(shares)},
        ours_b,
        ours1,
        baseline="ours_one_by_one",
        note="seconds per share in the batch",
    )
    share_post_rows(reps)


if __name__ == "__main__":
    main()

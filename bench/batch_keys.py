"""Batch dealing verification with the keys a server's deal stage sees: fresh every round
(SPEC.md §4.4). Ours (``is_valid_dealing_batch``: each distinct key's one full-size
coefficient joins the Pippenger) against the same check computed the way it was before
(a window-8 fixed-base table built for every key not in the cache, then one
multiplication through it), in the same run, on a cold and on a warm table cache.

    .venv/bin/python bench/batch_keys.py [--n 100] [--repeats 3]

n clients, each posting K/2 = 7 pair dealings to a committee of m = 10 (t = 4), one
batch of 7n dealings: the distinct keys are the 10 members' and the n recipients'.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit  # noqa: E402

import pvss.group as grp  # noqa: E402
from pvss.keys import KeyPair  # noqa: E402
from pvss.scrape import DealingClaim, deal, is_valid_dealing_batch  # noqa: E402
from pvss.transcript import PURPOSE_PAIR, Context  # noqa: E402

M, T, PAIRS = 10, 4, 7


def claims_for(n: int) -> list[DealingClaim]:
    committee = tuple(KeyPair.generate().pk for _ in range(M))
    clients = [KeyPair.generate().pk for _ in range(n)]
    out = []
    for i in range(n):
        for j in range(1, PAIRS + 1):
            rec = clients[(i + j) % n]
            ctx = Context(31337, b"\x11" * 20, 1, i + 1, PURPOSE_PAIR, (i + j) % n + 1)
            dealing = deal(committee, T, ctx, recipient_pk=rec)[0]
            out.append(DealingClaim(dealing, committee, ctx, rec))
    return out


def with_key_tables(claims: list[DealingClaim]) -> bool:
    """The baseline: what the previous verifier added — a fixed-base table for every
    key missing from the cache, and one multiplication through each — on top of the
    batch check, whose Pippenger now also carries those keys' terms (n + 10 of its
    ~30 n points: the baseline is the previous time to within them)."""
    keys = {c.recipient_pk for c in claims} | {pk for c in claims for pk in c.committee_pks}
    # one table_for per key, as the previous verifier called it
    tables = [grp.table_for(k) for k in sorted(keys, key=lambda p: (int(p.x), int(p.y)))]
    # the table multiplications stand in for the key terms the Pippenger now takes
    grp.mul_each(tables, [3] * len(tables))
    return is_valid_dealing_batch(claims)


def timed(fn, claims: list[DealingClaim], cold: bool, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        if cold:
            grp._TABLE_CACHE.clear()
        t0 = time.perf_counter()
        assert fn(claims)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    claims = claims_for(args.n)
    is_valid_dealing_batch(claims[:3])  # JIT warm-up
    with_key_tables(claims[:3])
    for cache in ("cold", "warm"):
        cold = cache == "cold"
        base = timed(with_key_tables, claims, cold, args.repeats)
        ours = timed(is_valid_dealing_batch, claims, cold, args.repeats)
        emit(
            {
                "bench": "verify_dealing_batch_keys",
                "params": {"n": args.n, "m": M, "t": T, "dealings": len(claims), "cache": cache},
                "ours_s": ours,
                "baseline": "key terms through fixed-base tables (the previous verifier)",
                "baseline_s": base,
                "speedup": base / ours,
            }
        )


if __name__ == "__main__":
    main()

"""The ``pvss-secagg`` command line (SPEC.md §1.3).

Subcommands grow with the project; today: ``demo`` (a PVSS walk-through with timings).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _timed(label: str, fn: Callable[[], T], timings: dict[str, float]) -> T:
    t0 = time.perf_counter()
    out = fn()
    timings[label] = time.perf_counter() - t0
    return out


def run_pvss_demo(members: int, threshold: int, drop: int, seed: int | None, as_json: bool) -> int:
    """Deal one secret to a committee and a recipient, verify, decrypt with proofs, drop
    members, reconstruct, and show a tampered share being rejected."""
    import dataclasses

    from pvss.errors import InvalidProof
    from pvss.group import G
    from pvss.keys import KeyPair, prove_possession, verify_possession
    from pvss.scrape import (
        DealingClaim,
        deal,
        decrypt_share,
        is_valid_dealing_batch,
        reconstruct,
        recover_as_recipient,
        verify_dealing,
        verify_decrypted_share,
    )
    from pvss.transcript import PURPOSE_PAIR, Context

    if not 1 <= threshold < members:
        print(f"error: need 1 <= threshold < members, got t={threshold}, m={members}", file=sys.stderr)
        return 2
    if drop > members - threshold - 1:
        print(f"error: dropping {drop} of {members} leaves fewer than t+1={threshold + 1}", file=sys.stderr)
        return 2
    rng = random.Random(seed)
    say: Callable[[str], None] = (lambda _msg: None) if as_json else print
    timings: dict[str, float] = {}
    board = bytes(20)
    ctx = Context(chain_id=31337, board=board, round_id=1, dealer=1, purpose=PURPOSE_PAIR, partner=2)

    say(f"PVSS demo: committee m={members}, threshold t={threshold} (any {threshold + 1} reconstruct)")
    keys = _timed("keygen", lambda: [KeyPair.generate() for _ in range(members)], timings)
    recipient = KeyPair.generate()
    pops = _timed(
        "prove_possession",
        lambda: [prove_possession(k, 31337, board, i + 1) for i, k in enumerate(keys)],
        timings,
    )
    _timed(
        "verify_possession",
        lambda: [verify_possession(k.pk, p, 31337, board, i + 1) for i, (k, p) in enumerate(zip(keys, pops))],
        timings,
    )
    say(f"  registered {members} members, every proof of possession checked")
    pks = [k.pk for k in keys]
    _timed("deal_first", lambda: deal(pks, threshold, ctx, recipient.pk), timings)
    dealing, secret = _timed("deal", lambda: deal(pks, threshold, ctx, recipient.pk), timings)
    say(f"  dealt a secret to {members} members + recipient: {len(dealing.to_bytes())} bytes")
    _timed("verify_dealing_reference", lambda: verify_dealing(dealing, pks, ctx, recipient.pk), timings)
    claim = DealingClaim(dealing, tuple(pks), ctx, recipient.pk)
    ok = _timed("verify_dealing_batched", lambda: is_valid_dealing_batch([claim]), timings)
    say(f"  dealing verified (reference and batched verifier agree: {ok})")
    got = recover_as_recipient(dealing, recipient)
    say(f"  recipient decrypts the secret directly: {'matches' if got == secret else 'MISMATCH'}")
    present = sorted(rng.sample(range(1, members + 1), members - drop))
    shares = _timed(
        "decrypt_share_all",
        lambda: [decrypt_share(dealing, k, keys[k - 1], ctx) for k in present],
        timings,
    )
    _timed(
        "verify_decrypted_share_all",
        lambda: [verify_decrypted_share(s, dealing, pks[s.index - 1], ctx) for s in shares],
        timings,
    )
    say(f"  {drop} members dropped; {len(shares)} decrypted shares posted, every proof checked")
    rebuilt = _timed("reconstruct", lambda: reconstruct(shares, threshold), timings)
    say(f"  reconstructed from {threshold + 1} shares: {'matches' if rebuilt == secret else 'MISMATCH'}")
    bad = dataclasses.replace(shares[0], share=shares[0].share + G)
    try:
        verify_decrypted_share(bad, dealing, pks[bad.index - 1], ctx)
        rejected = False
        say("  tampered share ACCEPTED (this is a bug)")
    except InvalidProof as exc:
        rejected = True
        say(f"  tampered share rejected: InvalidProof({exc})")
    all_ok = ok and got == secret and rebuilt == secret and rejected
    if as_json:
        print(json.dumps({"ok": all_ok, "members": members, "threshold": threshold, "dropped": drop,
                          "seconds": timings}))
    else:
        say("  timings (seconds):")
        for label, secs in timings.items():
            say(f"    {label:<28} {secs:9.4f}")
        say("result: " + ("all checks passed" if all_ok else "FAILED"))
    return 0 if all_ok else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pvss-secagg`` console script."""
    ap = argparse.ArgumentParser(prog="pvss-secagg", description="Publicly verifiable secure aggregation")
    sub = ap.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="PVSS walk-through: deal, verify, decrypt, drop, reconstruct")
    demo.add_argument("--members", type=int, default=10)
    demo.add_argument("--threshold", type=int, default=4)
    demo.add_argument("--drop", type=int, default=5, help="members that vanish before decrypting")
    demo.add_argument("--seed", type=int, default=None)
    demo.add_argument("--json", action="store_true", help="print one JSON line instead of prose")
    args: Any = ap.parse_args(argv)
    if args.command == "demo":
        return run_pvss_demo(args.members, args.threshold, args.drop, args.seed, args.json)
    return 2


if __name__ == "__main__":
    sys.exit(main())

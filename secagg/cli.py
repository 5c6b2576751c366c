"""The ``pvss-secagg`` command line (SPEC.md §1.3).

Subcommands: ``demo`` (added by ``fl.cli``: federated training with verified secure
aggregation beside plain FedAvg, fl/demo.py), ``pvss-demo`` (a PVSS walk-through with
timings), ``simulate`` (a whole round with dropouts, timed per role and verified),
``verify DIR`` (public verification of a round directory; exit 0 if valid, 1 naming the
faulty party, 2 for unusable input).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
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
        print(
            f"error: need 1 <= threshold < members, got t={threshold}, m={members}", file=sys.stderr
        )
        return 2
    if drop > members - threshold - 1:
        print(
            f"error: dropping {drop} of {members} leaves fewer than t+1={threshold + 1}",
            file=sys.stderr,
        )
        return 2
    rng = random.Random(seed)
    say: Callable[[str], None] = (lambda _msg: None) if as_json else print
    timings: dict[str, float] = {}
    board = bytes(20)
    ctx = Context(
        chain_id=31337, board=board, round_id=1, dealer=1, purpose=PURPOSE_PAIR, partner=2
    )

    say(
        f"PVSS demo: committee m={members}, threshold t={threshold} "
        f"(any {threshold + 1} reconstruct)"
    )
    keys = _timed("keygen", lambda: [KeyPair.generate() for _ in range(members)], timings)
    recipient = KeyPair.generate()
    pops = _timed(
        "prove_possession",
        lambda: [prove_possession(k, 31337, board, 1, i + 1) for i, k in enumerate(keys)],
        timings,
    )
    _timed(
        "verify_possession",
        lambda: [
            verify_possession(k.pk, p, 31337, board, 1, i + 1)
            for i, (k, p) in enumerate(zip(keys, pops, strict=False))
        ],
        timings,
    )
    say(f"  registered {members} members, every proof of possession checked")
    pks = [k.pk for k in keys]
    _timed("deal_first", lambda: deal(pks, threshold, ctx, recipient.pk), timings)
    dealing, secret = _timed("deal", lambda: deal(pks, threshold, ctx, recipient.pk), timings)
    say(f"  dealt a secret to {members} members + recipient: {len(dealing.to_bytes())} bytes")
    _timed(
        "verify_dealing_reference", lambda: verify_dealing(dealing, pks, ctx, recipient.pk), timings
    )
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
    say(
        f"  reconstructed from {threshold + 1} shares: "
        f"{'matches' if rebuilt == secret else 'MISMATCH'}"
    )
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
        print(
            json.dumps(
                {
                    "ok": all_ok,
                    "members": members,
                    "threshold": threshold,
                    "dropped": drop,
                    "seconds": timings,
                }
            )
        )
    else:
        say("  timings (seconds):")
        for label, secs in timings.items():
            say(f"    {label:<28} {secs:9.4f}")
        say("result: " + ("all checks passed" if all_ok else "FAILED"))
    return 0 if all_ok else 1


# SimParams / RoundConfig field names -> the simulate flags a user typed
_SIM_FLAGS = {
    "committee_dropout": "--committee-dropout",
    "dropout_phase": "--dropout-phase",
    "quant_bits": "--quant-bits",
    "max_weight": "--max-weight",
    "n_clients": "--clients",
    "committee_size": "--committee",
    "min_included": "min_included",
    "dp": "--dp-epsilon",
    "overflow": "--clients/--max-weight/--quant-bits/--bits (overflow)",
}


def _flag_error(exc: BaseException) -> str:
    """One line naming the flag: ``--threshold: ...`` for ``threshold: ...``."""
    text = " ".join(str(exc).split())
    name, sep, rest = text.partition(": ")
    if sep and re.fullmatch(r"[a-z_]+", name):
        flag = _SIM_FLAGS.get(name, "--" + name.replace("_", "-"))
        text = f"{flag}: {rest}"
    return text


def run_simulate(args: Any) -> int:
    """``pvss-secagg simulate``: one round, JSON line last when --json. Impossible
    parameters: one line naming the flag, exit 2; a round that fails: one line, exit 1
    (its temporary round directory removed)."""
    from secagg.errors import ConfigError, PvssError
    from secagg.simulate import SimParams, simulate

    if args.board not in ("memory", "evm", "anvil") and not args.board.startswith("rpc:"):
        print(f"error: --board {args.board} is not memory, evm, anvil or rpc:URL", file=sys.stderr)
        return 2
    try:
        params = SimParams(
            clients=args.clients,
            committee=args.committee,
            threshold=args.threshold,
            dim=args.dim,
            dropout=args.dropout,
            dropout_phase=args.dropout_phase,
            committee_dropout=args.committee_dropout,
            graph=args.graph,
            quant_bits=args.quant_bits,
            bits=args.bits,
            clip=args.clip,
            max_weight=args.max_weight,
            seed=args.seed,
            backend=args.backend,
            board=args.board,
            dp_epsilon=args.dp_epsilon,
            dp_delta=args.dp_delta,
            dp_rounds=args.dp_rounds,
            dp_mechanism=args.dp_mechanism,
            keep_chain=args.keep_chain,
        )
        params.round_config()
    except ConfigError as exc:
        print(f"error: {_flag_error(exc)}", file=sys.stderr)
        return 2
    try:
        res = simulate(params, Path(args.out) if args.out else None, progress=not args.json)
    except ConfigError as exc:
        print(f"error: {_flag_error(exc)}", file=sys.stderr)
        return 2
    except PvssError as exc:
        print(f"error: the round failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if args.json:
        print(res.to_json())
    else:
        print(
            f"round: n={args.clients} m={args.committee} t={args.threshold} d={args.dim} "
            f"graph={args.graph} bits={res.params['bits']}"
        )
        print(f"  included {res.included} clients; verified by a third party: {res.verified}")
        print(
            f"  max |error| vs plaintext weighted mean: {res.max_abs_error:.3g} "
            f"(bound {res.error_bound:.3g})"
        )
        for role, secs in res.seconds.items():
            print(f"  {role:<16} {secs:9.4f} s")
        print(
            f"  bytes sent per client: {res.bytes_per_client:,.0f} "
            f"(masked vector {res.masked_bytes_per_client:,.0f})"
        )
        print(f"  round directory: {res.params['out']}")
        if res.contract is not None:
            print(f"  round contract: {res.contract} on {res.rpc or 'the in-process chain'}")
        if res.anvil_pid is not None:
            print(f"  anvil left running: pid {res.anvil_pid} (stop it when done)")
        if res.dp is not None:
            print("  differential privacy: " + ", ".join(f"{k}={v}" for k, v in res.dp.items()))
        for f in res.findings:
            print(f"  finding: {f}")
    ok = res.verified and res.max_abs_error <= res.error_bound
    return 0 if ok else 1


def run_verify(
    round_dir: str | None,
    as_json: bool,
    head: str | None = None,
    trust_chain_proofs: bool = False,
    *,
    rpc: str | None = None,
    contract: str | None = None,
    blobs_dir: str | None = None,
) -> int:
    """``pvss-secagg verify DIR [--head HEX [--trust-chain-proofs]]``, or from the chain
    (SPEC.md §7.6): ``verify --rpc URL --contract ADDR [--blobs DIR]`` rebuilds the
    round from the contract's logs with the head read from the contract, and
    ``verify DIR --rpc URL --contract ADDR`` also checks DIR against that chain."""
    from secagg.blobs import open_blob_store
    from secagg.errors import PvssError
    from secagg.verifier import chain_transcript, compare_transcripts, load_round, verify_round

    if (rpc is None) != (contract is None):
        print("error: --rpc and --contract go together", file=sys.stderr)
        return 2
    if round_dir is None and rpc is None:
        print("error: give a round directory, or --rpc URL --contract ADDR", file=sys.stderr)
        return 2
    if rpc is not None and head is not None:
        print("error: --head with --rpc: the head is read from the contract", file=sys.stderr)
        return 2
    local = blobs = None
    if round_dir is not None:
        try:
            local, blobs = load_round(Path(round_dir))
        except (PvssError, OSError, ValueError) as exc:  # unreadable input: exit 2
            print(f"error: {round_dir}: {exc}", file=sys.stderr)
            return 2
    if blobs_dir is not None:
        if not blobs_dir.startswith("ipfs:") and not Path(blobs_dir).is_dir():
            print(f"error: --blobs {blobs_dir}: not a directory", file=sys.stderr)
            return 2
        try:
            blobs = open_blob_store(blobs_dir)
        except PvssError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        expected = bytes.fromhex(head.removeprefix("0x")) if head else None
        if expected is not None and len(expected) != 32:
            raise ValueError
    except ValueError:
        print("error: --head must be 64 hex digits", file=sys.stderr)
        return 2
    transcript = local
    task_keys = None
    if rpc is not None:
        url = rpc if rpc.startswith("rpc:") else "rpc:" + rpc
        try:
            transcript, expected, mode, task_keys = _chain_transcript(
                chain_transcript, url, contract, local
            )
        except PvssError as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        if trust_chain_proofs and mode != "full":
            print(
                "error: --trust-chain-proofs: an optimistic round contract does not verify "
                "proofs on-chain",
                file=sys.stderr,
            )
            return 2
    elif trust_chain_proofs and expected is None:
        print("error: --trust-chain-proofs needs --head (read from that chain)", file=sys.stderr)
        return 2
    assert transcript is not None
    report = verify_round(
        transcript, blobs, expected, trust_chain_proofs=trust_chain_proofs, task_keys=task_keys
    )
    if rpc is not None and local is not None:
        diff = compare_transcripts(local, transcript)
        report.check("the round directory is the chain's transcript", diff is None, diff)
    if as_json:
        print(
            json.dumps(
                {
                    "verified": report.ok,
                    "sum_checked": report.sum_checked,
                    "included": list(report.included),
                    "checks": [{"check": name, "passed": ok} for name, ok in report.checks],
                    "faults": [
                        {"party": f.party, "rule": f.rule, "detail": f.detail}
                        for f in report.findings
                    ],
                    "dp": report.dp,
                    **(
                        {"contract": contract, "head": expected.hex()}
                        if rpc is not None and expected is not None
                        else {}
                    ),
                }
            )
        )
    else:
        if rpc is not None and expected is not None:
            print(f"round contract {contract}: head {expected.hex()} (read from the chain)")
        for name, ok in report.checks:
            print(f"[{'ok' if ok else 'FAIL'}] {name}")
        for f in report.findings:
            print(f"faulty party: {f}")
        if report.dp is not None:
            print("differential privacy: " + ", ".join(f"{k}={v}" for k, v in report.dp.items()))
        if report.ok and not report.sum_checked:
            print("round verified, except the sum: not recomputed (give --blobs DIR)")
        else:
            print("round verified" if report.ok else "round NOT verified")
    if report.unusable:
        return 2
    return 0 if report.ok else 1


def _chain_transcript(
    read: Any, url: str, contract: str, local: Any
) -> tuple[Any, bytes, str, Any]:
    """``read(url, contract)``; a DP round's config (the chain holds its dp record as a
    hash only) is taken from the local round directory when one is given."""
    from secagg import codec
    from secagg.config import RoundConfig
    from secagg.errors import ConfigError, InvalidEncoding, ProtocolError

    try:
        return read(url, contract)
    except ProtocolError as exc:
        if local is None or "dp record" not in str(exc):
            raise
    try:
        config = codec.decode(local.events[0].body, RoundConfig)
    except (InvalidEncoding, ConfigError) as exc:
        raise ProtocolError(f"the round directory's config does not decode: {exc}") from None
    return read(url, contract, config)


def run_payouts(rpc: str | Any, task_address: str, round_id: int | None, as_json: bool) -> int:
    """``pvss-secagg payouts --rpc URL --task ADDR [--round R] [--json]`` (SPEC.md §7.9):
    the task's pool, and per round its rewards, settlement, slashed stakes and forfeited
    bonds (collected into the pool, still due), credits per identity (the
    task's ``Credited`` logs) and every seat's reputation counters read from the round
    contract. ``rpc`` may also be a Web3 object (tests)."""
    from secagg.boards.task import EvmTask
    from secagg.errors import PvssError

    try:
        if isinstance(rpc, str):
            url = rpc if rpc.startswith(("rpc:", "http://", "https://")) else "rpc:" + rpc
            from secagg.boards.evm import connect

            provider: Any = connect(url)[0]
        else:
            provider = rpc
        task = EvmTask.attach(provider, task_address)
        last = task.last_round
        if round_id is not None and not 1 <= round_id <= last:
            print(f"error: --round {round_id}: the task opened rounds 1..{last}", file=sys.stderr)
            return 2
        ids = [round_id] if round_id is not None else list(range(1, last + 1))
        rounds = []
        for rid in ids:
            rnd = task.round_contract(rid)
            rounds.append(
                {
                    "round": rid,
                    "address": rnd.address,
                    "result_posted": bool(rnd.functions.resultPosted().call()),
                    "payout": task.payout(rid),
                    "forfeits": task.forfeits(rid),
                    "credits": task.credits(rid),
                    "reputation": task.reputations(rid),
                }
            )
    except (PvssError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    out = {"task": task.address, "pool": task.pool_state(), "rounds": rounds}
    if as_json:
        print(json.dumps(out))
        return 0
    p = out["pool"]
    print(
        f"task {task.address}: funded {p['funded']} wei, slashed {p['slashed']}, "
        f"pool {p['pool']}, "
        f"credited {p['credited']}, balance {p['balance']}"
    )
    for r in rounds:
        pay = r["payout"]
        state = "settled" if pay["done"] else ("settling" if pay["started"] else "not settled")
        print(
            f"round {r['round']} {r['address']}: result "
            f"{'posted' if r['result_posted'] else 'not posted'}, {state}; rewards "
            f"{pay['per_client']} per client, {pay['per_share']} per share; owed "
            f"{pay['owed']}, reserved {pay['reserved']}, paid {pay['paid']}; forfeits "
            f"collected {r['forfeits']['collected']}, due {r['forfeits']['due']}"
        )
        for c in r["credits"]:
            print(
                f"  credit {c['role']} {c['party']} {c['identity']}: {c['amount']} wei "
                f"({c['units']} {'share(s)' if c['role'] == 'member' else 'included'})"
            )
        for q in r["reputation"]:
            inc = "" if "included" not in q else f", included {q['included']}"
            print(
                f"  reputation {q['role']} {q['party']} {q['identity']}: dealings "
                f"{q['valid_dealings']}, shares {q['valid_shares']}, faults {q['faults']}{inc}"
            )
    return 0


# (name, help, add_arguments(parser), run(args) -> exit code): commands that layers above
# secagg add (``fl.cli`` adds ``demo``), so imports keep pointing one way (SPEC.md §1.3)
Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[Any], int]]


def main(argv: list[str] | None = None, *, commands: tuple[Command, ...] = ()) -> int:
    """The ``pvss-secagg`` command line; ``commands`` are added by the layers above."""
    ap = argparse.ArgumentParser(
        prog="pvss-secagg", description="Publicly verifiable secure aggregation"
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for name, help_, add_arguments, _ in commands:
        add_arguments(
            sub.add_parser(name, help=help_, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        )

    pvss_demo = sub.add_parser(
        "pvss-demo",
        help="PVSS walk-through: deal, verify, decrypt, drop, reconstruct",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    pvss_demo.add_argument("--members", type=int, default=10, help="committee size m")
    pvss_demo.add_argument(
        "--threshold", type=int, default=4, help="t: any t+1 members reconstruct"
    )
    pvss_demo.add_argument(
        "--drop", type=int, default=5, help="members that vanish before decrypting"
    )
    pvss_demo.add_argument(
        "--seed", type=int, default=None, help="seeds the secret (none: fresh randomness)"
    )
    pvss_demo.add_argument(
        "--json", action="store_true", help="print one JSON line instead of prose"
    )

    fmt = argparse.ArgumentDefaultsHelpFormatter
    sim = sub.add_parser(
        "simulate", help="run one secure-aggregation round and verify it", formatter_class=fmt
    )
    sim.add_argument("--clients", type=int, default=10, help="n: clients in the round")
    sim.add_argument("--committee", type=int, default=5, help="m: committee members")
    sim.add_argument(
        "--threshold",
        type=int,
        default=2,
        help="t: any t+1 members reconstruct, t learn nothing (2t < m)",
    )
    sim.add_argument("--dim", type=int, default=1000, help="d: coordinates per update")
    sim.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        help="fraction of clients that drop (the rest must reach min_included = n//3 + 2)",
    )
    sim.add_argument(
        "--dropout-phase",
        default="upload",
        choices=["deal", "upload", "unmask", "mixed"],
        help="when the dropped clients vanish",
    )
    sim.add_argument(
        "--committee-dropout",
        type=int,
        default=0,
        help="members that never reveal (at most m - t - 1)",
    )
    sim.add_argument("--graph", default="complete", help="mask graph: complete | regular:K")
    sim.add_argument(
        "--board",
        default="memory",
        help="memory, evm (embedded py-evm chain), anvil (local node) or rpc:URL",
    )
    sim.add_argument("--quant-bits", type=int, default=16, help="q: quantization bits")
    sim.add_argument(
        "--bits", type=int, default=None, help="modulus bits (None: the smallest safe)"
    )
    sim.add_argument("--clip", type=float, default=1.0, help="clip updates to [-c, c]")
    sim.add_argument("--max-weight", type=int, default=10, help="W: the largest client weight")
    sim.add_argument(
        "--backend", default=None, help="masking backend: reference | numba | cupy (None: best)"
    )
    sim.add_argument("--seed", type=int, default=0, help="seeds updates, weights, dropouts")
    sim.add_argument(
        "--out",
        default=None,
        help="round directory (transcript.msgpack, blobs/); None: a temporary directory",
    )
    sim.add_argument(
        "--dp-epsilon",
        type=float,
        default=None,
        help="distributed DP (SPEC.md §10): epsilon of the whole run; --clip is then the L2 "
        "clip and the noise is calibrated for min_included clients (None: no DP)",
    )
    sim.add_argument("--dp-delta", type=float, default=1e-5, help="DP delta of the whole run")
    sim.add_argument("--dp-rounds", type=int, default=1, help="rounds the DP promise covers")
    sim.add_argument(
        "--dp-mechanism", default="ddg", choices=["ddg", "skellam"], help="DP noise mechanism"
    )
    sim.add_argument(
        "--keep-chain",
        action="store_true",
        help="--board anvil: leave anvil running after the round (its pid is printed, "
        "with the rpc URL and the contract) to verify from the chain; stop it yourself",
    )
    sim.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line last (chain boards: with rpc and contract)",
    )

    ver = sub.add_parser(
        "verify", help="verify a round directory; exit 0 iff valid", formatter_class=fmt
    )
    ver.add_argument(
        "round_dir",
        nargs="?",
        default=None,
        help="directory with transcript.msgpack and blobs/ (with --rpc: checked against "
        "the chain; None: the round is read from the chain alone)",
    )
    ver.add_argument(
        "--rpc", default=None, help="JSON-RPC URL of the chain that holds the round contract"
    )
    ver.add_argument(
        "--contract",
        default=None,
        help="the round contract's address: the round is rebuilt from its logs, the head "
        "read from it (SPEC.md §7.6)",
    )
    ver.add_argument(
        "--blobs",
        default=None,
        help="where the masked vectors are, named by CID (SPEC.md §6.6): a directory "
        "(blobs/), or ipfs:URL for a kubo node's RPC API (e.g. ipfs:http://127.0.0.1:5001); "
        "None: the round directory's, or the sum is not recomputed",
    )
    ver.add_argument("--json", action="store_true", help="print one JSON object")
    ver.add_argument(
        "--head",
        default=None,
        help="expected head hash (hex) from a trusted source (None: the transcript's own)",
    )
    ver.add_argument(
        "--trust-chain-proofs",
        action="store_true",
        help="events come from a full-mode round contract that verified every proof "
        "on-chain: re-check the rules and the sum, not the proofs (needs --head)",
    )

    pay = sub.add_parser(
        "payouts",
        help="a task's reward pool, its rounds' credits and reputation counters (chain)",
        formatter_class=fmt,
    )
    pay.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain")
    pay.add_argument("--task", required=True, help="the PvssTask contract's address")
    pay.add_argument(
        "--round", type=int, default=None, help="only this round id (None: every round)"
    )
    pay.add_argument("--json", action="store_true", help="print one JSON object")

    args: Any = ap.parse_args(argv)
    for name, _, _, run in commands:
        if args.command == name:
            return run(args)
    if args.command == "pvss-demo":
        return run_pvss_demo(args.members, args.threshold, args.drop, args.seed, args.json)
    if args.command == "simulate":
        return run_simulate(args)
    if args.command == "payouts":
        return run_payouts(args.rpc, args.task, args.round, args.json)
    if args.command == "verify":
        return run_verify(
            args.round_dir,
            args.json,
            args.head,
            args.trust_chain_proofs,
            rpc=args.rpc,
            contract=args.contract,
            blobs_dir=args.blobs,
        )
    return 2


if __name__ == "__main__":
    sys.exit(main())

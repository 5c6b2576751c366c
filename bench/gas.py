"""Gas of every PvssRound operation (contracts/src/PvssRound.sol) on the embedded py-evm
chain (Prague rules; EIP-1108 precompile prices, EIP-7623 calldata floor).

One JSON line per operation in bench/results/gas.jsonl:

    op         deploy | register_client | register_member | seed_reveal |
               dealing_full | dealing_optimistic | challenge_invalid | challenge_valid |
               masked_input | close | confirm | share_first | share | result
    m          committee size
    recipient  whether the dealing has a recipient point (pair dealing), else null
    gas        gasUsed of the transaction (what the relayer pays)
    exec       gas minus the intrinsic cost (21000 + 16/4 per calldata byte): the
               contract's execution
    items      items in the transaction (per-item gas = gas / items where it applies)

Every post is signed by its seat's identity and carries its view (SPEC.md §6.9): each
row includes the ecrecover (3 000), the signature and view calldata (97 bytes) and the
hash-chain update (one SSTORE of the head, one of the sequence number). Proof checks
run in the shared PvssVerifier (one external call per proof).

Dealing rows isolate one dealing with n = 3 clients (complete graph): client 2 posts
self + 1 pair dealing, client 1 self + 2 pair dealings (client 3, first, pays the
one-time committee-key hash); the pair dealing (with recipient) is the difference of
those two posts, the self dealing (no recipient) client 2's post minus one pair
dealing, so each row includes its share of the transaction base cost. Gas-only lines:
no time is measured, so the shared ours_s/baseline fields are absent.
For scale, ETHDKG's published post-Istanbul figures:
share distribution ~1.50 M gas at n = 256, dispute ~2.36 M, key-share submission 237 k.

    .venv/bin/python bench/gas.py [--m 4 8 16 32]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.evm_round: every seat signs its own posts

from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF  # noqa: E402
from secagg.boards.evm import EvmBoard  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Confirmation,
    DealingItem,
    DealingsPost,
)
from tests.evm_round import ChainRound  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "gas.jsonl"


def _intrinsic(data: bytes) -> int:
    zeros = data.count(0)
    return 21000 + 4 * zeros + 16 * (len(data) - zeros)


def _round(m: int, **kw: object) -> ChainRound:
    return ChainRound.create(
        n=3,
        m=m,
        t=(m - 1) // 2,
        dim=16,
        register=m + 6,
        deal_blocks=m + 12,
        unmask_blocks=2 * m + 4,
        **kw,
    )


class Meter:
    def __init__(self, board: EvmBoard) -> None:
        self.board = board
        self.seen = 0

    def last(self) -> tuple[int, int]:
        """(gas, exec) of the last transaction."""
        w3 = self.board.w3
        block = w3.eth.get_block("latest", full_transactions=True)
        tx = block["transactions"][-1]
        receipt = w3.eth.get_transaction_receipt(tx["hash"])
        gas = int(receipt["gasUsed"])
        return gas, gas - _intrinsic(bytes(tx.get("input", tx.get("data", b""))))


def run(m: int, rows: list[dict]) -> None:
    def row(op: str, gas_exec: tuple[int, int], recipient: bool | None = None, items: int = 1):  # noqa: ANN202
        gas, exe = gas_exec
        rows.append(
            {"op": op, "m": m, "recipient": recipient, "gas": gas, "exec": exe, "items": items}
        )
        print(json.dumps(rows[-1]))

    # full mode: the whole round
    rnd = _round(m)
    board = rnd.board
    meter = Meter(board)
    row("deploy", (board.gas[-1][1], board.gas[-1][1]))
    for i in (1, 2, 3):
        rnd.post(ROLE_CLIENT, i, rnd.registration(ROLE_CLIENT, i))
    row("register_client", meter.last())
    for k in range(1, m + 1):
        rnd.post(ROLE_MEMBER, k, rnd.registration(ROLE_MEMBER, k))
    row("register_member", meter.last())
    rnd.to("deal")
    for k in range(1, m + 1):
        rnd.post(ROLE_MEMBER, k, rnd.seed_reveal(k))
        if k == 1:
            row("seed_reveal", meter.last())
    row("seed_reveal_last", meter.last())  # the m-th reveal also fixes the round seed
    rnd.post(ROLE_CLIENT, 3, rnd.dealings(3))  # self only; pays the committee-key hash
    rnd.post(ROLE_CLIENT, 2, rnd.dealings(2))  # self + pair(3)
    g2 = meter.last()
    rnd.post(ROLE_CLIENT, 1, rnd.dealings(1))  # self + pair(2) + pair(3)
    g1 = meter.last()
    pair = (g1[0] - g2[0], g1[1] - g2[1])
    row("dealing_full", (g2[0] - pair[0], g2[1] - pair[1]), False)
    row("dealing_full", pair, True)
    row("dealings_post_3", g1, None, 3)  # the whole post of client 1 (3 dealings)
    rnd.upload_all()
    row("masked_input", meter.last())
    rnd.to("unmask")
    board.transact("anyone", "close")
    row("close", meter.last())
    for k in range(1, m + 1):
        rnd.post(ROLE_MEMBER, k, Confirmation(k, board.view()))
    row("confirm", meter.last())
    for k in range(1, m + 1):
        post = rnd.shares(k)
        rnd.post(ROLE_MEMBER, k, post)
        items = len(post.items)
        g, e = meter.last()
        if k in (1, m):  # first share of a dealing vs a later one
            row("share_first" if k == 1 else "share", (g // items, e // items), None, items)
    rnd.to("result")
    rnd.post(ROLE_AGGREGATOR, 0, rnd.result())
    row("result", meter.last())

    # optimistic mode: dealings and challenges
    rnd = _round(m, mode="optimistic", challenge_blocks=6)
    ob = rnd.board
    meter = Meter(ob)
    rnd.register_all().reveal_all()
    rnd.post(ROLE_CLIENT, 3, rnd.dealings(3))
    rnd.post(ROLE_CLIENT, 2, rnd.dealings(2))
    g2 = meter.last()
    post = rnd.dealings(1)
    raw = post.items[1].dealing
    bad = raw[:-1] + bytes([raw[-1] ^ 1])  # last z changed
    items = (post.items[0], DealingItem(PURPOSE_PAIR, 2, bad), post.items[2])
    rnd.post(ROLE_CLIENT, 1, DealingsPost(1, items))
    g1 = meter.last()
    pair = (g1[0] - g2[0], g1[1] - g2[1])
    row("dealing_optimistic", (g2[0] - pair[0], g2[1] - pair[1]), False)
    row("dealing_optimistic", pair, True)
    ob.account("challenger")
    assert ob.challenge((2, PURPOSE_SELF, 0)) is False
    row("challenge_valid", meter.last(), False)
    assert ob.challenge((1, PURPOSE_PAIR, 2)) is True
    row("challenge_invalid", meter.last(), True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows: list[dict] = []
    for m in args.m:
        run(m, rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

"""Gas of every PvssRound operation (contracts/src/PvssRound.sol) on the embedded py-evm
chain (Prague rules; EIP-1108 precompile prices, EIP-7623 calldata floor).

One JSON line per operation in bench/results/gas.jsonl:

    op         register_client | register_member | dealing_full | dealing_optimistic |
               challenge_invalid | challenge_valid | masked_input | close | share |
               result
    m          committee size
    recipient  whether the dealing has a recipient point (pair dealing), else null
    gas        gasUsed of the transaction (what the sender pays)
    exec       gas minus the intrinsic cost (21000 + 16/4 per calldata byte): the
               contract's execution
    items      items in the transaction (per-item gas = gas / items where it applies)

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
from pathlib import Path

import numpy as np

from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF
from secagg.blobs import BlobStore
from secagg.boards.evm import EvmBoard
from secagg.config import RoundConfig
from secagg.messages import ROLE_CLIENT, DealingItem, DealingsPost
from secagg.roles import Aggregator, Client, CommitteeMember

OUT = Path(__file__).resolve().parent / "results" / "gas.jsonl"


def _intrinsic(data: bytes) -> int:
    zeros = data.count(0)
    return 21000 + 4 * zeros + 16 * (len(data) - zeros)


def _config(m: int) -> RoundConfig:
    return RoundConfig(
        chain_id=1,
        board=bytes(20),
        round_id=1,
        n_clients=3,
        committee_size=m,
        threshold=(m - 1) // 2,
        dim=16,
        quant_bits=8,
        bits=16,
        max_weight=1,
        register_blocks=m + 6,
        deal_blocks=12,
        upload_blocks=6,
        unmask_blocks=m + 4,
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
    board = EvmBoard(_config(m))
    meter = Meter(board)
    cfg = board.config
    rng = np.random.default_rng(0)
    clients = [Client(cfg, i, rng.uniform(-1, 1, cfg.dim), 1) for i in (1, 2, 3)]
    members = [CommitteeMember(cfg, k) for k in range(1, m + 1)]
    for c in clients:
        c.register(board)
    row("register_client", meter.last())
    for mb in members:
        mb.register(board)
    row("register_member", meter.last())
    board.advance(cfg.register_blocks - board.height())
    clients[2].deal(board)  # self dealing only; pays the committee-key hash once
    clients[1].deal(board)  # self + pair(3)
    g2 = meter.last()
    clients[0].deal(board)  # self + pair(2) + pair(3)
    g1 = meter.last()
    pair = (g1[0] - g2[0], g1[1] - g2[1])
    row("dealing_full", (g2[0] - pair[0], g2[1] - pair[1]), False)
    row("dealing_full", pair, True)
    board.advance(cfg.register_blocks + cfg.deal_blocks - board.height())
    blobs = BlobStore(Path("/tmp") / f"pvss-secagg-gas-{m}")
    for c in clients:
        c.upload(board, blobs)
    row("masked_input", meter.last())
    board.advance(cfg.register_blocks + cfg.deal_blocks + cfg.upload_blocks - board.height())
    board.transact("anyone", "close")
    row("close", meter.last())
    for k, mb in enumerate(members):
        mb.reveal(board)
        items = len(board.allowed_shares())
        g, e = meter.last()
        if k in (0, len(members) - 1):  # first share of a dealing vs a later one
            row("share_first" if k == 0 else "share", (g // items, e // items), None, items)
    end = cfg.register_blocks + cfg.deal_blocks + cfg.upload_blocks + cfg.unmask_blocks
    board.advance(end - board.height())
    Aggregator(cfg).aggregate(board, blobs)
    row("result", meter.last())

    # optimistic mode: dealings and challenges
    ob = EvmBoard(_config(m), mode="optimistic", challenge_blocks=6)
    meter = Meter(ob)
    cfg = ob.config
    clients = [Client(cfg, i, rng.uniform(-1, 1, cfg.dim), 1) for i in (1, 2, 3)]
    members = [CommitteeMember(cfg, k) for k in range(1, m + 1)]
    for p in [*clients, *members]:
        p.register(ob)
    ob.advance(cfg.register_blocks - ob.height())
    clients[2].deal(ob)
    clients[1].deal(ob)
    g2 = meter.last()
    post = clients[0].make_dealings(ob)
    raw = post.items[1].dealing
    bad = raw[:-1] + bytes([raw[-1] ^ 1])  # last z changed
    items = (post.items[0], DealingItem(PURPOSE_PAIR, 2, bad), post.items[2])
    ob.submit(ROLE_CLIENT, 1, DealingsPost(1, items))
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

"""A task's payouts end to end on anvil (README "Payouts"; SPEC.md §7.9): a task with
3 members and 4 clients is funded; round 1 (full mode) runs on it with client 4 dropping
before upload and member 3 posting no shares; round 2 (optimistic) has client 1 post a
bad pair dealing that a watcher challenges — client 1 is excluded and faulted, its
slashed stake (less the watcher's reward) is collected into the task's pool. Both rounds
are settled, then ``pvss-secagg payouts --rpc URL --task ADDR`` prints the pool, each
round's credits and forfeits, and every seat's reputation.

    .venv/bin/python bench/payouts_demo.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.evm_round: every seat signs its own posts

from pvss.group import ORDER  # noqa: E402
from pvss.keys import KeyPair  # noqa: E402
from pvss.transcript import PURPOSE_PAIR  # noqa: E402
from secagg.boards.evm import connect, start_anvil, stop_process  # noqa: E402
from secagg.cli import main as cli  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    DealingItem,
    DealingsPost,
)
from tests.evm_round import ChainRound, identity, round_config  # noqa: E402
from tests.task_rewards import make_task  # noqa: E402


def demo() -> int:
    proc, url = start_anvil()
    try:
        w3 = connect(f"rpc:{url}")[0]
        members = [identity() for _ in range(3)]
        clients = [identity() for _ in range(4)]
        task, owner = make_task(w3, [i.address for i in members], [i.address for i in clients])
        task.set_rewards(10**15, 10**14)  # wei per included client, per valid share
        task.fund(10**16)

        def open_round(**kw: object) -> ChainRound:
            cfg = round_config(n=4, m=3, **kw)[0]
            opt = {"mode": "optimistic", "challenge_blocks": 8} if "deal_blocks" in kw else {}
            rnd = ChainRound(task.open_round(cfg, **opt), owner, members, clients)
            rnd.member_keys = [KeyPair.generate() for _ in members]  # keys rotate (§7.8)
            rnd.client_keys = [KeyPair.generate() for _ in clients]
            return rnd

        def finish(rnd: ChainRound, posting: tuple[int, ...]) -> None:
            for k in posting:
                rnd.post(ROLE_MEMBER, k, rnd.shares(k))
            rnd.to("result")
            rnd.post(ROLE_AGGREGATOR, 0, rnd.result())

        r1 = open_round()
        r1.register_all().reveal_all().deal_all().upload_all([1, 2, 3]).confirm_all()
        finish(r1, (1, 2))
        task.settle(1)
        # round 2, optimistic: client 1's pair dealing to client 2 has a wrong proof
        r2 = open_round(deal_blocks=24)
        r2.register_all().reveal_all()
        post = r2.dealings(1)
        pair = post.items[1].dealing
        off = 5 + 288 + 256  # the dealing's last DLEQ response z
        z = int.from_bytes(pair[off : off + 32], "big")
        items = list(post.items)
        bad = pair[:off] + ((z + 1) % ORDER).to_bytes(32, "big") + pair[off + 32 :]
        items[1] = DealingItem(PURPOSE_PAIR, 2, bad)
        r2.post(ROLE_CLIENT, 1, DealingsPost(1, tuple(items)))
        r2.board.challenge((1, PURPOSE_PAIR, 2))
        r2.deal_all([2, 3, 4]).upload_all([2, 3, 4]).confirm_all()
        finish(r2, (1, 2, 3))
        task.collect(2)
        task.settle(2)
        print(f"$ pvss-secagg payouts --rpc {url} --task {task.address}", flush=True)
        return cli(["payouts", "--rpc", url, "--task", task.address])
    finally:
        stop_process(proc)


if __name__ == "__main__":
    sys.exit(demo())

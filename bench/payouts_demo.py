"""A task's payouts end to end on anvil (README "Payouts"; SPEC.md §7.9): a task with
3 members and 4 clients is funded, one round runs on it (client 4 drops before upload,
member 3 posts no shares), the round is settled, then ``pvss-secagg payouts --rpc URL
--task ADDR`` prints the pool, the round's credits and every seat's reputation.

    .venv/bin/python bench/payouts_demo.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.evm_round: every seat signs its own posts

from pvss.keys import KeyPair  # noqa: E402
from secagg.boards.evm import connect, start_anvil, stop_process  # noqa: E402
from secagg.cli import main as cli  # noqa: E402
from secagg.messages import ROLE_AGGREGATOR, ROLE_MEMBER  # noqa: E402
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
        rnd = ChainRound(task.open_round(round_config(n=4, m=3)[0]), owner, members, clients)
        rnd.member_keys = [KeyPair.generate() for _ in members]
        rnd.client_keys = [KeyPair.generate() for _ in clients]
        rnd.register_all().reveal_all().deal_all().upload_all([1, 2, 3]).confirm_all()
        for k in (1, 2):
            rnd.post(ROLE_MEMBER, k, rnd.shares(k))
        rnd.to("result")
        rnd.post(ROLE_AGGREGATOR, 0, rnd.result())
        task.settle(1)
        print(f"$ pvss-secagg payouts --rpc {url} --task {task.address}", flush=True)
        return cli(["payouts", "--rpc", url, "--task", task.address])
    finally:
        stop_process(proc)


if __name__ == "__main__":
    sys.exit(demo())

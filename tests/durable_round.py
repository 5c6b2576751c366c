"""One relayed round in its own process, durable on both sides: the host journals its
board under ``<dir>/round`` and every node keeps its state in a ``NodeStateFile`` under
``<dir>/nodes`` — so the process can be killed with SIGKILL at any moment and started
again with the same arguments, and it continues the round (SPEC.md §6.14).

    python tests/durable_round.py DIR [--delay S] [--transit S] [--hold-result S]
        [--no-fsync] [--rpc URL]

The first start makes the deployment (``DIR/deployment``: identities, roster, the
server's identity); later starts reuse it and resume the round if ``DIR/round`` holds an
unfinished journal. The transport hands each node its request when the host takes that
node's reply (a node answers after ``--delay`` seconds, its reply takes ``--transit``
seconds to arrive after the node saved its state, as over a slow network), and
appends ``<pid> <stage> <node>`` to ``DIR/requests.log`` for every request it delivers.
At the end ``DIR/result.json`` holds the verified mean, the inputs and the seconds the
round took. Used by tests/test_durable.py (kill -9 at every stage) and for the
journal's overhead measurement (``--bench``). With ``--rpc URL`` the round is
chain-native on that node (an anvil the test started, which outlives this process):
every node posts from its own account, the host writes ``chain.json`` and a restart
resumes the round from the chain (SPEC.md §6.14, tests/test_chain_durable.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fl.host import NodeRoles, RoundHost, drive_round, make_round_config  # noqa: E402
from fl.relay import NodeAgent, NodeStateFile, StageReply, StageRequest  # noqa: E402
from secagg.identity import Identity  # noqa: E402
from secagg.roster import Roster, make_deployment  # noqa: E402

NODES, COMMITTEE, THRESHOLD, DIM, CLIP, QBITS = 3, 3, 1, 6, 2.0, 16


def inputs(node: int) -> tuple[np.ndarray, int]:
    """Node ``node``'s update and weight (deterministic, so a test knows the sum)."""
    rng = np.random.default_rng(1000 + node)
    return rng.uniform(-1.0, 1.0, DIM), node + 2


class LazyReplies(Mapping):
    """Replies computed when the host takes them: node k answers only once the host
    accepted node k-1's posts (a streaming transport)."""

    def __init__(self, stage: str, requests: Mapping[int, StageRequest], answer) -> None:  # noqa: ANN001
        self.stage, self.requests, self.answer = stage, dict(requests), answer
        self.cache: dict[int, StageReply | BaseException] = {}

    def __getitem__(self, node: int) -> StageReply | BaseException:
        if node not in self.requests:
            raise KeyError(node)
        if node not in self.cache:
            self.cache[node] = self.answer(self.stage, node, self.requests[node])
        return self.cache[node]

    def __iter__(self) -> Iterator[int]:
        return iter(self.requests)

    def __len__(self) -> int:
        return len(self.requests)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--transit", type=float, default=0.0)
    # seconds between the result being journaled and the round's verification (after
    # which finish() removes roles.json: nothing left to resume): the window in which a
    # test kills a server whose result is posted but whose round is not verified yet
    ap.add_argument("--hold-result", type=float, default=0.0)
    ap.add_argument("--no-fsync", action="store_true")
    ap.add_argument("--no-journal", action="store_true")
    ap.add_argument("--rpc", default=None)
    args = ap.parse_args(argv)
    base: Path = args.dir
    dep = base / "deployment"
    if not (dep / "roster.json").exists():
        make_deployment(dep, NODES, COMMITTEE, THRESHOLD)
        Identity.generate().save(dep / "server.json")
        if args.rpc:
            from secagg.boards.evm import fund_accounts  # noqa: PLC0415

            ids = [Identity.load(dep / "identities" / f"node-{i}.json") for i in range(NODES)]
            fund_accounts(
                args.rpc, [Identity.load(dep / "server.json").address] + [i.address for i in ids]
            )
    roster = Roster.load(dep / "roster.json")
    idents = [Identity.load(dep / "identities" / f"node-{i}.json") for i in range(NODES)]
    server = Identity.load(dep / "server.json")
    round_dir = base / "round"
    fsync = not args.no_fsync
    t0 = time.perf_counter()
    if args.hold_result:
        import fl.host  # noqa: PLC0415

        verify = fl.host.verify_round

        def held(*a, **kw):  # noqa: ANN002, ANN003, ANN202
            time.sleep(args.hold_result)
            return verify(*a, **kw)

        fl.host.verify_round = held
    if RoundHost.can_resume(round_dir):
        host = RoundHost.resume(round_dir, identity=server, fsync=fsync)
    else:
        cfg = make_round_config(
            round_id=1,
            n_clients=NODES,
            committee_size=COMMITTEE,
            threshold=THRESHOLD,
            dim=DIM,
            clip=CLIP,
            quant_bits=QBITS,
            max_weight=10,
            aggregator=server.address,
            members=roster.committee,
            clients=tuple(i.address for i in idents),
        )
        roles = [NodeRoles(k, k + 1, k + 1) for k in range(NODES)]
        host = RoundHost(
            cfg,
            round_dir,
            roles,
            identity=server,
            journal=not args.no_journal,
            fsync=fsync,
            board=f"rpc:{args.rpc}" if args.rpc else "memory",
            chain_native=bool(args.rpc),
        )
    log = (base / "requests.log").open("a")
    files = [NodeStateFile(base / "nodes", i.address) for i in idents]

    def answer(stage: str, node: int, req: StageRequest) -> StageReply | BaseException:
        log.write(f"{os.getpid()} {stage} {node}\n")
        log.flush()
        time.sleep(args.delay)
        agent = NodeAgent(
            files[node].load(),
            identity=idents[node],
            roster=roster,
            rng=np.random.default_rng([7, node]),
            rpc=args.rpc,
            persist=files[node].save,  # chain-native: saved before its transactions
        )
        try:
            reply: StageReply | BaseException = agent.handle(req, lambda: inputs(node))
        except Exception as exc:  # noqa: BLE001 - an error reply, as a transport sends one
            reply = exc
        files[node].save(agent.state_bytes())
        if agent.resent:
            log.write(f"{os.getpid()} resent-{stage} {node}\n")
            log.flush()
        time.sleep(args.transit)  # the reply on its way: the node already acted
        return reply

    outcome = drive_round(host, lambda stage, reqs: LazyReplies(stage, reqs, answer))
    (base / "result.json").write_text(
        json.dumps(
            {
                "mean": outcome.mean.tolist(),
                "included": list(outcome.included),
                "verified": outcome.verified,
                "resumed": host.resumed,
                "seconds": time.perf_counter() - t0,
                "round_dir": str(round_dir),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

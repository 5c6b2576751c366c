"""Our round as it is deployed, side by side with Flower's SecAgg+ (issue "Fast where it
is deployed", SPEC.md §9).

bench/flower.py times our *simulated* roles (``secagg.simulate``), which never replay a
relayed board and leave the board out of the server. Here both sides run the way a Flower
deployment runs them, in one process and through the same transport:

* **ours deployed**: ``PvssSecAggWorkflow`` (server) and ``pvss_secagg_mod`` (node),
  unmodified, on a closed-membership deployment written by
  ``secagg.roster.make_deployment`` (every node its own identity file, one roster), over
  bench/flower.py's ``InProcessGrid``: every request and reply round-trips through
  Flower's protobuf serde, each node is called with its own ``Context``.
  Nodes 0..m-1 hold the committee seats (m = min(10, max(3, n // 2))) and are sampled
  clients too (SecAgg+ has no committee: its n nodes do all the work, so ours gets the
  same n nodes).
* **Flower SecAgg+**: ``bench.flower.flower_round``, the same grid and serde.

Clocks (medians over the repeats, the two sides alternating so both see the same
machine noise):

* **node time** = time inside the mod minus the time in ``call_next`` (training), summed
  over every stage of the round, as bench/flower.py's ``timed_secaggplus`` does for
  SecAgg+. ``round_client_deployed`` is the mean over the nodes without a committee
  seat, ``round_committee_deployed`` the mean over the committee nodes (client *and*
  member work), both against Flower's mean node time.
* **server total** = wall time of the workflow call minus the time inside
  ``grid.send_and_receive`` (nodes + serde): board, relay, aggregation and the
  ServerApp's own re-verification of the round — everything the server process does.
  ``round_server_total`` against Flower's server time.
* **third-party verifier** = ``secagg.verifier.verify_round`` over the round directory
  the server wrote (what an auditor replays), against our server total
  (``round_verifier_deployed``; target <= 1.2x).
* **relay bytes** = serialized size of every request the server sends to a node over the
  round (Flower ``Message`` protobuf), mean per node: ``round_relay_bytes`` (ours vs
  Flower SecAgg+'s downlink; ``ours_s``/``baseline_s`` hold bytes there, the record says
  so in ``unit``); ours also by role (``ours_relay_bytes_client`` /
  ``ours_relay_bytes_committee``); both sides' downlink includes the model
  (``model_bytes`` = 4·d, float32 parameters in the FitIns).

Dropouts: round(dropout * n) nodes *without* a committee seat fail at the upload stage
(SecAgg+: at COLLECT_MASKED_VECTORS), the same nodes on both sides.

    .venv/bin/python bench/deployed.py [--ns 30,100] [--ds 1e5] [--dropout 0.1]
        [--repeats 3]

Rows go to bench/results/round.jsonl beside bench/round.py's.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit  # noqa: E402
from flower import (  # noqa: E402
    CLIP,
    MAX_WEIGHT,
    QUANT_BITS,
    FlowerHalted,
    _make_grid_class,
    flower_round,
    legacy_context,
    round_shape,
    timed_mod,
)


def deployed_shape(n: int) -> dict[str, Any]:
    """``round_shape`` with committee min(10, max(3, n // 2)): m = 10 from n = 20 on, as in
    bench/flower.py; smaller n keeps nodes without a committee seat."""
    return round_shape(n, committee=min(10, max(3, n // 2)))


def _dropped(n: int, m: int, dropout: float, seed: int) -> set[int]:
    """round(dropout * n) node indices in m..n-1 (no committee seat drops), seeded."""
    k = int(round(dropout * n))
    rng = np.random.default_rng(20_000 + seed)
    return {int(i) + m for i in rng.choice(n - m, k, replace=False)} if k else set()


def ours_deployed_round(
    n: int, d: int, dropout: float, seed: int, *, updates: list[np.ndarray] | None = None
) -> dict[str, Any]:
    """One round of ``PvssSecAggWorkflow`` + ``pvss_secagg_mod`` over the in-process grid."""
    from flwr.app import Context, RecordDict  # noqa: PLC0415
    from flwr.client import ClientApp, NumPyClient  # noqa: PLC0415
    from flwr.common import parameters_to_ndarrays  # noqa: PLC0415
    from flwr.compat.common import recorddict_compat as compat  # noqa: PLC0415
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD  # noqa: PLC0415

    from fl.flower import RECORD_KEY, PvssSecAggWorkflow, pvss_secagg_mod  # noqa: PLC0415
    from fl.relay import STAGE_UPLOAD  # noqa: PLC0415
    from secagg.roster import make_deployment  # noqa: PLC0415
    from secagg.verifier import load_round, verify_round  # noqa: PLC0415

    shape = deployed_shape(n)
    m = shape["m"]
    rng = np.random.default_rng(seed)
    if updates is None:
        updates = [rng.uniform(-1.2 * CLIP, 1.2 * CLIP, d).astype(np.float32) for _ in range(n)]
    weights = [int(w) for w in rng.integers(1, MAX_WEIGHT + 1, n)]
    drop = _dropped(n, m, dropout, seed)
    node_ids = [1000 + i for i in range(n)]
    node_s = dict.fromkeys(node_ids, 0.0)

    with tempfile.TemporaryDirectory(prefix="pvss-bench-deployed-") as tmp:
        roster, paths = make_deployment(Path(tmp) / "deployment", n, m, shape["t"])

        class UpdateClient(NumPyClient):  # type: ignore[misc]
            def __init__(self, idx: int) -> None:
                self.idx = idx

            def fit(self, parameters: Any, config: Any) -> tuple[list, int, dict]:
                return [updates[self.idx]], weights[self.idx], {}

        def client_fn(context: Any) -> Any:
            return UpdateClient(int(context.node_config["partition-id"])).to_client()

        def at_upload(msg: Any) -> bool:
            record = msg.content.config_records.get(RECORD_KEY)
            return record is not None and record.get("stage") == STAGE_UPLOAD

        client_app = ClientApp(
            client_fn=client_fn, mods=[timed_mod(pvss_secagg_mod, node_s, drop, at_upload)]
        )
        contexts = {
            nid: Context(
                run_id=1,
                node_id=nid,
                node_config={
                    "partition-id": nid - 1000,
                    "num-partitions": n,
                    "pvss-identity": str(paths[nid - 1000]),
                    "pvss-roster": str(Path(tmp) / "deployment" / "roster.json"),
                },
                state=RecordDict(),
                run_config={},
            )
            for nid in node_ids
        }
        grid = _make_grid_class()(client_app, contexts)
        legacy = legacy_context(grid, node_ids, d)
        workflow = PvssSecAggWorkflow(
            roster,
            clipping_range=CLIP,
            quantization_bits=QUANT_BITS,
            max_weight=MAX_WEIGHT,
            graph=shape["graph"],
            round_dir=Path(tmp) / "rounds",
            run_id="bench",
            seed=seed,
        )
        from flwr.common.constant import SUPERLINK_NODE_ID  # noqa: PLC0415
        from flwr.supercore.task_identity import TaskIdentity  # noqa: PLC0415

        # what Flower's ServerApp runtime sets before it runs the server app
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID
        t0 = time.perf_counter()
        workflow(grid, legacy)
        wall = time.perf_counter() - t0
        server_s = wall - grid.busy
        outcome = workflow.outcomes[-1]
        if not outcome.verified:
            raise SystemExit(f"our deployed round n={n} d={d} did not verify")
        t0 = time.perf_counter()
        transcript, blobs = load_round(outcome.round_dir)
        report = verify_round(transcript, blobs)
        verifier_s = time.perf_counter() - t0
        if not report.ok:
            raise SystemExit(f"our deployed round n={n} d={d}: {report.findings}")
        got = parameters_to_ndarrays(
            compat.arrayrecord_to_parameters(
                legacy.state.array_records[MAIN_PARAMS_RECORD], keep_input=True
            )
        )[0]
    alive = [i for i in range(n) if i not in drop]
    w = np.array([weights[i] for i in alive], dtype=np.float64)
    plain = (
        sum(
            wi * np.clip(updates[i].astype(np.float64), -CLIP, CLIP)
            for wi, i in zip(w, alive, strict=True)
        )
        / w.sum()
    )
    err = float(np.abs(got - plain).max())
    if not err < 1e-3:
        raise SystemExit(f"our deployed round n={n} d={d}: mean off by {err}")
    members = node_ids[:m]
    others = node_ids[m:]
    return {
        "seconds": {
            "client_mean": float(np.mean([node_s[x] for x in others])) if others else 0.0,
            "committee_mean": float(np.mean([node_s[x] for x in members])),
            "node_mean": float(np.mean(list(node_s.values()))),
            "server_total": server_s,
            "verifier": verifier_s,
            "wall": wall,
        },
        "relay_bytes_per_node": float(np.mean(list(grid.request_bytes.values()))),
        # by role: a committee node also gets the dealings it decrypts (SPEC.md §8.2)
        "relay_bytes_client": float(np.mean([grid.request_bytes[x] for x in others]))
        if others
        else 0.0,
        "relay_bytes_committee": float(np.mean([grid.request_bytes[x] for x in members])),
        "reply_bytes_per_node": float(np.mean(list(grid.reply_bytes.values()))),
        "included": len(outcome.included_nodes),
        "max_abs_error": err,
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def compare_deployed(
    n: int, d: int, dropout: float, repeats: int, emit_name: str = "round"
) -> list:
    """Ours deployed and Flower's SecAgg+ for one configuration; emit the five rows."""
    shape = deployed_shape(n)
    ours, flower = [], []
    halted = 0
    for rep in range(repeats):  # alternate: the same machine noise on both sides
        ours.append(ours_deployed_round(n, d, dropout, rep))
        try:
            flower.append(
                flower_round(n, d, dropout, rep, drop=_dropped(n, shape["m"], dropout, rep))
            )
        except FlowerHalted as exc:
            print(f"# {exc}", file=sys.stderr)
            halted += 1
    if not flower:
        raise SystemExit(f"Flower SecAgg+ halted in every repeat at n={n} d={d}")
    o = {k: statistics.median(r["seconds"][k] for r in ours) for k in ours[0]["seconds"]}
    f = {k: statistics.median(r["seconds"][k] for r in flower) for k in flower[0]["seconds"]}
    o_relay = _median(ours, "relay_bytes_per_node")
    f_relay = _median(flower, "request_bytes_per_client")
    params = {
        "n": n,
        "m": shape["m"],
        "t": shape["t"],
        "d": d,
        "dropout": dropout,
        "graph": shape["graph"],
        "quant_bits": QUANT_BITS,
        "flower_num_shares": shape["num_shares"],
        "repeats": repeats,
        "path": "deployed",
    }
    common = {
        "ours_seconds": o,
        "flower_seconds": f,
        "ours_relay_bytes_per_node": o_relay,
        "flower_relay_bytes_per_node": f_relay,
        "ours_relay_bytes_client": _median(ours, "relay_bytes_client"),
        "ours_relay_bytes_committee": _median(ours, "relay_bytes_committee"),
        # the model's float32 parameters in the upload stage's FitIns, in both sides'
        # downlink: what the protocol adds is the rest
        "model_bytes": 4 * d,
        "ours_reply_bytes_per_node": _median(ours, "reply_bytes_per_node"),
        "flower_reply_bytes_per_node": _median(flower, "bytes_per_client"),
        "ours_included": ours[0]["included"],
        "flower_included": flower[0]["included"],
        "flower_halted_repeats": halted,
        "ours_max_abs_error": max(r["max_abs_error"] for r in ours),
        "targets": {
            "client_deployed_le_1.0x_flower": o["client_mean"] <= f["client_mean"],
            "server_total_le_0.5x_flower": o["server_total"] <= 0.5 * f["server"],
            "verifier_le_1.2x_server_total": o["verifier"] <= 1.2 * o["server_total"],
        },
    }
    rows = [
        ("round_client_deployed", o["client_mean"], "flower_secaggplus", f["client_mean"], "s"),
        (
            "round_committee_deployed",
            o["committee_mean"],
            "flower_secaggplus",
            f["client_mean"],
            "s",
        ),
        ("round_server_total", o["server_total"], "flower_secaggplus", f["server"], "s"),
        ("round_verifier_deployed", o["verifier"], "our_server_total", o["server_total"], "s"),
        ("round_relay_bytes", o_relay, "flower_secaggplus", f_relay, "bytes"),
    ]
    out = []
    for bench, ours_v, baseline, base_v, unit in rows:
        rec = {
            "bench": bench,
            "params": params,
            "ours_s": ours_v,
            "baseline": baseline,
            "baseline_s": base_v,
            "speedup": base_v / ours_v,
            "unit": unit,
            **common,
        }
        out.append(emit(rec, name=emit_name) if emit_name else rec)
    return out


def _csv(text: str, cast: Any) -> list:
    return [cast(float(x)) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="30,100", help="comma-separated n (default 30,100)")
    ap.add_argument("--ds", default="1e5", help="comma-separated d (default 1e5)")
    ap.add_argument("--dropout", type=float, default=0.1, help="fraction dropping (0.1)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds per side (3)")
    args = ap.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    logging.getLogger("pvss_secagg").setLevel(logging.WARNING)
    ours_deployed_round(5, 1000, 0.0, 0)  # warm-up (imports, JIT): not recorded
    for n in _csv(args.ns, int):
        for d in _csv(args.ds, int):
            t0 = time.perf_counter()
            compare_deployed(n, d, args.dropout, args.repeats)
            print(f"# n={n} d={d}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

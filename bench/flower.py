"""One configuration of our round side by side with Flower's SecAgg+ and with plain,
unprotected summation (the library behind bench/round.py, which runs the grid).

For one (n, d, dropout) and every repeat, in one process and alternately:

(a) **ours**: ``secagg.simulate.simulate`` on the memory board (or the embedded EVM
    chain, ``board="evm"``), committee min(10, n), threshold min(4, (m-1)//2),
    ``complete`` mask graph for n <= 10 else ``regular:K`` with K = ``regular_degree(n)``,
    16-bit quantization, weights <= 10, clipping 1.0, clients dropping before the upload.
    Per role: client mean, committee mean, aggregator, and the third-party verifier in
    both modes (``verifier``: replays every proof; ``verifier_chain``: trusts the proofs
    a full-mode contract checked, SPEC.md §6.8).

(b) **Flower's SecAgg+**: Flower's own ``SecAggPlusWorkflow`` (server) and
    ``secaggplus_mod`` (client) code, unmodified, run in-process:

    * ``InProcessGrid`` is a minimal ``flwr`` ``Grid``: ``send_and_receive`` round-trips
      every request through Flower's protobuf serde (``message_to_proto`` ->
      ``SerializeToString`` -> parse -> ``message_from_proto``, as on the wire), calls the
      destination node's ``ClientApp`` in this process with that node's own ``Context``,
      and round-trips the reply the same way. A node's exception becomes an error reply
      (Flower's runtime does the same), i.e. a dropout.
    * The ``ClientApp`` is a ``NumPyClient`` whose ``fit`` returns a fixed update (same
      distribution as ours: uniform in [-1.2, 1.2], clipped at 1.0 by both) and a weight
      in 1..10. Its mods are ``[timed(secaggplus_mod)]``: the wrapper adds to the node's
      clock the time spent inside ``secaggplus_mod`` minus the time spent in
      ``call_next`` (the training step), so **client time** is the mod's protocol work
      (key generation, ECDH, Shamir shares, encryption, quantization, PRG masks, ...).
      The wrapper also makes the dropped nodes raise at the COLLECT_MASKED_VECTORS stage
      (they did SETUP and SHARE_KEYS: the same point where ours drop, ``"upload"``).
    * The workflow is called once as ``SecAggPlusWorkflow(...)(grid, legacy_context)``
      on a ``LegacyContext`` prepared the way ``DefaultWorkflow`` prepares round 1
      (nodes registered as ``GridClientProxy``s in a ``SimpleClientManager``, current
      round and global parameters in ``context.state``); ``DefaultWorkflow``'s own
      setup / evaluation / client-manager polling thread are not part of SecAgg+ and are
      not run. **Server time** = wall time of that call minus the time spent inside
      ``grid.send_and_receive`` (the clients and the serde transport). The strategy is
      ``FedAvg`` with ``aggregate_fit`` returning the already-aggregated parameters that
      SecAgg+ hands it (FedAvg would otherwise re-average n copies of the result, a cost
      of the legacy interface, not of SecAgg+).
    * Parameters: ``num_shares = K + 1`` (Flower counts the node itself among its
      ``num_shares`` neighbours, so each node masks with K others, as in our graph;
      n for n <= 10: complete), ``reconstruction_threshold = t + 1`` (t + 1 shares
      reconstruct, as on our committee), ``quantization_range = 2**16`` (our 16 bits),
      ``modulus_range = 2**32`` (Flower's largest), ``max_weight = 10``,
      ``clipping_range = 1.0``.
    * **Bytes per client**: the serialized size (protobuf ``RecordDict``) of every
      reply content a node sends over the round, averaged over all sampled nodes (ours:
      over all clients that dealt, the same set). **Masked bytes**: the size of the
      masked-vector bytes in the COLLECT_MASKED_VECTORS reply (``ndarray_to_bytes`` of
      Flower's int64 vector). Bytes per coordinate = masked bytes / d (ours / (d+1):
      the weight travels as one more coordinate, as in bench/round.py).
    * The Flower aggregate is checked against the plain weighted mean of the surviving
      updates (``max_abs_error``) so that a broken run cannot be timed.

(c) **plain**: ``plain_times`` — a client serialises its float32 update; the server
    computes the weighted sum.

``compare`` emits one JSON line per (role, baseline) via ``_common.emit`` (bench/round.py
names the file round.jsonl): ``round_client`` and ``round_aggregator`` against
``flower_secaggplus`` and against ``plain``; ``round_verifier`` and
``round_verifier_chain`` against ``our_aggregator``. ``ours_s``/``baseline_s`` are medians
over the repeats, and every line carries both sides' per-role medians, bytes and the
targets of the n=100 comparison.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit  # noqa: E402

from secagg.simulate import SimParams, simulate  # noqa: E402

CLIP = 1.0
QUANT_BITS = 16
MAX_WEIGHT = 10
FLOWER_MODULUS = 2**32


def regular_degree(n: int) -> int:
    """SecAgg+-style sparse graph: about 2*log2(n) neighbours (even, < n)."""
    k = min(n - 1, 2 * math.ceil(math.log2(n)))
    if (k * n) % 2:
        k -= 1
    return k


def plain_times(n: int, d: int, rng: np.random.Generator, repeats: int) -> tuple[float, float]:
    """Unprotected FedAvg: client = serialise float32 update; server = weighted sum."""
    updates = [rng.standard_normal(d).astype(np.float32) for _ in range(n)]
    weights = rng.integers(1, 11, n).astype(np.float32)
    client, server = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        blobs = [u.tobytes() for u in updates]
        client.append((time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        acc = np.zeros(d, dtype=np.float64)
        for w, b in zip(weights, blobs, strict=False):
            acc += w * np.frombuffer(b, dtype=np.float32)
        acc /= weights.sum()
        server.append(time.perf_counter() - t0)
    return statistics.median(client), statistics.median(server)


class FlowerHalted(RuntimeError):
    """Flower's SecAgg+ halted the round (e.g. a node kept fewer than
    ``reconstruction_threshold`` live neighbours: "Insufficient available nodes")."""


# ---------------------------------------------------------------------------------------
# parameters shared by both sides
# ---------------------------------------------------------------------------------------


def round_shape(n: int, committee: int = 10, threshold: int = 4) -> dict[str, Any]:
    """Committee, threshold and mask graph of ours; num_shares / threshold of Flower."""
    m = min(committee, n)
    t = min(threshold, (m - 1) // 2)
    if n <= 10:
        graph, shares = "complete", n
    else:
        k = regular_degree(n)
        graph, shares = f"regular:{k}", k + 1
    return {
        "m": m,
        "t": t,
        "graph": graph,
        "num_shares": shares,
        "reconstruction_threshold": min(t + 1, shares - 1),
    }


def dropped_nodes(n: int, dropout: float, seed: int) -> set[int]:
    """Indices (0..n-1) of the nodes that drop: round(dropout * n) of them, as ours."""
    k = int(round(dropout * n))
    rng = np.random.default_rng(10_000 + seed)
    return {int(i) for i in rng.choice(n, k, replace=False)} if k else set()


# ---------------------------------------------------------------------------------------
# ours
# ---------------------------------------------------------------------------------------


def ours_round(
    n: int, d: int, dropout: float, seed: int, board: str = "memory", backend: str | None = None
) -> dict[str, Any]:
    shape = round_shape(n)
    res = simulate(
        SimParams(
            clients=n,
            committee=shape["m"],
            threshold=shape["t"],
            dim=d,
            dropout=dropout,
            dropout_phase="upload",
            graph=shape["graph"],
            quant_bits=QUANT_BITS,
            max_weight=MAX_WEIGHT,
            clip=CLIP,
            seed=seed,
            board=board,
            backend=backend,
        )
    )
    if not res.verified:
        raise SystemExit(f"our round n={n} d={d} dropout={dropout} failed: {res.findings}")
    return {
        "seconds": dict(res.seconds),
        "bytes_per_client": res.bytes_per_client,
        "masked_bytes_per_client": res.masked_bytes_per_client,
        "bytes_per_coordinate": res.masked_bytes_per_client / (d + 1),
        "included": res.included,
        "max_abs_error": res.max_abs_error,
        "bits": res.params["bits"],
    }


# ---------------------------------------------------------------------------------------
# Flower's SecAgg+ in-process
# ---------------------------------------------------------------------------------------


def _make_grid_class() -> type:
    from flwr.app import Error, Message  # noqa: PLC0415
    from flwr.common.serde import message_from_proto, message_to_proto  # noqa: PLC0415
    from flwr.proto.message_pb2 import Message as ProtoMessage  # noqa: PLC0415
    from flwr.server import Grid  # noqa: PLC0415

    def wire(msg: Message) -> tuple[Message, int]:
        """Round-trip through Flower's protobuf serde; returns the copy and its size."""
        blob = message_to_proto(msg).SerializeToString()
        proto = ProtoMessage()
        proto.ParseFromString(blob)
        return message_from_proto(proto), len(blob)

    class InProcessGrid(Grid):  # type: ignore[misc]
        """A Grid whose nodes are ClientApps called in this process (see module doc)."""

        def __init__(self, client_app: Any, contexts: dict[int, Any]) -> None:
            self.client_app = client_app
            self.contexts = contexts
            self.busy = 0.0  # seconds inside send_and_receive
            self.reply_bytes = dict.fromkeys(contexts, 0)  # serialized reply contents
            self.request_bytes = dict.fromkeys(contexts, 0)  # serialized requests (downlink)
            self._run: Any = None
            self._next_id = 0

        def set_run(self, run: Any) -> None:
            self._run = run

        @property
        def run(self) -> Any:
            return self._run

        def create_message(  # noqa: PLR0913
            self,
            content: Any,
            message_type: str,
            dst_node_id: int,
            group_id: str,
            ttl: float | None = None,
        ) -> Message:
            return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

        def get_node_ids(self) -> list[int]:
            return list(self.contexts)

        def push_messages(self, messages: Any) -> list[str]:
            raise NotImplementedError("InProcessGrid only does send_and_receive")

        def pull_messages(self, message_ids: Any) -> list[Message]:
            raise NotImplementedError("InProcessGrid only does send_and_receive")

        def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list:
            from flwr.common.serde import recorddict_to_proto  # noqa: PLC0415

            t0 = time.perf_counter()
            replies = []
            for msg in messages:
                self._next_id += 1
                msg.metadata.__dict__["_message_id"] = f"m{self._next_id}"
                incoming, size = wire(msg)
                node = incoming.metadata.dst_node_id
                self.request_bytes[node] += size
                try:
                    reply = self.client_app(incoming, self.contexts[node])
                except Exception as exc:  # noqa: BLE001 - a failing node is a dropout
                    reply = Message(Error(code=0, reason=repr(exc)), reply_to=incoming)
                if reply.has_content():
                    self.reply_bytes[node] += recorddict_to_proto(reply.content).ByteSize()
                replies.append(wire(reply)[0])
            self.busy += time.perf_counter() - t0
            return replies

    return InProcessGrid


def timed_mod(mod: Any, clock: dict[int, float], drop: set[int], at_upload: Any) -> Any:
    """``mod`` wrapped for timing: adds to ``clock[node]`` the time spent inside ``mod``
    minus the time in ``call_next`` (the training step), and makes the nodes whose index
    (node id - 1000) is in ``drop`` raise when ``at_upload(msg)`` (a dropout)."""

    def timed(msg: Any, ctxt: Any, call_next: Any) -> Any:
        node = msg.metadata.dst_node_id
        if node - 1000 in drop and at_upload(msg):
            raise RuntimeError(f"node {node} drops before uploading")
        inner = 0.0

        def timed_next(m: Any, c: Any) -> Any:
            nonlocal inner
            t = time.perf_counter()
            out = call_next(m, c)
            inner += time.perf_counter() - t
            return out

        t0 = time.perf_counter()
        out = mod(msg, ctxt, timed_next)
        clock[node] += time.perf_counter() - t0 - inner
        return out

    return timed


def legacy_context(grid: Any, node_ids: list[int], d: int) -> Any:
    """A ``LegacyContext`` prepared the way ``DefaultWorkflow`` prepares round 1 (see the
    module docstring): nodes registered as ``GridClientProxy`` s, current round 1, the
    global parameters zeros(d), a ``FedAvg`` whose ``aggregate_fit`` passes the securely
    aggregated parameters through."""
    from flwr.app import ConfigRecord, RecordDict  # noqa: PLC0415
    from flwr.app import Context as AppContext  # noqa: PLC0415
    from flwr.common import ndarrays_to_parameters  # noqa: PLC0415
    from flwr.compat.common import recorddict_compat as compat  # noqa: PLC0415
    from flwr.server import LegacyContext, ServerConfig  # noqa: PLC0415
    from flwr.server.client_manager import SimpleClientManager  # noqa: PLC0415
    from flwr.server.compat.grid_client_proxy import GridClientProxy  # noqa: PLC0415
    from flwr.server.strategy import FedAvg  # noqa: PLC0415
    from flwr.server.workflow.constant import (  # noqa: PLC0415
        MAIN_CONFIGS_RECORD,
        MAIN_PARAMS_RECORD,
    )
    from flwr.server.workflow.constant import Key as WorkflowKey  # noqa: PLC0415

    n = len(node_ids)

    class PassThroughFedAvg(FedAvg):  # type: ignore[misc]
        def aggregate_fit(self, server_round: int, results: list, failures: list) -> tuple:
            return (results[0][1].parameters if results else None), {}

    strategy = PassThroughFedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n, min_available_clients=n
    )
    manager = SimpleClientManager()
    for nid in node_ids:
        manager.register(GridClientProxy(nid, grid, 1))

    server_ctx = AppContext(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
    legacy = LegacyContext(
        context=server_ctx,
        config=ServerConfig(num_rounds=1),
        strategy=strategy,
        client_manager=manager,
    )
    legacy.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({WorkflowKey.CURRENT_ROUND: 1})
    init = ndarrays_to_parameters([np.zeros(d, dtype=np.float32)])
    legacy.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(init, True)

    return legacy


def flower_round(
    n: int,
    d: int,
    dropout: float,
    seed: int,
    *,
    updates: list[np.ndarray] | None = None,
    drop: set[int] | None = None,
) -> dict[str, Any]:
    """One SecAgg+ round with Flower's code (see the module docstring for the method);
    ``drop``: the node indices that fail at COLLECT_MASKED_VECTORS (default:
    ``dropped_nodes(n, dropout, seed)``)."""
    from flwr.app import Context, RecordDict  # noqa: PLC0415
    from flwr.client import ClientApp, NumPyClient  # noqa: PLC0415
    from flwr.client.mod import secaggplus_mod  # noqa: PLC0415
    from flwr.common import parameters_to_ndarrays  # noqa: PLC0415
    from flwr.common.secure_aggregation.secaggplus_constants import (  # noqa: PLC0415
        RECORD_KEY_CONFIGS,
        Key,
        Stage,
    )
    from flwr.compat.common import recorddict_compat as compat  # noqa: PLC0415
    from flwr.server.workflow import SecAggPlusWorkflow  # noqa: PLC0415
    from flwr.server.workflow.constant import (  # noqa: PLC0415
        MAIN_PARAMS_RECORD,
    )

    shape = round_shape(n)
    rng = np.random.default_rng(seed)
    if updates is None:
        updates = [rng.uniform(-1.2 * CLIP, 1.2 * CLIP, d).astype(np.float32) for _ in range(n)]
    weights = [int(w) for w in rng.integers(1, MAX_WEIGHT + 1, n)]
    drop = dropped_nodes(n, dropout, seed) if drop is None else drop
    node_ids = [1000 + i for i in range(n)]  # node id -> index: id - 1000
    client_s = dict.fromkeys(node_ids, 0.0)

    class UpdateClient(NumPyClient):  # type: ignore[misc]
        def __init__(self, idx: int) -> None:
            self.idx = idx

        def fit(self, parameters: Any, config: Any) -> tuple[list, int, dict]:
            return [updates[self.idx]], weights[self.idx], {}

    def client_fn(context: Any) -> Any:
        return UpdateClient(int(context.node_config["partition-id"])).to_client()

    def at_upload(msg: Any) -> bool:
        configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
        return configs is not None and configs.get(Key.STAGE) == Stage.COLLECT_MASKED_VECTORS

    timed_secaggplus = timed_mod(secaggplus_mod, client_s, drop, at_upload)
    client_app = ClientApp(client_fn=client_fn, mods=[timed_secaggplus])
    contexts = {
        nid: Context(
            run_id=1,
            node_id=nid,
            node_config={"partition-id": nid - 1000, "num-partitions": n},
            state=RecordDict(),
            run_config={},
        )
        for nid in node_ids
    }
    grid = _make_grid_class()(client_app, contexts)

    legacy = legacy_context(grid, node_ids, d)

    workflow = SecAggPlusWorkflow(
        num_shares=shape["num_shares"],
        reconstruction_threshold=shape["reconstruction_threshold"],
        clipping_range=CLIP,
        quantization_range=2**QUANT_BITS,
        modulus_range=FLOWER_MODULUS,
        max_weight=MAX_WEIGHT,
    )
    from flwr.common.constant import SUPERLINK_NODE_ID  # noqa: PLC0415
    from flwr.supercore.task_identity import TaskIdentity  # noqa: PLC0415

    # what Flower's ServerApp runtime sets before it runs the server app
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID
    t0 = time.perf_counter()
    workflow(grid, legacy)
    wall = time.perf_counter() - t0
    server_s = wall - grid.busy

    result = compat.arrayrecord_to_parameters(
        legacy.state.array_records[MAIN_PARAMS_RECORD], keep_input=True
    )
    got = parameters_to_ndarrays(result)[0]
    alive = [i for i in range(n) if i not in drop]
    # Flower scales an update by its weight ratio r = round(w / W * Q) / Q *before* it
    # clips (ours clips, then weights): its exact result is sum clip(r x) / sum r.
    q = 2**QUANT_BITS
    r = np.array([round(weights[i] / MAX_WEIGHT * q) / q for i in alive], dtype=np.float64)
    scaled = [
        np.clip(ri * updates[i].astype(np.float64), -CLIP, CLIP)
        for ri, i in zip(r, alive, strict=True)
    ]
    plain = np.sum(scaled, axis=0) / r.sum()
    if len(got) != d or not np.any(got):  # the global model was never replaced
        raise FlowerHalted(f"Flower SecAgg+ n={n} d={d} dropout={dropout} seed={seed} halted")
    err = float(np.abs(got - plain).max())
    if not err < 1e-3:  # stochastic rounding: < 1 step (2 * CLIP / 2^16) per client
        raise SystemExit(f"Flower SecAgg+ n={n} d={d} dropout={dropout}: aggregate off by {err}")

    # one masked vector as the mod serializes it (int64, numpy .npy bytes)
    from flwr.common import ndarray_to_bytes  # noqa: PLC0415

    masked = len(ndarray_to_bytes(np.zeros(d, dtype=np.int64)))
    return {
        "seconds": {
            "client_mean": float(np.mean(list(client_s.values()))),
            "client_survivor_mean": float(np.mean([client_s[1000 + i] for i in alive])),
            "server": server_s,
            "transport": grid.busy - sum(client_s.values()),
            "wall": wall,
        },
        "bytes_per_client": float(np.mean(list(grid.reply_bytes.values()))),
        "request_bytes_per_client": float(np.mean(list(grid.request_bytes.values()))),
        "masked_bytes_per_client": float(masked),
        "bytes_per_coordinate": masked / d,
        "included": len(alive),
        "max_abs_error": err,
        "num_shares": shape["num_shares"],
        "reconstruction_threshold": shape["reconstruction_threshold"],
    }


# ---------------------------------------------------------------------------------------
# the grid
# ---------------------------------------------------------------------------------------


def _median_roles(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {k: statistics.median(r["seconds"][k] for r in runs) for k in runs[0]["seconds"]}


def _config_params(  # noqa: PLR0913
    n: int,
    d: int,
    dropout: float,
    repeats: int,
    shape: dict,
    bits: int,
    board: str,
    backend: str | None,
) -> dict[str, Any]:
    """The ``params`` of every record of one configuration (both sides' settings)."""
    return {
        "n": n,
        "m": shape["m"],
        "t": shape["t"],
        "d": d,
        "dropout": dropout,
        "graph": shape["graph"],
        "bits": bits,
        "quant_bits": QUANT_BITS,
        "flower_num_shares": shape["num_shares"],
        "flower_reconstruction_threshold": shape["reconstruction_threshold"],
        "flower_modulus_bits": 32,
        "repeats": repeats,
        "board": board,
        "backend": backend or "auto",
    }


def compare(
    n: int,
    d: int,
    dropout: float,
    repeats: int,
    emit_name: str = "round",
    board: str = "memory",
    backend: str | None = None,
) -> list:
    """Run ours (on ``board``), Flower's SecAgg+ and plain for one configuration; emit
    (to bench/results/{emit_name}.jsonl, nothing when empty) and return the records."""
    shape = round_shape(n)
    ours_runs, flower_runs = [], []
    halted = 0
    for rep in range(repeats):  # alternate, so both see the same machine noise
        ours_runs.append(ours_round(n, d, dropout, rep, board, backend))
        try:
            flower_runs.append(flower_round(n, d, dropout, rep))
        except FlowerHalted as exc:
            print(f"# {exc}", file=sys.stderr)
            halted += 1
    plain_client, plain_server = plain_times(n, d, np.random.default_rng(0), 3)
    ours_s = _median_roles(ours_runs)
    o = ours_runs[0]
    if not flower_runs:  # every Flower round halted: only the plain comparison is timed
        return _emit_plain_only(
            n,
            d,
            dropout,
            repeats,
            shape,
            o,
            ours_s,
            halted,
            plain_client,
            plain_server,
            emit_name,
            board,
            backend,
        )
    flower_s = _median_roles(flower_runs)
    f = flower_runs[0]
    params = _config_params(n, d, dropout, repeats, shape, o["bits"], board, backend)
    common = {
        "ours_seconds": ours_s,
        "flower_seconds": flower_s,
        "plain_seconds": {"client": plain_client, "server": plain_server},
        "ours_bytes_per_client": o["bytes_per_client"],
        "flower_bytes_per_client": statistics.median(r["bytes_per_client"] for r in flower_runs),
        "ours_masked_bytes_per_client": o["masked_bytes_per_client"],
        "flower_masked_bytes_per_client": f["masked_bytes_per_client"],
        "ours_bytes_per_coordinate": o["bytes_per_coordinate"],
        "flower_bytes_per_coordinate": f["bytes_per_coordinate"],
        "flower_halted_repeats": halted,
        "ours_included": o["included"],
        "flower_included": f["included"],
        "ours_max_abs_error": max(r["max_abs_error"] for r in ours_runs),
        "flower_max_abs_error": max(r["max_abs_error"] for r in flower_runs),
        "targets": {
            "client_le_flower": ours_s["client_mean"] <= flower_s["client_mean"],
            "aggregator_le_flower": ours_s["aggregator"] <= flower_s["server"],
            "bytes_per_coord_le_half_flower": o["bytes_per_coordinate"]
            <= 0.5 * f["bytes_per_coordinate"],
            "verifier_le_1.2x_aggregator": ours_s["verifier"] <= 1.2 * ours_s["aggregator"],
            "verifier_chain_le_1.2x_aggregator": ours_s["verifier_chain"]
            <= 1.2 * ours_s["aggregator"],
        },
    }
    rows = [
        ("round_client", ours_s["client_mean"], "flower_secaggplus", flower_s["client_mean"]),
        ("round_aggregator", ours_s["aggregator"], "flower_secaggplus", flower_s["server"]),
        ("round_client", ours_s["client_mean"], "plain", plain_client),
        ("round_aggregator", ours_s["aggregator"], "plain", plain_server),
        ("round_verifier", ours_s["verifier"], "our_aggregator", ours_s["aggregator"]),
        ("round_verifier_chain", ours_s["verifier_chain"], "our_aggregator", ours_s["aggregator"]),
    ]
    out = []
    for bench, ours_t, baseline, base_t in rows:
        rec = {
            "bench": bench,
            "params": params,
            "ours_s": ours_t,
            "baseline": baseline,
            "baseline_s": base_t,
            "speedup": base_t / ours_t,
            **common,
        }
        out.append(emit(rec, name=emit_name) if emit_name else rec)
    return out


def _emit_plain_only(  # noqa: PLR0913
    n: int,
    d: int,
    dropout: float,
    repeats: int,
    shape: dict,
    o: dict,
    ours_s: dict,
    halted: int,
    plain_client: float,
    plain_server: float,
    emit_name: str,
    board: str,
    backend: str | None,
) -> list:
    params = _config_params(n, d, dropout, repeats, shape, o["bits"], board, backend)
    out = []
    for bench, ours_t, base_t in (
        ("round_client", ours_s["client_mean"], plain_client),
        ("round_aggregator", ours_s["aggregator"], plain_server),
    ):
        rec = {
            "bench": bench,
            "params": params,
            "ours_s": ours_t,
            "baseline": "plain",
            "baseline_s": base_t,
            "speedup": base_t / ours_t,
            "ours_seconds": ours_s,
            "plain_seconds": {"client": plain_client, "server": plain_server},
            "flower_halted_repeats": halted,
            "ours_bytes_per_client": o["bytes_per_client"],
            "ours_bytes_per_coordinate": o["bytes_per_coordinate"],
            "ours_included": o["included"],
        }
        out.append(emit(rec, name=emit_name) if emit_name else rec)
    return out

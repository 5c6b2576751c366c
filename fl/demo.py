"""``pvss-secagg demo``: federated training with verified secure aggregation, side by
side with plain FedAvg.

A small torch MLP learns scikit-learn's digits (shipped with the package, nothing is
downloaded) across non-IID clients (label-skewed Dirichlet split, fixed seed). Every
round a fraction of the clients drops, each at a random stage of the protocol
(register, deal or upload; committee members only after confirming); the committee is the
roster's, fixed by the deployment (every node holds its own identity file). The secure
run aggregates through :class:`fl.host.RoundHost` and :class:`fl.relay.NodeAgent` —
the same code the Flower workflow and mod run, called directly here so the demo stays
fast — and every round is verified publicly before its result is used. The plain run
trains the same model from the same seeds on the same splits with the same dropouts
and averages in the clear (FedAvg weights = examples). Both accuracies are printed per
round and at the end; the secure one differs only by quantization noise.

With ``--dp-epsilon E`` (SPEC.md §10) the secure run adds distributed differential
privacy: every client sends its model update (trained minus global parameters) clipped
to L2 norm ``--dp-clip`` with its share of discrete Gaussian noise, calibrated so that
the whole run of ``--rounds`` rounds is (E, ``--dp-delta``)-DP for any included set of
at least min_included clients; the plain run stays non-private FedAvg (the baseline).
"""

from __future__ import annotations

import os

# The masking kernels (numba, OpenMP) and torch share this machine's cores; OpenMP's
# default active wait keeps idle kernel threads spinning and slows training ~10x. Set
# before numba or torch load (a caller's own choice wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import dataclasses  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from fl.host import (  # noqa: E402
    BOARD_KINDS,
    NodeRoles,
    RoundFailed,
    RoundHost,
    RoundOutcome,
    drive_round,
    make_round_config,
)
from fl.relay import (  # noqa: E402
    STAGE_DEAL,
    STAGE_REGISTER,
    STAGE_UNMASK,
    STAGE_UPLOAD,
    STAGES,
    NodeAgent,
    StageReply,
    StageRequest,
)
from secagg.dp import DpSpec, dp_report, overflow_bits  # noqa: E402
from secagg.identity import Identity  # noqa: E402
from secagg.roster import Roster, make_deployment  # noqa: E402

CLIENT_DROP_STAGES = (STAGE_REGISTER, STAGE_DEAL, STAGE_UPLOAD)
Deployment = tuple[Roster, list[Identity], Identity]
from fl.tensors import FlatSpec, model_to_vector, vector_to_model  # noqa: E402

__all__ = ["DemoParams", "DemoResult", "load_partitions", "run_demo", "main"]


@dataclass(frozen=True)
class DemoParams:
    """One demo run."""

    rounds: int = 10
    clients: int = 10
    committee: int = 5
    threshold: int = 2
    dropout: float = 0.2
    alpha: float = 0.5  # Dirichlet concentration of the label skew (smaller = more skewed)
    hidden: int = 32
    epochs: int = 3
    batch_size: int = 32
    lr: float = 0.2
    clip: float = 8.0
    quant_bits: int = 16
    board: str = "evm"
    graph: str = "complete"
    seed: int = 0
    out: str = "out/fl-demo"
    dp_epsilon: float | None = None  # distributed DP over the whole run (None: off)
    dp_delta: float = 1e-5
    dp_clip: float = 1.0  # L2 clip of a client's update
    dp_mechanism: str = "ddg"

    def dp_spec(self) -> DpSpec | None:
        if self.dp_epsilon is None:
            return None
        return DpSpec(self.dp_epsilon, self.dp_delta, self.rounds, self.dp_clip, self.dp_mechanism)


@dataclass
class DemoResult:
    """What the demo measured (``--json`` prints it as one line)."""

    rounds: int
    accuracy_secure: float
    accuracy_plain: float
    all_verified: bool  # every round that produced a result verified
    board: str
    failed_rounds: list[int] = field(default_factory=list)  # too many dropouts: no result
    per_round: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    round_dir: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    dp: dict[str, Any] | None = None  # the DP promise (secagg.dp.dp_report), None if off

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


# ---------------------------------------------------------------------------------------
# data and model
# ---------------------------------------------------------------------------------------


def load_partitions(
    clients: int, alpha: float, seed: int, min_size: int = 20
) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """Digits (8x8, scaled to [0, 1]) split 80/20 stratified; the training part is
    divided among ``clients`` with per-class Dirichlet(alpha) proportions, redrawn
    until every client has ``min_size`` examples. Returns (partitions, test set)."""
    from sklearn.datasets import load_digits  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        owners: list[list[int]] = [[] for _ in range(clients)]
        for label in range(10):
            idx = rng.permutation(np.flatnonzero(y_tr == label))
            props = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
            for c, part in enumerate(np.split(idx, cuts)):
                owners[c].extend(int(i) for i in part)
        if min(len(o) for o in owners) >= min_size:
            break
    else:  # pragma: no cover - only for absurd parameters
        raise ValueError(f"could not give every one of {clients} clients {min_size} examples")
    parts = [(x_tr[np.array(sorted(o))], y_tr[np.array(sorted(o))]) for o in owners]
    return parts, (x_te, y_te)


def make_model(hidden: int, seed: int):  # noqa: ANN201 - torch.nn.Module
    """64 -> hidden -> 10 MLP with ReLU, deterministically initialised."""
    import torch  # noqa: PLC0415

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
    )


def train_local(model: Any, data: tuple[np.ndarray, np.ndarray], p: DemoParams, seed: int) -> None:
    """``p.epochs`` of minibatch SGD on one client's data (shuffled from ``seed``)."""
    import torch  # noqa: PLC0415

    x = torch.from_numpy(data[0])
    y = torch.from_numpy(data[1])
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=p.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(p.epochs):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), p.batch_size):
            b = order[start : start + p.batch_size]
            opt.zero_grad()
            loss_fn(model(x[b]), y[b]).backward()
            opt.step()


def accuracy(model: Any, data: tuple[np.ndarray, np.ndarray]) -> float:
    """Fraction of correct predictions."""
    import torch  # noqa: PLC0415

    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(data[0])).argmax(dim=1).numpy()
    return float((pred == data[1]).mean())


# ---------------------------------------------------------------------------------------
# rounds
# ---------------------------------------------------------------------------------------

_STAGE_ORDER = {s: i for i, s in enumerate(STAGES)}


def dropout_schedule(p: DemoParams, rnd: int) -> dict[int, str]:
    """Node -> the stage from which it is offline, for round ``rnd`` (seeded). The
    committee is the roster's (nodes 0..m-1); a member that vanished before revealing
    its seed would halt the round, so members drop only after confirming (at most
    m - Q of them may miss the confirmation, SPEC.md §6.11)."""
    rng = random.Random(p.seed * 7919 + rnd)
    n_drop = int(round(p.dropout * p.clients))
    out = {}
    for node in rng.sample(range(p.clients), n_drop):
        out[node] = STAGE_UNMASK if node < p.committee else rng.choice(CLIENT_DROP_STAGES)
    return out


def _local_update(
    global_vec: Any, spec: FlatSpec, p: DemoParams, data, rnd: int, node: int
) -> tuple[Any, int]:
    model = make_model(p.hidden, p.seed)
    vector_to_model(global_vec, spec, model)
    train_local(model, data, p, seed=p.seed * 1_000_003 + rnd * 1009 + node)
    vec, _ = model_to_vector(model)
    return vec, len(data[1])


def _secure_round(
    p: DemoParams,
    rnd: int,
    offline: Mapping[int, str],
    global_vec: Any,
    spec: FlatSpec,
    parts: list[tuple[np.ndarray, np.ndarray]],
    max_weight: int,
    out_dir: Path,
    board_address: bytes,
    deployment: Deployment,
) -> tuple[RoundOutcome, float]:
    """One verified round: host + node agents called in process, ``offline`` nodes
    silent from their dropout stage on. Returns the outcome and the training seconds."""
    roster, idents, server = deployment
    roles = [
        NodeRoles(node, node + 1, node + 1 if node < p.committee else 0)
        for node in range(p.clients)
    ]
    cfg = make_round_config(
        round_id=rnd,
        n_clients=p.clients,
        committee_size=p.committee,
        threshold=p.threshold,
        dim=spec.length,
        clip=p.clip,
        quant_bits=p.quant_bits,
        max_weight=max_weight,
        graph=p.graph,
        board_address=board_address,
        aggregator=server.address,
        members=roster.committee,
        clients=tuple(i.address for i in idents),
    )
    spec_dp = p.dp_spec()
    if spec_dp is not None:  # noise for this round's min_included, modulus with its tail
        dp = spec_dp.calibrate(cfg.dim, cfg.min_included)
        cfg = dataclasses.replace(
            cfg, dp=dp, clip=float(dp.l2_clip), bits=overflow_bits(dp, cfg.n_clients)
        )
    host = RoundHost(cfg, out_dir / f"round-{rnd}", roles, identity=server, board=p.board)
    states: dict[int, bytes] = {}
    train_s = 0.0

    def update(node: int) -> tuple[Any, int]:
        nonlocal train_s
        t0 = time.perf_counter()
        vec, weight = _local_update(global_vec, spec, p, parts[node], rnd, node)
        train_s += time.perf_counter() - t0
        if cfg.has_dp:  # DP: the update, not the parameters
            vec = vec - global_vec
        return vec, weight

    def send(
        stage: str, requests: Mapping[int, StageRequest]
    ) -> dict[int, StageReply | BaseException]:
        replies: dict[int, StageReply | BaseException] = {}
        for node, req in requests.items():
            gone = offline.get(node)
            if gone is not None and _STAGE_ORDER[stage] >= _STAGE_ORDER[gone]:
                continue  # offline: no reply (a timeout, to the server)
            agent = NodeAgent(
                states.get(node, b""),
                identity=idents[node],
                roster=roster,
                rng=np.random.default_rng([p.seed, rnd, node]),
            )
            try:
                replies[node] = agent.handle(req, functools.partial(update, node))
            except Exception as exc:  # noqa: BLE001 - an error reply, as Flower sends one
                replies[node] = exc
            states[node] = agent.state_bytes()
        return replies

    return drive_round(host, send), train_s  # drive_round raises unless verified


def run_demo(p: DemoParams, *, progress: bool = False, say=print) -> DemoResult:  # noqa: ANN001
    """Train securely and in the clear, round by round; return both accuracies."""
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    parts, test = load_partitions(p.clients, p.alpha, p.seed)
    max_weight = max(len(y) for _, y in parts)
    model = make_model(p.hidden, p.seed)
    global_secure, spec = model_to_vector(model)
    global_plain = global_secure.clone()
    out_dir = Path(p.out)
    board_address = random.Random(p.seed).randbytes(20)
    # the deployment ceremony: every node's own identity file, the roster, the server's
    roster, paths = make_deployment(out_dir / "deployment", p.clients, p.committee, p.threshold)
    deployment = (roster, [Identity.load(q) for q in paths], Identity.generate())
    say(
        f"federated digits: {p.clients} clients (Dirichlet alpha={p.alpha}, sizes "
        f"{sorted(len(y) for _, y in parts)}), MLP 64-{p.hidden}-10 ({spec.length} params), "
        f"committee m={p.committee} t={p.threshold}, {p.dropout:.0%} dropouts/round, "
        f"board={p.board}"
    )
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=p.rounds, desc="rounds", unit="round", file=sys.stderr, leave=False)
    per_round: list[dict[str, Any]] = []
    totals = {
        k: 0.0
        for k in ("train", "client_mean", "committee_mean", "board", "aggregator", "verifier")
    }
    all_verified = True
    failed: list[int] = []
    eval_model = make_model(p.hidden, p.seed)
    dp_info: dict[str, Any] | None = None
    if p.dp_epsilon is not None:
        say(
            f"differential privacy: epsilon={p.dp_epsilon}, delta={p.dp_delta} over "
            f"{p.rounds} rounds, update L2 clip {p.dp_clip}, {p.dp_mechanism} noise "
            "(secure run only; the plain run is non-private FedAvg)"
        )
    for rnd in range(1, p.rounds + 1):
        offline = dropout_schedule(p, rnd)
        try:
            outcome, train_s = _secure_round(
                p,
                rnd,
                offline,
                global_secure,
                spec,
                parts,
                max_weight,
                out_dir,
                board_address,
                deployment,
            )
        except RoundFailed as exc:
            # too many dropouts for the protocol: no result, both models stay as they are
            failed.append(rnd)
            say(f"round {rnd:>2}: FAILED, no result ({exc}); both global models unchanged")
            per_round.append({"round": rnd, "failed": str(exc)})
            if bar is not None:
                bar.update(1)
            continue
        all_verified &= outcome.verified
        if outcome.config.has_dp:  # the noisy mean update
            dp_info = dp_report(outcome.config.dp)
            global_secure = global_secure + torch.from_numpy(outcome.mean).to(global_secure.dtype)
        else:
            global_secure = torch.from_numpy(outcome.mean)

        # plain FedAvg: same seeds, same dropouts; a client counts iff it uploaded
        uploaded = [
            node
            for node in range(p.clients)
            if offline.get(node) is None or offline[node] == "unmask"
        ]
        vecs, weights = [], []
        for node in uploaded:
            vec, w = _local_update(global_plain, spec, p, parts[node], rnd, node)
            vecs.append(vec.clamp(-p.clip, p.clip))
            weights.append(w)
        wt = torch.tensor(weights, dtype=torch.float64)
        global_plain = (torch.stack(vecs) * wt[:, None]).sum(0) / wt.sum()

        vector_to_model(global_secure, spec, eval_model)
        acc_s = accuracy(eval_model, test)
        vector_to_model(global_plain, spec, eval_model)
        acc_p = accuracy(eval_model, test)
        secs = dict(outcome.seconds, train=train_s)
        for k in totals:
            totals[k] += secs.get(k, 0.0)
        per_round.append(
            {
                "round": rnd,
                "accuracy_secure": acc_s,
                "accuracy_plain": acc_p,
                "verified": outcome.verified,
                "included": list(outcome.included),
                "plain_included": [n + 1 for n in uploaded],
                "dropouts": {str(n + 1): s for n, s in sorted(offline.items())},
                "faults": outcome.faults,
                "seconds": secs,
            }
        )
        drops = ", ".join(f"{n + 1}@{s}" for n, s in sorted(offline.items())) or "none"
        say(
            f"round {rnd:>2}: acc secure {acc_s:6.2%}  plain {acc_p:6.2%}  "
            f"verified {'yes' if outcome.verified else 'NO'}  included {len(outcome.included)}"
            f"/{p.clients}  dropouts {drops}  "
            f"[client {secs['client_mean']:.2f}s committee {secs['committee_mean']:.2f}s "
            f"board {secs['board']:.2f}s aggregator {secs['aggregator']:.2f}s "
            f"verifier {secs['verifier']:.2f}s]"
        )
        if bar is not None:
            bar.set_postfix(secure=f"{acc_s:.3f}", plain=f"{acc_p:.3f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    vector_to_model(global_secure, spec, eval_model)
    final_secure = accuracy(eval_model, test)
    vector_to_model(global_plain, spec, eval_model)
    final_plain = accuracy(eval_model, test)
    result = DemoResult(
        rounds=p.rounds,
        accuracy_secure=final_secure,
        accuracy_plain=final_plain,
        all_verified=all_verified,
        failed_rounds=failed,
        board=p.board,
        per_round=per_round,
        seconds=totals,
        round_dir=str(out_dir),
        params=asdict(p),
        dp=dp_info,
    )
    if dp_info is not None:
        say("differential privacy of the secure run: " + json.dumps(dp_info))
    say(
        f"final test accuracy: secure {result.accuracy_secure:.2%}  plain FedAvg "
        f"{result.accuracy_plain:.2%}  (difference "
        f"{100 * abs(result.accuracy_secure - result.accuracy_plain):.2f} points)"
    )
    say(
        "seconds over all rounds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in totals.items())
        + " (client / committee: mean per node per round, summed over rounds)"
    )
    say(
        f"every round verified: {'yes' if all_verified else 'NO'}; transcripts in "
        f"{out_dir}/round-<k> (check one with: pvss-secagg verify {out_dir}/round-1)"
    )
    return result


def add_arguments(ap: Any) -> None:
    """The ``demo`` subcommand's options (``secagg.cli`` wires them)."""
    d = DemoParams()
    ap.add_argument("--rounds", type=int, default=d.rounds, help="federated rounds")
    ap.add_argument("--clients", type=int, default=d.clients, help="nodes (each a client)")
    ap.add_argument(
        "--committee", type=int, default=d.committee, help="committee size m (the roster's)"
    )
    ap.add_argument(
        "--threshold", type=int, default=d.threshold, help="t: any t+1 members reconstruct"
    )
    ap.add_argument(
        "--dropout", type=float, default=d.dropout, help="fraction of clients dropping per round"
    )
    ap.add_argument("--alpha", type=float, default=d.alpha, help="Dirichlet label skew")
    ap.add_argument("--hidden", type=int, default=d.hidden, help="hidden units of the MLP")
    ap.add_argument("--epochs", type=int, default=d.epochs, help="local epochs per round")
    ap.add_argument("--lr", type=float, default=d.lr, help="local SGD learning rate")
    ap.add_argument("--clip", type=float, default=d.clip, help="parameters clipped to ±CLIP")
    ap.add_argument("--quant-bits", type=int, default=d.quant_bits, help="quantization bits q")
    ap.add_argument("--graph", default=d.graph, help="complete | regular:K")
    ap.add_argument("--board", default=d.board, help=f"board kind: {' | '.join(BOARD_KINDS)}")
    ap.add_argument("--seed", type=int, default=d.seed, help="seeds splits, training, dropouts")
    ap.add_argument("--out", default=d.out, help="round directories go to OUT/round-<k>")
    ap.add_argument(
        "--dp-epsilon",
        type=float,
        default=None,
        help="distributed DP (SPEC.md §10): epsilon of the whole run (secure run only)",
    )
    ap.add_argument("--dp-delta", type=float, default=d.dp_delta, help="DP delta")
    ap.add_argument("--dp-clip", type=float, default=d.dp_clip, help="L2 clip of an update")
    ap.add_argument(
        "--dp-mechanism", default=d.dp_mechanism, choices=["ddg", "skellam"], help="DP noise"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON line last")


def main(args: Any) -> int:
    """Run the demo from parsed arguments; exit 0 iff every round produced a verified
    result and the final accuracies are within one point."""
    from secagg.errors import ConfigError  # noqa: PLC0415

    try:
        p = DemoParams(
            rounds=args.rounds,
            clients=args.clients,
            committee=args.committee,
            threshold=args.threshold,
            dropout=args.dropout,
            alpha=args.alpha,
            hidden=args.hidden,
            epochs=args.epochs,
            lr=args.lr,
            clip=args.clip,
            quant_bits=args.quant_bits,
            board=args.board,
            graph=args.graph,
            seed=args.seed,
            out=args.out,
            dp_epsilon=getattr(args, "dp_epsilon", None),
            dp_delta=getattr(args, "dp_delta", 1e-5),
            dp_clip=getattr(args, "dp_clip", 1.0),
            dp_mechanism=getattr(args, "dp_mechanism", "ddg"),
        )
        p.dp_spec()  # validates the DP parameters
        if p.rounds < 1 or not 0 <= p.dropout < 1:
            raise ConfigError("rounds must be >= 1 and dropout in [0, 1)")
        if p.board not in ("memory", "evm", "anvil") and not p.board.startswith("rpc:"):
            raise ConfigError(f"board: {p.board!r} is not one of {', '.join(BOARD_KINDS)}")
        res = run_demo(p, progress=not args.json, say=(lambda _m: None) if args.json else print)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(res.to_json())
    ok = (
        res.all_verified
        and not res.failed_rounds
        # with DP the accuracies differ by design: the noise is the point
        and (res.dp is not None or abs(res.accuracy_secure - res.accuracy_plain) <= 0.01)
    )
    return 0 if ok else 1

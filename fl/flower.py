"""Flower integration: ``PvssSecAggWorkflow`` (ServerApp) and ``pvss_secagg_mod``
(ClientApp), shaped like Flower's ``SecAggPlusWorkflow`` / ``secaggplus_mod``.

Switching a Flower app from SecAgg+ to publicly verifiable secure aggregation::

    fit_workflow = PvssSecAggWorkflow(roster="roster.json")        # was SecAggPlusWorkflow(...)
    app = ClientApp(client_fn=client_fn, mods=[pvss_secagg_mod])   # was mods=[secaggplus_mod]

Trust. The server is not trusted with anyone's key or with deciding who sits where
(SPEC.md §6.13). The deployment gives every node its own identity file and everyone
(server included) the same roster file (``secagg.roster.make_deployment`` writes both);
a node finds them in its ``node_config`` (``pvss-identity``, ``pvss-roster``: paths) or,
in simulations, under ``$PVSS_SECAGG_DEPLOYMENT/identities/node-<partition-id>.json``
and ``$PVSS_SECAGG_DEPLOYMENT/roster.json``. Every post a node makes is signed by its
identity on the view it acted on; the node re-verifies the whole relayed board, checks
the round against its roster, pins what it saw, and members decrypt only after a
quorum confirmed the same included set.

How a round maps onto Flower messages. Every fit round is one secure-aggregation round
on its own board, hosted by the ServerApp. The strategy samples nodes as usual
(``configure_fit``); each sampled node whose identity the roster admits becomes a
client (seats 1..n in node-id order); the committee is the roster's, wherever its nodes
are (a committee node that was not sampled sits as a member only). Messages:

0. ``hello`` (once per node, cached): the node tells its identity's address.
1. ``register``: the node makes fresh round keys and returns its signed
   ``Registration`` (s).
2. ``seed``: members reveal their seed contribution (the graph is drawn from them).
3. ``deal``: clients return their ``DealingsPost``.
4. ``upload``: the message also carries the strategy's ``FitIns``; the mod lets the
   ClientApp train, then returns its ``MaskedInputPost`` and the masked vector, and
   strips the parameters from the reply (only the masked vector leaves the node).
5. ``confirm`` / 6. ``unmask``: members confirm the U-fixing head, then return their
   ``SharesPost`` once a quorum confirmed it.

Each request carries the board's transcript so far. Replies are codec-encoded
``SignedPost`` s (bytes in a ``ConfigRecord``); the server checks each is for a seat
the replying node holds (Flower's ``src_node_id``) and submits it — the board checks the
signature against the seat's identity — and advances the board height between phases.
Nodes that time out or fail at any stage are dropouts; a committee seat that never
registers or reveals halts the round (logged as an error). At the end the server aggregates, writes
``round_dir/round-<k>/`` (``transcript.msgpack`` + ``blobs/``), re-verifies it with
``verify_round`` and only then hands the weighted mean to ``Strategy.aggregate_fit``; a
round that does not verify raises :class:`fl.host.RoundVerificationError` naming the
faulty party.

Weighting is FedAvg's: a client's weight is its ``num_examples``, which must not exceed
``max_weight``. The masked vector is the client's float parameters (integer / bool
arrays are not aggregated; the global model's values are carried through, see
:mod:`fl.tensors`). As with SecAgg+, the reply keeps the ``FitRes`` status, metrics and
``num_examples`` in the clear for the strategy; only the parameters are masked.

Differential privacy (SPEC.md §10). ``PvssSecAggWorkflow(dp=DpSpec(epsilon, delta,
rounds, l2_clip))`` calibrates each round's noise for its n and min_included (or takes a
fixed ``DpConfig``) and records it in the round config. With DP a node sends its model
*update* (trained parameters minus the global ones, clipped to L2 norm ``l2_clip``, with
its share of discrete noise), unweighted; the server adds the noisy mean update to the
global parameters. The node decides this from the round config it verified, not from
the server's word.

Notes: with ``timeout=None`` the server waits for every reply at every stage (as
SecAgg+ does), so a node that vanishes without an error reply stalls the round; set a
timeout in deployments. Where training and masking share a process and its cores (Ray
simulation actors), ``OMP_WAIT_POLICY=PASSIVE`` keeps the masking kernels' idle
OpenMP threads from spinning while torch trains.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from fl.host import (
    DEFAULT_CHAIN_ID,
    NodeRoles,
    RoundFailed,
    RoundHost,
    RoundOutcome,
    drive_round,
    make_round_config,
)
from fl.relay import STAGE_HELLO, STAGE_UPLOAD, NodeAgent, StageReply, StageRequest
from fl.tensors import ndarrays_to_vector, vector_to_ndarrays
from secagg import codec
from secagg.config import RoundConfig
from secagg.dp import DpConfig, DpSpec, dp_report, overflow_bits
from secagg.errors import ConfigError, InvalidEncoding, ProtocolError
from secagg.identity import Identity
from secagg.messages import TranscriptFile
from secagg.roster import Roster

__all__ = [
    "RECORD_KEY",
    "STATE_KEY",
    "PvssSecAggWorkflow",
    "DpSpec",
    "pvss_secagg_mod",
    "request_to_record",
    "request_from_record",
    "reply_to_record",
    "reply_from_record",
]

log = logging.getLogger(__name__)

RECORD_KEY = "pvss_secagg"  # the config record of a stage request / reply
STATE_KEY = "pvss_secagg_state"  # node-local state between stages (Context.state)


# ---------------------------------------------------------------------------------------
# envelope: request / reply <-> ConfigRecord
# ---------------------------------------------------------------------------------------


def request_to_record(request: StageRequest) -> Any:
    """A stage request as a Flower ``ConfigRecord``."""
    from flwr.app import ConfigRecord  # noqa: PLC0415

    return ConfigRecord(
        {
            "stage": request.stage,
            "height": request.height,
            "transcript": request.transcript,
            "client": request.client,
            "member": request.member,
        }
    )


def request_from_record(record: Mapping[str, Any]) -> StageRequest:
    """Parse a stage request; ``ProtocolError`` naming the field if malformed."""
    try:
        return StageRequest(
            stage=_typed(record, "stage", str),
            height=_typed(record, "height", int),
            transcript=_typed(record, "transcript", bytes),
            client=_typed(record, "client", int),
            member=_typed(record, "member", int),
        )
    except KeyError as exc:
        raise ProtocolError(f"stage request: missing {exc}") from None


def reply_to_record(reply: StageReply) -> Any:
    """A stage reply as a Flower ``ConfigRecord``."""
    from flwr.app import ConfigRecord  # noqa: PLC0415

    return ConfigRecord(
        {
            "posts": list(reply.posts),
            "blob": reply.blob,
            "seconds": float(reply.seconds),
            "identity": reply.identity,
        }
    )


def reply_from_record(record: Mapping[str, Any]) -> StageReply:
    """Parse a stage reply; ``ProtocolError`` naming the field if malformed."""
    try:
        posts = record["posts"]
        if not isinstance(posts, list) or not all(isinstance(p, bytes) for p in posts):
            raise ProtocolError("stage reply: posts must be a list of bytes")
        return StageReply(
            tuple(posts),
            _typed(record, "blob", bytes),
            _typed(record, "seconds", float),
            _typed(record, "identity", bytes),
        )
    except KeyError as exc:
        raise ProtocolError(f"stage reply: missing {exc}") from None


def _typed(record: Mapping[str, Any], key: str, kind: type) -> Any:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ProtocolError(f"{RECORD_KEY}.{key}: expected {kind.__name__}")
    return value


# ---------------------------------------------------------------------------------------
# client side
# ---------------------------------------------------------------------------------------


DEPLOYMENT_ENV = "PVSS_SECAGG_DEPLOYMENT"


def node_deployment(node_config: Mapping[str, Any]) -> tuple[Identity, Roster]:
    """The node's own identity and roster: ``node_config['pvss-identity']`` and
    ``['pvss-roster']`` (paths), else ``$PVSS_SECAGG_DEPLOYMENT/identities/
    node-<partition-id>.json`` and ``.../roster.json`` (simulations). ``ProtocolError``
    naming what is missing."""
    ident = node_config.get("pvss-identity")
    roster = node_config.get("pvss-roster")
    base = os.environ.get(DEPLOYMENT_ENV)
    if (ident is None or roster is None) and base:
        part = node_config.get("partition-id")
        if ident is None and part is not None:
            ident = str(Path(base) / "identities" / f"node-{int(part)}.json")
        if roster is None:
            roster = str(Path(base) / "roster.json")
    if ident is None or roster is None:
        raise ProtocolError(
            "node: no identity/roster: set node_config pvss-identity and pvss-roster "
            f"(or ${DEPLOYMENT_ENV} for simulations)"
        )
    return Identity.load(str(ident)), Roster.load(str(roster))


def _round_has_dp(transcript: bytes) -> bool:
    """Whether the relayed round (its config, event 0) adds DP noise; the agent
    re-verifies the whole transcript before anything is masked."""
    try:
        events = codec.decode(transcript, TranscriptFile).events
        return bool(events) and codec.decode(events[0].body, RoundConfig).has_dp
    except (InvalidEncoding, ConfigError) as exc:
        raise ProtocolError(f"node: unreadable round config: {exc}") from None


def pvss_secagg_mod(msg: Any, ctxt: Any, call_next: Any) -> Any:
    """ClientApp mod: answers the stages of ``PvssSecAggWorkflow``.

    TRAIN messages that carry a ``pvss_secagg`` record are protocol stages; anything
    else passes through untouched. At the ``upload`` stage the wrapped ClientApp trains
    (``call_next``); its parameters are flattened, weighted by ``num_examples``,
    masked, and removed from the reply. Secrets between stages live in the node-local
    ``Context.state``. In a DP round the masked vector is the update (trained minus
    received parameters), privatized. Any error (a relayed board that does not verify,
    a weight above ``max_weight``...) propagates, so Flower returns an error reply and the server
    counts the node as a dropout.
    """
    from flwr.app import ConfigRecord, Message, RecordDict  # noqa: PLC0415
    from flwr.app.message_type import MessageType  # noqa: PLC0415
    from flwr.common import parameters_to_ndarrays  # noqa: PLC0415
    from flwr.compat.common import recorddict_compat as compat  # noqa: PLC0415

    if (
        msg.metadata.message_type != MessageType.TRAIN
        or RECORD_KEY not in msg.content.config_records
    ):
        return call_next(msg, ctxt)
    request = request_from_record(msg.content.config_records[RECORD_KEY])
    saved = ctxt.state.config_records.get(STATE_KEY)
    identity, roster = node_deployment(ctxt.node_config)
    agent = NodeAgent(
        cast(bytes, saved["state"]) if saved is not None else b"",
        identity=identity,
        roster=roster,
    )
    out_content = RecordDict()
    base: np.ndarray | None = None
    if request.stage == STAGE_UPLOAD and _round_has_dp(request.transcript):
        fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        base, _ = ndarrays_to_vector(parameters_to_ndarrays(fitins.parameters))

    def update() -> tuple[np.ndarray, int]:
        nonlocal out_content
        out_msg = call_next(msg, ctxt)
        if out_msg.has_error():
            raise ProtocolError(f"client app failed to train: {out_msg.error.reason}")
        out_content = out_msg.content
        fitres = compat.recorddict_to_fitres(out_content, keep_input=True)
        vector, _ = ndarrays_to_vector(parameters_to_ndarrays(fitres.parameters))
        for arrays in out_content.array_records.values():
            arrays.clear()  # only the masked vector leaves the node
        if base is not None:  # DP: the update, not the parameters
            if base.shape != vector.shape:
                raise ProtocolError("node: trained parameters do not match the received ones")
            vector = vector - base
        return vector, int(fitres.num_examples)

    try:
        reply = agent.handle(request, update if request.stage == STAGE_UPLOAD else None)
    finally:  # what the node erased (even on a refusal) stays erased
        ctxt.state.config_records[STATE_KEY] = ConfigRecord({"state": agent.state_bytes()})
    out_content.config_records[RECORD_KEY] = reply_to_record(reply)
    return Message(out_content, reply_to=msg)


# ---------------------------------------------------------------------------------------
# server side
# ---------------------------------------------------------------------------------------


class PvssSecAggWorkflow:
    """Fit workflow for publicly verifiable secure aggregation (use as
    ``DefaultWorkflow(fit_workflow=PvssSecAggWorkflow(...))`` on a ``LegacyContext``).

    Parameters
    ----------
    roster : Roster | str | Path
        The deployment's roster (or its file): the committee (m identities, seat order),
        the threshold t, the admissible clients, the floors on the included set. Every
        node holds the same file and refuses a round that disagrees with it.
    identity : Identity | str | Path, optional
        The server's own identity (signs each round's config and result); a fresh one
        per workflow if omitted (pin it in the roster's ``aggregator`` to make nodes
        refuse any other server).
    clipping_range : float (default 8.0)
        Parameters are clipped to [-c, c] before quantization.
    quantization_bits : int (default 16)
        q: each coordinate is quantized to 2^q levels (error < 2c/(2^q-1)).
    modulus_bits : int, optional
        b: masked vectors live in Z_{2^b}; None (default) takes the smallest b with
        n * max_weight * (2^q - 1) < 2^b.
    max_weight : int (default 1000)
        W, the largest ``num_examples`` a client may report (a larger one drops the
        client with an error).
    timeout : float, optional
        Seconds to wait for replies at each stage (None: wait for all).
    board : str (default "memory")
        The board kind (see :func:`fl.host.make_board`).
    round_dir : str | Path (default "pvss-rounds")
        Round k writes ``round_dir/round-<k>/transcript.msgpack`` and ``blobs/``.
    graph : str (default "complete")
        Mask graph: ``complete`` (SecAgg) or ``regular:K`` (SecAgg+).
    seed : int, optional
        Seeds the memory board's address (tests, demos); None uses system randomness.
    backend : str, optional
        Masking backend of the aggregator and the verifier.
    dp : DpSpec | DpConfig, optional
        Distributed differential privacy (SPEC.md §10): a ``DpSpec`` (epsilon, delta,
        rounds, l2_clip, mechanism, colluders) is calibrated every round for its
        dimension and min_included (minus ``colluders``); a ``DpConfig`` is used as is
        (its dim and min_clients must fit every round). Nodes then send clipped, noised,
        unweighted model updates; ``modulus_bits`` None takes ``overflow_bits``. The
        round's DP report is in ``outcomes[k].config.dp`` and logged.
    """

    def __init__(
        self,
        roster: Roster | str | os.PathLike[str],
        *,
        identity: Identity | str | os.PathLike[str] | None = None,
        clipping_range: float = 8.0,
        quantization_bits: int = 16,
        modulus_bits: int | None = None,
        max_weight: int = 1000,
        timeout: float | None = None,
        board: str = "memory",
        round_dir: str | os.PathLike[str] = "pvss-rounds",
        graph: str = "complete",
        chain_id: int = DEFAULT_CHAIN_ID,
        seed: int | None = None,
        backend: str | None = None,
        dp: DpSpec | DpConfig | None = None,
    ) -> None:
        if dp is not None and not isinstance(dp, (DpSpec, DpConfig)):
            raise ConfigError(f"dp: expected a DpSpec or DpConfig, got {type(dp).__name__}")
        self.dp = dp
        self.roster = roster if isinstance(roster, Roster) else Roster.load(roster)
        if identity is None:
            self.identity = Identity.generate()
        elif isinstance(identity, Identity):
            self.identity = identity
        else:
            self.identity = Identity.load(identity)
        if clipping_range <= 0:
            raise ConfigError(f"clipping_range: must be > 0, got {clipping_range}")
        if isinstance(max_weight, bool) or not isinstance(max_weight, int) or max_weight < 1:
            raise ConfigError(f"max_weight: must be an integer >= 1, got {max_weight!r}")
        self.committee_size = self.roster.committee_size
        self.threshold = self.roster.threshold
        self.clipping_range = float(clipping_range)
        self.quantization_bits = quantization_bits
        self.modulus_bits = modulus_bits
        self.max_weight = max_weight
        self.timeout = timeout
        self.board = board
        self.round_dir = Path(round_dir)
        self.graph = graph
        self.chain_id = chain_id
        self.backend = backend
        rng = random.Random(seed) if seed is not None else None
        self.board_address = rng.randbytes(20) if rng is not None else os.urandom(20)
        self.outcomes: list[RoundOutcome] = []
        self._addresses: dict[int, bytes] = {}  # node id -> identity address (hello)

    def with_dp(self, config: RoundConfig) -> RoundConfig:
        """``config`` with this workflow's DP: the noise for its dim and min_included,
        clip = the L2 clip, the modulus ``overflow_bits`` unless ``modulus_bits`` is set."""
        dp = self.dp
        if isinstance(dp, DpSpec):
            dp = dp.calibrate(config.dim, config.min_included)
        assert isinstance(dp, DpConfig)
        bits = self.modulus_bits or overflow_bits(dp, config.n_clients)
        return dataclasses.replace(config, dp=dp, clip=float(dp.l2_clip), bits=bits)

    def _hello(self, grid: Any, nodes: list[int], group: str) -> None:
        """Ask nodes whose identity the server does not know yet for their address (the
        address is public; a node that lies cannot sign for the seat it gets)."""
        from flwr.app import Message, RecordDict  # noqa: PLC0415
        from flwr.app.message_type import MessageType  # noqa: PLC0415

        unknown = [n for n in nodes if n not in self._addresses]
        if not unknown:
            return
        out = []
        for node in unknown:
            content = RecordDict()
            content.config_records[RECORD_KEY] = request_to_record(
                StageRequest(STAGE_HELLO, 0, b"")
            )
            out.append(
                Message(
                    content=content,
                    dst_node_id=node,
                    message_type=MessageType.TRAIN,
                    group_id=group,
                )
            )
        for reply in grid.send_and_receive(out, timeout=self.timeout):
            if reply.has_error():
                continue
            try:
                rep = reply_from_record(reply.content.config_records[RECORD_KEY])
            except (KeyError, ProtocolError):
                continue
            if len(rep.identity) == 20:
                self._addresses[reply.metadata.src_node_id] = rep.identity

    def __call__(self, grid: Any, context: Any) -> None:
        """Run one fit round (called by ``DefaultWorkflow`` every round)."""
        from flwr.common import (  # noqa: PLC0415
            ndarrays_to_parameters,
            parameters_to_ndarrays,
        )
        from flwr.compat.common import recorddict_compat as compat  # noqa: PLC0415
        from flwr.server.compat.legacy_context import LegacyContext  # noqa: PLC0415
        from flwr.server.workflow.constant import (  # noqa: PLC0415
            MAIN_CONFIGS_RECORD,
            MAIN_PARAMS_RECORD,
        )
        from flwr.server.workflow.constant import Key as WorkflowKey  # noqa: PLC0415

        if not isinstance(context, LegacyContext):
            raise TypeError(f"Expect a LegacyContext, but get {type(context).__name__}.")
        current_round = cast(
            int, context.state.config_records[MAIN_CONFIGS_RECORD][WorkflowKey.CURRENT_ROUND]
        )
        parameters = compat.arrayrecord_to_parameters(
            context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True
        )
        proxy_fitins = context.strategy.configure_fit(
            current_round, parameters, context.client_manager
        )
        if not proxy_fitins:
            log.info("configure_fit: no clients selected, cancel")
            return
        sampled = sorted(proxy.node_id for proxy, _ in proxy_fitins)
        self._hello(grid, sorted(set(sampled) | set(grid.get_node_ids())), str(current_round))
        by_address = {a: n for n, a in self._addresses.items()}
        missing = [a for a in self.roster.committee if a not in by_address]
        if missing:
            log.error(
                "round %d: committee identities %s are not connected: round skipped",
                current_round,
                ", ".join("0x" + a.hex()[:8] for a in missing),
            )
            return
        nodes = [
            n
            for n in sampled
            if n in self._addresses and self.roster.admits_client(self._addresses[n])
        ]
        if len(nodes) < 2:
            log.error("round %d: %d admissible sampled nodes, need 2", current_round, len(nodes))
            return
        proxies = {proxy.node_id: proxy for proxy, _ in proxy_fitins}
        fitins = {
            proxy.node_id: compat.fitins_to_recorddict(ins, True) for proxy, ins in proxy_fitins
        }
        global_arrays = parameters_to_ndarrays(parameters)
        _, spec = ndarrays_to_vector(global_arrays)

        try:
            config = make_round_config(
                round_id=current_round,
                n_clients=len(nodes),
                committee_size=self.committee_size,
                threshold=self.threshold,
                dim=spec.length,
                clip=self.clipping_range,
                quant_bits=self.quantization_bits,
                max_weight=self.max_weight,
                bits=self.modulus_bits,
                graph=self.graph,
                board_address=self.board_address,
                chain_id=self.chain_id,
                aggregator=self.identity.address,
                members=self.roster.committee,
                clients=tuple(self._addresses[n] for n in nodes)
                if self.roster.clients is not None
                else (),
                min_included=max(self.roster.min_included, 0),
                min_neighbours=self.roster.min_neighbours,
            )
            if self.dp is not None:
                config = self.with_dp(config)
        except ConfigError as exc:
            log.error("round %d: cannot configure the round: %s", current_round, exc)
            return
        member_of = {by_address[a]: k + 1 for k, a in enumerate(self.roster.committee)}
        seat = {node: i + 1 for i, node in enumerate(nodes)}
        roles = [
            NodeRoles(node, seat.get(node, 0), member_of.get(node, 0))
            for node in sorted(set(nodes) | set(member_of))
        ]
        host = RoundHost(
            config,
            self.round_dir / f"round-{current_round}",
            roles,
            identity=self.identity,
            board=self.board,
            backend=self.backend,
        )
        fit_replies: dict[int, Any] = {}
        failures: list[Any] = []  # error replies, for Strategy.aggregate_fit

        def send(stage: str, requests: Mapping[int, StageRequest]) -> dict[int, Any]:
            from flwr.app import Message, RecordDict  # noqa: PLC0415
            from flwr.app.message_type import MessageType  # noqa: PLC0415

            out = []
            for node, req in requests.items():
                content = fitins[node] if stage == STAGE_UPLOAD else RecordDict()
                content.config_records[RECORD_KEY] = request_to_record(req)
                out.append(
                    Message(
                        content=content,
                        dst_node_id=node,
                        message_type=MessageType.TRAIN,
                        group_id=str(current_round),
                    )
                )
            replies: dict[int, Any] = {}
            for reply in grid.send_and_receive(out, timeout=self.timeout):
                node = reply.metadata.src_node_id
                if node not in requests:
                    continue
                if reply.has_error():
                    err = ProtocolError(f"node {node}: {reply.error.reason}")
                    failures.append(err)
                    replies[node] = err
                    continue
                try:
                    replies[node] = reply_from_record(reply.content.config_records[RECORD_KEY])
                except (KeyError, ProtocolError) as exc:
                    replies[node] = ProtocolError(f"node {node}: malformed reply: {exc}")
                    failures.append(replies[node])
                    continue
                if stage == STAGE_UPLOAD:
                    fit_replies[node] = reply.content
            return replies

        try:
            outcome = drive_round(host, send)
        except RoundFailed as exc:
            log.error("round %d: secure aggregation halted: %s", current_round, exc)
            return
        self.outcomes.append(outcome)
        log.info(
            "round %d: verified (%s), %d clients included, dropouts %s, transcript %s",
            current_round,
            "all checks passed" if outcome.verified else "FAILED",
            len(outcome.included),
            {k: v for k, v in outcome.dropped.items() if v},
            outcome.round_dir,
        )

        mean = outcome.mean
        if config.has_dp:  # the noisy mean update, applied to the global parameters
            log.info("round %d: differential privacy %s", current_round, dp_report(config.dp))
            mean = ndarrays_to_vector(global_arrays)[0] + mean
        aggregated = vector_to_ndarrays(mean, spec, template=global_arrays)
        aggregated_parameters = ndarrays_to_parameters(aggregated)
        results = []
        for node in outcome.included_nodes:
            fitres = compat.recorddict_to_fitres(fit_replies[node], keep_input=True)
            fitres.parameters = aggregated_parameters
            results.append((proxies[node], fitres))
        parameters_aggregated, metrics_aggregated = context.strategy.aggregate_fit(
            current_round, results, failures
        )
        if parameters_aggregated:
            context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
                parameters_aggregated, True
            )
            context.history.add_metrics_distributed_fit(
                server_round=current_round, metrics=metrics_aggregated
            )

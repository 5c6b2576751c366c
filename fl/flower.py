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
identity on the view it acted on; the node replays the relayed board (every signature
and rule, the proofs it relies on: SPEC.md §8.2), checks the round against its roster,
pins what it saw, and members decrypt only after a quorum confirmed the same included
set.

How a round maps onto Flower messages. Every fit round is one secure-aggregation round
on its own board, hosted by the ServerApp (on a chain, optionally every round under one
task contract: ``task=``). The strategy samples nodes as usual
(``configure_fit``); each sampled node whose identity the roster admits becomes a
client (seats 1..n in node-id order); the committee is the roster's, wherever its nodes
are (a committee node that was not sampled sits as a member only). Messages:

0. ``hello`` (once per node, cached): the node tells its identity's address.
1. ``register``: the node makes fresh round keys and returns its signed
   ``Registration`` (s). In a round under a task (chain-native), a client seat's key is
   instead the node's task key, registered on the task once, by the node itself, the
   first time it is asked; the server then imports the seats' task keys
   (``KeysImported``, SPEC.md §7.8). Keep the task key across runs with
   ``node_config["pvss-state-dir"]`` (otherwise it lives in the run's
   ``Context.state`` only, and a node that lost it cannot take part in that task's
   rounds again).
2. ``seed``: members reveal their seed contribution (the graph is drawn from them).
3. ``deal``: clients return their ``DealingsPost``.
4. ``upload``: the message also carries the strategy's ``FitIns``; the mod lets the
   ClientApp train, then returns its ``MaskedInputPost`` and the masked vector, and
   strips the parameters from the reply (only the masked vector leaves the node).
5. ``confirm`` / 6. ``unmask``: members confirm the U-fixing head, then return their
   ``SharesPost`` once a quorum confirmed it.

Each request carries the board's events the node has not seen yet (the whole
transcript the first time; ``StageRequest.since``). Replies are codec-encoded
``SignedPost`` s (bytes in a ``ConfigRecord``); the server checks each is for a seat
the replying node holds (Flower's ``src_node_id``) and submits it — the board checks the
signature against the seat's identity — and advances the board height between phases.
Nodes that time out or fail at any stage are dropouts; a committee seat that never
registers or reveals halts the round (``RoundFailed``, raised in the ServerApp unless
``on_failure="skip"``). At the end the server aggregates, writes
``<round_dir>/<run-id>/round-<k>/`` (``transcript.msgpack``, ``head.hex``, ``blobs/``),
re-verifies it with ``verify_round`` and only then hands the weighted mean to
``Strategy.aggregate_fit``; a round that does not verify raises
:class:`fl.host.RoundVerificationError` naming the faulty party.

Weighting is FedAvg's: a client's weight is its ``num_examples``, clamped to
``max_weight`` (with a WARNING naming the node). The masked vector is the client's
float parameters (integer / bool arrays are not aggregated; the global model's values
are carried through, see :mod:`fl.tensors`). As with SecAgg+, the reply keeps the
``FitRes`` status, metrics and ``num_examples`` in the clear for the strategy; only the
parameters are masked.

Differential privacy (SPEC.md §10). ``PvssSecAggWorkflow(dp=DpSpec(epsilon, delta,
rounds, l2_clip))`` calibrates each round's noise for its n and min_included (or takes a
fixed ``DpConfig``) and records it in the round config. With DP a node sends its model
*update* (trained parameters minus the global ones, clipped to L2 norm ``l2_clip``, with
its share of discrete noise), unweighted; the server adds the noisy mean update to the
global parameters. The node decides this from the round config it verified, not from
the server's word.

Durable rounds (SPEC.md §6.14). The server journals each round's board in its round
directory; a ServerApp that was killed and is run again under the same run directory
(``run_config["pvss-run-name"]``, and the same server identity,
``run_config["pvss-identity"]``) resumes the unfinished round from its journal instead of
starting it over, asking only the seats whose posts the journal lacks (each upload's
``FitRes`` is kept beside it, ``fit-<node>.msgpack``). A node given
``node_config["pvss-state-dir"]`` keeps its state in a file there
(:class:`fl.relay.NodeStateFile`) instead of the per-run ``Context.state``, so it continues
a round across runs and restarts, and sends a reply again (never a new one) when a
restarted server asks for it.

Notes: with ``timeout=None`` the server waits for every reply at every stage (as
SecAgg+ does), so a node that vanishes without an error reply stalls the round; set a
timeout in deployments. Where training and masking share a process and its cores (Ray
simulation actors), ``OMP_WAIT_POLICY=PASSIVE`` keeps the masking kernels' idle
OpenMP threads from spinning while torch trains.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from fl.host import (
    DEFAULT_CHAIN_ID,
    ROLES_FILE,
    NodeRoles,
    RoundFailed,
    RoundHost,
    RoundOutcome,
    drive_round,
    log,
    make_round_config,
)
from fl.relay import (
    STAGE_HELLO,
    STAGE_UPLOAD,
    NodeAgent,
    NodeStateFile,
    StageReply,
    StageRequest,
)
from fl.tensors import ndarrays_to_vector, vector_to_ndarrays
from secagg.blobs import durable_write, durable_write_many
from secagg.boards import JOURNAL_FILE
from secagg.config import RoundConfig
from secagg.dp import DpConfig, DpSpec, dp_report, overflow_bits
from secagg.errors import ConfigError, ProtocolError
from secagg.identity import Identity
from secagg.roster import Roster
from secagg.verifier import BLOB_DIR

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

# a run's task contract when it deployed one (task="new"): a restart attaches it
TASK_FILE = "task.json"
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
            "contract": request.contract,
            "since": request.since,
            "fill": request.fill,
            "task": request.task,
            "dp": request.dp,
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
            contract=_typed(record, "contract", bytes) if "contract" in record else b"",
            since=_typed(record, "since", int),
            fill=_typed(record, "fill", bytes) if "fill" in record else b"",
            task=_typed(record, "task", bytes) if "task" in record else b"",
            dp=_typed(record, "dp", bytes) if "dp" in record else b"",
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
    state_dir = ctxt.node_config.get("pvss-state-dir")
    state_file = NodeStateFile(str(state_dir), identity.address) if state_dir else None
    if state_file is not None:  # durable: the node's file, across runs and restarts
        state = state_file.load()
    else:
        state = cast(bytes, saved["state"]) if saved is not None else b""
    rpc = ctxt.node_config.get("pvss-rpc")  # chain-native rounds: the node's own endpoint
    agent = NodeAgent(
        state,
        identity=identity,
        roster=roster,
        rpc=str(rpc) if rpc else None,
        # a task key made for a task round is on disk before the task registers it
        persist=state_file.save if state_file is not None else None,
    )
    out_content = RecordDict()
    base: np.ndarray | None = None
    # chain-native: the request's dp record, checked against the chain's hash by handle
    # before anything is sent
    if request.stage == STAGE_UPLOAD and agent.round_has_dp(request):
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
        if request.stage == STAGE_UPLOAD and agent.resent:  # the same FitRes again
            out_content = _fitres_from_extra(agent.last_extra)
        elif request.stage == STAGE_UPLOAD:
            agent.set_last_extra(_fitres_extra(out_content))
    finally:  # what the node erased (even on a refusal) stays erased
        if state_file is not None:
            state_file.save(agent.state_bytes())
        else:
            ctxt.state.config_records[STATE_KEY] = ConfigRecord({"state": agent.state_bytes()})
    if agent.clamped is not None:  # the server sees num_examples and warns, naming us
        log(
            logging.INFO,
            "node %s: num_examples %d above max_weight %d: weight clamped to %d",
            ctxt.node_id,
            agent.clamped[0],
            agent.clamped[1],
            agent.clamped[1],
        )
    out_content.config_records[RECORD_KEY] = reply_to_record(reply)
    return Message(out_content, reply_to=msg)


def _fitres_extra(content: Any) -> bytes:
    """A reply's FitRes without its parameters (status, num_examples, metrics), kept
    with the node's last reply or by the server beside its journal."""
    import msgpack  # noqa: PLC0415
    from flwr.compat.common import recorddict_compat as compat  # noqa: PLC0415

    fitres = compat.recorddict_to_fitres(content, keep_input=True)
    return msgpack.packb(
        [
            int(fitres.status.code.value),
            fitres.status.message,
            int(fitres.num_examples),
            dict(fitres.metrics),
        ],
        use_bin_type=True,
    )


def _fitres_from_extra(extra: bytes) -> Any:
    """The ``RecordDict`` of a FitRes kept by :func:`_fitres_extra` (no parameters)."""
    import msgpack  # noqa: PLC0415
    from flwr.common import Code, FitRes, Parameters, Status  # noqa: PLC0415
    from flwr.compat.common import recorddict_compat as compat  # noqa: PLC0415

    try:
        code, message, examples, metrics = msgpack.unpackb(extra, raw=False)
        fitres = FitRes(
            Status(Code(code), str(message)),
            Parameters(tensors=[], tensor_type="numpy.ndarray"),
            int(examples),
            dict(metrics),
        )
    except Exception as exc:  # msgpack / enum / type errors alike
        raise ProtocolError(f"node: the kept FitRes is unreadable ({type(exc).__name__})") from None
    return compat.fitres_to_recorddict(fitres, keep_input=True)


# ---------------------------------------------------------------------------------------
# server side
# ---------------------------------------------------------------------------------------


ON_FAILURE = ("raise", "skip")

# RoundConfig / MaskingConfig field names -> the workflow's own parameter names
_PARAM_NAMES = {
    "quant_bits": "quantization_bits",
    "bits": "modulus_bits",
    "clip": "clipping_range",
    "committee_size": "committee",
}


def _task_spec(task: str, chain_native: bool) -> str:
    """``PvssSecAggWorkflow(task=...)`` / ``run_config["pvss-task"]``: "new" or a task
    contract's 0x address; ``ConfigError`` naming the parameter otherwise."""
    if not chain_native:
        raise ConfigError(
            f"PvssSecAggWorkflow: task={task!r}: rounds under a task contract are "
            "chain-native (chain_native=True, board='rpc:URL')"
        )
    if task == "new" or re.fullmatch(r"0x[0-9a-fA-F]{40}", task):
        return task
    raise ConfigError(
        f"PvssSecAggWorkflow: task: {task!r} is neither 'new' nor a 0x-prefixed "
        "20-byte task contract address"
    )


def _workflow_error(exc: Exception) -> ConfigError:
    """A round-config error re-worded with ``PvssSecAggWorkflow``'s parameter names."""
    text = re.sub(  # "bits" as a name ("bits: ...", "bits >= 29", "bits=24"), not a unit
        r"(?<![\w^])(quant_bits|bits(?=\s*(?::|=|>=))|clip|committee_size)\b",
        lambda m: _PARAM_NAMES[m.group(1)],
        str(exc),
    )
    text = text.replace("2^quant_bits", "2^quantization_bits").replace("2^bits", "2^modulus_bits")
    if text.startswith(("threshold", "committee")):
        text += " (committee and threshold are the roster's)"
    return ConfigError(f"PvssSecAggWorkflow: {text}")


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
        W, the largest weight a client's update gets. A client reporting more
        ``num_examples`` is **clamped** to W (not excluded): its update is averaged with
        weight W, and the server logs a WARNING naming the node and its
        ``num_examples`` (once per node per round). Raise W (it costs modulus bits) if
        clients hold more examples than that and the exact FedAvg weights matter.
    honest_majority : bool (default True)
        Require 2t < m of the roster's committee (SPEC.md §6.2); False allows any
        t < m (t + 1 members still reconstruct, the privacy promise is weaker).
    timeout : float, optional
        Seconds to wait for replies at each stage (None: wait for all).
    board : str (default "memory")
        The board kind (see :func:`fl.host.make_board`).
    round_dir : str | Path, optional
        The base directory of the round directories: round k of run r writes
        ``<round_dir>/<r>/round-<k>/`` (``transcript.msgpack``, ``head.hex``,
        ``blobs/``). None (default): ``run_config["pvss-round-dir"]`` if the run sets
        it (``flwr run . --run-config 'pvss-round-dir="/data/rounds"'``), else
        ``pvss-rounds`` (relative to the ServerApp's working directory).
    run_id : str, optional
        The run's sub-directory; None (default) takes Flower's ``Context.run_id``.
    keep_rounds : int, optional
        Retention: keep only the last N round directories of the run (older ones are
        deleted after each round); None (default) keeps all.
    keep_blobs : bool (default True)
        False: delete ``blobs/`` once the round verified, keeping the transcript and its
        head (what a third party needs to audit the board, not to re-add the vectors).
    on_failure : str (default "raise")
        A round that cannot run (committee identities not connected, fewer admissible
        sampled nodes than the round needs, a configuration error, a round halted by
        :class:`fl.host.RoundFailed`) raises in the ServerApp, with the reason:
        ``ConfigError`` for configuration, ``RoundFailed`` otherwise. ``"skip"`` logs
        the reason as a WARNING and leaves the model as it was for that round. A
        round whose result does not verify always raises
        :class:`fl.host.RoundVerificationError`.
    graph : str (default "complete")
        Mask graph: ``complete`` (SecAgg) or ``regular:K`` (SecAgg+).
    seed : int, optional
        Seeds the memory board's address (tests, demos); None uses system randomness.
    backend : str, optional
        Masking backend of the aggregator and the verifier.
    chain_native : bool (default False)
        With a chain board (``board="rpc:URL"``): every round's contract is deployed
        from the server identity's own account (fund it), every node reads the round
        from the chain through its own endpoint (``node_config["pvss-rpc"]``) and
        posts from its own identity's account (fund them); the server only sends the
        stage messages and the contract's address, and checks what the chain holds
        (SPEC.md §7.4). False: the server relays (and, on a chain board, submits the
        nodes' signed posts from a relayer account of its own).
    task : str, optional
        Chain-native only: run every round under ONE task contract (SPEC.md §7.8)
        instead of a standalone contract per round. ``"new"``: the first round that
        runs deploys a task owned by the server identity (committee = the roster's,
        client seats = that round's sampled admissible nodes, in node-id order) and
        seals it; ``"0x<address>"``: attach to an existing sealed task the server
        identity owns (its committee must be the roster's). None (default):
        ``run_config["pvss-task"]`` if the run sets it, else one contract per round.
        The task's address is logged once; each round is opened under it (round ids
        1, 2, ... as the task assigns them, a fresh contract each), and every node
        checks at registration that the task opened the round it is sent. A round that
        samples a node whose identity is not on the task's sealed roster fails with
        ``RoundFailed`` naming the node ids (``on_failure`` applies: "skip" leaves the
        model as it was); a task seat whose node is not sampled is absent that round
        (a dropout at registration, so the round's ``min_included`` counts against the
        task's client seats). With ``"new"`` sample every node at the first round
        (``fraction_fit=1.0``), or later rounds may sample nodes outside the roster.
    dp : DpSpec | DpConfig, optional
        Distributed differential privacy (SPEC.md §10): a ``DpSpec`` (epsilon, delta,
        rounds, l2_clip, mechanism, colluders) is calibrated every round for its
        dimension and min_included (minus ``colluders``); a ``DpConfig`` is used as is
        (its dim and min_clients must fit every round). Nodes then send clipped, noised,
        unweighted model updates; ``modulus_bits`` None takes ``overflow_bits``. The
        round's DP report is in ``outcomes[k].config.dp`` and logged.

    Configuration errors (the roster's t and m without an honest majority, overflow of
    ``max_weight`` / ``quantization_bits`` / ``modulus_bits``, a roster floor
    ``min_included`` above its admissible clients) raise ``ConfigError`` naming these
    parameters when the workflow is constructed; those that depend on the sampled
    nodes or the model's size raise at the first round. Everything is logged through
    Flower's logger (``flwr``): stage starts and ends, dropouts and faults by node id,
    each round's verification.
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
        honest_majority: bool = True,
        timeout: float | None = None,
        board: str = "memory",
        round_dir: str | os.PathLike[str] | None = None,
        run_id: str | int | None = None,
        keep_rounds: int | None = None,
        keep_blobs: bool = True,
        on_failure: str = "raise",
        graph: str = "complete",
        chain_id: int = DEFAULT_CHAIN_ID,
        seed: int | None = None,
        backend: str | None = None,
        dp: DpSpec | DpConfig | None = None,
        chain_native: bool = False,
        task: str | None = None,
    ) -> None:
        if dp is not None and not isinstance(dp, (DpSpec, DpConfig)):
            raise ConfigError(f"dp: expected a DpSpec or DpConfig, got {type(dp).__name__}")
        self.dp = dp
        self.roster = roster if isinstance(roster, Roster) else Roster.load(roster)
        self._identity_generated = identity is None  # run_config["pvss-identity"] may set it
        if identity is None:
            self.identity = Identity.generate()
        elif isinstance(identity, Identity):
            self.identity = identity
        else:
            self.identity = Identity.load(identity)
        if isinstance(clipping_range, bool) or not clipping_range > 0:
            raise ConfigError(f"clipping_range: must be > 0, got {clipping_range}")
        if isinstance(max_weight, bool) or not isinstance(max_weight, int) or max_weight < 1:
            raise ConfigError(f"max_weight: must be an integer >= 1, got {max_weight!r}")
        if on_failure not in ON_FAILURE:
            raise ConfigError(f"on_failure: {on_failure!r} is not one of {ON_FAILURE}")
        if keep_rounds is not None and (
            isinstance(keep_rounds, bool) or not isinstance(keep_rounds, int) or keep_rounds < 1
        ):
            raise ConfigError(f"keep_rounds: must be an integer >= 1 or None, got {keep_rounds!r}")
        self.committee_size = self.roster.committee_size
        self.threshold = self.roster.threshold
        self.clipping_range = float(clipping_range)
        self.quantization_bits = quantization_bits
        self.modulus_bits = modulus_bits
        self.max_weight = max_weight
        self.honest_majority = bool(honest_majority)
        self.timeout = timeout
        self.board = board
        self.round_dir = Path(round_dir) if round_dir is not None else None
        self.run_id = None if run_id is None else str(run_id)
        self.keep_rounds = keep_rounds
        self.keep_blobs = bool(keep_blobs)
        self.on_failure = on_failure
        self.graph = graph
        self.chain_id = chain_id
        self.backend = backend
        if chain_native and (board == "memory" or board == "evm"):
            raise ConfigError(
                "chain_native: every node must reach the chain: board must be rpc:URL (or "
                "anvil for one process)"
            )
        self.chain_native = bool(chain_native)
        self.task = _task_spec(task, self.chain_native) if task is not None else None
        self._task: Any = None  # the EvmTask, once deployed or attached
        self._task_roster: tuple[tuple[bytes, ...], tuple[bytes, ...]] | None = None
        rng = random.Random(seed) if seed is not None else None
        self.board_address = rng.randbytes(20) if rng is not None else os.urandom(20)
        self.outcomes: list[RoundOutcome] = []
        self._addresses: dict[int, bytes] = {}  # node id -> identity address (hello)
        self._check_config()

    def _check_config(self) -> None:
        """What can be checked before any node is seen: a trial round config for the
        largest n the roster admits (2 for open membership), with dim 1."""
        admissible = self.roster.clients
        if admissible is not None and len(admissible) < 2:
            raise ConfigError(
                f"PvssSecAggWorkflow: the roster admits {len(admissible)} client(s); a sum "
                "needs at least 2"
            )
        n = len(admissible) if admissible is not None else max(2, self.roster.min_included)
        if self.roster.min_included > n:
            raise ConfigError(
                f"PvssSecAggWorkflow: min_included: the roster's floor "
                f"{self.roster.min_included} is above the {n} clients it admits"
            )
        self._round_config(1, n, 1)

    def _round_config(
        self, round_id: int, n: int, dim: int, clients: tuple[bytes, ...] = ()
    ) -> RoundConfig:
        """The round's config (with DP if set); ``ConfigError`` with the workflow's
        parameter names."""
        try:
            config = make_round_config(
                round_id=round_id,
                n_clients=n,
                committee_size=self.committee_size,
                threshold=self.threshold,
                dim=dim,
                clip=self.clipping_range,
                quant_bits=self.quantization_bits,
                max_weight=self.max_weight,
                bits=self.modulus_bits,
                graph=self.graph,
                board_address=self.board_address,
                chain_id=self.chain_id,
                aggregator=self.identity.address,
                members=self.roster.committee,
                clients=clients,
                min_included=max(self.roster.min_included, 0),
                min_neighbours=self.roster.min_neighbours,
                honest_majority=self.honest_majority,
            )
            if self.dp is not None and (dim > 1 or not isinstance(self.dp, DpConfig)):
                config = self.with_dp(config)
        except ConfigError as exc:
            raise _workflow_error(exc) from None
        return config

    def _fail(self, current_round: int, exc: Exception) -> None:
        """A round that cannot run: raise (default) or, with ``on_failure="skip"``,
        log a WARNING and leave the model as it was."""
        if self.on_failure == "raise":
            raise exc
        log(logging.WARNING, "round %d: skipped (on_failure='skip'): %s", current_round, exc)

    def round_path(self, context: Any, current_round: int) -> Path:
        """``<round_dir>/<run-id>/round-<k>`` for this run (see ``round_dir``)."""
        base = self.round_dir
        if base is None:
            configured = (getattr(context, "run_config", None) or {}).get("pvss-round-dir")
            base = Path(str(configured)) if configured else Path("pvss-rounds")
        run_name = (getattr(context, "run_config", None) or {}).get("pvss-run-name")
        run = (
            self.run_id
            or (str(run_name) if run_name else "")
            or str(getattr(context, "run_id", "") or "local")
        )
        return base / run / f"round-{current_round}"

    def _retain(self, run_dir: Path, outcome: RoundOutcome | None) -> None:
        """Apply ``keep_blobs`` (to a verified round) and ``keep_rounds``; a verified
        round's resume files (journal, seats, kept FitRes) go: its transcript says all."""
        if outcome is not None:
            kept = [JOURNAL_FILE, ROLES_FILE]
            for done in [*(outcome.round_dir / k for k in kept), *outcome.round_dir.glob("fit-*")]:
                done.unlink(missing_ok=True)
        if outcome is not None and not self.keep_blobs:
            shutil.rmtree(outcome.round_dir / BLOB_DIR, ignore_errors=True)
        if self.keep_rounds is None or not run_dir.is_dir():
            return
        rounds = sorted(
            (int(p.name.removeprefix("round-")), p)
            for p in run_dir.iterdir()
            if p.is_dir() and re.fullmatch(r"round-[0-9]+", p.name)
        )
        for _, old in rounds[: -self.keep_rounds]:
            shutil.rmtree(old, ignore_errors=True)

    def with_dp(self, config: RoundConfig) -> RoundConfig:
        """``config`` with this workflow's DP: the noise for its dim and min_included,
        clip = the L2 clip, the modulus ``overflow_bits`` unless ``modulus_bits`` is set."""
        dp = self.dp
        if isinstance(dp, DpSpec):
            dp = dp.calibrate(config.dim, config.min_included)
        assert isinstance(dp, DpConfig)
        bits = self.modulus_bits or overflow_bits(dp, config.n_clients)
        return dataclasses.replace(config, dp=dp, clip=float(dp.l2_clip), bits=bits)

    @property
    def task_address(self) -> str | None:
        """The task contract the rounds run under (checksummed 0x address), once the
        first round deployed or attached it; None otherwise."""
        return None if self._task is None else str(self._task.address)

    def _task_clients(
        self, current_round: int, nodes: list[int], run_dir: Path
    ) -> tuple[bytes, ...]:
        """The client seats (identities, seat order) of the task this round runs under:
        the task deployed now (``task="new"``, the first time: committee = the roster's,
        clients = the sampled admissible ``nodes``, then sealed) or attached (an
        address, the first time), and reused after. ``RoundFailed`` naming the sampled
        nodes whose identity is not on the task's sealed roster; ``ConfigError`` for a
        task this server cannot use.

        A deployed task's address is kept in ``run_dir/task.json`` (durably, before its
        roster is sent): a server restarted under the same run attaches that task (and
        seals its roster if the crash came first) instead of deploying another one
        (SPEC.md §6.14)."""
        from secagg.boards.task import EvmTask  # noqa: PLC0415 - needs the evm extra

        if self._task is None:
            provider = self.board
            kept = run_dir / TASK_FILE
            address = self.task
            if self.task == "new" and kept.is_file():  # this run deployed it: a restart
                try:
                    address = str(json.loads(kept.read_text())["task"])
                except (OSError, ValueError, TypeError, KeyError) as exc:
                    raise ConfigError(f"PvssSecAggWorkflow: {kept}: unreadable ({exc})") from None
            if address == "new":
                task = EvmTask.deploy(provider, self.identity, self.committee_size)
                run_dir.mkdir(parents=True, exist_ok=True)
                durable_write(kept, json.dumps({"task": str(task.address)}).encode())
                task.add_roster(list(self.roster.committee), [self._addresses[n] for n in nodes])
                how = "deployed"
            else:
                try:
                    task = EvmTask.attach(provider, address, self.identity)
                except ProtocolError as exc:
                    raise ConfigError(f"PvssSecAggWorkflow: task: {exc}") from None
                if task.owner is None:
                    raise ConfigError(
                        f"PvssSecAggWorkflow: task: {task.address} is owned by "
                        f"0x{task.owner_address.hex()}, not by this server's identity "
                        f"(0x{self.identity.address.hex()}): only its owner opens rounds"
                    )
                sealed = task.contract.functions.isSealed().call()
                if not sealed and address != self.task:  # deployed by this run, then a crash
                    want = (tuple(self.roster.committee), tuple(self._addresses[n] for n in nodes))
                    have = task.roster()
                    if any(w[: len(h)] != h for w, h in zip(want, have, strict=True)):
                        raise ConfigError(
                            f"PvssSecAggWorkflow: task: {task.address} (kept in {kept}): its "
                            "unsealed roster is not a prefix of this round's committee and "
                            "sampled clients: start a new run"
                        )
                    task.add_roster(list(want[0][len(have[0]) :]), list(want[1][len(have[1]) :]))
                elif not sealed:
                    raise ConfigError(
                        f"PvssSecAggWorkflow: task: {task.address}: its roster is not sealed"
                    )
                how = "attached" if address == self.task else f"kept in {kept}, attached"
            members, clients = task.roster()
            if members != tuple(self.roster.committee):
                raise ConfigError(
                    f"PvssSecAggWorkflow: task: {task.address}: its committee is not the "
                    "roster's (members, in seat order)"
                )
            self._task, self._task_roster = task, (members, clients)
            log(
                logging.INFO,
                "PvssSecAggWorkflow: task %s %s (owner 0x%s, %d members, %d client seats, "
                "%d rounds so far); every round is opened under it",
                how,
                task.address,
                self.identity.address.hex(),
                len(members),
                len(clients),
                task.last_round,
            )
        assert self._task_roster is not None
        clients = self._task_roster[1]
        outside = [n for n in nodes if self._addresses[n] not in clients]
        if outside:
            raise RoundFailed(
                f"round {current_round}: sampled nodes {outside} (identities "
                + ", ".join("0x" + self._addresses[n].hex()[:8] for n in outside)
                + f") are not on the sealed roster of task {self._task.address} "
                f"({len(clients)} client seats): a task's roster is fixed; sample only its "
                "nodes (or run them under another task)"
            )
        return clients

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
        configured_identity = (getattr(context, "run_config", None) or {}).get("pvss-identity")
        if self._identity_generated and configured_identity:  # the same server on a rerun
            self.identity = Identity.load(str(configured_identity))
            self._identity_generated = False
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
            log(logging.INFO, "configure_fit: no clients selected, cancel")
            return
        sampled = sorted(proxy.node_id for proxy, _ in proxy_fitins)
        self._hello(grid, sorted(set(sampled) | set(grid.get_node_ids())), str(current_round))
        by_address = {a: n for n, a in self._addresses.items()}
        missing = [a for a in self.roster.committee if a not in by_address]
        if missing:
            seats = [k + 1 for k, a in enumerate(self.roster.committee) if a not in by_address]
            return self._fail(
                current_round,
                RoundFailed(
                    f"round {current_round}: committee seats {seats} (identities "
                    + ", ".join("0x" + a.hex()[:8] for a in missing)
                    + ") are not connected: the committee is the roster's and every member "
                    "must run a node"
                ),
            )
        nodes = [
            n
            for n in sampled
            if n in self._addresses and self.roster.admits_client(self._addresses[n])
        ]
        configured_task = (getattr(context, "run_config", None) or {}).get("pvss-task")
        if self.task is None and configured_task:
            try:
                self.task = _task_spec(str(configured_task), self.chain_native)
            except ConfigError as exc:
                return self._fail(current_round, exc)
        task_clients: tuple[bytes, ...] | None = None
        if self.task is not None:
            try:
                task_clients = self._task_clients(
                    current_round, nodes, self.round_path(context, current_round).parent
                )
            except (ConfigError, RoundFailed) as exc:
                return self._fail(current_round, exc)
        need = max(2, self.roster.min_included)
        if len(nodes) < need:
            return self._fail(
                current_round,
                RoundFailed(
                    f"round {current_round}: {len(nodes)} admissible sampled nodes (of "
                    f"{len(sampled)} sampled), the round needs at least {need} "
                    f"({'the roster min_included' if need > 2 else 'a sum needs 2'}): "
                    "sample more nodes (the strategy's min_fit_clients / fraction_fit)"
                ),
            )
        proxies = {proxy.node_id: proxy for proxy, _ in proxy_fitins}
        fitins = {
            proxy.node_id: compat.fitins_to_recorddict(ins, True) for proxy, ins in proxy_fitins
        }
        global_arrays = parameters_to_ndarrays(parameters)
        _, spec = ndarrays_to_vector(global_arrays)

        try:
            if task_clients is not None:  # the task's roster: unsampled seats are absent
                config = self._round_config(
                    self._task.last_round + 1, len(task_clients), spec.length, task_clients
                )
            else:
                config = self._round_config(
                    current_round,
                    len(nodes),
                    spec.length,
                    tuple(self._addresses[n] for n in nodes)
                    if self.roster.clients is not None
                    else (),
                )
        except ConfigError as exc:
            return self._fail(current_round, exc)
        round_path = self.round_path(context, current_round)
        # a journaled memory board, or a chain-native round on rpc:URL (chain.json)
        resume = RoundHost.can_resume(round_path)
        if round_path.exists() and not resume:  # a rerun under the same run id: no blobs mixed in
            log(logging.WARNING, "round %d: replacing %s", current_round, round_path)
            shutil.rmtree(round_path)
        member_of = {by_address[a]: k + 1 for k, a in enumerate(self.roster.committee)}
        if task_clients is not None:  # seat i of the task is its i-th roster client
            seat = {node: task_clients.index(self._addresses[node]) + 1 for node in nodes}
            absent = sorted(set(range(1, len(task_clients) + 1)) - set(seat.values()))
            if absent:
                log(
                    logging.INFO,
                    "round %d: task client seats %s not sampled: absent (dropouts)",
                    current_round,
                    absent,
                )
        else:
            seat = {node: i + 1 for i, node in enumerate(nodes)}
        roles = [
            NodeRoles(node, seat.get(node, 0), member_of.get(node, 0))
            for node in sorted(set(nodes) | set(member_of))
        ]
        if resume:  # the journal's round, its seats and config (SPEC.md §6.14)
            host = RoundHost.resume(round_path, identity=self.identity, backend=self.backend)
            config = host.config
        else:
            try:
                host = RoundHost(
                    config,
                    round_path,
                    roles,
                    identity=self.identity,
                    board=self.board,
                    backend=self.backend,
                    chain_native=self.chain_native,
                    task=self._task,
                )
            except ConfigError as exc:
                return self._fail(current_round, exc)
        fit_replies: dict[int, Any] = {}
        failures: list[Any] = []  # error replies, for Strategy.aggregate_fit

        def send(stage: str, requests: Mapping[int, StageRequest]) -> dict[int, Any]:
            from flwr.app import Message, RecordDict  # noqa: PLC0415
            from flwr.app.message_type import MessageType  # noqa: PLC0415

            out = []
            for node, req in requests.items():
                if stage == STAGE_UPLOAD and node not in fitins:  # resumed, not sampled now
                    content = copy.deepcopy(next(iter(fitins.values())))
                else:
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
            fit_files: list[tuple[Path, bytes]] = []
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
                    # kept before the host journals the upload: a resumed round has it
                    fit_files.append(
                        (round_path / f"fit-{node}.msgpack", _fitres_extra(reply.content))
                    )
                    examples = compat.recorddict_to_fitres(
                        reply.content, keep_input=True
                    ).num_examples
                    if examples > self.max_weight and not config.has_dp:  # DP: unweighted
                        log(
                            logging.WARNING,
                            "round %d: node %d reported num_examples %d above max_weight "
                            "%d: its weight is clamped to %d",
                            current_round,
                            node,
                            examples,
                            self.max_weight,
                            self.max_weight,
                        )
            durable_write_many(fit_files)  # on disk before the host sees a reply (§6.14)
            return replies

        try:
            outcome = drive_round(host, send)
        except RoundFailed as exc:
            self._retain(round_path.parent, None)
            return self._fail(current_round, exc)
        for node in outcome.included_nodes:
            if node not in fit_replies:  # uploaded before the server restarted
                kept = round_path / f"fit-{node}.msgpack"
                fit_replies[node] = _fitres_from_extra(kept.read_bytes())
        self.outcomes.append(outcome)
        self._retain(round_path.parent, outcome)

        mean = outcome.mean
        if config.has_dp:  # the noisy mean update, applied to the global parameters
            log(
                logging.INFO,
                "round %d: differential privacy %s",
                current_round,
                dp_report(config.dp),
            )
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

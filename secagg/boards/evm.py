"""The board on an EVM chain: ``EvmBoard`` runs a round through the ``PvssRound``
contract (contracts/src/PvssRound.sol). This is the only Python module that knows
contracts/.

Providers: ``"evm"`` (the embedded py-evm chain, web3 ``EthereumTesterProvider``; the
default), ``"anvil"`` (starts a local anvil on a free loopback port and stops it on
``close``; the binary is ``$PVSS_SECAGG_ANVIL``, else ``node_modules/.bin/anvil`` of this
checkout or of the working directory, else ``anvil`` on PATH), ``"rpc:URL"`` (any
JSON-RPC node whose first account is unlocked and funded; it pays for the other
accounts).

The contract artifacts (ABI + bytecode) are package data, ``secagg/boards/artifacts/``
(byte-identical copies of contracts/build/, written by ``make contracts``), loaded with
``importlib.resources`` so an installed wheel works from any directory. The module
needs the ``evm`` extra (web3, eth-tester[py-evm]); without it, importing it raises
``ConfigError`` naming ``pip install 'pvss-secagg[evm]'``.

Posts are ``SignedPost`` s: the contract checks each sender identity's signature over
(round, seat, view, post digest) with ``ecrecover`` (SPEC.md §6.9), so ``msg.sender``
proves nothing: a board sends its transactions from the party's own account
(``account=`` / ``EvmBoard.attach(..., identity)``: the identity's key is its Ethereum
account) or, without one, from a relayer account of its own that needs no party's key.
``EvmBoard.attach`` opens a deployed contract from the chain alone (code, immutables
and event 0 checked; SPEC.md §7.4, §7.6). ``submit`` turns a signed post into a contract call: it
first runs the call against the pending block (``eth_call``) to learn whether and why
the contract would revert — a revert becomes ``RuleViolation(Fault(...))`` naming the
party and the MemoryBoard rule — and then sends the transaction. ``state``, ``events``
and ``transcript`` are rebuilt from the contract's event log alone (body, post digest,
view and signature of every event), and the rebuilt head is checked against the
contract's own hash chain (``head()``) at every sync, so the roles and
``secagg.verifier.verify_round`` work unchanged.

Heights: ``height()`` is the round height the next transaction executes at
(block.number - startBlock of the contract); every transaction mines one block on the
test chains, so phase lengths must leave room for one block per post.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pvss.group import G1Point
from pvss.scrape import Dealing
from pvss.transcript import PURPOSE_PAIR
from secagg import codec
from secagg.boards import (
    ZERO_HASH,
    Board,
    Fault,
    Phase,
    PostedShares,
    RoundState,
    RuleViolation,
    compute_included,
    event_hash,
    phase_at,
)
from secagg.config import RoundConfig, dp_record_bytes, parse_graph
from secagg.dp import DpConfig
from secagg.errors import ConfigError, InvalidEncoding, ProtocolError
from secagg.graph import compute_mask_graph, compute_round_seed
from secagg.identity import Identity
from secagg.messages import (
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Confirmation,
    DealingItem,
    DealingsPost,
    Event,
    Exclusion,
    KeysImported,
    MaskedInputPost,
    Registration,
    ResultPost,
    SeedReveal,
    ShareItem,
    SharesPost,
    SignedPost,
    TranscriptFile,
)
from secagg.posts import (
    NO_SIGNATURE,
    config_packed,
    config_unpack,
    post_digest,
    signing_digest,
)

EVM_EXTRA_HINT = "pip install 'pvss-secagg[evm]'"
try:
    from eth_abi import decode as abi_decode
    from eth_account import Account
    from eth_utils import keccak
    from web3 import Web3 as _Web3  # noqa: F401 - fail here, not at the first connect
except ModuleNotFoundError as _exc:  # pragma: no cover - exercised in a subprocess test
    raise ConfigError(
        f"the EVM board needs the evm extra ({_exc.name} is not installed): {EVM_EXTRA_HINT}"
    ) from None

ROOT = Path(__file__).resolve().parents[2]  # the checkout (only for node_modules/)
ARTIFACT = "PvssRound"
VERIFIER_ARTIFACT = "PvssVerifier"
INIT_ARTIFACT = "PvssRoundInit"
# a round is a clone of PvssRound (SPEC.md §7.3 "Clones"): its runtime code is
# PROXY_HEAD || implementation (20 bytes) || PROXY_TAIL || the config (ARGS_BYTES),
# written by PvssRoundInit.init; its creation code is clone_initcode(init) || the init call
PROXY_HEAD = bytes.fromhex("365f5f3760f4603636395f5f60f436015f73")
PROXY_TAIL = bytes.fromhex("5af43d5f5f3e6032573d5ffd5b3d5ff3")
ARGS_BYTES = 244  # PvssRoundBase.ARGS_BYTES
_INIT_HEAD = bytes.fromhex("603238038060325f395f5f825f73")
_INIT_TAIL = bytes.fromhex("5af43d5f5f3e602e573d5ffd5b3d5ff3")
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"  # `make install` (npm ci) puts it here
ANVIL_ENV = "PVSS_SECAGG_ANVIL"
ANVIL_HINT = (
    "install it with `npm install @foundry-rs/anvil-linux-amd64` (node_modules/.bin/anvil) "
    f"or Foundry (https://getfoundry.sh, anvil on PATH), or set ${ANVIL_ENV} to its path"
)
# SPEC.md §7.4: a head mismatch is read again this many times (a node's newest block
# may answer eth_getLogs before its logs are indexed), pausing SYNC_PAUSE_S * attempt
SYNC_ATTEMPTS = 4
SYNC_PAUSE_S = 0.2
_LOG = logging.getLogger(__name__)
TX_GAS_CAP = 15_000_000  # SPEC.md §7.5: the gas limit of every transaction the board sends
TX_GAS = TX_GAS_CAP  # (pre-flight tells the real need; more than this never goes out)
NO_ADDRESS = "0x" + "00" * 20  # an ABI address argument meaning "none"
MAX_CHAIN_CLIENTS = 1024  # PvssRound.MAX_CHAIN_CLIENTS (SPEC.md §7.3)
MAX_CHAIN_DEGREE = 64  # PvssRound.MAX_CHAIN_DEGREE
DEALINGS_TX_BUDGET = 12_000_000  # what the board plans one split transaction for (< cap)
FUND_WEI = 10**18
DEFAULT_STAKE = 10**16
DEFAULT_BOND = 10**16

# contract error -> MemoryBoard rule
_RULES: dict[str, str] = {
    "WrongPhase": "stage",
    "DealingWindowClosed": "stage",
    "BadSignature": "signature",
    "WrongSigner": "signature",
    "WrongView": "view",
    "AlreadyRegistered": "registration",
    "IdentitySeated": "registration",
    "IdOutOfRange": "sender",
    "InvalidRole": "registration",
    "WrongValue": "registration",
    "AlreadyRevealed": "seed",
    "SeedRevealFailed": "seed",
    "SeedNotFixed": "dealings",
    "AlreadyDealt": "dealings",
    "CommitteeIncomplete": "dealings",
    "CommitteeKeysMismatch": "dealings",
    "WrongDealingSet": "dealings",
    "NoOpenDealings": "dealings",
    "TooManyDealings": "dealings",
    "ThresholdMismatch": "dealing",
    "KeyCountMismatch": "dealing",
    "RecipientMismatch": "dealing",
    "ZeroChallenge": "dealing-proof",
    "DleqFailed": "dealing-proof",
    "RsCheckFailed": "dealing-proof",
    "NoAcceptedDealings": "upload",
    "AlreadyUploaded": "upload",
    "WrongSize": "upload",
    "RoundAborted": "aborted",
    "WrongConfirmation": "confirm",
    "AlreadyConfirmed": "confirm",
    "NotConfirmed": "confirm",
    "ShareNotAllowed": "share-not-allowed",
    "ShareAlreadyPosted": "share",
    "ShareIndexMismatch": "share",
    "DealingMismatch": "share",
    "NoSuchPoint": "share",
    "SharePostFailed": "share-proof",
    "ShareRefsMismatch": "share-encoding",
    "ResultAlreadyPosted": "result",
    "IncludedMismatch": "result",
    "NotEnoughShares": "result",
    "PopFailed": "proof-of-possession",
    "NotTaskRound": "import",
    "BadImport": "import",
    "ImportMismatch": "import",
}
_ENCODING_ERRORS = ("InvalidLength", "InvalidEncoding", "IdentityKey")


def clone_initcode(round_init: bytes) -> bytes:
    """The creation code of a round (50 bytes, followed by the ABI call of
    ``PvssRoundInit.init``): copy that call into memory, DELEGATECALL ``round_init``
    with it (the round's storage is initialised in the new contract's own context),
    and deploy the runtime code it returns, or revert with its revert data."""
    if len(round_init) != 20:
        raise ValueError("clone_initcode: round_init must be a 20-byte address")
    code = _INIT_HEAD + round_init + _INIT_TAIL
    assert len(code) == 0x32  # PUSH1 0x32 (its own length) at offsets 0 and 5
    return code


def _artifact(name: str = ARTIFACT) -> dict[str, Any]:
    """The compiled contract ``name`` (package data: secagg/boards/artifacts/)."""
    from importlib.resources import files

    res = files("secagg.boards").joinpath("artifacts", f"{name}.json")
    try:
        return json.loads(res.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"contract artifact {name}.json missing from the secagg.boards package data "
            "(a broken install: reinstall pvss-secagg, or run `make contracts` in a checkout)"
        ) from None


def _error_table(abi: list[dict[str, Any]]) -> dict[bytes, tuple[str, list[str]]]:
    table = {}
    for item in abi:
        if item["type"] == "error":
            types = [i["type"] for i in item["inputs"]]
            table[keccak(text=f"{item['name']}({','.join(types)})")[:4]] = (item["name"], types)
    return table


class ContractRevert(Exception):
    """A call reverted with custom error ``name(args)`` (raw ``data``)."""

    def __init__(self, data: bytes, table: dict[bytes, tuple[str, list[str]]]) -> None:
        self.data = data
        if data[:4] in table:
            self.name, types = table[data[:4]]
            self.args_ = tuple(abi_decode(types, data[4:]))
        else:
            self.name, self.args_ = f"<revert {data.hex() or 'without data'}>", ()
        super().__init__(f"{self.name}{self.args_}")


def _revert_data(exc: Exception) -> bytes | None:
    """The revert data in a web3 / eth-tester exception, or None if it is no revert."""
    import ast

    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, dict) and isinstance(data.get("data"), str):
        return bytes.fromhex(data["data"].removeprefix("0x"))
    text = str(exc.args[0]) if exc.args else ""
    if "execution reverted" in text or type(exc).__name__ == "TransactionFailed":
        tail = text.split("execution reverted:", 1)[-1].strip()
        if tail.startswith(("b'", 'b"')):
            return ast.literal_eval(tail)
        if tail.startswith("0x"):
            return bytes.fromhex(tail[2:])
        return b""
    return None


def _create_address(sender: str, nonce: int) -> bytes:
    import rlp

    return keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[12:]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_anvil() -> Path:
    """The anvil binary: ``$PVSS_SECAGG_ANVIL``, else node_modules/.bin/anvil of the
    checkout or of the working directory, else ``anvil`` on PATH; ``ConfigError`` saying
    how to get one otherwise."""
    configured = os.environ.get(ANVIL_ENV)
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ConfigError(f"${ANVIL_ENV}={configured} is not an executable file; {ANVIL_HINT}")
    for path in (ANVIL, Path.cwd() / "node_modules" / ".bin" / "anvil"):
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ConfigError(f"anvil not found (not on PATH, no node_modules/.bin/anvil); {ANVIL_HINT}")


def start_anvil(
    log_path: Path | None = None, timeout: float = 30.0
) -> tuple[subprocess.Popen, str]:
    """Start anvil (see :func:`find_anvil`) on a free 127.0.0.1 port; returns (process,
    url)."""
    binary = find_anvil()
    port = free_port()
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [str(binary), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            if w3.is_connected():
                return proc, url
        except Exception:  # noqa: BLE001,S110 - not up yet
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise ProtocolError(f"anvil did not start on {url}")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def fund_accounts(provider: str | Any, addresses: list[bytes], wei: int = FUND_WEI) -> None:
    """Send ``wei`` to each address from the node's first (unlocked, prefunded)
    account — a deployment step on a test chain such as anvil, so that every party can
    pay for its own transactions (chain-native rounds)."""
    w3 = connect(provider)[0] if isinstance(provider, str) else provider
    funder = w3.eth.accounts[0]
    for addr in addresses:
        txh = w3.eth.send_transaction({"from": funder, "to": _checksum(addr), "value": wei})
        w3.eth.wait_for_transaction_receipt(txh, timeout=120)


class _Coordinate(int):
    """An int with py_ecc's ``.n``, which py-evm's precompile wrappers read."""

    @property
    def n(self) -> int:
        return int(self)


def _precompile_point(data: bytes, field: str) -> G1Point:
    from eth_utils import ValidationError

    try:
        return G1Point.from_bytes(data, field=field)
    except InvalidEncoding as exc:  # coordinate >= p or off the curve: the call fails
        raise ValidationError(str(exc)) from None


def fast_ecadd(data: bytes) -> tuple[_Coordinate, _Coordinate]:
    """py-evm's ``_ecadd`` on pvss.group: input right-padded to 128 bytes (EVM rule)."""
    buf = (bytes(data) + bytes(128))[:128]
    out = _precompile_point(buf[:64], "ecAdd.p1") + _precompile_point(buf[64:], "ecAdd.p2")
    return _Coordinate(out.x), _Coordinate(out.y)


def fast_ecmul(data: bytes) -> tuple[_Coordinate, _Coordinate]:
    """py-evm's ``_ecmull`` on pvss.group: input right-padded to 96 bytes, any 256-bit
    scalar (reduced mod r, as the EVM does)."""
    buf = (bytes(data) + bytes(96))[:96]
    out = _precompile_point(buf[:64], "ecMul.p") * int.from_bytes(buf[64:], "big")
    return _Coordinate(out.x), _Coordinate(out.y)


def use_fast_bn254_precompiles() -> None:
    """Make the embedded py-evm chain compute ecAdd / ecMul (0x06 / 0x07) with
    pvss.group instead of py_ecc (~20x faster). Gas is charged before the call, so it
    is unchanged; the results are the EVM's (tests run the go-ethereum precompile
    vectors, valid and invalid, through both implementations)."""
    import importlib

    # by module path: the package re-exports functions under the modules' names
    ecadd: Any = importlib.import_module("eth.precompiles.ecadd")
    ecmul: Any = importlib.import_module("eth.precompiles.ecmul")
    ecadd._ecadd = fast_ecadd
    ecmul._ecmull = fast_ecmul


def connect(provider: str) -> tuple[Any, subprocess.Popen | None]:
    """(Web3, owned anvil process or None) for 'evm', 'anvil' or 'rpc:URL'."""
    from web3 import EthereumTesterProvider, Web3

    if provider.startswith(("http://", "https://")):  # a bare URL is rpc:URL
        provider = "rpc:" + provider
    if provider in ("evm", "py-evm"):
        use_fast_bn254_precompiles()
        return Web3(EthereumTesterProvider()), None
    if provider == "anvil":
        proc, url = start_anvil()
        return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120})), proc
    if provider.startswith("rpc:"):
        url = provider[4:]
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
        try:
            w3.eth.chain_id  # noqa: B018 - the first call: fail here, in one line
        except Exception as exc:  # noqa: BLE001 - any transport error
            raise ProtocolError(
                f"board rpc:{url}: no JSON-RPC node answers ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else 'no detail'})"
            ) from None
        return w3, None
    raise ProtocolError(f"board: {provider!r} is not evm, anvil or rpc:URL")


@dataclass
class _Pending:
    # per dealer: a split dealings post's items arrive over several transactions
    dealings: dict[int, list[tuple[DealingItem, bytes]]] = field(default_factory=dict)
    dealing_sigs: dict[int, bytes] = field(default_factory=dict)


def contract_config(cfg: RoundConfig) -> tuple:
    """``PvssRound.Config`` for ``cfg`` (every field but chain id and board)."""
    k = parse_graph(cfg.graph, cfg.n_clients)
    return (
        cfg.round_id,
        cfg.n_clients,
        cfg.committee_size,
        cfg.threshold,
        0 if k is None else k,
        cfg.dim,
        cfg.quant_bits,
        cfg.bits,
        struct.pack(">d", cfg.clip),
        cfg.max_weight,
        cfg.register_blocks,
        cfg.deal_blocks,
        cfg.upload_blocks,
        cfg.unmask_blocks,
        cfg.honest_majority,
        _checksum(cfg.aggregator),
        [_checksum(a) for a in cfg.members],
        [_checksum(a) for a in cfg.clients],
        cfg.min_included,
        cfg.min_neighbours,
        cfg.confirm_quorum,
        cfg.optimistic,
        cfg.challenge_blocks,
        cfg.stake,
        cfg.bond,
        _checksum(cfg.forfeit_to),
        keccak(dp_record_bytes(cfg.dp)),
    )


def _checksum(address: bytes) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address(address)


def config_signature(aggregator: Identity, cfg: RoundConfig) -> bytes:
    """The aggregator's signature of event 0 (role 2, sender 0, view 0)."""
    return aggregator.sign(signing_digest(cfg, ROLE_AGGREGATOR, 0, ZERO_HASH, post_digest(cfg)))


class EvmBoard(Board):
    """A ``Board`` backed by one ``PvssRound`` contract.

    ``config``'s ``chain_id`` and ``board`` are replaced by the chain's id and the
    contract's (predicted) address — read ``board.config``; its roster is used as
    given. ``aggregator`` is the aggregator's identity (it must be ``config.aggregator``):
    it signs event 0 for the replaced config; alternatively pass ``sign_config``, a
    callable that returns that signature for the final config (a remote signer).
    ``mode`` (legacy) "optimistic" turns a full-mode config into an optimistic one
    with ``challenge_blocks``, ``stake`` and ``bond``; by default the config's own mode
    fields are used. The round is a clone (SPEC.md §7.3 "Clones"): ``round_init`` is
    the address of a deployed ``PvssRoundInit`` (one per chain suffices: read
    ``board.round_init`` of an earlier board); None deploys one, with its ``PvssRound``
    implementation and, unless ``verifier`` (a deployed ``PvssVerifier``) is given, a
    verifier. ``forfeit_to`` (optimistic
    only) replaces the config's: the address credited every slashed stake and forfeited
    bond, a task contract (SPEC.md §7.9). ``roster_code``: an earlier round's
    ``rosterData()`` with the same client seats, which the new round then shares
    instead of creating the same code again (SPEC.md §7.3 "Roster"; checked by its
    code hash on-chain, ignored if it differs)."""

    def __init__(
        self,
        config: RoundConfig,
        provider: str | Any = "evm",
        *,
        aggregator: Identity | None = None,
        sign_config: Callable[[RoundConfig], bytes] | None = None,
        mode: str | None = None,
        challenge_blocks: int = 2,
        stake: int = DEFAULT_STAKE,
        bond: int = DEFAULT_BOND,
        verifier: str | None = None,
        account: Identity | None = None,
        forfeit_to: bytes | None = None,
        round_init: str | None = None,
        roster_code: str | None = None,
    ) -> None:
        if mode not in (None, "full", "optimistic"):
            raise ProtocolError(f"board: mode {mode!r} is neither full nor optimistic")
        k = parse_graph(config.graph, config.n_clients)
        if config.n_clients > MAX_CHAIN_CLIENTS or (k or 0) > MAX_CHAIN_DEGREE:
            raise ConfigError(
                f"board: n_clients {config.n_clients} / graph {config.graph}: the round "
                f"contract takes n <= {MAX_CHAIN_CLIENTS} and K <= {MAX_CHAIN_DEGREE}"
            )
        if mode == "optimistic" and not config.optimistic:
            config = replace(
                config, optimistic=True, challenge_blocks=challenge_blocks, stake=stake, bond=bond
            )
        if mode == "full" and config.optimistic:
            raise ProtocolError("board: mode 'full' for an optimistic config")
        if forfeit_to is not None:
            config = replace(config, forfeit_to=forfeit_to)
        if aggregator is None and sign_config is None:
            raise ProtocolError("board: the aggregator identity (or sign_config) signs event 0")
        self._init_chain(provider, config)
        self._set_own(account)
        relayer = self._sender()
        if round_init is None:
            round_init = self._deploy_round_init(relayer, verifier)
        self.round_init = round_init
        init = self.w3.eth.contract(address=round_init, abi=_artifact(INIT_ARTIFACT)["abi"])
        self.implementation = init.functions.implementation().call()
        self.verifier = (
            self.w3.eth.contract(address=self.implementation, abi=self._abi)
            .functions.verifier()
            .call()
        )
        if verifier is not None and verifier != self.verifier:
            raise ProtocolError(
                f"board: round_init {round_init} makes rounds checked by {self.verifier}, "
                f"not the verifier given ({verifier})"
            )
        address = _create_address(relayer.address, self._nonces[relayer.address])
        self.config = replace(config, chain_id=self._chain_id, board=address)
        cfg = self.config
        if aggregator is not None and aggregator.address != cfg.aggregator:
            raise ProtocolError("board: the aggregator identity is not the config's aggregator")
        sig = sign_config(cfg) if sign_config is not None else config_signature(aggregator, cfg)  # type: ignore[arg-type]
        self._config_packed = config_packed(cfg)
        call = bytes.fromhex(
            init.encode_abi(
                "init", args=[contract_config(cfg), sig, roster_code or NO_ADDRESS]
            ).removeprefix("0x")
        )
        initcode = clone_initcode(bytes.fromhex(round_init[2:])) + call
        receipt = self._send_create(relayer, initcode, "deploy")
        if bytes.fromhex(receipt["contractAddress"][2:]) != address:
            raise ProtocolError("board: contract deployed at an unexpected address")
        self._bind(receipt["contractAddress"])
        self._reset_log()

    def _deploy_round_init(self, relayer: Any, verifier: str | None) -> str:
        """Deploys what every round on this chain shares (SPEC.md §7.3 "Clones"): the
        ``PvssVerifier`` (unless ``verifier`` is given), the ``PvssRound``
        implementation checked by it and the ``PvssRoundInit`` that clones it; returns
        the latter's address (pass it as ``round_init=`` to the next board)."""
        w3 = self.w3
        if verifier is None:
            vart = _artifact(VERIFIER_ARTIFACT)
            factory = w3.eth.contract(abi=vart["abi"], bytecode=vart["bytecode"])
            verifier = self._send(relayer, factory.constructor(), "deployVerifier")[
                "contractAddress"
            ]
        factory = w3.eth.contract(abi=self._abi, bytecode=_artifact()["bytecode"])
        impl = self._send(relayer, factory.constructor(verifier), "deployImplementation")[
            "contractAddress"
        ]
        iart = _artifact(INIT_ARTIFACT)
        factory = w3.eth.contract(abi=iart["abi"], bytecode=iart["bytecode"])
        return self._send(relayer, factory.constructor(impl), "deployRoundInit")["contractAddress"]

    def _init_chain(self, provider: str | Any, config: RoundConfig | None) -> None:
        """Connect, load the ABI and error table, set up the funding account (shared by
        a deploying and an attaching board)."""
        if isinstance(provider, str):
            self.w3, self._proc = connect(provider)
        else:
            self.w3, self._proc = provider, None
        if self._proc is not None:
            atexit.register(self.close)
        self.busy = 0.0
        self.gas: list[tuple[str, int]] = []  # (function, gasUsed) of every transaction
        # dealers whose accepted (optimistic) dealing does not decode: named here and
        # skipped by the state, never a reason to stop reading the log
        self.faults: list[Fault] = []
        self._abi = _artifact()["abi"]
        self._errors = _error_table(self._abi)
        self._errors.update(_error_table(_artifact(VERIFIER_ARTIFACT)["abi"]))
        self._errors.update(_error_table(_artifact(INIT_ARTIFACT)["abi"]))
        self._chain_id = self.w3.eth.chain_id
        self._funder: str | None = None
        key = os.environ.get("PVSS_SECAGG_EVM_KEY")
        self._funder_key = Account.from_key(key) if key else None
        self._accounts: dict[str, Any] = {}
        self._nonces: dict[str, int] = {}
        self._own: Any = None
        self._read_only = False
        if config is not None:
            self.mode = "optimistic" if config.optimistic else "full"
            self._stake = config.stake

    def _set_own(self, identity: Identity | None) -> None:
        """Send this board's transactions from ``identity``'s own Ethereum account (the
        party's secp256k1 key is its account, secagg.identity): the account must hold
        enough Ether for gas (and a client's stake); nobody else's key is involved."""
        if identity is None:
            return
        self._own = Account.from_key(identity.key_bytes)
        self._nonces[self._own.address] = self.w3.eth.get_transaction_count(
            self._own.address, "pending"
        )

    def _sender(self) -> Any:
        """The account this board's posts are sent from: the party's own (``account`` /
        ``identity``), else the board's relayer account (funded by the node's first
        account)."""
        if self._own is not None:
            return self._own
        if self._read_only:
            raise ProtocolError(
                f"board: attached to {self.address} without an identity: read-only "
                "(attach with the party's identity to post)"
            )
        return self._account("relayer")

    def _bind(self, address: str) -> None:
        """Point the board at the deployed contract ``address`` (checksummed)."""
        cfg = self.config
        self.contract = self.w3.eth.contract(address=address, abi=self._abi)
        self.address = address
        self.start_block = self.contract.functions.startBlock().call()
        self.bond = cfg.bond
        self.challenge_blocks = cfg.challenge_blocks
        self._topics = {}
        for item in self._abi:
            if item["type"] == "event":
                sig_text = f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"
                self._topics[keccak(text=sig_text)] = getattr(self.contract.events, item["name"])()

    @classmethod
    def attach(
        cls,
        provider: str | Any,
        address: str | bytes,
        identity: Identity | None = None,
        *,
        config: RoundConfig | None = None,
        dp: DpConfig | None = None,
    ) -> EvmBoard:
        """The board of the ``PvssRound`` contract already deployed at ``address``,
        rebuilt from the chain alone: its code must be PvssRound's (the artifact's
        runtime code, immutables aside) with immutables that match the config of its
        ``RoundCreated`` event (event 0, signed by the config's aggregator), and state,
        events and transcript come from its logs, the rebuilt head checked against the
        contract's ``head()`` at every read.

        ``provider``: ``"rpc:URL"``, an ``http(s)://`` URL, ``"evm"``-style names are
        refused (a fresh chain has no contract), or a connected ``Web3``. ``identity``:
        the party reading it; its own Ethereum account sends every post it submits
        (None: read-only, an auditor). ``config``: the round's config when it carries
        a DP record, which the chain holds as a hash only (checked against it); or
        ``dp``: that record alone (a node told it by the server, SPEC.md §7.4)."""
        if isinstance(provider, str) and provider.startswith(("http://", "https://")):
            provider = "rpc:" + provider
        if isinstance(provider, str) and not provider.startswith("rpc:"):
            raise ProtocolError(f"board: attach needs rpc:URL or a Web3, not {provider!r}")
        self = cls.__new__(cls)
        self._init_chain(provider, None)
        raw = address if isinstance(address, bytes) else _parse_address(address)
        checksum = _checksum(raw)
        self._check_code(checksum)
        contract = self.w3.eth.contract(address=checksum, abi=self._abi)
        start = contract.functions.startBlock().call()
        created = contract.events.RoundCreated().get_logs(from_block=start, to_block=start)
        if len(created) != 1:
            raise ProtocolError(f"board: {checksum} has no RoundCreated event at block {start}")
        packed = bytes(created[0]["args"]["config"])
        try:
            cfg = config_unpack(packed, dp if config is None else config.dp)
        except (InvalidEncoding, ConfigError) as exc:
            raise ProtocolError(f"board: {checksum}: the contract's config: {exc}") from None
        if config is not None and cfg != config:
            raise ProtocolError(f"board: {checksum} runs another config than the one given")
        if cfg.chain_id != self._chain_id or cfg.board != raw:
            raise ProtocolError(
                f"board: {checksum}'s config names chain {cfg.chain_id} / board "
                f"0x{cfg.board.hex()}, not this chain {self._chain_id} / this contract"
            )
        self.config = cfg
        self.mode = "optimistic" if cfg.optimistic else "full"
        self._stake = cfg.stake
        self._config_packed = packed
        self._bind(checksum)
        self._check_config_getters()
        self.verifier = self.contract.functions.verifier().call()
        self._read_only = identity is None
        self._set_own(identity)
        self._reset_log()
        return self

    def _check_code(self, address: str) -> None:
        """The runtime code at ``address`` is a round's clone (SPEC.md §7.3 "Clones"):
        ``PROXY_HEAD || implementation || PROXY_TAIL`` and ``ARGS_BYTES`` of config
        (checked against event 0 by ``_check_config_getters``), and the implementation's
        code is the PvssRound artifact's, byte for byte outside its immutable
        placeholders (PUSH32 of zeros in the artifact: the verifier's address)."""
        code = bytes(self.w3.eth.get_code(address))
        head, tail = len(PROXY_HEAD), len(PROXY_HEAD) + 20
        if (
            len(code) != tail + len(PROXY_TAIL) + ARGS_BYTES
            or code[:head] != PROXY_HEAD
            or code[tail : tail + len(PROXY_TAIL)] != PROXY_TAIL
        ):
            raise ProtocolError(
                f"board: {address} does not run the PvssRound contract "
                f"({'no code' if not code else 'not a round clone'})"
            )
        impl = _checksum(code[head:tail])
        want = bytes.fromhex(_artifact()["deployedBytecode"].removeprefix("0x"))
        if not _code_matches(bytes(self.w3.eth.get_code(impl)), want):
            raise ProtocolError(
                f"board: {address} does not run the PvssRound contract (its implementation "
                f"{impl} runs other code)"
            )
        self.implementation = impl

    def _check_config_getters(self) -> None:
        """The contract's configuration getters agree with its event 0's config (a
        clone made by other creation code could hold another config)."""
        cfg, f = self.config, self.contract.functions
        k = parse_graph(cfg.graph, cfg.n_clients)
        ends = [cfg.register_blocks]
        for length in (cfg.deal_blocks, cfg.upload_blocks, cfg.unmask_blocks):
            ends.append(ends[-1] + length)
        want = {
            "roundId": cfg.round_id,
            "nClients": cfg.n_clients,
            "committeeSize": cfg.committee_size,
            "threshold": cfg.threshold,
            "degree": 0 if k is None else k,
            "dealStart": ends[0],
            "uploadStart": ends[1],
            "unmaskStart": ends[2],
            "resultStart": ends[3],
            "optimistic": cfg.optimistic,
            "openMembership": not cfg.clients,
            "challengeBlocks": cfg.challenge_blocks,
            "stake": cfg.stake,
            "bond": cfg.bond,
            "forfeitTo": _checksum(cfg.forfeit_to),
            "aggregator": _checksum(cfg.aggregator),
            "configDigest": post_digest(cfg),
            "minIncluded": cfg.min_included,
            "minNeighbours": cfg.min_neighbours,
            "confirmQuorum": cfg.confirm_quorum,
            "maskedSize": (cfg.vector_length * cfg.bits + 7) // 8,
        }
        for name, value in want.items():
            got = getattr(f, name)().call()
            if got != value:
                raise ProtocolError(
                    f"board: {self.address}: {name}() = {got!r} disagrees with its config "
                    f"({value!r})"
                )
        roster = f.rosterData().call()  # closed membership: the client seats as code
        if cfg.clients:  # 0x00 || 20 bytes per seat (SPEC.md §7.3 "Roster")
            seated = bytes(self.w3.eth.get_code(roster)) == b"\x00" + b"".join(cfg.clients)
        else:
            seated = int(roster, 16) == 0
        if not seated:
            raise ProtocolError(
                f"board: {self.address}: its roster data {roster} is not its config's "
                f"{len(cfg.clients)} client seats"
            )
        vcode = bytes(self.w3.eth.get_code(f.verifier().call()))
        vwant = bytes.fromhex(_artifact(VERIFIER_ARTIFACT)["deployedBytecode"].removeprefix("0x"))
        if not _code_matches(vcode, vwant):
            raise ProtocolError(f"board: {self.address}: its verifier is not PvssVerifier")

    # -- accounts and transactions -------------------------------------------------
    def _account(self, label: str) -> Any:
        acct = self._accounts.get(label)
        if acct is None:
            acct = Account.create()
            self._accounts[label] = acct
            self._nonces[acct.address] = 0
            value = FUND_WEI + (self._stake * 1024 if label == "relayer" else 0)
            if self._funder_key is not None:
                self._send_raw(self._funder_key, {"to": acct.address, "value": value, "gas": 21000})
            else:
                if self._funder is None:
                    self._funder = self.w3.eth.accounts[0]
                tx = self.w3.eth.send_transaction(
                    {"from": self._funder, "to": acct.address, "value": value}
                )
                self.w3.eth.wait_for_transaction_receipt(tx, timeout=120)
        return acct

    def _fees(self) -> dict[str, int]:
        base = self.w3.eth.get_block("latest").get("baseFeePerGas", 10**9)
        return {"maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9}

    def _send_raw(self, acct: Any, tx: dict[str, Any]) -> Any:
        if acct.address not in self._nonces:
            self._nonces[acct.address] = self.w3.eth.get_transaction_count(acct.address)
        tx = {**tx, "nonce": self._nonces[acct.address], "chainId": self._chain_id, **self._fees()}
        signed = acct.sign_transaction(tx)
        txh = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self._nonces[acct.address] += 1
        return self.w3.eth.wait_for_transaction_receipt(txh, timeout=300)

    def _send(self, acct: Any, fn: Any, name: str, value: int = 0) -> Any:
        """Pre-flight ``fn`` on the pending block (raises ``ContractRevert``), then sign
        and send it; returns the receipt."""
        base = {"from": acct.address, "value": value, "gas": TX_GAS}
        try:
            self.w3.eth.call(fn.build_transaction({**base, **self._fees()}), "pending")
        except Exception as exc:  # noqa: BLE001 - providers raise different types
            data = _revert_data(exc)
            if data is None:
                raise
            raise ContractRevert(data, self._errors) from None
        tx = fn.build_transaction({**base, **self._fees(), "nonce": self._nonces[acct.address]})
        receipt = self._send_raw(acct, {k: v for k, v in tx.items() if k != "nonce"})
        if receipt["status"] != 1:
            raise ProtocolError(f"board: {name} transaction failed after a successful pre-flight")
        self.gas.append((name, int(receipt["gasUsed"])))
        return receipt

    def _send_create(self, acct: Any, data: bytes, name: str) -> Any:
        """``_send`` for a contract-creation transaction of raw ``data``."""
        base = {"from": acct.address, "value": 0, "gas": TX_GAS, "data": "0x" + data.hex()}
        try:
            self.w3.eth.call({**base, **self._fees()}, "pending")
        except Exception as exc:  # noqa: BLE001 - providers raise different types
            rd = _revert_data(exc)
            if rd is None:
                raise
            raise ContractRevert(rd, self._errors) from None
        receipt = self._send_raw(acct, {k: v for k, v in base.items() if k != "from"})
        if receipt["status"] != 1:
            raise ProtocolError(f"board: {name} transaction failed after a successful pre-flight")
        self.gas.append((name, int(receipt["gasUsed"])))
        return receipt

    def transact(self, who: str, fn_name: str, *args: Any, value: int = 0) -> Any:
        """Send any contract function from account ``who`` ("relayer": the board's own;
        any other label: a fresh funded account) (tests, benchmarks)."""
        fn = getattr(self.contract.functions, fn_name)(*args)
        return self._send(self._account(who), fn, fn_name, value)

    def account(self, who: str = "relayer") -> str:
        return self._account(who).address

    # -- Board interface ---------------------------------------------------------------
    def height(self) -> int:
        return self.w3.eth.block_number + 1 - self.start_block

    def advance(self, blocks: int) -> None:
        if blocks < 0:
            raise ValueError("advance: blocks must be >= 0")
        if blocks == 0:
            return
        provider = self.w3.provider
        tester = getattr(provider, "ethereum_tester", None)
        if tester is not None:
            tester.mine_blocks(blocks)
            return
        try:
            provider.make_request("anvil_mine", [hex(blocks)])
            return
        except Exception:  # noqa: BLE001,S110 - not anvil: try evm_mine, then wait
            pass
        target = self.w3.eth.block_number + blocks
        try:
            for _ in range(blocks):
                self.w3.provider.make_request("evm_mine", [])
        except Exception:  # noqa: BLE001 - a real chain: wait for its blocks
            while self.w3.eth.block_number < target:
                time.sleep(1.0)

    def submit(self, post: SignedPost) -> Event:
        t0 = time.perf_counter()
        try:
            return self._submit(post)
        finally:
            self.busy += time.perf_counter() - t0

    def state(self) -> RoundState:
        self._sync()
        st = self._state
        h = self.height()
        now = phase_at(self.config, h)
        st.phase_heads = self._phase_heads(now)
        if now >= Phase.UNMASK and st.included is None:
            if self._chain_included is not None:
                st.included, st.aborted = self._chain_included
            elif st.graph is None:
                st.included, st.aborted = (), True
            else:
                st.included = compute_included(st)
                st.aborted = not st.included
        return st

    def events(self) -> list[Event]:
        self._sync()
        return list(self._events)

    def transcript(self) -> TranscriptFile:
        return TranscriptFile(tuple(self.events()))

    @property
    def head(self) -> bytes:
        return event_hash(self.events()[-1])

    @property
    def rpc_url(self) -> str | None:
        """The JSON-RPC URL of this board's node (None for the in-process chain)."""
        return getattr(self.w3.provider, "endpoint_uri", None)

    def keep_process(self) -> subprocess.Popen | None:
        """Hand over the anvil this board started: ``close`` and interpreter exit no
        longer stop it; the caller stops it (by its pid). None if it started none."""
        proc, self._proc = self._proc, None
        if proc is not None:
            atexit.unregister(self.close)
        return proc

    def close(self) -> None:
        """Stop the anvil this board started (if any)."""
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None

    # -- optimistic mode ---------------------------------------------------------------
    def task_keys(self) -> dict[bytes, dict[int, tuple[bytes, G1Point]]]:
        """The client keys of every task this round imported keys from (SPEC.md §7.8
        "Imported keys"), each re-checked from that task's logs (``EvmTask.attach``:
        its code, then every registration's proof of possession and signature), for
        ``MemoryBoard.replay(task_keys=...)`` / ``verify_round``. A task that did not
        open this round is refused (the contract refuses its keys too)."""
        from secagg.boards.task import EvmTask

        self._sync()
        out: dict[bytes, dict[int, tuple[bytes, G1Point]]] = {}
        for raw in sorted(self.imported_from):
            task = EvmTask.attach(self.w3, raw)
            if task.round_address(self.config.round_id) != self.address:
                raise ProtocolError(
                    f"board: {self.address}: keys imported from task {_checksum(raw)}, "
                    f"which did not open round {self.config.round_id}"
                )
            clients = task.roster()[1]
            out[raw] = {
                party: (clients[party - 1], key)
                for (role, party), key in task.verified_keys().items()
                if role == ROLE_CLIENT
            }
        return out

    def challenge(self, key: tuple[int, int, int], challenger: str = "challenger") -> bool:
        """Dispute accepted dealing ``key`` = (dealer, purpose, partner) with the bond;
        True if the dealer was excluded (its stake slashed: the challenger is credited
        the reward and its bond back, the rest goes to the pool; SPEC.md §7.7), False if
        the dealing was valid (the bond goes to the pool)."""
        st = self.state()
        dealing = self._raw_dealings.get(key)
        if dealing is None:
            raise ProtocolError(f"challenge: no accepted dealing {key}")
        receipt = self.transact(
            challenger,
            "challenge",
            key[0],
            key[1],
            key[2],
            dealing,
            self._committee(st),
            value=self.bond,
        )
        from web3.logs import DISCARD

        excluded = self.contract.events.DealerExcluded().process_receipt(receipt, errors=DISCARD)
        self._sync()
        return bool(excluded)

    def challenge_invalid(
        self, keys: list[tuple[int, int, int]], challenger: str = "challenger"
    ) -> list[tuple[int, int, int]]:
        """Challenge each accepted dealing in ``keys`` (an honest party's list of
        dealings that failed its own verification, secagg.roles.dealings_to_challenge);
        returns those whose dealer this excluded. A dealer already excluded by an
        earlier key, or whose window has closed, is skipped."""
        excluded = []
        for key in keys:
            if key not in self._raw_dealings:
                self._sync()
                if key not in self._raw_dealings:  # excluded meanwhile
                    continue
            try:
                if self.challenge(key, challenger):
                    excluded.append(key)
            except ContractRevert as exc:
                if exc.name not in ("ChallengeWindowClosed", "NothingToChallenge"):
                    raise
        return excluded

    def withdraw_stake(self, client: int, who: str = "relayer") -> None:
        """Credit client ``client``'s stake and pool share to its identity (after the
        round, not excluded; anyone may send it)."""
        try:
            self.transact(who, "withdrawStake", client)
        except ContractRevert as exc:
            raise RuleViolation(Fault(ROLE_CLIENT, client, "withdraw", str(exc))) from None

    def credit(self, account: bytes | str) -> int:
        """Wei that ``account`` may withdraw (challenge rewards, bonds back, stakes)."""
        addr = account if isinstance(account, str) else _checksum(account)
        return int(self.contract.functions.credit(addr).call())

    def withdraw(self, who: str) -> int:
        """Pay board account ``who`` its credit; returns the amount."""
        amount = self.credit(self.account(who))
        try:
            self.transact(who, "withdraw")
        except ContractRevert as exc:
            raise ProtocolError(f"board: withdraw for {who}: {exc}") from None
        return amount

    def reputation(self, identity: bytes) -> tuple[int, int, int]:
        """(valid dealings, valid shares, faults) of an identity."""
        return tuple(self.contract.functions.reputation(_checksum(identity)).call())

    # -- posting -----------------------------------------------------------------------
    def _committee(self, st: RoundState) -> bytes:
        return b"".join(
            st.members[k].to_bytes() if k in st.members else bytes(64)
            for k in range(1, self.config.committee_size + 1)
        )

    def _submit(self, post: SignedPost) -> Event:
        role, sender = post.role, post.sender
        fail = lambda rule, detail: RuleViolation(Fault(role, sender, rule, detail))  # noqa: E731
        try:
            msg: Any = codec.decode(post.body)
        except InvalidEncoding as exc:
            raise fail("encoding", str(exc)) from None
        return self.submit_message(role, sender, msg, post.view, post.sig)

    def submit_message(self, role: int, sender: int, msg: Any, view: bytes, sig: bytes) -> Event:
        """Post a decoded message with its view and signature. ``submit`` decodes a
        wire post first; this is the contract call as any party with its own account can
        make it, with calldata the wire cannot carry (a 64-byte S_i off the curve: the
        wire's compressed form has no such value, SPEC.md §6.2) — the contract's own
        checks refuse it (tests/adversarial/test_shares_post_tamper.py)."""
        fail = lambda rule, detail: RuleViolation(Fault(role, sender, rule, detail))  # noqa: E731
        if len(view) != 32 or len(sig) != 65:
            raise fail("signature", "view is 32 bytes, a signature 65")
        f = self.contract.functions
        value = 0
        v = view
        if isinstance(msg, Registration):
            if msg.role != role or msg.party != sender:
                raise fail("sender", "registration for another party")
            if role not in (ROLE_CLIENT, ROLE_MEMBER):
                raise fail("registration", "only clients and members register")
            call, name = f.register(role, sender, msg.pk, msg.pop, v, sig), "register"
            value = self._stake if role == ROLE_CLIENT else 0
        elif isinstance(msg, KeysImported):
            if role != ROLE_AGGREGATOR or sender != 0:
                raise fail("import", "only the aggregator imports keys")
            call = f.importKeys(_checksum(msg.task), list(msg.parties), v, sig)
            name = "importKeys"
        elif isinstance(msg, SeedReveal):
            if role != ROLE_MEMBER or msg.member != sender:
                raise fail("sender", "seed reveal for another member")
            call, name = f.revealSeed(sender, msg.gamma, msg.proof, v, sig), "revealSeed"
        elif isinstance(msg, DealingsPost):
            if role != ROLE_CLIENT or msg.dealer != sender:
                raise fail("sender", "dealings for another client")
            return self._submit_dealings(role, sender, msg, view, sig, fail)
        elif isinstance(msg, MaskedInputPost):
            if role != ROLE_CLIENT or msg.client != sender:
                raise fail("sender", "masked input for another client")
            call = f.postMaskedInput(sender, msg.digest, msg.size, v, sig)
            name = "postMaskedInput"
        elif isinstance(msg, Confirmation):
            if role != ROLE_MEMBER or msg.member != sender:
                raise fail("sender", "confirmation for another member")
            call, name = f.confirm(sender, msg.head, v, sig), "confirm"
        elif isinstance(msg, SharesPost):
            if role != ROLE_MEMBER or msg.member != sender:
                raise fail("sender", "shares from a non-member or for another member")
            self._sync()
            refs = b"".join(
                it.dealer.to_bytes(4, "big") + bytes([it.purpose]) + it.partner.to_bytes(4, "big")
                for it in msg.items
            )
            dealings = [self._raw_dealings.get(it.key, b"") for it in msg.items]
            post_bytes = msg.share_post_bytes()
            call = f.postShares(sender, refs, dealings, post_bytes, v, sig)
            name = "postShares"
        elif isinstance(msg, ResultPost):
            if role != ROLE_AGGREGATOR or sender != 0:
                raise fail("sender", "only the aggregator posts the result")
            call = f.postResult(msg.digest, list(msg.included), msg.total_weight, v, sig)
            name = "postResult"
        else:
            raise fail("message", f"{type(msg).__name__} cannot be posted")
        if role == ROLE_CLIENT and not 1 <= sender <= self.config.n_clients:
            raise fail(
                "registration" if name == "register" else "sender",
                f"id outside 1..{self.config.n_clients}",
            )
        if role == ROLE_MEMBER and not 1 <= sender <= self.config.committee_size:
            raise fail(
                "registration" if name == "register" else "sender",
                f"id outside 1..{self.config.committee_size}",
            )
        try:
            self._send(self._sender(), call, name, value)
        except ContractRevert as exc:
            raise fail(self._rule(name, exc.name, role), str(exc)) from None
        self._sync()
        return self._events[-1]

    def _dealing_gas(self, dealing: bytes) -> int:
        """A bound on one dealing's gas in a dealings transaction (SPEC.md §7.5):
        calldata at the EIP-7623 floor (40 a byte) plus its log and copies (20 a byte),
        its hash slot and event; full mode adds verification, 5 ecMul (6 000 each) and
        change per point. Measured (bench/gas.py) stays well below it."""
        points = max(1, (len(dealing) - 5) // 288)
        gas = 60 * len(dealing) + 30_000
        if not self.config.optimistic:
            gas += 40_000 * points + 40_000
        return gas

    def _take(self, items: list[Any], pos: int, budget: int, least: int) -> int:
        """End of the longest run items[pos:end] (at least ``least`` items) within
        ``budget`` gas."""
        end, used = pos, 0
        while end < len(items):
            need = self._dealing_gas(items[end][2])
            if used + need > budget and end - pos >= least:
                break
            used += need
            end += 1
        return end

    def _submit_dealings(
        self, role: int, sender: int, msg: DealingsPost, view: bytes, sig: bytes, fail: Any
    ) -> Event:
        """A dealings post in as many transactions as the cap needs (SPEC.md §7.3 "Split
        posts"): postDealings with every item's signed head and the first items' bytes,
        then continueDealings with the rest, each under TX_GAS_CAP."""
        n = self.config.n_clients
        if role != ROLE_CLIENT or msg.dealer != sender:
            raise fail("sender", "dealings for another client")
        if not 1 <= sender <= n:
            raise fail("sender", f"id outside 1..{n}")
        committee = self._committee(self.state())
        heads = [(it.purpose, it.partner, keccak(it.dealing)) for it in msg.items]
        items: list[Any] = [(it.purpose, it.partner, it.dealing) for it in msg.items]
        budget = DEALINGS_TX_BUDGET
        first = self._take(items, 0, budget - 150_000 - 300 * n - 30_000 * len(items), 0)
        f, relayer = self.contract.functions, self._sender()
        try:
            call = f.postDealings(sender, heads, items[:first], committee, view, sig)
            self._send(relayer, call, "postDealings")
            pos = first
            while pos < len(items):
                end = self._take(items, pos, budget - 80_000, 1)
                self._send(
                    relayer,
                    f.continueDealings(sender, items[pos:end], committee),
                    "continueDealings",
                )
                pos = end
        except ContractRevert as exc:
            raise fail(self._rule("postDealings", exc.name, ROLE_CLIENT), str(exc)) from None
        self._sync()
        return self._events[-1]

    def max_share_items(self) -> int | None:
        """Share items per SharesPost so that one stays under TX_GAS_CAP: a share carries
        its dealing's bytes (calldata at the floor) and its reference and S_i, and costs
        its copy, hash and two ecMul + two ecAdd of the post's combination; the post's
        one DLEQ (4 ecMul) and signature sit in the fixed part. Each chunk is its own
        share post, proved by its own DLEQ (SPEC.md §4.5, §7.3)."""
        m = self.config.committee_size
        per_item = 60 * (5 + 288 * (m + 1) + 73) + 55_000
        return max(1, (DEALINGS_TX_BUDGET - 250_000) // per_item)

    def _rule(self, fn: str, error: str, role: int) -> str:
        if error == "NotRegistered":
            if role == ROLE_CLIENT and not self.config.clients:  # a free open seat
                return "signature"
            return {
                "postDealings": "dealings",
                "postMaskedInput": "upload",
                "revealSeed": "seed",
                "confirm": "confirm",
            }.get(fn, "sender")
        if error == "CommitteeIncomplete":
            return "seed" if fn == "revealSeed" else "dealings"
        if fn == "importKeys" and error == "AlreadyRegistered":
            return "import"
        if error in _ENCODING_ERRORS:
            return {
                "register": "proof-of-possession",
                "revealSeed": "seed",
                "postDealings": "dealing-encoding",
                "postShares": "share-encoding",
            }.get(fn, "encoding")
        return _RULES.get(error, "contract")

    # -- reading the log ---------------------------------------------------------------
    def _reset_log(self) -> None:
        self._reset_log_state()
        self._sync()

    def _reset_log_state(self) -> None:
        """Everything rebuilt from the logs, emptied: the next sync reads them all."""
        self._state = RoundState(self.config)
        self._events: list[Event] = []
        self._pending = _Pending()
        self._raw_dealings: dict[tuple[int, int, int], bytes] = {}
        # dealer -> its accepted dealings that do not decode (the dealer is skipped)
        self.malformed: dict[int, set[tuple[int, int, int]]] = {}
        self.faults = []
        self._chain_included: tuple[tuple[int, ...], bool] | None = None
        self.imported_from: set[bytes] = set()  # tasks whose keys a KeysImported used
        self._synced_to = self.start_block - 1

    def _sync(self) -> None:
        """Apply the contract's logs up to the latest block and check the rebuilt head
        against the contract's ``head()`` there. A node may answer ``eth_getLogs`` for
        its newest block before that block's logs are indexed (a known race of real
        clients, seen on anvil too): on a mismatch the log is read again from the start,
        up to ``SYNC_ATTEMPTS`` times with a growing pause, before ``ProtocolError``."""
        for attempt in range(SYNC_ATTEMPTS):
            if self._sync_once():
                return
            start = self._synced_to
            self._reset_log_state()  # the next read starts over, from the first block
            _LOG.debug("board %s: head mismatch at block %d", self.address, start)
            if attempt + 1 < SYNC_ATTEMPTS:
                time.sleep(SYNC_PAUSE_S * (attempt + 1))
        # emptied: a later read starts over too, never from a half-applied log
        raise ProtocolError("board: the transcript rebuilt from the log is not the contract's head")

    def _sync_once(self) -> bool:
        latest = self.w3.eth.block_number
        if latest <= self._synced_to:
            return True
        logs = self.w3.eth.get_logs(
            {"address": self.address, "fromBlock": self._synced_to + 1, "toBlock": latest}
        )
        for entry in logs:
            ev = self._topics.get(bytes(entry["topics"][0]))
            if ev is not None:
                self._apply(ev.event_name, ev.process_log(entry)["args"], int(entry["blockNumber"]))
        self._synced_to = latest
        chain_head = bytes(self.contract.functions.head().call(block_identifier=latest))
        return bool(self._events) and event_hash(self._events[-1]) == chain_head

    def _phase_heads(self, now: Phase) -> dict[int, bytes]:
        """phase p -> hash of the last event with height < start(p), for p <= now."""
        cfg = self.config
        starts = [0, cfg.register_blocks]
        for length in (cfg.deal_blocks, cfg.upload_blocks, cfg.unmask_blocks):
            starts.append(starts[-1] + length)
        heads: dict[int, bytes] = {}
        for p in Phase:
            if p > now:
                break
            before = [ev for ev in self._events if ev.height < starts[p]] or self._events[:1]
            heads[p] = event_hash(before[-1])
        return heads

    def _append(
        self, height: int, role: int, sender: int, msg: Any, view: bytes, sig: bytes
    ) -> None:
        prev = event_hash(self._events[-1]) if self._events else ZERO_HASH
        body = codec.encode(msg)
        ev = Event(len(self._events), height, role, sender, body, post_digest(msg), view, sig, prev)
        self._events.append(ev)

    def _apply(self, name: str, a: Any, block: int) -> None:  # noqa: C901 - one branch per event
        st, h = self._state, block - self.start_block
        msg: Any  # one message type per event branch
        items: Any
        if name == "RoundCreated":
            if bytes(a["config"]) != self._config_packed or bytes(a["digest"]) != post_digest(
                self.config
            ):
                raise ProtocolError("board: the contract's config is not this board's")
            self._append(0, ROLE_AGGREGATOR, 0, self.config, ZERO_HASH, bytes(a["sig"]))
        elif name == "Registered":
            msg = Registration(a["role"], a["party"], bytes(a["pk"]), bytes(a["pop"]))
            self._append(h, msg.role, msg.party, msg, bytes(a["postView"]), bytes(a["sig"]))
            if msg.role == ROLE_CLIENT:
                st.clients[msg.party] = G1Point.from_bytes(msg.pk)
                st.client_ids[msg.party] = bytes.fromhex(a["identity"][2:])
            else:
                st.members[msg.party] = G1Point.from_bytes(msg.pk)
        elif name == "KeysImported":
            raw = bytes(a["keys"])
            keys = tuple(raw[64 * i : 64 * i + 64] for i in range(len(a["parties"])))
            msg = KeysImported(bytes.fromhex(a["task"][2:]), tuple(a["parties"]), keys)
            self._append(h, ROLE_AGGREGATOR, 0, msg, bytes(a["postView"]), bytes(a["sig"]))
            self.imported_from.add(msg.task)
            for party, key in zip(msg.parties, keys, strict=True):
                st.clients[party] = G1Point.from_bytes(key)
                st.client_ids[party] = self.config.clients[party - 1]
        elif name == "SeedRevealed":
            msg = SeedReveal(a["member"], bytes(a["gamma"]), bytes(a["proof"]))
            self._append(h, ROLE_MEMBER, msg.member, msg, bytes(a["postView"]), bytes(a["sig"]))
            st.reveals[msg.member] = G1Point.from_bytes(msg.gamma)
        elif name == "RoundSeedFixed":
            seed = bytes(a["seed"])
            reg_head = self._phase_heads(Phase.DEAL)[Phase.DEAL]
            gammas = [st.reveals[k] for k in range(1, self.config.committee_size + 1)]
            if compute_round_seed(reg_head, gammas) != seed:
                raise ProtocolError("board: the contract's round seed is not the reveals'")
            st.round_seed = seed
            st.graph = compute_mask_graph(self.config, seed)
        elif name == "DealingsOpened":
            self._pending.dealing_sigs[a["dealer"]] = bytes(a["sig"])
            self._pending.dealings[a["dealer"]] = []
        elif name == "Dealing":
            dealing = bytes(a["dealing"])
            self._pending.dealings.setdefault(a["dealer"], []).append(
                (DealingItem(a["purpose"], a["partner"], dealing), dealing)
            )
        elif name == "DealingsPosted":
            dealer = a["dealer"]
            items = self._pending.dealings.pop(dealer, [])
            sig = self._pending.dealing_sigs.pop(dealer, NO_SIGNATURE)
            msg = DealingsPost(dealer, tuple(it for it, _ in items))
            self._append(h, ROLE_CLIENT, dealer, msg, bytes(a["postView"]), sig)
            decoded: dict[tuple[int, int, int], Dealing] = {}
            for it, raw in items:
                key = (dealer, it.purpose, it.partner)
                self._raw_dealings[key] = raw  # what a challenge must send
                try:
                    decoded[key] = Dealing.from_bytes(raw)
                except InvalidEncoding as exc:
                    # an optimistic contract checks only the header: the dealer is named
                    # and skipped (no dealing of it enters the state); a challenge of
                    # ``key`` excludes it on-chain (SPEC.md §7.3)
                    self.faults.append(
                        Fault(ROLE_CLIENT, dealer, "dealing-encoding", f"{key}: {exc}")
                    )
                    self.malformed.setdefault(dealer, set()).add(key)
            if dealer not in self.malformed:
                st.dealers.add(dealer)
                st.dealings.update(decoded)
        elif name == "DealerExcluded":
            dealer = a["dealer"]
            msg = Exclusion(dealer, a["purpose"], a["partner"])
            view = self._phase_heads(phase_at(self.config, h))[phase_at(self.config, h)]
            self._append(h, ROLE_AGGREGATOR, 0, msg, view, NO_SIGNATURE)
            st.dealers.discard(dealer)
            for key in [k for k in st.dealings if k[0] == dealer]:
                del st.dealings[key]
                self._raw_dealings.pop(key, None)
        elif name == "MaskedInput":
            msg = MaskedInputPost(a["client"], bytes(a["digest"]), a["size"])
            self._append(h, ROLE_CLIENT, msg.client, msg, bytes(a["postView"]), bytes(a["sig"]))
            st.masked[msg.client] = (msg.digest, msg.size)
        elif name == "IncludedSet":
            self._chain_included = (tuple(a["included"]), bool(a["aborted"]))
        elif name == "Confirmed":
            msg = Confirmation(a["member"], bytes(a["confirmedHead"]))
            self._append(h, ROLE_MEMBER, msg.member, msg, bytes(a["postView"]), bytes(a["sig"]))
            st.confirmations[msg.member] = msg.head
        elif name == "SharesPosted":
            member = a["member"]
            msg = _shares_post(member, bytes(a["refs"]), bytes(a["post"]))
            self._append(h, ROLE_MEMBER, member, msg, bytes(a["postView"]), bytes(a["sig"]))
            post = msg.share_post()  # the contract verified it: points decode
            for key, pt in zip(msg.keys, post.shares, strict=True):
                st.shares.setdefault(key, {})[member] = pt
            st.share_posts.append(PostedShares(msg.keys, post))
        elif name == "ResultPosted":
            msg = ResultPost(bytes(a["digest"]), tuple(a["included"]), a["totalWeight"])
            self._append(h, ROLE_AGGREGATOR, 0, msg, bytes(a["postView"]), bytes(a["sig"]))
            st.result = msg


def _shares_post(member: int, refs: bytes, post: bytes) -> SharesPost:
    """The SharesPost of a SharesPosted event: its 9-byte references and share post."""
    count = len(refs) // 9
    if len(refs) != 9 * count or len(post) != 4 + 64 * count + 160:
        raise ProtocolError(f"chain: member {member}'s SharesPosted event has a bad layout")
    items = tuple(
        ShareItem(
            int.from_bytes(refs[9 * i : 9 * i + 4], "big"),
            refs[9 * i + 4],
            int.from_bytes(refs[9 * i + 5 : 9 * i + 9], "big"),
            post[4 + 64 * i : 68 + 64 * i],
        )
        for i in range(count)
    )
    return SharesPost(member, items, post[4 + 64 * count :])


def _parse_address(text: str) -> bytes:
    from secagg.identity import parse_address

    return parse_address(text, "board address")


def _code_matches(code: bytes, template: bytes) -> bool:
    """``code`` is ``template`` except inside its immutable placeholders: the 32 bytes
    of every PUSH32 whose argument is all zeros in the template (solc's deployed code
    leaves immutables as zeros there, and writes them at deployment)."""
    if len(code) != len(template):
        return False
    zero, i, start = bytes(32), 0, 0
    while i < len(template):
        op = template[i]
        if 0x60 <= op <= 0x7F:
            width = op - 0x5F
            if op == 0x7F and template[i + 1 : i + 33] == zero:
                if code[start : i + 1] != template[start : i + 1]:
                    return False
                start = i + 33
            i += 1 + width
        else:
            i += 1
    return code[start:] == template[start:]


def _abi_type(item: dict[str, Any]) -> str:
    """The canonical ABI type of an input (tuples spelled out, for event topics)."""
    t = item["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + t[5:]
    return t


def pair_dealing_keys(st: RoundState) -> list[tuple[int, int, int]]:
    """Accepted pair dealings (helper for tests and benchmarks)."""
    return sorted(k for k in st.dealings if k[1] == PURPOSE_PAIR)

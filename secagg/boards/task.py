"""A federation's task contract on an EVM chain: ``EvmTask`` deploys or attaches a
``PvssTask`` (contracts/src/PvssTask.sol; SPEC.md §7.8), fills and seals its roster,
registers each seat's long-lived PVSS key once per task, and opens rounds: each round is
its own ``PvssRound`` (an ``EvmBoard``) whose round id the task assigns (1, 2, ...) and
whose roster is the task's.

Registration with the task is bound to the task: the proof of possession is for
(chain, task address, round ``TASK_ROUND`` = 0, role * 2^24 + party) and the seat's
identity signs the registration post over the same signing digest as a round post
(SPEC.md §6.9) with the task as board, round 0 and view 0 (``task_signing_digest``).
Round ids start at 1 and every round has its own contract address, so nothing signed
for the task or for one round verifies in another.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from eth_account import Account

from pvss.group import G1Point
from pvss.keys import KeyPair, prove_possession, verify_possession
from pvss.transcript import keccak256
from secagg.boards import ZERO_HASH, pop_party
from secagg.boards.evm import (
    TX_GAS,
    VERIFIER_ARTIFACT,
    ContractRevert,
    EvmBoard,
    _artifact,
    _checksum,
    _code_matches,
    _error_table,
    _parse_address,
    _revert_data,
    connect,
)
from secagg.config import RoundConfig
from secagg.errors import ProtocolError
from secagg.identity import Identity
from secagg.messages import (
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Event,
    KeysImported,
    Registration,
)
from secagg.posts import post_digest, sign_post

TASK_ARTIFACT = "PvssTask"
# clients one KeysImported transaction imports: ≈ 60 k gas each (a cold task read, two
# key words and the seat's flags stored), so 128 stay well under TX_GAS_CAP
IMPORT_CHUNK = 128
TASK_ROUND = 0  # PvssTask.TASK_ROUND: the round id of the task's own context
DST_POST = b"pvss-secagg/v1/post"
ROSTER_BATCH = 200  # seats per addClients transaction (≈ 50 k gas a seat)
SETTLE_PAGE = 200  # seats per settle transaction (≈ 48 k gas a seat: ≈ 10 M a page, under 15 M)


def task_signing_digest(chain_id: int, task: bytes, role: int, party: int, digest: bytes) -> bytes:
    """What a seat signs to register with the task: the round signing digest (SPEC.md
    §6.9) with board = the task, round = TASK_ROUND, view = 32 zero bytes."""
    return keccak256(
        DST_POST
        + chain_id.to_bytes(32, "big")
        + task
        + TASK_ROUND.to_bytes(8, "big")
        + bytes([role])
        + party.to_bytes(4, "big")
        + ZERO_HASH
        + digest
    )


def task_registration(
    chain_id: int, task: bytes, role: int, party: int, key: KeyPair, identity: Identity
) -> tuple[Registration, bytes]:
    """(registration post, signature) of seat (role, party) for the task at ``task``."""
    pop = prove_possession(key, chain_id, task, TASK_ROUND, pop_party(role, party))
    msg = Registration(role, party, key.pk.to_bytes(), pop.to_bytes())
    return msg, identity.sign(task_signing_digest(chain_id, task, role, party, post_digest(msg)))


class EvmTask:
    """One ``PvssTask`` contract. Transactions go from ``account`` (an ``Identity``
    whose key is its Ethereum account: the task owner's for roster and rounds; any
    funded account may relay registrations)."""

    def __init__(self) -> None:  # use deploy() or attach()
        raise TypeError("EvmTask.deploy(...) or EvmTask.attach(...)")

    # -- construction ------------------------------------------------------------------
    @classmethod
    def _new(cls, provider: str | Any, account: Identity | None) -> EvmTask:
        self = cls.__new__(cls)
        if isinstance(provider, str):
            self.w3, self._proc = connect(provider)
        else:
            self.w3, self._proc = provider, None
        self.chain_id = self.w3.eth.chain_id
        art = _artifact(TASK_ARTIFACT)
        self._abi = art["abi"]
        self._errors = _error_table(self._abi)
        self._errors.update(_error_table(_artifact(VERIFIER_ARTIFACT)["abi"]))
        self._acct = None if account is None else Account.from_key(account.key_bytes)
        self.gas: list[tuple[str, int]] = []
        self.boards: dict[int, EvmBoard] = {}
        return self

    @classmethod
    def deploy(
        cls,
        provider: str | Any,
        owner: Identity,
        committee_size: int,
        *,
        verifier: str | None = None,
        round_init: str | None = None,
    ) -> EvmTask:
        """Deploys a task owned by ``owner`` (the aggregator identity, which pays: its
        account must be funded) for committees of ``committee_size`` members, using the
        PvssVerifier at ``verifier`` (deployed here if None). Its rounds are clones
        made by the ``PvssRoundInit`` at ``round_init`` (SPEC.md §7.3 "Clones"; None:
        the first ``open_round`` deploys one, and the later ones reuse it)."""
        self = cls._new(provider, owner)
        self.owner = owner
        self.round_init = round_init
        if verifier is None:
            vart = _artifact(VERIFIER_ARTIFACT)
            factory = self.w3.eth.contract(abi=vart["abi"], bytecode=vart["bytecode"])
            verifier = self._send(factory.constructor(), "deployVerifier")["contractAddress"]
        art = _artifact(TASK_ARTIFACT)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        receipt = self._send(
            factory.constructor(_checksum(owner.address), committee_size, verifier), "deployTask"
        )
        self._bind(receipt["contractAddress"])
        return self

    @classmethod
    def attach(
        cls,
        provider: str | Any,
        address: str | bytes,
        account: Identity | None = None,
        *,
        round_init: str | None = None,
    ) -> EvmTask:
        """The task at ``address``, checked from the chain: its runtime code is the
        PvssTask artifact's (immutables aside) and its verifier's is PvssVerifier's.
        ``account`` sends what this object sends (None: read-only; the owner's identity
        may open rounds, as clones made by ``round_init``, as in ``deploy``). Its
        storage is audited against its logs (``audit``)."""
        self = cls._new(provider, account)
        self.round_init = round_init
        raw = address if isinstance(address, bytes) else _parse_address(address)
        checksum = _checksum(raw)
        want = bytes.fromhex(_artifact(TASK_ARTIFACT)["deployedBytecode"].removeprefix("0x"))
        if not _code_matches(bytes(self.w3.eth.get_code(checksum)), want):
            raise ProtocolError(f"task: {checksum} does not run the PvssTask contract")
        self._bind(checksum)
        vcode = bytes(self.w3.eth.get_code(self.verifier))
        vwant = bytes.fromhex(_artifact(VERIFIER_ARTIFACT)["deployedBytecode"].removeprefix("0x"))
        if not _code_matches(vcode, vwant):
            raise ProtocolError(f"task: {checksum}: its verifier is not PvssVerifier")
        is_owner = account is not None and account.address == self.owner_address
        self.owner = account if is_owner else None
        self.audit()
        return self

    def audit(self) -> None:
        """The task's storage is what its logs say (other init code with PvssTask's
        runtime could have written seats or keys without their checks): the roster equals
        the SeatAdded events in order and ``rosterHash`` their hash chain, and every
        registered seat's key equals its TaskRegistered event's, whose PoP and signature
        verify (``verified_keys``). Raises ``ProtocolError`` naming the first difference."""
        members, clients = self.roster()
        added: dict[int, list[bytes]] = {ROLE_MEMBER: [], ROLE_CLIENT: []}
        h = bytes(32)
        for log in self.contract.events.SeatAdded().get_logs(from_block=0):
            a = log["args"]
            ident = bytes.fromhex(a["identity"][2:])
            if a["party"] != len(added[a["role"]]) + 1:
                raise ProtocolError(f"task: {self.address}: seat events out of order")
            added[a["role"]].append(ident)
            h = keccak256(h + bytes([a["role"]]) + a["party"].to_bytes(4, "big") + ident)
        if (tuple(added[ROLE_MEMBER]), tuple(added[ROLE_CLIENT])) != (members, clients):
            raise ProtocolError(f"task: {self.address}: its roster is not its SeatAdded events")
        if bytes(self.contract.functions.rosterHash().call()) != h:
            raise ProtocolError(f"task: {self.address}: rosterHash is not its seats' hash chain")
        logged = self.verified_keys()
        for role, seats in ((ROLE_MEMBER, members), (ROLE_CLIENT, clients)):
            for party in range(1, len(seats) + 1):
                if self.key(role, party) != logged.get((role, party)):
                    raise ProtocolError(
                        f"task: {self.address}: {'member' if role else 'client'} {party}: "
                        "its stored key is not its TaskRegistered event's"
                    )

    def _bind(self, address: str) -> None:
        self.address = address
        self.contract = self.w3.eth.contract(address=address, abi=self._abi)
        f = self.contract.functions
        self.verifier = f.verifier().call()
        self.owner_address = bytes.fromhex(f.owner().call()[2:])
        self.committee_size = f.committeeSize().call()

    # -- transactions ------------------------------------------------------------------
    def _send(self, fn: Any, name: str, value: int = 0) -> Any:
        """Pre-flight (a revert raises ``ContractRevert`` with the custom error), then
        send from this object's account (``value`` wei attached); returns the receipt."""
        if self._acct is None:
            raise ProtocolError(f"task: {getattr(self, 'address', '?')}: read-only (no account)")
        w3, acct = self.w3, self._acct
        base = w3.eth.get_block("latest").get("baseFeePerGas", 10**9)
        fees = {"maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9}
        tx = {"from": acct.address, "gas": TX_GAS, "value": value, **fees}
        try:
            w3.eth.call(fn.build_transaction(tx), "pending")
        except Exception as exc:  # noqa: BLE001 - providers raise different types
            data = _revert_data(exc)
            if data is None:
                raise
            raise ContractRevert(data, self._errors) from None
        nonce = w3.eth.get_transaction_count(acct.address, "pending")
        built = fn.build_transaction({**tx, "nonce": nonce, "chainId": self.chain_id})
        txh = w3.eth.send_raw_transaction(acct.sign_transaction(built).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(txh, timeout=300)
        if receipt["status"] != 1:
            raise ProtocolError(f"task: {name} transaction failed after a successful pre-flight")
        self.gas.append((name, int(receipt["gasUsed"])))
        return receipt

    def add_roster(
        self, members: list[bytes], clients: list[bytes], batch: int = ROSTER_BATCH
    ) -> None:
        """Appends member and client seats (identity addresses), ``batch`` per
        transaction, then seals the roster."""
        f = self.contract.functions
        if members:
            self._send(f.addMembers([_checksum(a) for a in members]), "addMembers")
        for i in range(0, len(clients), batch):
            part = [_checksum(a) for a in clients[i : i + batch]]
            self._send(f.addClients(part), "addClients")
        self._send(f.sealRoster(), "sealRoster")

    def register(self, role: int, party: int, key: KeyPair, identity: Identity) -> None:
        """Seat (role, party) registers ``key`` once for the task, signed by ``identity``
        (the seat's); sent from this object's account (a relayer is fine)."""
        msg, sig = task_registration(self.chain_id, self.raw_address, role, party, key, identity)
        fn = self.contract.functions.register(role, party, msg.pk, msg.pop, sig)
        self._send(fn, "register")

    def submit_registration(self, msg: Registration, sig: bytes) -> None:
        """Relays a registration someone else signed (``task_registration``)."""
        fn = self.contract.functions.register(msg.role, msg.party, msg.pk, msg.pop, sig)
        self._send(fn, "register")

    # -- reading -----------------------------------------------------------------------
    @property
    def round_abi(self) -> list:
        return _artifact("PvssRound")["abi"]

    @property
    def raw_address(self) -> bytes:
        return bytes.fromhex(self.address[2:])

    def roster(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """(member identities, client identities), read from the chain in pages."""
        f = self.contract.functions
        out = []
        for role, count in (
            (ROLE_MEMBER, f.memberCount().call()),
            (ROLE_CLIENT, f.clientCount().call()),
        ):
            ids: list[bytes] = []
            for first in range(1, count + 1, 512):
                last = min(count, first + 511)
                ids += [bytes.fromhex(a[2:]) for a in f.identities(role, first, last).call()]
            out.append(tuple(ids))
        return out[0], out[1]

    def key(self, role: int, party: int) -> G1Point | None:
        """The seat's registered key (None if not registered), its proof of possession
        not re-checked (the contract did); see ``verified_keys`` for an auditor's check."""
        _, registered, x, y = self.contract.functions.seat(role, party).call()
        if not registered:
            return None
        return G1Point.from_bytes(x.to_bytes(32, "big") + y.to_bytes(32, "big"), field="task.pk")

    def verified_keys(self) -> dict[tuple[int, int], G1Point]:
        """Every registered key, re-verified from the TaskRegistered logs (PoP against
        this task's context, signer = the seat's identity)."""
        from pvss.keys import ProofOfPossession
        from secagg.identity import recover as recover_address

        members, clients = self.roster()
        out: dict[tuple[int, int], G1Point] = {}
        for log in self.contract.events.TaskRegistered().get_logs(from_block=0):
            a = log["args"]
            role, party = a["role"], a["party"]
            seats = clients if role == ROLE_CLIENT else members
            pk = G1Point.from_bytes(bytes(a["pk"]), field="task.pk")
            verify_possession(
                pk,
                ProofOfPossession.from_bytes(bytes(a["pop"])),
                self.chain_id,
                self.raw_address,
                TASK_ROUND,
                pop_party(role, party),
            )
            msg = Registration(role, party, bytes(a["pk"]), bytes(a["pop"]))
            digest = task_signing_digest(
                self.chain_id, self.raw_address, role, party, post_digest(msg)
            )
            if recover_address(digest, bytes(a["sig"])) != seats[party - 1]:
                raise ProtocolError(f"task: {role}/{party}: registration not signed by its seat")
            out[(role, party)] = pk
        return out

    @property
    def last_round(self) -> int:
        return self.contract.functions.lastRound().call()

    def round_address(self, round_id: int) -> str:
        return self.contract.functions.rounds(round_id).call()

    def round_contract(self, round_id: int) -> Any:
        """The round contract the task opened as ``round_id`` (``ProtocolError`` if none)."""
        addr = self.round_address(round_id)
        if int(addr, 16) == 0:
            raise ProtocolError(f"task: {self.address}: no round {round_id} opened")
        return self.w3.eth.contract(address=addr, abi=self.round_abi)

    # -- rounds ------------------------------------------------------------------------
    def open_round(self, config: RoundConfig, **board_kw: Any) -> EvmBoard:
        """Deploys round ``last_round + 1`` for ``config`` (its round id, aggregator and
        roster replaced by the task's; the owner signs event 0) and opens it on the task
        (the owner's transaction); returns its board. ``board_kw`` go to ``EvmBoard``:
        without ``account=`` the round is deployed and posted to by the board's own
        relayer account (an ``EvmBoard`` caches its account's nonce, so two boards
        must not share one account)."""
        if self.owner is None:
            raise ProtocolError("task: attached without the owner identity: cannot open rounds")
        members, clients = self.roster()
        cfg = replace(
            config,
            round_id=self.last_round + 1,
            members=members,
            clients=clients,
            n_clients=len(clients),
            committee_size=len(members),
            aggregator=self.owner.address,
        )
        if cfg.optimistic or board_kw.get("mode") == "optimistic":
            # slashed stakes and forfeited bonds go to this task's pool (§7.9)
            board_kw["forfeit_to"] = self.raw_address
        board_kw.setdefault("round_init", self.round_init)
        if self.last_round and clients:  # the roster is sealed: its code is the last round's
            last = self.round_contract(self.last_round).functions
            board_kw.setdefault("roster_code", last.rosterData().call())
        board = EvmBoard(cfg, self.w3, aggregator=self.owner, verifier=self.verifier, **board_kw)
        self.round_init = board.round_init  # every later round is a clone of the same
        self._send(self.contract.functions.openRound(board.address), "openRound")
        self.boards[cfg.round_id] = board
        return board

    def keys_imported(self, board: EvmBoard, parties: list[int] | None = None) -> KeysImported:
        """The post that registers client seats ``parties`` (every client registered on
        this task if None) of the round ``board`` with their task keys (SPEC.md §7.8
        "Imported keys"), the keys read from this task as the contract reads them."""
        if parties is None:
            count = self.contract.functions.clientCount().call()
            parties = list(range(1, count + 1))
        keys = []
        for p in parties:
            key = self.key(ROLE_CLIENT, p)
            if key is None:
                raise ProtocolError(f"task: client {p} registered no key on {self.address}")
            keys.append(key.to_bytes())
        return KeysImported(self.raw_address, tuple(parties), tuple(keys))

    def import_keys(self, board: EvmBoard, parties: list[int] | None = None) -> list[Event]:
        """The owner (the round's aggregator) imports ``keys_imported(board, parties)``
        into the round, in its register phase: one signed post (one transaction) per
        ``IMPORT_CHUNK`` clients, so that each fits ``TX_GAS_CAP``."""
        if self.owner is None:
            raise ProtocolError("task: attached without the owner identity: cannot import keys")
        msg = self.keys_imported(board, parties)
        out = []
        for at in range(0, len(msg.parties), IMPORT_CHUNK):
            part = KeysImported(
                msg.task,
                msg.parties[at : at + IMPORT_CHUNK],
                msg.keys[at : at + IMPORT_CHUNK],
            )
            post = sign_post(self.owner, board.config, ROLE_AGGREGATOR, 0, part, board.view())
            out.append(board.submit(post))
        return out

    # -- rewards (SPEC.md §7.9) ----------------------------------------------------------
    def set_rewards(self, per_client: int, per_share: int) -> None:
        """Wei per included client and per valid share for the rounds opened from now on
        (the owner's transaction; a round keeps the rewards it was opened with)."""
        self._send(self.contract.functions.setRewards(per_client, per_share), "setRewards")

    def fund(self, amount: int) -> None:
        """Adds ``amount`` wei to the task's pool (from this object's account)."""
        self._send(self.contract.functions.fund(), "fund", amount)

    def settle(self, round_id: int, page: int = SETTLE_PAGE) -> int:
        """Credits round ``round_id``'s payouts, ``page`` seats per transaction (members
        first, then clients) until done; returns the number of transactions."""
        f = self.contract.functions
        sent = 0
        while True:
            self._send(f.settle(round_id, page), "settle")
            sent += 1
            if self.payout(round_id)["done"]:
                return sent

    def collect(self, round_id: int) -> int:
        """Pulls round ``round_id``'s slashed stakes and forfeited bonds (credited to
        this task by the round) into the pool; returns the wei collected (0 when the
        round owes nothing: no transaction is sent then)."""
        due = int(self.round_contract(round_id).functions.credit(self.address).call())
        if due == 0:
            return 0
        before = int(self.contract.functions.slashed().call())
        self._send(self.contract.functions.collect(round_id), "collect")
        return int(self.contract.functions.slashed().call()) - before

    def forfeits(self, round_id: int) -> dict[str, int]:
        """Round ``round_id``'s slashed stakes and forfeited bonds: ``collected`` into
        the pool (the task's ``Collected`` logs) and ``due`` (credited to the task by the
        round, not collected yet)."""
        due = int(self.round_contract(round_id).functions.credit(self.address).call())
        logs = self.contract.events.Collected().get_logs(
            from_block=0, argument_filters={"roundId": round_id}
        )
        return {"collected": sum(int(log["args"]["amount"]) for log in logs), "due": due}

    def withdraw(self) -> int:
        """Pays this object's account its task credit; returns the amount."""
        amount = self.credit(bytes.fromhex(self._acct.address[2:])) if self._acct else 0
        self._send(self.contract.functions.withdraw(), "withdraw")
        return amount

    def credit(self, identity: bytes) -> int:
        """Wei ``identity`` may withdraw from the task."""
        return int(self.contract.functions.credit(_checksum(identity)).call())

    def pool_state(self) -> dict[str, int]:
        """funded (ever deposited), slashed (ever collected from rounds), pool
        (unreserved), credited (ever), balance (wei)."""
        f = self.contract.functions
        return {
            "funded": int(f.funded().call()),
            "slashed": int(f.slashed().call()),
            "pool": int(f.pool().call()),
            "credited": int(f.credited().call()),
            "balance": int(self.w3.eth.get_balance(self.address)),
        }

    def payout(self, round_id: int) -> dict[str, Any]:
        """Round ``round_id``'s payout record (rewards fixed at opening, progress)."""
        per_client, per_share, cursor, started, done, owed, reserved, paid = (
            self.contract.functions.payouts(round_id).call()
        )
        return {
            "per_client": per_client,
            "per_share": per_share,
            "cursor": cursor,
            "started": started,
            "done": done,
            "owed": owed,
            "reserved": reserved,
            "paid": paid,
        }

    def credits(self, round_id: int) -> list[dict[str, Any]]:
        """Round ``round_id``'s credits from the task's ``Credited`` logs, in seat order:
        role ("member" / "client"), party, identity (0x hex), units, amount (wei)."""
        logs = self.contract.events.Credited().get_logs(
            from_block=0, argument_filters={"roundId": round_id}
        )
        return [
            {
                "role": "member" if log["args"]["role"] == ROLE_MEMBER else "client",
                "party": log["args"]["party"],
                "identity": log["args"]["identity"],
                "units": log["args"]["units"],
                "amount": log["args"]["amount"],
            }
            for log in logs
        ]

    def reputations(self, round_id: int) -> list[dict[str, Any]]:
        """Every seat's reputation counters (valid dealings, valid shares, faults) as
        the round contract of ``round_id`` holds them, members then clients."""
        f = self.round_contract(round_id).functions
        out = []
        seats = [
            (ROLE_MEMBER, k, f.memberIdentity(k).call())
            for k in range(1, f.committeeSize().call() + 1)
        ]
        seats += [
            (ROLE_CLIENT, i, f.clientIdentity(i).call()) for i in range(1, f.nClients().call() + 1)
        ]
        for role, party, ident in seats:
            dealings, shares, faults = f.reputation(ident).call()
            out.append(
                {
                    "role": "member" if role == ROLE_MEMBER else "client",
                    "party": party,
                    "identity": ident,
                    "valid_dealings": dealings,
                    "valid_shares": shares,
                    "faults": faults,
                    **({"included": f.isIncluded(party).call()} if role == ROLE_CLIENT else {}),
                }
            )
        return out

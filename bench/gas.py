"""Gas of every PvssRound operation (contracts/src/PvssRound.sol) on the embedded py-evm
chain (Prague rules; EIP-1108 precompile prices, EIP-7623 calldata floor).

One JSON line per operation in bench/results/gas.jsonl (``--out`` elsewhere; the
committed whole-round rows are bench/results/gas_rounds.jsonl, the task rows
gas_task*.jsonl, close() rows gas_close.jsonl):

    op         deploy | register_client | register_member | seed_reveal |
               dealing_full | dealing_optimistic | challenge_invalid | challenge_valid |
               masked_input | close | confirm | share_first | share | share_marginal |
               result
    m          committee size
    recipient  whether the dealing has a recipient point (pair dealing), else null
    gas        gasUsed of the transaction (what the relayer pays)
    exec       gas minus the intrinsic cost (21000 + 16/4 per calldata byte): the
               contract's execution
    items      items in the transaction (per-item gas = gas / items where it applies)

Shares (SPEC.md §4.5, §7.3: one share post per transaction, one DLEQ for all its
shares): share_first / share are member 1's / member m's post of all 3 allowed shares,
per share (the first writer of each dealing's share bit pays the fresh slot);
share_marginal is member 2's post of 2 shares minus its post of 1 share: what one more
share adds to a post (items = 1).

Every post is signed by its seat's identity and carries its view (SPEC.md §6.9): each
row includes the ecrecover (3 000), the signature and view calldata (97 bytes) and the
hash-chain update (one SSTORE of the head, one of the sequence number). Proof checks
run in the shared PvssVerifier (one external call per proof).

Dealing rows isolate one dealing with n = 3 clients (complete graph): client 2 posts
self + 1 pair dealing, client 1 self + 2 pair dealings (client 3, first, pays the
one-time committee-key hash); the pair dealing (with recipient) is the difference of
those two posts, the self dealing (no recipient) client 2's post minus one pair
dealing, so each row includes its share of the transaction base cost. Gas-only lines:
no time is measured, so the shared ours_s/baseline fields are absent.

Whole rounds (``--rounds``): one line per (n, mode), m = 10, K = 2*ceil(log2 n):

    {"op": "round_total", "n", "m", "k", "mode", "gas", "gas_per_client",
     "client_gas_per_client", "max_tx_gas", "txs", "measured", "provider"}

``gas`` is every transaction of the round (deploy, registrations, reveals, dealings —
split under the cap —, uploads, close, confirmations, shares — split —, result);
``client_gas_per_client`` only the clients' own transactions (registration, dealings,
upload) per client; ``max_tx_gas`` the largest single transaction. ``measured`` says
how the row was obtained: "round" (the whole round ran on the chain), or for n where
that does not run on a small machine "close+client-txs" (every registration, dealings
post and upload and close() ran for real at that n; reveals, confirmations, shares and
the result are summed from the per-op gas measured at n = 100 with the same m).
``reuse`` (optimistic only, n = 1000): the dealings are well-formed and of the right
size but generated once per shape and reused across dealers — the contract checks
headers only, so its gas is the same; it keeps Python's dealing time out.

Task contract (``--task N``; SPEC.md §7.8), same run, same n = N and m = 10, rounds = 10:

    {"op": "task_amortised", "n", "m", "rounds", "task_deploy", "task_roster",
     "task_register", "open_round", "chain_once", "round_deploy", "later_round_deploy",
     "standalone_round_deploy", "round_register", "full_contract_deploy",
     "full_contract_rev", "gas_per_round_task", "gas_per_round_clone",
     "gas_per_round_per_round_deploy", "ratio", "ratio_clone",
     "rounds_register_per_round", "import_keys", "import_txs", "import_per_client",
     "member_register", "gas_per_round_import", "ratio_import", "provider"}

``task_*`` are the one-off costs of a task (deploy, roster in batches + seal, one
registration per seat); ``chain_once`` the chain's PvssRound implementation and
PvssRoundInit (once per chain); ``round_deploy`` the task's first round's clone
(``later_round_deploy`` its second's, which shares the first's roster code: rounds 2 ..
``rounds`` are counted at that price; ``standalone_round_deploy`` one without a task),
``round_register`` its n + m
registrations, ``open_round`` the task call that opens it; ``full_contract_deploy`` the
same round deployed as one full PvssRound contract, the design before clones
(``full_contract_rev``'s artifact), in the same run. Per round, one-offs over
``rounds``: ``gas_per_round_per_round_deploy`` (the baseline: full contract +
registrations), ``gas_per_round_clone`` (clone + registrations), ``gas_per_round_task``
(task + clone + registrations), ``gas_per_round_import`` (task + clone + the clients'
keys imported from the task in ``import_txs`` posts, ``import_keys`` gas, and only the
``member_register`` of the m members; SPEC.md §7.8 "Imported keys"); ``ratio*`` each
against the baseline. The baseline's registrations are the clone's (one DELEGATECALL
more each: it is overstated by ≤ 1.5 %).

Task rewards (``--rewards N ...``; SPEC.md §7.9), m = 10, every client included and
every member credited (the worst case: each credit writes a fresh slot):

    {"op": "task_rewards", "n", "m", "fund", "settle", "settle_txs", "settle_page",
     "settle_max_tx", "settle_per_seat", "withdraw", "collect", "measured", "provider"}

``fund`` the first deposit into a task; ``settle`` all the transactions that settle one
round (``settle_txs`` of ``settle_page`` seats each, the largest ``settle_max_tx``),
``settle_per_seat`` = settle / (n + m); ``withdraw`` one identity's pull payment;
``collect`` the task pulling one round's slashed stakes into its pool (from a RoundStub
round that credited the task, in every row).
``measured``: "round" — the round ran on the chain (n = 10: every seat's posts, a real
PvssRound); "stub-round" — the round is contracts/test/RoundStub.sol (PvssRound's
getters set by hand, for n where a whole round does not run on a small machine; at
n = 10 the stub row is 4 % under the real round's, so read stub rows as that much low).

close() alone (``--close N,K ...``): one line per (n, K, pattern), on the real contract
with the client flags it reads written into its storage (``anvil_setStorageAt``) instead
of n registrations, dealings posts and uploads (members register and reveal for real, so
the seed is the one they fix), against the contracts of git revision ``--baseline``
(default 9773916, before the assembly PvssGraph) on the same state in the same run:

    {"op": "close", "n", "k", "pattern", "gas", "baseline", "baseline_gas",
     "included", "allowed", "measured": "close (flags in storage)"}

``pattern`` all: every client registered, dealt and uploaded (the largest U and log);
peel: all but the client at permutation position 0 uploaded and min_neighbours = K, so
the peeling removes everyone (the most peeling work there is). ``gas`` is the
transaction's gasUsed; ``baseline_gas`` eth_estimateGas on the pending block (equal to
gasUsed where both were measured), since past 15 M it cannot be sent under TX_GAS_CAP;
anvil runs with a 300 M block gas limit for it.

    .venv/bin/python bench/gas.py [--m 4 8 16 32] [--rounds 10 100 1000] [--task 10 100]
        [--rewards 10 100 1000] [--close 100,14 1000,20 1024,64] [--baseline REV]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.evm_round: every seat signs its own posts

import secagg.boards.evm as evm  # noqa: E402
from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF  # noqa: E402
from secagg.boards.evm import EvmBoard  # noqa: E402
from secagg.config import RoundConfig  # noqa: E402
from secagg.identity import Identity  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Confirmation,
    DealingItem,
    DealingsPost,
)
from tests.evm_round import ChainRound  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "gas.jsonl"
# deployed once per chain, shared by every round on it: not a round's gas
CHAIN_ONCE = ("deployVerifier", "deployImplementation", "deployRoundInit")


def _intrinsic(data: bytes) -> int:
    zeros = data.count(0)
    return 21000 + 4 * zeros + 16 * (len(data) - zeros)


def _round(m: int, **kw: object) -> ChainRound:
    return ChainRound.create(
        n=3,
        m=m,
        t=(m - 1) // 2,
        dim=16,
        register=m + 6,
        deal_blocks=m + 12,
        unmask_blocks=2 * m + 4,
        **kw,
    )


class Meter:
    def __init__(self, board: EvmBoard) -> None:
        self.board = board
        self.seen = 0

    def last(self) -> tuple[int, int]:
        """(gas, exec) of the last transaction."""
        w3 = self.board.w3
        block = w3.eth.get_block("latest", full_transactions=True)
        tx = block["transactions"][-1]
        receipt = w3.eth.get_transaction_receipt(tx["hash"])
        gas = int(receipt["gasUsed"])
        return gas, gas - _intrinsic(bytes(tx.get("input", tx.get("data", b""))))


def run(m: int, rows: list[dict]) -> None:
    def row(op: str, gas_exec: tuple[int, int], recipient: bool | None = None, items: int = 1):  # noqa: ANN202
        gas, exe = gas_exec
        rows.append(
            {"op": op, "m": m, "recipient": recipient, "gas": gas, "exec": exe, "items": items}
        )
        print(json.dumps(rows[-1]))

    # full mode: the whole round
    rnd = _round(m)
    board = rnd.board
    meter = Meter(board)
    row("deploy", (board.gas[-1][1], board.gas[-1][1]))
    for i in (1, 2, 3):
        rnd.post(ROLE_CLIENT, i, rnd.registration(ROLE_CLIENT, i))
    row("register_client", meter.last())
    for k in range(1, m + 1):
        rnd.post(ROLE_MEMBER, k, rnd.registration(ROLE_MEMBER, k))
    row("register_member", meter.last())
    rnd.to("deal")
    for k in range(1, m + 1):
        rnd.post(ROLE_MEMBER, k, rnd.seed_reveal(k))
        if k == 1:
            row("seed_reveal", meter.last())
    row("seed_reveal_last", meter.last())  # the m-th reveal also fixes the round seed
    rnd.post(ROLE_CLIENT, 3, rnd.dealings(3))  # self only; pays the committee-key hash
    rnd.post(ROLE_CLIENT, 2, rnd.dealings(2))  # self + pair(3)
    g2 = meter.last()
    rnd.post(ROLE_CLIENT, 1, rnd.dealings(1))  # self + pair(2) + pair(3)
    g1 = meter.last()
    pair = (g1[0] - g2[0], g1[1] - g2[1])
    row("dealing_full", (g2[0] - pair[0], g2[1] - pair[1]), False)
    row("dealing_full", pair, True)
    row("dealings_post_3", g1, None, 3)  # the whole post of client 1 (3 dealings)
    rnd.upload_all()
    row("masked_input", meter.last())
    rnd.to("unmask")
    board.transact("anyone", "close")
    row("close", meter.last())
    for k in range(1, m + 1):
        rnd.post(ROLE_MEMBER, k, Confirmation(k, board.view()))
    row("confirm", meter.last())
    keys = board.allowed_shares()
    for k in range(1, m + 1):
        if k == 2:  # one share post of 1 share, one of the other 2: what a share adds
            rnd.post(ROLE_MEMBER, k, rnd.shares(k, keys[:1]))
            g1, e1 = meter.last()
            rnd.post(ROLE_MEMBER, k, rnd.shares(k, keys[1:]))
            g2, e2 = meter.last()
            row("share_marginal", (g2 - g1, e2 - e1), None, len(keys) - 2)
            continue
        post = rnd.shares(k)
        rnd.post(ROLE_MEMBER, k, post)
        items = len(post.items)
        g, e = meter.last()
        if k in (1, m):  # first share of a dealing vs a later one
            row("share_first" if k == 1 else "share", (g // items, e // items), None, items)
    rnd.to("result")
    rnd.post(ROLE_AGGREGATOR, 0, rnd.result())
    row("result", meter.last())

    # optimistic mode: dealings and challenges
    rnd = _round(m, mode="optimistic", challenge_blocks=6)
    ob = rnd.board
    meter = Meter(ob)
    rnd.register_all().reveal_all()
    rnd.post(ROLE_CLIENT, 3, rnd.dealings(3))
    rnd.post(ROLE_CLIENT, 2, rnd.dealings(2))
    g2 = meter.last()
    post = rnd.dealings(1)
    raw = post.items[1].dealing
    bad = raw[:-1] + bytes([raw[-1] ^ 1])  # last z changed
    items = (post.items[0], DealingItem(PURPOSE_PAIR, 2, bad), post.items[2])
    rnd.post(ROLE_CLIENT, 1, DealingsPost(1, items))
    g1 = meter.last()
    pair = (g1[0] - g2[0], g1[1] - g2[1])
    row("dealing_optimistic", (g2[0] - pair[0], g2[1] - pair[1]), False)
    row("dealing_optimistic", pair, True)
    ob.account("challenger")
    assert ob.challenge((2, PURPOSE_SELF, 0)) is False
    row("challenge_valid", meter.last(), False)
    assert ob.challenge((1, PURPOSE_PAIR, 2)) is True
    row("challenge_invalid", meter.last(), True)


def degree_for(n: int) -> int:
    """K = 2*ceil(log2 n) (even, so n*K is even), below n."""
    return min(2 * math.ceil(math.log2(n)), n - 1 - (n - 1) % 2)


def whole_round(
    n: int,
    m: int = 10,
    mode: str = "full",
    provider: str = "anvil",
    *,
    reuse: bool = False,
    full_round: bool = True,
) -> tuple[dict, EvmBoard]:
    """Run a round of n clients on ``provider`` and return its round_total row (and the
    board, still open: the caller closes it). ``full_round`` False stops after close()
    (registrations, reveals, dealings, uploads, close: the transactions that grow with
    n)."""
    k = degree_for(n)
    extra: dict = {"mode": "optimistic", "challenge_blocks": 2} if mode == "optimistic" else {}
    rnd = ChainRound.create(
        provider,
        n=n,
        m=m,
        t=(m - 1) // 2,
        graph=f"regular:{k}",
        dim=16,
        bits=32,
        open_membership=False,  # a clone takes a 1000-address roster (SPEC §7.3)
        register=n + m + 4,
        deal_blocks=3 * n + m + 10,
        unmask_blocks=4 * m + 20,
        **extra,
    )
    board = rnd.board
    if n > 100:  # the one relayer pays ~1.5e9 gas at n = 1000: more than FUND_WEI buys
        w3 = board.w3
        fund = {"from": w3.eth.accounts[0], "to": board.account(), "value": 10**21}
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(fund))
    rnd.register_all().reveal_all()
    cache: dict[tuple[int, int], bytes] = {}
    for i in range(1, n + 1):
        post = rnd.dealings(i) if not reuse else _reused_dealings(rnd, i, cache)
        rnd.post(ROLE_CLIENT, i, post)
    rnd.upload_all()
    rnd.to("unmask")
    board.transact("anyone", "close")
    if full_round:
        for j in range(1, m + 1):
            rnd.post(ROLE_MEMBER, j, Confirmation(j, board.view()))
        keys = board.allowed_shares()
        per = board.max_share_items() or len(keys)
        for j in range(1, m + 1):  # one share post per chunk, each with its own DLEQ
            for at in range(0, len(keys), per):
                rnd.post(ROLE_MEMBER, j, rnd.shares(j, keys[at : at + per]))
        rnd.to("result")
        rnd.post(ROLE_AGGREGATOR, 0, rnd.result())
    gas = [g for name, g in board.gas if name not in CHAIN_ONCE]
    regs = [g for name, g in board.gas if name == "register"]  # clients first, then members
    client = sum(regs[:n]) + sum(
        g
        for name, g in board.gas
        if name in ("postDealings", "continueDealings", "postMaskedInput")
    )
    shares = sum(g for name, g in board.gas if name == "postShares")
    member = (
        sum(regs[n:])
        + shares
        + sum(g for name, g in board.gas if name in ("revealSeed", "confirm", "postResult"))
    )
    row = {
        "op": "round_total",
        "n": n,
        "m": m,
        "k": k,
        "mode": mode,
        "gas": sum(gas),
        "gas_per_client": sum(gas) // n,
        "client_gas_per_client": client // n,
        "max_tx_gas": max(gas),
        "txs": len(gas),
        "measured": "round" if full_round else "close+client-txs",
        "provider": provider,
        "close_gas": max(g for name, g in board.gas if name == "close"),
        "max_client_tx_gas": max(
            g
            for name, g in board.gas
            if name in ("register", "postDealings", "continueDealings", "postMaskedInput")
        ),
    }
    if full_round:
        items = len(board.allowed_shares()) * m
        row.update(
            member_gas=member,
            fixed_member_gas=member - shares,
            share_item_gas=shares // max(1, items),
        )
    if reuse:
        row["reuse"] = True
    return row, board


def _reused_dealings(rnd: ChainRound, dealer: int, cache: dict) -> DealingsPost:
    """Dealer's post with dealings generated once per (purpose, has recipient) shape."""
    from pvss.scrape import deal
    from secagg.graph import dealing_context

    st = rnd.board.state()
    pks = [st.members[j] for j in range(1, rnd.cfg.committee_size + 1)]
    keys = [(dealer, PURPOSE_SELF, 0)] + [
        (dealer, PURPOSE_PAIR, j) for j in st.graph[dealer] if j > dealer and j in st.clients
    ]
    items = []
    for key in keys:
        shape = (key[1], 0)
        if shape not in cache:
            rpk = st.clients[key[2]] if key[1] == PURPOSE_PAIR else None
            d, _ = deal(pks, rnd.cfg.threshold, dealing_context(rnd.cfg, key), rpk)
            cache[shape] = d.to_bytes()
        items.append(DealingItem(key[1], key[2], cache[shape]))
    return DealingsPost(dealer, tuple(items))


def _complete_from_small(row: dict, rows: list[dict]) -> dict:
    """Add to a close+client-txs row the member and aggregator transactions, summed from
    the n = 100 round of the same mode: reveals, confirmations and the result as
    measured; shares scaled by the number of allowed dealings (every client included:
    n self dealings, each member posts a share of each)."""
    small = next(
        (
            r
            for r in rows
            if r["op"] == "round_total" and r["n"] == 100 and r["mode"] == row["mode"]
        ),
        None,
    )
    if small is None or "member_gas" not in small:
        row["note"] = "member/aggregator transactions not included (no n = 100 row in this run)"
        return row
    member = small["fixed_member_gas"] + small["share_item_gas"] * row["m"] * row["n"]
    row = {**row, "gas": row["gas"] + member, "gas_per_client": (row["gas"] + member) // row["n"]}
    row["member_gas_summed"] = member
    return row


FULL_CONTRACT_REV = "74e42bd"  # the last commit whose rounds were full PvssRound contracts


def _full_contract_deploy(board: EvmBoard, cfg: RoundConfig, aggregator: Identity) -> int:
    """Gas of deploying ``cfg``'s round as one full ``PvssRound`` contract, the design
    before clones (``FULL_CONTRACT_REV``'s artifact, its constructor taking the config,
    the aggregator's signature and the verifier), on ``board``'s chain, in this run."""
    from eth_account import Account

    from secagg.boards.evm import _create_address, config_signature, contract_config

    with _artifacts_at(FULL_CONTRACT_REV):
        art = evm._artifact()
    w3 = board.w3
    acct = Account.create()
    evm.fund_accounts(w3, [bytes.fromhex(acct.address[2:])])
    address = _create_address(acct.address, 0)
    full = replace(cfg, chain_id=w3.eth.chain_id, board=address)
    sig = config_signature(aggregator, full)
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    tx = factory.constructor(contract_config(full), sig, board.verifier).build_transaction(
        {"from": acct.address, "nonce": 0, "gas": evm.TX_GAS_CAP, **board._fees()}
    )
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction), timeout=300
    )
    if receipt["status"] != 1 or bytes.fromhex(receipt["contractAddress"][2:]) != address:
        raise RuntimeError("bench: the full-contract deployment failed")
    return int(receipt["gasUsed"])


def task_amortised(n: int, m: int, rounds: int, provider: str) -> dict:
    """Task one-offs against one round's deployment + registrations (module doc)."""
    from pvss.keys import KeyPair, prove_possession
    from secagg.boards import pop_party
    from secagg.boards.evm import fund_accounts
    from secagg.boards.task import EvmTask
    from secagg.messages import Registration
    from secagg.posts import sign_post
    from tests.evm_round import round_config

    graph = f"regular:{degree_for(n)}" if n > 16 else "complete"
    cfg, owner, members, clients = round_config(n=n, m=m, t=(m - 1) // 2, graph=graph)
    # a round on its own: a clone (its chain's verifier, implementation and
    # initializer deployed first, once), every seat registering in it
    rnd = ChainRound.create(provider, n=n, m=m, t=(m - 1) // 2, graph=graph)
    chain_once = sum(
        g for name, g in rnd.board.gas if name in ("deployImplementation", "deployRoundInit")
    )
    round_deploy = sum(g for name, g in rnd.board.gas if name == "deploy")
    before = len(rnd.board.gas)
    rnd.register_all()
    round_register = sum(g for _, g in rnd.board.gas[before:])
    # the design before clones, same chain, same run: one full contract per round
    full_deploy = _full_contract_deploy(rnd.board, rnd.cfg, rnd.aggregator)
    # the task: deploy, roster, one registration per seat, then open rounds by call
    w3 = rnd.board.w3
    fund_accounts(w3, [owner.address])
    task = EvmTask.deploy(
        w3, owner, m, verifier=rnd.board.verifier, round_init=rnd.board.round_init
    )
    task.add_roster([i.address for i in members], [i.address for i in clients])
    for role, seats in ((ROLE_MEMBER, members), (ROLE_CLIENT, clients)):
        for party, ident in enumerate(seats, 1):
            task.register(role, party, KeyPair.generate(), ident)
    board = task.open_round(cfg)
    first_round_deploy = sum(g for name, g in board.gas if name == "deploy")
    # the clients' keys imported from the task (SPEC.md §7.8): the aggregator's posts,
    # then only the members register in the round
    task.import_keys(board)
    imported = sum(g for name, g in board.gas if name == "importKeys")
    import_txs = sum(1 for name, _ in board.gas if name == "importKeys")
    member_register = 0
    for k, ident in enumerate(members, 1):
        key = KeyPair.generate()
        pop = prove_possession(
            key,
            board.config.chain_id,
            board.config.board,
            board.config.round_id,
            pop_party(ROLE_MEMBER, k),
        )
        msg = Registration(ROLE_MEMBER, k, key.pk.to_bytes(), pop.to_bytes())
        before = len(board.gas)
        board.submit(sign_post(ident, board.config, ROLE_MEMBER, k, msg, board.view()))
        member_register += sum(g for _, g in board.gas[before:])
    # a later round of the task shares the first one's roster code (SPEC.md §7.3
    # "Roster"): its clone is measured too, and rounds 2.. are counted at its price
    gas_before_later = len(task.gas)
    later = task.open_round(cfg)
    later_round_deploy = sum(g for name, g in later.gas if name == "deploy")
    later.close()
    gas: dict[str, int] = {}
    for name, g in task.gas[:gas_before_later]:
        gas[name] = gas.get(name, 0) + g
    # per round: the first round's clone once, then the later ones'
    task_round_deploy = (first_round_deploy + (rounds - 1) * later_round_deploy) // rounds
    board.close()
    rnd.board.close()
    one_off = gas["deployTask"] + gas["addMembers"] + gas["addClients"] + gas["sealRoster"]
    per_task_round = (one_off + gas["register"] + chain_once) / rounds + gas["openRound"]
    per_task_round += task_round_deploy + round_register  # rounds_register_per_round
    per_clone_round = chain_once / rounds + round_deploy + round_register
    # with imported client keys: the task's client registrations are the only ones
    per_import_round = (one_off + gas["register"] + chain_once) / rounds + gas["openRound"]
    per_import_round += task_round_deploy + imported + member_register
    # baseline: the full contract's deployment; its registrations taken as the clone's
    # (a clone's transactions pay a DELEGATECALL more, so this overstates it slightly)
    per_round = full_deploy + round_register
    return {
        "op": "task_amortised",
        "n": n,
        "m": m,
        "rounds": rounds,
        "task_deploy": gas["deployTask"],
        "task_roster": gas["addMembers"] + gas["addClients"] + gas["sealRoster"],
        "task_register": gas["register"],
        "open_round": gas["openRound"],
        "chain_once": chain_once,
        "round_deploy": first_round_deploy,
        "later_round_deploy": later_round_deploy,
        "standalone_round_deploy": round_deploy,
        "round_register": round_register,
        "full_contract_deploy": full_deploy,
        "full_contract_rev": FULL_CONTRACT_REV,
        "gas_per_round_task": round(per_task_round),
        "gas_per_round_clone": round(per_clone_round),
        "gas_per_round_per_round_deploy": per_round,
        "ratio": round(per_task_round / per_round, 3),
        "ratio_clone": round(per_clone_round / per_round, 3),
        "rounds_register_per_round": True,
        "import_keys": imported,
        "import_txs": import_txs,
        "import_per_client": round(imported / n),
        "member_register": member_register,
        "gas_per_round_import": round(per_import_round),
        "ratio_import": round(per_import_round / per_round, 3),
        "provider": provider,
    }


def task_rewards(n: int, m: int, provider: str, real: bool) -> dict:
    """fund, settle (paged) and withdraw of one round on a task (module doc)."""
    from secagg.boards.evm import _checksum, connect, fund_accounts
    from secagg.boards.task import SETTLE_PAGE, EvmTask
    from tests.evm_round import identity, round_config
    from tests.task_rewards import make_task, open_stub

    w3 = connect(provider)[0]
    members = [identity() for _ in range(m)]
    clients = [identity() for _ in range(n)]
    task, owner = make_task(w3, [i.address for i in members], [i.address for i in clients])
    task.set_rewards(10**12, 10**10)
    task.fund(10**16)
    if real:
        from pvss.keys import KeyPair

        cfg = round_config(n=n, m=m, t=(m - 1) // 2)[0]
        rnd = ChainRound(task.open_round(cfg), owner, members, clients)
        rnd.member_keys = [KeyPair.generate() for _ in members]
        rnd.client_keys = [KeyPair.generate() for _ in clients]
        rnd.register_all().reveal_all().deal_all().upload_all().confirm_all()
        for k in range(1, m + 1):
            rnd.post(ROLE_MEMBER, k, rnd.shares(k))
        rnd.to("result")
        rnd.post(ROLE_AGGREGATOR, 0, rnd.result())
        rnd.board.close()
    else:
        open_stub(
            task,
            [i.address for i in members],
            [n] * m,
            [i.address for i in clients],
            [True] * n,
        )
    before = len(task.gas)
    txs = task.settle(1)
    settle = [g for name, g in task.gas[before:] if name == "settle"]
    who = clients[0]
    fund_accounts(w3, [who.address])
    claimer = EvmTask.attach(w3, task.address, who)
    assert claimer.withdraw() == task.payout(1)["per_client"] and claimer.credit(who.address) == 0
    assert _checksum(who.address) in {c["identity"] for c in task.credits(1)}
    # collect: a slashed stake credited to the task by an optimistic round (a RoundStub
    # forfeiting to the task: the task side of the pull is what is measured)
    rid, stub = open_stub(
        task,
        [i.address for i in members],
        [0] * m,
        [i.address for i in clients[:2]],
        [True, True],
        forfeit_to=task.address,
    )
    task._send(stub.functions.slash(task.address), "stubSlash", 10**15)
    assert task.collect(rid) == 10**15
    return {
        "op": "task_rewards",
        "n": n,
        "m": m,
        "fund": dict(task.gas)["fund"],
        "settle": sum(settle),
        "settle_txs": txs,
        "settle_page": SETTLE_PAGE,
        "settle_max_tx": max(settle),
        "settle_per_seat": round(sum(settle) / (n + m)),
        "withdraw": dict(claimer.gas)["withdraw"],
        "collect": dict(task.gas)["collect"],
        "measured": "round" if real else "stub-round",
        "provider": provider,
    }


@contextlib.contextmanager
def _artifacts_at(rev: str | None) -> Iterator[None]:
    """Deploy the contracts of git revision ``rev`` (None: this tree's) inside."""
    if rev is None:
        yield
        return
    cache: dict[str, dict] = {}

    def load(name: str = evm.ARTIFACT) -> dict:
        if name not in cache:
            text = subprocess.run(
                ["git", "show", f"{rev}:secagg/boards/artifacts/{name}.json"],  # noqa: S607
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            cache[name] = json.loads(text)
        return cache[name]

    saved = evm._artifact
    evm._artifact = load
    try:
        yield
    finally:
        evm._artifact = saved


def close_gas(provider: str, n: int, k: int, pattern: str, send: bool = True) -> dict:
    """close() of a round of n clients (regular:k, open membership, m = 3) whose client
    flags are written into the contract's storage (see the module docstring)."""
    from pvss.transcript import keccak256
    from secagg.graph import _permutation

    rnd = ChainRound.create(
        provider,
        n=n,
        m=3,
        t=1,
        graph=f"regular:{k}",
        bits=32,
        open_membership=True,
        register=12,
        deal_blocks=12,
        min_neighbours=k if pattern == "peel" else 0,
    )
    board = rnd.board
    try:
        rnd.post(ROLE_CLIENT, 1, rnd.registration(ROLE_CLIENT, 1))
        for j in (1, 2, 3):
            rnd.post(ROLE_MEMBER, j, rnd.registration(ROLE_MEMBER, j))
        rnd.reveal_all()
        w3, address = board.w3, board.contract.address

        def slot(i: int, p: int) -> bytes:
            return keccak256(i.to_bytes(32, "big") + p.to_bytes(32, "big"))

        # the `clients` mapping's slot: client 1's first word is identity | 1 << 160
        p = next(
            p
            for p in range(128)
            if int.from_bytes(w3.eth.get_storage_at(address, slot(1, p)), "big") >> 160 == 1
        )
        perm = _permutation(n, bytes(board.contract.functions.roundSeed().call()))
        uploaded = set(perm) if pattern == "all" else set(perm[1:])
        for i in range(1, n + 1):
            flags = 1 | 2 | (8 if i in uploaded else 0)  # registered, dealt, uploaded
            value = "0x" + (flags << 160).to_bytes(32, "big").hex()
            w3.provider.make_request(
                "anvil_setStorageAt", [address, "0x" + slot(i, p).hex(), value]
            )
        rnd.to("unmask")
        fn = board.contract.functions.close()
        gas = fn.estimate_gas({"from": board.account(), "gas": 290_000_000}, "pending")
        out = {"gas": gas}
        if send:
            receipt = board.transact("anyone", "close")
            ev = board.contract.events.IncludedSet().process_receipt(receipt)[0]["args"]
            out = {
                "gas": int(receipt["gasUsed"]),
                "included": len(ev["included"]),
                "allowed": int(ev["allowedDealings"]),
            }
        return out
    finally:
        board.close()


def close_rows(sizes: list[tuple[int, int]], baseline: str) -> list[dict]:
    port = evm.free_port()
    cmd = [str(evm.find_anvil()), "--port", str(port), "--silent", "--gas-limit", "300000000"]
    proc = subprocess.Popen(cmd)  # noqa: S603
    rows = []
    try:
        time.sleep(2)
        provider = f"rpc:http://127.0.0.1:{port}"
        for n, k in sizes:
            for pattern in ("all", "peel"):
                ours = close_gas(provider, n, k, pattern)
                with _artifacts_at(baseline):
                    base = close_gas(provider, n, k, pattern, send=False)["gas"]
                row = {"op": "close", "n": n, "k": k, "pattern": pattern, **ours}
                row.update(
                    baseline=baseline, baseline_gas=base, measured="close (flags in storage)"
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        evm.stop_process(proc)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, nargs="*", default=[4, 8, 16, 32])
    ap.add_argument("--rounds", type=int, nargs="*", default=[])
    ap.add_argument("--task", type=int, nargs="*", default=[], help="task_amortised rows at n")
    ap.add_argument("--rewards", type=int, nargs="*", default=[], help="task_rewards rows at n")
    ap.add_argument("--provider", default="anvil")
    ap.add_argument("--close", nargs="*", default=[], metavar="N,K")
    ap.add_argument("--baseline", default="9773916")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows: list[dict] = []
    if args.close:
        sizes = [tuple(int(x) for x in s.split(",")) for s in args.close]
        rows += close_rows(sizes, args.baseline)  # type: ignore[arg-type]
    for m in args.m:
        run(m, rows)
    for n in args.rounds:
        for mode in ("full", "optimistic"):
            big = n > 100
            row, board = whole_round(
                n, 10, mode, args.provider, reuse=big and mode == "optimistic", full_round=not big
            )
            board.close()
            if big:
                row = _complete_from_small(row, rows)
            rows.append(row)
            print(json.dumps(row), flush=True)
    for n in args.task:
        rows.append(task_amortised(n, 10, 10, args.provider))
        print(json.dumps(rows[-1]), flush=True)
    for n in args.rewards:
        for real in (True, False) if n <= 10 else (False,):
            rows.append(task_rewards(n, 10, args.provider, real))
            print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

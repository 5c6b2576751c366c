"""Gas that fits and scales (SPEC.md §7.5): on the real PvssRound, every transaction of
a round up to close() stays under TX_GAS_CAP at n = 128 (what runs here in minutes),
close() grows linearly in n·K (not n²), a dealings post too big for one transaction is
split under the cap and still lands as ONE signed post in the transcript, and the
contract refuses n or K past its caps."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("web3")
pytest.importorskip("eth_tester")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from gas import close_gas, whole_round  # noqa: E402

import secagg.boards.evm as evm  # noqa: E402
from secagg.boards.evm import ANVIL, MAX_CHAIN_CLIENTS, TX_GAS_CAP, ContractRevert  # noqa: E402
from secagg.errors import ConfigError  # noqa: E402
from secagg.identity import verify  # noqa: E402
from secagg.messages import ROLE_CLIENT  # noqa: E402
from secagg.posts import post_digest, signing_digest  # noqa: E402
from tests.evm_round import ChainRound, round_config  # noqa: E402

needs_anvil = pytest.mark.skipif(not ANVIL.exists(), reason="anvil not installed (make install)")


@needs_anvil
def test_every_transaction_fits_the_cap_and_close_is_linear() -> None:
    """Optimistic rounds (dealings reused: the contract checks headers only, so the gas
    is the same) up to close() at n = 32, 64, 128 (K = 10, 12, 14): no transaction over
    the cap, and close()'s growth follows n·K (increments 448 then 1 024 units of n·K,
    ratio 2.3), not n² (increments 3 072 then 12 288, ratio 4)."""
    close = {}
    for n in (32, 64, 128):
        row, board = whole_round(n, 10, "optimistic", "anvil", reuse=True, full_round=False)
        try:
            assert max(g for _, g in board.gas) <= TX_GAS_CAP, row
        finally:
            board.close()
        close[n] = (row["close_gas"], n * row["k"])
    (g1, u1), (g2, u2), (g3, u3) = close[32], close[64], close[128]
    assert g1 < g2 < g3, close
    growth = (g3 - g2) / (g2 - g1)
    assert growth < 3.0, (growth, close)  # linear in n·K: ≈ (u3 - u2) / (u2 - u1) = 2.3
    assert (g3 - g2) / (u3 - u2) < 2 * (g2 - g1) / (u2 - u1), close


def test_a_dealings_post_split_under_the_cap_is_one_signed_post(monkeypatch) -> None:  # noqa: ANN001
    """With a tiny per-transaction budget client 1's full-mode post (self + 4 pair
    dealings, complete graph, n = 5) goes out as postDealings + continueDealings; the
    transcript holds one DealingsPost with every item, its signature verifies and the
    chain's head is the transcript's."""
    monkeypatch.setattr(evm, "DEALINGS_TX_BUDGET", 600_000)
    rnd = ChainRound.create(n=5, m=3, t=1, deal_blocks=40)
    board = rnd.board
    rnd.register_all().reveal_all()
    post = rnd.dealings(1)
    assert len(post.items) == 5
    start = len(board.gas)
    ev = rnd.post(ROLE_CLIENT, 1, post)
    sent = [name for name, _ in board.gas[start:]]
    assert sent[0] == "postDealings" and sent.count("continueDealings") >= 2, sent
    from secagg import codec

    assert codec.decode(ev.body) == post
    assert bytes(board.contract.functions.head().call()) == board.head
    # a second post by the same dealer is refused, split or not
    with pytest.raises(Exception, match="dealings"):
        rnd.post(ROLE_CLIENT, 1, post)
    # nobody can finish another dealer's post with other bytes
    rnd2 = rnd.dealings(2)
    with pytest.raises(ContractRevert) as info:
        board.transact("anyone", "continueDealings", 2, [(0, 0, rnd2.items[0].dealing)], b"")
    assert info.value.name == "NoOpenDealings"
    # the one signature covers the whole split post
    digest = signing_digest(board.config, ROLE_CLIENT, 1, ev.view, post_digest(post))
    verify(digest, ev.sig, rnd.clients[0].address)
    rnd.deal_all([2, 3, 4, 5])
    assert {k for k in board.state().dealings if k[0] == 1} == {
        (1, it.purpose, it.partner) for it in post.items
    }


def test_the_contract_caps_n_and_k() -> None:
    cfg, agg, _, _ = round_config(n=MAX_CHAIN_CLIENTS + 1, m=3, t=1, bits=32)
    with pytest.raises(ConfigError, match="n <= 1024"):
        evm.EvmBoard(cfg, "evm", aggregator=agg)
    cfg, agg, _, _ = round_config(n=100, m=3, t=1, graph="regular:66", bits=32)
    with pytest.raises(ConfigError, match="K <= 64"):
        evm.EvmBoard(cfg, "evm", aggregator=agg)


def _deploy_verifier(w3):  # noqa: ANN001, ANN202
    art = evm._artifact(evm.VERIFIER_ARTIFACT)
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    txh = factory.constructor().transact({"from": w3.eth.accounts[0], "gas": TX_GAS_CAP})
    address = w3.eth.wait_for_transaction_receipt(txh)["contractAddress"]
    return w3.eth.contract(address=address, abi=art["abi"])


def _random_flags(rng, n: int) -> bytes:  # noqa: ANN001
    """Flag bytes (PvssGraph: 1 registered, 2 dealt, 4 excluded, 8 uploaded) of a round
    where clients drop out at every stage; index 0 unused."""
    flags = [0]
    for _ in range(n):
        f = 0
        if rng.random() < 0.9:
            f |= 1
            if rng.random() < 0.85:
                f |= 2
                if rng.random() < 0.1:
                    f |= 4
                elif rng.random() < 0.75:
                    f |= 8
        flags.append(f)
    return bytes(flags)


def test_on_chain_graph_and_included_set_match_the_reference() -> None:
    """PvssVerifier.graphNeighbours / includedSet (PvssGraph.sol, loops in assembly)
    against secagg.graph.compute_mask_graph and the κ-core of secagg.boards.base, with
    random dropouts at every stage: the neighbours, U, |U| and the allowed dealings
    (|U| self dealings + pair dealings of accepted dealers with exactly one end in U)."""
    import random
    from dataclasses import replace

    from secagg.boards.base import kcore
    from secagg.graph import compute_mask_graph

    w3, _ = evm.connect("evm")
    v = _deploy_verifier(w3)
    cfg0, _, _, _ = round_config(n=4, m=3, t=1, open_membership=True, bits=32)
    rng = random.Random(13)
    cases = [(40, 6, 4), (41, 8, 1), (40, 7, 4), (64, 12, 7), (30, 0, 1), (12, 11, 6), (50, 4, 3)]
    cases += [(20, 1, 1), (21, 2, 2), (300, 16, 9)]  # K = 1 (no window), K = 2, two bitmap words
    for n, k, kappa in cases:
        for trial in range(3):
            seed = rng.randbytes(32)
            graph_name = f"regular:{k}" if k else "complete"
            cfg = replace(cfg0, n_clients=n, graph=graph_name, min_included=2, min_neighbours=1)
            graph = compute_mask_graph(cfg, seed)
            for client in (1, n // 2, n):
                got = tuple(v.functions.graphNeighbours(seed, n, k, client).call())
                assert got == graph[client], (n, k, client)
            flags = _random_flags(rng, n) if trial else bytes([0] + [11] * n)
            bits, count, allowed = v.functions.includedSet(seed, n, k, kappa, flags).call(
                {"gas": TX_GAS_CAP}
            )
            got_u = {i for i in range(1, n + 1) if (bits[i >> 8] >> (i & 0xFF)) & 1}
            uploaded = {i for i in range(1, n + 1) if flags[i] & 8}
            want_u = (
                kcore(graph, uploaded, kappa)
                if k
                else (uploaded if len(uploaded) - 1 >= kappa else set())
            )
            assert got_u == want_u and count == len(want_u), (n, k, kappa, trial)
            pairs = sum(
                1
                for i in range(1, n + 1)
                if flags[i] & 6 == 2
                for j in graph[i]
                if j > i and flags[j] & 1 and ((i in want_u) != (j in want_u))
            )
            assert allowed == len(want_u) + pairs, (n, k, kappa, trial)


@needs_anvil
@pytest.mark.parametrize(
    ("n", "k", "pattern"),
    [(1000, 20, "all"), (1000, 20, "peel"), (1024, 64, "all"), (1024, 64, "peel")],
)
def test_close_fits_the_cap_at_n_1000_and_at_the_caps(n: int, k: int, pattern: str) -> None:
    """close() at n = 1000 (K = 20, the bench's K = 2⌈log2 n⌉) and at the contract's caps
    (n = 1024, K = 64), a real transaction on the real contract: every client uploaded
    (the largest U, log and bitmap), or all but one with κ = K so that peeling removes
    every client (the most peeling: each of the n positions visits its K neighbours).
    The client flags close() reads are written into storage (bench/gas.py close_gas)
    instead of n registrations, dealings posts and uploads. Under TX_GAS_CAP with a
    margin (≤ 12 M), and the included set is the expected one."""
    row = close_gas("anvil", n, k, pattern)
    print(f"close() n={n} K={k} {pattern}: {row['gas']} gas")
    assert row["gas"] <= 12_000_000 < TX_GAS_CAP, (n, k, pattern, row)
    if pattern == "all":
        assert row["included"] == n and row["allowed"] == n, row  # no boundary pairs
    else:
        assert row["included"] == 0 and row["allowed"] == 0, row  # all peeled: abort

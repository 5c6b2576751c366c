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

from gas import whole_round  # noqa: E402

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

"""Auditing from the chain (SPEC.md §7.6), on anvil.

- The round contract's ``head()`` is the transcript head at every block of a round:
  read at each block's state (an archive read) and compared with the hash chain that
  ``MemoryBoard.replay`` recomputes from the events alone.
- ``EvmBoard.attach`` rebuilds a round from the contract's logs alone (no state from
  the board that ran it) and refuses an address that does not run PvssRound.
- ``pvss-secagg simulate --board anvil --keep-chain --json`` prints ``rpc``,
  ``contract`` and the pid of the anvil it left running; ``pvss-secagg verify --rpc
  URL --contract ADDR [--blobs DIR]`` verifies that round from the chain alone, and
  ``verify DIR --rpc URL --contract ADDR`` checks a round directory against it: a
  tampered copy (client 1's upload digest rewritten, the hash chain re-linked) is
  caught, naming the event, its sender and the field.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("web3")

from secagg import codec  # noqa: E402
from secagg.boards import MemoryBoard, event_hash  # noqa: E402
from secagg.boards.evm import ANVIL, EvmBoard  # noqa: E402
from secagg.cli import main  # noqa: E402
from secagg.errors import ProtocolError  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    MaskedInputPost,
    TranscriptFile,
)
from secagg.posts import post_digest  # noqa: E402
from secagg.simulate import SimParams, simulate  # noqa: E402
from secagg.verifier import load_round, save_round  # noqa: E402

from .evm_round import ChainRound  # noqa: E402

SMALL = dict(clients=4, committee=3, threshold=1, dim=8, backend="reference", seed=3)


@pytest.fixture(scope="module")
def chain_round(anvil_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One honest round simulated on the test's anvil: (round directory, contract)."""
    out = tmp_path_factory.mktemp("round")
    res = simulate(SimParams(board=f"rpc:{anvil_url}", **SMALL), out)
    assert res.verified and res.rpc == anvil_url and res.contract
    return out, res.contract


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_head_is_the_transcript_head_at_every_block(anvil_url: str) -> None:
    rnd = ChainRound.create(f"rpc:{anvil_url}", n=3).register_all().reveal_all().deal_all()
    rnd.upload_all().confirm_all()
    for k in (1, 2, 3):
        rnd.post(ROLE_MEMBER, k, rnd.shares(k))
    rnd.to("result")
    rnd.post(ROLE_AGGREGATOR, 0, rnd.result())
    board = rnd.board
    head = board.contract.functions.head
    # the transcript from a fresh reader of the logs, its hash chain recomputed by replay
    transcript = EvmBoard.attach(anvil_url, board.address).transcript()
    replayed = MemoryBoard.replay(transcript, bytes(head().call()))
    events = replayed.events()
    assert len(events) == 1 + 6 + 3 + 3 + 3 + 3 + 3 + 1  # config, 6 registrations, ..., result
    latest = board.w3.eth.block_number
    posted_at = set()
    for block in range(board.start_block, latest + 1):
        h = block - board.start_block
        before = [ev for ev in events if ev.height <= h]
        assert bytes(head().call(block_identifier=block)) == event_hash(before[-1]), block
        posted_at.update(ev.seq for ev in before)
    assert posted_at == set(range(len(events)))  # every post was checked at its block


def test_attach_refuses_what_is_not_a_round_contract(anvil_url: str) -> None:
    rnd = ChainRound.create(f"rpc:{anvil_url}", n=2, m=3)
    with pytest.raises(ProtocolError, match="does not run the PvssRound contract"):
        EvmBoard.attach(anvil_url, rnd.board.verifier)  # code, but the verifier's
    with pytest.raises(ProtocolError, match="no code"):
        EvmBoard.attach(anvil_url, "0x" + "11" * 20)
    with pytest.raises(ProtocolError, match="runs another config"):
        EvmBoard.attach(anvil_url, rnd.board.address, config=replace(rnd.cfg, dim=5))
    got = EvmBoard.attach(anvil_url, rnd.board.address)
    assert got.config == rnd.cfg and got.events() == rnd.board.events()


def test_a_log_read_racing_the_newest_block_is_read_again(
    anvil_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that answers ``eth_getLogs`` for its newest block before indexing it
    (real clients do; SPEC.md §7.4 ``SYNC_ATTEMPTS``): the reader's head check fails,
    it reads the log again from the start and gets the whole transcript; a node that
    never returns those logs is refused with ``ProtocolError``, not silently trusted."""
    import secagg.boards.evm as evm

    rnd = ChainRound.create(f"rpc:{anvil_url}", n=2, m=3).register_all()
    reader = EvmBoard.attach(anvil_url, rnd.board.address)
    before = len(reader.events())
    rnd.reveal_all()  # new blocks with new logs
    want = EvmBoard.attach(anvil_url, rnd.board.address).events()
    assert len(want) > before
    monkeypatch.setattr(evm, "SYNC_PAUSE_S", 0.0)
    real = reader.w3.eth.get_logs
    calls = []

    def racing(query, drop):  # noqa: ANN001, ANN202 - the newest block's logs missing
        calls.append(query)
        logs = real(query)
        newest = reader.w3.eth.block_number
        return [e for e in logs if e["blockNumber"] != newest] if drop(len(calls)) else logs

    monkeypatch.setattr(reader.w3.eth, "get_logs", lambda q: racing(q, lambda k: k == 1))
    assert reader.events() == want  # the second read, from the start, has them all
    assert len(calls) == 2 and calls[1]["fromBlock"] == rnd.board.start_block
    rnd.deal_all()  # more blocks, more logs
    calls.clear()
    monkeypatch.setattr(reader.w3.eth, "get_logs", lambda q: racing(q, lambda k: True))
    with pytest.raises(ProtocolError, match="not the contract's head"):
        reader.events()
    assert len(calls) == evm.SYNC_ATTEMPTS
    monkeypatch.setattr(reader.w3.eth, "get_logs", real)  # the node caught up
    assert reader.events() == EvmBoard.attach(anvil_url, rnd.board.address).events()


def test_verify_from_the_chain_alone(
    chain_round: tuple[Path, str], anvil_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, contract = chain_round
    code, text = _cli(
        capsys, "verify", "--rpc", anvil_url, "--contract", contract, "--blobs", str(out / "blobs")
    )
    assert code == 0 and "round verified\n" in text, text
    head = bytes(EvmBoard.attach(anvil_url, contract).contract.functions.head().call())
    assert f"head {head.hex()} (read from the chain)" in text
    code, text = _cli(capsys, "verify", "--rpc", anvil_url, "--contract", contract, "--json")
    rep = json.loads(text)
    assert code == 0 and rep["verified"] and rep["sum_checked"] is False
    assert rep["included"] == [1, 2, 3, 4] and rep["head"] == head.hex()
    # the honest round directory is the chain's
    code, text = _cli(capsys, "verify", str(out), "--rpc", anvil_url, "--contract", contract)
    assert code == 0 and "[ok] the round directory is the chain's transcript" in text, text


def test_a_tampered_round_directory_is_caught(
    chain_round: tuple[Path, str],
    anvil_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, contract = chain_round
    forged = tmp_path / "forged"
    shutil.copytree(out, forged)
    transcript, _ = load_round(forged)
    events = list(transcript.events)
    pos = next(
        k
        for k, ev in enumerate(events)
        if ev.role == ROLE_CLIENT
        and ev.sender == 1
        and isinstance(codec.decode(ev.body), MaskedInputPost)
    )
    old = codec.decode(events[pos].body)
    new = MaskedInputPost(1, bytes(32), old.size)
    events[pos] = replace(events[pos], body=codec.encode(new), digest=post_digest(new))
    for k in range(pos + 1, len(events)):  # re-link the hash chain
        events[k] = replace(events[k], prev=event_hash(events[k - 1]))
    save_round(forged, TranscriptFile(tuple(events)))
    code, text = _cli(capsys, "verify", str(forged), "--rpc", anvil_url, "--contract", contract)
    assert code == 1 and "round NOT verified" in text
    assert (
        f"round directory: chain: event {pos} (client 1's MaskedInputPost) differs from the "
        "chain's: body, digest: digest" in text
    ), text


def test_simulate_keep_chain_then_verify_from_the_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not ANVIL.exists():
        pytest.skip(f"anvil not installed ({ANVIL} missing)")

    code, text = _cli(
        capsys,
        "simulate",
        "--board",
        "anvil",
        "--keep-chain",
        "--json",
        "--out",
        str(tmp_path / "round"),
        "--clients",
        "3",
        "--committee",
        "3",
        "--threshold",
        "1",
        "--dim",
        "4",
        "--backend",
        "reference",
    )
    res = json.loads(text.strip().splitlines()[-1])
    pid = res.get("anvil_pid")
    try:
        assert code == 0 and res["verified"], text
        assert res["rpc"].startswith("http://127.0.0.1:") and res["contract"].startswith("0x")
        code, text = _cli(
            capsys,
            "verify",
            "--rpc",
            res["rpc"],
            "--contract",
            res["contract"],
            "--blobs",
            str(tmp_path / "round" / "blobs"),
        )
        assert code == 0 and "round verified\n" in text, text
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.waitpid(pid, os.WNOHANG)
                    os.kill(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    break
                __import__("time").sleep(0.1)
    assert pid, "simulate --keep-chain printed no anvil_pid"

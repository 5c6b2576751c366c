"""The forged-transcript attack (issue 13): the parties who wrote a round directory
rewrite it after the fact — client 1's upload digest replaced by another vector's,
every later post re-signed on the new views, the result recomputed and re-signed, the
hash chain re-linked, ``head.hex`` rewritten. Every signature in the forgery is
genuine (the attacker holds every identity of the round: the worst case), so the
directory passes replay and ``pvss-secagg verify DIR`` on its own. The anchor is the
round contract: its ``head()`` is the real transcript head, and ``verify DIR --rpc URL
--contract ADDR`` rejects the forgery naming client 1's upload; the round read from
the chain alone still verifies with the real blobs. Control: the honest directory
passes against the chain. The test fails if the forgery passed the chain check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("web3")

from secagg import codec  # noqa: E402
from secagg.blobs import BlobStore, blob_digest  # noqa: E402
from secagg.boards import MemoryBoard  # noqa: E402
from secagg.boards.evm import EvmBoard  # noqa: E402
from secagg.cli import main  # noqa: E402
from secagg.config import RoundConfig  # noqa: E402
from secagg.messages import (  # noqa: E402
    ROLE_CLIENT,
    ROLE_MEMBER,
    Confirmation,
    MaskedInputPost,
    ResultPost,
    SharesPost,
    SignedPost,
)
from secagg.packing import pack, unpack  # noqa: E402
from secagg.posts import sign_post  # noqa: E402
from secagg.roles import Aggregator  # noqa: E402
from secagg.simulate import SimParams, simulate  # noqa: E402
from secagg.verifier import HEAD_FILE, load_round, save_round, verify_round  # noqa: E402

PARAMS = SimParams(clients=4, committee=3, threshold=1, dim=8, backend="reference", seed=11)


def _forge(honest: Path, forged: Path, roster) -> int:  # noqa: ANN001
    """Rewrite ``honest`` into ``forged`` (see the module docstring); returns the seq of
    the rewritten upload."""
    shutil.copytree(honest, forged)
    transcript, _ = load_round(honest)
    blobs = BlobStore(forged / "blobs", create=False)
    cfg = codec.decode(transcript.events[0].body, RoundConfig)
    board = MemoryBoard.create(cfg, roster.aggregator)
    assert board.events()[0] == transcript.events[0]
    target = -1
    for ev in transcript.events[1:]:
        board.advance(ev.height - board.height())
        msg = codec.decode(ev.body)
        if isinstance(msg, MaskedInputPost) and ev.sender == 1:
            values = unpack(blobs.get(msg.digest), cfg.vector_length, cfg.bits, "reference")
            values[0] = (int(values[0]) + 12345) % (1 << cfg.bits)  # another input
            blob = pack(values, cfg.bits, "reference")
            blobs.put(blob)
            new = MaskedInputPost(1, blob_digest(blob), len(blob))
            post = sign_post(roster.clients[0], cfg, ROLE_CLIENT, 1, new, board.view())
            target = ev.seq
        elif isinstance(msg, Confirmation):
            k = msg.member
            post = sign_post(
                roster.members[k - 1],
                cfg,
                ROLE_MEMBER,
                k,
                Confirmation(k, board.view()),
                board.view(),
            )
        elif isinstance(msg, SharesPost):
            k = msg.member
            post = sign_post(roster.members[k - 1], cfg, ROLE_MEMBER, k, msg, board.view())
        elif isinstance(msg, ResultPost):
            Aggregator(cfg, identity=roster.aggregator, backend="reference").aggregate(board, blobs)
            continue
        else:
            post = SignedPost(ev.role, ev.sender, ev.body, ev.view, ev.sig)
        board.submit(post)
    save_round(forged, board.transcript())  # head.hex rewritten too
    return target


def test_a_forged_round_directory_fails_against_the_chain(
    anvil_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roster = PARAMS.identities()
    honest = tmp_path / "honest"
    res = simulate(
        SimParams(**{**PARAMS.__dict__, "board": f"rpc:{anvil_url}"}), honest, roster=roster
    )
    assert res.verified and res.contract
    forged = tmp_path / "forged"
    seq = _forge(honest, forged, roster)
    assert seq > 0

    # the forgery is self-consistent: replay, every signature and the sum pass
    ftranscript, fblobs = load_round(forged)
    report = verify_round(ftranscript, fblobs)
    assert report.ok, report.findings
    htranscript, hblobs = load_round(honest)
    assert verify_round(htranscript, hblobs).total is not None
    assert not (report.total == verify_round(htranscript, hblobs).total).all()  # other sum
    assert main(["verify", str(forged)]) == 0  # its own head.hex: undetectable
    capsys.readouterr()

    # the chain's head is not the forged one
    chain_head = bytes(EvmBoard.attach(anvil_url, res.contract).contract.functions.head().call())
    assert (forged / HEAD_FILE).read_text().strip() != chain_head.hex()

    # against the chain: caught, naming client 1's upload
    code = main(["verify", str(forged), "--rpc", anvil_url, "--contract", res.contract])
    text = capsys.readouterr().out
    assert code == 1 and "round NOT verified" in text, text
    assert f"event {seq} (client 1's MaskedInputPost) differs from the chain's" in text, text
    assert "digest" in text

    # control: the honest directory passes against the same chain
    code = main(["verify", str(honest), "--rpc", anvil_url, "--contract", res.contract])
    text = capsys.readouterr().out
    assert code == 0 and "round verified" in text, text
    # and the chain alone, with the real blobs, gives the honest round
    code = main(
        ["verify", "--rpc", anvil_url, "--contract", res.contract, "--blobs", str(honest / "blobs")]
    )
    assert code == 0, capsys.readouterr().out

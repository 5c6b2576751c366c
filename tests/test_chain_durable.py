"""Durable chain-native rounds (SPEC.md §6.14): a round on an anvil that outlives the
round process (tests/durable_round.py --rpc: every node posts from its own account, the
server holds no party's key), the process killed with SIGKILL at every stage and started
again: the host rebuilds the round from the chain (``chain.json``: the contract it
deployed) and finishes it, nothing posted on the chain is asked again, and the round
verifies from the chain alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fl.host import CHAIN_FILE, ROLES_FILE
from secagg import codec
from secagg.blobs import BlobStore
from secagg.messages import MaskedInputPost, ResultPost
from secagg.verifier import BLOB_DIR

sys.path.insert(0, str(Path(__file__).parent))

from tests.test_durable import (  # noqa: E402
    STAGE_MESSAGE,
    check_mean,
    held_seats,
    kill_mid_round,
    requests_after,
    resume_round,
)

# every stage killed once its first post is on the chain; then the stages where a node
# acts (its transaction on the chain) while its reply is on its way to the server
CASES = [(stage, False) for stage in STAGE_MESSAGE] + [("upload", True), ("unmask", True)]


class ChainWatch:
    """The round's contract read from outside, as an auditor reads it (read-only)."""

    def __init__(self, url: str, round_dir: Path) -> None:
        self.url, self.round_dir, self.board = url, round_dir, None

    def messages(self) -> list[object]:
        if self.board is None:
            try:
                record = json.loads((self.round_dir / CHAIN_FILE).read_text())
            except (OSError, ValueError):
                return []  # not written yet (or being written)
            from secagg.boards.evm import EvmBoard  # noqa: PLC0415

            self.board = EvmBoard.attach(self.url, record["contract"])
        return [codec.decode(ev.body) for ev in self.board.events() if ev.seq > 0]


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "in_transit"), CASES)
def test_chain_native_kill_9_at_each_stage_then_resume(
    stage: str, in_transit: bool, anvil_url: str, tmp_path: Path
) -> None:
    """Start a chain-native round on the module's anvil, watch the contract's logs for
    the stage's first post, SIGKILL the round process (host and nodes: every byte of
    their memory is lost, the chain keeps everything they sent), start it again: it
    resumes from the chain, the round verifies from the chain alone with the local round
    directory equal to it, the mean is the plain weighted mean within the quantization
    bound, and no seat whose post the chain held at the kill is asked for that stage
    again — except an upload whose blob the server had not stored yet, which is asked
    for again and answered with the very same masked vector (its digest is on-chain)."""
    from secagg.cli import main as cli  # noqa: PLC0415 - needs the evm extra

    want = STAGE_MESSAGE[stage]
    watch = ChainWatch(anvil_url, tmp_path / "round")
    timing = ["--transit", "0.6"] if in_transit else ["--delay", "0.4"]
    if stage == "result":  # hold the process between the result and the verification
        timing += ["--hold-result", "5"]
    killed_pid = kill_mid_round(  # in transit: a further node acts (its transaction on
        tmp_path,  # the chain) and its reply never arrives
        ["--rpc", anvil_url, *timing],
        lambda: any(isinstance(m, want) for m in watch.messages()),
        (lambda: sum(isinstance(m, want) for m in watch.messages())) if in_transit else None,
        what=want.__name__,
    )
    assert (tmp_path / "round" / ROLES_FILE).is_file()  # resumable: not verified yet
    before = watch.messages()  # the chain at the kill: nobody has written since
    assert any(isinstance(m, want) for m in before)
    stored = BlobStore(tmp_path / "round" / BLOB_DIR)
    lost_blobs = {
        m.client - 1 for m in before if isinstance(m, MaskedInputPost) and m.digest not in stored
    }

    result = resume_round(tmp_path, ["--rpc", anvil_url])
    assert not (tmp_path / "round" / ROLES_FILE).exists()  # finished: nothing to resume

    # the round verifies from the chain alone, and the local directory is the chain's
    contract = json.loads((tmp_path / "round" / CHAIN_FILE).read_text())["contract"]
    blobs = str(tmp_path / "round" / BLOB_DIR)
    assert cli(["verify", "--rpc", anvil_url, "--contract", contract, "--blobs", blobs]) == 0
    assert cli(["verify", str(tmp_path / "round"), "--rpc", anvil_url, "--contract", contract]) == 0
    # exactly one round on this contract: the restart did not deploy another one
    assert sum(isinstance(m, ResultPost) for m in watch.messages()) == 1
    check_mean(result["mean"])

    # nobody whose post the chain held at the kill is asked for that stage again
    held = held_seats(before)
    held -= {("upload", node) for node in lost_blobs}  # its blob: asked again, on purpose
    asked = requests_after(tmp_path, killed_pid)
    asked_after = {(s, n) for s, n in asked if "-" not in s}
    assert not held & asked_after, f"asked again: {sorted(held & asked_after)}"
    resent = {(s.removeprefix("resent-"), n) for s, n in asked if s.startswith("resent-")}
    # an upload whose blob was lost is asked again and the node sends the same vector
    assert {("upload", node) for node in lost_blobs} <= resent, (resent, lost_blobs)
    # a node sends a kept reply again only for a seat the chain did not hold (it was
    # killed between keeping its state and its transaction) or whose blob was lost
    assert not resent & held, (resent, held)
    if in_transit and stage == "upload":
        assert lost_blobs, "the kill fell after the upload's reply: the case tests nothing"

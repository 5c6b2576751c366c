"""ServerApp: FedAvg through ``DefaultWorkflow(fit_workflow=PvssSecAggWorkflow(...))``.
Writes ``<round-dir>/summary.json`` (who was averaged, what came out, verified?) for
the test that launched the deployment."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.common import Context
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.workflow import DefaultWorkflow

from fl.flower import PvssSecAggWorkflow
from pvss_flower_app.task import CLIP, RecordingFedAvg
from secagg.identity import Identity

app = ServerApp()


@app.main()
def main(grid, context: Context) -> None:  # noqa: ANN001
    cfg = context.run_config
    strategy = RecordingFedAvg(int(cfg["num-nodes"]))
    round_dir = Path(str(cfg["round-dir"]))
    rpc = str(cfg.get("rpc", ""))
    loaded: list[str] = []  # every identity file this process reads (the test checks it)
    chain = {}
    if rpc:  # chain-native: the server's own identity deploys; nodes post themselves
        real_load = Identity.load.__func__  # type: ignore[attr-defined]

        def recording_load(cls, path):  # noqa: ANN001, ANN202
            loaded.append(str(path))
            return real_load(cls, path)

        Identity.load = classmethod(recording_load)  # type: ignore[method-assign]
        chain = dict(
            board=f"rpc:{rpc}",
            chain_native=True,
            identity=str(cfg["pvss-identity"]),
        )
    workflow = PvssSecAggWorkflow(
        str(cfg["roster"]),
        clipping_range=CLIP,
        max_weight=100,
        round_dir=round_dir,
        timeout=float(cfg["timeout"]),
        **chain,
    )
    legacy = LegacyContext(
        context=context,
        config=ServerConfig(num_rounds=int(cfg["num-server-rounds"])),
        strategy=strategy,
    )
    DefaultWorkflow(fit_workflow=workflow)(grid, legacy)
    summary = {
        "rounds": strategy.rounds,
        "verified": [o.verified for o in workflow.outcomes],
        "round_dirs": [str(o.round_dir) for o in workflow.outcomes],
        "contracts": [o.config.board.hex() for o in workflow.outcomes],
        "identities_loaded": loaded,
        "task": workflow.task_address,  # run_config pvss-task: the rounds' task contract
    }
    round_dir.mkdir(parents=True, exist_ok=True)
    (round_dir / "summary.json").write_text(json.dumps(summary))

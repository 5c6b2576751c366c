"""bench/report.py renders the round table and the targets block from round.jsonl:
the newest line per configuration wins and each target is marked from its numbers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import report  # noqa: E402


def _record(client: float, verifier_chain: float, ts: str, repeats: int = 3) -> dict:
    params = {"n": 100, "m": 10, "t": 4, "d": 10**6, "dropout": 0.1, "repeats": repeats}
    return {
        "bench": "round_client",
        "params": {**params, "board": "memory"},
        "ours_s": client,
        "baseline": "flower_secaggplus",
        "baseline_s": 0.12,
        "speedup": 0.12 / client,
        "ours_seconds": {
            "client_mean": client,
            "committee_mean": 0.3,
            "aggregator": 1.0,
            "verifier": 3.0,
            "verifier_chain": verifier_chain,
        },
        "flower_seconds": {"client_mean": 0.12, "server": 6.0},
        "plain_seconds": {"client": 1e-3, "server": 0.1},
        "ours_bytes_per_coordinate": 3.25,
        "flower_bytes_per_coordinate": 8.0,
        "ts": ts,
        "host": "test",
    }


def test_targets_block_marks_each_target_from_the_newest_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    assert "not measured yet" in report.targets_block()
    lines = [_record(0.5, 2.0, "2026-01-01"), _record(0.06, 1.1, "2026-01-02")]
    (tmp_path / "round.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    block = report.targets_block()
    assert "0.060 s vs 0.120 s — **met**" in block  # the newer line won
    assert "1.00 s vs 6.00 s — **met**" in block
    assert "3.25 vs 8.00 — **met**" in block
    assert "replaying every proof 3.00× — **not met**" in block
    assert "checked 1.10× — **met**" in block
    table = report.round_table()
    rows = [ln for ln in table.splitlines() if ln.startswith("| 100 ")]
    assert len(rows) == 1 and "| 0.06 | 0.12 |" in rows[0]

"""The command line: the demo runs end to end and reports success honestly."""

from __future__ import annotations

import json

from secagg.cli import main


def test_pvss_demo_json(capsys) -> None:
    assert (
        main(
            [
                "pvss-demo",
                "--members",
                "5",
                "--threshold",
                "2",
                "--drop",
                "2",
                "--json",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ok"] is True and out["dropped"] == 2
    assert out["seconds"]["deal"] > 0


def test_pvss_demo_refuses_impossible_drop(capsys) -> None:
    assert main(["pvss-demo", "--members", "5", "--threshold", "2", "--drop", "3"]) == 2
    assert "fewer than t+1" in capsys.readouterr().err

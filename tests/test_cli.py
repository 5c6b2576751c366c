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


def _round_dir_with_config(tmp_path, config_body: bytes):  # noqa: ANN001, ANN202
    """A round directory whose transcript is one event 0 with the given body."""
    from secagg import codec
    from secagg.messages import Event, TranscriptFile

    ev = Event(0, 0, 2, 0, config_body, b"\x00" * 32, b"\x00" * 32, b"\x00" * 65, b"\x00" * 32)
    out = tmp_path / "round"
    out.mkdir()
    (out / "transcript.msgpack").write_bytes(codec.encode(TranscriptFile((ev,))))
    return out


def test_verify_exit_codes_and_no_writes(tmp_path, capsys) -> None:  # noqa: ANN001
    """verify: 2 for unusable input (no transcript, bytes that are no transcript, a
    config over the caps), never a traceback, and nothing written where it looks."""
    import time

    import msgpack

    from secagg import codec
    from secagg.simulate import SimParams

    missing = tmp_path / "nothing"
    missing.mkdir()
    assert main(["verify", str(missing)]) == 2
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "transcript.msgpack").write_bytes(b"\x93\x01\x07\xc0")
    assert main(["verify", str(garbage), "--json"]) == 2
    # a 100k-client complete graph declared in a few hundred bytes: refused by the caps
    # when event 0 decodes, before any graph is built (no 3.7 GB allocation)
    cfg = SimParams(clients=5, committee=3, threshold=1).round_config()
    fields = msgpack.unpackb(codec.encode(cfg))
    fields[5] = 100_000  # n_clients
    huge = _round_dir_with_config(tmp_path, msgpack.packb(fields, use_bin_type=True))
    t0 = time.perf_counter()
    code = main(["verify", str(huge), "--json"])
    assert code == 1 and time.perf_counter() - t0 < 5  # the board's config: its fault
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert '"verified": false' in out and '"party": "board"' in out and "cap" in out
    for d in (missing, garbage, huge):
        assert sorted(p.name for p in d.iterdir()) == (
            [] if d is missing else ["transcript.msgpack"]
        )  # verify wrote nothing (no blobs/ directory either)


def _round_tmp_dirs() -> set[str]:
    import glob
    import tempfile
    from pathlib import Path

    return set(glob.glob(str(Path(tempfile.gettempdir()) / "pvss-secagg-round-*")))


def test_simulate_impossible_parameters_one_line_exit_2(capsys) -> None:
    """Each impossible parameter: one line naming the flag, exit 2, no traceback, no
    temporary round directory left behind."""
    before = _round_tmp_dirs()
    cases = [
        (["--committee", "3", "--threshold", "3"], "--threshold"),
        (["--committee", "4", "--threshold", "2"], "--threshold"),
        (["--dropout", "0.95"], "--dropout"),
        (["--dropout", "1.5"], "--dropout"),
        (
            ["--committee", "5", "--threshold", "2", "--committee-dropout", "3"],
            "--committee-dropout",
        ),
        (["--clients", "1"], "--clients"),
        (["--clients", "100000", "--max-weight", "100000", "--quant-bits", "32"], "--max-weight"),
    ]
    for args, flag in cases:
        assert main(["simulate", "--dim", "8", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {flag}") or flag in err.splitlines()[0], (args, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert _round_tmp_dirs() - before == set()


def test_simulate_removes_its_temporary_directory_on_failure(monkeypatch, capsys) -> None:
    import secagg.simulate as sim
    from secagg.errors import ProtocolError

    def broken(*_args, **_kw):  # noqa: ANN002, ANN003, ANN202
        raise ProtocolError("member 1: the round aborted")

    monkeypatch.setattr(sim, "_simulate", broken)
    before = _round_tmp_dirs()
    assert main(["simulate", "--clients", "4", "--dim", "8"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: the round failed: member 1: the round aborted"
    assert _round_tmp_dirs() - before == set()


def test_every_simulate_and_verify_option_has_help_with_its_default(capsys) -> None:
    import pytest

    for command in ("simulate", "verify"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "(default:" in text
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for fragment in ("(default: 10)", "(default: upload)", "(default: memory)", "(default: 1e-05)"):
        assert fragment in text

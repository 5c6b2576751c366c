"""Render bench/results/*.jsonl as the README's performance tables.

    .venv/bin/python bench/report.py                 # print the tables
    .venv/bin/python bench/report.py --update-readme # rewrite them between the markers

For each (bench, params, baseline) only the newest line counts. Every number in the
tables is a field of a JSON line that a bench script printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

SOURCES = {
    "group_ops": "`.venv/bin/python bench/group_ops.py`",
    "masking": "`.venv/bin/python bench/masking.py`",
    "round": "`.venv/bin/python bench/round.py`",
    "gas": "`.venv/bin/python bench/gas.py`",
    "flower": "`.venv/bin/python bench/flower.py` (`--quick` for the small grid)",
}


def _fmt_s(x: float) -> str:
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.2f} ms"
    return f"{x * 1e6:.1f} µs"


def latest(name: str) -> list[dict]:
    path = RESULTS / f"{name}.jsonl"
    if not path.exists():
        return []
    newest: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        key = json.dumps([rec["bench"], rec["params"], rec["baseline"]], sort_keys=True)
        newest[key] = rec  # later lines win
    return list(newest.values())


def _params(p: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items()) or "—"


def table(name: str) -> str:
    rows = latest(name)
    if not rows:
        return f"_No results yet: run {SOURCES[name]}._\n"
    out = [
        f"From {SOURCES[name]} (medians; baseline timed in the same run; "
        f"host {rows[-1].get('host', '?')}, "
        f"{rows[-1].get('ts', '?')[:10]}):",
        "",
        "| bench | params | ours | baseline | baseline time | speedup | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = r.get("target_speedup")
        met = (
            ""
            if target is None
            else (f"≥ {target}× ✅" if r["speedup"] >= target else f"≥ {target}× ❌")
        )
        out.append(
            f"| {r['bench']} | {_params(r['params'])} | {_fmt_s(r['ours_s'])} | {r['baseline']} | "
            f"{_fmt_s(r['baseline_s'])} | {r['speedup']:.1f}× | {met} |"
        )
    return "\n".join(out) + "\n"


def gas_table() -> str:
    """Gas of every round-contract operation (bench/results/gas.jsonl), one column per m."""
    path = RESULTS / "gas.jsonl"
    if not path.exists():
        return f"_No results yet: run {SOURCES['gas']}._\n"
    cells: dict[tuple[str, object], dict[int, int]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            cells.setdefault((rec["op"], rec.get("recipient")), {})[rec["m"]] = rec["gas"]
    ms = sorted({m for row in cells.values() for m in row})
    out = [
        f"From {SOURCES['gas']} (whole-transaction gas on the embedded py-evm chain, Prague; "
        "targets: dealing ≤ 30k·(m+1)+60k, decrypted share ≤ 30k of verification):",
        "",
        "| operation | recipient | " + " | ".join(f"m={m}" for m in ms) + " |",
        "|---|---|" + "---|" * len(ms),
    ]
    for (op, rec), row in cells.items():
        rec_s = "—" if rec is None else ("yes" if rec else "no")
        out.append(
            f"| {op} | {rec_s} | "
            + " | ".join(f"{row[m]:,}" if m in row else "" for m in ms)
            + " |"
        )
    return "\n".join(out) + "\n"


def render() -> str:
    parts = []
    for name, title in (
        ("group_ops", "Group and PVSS"),
        ("masking", "Masking"),
        ("round", "Rounds"),
        ("flower", "Against Flower SecAgg+ and plain FedAvg"),
    ):
        parts.append(f"#### {title}\n\n{table(name)}")
    parts.append(f"#### Gas\n\n{gas_table()}")
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update-readme", action="store_true")
    args = ap.parse_args()
    text = render()
    if not args.update_readme:
        print(text)
        return
    readme = README.read_text()
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the {BEGIN} / {END} markers")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
    print("README.md tables updated")


if __name__ == "__main__":
    main()

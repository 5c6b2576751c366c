"""The ``pvss-secagg`` console script: ``secagg.cli`` plus the commands of the FL layer
(``demo``). It lives here so that ``secagg`` never imports ``fl`` (SPEC.md §1.3)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from secagg import cli as secagg_cli


def _add_demo(parser: argparse.ArgumentParser) -> None:
    from fl.demo import add_arguments  # noqa: PLC0415 - torch loads only in run

    add_arguments(parser)


def _run_demo(args: Any) -> int:
    from fl.demo import main as run_demo  # noqa: PLC0415

    return run_demo(args)


COMMANDS: tuple[secagg_cli.Command, ...] = (
    (
        "demo",
        "federated training with verified secure aggregation vs plain FedAvg (fl/demo.py)",
        _add_demo,
        _run_demo,
    ),
)


def version() -> str:
    """The installed distribution's version (``pvss-secagg``), or the source tree's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("pvss-secagg")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pvss-secagg`` console script (``--version`` / ``-V`` first:
    print the version and exit)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] in (["--version"], ["-V"]):
        print(f"pvss-secagg {version()}")
        return 0
    return secagg_cli.main(args, commands=COMMANDS)


if __name__ == "__main__":
    sys.exit(main())

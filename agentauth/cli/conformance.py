"""``agentauth conformance``: the conformance driver and runner (``spec/conformance.md``).

``agentauth conformance driver`` speaks the driver interface for this implementation on
standard input and output. ``agentauth conformance run --driver "COMMAND"`` runs the suite
against any driver; the exit code is 0 if every check passed (and none was skipped, unless
``--allow-skip``), 1 otherwise, 2 for a usage error and 3 if the vector files could not be
read or a report could not be written.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..conformance import driver, runner

__all__ = ["add_commands", "run"]


def add_commands(commands: Any) -> None:
    """Register ``conformance driver`` and ``conformance run``."""
    parser = commands.add_parser("conformance", help="the conformance driver and runner")
    sub = parser.add_subparsers(dest="conformance_command", required=True)
    sub.add_parser("driver", help="speak the driver interface on stdin and stdout")
    runner.add_arguments(sub.add_parser("run", help="run the conformance suite against a "
                                                    "driver"))


def run(args: argparse.Namespace) -> int:
    """Run the ``conformance`` command ``args`` names."""
    if args.conformance_command == "driver":
        return driver.main()
    return runner.run_from_args(args)

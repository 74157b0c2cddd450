"""``agentauth conformance``: the conformance driver and runner (``spec/conformance.md``).

``agentauth conformance driver`` speaks the driver interface for this implementation on
standard input and output. ``agentauth conformance run --driver "COMMAND"`` runs the suite
against any driver; the exit code is 0 if every check passed (and none was skipped, unless
``--allow-skip``), 1 otherwise, 2 for a usage error and 3 if the vector files could not be
read or a report could not be written. ``agentauth conformance diff --driver A --driver B``
gives two drivers the same inputs and reports every input they answer differently (exit
code 1 if there is one). ``--json`` with no path prints the report as one JSON
object (:class:`~agentauth.cli.common.ConformanceOut`) instead of the summary, and a failure
to run as the ``{"error": ...}`` object every command prints.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..conformance import driver, runner
from ..conformance.runner import differential
from ..conformance.runner.report import Report
from ..conformance.runner.suite import STDOUT
from .common import ConformanceListOut, ConformanceOut, fail

__all__ = ["add_commands", "run"]


def add_commands(commands: Any) -> None:
    """Register ``conformance driver``, ``conformance run`` and ``conformance diff``."""
    about = "the conformance driver and runner"
    parser = commands.add_parser("conformance", help=about, description=about,
                                 epilog="example:\n  agentauth conformance run --driver "
                                        "\"python3 -m agentauth conformance driver\"")
    sub = parser.add_subparsers(dest="conformance_command", required=True)
    about = "speak the driver interface on stdin and stdout"
    sub.add_parser("driver", help=about, description=about,
                   epilog="example:\n  agentauth conformance run --driver "
                          "\"python3 -m agentauth conformance driver\"")
    runner.add_arguments(sub.add_parser(
        "run", help="run the conformance suite against a driver",
        description="run the conformance suite against a driver",
        epilog='example:\n  agentauth conformance run --driver "python3 -m agentauth '
               'conformance driver" --json'))
    about = "give two drivers the same inputs and report where their answers differ"
    differential.add_arguments(sub.add_parser(
        "diff", help=about, description=about,
        epilog='example:\n  agentauth conformance diff --driver "python3 -m agentauth '
               'conformance driver" --driver "./my-driver" --seed 7'))


def run(args: argparse.Namespace) -> int:
    """Run the ``conformance`` command ``args`` names."""
    if args.conformance_command == "driver":
        return driver.main()
    if args.conformance_command == "diff":
        return differential.run_from_args(args, error=lambda status, message, code: fail(
            False, status, "usage" if status == 2 else "bad input", message, code))
    as_json = args.json == STDOUT

    def show(report: Report) -> None:
        print(ConformanceOut.model_validate_json(report.to_json()).model_dump_json(indent=2))

    def show_ids(ids: list[str]) -> None:
        print(ConformanceListOut(checks=ids).model_dump_json(indent=2))

    def error(status: int, message: str, code: str | None) -> int:
        kind = "usage" if status == 2 else "bad input"
        return fail(as_json, status, kind, f"[{code}] {message}" if code else message, code)

    return runner.run_from_args(args, show=show if as_json else None,
                                show_ids=show_ids if as_json else None, error=error)

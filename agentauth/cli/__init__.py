"""The ``agentauth`` command line.

Every command takes ``--json`` and ``--help`` (with an example); errors are one line on
stderr. Exit codes: 0 success, 1 refused, 2 usage error, 3 bad input
(:mod:`agentauth.cli.common`).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

from .._version import __version__
from . import conformance, keys
from .common import ENVIRONMENT, EXIT_USAGE, DemoOut, Parser, UsageError, add_json, emit, fail
from .tokens import add_commands, run

__all__ = ["main"]

_DESCRIPTION = """\
Agents prove who they are to each other and decide what each may do.

Every command takes --json (one JSON object on stdout, times in Unix seconds; a failure is
{"error": {"code", "kind", "reason"}}) and --help (with an example); errors are one line on
stderr. Exit codes: 0 success, 1 refused (the error code is printed), 2 usage error, 3 bad
input (a file missing, unreadable or damaged, or a key file that does not unlock)."""


def _epilog() -> str:
    return "environment:\n" + "\n".join(
        f"  {name}\n" + textwrap.fill(what, 88, initial_indent=" " * 6,
                                     subsequent_indent=" " * 6)
        for name, what in ENVIRONMENT)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentauth`` command."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = Parser(prog="agentauth", description=_DESCRIPTION, epilog=_epilog())
    parser.add_argument("--version", action="version", version=f"agentauth {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    about = ("four agents on the Agent API over loopback TCP: requests answered and refused, "
             "an untrusted agent, replays and a revocation")
    demo = commands.add_parser("demo", help=about, description=about,
                               epilog="example:\n  agentauth demo --json")
    add_json(demo)
    demo.set_defaults(run=_demo)
    keys.add_commands(commands)
    add_commands(commands)
    conformance.add_commands(commands)
    try:
        args = parser.parse_args(arguments)
    except UsageError as exc:
        return fail("--json" in arguments, EXIT_USAGE, "usage", exc.message,
                    "invalid_argument")
    if args.command == "conformance":
        return conformance.run(args)
    return run(args)


def _demo(args: argparse.Namespace) -> int:
    # Imported here: the demo runs an event loop (anyio), which no other command needs.
    from .demo import run_demo  # noqa: PLC0415

    if not args.json:
        return run_demo()
    lines: list[str] = []
    status = run_demo(lines.append)
    emit(args, DemoOut(ok=status == 0, log=lines), "")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""The ``agentauth`` command line.

Every command takes ``--json`` and ``--help`` (with an example); errors are one line on
stderr. Exit codes: 0 success, 1 refused, 2 usage error, 3 bad input
(:mod:`agentauth.cli.common`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import conformance, keys
from .common import Parser, add_json
from .demo import run_demo
from .tokens import add_commands, run

__all__ = ["main"]

_DESCRIPTION = """\
Agents prove who they are to each other and decide what each may do.

Every command takes --json and --help (with an example); errors are one line on stderr.
Exit codes: 0 success, 1 refused (the error code is printed), 2 usage error, 3 bad input
(a file missing, unreadable or damaged, or a key file that does not unlock)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentauth`` command."""
    parser = Parser(prog="agentauth", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="four agents over loopback TCP: accepted, "
                                            "refused, and a replay rejected",
                               epilog="example:\n  agentauth demo --json")
    add_json(demo)
    demo.set_defaults(run=_demo)
    keys.add_commands(commands)
    add_commands(commands)
    conformance.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "conformance":
        return conformance.run(args)
    return run(args)


def _demo(args: argparse.Namespace) -> int:
    if not args.json:
        return run_demo()
    lines: list[str] = []
    status = run_demo(lines.append)
    print(json.dumps({"ok": status == 0, "log": lines}, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())

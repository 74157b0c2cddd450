"""The ``agentauth`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import cli_conformance
from .aio.demo import run_demo
from .cli_tokens import add_commands, run

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentauth`` command."""
    parser = argparse.ArgumentParser(prog="agentauth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="four agents over loopback TCP: accepted, refused, "
                                     "and a replay rejected")
    add_commands(commands)
    cli_conformance.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo()
    if args.command == "conformance":
        return cli_conformance.run(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

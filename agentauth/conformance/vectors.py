"""The protocol's test vectors: how they are made, and how an engine is run against them.

``python -m agentauth.conformance.vectors --write DIR`` writes the JSON files of
``spec/vectors/``; ``--check DIR`` regenerates them and compares byte for byte. The file
format is described in ``spec/protocol.md`` section 6 and by the pydantic models below.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _capability, _envelope, _keys, _negative, _positive
from .model import (
    HandshakeVector,
    Inputs,
    SessionVector,
    Step,
    make_engine,
    run_handshake_vector,
    run_session_vector,
)

__all__ = [
    "FILES",
    "HandshakeVector",
    "Inputs",
    "SessionVector",
    "Step",
    "generate",
    "make_engine",
    "run_handshake_vector",
    "run_session_vector",
]

FILES = ("handshake-positive.json", "handshake-negative.json", "session-negative.json",
         "capability.json", "envelope.json", "keys.json")


def generate() -> dict[str, Any]:
    """Build every vector file's content from the code (deterministic)."""
    positive = _positive.build()
    return {
        "handshake-positive.json": positive,
        "handshake-negative.json": _negative.build_handshake(positive),
        "session-negative.json": _negative.build_session(positive),
        "capability.json": _capability.build(),
        "envelope.json": _envelope.build(),
        "keys.json": _keys.build(),
    }


def dump(content: Any) -> str:
    """The exact text of a vector file."""
    return json.dumps(content, indent=1, sort_keys=False, ensure_ascii=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write or check the vector files."""
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, metavar="DIR")
    group.add_argument("--check", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    files = generate()
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (args.write / name).write_text(dump(content))
        return 0
    stale = [n for n, c in files.items() if (args.check / n).read_text() != dump(c)]
    for name in stale:
        print(f"{name} differs from what the code generates", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

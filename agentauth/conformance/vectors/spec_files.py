"""The files of ``spec/vectors/``: their names, their exact text, and how they are written
or checked.

``python -m agentauth.conformance.vectors --write DIR`` writes the JSON files;
``--check DIR`` regenerates them and compares byte for byte. The file format is described
in ``spec/protocol.md`` section 6 and by the pydantic models of :mod:`.model`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ... import files, keyfile
from ...errors import FileError, InvalidState
from . import (
    alerts,
    capability,
    constraints,
    envelope,
    handshake_invalid,
    handshake_valid,
    keys,
    requests,
)

__all__ = ["FILES", "MAX_VECTOR_FILE", "dump", "generate", "main"]

MAX_VECTOR_FILE = 16 * 1024 * 1024  # bytes; the largest of this version is 0.3 MiB
FILES = ("handshake-positive.json", "handshake-negative.json", "session-negative.json",
         "capability.json", "constraints.json", "envelope.json", "keys.json",
         "requests.json", "alerts.json")


def generate() -> dict[str, Any]:
    """Build every vector file's content from the code (deterministic)."""
    positive = handshake_valid.build()
    negative = handshake_invalid.build_handshake(positive)
    return {
        "handshake-positive.json": positive,
        "handshake-negative.json": negative,
        "session-negative.json": handshake_invalid.build_session(positive),
        "capability.json": capability.build(),
        "constraints.json": constraints.build(),
        "envelope.json": envelope.build(),
        "keys.json": keys.build(),
        "requests.json": requests.build(),
        "alerts.json": alerts.build(positive, negative),
    }


def dump(content: Any) -> str:
    """The exact text of a vector file."""
    return json.dumps(content, indent=1, sort_keys=False, ensure_ascii=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write or check the vector files. Files are read and written by the rules for
    user-given paths (spec 14.7): a FIFO, a device or an oversized file is refused, never
    read; each file is replaced atomically, never written through a symbolic link, and
    never over a key file. A failure, or a vector whose expected outcome the code does not
    give, is one line on stderr and exit status 3."""
    parser = argparse.ArgumentParser(prog="python -m agentauth.conformance.vectors",
                                     description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, metavar="DIR")
    group.add_argument("--check", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    try:
        content = {name: dump(c).encode("ascii") for name, c in generate().items()}
    except InvalidState as exc:  # a case's expected outcome is not what the code gives
        print(f"error: {exc.message}", file=sys.stderr)
        return 3
    try:
        if args.write:
            _write(args.write, content)
            return 0
        stale = [name for name, data in content.items() if files.read_file(
            args.check / name, MAX_VECTOR_FILE, what="vector file") != data]
    except FileError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 3
    for name in stale:
        print(f"{name} differs from what the code generates", file=sys.stderr)
    return 1 if stale else 0


def _write(folder: Path, content: dict[str, bytes]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise files.os_error(exc, os.fspath(folder), "vector folder", "made") from None
    for name, data in content.items():
        files.write_file(folder / name, data, mode=0o644, force=True,
                         keep=keyfile.is_key_file, what="vector file")

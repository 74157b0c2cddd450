"""Write the seed corpus of every harness: ``python3 -m fuzz.corpus [DIR] [NAME...]``.

Each harness's seeds come from ``spec/vectors`` (valid and negative cases alike); they
are written to ``DIR/<harness>/`` (default ``fuzz/corpus``, which is not kept in git:
the fuzzer adds the inputs it finds there).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from . import HARNESSES
from ._common import write_seeds

DEFAULT = Path(__file__).resolve().parent / "corpus"


def write(name: str, directory: Path = DEFAULT) -> Path:
    """Write harness ``name``'s seeds under ``directory``; return its corpus folder."""
    folder = directory / name
    write_seeds(folder, importlib.import_module(f"{__package__}.{name}").seeds())
    return folder


def main(argv: list[str]) -> int:
    """Write the seeds of the harnesses named (all by default)."""
    directory = Path(argv[0]) if argv else DEFAULT
    names = argv[1:] or list(HARNESSES)
    unknown = set(names) - set(HARNESSES)
    if unknown:
        print(f"unknown harness(es): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for name in names:
        folder = write(name, directory)
        print(f"{name}: {sum(1 for _ in folder.iterdir())} inputs in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

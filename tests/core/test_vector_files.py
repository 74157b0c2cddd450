"""The public vectors the tests read sit in ``tests/vectors`` with their provenance: every
file there is listed in its README with its exact size and SHA-256. (That no file reaches
outside the repository is checked in test_self_contained.py.)"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
ROW = re.compile(r"^\| `([^`]+)` \|.*\| (\d+) \| `([0-9a-f]{64})` \|$")


def listed() -> dict[str, tuple[int, str]]:
    rows = {}
    for line in (VECTORS / "README.md").read_text(encoding="utf-8").splitlines():
        found = ROW.match(line)
        if found:
            rows[found[1]] = (int(found[2]), found[3])
    return rows


def test_every_vector_file_is_listed_with_its_size_and_digest() -> None:
    on_disk = {p.relative_to(VECTORS).as_posix() for p in VECTORS.rglob("*")
               if p.is_file() and p.name != "README.md"}
    rows = listed()
    assert set(rows) == on_disk
    for name, (size, digest) in rows.items():
        data = (VECTORS / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest), name


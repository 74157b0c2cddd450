"""What every harness shares: fixed clocks, keys and randomness, the vectors, the split of
one input into several messages, and the entry point that hands a harness to atheris."""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import atheris

from agentauth.errors import AgentAuthError

VECTORS = Path(__file__).resolve().parents[1] / "spec" / "vectors"


@cache
def vectors(name: str) -> list[dict[str, Any]]:
    """The vectors of ``spec/vectors/<name>.json``."""
    data: list[dict[str, Any]] = json.loads((VECTORS / f"{name}.json").read_text())["vectors"]
    return data


def h(value: str) -> bytes:
    """Bytes from a vector's hex string."""
    return bytes.fromhex(value)


class Clock:
    """A clock that stands still until it is set."""

    __slots__ = ("now",)

    def __init__(self, now: float = 0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Random:
    """A random source that gives the given bytes in order, then counts up from zero, so
    that every run of one input takes the same path."""

    __slots__ = ("_count", "_data")

    def __init__(self, data: bytes = b"") -> None:
        self._data = data
        self._count = 0

    def __call__(self, n: int) -> bytes:
        if len(self._data) >= n:
            out, self._data = self._data[:n], self._data[n:]
            return out
        self._count += 1
        return (self._count.to_bytes(8, "big") * (n // 8 + 1))[:n]


def join(parts: Iterable[bytes]) -> bytes:
    """Several messages as one input: each after its length in two bytes."""
    return b"".join(struct.pack(">H", min(len(p), 0xFFFF)) + p[:0xFFFF] for p in parts)


def split(data: bytes) -> list[bytes]:
    """The messages :func:`join` put in ``data`` (a cut-short last one as it is)."""
    out = []
    while len(data) >= 2:
        n = int.from_bytes(data[:2], "big")
        out.append(data[2:2 + n])
        data = data[2 + n:]
    return out


def pick(data: bytes, choices: int) -> tuple[int, bytes]:
    """The first byte of ``data`` chooses one of ``choices`` contexts; the rest follows."""
    if not data:
        return 0, b""
    return data[0] % choices, data[1:]


def refused(call: Callable[[], object]) -> bool:
    """Run ``call``; True if the library refused it with its own error. Anything else it
    raises propagates: that is a finding."""
    try:
        call()
    except AgentAuthError:
        return True
    return False


def write_seeds(folder: Path, seeds: Iterable[bytes]) -> None:
    """Write ``seeds`` into the corpus ``folder``, each named by its hash."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (folder / f"seed-{hashlib.sha1(seed).hexdigest()}").write_bytes(seed)


def run(one: Callable[[bytes], None], seeds: Callable[[], Iterable[bytes]]) -> None:
    """Fuzz ``one`` with atheris under the command line's libFuzzer options, after writing
    ``seeds`` into the corpus folder (the first argument that is not an option, if any).
    ``one`` catches :class:`AgentAuthError` itself where the library may refuse."""
    folders = [a for a in sys.argv[1:] if not a.startswith("-")]
    if folders and not Path(folders[0]).is_file():
        write_seeds(Path(folders[0]), seeds())
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()

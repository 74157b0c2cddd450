"""What every check is built from: its id and section, the driver it talks to, and the
helpers that turn a driver's answer into PASS or a failure message.

A check is a function of a :class:`Context`. It returns to pass, raises :class:`Fail` with
a message saying what was expected and what came back, or lets :class:`Unimplemented`
through to be skipped. Anything the driver says is untrusted: a result without the
expected field, or with one of the wrong type, fails the check with a message instead of
stopping the run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...errors import AgentAuthError, DecodeError
from ..interface import from_hex
from .driver_process import DriverBroken, DriverProcess, Refused, Unimplemented

__all__ = [
    "T0",
    "Check",
    "Context",
    "Expected",
    "Fail",
    "compare_codes",
    "compare_reference",
    "expect_refusal",
    "get_hex",
    "get_str",
    "reference_code",
    "refusal",
]

#: The base time of the live scenarios (the vectors' own).
T0 = 1_800_000_000

_START_ATTEMPTS = 2


#: What a check expects of a call: one code, a set of codes the spec allows (where it
#: truly leaves a choice), or None: the call is accepted.
Expected = str | frozenset[str] | None


class Fail(Exception):
    """The check failed; the message says what was expected and what came back. A failed
    code comparison also carries it: ``compared`` is (expected, got), None otherwise."""

    def __init__(self, message: str, *,
                 compared: tuple[Expected, str | None] | None = None) -> None:
        super().__init__(message)
        self.compared = compared


@dataclass(frozen=True, slots=True)
class Check:
    """One check: ``id`` starts with the spec section it checks."""

    section: str
    name: str
    run: Callable[[Context], None]

    @property
    def id(self) -> str:
        """``"<section> / <name>"``, e.g. ``protocol.md §4.5 / live / reflection-hs2``."""
        return f"{self.section} / {self.name}"


class Context:
    """The drivers a check talks to and the run's seeded randomness."""

    __slots__ = ("_drivers", "_failed_starts", "_started", "commands", "compared", "rng",
                 "seed", "timeout")

    def __init__(self, commands: list[str], *, seed: int, timeout: float) -> None:
        self.commands = commands
        self.timeout = timeout
        self.seed = seed
        self.rng = random.Random(seed)
        self._drivers: list[DriverProcess | None] = [None] * len(commands)
        self._started: list[dict[str, Any]] = [{} for _ in commands]
        self._failed_starts = [0] * len(commands)
        #: The last code comparison of the running check, (expected, got): the report's.
        self.compared: tuple[Expected, str | None] | None = None

    def driver(self, index: int = 0) -> DriverProcess:
        """Driver ``index`` (0: the one under test, 1: the peer driver), started on demand."""
        proc = self._drivers[index]
        if proc is None:
            if self._failed_starts[index] >= _START_ATTEMPTS:
                raise DriverBroken(f"the driver did not start {_START_ATTEMPTS} times in a "
                                   f"row; not trying again")
            self._failed_starts[index] += 1
            proc = DriverProcess(self.commands[index], timeout=self.timeout)
            try:
                self._started[index] = proc.start()
            except BaseException:
                proc.close()
                raise
            self._failed_starts[index] = 0
            self._drivers[index] = proc
        return proc

    def hello(self, index: int = 0) -> dict[str, Any]:
        """What driver ``index`` said to ``hello`` (empty until it started)."""
        return self._started[index]

    def reset(self) -> None:
        """Between checks: ask every running driver to forget all it holds (``reset``). A
        driver without ``reset`` keeps its objects; one that breaks is started afresh."""
        for proc in self._drivers:
            if proc is None:
                continue
            try:
                proc.call("reset")
            except (Refused, Unimplemented):
                pass
            except DriverBroken:
                self.restart()
                return

    def restart(self) -> None:
        """Forget every driver (after one broke); the next call starts them afresh."""
        for i, proc in enumerate(self._drivers):
            if proc is not None:
                proc.close()
            self._drivers[i] = None

    def begin(self, check: Check) -> None:
        """Before ``check``: its own randomness, from the run's seed and its id, so that a
        check draws the same keys whatever ran before it."""
        self.rng = random.Random(f"{self.seed}/{check.id}")
        self.compared = None

    def seed32(self) -> str:
        """32 fresh bytes from the run's seed, as hex (identity seeds, ephemerals)."""
        return self.rng.randbytes(32).hex()

    def close(self) -> None:
        """Shut every driver down."""
        self.restart()


def get_hex(result: dict[str, Any], name: str) -> bytes:
    """A hex field of a driver's result, or a failure saying it is missing or wrong."""
    try:
        return from_hex(result.get(name), name)
    except DecodeError:
        raise Fail(f"the result's {name!r} is missing or not lowercase hex: "
                   f"{str(result.get(name))[:60]!r}") from None


def get_str(result: dict[str, Any], name: str) -> str:
    """A string field of a driver's result."""
    value = result.get(name)
    if type(value) is not str:
        raise Fail(f"the result's {name!r} is missing or not a string")
    return value


def refusal(call: Callable[[], object]) -> str | None:
    """Run ``call``; return the code it was refused with, or None if it was accepted."""
    try:
        call()
    except Refused as exc:
        return exc.code
    return None


def reference_code(call: Callable[[], object]) -> str | None:
    """Run ``call`` on this implementation (the runner's reference); return the code it
    refused with, or None if it accepted."""
    try:
        call()
    except AgentAuthError as exc:
        return exc.code
    return None


def compare_codes(ctx: Context, expected: Expected, got: str | None, what: str) -> None:
    """Record the comparison in ``ctx`` and fail unless ``got`` is what was ``expected``:
    a code, a set of codes the spec allows, or None (accepted)."""
    ctx.compared = (expected, got)
    if isinstance(expected, frozenset) and got in expected:
        return
    if got == expected:
        return
    want = "acceptance" if expected is None else _codes_text(expected)
    raise Fail(f"{what}: {'accepted' if got is None else f'refused with {got}'}, expected "
               f"{want}", compared=(expected, got))


def compare_reference(ctx: Context, reference: Callable[[], object],
                      call: Callable[[], object], what: str) -> str | None:
    """Fail unless the driver's ``call`` answers as the reference's ``reference`` does for
    the same bytes: refused with its code, or accepted; return that code."""
    expected = reference_code(reference)
    compare_codes(ctx, expected, refusal(call), what)
    return expected


def expect_refusal(ctx: Context, codes: str | Iterable[str], call: Callable[[], object],
                   what: str) -> str:
    """Fail unless ``call`` is refused with ``codes`` (one code, or the codes the spec
    allows); return the code. The comparison is recorded in ``ctx`` for the report."""
    expected: Expected = codes if isinstance(codes, str) else frozenset(codes)
    got = refusal(call)
    compare_codes(ctx, expected, got, what)
    assert got is not None
    return got


def _codes_text(codes: str | frozenset[str]) -> str:
    return codes if isinstance(codes, str) else " or ".join(sorted(codes))

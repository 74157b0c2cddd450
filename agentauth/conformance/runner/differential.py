"""The differential mode: ``agentauth conformance diff --driver A --driver B``.

Two drivers are given the same inputs (:mod:`.inputs`: for each round, every operation,
its input valid, mutated, truncated or re-encoded, from a seed that is printed) and every
input where their answers differ is reported: a result against another result, a result
against an error, or one error code against another. An input that either driver answers
``unimplemented`` is counted apart, never as a difference. The order and numbering are
those of ``spec/conformance.md`` section 10.

Answers are compared as the driver interface defines them: a result's members exactly,
but a ``handle`` only as being one (each driver names its objects as it likes); an error
by its code, never its message. A driver that breaks the interface on an input is a
difference on that input, and is started afresh for the next.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import files, keyfile
from ...errors import FileError
from ..interface import Reply, encode_line, parse_reply
from .check import Check, Context, Fail
from .driver_process import DriverBroken, DriverProcess, Unimplemented
from .inputs import HANDLE, OPERATIONS, Script, kind_of, make_input, section
from .report import printable

__all__ = [
    "DEFAULT_ROUNDS",
    "DiffReport",
    "Difference",
    "add_arguments",
    "compare",
    "main",
    "play",
    "reference_checks",
    "run",
    "run_from_args",
]

DEFAULT_ROUNDS = 40
_INPUT_HEX = 512  # the longest input a report shows, in hex digits

#: One driver's answer to one request: ("result", members), ("error", code),
#: ("unimplemented", "") or ("broken", what happened).
Answer = tuple[str, Any]


@dataclass(frozen=True, slots=True)
class Difference:
    """One input on which the two drivers answered differently."""

    operation: str
    kind: str
    round: int
    what: str
    step: int
    op: str
    input: str
    answers: tuple[Answer, Answer]

    def line(self) -> str:
        """The difference on one line."""
        a, b = (_show(x) for x in self.answers)
        return (f"DIFF {self.operation} / {self.kind} / round {self.round}: {self.what}; "
                f"step {self.step} ({self.op}): {a} | {b}; input {self.input[:96]}"
                f"{'...' if len(self.input) > 96 else ''}")


def _show(answer: Answer) -> str:
    kind, value = answer
    if kind == "result":
        return "result " + json.dumps(value, sort_keys=True)[:160]
    if kind == "unimplemented":
        return "unimplemented"
    return f"{kind} {str(value)[:160]}"


@dataclass(slots=True)
class DiffReport:
    """What one differential run found."""

    drivers: tuple[str, str]
    seed: int
    rounds: int
    implementations: list[str] = field(default_factory=lambda: ["", ""])
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, operation: str, kind: str, outcome: str) -> None:
        """Count one input of ``operation`` and ``kind`` as ``outcome`` (``same``,
        ``differ`` or ``unimplemented``)."""
        row = self.counts.setdefault(operation, {}).setdefault(
            kind, {"same": 0, "differ": 0, "unimplemented": 0})
        row[outcome] += 1

    def total(self, outcome: str) -> int:
        """How many inputs ended as ``outcome``."""
        return sum(row[outcome] for kinds in self.counts.values() for row in kinds.values())

    def exit_code(self) -> int:
        """0 if the drivers agreed on every input, 1 otherwise."""
        return 1 if self.differences else 0

    def summary(self) -> str:
        """The differences, then a table of inputs per operation and kind."""
        lines = [d.line() for d in self.differences]
        if lines:
            lines.append("")
        lines.append(f"{'operation':<18} {'kind':<10} {'same':>5} {'differ':>6} "
                     f"{'unimpl':>6}")
        for operation, kinds in self.counts.items():
            for kind, row in kinds.items():
                lines.append(f"{operation:<18} {kind:<10} {row['same']:>5} "
                             f"{row['differ']:>6} {row['unimplemented']:>6}")
        lines.append(f"{'total':<29} {self.total('same'):>5} {self.total('differ'):>6} "
                     f"{self.total('unimplemented'):>6}")
        names = " and ".join(n or "a driver" for n in self.implementations)
        lines.append(f"{self.total('same') + self.total('differ') + self.total('unimplemented')}"
                     f" inputs in {self.seconds:.1f} s between {names}; seed {self.seed} "
                     f"({self.rounds} rounds; rerun with --seed {self.seed})")
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        """The report as JSON."""
        content = {
            "drivers": list(self.drivers), "implementations": self.implementations,
            "seed": self.seed, "rounds": self.rounds, "seconds": round(self.seconds, 3),
            "totals": {k: self.total(k) for k in ("same", "differ", "unimplemented")},
            "counts": self.counts,
            "differences": [{
                "operation": d.operation, "kind": d.kind, "round": d.round, "what": d.what,
                "step": d.step, "op": d.op, "input": d.input,
                "answers": [{"kind": k, "value": v} for k, v in d.answers]}
                for d in self.differences],
        }
        return json.dumps(content, indent=1) + "\n"


class _Side:
    """One of the two drivers, started on demand and afresh after it broke."""

    __slots__ = ("command", "hello", "proc", "timeout")

    def __init__(self, command: str, timeout: float) -> None:
        self.command, self.timeout = command, timeout
        self.proc: DriverProcess | None = None
        self.hello: dict[str, Any] = {}

    def driver(self) -> DriverProcess:
        if self.proc is None:
            proc = DriverProcess(self.command, timeout=self.timeout)
            try:
                self.hello = proc.start()
            except BaseException:
                proc.close()
                raise
            self.proc = proc
        return self.proc

    def play(self, script: Script) -> list[Answer]:
        """Every step's answer; a broken driver ends the script with ``broken``."""
        try:
            proc = self.driver()
        except DriverBroken as exc:
            return [("broken", str(exc)[:200])]
        answers = play(script, proc.request)
        try:
            if answers[-1][0] != "broken":
                proc.request("reset")
        except DriverBroken:
            answers.append(("broken", "reset: the driver broke"))
        if answers[-1][0] == "broken":
            self.close()
        return answers

    def close(self) -> None:
        if self.proc is not None:
            self.proc.close()
            self.proc = None


def play(script: Script, request: Callable[..., Reply]) -> list[Answer]:
    """The answer to every step of ``script``, each request made by ``request(op,
    **params)``; the handle a set-up step returned is given where the script says
    :data:`~.inputs.HANDLE`. A driver that breaks the interface ends the list with
    ``("broken", what happened)``."""
    answers: list[Answer] = []
    handle = "none"
    for op, params in script.steps:
        try:
            reply = request(op, **{k: handle if v == HANDLE else v for k, v in params.items()})
        except DriverBroken as exc:
            answers.append(("broken", str(exc)[:200]))
            break
        if reply.kind == "result" and type(reply.result.get("handle")) is str:
            handle = reply.result["handle"]
        answers.append(_answer_of(reply))
    return answers


def _answer_of(reply: Reply) -> Answer:
    if reply.kind == "error":
        return "error", reply.code
    if reply.kind == "unimplemented":
        return "unimplemented", ""
    result = dict(reply.result)
    if "handle" in result:
        result["handle"] = HANDLE
    return "result", result


def compare(script: Script, first: list[Answer], second: list[Answer]
            ) -> tuple[str, int] | None:
    """``("unimplemented", step)`` if either driver did not implement a step, else
    ``("differ", step)`` for the first step they answered differently, else None."""
    for step, (a, b) in enumerate(zip(first, second, strict=False)):
        if "unimplemented" in (a[0], b[0]):
            return "unimplemented", step
        if a != b:
            return "differ", step
    if len(first) != len(second):
        return "differ", min(len(first), len(second))
    return None


def run(drivers: tuple[str, str], *, seed: int | None = None, rounds: int = DEFAULT_ROUNDS,
        operations: Sequence[str] = OPERATIONS, timeout: float = 10.0) -> DiffReport:
    """Give both drivers the same inputs: ``rounds`` rounds over ``operations``, each input
    of the kind :func:`~.inputs.kind_of` gives (valid, mutated, truncated, re-encoded)."""
    seed = secrets.randbelow(2**32) if seed is None else seed
    report = DiffReport(drivers, seed, rounds)
    sides = (_Side(drivers[0], timeout), _Side(drivers[1], timeout))
    started = time.perf_counter()
    try:
        for index in range(rounds):
            for operation in operations:
                _one(report, sides, operation, index)
        report.implementations = [str(s.hello.get("implementation", ""))[:80] for s in sides]
    finally:
        for side in sides:
            side.close()
    report.seconds = time.perf_counter() - started
    return report


def _one(report: DiffReport, sides: tuple[_Side, _Side], operation: str, index: int) -> None:
    kind = kind_of(index)
    rng = random.Random(f"{report.seed}/{operation}/{index}")
    script = make_input(operation, index, rng)
    first, second = sides[0].play(script), sides[1].play(script)
    found = compare(script, first, second)
    if found is None:
        report.count(operation, kind, "same")
        return
    outcome, step = found
    report.count(operation, kind, outcome)
    if outcome == "differ":
        missing: Answer = ("none", "no answer")
        report.differences.append(Difference(
            operation, kind, index, script.what, step, script.steps[min(
                step, len(script.steps) - 1)][0], script.data.hex()[:_INPUT_HEX],
            (first[step] if step < len(first) else missing,
             second[step] if step < len(second) else missing)))


# ------------------------------------------------------------------ against this implementation


def _reference(script: Script) -> list[Answer]:
    """What this implementation answers ``script`` with, in this process."""
    from ..driver import Driver  # noqa: PLC0415  (the runner needs it for these checks only)

    driver = Driver()
    count = 0

    def request(op: str, **params: Any) -> Reply:
        nonlocal count
        count += 1
        line = encode_line({"id": count, "op": op, **params})
        return parse_reply(driver.handle_line(line[:-1]), count)

    return play(script, request)


def _against_reference(operation: str, index: int, ctx: Context) -> None:
    script = make_input(operation, index, random.Random(f"{ctx.seed}/{operation}/{index}"))
    want = _reference(script)
    got = play(script, ctx.driver().request)
    if got and got[-1][0] == "broken":
        raise DriverBroken(str(got[-1][1]))
    found = compare(script, got, want)
    if found is None:
        return
    outcome, step = found
    op = script.steps[min(step, len(script.steps) - 1)][0]
    if outcome == "unimplemented":
        raise Unimplemented(f"{op}: unimplemented")
    raise Fail(f"{script.what}; step {step} ({op}): {_show(got[step])}, but this "
               f"implementation answers {_show(want[step])}; input "
               f"{script.data.hex()[:96]}{'...' if len(script.data) > 48 else ''}")


def reference_checks(seed: int, rounds: int) -> list[Check]:
    """``rounds`` rounds of the differential inputs from ``seed``, each a check that the
    driver answers as this implementation does (``spec/conformance.md`` 8.2)."""
    checks = []
    for index in range(rounds):
        for operation in OPERATIONS:
            where = section(operation, random.Random(f"{seed}/{operation}/{index}"))
            checks.append(Check(where, f"differential / {operation} / "
                                f"{kind_of(index)} / seed {seed} round {index}",
                                functools.partial(_against_reference, operation, index)))
    return checks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``conformance diff``."""
    parser.add_argument("--driver", action="append", default=[], metavar="COMMAND",
                        help="a driver's command; give exactly two")
    parser.add_argument("--seed", type=int, help="the seed of every input (default: random, "
                                                 "printed)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, metavar="N",
                        help=f"rounds over the operations (default {DEFAULT_ROUNDS}); round "
                             f"r's inputs are valid for an even r, else mutated, truncated "
                             f"or re-encoded for r %% 6 = 1, 3, 5")
    parser.add_argument("--operation", action="append", default=[], metavar="OP",
                        choices=OPERATIONS,
                        help="only this operation (repeatable; default: all of "
                             f"{', '.join(OPERATIONS)})")
    parser.add_argument("--json", type=lambda v: Path(files.path_argument(v)), metavar="PATH",
                        help="write the JSON report to PATH")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing report file (a regular file, never a key "
                             "file)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for each reply (default 10)")


def _print_error(status: int, message: str, code: str | None) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def run_from_args(args: argparse.Namespace, *,
                  error: Callable[[int, str, str | None], int] = _print_error) -> int:
    """Run as the parsed options say, print the summary, write the report; return the exit
    code: 0 if the drivers agree on every input, 1 if they differ on one, 2 for a usage
    error, 3 if the report cannot be written."""
    if len(args.driver) != 2:
        return error(2, "give --driver COMMAND exactly twice", "invalid_argument")
    if args.rounds < 0 or args.timeout <= 0 or (args.seed is not None and args.seed < 0):
        return error(2, "--rounds, --seed and --timeout must not be negative",
                     "invalid_argument")
    try:
        if args.json is not None:
            keyfile.check_output(args.json, force=args.force, what="report file")
    except FileError as exc:
        return error(2 if exc.code == "file_exists" else 3, exc.message, exc.code)
    report = run((args.driver[0], args.driver[1]), seed=args.seed, rounds=args.rounds,
                 operations=tuple(args.operation) or OPERATIONS, timeout=args.timeout)
    # The summary's own lines kept; within each, a driver's words escaped.
    sys.stdout.write("\n".join(printable(line) for line in report.summary().split("\n")))
    if args.json is not None:
        try:
            keyfile.write_output(args.json, report.to_json().encode("utf-8"),
                                 force=args.force, what="report file")
        except FileError as exc:
            return error(2 if exc.code == "file_exists" else 3,
                         f"cannot write the report: {exc.message}", exc.code)
    return report.exit_code()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agentauth.conformance.runner.differential``: as ``conformance diff``."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

"""The conformance runner: ``agentauth conformance run --driver "COMMAND"``.

It drives an implementation through its driver (``spec/conformance.md``) and runs, in
order: the interface checks, every vector of ``spec/vectors/``, live scenarios in which the
runner plays the other peer and an active attacker, random mutation rounds from a recorded
seed, the differential rounds (inputs answered as this implementation answers them,
:mod:`.differential`), and, given a second driver, the interoperability pairs. It prints a
summary (PASS/FAIL/SKIP per spec section), optionally writes JSON and JUnit XML, and exits
1 on any FAIL, or on any SKIP unless skips are allowed; 2 for a usage error (a report file
that exists already, without ``--force``); 3 if the vector files cannot be read or a report
cannot be written. Reports are written atomically, never over a key file, a directory, a
FIFO or a device; they are checked before the run starts.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from ... import files, keyfile
from ...errors import AgentAuthError, FileError, InvalidArgument
from . import alerts, differential, interop, mutation, scenarios
from .check import Check, Context, Expected, Fail
from .driver_process import DriverBroken, Refused, Unimplemented
from .report import Outcome, Report, Status, printable
from .vector_replay import load_vectors, vector_checks

__all__ = ["add_arguments", "all_checks", "main", "run", "run_checks", "run_from_args"]

DEFAULT_MUTATIONS = 120
DEFAULT_DIFFERENTIAL = 40


def all_checks(vectors: Path | None, *, seed: int, mutations: int,
               peer: bool, rounds: int = DEFAULT_DIFFERENTIAL) -> list[Check]:
    """Every check of one run, in order."""
    checks = scenarios.interface_checks()
    files = load_vectors(vectors)
    checks += vector_checks(files)
    checks += alerts.alert_checks(files)
    checks += scenarios.live_checks()
    checks += mutation.mutation_checks(seed, mutations)
    checks += differential.reference_checks(seed, rounds)
    if peer:
        checks += interop.interop_checks()
    return checks


def _outcome(check: Check, ctx: Context) -> Outcome:
    started = time.perf_counter()
    status: Status = "PASS"
    message = ""
    compared: tuple[Expected, str | None] | None = None
    try:
        check.run(ctx)
        compared = ctx.compared  # the last code it compared, if any
    except Fail as exc:
        status, message = "FAIL", str(exc)
        compared = exc.compared  # a failure about no code has no comparison to show
    except Unimplemented as exc:
        status, message = "SKIP", f"unimplemented: {exc}"
    except Refused as exc:
        status, message = "FAIL", f"unexpected refusal: {exc}"
        compared = (None, exc.code)
    except DriverBroken as exc:
        status, message = "FAIL", f"driver broke the interface: {exc}"
        ctx.restart()
    except AgentAuthError as exc:  # the runner's own engines refused what the driver sent
        status, message = "FAIL", f"the reference peer refused the driver's message: {exc}"
    except Exception as exc:  # never stop the run: say what happened, and carry on
        status, message = "FAIL", f"runner fault: {type(exc).__name__}: {exc}"[:500]
        ctx.restart()
    seconds = time.perf_counter() - started
    return Outcome(printable(check.id), printable(check.section), status, printable(message),
                   seconds, None if compared is None else _listed(*compared))


def _listed(expected: Expected, got: str | None) -> tuple[str | list[str] | None, str | None]:
    # A set of allowed codes is reported as a sorted list.
    return (sorted(expected) if isinstance(expected, frozenset) else expected), got


def run_checks(checks: Sequence[Check], ctx: Context, report: Report,
               disabled: Sequence[str] = ()) -> None:
    """Run ``checks`` in order, recording each outcome in ``report``; checks whose id
    matches a pattern of ``disabled`` (``fnmatch``) are skipped without running."""
    for check in checks:
        pattern = next((p for p in disabled if fnmatch.fnmatchcase(check.id, p)), None)
        if pattern is not None:
            report.add(Outcome(printable(check.id), printable(check.section), "SKIP",
                               printable(f"disabled by --disable {pattern!r}")))
            continue
        ctx.begin(check)
        report.add(_outcome(check, ctx))
        ctx.reset()
        if not report.implementation and ctx.hello():
            report.implementation = str(ctx.hello().get("implementation", ""))[:80]


def run(driver: str, *, peer_driver: str | None = None, vectors: Path | None = None,
        seed: int | None = None, mutations: int = DEFAULT_MUTATIONS,
        timeout: float = 10.0, disabled: Sequence[str] = (),
        differential: int = DEFAULT_DIFFERENTIAL) -> Report:
    """Run the whole suite against ``driver`` (and ``peer_driver``, for interop)."""
    seed = secrets.randbelow(2**32) if seed is None else seed
    report = Report(driver=driver, seed=seed, mutations=mutations, peer_driver=peer_driver)
    commands = [driver] if peer_driver is None else [driver, peer_driver]
    ctx = Context(commands, seed=seed, timeout=timeout)
    started = time.perf_counter()
    try:
        run_checks(all_checks(vectors, seed=seed, mutations=mutations,
                              peer=peer_driver is not None, rounds=differential), ctx, report,
                   disabled)
    finally:
        ctx.close()
    report.seconds = time.perf_counter() - started
    return report


#: ``--json`` given with no path (or as ``-``): the report goes to standard output.
STDOUT: Final = "-"


def _path(value: str) -> Path | str:
    if value == STDOUT:  # argparse passes a bare --json's const through here too
        return value
    return Path(files.path_argument(value))  # '' is not '.'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``conformance run``."""
    parser.add_argument("--driver", metavar="COMMAND",
                        help="the command that starts the driver under test (required)")
    parser.add_argument("--peer-driver", metavar="COMMAND",
                        help="a second driver to pair with the first, both ways")
    parser.add_argument("--allow-skip", action="store_true",
                        help="exit 0 even if checks were skipped (unimplemented)")
    parser.add_argument("--json", type=_path, metavar="PATH", nargs="?", const=STDOUT,
                        help="write the JSON report to PATH; with no PATH, print it on "
                             "standard output instead of the summary")
    parser.add_argument("--junit", type=_path, metavar="PATH", help="write JUnit XML")
    parser.add_argument("--force", action="store_true",
                        help="replace existing report files (regular files, never a key "
                             "file)")
    parser.add_argument("--seed", type=int, help="the seed of every check's keys and "
                                                 "mutations (default: random, printed)")
    parser.add_argument("--mutations", type=int, default=DEFAULT_MUTATIONS, metavar="N",
                        help=f"random mutation rounds (default {DEFAULT_MUTATIONS})")
    parser.add_argument("--differential", type=int, default=DEFAULT_DIFFERENTIAL,
                        metavar="N", help="rounds of differential inputs answered as this "
                                          f"implementation answers (default "
                                          f"{DEFAULT_DIFFERENTIAL})")
    parser.add_argument("--vectors", type=_path, metavar="DIR",
                        help="the vector files to replay (default: this version's)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for each reply (default 10)")
    parser.add_argument("--disable", action="append", default=[], metavar="GLOB",
                        help="skip the checks whose id matches (repeatable)")
    parser.add_argument("--list", action="store_true",
                        help="print the id of every check, run nothing")


def _print_report(report: Report) -> None:
    sys.stdout.write(report.to_json())


def _print_error(status: int, message: str, code: str | None) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _print_ids(ids: list[str]) -> None:
    sys.stdout.write(json.dumps({"checks": ids}, indent=2) + "\n")


def run_from_args(args: argparse.Namespace, *,
                  show: Callable[[Report], None] | None = None,
                  show_ids: Callable[[list[str]], None] | None = None,
                  error: Callable[[int, str, str | None], int] = _print_error) -> int:
    """Run as the parsed options say; print the summary (or pass the report to ``show``:
    by default, with ``--json`` and no path, its JSON on standard output; with ``--list``,
    the ids to ``show_ids``, by default ``{"checks": [...]}`` then); return the exit
    code. Each failure to run goes to ``error(status, message, code)``, whose return is the
    exit code (by default a line ``error: ...`` on stderr)."""
    if args.json == STDOUT:
        args.json = None
        show = show or _print_report
        show_ids = show_ids or _print_ids
    if (args.mutations < 0 or args.differential < 0 or args.timeout <= 0
            or (args.seed is not None and args.seed < 0)):
        return error(2, "--mutations, --differential, --seed and --timeout must not be "
                        "negative",
                     "invalid_argument")
    if args.list:
        try:
            checks = all_checks(args.vectors, seed=args.seed or 0, mutations=args.mutations,
                                peer=args.peer_driver is not None, rounds=args.differential)
        except InvalidArgument as exc:
            return error(3, exc.message, exc.code)
        if show_ids is not None:
            show_ids([c.id for c in checks])
        else:
            sys.stdout.write("".join(printable(c.id) + "\n" for c in checks))
        return 0
    if not args.driver:
        return error(2, "--driver COMMAND is required", "invalid_argument")
    try:  # before the run: a report that cannot be written is known at once
        if args.json is not None:
            keyfile.check_output(args.json, force=args.force, what="report file")
        if args.junit is not None:  # not the JSON report too: one would replace the other
            keyfile.check_output(args.junit, force=args.force, what="report file",
                                 inputs=[(args.json, "JSON report")])
    except FileError as exc:
        return error(2 if exc.code == "file_exists" else 3, exc.message, exc.code)
    try:
        report = run(args.driver, peer_driver=args.peer_driver, vectors=args.vectors,
                     seed=args.seed, mutations=args.mutations, timeout=args.timeout,
                     disabled=args.disable, differential=args.differential)
    except InvalidArgument as exc:  # the vector files could not be read
        return error(3, exc.message, exc.code)
    if show is None:
        sys.stdout.write(report.summary())
    else:
        show(report)
    try:
        for path, text in ((args.json, report.to_json), (args.junit, report.to_junit)):
            if path is not None:
                keyfile.write_output(path, text().encode("utf-8"), force=args.force,
                                     what="report file")
    except FileError as exc:
        return error(2 if exc.code == "file_exists" else 3,
                     f"cannot write the report: {exc.message}", exc.code)
    return report.exit_code(allow_skip=args.allow_skip)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agentauth.conformance.runner``: the same as ``conformance run``."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

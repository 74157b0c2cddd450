"""The conformance suite's own run time: the whole ``agentauth conformance run`` against this
implementation's driver, beside the same checks with the driver in this process.

Usage::

    python -m benchmarks.conformance [--quick] [--rounds N] [--mutations N] [--json PATH]

A round times, in a shuffled order: the command as CI runs it (a new process for the
runner, one per driver, interop with a second driver; the wall time includes starting
them) and the same checks run here against a driver object called directly, with no
process and no pipe between them, which shows what the JSON-lines interface costs. The
target is the acceptance bound of the suite: under two minutes on this machine. The check
counts per section are those of the last run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentauth.conformance.driver import Driver
from agentauth.conformance.interface import Reply, encode_line, parse_reply
from agentauth.conformance.runner import (
    Context,
    DriverProcess,
    Refused,
    Report,
    Unimplemented,
    all_checks,
    run_checks,
)

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
DRIVER = f"{sys.executable} -m agentauth conformance driver"


class _InProcess(DriverProcess):
    """The driver interface without a process: requests go straight to a Driver."""

    def __init__(self) -> None:  # no process to start
        self._driver = Driver()
        self._next = 0
        self._pending = b""

    def send_raw(self, data: bytes) -> None:
        self._pending = self._driver.handle_line(data.rstrip(b"\n"))

    def request(self, op: str, **params: Any) -> Reply:
        self._next += 1
        self.send_raw(encode_line({"id": self._next, "op": op, **params}))
        return parse_reply(self._pending.rstrip(b"\n"), self._next)

    def read_reply(self, request_id: int | None, op: str) -> Reply:
        return parse_reply(self._pending.rstrip(b"\n"), request_id)

    def call(self, op: str, **params: Any) -> dict[str, Any]:
        reply = self.request(op, **params)
        if reply.kind == "error":
            raise Refused(op, reply.code, reply.message)
        if reply.kind == "unimplemented":
            raise Unimplemented(op)
        return reply.result

    def close(self) -> None:
        pass


class _Direct(Context):
    __slots__ = ("_objects",)

    def __init__(self, seed: int) -> None:
        super().__init__(["in-process", "in-process"], seed=seed, timeout=10.0)
        self._objects = [_InProcess(), _InProcess()]

    def driver(self, index: int = 0) -> DriverProcess:
        return self._objects[index]

    def hello(self, index: int = 0) -> dict[str, Any]:
        # What the driver itself says (its protocol versions are checked by conformance
        # section 6), under the in-process name.
        return {**self._objects[index].call("hello", interface=[1]),
                "implementation": "in-process"}

    def reset(self) -> None:
        for driver in self._objects:
            driver.call("reset")

    def restart(self) -> None:
        self._objects = [_InProcess(), _InProcess()]


def run_command(seed: int, mutations: int, out: Path) -> float:
    """Wall seconds of the whole command, as CI runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "agentauth", "conformance", "run", "--driver",
                           DRIVER, "--peer-driver", DRIVER, "--seed", str(seed),
                           "--mutations", str(mutations), "--json", str(out)],
                          env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the suite did not pass:\n{done.stdout[-2000:]}")
    return seconds


def run_direct(seed: int, mutations: int) -> float:
    """Seconds of the same checks against a driver in this process."""
    report = Report(driver="in-process", seed=seed, mutations=mutations)
    start = time.perf_counter()
    run_checks(all_checks(None, seed=seed, mutations=mutations, peer=True), _Direct(seed),
               report)
    seconds = time.perf_counter() - start
    if report.total("FAIL") or report.total("SKIP"):
        raise SystemExit(f"the in-process run did not pass:\n{report.summary()[-2000:]}")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mutations", type=int, default=120)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rounds, mutations = (1, 10) if args.quick else (args.rounds, args.mutations)
    samples: dict[str, list[float]] = {"command, over pipes": [], "in process": []}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "report.json"
        for round_ in range(rounds):
            order = list(samples)
            random.shuffle(order)
            for name in order:
                seconds = (run_command(round_, mutations, out) if name.startswith("command")
                           else run_direct(round_, mutations))
                samples[name].append(seconds)
        report = json.loads(out.read_text())
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratio = medians["command, over pipes"] / medians["in process"]
    print(f"python {sys.version.split()[0]}, {rounds} round(s), {mutations} mutation rounds, "
          f"{len(report['checks'])} checks")
    print(f"{'run':24} {'median s':>9} {'ms per check':>13}")
    for name, seconds in medians.items():
        print(f"{name:24} {seconds:>9.2f} {seconds * 1e3 / len(report['checks']):>13.2f}")
    print(f"{'ratio pipes / in process':24} {ratio:>9.2f}")
    print()
    print(f"{'section':20} {'checks':>6}")
    for section, counts in report["sections"].items():
        print(f"{section:20} {sum(counts.values()):>6}")
    targets: list[dict[str, Any]] = [
        {"name": "suite run time (s)", "value": medians["command, over pipes"], "bound": 120.0}]
    for target in targets:
        target["passed"] = target["value"] <= target["bound"]
        print(f"\n{target['name']:24} {target['value']:>9.2f} <= {target['bound']:<6} "
              f"{'PASS' if target['passed'] else 'MISS'}")
    if args.json:
        args.json.write_text(json.dumps({
            "rounds": rounds, "mutations": mutations, "checks": len(report["checks"]),
            "median_seconds": medians, "ratio": ratio, "targets": targets,
            "sections": {s: sum(c.values()) for s, c in report["sections"].items()}},
            indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

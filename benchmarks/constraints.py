"""Argument constraints: chain verification with the new kinds against the plain ones.

Usage::

    python -m benchmarks.constraints [--quick] [--rounds N] [--json PATH]

A chain of root + 3 delegations (4 links) whose every grant carries 8 constraints, verified
with one request that every constraint allows, cold (every link forgotten before each call)
and warm (the same chain again, as a verifier sees it on every request): once with 8
constraints of the new kinds (subpath, url, cidr, pattern, not-one-of, subset, length,
any-of), once with 8 of the plain kinds (eq, one-of, range, prefix, two of each), beside
the Ed25519 verifications of the 4 links. Warm again with fresh values: each request's
arguments differ from the last (another path, URL, address, name, ..., drawn in turn from
a list built beforehand), as a verifier sees them, so that nothing a value leaves behind
can flatter a kind. Interleaved rounds in a shuffled order; per case the 25th percentile
and the median of wall and CPU time per call; ratios from the same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from agentauth import Identity, PeerKey
from agentauth.capability import Grant, Request, delegate, encode_chain, verify_chain
from agentauth.capability.chain import LINK_CONTEXT, NO_PARENT, clear_caches
from agentauth.capability.constraints import (
    AnyOf,
    Cidr,
    Constraint,
    Eq,
    Length,
    NotOneOf,
    OneOf,
    Pattern,
    Prefix,
    Range,
    Subpath,
    Subset,
    Url,
)

__all__ = ["CASES", "DELEGATIONS", "FRESH", "FRESH_VALUES", "check_allowed", "main", "measure",
           "ratios", "targets"]

DELEGATIONS = 3
RESOURCE = "tools/fetch"
NOW = int(time.time())
Work = Callable[[], object]


def new_kinds() -> tuple[dict[str, Constraint], dict[str, object]]:
    """Eight constraints of the new kinds, and arguments every one of them allows."""
    return ({
        "path": Subpath("/data/reports"),
        "url": Url("https://*.example.com/v1"),
        "addr": Cidr("10.0.0.0/8"),
        "name": Pattern("report-*.pdf"),
        "user": NotOneOf({"root", "admin"}),
        "tags": Subset({"q1", "q2", "q3", "q4"}),
        "title": Length(1, 64),
        "fmt": AnyOf([Eq("pdf"), Prefix("csv")]),
    }, {
        "path": "/data/reports/2026/q3/summary.pdf",
        "url": "https://api.example.com/v1/reports?year=2026",
        "addr": "10.20.30.40",
        "name": "report-2026-q3.pdf",
        "user": "alice",
        "tags": ["q3", "q4"],
        "title": "Quarterly summary",
        "fmt": "pdf",
    })


def old_kinds() -> tuple[dict[str, Constraint], dict[str, object]]:
    """Eight constraints of the plain kinds, and arguments every one of them allows."""
    return ({
        "year": Eq(2026),
        "user": Eq("alice"),
        "fmt": OneOf({"csv", "pdf"}),
        "region": OneOf({"eu", "us", "ap"}),
        "size": Range(0, 1000),
        "page": Range(1, 500),
        "path": Prefix("/data/reports/"),
        "url": Prefix("https://api.example.com/v1/"),
    }, {
        "year": 2026,
        "user": "alice",
        "fmt": "pdf",
        "region": "eu",
        "size": 10,
        "page": 3,
        "path": "/data/reports/2026/q3/summary.pdf",
        "url": "https://api.example.com/v1/reports?year=2026",
    })


CASES: dict[str, Callable[[], tuple[dict[str, Constraint], dict[str, object]]]] = {
    "new kinds": new_kinds, "plain kinds": old_kinds}

FRESH = 1000
"""How many different requests a fresh-values run draws from, in turn."""


def new_fresh(i: int) -> dict[str, object]:
    """The ``i``-th fresh arguments for :func:`new_kinds`: each value differs from the last."""
    return {
        "path": f"/data/reports/{2000 + i % 97}/q{i % 4 + 1}/summary-{i}.pdf",
        "url": f"https://api{i}.example.com/v1/reports/{i}?year={2000 + i % 97}",
        "addr": f"10.{i % 256}.{i * 7 % 256}.{i * 13 % 256}",
        "name": f"report-{i}-q{i % 4 + 1}.pdf",
        "user": f"user{i}",
        "tags": [f"q{i % 4 + 1}", f"q{(i + 1) % 4 + 1}"],
        "title": f"Quarterly summary {i}",
        "fmt": "pdf" if i % 2 else f"csv-{i}",
    }


def old_fresh(i: int) -> dict[str, object]:
    """The ``i``-th fresh arguments for :func:`old_kinds`: each value differs from the last
    where the constraint allows more than one."""
    return {
        "year": 2026,
        "user": "alice",
        "fmt": ("csv", "pdf")[i % 2],
        "region": ("eu", "us", "ap")[i % 3],
        "size": i % 1001,
        "page": 1 + i % 500,
        "path": f"/data/reports/{2000 + i % 97}/q{i % 4 + 1}/summary-{i}.pdf",
        "url": f"https://api.example.com/v1/reports/{i}?year={2000 + i % 97}",
    }


FRESH_VALUES: dict[str, Callable[[int], dict[str, object]]] = {
    "new kinds": new_fresh, "plain kinds": old_fresh}


def chain_work(constraints: Mapping[str, Constraint], args: Mapping[str, object],
               fresh: Sequence[Mapping[str, object]] = ()) -> tuple[Work, Work, Work, Work]:
    """(cold verify, warm verify, warm verify with fresh values, the Ed25519 floor) for
    root + 3 delegations, every link granting ``constraints``, and a request with ``args``
    (with fresh values: a request with each of ``fresh`` in turn, built beforehand)."""
    root = Identity.generate()
    holders = [Identity.generate() for _ in range(DELEGATIONS + 1)]
    grant = Grant("tools/**", {"call"}, constraints)
    links = [delegate(root, holders[0], [grant], not_before=NOW - 60, expires=NOW + 3600,
                      budget=DELEGATIONS)]
    for i in range(DELEGATIONS):
        links.append(delegate(holders[i], holders[i + 1], [grant], not_before=NOW - 60,
                              expires=NOW + 3600, budget=DELEGATIONS - 1 - i,
                              parent=links[-1]))
    data = encode_chain(links)
    anchors = {root.agent_id: "**"}
    holder = PeerKey(links[-1].audience)
    request = Request(RESOURCE, "call", args)

    def warm() -> object:
        return verify_chain(data, anchors, now=NOW, holder=holder, request=request)

    def cold() -> object:
        clear_caches()
        return warm()

    requests = itertools.cycle([Request(RESOURCE, "call", values) for values in fresh]
                               or [request])

    def warm_fresh() -> object:
        return verify_chain(data, anchors, now=NOW, holder=holder, request=next(requests))

    signed = [(link.signature + LINK_CONTEXT + (link.parent or NO_PARENT) + link.payload,
               link.issuer) for link in links]

    def floor() -> object:
        return [sodium.crypto_sign_open(message, key) for message, key in signed]

    return cold, warm, warm_fresh, floor


def check_allowed() -> None:
    """Each case's request is allowed by each of its constraints and by its whole chain:
    otherwise the benchmark would time a refusal. Raises AssertionError naming the first
    constraint that refuses (the stub kinds, before they are implemented, refuse all)."""
    for case, make in CASES.items():
        constraints, args = make()
        for name, constraint in constraints.items():
            assert constraint.allows(args[name]), (
                f"{case}: {constraint!r} refuses the benchmark's {name}={args[name]!r}")
        cold, _, _, _ = chain_work(constraints, args)
        cold()  # raises if the chain or the request is refused
        fresh = [FRESH_VALUES[case](i) for i in range(FRESH)]
        for values in fresh:
            for name, constraint in constraints.items():
                assert constraint.allows(values[name]), (
                    f"{case}: {constraint!r} refuses the fresh {name}={values[name]!r}")
        _, _, warm_fresh, _ = chain_work(constraints, args, fresh)
        for _ in fresh:
            warm_fresh()


def time_slice(call: Work, seconds: float) -> tuple[float, float]:
    """Wall and CPU seconds per call of ``call``, called over and over for ``seconds``."""
    loops, start, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        call()
        loops += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / loops, (time.process_time() - cpu) / loops


def measure(rounds: int, seconds: float) -> dict[str, dict[str, float]]:
    """Per case and clock, the 25th percentile and the median of seconds per call."""
    work: dict[str, Work] = {}
    for case, make in CASES.items():
        fresh = [FRESH_VALUES[case](i) for i in range(FRESH)]
        cold, warm, warm_fresh, floor = chain_work(*make(), fresh)
        work[f"{case}, cold"], work[f"{case}, warm"] = cold, warm
        work[f"{case}, fresh"] = warm_fresh
        if case == "plain kinds":
            work["Ed25519 floor"] = floor
    walls: dict[str, list[float]] = {name: [] for name in work}
    cpus: dict[str, list[float]] = {name: [] for name in work}
    order = list(work)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            wall, cpu = time_slice(work[name], seconds)
            walls[name].append(wall)
            cpus[name].append(cpu)
    out = {}
    for name in work:
        by_wall, by_cpu = sorted(walls[name]), sorted(cpus[name])
        out[name] = {"wall_p25": by_wall[(len(by_wall) - 1) // 4],
                     "wall_median": statistics.median(by_wall),
                     "cpu_p25": by_cpu[(len(by_cpu) - 1) // 4],
                     "cpu_median": statistics.median(by_cpu)}
    return out


def ratios(figures: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """New kinds / plain kinds, cold, warm and warm with fresh values, for each figure of
    :func:`measure`."""
    return {state: {key: figures[f"new kinds, {state}"][key]
                    / figures[f"plain kinds, {state}"][key]
                    for key in ("wall_p25", "wall_median", "cpu_p25", "cpu_median")}
            for state in ("cold", "warm", "fresh")}


def targets(figures: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """New kinds / plain kinds, cold and warm, from the medians of CPU time (steadier than
    wall time on a shared machine): each within 1.2, as the issue's acceptance asks (a
    URL, a path or a network costs about what an equality or a prefix does)."""
    return [{"name": f"{state}: new kinds / plain kinds",
             "value": figures[f"new kinds, {state}"]["cpu_median"]
             / figures[f"plain kinds, {state}"]["cpu_median"], "bound": bound}
            for state, bound in (("cold", 1.2), ("warm", 1.2))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    check_allowed()
    rounds, seconds = (1, 0.02) if args.quick else (args.rounds, 0.05)
    figures = measure(rounds, seconds)
    print(f"python {sys.version.split()[0]}, {rounds} round(s), root + {DELEGATIONS} "
          f"delegations, 8 constraints per grant; fresh: warm, {FRESH} requests in turn")
    print(f"{'case':20} {'wall p25 µs':>12} {'median':>8} {'cpu p25 µs':>11} {'median':>8}")
    for name, row in figures.items():
        print(f"{name:20} {row['wall_p25'] * 1e6:>12.1f} {row['wall_median'] * 1e6:>8.1f} "
              f"{row['cpu_p25'] * 1e6:>11.1f} {row['cpu_median'] * 1e6:>8.1f}")
    found = targets(figures)
    table = ratios(figures)
    print(f"{'new kinds / plain kinds':24} {'wall p25':>9} {'median':>8} {'cpu p25':>8} "
          f"{'median':>8}")
    for state, row in table.items():
        print(f"{state:24} {row['wall_p25']:>9.2f} {row['wall_median']:>8.2f} "
              f"{row['cpu_p25']:>8.2f} {row['cpu_median']:>8.2f}")
    for target in found:
        target["passed"] = target["value"] <= target["bound"]
        print(f"{target['name']:32} {target['value']:>6.2f} <= {target['bound']:<4} "
              f"{'PASS' if target['passed'] else 'MISS'}")
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "seconds_per_call": figures,
                                         "ratios": table, "targets": found}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

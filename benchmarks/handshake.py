"""Handshake and session costs against the asymmetric floor and the peers, in one run.

Usage::

    python -m benchmarks.handshake [--quick] [--json PATH] [--check]

Every candidate is timed in batches (enough calls for a batch to last ``--batch-ms``),
the candidates interleaved in a shuffled order in every round, with the garbage collector
off during a batch as :mod:`timeit` does. The table gives the median of the rounds per
call. Absolute times drift on a shared machine; the ratios, taken within one run, hold.
``--check`` exits with status 1 if any target is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from . import peers

__all__ = ["Target", "main", "measure", "targets"]


@dataclass(frozen=True)
class Target:
    """One acceptance ratio: ``numerator / denominator`` compared with ``bound``."""

    name: str
    numerator: str
    denominator: str
    bound: float
    at_most: bool  # True: ratio <= bound passes; False: ratio >= bound passes


def targets() -> list[Target]:
    """The acceptance targets; a ratio of medians each."""
    return [
        Target("handshake / floor", "agentauth handshake", "floor (sum)", 1.35, True),
        Target("noise XX / agentauth handshake", "noise XX handshake", "agentauth handshake",
               1.6, False),
        Target("TLS 1.3 / agentauth handshake", "TLS 1.3 mutual handshake",
               "agentauth handshake", 4.5, False),
        *(Target(f"session {mode} {label} / raw AEAD", f"session {mode} {label}",
                 f"raw AEAD {label}", bound, True)
          for label, bound in (("256 B", 1.6), ("64 KiB", 1.15))
          for mode in ("ordered", "unordered")),
    ]


def _candidates() -> tuple[dict[str, Callable[[], object]], dict[str, int]]:
    work: dict[str, Callable[[], object]] = {}
    counts: dict[str, int] = {}
    for name, (call, count) in peers.floor_operations().items():
        work[name], counts[name] = call, count
    work["agentauth handshake"] = peers.agentauth_handshake()
    work["noise XX handshake"] = peers.noise_xx_handshake()
    work["TLS 1.3 mutual handshake"] = peers.tls13_handshake()
    work["TLS 1.3 mutual, lean"] = peers.tls13_handshake(lean=True)
    for label, size in (("256 B", 256), ("64 KiB", 65536)):
        work[f"raw AEAD {label}"] = peers.raw_aead(size)
        for mode in ("ordered", "unordered"):
            work[f"session {mode} {label}"] = peers.agentauth_session(
                size, ordered=mode == "ordered")
    return work, counts


def _batch(call: Callable[[], object], loops: int) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(loops):
            call()
        return (time.perf_counter() - start) / loops
    finally:
        gc.enable()


def _calibrate(call: Callable[[], object], batch_seconds: float) -> int:
    loops = 1
    while True:
        elapsed = _batch(call, loops) * loops
        if elapsed >= batch_seconds / 4:
            return max(1, round(loops * batch_seconds / elapsed))
        loops *= 4


def measure(rounds: int, batch_seconds: float, seed: int = 0) -> dict[str, float]:
    """Median seconds per call of every candidate, plus the floor, over ``rounds`` rounds."""
    work, counts = _candidates()
    loops = {name: _calibrate(call, batch_seconds) for name, call in work.items()}
    samples: dict[str, list[float]] = {name: [] for name in work}
    order = list(work)
    shuffle = random.Random(seed).shuffle
    for _ in range(rounds):
        shuffle(order)
        for name in order:
            samples[name].append(_batch(work[name], loops[name]))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    medians["floor (sum)"] = sum(medians[name] * count for name, count in counts.items())
    return medians


def _report(medians: dict[str, float]) -> tuple[str, list[dict[str, object]], bool]:
    handshake = medians["agentauth handshake"]
    lines = [f"{'operation':<28} {'median µs':>10} {'per second':>11} {'x handshake':>12}"]
    for name, seconds in medians.items():
        lines.append(f"{name:<28} {seconds * 1e6:>10.1f} {1 / seconds:>11,.0f} "
                     f"{seconds / handshake:>12.2f}")
    lines += ["", f"{'target':<34} {'ratio':>7} {'bound':>8}  result"]
    rows: list[dict[str, object]] = []
    ok = True
    for target in targets():
        ratio = medians[target.numerator] / medians[target.denominator]
        passed = ratio <= target.bound if target.at_most else ratio >= target.bound
        ok &= passed
        bound = f"{'<=' if target.at_most else '>='} {target.bound}"
        lines.append(f"{target.name:<34} {ratio:>7.3f} {bound:>8}  "
                     f"{'PASS' if passed else 'MISS'}")
        rows.append({**asdict(target), "ratio": ratio, "passed": passed})
    return "\n".join(lines), rows, ok


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.handshake",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 short rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--batch-ms", type=float, default=40.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    rounds, batch = (3, 0.002) if args.quick else (args.rounds, args.batch_ms / 1000)
    medians = measure(rounds, batch)
    table, rows, ok = _report(medians)
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{rounds} rounds, medians per call")
    print(table)
    if args.json is not None:
        args.json.write_text(json.dumps({
            "python": platform.python_version(),
            "rounds": rounds,
            "median_seconds": medians,
            "targets": rows,
        }, indent=2) + "\n")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())

"""Replay stores: the memory store at N live entries (bytes per entry, cost of a check),
beside SQLite and a real Redis server (one at a time and pipelined), in one run.

Usage::

    python -m benchmarks.replay [--quick] [--entries N] [--rounds N] [--json PATH]

Keys are 48 bytes, as an envelope's are (a sender's key and a nonce). Memory per entry is
what ``tracemalloc`` sees the store hold after N inserts, divided by N. A check is timed on
the store holding N live entries: a new key (inserted) and a key already seen, medians of
rounds of 20,000 calls. SQLite and Redis are timed for the same work on their own storage.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agentauth import MemoryReplayStore, RedisReplayStore, SQLiteReplayStore

__all__ = ["main"]

BATCH = 20_000


def _keys(count: int, tag: bytes) -> list[bytes]:
    base = os.urandom(32) + tag
    return [base + i.to_bytes(16 - len(tag), "big") for i in range(count)]


def memory_per_entry(entries: int) -> float:
    """Bytes the memory store holds per live entry, after ``entries`` inserts."""
    keys = _keys(entries, b"m")
    later = time.time() + 3600
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = MemoryReplayStore(capacity=entries)
    for key in keys:
        store.check_and_insert(key, later)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(store) == entries
    return held / entries


def _rate(call: Callable[[bytes, float], bool], keys: list[bytes]) -> float:
    later = time.time() + 3600
    start = time.perf_counter()
    for key in keys:
        call(key, later)
    return (time.perf_counter() - start) / len(keys)


def measure(entries: int, rounds: int, redis_url: str | None) -> dict[str, float]:
    """Median seconds per check for each store and case."""
    later = time.time() + 3600
    memory = MemoryReplayStore(capacity=entries + rounds * BATCH * 2)
    memory.check_and_insert_many([(key, later) for key in _keys(entries, b"f")])
    samples: dict[str, list[float]] = {"memory new": [], "memory seen": []}
    with tempfile.TemporaryDirectory() as folder:
        sqlite = SQLiteReplayStore(Path(folder) / "replay.db")
        samples["sqlite new"] = []
        redis_store = None
        if redis_url is not None:
            redis_store = RedisReplayStore(redis_url, prefix=os.urandom(4).hex().encode())
            samples["redis new"], samples["redis new, pipelined by 100"] = [], []
        for round_ in range(rounds):
            fresh = _keys(BATCH, b"r%d" % round_)
            samples["memory new"].append(_rate(memory.check_and_insert, fresh))
            samples["memory seen"].append(_rate(memory.check_and_insert, fresh))
            small = fresh[: BATCH // 20]
            samples["sqlite new"].append(_rate(sqlite.check_and_insert, small))
            if redis_store is not None:
                samples["redis new"].append(_rate(redis_store.check_and_insert,
                                                  _keys(BATCH // 20, b"s%d" % round_)))
                batches = _keys(BATCH // 4, b"p%d" % round_)
                start = time.perf_counter()
                for i in range(0, len(batches), 100):
                    redis_store.check_and_insert_many([(k, later) for k in
                                                       batches[i:i + 100]])
                samples["redis new, pipelined by 100"].append(
                    (time.perf_counter() - start) / len(batches))
        sqlite.close()
        if redis_store is not None:
            redis_store.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--redis", help="a Redis URL (default: start redis-server)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    entries, rounds = (20_000, 1) if args.quick else (args.entries, args.rounds)
    per_entry = memory_per_entry(entries)
    if args.redis:
        medians = measure(entries, rounds, args.redis)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from redis_support import redis_server  # noqa: PLC0415 (the tests' own launcher)

        with redis_server() as url:
            medians = measure(entries, rounds, url)
    targets: list[dict[str, Any]] = [
        {"name": "memory bytes per entry", "value": per_entry, "bound": 120},
        {"name": "memory check, new key (µs)", "value": medians["memory new"] * 1e6,
         "bound": 2.0},
        {"name": "memory check, seen key (µs)", "value": medians["memory seen"] * 1e6,
         "bound": 2.0},
    ]
    print(f"python {sys.version.split()[0]}, {entries:,} live entries, {rounds} round(s)")
    print(f"{'store, case':32} {'µs per check':>13} {'per second':>12}")
    for name, seconds in medians.items():
        print(f"{name:32} {seconds * 1e6:>13.2f} {1 / seconds:>12,.0f}")
    print()
    for target in targets:
        target["passed"] = target["value"] <= target["bound"]
        print(f"{target['name']:32} {target['value']:>8.2f} <= {target['bound']:<6} "
              f"{'PASS' if target['passed'] else 'MISS'}")
    if args.json:
        args.json.write_text(json.dumps({"entries": entries, "rounds": rounds,
                                         "median_seconds": medians,
                                         "targets": targets}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

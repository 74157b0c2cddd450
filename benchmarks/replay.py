"""Replay stores and envelopes: the memory store at N live entries (bytes per entry, cost
of a check) beside a plain Python set, the SQLite store beside a bare SQLite insert, the
Redis store beside bare redis-py ``SET NX PX`` on a real server (one at a time and
pipelined), and envelope seal/open beside PyJWT EdDSA, in one run.

Usage::

    python -m benchmarks.replay [--quick] [--entries N] [--rounds N] [--json PATH]

Keys are 48 bytes, as an envelope's are (a sender's key and a nonce). Memory per entry is
what ``tracemalloc`` sees the store hold after N inserts, divided by N. A check is timed on
the store holding N live entries: a new key (inserted) and a key already seen, medians of
rounds of 20,000 calls; the set the same way. SQLite and Redis are timed for the same work
on their own storage; their bytes per entry are the database's pages, and the server's
``used_memory``, after 100,000 entries (at most). The envelope figures are those of
:mod:`benchmarks.envelopes`, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

from agentauth import MemoryReplayStore, RedisReplayStore, SQLiteReplayStore

from . import envelopes

__all__ = ["main"]

BATCH = 20_000


def _keys(count: int, tag: bytes) -> list[bytes]:
    base = os.urandom(32) + tag
    return [base + i.to_bytes(16 - len(tag), "big") for i in range(count)]


def memory_per_entry(entries: int) -> dict[str, float]:
    """Bytes held per live entry after ``entries`` inserts, in the memory store and in a
    plain Python set of the same keys."""
    keys = _keys(entries, b"m")
    later = time.time() + 3600
    held: dict[str, float] = {}
    for name in ("memory", "set"):
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        if name == "memory":
            store = MemoryReplayStore(capacity=entries)
            for key in keys:
                store.check_and_insert(key, later)
            assert len(store) == entries
        else:
            # The set must own its keys, as the store does: copies, not the list's objects.
            plain = {bytes(bytearray(key)) for key in keys}
            assert len(plain) == entries
        held[name] = (tracemalloc.get_traced_memory()[0] - before) / entries
        tracemalloc.stop()
        store, plain = None, set()  # type: ignore[assignment]
    return held


def _bare_sqlite(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY) WITHOUT ROWID")
    return db


def _db_bytes(db: sqlite3.Connection) -> int:
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    (size,) = db.execute("PRAGMA page_size").fetchone()
    return int(pages) * int(size)


def disk_per_entry(folder: Path, entries: int) -> dict[str, float]:
    """Bytes of database per live entry: the SQLite store against a bare table of keys."""
    keys = _keys(entries, b"d")
    later = time.time() + 3600
    store = SQLiteReplayStore(folder / "size.db")
    for i in range(0, entries, 1000):
        store.check_and_insert_many([(key, later) for key in keys[i:i + 1000]])
    ours = _db_bytes(store._db)  # the page count of its own file
    store.close()
    bare = _bare_sqlite(folder / "size-bare.db")
    bare.execute("BEGIN")
    bare.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(key,) for key in keys])
    bare.execute("COMMIT")
    theirs = _db_bytes(bare)
    bare.close()
    return {"sqlite": ours / entries, "sqlite bare": theirs / entries}


# Entries live an hour here, beyond the default horizon. The server the benchmark starts
# keeps nothing on disk, as bare Redis is usually measured, and is flushed between
# measurements: its configuration is ours, not checked.
_REDIS_OPTIONS: dict[str, Any] = {"horizon": 7200, "check_policy": False}


def redis_per_entry(url: str, entries: int) -> dict[str, float]:
    """Server memory per live entry (``used_memory`` before and after): the Redis store
    against bare ``SET NX PX`` of the same keys."""
    client = redis.Redis.from_url(url)
    later = time.time() + 3600
    found: dict[str, float] = {}
    for name in ("redis", "redis bare"):
        client.flushall()
        before = int(client.info("memory")["used_memory"])
        keys = _keys(entries, b"z")
        if name == "redis":
            store = RedisReplayStore(client, prefix=b"agentauth:replay:", **_REDIS_OPTIONS)
            for i in range(0, entries, 1000):
                store.check_and_insert_many([(key, later) for key in keys[i:i + 1000]])
        else:
            for i in range(0, entries, 1000):
                pipe = client.pipeline(transaction=False)
                for key in keys[i:i + 1000]:
                    pipe.set(key, b"1", nx=True, px=3_600_000)
                pipe.execute()
        found[name] = (int(client.info("memory")["used_memory"]) - before) / entries
    client.flushall()
    client.close()
    return found


def _rate(call: Callable[[bytes, float], object], keys: list[bytes]) -> float:
    later = time.time() + 3600
    start = time.perf_counter()
    for key in keys:
        call(key, later)
    return (time.perf_counter() - start) / len(keys)


def _set_check(plain: set[bytes]) -> Callable[[bytes, float], bool]:
    def check(key: bytes, expires: float) -> bool:
        if key in plain:
            return False
        plain.add(key)
        return True

    return check


def measure(entries: int, rounds: int, redis_url: str) -> dict[str, float]:
    """Median seconds per check for each store and case, and for the bare peers."""
    later = time.time() + 3600
    filler = _keys(entries, b"f")
    memory = MemoryReplayStore(capacity=entries + rounds * BATCH * 2)
    memory.check_and_insert_many([(key, later) for key in filler])
    plain = set(filler)
    set_check = _set_check(plain)
    names = ("memory new", "memory seen", "set new", "set seen", "sqlite new",
             "sqlite bare insert", "redis new", "redis bare SET NX",
             "redis new, pipelined by 100", "redis bare SET NX, pipelined by 100")
    samples: dict[str, list[float]] = {name: [] for name in names}
    client = redis.Redis.from_url(redis_url)
    with tempfile.TemporaryDirectory() as folder:
        sqlite = SQLiteReplayStore(Path(folder) / "replay.db")
        bare_db = _bare_sqlite(Path(folder) / "bare.db")
        redis_store = RedisReplayStore(client, prefix=os.urandom(4).hex().encode(),
                                       **_REDIS_OPTIONS)

        def bare_sqlite(key: bytes, expires: float) -> object:
            bare_db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (key,))
            return None  # autocommit: one transaction per row

        def bare_redis(key: bytes, expires: float) -> object:
            return client.set(key, b"1", nx=True, px=3_600_000)

        def pipelined(run: Callable[[list[bytes]], object], keys: list[bytes]) -> float:
            start = time.perf_counter()
            for i in range(0, len(keys), 100):
                run(keys[i:i + 100])
            return (time.perf_counter() - start) / len(keys)

        def bare_pipeline(keys: list[bytes]) -> object:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, b"1", nx=True, px=3_600_000)
            return pipe.execute()

        def store_pipeline(keys: list[bytes]) -> object:
            return redis_store.check_and_insert_many([(key, later) for key in keys])

        for round_ in range(rounds):
            tag = b"r%d" % round_
            fresh, copy = _keys(BATCH, tag), _keys(BATCH, tag + b"c")
            samples["memory new"].append(_rate(memory.check_and_insert, fresh))
            samples["memory seen"].append(_rate(memory.check_and_insert, fresh))
            samples["set new"].append(_rate(set_check, copy))
            samples["set seen"].append(_rate(set_check, copy))
            small = BATCH // 20
            samples["sqlite new"].append(_rate(sqlite.check_and_insert, fresh[:small]))
            samples["sqlite bare insert"].append(_rate(bare_sqlite, copy[:small]))
            samples["redis new"].append(_rate(redis_store.check_and_insert,
                                              _keys(small, tag + b"s")))
            samples["redis bare SET NX"].append(_rate(bare_redis, _keys(small, tag + b"b")))
            samples["redis new, pipelined by 100"].append(
                pipelined(store_pipeline, _keys(BATCH // 4, tag + b"p")))
            samples["redis bare SET NX, pipelined by 100"].append(
                pipelined(bare_pipeline, _keys(BATCH // 4, tag + b"q")))
        sqlite.close()
        bare_db.close()
        redis_store.close()
    client.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def _run(entries: int, rounds: int, url: str, sizes: int) -> tuple[dict[str, float],
                                                                  dict[str, float]]:
    medians = measure(entries, rounds, url)
    with tempfile.TemporaryDirectory() as folder:
        held = {**memory_per_entry(entries), **disk_per_entry(Path(folder), sizes),
                **redis_per_entry(url, sizes)}
    return medians, held


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--redis", help="a Redis URL (default: start redis-server)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    entries, rounds = (20_000, 1) if args.quick else (args.entries, args.rounds)
    sizes = min(entries, 100_000)  # entries written to SQLite and Redis for their sizes
    if args.redis:
        medians, held = _run(entries, rounds, args.redis, sizes)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from support.redis_server import redis_server  # noqa: PLC0415 (the tests' own launcher)

        with redis_server(volatile=True) as url:  # as bare Redis is usually timed
            medians, held = _run(entries, rounds, url, sizes)
    sealed = envelopes.measure(rounds, 256, 0.01 if args.quick else 0.2)
    targets: list[dict[str, Any]] = [
        {"name": "memory bytes per entry", "value": held["memory"], "bound": 120},
        {"name": "memory check, new key (µs)", "value": medians["memory new"] * 1e6,
         "bound": 2.0},
        {"name": "memory check, seen key (µs)", "value": medians["memory seen"] * 1e6,
         "bound": 2.0},
        *envelopes.targets(sealed),
    ]
    print(f"python {sys.version.split()[0]}, {entries:,} live entries in memory, "
          f"{rounds} round(s)")
    print(f"{'store, case':38} {'µs per check':>13} {'per second':>12}")
    for name, seconds in medians.items():
        print(f"{name:38} {seconds * 1e6:>13.2f} {1 / seconds:>12,.0f}")
    for ours, bare in (("memory new", "set new"), ("sqlite new", "sqlite bare insert"),
                       ("redis new", "redis bare SET NX"),
                       ("redis new, pipelined by 100", "redis bare SET NX, pipelined by 100")):
        print(f"{ours + ' / ' + bare:70} {medians[ours] / medians[bare]:>6.2f}")
    print()
    print(f"{'bytes per live entry':38} {'bytes':>13}  (SQLite and Redis: {sizes:,} entries)")
    for name, value in held.items():
        print(f"{name:38} {value:>13.1f}")
    print()
    print("\n".join(envelopes.report(sealed, 256)))
    print()
    for target in targets:
        target["passed"] = target["value"] <= target["bound"]
        print(f"{target['name']:46} {target['value']:>8.2f} <= {target['bound']:<6} "
              f"{'PASS' if target['passed'] else 'MISS'}")
    if args.json:
        args.json.write_text(json.dumps({"entries": entries, "rounds": rounds,
                                         "median_seconds": medians,
                                         "bytes_per_entry": held,
                                         "envelope_seconds": sealed,
                                         "targets": targets}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

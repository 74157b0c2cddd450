"""Replay stores (spec section 11) on real parts: memory, a SQLite file, a redis-server.

Atomic check-and-insert from many tasks (both anyio backends) and from two processes;
replays refused across restarts and after kill -9; full stores fail closed and never drop
a live entry; expired entries are reclaimed a few at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
import redis
from support import raises
from support.redis_server import free_port, redis_server

from agentauth import (
    MemoryReplayStore,
    RedisReplayStore,
    ReplayStore,
    SQLiteReplayStore,
    async_replay_store,
    crypto,
)

ROOT = Path(__file__).resolve().parents[2]
KINDS = ["memory", "sqlite", "redis"]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def make(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., ReplayStore]]:
    """Build a store of a kind; Redis stores get a prefix of their own per test."""
    opened: list[ReplayStore] = []
    prefix = os.urandom(8).hex().encode()

    def build(kind: str, **options: object) -> ReplayStore:
        store: ReplayStore
        if kind == "memory":
            store = MemoryReplayStore(**options)  # type: ignore[arg-type]
        elif kind == "sqlite":
            store = SQLiteReplayStore(tmp_path / "replay.db", **options)  # type: ignore[arg-type]
        else:
            store = RedisReplayStore(redis_url, prefix=prefix, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield build
    for store in opened:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.mark.parametrize("kind", KINDS)
def test_new_then_seen(kind: str, make: Callable[..., ReplayStore]) -> None:
    store = make(kind)
    later = time.time() + 60
    assert store.check_and_insert(b"alice|nonce-1", later) is True
    assert store.check_and_insert(b"alice|nonce-1", later) is False
    assert store.check_and_insert(b"alice|nonce-2", later) is True
    assert store.check_and_insert_many([(b"k1", later), (b"k1", later), (b"alice|nonce-2",
                                                                            later)]) == [
        True, False, False]
    for bad in (b"", b"x" * 257, "text"):
        with raises("invalid_argument"):
            store.check_and_insert(bad, later)  # type: ignore[arg-type]
    with raises("invalid_argument"):
        store.check_and_insert(b"k", float("nan"))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_an_entry_lives_until_its_expiry_then_goes(kind: str,
                                                   make: Callable[..., ReplayStore]) -> None:
    clock = Clock()
    store = make(kind, clock=clock)
    assert store.check_and_insert(b"k", clock.now + 10)
    clock.now += 10  # the last moment it could be accepted: still live
    assert not store.check_and_insert(b"k", clock.now + 10)
    clock.now += 1.001  # past its expiry (memory: and past its one-second bucket)
    assert store.check_and_insert(b"k", clock.now + 10)  # taken over, live again
    assert not store.check_and_insert(b"k", clock.now + 10)


def test_redis_entries_carry_their_ttl(redis_url: str) -> None:
    store = RedisReplayStore(redis_url, prefix=b"ttl:")
    assert store.check_and_insert(b"k", time.time() + 30)
    client = redis.Redis.from_url(redis_url)
    ttl = client.pttl(b"ttl:k")
    assert 30_000 < ttl <= 31_000  # 30 s and the default margin of 1 s
    client.close()
    store.close()


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_concurrent_tasks_get_exactly_one_new(kind: str,
                                                    make: Callable[..., ReplayStore]) -> None:
    store = async_replay_store(make(kind))
    answers: list[bool] = []
    later = time.time() + 60

    async def claim(key: bytes) -> None:
        answers.append(await store.check_and_insert(key, later))

    async with anyio.create_task_group() as tasks:
        for _ in range(40):
            tasks.start_soon(claim, b"the-key")
    assert answers.count(True) == 1 and len(answers) == 40
    assert await store.check_and_insert_many([(b"a", later), (b"the-key", later)]) == [
        True, False]


_WORKER = textwrap.dedent("""
    import sys, time
    from agentauth import RedisReplayStore, SQLiteReplayStore
    kind, where, prefix = sys.argv[1], sys.argv[2], sys.argv[3].encode()
    store = (SQLiteReplayStore(where) if kind == "sqlite"
             else RedisReplayStore(where, prefix=prefix))
    later = time.time() + 60
    print("ready", flush=True)
    sys.stdin.readline()  # both start together
    for i in range(300):
        if store.check_and_insert(b"key-%d" % i, later):
            print(i, flush=True)
    print("done", flush=True)
    sys.stdin.readline()  # wait to be told (or killed)
""")


def _worker(kind: str, where: str, prefix: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", _WORKER, kind, where, prefix],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               cwd=ROOT)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_two_processes_get_exactly_one_new_each(kind: str, tmp_path: Path,
                                                redis_url: str) -> None:
    where = str(tmp_path / "shared.db") if kind == "sqlite" else redis_url
    prefix = os.urandom(8).hex()
    workers = [_worker(kind, where, prefix) for _ in range(2)]
    won: list[int] = []
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        assert worker.stdin is not None and worker.stdout is not None
        lines = []
        for line in worker.stdout:
            if line == "done\n":
                break
            lines.append(int(line))
        worker.stdin.write("bye\n")
        worker.stdin.flush()
        assert worker.wait(timeout=30) == 0
        won += lines
    assert sorted(won) == list(range(300))  # every key new exactly once, in one process


def test_sqlite_refuses_replays_after_a_restart_and_after_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    store = SQLiteReplayStore(path)
    later = time.time() + 60
    assert store.check_and_insert(b"before-restart", later)
    store.close()
    store = SQLiteReplayStore(path)
    assert not store.check_and_insert(b"before-restart", later)
    store.close()
    worker = _worker("sqlite", str(path), "")
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write("go\n")
    worker.stdin.flush()
    while (line := worker.stdout.readline()) != "done\n":
        assert line, "the worker ended early"
    worker.send_signal(signal.SIGKILL)  # no clean shutdown of any kind
    assert worker.wait(timeout=30) == -signal.SIGKILL
    store = SQLiteReplayStore(path)
    assert store.check_and_insert_many([(b"key-0", later), (b"key-299", later),
                                        (b"key-300", later)]) == [False, False, True]
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_full_store_fails_closed_and_keeps_every_live_entry(
        kind: str, make: Callable[..., ReplayStore]) -> None:
    clock = Clock()
    store = make(kind, capacity=3, clock=clock)
    for key in (b"a", b"b", b"c"):
        assert store.check_and_insert(key, clock.now + 5)
    with raises("store_full"):
        store.check_and_insert(b"d", clock.now + 5)
    with raises("store_full"):  # a batch that does not fit changes nothing
        store.check_and_insert_many([(b"e", clock.now + 5)])
    assert store.check_and_insert_many([(b"a", clock.now), (b"b", clock.now),
                                        (b"c", clock.now)]) == [False] * 3
    clock.now += 7  # all three have expired: room again
    assert store.check_and_insert(b"d", clock.now + 5)
    assert len(store) <= 3  # type: ignore[arg-type]


def test_memory_reclaims_a_few_entries_per_call() -> None:
    clock = Clock()
    store = MemoryReplayStore(clock=clock)
    store.check_and_insert_many([(b"%d" % i, clock.now + 1) for i in range(1000)])
    clock.now += 3
    store.check_and_insert(b"new", clock.now + 1)  # reclaims a handful, not 1000
    assert 990 < len(store) < 1000
    for i in range(300):
        store.check_and_insert(b"more-%d" % i, clock.now + 1)
    assert len(store) == 301  # the expired thousand are gone, the new ones kept


def test_redis_full_and_evicting_and_unreachable_servers(redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    store = RedisReplayStore(redis_url, prefix=b"full:")
    admin.config_set("maxmemory", "1")  # every write is now over the limit
    try:
        with raises("store_full"):
            store.check_and_insert(b"k", time.time() + 60)
        with raises("store_full"):
            store.check_and_insert_many([(b"k1", time.time() + 60)])
    finally:
        admin.config_set("maxmemory", "0")
    assert store.check_and_insert(b"k", time.time() + 60)
    admin.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with raises("invalid_state"):  # it could forget a live entry
            RedisReplayStore(redis_url)
    finally:
        admin.config_set("maxmemory-policy", "noeviction")
    with raises("store_unavailable"):
        RedisReplayStore(f"redis://127.0.0.1:{free_port()}/0")
    unchecked = RedisReplayStore(f"redis://127.0.0.1:{free_port()}/0", check_policy=False)
    with raises("store_unavailable"):
        unchecked.check_and_insert(b"k", time.time() + 60)
    admin.close()
    store.close()


@pytest.mark.anyio
async def test_the_async_interface_refuses_what_is_not_a_store() -> None:
    with raises("invalid_argument"):
        async_replay_store(object())  # type: ignore[arg-type]
    store = async_replay_store(MemoryReplayStore())
    assert await store.check_and_insert(b"k", time.time() + 1)


def test_the_keyed_hasher_is_keyed_blake2b() -> None:
    key = os.urandom(32)
    digest = crypto.keyed_hasher(key, 16)
    for data in (b"", b"a", os.urandom(300)):
        assert digest(data) == crypto.blake2b_keyed(key, data, 16)
        assert digest(data) == digest(data)  # no state carried between calls
    assert crypto.keyed_hasher(os.urandom(32), 16)(b"a") != digest(b"a")
    with raises("invalid_key"):
        crypto.keyed_hasher(b"", 16)


@pytest.mark.parametrize("kind", KINDS)
def test_a_key_already_expired_by_the_stores_clock_is_seen(
        kind: str, make: Callable[..., ReplayStore]) -> None:
    # The caller's window check and the store's clock reading are two moments: a key that
    # expired in between must not be inserted as new (its twin may already be forgotten).
    store = make(kind)
    past = time.time() - 1
    assert store.check_and_insert(b"late", past) is False
    assert store.check_and_insert_many([(b"late", past), (b"fine", time.time() + 60)]) == [
        False, True]
    for odd in (True, float("nan"), float("inf"), -1, 10**400, 2**60):
        with raises("invalid_argument"):
            store.check_and_insert(b"k", odd)


def test_memory_batches_are_all_or_nothing() -> None:
    store = MemoryReplayStore(capacity=2)
    later = time.time() + 60
    with raises("store_full"):
        store.check_and_insert_many([(b"a", later), (b"b", later), (b"c", later)])
    assert len(store) == 0  # nothing of the refused batch was kept
    assert store.check_and_insert_many([(b"a", later), (b"a", later)]) == [True, False]


def test_threads_get_exactly_one_new_from_the_memory_store() -> None:
    store = MemoryReplayStore()
    later = time.time() + 60
    answers: list[bool] = []
    workers = [threading.Thread(target=lambda: answers.extend(
        store.check_and_insert(b"key-%d" % i, later) for i in range(2000)))
        for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert answers.count(True) == 2000 and len(answers) == 8000

"""The Redis replay store under faults, on a real redis-server (issue 14, items 8 to 10):
replies delayed past the client's timeout (each delivery is still accepted exactly once,
none lost), a stalled server (a typed error within the timeout, never a hang), a server
that keeps nothing on disk (refused unless allowed; after a restart or a flush, nothing it
may have forgotten is accepted), CONFIG disabled, and malformed URLs."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest
import redis
from support import raises
from support.redis_server import FaultProxy, RedisServer, free_port, redis_process

from agentauth import AgentAuthError, RedisReplayStore, StoreError, async_replay_store
from agentauth.stores import RedisRevocationStore
from agentauth.stores.redis import _SCRIPT

FAST = {"timeout": 0.05, "retries": 2, "margin": 0.0}  # 50 ms replies, three attempts


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_process() as running:
        yield running


def prefix() -> bytes:
    return os.urandom(6).hex().encode() + b":"


def deliver(store: RedisReplayStore, key: bytes, expires: float) -> bool:
    """What a sender and a receiver do together: deliver until the receiver answers (a
    store error refuses the message, and the sender delivers it again)."""
    for _ in range(100):
        try:
            return store.check_and_insert(key, expires)
        except StoreError as exc:
            assert exc.code == "store_unavailable"
    raise AssertionError("a delivery never got an answer")


def deliver_many(store: RedisReplayStore, batch: list[tuple[bytes, float]]) -> list[bool]:
    """:func:`deliver` for a batch."""
    for _ in range(100):
        try:
            return store.check_and_insert_many(batch)
        except StoreError as exc:
            assert exc.code == "store_unavailable"
    raise AssertionError("a batch never got an answer")


def test_deliveries_through_late_replies_are_each_accepted_exactly_once(
        server: RedisServer) -> None:
    # 10,000 messages, each delivered until answered, one at a time from 16 threads, then
    # all of them again in batches of 100 (duplicates); one reply in 20 is held past the
    # client's 50 ms timeout, although the server did the work. Every message must be
    # accepted once: never refused as its own replay (lost), never twice.
    proxy = FaultProxy(server.port, late=0.05, delay=0.2)
    store = RedisReplayStore(proxy.url, prefix=prefix(), **FAST)  # type: ignore[arg-type]
    expires = time.time() + 60
    keys = [b"msg-%d" % i for i in range(10_000)]
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(16) as pool:
            first = list(pool.map(lambda key: deliver(store, key, expires), keys))
        again = [new for i in range(0, len(keys), 100)
                 for new in deliver_many(store, [(key, expires) for key in keys[i:i + 100]])]
    finally:
        store.close()
        proxy.close()
    assert first.count(True) == len(keys)  # none lost
    assert again.count(True) == 0  # none twice
    assert time.monotonic() - started < 60  # generous: about 5 s on a quiet machine


def test_batches_through_late_replies_are_each_accepted_exactly_once(
        server: RedisServer) -> None:
    proxy = FaultProxy(server.port, late=0.2, delay=0.2, seed=2)
    store = RedisReplayStore(proxy.url, prefix=prefix(), **FAST)  # type: ignore[arg-type]
    expires = time.time() + 60
    accepted: Counter[bytes] = Counter()
    try:
        for start in range(0, 2000, 100):
            batch = [(b"b-%d" % i, expires) for i in range(start, start + 100)]
            for _ in range(2):  # delivered twice (and three twice within the batch)
                answers = deliver_many(store, batch + batch[:3])
                accepted.update(key for (key, _), new in zip(batch + batch[:3], answers,
                                                             strict=True) if new)
    finally:
        store.close()
        proxy.close()
    assert len(accepted) == 2000 and set(accepted.values()) == {1}


def test_a_call_that_gives_up_is_released_for_the_redelivery(server: RedisServer) -> None:
    # Every reply is late: the call gives up (the message is refused), but the server
    # wrote the claim. The redelivery must be accepted once, not refused as a replay.
    proxy = FaultProxy(server.port, late=0.0, delay=0.2)
    store = RedisReplayStore(proxy.url, prefix=prefix(), **FAST)  # type: ignore[arg-type]
    expires = time.time() + 60
    assert store.check_and_insert(b"other", expires)
    proxy.late = 1.0
    with raises("store_unavailable"):
        store.check_and_insert(b"k", expires)
    proxy.late = 0.0  # replies come back
    other = RedisReplayStore(server.url, prefix=store._prefix, margin=0.0)
    assert other.check_and_insert(b"k", expires) is False  # claimed, not yet released
    try:
        assert store.check_and_insert(b"k", expires) is True  # the redelivery
        assert store.check_and_insert(b"k", expires) is False
        assert other.check_and_insert(b"k", expires) is False
    finally:
        store.close()
        other.close()
        proxy.close()


def test_closing_a_store_releases_its_calls_that_gave_up(server: RedisServer) -> None:
    # A store that makes no further call (the replica is idle, or shutting down) kept
    # the claim of its call that gave up: the sender's redelivery through another store
    # was refused as a replay until the message expired.
    proxy = FaultProxy(server.port, late=0.0, delay=0.2)
    store = RedisReplayStore(proxy.url, prefix=prefix(), **FAST)  # type: ignore[arg-type]
    other = RedisReplayStore(server.url, prefix=store._prefix, margin=0.0)
    expires = time.time() + 60
    try:
        assert store.check_and_insert(b"warm", expires)
        proxy.late = 1.0
        with raises("store_unavailable"):
            store.check_and_insert(b"k", expires)
        proxy.late = 0.0
        store.close()
        assert other.check_and_insert(b"k", expires) is True  # the redelivery
        assert other.check_and_insert(b"k", expires) is False
    finally:
        other.close()
        proxy.close()


def test_a_late_copy_of_a_released_call_takes_nothing(server: RedisServer) -> None:
    # Release first, then the claim of the call that gave up arrives: it must not win.
    client = redis.Redis.from_url(server.url)
    store = RedisReplayStore(server.url, prefix=prefix(), margin=0.0)
    expires = time.time() + 60
    assert store.check_and_insert(b"warm", expires)
    dead = b"deadbeef"
    store._keep_orphans([((b"k", dead), expires)])
    assert store.check_and_insert(b"x", expires)  # releases (k, dead): a mark only
    assert client.get(store._prefix + b"k") == b"~" + dead
    late = store._send([(b"k", 60_000, expires)], dead, [])  # the late copy
    assert late == [0]
    assert store.check_and_insert(b"k", expires) is True  # a real redelivery is taken
    client.close()
    store.close()


def stalled_call(server: RedisServer) -> float:
    store = RedisReplayStore(server.url, prefix=prefix(), timeout=0.2, retries=1)
    assert store.check_and_insert(b"before", time.time() + 60)
    server.pause()
    started = time.monotonic()
    try:
        with raises("store_unavailable"):
            store.check_and_insert(b"k", time.time() + 60)
        return time.monotonic() - started
    finally:
        server.resume()
        store.close()


def test_a_stalled_server_gives_a_typed_error_within_the_timeout(
        server: RedisServer) -> None:
    assert stalled_call(server) < 5  # two attempts of 0.2 s; generous bound


def test_calls_waiting_on_a_stalled_server_do_not_wait_in_turn(
        server: RedisServer) -> None:
    # Calls that meet a store before it knows the server's epoch wait for the one call
    # learning it; when that call gives up on a stalled server, each waiter used to try
    # again in turn, so the last of 16 waited 16 times the timeout.
    store = RedisReplayStore(server.url, prefix=prefix(), timeout=0.25, retries=1)
    server.pause()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(lambda i: refused(store, b"k-%d" % i), range(16)))
        took = time.monotonic() - started
    finally:
        server.resume()
        store.close()
    assert outcomes == ["store_unavailable"] * 16
    assert took < 4  # 16 x 0.5 s before; about 0.5 s now


def refused(store: RedisReplayStore, key: bytes) -> str:
    try:
        store.check_and_insert(key, time.time() + 60)
    except StoreError as exc:
        return exc.code
    return "answered"


def test_a_stalled_server_behind_the_revocation_store(server: RedisServer) -> None:
    store = RedisRevocationStore(server.url, {}, prefix=prefix(), timeout=0.2)
    assert store.is_revoked(b"x" * 32) is False
    server.pause()
    started = time.monotonic()
    try:
        with raises("store_unavailable"):
            store.is_revoked(b"x" * 32)  # never "not revoked" for want of an answer
        assert time.monotonic() - started < 5
    finally:
        server.resume()
        store.close()


@pytest.mark.anyio
async def test_a_stalled_server_through_the_async_adapter(server: RedisServer) -> None:
    store = RedisReplayStore(server.url, prefix=prefix(), timeout=0.2, retries=1)
    adapter = async_replay_store(store)
    assert await adapter.check_and_insert(b"before", time.time() + 60)
    server.pause()
    try:
        with anyio.fail_after(5), raises("store_unavailable"):
            await adapter.check_and_insert(b"k", time.time() + 60)
        with anyio.fail_after(5), raises("store_unavailable"):
            await adapter.check_and_insert_many([(b"k2", time.time() + 60)])
    finally:
        server.resume()
        store.close()


@pytest.mark.anyio
async def test_async_deliveries_through_late_replies_are_each_accepted_once(
        server: RedisServer) -> None:
    proxy = FaultProxy(server.port, late=0.05, delay=0.2, seed=3)
    store = RedisReplayStore(proxy.url, prefix=prefix(), **FAST)  # type: ignore[arg-type]
    adapter = async_replay_store(store)
    expires = time.time() + 60
    accepted: Counter[bytes] = Counter()

    async def sender(first: int) -> None:
        for i in range(first, 1000, 8):
            for _ in range(2):  # delivered, then once more
                while True:
                    try:
                        if await adapter.check_and_insert(b"a-%d" % i, expires):
                            accepted[b"a-%d" % i] += 1
                        break
                    except StoreError:
                        continue

    try:
        async with anyio.create_task_group() as tasks:
            for first in range(8):
                tasks.start_soon(sender, first)
    finally:
        store.close()
        proxy.close()
    assert len(accepted) == 1000 and set(accepted.values()) == {1}


def test_a_volatile_server_is_refused_unless_allowed() -> None:
    with redis_process(volatile=True) as server:
        with raises("invalid_state") as caught:
            RedisReplayStore(server.url)
        assert "allow_volatile" in str(caught.value)
        with raises("invalid_state"):
            RedisRevocationStore(server.url, {})
        RedisRevocationStore(server.url, {}, allow_volatile=True).close()
        RedisReplayStore(server.url, allow_volatile=True).close()


class Clock:
    """A clock the test moves by hand (the stores read it; Redis keeps its own)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("volatile", [True, False])
def test_a_restarted_server_accepts_no_replay(volatile: bool) -> None:
    # Messages stamped before a restart are refused afterwards, by a store that saw the
    # restart and by one made after it; later ones are accepted. A server that keeps its
    # data (appendonly) may still lose the last second of writes: the same rule holds.
    horizon, clock = 30.0, Clock()
    options: dict[str, Any] = {"prefix": b"r:", "margin": 0.0, "horizon": horizon,
                               "allow_volatile": volatile, "clock": clock}
    # Every write synced, so that the kept server really keeps "old" through a kill.
    with redis_process(volatile=volatile, extra=["--appendfsync", "always"]) as server:
        store = RedisReplayStore(server.url, **options)
        if volatile:
            with raises("store_unavailable"):  # stamped before the server started
                store.check_and_insert(b"early", clock.now + 1)  # whatever its uptime
        else:  # a namespace seen for the first time on a server that keeps its data
            assert store.check_and_insert(b"early", clock.now + horizon)
        clock.now += 2  # past the server's start (known to the second)
        old = clock.now + horizon  # a message stamped now, at the longest window
        assert store.check_and_insert(b"old", old) is True
        clock.now += 1
        server.stop(kill=True)
        server.start()  # the same port, nothing kept
        admin = redis.Redis.from_url(server.url)
        assert (admin.get(b"r:old") is None) is volatile  # forgotten, or kept
        admin.close()
        with raises("store_unavailable") as caught:
            store.check_and_insert(b"old", old)  # its replay
        assert "restarted" in str(caught.value)
        later = RedisReplayStore(server.url, **options)
        with raises("store_unavailable"):
            later.check_and_insert(b"old", old)
        with raises("store_unavailable"):
            later.check_and_insert_many([(b"new", clock.now + horizon), (b"old", old)])
        clock.now += 2
        fresh = clock.now + horizon  # stamped after the restart
        assert store.check_and_insert(b"fresh", fresh) is True
        assert later.check_and_insert(b"fresh", fresh) is False
        store.close()
        later.close()


def test_a_flush_is_seen_as_forgetting(server: RedisServer) -> None:
    store = RedisReplayStore(server.url, prefix=prefix(), margin=0.0, horizon=30)
    old = time.time() + 30
    assert store.check_and_insert(b"old", old)
    admin = redis.Redis.from_url(server.url)
    admin.flushall()
    admin.script_flush()
    with raises("store_unavailable"):
        store.check_and_insert(b"old", old)
    admin.close()
    store.close()


def test_a_flush_stays_seen_when_a_new_store_writes_the_epoch_first(
        server: RedisServer) -> None:
    # A store that starts after a flush cannot tell the empty namespace from a new one,
    # and notes no restart. The store that ran across the flush adopted that note and
    # accepted the replay of what the flush forgot; it must keep its own finding, and the
    # new store must learn it.
    name = prefix()
    running = RedisReplayStore(server.url, prefix=name, margin=0.0, horizon=30)
    old = time.time() + 30
    assert running.check_and_insert(b"old", old)
    admin = redis.Redis.from_url(server.url)
    admin.flushall()
    admin.close()
    started = RedisReplayStore(server.url, prefix=name, margin=0.0, horizon=30)
    try:
        assert started.check_and_insert(b"x", time.time() + 30)  # notes a new namespace
        with raises("store_unavailable"):
            running.check_and_insert(b"old", old)  # its replay
        with raises("store_unavailable"):
            started.check_and_insert(b"old", old)  # learnt from the running store
        again = RedisReplayStore(server.url, prefix=name, margin=0.0, horizon=30)
        with raises("store_unavailable"):
            again.check_and_insert(b"old", old)
        again.close()
    finally:
        running.close()
        started.close()


def test_a_restart_stays_seen_when_a_new_store_writes_the_epoch_first() -> None:
    # A server with a save schedule counts as keeping its data, but a crash loses what
    # it had not saved, the epoch key included. A store made after the restart takes the
    # namespace for new; the store that ran across the restart must not adopt that.
    clock = Clock()
    options: dict[str, Any] = {"prefix": b"r:", "margin": 0.0, "horizon": 30,
                               "clock": clock}
    with redis_process(volatile=True, extra=["--save", "3600 1"]) as server:
        running = RedisReplayStore(server.url, **options)
        clock.now += 2  # past the server's first start
        old = clock.now + 30
        assert running.check_and_insert(b"old", old)
        clock.now += 1
        server.stop(kill=True)
        server.start()  # nothing was saved yet
        started = RedisReplayStore(server.url, **options)
        try:
            assert started.check_and_insert(b"x", clock.now + 30)  # notes a new namespace
            with raises("store_unavailable"):
                running.check_and_insert(b"old", old)
        finally:
            running.close()
            started.close()


def test_a_failover_to_a_server_that_lacks_the_last_writes_accepts_no_replay() -> None:
    # The same address reaches another server, up since before the store's last answer
    # (a replica promoted before it had the last writes). Its start is no bound on what it
    # lacks; it was read as a restart long ago, and the replay was accepted.
    clock = Clock()
    options: dict[str, Any] = {"prefix": b"f:", "margin": 0.0, "horizon": 30,
                               "clock": clock}
    with redis_process() as replica, redis_process() as primary:
        admin = redis.Redis(port=replica.port)
        while admin.info("server")["uptime_in_seconds"] < 1:  # up for a while
            time.sleep(0.05)
        admin.close()
        proxy = FaultProxy(primary.port, late=0.0, delay=0.0)
        store = RedisReplayStore(proxy.url, **options)
        try:
            old = clock.now + 30
            assert store.check_and_insert(b"old", old)
            proxy.retarget(replica.port)
            with raises("store_unavailable") as caught:
                store.check_and_insert(b"old", old)  # its cut connection is retried
            assert "restarted" in str(caught.value)
            clock.now += 1
            assert store.check_and_insert(b"fresh", clock.now + 30)
        finally:
            store.close()
            proxy.close()


class RestartsOnScriptLoad(redis.Redis):
    """A client whose next SCRIPT LOAD first restarts its server (killed: what was not
    saved is lost), as if the restart fell just before that command."""

    server: RedisServer | None = None

    def script_load(self, script: Any) -> Any:
        if self.server is not None:
            self.server.stop(kill=True)
            self.server.start()
            self.server = None
        return super().script_load(script)


def test_a_restart_while_the_store_learns_its_epoch_is_seen() -> None:
    # The epoch key was saved, the last message was not. The store learns the epoch of
    # the old server, then the server restarts, then the script is loaded: the kept key
    # passed the script's check and the replay of the lost message was accepted.
    clock = Clock()
    with redis_process(volatile=True, extra=["--save", "3600 1"]) as server:
        client = RestartsOnScriptLoad(port=server.port, socket_timeout=5)
        store = RedisReplayStore(client, prefix=b"s:", margin=0.0, horizon=30, clock=clock)
        admin = redis.Redis(port=server.port)
        try:
            assert store.check_and_insert(b"saved", clock.now + 30)
            admin.save()  # the epoch key is on disk from here
            clock.now += 2
            old = clock.now + 30
            assert store.check_and_insert(b"old", old)  # not on disk
            admin.script_flush()  # the store learns the epoch again at its next call
            client.server = server
            with raises("store_unavailable"):
                store.check_and_insert(b"old", old)
        finally:
            admin.close()
            store.close()


def test_a_restart_is_seen_when_another_store_has_loaded_the_script_first() -> None:
    # The restarted server kept the epoch key (saved) but not the last message. Another
    # store loads the script before it rewrites the epoch key; in between, the store that
    # knew the old server found its script and its epoch key, and accepted the replay.
    clock = Clock()
    with redis_process(volatile=True, extra=["--save", "3600 1"]) as server:
        store = RedisReplayStore(server.url, prefix=b"s:", margin=0.0, horizon=30,
                                 clock=clock)
        admin = redis.Redis(port=server.port)
        assert store.check_and_insert(b"saved", clock.now + 30)
        admin.save()
        admin.close()
        clock.now += 2
        old = clock.now + 30
        assert store.check_and_insert(b"old", old)  # not on disk
        server.stop(kill=True)
        server.start()
        admin = redis.Redis(port=server.port)
        try:
            admin.script_load(_SCRIPT)  # the other store's first step
            with raises("store_unavailable"):
                store.check_and_insert(b"old", old)
        finally:
            admin.close()
            store.close()


def test_an_epoch_dated_far_ahead_does_not_refuse_for_ever(server: RedisServer) -> None:
    # One machine with its clock a year ahead (or a stranger writing the key) noted a
    # restart then: every store adopted it and refused every message for a year.
    clock = Clock()
    name = prefix()
    admin = redis.Redis(port=server.port)
    run_id = admin.info("server")["run_id"]
    admin.set(name, b"%s %d cafe" % (run_id.encode(), (clock.now + 365 * 86400) * 1000))
    admin.close()
    store = RedisReplayStore(server.url, prefix=name, margin=0.0, horizon=30, clock=clock)
    try:
        with raises("store_unavailable"):
            store.check_and_insert(b"k", clock.now + 30)  # noted now instead
        clock.now += 31
        assert store.check_and_insert(b"k", clock.now + 30)
    finally:
        store.close()


@pytest.mark.anyio
async def test_a_restarted_volatile_server_through_the_async_adapter() -> None:
    clock = Clock()
    with redis_process(volatile=True) as server:
        store = RedisReplayStore(server.url, prefix=b"r:", margin=0.0, horizon=30,
                                 allow_volatile=True, clock=clock)
        adapter = async_replay_store(store)
        with raises("store_unavailable"):
            await adapter.check_and_insert(b"early", clock.now + 1)
        clock.now += 2
        old = clock.now + 30
        assert await adapter.check_and_insert(b"old", old)
        clock.now += 1
        server.stop(kill=True)
        server.start()
        with raises("store_unavailable"):
            await adapter.check_and_insert(b"old", old)
        with raises("store_unavailable"):
            await adapter.check_and_insert_many([(b"old", old)])
        store.close()


def test_an_expiry_beyond_the_horizon_is_refused(server: RedisServer) -> None:
    store = RedisReplayStore(server.url, prefix=prefix(), horizon=60)
    with raises("invalid_argument"):
        store.check_and_insert(b"k", time.time() + 120)
    assert store.check_and_insert(b"k", time.time() + 59)
    for bad in ({"horizon": 0}, {"retries": -1}, {"timeout": 0}, {"timeout": float("nan")},
                {"allow_volatile": 1}):
        with raises("invalid_argument"):
            RedisReplayStore(server.url, **bad)
    store.close()


def test_config_disabled_fails_closed_with_a_clear_message() -> None:
    with redis_process(extra=["--rename-command", "CONFIG", ""]) as server:
        with raises("invalid_state") as caught:
            RedisReplayStore(server.url)
        assert "check_policy=False" in str(caught.value)
        store = RedisReplayStore(server.url, check_policy=False)
        assert store.check_and_insert(b"k", time.time() + 60)
        store.close()


class ReshapedConfig(redis.Redis):
    """A client in front of a real server whose CONFIG GET answers as some proxies and
    look-alike servers do: a parameter missing, or a shape that is not a mapping."""

    shape: Any = None

    def config_get(self, pattern: Any = "*", *args: Any, **kwargs: Any) -> Any:
        found = super().config_get(pattern, *args, **kwargs)
        return found if pattern == "maxmemory-policy" else self.shape


@pytest.mark.parametrize("shape", [{}, {"save": None}, {"save": 3600}, [], None, "yes"])
def test_a_config_answer_of_an_odd_shape_is_not_taken_for_persistence(shape: Any) -> None:
    # A missing "save" was read as the text "None": a schedule, so a server that keeps
    # nothing was taken for one that keeps its data; a list raised AttributeError.
    with redis_process(volatile=True) as server:
        client = ReshapedConfig(port=server.port, socket_timeout=1)
        client.shape = shape
        try:
            with raises("invalid_state") as caught:
                RedisReplayStore(client)
            assert "check_policy=False" in str(caught.value)
        finally:
            client.close()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/0", "redis://127.0.0.1:notaport/0", "redis://:pw@[::1/0",
    "", "127.0.0.1:6379", "redis://127.0.0.1:6379/notadb"])
def test_malformed_urls_are_invalid_arguments(url: str) -> None:
    with raises("invalid_argument") as caught:
        RedisReplayStore(url, check_policy=False)
    assert "pw" not in str(caught.value)
    with raises("invalid_argument"):
        RedisRevocationStore(url, {}, check_policy=False)


def test_an_unreachable_server_is_a_typed_refusal_quickly() -> None:
    store = RedisReplayStore(f"redis://127.0.0.1:{free_port()}/0", check_policy=False,
                             timeout=0.2)
    started = time.monotonic()
    with raises("store_unavailable"):
        store.check_and_insert(b"k", time.time() + 60)
    assert time.monotonic() - started < 5
    with pytest.raises(AgentAuthError):
        RedisReplayStore(object())  # type: ignore[arg-type]
    forever = redis.Redis(port=free_port(), socket_timeout=None)
    with raises("invalid_argument"):
        RedisReplayStore(forever, check_policy=False)
    forever.close()


def test_threads_racing_one_key_get_exactly_one_new(server: RedisServer) -> None:
    store = RedisReplayStore(server.url, prefix=prefix())
    expires = time.time() + 60
    answers: list[bool] = []
    lock = threading.Lock()

    def claim() -> None:
        for i in range(200):
            new = store.check_and_insert(b"race-%d" % i, expires)
            with lock:
                answers.append(new)

    workers = [threading.Thread(target=claim) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert answers.count(True) == 200 and len(answers) == 800
    store.close()


def test_a_client_that_decodes_replies_works_too(server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=1)
    store = RedisReplayStore(client, prefix=prefix())
    assert store.check_and_insert(b"k", time.time() + 60) is True
    assert store.check_and_insert_many([(b"k", time.time() + 60)]) == [False]
    store.close()


@pytest.mark.parametrize("query", ["socket_timeout=inf", "socket_connect_timeout=inf",
                                   "socket_timeout=nan", "socket_timeout=0",
                                   "socket_timeout=-1", "bogus=1", "ssl_cert_reqs=none"])
def test_a_url_query_cannot_unbound_the_waits_or_fail_untyped(query: str) -> None:
    # The URL's query overrides the store's timeouts (inf: a stalled server blocks every
    # check for ever; an infinite connect timeout raised OverflowError) and an option the
    # connection does not take raised TypeError at the first call.
    url = f"redis://user:secretpw@127.0.0.1:{free_port()}/0?{query}"
    for make in (lambda: RedisReplayStore(url, check_policy=False),
                 lambda: RedisRevocationStore(url, {}, check_policy=False)):
        with raises("invalid_argument") as caught:
            make()
        assert "secretpw" not in str(caught.value)


@pytest.mark.parametrize("options", [{"socket_timeout": float("inf")},
                                     {"socket_connect_timeout": float("inf")},
                                     {"socket_timeout": 0}])
def test_a_client_whose_waits_are_unbounded_is_refused(options: dict[str, float]) -> None:
    client = redis.Redis(port=free_port(), **options)  # type: ignore[arg-type]
    try:
        with raises("invalid_argument"):
            RedisReplayStore(client, check_policy=False)
    finally:
        client.close()

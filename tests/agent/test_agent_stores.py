"""An agent whose state does I/O (a real SQLite file, a real redis-server) over real
loopback TCP, on both anyio backends: a store that is slow holds its own request, never the
event loop (another channel is served meanwhile), and a store that fails refuses the
request with its typed error while the channel lives on."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from support.aio import DEADLINE
from support.redis_server import FaultProxy, RedisServer, free_port, redis_process

from agentauth import Agent, StoreError
from agentauth.agent import Incoming, Peer
from agentauth.agent.core import STORE_THREADS
from agentauth.capability import Grant, decode_chain

pytestmark = pytest.mark.anyio

READ = [Grant("reports/**", {"read"})]


def serving(state: str | Path, *trusted: Agent) -> Agent:
    """An agent with ``state`` that serves reports to capability holders and its status to
    the ``trusted`` with none."""
    alice = Agent.generate(state=state, trust=[agent.id for agent in trusted])

    @alice.handles("reports/**", "read")
    async def report(request: Incoming) -> bytes:
        return request.resource.encode()

    @alice.handles("status", "read", capability=False)
    async def status(request: Incoming) -> bytes:
        return b"up"

    return alice


@asynccontextmanager
async def channels(alice: Agent, slow: Agent, fast: Agent, slow_chain: bytes | None = None,
                   *, fast_chain: bool = True) -> AsyncIterator[tuple[Peer, Peer]]:
    """Two channels to ``alice``, the first holding a capability, the second one too
    (``fast_chain``) or none (its requests then need no store), each used once."""
    slow_chain = slow_chain or alice.delegate(to=slow.id, grants=READ)
    other = alice.delegate(to=fast.id, grants=READ) if fast_chain else None
    async with alice, alice.serve("127.0.0.1", 0) as server, slow.connect(
            "127.0.0.1", server.port, expect=alice.id, capability=slow_chain) as first, \
            fast.connect("127.0.0.1", server.port, expect=alice.id,
                         capability=other) as second:
        assert await first.request("reports/a", "read") == b"reports/a"
        assert await second.request(*("reports/b", "read") if fast_chain else
                                    ("status", "read")) in (b"reports/b", b"up")
        yield first, second


def closed(agent: Agent) -> None:
    """Close the stores ``agent`` opened (their connections)."""
    for store in (agent.replay, agent.revocations):
        store.close()  # type: ignore[union-attr]


@contextmanager
def redis_behind_proxy() -> Iterator[tuple[RedisServer, FaultProxy]]:
    with redis_process() as server:
        proxy = FaultProxy(server.port, late=0.0, delay=0.0)
        try:
            yield server, proxy
        finally:
            proxy.close()


async def served_in_order(slow: Peer, fast: Peer, fast_resource: str,
                          stalled: threading.Event, release: Callable[[], None]
                          ) -> list[bytes]:
    """Send a request on ``slow``; once its store lookup has ``stalled``, one on ``fast``,
    then ``release`` the store: the answers in the order they came."""
    answers: list[bytes] = []

    async def wait_slow() -> None:
        answers.append(await slow.request("reports/slow", "read"))

    async with anyio.create_task_group() as group:
        group.start_soon(wait_slow)
        assert await anyio.to_thread.run_sync(stalled.wait, DEADLINE)
        answers.append(await fast.request(fast_resource, "read"))
        release()
    return answers


async def test_a_slow_sqlite_store_holds_its_request_not_the_event_loop(
        tmp_path: Path) -> None:
    slow, fast = Agent.generate(), Agent.generate()
    alice = serving(tmp_path / "alice.db", slow, fast)
    store = alice.revocations
    asked = store.is_revoked
    stalled, gate = threading.Event(), threading.Event()
    slow_links: set[bytes] = set()

    def is_revoked(link_id: bytes) -> bool:  # the real store, behind a gate for one chain
        if link_id in slow_links:
            stalled.set()
            gate.wait(DEADLINE / 2)  # a blocked event loop fails the test, not hangs it
        return asked(link_id)

    store.is_revoked = is_revoked  # type: ignore[method-assign]
    chain = alice.delegate(to=slow.id, grants=READ)
    with anyio.fail_after(DEADLINE):
        async with channels(alice, slow, fast, chain) as (first, second):
            slow_links.update(link.id for link in decode_chain(chain))  # from now on
            answers = await served_in_order(first, second, "reports/fast", stalled, gate.set)
    closed(alice)
    assert answers == [b"reports/fast", b"reports/slow"]


async def test_a_slow_redis_store_holds_its_request_not_the_event_loop() -> None:
    slow, fast = Agent.generate(), Agent.generate()
    with redis_behind_proxy() as (_, proxy):
        alice = serving(proxy.url, slow, fast)
        with anyio.fail_after(DEADLINE):
            async with channels(alice, slow, fast, fast_chain=False) as (first, second):
                proxy.hold()  # every Redis reply waits: the next lookup stalls
                # The other channel's request needs no store: only the event loop.
                answers = await served_in_order(first, second, "status", proxy.holding,
                                                proxy.release)
        closed(alice)
    assert answers == [b"up", b"reports/slow"]


async def test_a_failing_redis_store_refuses_with_its_error_and_the_channel_lives(
        ) -> None:
    slow, fast = Agent.generate(), Agent.generate()
    with redis_behind_proxy() as (server, proxy):
        alice = serving(proxy.url, slow, fast)
        with anyio.fail_after(DEADLINE):
            async with channels(alice, slow, fast, fast_chain=False) as (first, second):
                proxy.retarget(free_port())  # Redis is gone: nothing listens there
                with pytest.raises(StoreError) as caught:
                    await first.request("reports/q3", "read")
                assert caught.value.code == "store_unavailable"  # failed closed
                assert "could not be reached" in caught.value.message
                assert await second.request("status", "read") == b"up"
                proxy.retarget(server.port)  # back: the same channels serve again
                assert await first.request("reports/q3", "read") == b"reports/q3"
        closed(alice)


async def test_a_failing_sqlite_store_refuses_with_its_error_and_the_channel_lives(
        tmp_path: Path) -> None:
    slow, fast = Agent.generate(), Agent.generate()
    alice = serving(tmp_path / "alice.db", slow, fast)
    with anyio.fail_after(DEADLINE):
        async with channels(alice, slow, fast, fast_chain=False) as (first, second):
            closed(alice)  # the stores' connections are gone
            for _ in range(2):  # refused each time, and the channel lives on
                with pytest.raises(StoreError) as caught:
                    await first.request("reports/q3", "read")
                assert caught.value.code == "store_unavailable"
                assert "closed its connection" in caught.value.message
            assert await second.request("status", "read") == b"up"


async def test_a_stalled_store_holds_at_most_the_agent_s_threads(tmp_path: Path) -> None:
    # Ten channels' requests wait on a stalled SQLite store: eight worker threads hold them
    # (the agent's limiter), and the process's other threads stay free for other work.
    peers = [Agent.generate() for _ in range(STORE_THREADS + 2)]
    alice = serving(tmp_path / "alice.db", *peers)
    store = alice.revocations
    asked = store.is_revoked
    lock, gate = threading.Condition(), threading.Event()
    inside = 0
    stalling = False

    def is_revoked(link_id: bytes) -> bool:
        nonlocal inside
        if stalling:
            with lock:
                inside += 1
                lock.notify_all()
            gate.wait(DEADLINE / 2)
        return asked(link_id)

    def full() -> bool:
        with lock:
            return lock.wait_for(lambda: inside >= STORE_THREADS, DEADLINE)

    store.is_revoked = is_revoked  # type: ignore[method-assign]
    with anyio.fail_after(DEADLINE):
        async with alice, alice.serve("127.0.0.1", 0) as server, AsyncExitStack() as stack:
            channels = [await stack.enter_async_context(peer.connect(
                "127.0.0.1", server.port, expect=alice.id,
                capability=alice.delegate(to=peer.id, grants=READ))) for peer in peers]
            stalling = True
            answers: list[bytes] = []

            async def ask(channel: Peer) -> None:
                answers.append(await channel.request("reports/x", "read"))

            async with anyio.create_task_group() as group:
                for channel in channels:
                    group.start_soon(ask, channel)
                assert await anyio.to_thread.run_sync(full)  # a thread of its own
                assert inside == STORE_THREADS  # the other two wait for a token
                gate.set()
            assert answers == [b"reports/x"] * len(peers)
    closed(alice)

"""The Agent's request layer against a hostile peer and a careless application: bounds per
peer as well as global, handlers that misbehave, ids reused, requests too large, and what
reaches logs and the application (spec 15)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from support.aio import DEADLINE

from agentauth import Agent, RequestError
from agentauth.agent import Incoming, Peer
from agentauth.capability import Grant

pytestmark = pytest.mark.anyio

ALL = [Grant("**", {"read"})]


class Crash(BaseException):
    """Not an Exception: what a careless handler might still raise."""


class Held:
    """Handlers that wait until released; ``running`` counts those started."""

    def __init__(self) -> None:
        self.running = 0
        self.release = anyio.Event()
        self.changed = anyio.Event()

    async def __call__(self, request: Incoming) -> bytes:
        self.running += 1
        self.changed.set()
        await self.release.wait()
        return b"done"

    async def reach(self, count: int) -> None:
        while self.running < count:
            self.changed = anyio.Event()
            await self.changed.wait()


def make_server(**options: object) -> tuple[Agent, Held]:
    alice, held = Agent.generate(**options), Held()

    @alice.handles("echo/*", "read")
    async def echo(request: Incoming) -> bytes:
        return request.body

    @alice.handles("crash/*", "read")
    async def crash(request: Incoming) -> bytes:
        raise Crash

    @alice.handles("big/*", "read")
    async def big(request: Incoming) -> bytes:
        return b"x" * 1_000_000

    alice.handles("held/*", "read")(held)
    return alice, held


@asynccontextmanager
async def serving(alice: Agent) -> AsyncIterator[int]:
    with anyio.fail_after(DEADLINE):
        async with alice, alice.serve("127.0.0.1", 0) as server:
            yield server.port


@asynccontextmanager
async def channel(alice: Agent, bob: Agent, port: int) -> AsyncIterator[Peer]:
    chain = alice.delegate(to=bob.id, grants=ALL)
    async with bob.connect("127.0.0.1", port, expect=alice.id, capability=chain) as peer:
        yield peer


async def test_a_handler_raising_a_base_exception_fails_its_request_only() -> None:
    alice, _ = make_server()
    bob = Agent.generate()
    async with serving(alice) as port, channel(alice, bob, port) as peer:
        with pytest.raises(RequestError) as caught:
            await peer.request("crash/a", "read")
        assert caught.value.code == "handler_failed"
        assert await peer.request("echo/a", "read", body=b"still") == b"still"
        async with channel(alice, Agent.generate(), port) as other:  # the server lives
            assert await other.request("echo/a", "read", body=b"on") == b"on"

"""The Agent over real loopback TCP, on both anyio backends: requests allowed and refused
by capability, handlers, concurrency, timeouts, cancellation and shutdown (spec 15)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from support.aio import DEADLINE

from agentauth import (
    Agent,
    AgentAuthError,
    CapabilityDenied,
    Identity,
    InvalidState,
    PeerRefused,
    ReplayDetected,
    RequestError,
)
from agentauth.agent import Incoming, Peer
from agentauth.capability import Grant, Range, decode_chain, delegate, encode_chain
from agentauth.stores import MemoryRevocationStore

pytestmark = pytest.mark.anyio

READ = [Grant("reports/**", {"read"}, {"size": Range(0, 100)})]


def make_server(**options: object) -> Agent:
    alice = Agent.generate(**options)

    @alice.handles("reports/**", "read")
    @alice.handles("reports/**", "write")
    @alice.handles("secrets/**", "read")
    async def report(request: Incoming) -> bytes:
        return f"{request.resource} {request.action} {dict(request.args)}".encode() + (
            request.body)

    @alice.handles("boom/**", "read")
    async def boom(request: Incoming) -> bytes:
        raise RuntimeError("a bug in the handler")

    @alice.handles("upstream/**", "read")
    async def upstream(request: Incoming) -> bytes:  # another peer refused this server
        raise PeerRefused("an upstream peer refused", claimed="untrusted_peer")

    return alice


@asynccontextmanager
async def pair(alice: Agent, bob: Agent, chain: bytes | None = None
               ) -> AsyncIterator[Peer]:
    with anyio.fail_after(DEADLINE):
        async with alice, alice.serve("127.0.0.1", 0) as server, bob.connect(
                "127.0.0.1", server.port, expect=alice.id, capability=chain) as peer:
            yield peer


async def test_an_allowed_request_reaches_its_handler() -> None:
    alice, bob = make_server(), Agent.generate()
    chain = alice.delegate(to=bob.id, grants=READ, ttl="1h")
    async with pair(alice, bob, chain) as peer:
        answer = await peer.request("reports/q3", "read", {"size": 50}, body=b"!")
    assert answer == b"reports/q3 read {'size': 50}!"


def _expired(alice: Agent, bob: Agent) -> bytes:
    now = int(time.time())
    return encode_chain([delegate(alice.identity, bob.id, READ, not_before=now - 7200,
                                  expires=now - 3600)])


@pytest.mark.parametrize(("resource", "action", "args", "code", "kind"), [
    ("secrets/a", "read", {"size": 1}, "not_authorized", "resource"),
    ("reports/q3", "write", {"size": 1}, "not_authorized", "action"),
    ("reports/q3", "read", {"size": 500}, "not_authorized", "argument"),
    ("reports/q3", "read", {}, "not_authorized", "missing_argument"),
])
async def test_a_request_outside_the_capability_is_refused(
        resource: str, action: str, args: dict[str, int], code: str, kind: str) -> None:
    alice, bob = make_server(), Agent.generate()
    chain = alice.delegate(to=bob.id, grants=READ)
    async with pair(alice, bob, chain) as peer:
        with pytest.raises(CapabilityDenied) as caught:
            await peer.request(resource, action, args)
        assert caught.value.code == code
        assert caught.value.refusal is not None and caught.value.refusal.kind == kind
        assert await peer.request("reports/q3", "read", {"size": 1}) != b""  # lives on


@pytest.mark.parametrize("case", ["expired", "other_holder", "no_chain", "untrusted_root"])
async def test_a_chain_that_does_not_hold_is_refused(case: str) -> None:
    alice, bob, carol = make_server(), Agent.generate(), Agent.generate()
    chain = {"expired": _expired(alice, bob),
             "other_holder": alice.delegate(to=carol.id, grants=READ),
             "no_chain": None,
             "untrusted_root": carol.delegate(to=bob.id, grants=READ)}[case]
    code, kind = {"expired": ("expired", "window"), "other_holder": ("holder_mismatch",
                  "holder"), "no_chain": ("not_authorized", "no_chain"),
                  "untrusted_root": ("untrusted_root", "anchor")}[case]
    async with pair(alice, bob, chain) as peer:
        with pytest.raises(CapabilityDenied) as caught:
            await peer.request("reports/q3", "read", {"size": 1})
    assert caught.value.code == code
    assert caught.value.refusal is not None and caught.value.refusal.kind == kind


async def test_a_chain_revoked_mid_channel_is_refused_at_its_next_use() -> None:
    alice, bob = make_server(), Agent.generate()
    chain = alice.delegate(to=bob.id, grants=READ)
    async with pair(alice, bob, chain) as peer:
        await peer.request("reports/q3", "read", {"size": 1})
        alice.revoke(chain)
        with pytest.raises(CapabilityDenied) as caught:
            await peer.request("reports/q3", "read", {"size": 1})
    assert caught.value.code == "revoked"
    assert caught.value.refusal is not None and caught.value.refusal.kind == "revoked"


async def test_revocations_travel_when_a_channel_opens() -> None:
    alice, bob = make_server(), Agent.generate()
    chain = alice.delegate(to=bob.id, grants=READ)
    link_id = decode_chain(chain)[-1].id
    bob.revocations = MemoryRevocationStore(alice.anchors)  # bob's store knows alice's roots
    alice.revoke(chain)
    async with pair(alice, bob, chain):
        pass
    assert bob.revocations.is_revoked(link_id) is True


async def test_no_handler_and_a_failing_handler_are_typed_and_the_channel_lives() -> None:
    alice, bob = make_server(), Agent.generate()
    chain = alice.delegate(to=bob.id, grants=[Grant("**", {"read"})])
    async with pair(alice, bob, chain) as peer:
        with pytest.raises(RequestError) as caught:
            await peer.request("nowhere/x", "read")
        assert caught.value.code == "no_handler"
        with pytest.raises(RequestError) as caught:
            await peer.request("boom/x", "read")
        assert caught.value.code == "handler_failed"
        assert "a bug" not in str(caught.value)  # the peer is not told the handler's text
        with pytest.raises(RequestError) as caught:  # not relayed as this server's refusal
            await peer.request("upstream/x", "read")
        assert caught.value.code == "handler_failed"
        assert await peer.request("reports/q3", "read") == b"reports/q3 read {}"


async def test_a_thousand_concurrent_requests_are_all_answered_none_crossed() -> None:
    alice, bob = make_server(), Agent.generate()

    @alice.handles("echo/*", "read")
    async def echo(request: Incoming) -> bytes:
        await anyio.sleep(0)  # let the others interleave
        return request.resource.encode() + request.body

    chain = alice.delegate(to=bob.id, grants=[Grant("echo/*", {"read"})])
    answers: dict[int, bytes] = {}
    async with pair(alice, bob, chain) as peer:
        async def one(n: int) -> None:
            answers[n] = await peer.request(f"echo/{n}", "read", body=str(n * 7).encode())

        async with anyio.create_task_group() as group:
            for n in range(1000):
                group.start_soon(one, n)
    assert answers == {n: f"echo/{n}{n * 7}".encode() for n in range(1000)}


class Gate:
    """A handler that waits until released, and says when it started and ended."""

    def __init__(self) -> None:
        self.started, self.release, self.cancelled = anyio.Event(), anyio.Event(), False
        self.ended = anyio.Event()

    async def __call__(self, request: Incoming) -> bytes:
        self.started.set()
        try:
            await self.release.wait()
            return b"done"
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        finally:
            self.ended.set()


async def test_a_timeout_cancels_the_handler_at_the_serving_side() -> None:
    alice, bob, gate = make_server(), Agent.generate(), Gate()
    alice.handles("slow/*", "read")(gate)
    chain = alice.delegate(to=bob.id, grants=[Grant("**", {"read"})])
    async with pair(alice, bob, chain) as peer:
        with pytest.raises(RequestError) as caught:
            await peer.request("slow/a", "read", timeout=0.2)
        assert caught.value.code == "request_timeout"
        with anyio.fail_after(2):
            await gate.ended.wait()
        assert gate.cancelled
        assert await peer.request("reports/q3", "read") == b"reports/q3 read {}"


async def test_cancelling_the_caller_cancels_the_handler() -> None:
    alice, bob, gate = make_server(), Agent.generate(), Gate()
    alice.handles("slow/*", "read")(gate)
    chain = alice.delegate(to=bob.id, grants=[Grant("**", {"read"})])
    async with pair(alice, bob, chain) as peer:
        async with anyio.create_task_group() as group:
            group.start_soon(peer.request, "slow/a", "read")
            await gate.started.wait()
            group.cancel_scope.cancel()
        with anyio.fail_after(2):
            await gate.ended.wait()
        assert gate.cancelled


async def test_closing_lets_requests_in_flight_finish() -> None:
    alice, bob, gate = make_server(), Agent.generate(), Gate()
    alice.handles("slow/*", "read")(gate)
    chain = alice.delegate(to=bob.id, grants=[Grant("**", {"read"})])
    answers: list[bytes] = []
    with anyio.fail_after(DEADLINE):
        async with alice.serve("127.0.0.1", 0) as server, bob.connect(
                "127.0.0.1", server.port, expect=alice.id, capability=chain) as peer, (
                anyio.create_task_group()) as group:
            async def ask() -> None:
                answers.append(await peer.request("slow/a", "read"))
            group.start_soon(ask)
            await gate.started.wait()
            group.start_soon(server.aclose)
            gate.release.set()
    assert answers == [b"done"]
    assert not gate.cancelled


async def test_closing_past_the_drain_timeout_cancels_and_tells_the_peer() -> None:
    alice, bob, gate = make_server(drain_timeout=0.2), Agent.generate(), Gate()
    alice.handles("slow/*", "read")(gate)
    chain = alice.delegate(to=bob.id, grants=[Grant("**", {"read"})])
    with anyio.fail_after(DEADLINE):
        async with alice.serve("127.0.0.1", 0) as server, bob.connect(
                "127.0.0.1", server.port, expect=alice.id, capability=chain) as peer, (
                anyio.create_task_group()) as group:
            group.start_soon(server.aclose)
            with pytest.raises(RequestError) as caught:
                await peer.request("slow/a", "read")
    assert caught.value.code == "shutting_down"
    assert gate.cancelled or not gate.started.is_set()


async def test_a_chain_presented_on_one_channel_is_nothing_on_another() -> None:
    alice, bob, carol = make_server(), Agent.generate(), Agent.generate()
    chain = alice.delegate(to=bob.id, grants=READ)
    with anyio.fail_after(DEADLINE):
        async with alice.serve("127.0.0.1", 0) as server, bob.connect(
                "127.0.0.1", server.port, expect=alice.id, capability=chain) as first:
            assert first.default == 1
            await first.request("reports/q3", "read", {"size": 1})
            for agent in (bob, carol):  # another channel: of the holder, or of another
                async with agent.connect("127.0.0.1", server.port, expect=alice.id) as other:
                    other.default = 1  # name the reference without presenting it
                    with pytest.raises(RequestError) as caught:
                        await other.request("reports/q3", "read", {"size": 1})
                    assert caught.value.code == "unknown_chain"


async def test_trust_limits_who_may_open_a_channel() -> None:
    bob = Agent.generate()
    alice = make_server(trust=[Identity.generate().agent_id])
    with anyio.fail_after(DEADLINE):
        async with alice.serve("127.0.0.1", 0) as server:
            with pytest.raises(AgentAuthError):  # the responder refused bob at HS3
                async with bob.connect("127.0.0.1", server.port, expect=alice.id):
                    pass


async def test_envelopes_open_once() -> None:
    alice, bob = Agent.generate(), Agent.generate()
    sealed = bob.seal(to=alice.id, body=b"for your queue")
    opened = await alice.open(sealed)
    assert opened.payload == b"for your queue"
    with pytest.raises(ReplayDetected):
        await alice.open(sealed)


async def test_a_handler_open_without_capability_serves_trusted_peers_only() -> None:
    bob = Agent.generate()
    alice = make_server(trust=[bob.id])

    @alice.handles("health", "read", capability=False)
    async def health(request: Incoming) -> bytes:
        return b"ok"

    async with pair(alice, bob) as peer:
        assert await peer.request("health", "read") == b"ok"
        with pytest.raises(CapabilityDenied) as caught:
            await peer.request("reports/q3", "read", {"size": 1})
        assert caught.value.code == "not_authorized"
    careless = make_server()  # trusts any peer: an open handler would be open to all
    careless.handles("health", "read", capability=False)(health)
    with pytest.raises(InvalidState):
        async with careless.serve("127.0.0.1", 0):
            pass


async def test_a_broken_frame_ends_its_channel_only() -> None:
    alice, bob = make_server(), Agent.generate()
    chain = alice.delegate(to=bob.id, grants=READ)
    with anyio.fail_after(DEADLINE):
        async with alice.serve("127.0.0.1", 0) as server:
            async with bob.connect("127.0.0.1", server.port, expect=alice.id,
                                   capability=chain) as peer:
                await peer.channel.send(b"\x93not a frame")
                with pytest.raises(AgentAuthError):  # the server closed this channel
                    await peer.request("reports/q3", "read", {"size": 1})
            async with bob.connect("127.0.0.1", server.port, expect=alice.id,
                                   capability=chain) as peer:
                assert await peer.request("reports/q3", "read", {"size": 1})

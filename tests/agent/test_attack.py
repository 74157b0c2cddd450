"""The Agent's request layer against a hostile peer and a careless application: bounds per
peer as well as global, handlers that misbehave, ids reused, requests too large, and what
reaches logs and the application (spec 15)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import SocketAttribute
from support.aio import DEADLINE

from agentauth import (
    Agent,
    AgentAuthError,
    AgentAuthStream,
    InvalidArgument,
    InvalidState,
    RequestError,
    wire,
)
from agentauth.agent import Incoming, Peer
from agentauth.agent.frames import (
    ERROR,
    REQUEST,
    RESPONSE,
    Frame,
    decode_frame,
    encode_cancel,
    encode_present,
    encode_request,
    encode_response,
    error_from_frame,
)
from agentauth.aio import connect, create_listener, exchange_revocations
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


async def test_one_peer_holds_at_most_its_channels_and_others_still_connect() -> None:
    alice, _ = make_server(max_channels_per_peer=2, max_channels=3)
    bob, carol, dave = Agent.generate(), Agent.generate(), Agent.generate()
    async with serving(alice) as port, channel(alice, bob, port) as one, channel(
            alice, bob, port) as two:
        with pytest.raises(AgentAuthError):  # a third from the same key is closed
            async with channel(alice, bob, port) as three:
                await three.request("echo/a", "read")
        async with channel(alice, carol, port) as other:
            assert await other.request("echo/a", "read", body=b"c") == b"c"
            with pytest.raises(AgentAuthError):  # the global bound
                async with channel(alice, dave, port) as fourth:
                    await fourth.request("echo/a", "read")
        assert await one.request("echo/a", "read", body=b"1") == b"1"
        assert await two.request("echo/a", "read", body=b"2") == b"2"
    async with serving(alice) as port, channel(alice, bob, port) as again:  # released
        assert await again.request("echo/a", "read", body=b"3") == b"3"


async def test_one_peer_runs_at_most_its_handlers_across_its_channels() -> None:
    alice, held = make_server(max_handlers_per_peer=2, max_handlers=3)
    bob, carol = Agent.generate(), Agent.generate()
    async with serving(alice) as port, channel(alice, bob, port) as one, channel(
            alice, bob, port) as two, channel(alice, carol, port) as other, (
            anyio.create_task_group()) as group:
        group.start_soon(one.request, "held/a", "read")
        group.start_soon(two.request, "held/a", "read")
        await held.reach(2)
        with pytest.raises(RequestError) as caught:  # bob's third, on either channel
            await two.request("held/a", "read")
        assert caught.value.code == "over_limit"
        group.start_soon(other.request, "held/a", "read")  # carol still has room
        await held.reach(3)
        with pytest.raises(RequestError) as caught:  # now the global bound
            await other.request("held/a", "read")
        assert caught.value.code == "over_limit"
        held.release.set()
    assert held.running == 3


async def test_a_bad_request_is_the_callers_error_and_the_channel_lives() -> None:
    alice, _ = make_server()
    bob = Agent.generate()
    async with serving(alice) as port, channel(alice, bob, port) as peer:
        for resource, action, args in [
                (None, "read", {}), ("", "read", {}), ("echo/a", "READ ME", {}),
                ("echo/a", "read", {"n": 2**64}), ("echo/a", "read", {"n": -(2**63) - 1}),
                ("echo/a", "read", {"n": 1.5}), ("echo/a", "read", [("n", 1)])]:
            with pytest.raises(InvalidArgument):
                await peer.request(resource, action, args)  # type: ignore[arg-type]
        assert await peer.request("echo/a", "read", {"n": 2**64 - 1}) == b""


async def test_a_request_too_large_for_one_message_is_refused_before_sending() -> None:
    alice, _ = make_server()
    bob = Agent.generate()
    async with serving(alice) as port, channel(alice, bob, port) as peer:
        body = b"b" * (peer.channel.max_payload - 16_384)  # the largest body
        args = {f"a{n}": "v" * 1000 for n in range(20)}  # and 20 kB of arguments
        with pytest.raises(InvalidArgument):
            await peer.request("echo/a", "read", args, body=body)
        assert await peer.request("echo/a", "read", body=body) == body


async def test_an_id_reused_once_answered_can_still_be_cancelled() -> None:
    """The server frees an id before its answer is written; a peer that reuses it at once
    must not lose the new request's cancellation when the old answer's write ends."""
    alice, held = make_server()
    bob = Agent.generate()
    chain = alice.delegate(to=bob.id, grants=ALL)
    cancelled = anyio.Event()

    @alice.handles("hang/*", "read")
    async def hang(request: Incoming) -> bytes:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        return b""  # pragma: no cover

    async with serving(alice) as port:
        raw = await connect("127.0.0.1", port, bob.identity, expect=alice.id)
        async with raw:
            await exchange_revocations(raw, bob.revocations)
            await raw.send(encode_present(1, chain))
            # Twenty answers of 1 MB nobody reads: the server's writes stop on a full
            # socket, each id already released.
            for n in range(1, 21):
                await raw.send(encode_request(n, "big/a", "read", {}, b"", 1))
            await raw.send(encode_request(21, "held/a", "read", {}, b"", 1))
            await held.reach(1)
            await raw.send(encode_request(20, "hang/a", "read", {}, b"", 1))  # reused
            answered = 0
            while answered < 20:  # the old answers drain, 20 among them
                frame = decode_frame(await raw.receive(), raw.max_payload)
                answered += frame.kind == RESPONSE and frame.body[:1] == b"x"
            await raw.send(encode_cancel(20))  # the new request 20
            await cancelled.wait()
            held.release.set()


@pytest.mark.parametrize("options", [
    {"max_channels": 0}, {"max_handlers_per_peer": True}, {"max_channels_per_peer": 1.5},
    {"max_channels": 4, "max_channels_per_peer": 5},
    {"max_handlers": 4, "max_handlers_per_peer": 5}])
def test_bounds_are_positive_integers_per_peer_within_global(options: dict[str, object]
                                                             ) -> None:
    with pytest.raises(InvalidArgument):
        Agent.generate(**options)


def test_reprs_show_neither_bodies_nor_chains() -> None:
    alice, bob = Agent.generate(), Agent.generate()
    chain = alice.delegate(to=bob.id, grants=ALL)
    present = decode_frame(encode_present(1, chain), 1 << 20)
    request = decode_frame(encode_request(1, "echo/a", "read", {}, b"SECRET-BODY", 1), 1 << 20)
    incoming = Incoming(bob.id, "echo/a", "read", {}, b"SECRET-BODY", ())
    for thing in (present, request, incoming):
        text = repr(thing)
        assert "SECRET" not in text and repr(chain)[2:40] not in text


def test_an_error_reason_reaches_the_application_without_control_characters() -> None:
    frame = wire.encode_map(ERROR, 7, "over_limit", "busy\nFORGED LOG LINE\x1b[2J", {})
    error = error_from_frame(decode_frame(frame, 1 << 20))
    assert isinstance(error, RequestError) and error.code == "over_limit"
    assert "\n" not in str(error) and "\x1b" not in str(error)
    assert "busy?FORGED LOG LINE?[2J" in str(error)


@asynccontextmanager
async def hostile_server(alice: Agent, answer: Callable[[AgentAuthStream, Frame], Awaitable[None]]
                         ) -> AsyncIterator[int]:
    """A server that answers each REQUEST with ``answer``, however it likes."""
    listener = await create_listener("127.0.0.1", 0, alice.identity, alice.policy)

    async def one(raw: AgentAuthStream) -> None:
        await exchange_revocations(raw, alice.revocations)
        while True:
            frame = decode_frame(await raw.receive(), raw.max_payload)
            if frame.kind == REQUEST:
                await answer(raw, frame)

    with anyio.fail_after(DEADLINE):
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, one)
            yield listener.extra(SocketAttribute.local_port)
            group.cancel_scope.cancel()


async def test_a_requester_keeps_only_answers_it_awaits_and_typed_errors() -> None:
    alice, bob = Agent.generate(), Agent.generate()

    async def answer(raw: AgentAuthStream, frame: Frame) -> None:
        if frame.resource == "twice/a":  # an id never asked, then the answer twice
            await raw.send(encode_response(frame.id + 1000, b"stray"))
            await raw.send(encode_response(frame.id, b"first"))
            await raw.send(encode_response(frame.id, b"second"))
        elif frame.resource == "local/a":  # a code no server sends
            await raw.send(wire.encode_map(ERROR, frame.id, "invalid_state", "x", {}))
        else:  # a code outside the registry, and a reason past its bound
            await raw.send(wire.encode_map(ERROR, frame.id, "no_such_code", "x" * 9999, {}))

    async with hostile_server(alice, answer) as port, bob.connect(
            "127.0.0.1", port, expect=alice.id) as peer:
        assert await peer.request("twice/a", "read") == b"first"
        assert await peer.request("twice/a", "read") == b"first"  # "second" was dropped
        with pytest.raises(AgentAuthError) as caught:
            await peer.request("local/a", "read")
        assert caught.value.code == "malformed"
        with pytest.raises(AgentAuthError) as caught:  # the frame is broken: the end
            await peer.request("huge/a", "read")
        assert caught.value.code == "malformed" and len(str(caught.value)) < 600
        with pytest.raises(AgentAuthError):
            await peer.request("twice/a", "read")


async def test_a_closed_peer_and_a_bad_capability_raise_typed_errors() -> None:
    alice, _ = make_server()
    bob = Agent.generate()
    async with serving(alice) as port:
        async with channel(alice, bob, port) as peer:
            for capability in ("a chain", [1, 2], [], 7):
                with pytest.raises(InvalidArgument):
                    await peer.request("echo/a", "read", capability=capability)  # type: ignore[arg-type]
            assert await peer.request("echo/a", "read", body=b"ok") == b"ok"
        with pytest.raises(InvalidState):  # its block ended: not an anyio error
            await peer.request("echo/a", "read")
        with pytest.raises(InvalidState):
            await peer.present(alice.delegate(to=bob.id, grants=ALL))


def test_a_plain_function_is_refused_as_a_handler_when_declared() -> None:
    alice = Agent.generate()

    def sync(request: Incoming) -> bytes:
        return b""  # pragma: no cover

    with pytest.raises(InvalidArgument):
        alice.handles("echo/*", "read")(sync)  # type: ignore[arg-type]


async def test_a_handler_returning_no_bytes_fails_loudly(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    alice, _ = make_server()
    bob = Agent.generate()

    @alice.handles("none/*", "read")
    async def forgot(request: Incoming) -> bytes:
        request.body.upper()  # and no return
        return None  # type: ignore[return-value]

    caplog.set_level(logging.INFO, "agentauth.agent")
    async with serving(alice) as port, channel(alice, bob, port) as peer:
        with pytest.raises(RequestError) as caught:
            await peer.request("none/a", "read", body=b"private")
        assert caught.value.code == "handler_failed"
    [record] = [r for r in caplog.records if "NoneType" in r.getMessage()]
    assert record.levelno == logging.ERROR and "private" not in record.getMessage()


async def test_texts_that_are_not_valid_unicode_neither_escape_nor_end_the_channel() -> None:
    alice, _ = make_server()
    bob = Agent.generate()

    @alice.handles("odd/*", "read")
    async def odd(request: Incoming) -> bytes:  # a file name decoded with surrogateescape
        name = b"caf\xe9".decode(errors="surrogateescape")
        raise RequestError(f"no file {name}", code="no_handler")

    async with serving(alice) as port, channel(alice, bob, port) as peer:
        with pytest.raises(RequestError) as caught:
            await peer.request("odd/a", "read")
        assert caught.value.code == "no_handler" and "no file caf?" in str(caught.value)
        with pytest.raises(InvalidArgument):
            await peer.request("echo/a", "read", {"name": "caf\udce9"})
        assert await peer.request("echo/a", "read", body=b"on") == b"on"


async def test_a_present_cancelled_before_it_was_sent_is_sent_again() -> None:
    alice, _ = make_server()
    bob = Agent.generate()
    chain = alice.delegate(to=bob.id, grants=ALL)
    async with serving(alice) as port, bob.connect("127.0.0.1", port,
                                                   expect=alice.id) as peer:
        with anyio.move_on_after(0):  # the caller gives up before the frame goes out
            await peer.present(chain)
        assert await peer.request("echo/a", "read", body=b"x", capability=chain) == b"x"


@pytest.mark.parametrize("answer", [1, "yes", None, [True]])
async def test_a_trust_callable_admits_only_on_exactly_true(answer: object) -> None:
    bob = Agent.generate()
    alice, _ = make_server(trust=lambda peer: answer)
    sealed = bob.seal(alice.id, b"hello")
    with pytest.raises(AgentAuthError):
        await alice.open(sealed)
    async with serving(alice) as port:
        with pytest.raises(AgentAuthError):
            async with channel(alice, bob, port) as peer:
                await peer.request("echo/a", "read")
    admitting, _ = make_server(trust=lambda peer: True)
    assert (await admitting.open(bob.seal(admitting.id, b"hello"))).payload == b"hello"

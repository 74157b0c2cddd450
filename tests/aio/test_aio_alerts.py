"""A refused peer hears why within one round trip (spec 4.14): over real TCP on
127.0.0.1 and over a message transport, on asyncio and on trio. Every handshake here has
the default 30 s timeout and each test a deadline far below it, so an answer that only a
timeout would give fails the test."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from anyio.abc import ObjectStream, SocketAttribute, SocketListener, SocketStream
from support import ALICE, BOB, CAROL, raises
from support.aio import memory_pair, trusting

from agentauth import (
    AgentAuthError,
    AgentAuthMessageStream,
    AgentAuthStream,
    Identity,
    Initiator,
    PeerRefused,
    TransportError,
    connect,
    create_listener,
    wire,
)
from agentauth.aio.stream import _frame
from agentauth.alert import encode_alert
from agentauth.audit import AUDIT_LOGGER

pytestmark = pytest.mark.anyio

#: Far below the 30 s handshake timeout: one round trip on loopback takes milliseconds.
ONE_TRIP = 2.0
HS1_OFFERING_2 = bytes(range(32)) + wire.encode_map([2])


@asynccontextmanager
async def tcp() -> AsyncIterator[tuple[SocketStream, SocketStream]]:
    """A real TCP connection on 127.0.0.1: (client's end, server's end)."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        (one,) = listener.listeners
        assert isinstance(one, SocketListener)
        client = await anyio.connect_tcp("127.0.0.1", one.extra(SocketAttribute.local_port))
        server = await one.accept()
        async with client, server:
            yield client, server


Wrap = Callable[..., Awaitable[Any]]


async def outcome(step: Callable[[], Awaitable[Any]], out: dict[str, Any], key: str
                  ) -> None:
    try:
        out[key] = await step()
    except AgentAuthError as exc:
        out[key] = exc


async def handshake(wrap: Wrap, left: Any, right: Any, *, client: Identity = ALICE,
                    server_trusts: Identity = ALICE, expect: Identity = BOB
                    ) -> dict[str, Any]:
    """Both sides at once; what each ended with (its channel or its error)."""
    out: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(outcome, lambda: wrap(right, BOB, trusting(server_trusts),
                                            initiator=False), out, "server")
        tg.start_soon(outcome, lambda: wrap(left, client, trusting(BOB), initiator=True,
                                            expect=expect.agent_id), out, "client")
    return out


def claimed(error: object) -> str | None:
    assert isinstance(error, PeerRefused), error
    return error.claimed


WRAPS = [AgentAuthStream.wrap, AgentAuthMessageStream.wrap]


async def test_over_tcp_a_refused_client_hears_the_servers_code() -> None:
    with anyio.fail_after(ONE_TRIP):
        async with tcp() as (left, right):
            out = await handshake(AgentAuthStream.wrap, left, right, server_trusts=CAROL)
            assert getattr(out["server"], "code", None) == "untrusted_peer"  # as before
            client = out["client"]  # done at HS3: the refusal comes as its first message
            with raises("peer_refused") as info:
                await client.receive()
            assert claimed(info.value) == "untrusted_peer"
            with raises("peer_refused") as info:  # the channel has ended, claim and all
                await client.send(b"anyone?")
            assert claimed(info.value) == "untrusted_peer"
            await client.aclose()


async def test_over_tcp_a_refused_server_hears_the_clients_code() -> None:
    with anyio.fail_after(ONE_TRIP):
        async with tcp() as (left, right):
            out = await handshake(AgentAuthStream.wrap, left, right, expect=CAROL)
            assert getattr(out["client"], "code", None) == "unexpected_peer"
            assert claimed(out["server"]) == "unexpected_peer"


async def test_a_message_transport_carries_both_refusals() -> None:
    with anyio.fail_after(ONE_TRIP):
        out = await handshake(AgentAuthMessageStream.wrap, *memory_pair(),
                              server_trusts=CAROL)
        assert getattr(out["server"], "code", None) == "untrusted_peer"
        with raises("peer_refused") as info:  # not a wait for the handshake timeout
            await out["client"].receive()
        assert claimed(info.value) == "untrusted_peer"
        with raises("peer_refused"):  # ended, although a message transport's
            await out["client"].receive()  # rejected items usually leave it usable
        await out["client"].aclose()
        out = await handshake(AgentAuthMessageStream.wrap, *memory_pair(), expect=CAROL)
        assert getattr(out["client"], "code", None) == "unexpected_peer"
        assert claimed(out["server"]) == "unexpected_peer"


async def test_no_common_version_over_tcp_and_a_message_transport() -> None:
    with anyio.fail_after(ONE_TRIP):
        async with tcp() as (left, right):
            out: dict[str, Any] = {}
            async with anyio.create_task_group() as tg:
                tg.start_soon(outcome, lambda: AgentAuthStream.wrap(
                    right, BOB, trusting(ALICE), initiator=False), out, "server")
                await left.send(_frame(HS1_OFFERING_2))
                answer = b""
                with pytest.raises(anyio.EndOfStream):  # the alert, then the end
                    while True:
                        answer += await left.receive()
            assert answer == _frame(encode_alert("no_common_version"))
            assert getattr(out["server"], "code", None) == "no_common_version"
        ours, theirs = memory_pair()
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome, lambda: AgentAuthMessageStream.wrap(
                theirs, BOB, trusting(ALICE), initiator=False), out, "server")
            await ours.send(HS1_OFFERING_2)
            assert await ours.receive() == encode_alert("no_common_version")
        assert getattr(out["server"], "code", None) == "no_common_version"


@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize(("alert", "code"), [
    (encode_alert("no_common_version"), "peer_refused"),
    (wire.encode_map(2, "untrusted_peer"), "malformed"),  # an unknown version
    (wire.encode_map(1, "no_such_code"), "malformed"),  # an unknown code
    (wire.encode_map(1, "untrusted_peer", 0), "unknown_field"),  # a bad form
])
async def test_an_alert_in_place_of_hs2_is_read_strictly_and_never_answered(
        wrap: Wrap, alert: bytes, code: str) -> None:
    with anyio.fail_after(ONE_TRIP):
        ours, theirs = memory_pair()
        framed = wrap == AgentAuthStream.wrap
        async with anyio.create_task_group() as tg:
            out: dict[str, Any] = {}
            tg.start_soon(outcome, lambda: wrap(theirs, ALICE, trusting(BOB),
                                                initiator=True, expect=BOB.agent_id),
                          out, "client")
            await ours.receive()  # HS1
            await ours.send(_frame(alert) if framed else alert)
        with raises(code):
            raise out["client"]
        with pytest.raises(anyio.EndOfStream):  # closed, with nothing said in answer
            await ours.receive()


@pytest.mark.parametrize("wrap", WRAPS)
async def test_an_alert_where_none_can_come(wrap: Wrap) -> None:
    framed = wrap == AgentAuthStream.wrap
    alert = encode_alert("untrusted_peer")
    with anyio.fail_after(ONE_TRIP):
        # In place of HS1: a malformed HS1, and no alert in answer.
        ours, theirs = memory_pair()
        out: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome, lambda: wrap(theirs, BOB, trusting(ALICE),
                                                initiator=False), out, "server")
            await ours.send(_frame(alert) if framed else alert)
        with raises("malformed"):
            raise out["server"]
        with pytest.raises(anyio.EndOfStream):
            await ours.receive()
        # After the first session message, at the initiator; and at the responder at
        # any time after the handshake: a malformed session message.
        left, right = memory_pair()
        out = await handshake(wrap, left, right)
        client, server = out["client"], out["server"]
        await server.send(b"welcome")
        assert await client.receive() == b"welcome"
        await right.send(_frame(alert) if framed else alert)  # as if from the server
        with raises("malformed"):
            await client.receive()
        await left.send(_frame(alert) if framed else alert)  # as if from the client
        with raises("malformed"):
            await server.receive()
        if not framed:  # a message transport's rejected item leaves it usable
            await server.send(b"still here")
            assert await client.receive() == b"still here"
        await client.aclose()
        await server.aclose()


async def test_a_handshake_that_times_out_tells_a_peer_it_heard_from() -> None:
    with anyio.fail_after(ONE_TRIP):
        ours, theirs = memory_pair()
        out: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome, lambda: AgentAuthMessageStream.wrap(
                theirs, BOB, trusting(ALICE), initiator=False, handshake_timeout=0.2),
                out, "server")
            # HS1 from a real engine, then silence where HS3 should come.
            await ours.send(Initiator(ALICE, trusting(BOB)).start())
            await ours.receive()  # HS2
            assert await ours.receive() == encode_alert("handshake_timeout")
        with raises("handshake_timeout"):
            raise out["server"]


async def test_a_frame_over_the_limit_is_answered_like_a_step_would() -> None:
    # The length is refused before the frame is read (5.10): the engine fails with
    # oversize, and the peer, heard from, is told so.
    with anyio.fail_after(ONE_TRIP):
        async with tcp() as (left, right):
            out: dict[str, Any] = {}
            async with anyio.create_task_group() as tg:
                tg.start_soon(outcome, lambda: AgentAuthStream.wrap(
                    right, BOB, trusting(ALICE), initiator=False), out, "server")
                await left.send((70_000).to_bytes(4, "big"))
                answer = b""
                with pytest.raises(anyio.EndOfStream):
                    while True:
                        answer += await left.receive()
            assert answer == _frame(encode_alert("oversize"))
            assert getattr(out["server"], "code", None) == "oversize"


async def test_a_client_that_speaks_first_still_hears_why() -> None:
    # Through the public API: the client sends at once after HS3; the server, which
    # refused it, closes with that message unread; the alert still comes first.
    with anyio.fail_after(ONE_TRIP):
        listener = await create_listener("127.0.0.1", 0, BOB, trusting(CAROL))
        port = listener.extra(SocketAttribute.local_port)

        async def never(channel: AgentAuthStream) -> None:
            raise AssertionError("no channel is established")

        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, never)
            client = await connect("127.0.0.1", port, ALICE, expect=BOB.agent_id)
            with contextlib.suppress(AgentAuthError):  # it may already be gone
                await client.send(b"hello?")
            with raises("peer_refused") as info:
                await client.receive()
            assert claimed(info.value) == "untrusted_peer"
            await client.aclose()
            while listener.failed < 1:  # the server counted its own refusal, as before
                await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()


@pytest.fixture
def refusals() -> Iterator[list[dict[str, Any]]]:
    """The handshake_refused audit events written while the test runs."""
    found: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            event = getattr(record, "audit", {})
            if event.get("event") == "handshake_refused":
                found.append(event)

    logger = logging.getLogger(AUDIT_LOGGER)
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield found
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@dataclass
class FailsAfterFirst(ObjectStream[bytes]):
    """Sends its first item, then raises ``error`` on every send; records its close."""

    inner: ObjectStream[bytes]
    error: Exception
    sent: int = 0
    closed: bool = False

    async def send(self, item: bytes) -> None:
        self.sent += 1
        if self.sent > 1:
            raise self.error
        await self.inner.send(item)

    async def receive(self) -> bytes:
        return await self.inner.receive()

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> dict[Any, Callable[[], Any]]:
        return {}


@pytest.mark.parametrize("error", [
    TransportError("the inner channel ended", code="connection_lost"),
    anyio.EndOfStream(), RuntimeError("a transport's own bug"), OSError("broken pipe"),
], ids=lambda e: type(e).__name__)
async def test_an_alert_that_cannot_go_leaves_the_handshakes_error(
        error: Exception) -> None:
    # The alert is a last word like CLOSE: whatever its send raises is dropped, the
    # handshake's own failure is what the caller gets, and the transport is closed.
    with anyio.fail_after(ONE_TRIP):
        ours, theirs = memory_pair()
        transport = FailsAfterFirst(theirs, error)
        out: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome, lambda: AgentAuthMessageStream.wrap(
                transport, ALICE, trusting(BOB), initiator=True, expect=BOB.agent_id),
                out, "client")
            await ours.receive()  # HS1
            await ours.send(bytes(40))  # no HS2: the client fails with malformed
        with raises("malformed"):
            raise out["client"]
        assert transport.sent == 2  # the alert was tried
        assert transport.closed


async def test_a_connection_closed_before_hs1_is_no_refusal(
        refusals: list[dict[str, Any]]) -> None:
    # A dropped connection is no decision about a peer: no alert, no audit event.
    with anyio.fail_after(ONE_TRIP):
        async with tcp() as (left, right):
            out: dict[str, Any] = {}
            async with anyio.create_task_group() as tg:
                tg.start_soon(outcome, lambda: AgentAuthStream.wrap(
                    right, BOB, trusting(ALICE), initiator=False), out, "server")
                await left.aclose()
        with raises("unexpected_eof"):
            raise out["server"]
        assert refusals == []
        # A frame over the limit still is one (spec 4.14).
        async with tcp() as (left, right), anyio.create_task_group() as tg:
            tg.start_soon(outcome, lambda: AgentAuthStream.wrap(
                right, BOB, trusting(ALICE), initiator=False), out, "server")
            await left.send((70_000).to_bytes(4, "big"))
        assert [r["code"] for r in refusals] == ["oversize"]


async def test_a_late_alert_on_a_message_transport_is_only_a_rejected_message(
        refusals: list[dict[str, Any]]) -> None:
    # One-way traffic: the initiator never accepts a session message. Past the handshake
    # timeout from DONE, an injected alert-sized item is a malformed session message,
    # which leaves a message transport's channel usable (5.5, 5.10).
    with anyio.fail_after(ONE_TRIP):
        left, right = memory_pair()
        out: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome, lambda: AgentAuthMessageStream.wrap(
                right, BOB, trusting(ALICE), initiator=False), out, "server")
            tg.start_soon(outcome, lambda: AgentAuthMessageStream.wrap(
                left, ALICE, trusting(BOB), initiator=True, expect=BOB.agent_id,
                handshake_timeout=0.3), out, "client")
        client, server = out["client"], out["server"]
        await client.send(b"one way")
        assert await server.receive() == b"one way"
        await anyio.sleep(0.35)  # the window's length passes: no event marks its end
        await right.send(encode_alert("revoked"))  # as if from the server
        with raises("malformed"):
            await client.receive()
        await client.send(b"still here")
        assert await server.receive() == b"still here"
        await server.send(b"and here")
        assert await client.receive() == b"and here"
        assert refusals == []
        await client.aclose()
        await server.aclose()


async def test_a_refusal_after_done_names_no_peer(refusals: list[dict[str, Any]]
                                                  ) -> None:
    # The alert is not authenticated: its event must not read as the verified peer's.
    with anyio.fail_after(ONE_TRIP):
        out = await handshake(AgentAuthMessageStream.wrap, *memory_pair(),
                              server_trusts=CAROL)
        with raises("peer_refused"):
            await out["client"].receive()
        await out["client"].aclose()
        assert {"event": "handshake_refused", "role": "initiator", "code": "peer_refused",
                "claimed": "untrusted_peer"} in refusals
        assert all("peer" not in r for r in refusals if r["role"] == "initiator")

"""Time limits, stuck peers, cancellation and closing from another task, on both channel
kinds and both backends. The pacing sleeps below drive the clocks under test; nothing
waits on a sleep to synchronise."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute
from support import ALICE, BOB, MALLORY, raises
from support.aio import DEADLINE, both, memory_pair, message_pair, stream_pair, trusting

from agentauth import (
    AgentAuthMessageStream,
    AgentAuthStream,
    HandshakePolicy,
    PeerKey,
    PeerRefused,
    connect,
    create_listener,
)
from agentauth.aio._channel import Channel

pytestmark = pytest.mark.anyio

BIG = bytes(1 << 20)


async def tcp_pair(**r_options: object) -> tuple[AgentAuthStream, AgentAuthStream]:
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = multi.extra(SocketAttribute.local_port)
    async with multi:
        client = await anyio.connect_tcp("127.0.0.1", port)
        server = await multi.listeners[0].accept()  # type: ignore[attr-defined]
    return await stream_pair(client, server, r_options=dict(r_options))


async def test_a_send_to_a_peer_that_never_reads_ends_at_the_lifetime() -> None:
    with anyio.fail_after(DEADLINE):
        a, b = await tcp_pair(max_lifetime=0.5)
        with raises("lifetime_exceeded"):
            while True:
                await b.send(BIG)  # a never reads: the socket buffers fill, send blocks
        await a.aclose()
        await b.aclose()


async def test_aclose_and_expiry_while_a_send_is_stuck() -> None:
    with anyio.fail_after(DEADLINE):
        a, b = await tcp_pair(idle_timeout=0.5)
        errors: list[str] = []

        async def stuck_sender() -> None:
            try:
                while True:
                    await b.send(BIG)
            except Exception as exc:
                errors.append(getattr(exc, "code", type(exc).__name__))

        async with anyio.create_task_group() as tg:
            tg.start_soon(stuck_sender)
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(3):
                await b.aclose()  # neither hangs nor trips over the stuck send
        assert errors and errors[0] in {"ClosedResourceError", "idle_timeout"}
        await a.aclose()


async def test_idle_timeout_counts_sends_too() -> None:
    with anyio.fail_after(DEADLINE):
        a, b = await stream_pair(*memory_pair(buffer=100), r_options={"idle_timeout": 0.4})
        outcome: list[str] = []

        async def reader() -> None:
            try:
                await b.receive()
                outcome.append("message")
            except Exception as exc:
                outcome.append(getattr(exc, "code", type(exc).__name__))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            for _ in range(8):  # 0.8 s of b sending every 0.1 s: b is not idle
                await anyio.sleep(0.1)
                await b.send(b"tick")
            assert outcome == []
            await a.send(b"now")
        assert outcome == ["message"]
        await a.aclose()
        await b.aclose()


async def test_a_cancelled_send_breaks_the_channel_locally() -> None:
    with anyio.fail_after(DEADLINE):
        a, b = await stream_pair(*memory_pair(buffer=0))
        with anyio.move_on_after(0.1):
            await a.send(b"never delivered")  # nobody reads: cancelled mid-send
        with raises("connection_lost"):
            await a.send(b"next")  # the peer could not follow the counter any more
        await a.aclose()
        await b.aclose()


async def test_closing_from_another_task_ends_a_waiting_receive_locally() -> None:
    with anyio.fail_after(DEADLINE):
        for kind in ("stream", "message"):
            left, right = memory_pair()
            if kind == "stream":
                pair: tuple[object, object] = await stream_pair(left, right)
            else:
                pair = await message_pair(left, right)
            a, b = pair
            results: list[str] = []

            async def waiter(channel: object = a, results: list[str] = results) -> None:
                try:
                    await channel.receive()  # type: ignore[attr-defined]
                except Exception as exc:
                    results.append(type(exc).__name__)

            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
                await a.aclose()  # type: ignore[attr-defined]
            assert results == ["ClosedResourceError"], kind
            with pytest.raises(anyio.ClosedResourceError):
                await a.send(b"after close")  # type: ignore[attr-defined]
            await b.aclose()  # type: ignore[attr-defined]


async def test_message_channel_send_respects_the_lifetime() -> None:
    with anyio.fail_after(DEADLINE):
        a, b = await message_pair(*memory_pair(), max_lifetime=0.3)
        await a.send(b"in time")
        assert await b.receive() == b"in time"
        await anyio.sleep(0.35)  # let the lifetime pass
        with raises("lifetime_exceeded"):
            await a.send(b"too late")
        with raises("lifetime_exceeded"):
            await a.send(b"still too late")
        await b.aclose()


async def test_a_trust_callback_that_raises_does_not_stop_the_server() -> None:
    with anyio.fail_after(DEADLINE):
        roles = {ALICE.agent_id: "admin"}

        def admins_only(peer: PeerKey) -> bool:
            return roles[peer.agent_id] == "admin"  # KeyError for anyone unknown

        listener = await create_listener("127.0.0.1", 0, BOB,
                                         HandshakePolicy(trust=admins_only))
        port = listener.extra(SocketAttribute.local_port)

        async def echo(channel: AgentAuthStream) -> None:
            async for message in channel:
                await channel.send(message)

        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo)
            stranger = await connect("127.0.0.1", port, MALLORY, expect=BOB.agent_id)
            with pytest.raises(PeerRefused) as info:
                await stranger.receive()
            # The callback's failure is the server's own: the alert says only that.
            assert info.value.claimed == "invalid_argument"
            await stranger.aclose()
            async with await connect("127.0.0.1", port, ALICE,
                                     expect=BOB.agent_id) as channel:
                await channel.send(b"still up")
                assert await channel.receive() == b"still up"
            assert listener.failed == 1 and listener.accepted == 1
            tg.cancel_scope.cancel()
        assert trusting(ALICE).trusts(ALICE.peer)


@pytest.mark.parametrize("kind", ["stream", "messages"])
async def test_both_channel_kinds_end_alike_once_idle(kind: str) -> None:
    # One base holds the limits and the state checks: an idle channel ends the waiting
    # receive, sends CLOSE to the peer, and refuses every later call with the same code.
    with anyio.fail_after(DEADLINE):
        left, right = memory_pair()
        cls: type[Channel[Any]] = (AgentAuthStream if kind == "stream"
                                   else AgentAuthMessageStream)
        a, b = await both(
            lambda: cls.wrap(left, ALICE, trusting(BOB), initiator=True, expect=BOB.agent_id),
            lambda: cls.wrap(right, BOB, trusting(ALICE), initiator=False, idle_timeout=0.2))
        assert a.max_payload == b.max_payload > 0
        with raises("idle_timeout"):
            await b.receive()  # nothing comes: the idle limit ends it
        for call in (lambda: b.send(b"late"), b.receive):
            with raises("idle_timeout") as info:
                await call()
            assert "the channel has ended" in info.value.message
        with pytest.raises(anyio.EndOfStream):  # the expiry sent CLOSE
            await a.receive()
        await a.aclose()
        await b.aclose()

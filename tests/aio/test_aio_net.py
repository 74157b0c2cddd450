"""connect() and listeners over real TCP on 127.0.0.1, on asyncio and on trio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import SocketAttribute
from support import ALICE, BOB, CAROL, MALLORY, raises
from support.aio import DEADLINE, trusting

from agentauth import AgentAuthListener, AgentAuthStream, HandshakePolicy, connect, create_listener

pytestmark = pytest.mark.anyio


async def echo(channel: AgentAuthStream) -> None:
    async for message in channel:
        await channel.send(channel.peer_id.encode()[-6:] + b":" + message)


@asynccontextmanager
async def running(policy: HandshakePolicy, **options: object) -> AsyncIterator[
        tuple[int, AgentAuthListener]]:
    """BOB serving ``echo`` on a free loopback port, stopped when the block ends."""
    listener = await create_listener("127.0.0.1", 0, BOB, policy, **options)
    port = listener.extra(SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        try:
            yield port, listener
        finally:
            tg.cancel_scope.cancel()
    await listener.aclose()


async def test_clients_talk_to_a_server_over_tcp() -> None:
    with anyio.fail_after(DEADLINE):
        async with running(trusting(ALICE, CAROL)) as (port, listener):
            async def client(who: object, n: int) -> None:
                assert who in (ALICE, CAROL)
                async with await connect("127.0.0.1", port, who,  # type: ignore[arg-type]
                                         expect=BOB.agent_id) as channel:
                    assert channel.peer_id == BOB.agent_id
                    for i in range(n):
                        await channel.send(b"%d" % i)
                        reply = await channel.receive()
                        assert reply.endswith(b":%d" % i)
                        assert reply.startswith(who.agent_id.encode()[-6:])  # type: ignore[attr-defined]

            async with anyio.create_task_group() as tg:
                for who in (ALICE, CAROL, ALICE, CAROL):
                    tg.start_soon(client, who, 5)
            assert listener.accepted == 4 and listener.failed == 0


async def test_an_untrusted_client_is_refused_and_others_go_on() -> None:
    with anyio.fail_after(DEADLINE):
        async with running(trusting(ALICE)) as (port, listener):
            mallory = await connect("127.0.0.1", port, MALLORY, expect=BOB.agent_id)
            with raises("peer_refused"):  # the server's alert, then it hung up
                await mallory.receive()
            await mallory.aclose()
            while listener.failed < 1:  # the server counts it just after closing
                await anyio.wait_all_tasks_blocked()
            async with await connect("127.0.0.1", port, ALICE,
                                     expect=BOB.agent_id) as channel:
                await channel.send(b"still serving")
                assert (await channel.receive()).endswith(b":still serving")
            assert listener.failed == 1 and listener.accepted == 1


async def test_the_client_pins_the_server() -> None:
    with anyio.fail_after(DEADLINE):
        async with running(trusting(ALICE)) as (port, _):
            with raises("unexpected_peer"):
                await connect("127.0.0.1", port, ALICE, expect=CAROL.agent_id)


async def test_connecting_to_nobody_is_a_typed_error() -> None:
    with anyio.fail_after(DEADLINE):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(SocketAttribute.local_port)
        await listener.aclose()  # nothing listens there now
        with raises("connection_lost"):
            await connect("127.0.0.1", port, ALICE, expect=BOB.agent_id)


async def test_slow_handshakes_time_out_and_half_open_ones_are_capped() -> None:
    with anyio.fail_after(DEADLINE):
        async with running(trusting(ALICE), handshake_timeout=0.5,
                           max_half_open=1) as (port, listener):
            stalled = await anyio.connect_tcp("127.0.0.1", port)  # sends nothing
            # Wait until the server took the stalled one in: then the cap is full.
            while listener._half_open.total < 1:
                await anyio.wait_all_tasks_blocked()
            refused = await anyio.connect_tcp("127.0.0.1", port)
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await refused.receive()  # closed at once, without a handshake
            assert listener.refused == 1
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await stalled.receive()  # dropped when its handshake timed out
            while listener.failed < 1:  # the server counts it just after closing
                await anyio.wait_all_tasks_blocked()
            assert listener.failed == 1
            async with await connect("127.0.0.1", port, ALICE,
                                     expect=BOB.agent_id) as channel:
                await channel.send(b"after")
                assert (await channel.receive()).endswith(b":after")
            await stalled.aclose()
            await refused.aclose()


async def test_a_stalling_server_times_the_client_out() -> None:
    with anyio.fail_after(DEADLINE):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(SocketAttribute.local_port)

        async def mute(stream: object) -> None:
            await anyio.sleep_forever()

        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, mute)
            with raises("handshake_timeout"):
                await connect("127.0.0.1", port, ALICE, expect=BOB.agent_id,
                              handshake_timeout=0.3)
            tg.cancel_scope.cancel()


async def test_cancelling_serve_closes_live_channels() -> None:
    with anyio.fail_after(DEADLINE):
        async with running(trusting(ALICE)) as (port, _):
            channel = await connect("127.0.0.1", port, ALICE, expect=BOB.agent_id)
            await channel.send(b"ping")
            assert (await channel.receive()).endswith(b":ping")
        # The server is gone: its channel was closed with a CLOSE, an orderly end.
        with pytest.raises(anyio.EndOfStream):
            await channel.receive()
        await channel.aclose()


async def test_a_replayed_frame_is_rejected() -> None:
    with anyio.fail_after(DEADLINE):
        async with running(trusting(ALICE)) as (port, _):
            channel = await connect("127.0.0.1", port, ALICE, expect=BOB.agent_id)
            await channel.send(b"pay 10")
            assert (await channel.receive()).endswith(b":pay 10")
            # What an attacker on the wire captured: the frame of "pay 10".
            replay = channel._session  # the sender's state reaches back to counter 0
            captured_counter = 0
            assert replay._send_n == 1
            replay._send_n = captured_counter
            await channel.send(b"pay 10")  # the same frame as before, byte for byte
            with raises("unexpected_eof"):  # the server refused it and hung up
                await channel.receive()
            await channel.aclose()

"""The same channel over every kind of byte stream: memory, loopback TCP, a Unix socket,
and TLS 1.3 over TCP. On asyncio and on trio."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from support import ALICE, BOB
from support.aio import DEADLINE, connected, stream_pair, trusting

from agentauth import AgentAuthAttribute, AgentAuthError, AgentAuthStream

pytestmark = pytest.mark.anyio

KINDS = ["memory", "tcp", "unix", "tls"]


@pytest.mark.parametrize("kind", KINDS)
async def test_messages_both_ways_and_an_orderly_end(kind: str, tmp_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        async with connected(kind, tmp_path) as (left, right):
            a, b = await stream_pair(left, right)
            assert a.peer_id == BOB.agent_id and b.peer_id == ALICE.agent_id
            assert (a.extra(AgentAuthAttribute.channel_binding)
                    == b.extra(AgentAuthAttribute.channel_binding))
            big = bytes(range(256)) * 1024  # 256 KiB: many transport reads per frame
            for payload in (b"", b"small", big):
                for sender, receiver, data in ((a, b, payload), (b, a, payload[::-1])):
                    async with anyio.create_task_group() as tg:  # more than a socket buffer
                        tg.start_soon(sender.send, data)
                        assert await receiver.receive() == data
            await a.send_eof()
            with pytest.raises(anyio.EndOfStream):
                await b.receive()
            await b.aclose()
            with pytest.raises(anyio.EndOfStream):
                await a.receive()
            await a.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_transport_that_ends_without_close_is_an_error(kind: str,
                                                               tmp_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        async with connected(kind, tmp_path) as (left, right):
            a, b = await stream_pair(left, right)
            await a.send(b"before the cut")
            await anyio.aclose_forcefully(left)  # no CLOSE: a truncation, not an end
            assert await b.receive() == b"before the cut"
            with pytest.raises(AgentAuthError) as info:
                await b.receive()
            assert info.value.code in {"unexpected_eof", "connection_lost"}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_peer_that_hangs_up_mid_handshake(kind: str, tmp_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        async with connected(kind, tmp_path) as (left, right):

            async def hang_up() -> None:
                await right.receive()  # HS1 (or part of it), then gone
                await anyio.aclose_forcefully(right)

            async with anyio.create_task_group() as tg:
                tg.start_soon(hang_up)
                with pytest.raises(AgentAuthError) as info:
                    await AgentAuthStream.wrap(left, ALICE, trusting(BOB), initiator=True,
                                               expect=BOB.agent_id)
            assert info.value.code in {"unexpected_eof", "connection_lost"}

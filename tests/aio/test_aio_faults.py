"""Faulty transports: drop, duplicate, reorder, truncate and corrupt, on both channel kinds
and both backends. Nothing is accepted that was not sent, every failure is a typed error
or a clean end of stream, and nothing hangs (each test runs under a deadline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute
from support import raises
from support.aio import DEADLINE, Faulty, connected, memory_pair, message_pair, stream_pair

from agentauth import AgentAuthError, RemoteError

pytestmark = pytest.mark.anyio

FAULTS = ["drop", "duplicate", "reorder", "truncate", "corrupt"]


@pytest.mark.parametrize("kind", ["memory", "tcp"])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fault", FAULTS)
async def test_byte_stream_faults_end_the_channel_with_a_typed_error(
        fault: str, seed: int, kind: str, tmp_path: Path) -> None:
    # Every frame is one write here; damaging any of them must stop the receiver with an
    # error, after delivering exactly what came before (over memory and over real TCP).
    with anyio.fail_after(DEADLINE):
        async with connected(kind, tmp_path) as (left, right):
            await _byte_faults(left, right, fault, seed)


async def _byte_faults(left: Any, right: Any, fault: str, seed: int) -> None:
    faulty = Faulty(left, fault, rate=0.2, seed=seed)
    a, b = await stream_pair(faulty, right)
    faulty.armed = True
    sent = [b"message %d" % i for i in range(40)]
    for message in sent:
        await a.send(message)
    await a.send_eof()
    await faulty.aclose()
    received: list[bytes] = []
    error: AgentAuthError | None = None
    try:
        async for message in b:
            received.append(message)
    except AgentAuthError as exc:
        error = exc
    assert received == sent[: len(received)]  # a prefix, in order, nothing invented
    if faulty.touched:
        assert error is not None and isinstance(error, RemoteError)
    else:
        assert error is None and received == sent


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fault", FAULTS)
async def test_message_transport_faults_reject_items_and_keep_the_channel(
        fault: str, seed: int) -> None:
    with anyio.fail_after(DEADLINE):
        left, right = memory_pair(buffer=1000)
        faulty = Faulty(left, fault, rate=0.25, seed=seed)
        a, b = await message_pair(faulty, right)
        faulty.armed = True
        sent = [b"item %d" % i for i in range(60)]
        for message in sent:
            await a.send(message)
        faulty.rate = 0  # let CLOSE through (a held item goes out before it)
        await a.send_eof()
        received: list[bytes] = []
        codes: list[str] = []
        while True:
            try:
                received.append(await b.receive())
            except anyio.EndOfStream:
                break
            except AgentAuthError as exc:
                codes.append(exc.code)
        assert len(set(received)) == len(received)  # nothing accepted twice
        assert set(received) <= set(sent)  # nothing invented
        if fault == "drop":
            assert len(received) == len(sent) - faulty.touched and not codes
        elif fault == "duplicate":
            assert received == sent and codes == ["replayed"] * faulty.touched
        elif fault == "reorder":
            assert sorted(received) == sorted(sent) and not codes
        else:  # truncated or corrupted items are refused, the rest arrive
            assert len(received) == len(sent) - faulty.touched
            assert len(codes) == faulty.touched
            assert set(codes) <= {"decrypt_failed", "malformed", "replayed", "stale"}
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("fault", ["duplicate", "truncate", "corrupt", "drop"])
async def test_message_transport_handshake_faults(fault: str) -> None:
    # Duplicated handshake messages are ignored; damaged or lost ones fail or time out.
    with anyio.fail_after(DEADLINE):
        left, right = memory_pair(buffer=1000)
        faulty = Faulty(left, fault, rate=1.0, seed=1, armed=True)
        if fault == "duplicate":
            a, b = await message_pair(faulty, right)
            faulty.armed = False
            await a.send(b"after a doubled handshake")
            assert await b.receive() == b"after a doubled handshake"
            return
        with pytest.raises(AgentAuthError) as info:
            await message_pair(faulty, right, handshake_timeout=0.3)
        assert info.value.code in {"handshake_timeout", "malformed", "decrypt_failed",
                                   "low_order_point", "unexpected_eof", "peer_refused"}


async def test_message_channel_over_udp_on_loopback() -> None:
    # Real datagrams: a connected UDP socket is an unreliable object stream of bytes.
    with anyio.fail_after(DEADLINE):
        probe = await anyio.create_udp_socket(local_host="127.0.0.1")
        port_a = probe.extra(SocketAttribute.local_port)
        b_side = await anyio.create_connected_udp_socket("127.0.0.1", port_a,
                                                         local_host="127.0.0.1")
        port_b = b_side.extra(SocketAttribute.local_port)
        await probe.aclose()
        a_side = await anyio.create_connected_udp_socket("127.0.0.1", port_b,
                                                         local_host="127.0.0.1",
                                                         local_port=port_a)
        a, b = await message_pair(a_side, b_side)
        for i in range(20):
            await a.send(b"datagram %d" % i)
        got = [await b.receive() for _ in range(20)]
        assert sorted(got) == sorted(b"datagram %d" % i for i in range(20))
        captured = a._session.seal(b"once")
        await a_side.send(captured)
        assert await b.receive() == b"once"
        await a_side.send(captured)  # an attacker sends the same datagram again
        with raises("replayed"):
            await b.receive()
        await a.aclose()
        await b.aclose()

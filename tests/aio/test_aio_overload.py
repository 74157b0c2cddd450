"""A listener under load it cannot serve: out of file descriptors, flooded with half-open
handshakes from one source, closed under its channels. Real TCP on loopback, on asyncio
and on trio."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import socket
import ssl
import struct
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio import TypedAttributeProvider
from anyio.abc import Process, SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSListener
from support import ALICE, ANY, BOB, MALLORY
from support.aio import DEADLINE, tls_contexts, trusting

from agentauth import (
    AgentAuthError,
    AgentAuthListener,
    AgentAuthStream,
    Initiator,
    InvalidArgument,
    connect,
    create_listener,
)
from agentauth.aio._serving import UNKNOWN_SOURCE, source_of

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).resolve().parents[1] / "support" / "fd_starved_server.py"


async def echo(channel: AgentAuthStream) -> None:
    async for message in channel:
        await channel.send(message)


async def round_trip(channel: AgentAuthStream, message: bytes) -> None:
    await channel.send(message)
    assert await channel.receive() == message


@functools.cache
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The server's and the client's TLS contexts (mutual TLS, each pinning the other)."""
    return tls_contexts()


def unverified() -> ssl.SSLContext:
    """A client context for a server in another process: the channel authenticates it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def open_channel(kind: str, port: int,
                       context: ssl.SSLContext | None = None) -> AgentAuthStream:
    """ALICE's channel to BOB on ``port``, over plain TCP or over TLS."""
    if kind == "tcp":
        return await connect("127.0.0.1", port, ALICE, expect=BOB.agent_id)
    transport = await anyio.connect_tcp("127.0.0.1", port, ssl_context=context or contexts()[1],
                                        tls_hostname="server.test")
    return await AgentAuthStream.wrap(transport, ALICE, trusting(BOB), initiator=True,
                                      expect=BOB.agent_id)


# ------------------------------------------------------------------ out of descriptors


class ServerProcess:
    """fd_starved_server.py on one backend: its stdout read line by line, kept."""

    def __init__(self, process: Process) -> None:
        assert process.stdout is not None
        self.process = process
        self.stdout = BufferedByteReceiveStream(process.stdout)
        self.lines: list[str] = []

    async def until(self, prefix: str) -> str:
        """Read lines until one starts with ``prefix``; fail if the server ends first."""
        while True:
            try:
                line = (await self.stdout.receive_until(b"\n", 1 << 16)).decode()
            except (anyio.EndOfStream, anyio.IncompleteRead):
                raise AssertionError(f"the server ended before {prefix!r}: "
                                     f"{self.lines}") from None
            self.lines.append(line)
            if line.startswith(prefix):
                return line


@asynccontextmanager
async def starved_server(backend: str, spare: int,
                         kind: str) -> AsyncIterator[tuple[ServerProcess, int]]:
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *([path] if path else [])])}
    process = await anyio.open_process([sys.executable, str(SERVER), backend, str(spare), kind],
                                       env=env, stderr=None)
    try:
        server = ServerProcess(process)
        port = int((await server.until("port ")).split()[1])
        yield server, port
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()


@pytest.mark.parametrize("kind", ["tcp", "tls"])
async def test_a_listener_out_of_descriptors_keeps_its_channels_and_recovers(
        anyio_backend: str, kind: str) -> None:
    spare = 12
    with anyio.fail_after(4 * DEADLINE):
        async with starved_server(anyio_backend, spare, kind) as (server, port):
            context = unverified()
            channels = [await open_channel(kind, port, context) for _ in range(2)]
            for channel in channels:
                await round_trip(channel, b"before")
            # More silent connections than the server has descriptors left: it accepts
            # until accept() fails with EMFILE and is left with a backlog it cannot take.
            silent = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(spare + 8)]
            await server.until("log ERROR accept failed with EMFILE")
            for i in range(3):  # paced across several failed, backed-off accepts
                for channel in channels:
                    await round_trip(channel, b"starved %d" % i)
                await anyio.sleep(0.1)
            for stream in silent:  # the server's handshakes end: descriptors free up
                await stream.aclose()
            for i in range(3):
                async with await open_channel(kind, port, context) as fresh:
                    await round_trip(fresh, b"fresh %d" % i)
            await server.until("log WARNING accepting again after")
            for channel in channels:
                await round_trip(channel, b"after")
                await channel.aclose()
            assert server.process.stdin is not None
            await server.process.stdin.aclose()  # the server stops and reports
            stats = dict(item.split("=") for item in
                         (await server.until("stats ")).split()[1:])
            assert await server.process.wait() == 0
    assert int(stats["accepted"]) == 5 and stats["refused"] == "0"
    # Every failed accept was counted, but the log said so once, not once per try.
    logged = [line for line in server.lines if "accept failed" in line]
    assert 1 <= len(logged) < int(stats["accept_errors"])


# ------------------------------------------------------------------ half-open flood


def hs1_frame() -> bytes:
    """A valid, framed HS1, as a flood would send it to make the server work."""
    hs1 = Initiator(MALLORY, ANY, expect=BOB.agent_id).start()
    return struct.pack(">I", len(hs1)) + hs1


async def attacker(port: int, frame: bytes) -> None:
    """From 127.0.0.2, forever: connect, send HS1, stall until the server hangs up."""
    while True:
        stream = await anyio.connect_tcp("127.0.0.1", port, local_host="127.0.0.2")
        try:
            await stream.send(frame)
            while True:  # reads HS2, never answers: the server refuses or times out
                await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
        finally:
            await anyio.aclose_forcefully(stream)
        await anyio.sleep(0.02)  # the pace: back at once, never a busy loop


async def test_a_half_open_flood_from_one_source_leaves_room_for_the_others() -> None:
    cap, per_source, attempts = 8, 4, 40
    with anyio.fail_after(DEADLINE):
        listener = await create_listener("127.0.0.1", 0, BOB, trusting(ALICE),
                                         handshake_timeout=1.0, max_half_open=cap,
                                         max_half_open_per_source=per_source)
        port = listener.extra(SocketAttribute.local_port)
        frame = hs1_frame()
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo)
            async with anyio.create_task_group() as flood:
                for _ in range(cap + 4):  # more than the whole global cap
                    flood.start_soon(attacker, port, frame)
                while listener.refused < 1:  # the flood has reached its cap
                    await anyio.sleep(0.01)  # polls a condition (tasks never all block)
                succeeded = 0
                for i in range(attempts):  # honest clients, from 127.0.0.1
                    try:
                        async with await connect("127.0.0.1", port, ALICE,
                                                 expect=BOB.agent_id) as channel:
                            await round_trip(channel, b"%d" % i)
                        succeeded += 1
                    except Exception:
                        pass
                assert succeeded >= 0.95 * attempts, f"{succeeded} of {attempts}"
                # Never more than its cap (a place may be free for a moment between a
                # flood connection's timeout and the next one, so not exactly the cap).
                assert listener._half_open.sources.get("127.0.0.2", 0) <= per_source
                flood.cancel_scope.cancel()
            assert listener.refused > 0
            # Once the flood's connections are gone, no count is left behind.
            while listener._half_open.total:
                await anyio.wait_all_tasks_blocked()
            assert listener._half_open.sources == {}
            tg.cancel_scope.cancel()


async def test_unix_socket_peers_count_only_against_the_global_cap(tmp_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        path = tmp_path / "agentauth.sock"
        listener = AgentAuthListener(await anyio.create_unix_listener(path), BOB,
                                     trusting(ALICE), max_half_open=3,
                                     max_half_open_per_source=1)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo)
            silent = [await anyio.connect_unix(path) for _ in range(4)]
            while listener._half_open.total + listener.refused < 4:
                await anyio.wait_all_tasks_blocked()
            assert listener._half_open.total == 3 and listener.refused == 1
            assert listener._half_open.sources == {}
            for stream in silent:
                await stream.aclose()
            tg.cancel_scope.cancel()


class Peer(TypedAttributeProvider):
    """A connection as the listener sees it: only its peer's address."""

    def __init__(self, address: Any) -> None:
        self.address = address

    @property
    def extra_attributes(self) -> dict[Any, Any]:
        return {SocketAttribute.remote_address: lambda: self.address}


def test_a_source_is_an_ipv4_address_or_an_ipv6_64() -> None:
    assert source_of(Peer(("192.0.2.7", 4000))) == "192.0.2.7"
    assert source_of(Peer(("::ffff:192.0.2.7", 4000, 0, 0))) == "192.0.2.7"
    one = source_of(Peer(("2001:db8:1:2:aaaa::1", 4000, 0, 0)))
    assert one == source_of(Peer(("2001:db8:1:2:ffff::9", 1, 0, 0))) == "2001:db8:1:2::/64"
    assert source_of(Peer(("2001:db8:1:3::1", 4000, 0, 0))) == "2001:db8:1:3::/64"
    assert source_of(Peer(("fe80::1%1", 4000, 0, 1))) == "fe80::/64"
    # Addresses that carry an IPv4 address, where the /64 is shared by many hosts: a
    # Teredo client (behind server 65.54.227.120; client 192.0.2.45, stored inverted)
    # and an IPv4 host behind a NAT64 gateway.
    teredo = "2001:0:4136:e378:8000:63bf:3fff:fdd2"
    assert source_of(Peer((teredo, 4000, 0, 0))) == "192.0.2.45"
    assert source_of(Peer(("64:ff9b::c000:207", 4000, 0, 0))) == "192.0.2.7"
    assert source_of(Peer("/run/agent.sock")) is None  # a Unix socket: exempt
    assert source_of(Peer("")) is None
    assert source_of(TypedAttributeProvider()) is None  # no address at all


async def test_sources_of_real_connections(tmp_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = tcp.extra(SocketAttribute.local_port)
        async with tcp:
            accept = tcp.listeners[0].accept  # type: ignore[attr-defined]
            client = await anyio.connect_tcp("127.0.0.1", port, local_host="127.0.0.2")
            async with client, await accept() as server:
                assert source_of(server) == "127.0.0.2"
            # A peer that reset the connection before it was read: no address, yet IP,
            # so it counts against a shared source instead of escaping the cap.
            client = await anyio.connect_tcp("127.0.0.1", port)
            client.extra(SocketAttribute.raw_socket).setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await client.aclose()
            async with await accept() as server:
                with pytest.raises(anyio.BrokenResourceError):
                    await server.receive()  # the reset has arrived
                assert source_of(server) == UNKNOWN_SOURCE
        unix = await anyio.create_unix_listener(tmp_path / "agentauth.sock")
        async with (unix, await anyio.connect_unix(tmp_path / "agentauth.sock"),
                    await unix.accept() as server):
            assert source_of(server) is None


async def test_per_source_cap_default_and_validation() -> None:
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with tcp:
        cases: list[tuple[dict[str, Any], int]] = [
            ({}, 16), ({"max_half_open": 8}, 1), ({"max_half_open_per_source": 3}, 3)]
        for options, per_source in cases:
            listener = AgentAuthListener(tcp, BOB, trusting(ALICE), **options)
            assert listener._half_open.per_source == per_source
        bad: Any
        for bad in (0, -1, 1.5, True, "8"):
            with pytest.raises(InvalidArgument, match="max_half_open_per_source"):
                AgentAuthListener(tcp, BOB, trusting(ALICE), max_half_open_per_source=bad)


# ------------------------------------------------------------------ closed under its channels


@pytest.mark.parametrize("kind", ["tcp", "tls"])
async def test_closing_the_listener_stops_accepting_and_spares_the_channels(kind: str) -> None:
    with anyio.fail_after(DEADLINE):
        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = tcp.extra(SocketAttribute.local_port)
        # anyio's TLSListener: served through the listener it wraps.
        inner = TLSListener(tcp, contexts()[0]) if kind == "tls" else tcp
        listener = AgentAuthListener(inner, BOB, trusting(ALICE))

        ended = anyio.Event()

        async def serve() -> None:
            await listener.serve(echo)  # returns, without error, once the channel ends
            ended.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            channel = await open_channel(kind, port)
            await round_trip(channel, b"open")
            await listener.aclose()
            await round_trip(channel, b"listener closed, channel alive")
            with pytest.raises((AgentAuthError, OSError)):
                await open_channel(kind, port)
            assert not ended.is_set()
            await channel.aclose()
            await ended.wait()


async def test_a_failed_listener_stops_accepting_and_spares_the_channels(
        caplog: pytest.LogCaptureFixture) -> None:
    with anyio.fail_after(DEADLINE):
        listener = await create_listener("127.0.0.1", 0, BOB, trusting(ALICE))
        port = listener.extra(SocketAttribute.local_port)
        outcome: list[str] = []

        async def serve() -> None:
            try:
                await listener.serve(echo)
            except AgentAuthError as exc:  # raised once the channel has ended
                outcome.append(exc.code)

        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(serve)
            channel = await connect("127.0.0.1", port, ALICE, expect=BOB.agent_id)
            await round_trip(channel, b"open")
            # A listening socket shut down under the listener: accept() fails with EINVAL,
            # an error no retry can mend.
            listener.extra(SocketAttribute.raw_socket).shutdown(socket.SHUT_RDWR)
            while not any("EINVAL" in record.getMessage() for record in caplog.records):
                await anyio.wait_all_tasks_blocked()
            await round_trip(channel, b"listener failed, channel alive")
            assert outcome == []
            await channel.aclose()
        assert outcome == ["connection_lost"]


# ------------------------------------------------------------------ faults of a custom listener


class Opaque(anyio.abc.ByteStream):
    """A connection whose peer address getter raises something that is not an OSError."""

    def __init__(self, inner: anyio.abc.ByteStream) -> None:
        self.inner = inner

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> dict[Any, Any]:
        def fail() -> Any:
            raise RuntimeError("no address today")
        return {SocketAttribute.remote_address: fail, SocketAttribute.local_port: fail}


class Faulty(anyio.abc.Listener[Any]):
    """A listener over a real TCP one whose connections are :class:`Opaque`, whose
    ``accept()`` fails with ``ECONNABORTED`` for the next ``aborts`` connections (as a
    BSD kernel's does for a connection reset in the queue), and raises ``RuntimeError``
    once ``broken`` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.broken = False
        self.aborts = 0

    async def accept(self) -> Opaque:
        stream = await self.inner.accept()
        if self.aborts:
            self.aborts -= 1
            await stream.aclose()
            raise OSError(errno.ECONNABORTED, os.strerror(errno.ECONNABORTED))
        if self.broken:
            await stream.aclose()
            raise RuntimeError("the accept machinery broke")
        return Opaque(stream)

    async def serve(self, handler: Any, task_group: Any = None) -> None:
        raise AssertionError("served through accept()")

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_an_address_getter_that_raises_anything_counts_as_unknown() -> None:
    assert source_of(Opaque(None)) == UNKNOWN_SOURCE  # type: ignore[arg-type]


async def test_a_custom_listener_that_fails_oddly_spares_the_channels() -> None:
    with anyio.fail_after(DEADLINE):
        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = tcp.extra(SocketAttribute.local_port)
        faulty = Faulty(tcp.listeners[0])
        listener = AgentAuthListener(faulty, BOB, trusting(ALICE))
        outcome: list[str] = []

        async def serve() -> None:
            try:
                await listener.serve(echo)
            except AgentAuthError as exc:
                outcome.append(exc.code)

        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(serve)
            # Its address cannot be read: it counts against the unknown source.
            channel = await connect("127.0.0.1", port, ALICE, expect=BOB.agent_id)
            await round_trip(channel, b"opaque peer")
            assert listener._half_open.sources == {}
            faulty.broken = True  # accept() now raises: the listener stops, not the channel
            with pytest.raises((AgentAuthError, OSError)):
                async with await connect("127.0.0.1", port, ALICE, expect=BOB.agent_id):
                    pass
            await round_trip(channel, b"listener broken, channel alive")
            assert outcome == []
            await channel.aclose()
        assert outcome == ["connection_lost"]


# ------------------------------------------------------------------ a TLS listener


async def test_a_tls_listener_counts_its_tls_handshakes_against_both_caps() -> None:
    with anyio.fail_after(DEADLINE):
        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = tcp.extra(SocketAttribute.local_port)
        listener = AgentAuthListener(TLSListener(tcp, contexts()[0]), BOB, trusting(ALICE),
                                     max_half_open=8, max_half_open_per_source=2)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo)
            # Silent from 127.0.0.2: no ClientHello, so their TLS handshakes never end.
            silent = [await anyio.connect_tcp("127.0.0.1", port, local_host="127.0.0.2")
                      for _ in range(5)]
            while listener._half_open.total + listener.refused < 5:
                await anyio.wait_all_tasks_blocked()
            assert listener._half_open.sources == {"127.0.0.2": 2}
            assert listener.refused == 3
            async with await open_channel("tls", port) as channel:
                await round_trip(channel, b"another source gets through")
            for stream in silent:
                await stream.aclose()
            while listener._half_open.total:
                await anyio.wait_all_tasks_blocked()
            assert listener._half_open.sources == {}
            tg.cancel_scope.cancel()


async def test_connections_aborted_before_accept_do_not_slow_the_accept_loop() -> None:
    aborted = 12  # backed off like EMFILE, these would hold the next accept for 6 s
    with anyio.fail_after(DEADLINE):
        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = tcp.extra(SocketAttribute.local_port)
        faulty = Faulty(tcp.listeners[0])
        faulty.aborts = aborted
        listener = AgentAuthListener(faulty, BOB, trusting(ALICE))
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo)
            for _ in range(aborted):
                await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
            with anyio.fail_after(2):
                async with await connect("127.0.0.1", port, ALICE,
                                         expect=BOB.agent_id) as channel:
                    await round_trip(channel, b"not held back")
            assert faulty.aborts == 0 and listener.accept_errors == aborted
            tg.cancel_scope.cancel()


async def test_a_flood_of_failed_handshakes_is_not_a_flood_of_log_lines(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agentauth.aio")
    with anyio.fail_after(DEADLINE):
        listener = await create_listener("127.0.0.1", 0, BOB, trusting(ALICE))
        port = listener.extra(SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo)
            for _ in range(20):  # MALLORY is not trusted: BOB refuses each at HS3
                with contextlib.suppress(AgentAuthError):
                    await (await connect("127.0.0.1", port, MALLORY,
                                         expect=BOB.agent_id)).aclose()
            while listener.failed < 20:
                await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    lines = [r for r in caplog.records
             if r.name == "agentauth.aio" and "handshake failed" in r.getMessage()]
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]


@pytest.mark.parametrize("kind", ["tcp", "tls"])
async def test_cancelling_serve_mid_handshake_leaves_no_count_behind(kind: str) -> None:
    with anyio.fail_after(DEADLINE):
        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = tcp.extra(SocketAttribute.local_port)
        inner = TLSListener(tcp, contexts()[0]) if kind == "tls" else tcp
        listener = AgentAuthListener(inner, BOB, trusting(ALICE), max_half_open=8,
                                     max_half_open_per_source=3)
        async with listener:
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, echo)
                # Silent: each holds a place, in the TLS or the agentauth handshake.
                silent = [await anyio.connect_tcp("127.0.0.1", port, local_host=host)
                          for host in ("127.0.0.2", "127.0.0.3") for _ in range(4)]
                while listener._half_open.total + listener.refused < len(silent):
                    await anyio.wait_all_tasks_blocked()
                assert listener._half_open.sources == {"127.0.0.2": 3, "127.0.0.3": 3}
                tg.cancel_scope.cancel()  # every handshake is cancelled where it stands
            assert listener._half_open.total == 0 and listener._half_open.sources == {}
            for stream in silent:
                await stream.aclose()

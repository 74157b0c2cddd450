"""Helpers for the async tests: in-memory transports, fault injection, channel pairs."""

from __future__ import annotations

import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import trustme
from anyio.abc import ObjectStream, SocketAttribute, UnreliableObjectStream
from anyio.streams.stapled import StapledObjectStream
from anyio.streams.tls import TLSStream

from agentauth import (
    AgentAuthError,
    AgentAuthMessageStream,
    AgentAuthStream,
    HandshakePolicy,
    Identity,
)
from support import ALICE, BOB

T = TypeVar("T")

#: No async test may run longer than this: a hang is a failure, not a stuck run.
DEADLINE = 10.0


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Fresh server and client contexts for mutual TLS 1.3, each side pinning the other.

    Each side's certificate (``server.test``, ``client.test``) comes from its own throwaway
    authority, and each context trusts only the authority of the other side: one
    certificate in all. No session tickets are issued.
    """
    contexts = []
    for name, protocol in (("server.test", ssl.PROTOCOL_TLS_SERVER),
                           ("client.test", ssl.PROTOCOL_TLS_CLIENT)):
        authority = trustme.CA()
        context = ssl.SSLContext(protocol)
        authority.issue_cert(name).configure_cert(context)
        context.verify_mode = ssl.CERT_REQUIRED
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.options |= ssl.OP_NO_TICKET
        contexts.append((context, authority))
    (server, server_authority), (client, client_authority) = contexts
    server_authority.configure_trust(client)
    client_authority.configure_trust(server)
    return server, client


def memory_pair(buffer: float = 64) -> tuple[StapledObjectStream[bytes],
                                              StapledObjectStream[bytes]]:
    """Two connected in-memory transports (each item is a chunk of bytes)."""
    a_send, b_recv = anyio.create_memory_object_stream[bytes](buffer)
    b_send, a_recv = anyio.create_memory_object_stream[bytes](buffer)
    return StapledObjectStream(a_send, a_recv), StapledObjectStream(b_send, b_recv)


def trusting(*identities: Identity) -> HandshakePolicy:
    return HandshakePolicy(trust=[i.agent_id for i in identities])


async def both(initiate: Callable[[], Awaitable[T]],
                respond: Callable[[], Awaitable[T]]) -> tuple[T, T]:
    """Run both sides of a handshake at once; return (initiator's, responder's) channel.

    If a side fails, its error is raised (the initiator's first): not a group.
    """
    out: dict[str, T] = {}
    errors: dict[str, AgentAuthError] = {}

    async def run(side: str, step: Callable[[], Awaitable[T]]) -> None:
        try:
            out[side] = await step()
        except AgentAuthError as exc:
            errors[side] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "r", respond)
        tg.start_soon(run, "i", initiate)
    for side in ("i", "r"):
        if side in errors:
            raise errors[side]
    return out["i"], out["r"]


async def stream_pair(
    left: Any, right: Any, *, initiator: Identity = ALICE, responder: Identity = BOB,
    i_options: dict[str, Any] | None = None, r_options: dict[str, Any] | None = None,
) -> tuple[AgentAuthStream, AgentAuthStream]:
    """Handshake over two byte transports at once (see :func:`both`)."""
    i_opts = {"expect": responder.agent_id, **(i_options or {})}
    return await both(
        lambda: AgentAuthStream.wrap(left, initiator, trusting(responder), initiator=True,
                                     **i_opts),
        lambda: AgentAuthStream.wrap(right, responder, trusting(initiator), initiator=False,
                                     **(r_options or {})))


async def message_pair(
    left: UnreliableObjectStream[bytes], right: UnreliableObjectStream[bytes], **options: Any,
) -> tuple[AgentAuthMessageStream, AgentAuthMessageStream]:
    """Like :func:`stream_pair`, for message transports."""
    return await both(
        lambda: AgentAuthMessageStream.wrap(left, ALICE, trusting(BOB), initiator=True,
                                            expect=BOB.agent_id, **options),
        lambda: AgentAuthMessageStream.wrap(right, BOB, trusting(ALICE), initiator=False,
                                            **options))


@dataclass
class Faulty(ObjectStream[bytes]):
    """A transport that damages what passes through ``send`` once ``armed`` is set.

    ``fault`` is one of drop, duplicate, reorder, truncate, corrupt; ``rate`` is the share
    of items it touches (seeded, so every run is the same).
    """

    inner: ObjectStream[bytes]
    fault: str
    rate: float = 0.3
    seed: int = 0
    armed: bool = False
    held: list[bytes] = field(default_factory=list)
    touched: int = 0
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    async def send(self, item: bytes) -> None:
        if not self.armed or self._random.random() >= self.rate:
            await self.inner.send(item)
            if self.held:  # a reordered item goes out after the next one
                await self.inner.send(self.held.pop())
            return
        self.touched += 1
        if self.fault == "drop":
            return
        if self.fault == "duplicate":
            await self.inner.send(item)
            await self.inner.send(item)
        elif self.fault == "reorder":
            self.held.append(item)
        elif self.fault == "truncate":
            await self.inner.send(item[: self._random.randrange(len(item))])
        elif self.fault == "corrupt":
            damaged = bytearray(item)
            damaged[self._random.randrange(len(item))] ^= 1 << self._random.randrange(8)
            await self.inner.send(bytes(damaged))
        else:
            raise AssertionError(self.fault)

    async def receive(self) -> bytes:
        return await self.inner.receive()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> dict[Any, Callable[[], Any]]:
        return {}


@asynccontextmanager
async def connected(kind: str, tmp: Path) -> AsyncIterator[tuple[Any, Any]]:
    """A connected pair of byte streams of the given kind: memory, tcp, unix or tls
    (TLS 1.3 over loopback TCP, each side pinning the other's certificate)."""
    if kind == "memory":
        left, right = memory_pair()
        yield left, right
        return
    client: Any
    server: Any
    if kind in ("tcp", "tls"):
        multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = multi.extra(SocketAttribute.local_port)
        async with multi:
            client = await anyio.connect_tcp("127.0.0.1", port)
            server = await multi.listeners[0].accept()  # type: ignore[attr-defined]
    else:
        path = tmp / "agentauth.sock"
        unix = await anyio.create_unix_listener(path)
        async with unix:
            client = await anyio.connect_unix(path)
            server = await unix.accept()
    if kind == "tls":
        server_context, client_context = tls_contexts()
        wrapped: dict[str, Any] = {}

        async def server_side() -> None:
            wrapped["s"] = await TLSStream.wrap(server, server_side=True,
                                                ssl_context=server_context)

        async with anyio.create_task_group() as tg:
            tg.start_soon(server_side)
            client = await TLSStream.wrap(client, hostname="server.test",
                                          ssl_context=client_context)
        server = wrapped["s"]
    try:
        yield client, server
    finally:
        await anyio.aclose_forcefully(client)
        await anyio.aclose_forcefully(server)

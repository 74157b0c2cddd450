"""Channels over message transports: one protocol message per item of an object stream.

For queues, datagram-like and WebSocket-like transports, which may drop, duplicate or
reorder items. The session runs in unordered mode: its replay window accepts each counter
once. A rejected item (forged, replayed, stale, malformed) raises its typed error from
:meth:`~AgentAuthMessageStream.receive`, and the channel stays usable, so a forger cannot
end it by injecting one bad item.

The handshake needs its three messages delivered: there is no retransmission, so a lost
one ends in ``handshake_timeout``. An exact duplicate of the last handshake message this
side received is ignored, during the handshake and after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import anyio
from anyio.abc import ObjectStream, UnreliableObjectStream

from ..errors import AgentAuthError, DecodeError, InvalidArgument, SessionExpired
from ..handshake import MAX_HANDSHAKE_MESSAGE, HandshakePolicy, Initiator, Responder
from ..identity import Identity, PeerKey
from ..session import Session
from ._common import (
    CLOSE_TIMEOUT,
    AgentAuthAttribute,
    Limits,
    channel_attributes,
    check_limits,
    establish,
    handshake_engine,
    transport_error,
)

__all__ = ["AgentAuthMessageStream"]

_TRANSPORT_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError,
                     anyio.EndOfStream, OSError)


class AgentAuthMessageStream(ObjectStream[bytes]):
    """A channel of whole messages over an object stream of ``bytes`` items.

    The transport may be reliable (an ``ObjectStream``: memory streams, queues) or not
    (an ``UnreliableObjectStream``: a connected UDP socket, for one).
    """

    def __init__(self, transport: UnreliableObjectStream[bytes], session: Session,
                 attributes: Mapping[Any, Callable[[], Any]], limits: Limits,
                 last_handshake_message: bytes) -> None:
        self.transport_stream = transport
        self._session = session
        self._attributes = attributes
        self._limits = limits
        self._last_handshake = last_handshake_message
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._receive_lock = anyio.Lock(fast_acquire=True)
        self._started = self._active = time.monotonic()
        self._closed = False
        self._eof_sent = False
        self._expired: SessionExpired | None = None

    @classmethod
    async def wrap(
        cls,
        transport: UnreliableObjectStream[bytes],
        identity: Identity,
        policy: HandshakePolicy,
        *,
        initiator: bool,
        expect: str | PeerKey | None = None,
        extensions: Mapping[str, bytes] | None = None,
        handshake_timeout: float | None = None,
        idle_timeout: float | None = None,
        max_lifetime: float | None = None,
    ) -> AgentAuthMessageStream:
        """Run the handshake over ``transport`` and return the channel (unordered mode).

        The arguments mean what they mean for :meth:`AgentAuthStream.wrap`. On failure
        the transport is closed and a typed agentauth error raised.
        """
        limits = check_limits(policy, handshake_timeout, idle_timeout, max_lifetime)
        engine = handshake_engine(identity, policy, initiator=initiator, expect=expect,
                                  extensions=extensions, ordered=False)
        last = await establish(transport, limits, lambda: _run_handshake(engine, transport))
        result = engine.result
        assert result is not None
        return cls(transport, result.session, channel_attributes(result, initiator=initiator),
                   limits, last)

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The transport's attributes plus :class:`AgentAuthAttribute`'s."""
        return {**self.transport_stream.extra_attributes, **self._attributes}

    @property
    def peer_id(self) -> str:
        """The authenticated peer's agent id."""
        peer_id: str = self._attributes[AgentAuthAttribute.peer_id]()
        return peer_id

    async def send(self, item: bytes) -> None:
        """Encrypt ``item`` and send it as one transport item."""
        if type(item) is not bytes:
            raise InvalidArgument("messages are bytes")
        async with self._send_lock:
            self._check_open()
            if self._eof_sent:
                raise anyio.ClosedResourceError
            if self._limits.passed(self._started, self._active):
                await self._expire(holding_send_lock=True)
            message = self._session.seal(item)
            try:
                await self.transport_stream.send(message)
            except _TRANSPORT_ERRORS as exc:
                raise transport_error(exc, "sending") from exc
            self._active = time.monotonic()

    async def send_eof(self) -> None:
        """Send CLOSE (best effort: on a lossy transport it may not arrive)."""
        async with self._send_lock:
            if self._eof_sent or self._closed:
                return
            self._eof_sent = True
            try:
                await self.transport_stream.send(self._session.close())
            except _TRANSPORT_ERRORS as exc:
                raise transport_error(exc, "sending CLOSE") from exc

    async def receive(self) -> bytes:
        """The next authentic message; :class:`anyio.EndOfStream` after the peer's CLOSE.

        A rejected item raises its typed error and changes nothing: call again for the
        next one.
        """
        async with self._receive_lock:
            while True:
                self._check_open()
                if self._session.peer_closed:
                    raise anyio.EndOfStream
                item = await self._next_item()
                if type(item) is not bytes:
                    raise DecodeError("a transport item is not bytes", code="malformed")
                if item == self._last_handshake:
                    continue  # a duplicate of the handshake's last message
                payload = self._session.open(item)
                self._active = time.monotonic()
                if payload is not None:
                    return payload
                if self._session.peer_closed:
                    raise anyio.EndOfStream

    async def _next_item(self) -> bytes:
        limits = self._limits
        while True:
            deadline = limits.deadline(self._started, self._active)
            try:
                if deadline is None:
                    item: bytes = await self.transport_stream.receive()
                    return item
                with anyio.fail_after(max(deadline - time.monotonic(), 0)):
                    item = await self.transport_stream.receive()
                    return item
            except TimeoutError:
                if not limits.passed(self._started, self._active):
                    continue  # a send moved the idle clock meanwhile: wait on
                await self._expire()
            except _TRANSPORT_ERRORS as exc:
                if self._closed:  # closed here, by another task
                    raise anyio.ClosedResourceError from None
                raise transport_error(exc, "receiving (no CLOSE came first)") from exc

    async def _expire(self, *, holding_send_lock: bool = False) -> NoReturn:
        error = self._expired = self._limits.expiry(self._started)
        await self._close(holding_send_lock=holding_send_lock)
        raise error

    def _check_open(self) -> None:
        if self._expired is not None:
            raise SessionExpired(f"the channel expired: {self._expired.message}",
                                 code=self._expired.code)
        if self._closed:
            raise anyio.ClosedResourceError

    async def aclose(self) -> None:
        """Send CLOSE if not yet sent (waiting at most a second), then close the transport."""
        if self._closed:
            return
        await self._close()

    async def _close(self, *, holding_send_lock: bool = False) -> None:
        self._closed = True
        try:
            if not self._eof_sent:
                if holding_send_lock:
                    await self._send_close()
                else:
                    try:
                        self._send_lock.acquire_nowait()
                    except anyio.WouldBlock:  # a send is in progress: skip CLOSE
                        pass
                    else:
                        try:
                            await self._send_close()
                        finally:
                            self._send_lock.release()
        finally:
            await anyio.aclose_forcefully(self.transport_stream)

    async def _send_close(self) -> None:
        self._eof_sent = True
        with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
            try:
                await self.transport_stream.send(self._session.close())
            except (*_TRANSPORT_ERRORS, anyio.BusyResourceError, AgentAuthError):
                pass


async def _run_handshake(engine: Initiator | Responder,
                         transport: UnreliableObjectStream[bytes]) -> bytes:
    """Drive the engine; return the last handshake message this side received."""
    last = b""
    try:
        if isinstance(engine, Initiator):
            await transport.send(engine.start())
        while engine.result is None:
            item = await transport.receive()
            if type(item) is not bytes:
                raise DecodeError("a transport item is not bytes", code="malformed")
            if item == last:
                continue  # the transport duplicated the message before
            if len(item) > MAX_HANDSHAKE_MESSAGE:
                raise DecodeError(f"handshake message of {len(item)} bytes is over the "
                                  f"limit of {MAX_HANDSHAKE_MESSAGE}", code="oversize")
            last = item
            reply = engine.receive_message(item)
            if reply is not None:
                await transport.send(reply)
    except _TRANSPORT_ERRORS as exc:
        raise transport_error(exc, "during the handshake") from exc
    return last

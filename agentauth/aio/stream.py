"""Authenticated, encrypted, message-oriented streams over any anyio byte stream.

:class:`AgentAuthStream` is to agentauth what anyio's ``TLSStream`` is to TLS: a
:meth:`~AgentAuthStream.wrap` classmethod runs the handshake over the transport and returns
a stream of whole messages, with the peer's identity and the channel binding as typed
attributes (:class:`AgentAuthAttribute`).

On the wire every protocol message travels as one frame: a 4-byte big-endian length, then
the message (``spec/protocol.md`` section 5.10). A length over the limit is refused before
anything more is read. The session is in ordered mode: a byte stream is reliable and in
order, so any gap, repeat or forgery means an attack or a bug, and the first error breaks
the channel for good.

Ending: :meth:`~AgentAuthStream.send_eof` sends CLOSE; a received CLOSE ends
:meth:`~AgentAuthStream.receive` with :class:`anyio.EndOfStream`. A transport that ends
without the peer's CLOSE is ``unexpected_eof`` (a truncation is never a clean end).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn

import anyio
from anyio.abc import AnyByteStream, ObjectStream

from ..errors import (
    AgentAuthError,
    DecodeError,
    InvalidArgument,
    RemoteError,
    TransportError,
)
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

__all__ = ["FRAME_HEADER", "AgentAuthStream"]

#: Bytes of the length prefix in front of every frame.
FRAME_HEADER: Final = 4

_TRANSPORT_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError,
                     anyio.EndOfStream, OSError)


class AgentAuthStream(ObjectStream[bytes]):
    """A channel of whole messages, authenticated and encrypted, over a byte stream.

    Build it with :meth:`wrap`. ``send`` and ``receive`` may run in different tasks at
    once; concurrent calls of the same one wait their turn.
    """

    def __init__(self, transport: AnyByteStream, reader: _FrameReader,
                 session: Session, attributes: Mapping[Any, Callable[[], Any]],
                 limits: Limits) -> None:
        self.transport_stream = transport
        self._reader = reader
        self._session = session
        self._attributes = attributes
        self._limits = limits
        self._max_frame = session.max_message
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._receive_lock = anyio.Lock(fast_acquire=True)
        self._started = self._active = time.monotonic()
        self._error: AgentAuthError | None = None
        self._eof_sent = False
        self._eof_received = False
        self._closed = False

    # ---------------------------------------------------------------- creation

    @classmethod
    async def wrap(
        cls,
        transport: AnyByteStream,
        identity: Identity,
        policy: HandshakePolicy,
        *,
        initiator: bool,
        expect: str | PeerKey | None = None,
        extensions: Mapping[str, bytes] | None = None,
        handshake_timeout: float | None = None,
        idle_timeout: float | None = None,
        max_lifetime: float | None = None,
    ) -> AgentAuthStream:
        """Run the handshake over ``transport`` and return the established channel.

        ``initiator`` says which side this is. ``expect`` pins the peer (initiators should).
        ``handshake_timeout`` (default: the policy's ``timeout``) bounds the whole
        handshake, waiting included. ``idle_timeout`` and ``max_lifetime`` (seconds, default
        none) close the channel with :class:`~agentauth.SessionExpired` once nothing was
        sent or received for that long, or once it has lived that long.

        On any failure the transport is closed and a typed agentauth error raised.
        """
        limits = check_limits(policy, handshake_timeout, idle_timeout, max_lifetime)
        engine = handshake_engine(identity, policy, initiator=initiator, expect=expect,
                                  extensions=extensions, ordered=True)
        reader = _FrameReader(transport)
        await establish(transport, limits, lambda: _run_handshake(engine, transport, reader))
        result = engine.result
        assert result is not None
        return cls(transport, reader, result.session,
                   channel_attributes(result, initiator=initiator), limits)

    # ---------------------------------------------------------------- attributes

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The transport's attributes plus :class:`AgentAuthAttribute`'s."""
        return {**self.transport_stream.extra_attributes, **self._attributes}

    @property
    def peer_id(self) -> str:
        """The authenticated peer's agent id."""
        peer_id: str = self._attributes[AgentAuthAttribute.peer_id]()
        return peer_id

    @property
    def max_payload(self) -> int:
        """The largest message, in bytes, this channel sends or receives: the handshake
        policy's ``max_message`` less the session's overhead."""
        return self._session.max_payload

    # ---------------------------------------------------------------- sending

    async def send(self, item: bytes) -> None:
        """Encrypt ``item`` and send it as one message.

        A send that cannot finish (the peer stops reading) is bounded by the channel's
        time limits; one that is cancelled or fails half-way breaks the channel, since the
        peer can no longer follow the counter.
        """
        if type(item) is not bytes:
            raise InvalidArgument("messages are bytes")
        async with self._send_lock:
            self._check_usable(sending=True)
            if self._limits.passed(self._started, self._active):
                await self._expire(holding_send_lock=True)
            await self._write(_frame(self._session.seal(item)))

    async def send_eof(self) -> None:
        """Send CLOSE: this side sends nothing more; the peer's ``receive`` ends."""
        async with self._send_lock:
            if self._eof_sent or self._error is not None or self._closed:
                return
            self._eof_sent = True
            await self._write(_frame(self._session.close()))

    async def _write(self, frame: bytes) -> None:
        deadline = self._limits.deadline(self._started, self._active)
        try:
            if deadline is None:
                await self.transport_stream.send(frame)
            else:
                with anyio.fail_after(max(deadline - time.monotonic(), 0)):
                    await self.transport_stream.send(frame)
        except TimeoutError:
            # Part of the frame may be out: no CLOSE can follow it. Just end.
            error = self._error = self._limits.expiry(self._started)
            self._closed = True
            await anyio.aclose_forcefully(self.transport_stream)
            raise error from None
        except _TRANSPORT_ERRORS as exc:
            if self._closed:  # closed here, by another task
                raise anyio.ClosedResourceError from None
            self._break(transport_error(exc, "sending"))
        except BaseException:
            # Cancelled (or worse) mid-send: the sealed message may be half out, so the
            # counter cannot be trusted any more.
            self._error = TransportError("a send was interrupted; the channel cannot "
                                         "continue", code="connection_lost")
            raise
        self._active = time.monotonic()

    # ---------------------------------------------------------------- receiving

    async def receive(self) -> bytes:
        """The next message from the peer.

        Raises :class:`anyio.EndOfStream` once the peer has sent CLOSE, and a typed
        agentauth error if anything else ends the channel.
        """
        async with self._receive_lock:
            while True:
                self._check_usable(sending=False)
                frame = await self._read_frame()
                try:
                    payload = self._session.open(frame)
                except RemoteError as exc:
                    self._break(exc)
                self._active = time.monotonic()
                if payload is not None:
                    return payload
                if self._session.peer_closed:
                    self._eof_received = True
                    raise anyio.EndOfStream
                # REKEY: nothing to deliver; read on.

    async def _read_frame(self) -> bytes:
        limits = self._limits
        while True:
            deadline = limits.deadline(self._started, self._active)
            try:
                if deadline is None:
                    return await self._reader.read(self._max_frame)
                with anyio.fail_after(max(deadline - time.monotonic(), 0)):
                    return await self._reader.read(self._max_frame)
            except TimeoutError:
                if not limits.passed(self._started, self._active):
                    continue  # a send moved the idle clock meanwhile: wait on
                await self._expire()
            except DecodeError as exc:
                self._break(exc)
            except _TRANSPORT_ERRORS as exc:
                if self._closed:  # closed here, by another task
                    raise anyio.ClosedResourceError from None
                self._break(transport_error(exc, "receiving"))

    # ---------------------------------------------------------------- limits

    async def _expire(self, *, holding_send_lock: bool = False) -> NoReturn:
        # A limit was reached: send CLOSE (so the peer sees an orderly end rather than a
        # truncation), close, and say which limit.
        error = self._limits.expiry(self._started)
        await self._close_quietly(holding_send_lock=holding_send_lock)
        self._error = error
        raise error

    # ---------------------------------------------------------------- state

    def _check_usable(self, *, sending: bool) -> None:
        if self._error is not None:
            first = self._error
            raise type(first)(f"the channel is broken: {first.message}", code=first.code)
        if self._closed:
            raise anyio.ClosedResourceError
        if sending and self._eof_sent:
            raise anyio.ClosedResourceError
        if not sending and self._eof_received:
            raise anyio.EndOfStream

    def _break(self, error: AgentAuthError) -> NoReturn:
        self._error = error
        raise error

    async def _close_quietly(self, *, holding_send_lock: bool = False) -> None:
        """Send CLOSE if this side may still send and nobody is sending, then close."""
        self._closed = True
        try:
            if not self._eof_sent and self._error is None:
                if holding_send_lock:
                    await self._send_close()
                else:
                    try:
                        self._send_lock.acquire_nowait()
                    except anyio.WouldBlock:  # a send is stuck: CLOSE cannot follow it
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
                await self.transport_stream.send(_frame(self._session.close()))
            except (*_TRANSPORT_ERRORS, anyio.BusyResourceError, AgentAuthError):
                pass

    async def aclose(self) -> None:
        """Send CLOSE if not yet sent (waiting at most a second), then close the transport.

        Never hangs, and never raises for the state the channel is in.
        """
        if self._closed:
            return
        await self._close_quietly()


def _frame(message: bytes) -> bytes:
    return len(message).to_bytes(FRAME_HEADER, "big") + message


class _FrameReader:
    """Reads length-prefixed frames, taking whatever the transport hands over at once."""

    __slots__ = ("_buffer", "_transport")

    def __init__(self, transport: AnyByteStream) -> None:
        self._transport = transport
        self._buffer = bytearray()

    async def read(self, limit: int) -> bytes:
        """The next frame's message; ``oversize`` (before reading it) if over ``limit``."""
        buffer, receive = self._buffer, self._transport.receive
        while len(buffer) < FRAME_HEADER:
            buffer += await receive()
        size = int.from_bytes(buffer[:FRAME_HEADER], "big")
        if size > limit:
            raise DecodeError(f"frame of {size} bytes is over the limit of {limit}",
                              code="oversize")
        end = FRAME_HEADER + size
        while len(buffer) < end:
            buffer += await receive()
        message = bytes(buffer[FRAME_HEADER:end])
        del buffer[:end]
        return message


async def _run_handshake(engine: Initiator | Responder, transport: AnyByteStream,
                         reader: _FrameReader) -> None:
    try:
        if isinstance(engine, Initiator):
            await transport.send(_frame(engine.start()))
        while engine.result is None:
            reply = engine.receive_message(await reader.read(MAX_HANDSHAKE_MESSAGE))
            if reply is not None:
                await transport.send(_frame(reply))
    except _TRANSPORT_ERRORS as exc:
        raise transport_error(exc, "during the handshake") from None

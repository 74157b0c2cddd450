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
without the peer's CLOSE is ``unexpected_eof`` (a truncation is never a clean end). A
side whose handshake fails sends one alert before it closes (spec 4.14), and the peer
raises :class:`~agentauth.PeerRefused` with the code it claims: at once, or, for an
initiator refused after HS3, from its first ``receive``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn

import anyio
from anyio.abc import AnyByteStream

from ..errors import AgentAuthError, DecodeError, TransportError
from ..handshake import MAX_HANDSHAKE_MESSAGE, Initiator, Responder
from ..session import Session
from ._channel import TRANSPORT_ERRORS, Channel, Construct
from ._common import Limits, transport_error

__all__ = ["FRAME_HEADER", "AgentAuthStream"]

#: Bytes of the length prefix in front of every frame.
FRAME_HEADER: Final = 4


class AgentAuthStream(Channel[AnyByteStream]):
    """A channel of whole messages, authenticated and encrypted, over a byte stream.

    Build it with :meth:`wrap`. ``send`` and ``receive`` may run in different tasks at
    once; concurrent calls of the same one wait their turn. A send that cannot finish (the
    peer stops reading) is bounded by the channel's time limits; one that is cancelled or
    fails half-way breaks the channel, since the peer can no longer follow the counter.
    """

    _ORDERED = True

    def __init__(self, transport: AnyByteStream, reader: _FrameReader,
                 session: Session, attributes: Mapping[Any, Callable[[], Any]],
                 limits: Limits) -> None:
        super().__init__(transport, session, attributes, limits)
        self._reader = reader
        self._max_frame = session.max_message

    @classmethod
    async def _handshake(cls, engine: Initiator | Responder, transport: AnyByteStream
                         ) -> Construct[AgentAuthStream]:
        reader = _FrameReader(transport)
        try:
            if isinstance(engine, Initiator):
                await transport.send(_frame(engine.start()))
            while engine.result is None:
                reply = engine.receive_message(await reader.read(MAX_HANDSHAKE_MESSAGE))
                if reply is not None:
                    await transport.send(_frame(reply))
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, "during the handshake") from None
        return functools.partial(cls, transport, reader)

    @staticmethod
    def _frame(message: bytes) -> bytes:
        return _frame(message)

    async def _read(self) -> bytes:
        return await self._reader.read(self._max_frame)

    def _fail(self, error: AgentAuthError) -> NoReturn:
        self._error = error  # the peer cannot be followed past any error
        raise error

    async def _write(self, message: bytes, when: str) -> None:
        deadline = self._limits.deadline(self._started, self._active)
        frame = _frame(message)
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
        except TRANSPORT_ERRORS as exc:
            if self._closed:  # closed here, by another task
                raise anyio.ClosedResourceError from None
            self._fail(transport_error(exc, when))
        except BaseException:
            # Cancelled (or worse) mid-send: the sealed message may be half out, so the
            # counter cannot be trusted any more.
            self._error = TransportError("a send was interrupted; the channel cannot "
                                         "continue", code="connection_lost")
            raise
        self._active = time.monotonic()


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

"""Channels over message transports: one protocol message per item of an object stream.

For queues, datagram-like and WebSocket-like transports, which may drop, duplicate or
reorder items. The session runs in unordered mode: its replay window accepts each counter
once. A rejected item (forged, replayed, stale, malformed) raises its typed error from
:meth:`~AgentAuthMessageStream.receive`, and the channel stays usable, so a forger cannot
end it by injecting one bad item.

The handshake needs its three messages delivered: there is no retransmission, so a lost
one ends in ``handshake_timeout``. An exact duplicate of the last handshake message this
side received is ignored, during the handshake and after it. A refusal does not wait for
the timeout: the refusing side sends one alert (spec 4.14), which the peer raises as
:class:`~agentauth.PeerRefused` and which ends its channel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from anyio.abc import UnreliableObjectStream

from ..errors import DecodeError
from ..handshake import MAX_HANDSHAKE_MESSAGE, Initiator, Responder
from ..session import Session
from ._channel import TRANSPORT_ERRORS, Channel, Construct
from ._common import Limits, transport_error

__all__ = ["AgentAuthMessageStream"]


class AgentAuthMessageStream(Channel[UnreliableObjectStream[bytes]]):
    """A channel of whole messages over an object stream of ``bytes`` items.

    The transport may be reliable (an ``ObjectStream``: memory streams, queues) or not
    (an ``UnreliableObjectStream``: a connected UDP socket, for one). Build it with
    :meth:`wrap` (the session then runs in unordered mode). CLOSE is sent best effort: on
    a lossy transport it may not arrive.
    """

    _ORDERED = False

    def __init__(self, transport: UnreliableObjectStream[bytes], session: Session,
                 attributes: Mapping[Any, Callable[[], Any]], limits: Limits,
                 last_handshake_message: bytes) -> None:
        super().__init__(transport, session, attributes, limits)
        self._last_handshake = last_handshake_message

    @classmethod
    async def _handshake(cls, engine: Initiator | Responder,
                         transport: UnreliableObjectStream[bytes]
                         ) -> Construct[AgentAuthMessageStream]:
        last = b""  # the last handshake message this side received
        try:
            if isinstance(engine, Initiator):
                await transport.send(engine.start())
            while engine.result is None:
                item = _checked(await transport.receive())
                if item == last:
                    continue  # the transport duplicated the message before
                if len(item) > MAX_HANDSHAKE_MESSAGE:
                    raise DecodeError(f"handshake message of {len(item)} bytes is over the "
                                      f"limit of {MAX_HANDSHAKE_MESSAGE}", code="oversize")
                last = item
                reply = engine.receive_message(item)
                if reply is not None:
                    await transport.send(reply)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, "during the handshake") from exc
        return functools.partial(cls, transport, last_handshake_message=last)

    async def _read(self) -> bytes:
        while True:
            item = _checked(await self.transport_stream.receive())
            if item != self._last_handshake:  # else a duplicate of the handshake's last
                return item


def _checked(item: object) -> bytes:
    if type(item) is not bytes:
        raise DecodeError("a transport item is not bytes", code="malformed")
    return item

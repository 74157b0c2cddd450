"""What the stream and message-transport wrappers share: attributes, limits, errors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import anyio
from anyio import TypedAttributeSet, typed_attribute

from ..errors import InvalidArgument, TransportError
from ..handshake import HandshakePolicy, Initiator, Responder, Role
from ..identity import Identity, PeerKey

__all__ = ["CLOSE_TIMEOUT", "AgentAuthAttribute", "Limits", "check_limits",
           "handshake_engine", "transport_error"]

#: Longest a close waits to hand CLOSE to the transport, in seconds.
CLOSE_TIMEOUT: Final = 1.0


class AgentAuthAttribute(TypedAttributeSet):
    """Typed attributes of an established agentauth channel (``stream.extra(...)``)."""

    #: the peer's ``did:key`` agent id
    peer_id: str = typed_attribute()
    #: the peer's public key
    peer_key: PeerKey = typed_attribute()
    #: the channel binding: the same 64 bytes at both ends, unique to this channel
    channel_binding: bytes = typed_attribute()
    #: which side of the handshake this end played
    role: Role = typed_attribute()
    #: the extensions the peer sent in its handshake message
    peer_extensions: Mapping[str, bytes] = typed_attribute()


@dataclass(frozen=True, slots=True)
class Limits:
    """The time limits of one channel, in seconds (None: no limit)."""

    handshake_timeout: float
    idle_timeout: float | None
    max_lifetime: float | None


def _seconds(value: object, name: str, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not value > 0 or (isinstance(value, float) and not math.isfinite(value))):
        raise InvalidArgument(f"{name} must be a positive, finite number of seconds")
    return float(value)


def check_limits(policy: HandshakePolicy, handshake_timeout: float | None,
                 idle_timeout: float | None, max_lifetime: float | None) -> Limits:
    """Validate the time limits of a channel; the handshake's defaults to the policy's."""
    if not isinstance(policy, HandshakePolicy):
        raise InvalidArgument("policy must be a HandshakePolicy")
    timeout = _seconds(policy.timeout if handshake_timeout is None else handshake_timeout,
                       "handshake_timeout", optional=False)
    assert timeout is not None
    return Limits(timeout, _seconds(idle_timeout, "idle_timeout", optional=True),
                  _seconds(max_lifetime, "max_lifetime", optional=True))


def handshake_engine(identity: Identity, policy: HandshakePolicy, *, initiator: bool,
                     expect: str | PeerKey | None, extensions: Mapping[str, bytes] | None,
                     ordered: bool) -> Initiator | Responder:
    """The engine for one side; arguments are checked before any I/O happens."""
    if type(initiator) is not bool:
        raise InvalidArgument("initiator must be True or False")
    cls = Initiator if initiator else Responder
    return cls(identity, policy, expect=expect, extensions=extensions, ordered=ordered)


def transport_error(exc: BaseException, when: str) -> TransportError:
    """Translate an anyio or OS error of the transport, once, at the edge."""
    if isinstance(exc, anyio.EndOfStream | anyio.IncompleteRead):
        return TransportError(f"the transport ended {when}", code="unexpected_eof")
    return TransportError(f"the transport failed {when} ({type(exc).__name__})",
                          code="connection_lost")

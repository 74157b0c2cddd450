"""What the stream and message-transport wrappers share: attributes, limits, errors."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import anyio
from anyio import TypedAttributeSet, typed_attribute

from ..errors import (
    HandshakeTimeout,
    InvalidArgument,
    RemoteError,
    SessionExpired,
    TransportError,
)
from ..handshake import HandshakePolicy, HandshakeResult, Initiator, Responder, Role
from ..identity import Identity, PeerKey
from ..verdict import is_seconds

__all__ = ["CLOSE_TIMEOUT", "AgentAuthAttribute", "Limits", "channel_attributes",
           "check_limits", "establish", "handshake_engine", "last_word",
           "transport_error"]

T = TypeVar("T")

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

    def deadline(self, started: float, active: float) -> float | None:
        """When a channel started at ``started``, last active at ``active``, expires."""
        idle, lifetime = self.idle_timeout, self.max_lifetime
        if idle is None:
            return None if lifetime is None else started + lifetime
        if lifetime is None:
            return active + idle
        return min(active + idle, started + lifetime)

    def passed(self, started: float, active: float) -> bool:
        """Whether that channel has expired by now."""
        deadline = self.deadline(started, active)
        return deadline is not None and time.monotonic() >= deadline

    def expiry(self, started: float) -> SessionExpired:
        """The error that says which limit an expired channel reached."""
        lifetime = self.max_lifetime
        if lifetime is not None and time.monotonic() >= started + lifetime:
            return SessionExpired(f"the channel reached its lifetime of {lifetime} s",
                                  code="lifetime_exceeded")
        return SessionExpired(f"nothing was sent or received for {self.idle_timeout} s",
                              code="idle_timeout")


def _seconds(value: object, name: str, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if not is_seconds(value, positive=True):
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


async def establish(transport: Any, limits: Limits, run: Callable[[], Awaitable[T]],
                    engine: Initiator | Responder,
                    send_alert: Callable[[bytes], Awaitable[None]]) -> T:
    """Run ``engine``'s handshake within ``limits.handshake_timeout``; on any failure send
    the alert the engine calls for (spec 4.14), close the transport and raise (the
    deadline as ``handshake_timeout``)."""
    try:
        with anyio.fail_after(limits.handshake_timeout):
            return await run()
    except TimeoutError:
        error = HandshakeTimeout(f"the handshake did not finish within "
                                 f"{limits.handshake_timeout} s")
        engine.abort(error)
        await _farewell(transport, engine, send_alert)
        raise error from None  # (the engine's failure was the audit event)
    except BaseException as exc:
        # Found here, not by a step: a frame over the limit or an item that is not bytes
        # fails the engine (spec 4.14). A transport that ended or broke is no decision
        # about the peer: no alert, no handshake_refused event.
        if isinstance(exc, RemoteError) and not isinstance(exc, TransportError):
            engine.abort(exc)
        await _farewell(transport, engine, send_alert)
        raise


async def _farewell(transport: Any, engine: Initiator | Responder,
                    send_alert: Callable[[bytes], Awaitable[None]]) -> None:
    # The alert is a last word like a CLOSE: a cancelled handshake that had already failed
    # still tells the peer why. The transport is closed whatever the send did.
    try:
        alert = engine.alert
        if alert is not None:
            await last_word(lambda: send_alert(alert))
    finally:
        await anyio.aclose_forcefully(transport)


async def last_word(send: Callable[[], Awaitable[None]]) -> None:
    """Run ``send``, the last thing a channel sends (an alert or a CLOSE), as best effort:
    shielded from cancellation, bounded by :data:`CLOSE_TIMEOUT`, and any ``Exception``
    it raises dropped, so the failure that ended the channel is the one reported.
    Cancellation and other ``BaseException``s are not dropped."""
    with anyio.move_on_after(CLOSE_TIMEOUT, shield=True), contextlib.suppress(Exception):
        await send()


def channel_attributes(result: HandshakeResult, *, initiator: bool
                       ) -> dict[Any, Callable[[], Any]]:
    """The typed attributes of a channel established with ``result``."""
    role = Role.INITIATOR if initiator else Role.RESPONDER
    return {
        AgentAuthAttribute.peer_id: lambda: result.peer_id,
        AgentAuthAttribute.peer_key: lambda: result.peer,
        AgentAuthAttribute.channel_binding: lambda: result.channel_binding,
        AgentAuthAttribute.role: lambda: role,
        AgentAuthAttribute.peer_extensions: lambda: result.peer_extensions,
    }


def transport_error(exc: BaseException, when: str) -> TransportError:
    """Translate an anyio or OS error of the transport, once, at the edge."""
    if isinstance(exc, anyio.EndOfStream):
        return TransportError(f"the transport ended {when}", code="unexpected_eof")
    return TransportError(f"the transport failed {when} ({type(exc).__name__})",
                          code="connection_lost")

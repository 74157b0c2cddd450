"""What the two channel classes share: one base, :class:`Channel`, holding the rules of an
established channel once (the time limits, the locks, the order of ending, the state
checks), so that a fix made for byte streams holds for message transports too.

A channel class says only how messages cross its transport: :meth:`Channel._handshake`
runs the handshake, :meth:`Channel._frame` wraps a message for the transport and
:meth:`Channel._write` hands it over, :meth:`Channel._read` takes the next protocol
message from it, and :meth:`Channel._fail` says whether an error ends the channel (a byte
stream: every error does, since the peer cannot be followed past it) or only the call (a
message transport: a forged or replayed item must not let a forger end the channel).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Generic, NoReturn, Self, TypeVar

import anyio
from anyio.abc import ByteStream, ObjectStream, UnreliableObjectStream

from .. import audit
from ..alert import is_alert, read_alert
from ..errors import AgentAuthError, DecodeError, InvalidArgument, RemoteError
from ..handshake import HandshakePolicy, Initiator, Responder, Role
from ..identity import Identity, PeerKey
from ..session import Session
from ._common import (
    AgentAuthAttribute,
    Limits,
    channel_attributes,
    check_limits,
    establish,
    handshake_engine,
    last_word,
    transport_error,
)

__all__ = ["TRANSPORT_ERRORS", "Channel", "Construct"]

#: What a transport raises when it fails or ends; translated once, by :func:`transport_error`.
TRANSPORT_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError,
                    anyio.EndOfStream, OSError)

TransportT = TypeVar("TransportT", bound="ByteStream | UnreliableObjectStream[bytes]")
ChannelT = TypeVar("ChannelT", bound="Channel[Any]")

#: Builds a channel once its handshake is done: (session, attributes, limits) -> channel.
Construct = Callable[[Session, Mapping[Any, Callable[[], Any]], Limits], ChannelT]


class Channel(ObjectStream[bytes], Generic[TransportT]):
    """An established channel of whole messages over ``transport_stream``.

    ``send`` and ``receive`` may run in different tasks at once; concurrent calls of the
    same one wait their turn.
    """

    #: The session's mode: ordered (a byte stream) or unordered (a message transport).
    _ORDERED: ClassVar[bool]

    def __init__(self, transport: TransportT, session: Session,
                 attributes: Mapping[Any, Callable[[], Any]], limits: Limits) -> None:
        self.transport_stream = transport
        self._session = session
        self._attributes = attributes
        self._limits = limits
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._receive_lock = anyio.Lock(fast_acquire=True)
        self._started = self._active = time.monotonic()
        self._error: AgentAuthError | None = None  # what ended the channel, for good
        self._eof_sent = False
        self._eof_received = False
        self._closed = False
        # An initiator reads a short message as an alert until the responder's first
        # session message is accepted (spec 4.14: the responder may have refused HS3), and
        # on a message transport only within the handshake timeout from now (DONE).
        self._alert_possible = attributes[AgentAuthAttribute.role]() is Role.INITIATOR

    # ---------------------------------------------------------------- creation

    @classmethod
    async def wrap(
        cls,
        transport: TransportT,
        identity: Identity,
        policy: HandshakePolicy,
        *,
        initiator: bool,
        expect: str | PeerKey | None = None,
        extensions: Mapping[str, bytes] | None = None,
        handshake_timeout: float | None = None,
        idle_timeout: float | None = None,
        max_lifetime: float | None = None,
    ) -> Self:
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
                                  extensions=extensions, ordered=cls._ORDERED)
        async def send_alert(alert: bytes) -> None:
            await transport.send(cls._frame(alert))

        construct = await establish(transport, limits,
                                    lambda: cls._handshake(engine, transport), engine,
                                    send_alert)
        result = engine.result
        assert result is not None
        return construct(result.session, channel_attributes(result, initiator=initiator),
                         limits)

    @classmethod
    @abstractmethod
    def _handshake(cls, engine: Initiator | Responder, transport: TransportT
                   ) -> Awaitable[Construct[Self]]:
        """Run the handshake over ``transport``; return what builds the channel."""

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

    # ---------------------------------------------------------------- the transport

    @staticmethod
    def _frame(message: bytes) -> bytes:
        """``message`` as the transport carries it."""
        return message

    @abstractmethod
    async def _read(self) -> bytes:
        """The next protocol message from the transport."""

    def _fail(self, error: AgentAuthError) -> NoReturn:
        """Raise ``error``, and first, if it ends the channel, remember it."""
        raise error

    async def _write(self, message: bytes, when: str) -> None:
        """Hand ``message`` to the transport (the send lock held). A channel class that
        frames its messages, or bounds a send, says so here."""
        try:
            await self.transport_stream.send(message)
        except TRANSPORT_ERRORS as exc:
            self._fail(transport_error(exc, when))
        self._active = time.monotonic()

    # ---------------------------------------------------------------- sending

    async def send(self, item: bytes) -> None:
        """Encrypt ``item`` and send it as one message."""
        if type(item) is not bytes:
            raise InvalidArgument("messages are bytes")
        async with self._send_lock:
            self._check_usable(sending=True)
            if self._limits.passed(self._started, self._active):
                await self._expire(holding_send_lock=True)
            await self._write(self._session.seal(item), "sending")

    async def send_eof(self) -> None:
        """Send CLOSE: this side sends nothing more; the peer's ``receive`` ends."""
        async with self._send_lock:
            if self._eof_sent or self._error is not None or self._closed:
                return
            self._eof_sent = True
            await self._write(self._session.close(), "sending CLOSE")

    # ---------------------------------------------------------------- receiving

    async def receive(self) -> bytes:
        """The next message from the peer.

        Raises :class:`anyio.EndOfStream` once the peer has sent CLOSE, and a typed
        agentauth error if anything else ends the call (or the channel).
        """
        async with self._receive_lock:
            while True:
                self._check_usable(sending=False)
                message = await self._within_limits()
                if self._alert_possible and is_alert(message) and self._alert_in_time():
                    self._refused(message)
                try:
                    payload = self._session.open(message)
                except RemoteError as exc:
                    self._fail(exc)
                self._active = time.monotonic()
                self._alert_possible = False
                if payload is not None:
                    return payload
                if self._session.peer_closed:
                    self._eof_received = True
                    raise anyio.EndOfStream
                # REKEY: nothing to deliver; read on.

    async def _within_limits(self) -> bytes:
        limits, read = self._limits, self._read
        while True:
            deadline = limits.deadline(self._started, self._active)
            try:
                if deadline is None:
                    return await read()
                with anyio.fail_after(max(deadline - time.monotonic(), 0)):
                    return await read()
            except TimeoutError:
                if not limits.passed(self._started, self._active):
                    continue  # a send moved the idle clock meanwhile: wait on
                await self._expire()
            except DecodeError as exc:  # the transport carried no protocol message
                self._fail(exc)
            except TRANSPORT_ERRORS as exc:
                if self._closed:  # closed here, by another task
                    raise anyio.ClosedResourceError from None
                self._fail(transport_error(exc, "receiving (no CLOSE came first)"))

    def _alert_in_time(self) -> bool:
        # A responder that refuses HS3 answers within one round trip. On a message
        # transport a forged item after that is only a rejected message (5.5), so it must
        # not end the channel; on a byte stream any forged frame ends it anyway, and a
        # refusal may wait in the stream unread, so there the window has no time bound.
        return self._ORDERED or (time.monotonic() - self._started
                                 <= self._limits.handshake_timeout)

    def _refused(self, message: bytes) -> NoReturn:
        """Read ``message`` as the responder's alert (spec 4.14): a valid one ends the
        channel, on any transport, with the peer's claim; a malformed one is a rejected
        message like any other."""
        try:
            refused = read_alert(message)
        except DecodeError as exc:
            self._fail(exc)
        self._error = refused  # the responder keeps no session: nothing more can come
        # Unauthenticated (spec 4.14): the event names no peer, as before DONE, lest the
        # claim be recorded as the authenticated peer's.
        audit.emit("handshake_refused", role=Role.INITIATOR.value, code=refused.code,
                   claimed=refused.claimed)
        raise refused

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
            raise self._error.again(f"the channel has ended: {self._error.message}")
        if self._closed:
            raise anyio.ClosedResourceError
        if sending and self._eof_sent:
            raise anyio.ClosedResourceError
        if not sending and self._eof_received:
            raise anyio.EndOfStream

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
        await last_word(lambda: self.transport_stream.send(self._frame(self._session.close())))

    async def aclose(self) -> None:
        """Send CLOSE if not yet sent (waiting at most a second), then close the transport.

        Never hangs, and never raises for the state the channel is in.
        """
        if self._closed:
            return
        await self._close_quietly()


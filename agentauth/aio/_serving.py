"""What a listener does beneath the handshake (spec 5.10): accept connections through
resource errors, and admit handshakes under a global and a per-source half-open cap."""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, Protocol, runtime_checkable

import anyio
from anyio.abc import Listener, SocketAttribute, TaskGroup
from anyio.streams.stapled import MultiListener
from anyio.streams.tls import TLSListener, TLSStream

from ..errors import HandshakeTimeout, TransportError

__all__ = ["ACCEPT_CAPACITY_ERRNOS", "ACCEPT_RETRY_ERRNOS", "UNKNOWN_SOURCE", "Accepting",
           "HalfOpen", "Secure", "Throttle", "accept_forever", "plain", "serve_parts",
           "source_of"]

logger = logging.getLogger("agentauth.aio")

#: accept(2) errors that say the process or the system is out of a resource for a moment;
#: the same set as trio's ``serve_listeners`` retries.
ACCEPT_CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM,
                                           errno.ENOBUFS})
#: Errors of one pending connection that Linux's accept(2) passes on (its manual page asks
#: callers to retry them), and ECONNABORTED: none says anything about the listener.
_CONNECTION_ERRNOS: Final = frozenset(
    getattr(errno, name) for name in (
        "ECONNABORTED", "EPROTO", "EPERM", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET",
        "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH")
    if hasattr(errno, name))
#: Every accept error that is retried after a back-off instead of ending the listener.
ACCEPT_RETRY_ERRNOS: Final = ACCEPT_CAPACITY_ERRNOS | _CONNECTION_ERRNOS

#: The back-off after a failed accept: the first wait, doubled per failure up to the last.
FIRST_BACKOFF: Final = 0.01
LAST_BACKOFF: Final = 1.0
#: A repeated log line (a failing accept, a refused connection) is written at most this
#: often, in seconds, with the count of those held back.
LOG_INTERVAL: Final = 10.0


class Throttle:
    """Writes a repeated log line at most once per ``interval`` seconds, and says how many
    were held back since the last one (a flood must not become a flood of log lines)."""

    __slots__ = ("held", "interval", "next")

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self.held = 0
        self.next = -math.inf

    def log(self, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self.next:
            self.held += 1
            return
        if self.held:
            message += " (%d more like this since the last report)"
            args += (self.held,)
        self.held = 0
        self.next = now + self.interval
        logger.log(level, message, *args)


@runtime_checkable
class Accepting(Protocol):
    """A listener with an ``accept()`` (anyio's socket listeners): one we can serve."""

    async def accept(self) -> Any: ...


def accept_errno(exc: BaseException) -> int | None:
    """The errno of a failed accept: on trio anyio raises ``BrokenResourceError`` from the
    ``OSError``, on asyncio the ``OSError`` itself."""
    for error in (exc, exc.__cause__):
        if isinstance(error, OSError) and error.errno is not None:
            return error.errno
    return None


async def accept_forever(listener: Accepting, start: Callable[[Any], object],
                         count_error: Callable[[], object]) -> TransportError | None:
    """Accept connections from ``listener`` and ``start`` a task for each, until it closes.

    An error in :data:`ACCEPT_RETRY_ERRNOS` is counted, logged (throttled) and retried:
    a resource error (:data:`ACCEPT_CAPACITY_ERRNOS`) after a back-off of 10 ms doubling
    to 1 s, reset by the next success; an error of one pending connection at once, since
    it says nothing about the next one (a back-off would let a peer who aborts its own
    connections hold everyone else's accept back). A closed listener ends the loop
    (``None``); any other exception ends it too, and is returned (not raised, so that it
    cannot cancel the tasks of established channels).
    """
    errors, recoveries, aborted = Throttle(), Throttle(), Throttle()
    delay, failures = FIRST_BACKOFF, 0
    while True:
        try:
            stream = await listener.accept()
        except anyio.ClosedResourceError:
            return None
        except Exception as exc:  # whatever it is, the channels run on
            code = accept_errno(exc)
            if code is None or code not in ACCEPT_RETRY_ERRNOS:
                what = type(exc).__name__ if code is None else errno.errorcode.get(code, code)
                logger.error("accept failed with %s: no longer accepting on this listener; "
                             "established channels run on", what)
                return TransportError(f"the listener failed ({what}) and stopped accepting",
                                      code="connection_lost")
            name = errno.errorcode.get(code, str(code))
            count_error()
            if code not in ACCEPT_CAPACITY_ERRNOS:
                aborted.log(logging.WARNING, "a connection failed before it was accepted "
                            "(%s); accepting the next", name)
                await anyio.lowlevel.checkpoint()  # never a busy loop, whatever accept does
                continue
            failures += 1
            errors.log(logging.ERROR, "accept failed with %s (%s); retrying in %.2f s",
                       name, os.strerror(code), delay)
            await anyio.sleep(delay)
            delay = min(2 * delay, LAST_BACKOFF)
            continue
        if failures:
            recoveries.log(logging.WARNING, "accepting again after %d failed accepts",
                           failures)
            delay, failures = FIRST_BACKOFF, 0
        start(stream)


#: What turns an accepted connection into the byte stream the handshake runs over (a TLS
#: handshake, or nothing); it raises an ``AgentAuthError`` and closes the connection when
#: it fails.
Secure = Callable[[Any], Awaitable[Any]]
#: What serves one accepted connection: the connection and how to secure it.
One = Callable[[Any, Secure], Coroutine[Any, Any, None]]


async def plain(stream: Any) -> Any:
    """A connection that needs no securing."""
    return stream


def _tls(listener: TLSListener, inner: Secure) -> Secure:
    """``inner``, then the TLS handshake ``listener`` would run, under its time limit."""
    async def secure(stream: Any) -> Any:
        stream = await inner(stream)
        try:
            with anyio.fail_after(listener.handshake_timeout):
                return await TLSStream.wrap(stream, ssl_context=listener.ssl_context,
                                            standard_compatible=listener.standard_compatible)
        except BaseException as exc:
            await anyio.aclose_forcefully(stream)
            if isinstance(exc, TimeoutError):
                raise HandshakeTimeout("the TLS handshake did not complete in time") from exc
            if isinstance(exc, Exception):
                raise TransportError(f"the TLS handshake failed ({type(exc).__name__})",
                                     code="connection_lost") from exc
            raise
    return secure


def _parts(listener: Listener[Any], secure: Secure) -> list[tuple[Listener[Any], Secure]]:
    """The listeners to serve for ``listener``, each with how to secure its connections.

    A ``MultiListener`` is served part by part; an anyio ``TLSListener`` (whose own loop
    would run its TLS handshakes outside the half-open caps and end on the first
    ``EMFILE``) is served through the listener it wraps, its TLS handshake done as part of
    each connection's admitted handshake.
    """
    if isinstance(listener, MultiListener):
        return [part for inner in listener.listeners for part in _parts(inner, secure)]
    if (isinstance(listener, TLSListener) and type(listener).serve is TLSListener.serve
            and type(listener).handle_handshake_error is TLSListener.handle_handshake_error):
        return _parts(listener.listener, _tls(listener, secure))
    return [(listener, secure)]


async def serve_parts(listener: Listener[Any], one: One, handlers: TaskGroup,
                      count_error: Callable[[], object]) -> TransportError | None:
    """Run ``one`` in ``handlers`` for every connection of every part of ``listener`` (see
    :func:`_parts`) until all have closed or failed.

    Parts with ``accept()`` go through :func:`accept_forever`; others through their own
    ``serve``, whose errors end that part only. The first failure is returned, not raised:
    it must not cancel ``handlers``.
    """
    failures: list[TransportError] = []

    async def serve_part(part: Listener[Any], secure: Secure) -> None:
        if isinstance(part, Accepting):
            failure = await accept_forever(
                part, lambda stream: handlers.start_soon(one, stream, secure), count_error)
        else:
            failure = await _serve_own_loop(part, lambda stream: one(stream, secure),
                                            handlers)
        if failure is not None:
            failures.append(failure)

    async with anyio.create_task_group() as accepting:
        for part, secure in _parts(listener, plain):
            accepting.start_soon(serve_part, part, secure)
    return failures[0] if failures else None


async def _serve_own_loop(part: Listener[Any], one: Callable[[Any], Awaitable[None]],
                          handlers: TaskGroup) -> TransportError | None:
    try:
        await part.serve(one, handlers)
    except Exception as exc:
        closed = (isinstance(exc, anyio.ClosedResourceError)
                  or (isinstance(exc, ExceptionGroup)
                      and exc.split(anyio.ClosedResourceError)[1] is None))
        if closed:
            return None
        logger.error("%s failed with %s: no longer accepting on it; established channels "
                     "run on", type(part).__name__, type(exc).__name__)
        return TransportError(f"the listener failed ({type(exc).__name__}) and stopped "
                              f"accepting", code="connection_lost")
    return None


#: The well-known NAT64 prefix (RFC 6052): an IPv4 address in its last 32 bits.
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
#: The source of an IP connection whose peer address cannot be read (the peer is gone).
UNKNOWN_SOURCE: Final = "unknown"


def source_of(transport: Any) -> str | None:
    """The source a connection's handshake counts against: the peer's IPv4 address, the
    /64 prefix of its IPv6 address (one host or site usually holds a whole /64; an
    IPv4-mapped, Teredo or NAT64 address counts as the IPv4 address it carries),
    :data:`UNKNOWN_SOURCE` for an IP connection whose peer address cannot be read and for
    one whose address getters raise (whatever they raise), or None for a transport that
    is not IP (a Unix socket: its peers are local and already bounded by file
    permissions)."""
    try:
        address = transport.extra(SocketAttribute.remote_address, None)
        ip = transport.extra(SocketAttribute.local_port, None) is not None
    except Exception:  # a getter that fails never fails the listener
        return UNKNOWN_SOURCE
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return UNKNOWN_SOURCE if ip else None
    try:
        peer = ipaddress.ip_address(address[0])
    except ValueError:
        return address[0]
    if isinstance(peer, ipaddress.IPv6Address):
        if peer.ipv4_mapped is not None:
            return str(peer.ipv4_mapped)
        if peer.teredo is not None:  # every client of a Teredo server shares its /64
            return str(peer.teredo[1])
        if peer in _NAT64:  # every IPv4 host behind a NAT64 gateway shares its /96
            return str(ipaddress.IPv4Address(int(peer) & 0xFFFFFFFF))
        return f"{ipaddress.IPv6Address(int(peer) >> 64 << 64)}/64"
    return str(peer)


class HalfOpen:
    """The handshakes in progress: at most ``limit`` in all and ``per_source`` from any one
    source. The per-source counts hold only sources with a handshake in progress, so they
    take O(1) per step and never more than ``limit`` entries."""

    __slots__ = ("limit", "per_source", "sources", "total")

    def __init__(self, limit: int, per_source: int) -> None:
        self.limit = limit
        self.per_source = per_source
        self.total = 0
        self.sources: dict[str, int] = {}

    def admit(self, source: str | None) -> str | None:
        """Take a place for a handshake from ``source``: None, or why there is none."""
        if self.total >= self.limit:
            return f"{self.total} handshakes already in progress"
        if source is not None:
            held = self.sources.get(source, 0)
            if held >= self.per_source:
                return f"{held} handshakes from {source} already in progress"
            self.sources[source] = held + 1
        self.total += 1
        return None

    def release(self, source: str | None) -> None:
        """Give back the place :meth:`admit` took for ``source``."""
        self.total -= 1
        if source is not None:
            held = self.sources.pop(source) - 1
            if held:
                self.sources[source] = held

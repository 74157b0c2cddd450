"""TCP clients and servers: :func:`connect`, :func:`create_listener` and :func:`serve`.

A listener (modelled on anyio's ``TLSListener``) wraps every accepted connection: it runs
the handshake under a time limit, caps how many handshakes may be in progress at once, in
all and from any one source (connections over a cap are closed at once), logs each failure
with its code, tells the peer why (an alert, spec 4.14) and drops the connection without
disturbing the others, and runs the handler
of every established channel in a task group. Its accept loop outlives resource errors
(``EMFILE`` and the like: backed off and retried), and a listener that fails or closes
never takes established channels down with it. Cancelling :meth:`AgentAuthListener.serve`
shuts everything down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
from anyio.abc import AnyByteStream, Listener, TaskGroup

from ..errors import AgentAuthError, HandshakeTimeout, InvalidArgument, TransportError
from ..handshake import HandshakePolicy
from ..identity import Identity, PeerKey, peer_key
from ..verdict import check_bounds
from ._common import check_limits
from ._serving import HalfOpen, Secure, Throttle, serve_parts, source_of
from .stream import AgentAuthStream

__all__ = ["AgentAuthListener", "connect", "create_listener", "serve"]

logger = logging.getLogger("agentauth.aio")

Handler = Callable[[AgentAuthStream], Awaitable[Any]]


async def connect(
    host: str,
    port: int,
    identity: Identity,
    *,
    expect: str | PeerKey,
    policy: HandshakePolicy | None = None,
    extensions: Mapping[str, bytes] | None = None,
    handshake_timeout: float | None = None,
    idle_timeout: float | None = None,
    max_lifetime: float | None = None,
) -> AgentAuthStream:
    """Connect over TCP to the agent ``expect`` and return the established channel.

    ``expect`` pins the peer: the handshake fails with ``unexpected_peer`` if someone else
    answers. ``policy`` defaults to trusting exactly that peer. The connection attempt
    and the handshake together are bounded by ``handshake_timeout`` (default: the
    policy's ``timeout``).
    """
    pinned = peer_key(expect)
    if policy is None:
        policy = HandshakePolicy(trust=_Pinned(pinned))
    limits = check_limits(policy, handshake_timeout, idle_timeout, max_lifetime)
    deadline = time.monotonic() + limits.handshake_timeout  # one bound for both steps
    try:
        with anyio.fail_after(limits.handshake_timeout):
            transport = await anyio.connect_tcp(host, port)
    except TimeoutError:
        raise HandshakeTimeout(f"could not connect to {host}:{port} within "
                               f"{limits.handshake_timeout} s") from None
    except OSError as exc:
        raise TransportError(f"could not connect to {host}:{port} "
                             f"({type(exc).__name__})", code="connection_lost") from exc
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        await anyio.aclose_forcefully(transport)
        raise HandshakeTimeout(f"the handshake did not finish within "
                               f"{limits.handshake_timeout} s")
    return await AgentAuthStream.wrap(
        transport, identity, policy, initiator=True, expect=pinned, extensions=extensions,
        handshake_timeout=remaining, idle_timeout=idle_timeout, max_lifetime=max_lifetime)


class _Pinned:
    """A trust policy that accepts exactly one key (compared in constant time)."""

    __slots__ = ("key",)

    def __init__(self, key: PeerKey) -> None:
        self.key = key

    def __call__(self, peer: PeerKey) -> bool:
        return peer == self.key


class AgentAuthListener(Listener[AgentAuthStream]):
    """Wraps each connection of a byte-stream listener in an agentauth channel.

    ``policy`` decides whom to accept (an allow-list or a callback); ``max_half_open``
    caps the handshakes in progress, and ``max_half_open_per_source`` those from any one
    source (an IPv4 address or an IPv6 /64; default ``max(1, max_half_open // 16)``;
    connections that are not IP count only against the global cap);
    ``handshake_timeout`` bounds each.
    """

    def __init__(
        self,
        listener: Listener[Any],
        identity: Identity,
        policy: HandshakePolicy,
        *,
        extensions: Mapping[str, bytes] | None = None,
        handshake_timeout: float | None = None,
        max_half_open: int = 256,
        max_half_open_per_source: int | None = None,
        idle_timeout: float | None = None,
        max_lifetime: float | None = None,
    ) -> None:
        max_half_open, max_half_open_per_source = check_bounds(
            max_half_open, max_half_open_per_source,
            ("max_half_open", "max_half_open_per_source"))
        if not isinstance(identity, Identity):
            raise InvalidArgument("identity must be an Identity")
        self.listener = listener
        self.identity = identity
        self.policy = policy
        self._extensions = extensions
        self._limits = check_limits(policy, handshake_timeout, idle_timeout, max_lifetime)
        self._half_open = HalfOpen(max_half_open, max_half_open_per_source)
        # Log lines a flood could repeat: each kind written at most once per 10 s (the
        # audit log, if configured, still records every refused handshake).
        self._refusals, self._aborts = Throttle(), Throttle()
        self._failures: dict[str, Throttle] = {}  # by error code: a finite registry
        #: Counters, for monitoring: handshakes completed, failed, refused at a cap, and
        #: accepts that failed and were retried.
        self.accepted = self.failed = self.refused = self.accept_errors = 0

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The wrapped listener's attributes (its address, for example)."""
        return self.listener.extra_attributes

    async def serve(self, handler: Handler, task_group: TaskGroup | None = None) -> None:
        """Accept connections forever, running ``handler`` for each established channel.

        The channel is closed when the handler returns or raises; a handler's exception
        is logged, not propagated, so one connection cannot stop the server. Handlers run in
        ``task_group`` (default: one of serve's own). An accept that fails for want of a
        resource is retried after a back-off; when the listener is closed, serve returns
        once the handlers in its own task group have; when it fails otherwise, it stops
        accepting and, at that same point, raises ``TransportError`` (``connection_lost``).
        Listeners without ``accept()`` (anyio's ``TLSListener``) serve through their own
        loop.
        """
        async def one(transport: AnyByteStream, secure: Secure) -> None:
            source = source_of(transport)
            refusal = self._half_open.admit(source)
            if refusal is not None:
                self.refused += 1
                self._refusals.log(logging.WARNING, "refused a connection: %s", refusal)
                await anyio.aclose_forcefully(transport)
                return
            try:
                channel = await AgentAuthStream.wrap(
                    await secure(transport), self.identity, self.policy, initiator=False,
                    extensions=self._extensions,
                    handshake_timeout=self._limits.handshake_timeout,
                    idle_timeout=self._limits.idle_timeout,
                    max_lifetime=self._limits.max_lifetime)
            except AgentAuthError as exc:
                self.failed += 1
                self._failures.setdefault(exc.code, Throttle()).log(
                    logging.INFO, "handshake failed: %s", exc)
                return
            except Exception as exc:  # a fault outside the protocol: this connection only
                # (a raising trust or credentials callback is already a typed error,
                # invalid_argument, by agentauth.verdict: the branch above logs it)
                self.failed += 1
                self._aborts.log(logging.WARNING, "handshake aborted by %s",
                                 type(exc).__name__)
                return
            finally:
                self._half_open.release(source)
            self.accepted += 1
            async with channel:
                try:
                    await handler(channel)
                except AgentAuthError as exc:
                    logger.info("channel with %s ended: %s", channel.peer_id, exc)
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception:
                    logger.exception("handler for %s raised", channel.peer_id)

        def count_error() -> None:
            self.accept_errors += 1

        async with AsyncExitStack() as stack:
            if task_group is None:
                task_group = await stack.enter_async_context(anyio.create_task_group())
            failure = await serve_parts(self.listener, one, task_group, count_error)
        if failure is not None:
            raise failure

    async def aclose(self) -> None:
        """Stop listening. Established channels run on until their handlers return; then
        :meth:`serve` returns (cancelling it is what closes them at once)."""
        await self.listener.aclose()


async def create_listener(
    host: str,
    port: int,
    identity: Identity,
    policy: HandshakePolicy,
    **options: Any,
) -> AgentAuthListener:
    """A TCP listener on ``host:port`` (port 0: any free port) that wraps connections.

    ``options`` are :class:`AgentAuthListener`'s keyword arguments. The bound port is
    ``listener.extra(anyio.abc.SocketAttribute.local_port)``.
    """
    tcp = await anyio.create_tcp_listener(local_host=host, local_port=port)
    try:
        return AgentAuthListener(tcp, identity, policy, **options)
    except BaseException:
        await tcp.aclose()
        raise


async def serve(
    host: str,
    port: int,
    identity: Identity,
    policy: HandshakePolicy,
    handler: Handler,
    **options: Any,
) -> None:
    """Serve ``handler`` on ``host:port`` until cancelled."""
    listener = await create_listener(host, port, identity, policy, **options)
    async with listener:
        await listener.serve(handler)

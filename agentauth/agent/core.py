"""The :class:`Agent`: one identity with its trust, stores and audit, serving and making
requests on channels (spec section 15) and sealing and opening envelopes.

The rules live in the layers below; this module ties them together and does the I/O:
:class:`~agentauth.agent.frames.Requests` checks every request, :mod:`agentauth.aio` makes
the channels, :mod:`agentauth.capability` the chains, :mod:`agentauth.envelope` the
envelopes, :mod:`agentauth.stores` the stores, and :mod:`agentauth.http` (the ``http``
extra, imported on first use) the HTTP client auth and middleware (spec 15.7).
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import anyio
import anyio.to_thread
from anyio.abc import SocketAttribute, TaskGroup

from ..aio import (
    AgentAuthAttribute,
    AgentAuthListener,
    AgentAuthStream,
    async_replay_store,
    create_listener,
    exchange_revocations,
)
from ..aio import connect as aio_connect
from ..aio import open_envelope as aio_open_envelope
from ..audit import AUDIT_LOGGER
from ..capability.chain import Link, decode_chain, delegate, encode_chain
from ..capability.grants import Grant, Request
from ..capability.revocation import RevocationStore, revoke
from ..envelope import Envelope, seal
from ..errors import (
    AgentAuthError,
    InvalidArgument,
    InvalidState,
    ProtocolViolation,
    RequestError,
    TransportError,
)
from ..handshake import HandshakePolicy, accept_any_peer
from ..identity import Identity, PeerKey
from ..keys.auditlog import AuditFileHandler
from ..keys.trust import TrustStore
from ..replay import ReplayStore
from ..stores import (
    MemoryReplayStore,
    MemoryRevocationStore,
    RedisReplayStore,
    RedisRevocationStore,
    SQLiteReplayStore,
    SQLiteRevocationStore,
)
from ..verdict import is_seconds
from .frames import (
    ERROR,
    MAX_CHAINS,
    MAX_IN_FLIGHT,
    RESPONSE,
    Call,
    Checking,
    Refused,
    Requests,
    Route,
    body_limit,
    decode_frame,
    encode_cancel,
    encode_error,
    encode_present,
    encode_request,
    encode_response,
    error_from_frame,
    settle,
)

if TYPE_CHECKING:  # the http extra is optional: imported when an agent first uses it
    from ..http import AgentAuth, AgentAuthMiddleware, Verifier

__all__ = ["Agent", "Incoming", "Peer", "Server"]

logger = logging.getLogger("agentauth.agent")

#: How long closing waits for requests in flight, by default (seconds).
DRAIN_TIMEOUT: Final = 5.0
#: Channels a server keeps open at once, in all and from one peer key, by default.
MAX_CHANNELS: Final = 1024
MAX_CHANNELS_PER_PEER: Final = 16
#: Handlers a server runs at once, in all and for one peer key, by default.
MAX_HANDLERS: Final = 2048
MAX_HANDLERS_PER_PEER: Final = 256

#: Worker threads one agent's stores may hold at once (a SQLite or Redis store is asked
#: from a thread; a slow one holds these, never every thread of the process).
STORE_THREADS: Final = 8
_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Trust = str | os.PathLike[str] | TrustStore | Callable[[PeerKey], bool] | Iterable[str] | None
Handler = Callable[["Incoming"], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a handler gets: a request that passed every check of spec 15.4."""

    peer_id: str
    resource: str
    action: str
    args: Mapping[str, int | str | bool]
    body: bytes = field(repr=False)  # a handler's log line shows neither
    capability: tuple[Link, ...] = field(repr=False)  # the verified chain, root first


def _seconds(ttl: str | float) -> int:
    if isinstance(ttl, str):
        match = _DURATION.fullmatch(ttl)
        if match is None:
            raise InvalidArgument("a ttl is seconds or a string such as '90s', '15m', '1h', "
                                  "'7d'")
        return int(match[1]) * _UNITS[match[2]]
    if not is_seconds(ttl, positive=True):
        raise InvalidArgument("a ttl is a positive number of seconds")
    return math.ceil(ttl)


class Agent:
    """One identity, its trust policy, its replay and revocation stores and its audit.

    ``trust`` says who may open a channel to this agent, whose envelopes it opens and
    whose signed HTTP requests its :meth:`asgi` middleware accepts: a trust store (or its
    path), a callable judging a :class:`PeerKey` (a :class:`~agentauth.keys.LiveTrust`
    follows a trust store file), or agent ids. With None, any peer that proves its key
    may open a channel (or sign an HTTP request), and every request still needs a
    capability rooted at one of ``anchors``; envelopes from any sender whose signature
    verifies are opened. ``anchors`` (agent id to resource namespace) are the
    roots a capability may start at: this agent itself (``"**"``), a trust store's
    anchors, and those given.

    ``state``: None keeps replay keys and revocation notices in memory; a ``redis://``
    URL keeps them in Redis; a path keeps them in SQLite files (``path`` and
    ``path.revocations``). Every request asks the revocation store about each link of its
    chain: a memory store in the serving task; a SQLite or Redis store in a worker thread
    (one hop per request for all its links, at most :data:`STORE_THREADS` at once per
    agent), so that while it waits the event loop serves other channels. Opening an
    envelope asks the replay store the same way, and so does the exchange of revocation
    notices when a channel opens.
    The stores ``state`` opens are the agent's: :meth:`aclose` closes them (a store
    used after that refuses with ``store_unavailable``).
    ``audit``: a path appends the audit events of this process to
    a hash-chained file (:class:`AuditFileHandler` on the ``agentauth.audit`` logger, at
    INFO) until :meth:`aclose`.

    A server bounds per peer key as well as in all (spec 15.3): ``max_channels_per_peer``
    and ``max_channels`` the channels open at once (one more is closed as it opens),
    ``max_in_flight`` the requests in flight on one channel, ``max_handlers_per_peer`` and
    ``max_handlers`` the handlers running at once (one more is refused ``over_limit``).
    ``drain_timeout`` is how long closing waits for handlers running.
    """

    def __init__(self, identity: Identity, *, trust: Trust = None,
                 anchors: Mapping[str, str] | None = None,
                 state: str | os.PathLike[str] | None = None,
                 audit: str | os.PathLike[str] | None = None,
                 max_in_flight: int = MAX_IN_FLIGHT,
                 drain_timeout: float = DRAIN_TIMEOUT,
                 max_channels: int = MAX_CHANNELS,
                 max_channels_per_peer: int = MAX_CHANNELS_PER_PEER,
                 max_handlers: int = MAX_HANDLERS,
                 max_handlers_per_peer: int = MAX_HANDLERS_PER_PEER) -> None:
        if not isinstance(identity, Identity):
            raise InvalidArgument("an agent's identity is an Identity")
        bounds = {"max_in_flight": max_in_flight, "max_channels": max_channels,
                  "max_channels_per_peer": max_channels_per_peer,
                  "max_handlers": max_handlers, "max_handlers_per_peer": max_handlers_per_peer}
        for name, bound in bounds.items():
            if type(bound) is not int or bound < 1:
                raise InvalidArgument(f"{name} is a positive integer")
        if max_channels_per_peer > max_channels or max_handlers_per_peer > max_handlers:
            raise InvalidArgument("a bound per peer is at most the global one")
        if not is_seconds(drain_timeout):
            raise InvalidArgument("drain_timeout is a finite number of seconds")
        self.identity = identity
        self.max_in_flight = max_in_flight
        self.drain_timeout = drain_timeout
        self.max_channels, self.max_channels_per_peer = max_channels, max_channels_per_peer
        self.max_handlers, self.max_handlers_per_peer = max_handlers, max_handlers_per_peer
        if isinstance(trust, str | os.PathLike):
            trust = TrustStore.load(trust)
        roots: dict[str, str] = {identity.agent_id: "**"}
        if isinstance(trust, TrustStore):
            roots.update(trust.anchors)
            self._trust: Callable[[PeerKey], bool] | None = trust.trusts
            self.policy = trust.handshake_policy()
        elif trust is None:
            self._trust = None
            self.policy = HandshakePolicy(trust=accept_any_peer)
        else:
            self.policy = HandshakePolicy(trust=trust)
            self._trust = self.policy.trusts
        roots.update(anchors or {})
        self.anchors: Mapping[str, str] = roots
        self.replay, self.revocations = _stores(state, roots)
        # A memory store answers at once: asked in the task, with no thread hop.
        self._inline = isinstance(self.revocations, MemoryRevocationStore)
        self._limiter = anyio.CapacityLimiter(STORE_THREADS)
        self._replay = async_replay_store(self.replay, limiter=self._limiter)
        self._audit = None if audit is None else AuditFileHandler(audit)
        self._audit_level = logging.NOTSET
        if self._audit is not None:  # every event, admissions (INFO) too, while open
            log = logging.getLogger(AUDIT_LOGGER)
            self._audit_level = log.level
            log.setLevel(min(log.getEffectiveLevel(), logging.INFO))
            log.addHandler(self._audit)
        self._routes: tuple[Route, ...] = ()
        self._servers: set[Server] = set()

    @classmethod
    def generate(cls, **options: Any) -> Agent:
        """An agent with a fresh identity (``options`` as for the constructor)."""
        return cls(Identity.generate(), **options)

    @classmethod
    def load(cls, key_path: str | os.PathLike[str], *,
             passphrase: str | bytes | None = None, **options: Any) -> Agent:
        """An agent whose identity is the key file at ``key_path``."""
        return cls(Identity.load(key_path, passphrase), **options)

    @property
    def id(self) -> str:
        """This agent's ``did:key`` id."""
        return self.identity.agent_id

    def __repr__(self) -> str:
        return f"Agent({self.id})"

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every server this agent runs (draining their requests), the stores its
        ``state`` opened and its audit file."""
        for server in list(self._servers):
            await server.aclose()
        for store in (self.replay, self.revocations):
            close = getattr(store, "close", None)
            if close is not None:  # SQLite and Redis; memory stores hold nothing to close
                await anyio.to_thread.run_sync(close, limiter=self._limiter)
        if self._audit is not None:
            log = logging.getLogger(AUDIT_LOGGER)
            log.removeHandler(self._audit)
            log.setLevel(self._audit_level)
            self._audit.close()
            self._audit = None

    # ------------------------------------------------------------ capabilities

    def handles(self, resource: str, action: str, *, capability: bool = True
                ) -> Callable[[Handler], Handler]:
        """Declare the decorated ``async def`` as the handler of ``action`` on the
        resources matching the pattern ``resource`` (a grant's pattern). A request reaches
        it only with a capability whose chain allows it (spec 15.4); with
        ``capability=False``, also without one, from any peer the agent's ``trust``
        admitted (an agent with such a handler must be given ``trust``)."""
        def register(handler: Handler) -> Handler:
            # A plain ``def`` would fail every request it gets: refused here, where the
            # mistake is made (a callable object is taken on trust).
            if not callable(handler) or ((inspect.isfunction(handler) or inspect.ismethod(
                    handler)) and not inspect.iscoroutinefunction(handler)):
                raise InvalidArgument("a handler is an async function (async def)")
            route = Route.make(resource, action, handler, capability=capability)
            self._routes = (*self._routes, route)
            return handler
        return register

    def delegate(self, to: str | PeerKey | Identity, grants: Iterable[Grant], *,
                 ttl: str | float = "1h", budget: int = 0,
                 parent: bytes | None = None) -> bytes:
        """A chain (its wire form) granting ``grants`` to ``to`` for ``ttl`` (seconds, or
        ``"15m"``, ``"1h"``...): a root link from this agent, or, under ``parent`` (a chain
        this agent holds), a link appended to it."""
        links = () if parent is None else decode_chain(parent)
        now = int(time.time())
        link = delegate(self.identity, to, grants, not_before=now,
                        expires=now + _seconds(ttl), budget=budget,
                        parent=links[-1] if links else None)
        return encode_chain((*links, link))

    def revoke(self, chain: bytes | Sequence[Link]) -> bytes:
        """Revoke the last link of ``chain`` (this agent issued a link of it): the notice
        is kept in this agent's store, refused from then on, and passed to peers on
        channels opened later; it is also returned."""
        links = decode_chain(chain) if isinstance(chain, bytes) else tuple(chain)
        notice = revoke(self.identity, links)
        self.revocations.add(notice)
        return notice

    async def _checked(self, flow: Checking) -> Call | Refused | int | None:
        """Drive one frame's check, giving it the ``revoked`` callback it asks for: a
        memory store's own method (asked in this task, as the check goes); for a store
        that does I/O, the answers for the chain's links fetched first, all in one worker
        thread (see the class). A store that fails there fails each link asked about, as
        it would have failed in the check (fail closed: the request is refused with it)."""
        if self._inline:
            return settle(flow, self.revocations.is_revoked)
        try:
            ids = next(flow)
            while True:
                if not ids:  # nothing to look up: no thread hop
                    ids = flow.send(self.revocations.is_revoked)
                    continue
                try:
                    answers = await anyio.to_thread.run_sync(self._lookup, ids,
                                                             limiter=self._limiter)
                except Exception as exc:
                    ids = flow.send(_raising(exc))
                else:
                    ids = flow.send(dict(zip(ids, answers, strict=True)).__getitem__)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _lookup(self, ids: tuple[bytes, ...]) -> list[object]:
        return [self.revocations.is_revoked(link_id) for link_id in ids]

    # ------------------------------------------------------------ envelopes

    def seal(self, to: str | PeerKey | Identity, body: bytes, *, encrypt: bool = False,
             reply_to: bytes = b"") -> bytes:
        """A one-shot envelope of ``body`` from this agent to ``to``."""
        return seal(self.identity, to, body, encrypt=encrypt, reply_to=reply_to)

    async def open(self, sealed: bytes) -> Envelope:
        """Open an envelope sent to this agent: verified, from a sender this agent trusts,
        its nonce checked and kept in the replay store."""
        return await aio_open_envelope(sealed, self.identity, self._replay, trust=self._trust)

    # ------------------------------------------------------------ HTTP

    def http_auth(self, server: str | PeerKey | None = None, *,
                  capability: bytes | None = None, **options: Any) -> AgentAuth:
        """An ``httpx.Auth`` that signs every request as this agent (spec 13) and checks
        that every answer is signed by ``server`` (an agent id or key: the agent this one
        expects to answer, as ``expect`` is for :meth:`connect`; None: answers are not
        checked). ``capability`` (a chain this agent holds) rides on every request, for
        the resource its method and path name. ``options`` are
        :class:`~agentauth.http.AgentAuth`'s. Needs the ``http`` extra."""
        _own(options, "identity", "chain")
        auth: AgentAuth = _http().AgentAuth(self.identity, server=server, chain=capability,
                                            **options)
        return auth

    def asgi(self, app: Any, *, authorities: Iterable[str] | None = None,
             require_capability: bool | None = None, web_bot_auth: bool = False,
             **options: Any) -> AgentAuthMiddleware:
        """``app`` behind the ASGI middleware of spec 13, configured as this agent's
        channels are: requests signed by a peer this agent's ``trust`` admits, their
        nonces kept in this agent's replay store, their capabilities checked against its
        ``anchors`` and revocation store; answers signed as this agent.

        ``require_capability`` (default: True when the agent has no ``trust``, as every
        request on its channels then needs a capability) refuses a request that carries
        none (403). ``authorities`` are this server's hosts (see
        :class:`~agentauth.http.Verifier`: give them whenever they are known);
        ``options`` are :class:`~agentauth.http.AgentAuthMiddleware`'s. Needs the
        ``http`` extra."""
        _own(options, "identity", "verifier", "replay", "anchors", "revoked")
        if require_capability is None:
            require_capability = self._trust is None
        elif type(require_capability) is not bool:
            raise InvalidArgument("require_capability is True, False or None")
        elif not require_capability and self._trust is None:
            raise InvalidState("requests without a capability need a trust policy: give "
                               "the agent trust=")
        middleware: AgentAuthMiddleware = _http().AgentAuthMiddleware(
            app, identity=self.identity,
            verifier=self.verifier(authorities=authorities, web_bot_auth=web_bot_auth),
            replay=self.replay, anchors=self.anchors, revoked=self.revocations.is_revoked,
            require_capability=require_capability, **options)
        return middleware

    def verifier(self, **options: Any) -> Verifier:
        """A :class:`~agentauth.http.Verifier` that accepts request signers as this
        agent's ``trust`` admits peers to its channels (the same policy object, asked on
        every request, so a change to it governs both); with no ``trust``, any signer
        whose key verifies. ``options`` are the verifier's."""
        _own(options, "trust")
        trust = accept_any_peer if self._trust is None else self._trust
        verifier: Verifier = _http().Verifier(trust=trust, **options)
        return verifier

    # ------------------------------------------------------------ channels

    @asynccontextmanager
    async def serve(self, host: str, port: int, **options: Any) -> AsyncIterator[Server]:
        """Serve requests on ``host:port`` (0: a free port, ``server.port``) while the
        block runs; on leaving it, stop accepting and drain (spec 15.6). ``options`` are
        :class:`~agentauth.aio.AgentAuthListener`'s."""
        if not self._routes:
            raise InvalidState("declare a handler (@agent.handles) before serving")
        if self._trust is None and not all(route.capability for route in self._routes):
            raise InvalidState("a handler open without a capability needs a trust policy: "
                               "give the agent trust=")
        listener = await create_listener(host, port, self.identity, self.policy, **options)
        server = Server(self, listener)
        raised: BaseException | None = None
        async with anyio.create_task_group() as group:
            await group.start(server.run)
            self._servers.add(server)
            try:
                yield server
            except BaseException as exc:  # re-raised below as it is, not in a group
                raised = exc
            finally:
                with anyio.CancelScope(shield=True):
                    await server.aclose()
        if raised is not None:
            raise raised

    @asynccontextmanager
    async def connect(self, host: str, port: int, *, expect: str | PeerKey,
                      capability: bytes | Sequence[Link] | None = None,
                      **options: Any) -> AsyncIterator[Peer]:
        """A channel to the agent ``expect`` at ``host:port``, for requests while the block
        runs; ``capability`` (a chain this agent holds) is presented once and sent with
        every request that names no other. ``options`` are :func:`agentauth.aio.connect`'s."""
        channel = await aio_connect(host, port, self.identity, expect=expect, **options)
        raised: BaseException | None = None
        async with channel:
            await exchange_revocations(channel, self.revocations, limiter=self._limiter)
            async with anyio.create_task_group() as group:
                peer = Peer(channel, self.max_in_flight)
                group.start_soon(peer.read)
                try:
                    if capability is not None:
                        peer.default = await peer.present(capability)
                    yield peer
                except BaseException as exc:  # re-raised below as it is, not in a group
                    raised = exc
                finally:
                    group.cancel_scope.cancel()
                    peer._end(InvalidState("the channel was closed when its connect block "
                                           "ended"))
        if raised is not None:
            raise raised


def _own(options: Mapping[str, Any], *names: str) -> None:
    # What the agent holds is given once, to the agent: not again per transport.
    given = sorted(set(options) & set(names))
    if given:
        raise InvalidArgument(f"{', '.join(given)}: the agent's own, given to the agent")


def _http() -> Any:
    # The HTTP binding needs its extra; an agent that does not speak HTTP does not.
    try:
        from .. import http  # noqa: PLC0415 (optional: agentauth[http])
    except ImportError as exc:
        raise InvalidState("HTTP needs the http extra: install agentauth[http]") from exc
    return http

def _raising(error: Exception) -> Callable[[bytes], bool]:
    """A ``revoked`` callback that raises ``error`` (a store's failure) when asked."""
    def revoked(link_id: bytes) -> bool:
        raise error
    return revoked


def _stores(state: str | os.PathLike[str] | None, anchors: Mapping[str, str]
            ) -> tuple[ReplayStore, RevocationStore]:
    if state is None:
        return MemoryReplayStore(), MemoryRevocationStore(anchors)
    if isinstance(state, os.PathLike):
        state = os.fspath(state)
    if not isinstance(state, str):
        raise InvalidArgument("state is None, a redis:// URL or a file path")
    if state.startswith(("redis://", "rediss://", "unix://")):
        return RedisReplayStore(state), RedisRevocationStore(state, anchors)
    return SQLiteReplayStore(state), SQLiteRevocationStore(state + ".revocations", anchors)


class Server:
    """One listener of an :class:`Agent` and the channels it serves."""

    def __init__(self, agent: Agent, listener: AgentAuthListener) -> None:
        self.agent = agent
        self.listener = listener
        self.port: int = listener.extra(SocketAttribute.local_port)
        self._closing = False
        self._in_flight = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._scopes: set[anyio.CancelScope] = set()  # of every running handler
        self._closed = anyio.Event()
        # By peer id: its channels open and its handlers running, so that one peer's flood
        # (many channels, each with its requests in flight and its chains) meets its own
        # bound before the global one, which still leaves room for others.
        self._channels: dict[str, int] = {}
        self._open = 0
        self._running: dict[str, int] = {}

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Accept channels until closed (then every channel is ended)."""
        async with anyio.create_task_group() as group:
            task_status.started()
            group.start_soon(self.listener.serve, self._channel, group)
            await self._closed.wait()
            group.cancel_scope.cancel()

    async def aclose(self) -> None:
        """Stop accepting; let requests in flight finish within the agent's drain timeout,
        then cancel their handlers (their peers are told ``shutting_down``) and end every
        channel."""
        if self._closing:
            return
        self._closing = True
        self.agent._servers.discard(self)
        await self.listener.aclose()
        with anyio.move_on_after(self.agent.drain_timeout):
            await self._idle.wait()
        for scope in list(self._scopes):
            scope.cancel()
        with anyio.move_on_after(1.0):  # the cancelled handlers send their refusals
            await self._idle.wait()
        self._closed.set()

    async def _channel(self, channel: AgentAuthStream) -> None:
        agent, peer = self.agent, channel.peer_id
        if (self._open >= agent.max_channels
                or self._channels.get(peer, 0) >= agent.max_channels_per_peer):
            logger.info("channel with %s refused: over the bound on channels open", peer)
            return  # the listener closes it
        _count(self._channels, peer, 1)
        self._open += 1
        try:
            await self._serve_channel(channel)
        finally:
            _count(self._channels, peer, -1)
            self._open -= 1

    async def _serve_channel(self, channel: AgentAuthStream) -> None:
        agent = self.agent
        await exchange_revocations(channel, agent.revocations, limiter=agent._limiter)
        requests = Requests(channel.extra(AgentAuthAttribute.peer_key), agent.anchors,
                            agent._routes, max_payload=channel.max_payload,
                            max_in_flight=agent.max_in_flight)
        cancels: dict[int, anyio.CancelScope] = {}
        broken: AgentAuthError | None = None
        async with anyio.create_task_group() as group:
            try:
                while True:
                    try:
                        data = await channel.receive()
                    except anyio.EndOfStream:
                        break
                    # One frame at a time: its check (and any store lookup) ends before the
                    # next frame is read. A broken frame ends the channel here.
                    out = await agent._checked(requests.receiving(data))
                    if isinstance(out, Call):
                        await self._dispatch(channel, requests, out, cancels, group)
                    elif isinstance(out, Refused):
                        await channel.send(out.frame)
                    elif isinstance(out, int) and out in cancels:
                        cancels[out].cancel()
            except AgentAuthError as exc:
                broken = exc
            finally:
                for scope in cancels.values():  # the channel is over: nobody waits
                    scope.cancel()
        if broken is not None:
            logger.info("channel with %s ended: %s", channel.peer_id, broken)

    async def _dispatch(self, channel: AgentAuthStream, requests: Requests, call: Call,
                        cancels: dict[int, anyio.CancelScope], group: TaskGroup) -> None:
        agent, peer = self.agent, channel.peer_id
        refusal = None
        if self._closing:
            refusal = RequestError("the agent is closing", code="shutting_down")
        elif self._running.get(peer, 0) >= agent.max_handlers_per_peer:
            refusal = RequestError(f"a peer has at most {agent.max_handlers_per_peer} "
                                   f"requests running at once", code="over_limit")
        elif self._in_flight >= agent.max_handlers:
            refusal = RequestError("the agent runs as many requests as it may",
                                   code="over_limit")
        if refusal is not None:
            requests.done(call.id)
            await channel.send(encode_error(call.id, refusal))
            return
        scope = anyio.CancelScope()
        cancels[call.id] = scope
        self._start(peer)
        group.start_soon(self._answer, channel, requests, call, scope, cancels)

    def _start(self, peer: str) -> None:
        _count(self._running, peer, 1)
        self._in_flight += 1
        self._idle = anyio.Event() if self._in_flight == 1 else self._idle

    async def _answer(self, channel: AgentAuthStream, requests: Requests, call: Call,
                      scope: anyio.CancelScope, cancels: dict[int, anyio.CancelScope]) -> None:
        # Spec 15.5: the handler runs; its answer, or its failure, goes back.
        frame: bytes | None = None
        self._scopes.add(scope)
        try:
            with scope:
                try:
                    body = await call.handler(Incoming(
                        channel.peer_id, call.request.resource, call.request.action,
                        call.request.args, call.body, call.links))  # type: ignore[arg-type]
                    limit = body_limit(channel.max_payload)
                    if type(body) is bytes and len(body) <= limit:
                        frame = encode_response(call.id, body)
                    else:  # the handler's bug, not a refusal: said as loudly as a raise
                        logger.error("handler for %s %s returned %s, not bytes within %d",
                                     call.request.action, call.request.resource,
                                     f"{len(body)} bytes" if type(body) is bytes
                                     else type(body).__name__, limit)
                        frame = encode_error(call.id, RequestError(
                            "the handler failed", code="handler_failed"))
                except AgentAuthError as exc:
                    logger.info("request %d from %s refused: %s", call.id, channel.peer_id,
                                exc)
                    frame = encode_error(call.id, exc)
                except Exception:
                    logger.exception("handler for %s %s failed", call.request.action,
                                     call.request.resource)
                    frame = encode_error(call.id, RequestError(
                        "the handler failed", code="handler_failed"))
                except BaseException as exc:
                    # Cancellation and a process's own exit go on; any other BaseException
                    # a handler raises is its failure, not the end of every channel.
                    if isinstance(exc, anyio.get_cancelled_exc_class() | KeyboardInterrupt
                                  | SystemExit):
                        raise
                    logger.exception("handler for %s %s failed", call.request.action,
                                     call.request.resource)
                    frame = encode_error(call.id, RequestError(
                        "the handler failed", code="handler_failed"))
            if scope.cancelled_caught and self._closing:
                frame = encode_error(call.id, RequestError(
                    "the agent closed before answering", code="shutting_down"))
            requests.done(call.id)
            if frame is not None:
                # If the channel ended, its reader says why.
                with suppress(AgentAuthError, anyio.ClosedResourceError,
                              anyio.BrokenResourceError):
                    await channel.send(frame)
        finally:
            self._scopes.discard(scope)
            # The id was released before the answer went out: the peer may already have
            # reused it, and that request's scope is not this one's to drop.
            if cancels.get(call.id) is scope:
                del cancels[call.id]
            _count(self._running, channel.peer_id, -1)
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()


def _count(counts: dict[str, int], key: str, step: int) -> None:
    left = counts.get(key, 0) + step
    if left:
        counts[key] = left
    else:
        del counts[key]


class _Waiting:
    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.answer: bytes | AgentAuthError = b""


class Peer:
    """An open channel to a serving agent, for requests (spec 15)."""

    def __init__(self, channel: AgentAuthStream, max_in_flight: int) -> None:
        self.channel = channel
        self.default = 0
        self._slots = anyio.Semaphore(max_in_flight)
        self._waiting: dict[int, _Waiting] = {}
        self._refs: dict[bytes, int] = {}
        self._presented = 0
        self._next = 0
        self._ended: AgentAuthError | None = None
        self._limit = body_limit(channel.max_payload)

    @property
    def peer_id(self) -> str:
        """The serving agent's id, as the handshake authenticated it."""
        return self.channel.peer_id

    async def present(self, capability: bytes | Sequence[Link]) -> int:
        """Present a chain on this channel (once); return its reference."""
        if isinstance(capability, bytes):
            chain = capability
        else:
            given: object = capability
            links = list(given) if isinstance(given, Sequence) and not isinstance(
                given, str) else []
            if not links or not all(isinstance(link, Link) for link in links):
                raise InvalidArgument("a capability is a chain's bytes or its links")
            chain = encode_chain(link for link in links if isinstance(link, Link))
        ref = self._refs.get(chain)
        if ref is None:
            self._check_open()
            if self._presented >= MAX_CHAINS:
                raise InvalidState(f"a channel presents at most {MAX_CHAINS} chains")
            self._presented += 1  # a ref is never used twice, even one that failed
            ref = self._refs[chain] = self._presented
            try:
                await self._send(encode_present(ref, chain))
            except BaseException:  # not sent (a cancelled caller): presented anew next time
                del self._refs[chain]
                raise
        return ref

    async def _send(self, frame: bytes) -> None:
        try:
            await self.channel.send(frame)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            self._check_open()  # the reason the channel ended, if it is known
            raise TransportError(f"the channel ended ({type(exc).__name__})",
                                 code="connection_lost") from None

    async def request(self, resource: str, action: str,
                      args: Mapping[str, int | str | bool] | None = None, *,
                      body: bytes = b"", capability: bytes | Sequence[Link] | None = None,
                      timeout: float | None = None) -> bytes:
        """Send a request and return the body of its answer.

        A refusal raises the typed error the serving agent sent (its class from the code:
        a :class:`~agentauth.CapabilityDenied` with the peer's view of the refusal, a
        :class:`~agentauth.RequestError`...). ``timeout`` bounds the wait: then the request
        is cancelled at the serving side and ``request_timeout`` raised. Cancelling the
        caller cancels the request too.
        """
        if type(body) is not bytes or len(body) > self._limit:
            raise InvalidArgument(f"a body is bytes, at most {self._limit} of them")
        if timeout is not None and not is_seconds(timeout, positive=True):
            raise InvalidArgument("timeout is a positive number of seconds")
        # Checked here as the server checks it (15.4 step 3), so that a bad value is the
        # caller's error and not a frame the server must refuse as broken, which would
        # end the channel and every request on it.
        Request(resource, action, args or {})
        ref = self.default if capability is None else await self.present(capability)
        async with self._slots:
            self._check_open()
            self._next += 1
            request_id = self._next
            frame = encode_request(request_id, resource, action, args or {}, body, ref)
            waiting = self._waiting[request_id] = _Waiting()
            answered = False
            try:
                await self._send(frame)
                if timeout is None:  # no cancel scope to enter and leave: a few µs saved
                    await waiting.done.wait()
                else:
                    with anyio.move_on_after(timeout):
                        await waiting.done.wait()
                answered = waiting.done.is_set()
            finally:
                del self._waiting[request_id]
                if not answered and self._ended is None:
                    with anyio.move_on_after(1.0, shield=True):
                        with suppress(AgentAuthError, anyio.ClosedResourceError,
                                      anyio.BrokenResourceError):
                            await self.channel.send(encode_cancel(request_id))
        if not answered:
            raise RequestError(f"no answer within {timeout} s", code="request_timeout")
        if isinstance(waiting.answer, AgentAuthError):
            raise waiting.answer
        return waiting.answer

    def _check_open(self) -> None:
        if self._ended is not None:
            raise self._ended.again()

    async def read(self) -> None:
        """The channel's reader: hands each answer to its request; when the channel ends,
        every request waiting gets the reason."""
        try:
            while True:
                try:
                    data = await self.channel.receive()
                except anyio.EndOfStream:
                    raise RequestError("the serving agent closed the channel",
                                       code="shutting_down") from None
                frame = decode_frame(data, self.channel.max_payload)
                if frame.kind not in (RESPONSE, ERROR):
                    raise ProtocolViolation("a requester receives only RESPONSE and ERROR",
                                            code="out_of_order")
                waiting = self._waiting.get(frame.id)
                if waiting is None or waiting.done.is_set():
                    continue  # an answer to a request given up on
                waiting.answer = frame.body if frame.kind == RESPONSE else error_from_frame(
                    frame)
                waiting.done.set()
        except AgentAuthError as exc:
            self._end(exc)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            self._end(TransportError(f"the channel ended ({type(exc).__name__})",
                                     code="connection_lost"))

    def _end(self, error: AgentAuthError) -> None:
        if self._ended is None:  # the first reason stays
            self._ended = error
        for waiting in self._waiting.values():
            if not waiting.done.is_set():
                waiting.answer = error
                waiting.done.set()


"""The :class:`Agent`: one identity with its trust, stores and audit, serving and making
requests on channels (spec section 15) and sealing and opening envelopes.

The rules live in the layers below; this module ties them together and does the I/O:
:class:`~agentauth.agent.frames.Requests` checks every request, :mod:`agentauth.aio` makes
the channels, :mod:`agentauth.capability` the chains, :mod:`agentauth.envelope` the
envelopes, :mod:`agentauth.stores` the stores.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

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
from ..capability.grants import Grant
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
)

__all__ = ["Agent", "Incoming", "Peer", "Server"]

logger = logging.getLogger("agentauth.agent")

#: How long closing waits for requests in flight, by default (seconds).
DRAIN_TIMEOUT: Final = 5.0
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
    body: bytes
    capability: tuple[Link, ...]  # the verified chain, root first


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

    ``trust`` says who may open a channel to this agent and whose envelopes it opens: a
    trust store (or its path), a callable judging a :class:`PeerKey`, or agent ids. With
    None, any peer that proves its key may open a channel, and every request on it still
    needs a capability rooted at one of ``anchors``; envelopes from any sender whose
    signature verifies are opened. ``anchors`` (agent id to resource namespace) are the
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
    ``audit``: a path appends the audit events of this process to
    a hash-chained file (:class:`AuditFileHandler` on the ``agentauth.audit`` logger, at
    INFO) until :meth:`aclose`.
    """

    def __init__(self, identity: Identity, *, trust: Trust = None,
                 anchors: Mapping[str, str] | None = None,
                 state: str | os.PathLike[str] | None = None,
                 audit: str | os.PathLike[str] | None = None,
                 max_in_flight: int = MAX_IN_FLIGHT,
                 drain_timeout: float = DRAIN_TIMEOUT) -> None:
        if not isinstance(identity, Identity):
            raise InvalidArgument("an agent's identity is an Identity")
        if type(max_in_flight) is not int or max_in_flight < 1:
            raise InvalidArgument("max_in_flight is a positive integer")
        if not is_seconds(drain_timeout):
            raise InvalidArgument("drain_timeout is a finite number of seconds")
        self.identity = identity
        self.max_in_flight = max_in_flight
        self.drain_timeout = drain_timeout
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
        """Close every server this agent runs (draining their requests) and its audit."""
        for server in list(self._servers):
            await server.aclose()
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
            if not callable(handler):
                raise InvalidArgument("a handler is an async function")
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
        try:
            ids = flow.send(None)  # type: ignore[arg-type]  # a generator starts on None
            while True:
                if self._inline or not ids:
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
        if raised is not None:
            raise raised


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
        if self._closing:
            requests.done(call.id)
            await channel.send(encode_error(call.id, RequestError(
                "the agent is closing", code="shutting_down")))
            return
        scope = anyio.CancelScope()
        cancels[call.id] = scope
        self._start()
        group.start_soon(self._answer, channel, requests, call, scope, cancels)

    def _start(self) -> None:
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
                    if type(body) is not bytes or len(body) > body_limit(channel.max_payload):
                        raise InvalidArgument("a handler returns bytes within the body limit")
                    frame = encode_response(call.id, body)
                except AgentAuthError as exc:
                    logger.info("request %d from %s refused: %s", call.id, channel.peer_id,
                                exc)
                    frame = encode_error(call.id, exc)
                except Exception:
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
            cancels.pop(call.id, None)
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()


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
        self._next = 0
        self._ended: AgentAuthError | None = None
        self._limit = body_limit(channel.max_payload)

    @property
    def peer_id(self) -> str:
        """The serving agent's id, as the handshake authenticated it."""
        return self.channel.peer_id

    async def present(self, capability: bytes | Sequence[Link]) -> int:
        """Present a chain on this channel (once); return its reference."""
        chain = capability if isinstance(capability, bytes) else encode_chain(capability)
        ref = self._refs.get(chain)
        if ref is None:
            if len(self._refs) >= MAX_CHAINS:
                raise InvalidState(f"a channel presents at most {MAX_CHAINS} chains")
            ref = self._refs[chain] = len(self._refs) + 1
            await self.channel.send(encode_present(ref, chain))
        return ref

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
        ref = self.default if capability is None else await self.present(capability)
        async with self._slots:
            self._check_open()
            self._next += 1
            request_id = self._next
            frame = encode_request(request_id, resource, action, args or {}, body, ref)
            waiting = self._waiting[request_id] = _Waiting()
            answered = False
            try:
                await self.channel.send(frame)
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
            raise type(self._ended)(self._ended.message, code=self._ended.code)

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
        self._ended = error
        for waiting in self._waiting.values():
            if not waiting.done.is_set():
                waiting.answer = error
                waiting.done.set()


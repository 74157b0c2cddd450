"""An ASGI middleware that authenticates every HTTP request under the profile (spec 13) and
signs every response (works under Starlette and any ASGI server or framework).

For each request, in order: the body is read up to ``max_body`` (a ``Content-Length``
above it is refused before reading); the signature is checked (:class:`Verifier`); a
capability, if carried, is checked against ``anchors`` and the request's resource and
action; then, last, the nonce goes through the replay store. A refusal is answered with
a small JSON body ``{"error": code, "message": reason}`` and an ``Agentauth-Error``
header: 401 (with ``Accept-Signature``) for authentication, 403 for capabilities, 400 for
malformed fields, 413 for a body over the limit, 503 when the replay store cannot answer.
Reasons never hold secrets or header values.

The app sees ``scope["user"]`` (an :class:`AgentUser`) and ``scope["auth"]`` (an
:class:`AgentAuthInfo`). Its response is signed: a response sent in one body message is
buffered and covered by ``Content-Digest``; a streamed one (several body messages) has
its status, headers and binding to the request signed, but not its content (spec 13.7).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..aio import AsyncReplayStore, async_replay_store
from ..capability.chain import Link
from ..capability.grants import Grant, Request
from ..errors import (
    AgentAuthError,
    CapabilityDenied,
    DecodeError,
    ReplayDetected,
    StoreError,
)
from ..identity import Identity, PeerKey
from ..stores import ReplayStore, Shares
from .capability import ResourceOf, check_capability, default_resource
from .components import HTTPMessage
from .directory import DIRECTORY_MEDIA_TYPE, DIRECTORY_PATH, directory_document, sign_directory
from .profile import DEFAULT_LIFETIME, Signer, VerifiedRequest, Verifier, accept_signature

__all__ = ["AgentAuthInfo", "AgentAuthMiddleware", "AgentUser", "status_of"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY: Final = 1 << 20
#: ASGI extensions whose responses carry no ``http.response.body``: hidden from the app
#: when responses are signed.
_UNSIGNABLE: Final = frozenset({"http.response.pathsend", "http.response.zerocopy"})
_log = logging.getLogger("agentauth.http")


@dataclass(frozen=True, slots=True)
class AgentUser:
    """The authenticated agent, as ``scope["user"]`` (Starlette's ``request.user``)."""

    agent_id: str
    peer: PeerKey = field(repr=False)

    @property
    def is_authenticated(self) -> bool:
        """Always True: the middleware lets no unauthenticated request through."""
        return True

    @property
    def display_name(self) -> str:
        """The agent id."""
        return self.agent_id

    @property
    def identity(self) -> str:
        """The agent id (the name Starlette's ``BaseUser`` gives it)."""
        return self.agent_id


@dataclass(frozen=True, slots=True)
class AgentAuthInfo:
    """What authenticated the request, as ``scope["auth"]``: the signature's ``keyid``,
    ``tag`` and ``nonce``, and, when a capability was used, the ``request`` it allowed,
    the chain's ``links`` and the leaf's ``grants``. ``scopes`` lists ``action:resource``
    for each grant (the shape of Starlette's ``AuthCredentials``). ``covered`` names the
    components the signature covers (e.g. ``'"mcp-protocol-version"'``)."""

    agent_id: str
    keyid: str
    tag: str
    nonce: str
    covered: tuple[str, ...] = ()
    request: Request | None = None
    links: tuple[Link, ...] = ()
    grants: tuple[Grant, ...] = ()
    scopes: tuple[str, ...] = ()


def status_of(error: AgentAuthError) -> int:
    """The HTTP status the middleware answers ``error`` with."""
    if isinstance(error, CapabilityDenied):
        return 403
    if isinstance(error, StoreError):
        return 503
    if isinstance(error, DecodeError):
        return 413 if error.code == "oversize" else 400
    return 401


class AgentAuthMiddleware:
    """Authenticate requests and sign responses for ``app``.

    ``identity`` signs the responses; ``verifier`` says which request signers are
    accepted; ``replay`` (any :class:`agentauth.ReplayStore`, or an async one) remembers
    nonces. With ``anchors`` (trusted roots to namespaces, as for :func:`verify_chain`),
    requests may carry a capability; ``require_capability`` refuses those that do not.
    ``resource_of`` maps method and path to the capability request needed.
    ``directory`` serves this server's key directory, unauthenticated, at
    ``/.well-known/http-message-signatures-directory``; ``public`` paths skip
    authentication (and are not signed). ``sign_responses=False`` authenticates clients
    only (their requests are still checked; the answers are not signed).
    ``replay_capacity`` and ``replay_per_signer`` (default ``max(1, replay_capacity //
    16)``) bound the live nonces this middleware puts in the store, in all and from any
    one signing key, so that one signer cannot fill the store for the others (a request
    over a bound: 503, ``store_full``).
    """

    __slots__ = ("_anchors", "_clock", "_directory", "_identity", "_max_body", "_public",
                 "_require", "_resource_of", "_revoked", "_shares", "_sign_responses",
                 "_signer", "_store", "_verifier", "app")

    def __init__(self, app: ASGIApp, *, identity: Identity, verifier: Verifier,
                 replay: ReplayStore | AsyncReplayStore,
                 anchors: Mapping[Any, str] | None = None,
                 require_capability: bool = False,
                 resource_of: ResourceOf = default_resource,
                 revoked: Callable[[bytes], bool] | None = None,
                 max_body: int = MAX_BODY, directory: bool = True,
                 public: Iterable[str] = (), sign_responses: bool = True,
                 clock: Callable[[], float] = time.time,
                 random: Callable[[int], bytes] = os.urandom,
                 replay_capacity: int = 1_000_000,
                 replay_per_signer: int | None = None) -> None:
        self.app = app
        self._shares = Shares(replay_capacity, replay_per_signer,
                              names=("replay_capacity", "replay_per_signer"))
        self._identity = identity
        self._signer = Signer(identity, clock=clock, random=random)
        self._verifier = verifier
        self._store: AsyncReplayStore = (async_replay_store(replay)
                                         if isinstance(replay, ReplayStore) else replay)
        self._anchors = dict(anchors) if anchors is not None else None
        self._require = require_capability
        self._resource_of = resource_of
        self._revoked = revoked
        self._max_body = max_body
        self._directory = directory_document([identity]) if directory else None
        self._public = frozenset(public)
        self._sign_responses = sign_responses
        self._clock = clock

    async def _remember(self, verified: VerifiedRequest) -> None:
        """Put the request's nonce through the store, within its signer's share."""
        self._shares.expire(self._clock())
        with self._shares.place(verified.peer.public_bytes, lambda why: StoreError(
                f"the replay store refuses {verified.peer.agent_id} for now: {why}",
                code="store_full")) as keep:
            if not await self._store.check_and_insert(verified.replay_key,
                                                      verified.replay_expires):
                raise ReplayDetected("this request was already received", code="replayed")
            keep(verified.replay_expires, b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or scope["path"] in self._public:
            await self.app(scope, receive, send)
            return
        message = _message(scope)
        if scope["path"] == DIRECTORY_PATH and self._directory is not None:
            try:  # its signatures bind the keys to the Host asked for: only ours
                self._verifier.check_authority(message.authority, message.scheme)
            except AgentAuthError as error:
                await _refuse(send, error)
                return
            await self._serve_directory(message, send)
            return
        try:
            body = await self._read_body(scope, receive)
            if sum(1 for k, _ in message.fields if k == "host") > 1:
                # RFC 9112 3.2: one Host. @authority takes the first; a proxy in front
                # may have routed on another.
                raise DecodeError("the request has more than one Host line",
                                  code="malformed")
            verified = self._verifier.check_request(message, body)
            info = self._authorize(message, verified)
            await self._remember(verified)
        except AgentAuthError as error:
            _log.info("refused %s request: %s", scope["method"], error.code)
            await _refuse(send, error)
            return
        inner = dict(scope)
        if self._sign_responses and isinstance(scope.get("extensions"), Mapping):
            # A body sent from a file (pathsend, zerocopy) would bypass the signing send:
            # hide those extensions, and the app sends its body as body messages.
            inner["extensions"] = {k: v for k, v in scope["extensions"].items()
                                   if k not in _UNSIGNABLE}
        inner["user"] = AgentUser(verified.peer.agent_id, verified.peer)
        inner["auth"] = info
        await self.app(inner, _replay_body(body, receive),
                       self._signing_send(send, message, verified)
                       if self._sign_responses else send)

    def _authorize(self, message: HTTPMessage, verified: VerifiedRequest) -> AgentAuthInfo:
        found = None
        if message.field("agentauth-capability") is not None:
            if self._anchors is None:
                raise CapabilityDenied("this server takes no capabilities",
                                       code="untrusted_root")
            found = check_capability(message, verified, self._anchors,
                                     resource_of=self._resource_of, revoked=self._revoked,
                                     clock=self._clock)
        if found is None:
            if self._require:
                raise CapabilityDenied("this request needs a capability",
                                       code="not_authorized")
            return AgentAuthInfo(verified.peer.agent_id, verified.keyid, verified.tag,
                                 verified.nonce, verified.covered)
        request, links = found
        grants = links[-1].grants
        scopes = tuple(f"{action}:{g.resource}" for g in grants for action in sorted(g.actions))
        return AgentAuthInfo(verified.peer.agent_id, verified.keyid, verified.tag,
                             verified.nonce, verified.covered, request, links, grants, scopes)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name.lower() == b"content-length" and (
                    not value.isdigit() or len(value) > 18 or int(value) > self._max_body):
                raise DecodeError(f"the body is over {self._max_body} bytes",
                                  code="oversize")
        chunks, size = [], 0
        while True:
            event = await receive()
            if event["type"] != "http.request":
                raise DecodeError("the client went away before its body was read",
                                  code="malformed")
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise DecodeError(f"the body is over {self._max_body} bytes",
                                  code="oversize")
            chunks.append(chunk)
            if not event.get("more_body", False):
                return b"".join(chunks)

    def _signing_send(self, send: Send, request: HTTPMessage, verified: VerifiedRequest
                      ) -> Send:
        start: MutableMapping[str, Any] | None = None

        async def signed(event: MutableMapping[str, Any]) -> None:
            nonlocal start
            if event["type"] == "http.response.start":
                start = event
                return
            if event["type"] != "http.response.body" or start is None:
                await send(event)
                return
            body = event.get("body", b"")
            streamed = event.get("more_body", False)
            headers = list(start.get("headers", []))
            response = HTTPMessage.from_headers(headers, status=start["status"],
                                                request=request)
            added = self._signer.sign_response(response, verified.nonce,
                                               None if streamed else body,
                                               request_label=verified.label)
            ours = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in added.headers]
            names = {k for k, _ in ours}  # they replace the app's lines of those names
            headers = [(k, v) for k, v in headers if k.lower() not in names] + ours
            await send({**start, "headers": headers})
            start = None
            await send(event)

        return signed

    async def _serve_directory(self, message: HTTPMessage, send: Send) -> None:
        body = self._directory or b""
        created = int(self._clock())
        headers = [("content-type", DIRECTORY_MEDIA_TYPE),
                   ("content-length", str(len(body))),
                   *sign_directory([self._identity], message.authority, body,
                                   created=created, expires=created + DEFAULT_LIFETIME)]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                                for k, v in headers]})
        await send({"type": "http.response.body", "body": body})


def _message(scope: Scope) -> HTTPMessage:
    headers = scope["headers"]
    host = next((v for k, v in headers if k.lower() == b"host"), b"")
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    return HTTPMessage.from_headers(
        headers, method=scope["method"], scheme=scope.get("scheme", "http"),
        authority=host.decode("latin-1"), path=raw.decode("latin-1") or "/",
        query=scope.get("query_string", b"").decode("latin-1"))


def _replay_body(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _refuse(send: Send, error: AgentAuthError) -> None:
    status = status_of(error)
    body = json.dumps({"error": error.code, "message": error.message}).encode("utf-8")
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode("ascii")),
               (b"agentauth-error", error.code.encode("ascii"))]
    if status == 401:
        headers.append((b"accept-signature", accept_signature().encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

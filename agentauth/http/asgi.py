"""An ASGI middleware that authenticates every HTTP request under the profile (spec 13) and
signs every response (works under Starlette and any ASGI server or framework).

For each request, in order: the scope is checked (a malformed one, of any shape, is
``400 malformed``, never an exception; spec 13.9); the body is read up to ``max_body``
(a ``Content-Length`` above it is refused before reading); the signature is checked
(:class:`Verifier`); a capability, if carried, is checked against ``anchors`` and the
request's resource and action; then, last, the nonce goes through the replay store. A
refusal is answered with a JSON-RPC 2.0 error body (``error.data.code`` is the code, so
JSON-RPC clients such as MCP's surface it; spec 13.9) and an ``Agentauth-Error`` header:
401 (with ``Accept-Signature``) for authentication, 403 for capabilities, 400 for
malformed fields, 413 for a body over the limit, 503 when the replay store cannot answer,
500 when the server's own callback or store misbehaved.
Reasons never hold secrets or header values; those of a 500 or a 503, which describe the
server's own set-up, go to the ``agentauth.http`` log and not to the client.

The app sees ``scope["user"]`` (an :class:`AgentUser`) and ``scope["auth"]`` (an
:class:`AgentAuthInfo`). Its response is signed: a response sent in one body message is
buffered and covered by ``Content-Digest``; a streamed one (several body messages) has
its status, headers and binding to the request signed, but not its content (spec 13.7).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..aio import AsyncReplayStore, async_replay_store
from ..capability.chain import Link, trust_roots
from ..capability.grants import Grant, Request
from ..errors import (
    AgentAuthError,
    CapabilityDenied,
    DecodeError,
    InvalidArgument,
    LocalError,
    Refusal,
    ReplayDetected,
    StoreError,
)
from ..identity import Identity, PeerKey
from ..replay import ReplayStore, Shares
from ..verdict import ask_async, check_callback, moment
from .capability import ResourceOf, check_capability, default_resource
from .components import HTTPMessage
from .directory import DIRECTORY_MEDIA_TYPE, DIRECTORY_PATH, directory_document, sign_directory
from .profile import (
    CAPABILITY_HEADER,
    DEFAULT_LIFETIME,
    Signer,
    VerifiedRequest,
    Verifier,
    accept_signature,
)

__all__ = ["REFUSAL_RPC_CODE", "AgentAuthInfo", "AgentAuthMiddleware", "AgentUser", "status_of"]

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
    if isinstance(error, LocalError):  # this server's own callback or store misbehaved
        return 500
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
    ``resource_of`` maps method and path to the capability request needed (a plain
    function: one that raises, or an ``async def``, is a local error, 500; spec 13.6).
    ``replay`` may be async (its ``check_and_insert`` an ``async def``): it is awaited.
    ``revoked`` and the verifier's ``trust`` are asked synchronously (spec 7.1): each
    answers exactly ``False`` (not revoked) or ``True`` (trusted) to let a request
    through, and an ``async def`` given for either is a local error (500).
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
        # Checked here, not found wrong on the first request.
        if not isinstance(verifier, Verifier):
            raise InvalidArgument("verifier is a Verifier")
        if type(max_body) is not int or max_body < 0:
            raise InvalidArgument("max_body is a number of bytes")
        public = frozenset(public)
        if any(type(path) is not str for path in public):
            raise InvalidArgument("public paths are strings")
        self.app = app
        self._shares = Shares(replay_capacity, replay_per_signer,
                              names=("replay_capacity", "replay_per_signer"))
        self._identity = identity
        self._signer = Signer(identity, clock=clock, random=random)
        self._verifier = verifier
        self._store = async_replay_store(replay)  # async or not: the method tells
        if anchors is not None:
            trust_roots(anchors)  # a bad shape is refused now, not at the first request
        self._anchors = dict(anchors) if anchors is not None else None
        self._require = require_capability
        if not callable(resource_of):
            raise InvalidArgument("resource_of is a callable")
        self._resource_of = resource_of
        check_callback(revoked, "revoked callback")
        self._revoked = revoked
        self._max_body = max_body
        self._directory = directory_document([identity]) if directory else None
        self._public = public
        self._sign_responses = sign_responses
        self._clock = clock

    async def _remember(self, verified: VerifiedRequest) -> None:
        """Put the request's nonce through the store, within its signer's share."""
        peer = verified.peer
        with self._shares.place_in_store(peer.public_bytes, peer.agent_id,
                                         self._clock()) as keep:
            new = await ask_async("replay store", True, self._store.check_and_insert,
                                  verified.replay_key, verified.replay_expires)
            if not new:  # exactly False: seen; anything but a bool raised (spec 7.1)
                raise ReplayDetected("this request was already received", code="replayed")
            keep(verified.replay_expires, b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point. A scope that is not one ASGI describes (spec 13.9) is
        answered ``400 malformed``, never an exception."""
        kind = scope.get("type") if isinstance(scope, Mapping) else None
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        try:
            if kind != "http":
                raise DecodeError("the ASGI scope is of no type this middleware serves",
                                  code="malformed")
            scope = _listed(scope)
            message = _message(scope)
        except AgentAuthError as error:
            _log.info("refused a malformed request: %s", error.code)
            await _refuse(send, error)
            return
        if scope["path"] in self._public:
            await self.app(scope, receive, send)
            return
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
            if isinstance(error, LocalError | StoreError):  # the reason is kept here (13.9)
                _log.warning("could not decide on a %s request: %s", scope["method"], error)
            else:
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
                                       code="untrusted_root", refusal=Refusal(
                                           "anchor", rule="a server with trust anchors"))
            found = check_capability(message, verified, self._anchors,
                                     resource_of=self._resource_of, revoked=self._revoked,
                                     clock=self._clock)
        if found is None:
            if self._require:
                raise CapabilityDenied("this request needs a capability",
                                       code="not_authorized", refusal=Refusal(
                                           "no_chain", rule=f"a chain in {CAPABILITY_HEADER}"))
            return AgentAuthInfo(verified.peer.agent_id, verified.keyid, verified.tag,
                                 verified.nonce, verified.covered)
        request, links = found
        grants = links[-1].grants
        scopes = tuple(f"{action}:{g.resource}" for g in grants for action in sorted(g.actions))
        return AgentAuthInfo(verified.peer.agent_id, verified.keyid, verified.tag,
                             verified.nonce, verified.covered, request, links, grants, scopes)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name.lower() != b"content-length":
                continue
            if not value.isdigit():  # RFC 9110 8.6: 1*DIGIT
                raise DecodeError("Content-Length is not a number", code="malformed")
            if len(value.lstrip(b"0")) > 18 or int(value) > self._max_body:
                raise DecodeError(f"the body is over {self._max_body} bytes",
                                  code="oversize")
        chunks, size = [], 0
        while True:
            event = await receive()
            if not isinstance(event, Mapping) or event.get("type") != "http.request":
                raise DecodeError("the client went away before its body was read",
                                  code="malformed")
            chunk = event.get("body", b"")
            if type(chunk) is not bytes or type(event.get("more_body", False)) is not bool:
                raise DecodeError("a request body message is bytes and a more_body flag",
                                  code="malformed")
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
            # An answer to HEAD has no content on the wire, whatever the app sends (the
            # server drops it): its digest is the empty content's.
            content = (b"" if request.method == "HEAD" else None if streamed else body)
            added = self._signer.sign_response(response, verified.nonce, content,
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
        created = int(moment(self._clock()))
        headers = [("content-type", DIRECTORY_MEDIA_TYPE),
                   ("content-length", str(len(body))),
                   *sign_directory([self._identity], message.authority, body,
                                   created=created, expires=created + DEFAULT_LIFETIME)]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                                for k, v in headers]})
        await send({"type": "http.response.body", "body": body})


#: Bounds on what a scope may hold, checked before anything is built from it.
MAX_TARGET: Final = 65536       # bytes of the path, raw path or query string
MAX_HEADER_LINES: Final = 1024
MAX_HEADER_BYTES: Final = 262144  # names and values together
_METHOD: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}"
_NAMES: Final = re.compile(rb"(?:%s\n)*%s" % (_TOKEN, _TOKEN))  # names, one a line


def _malformed(reason: str) -> DecodeError:
    return DecodeError(f"the request scope is malformed: {reason}", code="malformed")


def _message(scope: Scope) -> HTTPMessage:
    # The one place that reads an http scope: every value is checked for the type and
    # size ASGI gives it before use, so a malformed scope is a DecodeError, never a
    # KeyError, TypeError or UnicodeError (spec 13.9).
    method = scope.get("method")
    if type(method) is not str or not _METHOD.fullmatch(method):
        raise _malformed("the method is not a token")
    path = scope.get("path")
    if type(path) is not str or len(path) > MAX_TARGET:
        raise _malformed("the path is not a string of a bounded length")
    try:
        decoded_path = path.encode("utf-8")
    except UnicodeEncodeError:
        raise _malformed("the path is not valid Unicode") from None
    raw = scope.get("raw_path")
    if raw is None:
        raw = decoded_path
    elif type(raw) is not bytes or len(raw) > MAX_TARGET:
        raise _malformed("raw_path is not bytes of a bounded length")
    query = scope.get("query_string", b"")
    if type(query) is not bytes or len(query) > MAX_TARGET:
        raise _malformed("query_string is not bytes of a bounded length")
    if any(b in target for b in (b"\r", b"\n") for target in (raw, query)):
        # The answer's signature covers them (spec 13.5), and no signature base holds a
        # line break: refused now, not once the app has run (a web-bot-auth signature
        # need not cover them, so the request's own check may pass).
        raise _malformed("the path or query holds a line break")
    scheme = scope.get("scheme", "http")
    if type(scheme) is not str or scheme.lower() not in ("http", "https"):
        raise _malformed("the scheme is neither http nor https")
    headers = _headers(scope.get("headers"))
    host = next((v for k, v in headers if k.lower() == b"host"), b"")
    return HTTPMessage.from_headers(
        headers, method=method, scheme=scheme, authority=host.decode("latin-1"),
        path=raw.decode("latin-1") or "/", query=query.decode("latin-1"))


def _listed(scope: Scope) -> Scope:
    # ASGI's headers are any iterable of pairs. One that is not a list or tuple (a
    # generator, which can be read once) is read here, a bounded number of lines, and the
    # scope handed on holds the list, so the app reads the same lines as were checked.
    headers = scope.get("headers")
    if (isinstance(headers, list | tuple | str | bytes | bytearray | Mapping)
            or not isinstance(headers, Iterable)):
        return scope  # a list or tuple, or what _headers refuses
    try:
        lines = list(itertools.islice(headers, MAX_HEADER_LINES + 1))
    except Exception:  # a server's iterable that fails: nothing to read a request from
        raise _malformed("the headers cannot be read") from None
    return {**scope, "headers": lines}


def _headers(headers: object) -> list[tuple[bytes, bytes]]:
    # A few passes over all the lines, not checks line by line: this runs on every
    # request, and took 7 us for eight lines where the line-by-line checks took 12.
    if not isinstance(headers, list | tuple) or len(headers) > MAX_HEADER_LINES:
        raise _malformed(f"the headers are not a list of at most {MAX_HEADER_LINES} lines")
    try:
        lines = [(name, value) for name, value in headers]
    except (TypeError, ValueError):
        raise _malformed("a header line is not a name and a value") from None
    if not all(type(name) is bytes and type(value) is bytes for name, value in lines):
        raise _malformed("a header name or value is not bytes")
    names = b"\n".join([name for name, _ in lines])
    if lines and not _NAMES.fullmatch(names):
        raise _malformed("a header name is not a token of at most 256 characters")
    if len(names) + sum([len(value) for _, value in lines]) > MAX_HEADER_BYTES:
        raise _malformed(f"the headers are over {MAX_HEADER_BYTES} bytes")
    return lines


def _replay_body(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


#: The JSON-RPC 2.0 error code of every refusal's body (spec 13.9): "refused by the
#: agentauth layer", from the range JSON-RPC leaves to implementations; ``error.data.code``
#: says which rule.
REFUSAL_RPC_CODE: Final = -32090

_OWN_FAULTS: Final = {
    500: "the server could not decide on this request",
    503: "a store the server checks requests with cannot answer now: try again later"}


async def _refuse(send: Send, error: AgentAuthError) -> None:
    status = status_of(error)
    # The reason for a fault of the server's own (its set-up, its replay store: how full,
    # which server failed) stays in the log; the client learns only what to do.
    reason = _OWN_FAULTS.get(status, error.message)
    data: dict[str, object] = {"code": error.code}
    if isinstance(error, CapabilityDenied) and error.refusal is not None:
        data["refusal"] = error.refusal.for_peer()  # its places only (spec 13.9)
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {
        "code": REFUSAL_RPC_CODE, "message": reason, "data": data}}).encode("utf-8")
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode("ascii")),
               (b"agentauth-error", error.code.encode("ascii"))]
    if status == 401:
        headers.append((b"accept-signature", accept_signature().encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

"""An ``httpx.Auth`` that signs each request under the profile (spec 13) and checks that
each response answers it, signed by the server the client expects.

Works with ``httpx.Client`` and ``httpx.AsyncClient`` (asyncio and trio alike): signing
and checking are sans-I/O. The request body is read to digest it; the response's content
is checked as it is read, as it came off the wire (before any content coding is undone,
as RFC 9530 digests it), through a wrapper around the response's stream.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any

import httpx

from ..capability.grants import Request
from ..errors import ERROR_CODES, AuthenticationError, DecodeError, InvalidArgument, PeerRefused
from ..identity import Identity, PeerKey, peer_key
from ..verdict import answer, check_window
from .capability import ResourceOf, default_resource, invocation_for
from .components import HTTPMessage
from .profile import (
    DEFAULT_LIFETIME,
    DEFAULT_SKEW,
    ResponseContent,
    Signer,
    check_response_head,
)

__all__ = ["AgentAuth", "request_message"]


def request_message(request: httpx.Request) -> HTTPMessage:
    """The :class:`HTTPMessage` view of an httpx request (as sent, header lines in order)."""
    url = request.url
    return HTTPMessage.from_headers(
        request.headers.raw, method=request.method, scheme=url.scheme,
        authority=request.headers.get("host", url.netloc.decode("ascii")),
        path=url.raw_path.split(b"?", 1)[0].decode("ascii") or "/",
        query=url.query.decode("ascii"))


class AgentAuth(httpx.Auth):
    """Sign every request as ``identity``; check every response came from ``server``.

    ``server`` (an agent id or :class:`PeerKey`) is the key the answering server must
    sign with; ``None`` skips response checks (for servers that do not sign). ``chain``
    (a capability chain issued to ``identity``) is carried on every request, invoked for
    ``resource_of(method, path)``. Error answers the server's middleware makes itself
    (status 400 and above, unsigned, with an ``Agentauth-Error`` header) are returned as
    they are, since it could not bind them to a request it refused, or, with
    ``raise_refusals``, raised as :class:`~agentauth.PeerRefused` whose ``claimed`` is
    their code (the server's claim: such an answer is not signed; spec 13.9). Every other
    response must verify, or the call raises the agentauth error that says why.

    The content is checked in every mode: a ``Content-Digest`` that is present is
    checked against it, and content without a signed one is refused
    (``digest_mismatch``), except that ``allow_streamed`` lets through the content of an
    answer that is a stream (:func:`is_stream`: no ``Content-Length``, and
    ``text/event-stream`` or chunked; spec 13.7), whose status, fields and binding to the
    request are then all that is checked. Without ``allow_streamed`` the content is read
    whole and checked before the response is returned; with it, the response is returned
    before its content is read (``client.stream`` streams), and a digest is checked when
    the content ends: the last part is handed over only after it matched, and a mismatch
    raises ``digest_mismatch`` from the read instead.
    """

    requires_request_body = True
    requires_response_body = False  # read here, through the checking stream

    def __init__(self, identity: Identity, *, server: str | PeerKey | None = None,
                 chain: bytes | None = None, resource_of: ResourceOf = default_resource,
                 keyid: str = "did", lifetime: int = DEFAULT_LIFETIME,
                 signature_agent: str | None = None, allow_streamed: bool = False,
                 skew: int = DEFAULT_SKEW, clock: Callable[[], float] = time.time,
                 random: Callable[[int], bytes] = os.urandom,
                 raise_refusals: bool = False) -> None:
        if type(allow_streamed) is not bool or type(raise_refusals) is not bool:
            raise InvalidArgument("allow_streamed and raise_refusals are True or False")
        if not callable(resource_of):
            raise InvalidArgument("resource_of is a callable")
        check_window("skew", skew)
        self._signer = Signer(identity, keyid=keyid, lifetime=lifetime,
                              signature_agent=signature_agent, clock=clock, random=random)
        self._server = None if server is None else peer_key(server)
        self._chain = chain
        self._resource_of = resource_of
        self._allow_streamed = allow_streamed
        self._raise_refusals = raise_refusals
        self._skew = skew
        self._clock = clock

    def __repr__(self) -> str:
        return f"AgentAuth(keyid={self._signer.keyid!r})"

    def sign(self, request: httpx.Request) -> str:
        """Sign ``request`` in place; return its nonce."""
        message = request_message(request)
        body = request.content
        invocation = None
        if self._chain is not None:
            wanted = answer("resource_of", self._resource_of, message.method, message.path)
            if not isinstance(wanted, Request):
                raise InvalidArgument(f"resource_of returned {type(wanted).__name__}, "
                                      f"not a Request")
            invocation = invocation_for(self._chain, wanted)
        signed = self._signer.sign_request(message, body, invocation=invocation)
        for name, value in signed.headers:
            request.headers[name] = value
        return signed.nonce

    def check(self, request: httpx.Request, response: httpx.Response, nonce: str) -> None:
        """Check that ``response`` answers ``request`` (signed with ``nonce``), and set
        its content to be checked as it is read (content httpx already holds, as a mock
        or caching transport's, is checked here, whole, in the bytes that came off the
        wire; coded content that was read and decoded before this check cannot be, and
        is refused, ``invalid_argument``).

        An answer reached through redirects that httpx followed (``follow_redirects``)
        is refused (``unexpected_reply``), whether or not ``server`` is given: httpx
        re-sends the signed headers (and any capability) to the new URL unsigned anew,
        so the answer is not to the request that was signed. Leave redirects off (httpx's
        default) and follow a signed 3xx answer with a new request, signed for its URL.
        """
        if response.history or response.request.url != request.url:
            raise AuthenticationError("the answer comes from a redirect the request was "
                                      "not signed for", code="unexpected_reply")
        if self._server is None and not self._raise_refusals:
            return
        fields = response.headers.raw
        message = HTTPMessage.from_headers(fields, status=response.status_code,
                                           request=request_message(request))
        refused = message.field("agentauth-error")
        if (refused is not None and response.status_code >= 400
                and message.field("signature") is None):  # the middleware's refusal
            if self._raise_refusals:
                raise _refusal(response.status_code, refused)
            return
        if self._server is None:
            return
        content = check_response_head(message, request_nonce=nonce, server=self._server,
                                      skew=self._skew, now=self._clock(),
                                      allow_streamed=self._allow_streamed)
        if response.is_stream_consumed:
            content.update(_wire_content(response))
            content.finish()
        elif isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _AsyncChecked(response.stream, content)
        elif isinstance(response.stream, httpx.SyncByteStream):
            response.stream = _SyncChecked(response.stream, content)
        else:  # no stream httpx knows: nothing would check the content
            raise InvalidArgument("the response's stream is neither sync nor async")

    def sync_auth_flow(self, request: httpx.Request
                       ) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx's hook for ``httpx.Client``: sign, send, check the answer."""
        request.read()
        nonce = self.sign(request)
        response = yield request
        self.check(request, response, nonce)
        if not self._allow_streamed:
            response.read()

    async def async_auth_flow(self, request: httpx.Request
                              ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """httpx's hook for ``httpx.AsyncClient``: sign, send, check the answer."""
        await request.aread()
        nonce = self.sign(request)
        response = yield request
        self.check(request, response, nonce)
        if not self._allow_streamed:
            await response.aread()


def _refusal(status: int, code: str) -> PeerRefused:
    """The error an unsigned refusal (``status``, ``Agentauth-Error: code``) amounts to:
    the server's claim, never a check of the client's own (spec 13.9); raises
    ``malformed`` if ``code`` is not a code of the registry, or is ``peer_refused``,
    which no server answers with."""
    if code not in ERROR_CODES or code == "peer_refused":
        raise DecodeError("the answer's Agentauth-Error is not an error code a server "
                          "sends", code="malformed")
    return PeerRefused(f"the server refused the request ({status}); its answer is not "
                       f"signed", claimed=code)


def _wire_content(response: httpx.Response) -> bytes:
    # The content of a response httpx has read already, as it came off the wire: its
    # ``content`` is decoded (gzip undone), which the digest does not cover (RFC 9530).
    # A response built whole (a mock's, a cache's) keeps those bytes in its ByteStream,
    # which the client wraps to bind it to the response (``_stream``; if a later httpx
    # names it otherwise, coded content is refused below: closed, not open).
    stream = getattr(response.stream, "_stream", response.stream)
    if isinstance(stream, httpx.ByteStream):
        return b"".join(stream)
    if response.headers.get("content-encoding", "identity").strip().lower() not in (
            "", "identity"):
        raise InvalidArgument("the response was read and decoded before its content "
                              "could be checked: give a transport that streams it")
    return response.content


class _Checked:
    # A response's stream, each part through its ResponseContent (which holds the rule);
    # the two classes below only iterate, one synchronously, one not.
    def __init__(self, stream: Any, content: ResponseContent) -> None:
        self._stream = stream
        self._content = content


class _SyncChecked(_Checked, httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        for part in self._stream:
            if ready := self._content.update(part):
                yield ready
        if last := self._content.finish():
            yield last

    def close(self) -> None:
        self._stream.close()


class _AsyncChecked(_Checked, httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            if ready := self._content.update(part):
                yield ready
        if last := self._content.finish():
            yield last

    async def aclose(self) -> None:
        await self._stream.aclose()

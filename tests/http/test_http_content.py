"""Response content integrity on the client (spec 13.3, 13.5, 13.7), over a real uvicorn
server on 127.0.0.1 with an on-path attacker in the client's transport that rewrites what
the real server sent: a ``Content-Digest`` that is present is always checked, in every
mode; content without a signed digest passes only when streaming was allowed and the
answer is a stream (``text/event-stream``, or chunked without ``Content-Length``)."""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from support import ALICE, BOB, T0
from support.http_server import serving

from agentauth import AuthenticationError, InvalidArgument, MemoryReplayStore, PeerKey
from agentauth.http import (
    AgentAuth,
    AgentAuthMiddleware,
    HTTPMessage,
    ResponseContent,
    Signer,
    Verifier,
    check_response,
    content_digest,
    is_stream,
)
from agentauth.http.client import request_message

pytestmark = pytest.mark.anyio

Fields = list[tuple[bytes, bytes]]
Edit = Callable[[Fields, bytes], tuple[Fields, bytes]]


async def report(request: StarletteRequest) -> JSONResponse:
    return JSONResponse({"balance": 100, "to": "alice"})


async def events(request: StarletteRequest) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for n in range(3):
            yield f"data: {n}\n\n".encode()
    return StreamingResponse(chunks(), media_type="text/event-stream")


async def sized_stream(request: StarletteRequest) -> StreamingResponse:
    # Sent in several parts (so signed without a digest) but with a Content-Length: not a
    # stream on the wire, so no client takes its content unsigned.
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"balance": '
        yield b"100}"
    return StreamingResponse(chunks(), media_type="application/json",
                             headers={"content-length": "16"})


FILE = b"%PDF-1.7 quarterly report" * 100


async def sized_file(request: StarletteRequest) -> StreamingResponse:
    # A file sent in parts, with its length and its own digest: the middleware cannot
    # digest it before the headers leave, so it covers the app's Content-Digest.
    async def chunks() -> AsyncIterator[bytes]:
        for at in range(0, len(FILE), 1000):
            yield FILE[at:at + 1000]
    return StreamingResponse(chunks(), media_type="application/pdf", headers={
        "content-length": str(len(FILE)), "content-digest": content_digest(FILE)})


async def nothing(request: StarletteRequest) -> Response:
    return Response(status_code=204)


def routes() -> list[Route]:
    return [Route("/report", report), Route("/events", events), Route("/sized", sized_stream),
            Route("/nothing", nothing), Route("/file", sized_file)]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = AgentAuthMiddleware(Starlette(routes=routes()), identity=ALICE, verifier=Verifier([BOB]),
                              replay=MemoryReplayStore())
    with serving(app) as base:
        yield base


class Parts(httpx.AsyncByteStream, httpx.SyncByteStream):
    """Content handed over in the parts given (as a network read would)."""

    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts

    def __iter__(self) -> Iterator[bytes]:
        yield from self._parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            yield part


def _rewritten(response: httpx.Response, body: bytes, edit: Edit,
               request: httpx.Request) -> httpx.Response:
    fields, content = edit(list(response.headers.raw), body)
    parts = [content[i:i + 4] for i in range(0, len(content), 4)]
    return httpx.Response(response.status_code, headers=fields, stream=Parts(parts),
                          request=request)


class Attacker(httpx.AsyncBaseTransport):
    """The real transport to the real server, then ``edit`` on what it answered."""

    def __init__(self, edit: Edit) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._edit = edit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        return _rewritten(response, body, self._edit, request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class SyncAttacker(httpx.BaseTransport):
    """:class:`Attacker` for ``httpx.Client``."""

    def __init__(self, edit: Edit) -> None:
        self._inner = httpx.HTTPTransport()
        self._edit = edit

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        body = response.read()
        response.close()
        return _rewritten(response, body, self._edit, request)

    def close(self) -> None:
        self._inner.close()


def swap_payee(fields: Fields, body: bytes) -> tuple[Fields, bytes]:
    """Same length, another payee: only the digest can tell."""
    assert b"alice" in body
    return fields, body.replace(b"alice", b"eve!!")


def into_event_stream(fields: Fields, body: bytes) -> tuple[Fields, bytes]:
    """Make the answer look like a stream and give it content of the attacker's."""
    kept = [(k, v) for k, v in fields if k.lower() not in (b"content-length",
                                                             b"content-type")]
    return [*kept, (b"content-type", b"text/event-stream")], b"data: pay eve\n\n"


def client(url: str, edit: Edit | None = None, **options: Any) -> httpx.AsyncClient:
    transport = Attacker(edit) if edit is not None else None
    return httpx.AsyncClient(base_url=url, transport=transport,
                             auth=AgentAuth(BOB, server=ALICE.agent_id, **options))


# ------------------------------------------------------------------ a present digest


@pytest.mark.parametrize("allow_streamed", [False, True])
async def test_a_tampered_json_answer_with_a_signed_digest_is_refused(
        url: str, allow_streamed: bool) -> None:
    async with client(url, swap_payee, allow_streamed=allow_streamed) as http:
        with pytest.raises(AuthenticationError) as info:
            await http.get("/report")
    assert info.value.code == "digest_mismatch"


def test_the_sync_client_refuses_a_tampered_answer_with_allow_streamed(url: str) -> None:
    auth = AgentAuth(BOB, server=ALICE.agent_id, allow_streamed=True)
    with (httpx.Client(base_url=url, auth=auth, transport=SyncAttacker(swap_payee))
          as http, pytest.raises(AuthenticationError) as info):
        http.get("/report")
    assert info.value.code == "digest_mismatch"


async def test_a_streamed_read_of_a_tampered_answer_fails_before_its_last_part(
        url: str) -> None:
    received = []
    async with (client(url, swap_payee, allow_streamed=True) as http,
                http.stream("GET", "/report") as response):
        assert not response.is_stream_consumed  # returned before the content is read
        with pytest.raises(AuthenticationError) as info:
            async for part in response.aiter_raw():
                received.append(part)
    assert info.value.code == "digest_mismatch"
    assert b"alice" not in b"".join(received) and b"}" not in b"".join(received)


async def test_an_intact_answer_read_as_a_stream_arrives_whole(url: str) -> None:
    async with (client(url, allow_streamed=True) as http,
                http.stream("GET", "/report") as response):
        parts = [part async for part in response.aiter_raw()]
    assert b"".join(parts) == b'{"balance":100,"to":"alice"}'


# ------------------------------------------------------------------ no digest


async def test_a_real_event_stream_is_accepted_with_its_content_unsigned(url: str) -> None:
    async with (client(url, allow_streamed=True) as http,
                http.stream("GET", "/events") as response):
        assert response.headers["content-type"].startswith("text/event-stream")
        parts = [part async for part in response.aiter_bytes()]
    assert b"".join(parts) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert "content-digest" not in response.headers["signature-input"]


async def test_an_event_stream_is_refused_without_allow_streamed(url: str) -> None:
    async with client(url) as http:
        with pytest.raises(AuthenticationError) as info:
            await http.get("/events")
    assert info.value.code == "digest_mismatch"


async def test_a_non_stream_answer_without_a_digest_is_refused_even_with_allow_streamed(
        url: str) -> None:
    async with client(url, allow_streamed=True) as http:
        with pytest.raises(AuthenticationError) as info:
            await http.get("/sized")
    assert info.value.code == "digest_mismatch"


async def test_an_empty_answer_is_signed_with_a_digest_so_no_content_can_be_added(
        url: str) -> None:
    async with client(url) as http:
        empty = await http.get("/nothing")
    assert empty.status_code == 204 and "content-digest" in empty.headers
    async with client(url, into_event_stream, allow_streamed=True) as http:
        with pytest.raises(AuthenticationError) as info:
            await http.get("/nothing")
    assert info.value.code == "digest_mismatch"


def swap_a_byte(fields: Fields, body: bytes) -> tuple[Fields, bytes]:
    return fields, body[:-1] + b"!"


@pytest.mark.parametrize("allow_streamed", [False, True])
async def test_a_file_streamed_with_its_own_digest_is_covered_and_checked(
        url: str, allow_streamed: bool) -> None:
    async with client(url, allow_streamed=allow_streamed) as http:
        answer = await http.get("/file")
    assert answer.content == FILE
    assert '"content-digest"' in answer.headers["signature-input"]
    async with client(url, swap_a_byte, allow_streamed=allow_streamed) as http:
        with pytest.raises(AuthenticationError) as info:
            await http.get("/file")
    assert info.value.code == "digest_mismatch"


async def test_content_is_checked_as_it_came_off_the_wire_before_decoding() -> None:
    # The app's answer is compressed inside the middleware, which digests what is sent
    # (RFC 9530); the client checks those bytes, then httpx decodes them.
    inner = GZipMiddleware(Starlette(routes=routes()), minimum_size=10)
    app = AgentAuthMiddleware(inner, identity=ALICE, verifier=Verifier([BOB]),
                              replay=MemoryReplayStore())
    with serving(app) as base:
        async with client(base) as http:
            answer = await http.get("/report", headers={"accept-encoding": "gzip"})
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.json() == {"balance": 100, "to": "alice"}


@pytest.mark.parametrize("allow_streamed", [False, True])
@pytest.mark.parametrize("path", ["/report", "/file", "/events", "/nothing"])
async def test_an_answer_to_head_has_the_digest_of_no_content(
        url: str, path: str, allow_streamed: bool) -> None:
    async with client(url, allow_streamed=allow_streamed) as http:
        answer = await http.head(path)
    assert answer.status_code in (200, 204) and answer.content == b""
    assert answer.headers["content-digest"] == content_digest(b"")


def test_allow_streamed_is_a_bool() -> None:
    with pytest.raises(InvalidArgument):
        AgentAuth(BOB, server=ALICE.agent_id, allow_streamed="no")  # type: ignore[arg-type]


# ------------------------------------------------------------------ sans-I/O


def _answer(fields: list[tuple[str, str]], body: bytes | None) -> tuple[HTTPMessage, str]:
    request = HTTPMessage.from_headers([], method="GET", authority="a.example", path="/")
    signed = Signer(BOB, clock=lambda: T0).sign_request(request)
    request = request.with_fields(signed.headers)
    response = HTTPMessage.from_headers(fields, status=200, request=request)
    added = Signer(ALICE, clock=lambda: T0).sign_response(response, signed.nonce, body)
    return response.with_fields(added.headers), signed.nonce


def test_check_response_takes_the_content_it_checks_not_none() -> None:
    response, nonce = _answer([], b"ok")
    with pytest.raises(InvalidArgument):
        check_response(response, None, request_nonce=nonce,  # type: ignore[arg-type]
                       server=ALICE.agent_id, now=T0)
    assert check_response(response, b"ok", request_nonce=nonce, server=ALICE.agent_id,
                          now=T0).agent_id == ALICE.agent_id


def test_an_unsigned_digest_that_is_present_is_checked_too() -> None:
    response, nonce = _answer([], None)  # signed as a stream, no digest covered
    wrong = response.with_fields([("content-digest", "sha-256=:" + "A" * 43 + "=:")])
    with pytest.raises(AuthenticationError) as info:
        check_response(wrong, b"", request_nonce=nonce, server=ALICE.agent_id, now=T0)
    assert info.value.code == "digest_mismatch"


def test_a_request_with_an_unsigned_digest_that_does_not_match_is_refused() -> None:
    request = HTTPMessage.from_headers([], method="GET", authority="a.example", path="/")
    signed = Signer(BOB, clock=lambda: T0).sign_request(request)
    wrong = request.with_fields([*signed.headers,
                                 ("content-digest", "sha-256=:" + "A" * 43 + "=:")])
    with pytest.raises(AuthenticationError) as info:
        Verifier([BOB], clock=lambda: T0).check_request(wrong, b"")
    assert info.value.code == "digest_mismatch"


@pytest.mark.parametrize(("fields", "expected"), [
    ([("content-type", "text/event-stream")], True),
    ([("content-type", "Text/Event-Stream; charset=utf-8")], True),
    ([("content-type", "text/event-stream"), ("content-length", "10")], False),
    ([("content-type", "application/json"), ("transfer-encoding", "chunked")], True),
    ([("transfer-encoding", "gzip, chunked")], True),
    ([("transfer-encoding", "chunked, gzip")], False),
    ([("content-type", "application/json")], False),
    ([("content-type", "application/json"), ("content-length", "2")], False),
    ([], False),
])
def test_what_counts_as_a_stream(fields: list[tuple[str, str]], expected: bool) -> None:
    assert is_stream(HTTPMessage.from_headers(fields, status=200)) is expected


@settings(max_examples=300, deadline=None, database=None)
@given(parts=st.lists(st.binary(max_size=20), max_size=8), tamper=st.booleans(),
       digest=st.booleans())
def test_the_content_rule_hands_on_all_content_and_the_last_part_only_once_checked(
        parts: list[bytes], tamper: bool, digest: bool) -> None:
    body = b"".join(parts)
    value = content_digest(body + b"!" if tamper else body) if digest else None
    content = ResponseContent(PeerKey(ALICE.public_bytes), value, needs_digest=False)
    handed = b"".join(content.update(part) for part in parts)
    if value is not None and body:
        assert len(handed) < len(body)  # something is held until the check
    if digest and tamper:
        with pytest.raises(AuthenticationError):
            content.finish()
        return
    assert handed + content.finish() == body


@settings(max_examples=100, deadline=None, database=None)
@given(parts=st.lists(st.binary(max_size=20), max_size=8))
def test_content_that_needs_a_digest_is_refused_at_its_first_byte(
        parts: list[bytes]) -> None:
    content = ResponseContent(PeerKey(ALICE.public_bytes), None, needs_digest=True)
    try:
        for part in parts:
            assert content.update(part) == b""
    except AuthenticationError as error:
        assert error.code == "digest_mismatch" and any(parts)
    else:
        assert not any(parts) and content.finish() == b""


# ------------------------------------------------------------------ content read before the check


JSON = b'{"balance":100,"to":"alice"}'


def gzip_answer(digest_over: bytes) -> Callable[[httpx.Request], httpx.Response]:
    """A transport's handler that answers whole (as a mock or a cache builds a response,
    read before the client sees it), gzip-coded, signed with the digest of
    ``digest_over``."""
    coded = gzip.compress(JSON, mtime=0)

    def handle(request: httpx.Request) -> httpx.Response:
        nonce = re.search(r'nonce="([^"]+)"', request.headers["signature-input"])
        assert nonce is not None
        fields = [("content-type", "application/json"), ("content-encoding", "gzip"),
                  ("content-digest", content_digest(digest_over))]
        response = HTTPMessage.from_headers(fields, status=200,
                                            request=request_message(request))
        added = Signer(ALICE).sign_response(response, nonce.group(1), None)
        return httpx.Response(200, headers=[*fields, *added.headers], content=coded)

    return handle


@pytest.mark.parametrize("allow_streamed", [False, True])
def test_an_answer_read_whole_is_checked_as_it_came_off_the_wire(
        allow_streamed: bool) -> None:
    # httpx hands such a response over read, and its ``content`` decoded: the digest was
    # checked over the decoded bytes, so an honest coded answer was refused and a
    # digest of the decoded content was accepted.
    auth = AgentAuth(BOB, server=ALICE.agent_id, allow_streamed=allow_streamed)
    coded = gzip.compress(JSON, mtime=0)
    with httpx.Client(transport=httpx.MockTransport(gzip_answer(coded)), auth=auth) as http:
        assert http.get("http://a.example/report").json()["to"] == "alice"
    with (httpx.Client(transport=httpx.MockTransport(gzip_answer(JSON)), auth=auth) as http,
          pytest.raises(AuthenticationError) as info):
        http.get("http://a.example/report")
    assert info.value.code == "digest_mismatch"


async def test_an_async_answer_read_whole_is_checked_as_it_came_off_the_wire() -> None:
    auth = AgentAuth(BOB, server=ALICE.agent_id)
    coded = gzip.compress(JSON, mtime=0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(gzip_answer(coded)),
                                 auth=auth) as http:
        assert (await http.get("http://a.example/report")).json()["to"] == "alice"
    async with httpx.AsyncClient(transport=httpx.MockTransport(gzip_answer(JSON)),
                                 auth=auth) as http:
        with pytest.raises(AuthenticationError) as info:
            await http.get("http://a.example/report")
    assert info.value.code == "digest_mismatch"


def test_coded_content_read_and_decoded_before_the_check_is_refused() -> None:
    # A transport that read a streamed answer itself: only the decoded bytes are left,
    # which no digest covers, so the answer is refused rather than checked over them.
    coded = gzip.compress(JSON, mtime=0)
    answer = gzip_answer(coded)

    def handle(request: httpx.Request) -> httpx.Response:
        whole = answer(request)
        read = httpx.Response(200, headers=whole.headers.raw, stream=Parts([coded]),
                              request=request)
        read.read()
        return read

    auth = AgentAuth(BOB, server=ALICE.agent_id)
    with (httpx.Client(transport=httpx.MockTransport(handle), auth=auth) as http,
          pytest.raises(InvalidArgument) as info):
        http.get("http://a.example/report")
    assert "decoded" in info.value.message


@pytest.mark.parametrize(("wrong", "refused"), [((), False), (("sha-256",), True),
                                                (("sha-512",), True),
                                                (("sha-256", "sha-512"), True)],
                         ids=["both right", "sha-256 wrong", "sha-512 wrong", "both wrong"])
def test_every_digest_algorithm_present_is_checked(wrong: tuple[str, ...],
                                                   refused: bool) -> None:
    # A signed Content-Digest with sha-256 and sha-512: one wrong member refuses, whichever.
    members = []
    for name in ("sha-256", "sha-512"):
        value = content_digest(JSON + b"!" if name in wrong else JSON, [name])
        members.append(value)
    response, nonce = _answer([("content-digest", ", ".join(members))], None)
    assert '"content-digest"' in (response.field("signature-input") or "")
    if not refused:
        check_response(response, JSON, request_nonce=nonce, server=ALICE.agent_id, now=T0)
        return
    with pytest.raises(AuthenticationError) as info:
        check_response(response, JSON, request_nonce=nonce, server=ALICE.agent_id, now=T0)
    assert info.value.code == "digest_mismatch"


@pytest.mark.parametrize("skew", [float("nan"), float("inf"), -1, 1.5, "60"])
def test_a_skew_that_is_no_number_of_seconds_is_refused(skew: Any) -> None:
    # check_response took a NaN skew, with which every clock test passes: an expired
    # answer was accepted; AgentAuth passed any skew on to it.
    response, nonce = _answer([], b"ok")
    with pytest.raises(InvalidArgument):
        check_response(response, b"ok", request_nonce=nonce, server=ALICE.agent_id,
                       now=T0 + 86_400, skew=skew)
    with pytest.raises(InvalidArgument):
        AgentAuth(BOB, server=ALICE.agent_id, skew=skew)

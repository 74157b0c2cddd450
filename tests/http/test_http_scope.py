"""A malformed ASGI scope or request message gets a typed answer from the middleware (spec
13.9: ``400 malformed`` with ``Agentauth-Error``), never an exception out of the app: a
path with a lone surrogate and no ``raw_path``, a method, headers, query string or scheme
of the wrong type or shape, a scope of no known type, body messages that are not bytes.
The same for the sans-I/O verifier given values it cannot read. Then arbitrary scopes
(hypothesis), and raw-socket requests with bad targets to the middleware under uvicorn
(which refuses raw bytes that are not ASCII itself, and hands over percent-escapes that
decode to no text with a ``raw_path``, so no surrogate path reaches the middleware that
way: the scope-level tests above cover it)."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import socket
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ALICE, BOB, T0
from support.http_server import serving

from agentauth import (
    ERROR_CODES,
    AgentAuthError,
    DecodeError,
    InvalidArgument,
    MemoryReplayStore,
    PeerKey,
    PeerRefused,
    StoreError,
)
from agentauth.capability import Grant, delegate, encode_chain
from agentauth.http import (
    AgentAuth,
    AgentAuthMiddleware,
    HTTPMessage,
    Signer,
    Verifier,
    check_response,
    status_of,
)
from agentauth.http.components import ser_member, signature_base, signature_params

Event = MutableMapping[str, Any]


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def middleware() -> AgentAuthMiddleware:
    return AgentAuthMiddleware(ok_app, identity=ALICE, verifier=Verifier([BOB]),
                               replay=MemoryReplayStore())


def _signed_headers() -> list[tuple[bytes, bytes]]:
    request = httpx.Request("GET", "http://testserver/x")
    AgentAuth(BOB).sign(request)
    return list(request.headers.raw)


SIGNED = _signed_headers()


def scope(**changes: Any) -> dict[str, Any]:
    """A well-formed http scope of a ``GET /x`` signed now (a signature made at import
    would expire in a long run), with ``changes`` (a value of ``...`` removes the key)."""
    base: dict[str, Any] = {"type": "http", "method": "GET", "scheme": "http",
                            "path": "/x", "raw_path": b"/x", "query_string": b"",
                            "headers": _signed_headers(), "server": ("testserver", 80),
                            "client": ("127.0.0.1", 5000)}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


async def run(app: AgentAuthMiddleware, the_scope: Any,
              events: list[Any] | None = None) -> list[Event]:
    sent: list[Event] = []
    queue = list(events if events is not None
                 else [{"type": "http.request", "body": b"", "more_body": False}])

    async def receive() -> Any:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(event: Event) -> None:
        sent.append(event)

    await app(the_scope, receive, send)
    return sent


def answer_of(sent: list[Event]) -> tuple[int, str | None]:
    """The status and the Agentauth-Error code of what the middleware sent."""
    start = sent[0]
    assert start["type"] == "http.response.start"
    headers = dict(start["headers"])
    code = headers.get(b"agentauth-error")
    if code is None:
        return start["status"], None
    assert json.loads(sent[1]["body"])["error"]["data"]["code"] == code.decode()
    return start["status"], code.decode()


# ------------------------------------------------------------------ each malformed shape


def test_a_path_with_a_lone_surrogate_and_no_raw_path_is_a_400() -> None:
    sent = anyio.run(run, middleware(), scope(path="/x\udc80", raw_path=...))
    assert answer_of(sent) == (400, "malformed")


MALFORMED = {
    "surrogate path": {"path": "/\ud800", "raw_path": ...},
    "path not str": {"path": b"/x"},
    "path missing": {"path": ...},
    "path huge": {"path": "/" + "a" * 70_000},
    "raw_path str": {"raw_path": "/x"},
    "method missing": {"method": ...},
    "method int": {"method": 1},
    "method not a token": {"method": "G T"},
    "method not ascii": {"method": "G\u00c9T"},
    "method huge": {"method": "G" * 100},
    "headers missing": {"headers": ...},
    "headers a dict": {"headers": {b"host": b"x"}},
    "headers a str": {"headers": "host: x"},
    "header line of three": {"headers": [(b"host", b"x", b"y")]},
    "header line not a pair": {"headers": [b"host"]},
    "header name str": {"headers": [("host", b"x")]},
    "header value str": {"headers": [(b"host", "x")]},
    "header name not ascii": {"headers": [(b"x-\xff", b"1")]},
    "header name empty": {"headers": [(b"", b"1")]},
    "header name huge": {"headers": [(b"x" * 300, b"1")]},
    "header name with a colon": {"headers": [(b"x:y", b"1")]},
    "headers too many": {"headers": [(b"x-a", b"1")] * 2000},
    "headers too big": {"headers": [(b"x-a", b"v" * 100_000)] * 3},
    "query_string str": {"query_string": "a=1"},
    "query_string none": {"query_string": None},
    "scheme odd": {"scheme": "gopher"},
    "scheme bytes": {"scheme": b"http"},
    "type missing": {"type": ...},
    "type int": {"type": 7},
    "type unknown": {"type": "HTTP"},
}


@pytest.mark.parametrize("changes", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_scope_is_a_400(changes: dict[str, Any]) -> None:
    assert answer_of(anyio.run(run, middleware(), scope(**changes))) == (400, "malformed")


def test_a_scope_that_is_not_a_mapping_is_a_400() -> None:
    assert answer_of(anyio.run(run, middleware(), ["type", "http"])) == (400, "malformed")


@pytest.mark.parametrize("events", [
    [None], [{"body": b""}], [{"type": "http.request", "body": "text"}],
    [{"type": "http.request", "body": b"", "more_body": "yes"}],
    [{"type": "http.request", "body": [1]}],
], ids=["none", "no type", "body str", "more_body str", "body list"])
def test_odd_body_messages_are_a_400(events: list[Any]) -> None:
    assert answer_of(anyio.run(run, middleware(), scope(), events)) == (400, "malformed")


def test_server_and_client_are_not_read_so_odd_ones_change_nothing() -> None:
    sent = anyio.run(run, middleware(), scope(server=object(), client="?"))
    assert answer_of(sent) == (200, None)


def test_a_well_formed_scope_still_passes_and_other_types_as_before() -> None:
    assert answer_of(anyio.run(run, middleware(), scope())) == (200, None)
    assert answer_of(anyio.run(run, middleware(), {"type": "lifespan"})) == (200, None)
    closed = anyio.run(run, middleware(), {"type": "websocket"})
    assert closed == [{"type": "websocket.close", "code": 1008}]


# ------------------------------------------------------------------ the sans-I/O verifier


def test_the_verifier_refuses_a_message_it_cannot_encode_with_a_typed_error() -> None:
    message = HTTPMessage.from_headers([], method="GET", authority="a.example", path="/")
    signed = message.with_fields(Signer(BOB, clock=lambda: T0).sign_request(message)
                                 .headers)
    odd = HTTPMessage(signed.fields, method="GET", authority="a.example", path="/\udc80")
    with pytest.raises(DecodeError) as info:
        Verifier([BOB], clock=lambda: T0).check_request(odd)
    assert info.value.code == "malformed"


@pytest.mark.parametrize("target", [
    {"fields": (("host", b"x"),)}, {"fields": (("host",),)}, {"fields": ((1, "x"),)},
    {"fields": (), "method": b"GET"}, {"fields": (), "path": None},
    {"fields": (), "status": "200"}, {"fields": (), "status": True},
    {"fields": (), "status": 20}, {"fields": (), "request": "GET /"},
], ids=repr)
def test_a_message_of_the_wrong_types_is_refused_when_made(target: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        HTTPMessage(**target)


@pytest.mark.parametrize("headers", [[(1, 2)], [("a", "b", "c")], 5, [None]], ids=repr)
def test_from_headers_refuses_what_is_not_pairs_of_str_or_bytes(headers: Any) -> None:
    with pytest.raises(InvalidArgument):
        HTTPMessage.from_headers(headers, method="GET")


def test_check_response_and_check_authority_refuse_arguments_of_the_wrong_type() -> None:
    response = HTTPMessage((), status=200)
    with pytest.raises(InvalidArgument):
        check_response(response, b"", request_nonce=None,  # type: ignore[arg-type]
                       server=ALICE.agent_id)
    with pytest.raises(InvalidArgument):
        Verifier([BOB], authorities=["a.example"]).check_authority(
            b"a.example")  # type: ignore[arg-type]


# ------------------------------------------------------------------ arbitrary scopes

ANY = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                st.binary(max_size=8), st.lists(st.integers(), max_size=2))
ODD_TEXT = st.sampled_from(["/\udc80", "/\ud800x", "\x00", "/a\r\nb", ""])
LINE = st.one_of(
    st.sampled_from(SIGNED),
    st.tuples(st.sampled_from([b"host", b"content-length", b"content-type", b"x-a"]),
              st.binary(max_size=24)),
    st.tuples(st.binary(max_size=300), st.binary(max_size=16)),
    st.lists(st.binary(max_size=8), max_size=3), st.tuples(ANY, ANY), ANY)
SCOPES = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.just("http"), st.just("http"), st.sampled_from(
        ["lifespan", "websocket", "HTTP", "https"]), ANY),
    "method": st.one_of(st.sampled_from(["GET", "POST", "get", "M-SEARCH"]),
                        st.text(max_size=70), ANY),
    "path": st.one_of(st.sampled_from(["/x", "/", "/.well-known/http-message-signatures"
                                       "-directory"]), ODD_TEXT, st.text(max_size=40), ANY),
    "raw_path": st.one_of(st.none(), st.binary(max_size=40), ANY),
    "query_string": st.one_of(st.binary(max_size=20), ANY),
    "scheme": st.one_of(st.sampled_from(["http", "https", "HTTPS", "ws"]), ANY),
    "headers": st.one_of(st.lists(LINE, max_size=8), st.tuples(LINE), ANY),
    "server": st.one_of(st.tuples(st.text(max_size=8), st.integers()), ANY),
    "client": st.one_of(st.tuples(st.text(max_size=8), st.integers()), ANY),
    "extensions": st.one_of(st.dictionaries(st.text(max_size=20), ANY, max_size=2), ANY),
    "root_path": st.one_of(st.text(max_size=8), ANY),
})
EVENTS = st.lists(st.one_of(
    st.fixed_dictionaries({"type": st.just("http.request"),
                           "body": st.one_of(st.binary(max_size=16), ANY)},
                          optional={"more_body": st.one_of(st.booleans(), ANY)}),
    st.just({"type": "http.disconnect"}), ANY), max_size=3)


@settings(max_examples=600, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(the_scope=SCOPES, events=EVENTS)
def test_any_scope_gets_a_typed_answer_never_an_exception(the_scope: dict[str, Any],
                                                          events: list[Any]) -> None:
    sent = anyio.run(run, middleware(), the_scope, events)
    if the_scope.get("type") == "websocket":
        assert sent == [{"type": "websocket.close", "code": 1008}]
        return
    status, code = answer_of(sent)
    if code is None:
        assert status == 200  # the app's own answer (lifespan, or a request that passed)
        return
    assert code in ERROR_CODES
    error: AgentAuthError = ERROR_CODES[code][0]("x", code=code)
    assert status == status_of(error)


# ------------------------------------------------------------------ under uvicorn


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    with serving(middleware()) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def raw_request(address: tuple[str, int], head: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(head + b"\r\nHost: testserver\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("head", [
    b"GET /%ED%A0%80 HTTP/1.1", b"GET /%FF%FE%00 HTTP/1.1", b"GET /\xff\xfe HTTP/1.1",
    b"GET /a%0D%0Ab HTTP/1.1", b"G\xc9T / HTTP/1.1", b"GET /" + b"a" * 60_000 + b" HTTP/1.1",
    b"GET /x HTTP/1.1\r\nX-\xff: 1", b"GET /x HTTP/1.1\r\n" + b"X" * 300 + b": 1",
    b"GET /x?\xff=\x01 HTTP/1.1",
], ids=["surrogate escape", "invalid utf-8 escape", "raw non-ascii", "escaped CRLF",
        "non-ascii method", "long path", "non-ascii header name", "long header name",
        "non-ascii query"])
def test_bad_targets_over_a_real_socket_get_a_status_never_an_app_exception(
        address: tuple[str, int], head: bytes, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        received = raw_request(address, head)
    status = int(received.split(b" ", 2)[1])
    assert status in {400, 401, 413, 414, 431}, received[:200]
    assert not [r for r in caplog.records if "Exception in ASGI application"
                in r.getMessage()]
    assert b" 401 " in raw_request(address, b"GET /x HTTP/1.1")[:20]  # still serving


# ------------------------------------------------------------------ answers of the app's parts


class OddStore:
    """A replay store whose answer is not a bool."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def check_and_insert(self, key: bytes, expires: float) -> Any:
        return self.answer

    def check_and_insert_many(self, items: Any) -> list[Any]:
        return [self.answer for _ in items]


@pytest.mark.parametrize("answer", [1, "yes", object(), None, 0, ""],
                         ids=["1", "yes", "object", "None", "0", "empty"])
def test_a_replay_store_answer_that_is_not_a_bool_refuses(answer: object) -> None:
    app = AgentAuthMiddleware(ok_app, identity=ALICE, verifier=Verifier([BOB]),
                              replay=OddStore(answer))
    assert answer_of(anyio.run(run, app, scope())) == (500, "invalid_argument")



class UpstreamStore:
    """A replay store backed by a service that refused it (sync or async)."""

    def __init__(self, *, asynchronous: bool) -> None:
        self.asynchronous = asynchronous

    def check_and_insert(self, key: bytes, expires: float) -> Any:
        refused = PeerRefused("the store's service refused", claimed="untrusted_peer")
        if not self.asynchronous:
            raise refused

        async def later() -> bool:
            raise refused
        return later()

    def check_and_insert_many(self, items: Any) -> list[Any]:
        return [self.check_and_insert(key, expires) for key, expires in items]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_callbacks_peer_refused_is_the_servers_fault_not_the_clients(
        asynchronous: bool) -> None:
    # Another peer's claim is no decision about this request: 500, invalid_argument
    # (7.1, 13.9), never 401 with Accept-Signature inviting the client to sign again.
    app = AgentAuthMiddleware(ok_app, identity=ALICE, verifier=Verifier([BOB]),
                              replay=UpstreamStore(asynchronous=asynchronous))
    sent = anyio.run(run, app, scope())
    assert answer_of(sent) == (500, "invalid_argument")
    assert b"accept-signature" not in dict(sent[0]["headers"])


def test_a_resource_mapping_that_returns_no_request_refuses() -> None:
    now = int(time.time())
    chain = encode_chain([delegate(ALICE, BOB, [Grant("x", {"get"})], not_before=now - 60,
                                   expires=now + 600)])
    request = httpx.Request("GET", "http://testserver/x")
    AgentAuth(BOB, chain=chain).sign(request)
    app = AgentAuthMiddleware(ok_app, identity=ALICE, verifier=Verifier([BOB]),
                              replay=MemoryReplayStore(), anchors={ALICE.agent_id: "**"},
                              resource_of=lambda method, path: None)  # type: ignore
    sent = anyio.run(run, app, scope(headers=list(request.headers.raw)))
    assert answer_of(sent) == (403, "not_authorized")


@pytest.mark.parametrize("options", [{"max_body": "1024"}, {"max_body": -1},
                                     {"verifier": object()}, {"public": [b"/health"]}],
                         ids=["max_body str", "max_body negative", "verifier", "public"])
def test_settings_the_middleware_cannot_use_are_refused_when_it_is_made(
        options: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"identity": ALICE, "verifier": Verifier([BOB]),
                                "replay": MemoryReplayStore(), **options}
    with pytest.raises(InvalidArgument):
        AgentAuthMiddleware(ok_app, **settings)


# ------------------------------------------------------------------ what the answer must sign


def web_bot_auth_headers() -> list[tuple[bytes, bytes]]:
    """A Web Bot Auth request signature that covers ``@authority`` alone, as the drafts
    allow (spec 13.8): the path and query are not signed."""
    components: list[tuple[str, dict[str, Any]]] = [("@authority", {})]
    now = int(time.time())
    params = {"created": now, "expires": now + 60,
              "nonce": base64.b64encode(bytes(range(16))).decode(),
              "keyid": PeerKey(BOB.public_bytes).jwk_thumbprint(), "alg": "ed25519",
              "tag": "web-bot-auth"}
    value = signature_params(components, params)
    message = HTTPMessage.from_headers([(b"host", b"testserver")], method="GET",
                                       authority="testserver", path="/x")
    signature = BOB.sign(signature_base(message, components, value))
    return [(b"host", b"testserver"), (b"signature-input", f"agentauth={value}".encode()),
            (b"signature", ser_member("agentauth", signature).encode())]


@pytest.mark.parametrize("target", [{"raw_path": b"/x\n"}, {"raw_path": b"/x\rz"},
                                    {"query_string": b"a=1\r\nb"},
                                    {"path": "/x\n", "raw_path": ...}],
                         ids=["LF in path", "CR in path", "CRLF in query", "LF, no raw_path"])
def test_a_target_no_answer_could_sign_is_a_400_before_the_app_runs(
        target: dict[str, Any]) -> None:
    # The signature need not cover the path, so the request verified, the app ran, and
    # signing its answer (which covers "@path";req and "@query";req) raised out of the app.
    ran: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ran.append(True)
        await ok_app(scope, receive, send)

    middleware = AgentAuthMiddleware(app, identity=ALICE, replay=MemoryReplayStore(),
                                     verifier=Verifier([BOB], web_bot_auth=True))
    assert answer_of(anyio.run(run, middleware, scope(headers=web_bot_auth_headers()))) == (
        200, None)
    ran.clear()
    sent = anyio.run(run, middleware, scope(headers=web_bot_auth_headers(), **target))
    assert answer_of(sent) == (400, "malformed") and not ran


class FailingStore:
    """A replay store that cannot answer, and says why in terms of the server's set-up."""

    def __init__(self, code: str) -> None:
        self.code = code

    def check_and_insert(self, key: bytes, expires: float) -> bool:
        raise StoreError("the Redis server at 10.0.0.7:6379 did not answer (3 attempts)",
                         code=self.code)

    def check_and_insert_many(self, items: Any) -> list[bool]:
        raise StoreError("unused", code=self.code)


@pytest.mark.parametrize("code", ["store_unavailable", "store_full"])
def test_a_store_failure_is_a_503_whose_reason_stays_in_the_log(
        code: str, caplog: pytest.LogCaptureFixture) -> None:
    # The store's reason (which server, how full) was sent to the client and not logged.
    app = AgentAuthMiddleware(ok_app, identity=ALICE, verifier=Verifier([BOB]),
                              replay=FailingStore(code))
    with caplog.at_level(logging.INFO, logger="agentauth.http"):
        sent = anyio.run(run, app, scope())
    assert answer_of(sent) == (503, code)
    assert b"10.0.0.7" not in sent[1]["body"] and b"try again later" in sent[1]["body"]
    assert "10.0.0.7" in " ".join(r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("length", "expected"), [
    (b"abc", (400, "malformed")), (b"-1", (400, "malformed")), (b"", (400, "malformed")),
    (b"1" * 30, (413, "oversize")), (b"0" * 30, (401, "unsigned"))],
    ids=["letters", "negative", "empty", "huge", "zero, long"])
def test_a_content_length_that_is_no_number_is_malformed_not_oversize(
        length: bytes, expected: tuple[int, str]) -> None:
    # Any Content-Length that was not all digits was answered 413 "over the limit".
    the_scope = scope(headers=[(b"content-length", length)])
    assert answer_of(anyio.run(run, middleware(), the_scope)) == expected


def test_headers_given_as_any_iterable_are_read_once_and_handed_on() -> None:
    # ASGI's headers are an iterable of pairs: a generator was refused as malformed.
    seen: list[Any] = []

    async def app(the_scope: Any, receive: Any, send: Any) -> None:
        seen.append(the_scope["headers"])
        await ok_app(the_scope, receive, send)

    middleware = AgentAuthMiddleware(app, identity=ALICE, verifier=Verifier([BOB]),
                                     replay=MemoryReplayStore())
    signed = _signed_headers()
    sent = anyio.run(run, middleware, scope(headers=(line for line in signed)))
    assert answer_of(sent) == (200, None) and seen == [signed]


def test_headers_from_an_iterable_that_fails_or_never_ends_are_a_400() -> None:
    def failing() -> Iterator[tuple[bytes, bytes]]:
        yield (b"host", b"testserver")
        raise OSError("the server's own failure")

    endless = itertools.repeat((b"x-a", b"1"))
    for headers in (failing(), endless):
        sent = anyio.run(run, middleware(), scope(headers=headers))
        assert answer_of(sent) == (400, "malformed")

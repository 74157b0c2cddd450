"""Attacks on the HTTP binding, each refused (spec 13): a request relayed by
its first server to another, a signed request re-sent by httpx's redirect handling, an
app's file body bypassing the signing send, a capability on a request whose target is not
signed, and spellings of a path that pass for a granted resource."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import http_sf
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route
from support import ALICE, BOB, CAROL, T0, Clock
from support.http_server import serving

from agentauth import (
    AgentAuthError,
    AuthenticationError,
    CapabilityDenied,
    InvalidArgument,
    MemoryReplayStore,
)
from agentauth.capability import Grant, Request, delegate, encode_chain
from agentauth.http import (
    AgentAuth,
    AgentAuthMiddleware,
    HTTPMessage,
    Signer,
    Verifier,
    check_capability,
    check_response,
    default_resource,
    invocation_binding,
    invocation_for,
)
from agentauth.http.components import authority_value, ser_member, signature_base, signature_params

pytestmark = pytest.mark.anyio
Event = MutableMapping[str, Any]


def code_of(work: Any) -> str:
    with pytest.raises(AgentAuthError) as info:
        work()
    return str(info.value.code)


def chain_for(holder: Any, resource: str = "reports/**") -> bytes:
    moment = int(time.time())
    return encode_chain([delegate(ALICE, holder, [Grant(resource, {"get"})],
                                  not_before=moment - 60, expires=moment + 600)])


# ------------------------------------------------------------------ relay to another host


def message_for(host: str, path: str = "/reports/q3") -> HTTPMessage:
    return HTTPMessage.from_headers([("host", host)], method="GET", authority=host,
                                    path=path)


def signed_for(host: str) -> HTTPMessage:
    message = message_for(host)
    return message.with_fields(Signer(BOB, clock=Clock(T0)).sign_request(message).headers,
                               replace=True)


def test_a_verifier_that_names_its_hosts_refuses_a_request_signed_for_another() -> None:
    for_a = signed_for("a.example")
    b = Verifier([BOB], authorities=["b.example", "127.0.0.1:8000"], clock=Clock(T0))
    assert code_of(lambda: b.check_request(for_a)) == "wrong_recipient"
    a = Verifier([BOB], authorities=["A.Example"], clock=Clock(T0))
    assert a.check_request(for_a).peer.agent_id == BOB.agent_id
    assert Verifier([BOB], authorities="a.example", clock=Clock(T0)).check_request(for_a)
    bad: Any
    for bad in ([], [""], [7]):
        with pytest.raises(InvalidArgument):
            Verifier([BOB], authorities=bad)


def host_app(identity: Any, authorities: list[str]) -> AgentAuthMiddleware:
    async def hello(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse(request.user.agent_id)
    return AgentAuthMiddleware(Starlette(routes=[Route("/hello", hello)]),
                               identity=identity, replay=MemoryReplayStore(),
                               verifier=Verifier([BOB], authorities=authorities))


async def test_a_server_relaying_a_signed_request_to_another_is_refused() -> None:
    # B trusts Bob too. A request Bob signed for A, relayed by A to B with A's Host
    # (unchanged, so the signature holds), is refused by B; B's own requests pass.
    with serving(host_app(CAROL, ["b.example"])) as b_url:
        request = httpx.Request("GET", b_url + "/hello", headers={"host": "a.example"})
        AgentAuth(BOB).sign(request)
        async with httpx.AsyncClient() as client:
            relayed = await client.send(request)
            mine = httpx.Request("GET", b_url + "/hello", headers={"host": "b.example"})
            AgentAuth(BOB).sign(mine)
            direct = await client.send(mine)
    assert relayed.status_code == 401
    assert relayed.headers["agentauth-error"] == "wrong_recipient"
    assert direct.status_code == 200 and direct.text == BOB.agent_id


# ------------------------------------------------------------------ redirects


def recorder(seen: list[dict[str, str]]) -> Any:
    async def app(scope: Event, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"elsewhere"})
    return app


def redirector(target: str) -> Any:
    async def app(scope: Event, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 307,
                    "headers": [(b"location", target.encode())]})
        await send({"type": "http.response.body", "body": b""})
    return app


@pytest.fixture
def redirect_urls() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    with serving(recorder(seen)) as other:
        # "localhost" is another authority than "127.0.0.1": another host to httpx.
        elsewhere = other.replace("127.0.0.1", "localhost") + "/landing"
        with serving(redirector(elsewhere)) as front:
            yield front, seen


@pytest.mark.parametrize("server", [None, ALICE.agent_id])
async def test_an_answer_through_a_followed_redirect_is_refused(
        redirect_urls: tuple[str, list[dict[str, str]]], server: str | None) -> None:
    front, seen = redirect_urls
    auth = AgentAuth(BOB, server=server, chain=chain_for(BOB))
    async with httpx.AsyncClient(auth=auth, follow_redirects=True) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get(front + "/reports/q3")
    assert info.value.code == "unexpected_reply"
    assert "signature" in seen[-1]  # httpx re-sent the headers: what the refusal is for


def test_the_sync_client_refuses_a_followed_redirect_too(
        redirect_urls: tuple[str, list[dict[str, str]]]) -> None:
    front, _ = redirect_urls
    with (httpx.Client(auth=AgentAuth(BOB), follow_redirects=True) as client,
          pytest.raises(AuthenticationError) as info):
        client.get(front + "/x")
    assert info.value.code == "unexpected_reply"


async def test_a_signed_redirect_not_followed_is_checked_and_returned() -> None:
    async def moved(request: StarletteRequest) -> RedirectResponse:
        return RedirectResponse("/elsewhere", status_code=307)
    app = AgentAuthMiddleware(Starlette(routes=[Route("/old", moved)]), identity=ALICE,
                              verifier=Verifier([BOB]), replay=MemoryReplayStore())
    with serving(app) as url:
        async with httpx.AsyncClient(auth=AgentAuth(BOB, server=ALICE.agent_id)) as client:
            response = await client.get(url + "/old")
    assert response.status_code == 307 and response.headers["location"] == "/elsewhere"
    assert 'tag="agentauth-response"' in response.headers["signature-input"]


# ------------------------------------------------------------------ file bodies


async def test_a_file_response_is_signed_even_where_the_server_offers_pathsend(
        tmp_path: Path) -> None:
    report = tmp_path / "q3.txt"
    report.write_bytes(b"the third quarter")

    async def download(request: StarletteRequest) -> FileResponse:
        return FileResponse(report)
    app = AgentAuthMiddleware(Starlette(routes=[Route("/q3", download)]), identity=ALICE,
                              verifier=Verifier([BOB]), replay=MemoryReplayStore())
    request = httpx.Request("GET", "http://testserver/q3")
    AgentAuth(BOB).sign(request)
    scope = {"type": "http", "method": "GET", "scheme": "http", "path": "/q3",
             "raw_path": b"/q3", "query_string": b"", "headers": list(request.headers.raw),
             "extensions": {"http.response.pathsend": {}}}
    sent: list[Event] = []
    inbox = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Event:
        if inbox:
            return inbox.pop(0)
        await anyio.sleep_forever()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(event: Event) -> None:
        sent.append(event)

    await app(scope, receive, send)
    assert [e["type"] for e in sent] == ["http.response.start", "http.response.body"]
    body = sent[1]["body"]
    assert body == b"the third quarter"
    response = HTTPMessage.from_headers(sent[0]["headers"], status=sent[0]["status"],
                                        request=HTTPMessage.from_headers(
                                            request.headers.raw, method="GET",
                                            authority="testserver", path="/q3"))
    nonce = request.headers["signature-input"].split('nonce="', 1)[1].split('"', 1)[0]
    assert check_response(response, body, request_nonce=nonce,
                          server=ALICE.agent_id).agent_id == ALICE.agent_id


# ------------------------------------------------------------------ capability target


def web_bot_auth_request(path: str, chain: bytes) -> HTTPMessage:
    """A Web Bot Auth signature covering only @authority and the capability (13.8 lets
    it), carrying an invocation for GET /reports/q3."""
    message = HTTPMessage.from_headers([("host", "a.example")], method="GET",
                                       authority="a.example", path=path)
    components: list[Any] = [("@authority", {}), ("agentauth-capability", {})]
    now = int(time.time())
    params = {"created": now, "expires": now + 60, "nonce": "n" * 22,
              "keyid": CAROL.agent_id, "alg": "ed25519", "tag": "web-bot-auth"}
    value = signature_params(components, params)
    invocation = invocation_for(chain, Request("reports/q3", "get"))(
        invocation_binding(value))
    message = message.with_fields([("agentauth-capability",
                                    http_sf.ser((invocation, {})))])
    signature = CAROL.sign(signature_base(message, components, value))
    return message.with_fields([("signature-input", f"wba={value}"),
                                ("signature", ser_member("wba", signature))])


def test_a_capability_on_a_request_whose_target_is_not_signed_is_refused() -> None:
    verifier = Verifier([CAROL], web_bot_auth=True)
    chain = chain_for(CAROL, "reports/**")
    # Signed for /reports/q3, sent to /reports/q4: the signature still holds, since it
    # does not cover the path; the capability must not then apply to the new path.
    moved = web_bot_auth_request("/reports/q4", chain)
    verified = verifier.check_request(moved)
    anchors = {ALICE.agent_id: "**"}
    with pytest.raises(AuthenticationError) as info:
        check_capability(moved, verified, anchors)
    assert info.value.code == "uncovered_component"
    same = web_bot_auth_request("/reports/q3", chain)
    assert code_of(lambda: check_capability(same, verifier.check_request(same), anchors)
                   ) == "uncovered_component"


# ------------------------------------------------------------------ path spellings


@pytest.mark.parametrize("path", ["/reports/q3/", "//reports/q3", "/reports//q3", "/",
                                  "reports/q3", "/reports/%2E%2E/admin", "/reports%2Fq3",
                                  "/reports/../admin", "/reports/./q3"])
def test_no_other_spelling_of_a_path_maps_to_a_resource(path: str) -> None:
    with pytest.raises(CapabilityDenied) as info:
        default_resource("GET", path)
    assert info.value.code == "not_authorized"


def test_the_default_mapping_of_a_plain_path() -> None:
    assert default_resource("GET", "/reports/q3") == Request("reports/q3", "get")
    assert default_resource("DELETE", "/a") == Request("a", "delete")


def test_a_client_refuses_to_sign_a_capability_for_a_path_that_names_none() -> None:
    request = httpx.Request("GET", "http://a.example/reports/q3/")
    with pytest.raises(CapabilityDenied):
        AgentAuth(BOB, chain=chain_for(BOB)).sign(request)
    assert "signature" not in request.headers


# ------------------------------------------------------------------ the middleware, direct


async def call(app: AgentAuthMiddleware, request: httpx.Request) -> list[Event]:
    scope = {"type": "http", "method": request.method, "scheme": "http",
             "path": request.url.path, "raw_path": request.url.raw_path.split(b"?")[0],
             "query_string": request.url.query, "headers": list(request.headers.raw)}
    sent: list[Event] = []
    inbox = [{"type": "http.request", "body": request.content, "more_body": False}]

    async def receive() -> Event:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(event: Event) -> None:
        sent.append(event)

    await app(scope, receive, send)
    return sent


async def plain(scope: Event, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def guarded(**verifier: Any) -> AgentAuthMiddleware:
    return AgentAuthMiddleware(plain, identity=ALICE, replay=MemoryReplayStore(),
                               verifier=Verifier([BOB], **verifier))


async def test_a_content_length_of_thousands_of_digits_is_oversize_not_a_crash() -> None:
    request = httpx.Request("GET", "http://testserver/x")
    AgentAuth(BOB).sign(request)
    request.headers["content-length"] = "9" * 5000  # int() refuses more than 4300 digits
    sent = await call(guarded(), request)
    assert sent[0]["status"] == 413
    assert dict(sent[0]["headers"])[b"agentauth-error"] == b"oversize"


async def test_the_key_directory_is_signed_only_for_the_servers_own_hosts() -> None:
    # Its signatures bind Alice's key to the Host asked for: signed for any Host, anyone
    # could fetch a directory "proving" Alice's key is theirs and serve it as their own.
    path = "/.well-known/http-message-signatures-directory"
    foreign = await call(guarded(authorities=["a.example"]),
                         httpx.Request("GET", "http://evil.example" + path))
    assert foreign[0]["status"] == 401
    assert dict(foreign[0]["headers"])[b"agentauth-error"] == b"wrong_recipient"
    own = await call(guarded(authorities=["a.example"]),
                     httpx.Request("GET", "http://a.example" + path))
    assert own[0]["status"] == 200 and b"keys" in own[1]["body"]


# ------------------------------------------------------------------ parameter types


def signed_with(**replaced: Any) -> HTTPMessage:
    """A request signed over parameters of other structured-field types than the
    profile's strings (e.g. ``tag=agentauth``, a token)."""
    message = message_for("a.example")
    components: list[Any] = [(name, {}) for name in ("@method", "@authority", "@path",
                                                     "@query")]
    now = int(time.time())
    params = {"created": now, "expires": now + 60, "nonce": "n" * 22,
              "keyid": BOB.agent_id, "alg": "ed25519", "tag": "agentauth", **replaced}
    value = signature_params(components, params)
    signature = BOB.sign(signature_base(message, components, value))
    return message.with_fields([("signature-input", f"agentauth={value}"),
                                ("signature", ser_member("agentauth", signature))])


def test_tag_and_alg_are_strings_not_tokens_or_display_strings() -> None:
    verifier = Verifier([BOB])
    assert verifier.check_request(signed_with()).tag == "agentauth"
    as_token = signed_with(tag=http_sf.types.Token("agentauth"))
    assert 'tag=agentauth' in (as_token.field("signature-input") or "")
    assert code_of(lambda: verifier.check_request(as_token)) == "unsigned"
    for alg in (http_sf.types.Token("ed25519"), http_sf.types.DisplayString("ed25519")):
        message = signed_with(alg=alg)
        with pytest.raises(AgentAuthError) as info:
            verifier.check_request(message)
        assert info.value.code == "malformed"


# ------------------------------------------------------------------ @authority


def test_authority_is_normalised_as_rfc_9421_says() -> None:
    assert authority_value("Example.COM:443", "https") == "example.com"
    assert authority_value("example.com:80", "http") == "example.com"
    assert authority_value("example.com:443", "http") == "example.com:443"
    assert authority_value("example.com:8443", "https") == "example.com:8443"
    assert authority_value(":443", "https") == ":443"


@pytest.mark.parametrize(("host", "scheme"), [("a.example:443", "https"),
                                              ("A.Example:80", "http")])
def test_a_default_port_in_host_does_not_change_the_authority(host: str, scheme: str
                                                              ) -> None:
    # Signed for "a.example" (as RFC 9421 normalises it); the Host line arrives with the
    # scheme's default port, as some clients and proxies write it.
    signed = signed_for("a.example")
    arrived = HTTPMessage(tuple((k, host if k == "host" else v) for k, v in signed.fields),
                          method="GET", scheme=scheme, authority=host, path="/reports/q3")
    verifier = Verifier([BOB], authorities=["a.example"], clock=Clock(T0))
    assert verifier.check_request(arrived).peer.agent_id == BOB.agent_id


# ------------------------------------------------------------------ reasons


@pytest.mark.parametrize("component", ['"{}"', '"content-type";{}=1', '"{}";req'])
async def test_a_refusal_does_not_repeat_a_long_name_from_the_message(component: str
                                                                      ) -> None:
    request = httpx.Request("GET", "http://testserver/x",
                            headers={"content-type": "text/plain"})
    AgentAuth(BOB).sign(request)
    name = "z" * 12_000
    request.headers["signature-input"] = request.headers["signature-input"].replace(
        '"@query"', '"@query" ' + component.format(name))
    sent = await call(guarded(), request)
    assert sent[0]["status"] == 400, sent[1]["body"]
    reason = json.loads(sent[1]["body"])["error"]["message"]
    assert "zzz" in reason and len(reason) < 200


# ------------------------------------------------------------------ the signer


def test_a_signature_agent_the_caller_set_is_covered_outside_interop_mode() -> None:
    # The verifier requires it covered when present; the signer left it out, so every
    # such request was signed only to be refused.
    message = message_for("a.example").with_fields(
        [("signature-agent", 'other="https://agents.example"')])
    signed = message.with_fields(Signer(BOB).sign_request(message).headers, replace=True)
    verified = Verifier([BOB]).check_request(signed)
    assert '"signature-agent"' in verified.covered


def test_the_same_signature_under_another_label_is_the_same_nonce() -> None:
    store = MemoryReplayStore()
    first = signed_for("a.example")
    relabelled = HTTPMessage(tuple(
        (k, v.replace("agentauth=", "other=", 1) if k in ("signature", "signature-input")
         else v) for k, v in first.fields), method="GET", authority="a.example",
        path="/reports/q3")
    verifier = Verifier([BOB], clock=Clock(T0))
    one, two = verifier.check_request(first), verifier.check_request(relabelled)
    assert two.label == "other" and one.replay_key == two.replay_key
    assert store.check_and_insert(one.replay_key, time.time() + 120)
    assert not store.check_and_insert(two.replay_key, time.time() + 120)


async def test_a_request_with_two_host_lines_is_refused() -> None:
    request = httpx.Request("GET", "http://testserver/x")
    AgentAuth(BOB).sign(request)  # signed for testserver, the first Host line
    scope_headers = [*request.headers.raw, (b"host", b"elsewhere.example")]
    forged = httpx.Request("GET", "http://testserver/x", headers=scope_headers)
    sent = await call(guarded(), forged)
    assert sent[0]["status"] == 400
    assert dict(sent[0]["headers"])[b"agentauth-error"] == b"malformed"
    assert (await call(guarded(), request))[0]["status"] == 200


def test_the_component_count_is_checked_before_any_component_is_looked_at() -> None:
    # Thousands of components fit in 16 KB; the limit of 24 held only after every one
    # was serialised and computed (an unknown one after the 24th was reported instead).
    signed = signed_for("a.example")
    many = " ".join(f'"x-{i}"' for i in range(30))
    value = (signed.field("signature-input") or "").replace(
        '"@query"', f'"@query" {many} "@query-param";name="a"')
    message = signed.with_fields([("signature-input", value)], replace=True)
    with pytest.raises(AgentAuthError) as info:
        Verifier([BOB], clock=Clock(T0)).check_request(message)
    assert info.value.code == "malformed" and "at most 24" in info.value.message
    with pytest.raises(AgentAuthError) as info:
        signature_base(message, [("@query-param", {"name": "a"})] * 25, "()")
    assert info.value.code == "malformed"


def test_the_sans_io_verifier_does_not_pass_content_it_was_not_given() -> None:
    # A caller that forgets the body: a request with content and no Content-Digest
    # passed, since None read as "no content".
    message = message_for("a.example").with_fields([("content-length", "5")])
    signed = message.with_fields(Signer(BOB).sign_request(message).headers, replace=True)
    verifier = Verifier([BOB])
    with pytest.raises(InvalidArgument):
        verifier.check_request(signed)
    assert code_of(lambda: verifier.check_request(signed, b"hello")) == "digest_mismatch"
    empty = message_for("a.example").with_fields([("content-length", "0")])
    assert verifier.check_request(empty.with_fields(Signer(BOB).sign_request(empty).headers,
                                                    replace=True)).tag == "agentauth"
    chunked = message_for("a.example").with_fields([("transfer-encoding", "chunked")])
    with pytest.raises(InvalidArgument):
        verifier.check_request(chunked.with_fields(
            Signer(BOB).sign_request(chunked).headers, replace=True))

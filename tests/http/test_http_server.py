"""The HTTP binding over a real uvicorn server on 127.0.0.1, with httpx clients, on both
anyio backends (the server runs its own asyncio loop in a thread; the client runs on the
test's backend). Every refusal is a separate test asserting status and error code."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from support import ALICE, BOB, CAROL, MALLORY
from support.http_server import serving

from agentauth import (
    AgentAuthError,
    AuthenticationError,
    Identity,
    MemoryReplayStore,
    PeerKey,
    PeerRefused,
)
from agentauth.capability import Grant, delegate, encode_chain
from agentauth.http import (
    REFUSAL_RPC_CODE,
    AgentAuth,
    AgentAuthMiddleware,
    HTTPMessage,
    Signer,
    Verifier,
    check_response,
    request_message,
)

pytestmark = pytest.mark.anyio


async def echo(request: StarletteRequest) -> JSONResponse:
    auth = request.scope["auth"]
    return JSONResponse({
        "agent": request.user.agent_id, "authenticated": request.user.is_authenticated,
        "body": (await request.body()).decode(), "tag": auth.tag,
        "capability": None if auth.request is None else [auth.request.resource,
                                                          auth.request.action],
        "scopes": list(auth.scopes)})


async def stream(request: StarletteRequest) -> StreamingResponse:
    async def chunks() -> Any:
        for part in (b"one ", b"two ", b"three"):
            yield part
    return StreamingResponse(chunks(), media_type="text/plain")


def app(identity: Identity) -> AgentAuthMiddleware:
    inner = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST", "PUT"]),
                              Route("/reports/{name}", echo, methods=["GET"]),
                              Route("/stream", stream)])
    return AgentAuthMiddleware(inner, identity=identity, verifier=Verifier([BOB, CAROL]),
                               replay=MemoryReplayStore(), anchors={ALICE.agent_id: "**"},
                               max_body=4096)


@pytest.fixture(scope="module")
def alice_url() -> Iterator[str]:
    with serving(app(ALICE)) as url:
        yield url


@pytest.fixture(scope="module")
def mallory_url() -> Iterator[str]:
    with serving(app(MALLORY)) as url:  # the same app, signing as someone else
        yield url


def chain_for(holder: Identity, resource: str = "reports/**") -> bytes:
    now = int(time.time())
    return encode_chain([delegate(ALICE, holder, [Grant(resource, {"get"})],
                                  not_before=now - 60, expires=now + 600)])


async def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["agentauth-error"] == code
    assert response.json()["error"]["data"]["code"] == code
    if status == 401:
        assert 'tag="agentauth"' in response.headers["accept-signature"]


async def send_signed(request: httpx.Request) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.send(request)


def signed(url: str, method: str = "GET", path: str = "/echo", body: bytes = b"",
           who: Identity = BOB, **options: Any) -> httpx.Request:
    request = httpx.Request(method, url + path, content=body)
    AgentAuth(who, **options).sign(request)
    return request


# ------------------------------------------------------------------ accepted


async def test_signed_requests_pass_and_responses_verify(alice_url: str) -> None:
    auth = AgentAuth(BOB, server=ALICE.agent_id)
    async with httpx.AsyncClient(base_url=alice_url, auth=auth) as client:
        post = await client.post("/echo?x=1", content=b"hello",
                                 headers={"content-type": "text/plain"})
        get = await client.get("/echo")
    assert post.status_code == 200 and get.status_code == 200
    assert post.json() == {"agent": BOB.agent_id, "authenticated": True, "body": "hello",
                           "tag": "agentauth", "capability": None, "scopes": []}
    assert "content-digest" in post.headers["signature-input"]
    assert 'tag="agentauth-response"' in post.headers["signature-input"]


def test_the_sync_client_works_too(alice_url: str) -> None:
    with httpx.Client(base_url=alice_url, auth=AgentAuth(CAROL, server=ALICE.agent_id)
                      ) as client:
        assert client.put("/echo", content=b"x").json()["agent"] == CAROL.agent_id


async def test_a_delegated_capability_is_checked_and_exposed(alice_url: str) -> None:
    auth = AgentAuth(CAROL, server=ALICE.agent_id, chain=chain_for(CAROL))
    async with httpx.AsyncClient(base_url=alice_url, auth=auth) as client:
        ok = await client.get("/reports/q3")
        outside = await client.get("/echo")
    assert ok.status_code == 200
    assert ok.json()["capability"] == ["reports/q3", "get"]
    assert ok.json()["scopes"] == ["get:reports/**"]
    await refused(outside, 403, "not_authorized")
    # The client is told which grant of its chain came nearest and which of its checks
    # failed, by place (spec 10.6): the rule it broke stays in the server's hands.
    assert outside.json()["error"]["data"]["refusal"] == {"kind": "resource", "link": 0, "grant": 0}


async def test_a_streamed_response_is_signed_without_a_digest(alice_url: str) -> None:
    strict = AgentAuth(BOB, server=ALICE.agent_id)
    lenient = AgentAuth(BOB, server=ALICE.agent_id, allow_streamed=True)
    async with (httpx.AsyncClient(base_url=alice_url, auth=lenient) as client,
                client.stream("GET", "/stream") as response):
        assert not response.is_stream_consumed  # checked before its content is read
        parts = [part async for part in response.aiter_bytes()]
    assert b"".join(parts) == b"one two three"
    assert "content-digest" not in response.headers["signature-input"]
    assert '"signature";req;key="agentauth"' in response.headers["signature-input"]
    async with httpx.AsyncClient(base_url=alice_url, auth=strict) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get("/stream")
    assert info.value.code == "digest_mismatch"


async def test_the_key_directory_is_served_and_signed(alice_url: str) -> None:
    async with httpx.AsyncClient(base_url=alice_url) as client:
        response = await client.get("/.well-known/http-message-signatures-directory")
    assert response.status_code == 200
    assert response.headers["content-type"] == (
        "application/http-message-signatures-directory+json")
    thumbprint = PeerKey(ALICE.public_bytes).jwk_thumbprint()
    assert response.json()["keys"][0]["kid"] == thumbprint
    assert f'keyid="{thumbprint}"' in response.headers["signature-input"]


# ------------------------------------------------------------------ refused


async def test_unsigned_is_challenged(alice_url: str) -> None:
    async with httpx.AsyncClient() as client:
        await refused(await client.get(alice_url + "/echo"), 401, "unsigned")


async def test_replayed_request(alice_url: str) -> None:
    request = signed(alice_url)
    assert (await send_signed(request)).status_code == 200
    again = httpx.Request("GET", request.url, headers=request.headers)
    await refused(await send_signed(again), 401, "replayed")


async def test_tampered_method(alice_url: str) -> None:
    request = signed(alice_url, "PUT")
    request.method = "POST"
    await refused(await send_signed(request), 401, "bad_signature")


async def test_tampered_path(alice_url: str) -> None:
    request = signed(alice_url, path="/echo?a=1")
    request.url = httpx.URL(alice_url + "/echo?a=2")
    await refused(await send_signed(request), 401, "bad_signature")


async def test_tampered_header(alice_url: str) -> None:
    request = httpx.Request("POST", alice_url + "/echo", content=b"{}",
                            headers={"mcp-protocol-version": "2026-07-28"})
    AgentAuth(BOB).sign(request)
    request.headers["mcp-protocol-version"] = "2025-03-26"
    await refused(await send_signed(request), 401, "bad_signature")


async def test_an_uncovered_protocol_header(alice_url: str) -> None:
    request = signed(alice_url, "POST", body=b"{}")
    request.headers["a2a-version"] = "1.0"
    await refused(await send_signed(request), 401, "uncovered_component")


async def test_tampered_body(alice_url: str) -> None:
    request = signed(alice_url, "POST", body=b"pay 10")
    forged = httpx.Request("POST", request.url, headers=request.headers, content=b"pay 99")
    await refused(await send_signed(forged), 401, "digest_mismatch")


async def test_wrong_digest(alice_url: str) -> None:
    request = httpx.Request("POST", alice_url + "/echo", content=b"body")
    message = request_message(request).with_fields(
        [("content-digest", "sha-256=:" + base64.b64encode(bytes(32)).decode() + ":")])
    headers = Signer(BOB).sign_request(message, None).headers  # covers the bad digest
    request.headers["content-digest"] = message.field("content-digest") or ""
    for name, value in headers:
        request.headers[name] = value
    await refused(await send_signed(request), 401, "digest_mismatch")


async def test_missing_digest(alice_url: str) -> None:
    request = httpx.Request("POST", alice_url + "/echo", content=b"body")
    for name, value in Signer(BOB).sign_request(request_message(request), None).headers:
        request.headers[name] = value
    await refused(await send_signed(request), 401, "digest_mismatch")


async def test_expired_signature(alice_url: str) -> None:
    request = signed(alice_url, clock=lambda: time.time() - 200)  # expired 140 s ago
    await refused(await send_signed(request), 401, "signature_expired")


async def test_future_dated_signature(alice_url: str) -> None:
    request = signed(alice_url, clock=lambda: time.time() + 120)
    await refused(await send_signed(request), 401, "clock_skew")


async def test_stale_signature(alice_url: str) -> None:
    request = signed(alice_url, clock=lambda: time.time() - 1000, lifetime=3600)
    await refused(await send_signed(request), 401, "stale")


async def test_unknown_key(alice_url: str) -> None:
    await refused(await send_signed(signed(alice_url, who=MALLORY)), 401,
                  "untrusted_peer")


async def test_a_token_lifted_from_another_request(alice_url: str) -> None:
    original = signed(alice_url, path="/reports/q3", who=CAROL, chain=chain_for(CAROL))
    lifted = httpx.Request("GET", alice_url + "/reports/q3", headers={
        "agentauth-capability": original.headers["agentauth-capability"]})
    AgentAuth(CAROL).sign(lifted)  # signed by the holder, covering the lifted header
    assert '"agentauth-capability"' in lifted.headers["signature-input"]
    await refused(await send_signed(lifted), 403, "wrong_request")
    stolen = httpx.Request("GET", alice_url + "/reports/q3", headers={
        "agentauth-capability": original.headers["agentauth-capability"]})
    AgentAuth(BOB).sign(stolen)  # another agent: its signature names another binding
    await refused(await send_signed(stolen), 403, "wrong_request")
    assert (await send_signed(original)).status_code == 200


async def test_a_chain_issued_to_someone_else(alice_url: str) -> None:
    request = signed(alice_url, path="/reports/q3", who=BOB, chain=chain_for(CAROL))
    await refused(await send_signed(request), 403, "holder_mismatch")


async def test_an_oversize_body(alice_url: str) -> None:
    request = signed(alice_url, "POST", body=b"x" * 5000)
    await refused(await send_signed(request), 413, "oversize")


async def test_a_response_from_the_wrong_server(mallory_url: str) -> None:
    auth = AgentAuth(BOB, server=ALICE.agent_id)
    async with httpx.AsyncClient(base_url=mallory_url, auth=auth) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get("/echo")
    assert info.value.code == "unexpected_peer"


async def test_a_response_to_another_request(alice_url: str) -> None:
    first, second = signed(alice_url), signed(alice_url)
    answer = await send_signed(first)
    assert answer.status_code == 200
    nonce = request_message(second).field("signature-input") or ""
    second_nonce = nonce.split('nonce="', 1)[1].split('"', 1)[0]
    response = HTTPMessage.from_headers(answer.headers.raw, status=200,
                                        request=request_message(second))
    with pytest.raises(AuthenticationError) as info:
        check_response(response, answer.content, request_nonce=second_nonce,
                       server=ALICE.agent_id)
    assert info.value.code == "unexpected_reply"


# ------------------------------------------------------------------ logs


async def test_nothing_logged_holds_a_secret(alice_url: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = AgentAuth(BOB, server=ALICE.agent_id, chain=chain_for(BOB))
    async with httpx.AsyncClient(base_url=alice_url, auth=auth) as client:
        assert (await client.get("/reports/q1")).status_code == 200
        assert (await client.get("/echo")).status_code == 403
    await send_signed(signed(alice_url, who=MALLORY))
    async with httpx.AsyncClient() as client:
        await client.get(alice_url + "/echo")
    text = caplog.text
    assert "refused GET request: untrusted_peer" in text  # the logs were captured
    for identity in (ALICE, BOB, MALLORY):
        seed = identity.export_seed()
        for form in (seed.hex(), base64.b64encode(seed).decode(),
                     base64.urlsafe_b64encode(seed).decode().rstrip("=")):
            assert form not in text
    assert repr(auth) == f"AgentAuth(keyid={BOB.agent_id!r})"



async def test_a_refusal_is_a_json_rpc_error_the_client_can_raise(alice_url: str) -> None:
    # spec 13.9: the body is a JSON-RPC 2.0 error with the code in error.data; with
    # raise_refusals the client raises it as the server's (unsigned) claim.
    async with httpx.AsyncClient(base_url=alice_url,
                                 auth=AgentAuth(MALLORY, server=ALICE.agent_id)) as client:
        answer = await client.get("/echo")
    await refused(answer, 401, "untrusted_peer")
    body = answer.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == REFUSAL_RPC_CODE
    assert body["error"]["data"] == {"code": "untrusted_peer"}
    assert isinstance(body["error"]["message"], str)
    for who, chain, path, code in ((MALLORY, None, "/echo", "untrusted_peer"),
                                   (CAROL, chain_for(CAROL), "/echo", "not_authorized")):
        auth = AgentAuth(who, server=ALICE.agent_id, chain=chain, raise_refusals=True)
        async with httpx.AsyncClient(base_url=alice_url, auth=auth) as client:
            with pytest.raises(PeerRefused) as info:
                await client.get(path)
            assert info.value.code == "peer_refused" and info.value.claimed == code
    auth = AgentAuth(BOB, server=ALICE.agent_id, raise_refusals=True)
    async with httpx.AsyncClient(base_url=alice_url, auth=auth) as client:
        assert (await client.get("/echo")).status_code == 200  # nothing refused


def test_the_sync_client_raises_refusals_too(alice_url: str) -> None:
    auth = AgentAuth(MALLORY, raise_refusals=True)  # also without checking answers
    with httpx.Client(base_url=alice_url, auth=auth) as client, \
            pytest.raises(PeerRefused) as info:
        client.get("/echo")
    assert info.value.claimed == "untrusted_peer"
    assert not isinstance(info.value, AuthenticationError)  # a claim, not our own check


@pytest.mark.parametrize("code", [b"you_shall_not_pass", b"peer_refused"])
def test_a_refusal_naming_no_code_a_server_sends_is_malformed(code: bytes) -> None:
    # peer_refused is in the registry, but no server answers with it (13.9): a claim
    # of a claim is malformed, not PeerRefused(claimed="peer_refused").
    async def pretender(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"agentauth-error", code)]})
        await send({"type": "http.response.body", "body": b""})

    with serving(pretender) as url, httpx.Client(
            base_url=url, auth=AgentAuth(BOB, raise_refusals=True)) as client, \
            pytest.raises(AgentAuthError) as info:
        client.get("/")
    assert info.value.code == "malformed"

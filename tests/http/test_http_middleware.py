"""The ASGI middleware called directly (no server), on both anyio backends: options, other
scope types, and stores that fail or live on disk."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import http_message_signatures as hms
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route
from support import ALICE, BOB, CAROL

from agentauth import AgentAuthError, MemoryReplayStore, SQLiteReplayStore, StoreError
from agentauth.capability import Grant, delegate, encode_chain
from agentauth.capability import Request as CapRequest
from agentauth.http import AgentAuth, AgentAuthMiddleware, Verifier, status_of

pytestmark = pytest.mark.anyio
Event = MutableMapping[str, Any]


async def ok_app(scope: Event, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": scope.get("user", "anon").__class__
                .__name__.encode()})


class FailingStore:
    def check_and_insert(self, key: bytes, expires: float) -> bool:
        raise StoreError("the store is down", code="store_unavailable")

    def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        raise StoreError("the store is down", code="store_unavailable")


def scope_of(request: httpx.Request, kind: str = "http") -> Event:
    return {"type": kind, "method": request.method, "scheme": "http",
            "path": request.url.path, "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query, "headers": list(request.headers.raw)}


async def call(app: AgentAuthMiddleware, request: httpx.Request, kind: str = "http"
               ) -> list[Event]:
    sent: list[Event] = []
    body = [{"type": "http.request", "body": request.content, "more_body": False}]

    async def receive() -> Event:
        return body.pop(0) if body else {"type": "http.disconnect"}

    async def send(event: Event) -> None:
        sent.append(event)

    await app(scope_of(request, kind), receive, send)
    return sent


def signed(path: str = "/x", who: Any = BOB) -> httpx.Request:
    request = httpx.Request("GET", "http://testserver" + path)
    AgentAuth(who).sign(request)
    return request


def middleware(**options: Any) -> AgentAuthMiddleware:
    settings: dict[str, Any] = {"identity": ALICE, "verifier": Verifier([BOB]),
                                "replay": MemoryReplayStore()}
    settings.update(options)
    return AgentAuthMiddleware(ok_app, **settings)


def error_of(sent: list[Event]) -> tuple[int, str]:
    return sent[0]["status"], json.loads(sent[1]["body"])["error"]["data"]["code"]


async def test_a_signed_request_reaches_the_app_and_the_answer_is_signed() -> None:
    sent = await call(middleware(), signed())
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"AgentUser"
    names = {k for k, _ in sent[0]["headers"]}
    assert {b"signature", b"signature-input", b"content-digest"} <= names


async def test_a_capability_can_be_required() -> None:
    assert error_of(await call(middleware(require_capability=True, anchors={}),
                               signed())) == (403, "not_authorized")


async def test_a_refusal_tells_the_client_its_kind_and_places_only() -> None:
    sent = await call(middleware(require_capability=True, anchors={}), signed())
    assert json.loads(sent[1]["body"])["error"]["data"]["refusal"] == {"kind": "no_chain"}
    # The request the server's own mapping wants is its policy, not the client's
    # business: the answer names the kind, never the rule ("secret/plans") or the value.
    now = int(time.time())
    chain = encode_chain([delegate(ALICE, BOB, [Grant("**", {"get"})], not_before=now - 60,
                                   expires=now + 600)])
    request = httpx.Request("GET", "http://testserver/x")
    AgentAuth(BOB, chain=chain).sign(request)
    app = middleware(anchors={ALICE.agent_id: "**"},
                     resource_of=lambda method, path: CapRequest("secret/plans", "get"))
    sent = await call(app, request)
    assert error_of(sent) == (403, "not_authorized")
    assert json.loads(sent[1]["body"])["error"]["data"]["refusal"] == {"kind": "request"}
    assert b"secret" not in sent[1]["body"]


async def test_a_capability_without_anchors_is_refused() -> None:
    request = httpx.Request("GET", "http://testserver/x",
                            headers={"agentauth-capability": ":AAAA:"})
    AgentAuth(BOB).sign(request)
    sent = await call(middleware(), request)
    assert error_of(sent) == (403, "untrusted_root")
    assert json.loads(sent[1]["body"])["error"]["data"]["refusal"] == {"kind": "anchor"}


async def test_a_store_that_cannot_answer_fails_closed() -> None:
    assert error_of(await call(middleware(replay=FailingStore()), signed())) == (
        503, "store_unavailable")


async def test_one_signer_cannot_fill_the_replay_store_for_the_others() -> None:
    # A store of 64 shared with no bound per signer: Bob's 64 fresh requests would fill
    # it and every other signer would get 503 until they expire.
    app = middleware(verifier=Verifier([BOB, CAROL]), replay=MemoryReplayStore(capacity=64),
                     replay_capacity=64, replay_per_signer=4)
    answers = [await call(app, signed(f"/{i}")) for i in range(64)]
    refused = [error_of(sent) for sent in answers if sent[0]["status"] != 200]
    assert refused == [(503, "store_full")] * 60
    for i in range(2):  # Carol still has her share
        assert (await call(app, signed(f"/{i}", CAROL)))[0]["status"] == 200
    replay = signed("/again", CAROL)
    assert (await call(app, replay))[0]["status"] == 200
    assert error_of(await call(app, replay)) == (401, "replayed")  # its place given back
    assert (await call(app, signed("/3", CAROL)))[0]["status"] == 200  # her fourth
    assert error_of(await call(app, signed("/4", CAROL))) == (503, "store_full")
    assert error_of(await call(middleware(replay=FailingStore(), replay_per_signer=1),
                               signed())) == (503, "store_unavailable")
    for bad in (0, -1, 1.5, True, "4"):
        with pytest.raises(AgentAuthError):
            middleware(replay_per_signer=bad)


async def test_an_sqlite_store_runs_in_a_thread_and_remembers(tmp_path: Path) -> None:
    store = SQLiteReplayStore(tmp_path / "replay.db")
    request = signed()
    try:
        assert (await call(middleware(replay=store), request))[0]["status"] == 200
        again = await call(middleware(replay=store), request)  # a restarted server
        assert error_of(again) == (401, "replayed")
    finally:
        store.close()


async def test_public_paths_skip_authentication() -> None:
    sent = await call(middleware(public=["/health"]),
                      httpx.Request("GET", "http://testserver/health"))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"str"


async def test_websockets_are_closed() -> None:
    sent = await call(middleware(), signed(), kind="websocket")
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_a_bad_content_length_is_refused_before_reading() -> None:
    request = signed()
    request.headers["content-length"] = "12x"  # not a number: malformed, not oversize
    assert error_of(await call(middleware(), request)) == (400, "malformed")


async def test_the_directory_can_be_turned_off() -> None:
    request = httpx.Request("GET", "http://testserver/.well-known/"
                            "http-message-signatures-directory")
    assert error_of(await call(middleware(directory=False), request)) == (401, "unsigned")


def test_statuses() -> None:
    assert status_of(StoreError("x", code="store_full")) == 503


async def test_the_readme_http_example_runs_as_written() -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    section = readme.read_text(encoding="utf-8").split("### HTTP: signed requests", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    now = int(time.time())
    chain = encode_chain([delegate(ALICE, BOB, [Grant("reports/**", {"get"})],
                                   not_before=now - 60, expires=now + 600)])
    inner = Starlette(routes=[Route("/reports/{name}", whoami)])
    namespace: dict[str, Any] = {"alice": ALICE, "bob": BOB, "chain": chain, "app": inner,
                                 "httpx": httpx}
    exec(compile(code, "README.md", "exec"), namespace)
    transport = httpx.ASGITransport(app=namespace["app"])
    async with namespace["client"], httpx.AsyncClient(
            transport=transport, base_url="http://testserver",
            auth=namespace["client"].auth) as client:
        answer = await client.get("/reports/q3")  # signed, checked, capability used
    assert answer.json() == {"agent": BOB.agent_id, "scopes": ["get:reports/**"]}


async def whoami(request: StarletteRequest) -> JSONResponse:
    return JSONResponse({"agent": request.user.agent_id, "scopes": list(request.auth.scopes)})


async def bogus_digest_app(scope: Event, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-digest", b"sha-256=:AAAA:")]})
    await send({"type": "http.response.body", "body": b"payload"})


async def test_signer_headers_replace_lines_of_the_same_names() -> None:
    # A request that already carries a (wrong) Content-Digest, to an app that writes one.
    request = httpx.Request("POST", "http://testserver/x", content=b"body",
                            headers={"content-digest": "sha-256=:AAAA:"})
    auth = AgentAuth(BOB, server=ALICE.agent_id)
    nonce = auth.sign(request)
    assert request.headers.get_list("content-digest") == [
        "sha-256=:Iw2DWNyOiJC0xY3utikS7i8gNXrpKlzIYbmOaP4xrLU=:"]
    app = AgentAuthMiddleware(bogus_digest_app, identity=ALICE, verifier=Verifier([BOB]),
                              replay=MemoryReplayStore())
    sent = await call(app, request)
    assert sent[0]["status"] == 200
    digests = [v for k, v in sent[0]["headers"] if k == b"content-digest"]
    assert len(digests) == 1 and digests[0] != b"sha-256=:AAAA:"
    response = httpx.Response(200, headers=sent[0]["headers"], content=sent[1]["body"],
                              request=request)
    auth.check(request, response, nonce)  # raises if the answer does not verify


async def test_web_bot_auth_requests_in_interop_mode() -> None:
    request = httpx.Request("GET", "http://testserver/x")
    AgentAuth(BOB, signature_agent="https://bob.example").sign(request)
    assert 'tag="web-bot-auth"' in request.headers["signature-input"]
    assert '"signature-agent";key="agentauth"' in request.headers["signature-input"]
    strict = middleware()
    assert error_of(await call(strict, request)) == (401, "unsigned")
    interop = middleware(verifier=Verifier([BOB], web_bot_auth=True))
    assert (await call(interop, request))[0]["status"] == 200
    replaced = httpx.Request("GET", "http://testserver/x", headers=dict(request.headers))
    replaced.headers["signature-agent"] = 'agentauth="https://mallory.example"'
    assert error_of(await call(middleware(verifier=Verifier([BOB], web_bot_auth=True)),
                               replaced)) == (401, "bad_signature")


async def test_an_answer_to_a_request_signed_under_another_label() -> None:
    # Another implementation's label (here http-message-signatures' default, "pyhms"):
    # the answer covers the request signature under that label.
    request = httpx.Request("GET", "http://testserver/x")
    keys = hms.MappingKeyResolver(public_keys={}, private_keys={
        BOB.agent_id: Ed25519PrivateKey.from_private_bytes(BOB.export_seed())})
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    hms.HTTPMessageSigner(signature_algorithm=hms.algorithms.ED25519, key_resolver=keys).sign(
        request, key_id=BOB.agent_id, created=now, expires=now + datetime.timedelta(
            seconds=60), nonce="n" * 22, tag="agentauth",
        covered_component_ids=("@method", "@authority", "@path", "@query"))
    assert request.headers["signature"].startswith("pyhms=")
    sent = await call(middleware(), request)
    assert sent[0]["status"] == 200
    inputs = dict(sent[0]["headers"])[b"signature-input"]
    assert b'"signature";req;key="pyhms"' in inputs

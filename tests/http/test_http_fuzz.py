"""Property tests for the HTTP parsers: whatever field values arrive, the only outcomes are
a verified result or an agentauth error with a registered code; never another exception.

Inputs are random strings and valid signed requests and responses whose fields are mutated
(characters flipped, cut, inserted, fields swapped between messages).
"""

from __future__ import annotations

import json
import time
from collections.abc import MutableMapping
from typing import Any

import anyio
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ALICE, BOB, CAROL

from agentauth import ERROR_CODES, AgentAuthError, MemoryReplayStore
from agentauth.capability import Grant, Request, delegate, encode_chain
from agentauth.http import (
    AgentAuth,
    AgentAuthMiddleware,
    HTTPMessage,
    Signer,
    Verifier,
    check_capability,
    check_content_digest,
    check_response,
    request_message,
    status_of,
)
from agentauth.http.components import parse_bytes, parse_dictionary

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
NOW = int(time.time())


def CLOCK() -> float:  # a constant clock: the messages made at import never expire
    return NOW


CHAIN = encode_chain([delegate(ALICE, BOB, [Grant("reports/**", {"get"})],
                               not_before=NOW - 60, expires=NOW + 3600)])
FIELDS = ("signature-input", "signature", "content-digest", "agentauth-capability",
          "signature-agent", "content-type")


def resource_of(method: str, path: str) -> Request:
    return Request("reports/q3", "get")


def _signed() -> tuple[httpx.Request, str]:
    request = httpx.Request("POST", "http://127.0.0.1:9/reports/q3?x=1", content=b"{}",
                            headers={"content-type": "application/json"})
    nonce = AgentAuth(BOB, chain=CHAIN, resource_of=resource_of, clock=CLOCK).sign(request)
    return request, nonce


REQUEST, NONCE = _signed()
VALUES = [value for name, value in REQUEST.headers.items() if name in FIELDS]
RESPONSE_HEADERS = Signer(ALICE, clock=CLOCK).sign_response(
    HTTPMessage(fields=(), status=200, request=request_message(REQUEST)), NONCE,
    b"ok").headers


def registered(error: AgentAuthError) -> None:
    assert error.code in ERROR_CODES
    assert isinstance(error, ERROR_CODES[error.code][0])


def mutate(value: str, data: st.DataObject) -> str:
    kind = data.draw(st.sampled_from(["flip", "cut", "insert", "random", "same"]))
    if not value or kind == "random":
        return data.draw(st.text(max_size=200))
    at = data.draw(st.integers(0, len(value) - 1))
    if kind == "flip":
        return value[:at] + chr((ord(value[at]) ^ data.draw(st.integers(1, 127))) % 256) + \
            value[at + 1:]
    if kind == "cut":
        return value[:at]
    if kind == "insert":
        return value[:at] + data.draw(st.text(max_size=8)) + value[at:]
    return value


@FUZZ
@given(st.text(max_size=300))
def test_structured_field_parsers(text: str) -> None:
    for parse in (lambda v: parse_dictionary(v, "x"), lambda v: parse_bytes(v, "x"),
                  lambda v: check_content_digest(v, b"body")):
        try:
            parse(text)
        except AgentAuthError as exc:
            registered(exc)


@FUZZ
@given(st.data())
def test_mutated_requests(data: st.DataObject) -> None:
    fields = list(request_message(REQUEST).fields)
    index = data.draw(st.sampled_from([i for i, (k, _) in enumerate(fields) if k in FIELDS]))
    name, value = fields[index]
    fields[index] = (name, mutate(value, data))
    if data.draw(st.booleans()):
        fields.append((data.draw(st.sampled_from(FIELDS)), data.draw(st.sampled_from(VALUES))))
    message = HTTPMessage(tuple(fields), method="POST", scheme="http",
                          authority="127.0.0.1:9", path="/reports/q3", query="x=1")
    verifier = Verifier([BOB, CAROL], web_bot_auth=data.draw(st.booleans()), clock=CLOCK)
    try:
        verified = verifier.check_request(message, data.draw(st.sampled_from([b"{}", b""])))
        found = check_capability(message, verified, {ALICE.agent_id: "**"}, resource_of=resource_of)
        MemoryReplayStore().check_and_insert(verified.replay_key, verified.replay_expires)
        assert found is None or found[0].resource == "reports/q3"
    except AgentAuthError as exc:
        registered(exc)


@FUZZ
@given(st.data())
def test_mutated_responses(data: st.DataObject) -> None:
    fields = list(RESPONSE_HEADERS)
    index = data.draw(st.integers(0, len(fields) - 1))
    name, value = fields[index]
    fields[index] = (name, mutate(value, data))
    response = HTTPMessage(tuple(fields), status=data.draw(st.sampled_from([200, 201])),
                           request=request_message(REQUEST))
    try:
        check_response(response, data.draw(st.sampled_from([b"ok", b"", b"no"])),
                       request_nonce=NONCE, server=ALICE.agent_id, now=NOW)
    except AgentAuthError as exc:
        registered(exc)


def test_the_unmutated_request_and_response_verify() -> None:
    message = request_message(REQUEST)
    verified = Verifier([BOB], clock=CLOCK).check_request(message, b"{}")
    found = check_capability(message, verified, {ALICE.agent_id: "**"}, resource_of=resource_of)
    assert found is not None and found[0].action == "get"
    response = HTTPMessage(RESPONSE_HEADERS, status=200, request=message)
    assert check_response(response, b"ok", request_nonce=NONCE, server=ALICE.agent_id,
                          now=NOW).agent_id == ALICE.agent_id


async def _through(app: AgentAuthMiddleware, headers: list[tuple[bytes, bytes]],
                   body: bytes) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    events = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> MutableMapping[str, Any]:
        return events.pop() if events else {"type": "http.disconnect"}

    async def send(event: MutableMapping[str, Any]) -> None:
        sent.append(dict(event))

    scope = {"type": "http", "method": "POST", "scheme": "http", "path": "/reports/q3",
             "raw_path": b"/reports/q3", "query_string": b"x=1", "headers": headers}
    await app(scope, receive, send)
    return sent


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@FUZZ
@given(st.data())
def test_the_middleware_answers_every_mutated_request(data: st.DataObject) -> None:
    headers = [(k.encode(), v.encode()) for k, v in request_message(REQUEST).fields]
    index = data.draw(st.integers(0, len(headers) - 1))
    name, value = headers[index]
    headers[index] = (name, data.draw(st.sampled_from([
        value[:data.draw(st.integers(0, len(value)))], data.draw(st.binary(max_size=80)),
        value + data.draw(st.binary(max_size=8))])))
    app = AgentAuthMiddleware(_ok, identity=ALICE, verifier=Verifier([BOB], clock=CLOCK),
                              replay=MemoryReplayStore(), anchors={ALICE.agent_id: "**"},
                              resource_of=resource_of, max_body=64)
    sent = anyio.run(_through, app, headers, data.draw(st.sampled_from([b"{}", b"{ }"])))
    status = sent[0]["status"]
    assert status in {200, 400, 401, 403, 413, 503}
    if status != 200:
        code = json.loads(sent[1]["body"])["error"]["data"]["code"]
        assert code in ERROR_CODES and status == status_of(
            ERROR_CODES[code][0]("x", code=code))


TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~", min_size=1, max_size=12)


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
       segments=st.lists(TOKEN, max_size=4), query=st.lists(st.tuples(TOKEN, TOKEN),
                                                            max_size=3),
       body=st.binary(max_size=64),
       extra=st.dictionaries(st.sampled_from(["content-type", "mcp-protocol-version",
                                              "a2a-version", "x-other"]), TOKEN),
       keyid=st.sampled_from(["did", "thumbprint"]))
def test_any_signed_request_verifies_and_any_edit_fails(
        method: str, segments: list[str], query: list[tuple[str, str]], body: bytes,
        extra: dict[str, str], keyid: str) -> None:
    path = "/" + "/".join(segments)
    qs = "&".join(f"{k}={v}" for k, v in query)
    message = HTTPMessage.from_headers([("host", "h.test:8443"), *extra.items()],
                                       method=method, authority="h.test:8443", path=path,
                                       query=qs)
    signed = message.with_fields(Signer(CAROL, keyid=keyid).sign_request(message, body)
                                 .headers)
    verifier = Verifier([BOB, CAROL])
    assert verifier.check_request(signed, body).peer.public_bytes == CAROL.public_bytes
    edits = [
        HTTPMessage(signed.fields, method="OPTIONS", authority=signed.authority,
                    path=path, query=qs),
        HTTPMessage(signed.fields, method=method, authority=signed.authority,
                    path=path + "x", query=qs),
        HTTPMessage(signed.fields, method=method, authority=signed.authority,
                    path=path, query=qs + "&z=1"),
        HTTPMessage(signed.fields, method=method, authority="other.test",
                    path=path, query=qs),
    ]
    for edited in edits:
        try:
            verifier.check_request(edited, body)
        except AgentAuthError as exc:
            assert exc.code == "bad_signature"
        else:
            raise AssertionError("an edited request verified")
    try:
        verifier.check_request(signed, body + b"!")
    except AgentAuthError as exc:
        assert exc.code == "digest_mismatch"
    else:
        raise AssertionError("an edited body verified")

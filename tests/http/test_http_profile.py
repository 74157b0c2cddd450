"""The profile's rules, sans-I/O (spec 13.1-13.5): each refusal of a request or of a
response, with its code, on messages built field by field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support import ALICE, BOB, CAROL, MALLORY, T0, Clock

from agentauth import AgentAuthError, InvalidArgument, PeerKey
from agentauth.http import HTTPMessage, Signer, Verifier, check_response
from agentauth.http.components import signature_params

BODY = b'{"task": 1}'


def request(**fields: str) -> HTTPMessage:
    return HTTPMessage.from_headers([("host", "agents.test"), *fields.items()],
                                    method="POST", authority="agents.test",
                                    path="/tasks", query="id=7")


def signed(message: HTTPMessage | None = None, body: bytes | None = BODY,
           signer: Signer | None = None) -> HTTPMessage:
    message = message or request()
    signer = signer or Signer(BOB, clock=Clock(T0))
    return message.with_fields(signer.sign_request(message, body).headers, replace=True)


def verifier(**options: Any) -> Verifier:
    options.setdefault("clock", Clock(T0))
    return Verifier([BOB, CAROL], **options)


def code_of(work: Callable[[], object]) -> str:
    with pytest.raises(AgentAuthError) as info:
        work()
    return info.value.code


def rewrite(message: HTTPMessage, name: str, value: str) -> HTTPMessage:
    return message.with_fields([(name, value)], replace=True)


def test_a_valid_request_and_what_the_store_must_remember() -> None:
    verified = verifier().check_request(signed(), BODY)
    assert verified.peer == PeerKey(BOB.public_bytes) and verified.tag == "agentauth"
    assert verified.replay_expires == T0 + 60 + 60  # min(created + window, expires) + skew
    assert verified.replay_key.startswith(b"http:" + BOB.public_bytes)
    assert '"@query"' in verified.covered and '"content-digest"' in verified.covered


def test_a_thumbprint_keyid_and_a_trust_policy() -> None:
    by_thumbprint = signed(signer=Signer(BOB, keyid="thumbprint", clock=Clock(T0)))
    assert verifier().check_request(by_thumbprint, BODY).keyid == PeerKey(
        BOB.public_bytes).jwk_thumbprint()
    stranger = signed(signer=Signer(MALLORY, clock=Clock(T0)))
    assert code_of(lambda: verifier().check_request(stranger, BODY)) == "untrusted_peer"
    anyone = Verifier(trust=lambda peer: True, clock=Clock(T0))
    assert anyone.check_request(stranger, BODY).peer == PeerKey(MALLORY.public_bytes)
    broken = rewrite(stranger, "signature-input", (stranger.field("signature-input") or "")
                     .replace('keyid="did:key:z', 'keyid="did:key:x'))
    assert code_of(lambda: anyone.check_request(broken, BODY)) == "malformed"
    unknown_print = signed(signer=Signer(MALLORY, keyid="thumbprint", clock=Clock(T0)))
    assert code_of(lambda: anyone.check_request(unknown_print, BODY)) == "untrusted_peer"


@pytest.mark.parametrize(("edit", "code"), [
    (lambda v: v.replace(';alg="ed25519"', ';alg="rsa-pss-sha512"'), "unknown_field"),
    (lambda v: v + ';extra=1', "unknown_field"),
    (lambda v: v.replace(';tag="agentauth"', ''), "unsigned"),
    (lambda v: v.replace('created=', 'created=x', 1), "malformed"),
    (lambda v: v.split(";nonce=")[0] + ';nonce="short";' + v.split(";keyid=", 1)[1]
     .join(["keyid=", ""]), "malformed"),
    (lambda v: v.replace('keyid="did:key:z', 'keyid="did:key:x'), "untrusted_peer"),
    (lambda v: v + ", other=" + v.split("=", 1)[1], "malformed"),
    (lambda v: v.replace('"@query" ', ''), "uncovered_component"),
])
def test_signature_input_rules(edit: Callable[[str], str], code: str) -> None:
    message = signed()
    value = message.field("signature-input") or ""
    assert code_of(lambda: verifier().check_request(
        rewrite(message, "signature-input", edit(value)), BODY)) == code


def test_signature_field_rules() -> None:
    message = signed()
    assert code_of(lambda: verifier().check_request(
        rewrite(message, "signature", "agentauth=:AAAA:"), BODY)) == "malformed"
    no_input = HTTPMessage(tuple((k, v) for k, v in message.fields
                                 if k != "signature-input"), method="POST",
                           authority="agents.test", path="/tasks", query="id=7")
    assert code_of(lambda: verifier().check_request(no_input, BODY)) == "malformed"
    assert code_of(lambda: verifier().check_request(request(), None)) == "unsigned"


def test_a_longer_lifetime_than_the_profile_allows() -> None:
    message = signed(signer=Signer(BOB, lifetime=3600, clock=Clock(T0)))
    assert verifier().check_request(message, BODY).expires == T0 + 3600
    with pytest.raises(InvalidArgument):
        Signer(BOB, lifetime=3601)


def test_the_clock_rules_at_their_bounds() -> None:
    message = signed()  # created T0, expires T0 + 60
    assert verifier(clock=Clock(T0 + 60 + 60)).check_request(message, BODY)
    assert code_of(lambda: verifier(clock=Clock(T0 + 121)).check_request(
        message, BODY)) == "signature_expired"
    assert verifier(clock=Clock(T0 - 60)).check_request(message, BODY)
    assert code_of(lambda: verifier(clock=Clock(T0 - 61)).check_request(
        message, BODY)) == "clock_skew"
    long = signed(signer=Signer(BOB, lifetime=3600, clock=Clock(T0)))
    assert code_of(lambda: verifier(clock=Clock(T0 + 361)).check_request(long, BODY)) == (
        "stale")


def test_protocol_headers_present_must_be_covered() -> None:
    message = signed(request(**{"a2a-version": "1.0"}))
    assert '"a2a-version"' in (message.field("signature-input") or "")
    assert verifier().check_request(message, BODY)
    late = rewrite(signed(), "mcp-method", "tools/call")
    assert code_of(lambda: verifier().check_request(late, BODY)) == "uncovered_component"


def test_constructor_arguments_are_checked() -> None:
    for bad in (lambda: Signer(BOB, keyid="x5t"), lambda: Signer(BOB, digests=["md5"]),
                lambda: Signer(BOB, signature_agent="http://plain.test"),
                Verifier, lambda: Verifier([BOB], window=-1)):
        with pytest.raises(InvalidArgument):
            bad()


# ------------------------------------------------------------------ responses


def answered(body: bytes = b"done", status: int = 200, signer: Signer | None = None,
             nonce: str | None = None) -> tuple[HTTPMessage, str]:
    req = signed()
    verified = verifier().check_request(req, BODY)
    response = HTTPMessage(fields=(), status=status, request=req)
    signer = signer or Signer(ALICE, clock=Clock(T0))
    added = signer.sign_response(response, nonce or verified.nonce, body)
    return response.with_fields(added.headers), verified.nonce


def check(response: HTTPMessage, nonce: str, body: bytes = b"done", now: float = T0,
          server: Any = ALICE) -> PeerKey:
    return check_response(response, body, request_nonce=nonce, server=server, now=now)


def test_a_valid_response() -> None:
    response, nonce = answered()
    assert check(response, nonce) == PeerKey(ALICE.public_bytes)
    assert check(response, nonce, server=PeerKey(ALICE.public_bytes).agent_id)


def test_response_refusals() -> None:
    response, nonce = answered()
    assert code_of(lambda: check(response, nonce, server=MALLORY)) == "unexpected_peer"
    assert code_of(lambda: check(response, "A" * 44)) == "unexpected_reply"
    assert code_of(lambda: check(response, nonce, body=b"dome")) == "digest_mismatch"
    assert code_of(lambda: check(response, nonce, now=T0 + 121)) == "signature_expired"
    assert code_of(lambda: check(response, nonce, now=T0 - 61)) == "clock_skew"
    moved = HTTPMessage(response.fields, status=201, request=response.request)
    assert code_of(lambda: check(moved, nonce)) == "bad_signature"
    bare = HTTPMessage(fields=(), status=200, request=response.request)
    assert code_of(lambda: check(bare, nonce)) == "unsigned"


def test_a_response_with_a_copied_nonce_for_another_request() -> None:
    # The answer to one request, its nonce rewritten: it still covers the other request's
    # signature, so it does not verify against this one.
    response, nonce = answered()
    other = signed()
    moved = HTTPMessage(response.fields, status=200, request=other)
    other_nonce = verifier().check_request(other, BODY).nonce
    value = (response.field("signature-input") or "").replace(nonce, other_nonce)
    forged = HTTPMessage(rewrite(moved, "signature-input", value).fields, status=200,
                         request=other)
    assert code_of(lambda: check(forged, other_nonce)) == "bad_signature"


def test_a_response_must_cover_the_request_signature() -> None:
    response, nonce = answered()
    value = response.field("signature-input") or ""
    dropped = value.replace(' "signature";req;key="agentauth"', "")
    assert code_of(lambda: check(rewrite(response, "signature-input", dropped), nonce)
                   ) == "uncovered_component"


def test_signature_params_serialise_in_order() -> None:
    assert signature_params([("@status", {}), ("@method", {"req": True})],
                            {"created": 1, "alg": "ed25519", "flag": True}) == (
        '("@status" "@method";req);created=1;alg="ed25519";flag')

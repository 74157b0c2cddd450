"""Interop with an RFC 9421 implementation nobody here wrote (``http-message-signatures``):
requests agentauth signs verify there, and requests it signs with the profile's parameters
verify in agentauth; a tampered request fails in both."""

from __future__ import annotations

import base64
import datetime

import http_message_signatures as hms
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import ALICE

from agentauth import AgentAuthError, Identity, PeerKey
from agentauth.http import AgentAuth, Verifier, request_message

SEED = bytes(range(32))
ME = Identity.from_seed(SEED)
PRIVATE = Ed25519PrivateKey.from_private_bytes(SEED)
URL = "http://127.0.0.1:8000/reports/q3?year=2026"


def request(body: bytes = b'{"a": 1}') -> httpx.Request:
    return httpx.Request("POST", URL, content=body,
                         headers={"content-type": "application/json",
                                  "mcp-protocol-version": "2026-07-28"})


def peer_verifier(keyid: str) -> hms.HTTPMessageVerifier:
    keys = hms.MappingKeyResolver(public_keys={keyid: PRIVATE.public_key()}, private_keys={})
    return hms.HTTPMessageVerifier(signature_algorithm=hms.algorithms.ED25519,
                                   key_resolver=keys)


def peer_sign(message: httpx.Request, keyid: str, tag: str = "agentauth",
              components: tuple[str, ...] = ("@method", "@authority", "@path", "@query",
                                             "content-type", "mcp-protocol-version"),
              nonce: bytes = b"\x07" * 32) -> None:
    keys = hms.MappingKeyResolver(public_keys={}, private_keys={keyid: PRIVATE})
    signer = hms.HTTPMessageSigner(signature_algorithm=hms.algorithms.ED25519,
                                   key_resolver=keys)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    signer.sign(message, key_id=keyid, created=now, expires=now + datetime.timedelta(
        seconds=60), nonce=base64.b64encode(nonce).decode(), label="agentauth", tag=tag,
        covered_component_ids=components, body=message.content)


@pytest.mark.parametrize("keyid", ["did", "thumbprint"])
def test_agentauth_requests_verify_in_the_other_library(keyid: str) -> None:
    message = request()
    nonce = AgentAuth(ME, keyid=keyid).sign(message)
    name = ME.agent_id if keyid == "did" else PeerKey(ME.public_bytes).jwk_thumbprint()
    results = peer_verifier(name).verify(
        message, expect_tag="agentauth", body=message.content,
        require_components=("@method", "@authority", "@path", "@query", "content-digest",
                            "content-type", "mcp-protocol-version"))
    assert [r.nonce for r in results] == [nonce]
    assert results[0].parameters["alg"] == "ed25519"
    assert results[0].body == message.content


def test_a_tampered_agentauth_request_fails_in_the_other_library() -> None:
    message = request()
    AgentAuth(ME).sign(message)
    message.headers["mcp-protocol-version"] = "2025-06-18"
    with pytest.raises(hms.InvalidSignature):
        peer_verifier(ME.agent_id).verify(message, expect_tag="agentauth")


def test_web_bot_auth_requests_verify_in_the_other_library() -> None:
    message = httpx.Request("GET", URL)
    AgentAuth(ME, signature_agent="https://agent.example").sign(message)
    assert message.headers["signature-agent"] == 'agentauth="https://agent.example"'
    results = peer_verifier(PeerKey(ME.public_bytes).jwk_thumbprint()).verify(
        message, expect_tag="web-bot-auth",
        require_components=("@authority", '"signature-agent";key="agentauth"'))
    assert len(results) == 1


@pytest.mark.parametrize("keyid", ["did", "thumbprint"])
def test_requests_the_other_library_signs_verify_in_agentauth(keyid: str) -> None:
    message = request()
    name = ME.agent_id if keyid == "did" else PeerKey(ME.public_bytes).jwk_thumbprint()
    peer_sign(message, name)
    assert "content-digest" in message.headers  # the other library digests the body
    verified = Verifier([ME]).check_request(request_message(message), message.content)
    assert verified.peer == PeerKey(ME.public_bytes)
    assert verified.nonce == base64.b64encode(b"\x07" * 32).decode()


def test_the_other_librarys_requests_are_held_to_the_profile() -> None:
    message = request()
    peer_sign(message, ME.agent_id, components=("@method", "@authority", "@path", "@query",
                                                "content-type"))
    with pytest.raises(AgentAuthError) as info:  # the MCP header is present, not covered
        Verifier([ME]).check_request(request_message(message), message.content)
    assert info.value.code == "uncovered_component"
    tampered = request(b'{"a": 2}')
    peer_sign(tampered, ME.agent_id)
    with pytest.raises(AgentAuthError) as info:  # the body changed under its digest
        Verifier([ME]).check_request(request_message(tampered), b'{"a": 3}')
    assert info.value.code == "digest_mismatch"
    unknown = request()
    peer_sign(unknown, ME.agent_id)
    with pytest.raises(AgentAuthError) as info:
        Verifier([ALICE]).check_request(request_message(unknown), unknown.content)
    assert info.value.code == "untrusted_peer"

"""RFC 9421, RFC 9530 and Web Bot Auth vectors through agentauth's HTTP code.

The vectors live in ``tests/vectors/rfc9421`` (provenance in its README); a missing file
FAILS. Each signature base is rebuilt from the message and the covered components, byte for
byte; each signature verifies with the test key and re-signing reproduces it (Ed25519 is
deterministic); the ``Signature-Input`` value parses and serialises back to the same bytes.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from agentauth import AuthenticationError, DecodeError, Identity, PeerKey
from agentauth.http import (
    HTTPMessage,
    Verifier,
    check_content_digest,
    content_digest,
    directory_document,
    sign_directory,
    signature_base,
)
from agentauth.http.components import Component, parse_dictionary, signature_params

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc9421"


def load(name: str) -> Any:
    path = VECTORS / name
    assert path.is_file(), f"missing vector file {path}: see tests/vectors/README.md"
    return json.loads(path.read_text(encoding="utf-8"))


KEY = load("test-key-ed25519.json")
SIGNER = Identity.from_seed(bytes.fromhex(KEY["derived"]["private_seed_hex"]))
FILES = ("ed25519-b26.json", "ed25519-b4-transform.json", "web-bot-auth-ed25519.json")
ALL = [(f, v) for f in FILES for v in load(f)["vectors"]]


def components(vector: dict[str, Any]) -> list[Component]:
    return [(c["name"], dict(c.get("parameters", {}))) for c in vector["covered_components"]]


def message(req: dict[str, Any], resp: dict[str, Any] | None = None) -> HTTPMessage:
    path, _, query = req.get("request_target", "/").partition("?")
    host = next(v for k, v in req["headers"] if k.lower() == "host")
    request = HTTPMessage.from_headers(req["headers"], method=req.get("method", ""),
                                       authority=req.get("authority") or host, path=path,
                                       query=query)
    if resp is None:
        return request
    return HTTPMessage.from_headers(resp["headers"], status=resp["status"], request=request)


def test_every_file_is_read() -> None:
    assert len(ALL) == 10
    assert SIGNER.public_bytes.hex() == KEY["derived"]["public_key_hex"]
    peer = PeerKey(SIGNER.public_bytes)
    assert peer.jwk_thumbprint() == KEY["derived"]["jwk_thumbprint_sha256_b64url"]


@pytest.mark.parametrize(("name", "vector"), ALL, ids=[v["name"] for _, v in ALL])
def test_signature_base_signature_and_fields(name: str, vector: dict[str, Any]) -> None:
    value = signature_params(components(vector), vector["signature_params"])
    assert value == vector["signature_params_value"]
    base = signature_base(message(vector["request"], vector.get("response")),
                          components(vector), value)
    assert base == vector["signature_base"].encode("utf-8")
    assert len(base) == vector["signature_base_length"]
    signature = SIGNER.sign(base)
    assert signature.hex() == vector["signature_hex"]
    PeerKey(SIGNER.public_bytes).verify(base, signature)
    # The fields as the vector prints them parse, and serialise back byte for byte.
    label = vector["label"]
    inputs = parse_dictionary(vector["signature_input_header"], "Signature-Input")
    items, params = inputs[label]
    assert signature_params([(n, p) for n, p in items], params) == value
    signatures = parse_dictionary(vector["signature_header"], "Signature")
    assert signatures[label][0] == signature
    assert base64.b64encode(signature).decode() == vector["signature_b64"]
    with pytest.raises(AuthenticationError) as info:
        PeerKey(SIGNER.public_bytes).verify(base + b" ", signature)
    assert info.value.code == "bad_signature"


def test_b4_transformations_verify_as_the_rfc_says() -> None:
    vector = load("ed25519-b4-transform.json")["vectors"][0]
    value = vector["signature_params_value"]
    signature = bytes.fromhex(vector["signature_hex"])
    outcomes = []
    for variant in vector["transformed_variants"]:
        base = signature_base(message(variant), components(vector), value)
        assert base == variant["signature_base_derived"].encode("utf-8")
        ok = True
        try:
            PeerKey(SIGNER.public_bytes).verify(base, signature)
        except AuthenticationError:
            ok = False
        assert ok == variant["expected_valid"], variant["change"]
        outcomes.append(ok)
    assert outcomes == [True, True, True, False, False]


@pytest.mark.parametrize("vector", load("content-digest.json")["vectors"],
                         ids=lambda v: f"{v['algorithm']}-{v['input_length']}")
def test_content_digest(vector: dict[str, Any]) -> None:
    body = bytes.fromhex(vector["input_hex"])
    assert content_digest(body, [vector["algorithm"]]) == vector["field_member"]
    check_content_digest(vector["field_member"], body)
    with pytest.raises(AuthenticationError) as info:
        check_content_digest(vector["field_member"], body + b"!")
    assert info.value.code == "digest_mismatch"


WEB = [v for v in load("web-bot-auth-ed25519.json")["vectors"] if "response" not in v]


@pytest.mark.parametrize("vector", WEB, ids=[v["name"] for v in WEB])
def test_web_bot_auth_requests_pass_the_verifier_in_interop_mode(vector: dict[str, Any]
                                                                 ) -> None:
    # The verifier's clock is set to the vector's creation time: several expired in 2025.
    request = vector["request"]
    signed = message(request).with_fields([
        ("Signature-Input", vector["signature_input_header"]),
        ("Signature", vector["signature_header"])])
    created = vector["signature_params"]["created"]
    verifier = Verifier([PeerKey(SIGNER.public_bytes)], web_bot_auth=True,
                        clock=lambda: float(created))
    if vector["signature_params"]["expires"] - created > 3600:
        # Signatures valid for a century (the later drafts' vectors) break the profile's
        # lifetime limit; their bases and signatures are checked above all the same.
        with pytest.raises(DecodeError) as refused:
            verifier.check_request(signed)
        assert refused.value.code == "malformed"
        return
    verified = verifier.check_request(signed)
    assert verified.peer == PeerKey(SIGNER.public_bytes)
    assert verified.tag == "web-bot-auth"
    assert verified.nonce == vector["signature_params"]["nonce"]
    # Without interop mode the same request carries no signature of the profile.
    strict = Verifier([PeerKey(SIGNER.public_bytes)], clock=lambda: float(created))
    with pytest.raises(AuthenticationError) as info:
        strict.check_request(signed)
    assert info.value.code == "unsigned"


def test_rfc_b26_is_not_a_profile_signature() -> None:
    vector = load("ed25519-b26.json")["vectors"][0]
    signed = message(vector["request"]).with_fields([
        ("Signature-Input", vector["signature_input_header"]),
        ("Signature", vector["signature_header"])])
    with pytest.raises(AuthenticationError) as info:
        Verifier([SIGNER]).check_request(signed)
    assert info.value.code == "unsigned"  # no tag="agentauth": not ours to accept


def test_directory_document_and_its_signature_match_the_draft() -> None:
    vector = next(v for v in load("web-bot-auth-ed25519.json")["vectors"] if "response" in v)
    body = directory_document([SIGNER])
    assert body == vector["response"]["body"].encode("ascii")
    params = vector["signature_params"]
    headers = sign_directory([SIGNER], "signature-agent.test", body,
                             created=params["created"], expires=params["expires"])
    assert headers == [
        ("content-digest", vector["response"]["headers"][0][1]),
        ("signature-input", vector["signature_input_header"]),
        ("signature", vector["signature_header"]),
    ]


def test_structured_field_errors_are_typed() -> None:
    for bad in ('sig1=("@method"', "Sig=:AA==:", "a=1, a=2", "x" * 20000):
        with pytest.raises(DecodeError) as info:
            parse_dictionary(bad, "Signature-Input")
        assert info.value.code in {"malformed", "oversize"}

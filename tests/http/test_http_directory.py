"""Reading a key directory (spec 13.8) fetched from another host: a document from outside,
size-capped before parsing, strictly parsed, its shape checked by a model; every refusal a
typed error with its code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentauth import AgentAuthError, Identity, PeerKey
from agentauth.http import directory_document, read_directory
from agentauth.http.directory import MAX_DIRECTORY

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc9421"
ALICE, BOB = (Identity.from_seed(bytes([n]) * 32) for n in (1, 2))


def _jwk(identity: Identity, **changes: Any) -> dict[str, Any]:
    key = PeerKey(identity.public_bytes)
    jwk: dict[str, Any] = {**key.jwk(), "kid": key.jwk_thumbprint(), "use": "sig"}
    jwk.update(changes)
    return {k: v for k, v in jwk.items() if v is not None}


def _body(*keys: dict[str, Any], **top: Any) -> bytes:
    return json.dumps({"keys": list(keys), **top}).encode()


def _refused(body: bytes) -> str:
    with pytest.raises(AgentAuthError) as info:
        read_directory(body)
    return info.value.code


def test_a_directory_reads_back_the_keys_it_was_written_with() -> None:
    keys = read_directory(directory_document([ALICE, PeerKey(BOB.public_bytes)]))
    assert [k.agent_id for k in keys] == [ALICE.agent_id, BOB.agent_id]


def test_the_drafts_directory_is_read() -> None:
    vectors = json.loads((VECTORS / "web-bot-auth-ed25519.json").read_text())["vectors"]
    body = next(v for v in vectors if "response" in v)["response"]["body"].encode()
    key = json.loads((VECTORS / "test-key-ed25519.json").read_text())
    signer = Identity.from_seed(bytes.fromhex(key["derived"]["private_seed_hex"]))
    assert read_directory(body) == (PeerKey(signer.public_bytes),)


def test_keys_of_other_types_and_uses_and_unknown_members_are_skipped() -> None:
    rsa = {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "r1"}
    x25519 = {**_jwk(BOB), "crv": "X25519"}
    body = _body(rsa, x25519, _jwk(BOB, use="enc"), _jwk(ALICE, alg="EdDSA", nbf=1),
                 _jwk(BOB, use=None), purpose="test")
    assert read_directory(body) == (PeerKey(ALICE.public_bytes), PeerKey(BOB.public_bytes))


@pytest.mark.parametrize(("body", "code"), [
    (b"{" + b" " * MAX_DIRECTORY + b"}", "oversize"),
    (b'{"keys":[],"keys":[]}', "malformed"),
    (b'{"keys":[{"kty":"OKP","x":NaN}]}', "malformed"),
    (b"[]", "malformed"),
    (b"\xff", "malformed"),
    (b'{"nokeys":[]}', "malformed"),
    (b'{"keys":{}}', "malformed"),
    (b'{"keys":[]}', "malformed"),
    (b'{"keys":[5]}', "malformed"),
    (_body(_jwk(ALICE, crv=25519)), "malformed"),
    (_body(_jwk(ALICE, kid=None)), "malformed"),
    (_body(_jwk(ALICE, kid=PeerKey(BOB.public_bytes).jwk_thumbprint())), "malformed"),
    (_body(_jwk(ALICE, x=None)), "invalid_key"),
    (_body(_jwk(ALICE, x=_jwk(ALICE)["x"] + "=")), "invalid_key"),
    (_body(_jwk(ALICE, x=_jwk(ALICE)["x"][:-2])), "invalid_key"),
    (_body(_jwk(ALICE, x=_jwk(ALICE)["x"][:-1] + "+")), "invalid_key"),
    (_body({"kty": "RSA", "n": "AQAB", "e": "AQAB"}), "malformed"),
])
def test_a_broken_directory_is_refused_with_its_code(body: bytes, code: str) -> None:
    assert _refused(body) == code


def test_a_non_canonical_x_is_refused() -> None:
    x = _jwk(ALICE)["x"]
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    other = next(c for c in last if c != x[-1] and last.index(c) // 4 == last.index(x[-1]) // 4)
    assert _refused(_body(_jwk(ALICE, x=x[:-1] + other))) == "invalid_key"


def test_a_refusal_does_not_echo_the_document() -> None:
    secret = "s3cr3t-" * 4
    with pytest.raises(AgentAuthError) as info:
        read_directory(_body(_jwk(ALICE, crv=[secret])))
    assert secret not in str(info.value)

"""Identities, peer keys and strict ``did:key`` agent ids."""

from __future__ import annotations

import copy
import pickle
from base64 import urlsafe_b64decode
from collections.abc import Callable

import pytest
from support import raises

from agentauth import (
    AgentAuthError,
    HandshakePolicy,
    Identity,
    Initiator,
    PeerKey,
    accept_any_peer,
    format_agent_id,
    parse_agent_id,
    seal,
)
from agentauth.identity import _b58encode, peer_key

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
# A fixed point of the encoding: the test pins the format, not just the round trip.
PREFIX = "did:key:z6Mk"


def b58(data: bytes) -> str:
    return "did:key:z" + _b58encode(data)


def test_from_seed_is_deterministic() -> None:
    a, b = Identity.from_seed(SEED), Identity.from_seed(bytes(SEED))
    assert a.public_bytes == b.public_bytes and a.agent_id == b.agent_id
    assert a.export_seed() == SEED
    assert Identity.from_seed(OTHER_SEED).public_bytes != a.public_bytes


def test_generate_uses_the_random_source() -> None:
    calls: list[int] = []

    def random(n: int) -> bytes:
        calls.append(n)
        return SEED

    assert Identity.generate(random) == Identity.from_seed(SEED)
    assert calls == [32]
    assert Identity.generate() != Identity.generate()


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), bytearray(32), "x" * 32])
def test_seed_must_be_32_bytes(seed: object) -> None:
    with raises("invalid_key"):
        Identity.from_seed(seed)  # type: ignore[arg-type]


def test_sign_and_verify() -> None:
    me = Identity.from_seed(SEED)
    signature = me.sign(b"message")
    assert len(signature) == 64
    assert me.sign(b"message") == signature  # Ed25519 is deterministic
    me.peer.verify(b"message", signature)  # returns None; raises on failure
    me.peer.verify(b"", me.sign(b""))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m, s: (m + b"!", s),
        lambda m, s: (m, s[:-1]),
        lambda m, s: (m, s + b"\x00"),
        lambda m, s: (m, bytes(64)),
        lambda m, s: (m, s[:32] + bytes([s[32] ^ 1]) + s[33:]),
        lambda m, s: (m, Identity.from_seed(OTHER_SEED).sign(m)),
    ],
    ids=["message", "short", "long", "zeros", "flip-s", "other-signer"],
)
def test_verify_raises_bad_signature(
        tamper: Callable[[bytes, bytes], tuple[bytes, bytes]]) -> None:
    me = Identity.from_seed(SEED)
    message, signature = tamper(b"message", me.sign(b"message"))
    with raises("bad_signature") as info:
        me.peer.verify(message, signature)
    assert me.agent_id in info.value.message  # public id only


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33), bytearray(32), "k" * 32, None])
def test_peer_key_from_invalid_bytes(key: object) -> None:
    with raises("invalid_key"):
        PeerKey.from_bytes(key)  # type: ignore[arg-type]
    with raises("invalid_key"):
        format_agent_id(key)  # type: ignore[arg-type]


def test_agent_id_format_and_round_trip() -> None:
    me = Identity.from_seed(SEED)
    assert me.agent_id.startswith(PREFIX)
    assert me.agent_id == format_agent_id(me.public_bytes)
    assert parse_agent_id(me.agent_id) == me.public_bytes
    assert PeerKey.from_agent_id(me.agent_id) == me.peer
    for key in (bytes(32), b"\xff" * 32, b"\x00" * 31 + b"\x01"):
        assert parse_agent_id(format_agent_id(key)) == key


def _valid() -> str:
    return Identity.from_seed(SEED).agent_id


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "agent_id_prefix"),
        ("did:key:", "agent_id_prefix"),
        ("did:key:6Mk", "agent_id_prefix"),
        ("DID:KEY:z6Mk", "agent_id_prefix"),
        (" " + _valid(), "agent_id_prefix"),
        ("did:web:z6Mk", "agent_id_prefix"),
        (_valid() + "1" * 20, "agent_id_length"),
        (_valid()[:-1] + "0", "agent_id_encoding"),
        (_valid()[:-1] + "l", "agent_id_encoding"),
        (_valid()[:-1] + "é", "agent_id_encoding"),
        (_valid() + " ", "agent_id_encoding"),
        ("did:key:z1" + _valid()[9:], "agent_id_multicodec"),  # a leading zero byte
        (b58(b"\xec\x01" + bytes(range(32))), "agent_id_multicodec"),  # X25519 multicodec
        (b58(b"\xe7\x01" + bytes(range(32))), "agent_id_multicodec"),  # secp256k1
        (b58(b"\xed\x02" + bytes(range(32))), "agent_id_multicodec"),
        ("did:key:z", "agent_id_multicodec"),
        (b58(b"\xed\x01" + bytes(range(31))), "agent_id_length"),
        (b58(b"\xed\x01" + bytes(range(33))), "agent_id_length"),
        (b58(b"\xed\x01"), "agent_id_length"),
    ],
)
def test_parse_agent_id_errors(text: str, code: str) -> None:
    with raises(code):
        parse_agent_id(text)
    with raises(code):
        PeerKey.from_agent_id(text)


@pytest.mark.parametrize("value", [None, b"did:key:z6Mk", 42])
def test_parse_agent_id_refuses_non_strings(value: object) -> None:
    with raises("agent_id_prefix"):
        parse_agent_id(value)  # type: ignore[arg-type]


def test_peer_key_equality_and_hash() -> None:
    a = PeerKey(Identity.from_seed(SEED).public_bytes)
    b = PeerKey.from_agent_id(a.agent_id)
    c = Identity.from_seed(OTHER_SEED).peer
    assert a == b and hash(a) == hash(b) and a is not b
    assert a != c
    assert len({a, b, c}) == 2
    assert a != a.public_bytes  # not equal to its own bytes: NotImplemented both ways
    assert a.__eq__(a.agent_id) is NotImplemented


def test_identity_equality_and_hash() -> None:
    a, b = Identity.from_seed(SEED), Identity.from_seed(bytes(SEED))
    c = Identity.from_seed(OTHER_SEED)
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert a != a.peer and a.__eq__(a.peer) is NotImplemented
    assert {a: 1}[b] == 1


def _secret_forms(seed: bytes) -> list[str]:
    return [seed.hex(), seed.hex().upper(), repr(seed), str(list(seed))]


def test_no_secret_in_repr_or_str() -> None:
    me = Identity.from_seed(SEED)
    texts = [repr(me), str(me), f"{me}", repr(me.peer), str([me]), repr({"id": me})]
    for text in texts:
        assert me.agent_id in text or "PeerKey" in text
        for secret in _secret_forms(SEED):
            assert secret not in text


@pytest.mark.parametrize(
    "copier",
    [pickle.dumps, lambda x: pickle.dumps(x, protocol=0), copy.copy, copy.deepcopy],
    ids=["pickle", "pickle-0", "copy", "deepcopy"],
)
def test_identity_refuses_to_be_pickled_or_copied(copier: Callable[[object], object]) -> None:
    me = Identity.from_seed(SEED)
    with pytest.raises(TypeError) as info:
        copier(me)
    for secret in _secret_forms(SEED):
        assert secret not in str(info.value)


def test_identity_inside_a_container_is_not_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps({"me": [Identity.from_seed(SEED)]})


def test_peer_key_pickles() -> None:
    # A public key may travel; the round trip keeps equality.
    peer = Identity.from_seed(SEED).peer
    assert pickle.loads(pickle.dumps(peer)) == peer


@pytest.mark.parametrize(
    "call",
    [
        lambda: Identity.from_seed(SEED[:31]),
        lambda: Identity.from_seed(SEED + b"\x00"),
        lambda: PeerKey.from_bytes(SEED[:31]),
        lambda: Identity.from_seed(SEED).peer.verify(SEED, SEED + SEED),
        lambda: parse_agent_id("did:key:z" + SEED.hex()),
    ],
)
def test_error_messages_never_contain_the_seed(call: Callable[[], object]) -> None:
    with pytest.raises(AgentAuthError) as info:
        call()
    texts = [str(info.value), repr(info.value), info.value.message]
    for text in texts:
        for secret in _secret_forms(SEED) + _secret_forms(SEED[:31]):
            assert secret not in text


def test_key_exports_match_rfc_8037_and_7638() -> None:
    # RFC 8037 appendix A.2 public key and A.3 thumbprint.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    key = PeerKey(urlsafe_b64decode(x + "="))
    assert key.jwk() == {"crv": "Ed25519", "kty": "OKP", "x": x}
    assert key.jwk_thumbprint() == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert key.multibase == key.agent_id.removeprefix("did:key:")
    assert key.multibase.startswith("z6Mk")


def test_peer_key_reads_every_form_an_agent_is_named_in() -> None:
    """One rule turns an agent argument into its key, for envelopes, tokens and HTTP."""
    me = Identity.from_seed(bytes(32))
    assert peer_key(me) is me.peer
    assert peer_key(me.peer) is me.peer
    assert peer_key(me.agent_id) == me.peer
    with raises("agent_id_prefix"):
        peer_key("did:web:example")
    for wrong in (me.public_bytes, None, 7, [me.agent_id]):
        with raises("invalid_argument"):
            peer_key(wrong)  # type: ignore[arg-type]
    # The entry points that take an agent read it through that one rule.
    policy = HandshakePolicy(trust=accept_any_peer)
    assert Initiator(me, policy, expect=me.agent_id)._expect == me.peer
    with raises("invalid_argument") as info:
        Initiator(me, policy, expect=7)  # type: ignore[arg-type]
    assert "an agent is an agent id, a PeerKey or an Identity, not int" in info.value.message
    with raises("invalid_argument"):
        seal(me, me.public_bytes, b"")  # type: ignore[arg-type]

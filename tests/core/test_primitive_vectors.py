"""The crypto layer against public test vectors.

The vectors live in ``tests/vectors`` (their sources, licenses and digests in its README). A
missing file makes the tests FAIL with the path it looked for; nothing is skipped.

Verification policy
-------------------
Wycheproof labels each case ``valid``, ``acceptable`` or ``invalid`` and tags it with
flags; the tables below (``*_FLAGS``) state what agentauth does for every flag present in
the pinned files, and a flag not in a table fails the test.

* Ed25519 (``ed25519_test.json``): every ``valid`` case verifies and every ``invalid`` one
  is rejected, both by ``crypto.ed25519_verify`` and by ``PeerKey.verify`` (``bad_signature``;
  ``InvalidKey`` for a public key that is not 32 bytes). libsodium's verification is strict,
  so malleable (``S >= L``), non-canonical, truncated, padded and edge-case signatures are
  all rejected. The pinned file (0.9rc5) holds public keys only, so deterministic signing
  can be replayed only for groups that carry a private key (none today; see the test).
* X25519 (``x25519_test.json``): ``valid`` cases give the listed shared secret. Of the
  ``acceptable`` cases, those with a low-order public key (flags ``LowOrderPublic`` and
  ``ZeroSharedSecret``: the output is all zeros) are REJECTED with ``low_order_point``:
  a peer must not be able to force a known DH output (RFC 7748 section 6.1). The other
  ``acceptable`` cases (twist points, non-canonical encodings, special public keys) are
  computed as RFC 7748 defines and must give the listed shared secret. ``invalid`` cases
  (none in the file) must raise or give a different output.
* ChaCha20-Poly1305 (``chacha20_poly1305_test.json``): with a 12-byte nonce, ``valid`` cases
  encrypt to ``ct || tag`` and decrypt to ``msg``; ``invalid`` ones (modified tags) raise
  ``InvalidTag``. Every other nonce size is refused with ``ValueError`` by both directions.
  ``xchacha20_poly1305_test.json`` is replayed by ``test_xchacha_vectors.py`` (key files).
* Noise (``cacophony-25519-chachapoly-blake2b.json``): every vector is replayed with a small
  HandshakeState interpreter (Noise rev 34, sections 5.3, 7 and 9) over
  ``agentauth.noise.SymmetricState``: each handshake and transport ciphertext must match
  byte for byte, and both sides must end with the listed handshake hash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.vectors import (
    ALL_FILES,
    CHACHA_FILE,
    ED25519_FILE,
    NOISE_FILE,
    VECTORS,
    X25519_FILE,
    Case,
    all_flags,
    load,
    missing_message,
    need,
    wycheproof_params,
)

from agentauth import crypto
from agentauth.errors import AuthenticationError, InvalidKey
from agentauth.identity import PeerKey
from agentauth.noise import CipherState, SymmetricState


@pytest.mark.parametrize("relative", ALL_FILES)
def test_vector_file_present(relative: str) -> None:
    assert (VECTORS / relative).is_file(), missing_message(relative)


# ---------------------------------------------------------------------------- Ed25519

#: Flag -> the result every case carrying it must have (and that agentauth must produce).
ED25519_FLAGS: dict[str, str] = {
    "Valid": "valid",  # ordinary signatures
    "Ktv": "valid",  # known-answer tests (RFC 8032)
    "TinkOverflow": "valid",  # inputs that overflowed Tink's arithmetic
    "InvalidKtv": "invalid",  # known invalid signature
    "InvalidSignature": "invalid",  # R or S set to 0, L, ... : forgery attempts
    "InvalidEncoding": "invalid",  # non-canonical R or S
    "SignatureMalleability": "invalid",  # S + L: libsodium requires S < L
    "SignatureWithGarbage": "invalid",  # longer than 64 bytes
    "TruncatedSignature": "invalid",  # shorter than 64 bytes
    "CompressedSignature": "invalid",  # 63-byte signatures with overlapping R and S
}

#: Groups of the pinned file that carry a private key (Ed25519 signing is replayed on them).
ED25519_GROUPS_WITH_PRIVATE_KEY = 0


def test_ed25519_flags_are_the_documented_ones() -> None:
    assert all_flags(ED25519_FILE) == set(ED25519_FLAGS)


@pytest.mark.parametrize(("group", "case"), wycheproof_params(ED25519_FILE, "ed25519"))
def test_ed25519_wycheproof(group: Case | None, case: Case | None) -> None:
    group, case = need(group, ED25519_FILE), need(case, ED25519_FILE)
    for flag in case["flags"]:
        assert ED25519_FLAGS.get(flag) == case["result"], f"flag {flag} is not in the policy"
    public = bytes.fromhex(group["publicKey"]["pk"])
    msg, sig = bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"])
    valid = case["result"] == "valid"
    assert crypto.ed25519_verify(public, msg, sig) is valid
    if len(public) != 32:
        with pytest.raises(InvalidKey):
            PeerKey.from_bytes(public)
        return
    peer = PeerKey.from_bytes(public)
    if valid:
        peer.verify(msg, sig)  # returns None; raises bad_signature on failure
    else:
        with pytest.raises(AuthenticationError) as info:
            peer.verify(msg, sig)
        assert info.value.code == "bad_signature"


def _ed25519_seed(group: Case) -> bytes | None:
    """The 32-byte seed of a group, where the file gives one (older layouts: ``key.sk``)."""
    for holder in ("privateKey", "key"):
        sk = group.get(holder, {}).get("sk")
        if sk is not None:
            return bytes.fromhex(sk)
    return None


def test_ed25519_signing_from_seed_reproduces_signatures() -> None:
    """Ed25519 is deterministic: a seed and a message give exactly the listed signature.

    Wycheproof 0.9rc5 ships public keys only, so the count below pins that there is nothing
    to sign; a revision of the file that adds private keys fails here until it is updated.
    """
    data = need(load(ED25519_FILE), ED25519_FILE)
    groups = 0
    for group in data["testGroups"]:
        seed = _ed25519_seed(group)
        if seed is None:
            continue
        groups += 1
        public, secret = crypto.ed25519_public_from_seed(seed)
        assert public.hex() == group["publicKey"]["pk"]
        for case in group["tests"]:
            if case["result"] == "valid":
                assert crypto.ed25519_sign(secret, bytes.fromhex(case["msg"])).hex() == case["sig"]
    assert groups == ED25519_GROUPS_WITH_PRIVATE_KEY


# ----------------------------------------------------------------------------- X25519

MATCH = "gives the listed shared secret"
REJECT = "raises AuthenticationError(code='low_order_point')"

#: Flag -> what agentauth does with a case carrying it; a REJECT flag wins over MATCH.
X25519_FLAGS: dict[str, str] = {
    "Normal": MATCH,
    "Ktv": MATCH,  # RFC 7748 known answers
    "EdgeCaseMultiplication": MATCH,  # edge values inside the ladder
    "EdgeCasePrivateKey": MATCH,
    "EdgeCaseShared": MATCH,  # shared secret near 0 or p, but not zero
    "SpecialPublicKey": MATCH,  # unless also low order, below
    "NonCanonicalPublic": MATCH,  # u >= p is reduced mod p (RFC 7748 section 5)
    "Twist": MATCH,  # points on the twist are computed, not refused
    "SmallPublicKey": MATCH,  # only ever appears together with LowOrderPublic
    "LowOrderPublic": REJECT,  # a peer could force a known DH output
    "ZeroSharedSecret": REJECT,  # the all-zero output of RFC 7748 section 6.1
}


def test_x25519_flags_are_the_documented_ones() -> None:
    assert all_flags(X25519_FILE) == set(X25519_FLAGS)


@pytest.mark.parametrize(("group", "case"), wycheproof_params(X25519_FILE, "x25519"))
def test_x25519_wycheproof(group: Case | None, case: Case | None) -> None:
    group, case = need(group, X25519_FILE), need(case, X25519_FILE)
    assert group["curve"] == "curve25519"
    unknown = set(case["flags"]) - set(X25519_FLAGS)
    assert not unknown, f"flags {sorted(unknown)} are not in the policy"
    private, public = bytes.fromhex(case["private"]), bytes.fromhex(case["public"])
    shared = bytes.fromhex(case["shared"])
    rejected = any(X25519_FLAGS[flag] == REJECT for flag in case["flags"])
    # The table and the file agree: exactly the low-order cases have an all-zero output.
    assert rejected == (shared == bytes(32))
    if case["result"] == "invalid":
        try:
            assert crypto.x25519(private, public) != shared
        except AuthenticationError as error:
            assert error.code == "low_order_point"
        return
    assert case["result"] == "acceptable" or not rejected, "a valid case cannot be rejected"
    if rejected:
        with pytest.raises(AuthenticationError) as info:
            crypto.x25519(private, public)
        assert info.value.code == "low_order_point"
    else:
        assert crypto.x25519(private, public) == shared


# ------------------------------------------------------------------ ChaCha20-Poly1305

#: Flag -> the result every case carrying it has. Valid cases must round-trip exactly.
CHACHA_FLAGS: dict[str, str] = {
    "Ktv": "valid",  # RFC 7539 section 2.8.2
    "Pseudorandom": "valid",
    "EdgeCaseCiphertext": "valid",
    "EdgeCasePoly1305": "valid",
    "EdgeCasePolyKey": "valid",
    "EdgeCaseTag": "valid",
    "ModifiedTag": "invalid",  # decrypt raises InvalidTag
    "InvalidNonceSize": "invalid",  # encrypt and decrypt raise ValueError
}


def test_chacha20_poly1305_flags_are_the_documented_ones() -> None:
    assert all_flags(CHACHA_FILE) == set(CHACHA_FLAGS)


@pytest.mark.parametrize(("group", "case"), wycheproof_params(CHACHA_FILE, "chacha"))
def test_chacha20_poly1305_wycheproof(group: Case | None, case: Case | None) -> None:
    group, case = need(group, CHACHA_FILE), need(case, CHACHA_FILE)
    for flag in case["flags"]:
        assert CHACHA_FLAGS.get(flag) == case["result"], f"flag {flag} is not in the policy"
    key, iv, aad, msg, ct, tag = (
        bytes.fromhex(case[name]) for name in ("key", "iv", "aad", "msg", "ct", "tag")
    )
    assert len(key) * 8 == group["keySize"] == 256 and len(iv) * 8 == group["ivSize"]
    aead = crypto.ChaCha20Poly1305(key)
    if len(iv) != 12:
        assert "InvalidNonceSize" in case["flags"] and case["result"] == "invalid"
        with pytest.raises(ValueError, match="Nonce must be 12 bytes"):
            aead.encrypt(iv, msg, aad)
        with pytest.raises(ValueError, match="Nonce must be 12 bytes"):
            aead.decrypt(iv, ct + tag, aad)
    elif case["result"] == "valid":
        assert aead.encrypt(iv, msg, aad) == ct + tag
        assert aead.decrypt(iv, ct + tag, aad) == msg
    else:
        assert aead.encrypt(iv, msg, aad) != ct + tag
        with pytest.raises(crypto.InvalidTag):
            aead.decrypt(iv, ct + tag, aad)


# ------------------------------------------------------------------------------ Noise

SUITE = "25519_ChaChaPoly_BLAKE2b"

#: Noise rev 34 sections 7.4 and 7.5: (initiator pre-message, responder pre-message,
#: messages). Messages alternate, the initiator's first.
PATTERNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "N": ("", "s", ("e, es",)),
    "K": ("s", "s", ("e, es, ss",)),
    "X": ("", "s", ("e, es, s, ss",)),
    "NN": ("", "", ("e", "e, ee")),
    "NK": ("", "s", ("e, es", "e, ee")),
    "NX": ("", "", ("e", "e, ee, s, es")),
    "KN": ("s", "", ("e", "e, ee, se")),
    "KK": ("s", "s", ("e, es, ss", "e, ee, se")),
    "KX": ("s", "", ("e", "e, ee, se, s, es")),
    "XN": ("", "", ("e", "e, ee", "s, se")),
    "XK": ("", "s", ("e, es", "e, ee", "s, se")),
    "XX": ("", "", ("e", "e, ee, s, es", "s, se")),
    "IN": ("", "", ("e, s", "e, ee, se")),
    "IK": ("", "s", ("e, es, s, ss", "e, ee, se")),
    "IX": ("", "", ("e, s", "e, ee, se, s, es")),
}

#: Vectors of the file not run, with the reason. Every vector of the file runs.
NOISE_EXCLUDED: dict[str, str] = {}

_NAME = re.compile(rf"Noise_([NKXI]{{1,2}})((?:psk\d+)(?:\+psk\d+)*)?_{SUITE}")


def parse_protocol(name: str) -> tuple[tuple[str, str], list[list[str]], bool]:
    """``(pre-messages, token lists, uses psk)`` of a protocol name; psk per section 9.2."""
    match = _NAME.fullmatch(name)
    assert match is not None, f"{name}: not a supported pattern of suite {SUITE}"
    pre_i, pre_r, messages = PATTERNS[match.group(1)]
    tokens = [message.split(", ") for message in messages]
    modifiers = match.group(2).split("+") if match.group(2) else []
    for modifier in modifiers:
        index = int(modifier[3:])
        if index == 0:
            tokens[0].insert(0, "psk")
        else:
            tokens[index - 1].append("psk")
    return (pre_i, pre_r), tokens, bool(modifiers)


@dataclass
class Party:
    """One side's HandshakeState (section 5.3): s, e, rs, re, psks and a SymmetricState."""

    initiator: bool
    ss: SymmetricState
    s: bytes | None
    e: bytes | None
    rs: bytes | None
    re: bytes | None
    psk: bool
    psks: list[bytes] = field(default_factory=list)


def _key(vector: Case, name: str) -> bytes | None:
    return bytes.fromhex(vector[name]) if name in vector else None


def make_party(vector: Case, initiator: bool, pre: tuple[str, str], psk: bool) -> Party:
    """Initialize(): protocol name, prologue, then the pre-message public keys in order."""
    role = "init" if initiator else "resp"
    party = Party(
        initiator=initiator,
        ss=SymmetricState(vector["protocol_name"].encode()),
        s=_key(vector, f"{role}_static"),
        e=_key(vector, f"{role}_ephemeral"),
        rs=_key(vector, f"{role}_remote_static"),
        re=None,
        psk=psk,
        psks=[bytes.fromhex(k) for k in vector.get(f"{role}_psks", [])],
    )
    party.ss.mix_hash(bytes.fromhex(vector[f"{role}_prologue"]))
    for owner_is_initiator, tokens in ((True, pre[0]), (False, pre[1])):
        assert tokens in ("", "s"), "only static-key pre-messages occur in this suite's file"
        if tokens:
            own = owner_is_initiator == initiator
            secret = party.s if own else None
            public = crypto.x25519_public(secret) if secret is not None else party.rs
            assert public is not None
            party.ss.mix_hash(public)
    return party


def mix_key_and_hash(ss: SymmetricState, psk: bytes) -> None:
    """MixKeyAndHash (section 5.2), which agentauth itself does not need."""
    ss.ck, temp_h, temp_k = crypto.hkdf(ss.ck, psk, 3)
    ss.mix_hash(temp_h)
    ss.cipher.initialize_key(temp_k[:32])


def _dh(party: Party, token: str) -> bytes:
    """DH for ee/es/se/ss: the first letter is the initiator's key, the second the responder's."""
    mine, theirs = (token[0], token[1]) if party.initiator else (token[1], token[0])
    secret = party.e if mine == "e" else party.s
    public = party.re if theirs == "e" else party.rs
    assert secret is not None and public is not None
    return crypto.x25519(secret, public)


def write_message(party: Party, tokens: list[str], payload: bytes) -> bytes:
    """WriteMessage (section 5.3) with the vector's fixed ephemeral."""
    ss, out = party.ss, b""
    for token in tokens:
        if token == "e":
            assert party.e is not None
            public = crypto.x25519_public(party.e)
            out += public
            ss.mix_hash(public)
            if party.psk:
                ss.mix_key(public)
        elif token == "s":
            assert party.s is not None
            out += ss.encrypt_and_hash(crypto.x25519_public(party.s))
        elif token == "psk":
            mix_key_and_hash(ss, party.psks.pop(0))
        else:
            ss.mix_key(_dh(party, token))
    return out + ss.encrypt_and_hash(payload)


def read_message(party: Party, tokens: list[str], message: bytes) -> bytes:
    """ReadMessage (section 5.3)."""
    ss = party.ss
    for token in tokens:
        if token == "e":
            party.re, message = message[:32], message[32:]
            ss.mix_hash(party.re)
            if party.psk:
                ss.mix_key(party.re)
        elif token == "s":
            size = 32 + (crypto.AEAD_TAG_LEN if ss.cipher.k is not None else 0)
            party.rs, message = ss.decrypt_and_hash(message[:size]), message[size:]
        elif token == "psk":
            mix_key_and_hash(ss, party.psks.pop(0))
        else:
            ss.mix_key(_dh(party, token))
    return ss.decrypt_and_hash(message)


def _cipher(key: bytes) -> CipherState:
    cipher = CipherState()
    cipher.initialize_key(key)
    return cipher


def _noise_params() -> list[Any]:
    data = load(NOISE_FILE)
    if data is None:
        return [pytest.param(None, id="noise-file-missing")]
    return [
        pytest.param(v, id=v["protocol_name"])
        for v in data["vectors"]
        if v["protocol_name"] not in NOISE_EXCLUDED
    ]


def test_noise_every_vector_runs() -> None:
    data = need(load(NOISE_FILE), NOISE_FILE)
    names = [v["protocol_name"] for v in data["vectors"]]
    assert len(names) == len(set(names)) == 36
    for name in names:
        parse_protocol(name)  # every protocol of the file is one the interpreter knows
    assert set(NOISE_EXCLUDED) <= set(names)
    assert len(_noise_params()) == len(names) - len(NOISE_EXCLUDED)


@pytest.mark.parametrize("vector", _noise_params())
def test_noise_cacophony(vector: Case | None) -> None:
    vector = need(vector, NOISE_FILE)
    pre, patterns, psk = parse_protocol(vector["protocol_name"])
    initiator = make_party(vector, True, pre, psk)
    responder = make_party(vector, False, pre, psk)
    one_way = len(patterns) == 1
    messages = vector["messages"]
    assert len(messages) > len(patterns)
    for i, message in enumerate(messages[: len(patterns)]):
        sender, receiver = (initiator, responder) if i % 2 == 0 else (responder, initiator)
        payload = bytes.fromhex(message["payload"])
        ciphertext = write_message(sender, patterns[i], payload)
        assert ciphertext.hex() == message["ciphertext"], f"handshake message {i}"
        assert read_message(receiver, patterns[i], ciphertext) == payload
    assert not initiator.psks and not responder.psks, "every psk is used"
    assert initiator.ss.h.hex() == responder.ss.h.hex() == vector["handshake_hash"]
    i_k1, i_k2, _ = initiator.ss.split()
    r_k1, r_k2, _ = responder.ss.split()
    assert (i_k1, i_k2) == (r_k1, r_k2)
    i_send, i_recv = _cipher(i_k1), _cipher(i_k2)
    r_recv, r_send = _cipher(r_k1), _cipher(r_k2)
    for i, message in enumerate(messages[len(patterns):], start=len(patterns)):
        from_initiator = one_way or i % 2 == 0
        send, recv = (i_send, r_recv) if from_initiator else (r_send, i_recv)
        payload = bytes.fromhex(message["payload"])
        ciphertext = send.encrypt_with_ad(b"", payload)
        assert ciphertext.hex() == message["ciphertext"], f"transport message {i}"
        assert recv.decrypt_with_ad(b"", ciphertext) == payload


@pytest.mark.parametrize(("secret_len", "public_len"), [(32, 31), (32, 33), (31, 32), (0, 32)])
def test_x25519_refuses_wrong_lengths(secret_len: int, public_len: int) -> None:
    """libsodium reads exactly 32 bytes: any other length is refused before the call."""
    with pytest.raises(InvalidKey):
        crypto.x25519(bytes(range(secret_len)), bytes(range(1, public_len + 1)))

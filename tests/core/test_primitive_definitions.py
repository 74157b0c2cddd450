"""Spec sections 2.3 to 2.5 and 14.1 rebuilt from their definitions, against the code.

Each statement of the spec about a primitive is computed here from lower-level primitives
(SHA-512, BLAKE2b, Ed25519 point arithmetic, X25519, crypto_box's shared key,
XSalsa20-Poly1305, an independent Argon2 implementation) and integer arithmetic mod ``p``
and ``L``, and compared with what agentauth does. Inputs are fixed, so every run checks
the same cases.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path

import msgpack
import nacl.bindings as sodium
import nacl.exceptions
import pytest
from argon2.low_level import Type, hash_secret_raw

from agentauth import Identity, PeerKey, crypto, keyfile
from agentauth.errors import AuthenticationError, InvalidKey

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors"
ENVELOPE_VECTORS = VECTORS / "envelope.json"

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
#: Spec 2.3: the low 255 bits of every small-order encoding.
SMALL_ORDER_Y = (0, 1, P - 1, P, P + 1, Y8, P - Y8)
SIGN = 1 << 255
MESSAGE = b"spec 2.3"


def seeds(count: int, label: bytes) -> list[bytes]:
    return [hashlib.sha256(label + bytes([i])).digest() for i in range(count)]


def short(seed: bytes) -> str:
    return seed[:4].hex()


def le(n: int) -> bytes:
    return n.to_bytes(32, "little")


def secret_scalar(seed: bytes) -> int:
    """Spec 2.3, keys: SHA-512 of the seed, first half, clamped."""
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def base(n: int) -> bytes:
    """The encoding of [n]B."""
    return sodium.crypto_scalarmult_ed25519_base_noclamp(le(n % L))


def challenge(r: bytes, a: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r + a + message).digest(), "little") % L


def signature(r: int, a: int, public: bytes, message: bytes) -> tuple[bytes, int]:
    """An Ed25519 signature with nonce ``r`` under the scalar ``a`` claimed for ``public``;
    also its challenge ``k``."""
    big_r = base(r)
    k = challenge(big_r, public, message)
    return big_r + le((r + k * a) % L), k


def verifies(public: bytes, message: bytes, sig: bytes) -> bool:
    answer = crypto.ed25519_verify(public, message, sig)
    try:
        PeerKey.from_bytes(public).verify(message, sig)
    except AuthenticationError as exc:
        assert exc.code == "bad_signature"
        assert answer is False
        return False
    assert answer is True
    return True


# ------------------------------------------------------------------ 2.3 Ed25519


@pytest.mark.parametrize("seed", seeds(16, b"keys"), ids=short)
def test_keys_and_signatures_are_rfc_8032(seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    a = secret_scalar(seed)
    assert identity.public_bytes == base(a)
    # Sign is RFC 8032 5.1.6: r = SHA-512(prefix || M) mod L, S = r + k a mod L.
    prefix = hashlib.sha512(seed).digest()[32:]
    r = int.from_bytes(hashlib.sha512(prefix + MESSAGE).digest(), "little") % L
    assert identity.sign(MESSAGE) == signature(r, a, identity.public_bytes, MESSAGE)[0]
    # Step 6's equation with any nonce: a signature built from the definition verifies.
    assert verifies(identity.public_bytes, MESSAGE, signature(12345, a, base(a), MESSAGE)[0])


@pytest.mark.parametrize("seed", seeds(4, b"S"), ids=short)
def test_s_of_l_or_more_is_refused(seed: bytes) -> None:
    # [S + L]B = [S]B: only step 2 tells the two apart.
    identity = Identity.from_seed(seed)
    sig = identity.sign(MESSAGE)
    s = int.from_bytes(sig[32:], "little")
    assert verifies(identity.public_bytes, MESSAGE, sig)
    assert not verifies(identity.public_bytes, MESSAGE, sig[:32] + le(s + L))


def test_a_small_order_r_is_refused_where_the_equation_holds() -> None:
    # R the identity and S = k a: [S]B - [k]A is the identity, whose encoding is R.
    seed = seeds(1, b"R")[0]
    a, public = secret_scalar(seed), Identity.from_seed(seed).public_bytes
    identity_point = le(1)
    k = challenge(identity_point, public, MESSAGE)
    assert not verifies(public, MESSAGE, identity_point + le(k * a % L))


@pytest.mark.parametrize("y", SMALL_ORDER_Y)
@pytest.mark.parametrize("sign", [0, SIGN])
def test_a_small_order_key_is_refused_where_the_equation_holds(y: int, sign: int) -> None:
    # With T of order dividing 8 and k a multiple of 8, [k]T is the identity, so S = r
    # gives [S]B - [k]T = R: only step 4 refuses.
    public = le(y | sign)
    r = 1
    while True:
        sig, k = signature(r, 0, public, MESSAGE)
        if k % 8 == 0:
            break
        r += 1
    assert not verifies(public, MESSAGE, sig)


def test_verification_is_cofactorless_and_keeps_mixed_order_keys() -> None:
    # A' = A + T, T of order 8: [S]B - [k]A' = R - [k]T with S = r + k a, which is R
    # exactly when 8 divides k. A cofactored check would accept every one of them.
    seed = seeds(1, b"mixed")[0]
    a = secret_scalar(seed)
    mixed = sodium.crypto_core_ed25519_add(base(a), le(Y8))
    outcomes = set()
    for r in range(1, 65):
        sig, k = signature(r * 7919, a, mixed, MESSAGE)
        assert verifies(mixed, MESSAGE, sig) is (k % 8 == 0)
        outcomes.add(k % 8 == 0)
    assert outcomes == {True, False}
    with pytest.raises(InvalidKey):  # but 2.4 refuses it as a recipient
        crypto.sealed_box(mixed, b"m")


# ---------------------------------------------------------- 2.4 the X25519 form


def x25519_form(public: bytes) -> bytes:
    """Spec 2.4: u = (1 + y) / (1 - y) mod p, y the low 255 bits of the key."""
    y = int.from_bytes(public, "little") & (SIGN - 1)
    return le((1 + y) * pow(1 - y, -1, P) % P)


def x25519_secret(seed: bytes) -> bytes:
    return le(secret_scalar(seed))


def seal_by_the_steps(public: bytes, esk: bytes, message: bytes) -> bytes:
    """Spec 2.5, steps 1 to 6."""
    pk = x25519_form(public)
    epk = sodium.crypto_scalarmult_base(esk)
    nonce = hashlib.blake2b(epk + pk, digest_size=24).digest()
    k = sodium.crypto_box_beforenm(pk, esk)
    box = epk + sodium.crypto_secretbox(message, nonce, k)
    assert box[32:] == sodium.crypto_box(message, nonce, pk, esk)  # crypto_box's layout
    return box


def open_by_the_steps(seed: bytes, box: bytes) -> bytes:
    """Spec 2.5, the opening."""
    secret = x25519_secret(seed)
    epk = box[:32]
    pk = x25519_form(Identity.from_seed(seed).public_bytes)
    nonce = hashlib.blake2b(epk + pk, digest_size=24).digest()
    assert sodium.crypto_scalarmult(secret, epk) != bytes(32)
    opened: bytes = sodium.crypto_secretbox_open(box[32:], nonce,
                                                 sodium.crypto_box_beforenm(epk, secret))
    return opened


@pytest.mark.parametrize("seed", seeds(32, b"form"), ids=short)
def test_the_x25519_form_is_the_birational_map(seed: bytes) -> None:
    public = Identity.from_seed(seed).public_bytes
    u = x25519_form(public)
    assert crypto.x25519_public(x25519_secret(seed)) == u  # the secret's public half
    esk = hashlib.sha256(b"esk" + seed).digest()
    box = seal_by_the_steps(public, esk, MESSAGE)
    # The library's construction with the same ephemeral key gives the same bytes, and it
    # does not look at bit 255.
    assert crypto.sealed_box_for_vectors(esk, public, MESSAGE) == box
    flipped = le(int.from_bytes(public, "little") ^ SIGN)
    assert crypto.sealed_box_for_vectors(esk, flipped, MESSAGE) == box


@pytest.mark.parametrize("seed", seeds(8, b"seal"), ids=short)
def test_sealed_boxes_follow_the_steps_both_ways(seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    for message in (b"", MESSAGE, bytes(range(256)) * 5):
        box = seal_by_the_steps(identity.public_bytes, hashlib.sha256(message).digest(),
                                message)
        assert len(box) == 48 + len(message)
        assert identity.open_sealed(box) == message
        theirs = crypto.sealed_box(identity.public_bytes, message)
        assert len(theirs) == 48 + len(message)
        assert open_by_the_steps(seed, theirs) == message


def test_the_sealed_envelope_vectors_open_by_the_steps() -> None:
    # Every sealed box of spec/vectors/envelope.json opens by 2.5's steps exactly when the
    # recipient's own opener opens it, to the same bytes.
    opened = 0
    for vector in json.loads(ENVELOPE_VECTORS.read_text(encoding="utf-8"))["vectors"]:
        seed = bytes.fromhex(vector["me_seed"])
        for data in vector["envelopes"]:
            try:
                outer = msgpack.unpackb(bytes.fromhex(data), strict_map_key=False)
            except (ValueError, msgpack.UnpackException):
                continue
            if not (isinstance(outer, dict) and outer.get(0) == 2
                    and isinstance(outer.get(2), bytes) and len(outer[2]) >= 48):
                continue
            try:
                theirs: bytes | None = Identity.from_seed(seed).open_sealed(outer[2])
            except AuthenticationError:
                theirs = None
            try:
                ours: bytes | None = open_by_the_steps(seed, outer[2])
            except (AssertionError, nacl.exceptions.CryptoError):
                ours = None
            assert ours == theirs, vector["id"]
            opened += ours is not None
    assert opened >= 1


def refused_keys() -> list[bytes]:
    keys = [le(y | sign) for y in SMALL_ORDER_Y for sign in (0, SIGN)]
    keys += [le((y + P) | sign) for y in range(19) for sign in (0, SIGN)]  # non-canonical
    keys.append(le(2))  # y = 2 is on no point of the curve
    keys.append(le(3))  # y = 3 is, but outside the subgroup of order L
    return keys


@pytest.mark.parametrize("public", refused_keys(), ids=lambda key: key[:1].hex())
def test_keys_the_x25519_form_refuses(public: bytes) -> None:
    with pytest.raises(InvalidKey):
        crypto.sealed_box(public, MESSAGE)


def test_what_opening_refuses() -> None:
    seed = seeds(1, b"open")[0]
    identity = Identity.from_seed(seed)
    box = seal_by_the_steps(identity.public_bytes, bytes(range(32)), MESSAGE)
    low_order = [le(0), le(1), le(P - 1), le(P), le(P + 1)]  # X25519 gives all zeros
    for bad in [box[:47], b"", box[:-1] + bytes([box[-1] ^ 1]),
                box[:32] + bytes([box[32] ^ 1]) + box[33:]] + [u + box[32:] for u in low_order]:
        with pytest.raises(AuthenticationError) as info:
            identity.open_sealed(bad)
        assert info.value.code == "decrypt_failed"


# ------------------------------------------------------------------ 14.1 Argon2id


def argon2id_by_the_rfc(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int
                        ) -> bytes:
    """Spec 14.1: RFC 9106 Argon2id, one lane, m = floor(memlimit / 1024) KiB, t =
    opslimit, v = 0x13, 32 bytes, no secret and no associated data."""
    return hash_secret_raw(passphrase, salt, time_cost=opslimit,
                           memory_cost=memlimit // 1024, parallelism=1, hash_len=32,
                           type=Type.ID, version=0x13)


@pytest.mark.parametrize(("opslimit", "memlimit"), [
    (1, 8192),  # the least a key file allows: m = 8
    (2, 8192 + 1023),  # the remainder below a KiB is dropped
    (3, 10 * 1024 + 5),  # m = 10: RFC 9106 then uses 8 blocks, m itself enters H0
    (4, 65536),
])
def test_argon2id_is_rfc_9106_with_one_lane(opslimit: int, memlimit: int) -> None:
    salt = bytes(range(16))
    for passphrase in (b"correct horse", "pässwörd".encode()):
        assert (crypto.argon2id(passphrase, salt, opslimit, memlimit)
                == argon2id_by_the_rfc(passphrase, salt, opslimit, memlimit))


def test_a_key_file_built_from_section_14_1_opens() -> None:
    seed = seeds(1, b"key file")[0]
    public = Identity.from_seed(seed).public_bytes
    salt, nonce, opslimit, memlimit = bytes(range(16)), bytes(range(24)), 1, 9000
    header = msgpack.packb(["agentauth-key", 1, opslimit, memlimit, salt, nonce, public,
                            bytes(48)], use_bin_type=True)[:-50]  # less element 7
    key = argon2id_by_the_rfc("pässwörd".encode(), salt, opslimit, memlimit)
    box = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(seed, header, nonce, key)
    data = header + b"\xc4\x30" + box
    assert keyfile.open_seed(data, "pässwörd")[0] == seed


def test_the_key_file_vector_opens_by_section_14_1() -> None:
    # The key file of spec/vectors/keys.json that records its seed gives that seed through
    # RFC 9106 Argon2id and XChaCha20-Poly1305 with the header as associated data (one
    # file: Argon2id at the interactive preset takes a third of a second here).
    vectors = json.loads((VECTORS / "keys.json").read_text(encoding="utf-8"))["vectors"]
    [vector] = [v for v in vectors if v["kind"] == "key_file" and "seed" in v]
    data = bytes.fromhex(vector["file"])
    _, _, opslimit, memlimit, salt, nonce, public, box = msgpack.unpackb(data)
    passphrase = unicodedata.normalize("NFC", vector["passphrase"]).encode("utf-8")
    key = argon2id_by_the_rfc(passphrase, salt, opslimit, memlimit)
    seed = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(box, data[:-2 - len(box)],
                                                              nonce, key)
    assert seed.hex() == vector["seed"]
    assert Identity.from_seed(seed).public_bytes == public

"""Cryptographic primitives: the only module that imports a cryptography library.

* Ed25519 and X25519 come from libsodium through PyNaCl. libsodium's verification is
  strict (canonical ``S``, no small-order or non-canonical ``A`` or ``R``: the six
  conditions of spec 2.3) and its X25519 refuses to return the all-zero output of a
  small-order point; agentauth relies on both rules, and the Wycheproof vectors and
  ``tests/core/test_primitive_definitions.py`` pin them.
* ChaCha20-Poly1305 (IETF, 96-bit nonce) comes from the ``cryptography`` package: it is
  the same AEAD as libsodium's, about four times faster per call from Python.
* Argon2id (``crypto_pwhash``) and XChaCha20-Poly1305 come from libsodium: they derive a
  key from a passphrase and seal key files (:mod:`agentauth.keyfile`).
* BLAKE2b and HMAC-BLAKE2b come from the standard library's ``hashlib``/``hmac``, a tenth
  of the per-call cost of the PyNaCl binding for the short inputs a handshake hashes.

Nothing here keeps state except the AEAD key objects; nothing here logs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import weakref
from collections.abc import Callable
from typing import NoReturn, SupportsIndex

import nacl.bindings as _sodium
import nacl.exceptions as _nacl_exc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .errors import AuthenticationError, InvalidKey

__all__ = [
    "AEAD_KEY_LEN",
    "AEAD_TAG_LEN",
    "ARGON2ID_PRESETS",
    "DH_LEN",
    "HASH_LEN",
    "MAX_NONCE",
    "PWHASH_SALT_LEN",
    "SEALED_OVERHEAD",
    "SIGNATURE_LEN",
    "XAEAD_NONCE_LEN",
    "Blake2b",
    "ChaCha20Poly1305",
    "InvalidTag",
    "KeyHolder",
    "argon2id",
    "blake2b",
    "blake2b_256",
    "blake2b_keyed",
    "ed25519_public_from_seed",
    "ed25519_sign",
    "ed25519_verify",
    "equal",
    "hkdf",
    "keyed_hasher",
    "nonce",
    "rekey",
    "sealed_box",
    "sealed_box_for_vectors",
    "sealed_box_open",
    "sha256",
    "sha512",
    "x25519",
    "x25519_public",
    "xaead_open",
    "xaead_seal",
]

DH_LEN = 32
HASH_LEN = 64
SIGNATURE_LEN = 64
AEAD_KEY_LEN = 32
AEAD_TAG_LEN = 16
MAX_NONCE = 2**64 - 1

_NONCE_PREFIX = b"\x00\x00\x00\x00"
_ZEROS32 = bytes(32)
_blake2b = hashlib.blake2b
#: The BLAKE2b-512 hash object constructor, for callers on a hot path.
Blake2b = hashlib.blake2b
_hmac_digest = hmac.digest


def equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in time that depends only on their lengths."""
    return hmac.compare_digest(a, b)


class KeyHolder:
    """Base of objects that hold live key material: they refuse to be copied or pickled.

    A copy of a cipher state would reuse its nonces; a pickle would write keys to disk. A
    process that forks would copy them too: holders that registered with :meth:`_track`
    are disabled in the child (:meth:`_after_fork`), and stay usable in the parent.
    """

    __slots__ = ("__weakref__",)

    def _track(self) -> None:
        _live.append(_ref(self))
        if len(_live) >= _prune_at[0]:
            _prune()

    def _after_fork(self) -> None:
        """Called in a forked child for every tracked holder: refuse all further use."""

    def __copy__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds keys and cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds keys and cannot be copied")

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds keys and cannot be pickled")


# ---------------------------------------------------------------- Ed25519


def ed25519_public_from_seed(seed: bytes) -> tuple[bytes, bytes]:
    """Return ``(public_key, secret_key)`` for a 32-byte seed (libsodium's 64-byte form)."""
    if type(seed) is not bytes or len(seed) != 32:
        raise InvalidKey("an Ed25519 seed is exactly 32 bytes")
    public, secret = _sodium.crypto_sign_seed_keypair(seed)
    return public, secret


def ed25519_sign(secret_key: bytes, message: bytes) -> bytes:
    """Sign ``message`` with libsodium's 64-byte secret key; return the 64-byte signature."""
    return _sodium.crypto_sign(message, secret_key)[:SIGNATURE_LEN]


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is valid for ``message`` under libsodium's strict rules."""
    if len(signature) != SIGNATURE_LEN or len(public_key) != 32:
        return False
    try:
        _sodium.crypto_sign_open(signature + message, public_key)
    except (_nacl_exc.BadSignatureError, _nacl_exc.ValueError, _nacl_exc.TypeError):
        return False
    return True


SEALED_OVERHEAD = 48  # an ephemeral X25519 key and a Poly1305 tag


def sealed_box(ed25519_public: bytes, message: bytes) -> bytes:
    """Encrypt ``message`` to the holder of an Ed25519 key, anonymously: spec 2.5's
    ``SealedBox``, libsodium's sealed box to the key's X25519 form (spec 2.4), with a fresh
    ephemeral key per message. A key that has no X25519 form is ``invalid_key``."""
    if type(ed25519_public) is not bytes or type(message) is not bytes:
        raise InvalidKey("a sealed box takes a key and a message as bytes")
    try:
        recipient = _sodium.crypto_sign_ed25519_pk_to_curve25519(ed25519_public)
        return _sodium.crypto_box_seal(message, recipient)
    except (_nacl_exc.CryptoError, _nacl_exc.ValueError, _nacl_exc.TypeError):
        raise InvalidKey("the recipient's key cannot receive encrypted messages") from None


def sealed_box_for_vectors(ephemeral: bytes, ed25519_public: bytes, message: bytes
                           ) -> bytes:
    """A sealed box with a *fixed* ephemeral X25519 secret, for test vectors only: the
    construction of ``crypto_box_seal`` (the ephemeral public key, then ``crypto_box``
    under the nonce ``BLAKE2b-192(ephemeral public || recipient)``), which
    ``crypto_box_seal_open`` opens. A reused ephemeral key repeats the keystream: never use
    this for a real message."""
    recipient = _sodium.crypto_sign_ed25519_pk_to_curve25519(ed25519_public)
    public = _sodium.crypto_scalarmult_base(ephemeral)
    nonce = _blake2b(public + recipient, digest_size=24).digest()
    return public + _sodium.crypto_box(message, nonce, recipient, ephemeral)


def sealed_box_open(secret_key: bytes, box: bytes) -> bytes:
    """Open a :func:`sealed_box` with libsodium's 64-byte Ed25519 secret key
    (``decrypt_failed`` if it was not sealed to this key or was altered)."""
    try:
        public = _sodium.crypto_sign_ed25519_pk_to_curve25519(secret_key[32:])
        secret = _sodium.crypto_sign_ed25519_sk_to_curve25519(secret_key)
        return _sodium.crypto_box_seal_open(box, public, secret)
    except (_nacl_exc.CryptoError, _nacl_exc.ValueError, _nacl_exc.TypeError):
        raise AuthenticationError("the sealed message does not open with this key",
                                  code="decrypt_failed") from None


# ----------------------------------------------------------------- X25519


def x25519_public(secret: bytes) -> bytes:
    """The X25519 public key of a 32-byte secret (the secret is clamped as usual)."""
    if type(secret) is not bytes or len(secret) != DH_LEN:
        raise InvalidKey("an X25519 secret key is exactly 32 bytes")
    return _sodium.crypto_scalarmult_base(secret)


def x25519(secret: bytes, public: bytes) -> bytes:
    """X25519 Diffie-Hellman; a small-order ``public`` raises ``low_order_point``."""
    if len(secret) != DH_LEN or len(public) != DH_LEN:  # libsodium reads exactly 32 bytes
        raise InvalidKey("X25519 keys are exactly 32 bytes")
    try:
        return _sodium.crypto_scalarmult(secret, public)
    except _nacl_exc.RuntimeError:
        pass
    del secret  # not left in the frame the traceback keeps
    raise AuthenticationError("peer X25519 key is of small order", code="low_order_point")


# ---------------------------------------------------------- BLAKE2b, HKDF


def blake2b(data: bytes) -> bytes:
    """BLAKE2b-512 of ``data``."""
    return _blake2b(data).digest()


def blake2b_256(data: bytes) -> bytes:
    """BLAKE2b with a 32-byte output (a distinct function from truncated BLAKE2b-512)."""
    return _blake2b(data, digest_size=32).digest()


def sha256(data: bytes) -> bytes:
    """SHA-256 of ``data`` (for formats other systems define: JWK thumbprints, HTTP digests)."""
    return hashlib.sha256(data).digest()


def sha512(data: bytes) -> bytes:
    """SHA-512 of ``data`` (RFC 9530 ``Content-Digest`` members name it)."""
    return hashlib.sha512(data).digest()


def keyed_hasher(key: bytes, length: int) -> Callable[[bytes], bytes]:
    """Keyed BLAKE2b with ``key`` fixed, as a function of the data: the same values as
    :func:`blake2b_keyed`, cheaper when one key hashes many inputs (the key block is
    absorbed once)."""
    if (type(key) is not bytes or not 0 < len(key) <= 64 or type(length) is not int
            or not 0 < length <= 64):
        raise InvalidKey("a BLAKE2b key is 1 to 64 bytes, the length 1 to 64")
    start = _blake2b(key=key, digest_size=length)

    def digest(data: bytes) -> bytes:
        state = start.copy()
        state.update(data)
        return state.digest()

    return digest


def blake2b_keyed(key: bytes, data: bytes, length: int) -> bytes:
    """Keyed BLAKE2b (a PRF) with an output of ``length`` bytes (1 to 64)."""
    return _blake2b(data, key=key, digest_size=length).digest()


def hkdf(chaining_key: bytes, ikm: bytes, outputs: int) -> tuple[bytes, ...]:
    """Noise's HKDF with HMAC-BLAKE2b: two or three 64-byte outputs (Noise section 4.3)."""
    temp = _hmac_digest(chaining_key, ikm, _blake2b)
    out1 = _hmac_digest(temp, b"\x01", _blake2b)
    out2 = _hmac_digest(temp, out1 + b"\x02", _blake2b)
    if outputs == 2:
        return out1, out2
    return out1, out2, _hmac_digest(temp, out2 + b"\x03", _blake2b)


# ------------------------------------------- Argon2id, XChaCha20-Poly1305

PWHASH_SALT_LEN = _sodium.crypto_pwhash_SALTBYTES
XAEAD_NONCE_LEN = 24
#: libsodium's Argon2id presets, as (opslimit, memlimit in bytes).
ARGON2ID_PRESETS: dict[str, tuple[int, int]] = {
    "interactive": (_sodium.crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
                    _sodium.crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE),
    "moderate": (_sodium.crypto_pwhash_argon2id_OPSLIMIT_MODERATE,
                 _sodium.crypto_pwhash_argon2id_MEMLIMIT_MODERATE),
    "sensitive": (_sodium.crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE,
                  _sodium.crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE),
}


def argon2id(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    """A 32-byte key from ``passphrase`` by Argon2id v1.3 (libsodium's ``crypto_pwhash``):
    RFC 9106 with one lane, ``opslimit`` passes and ``memlimit // 1024`` KiB (spec 14.1).

    The caller bounds ``opslimit`` and ``memlimit``: they decide the time and memory spent.
    """
    if (type(passphrase) is not bytes or type(salt) is not bytes
            or len(salt) != PWHASH_SALT_LEN):
        raise InvalidKey(f"Argon2id takes a passphrase and a {PWHASH_SALT_LEN}-byte salt")
    try:
        key: bytes = _sodium.crypto_pwhash_alg(32, passphrase, salt, opslimit, memlimit,
                                               _sodium.crypto_pwhash_ALG_ARGON2ID13)
    except (_nacl_exc.CryptoError, _nacl_exc.ValueError, _nacl_exc.TypeError,
            MemoryError):
        raise InvalidKey("Argon2id refused these parameters") from None
    return key


def xaead_seal(key: bytes, nonce: bytes, message: bytes, associated: bytes) -> bytes:
    """XChaCha20-Poly1305 (IETF) encryption of ``message``, authenticating ``associated``."""
    if len(key) != AEAD_KEY_LEN or len(nonce) != XAEAD_NONCE_LEN:
        raise InvalidKey("XChaCha20-Poly1305 takes a 32-byte key and a 24-byte nonce")
    sealed: bytes = _sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        message, associated, nonce, key)
    return sealed


def xaead_open(key: bytes, nonce: bytes, sealed: bytes, associated: bytes) -> bytes:
    """Open :func:`xaead_seal`'s output (``decrypt_failed`` if anything was altered)."""
    if len(key) != AEAD_KEY_LEN or len(nonce) != XAEAD_NONCE_LEN:
        raise InvalidKey("XChaCha20-Poly1305 takes a 32-byte key and a 24-byte nonce")
    try:
        message: bytes = _sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed, associated, nonce, key)
    except (_nacl_exc.CryptoError, _nacl_exc.ValueError, _nacl_exc.TypeError):
        raise AuthenticationError("the sealed data did not authenticate",
                                  code="decrypt_failed") from None
    return message


# --------------------------------------------------- ChaCha20-Poly1305


def nonce(counter: int) -> bytes:
    """Noise's 96-bit nonce: four zero bytes, then the 64-bit counter little-endian."""
    return _NONCE_PREFIX + counter.to_bytes(8, "little")


def rekey(key: bytes) -> bytes:
    """Noise's REKEY: the first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes)."""
    return ChaCha20Poly1305(key).encrypt(nonce(MAX_NONCE), _ZEROS32, b"")[:32]


# Weak references to tracked holders, without callbacks (cheap to make and to drop); dead
# ones are pruned whenever the list has doubled since the last pruning.
_ref = weakref.ref
_live: list[weakref.ref[KeyHolder]] = []
_prune_at = [1024]
_prune_lock = [threading.Lock()]  # replaced in a forked child, where its holder is gone


def _prune() -> None:
    lock = _prune_lock[0]
    if not lock.acquire(False):  # pruning already (another thread, or re-entered): skip
        return
    try:
        count = len(_live)  # other threads only append: entries past count stay as they are
        _live[:count] = [r for r in _live[:count] if r() is not None]
        _prune_at[0] = max(1024, 2 * len(_live))
    finally:
        lock.release()


def _disable_in_child() -> None:
    _prune_lock[0] = threading.Lock()
    for r in list(_live):
        holder = r()
        if holder is not None:
            holder._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_disable_in_child)

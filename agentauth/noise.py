"""The Noise core: CipherState and SymmetricState of the Noise Protocol Framework
(revision 34, section 5) for the suite ``25519_ChaChaPoly_BLAKE2b``.

Names follow the Noise specification so that this file can be read against it. The
handshake engine drives a :class:`SymmetricState` through the ``NN`` pattern and one more
token-less handshake message (see ``spec/protocol.md`` section 4).
"""

from __future__ import annotations

from typing import NoReturn

from . import crypto
from .errors import AuthenticationError, InvalidState

__all__ = ["PROTOCOL_NAME", "CipherState", "SymmetricState"]

PROTOCOL_NAME = b"Noise_NN_25519_ChaChaPoly_BLAKE2b"

_Cipher = crypto.ChaCha20Poly1305
_InvalidTag = crypto.InvalidTag
_nonce = crypto.nonce
_hash = crypto.blake2b
_Blake2b = crypto.Blake2b  # the constructor itself: these calls are on the hot path
_hkdf = crypto.hkdf


class CipherState(crypto.KeyHolder):
    """A key (or none yet) and a nonce counter that advances only after success."""

    __slots__ = ("k", "n")

    def __init__(self) -> None:
        self.k: crypto.ChaCha20Poly1305 | None = None
        self.n = 0

    def __repr__(self) -> str:
        return f"CipherState(has_key={self.k is not None}, n={self.n})"

    def initialize_key(self, key: bytes) -> None:
        """InitializeKey(k): set the key and reset the nonce."""
        self.k = _Cipher(key)
        self.n = 0

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """EncryptWithAd: the plaintext itself while there is no key."""
        if self.k is None:
            return plaintext
        ciphertext = self.k.encrypt(_nonce(self.n), plaintext, ad)
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithAd: raises ``decrypt_failed`` and leaves ``n`` unchanged on failure."""
        if self.k is None:
            return ciphertext
        try:
            plaintext = self.k.decrypt(_nonce(self.n), ciphertext, ad)
        except _InvalidTag:
            raise AuthenticationError("message authentication failed",
                                      code="decrypt_failed") from None
        self.n += 1
        return plaintext


class SymmetricState(crypto.KeyHolder):
    """The chaining key ``ck``, the handshake hash ``h`` and the current CipherState."""

    __slots__ = ("cipher", "ck", "h")

    def __init__(self, protocol_name: bytes = PROTOCOL_NAME) -> None:
        if len(protocol_name) <= crypto.HASH_LEN:
            self.h = protocol_name.ljust(crypto.HASH_LEN, b"\x00")
        else:
            self.h = _hash(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def copy(self) -> SymmetricState:
        """An independent copy of a state that has no key yet (the engines start from a
        copy of a prepared state). A keyed state cannot be copied: the copies would encrypt
        under one key and nonce."""
        if self.cipher.k is not None:
            raise TypeError("a keyed SymmetricState cannot be copied")
        other = SymmetricState.__new__(SymmetricState)
        other.ck, other.h = self.ck, self.h
        other.cipher = CipherState()
        other.cipher.k, other.cipher.n = self.cipher.k, self.cipher.n
        return other

    def __repr__(self) -> str:
        return "SymmetricState(<secret>)"

    def erase(self) -> None:
        """Drop the chaining key, the hash and the cipher key, in place; from then on
        every operation on this state raises ``invalid_state``. Code that still holds a
        reference (a traceback's frame, say) finds nothing in it."""
        self.ck = self.h = b""
        self.cipher.k = None
        self.cipher.n = 0
        self.__class__ = _ErasedState

    def mix_key(self, input_key_material: bytes) -> None:
        """MixKey: derive a new chaining key and cipher key from DH output."""
        self.ck, temp_k = _hkdf(self.ck, input_key_material, 2)
        cipher = self.cipher
        cipher.k = _Cipher(temp_k[:32])
        cipher.n = 0

    def mix_hash(self, data: bytes) -> None:
        """MixHash: ``h = HASH(h || data)``."""
        self.h = _Blake2b(self.h + data).digest()

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash: encrypt with ``h`` as associated data, then mix the ciphertext."""
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.h = _Blake2b(self.h + ciphertext).digest()
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash: decrypt with ``h`` as associated data, then mix the ciphertext."""
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.h = _Blake2b(self.h + ciphertext).digest()
        return plaintext

    def split(self) -> tuple[bytes, bytes, bytes]:
        """Split, extended by one output: ``(k1, k2, exporter_secret)``.

        ``k1`` and ``k2`` are exactly Noise's Split outputs (the HKDF outputs are computed
        in sequence, so a third output does not change the first two).
        """
        out1, out2, out3 = _hkdf(self.ck, b"", 3)
        return out1[:32], out2[:32], out3


class _ErasedState(SymmetricState):
    """What an erased :class:`SymmetricState` becomes: the same slots, every use refused."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise InvalidState("this handshake state was erased")

    mix_key = mix_hash = encrypt_and_hash = decrypt_and_hash = split = copy = _refuse

    def erase(self) -> None:
        """Already erased."""

    def __repr__(self) -> str:
        return "SymmetricState(<erased>)"

"""The Noise core: CipherState and SymmetricState of the Noise Protocol Framework
(revision 34, section 5) for the suite ``25519_ChaChaPoly_BLAKE2b``.

Names follow the Noise specification so that this file can be read against it. The
handshake engine drives a :class:`SymmetricState` through the ``NN`` pattern and one more
token-less handshake message (see ``spec/protocol.md`` section 4).
"""

from __future__ import annotations

from . import crypto

__all__ = ["PROTOCOL_NAME", "CipherState", "SymmetricState"]

PROTOCOL_NAME = b"Noise_NN_25519_ChaChaPoly_BLAKE2b"


class CipherState:
    """A key (or none yet) and a nonce counter that advances only after success."""

    __slots__ = ("aead", "n")

    def __init__(self) -> None:
        self.aead: crypto.Aead | None = None
        self.n = 0

    def __repr__(self) -> str:
        return f"CipherState(has_key={self.aead is not None}, n={self.n})"

    def initialize_key(self, key: bytes) -> None:
        """InitializeKey(k): set the key and reset the nonce."""
        self.aead = crypto.Aead(key)
        self.n = 0

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """EncryptWithAd: the plaintext itself while there is no key."""
        if self.aead is None:
            return plaintext
        ciphertext = self.aead.encrypt(self.n, plaintext, ad)
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithAd: raises ``decrypt_failed`` and leaves ``n`` unchanged on failure."""
        if self.aead is None:
            return ciphertext
        plaintext = self.aead.decrypt(self.n, ciphertext, ad)
        self.n += 1
        return plaintext


class SymmetricState:
    """The chaining key ``ck``, the handshake hash ``h`` and the current CipherState."""

    __slots__ = ("cipher", "ck", "h")

    def __init__(self, protocol_name: bytes = PROTOCOL_NAME) -> None:
        if len(protocol_name) <= crypto.HASH_LEN:
            self.h = protocol_name.ljust(crypto.HASH_LEN, b"\x00")
        else:
            self.h = crypto.blake2b(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def __repr__(self) -> str:
        return "SymmetricState(<secret>)"

    def mix_key(self, input_key_material: bytes) -> None:
        """MixKey: derive a new chaining key and cipher key from DH output."""
        self.ck, temp_k = crypto.hkdf(self.ck, input_key_material, 2)
        self.cipher.initialize_key(temp_k[:32])

    def mix_hash(self, data: bytes) -> None:
        """MixHash: ``h = HASH(h || data)``."""
        self.h = crypto.blake2b(self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash: encrypt with ``h`` as associated data, then mix the ciphertext."""
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash: decrypt with ``h`` as associated data, then mix the ciphertext."""
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[bytes, bytes, bytes]:
        """Split, extended by one output: ``(k1, k2, exporter_secret)``.

        ``k1`` and ``k2`` are exactly Noise's Split outputs (the HKDF outputs are computed
        in sequence, so a third output does not change the first two).
        """
        out1, out2, out3 = crypto.hkdf(self.ck, b"", 3)
        return out1[:32], out2[:32], out3

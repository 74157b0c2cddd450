"""A second, deliberately permissive writer of handshake messages.

The engines refuse to produce a bad message; the negative vectors need exactly one rule
broken in each. :class:`Forge` follows the same Noise steps as the engines (section 4 of
the specification) from its own code, with every field, key and signature under the
caller's control. Untampered, it writes byte for byte what the engines write, and a test
checks that it does.
"""

from __future__ import annotations

from typing import Any

from ... import crypto, wire
from ...handshake import INITIATOR_CONTEXT, PROLOGUE, RESPONDER_CONTEXT
from ...identity import Identity
from ...noise import SymmetricState

__all__ = ["Forge", "body2", "body3"]


def body2(version: Any, identity: Any, timestamp: Any, extensions: Any) -> bytes:
    """The canonical HS2 body."""
    return wire.encode_map(version, identity, timestamp, extensions)


def body3(identity: Any, timestamp: Any, extensions: Any) -> bytes:
    """The canonical HS3 body."""
    return wire.encode_map(identity, timestamp, extensions)


class Forge:
    """One side's transcript, driven by hand."""

    def __init__(self) -> None:
        self.ss = SymmetricState()
        self.ss.mix_hash(PROLOGUE)
        self.e_secret = b""
        self.e_public = b""
        self.peer_e = b""

    # ------------------------------------------------------------- as initiator

    def write_hs1(self, e_secret: bytes, payload: bytes | None = None) -> bytes:
        """HS1 with our ephemeral and ``payload`` (default: the offer ``[1]``)."""
        self.e_secret, self.e_public = e_secret, crypto.x25519_public(e_secret)
        payload = wire.encode_map([1]) if payload is None else payload
        self.ss.mix_hash(self.e_public)
        self.ss.mix_hash(payload)
        return self.e_public + payload

    def read_hs2(self, message: bytes) -> bytes:
        """Follow the responder's HS2 (no checks); return its plaintext."""
        self.peer_e = message[:32]
        self.ss.mix_hash(self.peer_e)
        self.ss.mix_key(crypto.x25519(self.e_secret, self.peer_e))
        return self.ss.decrypt_and_hash(message[32:])

    def write_hs3(self, body: bytes, signer: Identity, *, context: bytes = INITIATOR_CONTEXT,
                  signed_body: bytes | None = None, signature: bytes | None = None) -> bytes:
        """HS3 carrying ``body``, signed by ``signer`` over ``signed_body`` (default: body)."""
        if signature is None:
            signed = body if signed_body is None else signed_body
            signature = signer.sign(context + self.ss.h + signed)
        return self.ss.encrypt_and_hash(signature + body)

    # ------------------------------------------------------------- as responder

    def read_hs1(self, message: bytes) -> None:
        """Follow the initiator's HS1 (no checks)."""
        self.peer_e = message[:32]
        self.ss.mix_hash(self.peer_e)
        self.ss.mix_hash(message[32:])

    def write_hs2(self, e_secret: bytes, body: bytes, signer: Identity, *,
                  context: bytes = RESPONDER_CONTEXT, signed_body: bytes | None = None,
                  signature: bytes | None = None) -> bytes:
        """HS2 carrying ``body``, signed by ``signer`` over ``signed_body`` (default: body)."""
        self.e_secret, self.e_public = e_secret, crypto.x25519_public(e_secret)
        self.ss.mix_hash(self.e_public)
        self.ss.mix_key(crypto.x25519(e_secret, self.peer_e))
        if signature is None:
            signed = body if signed_body is None else signed_body
            signature = signer.sign(context + self.ss.h + signed)
        return self.e_public + self.ss.encrypt_and_hash(signature + body)

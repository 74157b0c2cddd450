"""Key rotation statements (spec section 14.4).

A did:key cannot be updated, so an agent that replaces its key says so itself: the old key
signs a statement naming the new key, and the new key signs it too (so nobody can be named
the successor of a key without holding it). The statement may commit to the key after the
new one, by hash, as KERI's pre-rotation does: whoever steals the new key later still cannot
rotate to a key of their own, because the next rotation must reveal the committed key.

The statement is ``{0: payload, 1: old key's signature, 2: new key's signature}`` with
``payload = {0: 1 (version), 1: old public key, 2: new public key, 3: commitment to the
next key (32 bytes, or empty), 4: time (Unix seconds)}``, every map canonical (section 3).
Both signatures are over ``ROTATION_CONTEXT || payload``, the exact payload bytes received.
What a verifier does with a valid statement (accept it once, refuse a key rotated away)
is the trust store's part (:mod:`agentauth.keys.trust`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .. import crypto, wire
from ..errors import AuthenticationError, DecodeError, InvalidArgument
from ..identity import Identity, PeerKey, peer_key

__all__ = [
    "MAX_ROTATION",
    "NEXT_KEY_CONTEXT",
    "ROTATION_CONTEXT",
    "Rotation",
    "next_key_commitment",
    "parse_rotation",
    "rotate",
]

ROTATION_CONTEXT: Final = b"agentauth v1 key rotation\x00"
NEXT_KEY_CONTEXT: Final = b"agentauth v1 next key\x00"
ROTATION_VERSION: Final = 1
MAX_ROTATION: Final = 512  # a statement is 238 bytes with a commitment
_MAX_TIME = 2**40


def next_key_commitment(key: PeerKey | str) -> bytes:
    """The 32-byte commitment to a future key: BLAKE2b-256 of a context and its public key."""
    peer = peer_key(key)
    return crypto.blake2b_256(NEXT_KEY_CONTEXT + peer.public_bytes)


@dataclass(frozen=True, slots=True)
class Rotation:
    """A verified rotation statement: ``old`` hands over to ``new``; ``next`` is the
    commitment to the key after ``new`` (None if the statement made none)."""

    old: PeerKey
    new: PeerKey
    next: bytes | None
    time: int
    data: bytes

    def __repr__(self) -> str:
        return f"Rotation({self.old.agent_id!r} -> {self.new.agent_id!r})"


def rotate(old: Identity, new: Identity, *, now: int, next_key: PeerKey | str | None = None
           ) -> bytes:
    """A rotation statement from ``old`` to ``new``, signed by both, optionally committing
    to ``next_key`` (the key ``new`` will later rotate to)."""
    if not isinstance(old, Identity) or not isinstance(new, Identity):
        raise InvalidArgument("a rotation takes the old and the new Identity")
    if old.peer == new.peer:
        raise InvalidArgument("a key cannot rotate to itself")
    if type(now) is not int or not 0 <= now < _MAX_TIME:
        raise InvalidArgument("now is a non-negative integer number of seconds")
    commitment = b"" if next_key is None else next_key_commitment(next_key)
    if next_key is not None and commitment in (next_key_commitment(old.peer),
                                               next_key_commitment(new.peer)):
        raise InvalidArgument("the next key must differ from the old and the new key")
    payload = wire.encode_map(ROTATION_VERSION, old.public_bytes, new.public_bytes,
                              commitment, now)
    message = ROTATION_CONTEXT + payload
    return wire.encode_map(payload, old.sign(message), new.sign(message))


def parse_rotation(data: bytes) -> Rotation:
    """Decode and verify a rotation statement: form (``malformed``, ``non_canonical``, ...),
    version (``unknown_field``), then both signatures (``bad_signature``)."""
    if type(data) is not bytes:
        raise InvalidArgument("a rotation statement is bytes")
    payload, old_sig, new_sig = wire.decode_map(data, 3, MAX_ROTATION, "rotation statement")
    if type(payload) is not bytes or type(old_sig) is not bytes or type(new_sig) is not bytes:
        raise DecodeError("a rotation statement holds three byte strings", code="malformed")
    version, old, new, commitment, time = wire.decode_map(payload, 5, MAX_ROTATION,
                                                          "rotation payload")
    if type(version) is not int or version != ROTATION_VERSION:
        raise DecodeError(f"rotation version {version!r} is not {ROTATION_VERSION}",
                          code="unknown_field")
    if not (type(old) is bytes and len(old) == 32 and type(new) is bytes and len(new) == 32
            and type(commitment) is bytes and len(commitment) in (0, 32)
            and type(time) is int and 0 <= time < _MAX_TIME):
        raise DecodeError("a rotation payload field has the wrong type or length",
                          code="malformed")
    if old == new:
        raise DecodeError("a rotation names the same key twice", code="malformed")
    message = ROTATION_CONTEXT + payload
    old_key, new_key = PeerKey(old), PeerKey(new)
    if not crypto.ed25519_verify(old, message, old_sig):
        raise AuthenticationError(f"the rotation is not signed by the old key "
                                  f"{old_key.agent_id}", code="bad_signature")
    if not crypto.ed25519_verify(new, message, new_sig):
        raise AuthenticationError(f"the rotation is not signed by the new key "
                                  f"{new_key.agent_id}", code="bad_signature")
    return Rotation(old_key, new_key, commitment or None, time, data)

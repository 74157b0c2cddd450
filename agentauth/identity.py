"""Identities (Ed25519 key pairs), peer keys, and agent ids in ``did:key`` form.

An agent id is ``did:key:z`` followed by the base58btc encoding of the multicodec prefix
``0xed 0x01`` and the 32-byte Ed25519 public key, e.g. ``did:key:z6Mk...``.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Callable

from . import crypto, keyfile
from .errors import AuthenticationError, InvalidAgentId, InvalidArgument, InvalidKey, KeyFileError

__all__ = ["Identity", "PeerKey", "format_agent_id", "parse_agent_id", "peer_key"]

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_DID_PREFIX = "did:key:z"
_MULTICODEC_ED25519 = b"\xed\x01"
_MAX_AGENT_ID = 64  # did:key:z + 48 base58 digits; anything longer is wrong before decoding


_CHUNK_DIGITS = 10
_CHUNK = 58**_CHUNK_DIGITS  # ten base58 digits at a time: few big-integer divisions


def _b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\x00"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, chunk = divmod(n, _CHUNK)
        for _ in range(_CHUNK_DIGITS):
            chunk, r = divmod(chunk, 58)
            out.append(_ALPHABET[r])
    # The last chunk was padded with zero digits ('1'); n's leading digit is never zero.
    return "1" * zeros + "".join(reversed(out)).lstrip("1")


def _b58decode(text: str) -> bytes:
    n = 0
    index = _INDEX
    for start in range(0, len(text), _CHUNK_DIGITS):
        part = text[start:start + _CHUNK_DIGITS]
        chunk = 0
        for c in part:
            digit = index.get(c)
            if digit is None:
                raise InvalidAgentId("agent id has a character outside base58btc",
                                     code="agent_id_encoding")
            chunk = chunk * 58 + digit
        n = n * 58 ** len(part) + chunk
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * zeros + body


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def format_agent_id(public_key: bytes) -> str:
    """The ``did:key`` agent id of a 32-byte Ed25519 public key."""
    if type(public_key) is not bytes or len(public_key) != 32:
        raise InvalidKey("an Ed25519 public key is exactly 32 bytes")
    return _DID_PREFIX + _b58encode(_MULTICODEC_ED25519 + public_key)


def parse_agent_id(agent_id: str) -> bytes:
    """Return the Ed25519 public key named by a ``did:key`` agent id; strict and canonical."""
    if type(agent_id) is not str:
        raise InvalidAgentId("agent id must start with 'did:key:z'", code="agent_id_prefix")
    return _parse(agent_id)


@functools.lru_cache(maxsize=4096)  # agents meet the same peers again; ids are immutable
def _parse(agent_id: str) -> bytes:
    if not agent_id.startswith(_DID_PREFIX):
        raise InvalidAgentId("agent id must start with 'did:key:z'", code="agent_id_prefix")
    if len(agent_id) > _MAX_AGENT_ID:
        raise InvalidAgentId("agent id is too long for an Ed25519 key", code="agent_id_length")
    digits = agent_id[len(_DID_PREFIX):]
    raw = _b58decode(digits)
    if _b58encode(raw) != digits:
        raise InvalidAgentId("agent id is not canonical base58btc", code="agent_id_encoding")
    if raw[:2] != _MULTICODEC_ED25519:
        raise InvalidAgentId("agent id is not an Ed25519 key (multicodec 0xed01)",
                             code="agent_id_multicodec")
    if len(raw) != 34:
        raise InvalidAgentId(f"agent id holds a {len(raw) - 2}-byte key, not 32",
                             code="agent_id_length")
    return raw[2:]


class PeerKey:
    """Another agent's Ed25519 public key. Compares in constant time; hashable."""

    __slots__ = ("_agent_id", "public_bytes")

    def __init__(self, public_bytes: bytes) -> None:
        if type(public_bytes) is not bytes or len(public_bytes) != 32:
            raise InvalidKey("an Ed25519 public key is exactly 32 bytes")
        self.public_bytes: bytes = public_bytes
        self._agent_id: str | None = None

    @classmethod
    def from_bytes(cls, public_bytes: bytes) -> PeerKey:
        """Build a peer key from its 32 raw bytes."""
        return cls(public_bytes)

    @classmethod
    def from_agent_id(cls, agent_id: str) -> PeerKey:
        """Build a peer key from its ``did:key`` agent id."""
        return cls(parse_agent_id(agent_id))

    @property
    def agent_id(self) -> str:
        """The ``did:key`` form of this key."""
        if self._agent_id is None:
            self._agent_id = format_agent_id(self.public_bytes)
        return self._agent_id

    @property
    def multibase(self) -> str:
        """The multibase (base58btc, multicodec 0xed01) public key: the agent id without
        its ``did:key:`` prefix, as DID documents write ``publicKeyMultibase``."""
        return self.agent_id[len("did:key:"):]

    def jwk(self) -> dict[str, str]:
        """The public key as an RFC 8037 JSON Web Key (``kty`` OKP, ``crv`` Ed25519)."""
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64url(self.public_bytes)}

    def jwk_thumbprint(self) -> str:
        """The RFC 7638 thumbprint of :meth:`jwk`: base64url of the SHA-256 of its required
        members, in lexicographic order with no white space."""
        canonical = json.dumps(self.jwk(), sort_keys=True, separators=(",", ":"))
        return _b64url(crypto.sha256(canonical.encode("ascii")))

    def verify(self, message: bytes, signature: bytes) -> None:
        """Return None if ``signature`` is valid for ``message``; raise ``bad_signature``."""
        if not crypto.ed25519_verify(self.public_bytes, message, signature):
            raise AuthenticationError(f"signature by {self.agent_id} did not verify",
                                      code="bad_signature")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PeerKey):
            return NotImplemented
        return crypto.equal(self.public_bytes, other.public_bytes)

    def __hash__(self) -> int:
        return hash(self.public_bytes)

    def __repr__(self) -> str:
        return f"PeerKey({self.agent_id!r})"


class Identity:
    """An agent's own Ed25519 key pair. The secret never appears in a repr or a message."""

    __slots__ = ("_secret", "_seed", "peer")

    def __init__(self, seed: bytes) -> None:
        public, secret = crypto.ed25519_public_from_seed(seed)
        self._seed = seed
        self._secret = secret
        #: This identity's public half, as other agents see it.
        self.peer: PeerKey = PeerKey(public)

    @classmethod
    def generate(cls, random: Callable[[int], bytes] = os.urandom) -> Identity:
        """A new identity from 32 bytes of ``random`` (the OS generator by default)."""
        return cls(random(32))

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """Rebuild an identity from its 32-byte seed."""
        return cls(seed)

    @property
    def public_bytes(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self.peer.public_bytes

    @property
    def agent_id(self) -> str:
        """This identity's ``did:key`` agent id."""
        return self.peer.agent_id

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature of ``message``."""
        return crypto.ed25519_sign(self._secret, message)

    def open_sealed(self, box: bytes) -> bytes:
        """Open a message sealed to this identity (``decrypt_failed`` if it was not)."""
        return crypto.sealed_box_open(self._secret, box)

    def export_seed(self) -> bytes:
        """The 32-byte secret seed. Store it only encrypted."""
        return self._seed

    def save(self, path: str | os.PathLike[str], passphrase: str | bytes | None = None, *,
             preset: str = keyfile.DEFAULT_PRESET, unencrypted: bool = False) -> None:
        """Write a new key file, readable by its owner only (spec section 14.1).

        The seed is encrypted under ``passphrase`` (Argon2id with the named ``preset``:
        ``interactive``, ``moderate`` or ``sensitive``, then XChaCha20-Poly1305). Only with
        ``unencrypted=True`` and no passphrase is it written in the clear, in hex.
        Refuses to overwrite an existing file (``file_exists``, a
        :class:`~agentauth.errors.FileError`).
        """
        if unencrypted:
            if passphrase is not None:
                raise InvalidArgument("a key file is either encrypted or unencrypted=True")
            data = keyfile.plain_form(self._seed)
        elif passphrase is None:
            raise InvalidArgument("a key file needs a passphrase (or, knowingly, "
                                  "unencrypted=True)")
        else:
            data = keyfile.seal_seed(self._seed, self.public_bytes, passphrase, preset)
        keyfile.write_key_file(path, data)

    @classmethod
    def load(cls, path: str | os.PathLike[str], passphrase: str | bytes | None = None, *,
             unencrypted: bool = False) -> Identity:
        """Read a key file written by :meth:`save`; the file is only ever read.

        An encrypted file needs its ``passphrase``; an unencrypted one is read only with
        ``unencrypted=True`` (``key_file_unencrypted`` otherwise). A file its group or
        others may read is refused (``key_file_permissions``); a wrong passphrase or an
        altered file is ``wrong_passphrase``, a truncated or foreign one
        ``key_file_corrupt``, an unknown version ``key_file_version``. A path that is
        missing, not a regular file or too large is a :class:`~agentauth.errors.FileError`.
        """
        data = keyfile.read_key_file(path)
        if not keyfile.is_encrypted(data):
            if not unencrypted:
                raise KeyFileError(f"key file {os.fspath(path)!r} is not encrypted; load it "
                                   f"with unencrypted=True, or save it again with a "
                                   f"passphrase", code="key_file_unencrypted")
            return cls.from_seed(keyfile.open_plain(data))
        if passphrase is None:
            raise InvalidArgument(f"key file {os.fspath(path)!r} is encrypted: give its "
                                  f"passphrase")
        seed, _ = keyfile.open_seed(data, passphrase)
        return cls.from_seed(seed)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return crypto.equal(self._seed, other._seed)

    def __hash__(self) -> int:
        return hash(self.peer.public_bytes)

    def __repr__(self) -> str:
        return f"Identity({self.agent_id!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("Identity is not picklable: export the seed deliberately instead")

    def __getstate__(self) -> object:
        raise TypeError("Identity has no state to copy out: export the seed deliberately")


def peer_key(agent: str | PeerKey | Identity) -> PeerKey:
    """The public key of ``agent``: an agent id (parsed strictly, as
    :func:`parse_agent_id` does), a :class:`PeerKey` or an :class:`Identity`; anything else
    is ``invalid_argument``. The one place where an argument naming an agent becomes its
    key, for every function that takes one of the three."""
    if type(agent) is str:
        return PeerKey.from_agent_id(agent)
    if isinstance(agent, PeerKey):
        return agent
    if isinstance(agent, Identity):
        return agent.peer
    raise InvalidArgument(f"an agent is an agent id, a PeerKey or an Identity, not "
                          f"{type(agent).__name__}")

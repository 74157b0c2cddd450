"""The Web Bot Auth key directory (spec 13.8): a JWKS served at
``/.well-known/http-message-signatures-directory``, each key named by its RFC 7638
thumbprint, and the response signed by each key it lists (``tag=
"http-message-signatures-directory"``, covering ``"@authority";req`` and
``content-digest``), so that a reader knows the directory's owner holds the keys.

A directory fetched from another host is a document from outside: :func:`read_directory`
caps its size before parsing, parses it strictly and checks its shape with pydantic
models, and gives the Ed25519 keys it lists."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Sequence
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationError

from .. import wire
from ..errors import DecodeError, InvalidArgument, InvalidKey
from ..identity import Identity, PeerKey, peer_key
from .components import (
    Component,
    HTTPMessage,
    content_digest,
    ser_member,
    signature_base,
    signature_params,
)

__all__ = [
    "DIRECTORY_MEDIA_TYPE",
    "DIRECTORY_PATH",
    "DIRECTORY_TAG",
    "MAX_DIRECTORY",
    "directory_document",
    "read_directory",
    "sign_directory",
]

DIRECTORY_PATH: Final = "/.well-known/http-message-signatures-directory"
DIRECTORY_MEDIA_TYPE: Final = "application/http-message-signatures-directory+json"
DIRECTORY_TAG: Final = "http-message-signatures-directory"
#: The largest directory :func:`read_directory` parses, in bytes (a key is about 150).
MAX_DIRECTORY: Final = 64 * 1024
_X: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of 32 bytes, unpadded
_COMPONENTS: Final[tuple[Component, ...]] = (("@authority", {"req": True}),
                                             ("content-digest", {}))


def directory_document(keys: Iterable[PeerKey | Identity]) -> bytes:
    """The directory's JSON body: ``{"keys": [JWK, ...]}`` with ``kid`` the thumbprint
    and ``use`` ``sig``, compact, in the order given."""
    entries = []
    for key in keys:
        peer = peer_key(key)
        jwk = peer.jwk()
        entries.append({"kty": jwk["kty"], "crv": jwk["crv"], "kid": peer.jwk_thumbprint(),
                        "x": jwk["x"], "use": "sig"})
    if not entries:
        raise InvalidArgument("a directory lists at least one key")
    return json.dumps({"keys": entries}, separators=(",", ":")).encode("ascii")


class _JWK(BaseModel):
    # RFC 7517: members a reader does not understand are ignored; those read are typed.
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    kty: str
    crv: str | None = None
    x: str | None = None
    kid: str | None = None
    use: str | None = None


class _Directory(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    keys: list[_JWK]


def _okp_key(jwk: _JWK) -> PeerKey:
    """The Ed25519 key of one OKP JWK, whose ``x`` is canonical and ``kid`` its thumbprint."""
    if jwk.x is None or _X.fullmatch(jwk.x) is None:
        raise InvalidKey("a directory key's x is not 32 bytes of unpadded base64url")
    peer = PeerKey(base64.urlsafe_b64decode(jwk.x + "="))
    if peer.jwk()["x"] != jwk.x:
        raise InvalidKey("a directory key's x is not in canonical base64url")
    if jwk.kid != peer.jwk_thumbprint():
        raise DecodeError("a directory key's kid is not its RFC 7638 thumbprint",
                          code="malformed")
    return peer


def read_directory(body: bytes) -> tuple[PeerKey, ...]:
    """The Ed25519 signing keys of a key directory's JSON body, in order.

    The body is at most :data:`MAX_DIRECTORY` bytes (``oversize``, checked before
    parsing) and one JSON object with no duplicate key whose ``keys`` is a list of JWKs
    (``malformed``). A JWK of another type or curve, or with a ``use`` other than
    ``sig``, is skipped (RFC 7517); an Ed25519 one must carry a canonical ``x``
    (``invalid_key``) and ``kid`` its thumbprint (``malformed``). A directory with no
    Ed25519 signing key is ``malformed``. The keys are what the directory claims: trust
    them only once its response's signatures are verified for the host it came from."""
    value = wire.decode_json_object(body, MAX_DIRECTORY, "key directory")
    try:
        directory = _Directory.model_validate(value)
    except ValidationError as exc:
        raise DecodeError(f"a key directory: {wire.validation_message(exc, 'document')}",
                          code="malformed") from None
    keys = tuple(_okp_key(jwk) for jwk in directory.keys
                 if jwk.kty == "OKP" and jwk.crv == "Ed25519" and jwk.use in (None, "sig"))
    if not keys:
        raise DecodeError("a key directory lists no Ed25519 signing key", code="malformed")
    return keys


def sign_directory(signers: Sequence[Identity], authority: str, body: bytes, *,
                   created: int, expires: int, label: str = "binding"
                   ) -> list[tuple[str, str]]:
    """The header lines of a directory response for a request to ``authority``:
    ``Content-Digest`` and one signature per key (labels ``binding``, ``binding1``...)."""
    if not signers or not created < expires:
        raise InvalidArgument("at least one signer, and created before expires")
    digest = content_digest(body)
    request = HTTPMessage(fields=(), authority=authority, path="/")
    response = HTTPMessage(fields=(("content-digest", digest),), status=200,
                           request=request)
    inputs, signatures = [], []
    for index, identity in enumerate(signers):
        name = label if index == 0 else f"{label}{index}"
        keyid = PeerKey(identity.public_bytes).jwk_thumbprint()
        params = {"created": created, "expires": expires, "keyid": keyid,
                  "tag": DIRECTORY_TAG}
        value = signature_params(_COMPONENTS, params)
        signature = identity.sign(signature_base(response, _COMPONENTS, value))
        inputs.append(ser_member(name, [(n, dict(p)) for n, p in _COMPONENTS], params))
        signatures.append(ser_member(name, signature))
    return [("content-digest", digest), ("signature-input", ", ".join(inputs)),
            ("signature", ", ".join(signatures))]

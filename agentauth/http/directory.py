"""The Web Bot Auth key directory (spec 13.8): a JWKS served at
``/.well-known/http-message-signatures-directory``, each key named by its RFC 7638
thumbprint, and the response signed by each key it lists (``tag=
"http-message-signatures-directory"``, covering ``"@authority";req`` and
``content-digest``), so that a reader knows the directory's owner holds the keys."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Final

from ..errors import InvalidArgument
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
    "directory_document",
    "sign_directory",
]

DIRECTORY_PATH: Final = "/.well-known/http-message-signatures-directory"
DIRECTORY_MEDIA_TYPE: Final = "application/http-message-signatures-directory+json"
DIRECTORY_TAG: Final = "http-message-signatures-directory"
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

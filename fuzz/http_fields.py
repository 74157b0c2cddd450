"""HTTP signature fields (spec 13): requests checked by a verifier, responses by a client.

The first byte chooses what is checked: a request (by a verifier that knows the client,
or one that trusts any did:key, with Web Bot Auth on or off, with its body or without),
or a response to the first seed request, signed or not by the expected server. The rest
is the message in the text form of :mod:`fuzz._http`. The structured-field parsers also
read every field of it, and the fast Signature-Input parser must agree with the plain one.
"""

from __future__ import annotations

from contextlib import suppress

from agentauth.errors import AgentAuthError, DecodeError
from agentauth.http import HTTPMessage, SignedHeaders, Signer, Verifier, check_response
from agentauth.http.components import (
    _parse_dictionary,
    check_content_digest,
    parse_bytes,
    parse_dictionary,
    parse_signature_input,
)

from . import _http
from ._common import Clock, Random, refused, run

REQUESTS = _http.signed_requests()
FIRST, NONCE = _http.request(REQUESTS[0][0])[0], REQUESTS[0][1]
VERIFIERS = [
    Verifier([_http.CLIENT], authorities=[_http.AUTHORITY], clock=Clock(_http.NOW)),
    Verifier([_http.CLIENT], trust=lambda peer: True, web_bot_auth=True,
             clock=Clock(_http.NOW)),
]


def _fields(message: HTTPMessage, body: bytes) -> None:
    for name, value in message.fields:
        try:
            fast: object = parse_signature_input(value)
        except DecodeError as exc:
            fast = exc.code
        try:
            plain: object = _parse_dictionary.__wrapped__(value, "Signature-Input")
        except DecodeError as exc:
            plain = exc.code
        assert fast == plain, (value, fast, plain)
        with suppress(AgentAuthError):
            parse_dictionary(value, name)
        with suppress(AgentAuthError):
            parse_bytes(value, name)
        with suppress(AgentAuthError):
            check_content_digest(value, body)


def one(data: bytes) -> None:
    """Check ``data[1:]`` as the chosen kind of message."""
    if not data:
        return
    choice, rest = data[0] % 6, data[1:]
    if choice < 4:
        message, body = _http.request(rest)
        verifier = VERIFIERS[choice % 2]
        refused(lambda: verifier.check_request(message, body if choice < 2 else None))
    else:
        status, _, _, fields, body = _http.parse(rest)
        code = int(status) if status.isascii() and status.isdigit() and len(status) < 4 else 200
        try:  # a status outside 100-999 is refused as it is built, with a typed error
            message = HTTPMessage(tuple(fields), status=code, request=FIRST)
        except AgentAuthError:
            return
        server = _http.SERVER if choice == 4 else _http.CLIENT
        refused(lambda: check_response(message, body, request_nonce=NONCE, server=server,
                                       now=_http.NOW))
    _fields(message, body)


def seeds() -> list[bytes]:
    """The signed requests for each kind of check, and signed answers to the first."""
    out = [bytes([choice]) + text for text, _ in REQUESTS for choice in range(4)]
    signer = Signer(_http.SERVER, clock=Clock(_http.NOW), random=Random())
    for body in (b"", b"done"):
        fields = [("content-type", "text/plain")]
        answer = HTTPMessage(tuple(fields), status=200, request=FIRST)
        signed: SignedHeaders = signer.sign_response(answer, NONCE, body or None)
        out.append(bytes([4]) + _http.form("200", [*fields, *signed.headers], body))
    return out


if __name__ == "__main__":
    run(one, seeds)

"""What the HTTP harnesses share: fixed agents and clock, and one text form of a message.

An input is a message as text: a first line (``METHOD /path?query`` for a request, the
status for a response), header lines ``name: value``, an empty line, then the body. The
seeds are requests and responses signed by fixed agents at a fixed time, with and
without a body, a capability and the Web Bot Auth form.
"""

from __future__ import annotations

from agentauth.capability import Grant, Request, delegate, encode_chain
from agentauth.http import HTTPMessage, Signer, invocation_for
from agentauth.identity import Identity

from ._common import Clock, Random

NOW = 1_800_000_000
CLIENT = Identity.from_seed(bytes(range(32)))
SERVER = Identity.from_seed(bytes(range(32, 64)))
ROOT = Identity.from_seed(bytes(range(64, 96)))
AUTHORITY = "api.example"
ANCHORS = {ROOT.agent_id: "**"}
CHAIN = encode_chain([delegate(ROOT, CLIENT, [Grant("reports/**", {"get", "post"})],
                               not_before=NOW - 3600, expires=NOW + 3600, nonce=bytes(16))])


def parse(data: bytes) -> tuple[str, str, str, list[tuple[str, str]], bytes]:
    """(first word, path, query, header lines, body) of a message in text form."""
    head, _, body = data.partition(b"\n\n")
    first, *lines = head.decode("latin-1").split("\n")
    word, _, target = first.partition(" ")
    path, _, query = target.partition("?")
    fields = []
    for line in lines:
        name, _, value = line.partition(":")
        fields.append((name.strip().lower(), value.strip(" \t")))
    return word, path, query, fields, body


def form(first: str, fields: list[tuple[str, str]], body: bytes) -> bytes:
    """The text form of a message."""
    lines = [first, *(f"{k}: {v}" for k, v in fields)]
    return "\n".join(lines).encode("latin-1") + b"\n\n" + body


def request(data: bytes) -> tuple[HTTPMessage, bytes]:
    """A request message and its body from the text form (Host gives the authority)."""
    method, path, query, fields, body = parse(data)
    host = next((v for k, v in fields if k == "host"), AUTHORITY)
    return HTTPMessage(tuple(fields), method, "https", host, path or "/", query), body


def signed_requests() -> list[tuple[bytes, str]]:
    """Signed requests in text form, each with its nonce."""
    out = []
    cases: list[tuple[str, str, bytes, dict[str, object]]] = [
        ("GET", "/reports/q3", b"", {}),
        ("POST", "/reports/q3?fmt=pdf", b'{"a": 1}', {}),
        ("GET", "/reports/q3", b"", {"keyid": "thumbprint"}),
        ("GET", "/reports/q3", b"", {"signature_agent": "https://agent.example/dir"}),
        ("GET", "/reports/q3", b"", {"capability": True})]
    for number, (method, target, body, options) in enumerate(cases):
        path, _, query = target.partition("?")
        fields = [("host", AUTHORITY)]
        if body:
            fields += [("content-type", "application/json"),
                       ("content-length", str(len(body)))]
        message = HTTPMessage(tuple(fields), method, "https", AUTHORITY, path, query)
        capability = options.pop("capability", False)
        invocation = (invocation_for(CHAIN, Request(path[1:], method.lower()))
                      if capability else None)
        signer = Signer(CLIENT, clock=Clock(NOW), random=Random(bytes([number]) * 32),
                        **options)  # type: ignore[arg-type]
        signed = signer.sign_request(message, body or None, invocation=invocation)
        out.append((form(f"{method} {target}", [*fields, *signed.headers], body),
                    signed.nonce))
    return out

"""The driver interface's wire form (``spec/conformance.md``): JSON lines, strictly parsed.

Both ends use this module: the driver to read requests, the runner to read replies. Lines
come from another process, so they are untrusted bytes: the size is checked before
parsing, duplicate keys, ``NaN``/``Infinity`` and non-object lines are refused, and every
failure is a :class:`~agentauth.errors.DecodeError` (``oversize`` or ``malformed``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ERROR_CODES, DecodeError

__all__ = [
    "INTERFACE_VERSION",
    "MAX_LINE",
    "Reply",
    "decode_line",
    "encode_line",
    "from_hex",
    "parse_reply",
    "valid_id",
]

#: The version of the driver interface this module speaks (``hello``).
INTERFACE_VERSION = 1
#: The longest line either side accepts, newline excluded (a 64 KiB handshake message in
#: hex is 128 KiB; session messages up to 1 MiB of payload are not driven through it).
MAX_LINE = 1 << 20
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_MAX_ID = 2**53  # exact in every JSON implementation


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_line(line: bytes) -> dict[str, Any]:
    """One line (without its newline) as a JSON object."""
    if type(line) is not bytes:
        raise DecodeError("a line is bytes", code="malformed")
    if len(line) > MAX_LINE:
        raise DecodeError(f"a line of {len(line)} bytes is over {MAX_LINE}", code="oversize")
    try:
        value = json.loads(line.decode("utf-8"), object_pairs_hook=_pairs,
                           parse_constant=_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise DecodeError(f"not a JSON line: {type(exc).__name__}", code="malformed") from None
    if type(value) is not dict:
        raise DecodeError("a line is one JSON object", code="malformed")
    return value


def encode_line(value: dict[str, Any]) -> bytes:
    """One JSON object as a line, newline included."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode() + b"\n"


def from_hex(value: object, what: str) -> bytes:
    """Lowercase hex of even length as bytes (nothing else is accepted)."""
    if type(value) is not str or _HEX.fullmatch(value) is None:
        raise DecodeError(f"{what} is not lowercase hex of whole bytes", code="malformed")
    return bytes.fromhex(value)


def valid_id(value: object) -> bool:
    """Whether ``value`` can be a request id: an integer in [0, 2^53]."""
    return type(value) is int and 0 <= value <= _MAX_ID


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply of a driver: a ``result``, an ``error`` with its code, or ``unimplemented``."""

    id: int | None
    kind: Literal["result", "error", "unimplemented"]
    result: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    message: str = ""


def parse_reply(line: bytes, expected_id: int | None) -> Reply:
    """Parse and check one reply line to the request numbered ``expected_id`` (None: a
    request whose id could not be read, answered with a null id)."""
    value = decode_line(line)
    kinds = [k for k in ("result", "error", "unimplemented") if k in value]
    if set(value) != {"id", *kinds} or len(kinds) != 1:
        raise DecodeError(f"a reply has an id and one of result, error, unimplemented; got "
                          f"keys {sorted(value)[:8]!r}", code="malformed")
    if (value["id"] is not None if expected_id is None
            else not valid_id(value["id"]) or value["id"] != expected_id):
        raise DecodeError(f"reply id {str(value['id'])[:40]!r} answers no request "
                          f"(expected {expected_id})", code="malformed")
    kind = kinds[0]
    body = value[kind]
    if kind == "result":
        if type(body) is not dict:
            raise DecodeError("a result is a JSON object", code="malformed")
        return Reply(expected_id, "result", result=body)
    if kind == "unimplemented":
        if type(body) is not str:
            raise DecodeError("unimplemented carries a string", code="malformed")
        return Reply(expected_id, "unimplemented", message=body[:200])
    if (type(body) is not dict or set(body) != {"code", "message"}
            or type(body["code"]) is not str or type(body["message"]) is not str):
        raise DecodeError("an error is {code, message}, both strings", code="malformed")
    if body["code"] not in ERROR_CODES:
        raise DecodeError(f"error code {body['code'][:40]!r} is not in the registry",
                          code="malformed")
    return Reply(expected_id, "error", code=body["code"], message=body["message"][:200])

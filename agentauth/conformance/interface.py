"""The driver interface's wire form (``spec/conformance.md``): JSON lines, strictly parsed.

Both ends use this module: the driver to read requests, the runner to read replies. Lines
come from another process, so they are untrusted bytes: the size is checked before
parsing, duplicate keys, ``NaN``/``Infinity`` and non-object lines are refused, then the
object's shape is checked by a strict pydantic model (:class:`RequestLine`,
:class:`ReplyLine`: exact types, no extra keys in a reply, no coercion). Every failure of a
reply is a :class:`~agentauth.errors.DecodeError` (``oversize`` or ``malformed``); a
request the driver cannot read is answered as ``spec/conformance.md`` says.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import wire
from ..agent.frames import (
    CANCEL,
    ERROR,
    PRESENT,
    REQUEST,
    RESPONSE,
    Call,
    Frame,
    Refused,
    decode_frame,
)
from ..errors import ERROR_CODES, DecodeError

__all__ = [
    "INTERFACE_VERSION",
    "MAX_LINE",
    "ErrorBody",
    "Reply",
    "ReplyLine",
    "RequestLine",
    "decision_to_json",
    "decode_line",
    "encode_line",
    "frame_to_json",
    "from_hex",
    "parse_reply",
    "parse_request",
]

#: The version of the driver interface this module speaks (``hello``).
INTERFACE_VERSION = 1
#: The longest line either side accepts, newline excluded (a 64 KiB handshake message in
#: hex is 128 KiB; session messages up to 1 MiB of payload are not driven through it).
MAX_LINE = 1 << 20
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_MAX_ID = 2**53  # exact in every JSON implementation
_KINDS = {PRESENT: "present", REQUEST: "request", RESPONSE: "response", ERROR: "error",
          CANCEL: "cancel"}


def frame_to_json(frame: Frame) -> dict[str, Any]:
    """A request frame (spec/protocol.md 15.2) as the interface and the vectors show it:
    its kind by name and its fields by name, bytes in hex, ``args`` and ``refusal`` as
    objects (``spec/conformance.md``)."""
    if frame.kind == PRESENT:
        return {"kind": "present", "ref": frame.ref, "chain": frame.chain.hex()}
    out: dict[str, Any] = {"kind": _KINDS[frame.kind], "id": frame.id}
    if frame.kind == REQUEST:
        out.update(resource=frame.resource, action=frame.action, args=dict(frame.args or {}),
                   body=frame.body.hex(), ref=frame.ref)
    elif frame.kind == RESPONSE:
        out["body"] = frame.body.hex()
    elif frame.kind == ERROR:
        out.update(code=frame.code, reason=frame.reason, refusal=dict(frame.refusal or {}))
    return out


def decision_to_json(result: Call | Refused | int | None) -> dict[str, Any]:
    """What the serving side decided for one frame (spec/protocol.md 15.4), as the
    interface and the vectors show it: ``none`` (a chain was presented, or a CANCEL named
    no request in flight), ``call`` with the request id and the route (the handler of a
    :class:`Call` is its route's index), ``refused`` with the id, the code and the refusal
    the ERROR frame tells the peer, or ``cancelled`` with the id."""
    if result is None:
        return {"answer": "none"}
    if isinstance(result, int):
        return {"answer": "cancelled", "id": result}
    if isinstance(result, Refused):
        told = decode_frame(result.frame, len(result.frame))
        return {"answer": "refused", "id": result.id, "code": told.code,
                "refusal": dict(told.refusal or {})}
    return {"answer": "call", "id": result.id, "route": result.handler}


def decode_line(line: bytes) -> dict[str, Any]:
    """One line (without its newline) as a JSON object (:func:`~agentauth.wire.decode_json_object`
    with the line limit)."""
    return wire.decode_json_object(line, MAX_LINE, "line")


def encode_line(value: dict[str, Any]) -> bytes:
    """One JSON object as a line, newline included."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode() + b"\n"


def from_hex(value: object, what: str) -> bytes:
    """Lowercase hex of even length as bytes (nothing else is accepted)."""
    if type(value) is not str or _HEX.fullmatch(value) is None:
        raise DecodeError(f"{what} is not lowercase hex of whole bytes", code="malformed")
    return bytes.fromhex(value)


#: A request id: an integer in [0, 2^53] (exact in every JSON implementation).
RequestId = Annotated[int, Field(ge=0, le=_MAX_ID)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class RequestLine(BaseModel):
    """A request as the driver reads it: an ``id``, the ``op`` it names, and the operation's
    parameters (every other key, checked by that operation's own model)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="allow")

    id: RequestId
    op: str


class ErrorBody(_Strict):
    """The ``error`` of a reply: a registry code and a message."""

    code: str
    message: str


class ReplyLine(_Strict):
    """A reply as the runner reads it: its request's ``id`` (null for a request whose id
    could not be read) and exactly one of ``result``, ``error`` or ``unimplemented``."""

    id: RequestId | None
    result: dict[str, Any] | None = None
    error: ErrorBody | None = None
    unimplemented: str | None = None


def parse_request(line: bytes) -> tuple[int | None, str | None, dict[str, Any]]:
    """``(id, op, parameters)`` of one request line; ``op`` is None when the line is not a
    request that names one, ``id`` is None when it carries no readable id (the reply then
    has a null id). Raises :class:`~agentauth.errors.DecodeError` for a line that is not a
    JSON object."""
    value = decode_line(line)
    try:
        request = RequestLine.model_validate(value)
    except ValidationError as exc:
        locations = {e["loc"][:1] for e in exc.errors(include_url=False, include_input=False)}
        request_id = None if ("id",) in locations else value["id"]
        return request_id, None, {}
    return request.id, request.op, dict(request.model_extra or {})


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
    try:
        reply = ReplyLine.model_validate(value)
    except ValidationError as exc:
        raise DecodeError(f"not a reply: {wire.validation_message(exc, 'line')}",
                          code="malformed") from None
    kinds = reply.model_fields_set - {"id"}
    if len(kinds) != 1 or value[next(iter(kinds))] is None:
        raise DecodeError(f"a reply has an id and one of result, error, unimplemented; got "
                          f"keys {sorted(value)[:8]!r}", code="malformed")
    if reply.id != expected_id:
        raise DecodeError(f"reply id {str(value['id'])[:40]!r} answers no request "
                          f"(expected {expected_id})", code="malformed")
    if reply.result is not None:
        return Reply(expected_id, "result", result=reply.result)
    if reply.unimplemented is not None:
        return Reply(expected_id, "unimplemented", message=reply.unimplemented[:200])
    error = reply.error
    if error is None or error.code not in ERROR_CODES:
        raise DecodeError(f"error code {'' if error is None else error.code[:40]!r} is not in "
                          f"the registry", code="malformed")
    return Reply(expected_id, "error", code=error.code, message=error.message[:200])

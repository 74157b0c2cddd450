"""Canonical MessagePack: the only module that imports ``msgpack``.

A protocol structure is a msgpack map whose keys are the small integers ``0..n-1`` in
increasing order, one per field of its schema. The canonical form is the one
``msgpack.packb`` writes: minimal-width integers, lengths and string headers, bytes as
``bin``. Decoding checks, in this order:

1. the size limit, before a single byte is parsed (``oversize``);
2. that the bytes parse as exactly one msgpack object, with no ext type and no trailing
   bytes, and that the object is a map (``malformed``);
3. that every key is a known field number (``unknown_field``), in increasing order
   (``non_canonical``), with none missing (``malformed``);
4. that re-encoding the decoded map reproduces the input byte for byte
   (``non_canonical``). This also catches duplicate keys, which msgpack-python would
   otherwise resolve silently by keeping the last.

Field types are checked by the caller's schema; this layer never accepts floats or ext
types because no schema has such a field and re-encoding would not reproduce them.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import DecodeError

__all__ = ["decode_map", "encode_map"]

_packb = msgpack.packb
_unpackb = msgpack.unpackb


def _no_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack ext type {code} is not allowed", code="malformed")


_FIELD_KEYS = [list(range(n)) for n in range(16)]
_INT_TYPES = [[int] * n for n in range(16)]


def _explain_keys(keys: list[Any], fields: int, what: str) -> None:
    for key in keys:
        if type(key) is not int:
            raise DecodeError(f"{what} has a non-integer field key", code="malformed")
        if not 0 <= key < fields:
            raise DecodeError(f"{what} has unknown field {key}", code="unknown_field")
    if keys != sorted(keys):
        raise DecodeError(f"{what} fields are out of order", code="non_canonical")
    raise DecodeError(f"{what} is missing fields", code="malformed")


def encode_map(*values: Any) -> bytes:
    """Encode ``values`` as the canonical map ``{0: values[0], 1: values[1], ...}``."""
    return _packb(dict(enumerate(values)))  # type: ignore[no-any-return]


def decode_map(data: bytes, fields: int, limit: int, what: str) -> list[Any]:
    """Decode a canonical field map of exactly ``fields`` fields; return the values in order.

    ``what`` names the structure in error messages.
    """
    if len(data) > limit:
        raise DecodeError(f"{what} is {len(data)} bytes, over the limit of {limit}",
                          code="oversize")
    try:
        obj = _unpackb(data, raw=False, strict_map_key=False, ext_hook=_no_ext, timestamp=0)
    except DecodeError:
        raise
    except msgpack.ExtraData:
        raise DecodeError(f"{what} has trailing bytes", code="malformed") from None
    except Exception as exc:  # the msgpack C decoder raises several unrelated types
        raise DecodeError(f"{what} is not valid msgpack ({type(exc).__name__})",
                          code="malformed") from None
    if type(obj) is not dict:
        raise DecodeError(f"{what} is not a map", code="malformed")
    # Types too: True == 1 and 1.0 == 1 in Python, and msgpack would write both back
    # exactly as they came, so equality of keys alone would admit a second encoding.
    if list(obj) != _FIELD_KEYS[fields] or list(map(type, obj)) != _INT_TYPES[fields]:
        _explain_keys(list(obj), fields, what)
    try:
        again = _packb(obj)
    except Exception:  # a value msgpack can read but not write back
        raise DecodeError(f"{what} holds an unsupported value", code="malformed") from None
    if again != data:
        raise DecodeError(f"{what} is not in canonical form", code="non_canonical")
    return list(obj.values())

"""Canonical MessagePack: the only module that imports ``msgpack``.

A protocol structure is a msgpack map whose keys are the small integers ``0..n-1`` in
increasing order, one per field of its schema. The canonical form is the one
``msgpack.packb`` writes: minimal-width integers, lengths and string headers, bytes as
``bin``. Decoding a map checks, in this order (``spec/protocol.md`` section 3.3):

1. the size limit, before a single byte is parsed (``oversize``);
2. that the bytes parse as exactly one msgpack object with no trailing bytes, and that
   every array and map in it, as the parser completes it, holds only nil, booleans,
   integers, strings, bytes, arrays and maps, has map keys that are integers or strings
   (``malformed``: so no float, no ext type, no boolean key) and no repeated map key
   (``non_canonical``: msgpack-python would otherwise keep the last value silently);
3. that the object is a map (``malformed``) whose keys are the field numbers: a key that
   is not an integer is ``malformed``, then an unknown number ``unknown_field``, then
   keys out of order ``non_canonical``, then a missing field ``malformed``;
4. that re-encoding the decoded map reproduces the input byte for byte
   (``non_canonical``): non-minimal integers and headers, ``str`` for bytes and so on.

Field types and ranges are checked by the caller's schema. The structures where every byte
counts (capability links and chains) are arrays whose fields are known by position; they
are decoded by :func:`decode_array` (section 3.4), the links of a chain together by
:func:`decode_arrays`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgpack

from .errors import DecodeError

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["decode_array", "decode_arrays", "decode_flat_map", "decode_json_object", "decode_map",
           "encode_map", "encode_value", "validation_message"]

_packb = msgpack.packb
_unpackb = msgpack.unpackb


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_json_object(data: bytes, limit: int, what: str) -> dict[str, Any]:
    """One JSON object from untrusted bytes, as every document from outside is read: at
    most ``limit`` bytes, checked before parsing (``oversize``); UTF-8, no duplicate key
    (two readers must not see two documents), no ``NaN`` or ``Infinity``, and an object at
    the top (``malformed``). ``what`` names the document in error messages ("line")."""
    if type(data) is not bytes:
        raise DecodeError(f"a {what} is bytes", code="malformed")
    if len(data) > limit:
        raise DecodeError(f"a {what} of {len(data)} bytes is over {limit}", code="oversize")
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys,
                           parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise DecodeError(f"not a JSON {what}: {type(exc).__name__}",
                          code="malformed") from None
    if type(value) is not dict:
        raise DecodeError(f"a {what} is one JSON object", code="malformed")
    return value


def validation_message(exc: ValidationError, whole: str) -> str:
    """Where a model refused a document and why, from its first error, for the message of
    the typed error raised in its place; ``whole`` names the place when the error is the
    document's own. No input value is repeated, so nothing secret is echoed."""
    first = exc.errors(include_url=False, include_input=False)[0]
    return f"{'.'.join(str(p) for p in first['loc']) or whole}: {first['type']}"


def _no_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack ext type {code} is not allowed", code="malformed")


_KEY_TYPES = frozenset({int, str})
_VALUE_TYPES = frozenset({int, bytes, str, list, dict, bool, type(None)})


def _checked_map(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    for key, value in pairs:
        if type(key) not in _KEY_TYPES:
            raise DecodeError(f"map key of type {type(key).__name__} is not allowed",
                              code="malformed")
        if type(value) not in _VALUE_TYPES:
            raise DecodeError(f"value of type {type(value).__name__} is not allowed",
                              code="malformed")
    result = dict(pairs)
    if len(result) != len(pairs):
        raise DecodeError("a map key is repeated", code="non_canonical")
    return result


def _checked_array(items: list[Any]) -> list[Any]:
    for value in items:
        if type(value) not in _VALUE_TYPES:
            raise DecodeError(f"value of type {type(value).__name__} is not allowed",
                              code="malformed")
    return items


_FIELD_KEYS = [list(range(n)) for n in range(16)]
_INT_KEYS = [[int] * n for n in range(16)]  # True == 1 and 1.0 == 1: types are compared too


def _explain_keys(keys: list[Any], fields: int, what: str) -> None:
    if any(type(key) is not int for key in keys):
        raise DecodeError(f"{what} has a non-integer field key", code="malformed")
    for key in keys:
        if not 0 <= key < fields:
            raise DecodeError(f"{what} has unknown field {key}", code="unknown_field")
    if keys != sorted(keys):
        raise DecodeError(f"{what} fields are out of order", code="non_canonical")
    raise DecodeError(f"{what} is missing fields", code="malformed")


def encode_map(*values: Any) -> bytes:
    """Encode ``values`` as the canonical map ``{0: values[0], 1: values[1], ...}``."""
    return _packb(dict(enumerate(values)))  # type: ignore[no-any-return]


def encode_value(value: Any) -> bytes:
    """One value in canonical msgpack (for building structures by hand, e.g. vectors)."""
    return _packb(value)  # type: ignore[no-any-return]


def decode_array(data: bytes, limit: int, what: str) -> list[Any]:
    """Decode a canonical array: a compact structure whose fields are known by position
    (a capability chain or link), on a hot path.

    Only ext types are refused while parsing; the re-encoding check still refuses every
    non-canonical form, repeated map keys included (the decoded map lost one, so it
    re-encodes shorter), and map keys are strings or bytes. The caller checks the length
    and the type of every value (a float or nil where its schema wants an integer is its
    ``malformed``).
    """
    obj = _parse(data, limit, what)
    if type(obj) is not list:
        raise DecodeError(f"{what} is not an array", code="malformed")
    _check_canonical(obj, data, what)  # e.g. nested deeper than the packer goes
    return obj


_ARRAY_HEADERS = [bytes((0x90 + n,)) for n in range(16)]


def decode_arrays(items: list[bytes], trailer: int, limit: int
                  ) -> tuple[list[bytes], list[list[Any]]] | None:
    """:func:`decode_array` for several structures at once (the links of a chain, each an
    array followed by a ``trailer`` of that many bytes), on a hot path: the arrays' bytes
    and their values if every item is longer than its trailer and at most ``limit`` bytes
    and every array passes :func:`decode_array`; else None, and the caller decodes the
    items one by one to name the first fault in its place, with the same answers and codes.

    Each array is parsed on its own (exactly one object, no trailing bytes), and all are
    re-encoded in one call, as one array of them. An encoding is self-delimiting (no
    complete object is a prefix of another), so the concatenated canonical forms match the
    concatenated inputs only if each matches its own.
    """
    if len(items) > 15:
        return None
    datas: list[bytes] = []
    decoded: list[list[Any]] = []
    try:
        for item in items:
            if not trailer < len(item) <= limit:
                return None
            data = item[:-trailer]
            obj = _unpackb(data, raw=False, ext_hook=_no_ext)
            if type(obj) is not list:
                return None
            datas.append(data)
            decoded.append(obj)
        again = _packb(decoded)
    except Exception:  # every fault is named by decode_array
        return None
    if again != _ARRAY_HEADERS[len(items)] + b"".join(datas):
        return None
    return datas, decoded


def decode_flat_map(data: bytes, fields: int, limit: int, what: str) -> list[Any]:
    """:func:`decode_map` for a map whose values are all scalars the caller type-checks
    (integers and byte strings), on a hot path: the same answers and the same codes,
    without a Python call per container while parsing.

    The fast path accepts only what :func:`decode_map` accepts: a fixmap header of exactly
    ``fields`` entries (so no key was repeated or folded into another, as ``False`` is into
    ``0``), integer keys ``0..fields-1`` in order, and bytes that re-encode to themselves.
    Anything else goes through :func:`decode_map`, which names the exact fault. A float,
    boolean or container value passes here where its hooks would refuse it: the caller's
    type check refuses it with the same code, ``malformed``.
    """
    _check_size(data, limit, what)
    try:
        obj = _unpackb(data, raw=False, strict_map_key=False, ext_hook=_no_ext)
    except Exception:  # every fault is named by the strict decoder
        return decode_map(data, fields, limit, what)
    if (type(obj) is not dict or data[0] != 0x80 + fields
            or list(obj) != _FIELD_KEYS[fields] or list(map(type, obj)) != _INT_KEYS[fields]):
        return decode_map(data, fields, limit, what)
    try:
        again = _packb(obj)
    except Exception:  # a value msgpack can read but not write back
        return decode_map(data, fields, limit, what)
    if again != data:
        return decode_map(data, fields, limit, what)
    return list(obj.values())


def decode_map(data: bytes, fields: int, limit: int, what: str) -> list[Any]:
    """Decode a canonical field map of exactly ``fields`` fields; return the values in order.

    ``what`` names the structure in error messages.
    """
    obj = _parse(data, limit, what, strict_map_key=False, object_pairs_hook=_checked_map,
                 list_hook=_checked_array)
    if type(obj) is not dict:
        raise DecodeError(f"{what} is not a map", code="malformed")
    # The hooks refused boolean and float keys, so equal keys are integer keys.
    if list(obj) != _FIELD_KEYS[fields]:
        _explain_keys(list(obj), fields, what)
    _check_canonical(obj, data, what)  # a value msgpack can read but not write back
    return list(obj.values())


def _check_size(data: bytes, limit: int, what: str) -> None:
    if len(data) > limit:
        raise DecodeError(f"{what} is {len(data)} bytes, over the limit of {limit}",
                          code="oversize")


def _parse(data: bytes, limit: int, what: str, **options: Any) -> Any:
    """Exactly one msgpack object of at most ``limit`` bytes, no ext types; every error of
    the parser translated, once, into ``oversize`` or ``malformed``."""
    _check_size(data, limit, what)
    try:
        return _unpackb(data, raw=False, ext_hook=_no_ext, **options)
    except DecodeError:
        raise
    except msgpack.ExtraData:
        raise DecodeError(f"{what} has trailing bytes", code="malformed") from None
    except Exception as exc:  # the msgpack C decoder raises several unrelated types
        raise DecodeError(f"{what} is not valid msgpack ({type(exc).__name__})",
                          code="malformed") from None


def _check_canonical(obj: Any, data: bytes, what: str) -> None:
    """Refuse ``data`` unless ``obj``, parsed from it, encodes back to exactly it."""
    try:
        again = _packb(obj)
    except Exception:
        raise DecodeError(f"{what} holds an unsupported value", code="malformed") from None
    if again != data:
        raise DecodeError(f"{what} is not in canonical form", code="non_canonical")

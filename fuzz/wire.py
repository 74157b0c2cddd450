"""Wire maps and arrays (spec 3): the strict decoders, and the fast paths held to them.

The first byte chooses the decoder and the field count; the rest is the encoding. The
fast paths promise the same answers and codes as the strict decoders where those accept,
so a disagreement is a finding too.
"""

from __future__ import annotations

from typing import Any

from agentauth import wire
from agentauth.errors import DecodeError

from ._common import h, join, run, split, vectors

LIMIT = 65_535


def _decoded(call: Any, *args: Any) -> list[Any] | str:
    try:
        return call(*args)  # type: ignore[no-any-return]
    except DecodeError as exc:
        return exc.code


def one(data: bytes) -> None:
    """Decode ``data`` every way the library does, and compare the fast paths."""
    if not data:
        return
    choice, fields, rest = data[0] & 3, (data[0] >> 2) % 16, data[1:]
    if choice == 0:
        strict = _decoded(wire.decode_map, rest, fields, LIMIT, "map")
        fast = _decoded(wire.decode_flat_map, rest, fields, LIMIT, "map")
        if not isinstance(strict, str):
            assert fast == strict, (strict, fast)  # a value the strict decoder takes
        elif isinstance(fast, str):
            assert fast == strict, (strict, fast)  # one fault, one code
    elif choice == 1:
        _decoded(wire.decode_array, rest, LIMIT, "array")
    elif choice == 2:
        items, trailer = split(rest), 1 + fields * 4
        both = wire.decode_arrays(items, trailer, LIMIT)
        if both is not None:
            datas, decoded = both
            for item, data_, value in zip(items, datas, decoded, strict=True):
                assert data_ == item[:-trailer]
                assert wire.decode_array(data_, LIMIT, "array") == value
    else:
        _decoded(wire.decode_map, rest, fields, LIMIT, "map")


def seeds() -> list[bytes]:
    """Maps and arrays from the vectors: chains, notices, statements, envelopes, files."""
    out = []
    for v in vectors("capability"):
        if v["kind"] == "chain":
            out.append(bytes([1]) + h(v["chain"]))
        elif v["kind"] == "notice":
            out.append(bytes([0 | (2 << 2)]) + h(v["notice"]))
    for v in vectors("keys"):
        if v["kind"] == "rotation" and "statement" in v:
            out.append(bytes([0 | (3 << 2)]) + h(v["statement"]))
        elif v["kind"] == "key_file":
            out.append(bytes([1]) + h(v["file"]))
    out.append(bytes([2 | (16 << 2)]) + join([bytes([0x92, 1, 2]) + bytes(65)] * 3))
    out.append(bytes([3 | (4 << 2)]) + wire.encode_map(1, b"x", "y", {"a": b"b"}))
    out.append(bytes([0 | (2 << 2)]) + wire.encode_map(1, 1.5))
    return out


if __name__ == "__main__":
    run(one, seeds)

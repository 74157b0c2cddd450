"""Canonical MessagePack: one encoding per value, every other encoding refused by code."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import ANY, BOB, make_pair, raises

from agentauth import DecodeError, Responder, wire

LIMIT = 1024


def decode(data: bytes, fields: int = 1, limit: int = LIMIT) -> list[Any]:
    return wire.decode_map(data, fields, limit, "test map")


@pytest.mark.parametrize(
    "values",
    [
        (0,),
        (1, b"\x00" * 32, 2**63 - 1, {}),
        (-1, -33, -(2**63)),
        ("", "é", "x" * 31, "x" * 32, "x" * 300),
        (b"", b"\xff" * 255, b"\xff" * 256),
        ([1, 2, 3], [], {"a": b"", "b": b"x"}),
        (None, True, False),
        tuple(range(15)),
    ],
)
def test_round_trip(values: tuple[Any, ...]) -> None:
    data = wire.encode_map(*values)
    assert decode(data, len(values)) == list(values)
    assert wire.encode_map(*decode(data, len(values))) == data


def test_encoding_is_the_documented_form() -> None:
    # {0: 1, 1: b"ab"}: fixmap of 2, positive fixints, bin8 for bytes.
    assert wire.encode_map(1, b"ab") == b"\x82\x00\x01\x01\xc4\x02ab"


def test_size_limit_is_checked_before_parsing() -> None:
    # Not msgpack at all, but one byte over the limit: oversize, not malformed.
    with raises("oversize"):
        decode(b"\xc1" * (LIMIT + 1))
    with raises("oversize"):
        decode(wire.encode_map(b"x" * LIMIT))
    # Exactly at the limit is fine.
    exact = wire.encode_map(b"x" * (LIMIT - 5))
    assert len(exact) == LIMIT
    assert decode(exact) == [b"x" * (LIMIT - 5)]


# Each row: (bytes, number of fields expected, the one code that must come out).
REFUSED = [
    ("empty", b"", 1, "malformed"),
    ("never-used-byte", b"\xc1", 1, "malformed"),
    ("truncated-map", b"\x82\x00\x01", 2, "malformed"),
    ("truncated-bin", b"\x81\x00\xc4\x05ab", 1, "malformed"),
    ("trailing-byte", b"\x81\x00\x01\x00", 1, "malformed"),
    ("two-maps", b"\x81\x00\x01\x81\x00\x01", 1, "malformed"),
    ("array-top-level", b"\x91\x01", 1, "malformed"),
    ("int-top-level", b"\x01", 1, "malformed"),
    ("nil-top-level", b"\xc0", 1, "malformed"),
    ("invalid-utf8", b"\x81\x00\xa1\xff", 1, "malformed"),
    ("ext-type", b"\x81\x00\xd4\x01\x00", 1, "malformed"),
    ("ext-negative-type", b"\x81\x00\xd5\x80\x00\x00", 1, "malformed"),
    ("str-key", b"\x81\xa10\x01", 1, "malformed"),
    ("bool-key", b"\x81\xc2\x01", 1, "malformed"),
    ("nil-key", b"\x81\xc0\x01", 1, "malformed"),
    ("float-key", b"\x81\xcb" + struct.pack(">d", 0.0) + b"\x01", 1, "malformed"),
    ("missing-field", b"\x81\x00\x01", 2, "malformed"),
    ("empty-map", b"\x80", 1, "malformed"),
    ("unknown-field", b"\x82\x00\x01\x01\x01", 1, "unknown_field"),
    ("unknown-field-only", b"\x81\x05\x01", 1, "unknown_field"),
    ("negative-key", b"\x81\xff\x01", 1, "unknown_field"),
    ("keys-out-of-order", b"\x82\x01\x01\x00\x01", 2, "non_canonical"),
    ("duplicate-key", b"\x83\x00\x01\x01\x02\x01\x03", 2, "non_canonical"),
    ("duplicate-key-same-value", b"\x82\x00\x01\x00\x01", 1, "non_canonical"),
    ("key-as-uint8", b"\x81\xcc\x00\x01", 1, "non_canonical"),
    ("uint8-fixint-range", b"\x81\x00\xcc\x01", 1, "non_canonical"),
    ("uint16-fits-uint8", b"\x81\x00\xcd\x00\xff", 1, "non_canonical"),
    ("uint32-fits-uint16", b"\x81\x00\xce\x00\x00\xff\xff", 1, "non_canonical"),
    ("uint64-fits-uint32", b"\x81\x00\xcf" + struct.pack(">Q", 2**32 - 1), 1, "non_canonical"),
    ("int8-fits-fixint", b"\x81\x00\xd0\xff", 1, "non_canonical"),
    ("int64-positive", b"\x81\x00\xd3" + struct.pack(">q", 5), 1, "non_canonical"),
    ("str8-fits-fixstr", b"\x81\x00\xd9\x01a", 1, "non_canonical"),
    ("str16-fits-str8", b"\x81\x00\xda\x00\x20" + b"a" * 32, 1, "non_canonical"),
    ("bin16-fits-bin8", b"\x81\x00\xc5\x00\x01a", 1, "non_canonical"),
    ("map16-fits-fixmap", b"\xde\x00\x01\x00\x01", 1, "non_canonical"),
    ("array16-fits-fixarray", b"\x81\x00\xdc\x00\x01\x01", 1, "non_canonical"),
    ("float32", b"\x81\x00\xca" + struct.pack(">f", 1.5), 1, "malformed"),
    ("float64", b"\x81\x00\xcb" + struct.pack(">d", 1.5), 1, "malformed"),
    ("timestamp-ext", b"\x81\x00\xd6\xff\x00\x00\x00\x01", 1, "malformed"),
    ("float-in-array", b"\x81\x00\x91\xcb" + struct.pack(">d", 1.5), 1, "malformed"),
    ("timestamp-in-array", b"\x81\x00\x91\xd6\xff\x00\x00\x00\x01", 1, "malformed"),
    ("nested-duplicate-key", b"\x81\x00\x82\x00\x00\x00\x00", 1, "non_canonical"),
    ("unhashable-nested-key", b"\x81\x00\x81\x80\x00", 1, "malformed"),
]


@pytest.mark.parametrize(("data", "fields", "code"), [r[1:] for r in REFUSED],
                         ids=[r[0] for r in REFUSED])
def test_refused_with_exact_code(data: bytes, fields: int, code: str) -> None:
    with raises(code):
        decode(data, fields)


def test_duplicate_key_that_hides_a_field_is_non_canonical() -> None:
    # {0: 1, 0: 2} read as a two-field map: the repeat is seen as the map is parsed, before
    # msgpack-python could keep only the last value and make field 1 look missing.
    with raises("non_canonical"):
        decode(b"\x82\x00\x01\x00\x02", 2)


@pytest.mark.parametrize("fields", [0, 1, 2, 15])
def test_exact_field_count(fields: int) -> None:
    values = list(range(fields))
    assert decode(wire.encode_map(*values), fields) == values
    if fields:
        with raises("malformed"):
            decode(wire.encode_map(*values[:-1]), fields)
    with raises("unknown_field"):
        decode(wire.encode_map(*values, 0), fields)


def test_float_in_hs1_offer_is_malformed() -> None:
    # A float where HS1 offers a version: refused by the wire layer, never seen as 1.0 == 1.
    hs1 = make_pair().initiator.start()
    with raises("malformed"):
        Responder(BOB, ANY).receive_message(hs1[:32] + b"\x81\x00\x91\xcb"
                                            + struct.pack(">d", 1.0))


# spec 3.3 D4: "the first key that is not an integer (booleans are not integers) gives
# malformed; else the first integer outside 0..n-1 gives unknown_field; ...". A key that
# Python folds into an earlier one (False == 0 == 0.0) or a non-integer key after an unknown
# integer key must still give malformed.
D4 = [
    ("false-after-0", b"\x82\x00\x00\xc2\x00", 1),
    ("float-0-after-0", b"\x82\x00\x00\xcb" + bytes(8) + b"\x00", 1),
    ("true-after-1", b"\x83\x00\x00\x01\x00\xc3\x00", 2),
    ("str-after-unknown", b"\x82\x05\x00\xa1a\x00", 1),
]


@pytest.mark.parametrize(("data", "fields"), [r[1:] for r in D4], ids=[r[0] for r in D4])
def test_non_integer_key_is_malformed_before_anything_else(data: bytes, fields: int) -> None:
    with raises("malformed"):
        decode(data, fields)


def test_decoded_values_keep_their_types() -> None:
    # True == 1 in Python: the bool must not come back as (or be mistaken for) an int.
    (value,) = decode(wire.encode_map(True))
    assert value is True
    with raises("malformed"):
        decode(b"\x81\xc3\x01")  # key true where 0 is expected


# decode_flat_map is decode_map's fast path for maps of scalars: on every input it gives
# the same values or the same code, except that a non-scalar value (which its callers
# refuse as malformed, the code decode_map's hooks give) may pass it.
SCALAR = (int, bytes)


def _outcome(decoder: Any, data: bytes, fields: int) -> tuple[str, Any]:
    try:
        return "ok", decoder(data, fields, LIMIT, "test map")
    except DecodeError as exc:
        return "error", exc.code


def _agree(data: bytes, fields: int) -> None:
    strict, flat = _outcome(wire.decode_map, data, fields), _outcome(wire.decode_flat_map,
                                                                     data, fields)
    if flat[0] == "ok" and not all(type(v) in SCALAR for v in flat[1]):
        assert strict == flat or strict == ("error", "malformed")
    else:
        assert flat == strict


@pytest.mark.parametrize(("data", "fields"), [r[1:3] for r in REFUSED + D4],
                         ids=[r[0] for r in REFUSED + D4])
def test_the_flat_decoder_refuses_with_the_same_code(data: bytes, fields: int) -> None:
    _agree(data, fields)
    outcome = _outcome(wire.decode_flat_map, data, fields)
    assert outcome[0] == "error" or not all(type(v) in SCALAR for v in outcome[1])


def test_the_flat_decoder_hides_no_repeated_key() -> None:
    _agree(b"\x82\x00\x01\x00\x02", 2)
    with raises("non_canonical"):
        wire.decode_flat_map(b"\x82\x00\x01\x00\x02", 2, LIMIT, "test map")


@given(st.lists(st.one_of(st.integers(-(2**63), 2**64 - 1), st.binary(max_size=40)),
                min_size=1, max_size=6), st.data())
def test_the_flat_decoder_agrees_on_mutated_maps(values: list[Any], draw: st.DataObject
                                                 ) -> None:
    data = bytearray(wire.encode_map(*values))
    for _ in range(draw.draw(st.integers(0, 3))):
        data[draw.draw(st.integers(0, len(data) - 1))] = draw.draw(st.integers(0, 255))
    if draw.draw(st.booleans()):
        data = data[:draw.draw(st.integers(0, len(data)))]
    _agree(bytes(data), len(values))

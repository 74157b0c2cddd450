"""The prose of spec/protocol.md against the vectors of spec/vectors/, read without the
library: what each rule says about the bytes (a `bin` where the prose says one, a notice's
path as a bare array of links, the bytes a signature covers) is checked by a plain msgpack
reading and the signature primitive alone, and where the prose orders the checks, the
vectors named after a step carry that step's code. A vector and the prose that disagree
fail here, whichever of the two changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import nacl.exceptions
import nacl.signing
import pytest

SPEC = Path(__file__).resolve().parents[2] / "spec" / "vectors"
CAPABILITY: list[dict[str, Any]] = json.loads((SPEC / "capability.json").read_text())["vectors"]
ENVELOPE: list[dict[str, Any]] = json.loads((SPEC / "envelope.json").read_text())["vectors"]
CONSTRAINTS: dict[str, Any] = json.loads((SPEC / "constraints.json").read_text())


def plain(data: bytes) -> Any:
    """One msgpack object, `bin` as bytes and `str` as text, integer map keys kept."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def signed_by(key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(key).verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def field_map(value: Any, n: int) -> list[Any]:
    """The values of a field map of ``n`` fields (3.1), asserting that it is one."""
    assert type(value) is dict and list(value) == list(range(n)), value
    return list(value.values())


def audience(chain: list[Any]) -> bytes:
    """The leaf audience of a chain ``[1, link, ...]``: field 1 of a root's payload,
    field 0 of a delegation's (10.4), each payload the link without its last 64 bytes."""
    fields = plain(chain[-1][:-64])
    return bytes(fields[1] if len(chain) == 2 else fields[0])


# ------------------------------------------------------------------ 10.7 invocations


INVOKE = b"agentauth v1 capability invocation\x00"
_INVOCATIONS = [(v, i) for v in CAPABILITY if v["kind"] == "invocation"
                for i, item in enumerate(v["invocations"]) if v["expected"][i] != "malformed"]


@pytest.mark.parametrize(("vector", "index"), _INVOCATIONS,
                         ids=[f"{v['id']}-{i}" for v, i in _INVOCATIONS])
def test_an_invocation_carries_its_payload_as_bin(vector: dict[str, Any], index: int) -> None:
    """10.7: ``{0: payload, 1: signature}``, the payload a `bin` holding the encoded field
    map ``{0: 1, 1: chain, ..., 6: time}``, the chain itself a `bin` holding ``[1, ...]``;
    detached, the holder signs the context and the payload's exact bytes."""
    payload, signature = field_map(plain(bytes.fromhex(vector["invocations"][index])), 2)
    assert type(payload) is bytes and type(signature) is bytes
    version, chain, request, binding, verifier, jti, time = field_map(plain(payload), 7)
    assert version == 1 and type(chain) is bytes and plain(chain)[0] == 1
    assert type(request) is list and len(request) == 3 and type(request[2]) is dict
    assert len(binding) in (0, 64) and len(verifier) in (0, 32) and len(jti) == 16
    assert type(time) is int and time >= 0 and len(signature) in (0, 64)
    if vector["mode"] == "detached" and vector["expected"][index] == "ok":
        assert signed_by(audience(plain(chain)), INVOKE + payload, signature)
    if vector["mode"] == "session" and vector["expected"][index] == "ok":
        assert (binding.hex(), verifier, signature) == (vector["channel_binding"], b"", b"")


def test_the_detached_window_is_symmetric_and_inclusive() -> None:
    """10.7: a detached invocation passes the time check exactly when
    ``|time - now| <= window + skew``."""
    seen = set()
    for vector in CAPABILITY:
        if vector.get("mode") != "detached":
            continue
        limit = vector["window"] + vector["skew"]
        for data, expected in zip(vector["invocations"], vector["expected"], strict=True):
            if expected not in ("ok", "stale_invocation"):
                continue
            time = plain(plain(bytes.fromhex(data))[0])[6]
            stale = abs(time - vector["now"]) > limit
            assert stale == (expected == "stale_invocation"), vector["id"]
            seen.add((expected, time - vector["now"]))
    assert {("ok", -180), ("ok", 180), ("stale_invocation", 181)} <= seen


# ------------------------------------------------------------------ 10.8 notices


REVOKE = b"agentauth v1 capability revocation\x00"
_NOTICES = [v for v in CAPABILITY if v["kind"] == "notice" and v["expected"] != "malformed"]


@pytest.mark.parametrize("vector", _NOTICES, ids=[v["id"] for v in _NOTICES])
def test_a_notice_carries_its_payload_as_bin_and_a_bare_path(vector: dict[str, Any]) -> None:
    """10.8: ``{0: payload, 1: signature}``, the payload a `bin` holding ``{0: 1, 1: revoker,
    2: path, 3: time}``, the path an array of links with no leading version, the signature
    64 bytes over the context and the payload's exact bytes."""
    payload, signature = field_map(plain(bytes.fromhex(vector["notice"])), 2)
    assert type(payload) is bytes and type(signature) is bytes and len(signature) == 64
    version, revoker, path, time = field_map(plain(payload), 4)
    assert version == 1 and type(revoker) is bytes and len(revoker) == 32
    assert type(path) is list and 1 <= len(path) <= 9
    assert all(type(link) is bytes for link in path)  # no version 1 in front
    assert type(time) is int and time >= 0
    if vector["expected"] == "ok":
        assert signed_by(revoker, REVOKE + payload, signature)


def test_a_notices_path_is_the_chains_links_without_its_version() -> None:
    chain = plain(bytes.fromhex(next(v for v in CAPABILITY if v["id"] == "depth-3")["chain"]))
    notice = next(v for v in CAPABILITY if v["id"] == "notice-by-issuer")
    path = plain(plain(bytes.fromhex(notice["notice"]))[0])[2]
    assert chain[0] == 1 and path == chain[1:3]


# ------------------------------------------------------------------ 12.1 envelopes


ENVELOPE_CONTEXT = b"agentauth v1 envelope\x00"


@pytest.mark.parametrize("vector", ENVELOPE, ids=[v["id"] for v in ENVELOPE])
def test_an_envelope_carries_its_body_as_bin(vector: dict[str, Any]) -> None:
    """12.1: a signed envelope is ``{0: 1, 1: body, 2: signature}`` with the body a `bin`
    holding the six-field map and the signature over the context and the body's exact
    bytes; a sealed one is ``{0: 2, 1: recipient, 2: box}``, all `bin`."""
    for data, expected in zip(vector["envelopes"], vector["expected"], strict=True):
        if expected in ("malformed", "non_canonical", "unknown_field"):
            continue
        outer = plain(bytes.fromhex(data))
        kind, first, second = field_map(outer, 3)
        assert kind in (1, 2) and type(first) is bytes and type(second) is bytes
        if kind == 2:
            assert len(first) == 32
            continue
        sender, recipient, nonce, time, reply_to, payload = field_map(plain(first), 6)
        assert len(sender) == len(recipient) == 32 and 16 <= len(nonce) <= 64
        assert type(time) is int and type(payload) is bytes and len(second) == 64
        assert reply_to == b"" or 16 <= len(reply_to) <= 64
        if expected == "ok":
            assert signed_by(sender, ENVELOPE_CONTEXT + first, second)


def test_the_envelope_window_is_the_one_stated() -> None:
    """12.2 step 4: ``time < now - window - skew`` is stale, ``time > now + skew`` is
    clock_skew; both bounds inclusive."""
    for vector in ENVELOPE:
        for data, expected in zip(vector["envelopes"], vector["expected"], strict=True):
            if expected not in ("ok", "stale", "clock_skew"):
                continue
            outer = plain(bytes.fromhex(data))
            if outer[0] != 1:
                continue
            time, now = plain(outer[1])[3], vector["now"]
            want = ("stale" if time < now - vector["window"] - vector["skew"] else
                    "clock_skew" if time > now + vector["skew"] else "ok")
            assert want == expected, vector["id"]


# ------------------------------------------------------------------ ordered steps


# (file, group, vector id, the code the step named in the spec gives first)
_STEPS = [
    ("constraints", "grant_faults", "first-fault-wins-fourth-element-first", "non_canonical"),
    ("constraints", "grant_faults", "resource-before-actions", "malformed"),
    ("constraints", "grant_faults", "actions-types-before-order", "malformed"),
    ("constraints", "grant_faults", "actions-order-before-grammar", "non_canonical"),
    ("constraints", "grant_faults", "names-grammar-before-order", "malformed"),
    ("constraints", "grant_faults", "first-fault-wins-names-before-kinds", "non_canonical"),
    ("constraints", "grant_faults", "constraints-in-name-order", "unknown_field"),
    ("constraints", "grant_faults", "constraints-in-name-order-2", "malformed"),
    ("constraints", "grant_faults", "known-kind-wrong-arity", "malformed"),
    ("constraints", "faults", "values-types-before-order", "malformed"),
    ("constraints", "faults", "values-count-before-order", "malformed"),
    ("constraints", "faults", "any-of-members-kinds-before-members", "malformed"),
    ("constraints", "faults", "any-of-members-in-order", "unknown_field"),
    ("constraints", "faults", "url-fields-in-order", "non_canonical"),
    ("capability", "vectors", "link-scalars-before-grants", "malformed"),
    ("capability", "vectors", "link-grants-in-order", "unknown_field"),
    ("capability", "vectors", "constraint-wrong-arity", "malformed"),
    ("capability", "vectors", "widen-nearest-parent-grant", "widened_action"),
    ("capability", "vectors", "notice-short-signature", "malformed"),
    ("capability", "vectors", "notice-negative-time", "malformed"),
    ("capability", "vectors", "notice-path-with-version", "malformed"),
    ("capability", "vectors", "invoke-session-short-binding", ["malformed"]),
    ("capability", "vectors", "invoke-detached-short-signature", ["malformed"]),
    ("capability", "vectors", "invoke-detached-in-session", ["wrong_session"]),
    ("envelope", "vectors", "envelope-short-signature", ["malformed"]),
    ("envelope", "vectors", "envelope-sealed-holds-sealed", ["malformed"]),
    ("envelope", "vectors", "envelope-sealed-holds-kind-3", ["unknown_field"]),
    ("envelope", "vectors", "envelope-sealed-holds-non-canonical", ["non_canonical"]),
    ("envelope", "vectors", "envelope-sealed-holds-garbage", ["malformed"]),
    ("envelope", "vectors", "envelope-sealed-holds-other-recipient", ["wrong_recipient"]),
]


def _find(file: str, group: str, vid: str) -> dict[str, Any]:
    content = {"constraints": CONSTRAINTS, "capability": {"vectors": CAPABILITY},
               "envelope": {"vectors": ENVELOPE}}[file]
    return next(v for v in content[group] if v["id"] == vid)


@pytest.mark.parametrize(("file", "group", "vid", "code"), _STEPS,
                         ids=[step[2] for step in _STEPS])
def test_the_first_failing_step_gives_the_code(file: str, group: str, vid: str,
                                               code: object) -> None:
    vector = _find(file, group, vid)
    assert vector.get("error", vector.get("expected")) == code


# Each kind's field count after the kind number (the table of 10.3).
_ARITY = {"eq": 1, "one-of": 1, "range": 2, "prefix": 1, "not-one-of": 1, "length": 2,
          "contains": 1, "subset": 1, "pattern": 1, "subpath": 1, "url": 4, "cidr": 1,
          "any-of": 1, "any": 0}
_CODES = {"eq": 0, "one-of": 1, "range": 2, "prefix": 3, "not-one-of": 4, "length": 5,
          "contains": 6, "subset": 7, "pattern": 8, "subpath": 9, "url": 10, "cidr": 11,
          "any-of": 12, "any": 13}


def test_a_known_kind_of_the_wrong_length_is_malformed_for_every_kind() -> None:
    """10.3: a known kind with the wrong number of fields is ``malformed``, never
    ``unknown_field``; the faults hold one such case for every kind."""
    found: dict[str, set[str]] = {}
    for case in CONSTRAINTS["faults"]:
        form = plain(bytes.fromhex(case["constraint"]))
        if type(form) is not list or not form or type(form[0]) is not int:
            continue
        name = next((n for n, c in _CODES.items() if c == form[0]), None)
        if name is not None and len(form) - 1 != _ARITY[name]:
            found.setdefault(name, set()).add(case["error"])
    assert found == {name: {"malformed"} for name in _ARITY}

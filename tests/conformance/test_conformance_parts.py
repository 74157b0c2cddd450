"""The conformance suite's parts: the strict line parser, the driver's request handling
(whatever bytes arrive, one well-formed reply comes back), mutations and reports."""

from __future__ import annotations

import importlib
import inspect
import io
import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentauth import ERROR_CODES, DecodeError
from agentauth.conformance.driver import operations as drv
from agentauth.conformance.interface import (
    MAX_LINE,
    Reply,
    decode_line,
    encode_line,
    from_hex,
    parse_reply,
    parse_request,
)
from agentauth.conformance.runner import Outcome, Report, Status
from agentauth.conformance.runner.mutation import mutate
from agentauth.conformance.vectors import generate

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

REPLIES = [b'{"id":1,"result":{}}', b'{"id":1,"error":{"code":"malformed","message":"x"}}',
           b'{"id":1,"unimplemented":"no"}', b'{"id":1,"result":{"reply":"00","state":"done"}}']
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4), max_leaves=12)


def _splice(data: bytes, cut: int, insert: bytes) -> bytes:
    cut %= len(data) + 1
    return data[:cut] + insert + data[cut + 1:]


#: Each part of the conformance package, and exactly the names it makes public.
PARTS = {
    "agentauth.conformance": set(),
    "agentauth.conformance.vectors": {
        "FILES", "MAX_VECTOR_FILE", "Forge", "HandshakeVector", "Inputs", "SessionVector",
        "Step", "body2", "body3", "dump", "generate", "main", "make_engine",
        "run_handshake_vector", "run_session_vector"},
    "agentauth.conformance.driver": {
        "IMPLEMENTATION", "MAX_OBJECTS", "OPERATIONS", "Driver", "main"},
    "agentauth.conformance.runner": {
        "Check", "Context", "DriverBroken", "DriverProcess", "Fail", "Outcome", "Refused",
        "Report", "Status", "Unimplemented", "add_arguments", "all_checks", "main", "run",
        "run_checks", "run_from_args"},
    "agentauth.conformance.interface": {
        "INTERFACE_VERSION", "MAX_LINE", "ErrorBody", "Reply", "ReplyLine", "RequestLine",
        "decision_to_json", "decode_line", "encode_line", "frame_to_json", "from_hex",
        "parse_reply", "parse_request"},
}


@pytest.mark.parametrize("name", sorted(PARTS))
def test_each_conformance_part_exports_exactly_its_public_names(name: str) -> None:
    part = importlib.import_module(name)
    assert part.__doc__ and part.__doc__.strip(), f"{name} has no docstring"
    assert set(part.__all__) == PARTS[name]
    for public in part.__all__:
        assert not public.startswith("_")
        obj = getattr(part, public)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__, f"{name}.{public} has no docstring"


def test_every_module_of_the_conformance_package_has_a_docstring_and_an_all() -> None:
    root = Path(importlib.import_module("agentauth.conformance").__file__ or "").parent
    for path in sorted(root.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        dotted = ".".join(("agentauth", *path.relative_to(root.parent).with_suffix("").parts))
        module = importlib.import_module(dotted.removesuffix(".__init__"))
        assert module.__doc__ and module.__doc__.strip(), dotted
        assert isinstance(getattr(module, "__all__", None), list), dotted


@FUZZ
@given(st.binary(max_size=200) | st.builds(_splice, st.sampled_from(REPLIES),
                                           st.integers(0, 80), st.binary(max_size=4)))
def test_reply_parser_gives_a_reply_or_a_decode_error(line: bytes) -> None:
    try:
        reply = parse_reply(line, 1)
    except DecodeError as exc:
        assert exc.code in {"malformed", "oversize"}
        return
    assert isinstance(reply, Reply) and reply.id == 1
    if reply.kind == "error":
        assert reply.code in ERROR_CODES


def test_reply_parser_is_strict() -> None:
    assert parse_reply(REPLIES[1], 1).code == "malformed"
    for bad in (b'{"id":1,"result":{},"error":{}}', b'{"id":2,"result":{}}',
                b'{"id":1,"id":1,"result":{}}', b'{"id":true,"result":{}}',
                b'{"id":1,"result":[]}', b'{"id":1,"error":{"code":"nope","message":""}}',
                b'{"id":1,"error":{"code":"malformed"}}', b'{"id":1,"result":{"x":NaN}}',
                b'{"id":1.0,"result":{}}', b"[" * 100_000, b'{"id":1}', b"\xff"):
        with pytest.raises(DecodeError):
            parse_reply(bad, 1)
    with pytest.raises(DecodeError) as exc:
        decode_line(b" " * (MAX_LINE + 1))
    assert exc.value.code == "oversize"
    assert parse_reply(b'{"id":null,"error":{"code":"malformed","message":""}}', None).id is None
    for text in ("AB", "abc", " ab", "0x00", 5):
        with pytest.raises(DecodeError):
            from_hex(text, "x")
    assert from_hex("", "x") == b"" and from_hex("00ff", "x") == b"\x00\xff"


def test_reply_lines_are_read_by_a_strict_model() -> None:
    for bad in (b'{"id":1,"result":null}', b'{"id":1,"result":{},"unimplemented":null}',
                b'{"id":1,"error":{"code":"malformed","message":"x","more":1}}',
                b'{"id":1,"unimplemented":5}', b'{"id":-1,"result":{}}',
                b'{"id":9007199254740993,"result":{}}', b'{"id":"1","result":{}}',
                b'{"id":1,"error":null}', b'{"id":1,"result":{},"extra":1}'):
        with pytest.raises(DecodeError) as exc:
            parse_reply(bad, 1)
        assert exc.value.code == "malformed", bad
    big = 2**53
    assert parse_reply(encode_line({"id": big, "result": {"a": 1}})[:-1], big).result == {"a": 1}
    assert parse_reply(b'{"id":1,"unimplemented":"' + b"x" * 300 + b'"}', 1).message == "x" * 200


def test_request_lines_are_read_by_a_strict_model() -> None:
    assert parse_request(b'{"id":3,"op":"seal","handle":"h1","payload":""}') == (
        3, "seal", {"handle": "h1", "payload": ""})
    for line, expected in ((b'{"id":true,"op":"hello"}', (None, None, {})),
                           (b'{"id":-1,"op":"hello"}', (None, None, {})),
                           (b'{"op":"hello"}', (None, None, {})),
                           (b'{"id":4,"op":5}', (4, None, {})),
                           (b'{"id":4}', (4, None, {}))):
        assert parse_request(line) == expected, line
    with pytest.raises(DecodeError):
        parse_request(b"[1]")
    assert _reply_of(b'{"id":4,"op":5}') == {
        "id": 4, "error": {"code": "invalid_argument", "message": "a request names its op"}}
    assert _reply_of(b'{"id":1.5,"op":"reset"}')["id"] is None


def _reply_of(line: bytes) -> dict[str, Any]:
    out = drv.Driver().handle_line(line)
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    value: dict[str, Any] = json.loads(out)
    assert len(value) == 2 and "id" in value
    kind = next(k for k in value if k != "id")
    assert kind in {"result", "error", "unimplemented"}
    if kind == "error":
        assert value["error"]["code"] in ERROR_CODES
        assert not value["error"]["message"].startswith("driver fault"), value
    return value


@FUZZ
@given(st.binary(max_size=300))
def test_the_driver_answers_any_bytes(line: bytes) -> None:
    _reply_of(line)


OPS = sorted(drv.OPERATIONS - {"shutdown"})


@FUZZ
@given(st.sampled_from(OPS), st.dictionaries(st.sampled_from(
    ["handle", "message", "seed", "now", "role", "identity", "trust", "payload", "label",
     "chain", "anchors", "mode", "envelope", "recipient", "interface", "random", "request",
     "pending", "length", "frame", "limit", "peer", "routes", "request_id", "extra"]),
    json_values, max_size=6))
def test_the_driver_answers_any_request(op: str, params: dict[str, Any]) -> None:
    value = _reply_of(encode_line({"id": 7, "op": op, **params}).rstrip(b"\n"))
    assert value["id"] == 7


def test_driver_serve_reads_lines_until_shutdown() -> None:
    lines = [encode_line({"id": 1, "op": "hello", "interface": [1]}),
             b"x" * (MAX_LINE + 10) + b"\n",
             encode_line({"id": 2, "op": "set_clock", "now": 5}).replace(b"\n", b"\r\n"),
             encode_line({"id": 3, "op": "nothing"}),
             encode_line({"id": 4, "op": "shutdown"}),
             encode_line({"id": 5, "op": "hello", "interface": [1]})]
    last = io.BytesIO()  # a last line without its newline is still answered
    drv.Driver().serve(io.BytesIO(encode_line({"id": 9, "op": "reset"})[:-1]), last)
    assert json.loads(last.getvalue()) == {"id": 9, "result": {}}
    out = io.BytesIO()
    driver = drv.Driver()
    driver.serve(io.BytesIO(b"".join(lines)), out)
    replies = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [r["id"] for r in replies] == [1, None, 2, 3, 4]  # nothing after shutdown
    assert replies[0]["result"]["interface"] == 1
    assert replies[1]["error"]["code"] == "oversize"
    assert replies[2] == {"id": 2, "result": {}}
    assert "unimplemented" in replies[3] and driver.done


def test_driver_refuses_more_objects_than_it_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drv, "MAX_OBJECTS", 3)
    driver = drv.Driver()
    agent = _call(driver, "create_identity", seed="11" * 32)["agent_id"]
    handles = [_call(driver, "handshake", role="responder", identity=agent, trust="any")
               for _ in range(3)]
    full = _call(driver, "handshake", role="responder", identity=agent, trust="any")
    assert full["code"] == "invalid_argument"
    assert _call(driver, "drop", handle=handles[0]["handle"]) == {}
    assert "handle" in _call(driver, "handshake", role="responder", identity=agent, trust="any")
    assert _call(driver, "drop", handle=handles[0]["handle"])["code"] == "invalid_argument"


def _call(driver: drv.Driver, op: str, **params: Any) -> dict[str, Any]:
    value = json.loads(driver.handle_line(encode_line({"id": 1, "op": op, **params})[:-1]))
    return value.get("result", value.get("error"))  # type: ignore[no-any-return]


def test_injected_randomness_comes_first_then_the_os() -> None:
    source = drv._Random(b"abcdef")
    assert source(4) == b"abcd"
    assert len(source(4)) == 4  # two bytes left: not enough, so the OS's
    assert drv._Random(b"")(3) != drv._Random(b"")(3)


@settings(max_examples=500, deadline=None, database=None)
@given(st.binary(max_size=64), st.integers(0, 2**32))
def test_a_mutation_always_changes_the_bytes(data: bytes, seed: int) -> None:
    changed, what = mutate(data, random.Random(seed))
    assert changed != data and what
    assert mutate(data, random.Random(seed)) == (changed, what)


def test_report_counts_sorts_and_writes() -> None:
    report = Report(driver="d", seed=1, mutations=0)
    rows: list[tuple[str, Status]] = [
        ("protocol.md §4.10", "PASS"), ("protocol.md §4.9", "FAIL"), ("conformance.md §2", "SKIP"),
        ("protocol.md §4.9", "PASS")]
    for section, status in rows:
        report.add(Outcome(f"{section} / x", section, status, "bad \x1b[31m\x00 text"))
    assert list(report.counts()) == ["conformance.md §2", "protocol.md §4.9",
                                     "protocol.md §4.10"]
    assert report.counts()["protocol.md §4.9"] == {"PASS": 1, "FAIL": 1, "SKIP": 0}
    assert report.exit_code(allow_skip=True) == 1
    junit = ET.fromstring(report.to_junit())
    assert [s.get("name") for s in junit.iter("testsuite")] == list(report.counts())
    assert junit.get("failures") == "1" and junit.get("skipped") == "1"
    assert json.loads(report.to_json())["totals"] == {"PASS": 2, "FAIL": 1, "SKIP": 1}
    skipped = Report(driver="d", seed=1, mutations=0,
                     outcomes=[Outcome("a / b", "a", "SKIP"), Outcome("a / c", "a", "PASS")])
    assert skipped.exit_code(allow_skip=False) == 1 and skipped.exit_code(allow_skip=True) == 0
    assert Report(driver="d", seed=1, mutations=0).exit_code(allow_skip=False) == 0



_VECTORS = generate()
_BASIC = _VECTORS["handshake-positive.json"]["vectors"][0]
_INPUTS, _EXPECTED = _BASIC["inputs"], _BASIC["expected"]
_MESSAGES = [bytes.fromhex(_EXPECTED[k]) for k in ("hs1", "hs2", "hs3")] + [
    bytes.fromhex(x["message"]) for x in _EXPECTED["session"]]
_SIDES = {role: (_INPUTS[role]["identity_seed"], _INPUTS[role]["ephemeral_secret"],
                 _EXPECTED["responder_id" if role == "initiator" else "initiator_id"])
          for role in ("initiator", "responder")}


def _handshake(role: str, trust: str, ordered: bool) -> dict[str, Any]:
    _, ephemeral, peer = _SIDES[role]
    me = _EXPECTED["initiator_id" if role == "initiator" else "responder_id"]
    return {"op": "handshake", "role": role, "identity": me,
            "trust": "any" if trust == "any" else [peer], "ordered": ordered,
            "random": ephemeral}


_message = st.sampled_from(_MESSAGES) | st.binary(max_size=120)
step = st.one_of(
    st.builds(_handshake, st.sampled_from(["initiator", "responder"]),
              st.sampled_from(["any", "peer"]), st.booleans()),
    st.builds(lambda op, handle: {"op": op, "handle": handle},
              st.sampled_from(["start", "rekey", "close", "channel_binding", "check_timeout",
                               "drop"]), st.sampled_from(["h1", "h2", "h3", "x"])),
    st.builds(lambda op, handle, data: {"op": op, "handle": handle, "message": data.hex()},
              st.sampled_from(["receive", "open"]), st.sampled_from(["h1", "h2", "h3"]),
              _message),
    st.builds(lambda handle, data: {"op": "seal", "handle": handle, "payload": data.hex()},
              st.sampled_from(["h1", "h2"]), st.binary(max_size=16)),
    st.builds(lambda op, handle: {"op": op, "handle": handle, "label": "6c", "length": 16},
              st.just("export"), st.sampled_from(["h1", "h2"])),
    st.builds(lambda now: {"op": "set_clock", "now": now},
              st.sampled_from(_INPUTS["clock"]) | st.integers(0, 2**40)),
    st.just({"op": "reset"}),
)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=30))
def test_the_driver_survives_any_sequence_of_operations(steps: list[dict[str, Any]]) -> None:
    """One driver, operations in any order on the same handles (fed genuine handshake and
    session messages as well as random bytes, so engines do complete): every one answered
    with a registered code, never a fault, whatever state the engines are in."""
    driver = drv.Driver()
    setup = [{"op": "set_clock", "now": _INPUTS["clock"][0]}] + [
        {"op": "create_identity", "seed": seed} for seed, _, _ in _SIDES.values()]
    for index, request in enumerate(setup + steps):
        out = json.loads(driver.handle_line(encode_line({"id": index, **request})[:-1]))
        assert out["id"] == index
        if "error" in out:
            assert out["error"]["code"] in ERROR_CODES
            assert not out["error"]["message"].startswith("driver fault"), (request, out)


def test_the_sequences_reach_finished_handshakes() -> None:
    """Control for the test above: its genuine messages do complete a handshake."""
    driver = drv.Driver()
    calls = [{"op": "set_clock", "now": _INPUTS["clock"][1]},
             *({"op": "create_identity", "seed": seed} for seed, _, _ in _SIDES.values()),
             _handshake("responder", "peer", True),
             {"op": "receive", "handle": "h1", "message": _MESSAGES[0].hex()},
             {"op": "receive", "handle": "h1", "message": _MESSAGES[2].hex()},
             {"op": "open", "handle": "h1", "message": _MESSAGES[3].hex()}]
    outs = [json.loads(driver.handle_line(encode_line({"id": i, **c})[:-1]))
            for i, c in enumerate(calls)]
    assert outs[-2]["result"]["state"] == "done"
    assert outs[-1]["result"]["payload"] == _EXPECTED["session"][0]["payload"]

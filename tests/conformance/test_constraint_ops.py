"""The driver's constraint operations (spec/conformance.md section 7): constraints and
grants from their wire bytes, fed the constraint vectors in process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentauth import wire
from agentauth.conformance.driver import Driver
from agentauth.conformance.vectors import generate

CONTENT = generate()["constraints.json"]


def call(driver: Driver, op: str, **params: Any) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(driver.handle_line(json.dumps(
        {"id": 1, "op": op, **params}).encode()))
    return reply


def outcome(reply: dict[str, Any], key: str) -> Any:
    return reply["result"][key] if "result" in reply else reply["error"]["code"]


def request(case: dict[str, Any]) -> dict[str, Any]:
    resource, action, args = case["request"]
    return {"resource": resource, "action": action, "args": args}


def test_the_driver_decides_every_constraint_vector() -> None:
    driver = Driver()
    wrong = []
    for case in CONTENT["matching"]:
        if outcome(call(driver, "constraint_allows", constraint=case["constraint"],
                        value=case["value"]), "allowed") != case["allowed"]:
            wrong.append(case["id"])
    for case in CONTENT["narrowing"]:
        if outcome(call(driver, "constraint_within", child=case["child"],
                        parent=case["parent"]), "within") != case["within"]:
            wrong.append(case["id"])
    for case in CONTENT["faults"]:
        if outcome(call(driver, "constraint_allows", constraint=case["constraint"]),
                   "allowed") != case["error"]:
            wrong.append(case["id"])
    for case in CONTENT["grants"]:
        if outcome(call(driver, "grant_allows", grant=case["grant"], request=request(case)),
                   "allowed") != case["allowed"]:
            wrong.append(case["id"])
    for case in CONTENT["grant_narrowing"]:
        if outcome(call(driver, "grant_within", child=case["child"], parent=case["parent"]),
                   "within") != case["within"]:
            wrong.append(case["id"])
    for case in CONTENT["grant_faults"]:
        if outcome(call(driver, "grant_allows", grant=case["grant"], request={
                "resource": "x", "action": "read"}), "allowed") != case["error"]:
            wrong.append(case["id"])
    assert wrong == []


RANGE = wire.encode_value([2, 0, 10]).hex()
GRANT = wire.encode_value(["fs/**", ["read"], {"size": [2, 0, 10]}]).hex()


@pytest.mark.parametrize("value", [5.0, None, [5], {"a": 5}, True, "5", [[1]], 2**70])
def test_any_json_value_is_an_argument_and_refused(value: Any) -> None:
    assert call(Driver(), "constraint_allows", constraint=RANGE, value=value) == {
        "id": 1, "result": {"allowed": False}}


@pytest.mark.parametrize(("op", "params", "code"), [
    ("constraint_allows", {"constraint": "zz"}, "invalid_argument"),
    ("constraint_allows", {"constraint": RANGE, "other": 1}, "invalid_argument"),
    ("constraint_allows", {"constraint": "93020a00"}, "malformed"),
    ("constraint_allows", {"constraint": "00" * 70_000}, "oversize"),
    ("constraint_within", {"child": RANGE}, "invalid_argument"),
    ("constraint_within", {"child": RANGE, "parent": "c0"}, "malformed"),
    ("grant_allows", {"grant": GRANT}, "invalid_argument"),
    ("grant_allows", {"grant": GRANT, "request": {"resource": "../x", "action": "read"}},
     "invalid_argument"),
    ("grant_allows", {"grant": GRANT, "request": {"resource": "fs/a", "action": "read",
                                                  "args": []}}, "invalid_argument"),
    ("grant_within", {"child": GRANT, "parent": "9100"}, "malformed"),
])
def test_a_bad_request_is_refused_with_its_code(op: str, params: dict[str, Any],
                                                code: str) -> None:
    reply = call(Driver(), op, **params)
    assert reply["error"]["code"] == code, reply


def test_grant_allows_applies_the_closed_world() -> None:
    driver = Driver()
    base = {"resource": "fs/a", "action": "read"}
    assert outcome(call(driver, "grant_allows", grant=GRANT, request={
        **base, "args": {"size": 3}}), "allowed") is True
    assert outcome(call(driver, "grant_allows", grant=GRANT, request={
        **base, "args": {"size": 3, "mode": "w"}}), "allowed") is False

"""The driver's request operations (spec/conformance.md section 7): frames decoded and a
channel's serving side, fed the request vectors in process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentauth.conformance.driver import Driver
from agentauth.conformance.vectors import generate

CONTENT = generate()["requests.json"]


def call(driver: Driver, op: str, **params: Any) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(driver.handle_line(json.dumps(
        {"id": 1, "op": op, **params}).encode()))
    return reply


def outcome(reply: dict[str, Any]) -> Any:
    return reply["result"] if "result" in reply else {"error": reply["error"]["code"]}


def test_frame_decode_gives_every_frame_vector() -> None:
    driver = Driver()
    for vector in CONTENT["frames"]:
        got = outcome(call(driver, "frame_decode", frame=vector["frame"],
                           limit=vector["limit"]))
        want = ({"frame": vector["decoded"]} if "decoded" in vector
                else {"error": vector["error"]})
        assert got == want, vector["id"]


@pytest.mark.parametrize("scenario", CONTENT["scenarios"],
                         ids=[s["id"] for s in CONTENT["scenarios"]])
def test_a_request_server_decides_every_scenario(scenario: dict[str, Any]) -> None:
    driver = Driver()
    call(driver, "set_clock", now=scenario["now"])
    handle = call(driver, "request_server", **{k: scenario[k] for k in (
        "peer", "anchors", "routes", "revoked", "max_payload", "max_in_flight",
        "max_chains")})["result"]["handle"]
    for step in scenario["steps"]:
        if "done" in step:
            assert outcome(call(driver, "request_done", handle=handle,
                                request_id=step["done"])) == {}
        else:
            got = outcome(call(driver, "request_receive", handle=handle, frame=step["frame"]))
            assert got == step["expected"]


@pytest.mark.parametrize(("op", "params", "code"), [
    ("frame_decode", {"frame": "8205", "limit": 0}, "invalid_argument"),
    ("frame_decode", {"frame": "zz", "limit": 10}, "invalid_argument"),
    ("frame_decode", {"frame": "8205", "limit": "10"}, "invalid_argument"),
    ("request_server", {"peer": "nobody", "anchors": {}, "routes": []}, "agent_id_prefix"),
    ("request_server", {"peer": "", "anchors": {}, "routes": [], "max_payload": 16_383},
     "invalid_argument"),
    ("request_server", {"peer": "", "anchors": {}, "routes": [], "max_in_flight": 0},
     "invalid_argument"),
    ("request_server", {"peer": "", "anchors": {}, "routes": [
        {"pattern": "a", "action": "NOT AN ACTION"}]}, "invalid_argument"),
    ("request_receive", {"handle": "r9", "frame": "8205"}, "invalid_argument"),
    ("request_done", {"handle": "r9", "request_id": 1}, "invalid_argument"),
])
def test_request_operations_refuse_bad_parameters(op: str, params: dict[str, Any],
                                                  code: str) -> None:
    driver = Driver()
    if params.get("peer") == "":
        params["peer"] = CONTENT["scenarios"][0]["peer"]
    reply = call(driver, op, **params)
    assert reply["error"]["code"] == code, reply

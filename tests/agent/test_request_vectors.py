"""The request vectors (spec/vectors/requests.json, spec section 15), replayed on the
frames and the serving side's checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentauth import AgentAuthError, PeerKey
from agentauth.agent.frames import Call, Refused, Requests, Route, decode_frame, settle
from agentauth.conformance.interface import frame_to_json

SPEC = Path(__file__).resolve().parents[2] / "spec" / "vectors"
CONTENT = json.loads((SPEC / "requests.json").read_text())
FRAMES: list[dict[str, Any]] = CONTENT["frames"]
SCENARIOS: list[dict[str, Any]] = CONTENT["scenarios"]


@pytest.mark.parametrize("vector", FRAMES, ids=[x["id"] for x in FRAMES])
def test_frame_vectors(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["frame"])
    if "error" in vector:
        with pytest.raises(AgentAuthError) as caught:
            decode_frame(data, vector["limit"])
        assert caught.value.code == vector["error"]
    else:
        assert frame_to_json(decode_frame(data, vector["limit"])) == vector["decoded"]


def _decision(result: Call | Refused | int | None, routes: list[Route]) -> dict[str, Any]:
    if result is None:
        return {"answer": "none"}
    if isinstance(result, int):
        return {"answer": "cancelled", "id": result}
    if isinstance(result, Refused):
        told = decode_frame(result.frame, 1 << 20)
        assert told.code == result.error.code
        return {"answer": "refused", "id": result.id, "code": told.code,
                "refusal": dict(told.refusal or {})}
    return {"answer": "call", "id": result.id,
            "route": [r.handler for r in routes].index(result.handler)}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[x["id"] for x in SCENARIOS])
def test_scenario_vectors(scenario: dict[str, Any]) -> None:
    routes = [Route.make(r["pattern"], r["action"], f"handler {i}",
                         capability=r["capability"]) for i, r in enumerate(scenario["routes"])]
    revoked = {bytes.fromhex(x) for x in scenario["revoked"]}
    state = Requests(PeerKey.from_agent_id(scenario["peer"]), scenario["anchors"],
                     tuple(routes),
                     max_payload=scenario["max_payload"],
                     max_in_flight=scenario["max_in_flight"],
                     max_chains=scenario["max_chains"], clock=lambda: scenario["now"])
    steps = scenario["steps"]
    for index, step in enumerate(steps):
        if "done" in step:
            state.done(step["done"])
        elif "error" in step["expected"]:
            assert index == len(steps) - 1, "a channel-ending step is the last"
            with pytest.raises(AgentAuthError) as caught:
                settle(state.receiving(bytes.fromhex(step["frame"])), revoked.__contains__)
            assert caught.value.code == step["expected"]["error"]
        else:
            flow = state.receiving(bytes.fromhex(step["frame"]))
            got = _decision(settle(flow, revoked.__contains__), routes)
            assert got == step["expected"], f"step {index}"


def _groups(document: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """A vector file's lists of vectors: "vectors", or each list beside "description"
    (constraints.json, spec 6.1)."""
    if "vectors" in document:
        return [document["vectors"]]
    return [value for key, value in document.items() if key != "description"]


def test_request_vectors_cover_the_rules() -> None:
    frame_codes = {v.get("error", "ok") for v in FRAMES}
    assert {"ok", "oversize", "malformed", "unknown_field", "non_canonical"} <= frame_codes
    kinds = {v["decoded"]["kind"] for v in FRAMES if "decoded" in v}
    assert kinds == {"present", "request", "response", "error", "cancel"}
    decisions = {s["expected"].get("code", s["expected"].get("error",
                                                              s["expected"].get("answer")))
                 for sc in SCENARIOS for s in sc["steps"] if "frame" in s}
    assert {"none", "call", "cancelled", "not_authorized", "unknown_chain", "no_handler",
            "malformed", "oversize", "holder_mismatch", "expired", "revoked", "over_limit",
            "out_of_order", "unknown_field"} <= decisions
    ids = [v["id"] for v in FRAMES] + [s["id"] for s in SCENARIOS]
    assert len(ids) == len(set(ids))
    elsewhere = {v["id"] for path in SPEC.glob("*.json") if path.name != "requests.json"
                 for group in _groups(json.loads(path.read_text())) for v in group}
    assert not elsewhere & set(ids), "a vector id is unique across the files (spec 6.1)"

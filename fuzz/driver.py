"""The conformance driver (spec: conformance.md): request lines answered in process.

The input is a sequence of request lines, answered in turn by one fresh driver. The driver
answers every line and turns an unexpected exception into a ``driver fault`` reply, so
such a reply, or any exception out of it, is a finding. The seeds replay each vector as
the conformance suite drives it.
"""

from __future__ import annotations

import json
from typing import Any

from agentauth.conformance.driver import Driver
from agentauth.identity import Identity

from ._common import run, vectors

MAX_LINES = 64


def one(data: bytes) -> None:
    """Answer each line of ``data`` with one driver."""
    driver = Driver()
    for line in data.split(b"\n")[:MAX_LINES]:
        reply = driver.handle_line(line)
        assert b"driver fault" not in reply, reply
        if driver.done:
            return


def _lines(requests: list[dict[str, Any]]) -> bytes:
    return b"\n".join(json.dumps({"id": n, **r}).encode() for n, r in enumerate(requests))


def _engine(role: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    agent = Identity.from_seed(bytes.fromhex(inputs["identity_seed"])).agent_id
    return [{"op": "create_identity", "seed": inputs["identity_seed"]},
            {"op": "handshake", "role": role, "identity": agent, "trust": inputs["trust"],
             "expect": inputs["expect"], "extensions": inputs["extensions"],
             "ordered": inputs["ordered"], "random": inputs["ephemeral_secret"]}]


def seeds() -> list[bytes]:
    """Each vector as the conformance suite sends it to a driver."""
    out = []
    for v in vectors("handshake-positive"):
        i, r, c, e = (v["inputs"]["initiator"], v["inputs"]["responder"],
                      v["inputs"]["clock"], v["expected"])
        out.append(_lines([
            {"op": "hello", "interface": [1]}, *_engine("initiator", i),
            {"op": "set_clock", "now": c[0]}, {"op": "start", "handle": "h1"},
            {"op": "set_clock", "now": c[2]},
            {"op": "receive", "handle": "h1", "message": e["hs2"]},
            {"op": "seal", "handle": "h1", "payload": "68656c6c6f"},
            {"op": "export", "handle": "h1", "label": "6578", "length": 32},
            {"op": "rekey", "handle": "h1"}, {"op": "close", "handle": "h1"},
            {"op": "drop", "handle": "h1"}, {"op": "shutdown"}]))
        out.append(_lines([
            *_engine("responder", r), {"op": "set_clock", "now": c[1]},
            {"op": "receive", "handle": "h1", "message": e["hs1"]},
            {"op": "set_clock", "now": c[3]},
            {"op": "receive", "handle": "h1", "message": e["hs3"]},
            *({"op": "open", "handle": "h1", "message": s["message"]}
              for s in e["session"] if s["from"] == "initiator"),
            {"op": "channel_binding", "handle": "h1"},
            {"op": "check_timeout", "handle": "h1"}, {"op": "reset"}]))
    for v in vectors("capability"):
        if v["kind"] == "chain":
            request = v.get("request")
            out.append(_lines([{"op": "set_clock", "now": v["now"]}, {
                "op": "verify_chain", "chain": v["chain"], "anchors": v["anchors"],
                "skew": v["skew"], "revoked": v["revoked"], "holder": v.get("holder"),
                "request": None if request is None else {
                    "resource": request[0], "action": request[1], "args": request[2]}}]))
        elif v["kind"] == "notice":
            out.append(_lines([{"op": "verify_notice", "notice": v["notice"],
                                "anchors": v["anchors"]}]))
        else:
            params = ({"peer": v["peer"], "channel_binding": v["channel_binding"]}
                      if v["mode"] == "session"
                      else {"verifier": v["verifier"], "window": v["window"]})
            out.append(_lines([
                {"op": "set_clock", "now": v["now"]},
                {"op": "invocation_verifier", "mode": v["mode"], "anchors": v["anchors"],
                 "skew": v["skew"], **params},
                *({"op": "check_invocation", "handle": "v1", "invocation": x}
                  for x in v["invocations"])]))
    for v in vectors("envelope"):
        me = Identity.from_seed(bytes.fromhex(v["me_seed"])).agent_id
        out.append(_lines([
            {"op": "create_identity", "seed": v["me_seed"]},
            {"op": "set_clock", "now": v["now"]},
            {"op": "envelope_opener", "recipient": me, "trust": v["trusted"],
             "pending": v["pending"], "window": v["window"], "skew": v["skew"]},
            *({"op": "open_envelope", "handle": "e1", "envelope": x}
              for x in v["envelopes"])]))
    return out


if __name__ == "__main__":
    run(one, seeds)

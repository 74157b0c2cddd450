"""Alert vectors (``alerts.json``, spec 4.14): the bytes of every valid alert, malformed
ones with the code a receiver gives, the alert each negative handshake vector's engine
sends after its failure, and engines fed an alert where one may come and where none can."""

from __future__ import annotations

from typing import Any

from ... import wire
from ...alert import ALERT_CODES, encode_alert, read_alert
from ...errors import AgentAuthError, InvalidState, PeerRefused
from .handshake_valid import cases
from .model import HandshakeVector, Inputs, Step, feed_handshake

__all__ = ["build", "sent_after"]

#: (id, description, bytes) of alerts a receiver refuses; the code is what the code gives
#: (checked against the spec's steps by the tests).
_MALFORMED: list[tuple[str, str, bytes]] = [
    ("empty", "no bytes at all (3.3 D2)", b""),
    ("array", "an array, not a map (3.3 D3)", b"\x92\x01\xa7expired"),
    ("third-field", "a field 2 beside version and code (3.3 D4)",
     wire.encode_map(1, "expired", 0)),
    ("one-field", "only the version (3.3 D4)", wire.encode_map(1)),
    ("fields-reversed", "field 1 before field 0 (3.3 D4)", b"\x82\x01\xa7expired\x00\x01"),
    ("wide-version", "the version 1 in a uint 8 (3.3 D5)", b"\x82\x00\xcc\x01\x01\xa7expired"),
    ("code-as-bin", "the code as a bin, not a str (4.14 step 2)",
     wire.encode_map(1, b"expired")),
    ("version-as-str", "the version as a str (4.14 step 2)", wire.encode_map("1", "expired")),
    ("version-2", "an alert of version 2 (4.14 step 3)", wire.encode_map(2, "expired")),
    ("version-0", "an alert of version 0 (4.14 step 3)", wire.encode_map(0, "expired")),
    ("unknown-code", "a code that is in no registry (4.14 step 4)",
     wire.encode_map(1, "no_such_code")),
    ("peer-refused", "a registry code no alert carries (4.14 step 4)",
     wire.encode_map(1, "peer_refused")),
    ("upper-case", "a code in capitals (4.14 step 4)", wire.encode_map(1, "EXPIRED")),
]


def _outcome(alert: bytes) -> dict[str, str]:
    try:
        refused = read_alert(alert)
    except AgentAuthError as exc:
        return {"error": exc.code}
    return {"error": refused.code, "claimed": refused.claimed}


def _run(vid: str, role: str, inputs: Inputs, steps: list[Step]
         ) -> tuple[AgentAuthError, bytes | None]:
    """Feed ``steps``; the error at the last one (none before it) and the alert the
    engine then sends."""
    engine, index, error = feed_handshake(role, inputs, steps)
    if error is None or index != len(steps) - 1:
        raise InvalidState(f"vector {vid} does not fail at its last step")
    return error, engine.alert


def sent_after(vector: HandshakeVector) -> bytes | None:
    """The alert the engine of a negative handshake vector sends after its last step."""
    return _run(vector.id, vector.role, vector.inputs, vector.steps)[1]


def _received(positive: dict[str, Any]) -> list[dict[str, Any]]:
    """Engines of the first positive vector fed an alert in place of each message."""
    _, _, ini, res, clock = cases()[0]
    expected = positive["vectors"][0]["expected"]
    hs1, hs3 = expected["hs1"], expected["hs3"]
    untrusted = encode_alert("untrusted_peer").hex()
    bad = wire.encode_map(2, "untrusted_peer").hex()
    start = Step(at=clock[0], start=True)
    rows: list[tuple[str, str, str, Inputs, list[Step]]] = [
        ("received-in-place-of-hs2", "the responder refused HS1", "initiator", ini,
         [start, Step(at=clock[2], receive=untrusted)]),
        ("received-in-place-of-hs3", "the initiator refused HS2", "responder", res,
         [Step(at=clock[1], receive=hs1), Step(at=clock[3], receive=untrusted)]),
        ("received-malformed-in-place-of-hs2", "an alert of version 2 where HS2 is awaited",
         "initiator", ini, [start, Step(at=clock[2], receive=bad)]),
        ("received-in-place-of-hs1", "an alert where HS1 is awaited: a short HS1 (4.3)",
         "responder", res, [Step(at=clock[1], receive=untrusted)]),
        ("received-before-start", "an alert before the initiator started (4.13)",
         "initiator", ini, [Step(at=clock[0], receive=untrusted)]),
        ("received-after-hs3", "an alert after the handshake is done (4.13)", "responder",
         res, [Step(at=clock[1], receive=hs1), Step(at=clock[3], receive=hs3),
               Step(at=clock[3], receive=untrusted)]),
    ]
    vectors = []
    for vid, description, role, inputs, steps in rows:
        error, alert = _run(vid, role, inputs, steps)
        vectors.append({
            "id": vid, "description": description, "role": role,
            "inputs": inputs.model_dump(), "steps": [s.model_dump() for s in steps],
            "error_step": len(steps) - 1, "error": error.code,
            "claimed": error.claimed if isinstance(error, PeerRefused) else None,
            "alert": None if alert is None else alert.hex()})
    return vectors


def build(positive: dict[str, Any], negative: dict[str, Any]) -> dict[str, Any]:
    """The content of ``alerts.json``."""
    forms = [{"id": f"alert-{code}", "description": f"the alert carrying {code}",
              "code": code, "alert": encode_alert(code).hex()}
             for code in sorted(ALERT_CODES)]
    reading = [{"id": f"alert-read-{vid}", "description": description,
                "alert": data.hex(), **_outcome(data)} for vid, description, data in _MALFORMED]
    sent = []
    for vector in negative["vectors"]:
        alert = sent_after(HandshakeVector.model_validate(vector))
        sent.append({"id": f"sent-after-{vector['id']}", "handshake": vector["id"],
                     "alert": None if alert is None else alert.hex()})
    return {
        "description": "Alerts (protocol.md 4.14). forms: every alert, by the code it carries; "
                       "reading: alerts a receiver refuses, each with its code; sent: the "
                       "alert (or null: none) the engine of each handshake-negative.json "
                       "vector sends after its last step; received: engines fed an alert, "
                       "with the error at the last step, the code the alert claims (or "
                       "null) and the alert the engine then sends (or null).",
        "forms": forms, "reading": reading, "sent": sent, "received": _received(positive),
    }

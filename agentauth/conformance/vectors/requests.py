"""Request vectors (spec section 15): frames of each kind with their exact bytes, frames
that each break one rule of 15.2 and 15.3 with the code they get, and serving-side
scenarios (15.4): a channel's state fed PRESENT, REQUEST and CANCEL frames in order, with
the decision for each.

Everything is fixed: keys from seeds, nonces, the clock. The serving side under test is
:class:`agentauth.agent.frames.Requests`; :func:`run_scenario` replays a scenario on it.
"""

from __future__ import annotations

from typing import Any

from ... import crypto, wire
from ...agent.frames import (
    CANCEL,
    ERROR,
    REQUEST,
    RESPONSE,
    Requests,
    Route,
    decode_frame,
    encode_cancel,
    encode_error,
    encode_present,
    encode_request,
    encode_response,
    settle,
)
from ...capability import Grant, Range, delegate, encode_chain
from ...capability.chain import Link
from ...errors import AgentAuthError, CapabilityDenied, Refusal, RequestError
from ...identity import Identity, PeerKey
from ..interface import decision_to_json, frame_to_json

__all__ = ["MAX_PAYLOAD", "NOW", "build", "identity", "run_scenario"]

NOW = 1_800_000_000
NBF, EXP = NOW - 100, NOW + 3600
#: The channel's largest message in the scenarios: bodies of up to 64 bytes.
MAX_PAYLOAD = 16_384 + 64
LIMIT = 65_536


def identity(name: str) -> Identity:
    """The fixed identity named ``name``."""
    return Identity.from_seed(crypto.blake2b_256(b"request vectors " + name.encode()))


ROOT, SERVER, BOB, CAROL = (identity(n) for n in ("root", "server", "bob", "carol"))
READ = Grant("files/reports/**", {"read", "delete"}, {"size": Range(0, 100)})
ROUTES = [{"pattern": "files/**", "action": "read", "capability": True},
          {"pattern": "health", "action": "get", "capability": False}]


def _link(holder: Identity, label: str, *, not_before: int = NBF, expires: int = EXP) -> Link:
    return delegate(ROOT, holder, [READ], not_before=not_before, expires=expires,
                    nonce=crypto.blake2b_256(label.encode())[:16])


BOB_LINK = _link(BOB, "bob")
BOB_CHAIN = encode_chain([BOB_LINK])
CAROL_CHAIN = encode_chain([_link(CAROL, "carol")])
OLD_CHAIN = encode_chain([_link(BOB, "old", not_before=NOW - 3600, expires=NOW - 100)])
REVOKED_LINK = _link(BOB, "revoked")


# ------------------------------------------------------------------ frames


def _frame(vid: str, description: str, data: bytes, *, limit: int = LIMIT,
           error: str | None = None) -> dict[str, Any]:
    vector: dict[str, Any] = {"id": f"frame-{vid}", "description": description, "limit": limit,
                              "frame": data.hex()}
    if error is None:
        vector["decoded"] = frame_to_json(decode_frame(data, limit))
    else:
        vector["error"] = error
    return vector


def _frames() -> list[dict[str, Any]]:
    request = encode_request(7, "files/reports/q3", "read", {"fmt": "pdf", "size": 50},
                             b"\x00\x01", 1)
    denied = CapabilityDenied("no grant allows it", code="not_authorized",
                              refusal=Refusal("action", 0, 0))
    valid = [
        _frame("present", "a chain presented under reference 1", encode_present(1, BOB_CHAIN)),
        _frame("request", "a request with arguments and a body, naming chain 1", request),
        _frame("request-no-chain", "a request naming no chain (ref 0), no arguments",
               encode_request(0, "health", "get", {}, b"", 0)),
        _frame("request-largest", "the largest id and reference",
               encode_request(2**64 - 1, "files/a", "read", {"ok": True}, b"", 2**32 - 1)),
        _frame("response", "the answer to request 7", encode_response(7, b"report")),
        _frame("error-refusal", "a capability refusal with its places",
               encode_error(7, denied)),
        _frame("error-plain", "a refusal without places",
               encode_error(8, RequestError("no handler", code="no_handler"))),
        _frame("cancel", "the requester gave up on request 7", encode_cancel(7)),
    ]
    over = list(range(33))
    invalid = [
        ("oversize", "a frame one byte over the channel's limit", request, "oversize",
         len(request) - 1),
        ("empty", "no bytes", b"", "malformed", LIMIT),
        ("array", "an array, not a map", wire.encode_value([2, 7]), "malformed", LIMIT),
        ("one-field", "a map of one field", wire.encode_map(5), "malformed", LIMIT),
        ("eight-fields", "a map of eight fields", wire.encode_map(*range(8)), "malformed",
         LIMIT),
        ("unknown-kind", "kind 6", wire.encode_map(6, 1), "unknown_field", LIMIT),
        ("kind-field-count", "a REQUEST of six fields",
         wire.encode_map(REQUEST, 1, "files/a", "read", {}, b""), "unknown_field", LIMIT),
        ("kind-string", "the kind as a string", wire.encode_map("cancel", 1), "malformed",
         LIMIT),
        ("negative-id", "a request id below 0", wire.encode_map(CANCEL, -1), "malformed",
         LIMIT),
        ("present-ref-zero", "a PRESENT under reference 0", wire.encode_map(1, 0, BOB_CHAIN),
         "malformed", LIMIT),
        ("present-ref-too-large", "a PRESENT under reference 2^32",
         wire.encode_map(1, 2**32, BOB_CHAIN), "malformed", LIMIT),
        ("present-chain-string", "a chain as a string",
         wire.encode_map(1, 1, "chain"), "malformed", LIMIT),
        ("request-ref-too-large", "a REQUEST naming reference 2^32",
         wire.encode_map(REQUEST, 1, "files/a", "read", {}, b"", 2**32), "malformed", LIMIT),
        ("request-body-string", "a body as a string",
         wire.encode_map(REQUEST, 1, "files/a", "read", {}, "x", 0), "malformed", LIMIT),
        ("request-args-float", "an argument of type float",
         wire.encode_map(REQUEST, 1, "files/a", "read", {"size": 1.5}, b"", 0), "malformed",
         LIMIT),
        ("request-args-nested", "an argument that is a list",
         wire.encode_map(REQUEST, 1, "files/a", "read", {"size": [1]}, b"", 0), "malformed",
         LIMIT),
        ("request-args-33", "33 arguments",
         wire.encode_map(REQUEST, 1, "files/a", "read", {f"a{i:02}": i for i in over}, b"",
                         0), "malformed", LIMIT),
        ("request-args-unsorted", "argument names out of order",
         _unsorted_args(), "non_canonical", LIMIT),
        ("request-long-int", "the id written as a uint16", b"\x82\x00\x05\x01\xcd\x00\x07",
         "non_canonical", LIMIT),
        ("response-body-int", "a RESPONSE whose body is an integer",
         wire.encode_map(RESPONSE, 1, 5), "malformed", LIMIT),
        ("error-unknown-code", "an ERROR naming a code not in section 7",
         wire.encode_map(ERROR, 1, "no_such_code", "", {}), "malformed", LIMIT),
        ("error-long-reason", "an ERROR with a reason of 513 characters",
         wire.encode_map(ERROR, 1, "no_handler", "x" * 513, {}), "malformed", LIMIT),
        ("error-refusal-list", "an ERROR whose refusal holds a list",
         wire.encode_map(ERROR, 1, "not_authorized", "", {"kind": ["action"]}), "malformed",
         LIMIT),
        ("trailing-byte", "a CANCEL followed by one more byte", encode_cancel(1) + b"\x00",
         "malformed", LIMIT),
    ]
    return valid + [_frame(vid, description, data, limit=limit, error=code)
                    for vid, description, data, code, limit in invalid]


def _unsorted_args() -> bytes:
    good = encode_request(1, "files/a", "read", {"a": 1, "b": 2}, b"", 0)
    # {"a": 1, "b": 2} is a1 61 01 a1 62 02 in the frame: swap the two entries.
    return good.replace(b"\xa1a\x01\xa1b\x02", b"\xa1b\x02\xa1a\x01")


# ------------------------------------------------------------------ scenarios


def _req(request_id: int, resource: str, action: str, ref: int, *, body: bytes = b"",
         args: dict[str, object] | None = None) -> str:
    if args is None:  # the argument READ constrains, within its range
        args = {"size": 10} if resource.startswith("files/") else {}
    return encode_request(request_id, resource, action, args, body, ref).hex()


def _ok(request_id: int, route: int) -> dict[str, Any]:
    return {"answer": "call", "id": request_id, "route": route}


def _no(request_id: int, code: str, **refusal: int | str) -> dict[str, Any]:
    return {"answer": "refused", "id": request_id, "code": code, "refusal": refusal}


_NONE: dict[str, Any] = {"answer": "none"}


def _done(request_id: int) -> tuple[str, dict[str, Any]]:
    """A step that is no frame: the request's answer was sent, its id is free."""
    return "", {"done": request_id}


def _scenario(vid: str, description: str, steps: list[tuple[str, dict[str, Any]]], *,
              max_in_flight: int = 128, max_chains: int = 16,
              revoked: list[bytes] | None = None, peer: Identity = BOB) -> dict[str, Any]:
    return {
        "id": f"channel-{vid}",
        "description": description,
        "peer": peer.agent_id,
        "anchors": {ROOT.agent_id: "files/**"},
        "now": NOW,
        "max_payload": MAX_PAYLOAD,
        "max_in_flight": max_in_flight,
        "max_chains": max_chains,
        "revoked": [r.hex() for r in (revoked or [])],
        "routes": ROUTES,
        "steps": [want if not data else {"frame": data, "expected": want}
                  for data, want in steps],
    }


def _scenarios() -> list[dict[str, Any]]:
    bob = encode_present(1, BOB_CHAIN).hex()
    serve = [
        (bob, _NONE),
        (_req(1, "files/reports/q3", "read", 1, args={"size": 50}), _ok(1, 0)),
        (_req(2, "files/reports/q3", "write", 1), _no(2, "not_authorized", kind="action",
                                                     link=0, grant=0)),
        (_req(3, "files/reports/q3", "read", 1, args={"size": 500}),
         _no(3, "not_authorized", kind="argument", link=0, grant=0, argument="size")),
        (_req(4, "files/reports/q3", "read", 0), _no(4, "not_authorized", kind="no_chain")),
        (_req(5, "health", "get", 0), _ok(5, 1)),
        (_req(6, "files/reports/q3", "read", 9), _no(6, "unknown_chain")),
        (_req(7, "files/reports/q3", "delete", 1), _no(7, "no_handler")),
        (_req(8, "files/reports//q3", "read", 1), _no(8, "malformed")),
        (_req(9, "files/reports/q3", "read", 1, body=bytes(65)), _no(9, "oversize")),
        (_req(10, "files/reports/q3", "read", 1, body=bytes(64)), _ok(10, 0)),
        (encode_present(2, CAROL_CHAIN).hex(), _NONE),
        (_req(11, "files/reports/q3", "read", 2),
         _no(11, "holder_mismatch", kind="holder", link=0)),
        (encode_present(3, OLD_CHAIN).hex(), _NONE),
        (_req(12, "files/reports/q3", "read", 3), _no(12, "expired", kind="window", link=0)),
        (encode_present(4, encode_chain([REVOKED_LINK])).hex(), _NONE),
        (_req(13, "files/reports/q3", "read", 4), _no(13, "revoked", kind="revoked", link=0)),
        (encode_cancel(5).hex(), {"answer": "cancelled", "id": 5}),
        (encode_cancel(99).hex(), _NONE),
        _done(1),
        (_req(1, "files/reports/q4", "read", 1), _ok(1, 0)),
    ]
    fatal = [
        ("duplicate-id", "a request whose id is in flight ends the channel",
         [(bob, _NONE), (_req(1, "files/reports/a", "read", 1), _ok(1, 0)),
          (_req(1, "files/reports/b", "read", 1), {"error": "out_of_order"})]),
        ("ref-taken", "a second PRESENT under a reference in use ends the channel",
         [(bob, _NONE), (encode_present(1, CAROL_CHAIN).hex(), {"error": "out_of_order"})]),
        ("response-to-server", "a RESPONSE sent to the serving side ends the channel",
         [(encode_response(1, b"").hex(), {"error": "out_of_order"})]),
        ("error-to-server", "an ERROR sent to the serving side ends the channel",
         [(encode_error(1, RequestError("x", code="no_handler")).hex(),
           {"error": "out_of_order"})]),
        ("broken-frame", "a frame that breaks 15.2 ends the channel",
         [(bob, _NONE), (wire.encode_map(6, 1).hex(), {"error": "unknown_field"})]),
        ("oversize-frame", "a frame over max_payload ends the channel",
         [(_req(1, "files/a", "read", 0, body=bytes(MAX_PAYLOAD)), {"error": "oversize"})]),
    ]
    return [
        _scenario("serve", "a chain presented, then requests each decided by one rule of "
                  "15.4; the chain is checked again at every use", serve,
                  revoked=[REVOKED_LINK.id]),
        _scenario("in-flight-limit", "two requests in flight at most: the third is refused "
                  "until one is done", [
                      (_req(1, "health", "get", 0), _ok(1, 1)),
                      (_req(2, "health", "get", 0), _ok(2, 1)),
                      (_req(3, "health", "get", 0), _no(3, "over_limit")),
                      _done(2),
                      (_req(3, "health", "get", 0), _ok(3, 1))], max_in_flight=2),
        _scenario("chain-limit", "two chains at most: a third PRESENT ends the channel", [
            (bob, _NONE), (encode_present(2, CAROL_CHAIN).hex(), _NONE),
            (encode_present(3, BOB_CHAIN).hex(), {"error": "over_limit"})], max_chains=2),
        _scenario("stolen-chain", "bob's chain presented by carol: refused at every use", [
            (bob, _NONE),
            (_req(1, "files/reports/q3", "read", 1), _no(1, "holder_mismatch", kind="holder",
                                                        link=0)),
            (_req(2, "health", "get", 0), _ok(2, 1))], peer=CAROL),
        *(_scenario(vid, description, steps) for vid, description, steps in fatal),
    ]


# ------------------------------------------------------------------ replay


def run_scenario(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    """Replay a scenario on this implementation's serving side; the answer to each frame
    step (an ``{"error": code}`` ends it)."""
    routes = [Route.make(r["pattern"], r["action"], i, capability=r["capability"])
              for i, r in enumerate(scenario["routes"])]
    revoked = {bytes.fromhex(r) for r in scenario["revoked"]}
    state = Requests(PeerKey.from_agent_id(scenario["peer"]), scenario["anchors"],
                     tuple(routes),
                     max_payload=scenario["max_payload"],
                     max_in_flight=scenario["max_in_flight"],
                     max_chains=scenario["max_chains"], clock=lambda: scenario["now"])
    answers = []
    for step in scenario["steps"]:
        if "done" in step:
            state.done(step["done"])
            continue
        try:
            flow = state.receiving(bytes.fromhex(step["frame"]))
            answers.append(decision_to_json(settle(flow, revoked.__contains__)))
        except AgentAuthError as exc:
            answers.append({"error": exc.code})
            break
    return answers


def build() -> dict[str, Any]:
    """The content of ``requests.json``."""
    return {
        "description": "Requests on a channel (spec section 15). `frames`: each `frame` "
                       "(hex) decoded with at most `limit` bytes gives `decoded` (the JSON "
                       "form of spec/conformance.md) or the code `error`. `scenarios`: one "
                       "channel's serving side, its authenticated peer `peer`, trusting "
                       "`anchors`, at clock `now`, with `max_payload`, `max_in_flight`, "
                       "`max_chains`, the revoked link ids `revoked` and the handlers "
                       "`routes` (first match wins, `capability` false: open to the "
                       "channel's peer), takes `steps` in order: a `frame` gives its "
                       "`expected` decision (`none`; `call` with the request id and the "
                       "index of its route; `refused` with the id, the ERROR code and the "
                       "refusal the peer is told; `cancelled` with the id; or `error`, a "
                       "code that ends the channel, always the last step), and `done` "
                       "frees a request id as its answer is sent. Keys come from the "
                       "seeds BLAKE2b-256('request vectors ' || name).",
        "frames": _frames(),
        "scenarios": _scenarios(),
    }

"""Checks that replay every vector of ``spec/vectors/`` through a driver.

Positive vectors must give exact bytes, negative vectors the exact error code at the exact
step (``spec/protocol.md`` section 6). Each check's section is the rule the vector tests:
the message it breaks (4.3, 4.5, 4.7), or the rule its code names (4.9 downgrade, 4.11
time, 4.13 order, 5.5 to 5.7 sessions, 10.1 to 10.3 argument constraints, 10.6 to 10.8
capabilities, 12.2 envelopes, 15.2 to 15.4 requests on a channel).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from ... import files
from ...errors import FileError, InvalidArgument
from ..vectors import spec_files as _vectors
from .check import (
    Check,
    Context,
    Fail,
    compare_codes,
    expect_refusal,
    get_hex,
    get_str,
    refusal,
)
from .driver_process import DriverProcess, Refused

__all__ = ["feed_negative", "handshake_section", "load_vectors", "vector_checks"]

_P = "protocol.md §"
_CODE_SECTIONS = {"handshake_timeout": "4.11", "clock_skew": "4.11", "downgrade": "4.9",
                  "out_of_order": "4.13", "oversize": "3.3", "non_canonical": "3.2",
                  "unknown_field": "3.3"}
MAX_VECTOR_FILE = _vectors.MAX_VECTOR_FILE
_MESSAGE_SECTIONS = {"hs1": "4.3", "hs2": "4.5", "hs3": "4.7"}


def load_vectors(directory: Path | None) -> dict[str, Any]:
    """The vector files' content: read from ``directory``, or made by the code if None."""
    if directory is None:
        return _vectors.generate()
    content = {}
    for name in _vectors.FILES:
        try:  # a regular file of bounded size only: a FIFO or a device must not hang us
            data = files.read_file(directory / name, MAX_VECTOR_FILE, what="vector file")
        except FileError as exc:
            raise InvalidArgument(f"cannot read the vectors in {directory}: {exc.message}"
                                  ) from None
        try:
            content[name] = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError):
            raise InvalidArgument(f"cannot read the vectors in {directory}: {name} is not "
                                  f"UTF-8 JSON") from None
    return content


def handshake_section(vid: str, code: str) -> str:
    """The section a negative handshake vector checks."""
    message = vid.split("-", maxsplit=1)[0]
    return _P + _CODE_SECTIONS.get(code, _MESSAGE_SECTIONS.get(message, "4.13"))


def _session_section(vector: dict[str, Any]) -> str:
    code = vector["error"]
    if code == "session_closed":
        return _P + "5.7"
    if code in ("replayed", "stale", "out_of_order"):
        return _P + ("5.5" if vector["ordered"] else "5.6")
    return _P + "5.5"


def _engine(d: DriverProcess, role: str, inputs: dict[str, Any], **override: Any) -> str:
    """The driver's handle of an engine built from a vector's ``inputs`` (6.2)."""
    agent = get_str(d.call("create_identity", seed=inputs["identity_seed"]), "agent_id")
    params = {"role": role, "identity": agent, "trust": inputs["trust"],
              "expect": inputs.get("expect"), "max_skew": inputs.get("max_skew", 120.0),
              "timeout": inputs.get("timeout", 30.0),
              "extensions": inputs.get("extensions", {}),
              "ordered": inputs.get("ordered", True), "random": inputs["ephemeral_secret"]}
    params.update(override)
    return get_str(d.call("handshake", **params), "handle")


def _same(what: str, got: bytes, want: str) -> None:
    if got.hex() != want:
        raise Fail(f"{what}: got {got.hex()[:48]}..., expected {want[:48]}...")


def feed_negative(ctx: Context, vector: dict[str, Any]) -> str:
    """Build a negative handshake vector's engine in the driver and feed its steps: none
    but the last may be refused, and the last must be, with the vector's code. Returns the
    engine's handle."""
    d = ctx.driver()
    handle = _engine(d, vector["role"], vector["inputs"])
    last = len(vector["steps"]) - 1
    for index, step in enumerate(vector["steps"]):
        d.call("set_clock", now=step["at"])
        what = f"step {index} ({'start' if step['start'] else 'receive'})"
        if step["start"]:
            def call(h: str = handle) -> object:
                return d.call("start", handle=h)
        else:
            call = functools.partial(d.call, "receive", handle=handle, message=step["receive"])
        if index < last:
            compare_codes(ctx, None, refusal(call), f"{what}, before the last step")
        else:
            expect_refusal(ctx, vector["error"], call, what)
    return handle


def _negative_handshake(vector: dict[str, Any], ctx: Context) -> None:
    d = ctx.driver()
    handle = feed_negative(ctx, vector)
    # Sticky failure (4.13 step 2): whatever comes next fails with the first error's code
    # (a late message to a finished engine, which did not fail, is out_of_order again).
    again = vector["steps"][-1]["receive"] or "00" * 32
    expect_refusal(ctx, vector["error"], functools.partial(d.call, "receive", handle=handle,
                                                           message=again), "after the failure")
    d.call("drop", handle=handle)


def _positive_side(vector: dict[str, Any], side: str, ctx: Context) -> None:
    d = ctx.driver()
    inputs, expected = vector["inputs"], vector["expected"]
    clock = inputs["clock"]
    handle = _engine(d, side, inputs[side])
    if side == "initiator":
        d.call("set_clock", now=clock[0])
        _same("HS1", get_hex(d.call("start", handle=handle), "message"), expected["hs1"])
        d.call("set_clock", now=clock[2])
        result = d.call("receive", handle=handle, message=expected["hs2"])
        _same("HS3", get_hex(result, "reply"), expected["hs3"])
        peer = expected["responder_id"]
    else:
        d.call("set_clock", now=clock[1])
        result = d.call("receive", handle=handle, message=expected["hs1"])
        _same("HS2", get_hex(result, "reply"), expected["hs2"])
        d.call("set_clock", now=clock[3])
        result = d.call("receive", handle=handle, message=expected["hs3"])
        if result.get("reply") is not None:
            raise Fail("the responder replied to HS3")
        peer = expected["initiator_id"]
    if result.get("state") != "done" or result.get("peer") != peer:
        raise Fail(f"after the handshake: state {str(result.get('state'))[:20]!r}, peer "
                   f"{str(result.get('peer'))[:60]!r}; expected done and {peer}")
    _same("channel binding", get_hex(result, "channel_binding"), expected["channel_binding"])
    exported = d.call("export", handle=handle, label=b"example".hex(), context="", length=32)
    _same("export('example')", get_hex(exported, "value"), expected["export_example_32"])
    for index, step in enumerate(expected["session"]):
        what = f"session step {index} ({step['from']} {step['kind']})"
        if step["from"] == side:
            if step["kind"] == "data":
                sent = d.call("seal", handle=handle, payload=step["payload"])
            else:
                sent = d.call(step["kind"], handle=handle)
            _same(what, get_hex(sent, "message"), step["message"])
        else:
            opened = d.call("open", handle=handle, message=step["message"])
            want = step["payload"] if step["kind"] == "data" else None
            if opened.get("payload") != want:
                raise Fail(f"{what}: opened to {str(opened.get('payload'))[:40]!r}, expected "
                           f"{want!r}")
    d.call("drop", handle=handle)


def _negative_session(vector: dict[str, Any], positive: dict[str, Any], ctx: Context) -> None:
    d = ctx.driver()
    inputs, expected = positive["inputs"], positive["expected"]
    receiver = vector["receiver"]
    handle = _engine(d, receiver, inputs[receiver], ordered=vector["ordered"])
    clock = inputs["clock"]
    if receiver == "responder":
        d.call("set_clock", now=clock[1])
        d.call("receive", handle=handle, message=expected["hs1"])
        d.call("set_clock", now=clock[3])
        d.call("receive", handle=handle, message=expected["hs3"])
    else:
        d.call("set_clock", now=clock[0])
        d.call("start", handle=handle)
        d.call("set_clock", now=clock[2])
        d.call("receive", handle=handle, message=expected["hs2"])
    last = len(vector["steps"]) - 1
    for index, message in enumerate(vector["steps"]):
        call = functools.partial(d.call, "open", handle=handle, message=message)
        if index < last:
            compare_codes(ctx, None, refusal(call), f"message {index}, before the last")
        else:
            expect_refusal(ctx, vector["error"], call, f"message {index}")
    d.call("drop", handle=handle)


def _same_codes(ctx: Context, got: list[str | None], expected: list[str], what: str) -> None:
    """Compare a vector's outcomes one by one, in order (``"ok"`` in a vector: accepted)."""
    for index, (code, want) in enumerate(zip(got, expected, strict=True)):
        compare_codes(ctx, None if want == "ok" else want, code,
                      what if len(expected) == 1 else f"{what} {index}")


def _capability(vector: dict[str, Any], ctx: Context) -> None:
    d = ctx.driver()
    anchors = vector["anchors"]
    if vector["kind"] == "notice":
        got = [refusal(functools.partial(d.call, "verify_notice", notice=vector["notice"],
                                         anchors=anchors))]
        _same_codes(ctx, got, [vector["expected"]], "the notice")
    elif vector["kind"] == "invocation":
        d.call("set_clock", now=vector["now"])
        if vector["mode"] == "session":
            params = {"peer": vector["peer"], "channel_binding": vector["channel_binding"]}
        else:
            params = {"verifier": vector["verifier"], "window": vector["window"]}
        handle = get_str(d.call("invocation_verifier", mode=vector["mode"], anchors=anchors,
                                skew=vector["skew"], **params), "handle")
        got = [refusal(functools.partial(d.call, "check_invocation", handle=handle,
                                         invocation=x)) for x in vector["invocations"]]
        d.call("drop", handle=handle)
        _same_codes(ctx, got, vector["expected"], "invocation")
    else:
        d.call("set_clock", now=vector["now"])
        request = vector["request"]
        got = [refusal(functools.partial(
            d.call, "verify_chain", chain=vector["chain"], anchors=anchors, skew=vector["skew"],
            revoked=vector["revoked"], holder=vector["holder"],
            request=None if request is None else
            {"resource": request[0], "action": request[1], "args": request[2]}))]
        _same_codes(ctx, got, [vector["expected"]], "the chain")


def _envelope(vector: dict[str, Any], ctx: Context) -> None:
    d = ctx.driver()
    me = get_str(d.call("create_identity", seed=vector["me_seed"]), "agent_id")
    d.call("set_clock", now=vector["now"])
    handle = get_str(d.call("envelope_opener", recipient=me, trust=vector["trusted"],
                            pending=vector["pending"], window=vector["window"],
                            skew=vector["skew"]), "handle")
    codes: list[str | None] = []
    payloads = []
    for data in vector["envelopes"]:
        try:
            opened = d.call("open_envelope", handle=handle, envelope=data)
        except Refused as exc:
            codes.append(exc.code)
            payloads.append("")
        else:
            codes.append(None)
            payloads.append(get_hex(opened, "payload").hex())
    d.call("drop", handle=handle)
    _same_codes(ctx, codes, vector["expected"], "envelope")
    if "payloads" in vector and payloads != vector["payloads"]:
        raise Fail("the opened payloads differ from the vector's")


# The constraint vectors: each group's section, the driver's operation, the case's fields
# it is given (as the operation's parameters) and the field it answers with.
_CONSTRAINT_GROUPS: dict[str, tuple[str, str, dict[str, str], str]] = {
    "matching": ("10.1", "constraint_allows", {"constraint": "constraint", "value": "value"},
                 "allowed"),
    "narrowing": ("10.2", "constraint_within", {"child": "child", "parent": "parent"},
                  "within"),
    "faults": ("10.3", "constraint_allows", {"constraint": "constraint"}, "error"),
    "grants": ("10.1", "grant_allows", {"grant": "grant", "request": "request"}, "allowed"),
    "grant_narrowing": ("10.2", "grant_within", {"child": "child", "parent": "parent"},
                        "within"),
    "grant_faults": ("10.3", "grant_allows", {"grant": "grant", "request": "request"},
                     "error"),
}
_ANY_REQUEST = ["x", "read", {}]


def _constraint_case(group: str, case: dict[str, Any], ctx: Context) -> str | None:
    """What is wrong with the driver's answer to one constraint vector, or None. A fault's
    code comparison is recorded in ``ctx``."""
    _, op, fields, answer = _CONSTRAINT_GROUPS[group]
    params: dict[str, Any] = {param: case.get(field) for param, field in fields.items()}
    if "request" in params:  # a fault's case has none: any request will do
        resource, action, args = params["request"] or _ANY_REQUEST
        params["request"] = {"resource": resource, "action": action, "args": args}
    want = case[answer]
    try:
        result = ctx.driver().call(op, **params)
    except Refused as exc:
        got: object = exc.code
    else:
        key = "allowed" if op.endswith("allows") else "within"
        got = result.get(key)
        if type(got) is not bool:
            return f"{case['id']}: no boolean {key} in {str(result)[:80]}"
    if answer == "error":
        ctx.compared = (want, got if isinstance(got, str) else None)
    if got != want:
        return f"{case['id']}: got {got}, expected {want}"
    return None


def _constraints(group: str, cases: list[dict[str, Any]], ctx: Context) -> None:
    wrong = []
    compared = None  # the first wrong fault's code comparison
    for case in cases:
        ctx.compared = None
        if (w := _constraint_case(group, case, ctx)) is not None:
            wrong.append(w)
            compared = compared or ctx.compared
    if wrong:
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        raise Fail(f"{len(wrong)} of {len(cases)} cases: {'; '.join(wrong[:3])}{more}",
                   compared=compared)


def _constraint_checks(content: dict[str, Any]) -> list[Check]:
    """One check per kind of constraint in each constraint group, one per grant group."""
    checks = []
    for group, (section, _, _, _) in _CONSTRAINT_GROUPS.items():
        kinds: dict[str, list[dict[str, Any]]] = {}
        for case in content.get(group, []):
            kinds.setdefault(case.get("kind", ""), []).append(case)
        for kind, cases in kinds.items():
            name = f"constraints / {group}" + (f" / {kind}" if kind else "")
            checks.append(Check(_P + section, name,
                                functools.partial(_constraints, group, cases)))
    return checks


_CHANNEL_SECTIONS = {"channel-in-flight-limit": "15.3", "channel-chain-limit": "15.3",
                     "channel-oversize-frame": "15.3", "channel-response-to-server": "15.2",
                     "channel-error-to-server": "15.2", "channel-broken-frame": "15.2"}


def _request_frame(vector: dict[str, Any], ctx: Context) -> None:
    call = functools.partial(ctx.driver().call, "frame_decode", frame=vector["frame"],
                             limit=vector["limit"])
    if "error" in vector:
        expect_refusal(ctx, vector["error"], call, "the frame")
        return
    got = call().get("frame")
    if got != vector["decoded"]:
        raise Fail(f"decoded to {str(got)[:120]}, expected {str(vector['decoded'])[:120]}")


def _request_scenario(scenario: dict[str, Any], ctx: Context) -> None:
    d = ctx.driver()
    d.call("set_clock", now=scenario["now"])
    handle = get_str(d.call("request_server", peer=scenario["peer"],
                            anchors=scenario["anchors"], routes=scenario["routes"],
                            revoked=scenario["revoked"], max_payload=scenario["max_payload"],
                            max_in_flight=scenario["max_in_flight"],
                            max_chains=scenario["max_chains"]), "handle")
    for index, step in enumerate(scenario["steps"]):
        if "done" in step:
            d.call("request_done", handle=handle, request_id=step["done"])
            continue
        call = functools.partial(d.call, "request_receive", handle=handle, frame=step["frame"])
        want = step["expected"]
        if "error" in want:
            expect_refusal(ctx, want["error"], call, f"step {index} (ends the channel)")
            continue
        got = call()
        if got != want:
            raise Fail(f"step {index}: decided {str(got)[:160]}, expected {str(want)[:160]}")
    d.call("drop", handle=handle)


def vector_checks(files: dict[str, Any]) -> list[Check]:
    """One check per vector (two per positive vector: one per side)."""
    checks = []
    positive = {v["id"]: v for v in files["handshake-positive.json"]["vectors"]}
    for vector in positive.values():
        for side in ("initiator", "responder"):
            checks.append(Check(_P + "6.3", f"handshake-positive / {vector['id']} / {side}",
                                functools.partial(_positive_side, vector, side)))
    for vector in files["handshake-negative.json"]["vectors"]:
        checks.append(Check(handshake_section(vector["id"], vector["error"]),
                            f"handshake-negative / {vector['id']}",
                            functools.partial(_negative_handshake, vector)))
    for vector in files["session-negative.json"]["vectors"]:
        checks.append(Check(_session_section(vector), f"session-negative / {vector['id']}",
                            functools.partial(_negative_session, vector,
                                              positive[vector["handshake"]])))
    sections = {"chain": "10.6", "invocation": "10.7", "notice": "10.8"}
    for vector in files["capability.json"]["vectors"]:
        checks.append(Check(_P + sections[vector["kind"]], f"capability / {vector['id']}",
                            functools.partial(_capability, vector)))
    checks.extend(_constraint_checks(files["constraints.json"]))
    for vector in files["envelope.json"]["vectors"]:
        checks.append(Check(_P + "12.2", f"envelope / {vector['id']}",
                            functools.partial(_envelope, vector)))
    requests = files["requests.json"]
    for vector in requests["frames"]:
        section = "15.3" if vector.get("error") == "oversize" else "15.2"
        checks.append(Check(_P + section, f"requests / {vector['id']}",
                            functools.partial(_request_frame, vector)))
    for scenario in requests["scenarios"]:
        checks.append(Check(_P + _CHANNEL_SECTIONS.get(scenario["id"], "15.4"),
                            f"requests / {scenario['id']}",
                            functools.partial(_request_scenario, scenario)))
    return checks

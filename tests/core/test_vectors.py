"""The protocol's own vectors (spec/vectors/): replayed, and regenerated from the code."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentauth import (
    AgentAuthError,
    Identity,
    MemoryReplayStore,
    PeerKey,
    PendingRequests,
    open_envelope,
)
from agentauth.capability import (
    DetachedInvocations,
    Request,
    SessionInvocations,
    decode_chain,
    verify_chain,
    verify_notice,
)
from agentauth.capability.constraints import KINDS, constraint_within
from agentauth.conformance import vectors as v
from agentauth.conformance.vectors import constraints, handshake_invalid
from agentauth.conformance.vectors.handshake_invalid import sessions
from agentauth.conformance.vectors.handshake_valid import agent_id
from agentauth.errors import InvalidState
from agentauth.handshake import Initiator, Responder

SPEC = Path(__file__).resolve().parents[2] / "spec" / "vectors"


def load(name: str) -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((SPEC / name).read_text())["vectors"]
    return vectors


POSITIVE = load("handshake-positive.json")
NEGATIVE = load("handshake-negative.json")
SESSION = load("session-negative.json")


def test_files_match_the_code_byte_for_byte() -> None:
    for name, content in v.generate().items():
        assert (SPEC / name).read_text() == v.dump(content), f"{name}: regenerate the vectors"


def test_enough_negative_vectors_with_distinct_ids() -> None:
    ids = [x["id"] for x in NEGATIVE + SESSION]
    assert len(ids) == len(set(ids)) >= 30


@pytest.mark.parametrize("vector", NEGATIVE, ids=[x["id"] for x in NEGATIVE])
def test_negative_handshake_vector(vector: dict[str, Any]) -> None:
    model = v.HandshakeVector.model_validate(vector)
    assert v.run_handshake_vector(model) == (model.error_step, model.error)


@pytest.mark.parametrize("vector", SESSION, ids=[x["id"] for x in SESSION])
def test_negative_session_vector(vector: dict[str, Any]) -> None:
    model = v.SessionVector.model_validate(vector)
    _, receiver = sessions(model.ordered)
    assert v.run_session_vector(model, receiver) == (model.error_step, model.error)


@pytest.mark.parametrize("vector", POSITIVE, ids=[x["id"] for x in POSITIVE])
def test_positive_vector_each_side_alone(vector: dict[str, Any]) -> None:
    """Each engine, fed the other side's recorded bytes, writes exactly the recorded bytes."""
    inputs, expected = vector["inputs"], vector["expected"]
    ini = v.Inputs.model_validate(inputs["initiator"])
    res = v.Inputs.model_validate(inputs["responder"])
    clock = inputs["clock"]
    now = [0.0]
    initiator = v.make_engine("initiator", ini, lambda: now[0])
    responder = v.make_engine("responder", res, lambda: now[0])
    assert isinstance(initiator, Initiator) and isinstance(responder, Responder)
    hs1, hs2, hs3 = (bytes.fromhex(expected[k]) for k in ("hs1", "hs2", "hs3"))
    now[0] = clock[0]
    assert initiator.start() == hs1
    now[0] = clock[1]
    assert responder.receive_message(hs1) == hs2
    now[0] = clock[2]
    assert initiator.receive_message(hs2) == hs3
    now[0] = clock[3]
    assert responder.receive_message(hs3) is None
    a, b = initiator.result, responder.result
    assert a is not None and b is not None
    assert a.peer_id == expected["responder_id"] == agent_id(res.identity_seed)
    assert b.peer_id == expected["initiator_id"]
    assert a.channel_binding.hex() == b.channel_binding.hex() == expected["channel_binding"]
    assert a.session.export(b"example").hex() == expected["export_example_32"]
    ends = {"initiator": a.session, "responder": b.session}
    other = {"initiator": b.session, "responder": a.session}
    for step in expected["session"]:
        message = bytes.fromhex(step["message"])
        opened = other[step["from"]].open(message)
        if step["kind"] == "data":
            assert opened == bytes.fromhex(step["payload"])
        else:
            assert opened is None
        sender = ends[step["from"]]
        if step["kind"] == "data":
            assert sender.seal(bytes.fromhex(step["payload"])) == message
        elif step["kind"] == "rekey":
            assert sender.rekey() == message
        else:
            assert sender.close() == message


def test_session_vectors_receiver_accepts_genuine_traffic() -> None:
    """Control: without the broken rule, the same receiver accepts the sender's messages."""
    for ordered in (True, False):
        sender, receiver = sessions(ordered)
        for payload in (b"a", b"b", b"c"):
            assert receiver.open(sender.seal(payload)) == payload


def test_forge_writes_what_the_engines_write() -> None:
    """The negative vectors' writer, untampered, agrees with the engines byte for byte."""
    basic = POSITIVE[0]
    assert basic["id"] == "basic"
    _, base_responder = handshake_invalid._base()
    hs1, hs3 = handshake_invalid._hs3(base_responder)
    assert hs1.hex() == basic["expected"]["hs1"]
    assert handshake_invalid._hs2().hex() == basic["expected"]["hs2"]
    assert hs3.hex() == basic["expected"]["hs3"]


CAPABILITY = load("capability.json")


def _code(call: Callable[[], object]) -> str:
    try:
        call()
    except AgentAuthError as exc:
        return exc.code
    return "ok"


def run_capability_vector(vector: dict[str, Any]) -> str | list[str]:
    """Replay one capability vector; return "ok" or the error code (a list of them for a
    sequence of invocations)."""
    anchors = vector["anchors"]
    if vector["kind"] == "notice":
        return _code(lambda: verify_notice(bytes.fromhex(vector["notice"]), anchors))
    if vector["kind"] == "invocation":
        clock = lambda: vector["now"]  # noqa: E731
        checker: SessionInvocations | DetachedInvocations
        if vector["mode"] == "session":
            checker = SessionInvocations(
                anchors, peer=PeerKey.from_agent_id(vector["peer"]), clock=clock,
                channel_binding=bytes.fromhex(vector["channel_binding"]), skew=vector["skew"])
        else:
            checker = DetachedInvocations(anchors, verifier=vector["verifier"], clock=clock,
                                          window=vector["window"], skew=vector["skew"])
        return [_code(functools.partial(checker.check, bytes.fromhex(x)))
                for x in vector["invocations"]]
    revoked = {bytes.fromhex(r) for r in vector["revoked"]}
    request = None if vector["request"] is None else Request(*vector["request"])
    holder = None if vector["holder"] is None else PeerKey.from_agent_id(vector["holder"])
    return _code(lambda: verify_chain(
        bytes.fromhex(vector["chain"]), anchors, now=vector["now"], skew=vector["skew"],
        revoked=revoked.__contains__, holder=holder, request=request))


@pytest.mark.parametrize("vector", CAPABILITY, ids=[x["id"] for x in CAPABILITY])
def test_capability_vectors(vector: dict[str, Any]) -> None:
    assert run_capability_vector(vector) == vector["expected"]


def test_capability_vectors_cover_the_rules() -> None:
    chains = [x for x in CAPABILITY if x["kind"] == "chain"]
    negative = [x for x in chains if x["expected"] != "ok"]
    assert len(negative) >= 25 and len({x["id"] for x in CAPABILITY}) == len(CAPABILITY)
    assert [x["id"] for x in chains if x["expected"] == "ok"] == [
        "depth-1", "depth-3", "depth-8"]
    codes = {code for x in CAPABILITY if x["kind"] != "chain"
             for code in ([x["expected"]] if isinstance(x["expected"], str)
                          else x["expected"])}
    assert {"unauthorized_revoker", "untrusted_root", "replayed", "holder_mismatch",
            "wrong_session", "wrong_verifier", "stale_invocation", "bad_signature",
            "ok"} <= codes
    for vector in CAPABILITY[:3]:
        links = decode_chain(bytes.fromhex(vector["chain"]))
        assert [link.id.hex() for link in links] == vector["link_ids"]
        assert [link.payload.hex() for link in links] == vector["payloads"]


ENVELOPE = load("envelope.json")


def run_envelope_vector(vector: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Open one vector's envelopes in order; return the codes and the payloads (hex)."""
    me = Identity.from_seed(bytes.fromhex(vector["me_seed"]))
    store = MemoryReplayStore()
    pending = PendingRequests()
    for entry in vector["pending"]:
        pending.expect(bytes.fromhex(entry["nonce"]), entry["recipient"],
                       expires=entry["expires"])
    trusted = vector["trusted"]
    trust = None if trusted is None else (lambda peer: peer.agent_id in trusted)
    codes, payloads = [], []
    for data in vector["envelopes"]:
        try:
            opened = open_envelope(bytes.fromhex(data), me, store,
                                   clock=lambda: vector["now"], window=vector["window"],
                                   skew=vector["skew"], trust=trust, pending=pending)
        except AgentAuthError as exc:
            codes.append(exc.code)
            payloads.append("")
        else:
            codes.append("ok")
            payloads.append(opened.payload.hex())
    return codes, payloads


@pytest.mark.parametrize("vector", ENVELOPE, ids=[x["id"] for x in ENVELOPE])
def test_envelope_vectors(vector: dict[str, Any]) -> None:
    codes, payloads = run_envelope_vector(vector)
    assert codes == vector["expected"]
    if "payloads" in vector:
        assert payloads == vector["payloads"]


def test_envelope_vectors_cover_the_rules() -> None:
    codes = {code for vector in ENVELOPE for code in vector["expected"]}
    assert {"ok", "wrong_recipient", "decrypt_failed", "stale", "clock_skew", "replayed",
            "bad_signature", "untrusted_peer", "unexpected_reply", "non_canonical",
            "unknown_field", "malformed"} <= codes


CONSTRAINTS = json.loads((SPEC / "constraints.json").read_text())


def _decided(call: Callable[[], object]) -> object:
    try:
        return call()
    except AgentAuthError as exc:
        return exc.code


def _hex(value: str) -> bytes:
    return bytes.fromhex(value)


_EXPECTED = {"matching": "allowed", "narrowing": "within", "faults": "error",
             "grants": "allowed", "grant_narrowing": "within", "grant_faults": "error"}


def run_constraint_vector(group: str, x: dict[str, Any]) -> object:
    """What the code decides for one case of constraints.json, from its bytes alone."""
    decode, grant = constraints.decode_constraint, constraints.decode_grant
    if group == "matching":
        return decode(_hex(x["constraint"])).allows(x["value"])
    if group == "narrowing":
        return constraint_within(decode(_hex(x["child"])), decode(_hex(x["parent"])))
    if group == "faults":
        return decode(_hex(x["constraint"])) and "ok"
    if group == "grants":
        return grant(_hex(x["grant"])).allows(Request(*x["request"]))
    if group == "grant_narrowing":
        return grant(_hex(x["child"])).within(grant(_hex(x["parent"])))
    return grant(_hex(x["grant"])) and "ok"


def test_constraint_vectors_replay() -> None:
    """Every group of constraints.json, replayed (spec 10.1 to 10.3)."""
    wrong = [(group, x["id"]) for group, key in _EXPECTED.items() for x in CONSTRAINTS[group]
             if _decided(functools.partial(run_constraint_vector, group, x)) != x[key]]
    assert wrong == []


def test_constraint_vectors_cover_every_kind_and_code() -> None:
    ready = {cls.NAME for cls in KINDS.values()}
    for group in ("matching", "narrowing", "faults"):
        assert {x["kind"] for x in CONSTRAINTS[group]} - {"wire"} == ready, group
    assert {x["allowed"] for x in CONSTRAINTS["matching"]} == {True, False}
    assert {x["within"] for x in CONSTRAINTS["narrowing"]} == {True, False}
    assert {x["error"] for x in CONSTRAINTS["faults"]} == {
        "unknown_field", "malformed", "non_canonical"}
    assert {x["error"] for x in CONSTRAINTS["grant_faults"]} == {
        "unknown_field", "malformed", "non_canonical"}
    ids = [(g, x["id"]) for g in ("matching", "narrowing", "faults", "grants",
                                  "grant_narrowing", "grant_faults") for x in CONSTRAINTS[g]]
    assert len(ids) == len(set(ids))


def test_constraint_vector_disagreeing_with_the_code_stops_the_generator(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An expected outcome the code does not give is never written: the generator stops
    and names the case."""
    monkeypatch.setattr(constraints, "_MATCHING", [("range-wrong", [2, 0, 10], 11, True)])
    with pytest.raises(InvalidState, match="matching / range-wrong"):
        constraints.build()
    assert v.main(["--check", str(SPEC)]) == 3



"""Alerts (spec 4.14): their form, how they are read, and when an engine sends one."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ALICE, ANY, BOB, CAROL, make_pair, raises

from agentauth import (
    ERROR_CODES,
    AgentAuthError,
    HandshakePolicy,
    HandshakeState,
    Initiator,
    InvalidArgument,
    PeerKey,
    PeerRefused,
    RemoteError,
    Responder,
    wire,
)
from agentauth.alert import (
    ALERT_CODES,
    MAX_ALERT,
    alert_for,
    encode_alert,
    is_alert,
    read_alert,
)
from agentauth.conformance.vectors import Inputs, make_engine
from agentauth.errors import (
    AuditLogError,
    AuthenticationError,
    CapabilityDenied,
    DecodeError,
    HandshakeTimeout,
    KeyFileError,
    Refusal,
)

HS1_OFFERING_2 = bytes(range(32)) + wire.encode_map([2])


def test_every_code_fits_and_reads_back() -> None:
    assert set(ERROR_CODES) >= ALERT_CODES
    for code in ALERT_CODES:
        alert = encode_alert(code)
        assert len(alert) <= MAX_ALERT and is_alert(alert)
        refused = read_alert(alert)
        assert (refused.code, refused.claimed) == ("peer_refused", code)
    # Shorter than every handshake message (HS1 >= 33) and session message (24).
    assert MAX_ALERT < 24
    assert encode_alert("untrusted_peer") == b"\x82\x00\x01\x01\xaeuntrusted_peer"


@pytest.mark.parametrize(("message", "code"), [
    (b"", "malformed"),  # nothing to decode
    (b"\x92\x01\xa4oops", "malformed"),  # an array, not a map
    (wire.encode_map(1, "untrusted_peer", 0), "unknown_field"),  # a third field
    (b"\x82\x01\x01\x00\x01", "non_canonical"),  # fields out of order
    (b"\x82\x00\xcc\x01\x01\xa7expired", "non_canonical"),  # a version in a uint 8
    (wire.encode_map(2, "untrusted_peer"), "malformed"),  # an unknown version
    (wire.encode_map(1, "no_such_code"), "malformed"),  # an unknown code
    (wire.encode_map(1, "peer_refused"), "malformed"),  # a code no alert carries
    (wire.encode_map(1, b"expired"), "malformed"),  # the code as bytes
    (wire.encode_map("1", "expired"), "malformed"),  # the version as text
])
def test_a_bad_alert_is_refused_with_its_code(message: bytes, code: str) -> None:
    assert is_alert(message)
    with raises(code):
        read_alert(message)


def test_the_claim_is_not_an_authentication_error_and_survives_pickling() -> None:
    refused = read_alert(encode_alert("untrusted_peer"))
    assert isinstance(refused, RemoteError) and not isinstance(refused, AuthenticationError)
    copy = pickle.loads(pickle.dumps(refused))
    assert (type(copy), copy.code, copy.claimed) == (PeerRefused, "peer_refused",
                                                     "untrusted_peer")
    assert "untrusted_peer" in str(refused)


@pytest.mark.parametrize("error", [
    read_alert(encode_alert("untrusted_peer")),
    CapabilityDenied("no grant allows it", code="not_authorized",
                     refusal=Refusal("action", 0, 0)),
    AuditLogError("a record was rewritten", code="audit_log_broken", record=7),
    DecodeError("short", code="malformed"),
], ids=lambda e: type(e).__name__)
def test_an_error_raised_again_keeps_its_details(error: AgentAuthError) -> None:
    """A failure kept and raised again (a failed engine, an ended channel) is a fresh copy
    with the same class, code and details, whichever subclass carries them."""
    again = error.again("raised again")
    assert again is not error and again.__traceback__ is None
    assert (type(again), again.code, again.message) == (type(error), error.code,
                                                        "raised again")
    for detail in ("claimed", "refusal", "record"):
        assert getattr(again, detail, None) == getattr(error, detail, None)
    assert error.again().message == error.message


def test_a_responder_refusing_hs3_sends_its_code() -> None:
    pair = make_pair(r_policy=HandshakePolicy(trust=[CAROL.agent_id]))
    hs1 = pair.initiator.start()
    hs2 = pair.responder.receive_message(hs1)
    assert hs2 is not None and pair.responder.alert is None  # nothing failed
    hs3 = pair.initiator.receive_message(hs2)
    assert hs3 is not None
    with raises("untrusted_peer"):
        pair.responder.receive_message(hs3)
    assert pair.responder.alert == encode_alert("untrusted_peer")


@pytest.mark.parametrize(("skew", "code"), [(0.0, "clock_skew"), (120.0, "untrusted_peer")])
def test_an_initiator_refusing_hs2_sends_its_code_and_the_responder_reads_it(
        skew: float, code: str) -> None:
    trust = [BOB.agent_id] if code == "clock_skew" else [CAROL.agent_id]
    pair = make_pair(HandshakePolicy(trust=trust, max_skew=skew))
    hs1 = pair.initiator.start()
    pair.r_clock.now += 5  # the responder's clock runs 5 s ahead
    hs2 = pair.responder.receive_message(hs1)
    assert hs2 is not None
    with raises(code):
        pair.initiator.receive_message(hs2)
    alert = pair.initiator.alert
    assert alert is not None and alert == encode_alert(code)
    with raises("peer_refused") as info:
        pair.responder.receive_message(alert)
    assert getattr(info.value, "claimed", None) == code
    assert pair.responder.state is HandshakeState.FAILED
    assert pair.responder.alert is None  # an alert is never answered
    with raises("peer_refused") as info:  # sticky, the claim included
        pair.responder.receive_message(b"x" * 100)
    assert getattr(info.value, "claimed", None) == code


def test_a_responder_refusing_hs1_answers_with_an_alert_the_initiator_reads() -> None:
    pair = make_pair()
    with raises("no_common_version"):
        pair.responder.receive_message(HS1_OFFERING_2)
    alert = pair.responder.alert
    assert alert is not None and alert == encode_alert("no_common_version")
    pair.initiator.start()
    with raises("peer_refused") as info:
        pair.initiator.receive_message(alert)
    assert getattr(info.value, "claimed", None) == "no_common_version"
    assert pair.initiator.alert is None


def test_an_alert_where_none_can_come_is_a_bad_message_and_never_answered() -> None:
    alert = encode_alert("untrusted_peer")
    pair = make_pair()
    with raises("malformed"):  # as HS1: too short (4.3 step 2)
        pair.responder.receive_message(alert)
    assert pair.responder.alert is None
    pair = make_pair()
    with raises("out_of_order"):  # before start
        pair.initiator.receive_message(alert)
    assert pair.initiator.alert is None
    pair = make_pair()
    pair.run()
    with raises("out_of_order"):  # after DONE: the finished handshake stands
        pair.responder.receive_message(alert)
    assert pair.responder.state is HandshakeState.DONE and pair.responder.alert is None


def test_a_malformed_alert_fails_the_handshake_without_an_answer() -> None:
    pair = make_pair()
    pair.initiator.start()
    with raises("malformed"):
        pair.initiator.receive_message(wire.encode_map(2, "untrusted_peer"))
    assert pair.initiator.state is HandshakeState.FAILED and pair.initiator.alert is None
    pair = make_pair()
    pair.initiator.start()
    with raises("malformed"):  # a truncated HS2 longer than an alert is answered
        pair.initiator.receive_message(bytes(40))
    assert pair.initiator.alert == encode_alert("malformed")


def test_a_callback_failure_is_sent_as_the_engine_keeps_it() -> None:
    def broken(peer: PeerKey) -> bool:
        raise KeyError(peer.agent_id)

    def foreign(peer: PeerKey) -> bool:
        raise KeyFileError("not a handshake matter", code="key_file_corrupt")

    for trust, sent in ((broken, "invalid_argument"), (foreign, None)):
        pair = make_pair(r_policy=HandshakePolicy(trust=trust))
        hs2 = pair.responder.receive_message(pair.initiator.start())
        assert hs2 is not None
        hs3 = pair.initiator.receive_message(hs2)
        assert hs3 is not None
        with pytest.raises(Exception):  # noqa: B017 (each has its own class)
            pair.responder.receive_message(hs3)
        assert pair.responder.alert == (None if sent is None else encode_alert(sent))
    assert alert_for("key_file_corrupt") is None



def test_each_kind_of_callback_fails_with_the_code_of_spec_7_1() -> None:
    # A trust or credentials callback's own exception is invalid_argument (7.1); one of
    # the clock or the random source reaches the caller unchanged and is kept, and sent,
    # as invalid_state (4.13).
    def credentials(peer: PeerKey, extensions: object) -> bool:
        raise KeyError(peer.agent_id)

    readings = iter([time.time()])

    def clock() -> float:
        return next(readings)  # StopIteration at the second reading (HS3)

    def random(size: int) -> bytes:
        raise OSError("no entropy")

    trust_then_credentials = HandshakePolicy(trust=lambda peer: True,
                                             credentials=credentials)
    for policy, kwargs, raised, kept in (
            (trust_then_credentials, {}, InvalidArgument, "invalid_argument"),
            (ANY, {"clock": clock}, StopIteration, "invalid_state"),
            (ANY, {"random": random}, OSError, "invalid_state")):
        initiator = Initiator(ALICE, ANY)
        responder = Responder(BOB, policy, **kwargs)
        with pytest.raises(raised):
            hs2 = responder.receive_message(initiator.start())
            assert hs2 is not None
            hs3 = initiator.receive_message(hs2)
            assert hs3 is not None
            responder.receive_message(hs3)
        assert responder.alert == encode_alert(kept)
        with raises(kept):
            responder.check_timeout()


def test_timeouts_send_an_alert_once_a_peer_was_heard_from() -> None:
    pair = make_pair()
    pair.responder.abort(HandshakeTimeout("late"))  # still waiting for HS1: nobody to tell
    assert pair.responder.state is HandshakeState.FAILED and pair.responder.alert is None
    pair = make_pair()
    pair.initiator.start()
    pair.initiator.abort(HandshakeTimeout("late"))
    assert pair.initiator.alert == encode_alert("handshake_timeout")
    pair = make_pair()
    pair.responder.receive_message(pair.initiator.start())
    pair.r_clock.now += 31
    with raises("handshake_timeout"):
        pair.responder.check_timeout()
    assert pair.responder.alert == encode_alert("handshake_timeout")
    pair = make_pair(ANY, ANY, i_identity=ALICE, r_identity=BOB)
    pair.run()
    pair.initiator.abort(HandshakeTimeout("late"))  # done: nothing changes
    assert pair.initiator.state is HandshakeState.DONE and pair.initiator.alert is None
    pair = make_pair()
    pair.responder.abort(DecodeError("a frame over the limit", code="oversize"))
    assert pair.responder.alert == encode_alert("oversize")  # a peer was heard from
    with raises("oversize"):  # and the failure is sticky
        pair.responder.receive_message(b"x" * 40)



@settings(max_examples=300, deadline=None, database=None)
@given(data=st.one_of(st.binary(max_size=MAX_ALERT),
                      st.sampled_from(sorted(ALERT_CODES)).map(encode_alert).flatmap(
                          lambda a: st.tuples(st.integers(0, len(a) - 1),
                                              st.integers(0, 255)).map(
                              lambda p: a[:p[0]] + bytes([p[1]]) + a[p[0] + 1:]))))
def test_any_short_message_reads_as_a_claim_or_a_decode_error(data: bytes) -> None:
    try:
        refused = read_alert(data)
    except DecodeError as exc:
        assert exc.code in {"malformed", "non_canonical", "unknown_field"}
    else:
        assert refused.claimed in ALERT_CODES and encode_alert(refused.claimed) == data

# ---------------------------------------------------------------- spec/vectors/alerts.json

ALERTS = json.loads((Path(__file__).resolve().parents[2] / "spec" / "vectors"
                     / "alerts.json").read_text())
NEGATIVE = {x["id"]: x for x in json.loads(
    (Path(__file__).resolve().parents[2] / "spec" / "vectors"
     / "handshake-negative.json").read_text())["vectors"]}


def replay(vector: dict[str, Any]) -> tuple[int, AgentAuthError, bytes | None]:
    """Feed a vector's steps to its engine: the step and error of the first failure, and
    the alert the engine then sends."""
    now = [0.0]
    engine = make_engine(vector["role"], Inputs.model_validate(vector["inputs"]),
                         lambda: now[0])
    for index, step in enumerate(vector["steps"]):
        now[0] = step["at"]
        try:
            if step["start"]:
                assert isinstance(engine, Initiator)
                engine.start()
            else:
                engine.receive_message(bytes.fromhex(step["receive"]))
        except AgentAuthError as exc:
            return index, exc, engine.alert
    raise AssertionError("no error")


def test_the_vector_file_covers_every_code_and_every_negative_handshake() -> None:
    assert {x["code"] for x in ALERTS["forms"]} == ALERT_CODES
    assert [x["handshake"] for x in ALERTS["sent"]] == list(NEGATIVE)
    ids = [x["id"] for group in ("forms", "reading", "sent", "received")
           for x in ALERTS[group]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("vector", ALERTS["forms"] + ALERTS["reading"],
                         ids=lambda x: x["id"])
def test_alert_bytes(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["alert"])
    if "code" in vector:
        assert encode_alert(vector["code"]) == data
        assert read_alert(data).claimed == vector["code"]
    else:
        with raises(vector["error"]):
            read_alert(data)


@pytest.mark.parametrize("vector", ALERTS["sent"], ids=lambda x: x["id"])
def test_the_alert_each_negative_handshake_sends(vector: dict[str, Any]) -> None:
    _, _, alert = replay(NEGATIVE[vector["handshake"]])
    assert alert == (None if vector["alert"] is None else bytes.fromhex(vector["alert"]))


@pytest.mark.parametrize("vector", ALERTS["received"], ids=lambda x: x["id"])
def test_an_engine_fed_an_alert(vector: dict[str, Any]) -> None:
    step, error, alert = replay(vector)
    assert (step, error.code) == (vector["error_step"], vector["error"])
    assert getattr(error, "claimed", None) == vector["claimed"]
    assert alert == (None if vector["alert"] is None else bytes.fromhex(vector["alert"]))

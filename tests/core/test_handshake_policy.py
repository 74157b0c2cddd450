"""Handshake policy, time and state: pinning, trust, clock skew, timeouts, version
selection, sticky failures, and what the engines' reprs may show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support import (
    ALICE,
    ANY,
    BOB,
    CAROL,
    T0,
    Pair,
    Tamper,
    complete,
    flip,
    make_pair,
    outcome,
    raises,
    run_tampered,
)

from agentauth import (
    AgentAuthError,
    HandshakePolicy,
    HandshakeState,
    Initiator,
    Responder,
    accept_any_peer,
    wire,
)
from agentauth.conformance.vectors import Forge, body2

M_E1 = bytes(range(32))


def state(engine: Initiator | Responder) -> HandshakeState:
    """The engine's state, read through a call (so that type checkers do not narrow it)."""
    return engine.state


def _refuse(peer: object) -> bool:
    return False


@pytest.mark.parametrize("side", ["initiator", "responder"])
@pytest.mark.parametrize(
    ("kwargs", "policy", "code"),
    [
        ({"expect": CAROL.agent_id}, ANY, "unexpected_peer"),
        ({"expect": CAROL.peer}, ANY, "unexpected_peer"),
        ({}, HandshakePolicy(trust=[CAROL.agent_id]), "untrusted_peer"),
        ({}, HandshakePolicy(trust=_refuse), "untrusted_peer"),
        ({}, HandshakePolicy(trust=[ALICE.agent_id, BOB.agent_id]), "ok"),
    ],
    ids=["expect-id", "expect-key", "allow-list", "callback", "allow-list-ok"],
)
def test_pinning_and_trust(side: str, kwargs: dict[str, Any], policy: HandshakePolicy,
                           code: str) -> None:
    if side == "initiator":
        pair = make_pair(i_policy=policy, i_kwargs=kwargs)
    else:
        pair = make_pair(r_policy=policy, r_kwargs=kwargs)
    expected = ("none", "ok") if code == "ok" else (side, code)
    assert complete(pair) == expected


@pytest.mark.parametrize(("trust", "code"), [(ALICE.agent_id, "invalid_argument"),
                                             (42, "invalid_argument"),
                                             (["did:key:x"], "agent_id_prefix"),
                                             ([BOB.agent_id + "0"], "agent_id_encoding")])
def test_trust_must_be_a_callable_or_agent_ids(trust: Any, code: str) -> None:
    with raises(code):
        HandshakePolicy(trust=trust)


def test_trust_callback_sees_the_authenticated_peer() -> None:
    seen: list[object] = []

    def trust(peer: object) -> bool:
        seen.append(peer)
        return True

    policy = HandshakePolicy(trust=trust)
    make_pair(policy, policy).run()
    assert seen == [BOB.peer, ALICE.peer]


@pytest.mark.parametrize(
    ("i_offset", "r_offset", "i_skew", "side", "code"),
    [
        (0, 121, 120.0, "initiator", "clock_skew"),  # responder ahead
        (0, -121, 120.0, "initiator", "clock_skew"),  # responder behind
        (0, 120, 120.0, "none", "ok"),  # exactly at the limit
        (500, 0, 1000.0, "responder", "clock_skew"),  # initiator ahead
        (-500, 0, 1000.0, "responder", "clock_skew"),  # initiator behind
        (0, 0, 0.0, "none", "ok"),  # no skew allowed, none present
    ],
)
def test_clock_skew(i_offset: float, r_offset: float, i_skew: float, side: str,
                    code: str) -> None:
    pair = make_pair(HandshakePolicy(trust=accept_any_peer, max_skew=i_skew))
    pair.i_clock.now += i_offset
    pair.r_clock.now += r_offset
    assert complete(pair) == (side, code)


@pytest.mark.parametrize(("delay", "code"), [(30.0, "ok"), (30.5, "handshake_timeout")])
@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_timeout_on_the_next_message(side: str, delay: float, code: str) -> None:
    hs1, hs2, hs3 = make_pair().run()
    pair = make_pair()
    if side == "initiator":
        pair.initiator.start()
        pair.i_clock.now += delay
        assert outcome(lambda: pair.initiator.receive_message(hs2)) == code
    else:
        pair.responder.receive_message(hs1)
        pair.r_clock.now += delay
        assert outcome(lambda: pair.responder.receive_message(hs3)) == code


@pytest.mark.parametrize("role", ["initiator", "responder"])
def test_check_timeout(role: str) -> None:
    pair = make_pair()
    hs1 = make_pair().initiator.start()
    engine, clock = ((pair.initiator, pair.i_clock) if role == "initiator"
                     else (pair.responder, pair.r_clock))
    clock.now += 1000
    engine.check_timeout()  # not started: no limit yet
    assert state(engine) in (HandshakeState.START, HandshakeState.AWAIT_HS1)
    clock.now = T0
    if role == "initiator":
        pair.initiator.start()
    else:
        pair.responder.receive_message(hs1)
    clock.now = T0 + 30
    engine.check_timeout()
    clock.now = T0 + 30.001
    with raises("handshake_timeout"):
        engine.check_timeout()
    assert state(engine) is HandshakeState.FAILED
    clock.now = T0  # even if the clock goes back, the failure stays
    with raises("handshake_timeout"):
        engine.receive_message(hs1)


def test_check_timeout_after_done_is_quiet() -> None:
    pair = make_pair()
    pair.run()
    pair.i_clock.now += 10**6
    pair.r_clock.now += 10**6
    pair.initiator.check_timeout()
    pair.responder.check_timeout()
    assert pair.initiator.result is not None and pair.responder.result is not None


def _forged_hs2(version: int) -> tuple[Initiator, bytes]:
    pair = make_pair()
    forge = Forge()
    forge.read_hs1(pair.initiator.start())
    return pair.initiator, forge.write_hs2(M_E1, body2(version, BOB.public_bytes, int(T0), {}),
                                           BOB)


@pytest.mark.parametrize(("version", "code"), [(1, "ok"), (2, "downgrade"), (0, "downgrade")])
def test_downgrade(version: int, code: str) -> None:
    # Validly signed by Bob: only the version is wrong (version 1 shows the forge is right).
    initiator, hs2 = _forged_hs2(version)
    assert outcome(lambda: initiator.receive_message(hs2)) == code


@pytest.mark.parametrize("offer", [[1, 2], [1, 3, 9]])
def test_offer_edited_in_transit(offer: list[int]) -> None:
    # The responder accepts the edited offer and still selects 1; the initiator's T2 differs.
    # spec 4.9 says this gives bad_signature, but T2 is also the associated data of HS2's
    # AEAD (4.8, 4.5 step 6), so the tag fails first: decrypt_failed.
    result = run_tampered(make_pair(), 1, lambda m: m[:32] + wire.encode_map(offer))
    assert result == ("initiator", "decrypt_failed")


@pytest.mark.parametrize(
    ("offer", "result"),
    [([1], 1), ([1, 2], 1), ([1, 7, 65535], 1), ([2], "no_common_version"),
     ([2, 1], "non_canonical"), ([1, 1], "non_canonical"), ([], "malformed"),
     ([0, 1], "malformed"), ([1, 65536], "malformed"), (list(range(1, 10)), "malformed")],
)
def test_responder_version_selection(offer: list[int], result: int | str) -> None:
    pair, forge = make_pair(), Forge()
    try:
        hs2 = pair.responder.receive_message(forge.write_hs1(M_E1, wire.encode_map(offer)))
    except AgentAuthError as exc:
        assert exc.code == result
        return
    version = wire.decode_map(forge.read_hs2(hs2 or b"")[64:], 4, 65535, "HS2")[0]
    assert version == result


def _hs2_to_initiator(pair: Pair, tamper: Tamper) -> object:
    hs2 = pair.responder.receive_message(pair.initiator.start()) or b""
    return pair.initiator.receive_message(tamper(hs2))


FAILURES: list[tuple[str, Callable[[Pair], object]]] = [
    ("decrypt_failed", lambda p: _hs2_to_initiator(p, lambda m: flip(m, -1))),
    ("out_of_order", lambda p: p.initiator.receive_message(b"x" * 200)),
    ("oversize", lambda p: _hs2_to_initiator(p, lambda m: bytes(70000))),
    ("unexpected_peer", lambda p: _hs2_to_initiator(p, bytes)),
]


@pytest.mark.parametrize(("code", "fail"), FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_is_sticky(code: str, fail: Callable[[Pair], object]) -> None:
    pair = make_pair(i_kwargs={"expect": CAROL.agent_id})
    good_hs2 = make_pair().run()[1]
    engine = pair.initiator
    for call in (lambda: fail(pair), lambda: engine.receive_message(good_hs2), engine.start,
                 engine.check_timeout, lambda: engine.receive_message(b"")):
        assert outcome(call) == code
        assert engine.state is HandshakeState.FAILED and engine.result is None


def test_start_twice_is_invalid_state_and_not_fatal() -> None:
    pair = make_pair()
    hs1 = pair.initiator.start()
    with raises("invalid_state"):
        pair.initiator.start()
    assert pair.initiator.state is HandshakeState.AWAIT_HS2
    hs3 = pair.initiator.receive_message(pair.responder.receive_message(hs1) or b"")
    pair.responder.receive_message(hs3 or b"")
    with raises("invalid_state"):
        pair.initiator.start()
    assert state(pair.initiator) is HandshakeState.DONE


@pytest.mark.parametrize("role", ["initiator", "responder"])
def test_late_duplicate_after_done(role: str) -> None:
    # spec 4.13: anything after DONE is out_of_order; the engine stays DONE (a late
    # duplicate cannot undo a finished handshake) and the session keeps working.
    pair = make_pair()
    _, hs2, hs3 = pair.run()
    engine = pair.initiator if role == "initiator" else pair.responder
    with raises("out_of_order"):
        engine.receive_message(hs2 if role == "initiator" else hs3)
    assert state(engine) is HandshakeState.DONE and engine.result is not None
    with raises("out_of_order"):  # and again: not sticky, since nothing failed
        engine.receive_message(hs2 if role == "initiator" else hs3)
    a, b = pair.sessions()
    assert b.open(a.seal(b"still fine")) == b"still fine"


@pytest.mark.parametrize("message", [None, "text", bytearray(200), memoryview(bytes(200))],
                         ids=["none", "str", "bytearray", "memoryview"])
@pytest.mark.parametrize("role", ["initiator", "responder"])
def test_non_bytes_message_changes_nothing(role: str, message: Any) -> None:
    # spec 4.13 check 3: a message that is not a byte string is refused with
    # invalid_argument and changes nothing, not even the timeout clock.
    hs1, hs2, hs3 = make_pair().run()
    pair = make_pair()
    if role == "initiator":
        pair.initiator.start()
    engine = pair.initiator if role == "initiator" else pair.responder
    before = state(engine)
    with raises("invalid_argument"):
        engine.receive_message(message)
    assert state(engine) is before
    assert engine._started == (T0 if role == "initiator" else None)  # timeout clock untouched
    reply = engine.receive_message(hs2 if role == "initiator" else hs1)
    assert reply == (hs3 if role == "initiator" else hs2)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_skew": -1.0}, {"timeout": 0.0}, {"versions": ()}, {"versions": (2,)},
     {"versions": (1, 1)}, {"max_message": 10}],
    ids=["skew", "timeout", "no-versions", "unknown-version", "repeated", "max-message"],
)
def test_policy_validation(kwargs: dict[str, Any]) -> None:
    # Refused when the policy is made, not at the end of a verified handshake.
    with raises("invalid_argument"):
        HandshakePolicy(trust=accept_any_peer, **kwargs)

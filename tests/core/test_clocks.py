"""Spec 1.4: every check that reads a clock, at the edges of its table row, with readings
that have a fraction. Times written on the wire are the writer's reading rounded down;
each check compares with the reading unrounded, or rounded down where the table says so.
"""

from __future__ import annotations

import pytest
from support import ALICE, BOB, T0, Clock, complete, make_pair, raises
from support.chains import ANCHORS, NOW, PARENT_GRANT, REQUEST, ROOT

from agentauth import (
    HandshakePolicy,
    MemoryReplayStore,
    PendingRequests,
    accept_any_peer,
    open_envelope,
    seal,
)
from agentauth.capability import (
    DetachedInvocations,
    SessionInvocations,
    delegate,
    encode_chain,
    invoke,
)
from agentauth.capability.revocation import QuotaSweep
from agentauth.http import HTTPMessage, Signer, Verifier

SKEW = 60  # the default skew of envelopes, HTTP signatures and capability checks


# ------------------------------------------------------------------ the handshake


@pytest.mark.parametrize(("responder_offset", "expected"), [
    (-119.5, ("none", "ok")),  # HS2 says T0 - 120; |T0 - 120 - floor(T0 + 0.9)| = 120
    (-120.5, ("initiator", "clock_skew")),  # HS2 says T0 - 121
])
def test_the_handshake_timestamp_is_compared_with_the_reading_rounded_down(
        responder_offset: float, expected: tuple[str, str]) -> None:
    # Unrounded, the first case would be 120.9 s apart and refused.
    pair = make_pair(HandshakePolicy(trust=accept_any_peer, max_skew=120.0))
    pair.i_clock.now = T0 + 0.9
    pair.r_clock.now = T0 + responder_offset
    assert complete(pair) == expected


@pytest.mark.parametrize(("at", "refused"), [(30.7, False), (30.7001, True)])
def test_the_handshake_time_out_counts_from_the_unrounded_start(at: float,
                                                                refused: bool) -> None:
    pair = make_pair()
    pair.i_clock.now = T0 + 0.7
    pair.initiator.start()
    pair.i_clock.now = T0 + at
    if refused:
        with raises("handshake_timeout"):
            pair.initiator.check_timeout()
    else:
        pair.initiator.check_timeout()


# ---------------------------------------------------------------- capabilities


def chain(not_before: int = NOW - 100) -> bytes:
    return encode_chain([delegate(ROOT, ALICE, [PARENT_GRANT], not_before=not_before,
                                  expires=NOW + 3600)])


@pytest.mark.parametrize(("reading", "code"), [
    (NOW - 100 - SKEW - 0.001, "not_yet_valid"),
    (NOW - 100 - SKEW, "ok"),
    (NOW + 3600 + SKEW - 0.001, "ok"),
    (NOW + 3600 + SKEW, "expired"),
])
def test_a_chain_window_is_the_same_rounded_or_not(reading: float, code: str) -> None:
    binding = bytes(range(64))
    checker = SessionInvocations(ANCHORS, peer=ALICE.peer, channel_binding=binding,
                                 clock=lambda: reading)
    invocation = invoke(chain(), REQUEST, channel_binding=binding, clock=lambda: NOW)
    if code == "ok":
        checker.check(invocation)
    else:
        with raises(code):
            checker.check(invocation)


@pytest.mark.parametrize(("reading", "code"), [
    (NOW + 120 + SKEW + 0.999, "ok"),  # rounded down: NOW + 180
    (NOW + 120 + SKEW + 1, "stale_invocation"),
    (NOW - 120 - SKEW, "ok"),  # the invocation says NOW, not NOW + 1
    (NOW - 120 - SKEW - 0.001, "stale_invocation"),
])
def test_a_detached_invocation_is_compared_with_the_reading_rounded_down(
        reading: float, code: str) -> None:
    invocation = invoke(chain(NOW - 1000), REQUEST, verifier=BOB.peer, holder=ALICE,
                        clock=lambda: NOW + 0.999)
    checker = DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: reading)
    if code == "ok":
        checker.check(invocation)
    else:
        with raises(code):
            checker.check(invocation)


# ------------------------------------------------------------------- envelopes


@pytest.mark.parametrize(("reading", "code"), [
    (T0 + 300 + SKEW, "ok"),
    (T0 + 300 + SKEW + 0.001, "stale"),
    (T0 - SKEW, "ok"),  # the envelope says T0, not T0 + 1
    (T0 - SKEW - 0.001, "clock_skew"),
])
def test_an_envelope_is_compared_with_the_unrounded_reading(reading: float,
                                                            code: str) -> None:
    envelope = seal(ALICE, BOB, b"hello", clock=lambda: T0 + 0.999)
    store = MemoryReplayStore(clock=lambda: reading)
    if code == "ok":
        assert open_envelope(envelope, BOB, store, clock=lambda: reading).payload == b"hello"
    else:
        with raises(code):
            open_envelope(envelope, BOB, store, clock=lambda: reading)


@pytest.mark.parametrize(("reading", "code"), [(T0 + 10.5, "ok"),
                                               (T0 + 10.5001, "unexpected_reply")])
def test_a_request_awaits_its_reply_until_its_unrounded_expiry(reading: float,
                                                               code: str) -> None:
    clock = Clock(T0 + 0.5)
    pending = PendingRequests(clock=clock)
    request = pending.request(ALICE, BOB, b"ping", timeout=10)
    asked = open_envelope(request, BOB, MemoryReplayStore(clock=clock), clock=clock)
    reply = seal(BOB, ALICE, b"pong", reply_to=asked.nonce, clock=clock)
    clock.now = reading
    store = MemoryReplayStore(clock=clock)
    if code == "ok":
        open_envelope(reply, ALICE, store, clock=clock, pending=pending)
    else:
        with raises(code):
            open_envelope(reply, ALICE, store, clock=clock, pending=pending)


# ------------------------------------------------------------------------ HTTP


@pytest.mark.parametrize(("lifetime", "reading", "code"), [
    (60, T0 + 60 + SKEW, "ok"),
    (60, T0 + 60 + SKEW + 0.001, "signature_expired"),
    (3600, T0 + 300 + SKEW, "ok"),
    (3600, T0 + 300 + SKEW + 0.001, "stale"),
    (60, T0 - SKEW, "ok"),  # created says T0, not T0 + 1
    (60, T0 - SKEW - 0.001, "clock_skew"),
])
def test_an_http_signature_is_compared_with_the_unrounded_reading(
        lifetime: int, reading: float, code: str) -> None:
    message = HTTPMessage.from_headers([("host", "agents.test")], method="GET",
                                       authority="agents.test", path="/tasks", query="")
    signer = Signer(BOB, lifetime=lifetime, clock=Clock(T0 + 0.999))
    message = message.with_fields(signer.sign_request(message, None).headers, replace=True)
    verifier = Verifier([BOB], clock=Clock(reading))
    if code == "ok":
        assert verifier.check_request(message, None).created == T0
    else:
        with raises(code):
            verifier.check_request(message, None)


# ---------------------------------------------------------------- replay stores


def test_a_replay_entry_lives_while_the_store_reading_is_at_most_its_expiry() -> None:
    clock = Clock(T0 + 10.5)
    store = MemoryReplayStore(clock=clock)
    assert store.check_and_insert(b"first", T0 + 10.5) is True
    clock.now = T0 + 10.5001
    assert store.check_and_insert(b"second", T0 + 10.5) is False  # never inserted
    clock.now = T0
    assert store.check_and_insert(b"second", T0 + 10.5) is True


def test_a_revocation_store_forgets_by_the_reading_rounded_down() -> None:
    # A store at a key's quota forgets notices with floor(r) >= expires + 300 (10.8); its
    # prune takes the reading rounded down (tests/capability/test_revocation.py pins the
    # bound itself).
    asked: list[int] = []

    def prune(now: int) -> int:
        asked.append(now)
        return 0

    assert QuotaSweep(lambda: T0 + 0.999, prune)() is False
    assert asked == [int(T0)] and type(asked[0]) is int

"""The frames of spec 15 and the serving side's checks, without I/O: round trips, the
order of the checks, and hostile bytes (random and mutated frames give only typed errors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentauth import (
    ERROR_CODES,
    AgentAuthError,
    CapabilityDenied,
    DecodeError,
    Identity,
    InvalidArgument,
    PeerRefused,
    Refusal,
    StoreError,
    wire,
)
from agentauth.agent.frames import (
    Call,
    Refused,
    Requests,
    Route,
    decode_frame,
    encode_cancel,
    encode_error,
    encode_present,
    encode_request,
    encode_response,
    error_from_frame,
)
from agentauth.capability import Grant, decode_chain, delegate, encode_chain
from agentauth.identity import PeerKey

ALICE, BOB = Identity.from_seed(bytes(32)), Identity.from_seed(bytes([1]) * 32)
NOW = 1_800_000_000
LIMIT = 65_536
CHAIN = encode_chain([delegate(ALICE, BOB.agent_id, [Grant("reports/**", {"read"})],
                               not_before=NOW - 10, expires=NOW + 3600)])
FRAMES = [
    encode_present(1, CHAIN),
    encode_request(7, "reports/q3", "read", {"size": 5, "name": "x"}, b"body", 1),
    encode_response(7, b"answer"),
    encode_error(7, CapabilityDenied("no", code="not_authorized",
                                     refusal=Refusal("action", 0, 0))),
    encode_cancel(7),
]
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


class Answered:
    """A channel's :class:`Requests` whose checks ``revoked`` answers, as the agent gives
    them a memory store's method; the ids each check asked about are kept."""

    def __init__(self, state: Requests, revoked: Callable[[bytes], object]) -> None:
        self.state = state
        self.revoked = revoked
        self.asked: list[tuple[bytes, ...]] = []

    def receive(self, data: bytes) -> Any:
        flow = self.state.receiving(data)
        try:
            ids = next(flow)
            while True:
                self.asked.append(ids)
                ids = flow.send(self.revoked)
        except StopIteration as done:
            return done.value

    @property
    def in_flight(self) -> set[int]:
        return self.state.in_flight

    def done(self, request_id: int) -> None:
        self.state.done(request_id)


def requests(*, revoked: bool = False, max_in_flight: int = 4) -> Answered:
    return Answered(Requests(PeerKey(BOB.public_bytes), {ALICE.agent_id: "**"},
                             (Route.make("reports/*", "read", "handler"),),
                             max_payload=LIMIT, max_in_flight=max_in_flight,
                             clock=lambda: float(NOW)), lambda _: revoked)


def test_frames_round_trip() -> None:
    kinds = [decode_frame(f, LIMIT).kind for f in FRAMES]
    assert kinds == [1, 2, 3, 4, 5]
    error = error_from_frame(decode_frame(FRAMES[3], LIMIT))
    assert isinstance(error, CapabilityDenied) and error.code == "not_authorized"
    assert error.refusal == Refusal("action", 0, 0)


def test_a_request_passes_the_checks_in_order() -> None:
    state = requests()
    assert state.receive(FRAMES[0]) is None
    call = state.receive(FRAMES[1])
    assert isinstance(call, Call) and call.handler == "handler" and call.body == b"body"
    # 2. the same id again while in flight ends the channel: a broken peer
    with pytest.raises(AgentAuthError) as caught:
        state.receive(FRAMES[1])
    assert caught.value.code == "out_of_order"
    assert state.receive(encode_cancel(7)) == 7
    state.done(7)
    assert isinstance(state.receive(FRAMES[1]), Call)


@pytest.mark.parametrize(("frame", "code"), [
    (encode_request(1, "reports/a/b", "read", {}, b"", 1), "no_handler"),
    (encode_request(1, "other/x", "read", {}, b"", 1), "not_authorized"),
    (encode_request(1, "reports/qx", "read", {}, b"", 0), "not_authorized"),
    (encode_request(1, "reports/qx", "read", {}, b"", 2), "unknown_chain"),
    (encode_request(1, "reports/x", "read", {}, b"x" * (LIMIT - 16_000), 1), "oversize"),
    (encode_request(1, "../x", "read", {}, b"", 1), "malformed"),
])
def test_refusals_become_error_frames(frame: bytes, code: str) -> None:
    state = requests()
    state.receive(FRAMES[0])
    out = state.receive(frame)
    assert isinstance(out, Refused) and out.error.code == code
    assert error_from_frame(decode_frame(out.frame, LIMIT)).code == code
    assert not state.in_flight


def test_revocation_is_asked_at_every_use() -> None:
    answers = [False, False, True]
    state = Answered(Requests(PeerKey(BOB.public_bytes), {ALICE.agent_id: "**"},
                              (Route.make("reports/**", "read", "h"),), max_payload=LIMIT,
                              clock=lambda: float(NOW)), lambda _: answers.pop(0))
    state.receive(FRAMES[0])  # asks once
    assert isinstance(state.receive(FRAMES[1]), Call)  # asks again
    out = state.receive(encode_request(8, "reports/q3", "read", {}, b"", 1))
    assert isinstance(out, Refused) and out.error.code == "revoked"
    # One question per use, for every link of the chain at once.
    assert state.asked == [(decode_chain(CHAIN)[0].id,)] * 3


def test_a_store_failure_refuses_the_request_with_its_error_and_spares_the_chain() -> None:
    failing = True

    def revoked(link_id: bytes) -> bool:
        if failing:
            raise StoreError("the revocation store failed: it is locked",
                             code="store_unavailable")
        return False

    state = Answered(Requests(PeerKey(BOB.public_bytes), {ALICE.agent_id: "**"},
                              (Route.make("reports/**", "read", "h"),), max_payload=LIMIT,
                              clock=lambda: float(NOW)), revoked)
    assert state.receive(FRAMES[0]) is None  # presented while the store fails
    out = state.receive(FRAMES[1])
    assert isinstance(out, Refused) and out.error.code == "store_unavailable"
    told = error_from_frame(decode_frame(out.frame, LIMIT))
    assert isinstance(told, StoreError) and "locked" in told.message
    assert not state.in_flight
    failing = False  # the store is back: the chain presented meanwhile serves
    assert isinstance(state.receive(FRAMES[1]), Call)


def test_an_answer_that_is_not_exactly_false_refuses() -> None:
    state = requests()
    state.revoked = lambda _: None  # fail closed: only False lets a link through
    state.receive(FRAMES[0])
    out = state.receive(FRAMES[1])
    assert isinstance(out, Refused) and out.error.code == "invalid_argument"


def test_a_store_failing_at_present_is_not_kept_as_the_chains_refusal() -> None:
    answers: list[object] = [StoreError("the store is down", code="store_unavailable")]

    def revoked(link_id: bytes) -> bool:
        answer = answers.pop(0) if answers else False
        if isinstance(answer, StoreError):
            raise answer
        return bool(answer)

    state = Answered(Requests(PeerKey(BOB.public_bytes), {ALICE.agent_id: "**"},
                              (Route.make("reports/**", "read", "h"),),
                              max_payload=LIMIT, clock=lambda: float(NOW)), revoked)
    state.receive(FRAMES[0])  # the store fails now: nothing is decided for good
    assert isinstance(state.receive(FRAMES[1]), Call)  # it answers now: checked, allowed
    answers.append(StoreError("the store is down", code="store_unavailable"))
    out = state.receive(encode_request(8, "reports/q3", "read", {}, b"", 1))
    assert isinstance(out, Refused) and out.error.code == "store_unavailable"  # closed


def test_the_bounds_of_a_channel() -> None:
    state = requests(max_in_flight=2)
    state.receive(FRAMES[0])
    for n in (1, 2):
        assert isinstance(state.receive(encode_request(n, "reports/qa", "read", {}, b"", 1)),
                          Call)
    out = state.receive(encode_request(3, "reports/qa", "read", {}, b"", 1))
    assert isinstance(out, Refused) and out.error.code == "over_limit"
    for ref in range(2, 17):
        state.receive(encode_present(ref, CHAIN))
    with pytest.raises(AgentAuthError) as caught:
        state.receive(encode_present(17, CHAIN))
    assert caught.value.code == "over_limit"


def test_an_error_frame_never_raises_a_local_error_at_the_requester() -> None:
    frame = decode_frame(encode_error(1, InvalidArgument("a secret detail")), LIMIT)
    assert frame.code == "handler_failed"  # the serving side hides its own faults
    assert "secret" not in frame.reason
    forged = wire.encode_map(4, 1, "invalid_argument", "x", {})  # a peer that sends one
    assert error_from_frame(decode_frame(forged, LIMIT)).code == "malformed"


def test_peer_refused_is_never_a_servers_answer() -> None:
    # A handler's PeerRefused is another peer's claim, relayed: handler_failed (15.5);
    # and an ERROR frame naming peer_refused is malformed, never a PeerRefused.
    relayed = PeerRefused("an upstream peer refused", claimed="untrusted_peer")
    frame = decode_frame(encode_error(1, relayed), LIMIT)
    assert (frame.code, frame.reason) == ("handler_failed",
                                          "the request failed on the serving side")
    forged = wire.encode_map(4, 1, "peer_refused", "x", {})
    told = error_from_frame(decode_frame(forged, LIMIT))
    assert type(told) is DecodeError and told.code == "malformed"


def _mutated() -> st.SearchStrategy[bytes]:
    def mutate(data: bytes, index: int, mask: int, cut: int, junk: bytes) -> bytes:
        out = bytearray(data)
        out[index % len(out)] ^= mask or 1
        return bytes(out[: max(1, len(out) - cut)]) + junk
    return st.builds(mutate, st.sampled_from(FRAMES), st.integers(0, 10_000),
                     st.integers(0, 255), st.integers(0, 4), st.binary(max_size=3))


@FUZZ
@given(st.one_of(st.binary(max_size=300), _mutated()))
def test_hostile_frames_give_only_typed_errors(data: bytes) -> None:
    state = requests()
    state.receive(FRAMES[0])
    for step in (lambda: decode_frame(data, LIMIT), lambda: state.receive(data)):
        try:
            step()
        except AgentAuthError as exc:
            assert exc.code in ERROR_CODES
            assert isinstance(exc, ERROR_CODES[exc.code][0])


_POOL = [*FRAMES, encode_present(2, b"not a chain"), encode_present(1, CHAIN),
         *(encode_request(n, "reports/q3", "read", {}, b"", ref) for n in (1, 2, 3)
           for ref in (0, 1, 2)),
         *(encode_cancel(n) for n in (1, 2, 3))]


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(_POOL), _mutated()), max_size=30),
       st.lists(st.integers(0, 8), max_size=30))
def test_frames_in_any_order_keep_the_state_within_its_bounds(
        frames: list[bytes], finished: list[int]) -> None:
    state = requests(max_in_flight=2)
    for data, done in zip(frames, [*finished, *[0] * len(frames)], strict=False):
        try:
            out = state.receive(data)
        except AgentAuthError as exc:
            assert isinstance(exc, ERROR_CODES[exc.code][0])
            continue
        assert out is None or isinstance(out, Call | Refused | int)
        assert len(state.in_flight) <= 2
        state.done(done)  # a handler that finished (or an id never used: no effect)

"""Property tests: whatever bytes arrive, the only outcomes are a valid result or an
agentauth error whose code is registered (and of the registered class).

Inputs are random bytes or valid messages mutated by bit flips, truncation, insertion
and splicing. Every example builds its own engines or sessions (the deterministic set-up
reproduces the recorded bytes), so examples are independent.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import flip, make_pair, sessions

from agentauth import (
    ERROR_CODES,
    AgentAuthError,
    HandshakeState,
    Identity,
    Initiator,
    PeerKey,
    RemoteError,
    Responder,
    format_agent_id,
    parse_agent_id,
    wire,
)

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

HS1, HS2, HS3 = make_pair().run()
HANDSHAKE = [HS1, HS2, HS3]


def _session_corpus() -> list[bytes]:
    sender, _ = sessions(True)
    return [sender.seal(b"hello"), sender.seal(b""), sender.rekey(), sender.seal(b"after"),
            sender.close()]


SESSION = _session_corpus()
MAPS = [wire.encode_map(), wire.encode_map(1), wire.encode_map(1, b"\x00" * 32, 2**40, {}),
        wire.encode_map([1, 2], "text", None, True, -5), HS1[32:], HS2[32:40]]
AGENT_IDS = [Identity.from_seed(bytes([i]) * 32).agent_id for i in range(3)]


@st.composite
def mutated(draw: st.DrawFn, corpus: list[bytes], pool: list[bytes] | None = None) -> bytes:
    """A message of ``corpus``, then one mutation (splices take a tail from ``pool``)."""
    base = draw(st.sampled_from(corpus))
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "splice", "none"]))
    if kind == "flip" and base:
        index = draw(st.integers(0, len(base) - 1))
        return flip(base, index, 1 << draw(st.integers(0, 7)))
    if kind == "truncate":
        return base[:draw(st.integers(0, len(base)))]
    if kind == "insert":
        at = draw(st.integers(0, len(base)))
        return base[:at] + draw(st.binary(min_size=1, max_size=8)) + base[at:]
    if kind == "splice":
        other = draw(st.sampled_from(pool or corpus))
        return base[:draw(st.integers(0, len(base)))] + other[draw(st.integers(0, len(other))):]
    return base


def messages(corpus: list[bytes], pool: list[bytes] | None = None) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), mutated(corpus, pool))


def attempt(call: Callable[[], object]) -> tuple[bool, object]:
    """(True, result) or (False, code); anything but an agentauth error fails the test."""
    try:
        return True, call()
    except AgentAuthError as exc:
        assert exc.code in ERROR_CODES, exc
        assert isinstance(exc, ERROR_CODES[exc.code][0]), exc
        return False, exc.code


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), mutated(MAPS)), fields=st.integers(0, 15),
       limit=st.integers(0, 300))
def test_decode_map(data: bytes, fields: int, limit: int) -> None:
    ok, values = attempt(lambda: wire.decode_map(data, fields, limit, "fuzz"))
    if ok:  # canonical: exactly one encoding, the one the encoder writes
        assert isinstance(values, list) and len(values) == fields
        assert wire.encode_map(*values) == data and len(data) <= limit
    elif len(data) > limit:
        assert values == "oversize"


@st.composite
def agent_id_texts(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(AGENT_IDS))
    at = draw(st.integers(0, len(text)))
    cut = draw(st.integers(at, min(len(text), at + 3)))
    return text[:at] + draw(st.text(max_size=3)) + text[cut:]


@FUZZ
@given(text=st.one_of(st.text(max_size=80), agent_id_texts()))
def test_parse_agent_id(text: str) -> None:
    ok, key = attempt(lambda: parse_agent_id(text))
    if ok:  # strict: only the canonical form of a 32-byte key parses
        assert isinstance(key, bytes) and len(key) == 32
        assert format_agent_id(key) == text
    else:
        assert key in {"agent_id_prefix", "agent_id_encoding", "agent_id_multicodec",
                       "agent_id_length"}


@FUZZ
@given(data=st.binary(max_size=64))
def test_peer_key_from_bytes(data: bytes) -> None:
    ok, key = attempt(lambda: PeerKey.from_bytes(data))
    assert ok == (len(data) == 32)
    if ok:
        assert isinstance(key, PeerKey)
        assert PeerKey.from_agent_id(key.agent_id) == key
    else:
        assert key == "invalid_key"


Engine = Initiator | Responder


def _initiator(state: HandshakeState) -> Initiator:
    pair = make_pair()
    if state is HandshakeState.AWAIT_HS2:
        pair.initiator.start()
    elif state is HandshakeState.DONE:
        pair.run()
    return pair.initiator


def _responder(state: HandshakeState) -> Responder:
    pair = make_pair()
    if state is not HandshakeState.AWAIT_HS1:
        pair.responder.receive_message(HS1)
    if state is HandshakeState.DONE:
        pair.responder.receive_message(HS3)
    return pair.responder


# (engine factory, state, the one message it expects, or None: no message is expected)
ENGINES: list[tuple[Callable[[HandshakeState], Engine], HandshakeState, bytes | None]] = [
    (_initiator, HandshakeState.START, None),
    (_initiator, HandshakeState.AWAIT_HS2, HS2),
    (_initiator, HandshakeState.DONE, None),
    (_responder, HandshakeState.AWAIT_HS1, HS1),
    (_responder, HandshakeState.AWAIT_HS3, HS3),
    (_responder, HandshakeState.DONE, None),
]


@pytest.mark.parametrize(("factory", "state", "expected"), ENGINES,
                         ids=[f"{f.__name__[1:]}-{s.value}" for f, s, _ in ENGINES])
@FUZZ
@given(data=st.data())
def test_engine(factory: Callable[[HandshakeState], Engine], state: HandshakeState,
                expected: bytes | None, data: st.DataObject) -> None:
    message = data.draw(messages([expected] if expected else HANDSHAKE, HANDSHAKE))
    engine = factory(state)
    assert engine.state is state
    ok, result = attempt(lambda: engine.receive_message(message))
    if expected is None:  # no message is expected in this state
        assert (ok, result) == (False, "out_of_order")
    elif ok and expected != HS1:  # HS2 and HS3 are authenticated: only the real one passes
        assert message == expected
    if not ok and state is HandshakeState.DONE:  # a finished handshake stays finished
        assert engine.state is HandshakeState.DONE and engine.result is not None
    elif not ok:  # failed for good (spec 4.13)
        assert engine.state is HandshakeState.FAILED and engine.result is None
        assert attempt(lambda: engine.receive_message(expected or HS1)) == (False, result)
    if not ok:
        assert issubclass(ERROR_CODES[str(result)][0], RemoteError)


@pytest.mark.parametrize("ordered", [True, False])
@FUZZ
@given(batch=st.lists(messages(SESSION), min_size=1, max_size=5))
def test_session_open(ordered: bool, batch: list[bytes]) -> None:
    _, receiver = sessions(ordered)
    for message in batch:
        ok, payload = attempt(partial(receiver.open, message))
        if ok:  # authenticated: only messages the sender really sealed open
            assert message in SESSION
            assert payload in (b"hello", b"", b"after", None)

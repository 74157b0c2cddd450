"""Misuse and hostile-environment cases: bad clocks, misbehaving callbacks, copies and
pickles of key-holding objects, and what failed steps leave behind in tracebacks.
"""

from __future__ import annotations

import copy
import gc
import math
import os
import pickle
import signal
import threading
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import ALICE, ANY, BOB, T0, Pair, make_pair, outcome, raises, sessions

import agentauth
from agentauth import (
    ERROR_CODES,
    AgentAuthError,
    HandshakePolicy,
    HandshakeState,
    Initiator,
    PeerKey,
    Responder,
    accept_any_peer,
    crypto,
)
from agentauth.handshake import MAX_HANDSHAKE_MESSAGE
from agentauth.noise import CipherState, SymmetricState
from agentauth.session import COUNTER_MASK, EPOCH_BITS

PACKAGE = Path(agentauth.__file__).resolve().parent
BAD_CLOCK_READINGS = [math.nan, math.inf, -math.inf, -1.0, 2.0**64, True, "1800000000",
                      None, 1 + 0j]


def state(engine: Initiator | Responder) -> HandshakeState:
    return engine.state


# ------------------------------------------------------------------ clocks


@pytest.mark.parametrize("reading", BAD_CLOCK_READINGS, ids=repr)
@pytest.mark.parametrize("role", ["initiator", "responder"])
def test_bad_clock_reading_fails_the_step(role: str, reading: Any) -> None:
    hs1 = make_pair().initiator.start()
    engine: Initiator | Responder
    if role == "initiator":
        engine = Initiator(ALICE, ANY, clock=lambda: reading)
        step: Callable[[], object] = engine.start
    else:
        engine = Responder(BOB, ANY, clock=lambda: reading)
        step = lambda: engine.receive_message(hs1)  # noqa: E731
    assert outcome(step) == "invalid_argument"
    assert state(engine) is HandshakeState.FAILED
    assert outcome(step) == "invalid_argument"  # sticky


@pytest.mark.parametrize("reading", [math.nan, math.inf, -5.0], ids=repr)
def test_bad_clock_reading_later_cannot_disable_the_timeout(reading: float) -> None:
    pair = make_pair()
    hs1 = pair.initiator.start()
    hs2 = pair.responder.receive_message(hs1)
    assert hs2 is not None
    pair.i_clock.now = reading
    assert outcome(pair.initiator.check_timeout) == "invalid_argument"
    assert state(pair.initiator) is HandshakeState.FAILED
    assert outcome(lambda: pair.initiator.receive_message(hs2)) == "invalid_argument"
    assert pair.initiator.result is None


def test_fractional_clocks_compare_whole_seconds() -> None:
    # Both sides send int(now); with no skew allowed, identical clocks must still agree.
    pair = make_pair(HandshakePolicy(trust=accept_any_peer, max_skew=0),
                     HandshakePolicy(trust=accept_any_peer, max_skew=0))
    pair.i_clock.now = pair.r_clock.now = T0 + 0.9
    pair.run()
    assert pair.initiator.result is not None and pair.responder.result is not None


# ------------------------------------------------------------- callbacks


class Boom(Exception):
    pass


def _boom(peer: PeerKey) -> bool:
    raise Boom("callback failed")


def _complete_until_trust(pair: Pair, side: str) -> Callable[[], object]:
    hs1 = pair.initiator.start()
    hs2 = pair.responder.receive_message(hs1)
    assert hs2 is not None
    if side == "initiator":
        return lambda: pair.initiator.receive_message(hs2)
    hs3 = pair.initiator.receive_message(hs2)
    assert hs3 is not None
    return lambda: pair.responder.receive_message(hs3)


@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_exception_in_trust_callback_fails_the_engine(side: str) -> None:
    policy = HandshakePolicy(trust=_boom)
    pair = make_pair(policy, ANY) if side == "initiator" else make_pair(ANY, policy)
    step = _complete_until_trust(pair, side)
    with raises("invalid_argument") as first:
        step()  # typed (spec 7.1), naming the callback and the exception's type
    assert isinstance(first.value.__cause__, Boom) and "trust" in first.value.message
    engine = pair.initiator if side == "initiator" else pair.responder
    assert state(engine) is HandshakeState.FAILED and engine.result is None
    with raises("invalid_argument") as info:
        step()
    assert "Boom" in info.value.message


async def _async_trust(peer: PeerKey) -> bool:
    return True


@pytest.mark.parametrize("verdict", [None, 1, "yes", _async_trust],
                         ids=["None", "1", "'yes'", "async-function"])  # the same in every run
@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_trust_callback_must_return_a_bool(side: str, verdict: object) -> None:
    trust: Any = verdict if callable(verdict) else (lambda peer: verdict)
    policy = HandshakePolicy(trust=trust)
    pair = make_pair(policy, ANY) if side == "initiator" else make_pair(ANY, policy)
    step = _complete_until_trust(pair, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine that was never awaited would warn
        assert outcome(step) == "invalid_argument"
        gc.collect()
    engine = pair.initiator if side == "initiator" else pair.responder
    assert engine.result is None and state(engine) is HandshakeState.FAILED


@pytest.mark.parametrize(
    "trust", [{ALICE.agent_id: True}, {ALICE.agent_id: False}], ids=["map-true", "map-false"])
def test_trust_refuses_a_mapping(trust: Any) -> None:
    # A mapping is ambiguous (keys? values?): refuse it rather than guess.
    with raises("invalid_argument"):
        HandshakePolicy(trust=trust)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_skew": math.inf}, {"max_skew": math.nan}, {"timeout": math.inf},
     {"timeout": math.nan}, {"max_skew": "5"}, {"timeout": None}, {"max_skew": True},
     {"versions": (True,)}, {"versions": [1]}, {"versions": (1.0,)}, {"max_message": 2.0**20}],
    ids=repr,
)
def test_policy_refuses_odd_numbers(kwargs: dict[str, Any]) -> None:
    with raises("invalid_argument"):
        HandshakePolicy(trust=accept_any_peer, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"expect": b"\x00" * 32}, {"expect": 42}, {"clock": 5.0}, {"random": b"seed"},
     {"ordered": None}, {"ordered": 1}],
    ids=["expect-bytes", "expect-int", "clock", "random", "ordered-none", "ordered-int"],
)
def test_engine_arguments_are_checked_up_front(kwargs: dict[str, Any]) -> None:
    for cls, identity in ((Initiator, ALICE), (Responder, BOB)):
        with raises("invalid_argument"):
            cls(identity, ANY, **kwargs)


def test_extensions_that_cannot_fit_a_handshake_message_are_refused() -> None:
    big = {f"x{i}": bytes(MAX_HANDSHAKE_MESSAGE // 16) for i in range(16)}
    with raises("invalid_argument"):
        Responder(BOB, ANY, extensions=big)
    # Just under the limit is fine and completes.
    fits = {"x": bytes(MAX_HANDSHAKE_MESSAGE - 300)}
    pair = make_pair(r_kwargs={"extensions": fits}, i_kwargs={"extensions": fits})
    pair.run()
    assert pair.initiator.result is not None
    assert pair.initiator.result.peer_extensions == fits


# --------------------------------------------------- copies and pickles


def _key_holders() -> list[object]:
    pair = make_pair()
    hs1 = pair.initiator.start()
    pair.responder.receive_message(hs1)
    session, _ = sessions()
    symmetric = SymmetricState()
    return [pair.initiator, pair.responder, session, symmetric, CipherState()]


@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy, pickle.dumps],
                         ids=["copy", "deepcopy", "pickle"])
def test_key_holders_refuse_copy_and_pickle(how: Callable[[object], object]) -> None:
    # A copied session would seal two different messages under one nonce.
    for holder in _key_holders():
        with pytest.raises(TypeError, match="holds keys"):
            how(holder)


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_errors_survive_pickling_with_their_code(code: str) -> None:
    cls = ERROR_CODES[code][0]
    error = cls("something went wrong", code=code)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is cls and clone.code == code and clone.message == error.message
    assert copy.copy(error).code == code


# ----------------------------------------- what a failure leaves behind


def _frame_locals(exc: BaseException) -> list[object]:
    """The local variables of every agentauth frame the exception's traceback keeps."""
    values: list[object] = []
    tb = exc.__traceback__
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE):
            values.extend(tb.tb_frame.f_locals.values())
        tb = tb.tb_next
    assert values, "no agentauth frame in the traceback"
    return values


def test_low_order_point_leaves_no_ephemeral_secret_in_the_traceback() -> None:
    pair = make_pair()
    hs1 = pair.initiator.start()
    with raises("low_order_point") as info:
        pair.responder.receive_message(bytes(32) + hs1[32:])
    secrets = pair.r_random.outputs
    assert secrets and not any(v in secrets for v in _frame_locals(info.value)
                               if isinstance(v, bytes))


def test_failed_next_epoch_message_leaves_no_key_in_the_traceback() -> None:
    a, b = sessions(ordered=False)
    a._send_n = 1 << EPOCH_BITS
    forged = bytearray(a.seal(b"next epoch"))
    forged[-1] ^= 1
    next_key = crypto.rekey(b._recv_key)
    with raises("decrypt_failed") as info:
        b.open(bytes(forged))
    assert next_key not in _frame_locals(info.value)


def test_a_failed_engine_does_not_keep_the_exception_alive() -> None:
    pair = make_pair()
    hs1 = pair.initiator.start()
    hs2 = pair.responder.receive_message(hs1)
    assert hs2 is not None
    ref: weakref.ref[AgentAuthError] | None = None
    try:
        pair.initiator.receive_message(hs2[:-1] + bytes([hs2[-1] ^ 1]))
    except AgentAuthError as exc:
        ref = weakref.ref(exc)
    assert ref is not None
    gc.collect()
    assert ref() is None  # its traceback (and the frames holding the transcript) is gone
    assert outcome(lambda: pair.initiator.receive_message(hs2)) == "decrypt_failed"


# ------------------------------------------------------------- sessions


def test_session_state_is_read_only() -> None:
    a, _ = sessions()
    for name, value in (("closed", True), ("peer_closed", True), ("channel_binding", b"x")):
        with pytest.raises(AttributeError):
            setattr(a, name, value)


@pytest.mark.parametrize(
    "args", [("label",), (b"label", "ctx"), (b"label", b"", 32.0), (b"label", b"", True)],
    ids=repr)
def test_export_refuses_non_bytes_and_odd_lengths(args: tuple[Any, ...]) -> None:
    a, _ = sessions()
    with raises("invalid_argument"):
        a.export(*args)


def test_huge_integer_policy_values_are_numbers_not_crashes() -> None:
    policy = HandshakePolicy(trust=accept_any_peer, max_skew=10**400, timeout=10**400)
    pair = make_pair(policy, policy)
    pair.r_clock.now += 10**6
    pair.run()
    assert pair.responder.result is not None


# -------------------------------------------------------- overlapping calls


@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_timer_thread_during_a_slow_trust_callback_changes_nothing(side: str) -> None:
    entered, release = threading.Event(), threading.Event()
    outcomes: list[str] = []

    def slow_trust(peer: PeerKey) -> bool:
        entered.set()
        assert release.wait(10)
        return True

    policy = HandshakePolicy(trust=slow_trust)
    pair = make_pair(policy, ANY) if side == "initiator" else make_pair(ANY, policy)
    engine = pair.initiator if side == "initiator" else pair.responder
    clock = pair.i_clock if side == "initiator" else pair.r_clock

    def timer() -> None:
        assert entered.wait(10)
        clock.now += 31  # past the timeout: the check would fail the engine if it ran
        outcomes.append(outcome(engine.check_timeout))
        release.set()

    thread = threading.Thread(target=timer)
    thread.start()
    try:
        reply = _complete_until_trust(pair, side)()
    finally:
        release.set()
        thread.join()
    assert outcomes == ["invalid_state"]  # refused, and the engine was not failed
    assert state(engine) is HandshakeState.DONE
    if side == "initiator":
        assert isinstance(reply, bytes) and pair.responder.receive_message(reply) is None
    a, b = pair.sessions()
    assert b.open(a.seal(b"genuine keys")) == b"genuine keys"
    assert a.open(b.seal(b"both ways")) == b"both ways"


def test_reentrant_call_from_the_trust_callback_is_refused() -> None:
    seen: list[str] = []
    pair: Pair

    def trust(peer: PeerKey) -> bool:
        seen.append(outcome(pair.responder.check_timeout))
        seen.append(outcome(lambda: pair.responder.receive_message(b"x" * 100)))
        return True

    pair = make_pair(ANY, HandshakePolicy(trust=trust))
    pair.run()
    assert seen == ["invalid_state", "invalid_state"]
    a, b = pair.sessions()
    assert b.open(a.seal(b"ok")) == b"ok"


# ------------------------------------------------------------- erasure


def test_a_failed_step_leaves_only_an_erased_transcript_in_its_frames() -> None:
    pair = make_pair(ANY, HandshakePolicy(trust=_refuse_all))
    hs1 = pair.initiator.start()
    hs2 = pair.responder.receive_message(hs1)
    assert hs2 is not None
    hs3 = pair.initiator.receive_message(hs2)
    assert hs3 is not None
    with raises("untrusted_peer") as info:
        pair.responder.receive_message(hs3)
    states = [v for v in _frame_locals(info.value) if isinstance(v, SymmetricState)]
    assert states, "the failing step held its transcript"
    for held in states:
        assert held.ck == b"" and held.h == b"" and held.cipher.k is None
        with raises("invalid_state"):
            held.split()
        with raises("invalid_state"):
            held.decrypt_and_hash(b"")


def _refuse_all(peer: PeerKey) -> bool:
    return False


def test_a_keyed_transcript_cannot_be_copied() -> None:
    state_ = SymmetricState()
    state_.copy()  # unkeyed: how every engine starts
    state_.mix_key(bytes(32))
    with pytest.raises(TypeError):
        state_.copy()


# ----------------------------------------------------------------- fork


def _in_child(check: Callable[[], bool]) -> int:
    """Run ``check`` in a forked child; return its exit status (0: it returned True)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            code = 0 if check() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform cannot fork")
def test_a_forked_child_cannot_use_the_parents_session() -> None:
    a, b = sessions(ordered=False)
    pending = a.seal(b"in flight")

    def child() -> bool:
        calls: list[Callable[[], object]] = [
            lambda: a.seal(b"x"), a.rekey, a.close, lambda: b.open(pending),
            lambda: a.export(b"label")]
        return all(outcome(call) == "invalid_state" for call in calls)

    assert _in_child(child) == 0
    assert b.open(pending) == b"in flight"  # the parent is untouched
    assert b.open(a.seal(b"after")) == b"after"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform cannot fork")
def test_a_forked_child_cannot_finish_the_parents_handshake() -> None:
    pair = make_pair()
    hs1 = pair.initiator.start()
    hs2 = pair.responder.receive_message(hs1)
    assert hs2 is not None

    def child() -> bool:
        return (outcome(lambda: pair.initiator.receive_message(hs2)) == "invalid_state"
                and state(pair.initiator) is HandshakeState.FAILED)

    assert _in_child(child) == 0
    hs3 = pair.initiator.receive_message(hs2)
    assert hs3 is not None and pair.responder.receive_message(hs3) is None


def test_close_at_the_last_counter_as_the_first_message() -> None:
    a, _ = sessions(True)
    a._send_n = COUNTER_MASK  # nothing sent yet: close must still build its cipher
    close = a.close()
    assert int.from_bytes(close[:8], "little") == 1 << 56 | COUNTER_MASK
    assert a.closed and outcome(a.close) == "invalid_state"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform cannot fork")
def test_close_in_a_forked_child_is_refused_even_at_the_last_counter() -> None:
    a, _ = sessions(True)
    a.seal(b"used")
    a._send_n = COUNTER_MASK

    def child() -> bool:
        return all(outcome(call) == "invalid_state" for call in (a.close, a.rekey))

    assert _in_child(child) == 0
    assert not a.closed and len(a.close()) == 24  # the parent may still close


def test_pruning_never_waits() -> None:
    # A holder made while pruning runs (another thread, a finaliser, a signal handler)
    # must not block on the pruning lock.
    lock = crypto._prune_lock[0]
    assert lock.acquire(False)
    try:
        crypto._prune()  # returns at once instead of waiting for itself
        made = [sessions() for _ in range(600)]  # enough to cross the pruning threshold
    finally:
        lock.release()
    assert len(made) == 600


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform cannot fork")
def test_fork_while_another_thread_prunes() -> None:
    lock = crypto._prune_lock[0]
    assert lock.acquire(False)  # as if a thread of this process were pruning at the fork
    try:
        def child() -> bool:
            signal.alarm(20)  # a hang would end the child with SIGALRM, not the test run
            crypto._prune()
            made = [sessions() for _ in range(600)]
            return len(made) == 600

        assert _in_child(child) == 0
    finally:
        lock.release()

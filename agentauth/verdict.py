"""Callback verdicts: the one place where an application's answer becomes a decision
(spec section 7.1).

The library asks the application to decide in several places: whom to trust, whom to
admit by credentials, whether a link is revoked. Every such answer goes through
:func:`verdict`, so that one rule holds everywhere: only the exact boolean that lets the
request through does so (``True``, or ``False`` for a ``revoked`` check), its exact
opposite is a clean refusal that the caller reports with its own code, and anything else
is an error (``invalid_argument``) that names the callback and the type it returned: no
value is read by its truthiness (a coroutine, ``None``, ``0``, ``"yes"``, an object).

:func:`ask` calls a callback on a synchronous path and :func:`ask_async` on an
asynchronous one. Both let an :class:`~agentauth.errors.AgentAuthError` from the callback
through unchanged (a credentials check raises ``CapabilityDenied`` on purpose), except
:class:`~agentauth.errors.PeerRefused` (another peer's unauthenticated claim, relayed, is
no decision of this callback: ``invalid_argument``), and
``BaseException`` that is not an ``Exception`` (cancellation, ``KeyboardInterrupt``);
any other exception becomes ``invalid_argument`` naming the callback and the exception's
type (not its text, which could hold anything), with the original as its cause.
:func:`ask_async` awaits what an ``async def`` callback returns and judges the awaited
value; on a synchronous path an awaitable is refused, and a coroutine is closed so that
it is never left to warn that it was not awaited.

A clock's reading decides too (whether a message is fresh): :func:`moment` judges it, so
that no reading that is not a time (NaN passes every comparison) reaches a check. So do
the durations an application gives (timeouts, limits, windows): :func:`is_seconds` and
:func:`check_window` hold the one rule for each, and every caller says its own error.

A replay store's answer to ``check_and_insert`` decides too ("new", so accept): the
callers ask it through :func:`ask` or :func:`ask_async` like any callback (exactly
``True`` is new, ``False`` ``replayed``); a ``StoreError`` it raises comes through as it
is, any other exception is ``invalid_argument``. A callback that answers with a value
rather than a verdict (``resource_of``) is called through :func:`answer`, which applies
the same rules to exceptions and awaitables.

A check that asks callbacks on both paths is written once, as a flow (a generator) that
yields each :data:`Question` and is sent the judged answer; :func:`drive` answers its
questions with :func:`ask`, :func:`drive_async` with :func:`ask_async`, and either throws
an error into the flow at the question, so that the flow's own clean-up runs.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Final, TypeAlias, TypeGuard, TypeVar

from .errors import AgentAuthError, InvalidArgument, PeerRefused

__all__ = ["MAX_TIME", "MAX_WINDOW", "Question", "answer", "ask", "ask_async",
           "check_bounds", "check_callback", "check_window", "drive", "drive_async",
           "is_seconds", "moment", "verdict"]

T = TypeVar("T")

#: What a flow asks: which callback (named as errors name it), the callback, its arguments.
#: The answer it is sent is True to let through (``admit`` is always True).
Question: TypeAlias = tuple[str, Callable[..., Any], tuple[Any, ...]]

#: The latest time a clock may read, in seconds since the epoch (the wire's 64 bits).
MAX_TIME: Final = 2**63 - 1
_NUMBERS: Final = (int, float)
_FLOAT_BOUND: Final = float(2**62)  # below MAX_TIME, exactly
#: The longest acceptance window or clock skew, in seconds (a day).
MAX_WINDOW: Final = 86_400


def verdict(answer: object, admit: bool, what: str) -> bool:
    """Judge a callback's ``answer``: True if it is exactly ``admit`` (let through),
    False if it is exactly ``not admit`` (refused; the caller raises its own code).
    Anything else raises ``invalid_argument`` naming ``what`` (``"trust callback"``,
    ``"replay store"``) and the answer's type."""
    if answer is admit:  # the fast path: one identity check
        return True
    if answer is (not admit):
        return False
    _refuse_awaitable(answer, what, "a bool")
    raise InvalidArgument(f"the {what} returned {type(answer).__name__}, not a bool")


def answer(what: str, callback: Callable[..., Any], *args: Any) -> object:
    """Call ``callback(*args)`` on a synchronous path and return its answer, for a
    callback that answers with a value rather than a verdict (``resource_of``, which maps
    a request to what it needs): an exception it raises is translated as the module says,
    and an awaitable answer is refused (a coroutine closed), as :func:`verdict` does."""
    value = _call(what, callback, args)
    _refuse_awaitable(value, what, "a value")
    return value


def _call(what: str, callback: Callable[..., Any], args: tuple[Any, ...]) -> object:
    """``callback(*args)``, with an exception it raises translated as the module says."""
    try:
        return callback(*args)
    except PeerRefused as exc:  # another peer's claim, not this callback's decision
        raise _raised(what, callback, exc) from exc
    except AgentAuthError:
        raise
    except Exception as exc:
        raise _raised(what, callback, exc) from exc


def ask(what: str, admit: bool, callback: Callable[..., Any], *args: Any) -> bool:
    """Call ``callback(*args)`` on a synchronous path and judge its answer with
    :func:`verdict`; an exception it raises is translated as the module says."""
    value = _call(what, callback, args)
    if value is admit:  # verdict's own first test, here to save a call (about 60 ns)
        return True
    return verdict(value, admit, what)


async def ask_async(what: str, admit: bool, callback: Callable[..., Any],
                    *args: Any) -> bool:
    """:func:`ask` on an asynchronous path: an ``async def`` callback (or any callback
    that returns an awaitable) is awaited, and the awaited value is judged."""
    try:
        value = callback(*args)
        if inspect.isawaitable(value):
            value = await value
    except PeerRefused as exc:  # as in _call
        raise _raised(what, callback, exc) from exc
    except AgentAuthError:
        raise
    except Exception as exc:
        raise _raised(what, callback, exc) from exc
    return verdict(value, admit, what)


def drive(flow: Generator[Question, bool, T]) -> T:
    """Run ``flow`` on a synchronous path, answering each question with :func:`ask`;
    return what it returns."""
    send = flow.send
    try:
        question = send(None)  # type: ignore[arg-type]  # a generator starts on None
        while True:
            what, callback, args = question
            try:
                admitted = ask(what, True, callback, *args)
            except BaseException as exc:  # raised in the flow, where its clean-up runs
                question = flow.throw(exc)
            else:
                question = send(admitted)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def drive_async(flow: Generator[Question, bool, T]) -> T:
    """:func:`drive` on an asynchronous path: questions are asked with :func:`ask_async`.
    (The same loop as :func:`drive` but for its ``await``: a generator cannot share it.)"""
    send = flow.send
    try:
        question = send(None)  # type: ignore[arg-type]
        while True:
            what, callback, args = question
            try:
                admitted = await ask_async(what, True, callback, *args)
            except BaseException as exc:
                question = flow.throw(exc)
            else:
                question = send(admitted)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def moment(now: object, what: str = "clock") -> float:
    """Judge a clock's reading (or a ``now`` given) before any freshness check uses it:
    a number of seconds (an int or float, not a bool) from 0 to :data:`MAX_TIME`, else
    ``invalid_argument`` naming ``what``. NaN is refused too: it compares false with
    everything, so every "too old" and "too new" test would pass it."""
    # time.time()'s float first, against a float bound: a float compared with MAX_TIME, a
    # big int, took about 200 ns more. Every other reading is compared exactly below.
    if type(now) is float and 0.0 <= now <= _FLOAT_BOUND:
        return now
    if (isinstance(now, _NUMBERS) and not isinstance(now, bool)
            and 0 <= now <= MAX_TIME):  # NaN and the infinities fail this
        return now
    read = repr(now) if type(now) in (int, float) else type(now).__name__
    raise InvalidArgument(f"the {what} must read a finite, non-negative number of seconds "
                          f"since the epoch, not {read}")


def is_seconds(value: object, *, positive: bool = False) -> TypeGuard[float]:
    """Whether ``value`` is a duration: an int or a float (not a bool), finite (NaN would
    pass every comparison, an infinity never end), at least 0, or above 0 when
    ``positive``. The caller refuses a False with its own words."""
    if isinstance(value, bool) or not isinstance(value, _NUMBERS):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return value > 0 if positive else value >= 0


def check_window(name: str, value: object) -> None:
    """Refuse an acceptance ``window`` or clock ``skew`` (``name``) that is not an integer
    number of seconds from 0 to :data:`MAX_WINDOW` (``invalid_argument``)."""
    if type(value) is not int or not 0 <= value <= MAX_WINDOW:
        raise InvalidArgument(f"{name} is a number of seconds from 0 to {MAX_WINDOW}")


def check_bounds(total: object, share: object, names: tuple[str, str]) -> tuple[int, int]:
    """A bound on everything and on any one party's share of it, each a positive integer
    (else ``invalid_argument`` naming it by ``names``); the share defaults to a sixteenth
    of the total, at least 1, so that no one party can take every place."""
    if type(total) is not int or total < 1:
        raise InvalidArgument(f"{names[0]} is a positive integer")
    if share is None:
        share = max(1, total // 16)
    if type(share) is not int or share < 1:
        raise InvalidArgument(f"{names[1]} is a positive integer")
    return total, share


def check_callback(callback: object, what: str) -> None:
    """Refuse, when it is given, a ``callback`` that cannot be called (a set of revoked
    ids, a store instead of its method), so that the mistake shows at set-up."""
    if callback is not None and not callable(callback):
        raise InvalidArgument(f"the {what} is a callable or None, not "
                              f"{type(callback).__name__}")


def _refuse_awaitable(value: object, what: str, needed: str) -> None:
    if inspect.isawaitable(value):
        if isinstance(value, Coroutine):
            value.close()  # never awaited: say so in the error, not in a warning
        raise InvalidArgument(f"the {what} returned an awaitable "
                              f"({type(value).__name__}) where {needed} was needed: this "
                              f"path does not await, give a plain function")


def _raised(what: str, callback: object, exc: Exception) -> InvalidArgument:
    if not callable(callback):
        return InvalidArgument(f"the {what} is not callable: {type(callback).__name__}")
    return InvalidArgument(f"the {what} raised {type(exc).__name__}")

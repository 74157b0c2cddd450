"""What every argument constraint shares: value rules, limits, and the :class:`Kind` base.

A constraint kind (spec 10.1) is a small frozen value with four duties: whether it
*allows* an argument's value, whether it *narrows* a constraint of its own kind (the
child-within-parent rule for that kind; pairs of different kinds are decided in one place,
:func:`agentauth.capability.constraints.constraint_within`), its wire form, and, on the
refusal path only, the *problem* with a value it refuses, in words an operator can act on.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self, TypeAlias

from ..errors import AgentAuthError, DecodeError, InvalidArgument

__all__ = [
    "MAX_INT",
    "MAX_SET",
    "MAX_STRING",
    "MIN_INT",
    "Kind",
    "Scalar",
    "fail",
    "scalar",
    "scalars",
    "text",
]

MAX_SET = 64
MAX_STRING = 256
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)

Scalar: TypeAlias = int | str | bool


def fail(remote: bool, message: str, code: str = "malformed") -> AgentAuthError:
    """The error for a constraint that breaks a rule: ``malformed`` (or ``code``) when it
    came from the wire, ``invalid_argument`` when the application built it."""
    return DecodeError(message, code=code) if remote else InvalidArgument(message)


def text(value: object, remote: bool, what: str) -> str:
    """A string of at most :data:`MAX_STRING` UTF-8 bytes (no lone surrogate)."""
    if type(value) is not str:
        raise fail(remote, f"{what} is a string")
    # ASCII (known without a scan) is one byte a character and holds no surrogate: no
    # encoding to count. test_wire_faults and the vectors' long strings pin the bound.
    if value.isascii():
        if len(value) > MAX_STRING:
            raise fail(remote, f"{what} is at most {MAX_STRING} bytes")
        return value
    try:
        size = len(value.encode())
    except UnicodeEncodeError:  # a lone surrogate: not text
        raise fail(remote, f"{what} is valid Unicode text") from None
    if size > MAX_STRING:
        raise fail(remote, f"{what} is at most {MAX_STRING} bytes")
    return value


def scalar(value: object, remote: bool) -> Scalar:
    """A constraint value: a 64-bit integer, a string, or a boolean (never an integer)."""
    if type(value) is int:
        if not MIN_INT <= value <= MAX_INT:
            raise fail(remote, "integer values fit in 64 bits")
        return value
    if type(value) is str:
        return text(value, remote, "a string value")
    if type(value) is bool:
        return value
    raise fail(remote, "constraint values are integers, strings or booleans (never floats)")


def _wire_set(values: object, least: int, kinds: tuple[type, ...]) -> frozenset[Scalar] | None:
    """The common wire set read in one pass, or None to take the plain path: an array of
    ``least`` to :data:`MAX_SET` ASCII strings of at most :data:`MAX_STRING` characters
    (so at most as many bytes, and no lone surrogate), or of 64-bit integers, strictly
    ascending, of a type among ``kinds``. Saves the plain path's per-value calls and its
    sort (a 4-value set: about 1 µs of 3). Anything else, accepted or refused, is decided
    by the plain path; test_constraint_kinds.py's
    test_the_fast_wire_set_is_the_plain_reading holds the two together."""
    if type(values) is not list or not least <= len(values) <= MAX_SET or not values:
        return None
    first = type(values[0])
    if first not in kinds:
        return None
    before: Any = None
    if first is str:
        for value in values:
            if type(value) is not str or not value.isascii() or len(value) > MAX_STRING:
                return None
            if before is not None and not before < value:
                return None
            before = value
    elif first is int:
        for value in values:
            if type(value) is not int or not MIN_INT <= value <= MAX_INT:
                return None
            if before is not None and not before < value:
                return None
            before = value
    else:
        return None
    return frozenset(values)


def scalars(values: object, remote: bool, what: str, *, least: int = 1,
            kinds: tuple[type, ...] = (int, str, bool), plain: bool = False
            ) -> frozenset[Scalar]:
    """A set of 1 (or ``least``) to :data:`MAX_SET` values, all of one type among ``kinds``.

    From the application any iterable of values will do (a set, a list, a generator); a
    single string or a mapping is refused, with what was meant. From the wire the values
    are an array, strictly ascending (``non_canonical`` otherwise). ``plain=True`` reads
    a wire array by the plain rule only, skipping the one-pass reading of the common case
    (for the test that holds the two together).
    """
    if remote:
        if not plain:
            fast = _wire_set(values, least, kinds)
            if fast is not None:
                return fast
        if type(values) is not list:
            raise fail(True, f"{what} values are an array")
        if len(values) > MAX_SET:  # unique on the wire: too many, before checking each
            raise fail(True, f"{what} holds {least} to {MAX_SET} values")
        items: list[Any] = values
    else:
        if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
            raise InvalidArgument(
                f"{what} takes a collection of values, such as {{'a', 'b'}}, not a "
                f"{type(values).__name__}: write {what}({{value}}) for one value")
        items = list(itertools.islice(values, MAX_SET + 1))  # an endless one too
        if len(items) > MAX_SET:
            raise InvalidArgument(f"{what} takes at most {MAX_SET} values (given: more)")
    checked = [scalar(v, remote) for v in items]
    types = {type(v) for v in checked}
    if len(types) > 1:
        raise fail(remote, f"{what} values are all of one type")
    if types and next(iter(types)) not in kinds:
        names = " or ".join(k.__name__ for k in kinds)
        raise fail(remote, f"{what} values are of type {names}")
    result = frozenset(checked)
    if remote and checked != sorted(result):
        raise fail(True, f"{what} values are not sorted and unique", "non_canonical")
    if not least <= len(result) <= MAX_SET:
        raise fail(remote, f"{what} holds {least} to {MAX_SET} values")
    return result


class Kind:
    """The base of every constraint kind (a frozen, slotted dataclass)."""

    __slots__ = ()

    CODE: ClassVar[int]
    """The kind's number on the wire (spec 10.3)."""
    NAME: ClassVar[str]
    """The kind's name in the spec and on the command line."""

    def allows(self, arg: object) -> bool:
        """Whether an argument's value ``arg`` satisfies this constraint."""
        raise NotImplementedError

    def narrows(self, parent: Self) -> bool:
        """Whether every value this constraint allows ``parent`` (of the same kind) allows."""
        raise NotImplementedError

    def value_type(self) -> type | None:
        """The one type of value this constraint can allow, if there is one."""
        return None

    def to_wire(self) -> list[Any]:
        """The constraint's wire form, ``[kind, ...]`` (spec 10.3)."""
        raise NotImplementedError

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Self:
        """The constraint from the fields after its kind number, checked completely:
        ``malformed`` or ``non_canonical`` on any deviation."""
        raise NotImplementedError

    def problem(self, arg: object) -> str:
        """Why ``arg`` is refused, in words (the refusal path only)."""
        return "not allowed"

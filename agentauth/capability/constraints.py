"""Argument constraints: every kind, its wire form, and the one "child within parent" rule.

A grant maps each argument name to one constraint (spec 10.1). The kinds over plain
values live here; those with a grammar of their own live beside: :mod:`.paths`
(``Subpath``), :mod:`.networks` (``Url``, ``Cidr``) and :mod:`.globs` (``Pattern``).

:func:`constraint_within` decides whether every value a child constraint allows its
parent allows. It is sound for every pair (a property test samples values of both) and
complete wherever spec 10.2 says so; a pair it cannot decide is refused, never guessed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from ..errors import DecodeError, InvalidArgument
from .globs import Pattern
from .networks import Cidr, Url
from .paths import Subpath
from .values import MAX_INT, MIN_INT, Kind, Scalar, fail, scalar, scalars, text

__all__ = [
    "KINDS",
    "AnyOf",
    "AnyValue",
    "Cidr",
    "Constraint",
    "Contains",
    "Eq",
    "Length",
    "NotOneOf",
    "OneOf",
    "Pattern",
    "Prefix",
    "Range",
    "Subpath",
    "Subset",
    "Url",
    "constraint_from_wire",
    "constraint_within",
]

MAX_MEMBERS = 8
_ITEM_TYPES = (int, str)


def _kind_of(value: Scalar) -> type:
    return type(value)


# ------------------------------------------------------------------ plain values


@dataclass(frozen=True, slots=True)
class Eq(Kind):
    """The argument equals ``value``, with the same type (a boolean is never an integer)."""

    CODE = 0
    NAME = "eq"
    value: Scalar

    def __post_init__(self) -> None:
        scalar(self.value, False)

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is the value, of the same type."""
        return type(arg) is type(self.value) and arg == self.value

    def narrows(self, parent: Eq) -> bool:
        """Whether both name the same value."""
        return parent.allows(self.value)

    def value_type(self) -> type:
        """The value's type."""
        return type(self.value)

    def to_wire(self) -> list[Any]:
        """``[0, value]``."""
        return [self.CODE, self.value]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Eq:
        """``[value]``."""
        if len(fields) != 1:
            raise fail(True, "eq holds one value")
        # Checked once here, then set in its slot: the constructor would check it again.
        made = _new(cls)
        _set_value(made, scalar(fields[0], True))
        return made

    def problem(self, arg: object) -> str:
        """What differs."""
        return "another value" if type(arg) is type(self.value) else _type_problem(
            arg, type(self.value))


class _Values(Kind):
    """A kind over a set of values of one type: one-of, not-one-of, contains, subset."""

    __slots__ = ()
    ITEMS: tuple[type, ...] = (int, str, bool)
    LEAST = 1
    values: frozenset[Scalar]

    def __init__(self, values: Iterable[Scalar]) -> None:
        object.__setattr__(self, "values", scalars(values, False, type(self).__name__,
                                                   least=self.LEAST, kinds=self.ITEMS))

    def value_type(self) -> type | None:
        """The values' one type."""
        return type(next(iter(self.values))) if self.values else None

    def to_wire(self) -> list[Any]:
        """``[kind, [values in ascending order]]``."""
        return [self.CODE, sorted(self.values)]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Any:
        """``[[values, strictly ascending]]``."""
        if len(fields) != 1:
            raise fail(True, f"{cls.NAME} holds one array of values")
        made = _new(cls)
        _SET_VALUES[cls](made, scalars(fields[0], True, cls.NAME, least=cls.LEAST,
                                       kinds=cls.ITEMS))
        return made

    def __repr__(self) -> str:
        return f"{type(self).__name__}({set(sorted(self.values))!r})"


@dataclass(frozen=True, slots=True, init=False, repr=False)
class OneOf(_Values):
    """The argument is one of ``values`` (1 to 64, all of one type): ``OneOf({"a", "b"})``
    or any other collection of values."""

    CODE = 1
    NAME = "one-of"
    values: frozenset[Scalar]

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is one of the values, of their type."""
        # The type first: an int, str or bool hashes without calling anyone's code.
        return type(arg) is self.value_type() and arg in self.values

    def narrows(self, parent: OneOf) -> bool:
        """A subset."""
        return all(parent.allows(v) for v in self.values)

    def problem(self, arg: object) -> str:
        """Not among the values."""
        kind = self.value_type()
        return "not one of the values" if type(arg) is kind else _type_problem(arg, kind)


@dataclass(frozen=True, slots=True, init=False, repr=False)
class NotOneOf(_Values):
    """The argument has the values' type and is none of ``values`` (1 to 64)."""

    CODE = 4
    NAME = "not-one-of"
    values: frozenset[Scalar]
    # The values' one type, found once (allows would otherwise find it on each call;
    # test_allows_table and test_no_kind_raises_on_any_value pin the rule).
    _item: type = field(init=False, repr=False, compare=False)

    def __init__(self, values: Iterable[Scalar]) -> None:
        _Values.__init__(self, values)
        _set_excluded_type(self, type(next(iter(self.values))))

    @classmethod
    def from_wire(cls, fields: list[Any]) -> NotOneOf:
        """``[[values, strictly ascending]]``."""
        made: NotOneOf = _Values.from_wire.__func__(cls, fields)  # type: ignore[attr-defined]
        _set_excluded_type(made, type(next(iter(made.values))))
        return made

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` has the values' type and is none of them (an integer within 64
        bits: no constraint but any allows another, spec 10.1.1)."""
        return (type(arg) is self._item and arg not in self.values
                and (type(arg) is not int or MIN_INT <= arg <= MAX_INT))

    def narrows(self, parent: NotOneOf) -> bool:
        """Excludes at least what the parent excludes (same type)."""
        return self.value_type() is parent.value_type() and self.values >= parent.values

    def problem(self, arg: object) -> str:
        """Excluded, or of another type."""
        kind = self.value_type()
        return "one of the excluded values" if type(arg) is kind else _type_problem(arg, kind)


def _items(arg: object, kind: type | None) -> list[Any] | None:
    """A list argument's items when each has type ``kind`` (else None)."""
    if type(arg) is not list and type(arg) is not tuple:
        return None
    items: list[Any] = list(arg)
    for item in items:
        if type(item) is not kind or (type(item) is int and not MIN_INT <= item <= MAX_INT):
            return None
    return items


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Contains(_Values):
    """A list argument, every item of the values' type, holding each of ``values``."""

    CODE = 6
    NAME = "contains"
    ITEMS = _ITEM_TYPES
    values: frozenset[Scalar]

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is a list holding every value (it may hold more)."""
        items = _items(arg, self.item_type())
        return items is not None and self.values <= set(items)

    def narrows(self, parent: Contains) -> bool:
        """Asks for at least what the parent asks for."""
        return self.item_type() is parent.item_type() and self.values >= parent.values

    def value_type(self) -> type:
        """``list``: what this constraint allows."""
        return list

    def item_type(self) -> type:
        """The items' type."""
        return type(next(iter(self.values)))

    def to_wire(self) -> list[Any]:
        """``[6, [values]]``."""
        return [self.CODE, sorted(self.values)]

    def problem(self, arg: object) -> str:
        """What is missing."""
        items = _items(arg, self.item_type())
        if items is None:
            return f"not a list of {self.item_type().__name__}"
        return f"{len(self.values - set(items))} required values missing"


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Subset(_Values):
    """A list argument whose every item is one of ``values`` (an empty list included)."""

    CODE = 7
    NAME = "subset"
    ITEMS = _ITEM_TYPES
    values: frozenset[Scalar]
    # The values' one type, found once (allows would otherwise find it on each call).
    _item: type = field(init=False, repr=False, compare=False)

    def __init__(self, values: Iterable[Scalar]) -> None:
        _Values.__init__(self, values)
        _set_item(self, type(next(iter(self.values))))

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Subset:
        """``[[values, strictly ascending]]``."""
        made: Subset = _Values.from_wire.__func__(cls, fields)  # type: ignore[attr-defined]
        _set_item(made, type(next(iter(made.values))))
        return made

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is a list of values only from the set."""
        # The common case without a copy or a call per item: a list (or tuple) every
        # item of which is in the set (one C call) and of the values' exact type (a
        # bool equals an int, a str subclass a str). An unhashable item is no value of
        # ours. test_subset_allows_is_the_plain_reading holds it to _items.
        if type(arg) is not list and type(arg) is not tuple:
            return False
        try:
            if not self.values.issuperset(arg):
                return False
        except TypeError:
            return False
        kind = self._item
        for item in arg:  # noqa: SIM110 (a loop: no generator, as in AnyOf.allows)
            if type(item) is not kind:
                return False
        return True

    def narrows(self, parent: Subset) -> bool:
        """Draws from a subset of the parent's values."""
        return self.item_type() is parent.item_type() and self.values <= parent.values

    def value_type(self) -> type:
        """``list``: what this constraint allows."""
        return list

    def item_type(self) -> type:
        """The items' type."""
        return type(next(iter(self.values)))

    def problem(self, arg: object) -> str:
        """What is not allowed."""
        items = _items(arg, self.item_type())
        if items is None:
            return f"not a list of {self.item_type().__name__}"
        return f"{len(set(items) - self.values)} values outside the set"


# ------------------------------------------------------------------ bounds


@dataclass(frozen=True, slots=True)
class Range(Kind):
    """An integer argument from ``lo`` to ``hi``, both included."""

    CODE = 2
    NAME = "range"
    lo: int
    hi: int

    def __post_init__(self) -> None:
        _bounds(self.lo, self.hi, False, "a range", MIN_INT)

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is an integer within the bounds."""
        return type(arg) is int and self.lo <= arg <= self.hi

    def narrows(self, parent: Range) -> bool:
        """Nested bounds."""
        return parent.lo <= self.lo and self.hi <= parent.hi

    def value_type(self) -> type:
        """``int``."""
        return int

    def to_wire(self) -> list[Any]:
        """``[2, lo, hi]``."""
        return [self.CODE, self.lo, self.hi]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Range:
        """``[lo, hi]``, both 64-bit, ``lo <= hi``."""
        if len(fields) != 2:
            raise fail(True, "a range is [2, lo, hi]")
        lo, hi = fields
        _bounds(lo, hi, True, "a range", MIN_INT)
        made = _new(cls)
        _set_lo(made, lo)
        _set_hi(made, hi)
        return made

    def problem(self, arg: object) -> str:
        """Out of bounds, or not an integer."""
        return "out of bounds" if type(arg) is int else _type_problem(arg, int)


@dataclass(frozen=True, slots=True)
class Length(Kind):
    """A string argument whose UTF-8 encoding is ``lo`` to ``hi`` bytes long."""

    CODE = 5
    NAME = "length"
    lo: int
    hi: int

    def __post_init__(self) -> None:
        _bounds(self.lo, self.hi, False, "a length", 0)

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is a string of ``lo`` to ``hi`` bytes."""
        if type(arg) is not str:
            return False
        size = len(arg)
        if arg.isascii():  # one byte a character (known without a scan): no encoding
            return self.lo <= size <= self.hi
        # Each character is 1 to 4 bytes: most strings are decided without encoding them.
        if size > self.hi or size * 4 < self.lo:
            return False
        try:
            return self.lo <= len(arg.encode()) <= self.hi
        except UnicodeEncodeError:  # a lone surrogate is no text
            return False

    def narrows(self, parent: Length) -> bool:
        """Nested bounds."""
        return parent.lo <= self.lo and self.hi <= parent.hi

    def value_type(self) -> type:
        """``str``."""
        return str

    def to_wire(self) -> list[Any]:
        """``[5, lo, hi]``."""
        return [self.CODE, self.lo, self.hi]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Length:
        """``[lo, hi]``, ``0 <= lo <= hi``."""
        if len(fields) != 2:
            raise fail(True, "a length is [5, lo, hi]")
        lo, hi = _bounds(fields[0], fields[1], True, "a length", 0)
        made = _new(cls)  # checked once, as a range is: no constructor to check again
        _set_length_lo(made, lo)
        _set_length_hi(made, hi)
        return made

    def problem(self, arg: object) -> str:
        """Too short or too long."""
        return "a length out of bounds" if type(arg) is str else _type_problem(arg, str)


def _bounds(lo: object, hi: object, remote: bool, what: str, least: int) -> tuple[int, int]:
    if type(lo) is not int or type(hi) is not int or not least <= lo <= hi <= MAX_INT:
        raise fail(remote, f"{what} is two 64-bit integers, 0 <= lo <= hi"
                   if least == 0 else f"{what} is two 64-bit integers, lo <= hi")
    return lo, hi


# ------------------------------------------------------------------ strings


@dataclass(frozen=True, slots=True)
class Prefix(Kind):
    """A string argument that starts with ``prefix`` (character by character: for paths
    use :class:`Subpath`, for URLs :class:`Url`)."""

    CODE = 3
    NAME = "prefix"
    prefix: str

    def __post_init__(self) -> None:
        text(self.prefix, False, "a prefix")

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is a string starting with the prefix."""
        return type(arg) is str and arg.startswith(self.prefix)

    def narrows(self, parent: Prefix) -> bool:
        """A longer prefix, starting with the parent's."""
        return self.prefix.startswith(parent.prefix)

    def value_type(self) -> type:
        """``str``."""
        return str

    def to_wire(self) -> list[Any]:
        """``[3, prefix]``."""
        return [self.CODE, self.prefix]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Prefix:
        """``[prefix]``."""
        if len(fields) != 1:
            raise fail(True, "a prefix is [3, prefix]")
        made = _new(cls)  # checked once: no constructor to check again
        _set_prefix(made, text(fields[0], True, "a prefix"))
        return made

    def problem(self, arg: object) -> str:
        """Another start."""
        return "another start" if type(arg) is str else _type_problem(arg, str)


# ------------------------------------------------------------------ combinators


@dataclass(frozen=True, slots=True)
class AnyValue(Kind):
    """Any value of any type, only present: a closed grant names an argument it does not
    limit with it."""

    CODE = 13
    NAME = "any"

    def allows(self, arg: object) -> bool:
        """Always: the argument is present."""
        return True

    def narrows(self, parent: AnyValue) -> bool:
        """Always."""
        return True

    def to_wire(self) -> list[Any]:
        """``[13]``."""
        return [self.CODE]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> AnyValue:
        """``[]``."""
        if fields:
            raise fail(True, "any holds nothing")
        return cls()


@dataclass(frozen=True, slots=True, init=False)
class AnyOf(Kind):
    """The argument satisfies at least one of ``members`` (2 to 8 constraints, none of
    them itself any-of or any): ``AnyOf([Url("https://a.example/"), Url("https://b.example/")])``."""

    CODE = 12
    NAME = "any-of"
    members: tuple[Constraint, ...]

    def __init__(self, members: Iterable[Constraint]) -> None:
        if isinstance(members, Kind) or not isinstance(members, Iterable):
            raise InvalidArgument("AnyOf takes a collection of constraints")
        given = list(itertools.islice(members, MAX_MEMBERS + 1))  # an endless one too
        object.__setattr__(self, "members", _members(given, False))

    def allows(self, arg: object) -> bool:
        """Whether some member allows ``arg``."""
        # A loop, not any() over a generator: no generator to build and resume (about
        # half the cost with two members). test_allows_table pins the rule.
        for member in self.members:  # noqa: SIM110
            if member.allows(arg):
                return True
        return False

    def narrows(self, parent: AnyOf) -> bool:
        """Each member within some member of the parent (sound; not complete: a member
        that only two of the parent's cover together is refused)."""
        return all(constraint_within(member, parent) for member in self.members)

    def to_wire(self) -> list[Any]:
        """``[12, [member, ...]]``, members in the order given."""
        return [self.CODE, [member.to_wire() for member in self.members]]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> AnyOf:
        """``[[member, ...]]``."""
        if len(fields) != 1 or type(fields[0]) is not list:
            raise fail(True, "any-of holds one array of constraints")
        if not 2 <= len(fields[0]) <= MAX_MEMBERS:  # before decoding any of them
            raise fail(True, f"any-of holds 2 to {MAX_MEMBERS} constraints")
        for member in fields[0]:  # its kind first: any-of never nests, so no recursion
            if type(member) is list and member and member[0] in (cls.CODE, AnyValue.CODE):
                raise fail(True, "an any-of member is a constraint, neither any-of nor any")
        made = _new(cls)
        _set_members(made, _members([constraint_from_wire(m) for m in fields[0]], True))
        return made

    def problem(self, arg: object) -> str:
        """Every member's problem."""
        return "; ".join(member.problem(arg) for member in self.members if not
                         member.allows(arg))


def _members(members: list[Any], remote: bool) -> tuple[Constraint, ...]:
    if not 2 <= len(members) <= MAX_MEMBERS:
        raise fail(remote, f"any-of holds 2 to {MAX_MEMBERS} constraints")
    for member in members:
        # A tuple, not AnyOf | AnyValue: isinstance reads a tuple faster than a union.
        if not isinstance(member, Kind) or isinstance(member, (AnyOf, AnyValue)):
            raise fail(remote, "an any-of member is a constraint, neither any-of nor any")
    return tuple(members)


Constraint: TypeAlias = (Eq | OneOf | NotOneOf | Range | Length | Prefix | Contains | Subset
                         | Pattern | Subpath | Url | Cidr | AnyOf | AnyValue)

KINDS: Final[dict[int, type[Kind]]] = {kind.CODE: kind for kind in (
    Eq, OneOf, Range, Prefix, NotOneOf, Length, Contains, Subset, Pattern, Subpath, Url,
    Cidr, AnyOf, AnyValue)}
"""Every constraint kind by its number on the wire (spec 10.3)."""


def _type_problem(arg: object, kind: type | None) -> str:
    found = _a(type(arg).__name__)
    return f"{found}, not {_a(kind.__name__)}" if kind is not None else found


def _a(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


# ------------------------------------------------------------------ narrowing


def constraint_within(child: Constraint, parent: Constraint) -> bool:
    """Whether every argument value ``child`` allows is allowed by ``parent`` (spec 10.2).

    Same-kind pairs follow each kind's own rule; every pair of different kinds is decided
    here, in this order, and any pair not named is refused.
    """
    if type(child) is type(parent):  # the common narrowing, first
        return child.narrows(parent)  # type: ignore[arg-type]
    if type(parent) is AnyValue:
        return True
    if type(child) is Eq:
        return parent.allows(child.value)
    if type(child) is OneOf:
        return all(parent.allows(v) for v in child.values)
    if type(child) is AnyOf:
        return all(constraint_within(member, parent) for member in child.members)
    if type(parent) is AnyOf:
        return any(constraint_within(child, member) for member in parent.members)
    if type(parent) is NotOneOf:  # complete: the child's values are of the type, none out
        return (child.value_type() is parent.value_type()
                and not any(child.allows(v) for v in parent.values))
    if type(child) is Prefix and type(parent) is Pattern:
        return parent.covers_prefix(child.prefix)
    if type(child) is Pattern and type(parent) is Prefix:
        return child.literal_head().startswith(parent.prefix)
    return False


# ------------------------------------------------------------------ wire form

# Building checked constraints on the wire path: each slot set directly, once its value
# is checked (a constructor would check it again). The wire round-trip and wire-fault
# tests of test_constraint_kinds.py pin that nothing is skipped.
_new = object.__new__
_set_lo, _set_hi = Range.__dict__["lo"].__set__, Range.__dict__["hi"].__set__
_set_length_lo, _set_length_hi = Length.__dict__["lo"].__set__, Length.__dict__["hi"].__set__
_set_value = Eq.__dict__["value"].__set__
_set_prefix = Prefix.__dict__["prefix"].__set__
_set_members = AnyOf.__dict__["members"].__set__
_set_item = Subset.__dict__["_item"].__set__
_set_excluded_type = NotOneOf.__dict__["_item"].__set__
_SET_VALUES: Final[dict[type, Any]] = {
    cls: cls.__dict__["values"].__set__ for cls in (OneOf, NotOneOf, Contains, Subset)}


def constraint_from_wire(value: object) -> Constraint:
    """A constraint from its wire form ``[kind, ...]``, checked completely: an unknown
    kind is ``unknown_field``; a known kind out of shape is ``malformed``."""
    if type(value) is not list or not value or type(value[0]) is not int:
        raise DecodeError("a constraint is [kind, ...]", code="malformed")
    kind = value[0]
    if kind == 2 and len(value) == 3:  # a range, the common case: no dispatch
        lo, hi = value[1], value[2]
        if type(lo) is not int or type(hi) is not int or not MIN_INT <= lo <= hi <= MAX_INT:
            raise DecodeError("a range is two 64-bit integers, lo <= hi", code="malformed")
        made = _new(Range)
        _set_lo(made, lo)
        _set_hi(made, hi)
        return made
    cls = KINDS.get(kind)
    if cls is None:
        raise DecodeError(f"unknown constraint kind {kind}", code="unknown_field")
    return cls.from_wire(value[1:])  # type: ignore[return-value]

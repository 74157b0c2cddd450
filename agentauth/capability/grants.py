"""Grants: what a capability allows, and the exact rule for "a child only narrows".

A grant is a resource pattern, a set of actions and typed argument constraints. A request
(a concrete resource, one action, arguments) is allowed by a grant when all three match.
:meth:`Grant.within` decides, mechanically and soundly, whether every request a child
grant allows is also allowed by a parent grant; a property test holds it to that.

* **Resources** are ``/``-separated segments. In a pattern a segment may be ``*`` (exactly
  one segment), and the last segment may be ``**`` (zero or more). No other wildcard
  exists, so ``reports/**`` never covers ``reportsX``.
* **Actions** are a set of names, or exactly ``{"*"}`` for any action.
* **Constraints** map an argument name to a constraint of one of the kinds of
  :mod:`.constraints` (``Eq``, ``OneOf``, ``Range``, ``Subpath``, ``Url``, ...). A grant
  with constraints is **closed**: a request with an argument it does not name is refused,
  unless the grant is built with ``open_world=True``. A child keeps every constraint of
  its parent (dropping one would widen), narrowing each; under a closed parent it is
  closed and names the same arguments, under an open one it may add its own.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from ..errors import AgentAuthError, DecodeError, InvalidArgument, Refusal
from .constraints import (
    Constraint,
    Eq,
    OneOf,
    Prefix,
    Range,
    constraint_from_wire,
    constraint_within,
)
from .values import Kind

__all__ = [
    "ANY_ACTION",
    "Constraint",
    "Eq",
    "Grant",
    "OneOf",
    "Prefix",
    "Range",
    "Request",
    "actions_within",
    "closure_gap",
    "constraint_within",
    "parse_resource",
    "pattern_within",
    "shortfall",
    "shown",
]

ANY_ACTION: Final = "*"
MAX_SEGMENTS = 32
MAX_SEGMENT = 64
MAX_ACTIONS = 64
MAX_CONSTRAINTS = 16
MAX_STRING = 256

_SEGMENT_CHARS = r"[A-Za-z0-9._~:@+=,;!$'()-]{1,64}"
_SEGMENT = re.compile(_SEGMENT_CHARS)
_LITERAL = rf"(?!\.\.?(?:/|\Z)){_SEGMENT_CHARS}"  # a segment, but never "." or ".."
# Whole resources and patterns in one match (the fast path of parse_resource; the
# segment-by-segment loop explains a refusal).
_CONCRETE = re.compile(rf"{_LITERAL}(?:/{_LITERAL})*")
_PATTERN = re.compile(rf"\*\*|(?:\*|{_LITERAL})(?:/(?:\*|{_LITERAL}))*(?:/\*\*)?")
_ACTION = re.compile(r"[a-z0-9_.-]{1,32}")
_ARG_NAME = re.compile(r"[a-z0-9_]{1,32}")

def _fail(remote: bool, message: str) -> AgentAuthError:
    return DecodeError(message, code="malformed") if remote else InvalidArgument(message)


# ------------------------------------------------------------------ resources


def parse_resource(text: str, *, pattern: bool = True, remote: bool = False) -> tuple[str, ...]:
    """Split and check a resource (``pattern=False``: no wildcards allowed)."""
    if type(text) is not str or not 0 < len(text) <= MAX_STRING:
        raise _fail(remote, "a resource is a string of 1 to 256 characters")
    segments = tuple(text.split("/"))
    if len(segments) > MAX_SEGMENTS:
        raise _fail(remote, f"a resource has at most {MAX_SEGMENTS} segments")
    if (_PATTERN if pattern else _CONCRETE).fullmatch(text):
        return segments
    for i, segment in enumerate(segments):
        if pattern and (segment == "*" or (segment == "**" and i == len(segments) - 1)):
            continue
        if segment in (".", "..") or not _SEGMENT.fullmatch(segment):
            raise _fail(remote, f"resource segment {i} is not allowed: {segment!r}")
    raise _fail(remote, "the resource is not allowed")  # unreachable: the two agree


def pattern_within(child: tuple[str, ...], parent: tuple[str, ...]) -> bool:
    """Whether every concrete resource matching ``child`` matches ``parent``.

    With a concrete ``child`` this is also the match test of a resource against a pattern.
    """
    for i, p in enumerate(parent):
        if p == "**":
            return True
        if i >= len(child):
            return False
        c = child[i]
        if c == "**":
            return False
        if p == "*":
            continue
        if c != p:  # includes a child "*" under a literal parent segment
            return False
    return len(child) == len(parent)


# ------------------------------------------------------------------ actions


def _actions(values: Iterable[str], remote: bool) -> frozenset[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise _fail(remote, "actions are a collection of names, not one string")
    values = list(itertools.islice(values, 16 * MAX_ACTIONS + 1))  # an endless one too
    if len(values) > 16 * MAX_ACTIONS:
        raise _fail(remote, f"a grant has 1 to {MAX_ACTIONS} actions")
    if any(type(v) is not str for v in values):
        raise _fail(remote, "action names are strings")
    actions = frozenset(values)
    if not 0 < len(actions) <= MAX_ACTIONS:
        raise _fail(remote, f"a grant has 1 to {MAX_ACTIONS} actions")
    if ANY_ACTION in actions:
        if len(actions) != 1:
            raise _fail(remote, "'*' stands alone: it already means every action")
        return actions
    for action in actions:
        if type(action) is not str or not _ACTION.fullmatch(action):
            raise _fail(remote, "action names are [a-z0-9_.-]{1,32}")
    return actions


def actions_within(child: frozenset[str], parent: frozenset[str]) -> bool:
    """Whether every action of ``child`` is an action of ``parent``."""
    if ANY_ACTION in parent:
        return True
    return ANY_ACTION not in child and child <= parent


# ------------------------------------------------------------------ grants


@dataclass(frozen=True, slots=True)
class Request:
    """One use of a capability: a concrete resource, one action, named arguments."""

    resource: str
    action: str
    args: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", parse_resource(self.resource, pattern=False))
        if type(self.action) is not str or not _ACTION.fullmatch(self.action):
            raise InvalidArgument("a request names one action, [a-z0-9_.-]{1,32}")
        if not isinstance(self.args, Mapping):
            raise InvalidArgument("request arguments are a mapping")
        if any(type(name) is not str for name in self.args):
            raise InvalidArgument("request argument names are strings")
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))


@dataclass(frozen=True, slots=True)
class Grant:
    """A resource pattern, its actions and argument constraints.

    ``Grant("reports/**", {"read"}, {"year": Range(2020, 2026)})``. A grant that constrains
    any argument is closed: it refuses a request with an argument it does not name.
    ``open_world=True`` lets arguments it does not name through, with any value (a grant
    without constraints is open already).
    """

    resource: str
    actions: frozenset[str]
    constraints: Mapping[str, Constraint] = field(
        default_factory=lambda: MappingProxyType({}))
    open_world: bool = False
    closed: bool = field(init=False, repr=False, compare=False)
    """Whether the grant refuses arguments it does not name: it has constraints and is not
    open-world."""
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # Each constrained argument's name and its constraint, in name order: allows() walks
    # this tuple rather than the mapping's items (see allows).
    _checks: tuple[tuple[str, Constraint], ...] = field(
        init=False, repr=False, compare=False)

    def __init__(self, resource: str, actions: Iterable[str],
                 constraints: Mapping[str, Constraint] | None = None, *,
                 open_world: bool = False, remote: bool = False) -> None:
        segments = parse_resource(resource, remote=remote)
        checked = _actions(actions, remote)
        given = constraints if constraints is not None else {}
        if not isinstance(given, Mapping) or len(given) > MAX_CONSTRAINTS:
            raise _fail(remote, f"constraints are a map of at most {MAX_CONSTRAINTS}")
        table: dict[str, Constraint] = {}
        for name, constraint in given.items():
            if type(name) is not str or not _ARG_NAME.fullmatch(name):
                raise _fail(remote, "argument names are [a-z0-9_]{1,32}")
            if not isinstance(constraint, Kind):
                raise _fail(remote, f"the constraint on {name!r} is a constraint such as "
                                    f"Eq, OneOf, Range, Subpath or Url, not a "
                                    f"{type(constraint).__name__}")
            table[name] = constraint
        if type(open_world) is not bool:
            raise InvalidArgument("open_world is True or False")
        object.__setattr__(self, "resource", resource)
        object.__setattr__(self, "actions", checked)
        object.__setattr__(self, "constraints", MappingProxyType(dict(sorted(table.items()))))
        object.__setattr__(self, "open_world", open_world and bool(table))
        object.__setattr__(self, "closed", bool(table) and not open_world)
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "_checks", _checks(self.constraints))

    def within(self, parent: Grant) -> bool:
        """Whether every request this grant allows is allowed by ``parent``."""
        if not pattern_within(self.segments, parent.segments):
            return False
        if not actions_within(self.actions, parent.actions):
            return False
        mine = self.constraints
        for name, bound in parent.constraints.items():
            constraint = mine.get(name)
            if constraint is None or not constraint_within(constraint, bound):
                return False  # a dropped constraint widens
        return closure_gap(self, parent) is None

    def allows(self, request: Request) -> bool:
        """Whether this grant allows ``request``: every constrained argument present and
        within its constraint, and (closed) no other argument."""
        if not pattern_within(request.segments, self.segments):
            return False
        if ANY_ACTION not in self.actions and request.action not in self.actions:
            return False
        args = request.args
        # A tuple, not the mapping's items, and one lookup per argument (a missing one
        # raises KeyError, which costs nothing until raised): about 0.05 µs a constraint
        # of the 0.15 the mapping walk took. (allows is looked up on each call, not bound
        # once: a kind's method stays the class's.)
        # test_shortfall_agrees_with_allows_in_the_closed_world and
        # test_a_grant_allows_by_the_plain_walk pin it.
        for name, constraint in self._checks:
            try:
                value = args[name]
            except KeyError:  # a constrained argument is missing
                return False
            if not constraint.allows(value):
                return False
        # Every constrained name is present, so a closed grant sees another argument
        # exactly when there are more arguments than constraints.
        return not self.closed or len(args) == len(self.constraints)

    # ------------------------------------------------------------ wire form

    def to_wire(self) -> list[Any]:
        """The grant as a canonical structure: ``[resource, [actions...], {name: c}]``,
        and ``true`` after them for an open-world grant (spec 10.3).

        Actions are sorted; constraint names are sorted; a constraint is ``[kind, ...]``.
        """
        constraints = {name: c.to_wire() for name, c in self.constraints.items()}
        if self.open_world:
            return [self.resource, sorted(self.actions), constraints, True]
        return [self.resource, sorted(self.actions), constraints]

    @classmethod
    def from_wire(cls, value: object) -> Grant:
        """Check and build a grant from its decoded wire form (``malformed`` or
        ``non_canonical`` on any deviation). Every check of the constructor runs here too,
        once (chains are verified often: this is on their path)."""
        if type(value) is not list or not 3 <= len(value) <= 4:
            raise DecodeError("a grant is [resource, actions, constraints] or, open-world, "
                              "[resource, actions, constraints, true]", code="malformed")
        resource, actions, constraints = value[0], value[1], value[2]
        open_world = len(value) == 4
        if open_world and value[3] is not True:
            raise DecodeError("a grant's fourth element is true (open-world) or absent",
                              code="malformed" if type(value[3]) is not bool else
                              "non_canonical")
        if type(actions) is not list or type(constraints) is not dict:
            raise DecodeError("grant actions are an array, constraints a map",
                              code="malformed")
        if type(resource) is not str:
            raise DecodeError("a resource is a string", code="malformed")
        # Resources and action lists recur from hop to hop even as grants narrow, so
        # their checked forms are remembered (they depend on nothing but the value).
        segments = _patterns_seen.get(resource)
        if segments is None:
            segments = parse_resource(resource, remote=True)
            _remember(_patterns_seen, resource, segments)
        key = tuple(actions)
        try:
            checked = _actions_seen.get(key)  # only lists of valid names are ever kept
        except TypeError:  # an unhashable item: no action name
            raise DecodeError("action names are strings", code="malformed") from None
        if checked is None:
            checked = _actions_from_wire(actions)
            _remember(_actions_seen, key, checked)
        table = {}
        if constraints:
            if len(constraints) > MAX_CONSTRAINTS:
                raise DecodeError(f"at most {MAX_CONSTRAINTS} constraints", code="malformed")
            for name in constraints:
                if type(name) is not str or not _ARG_NAME.fullmatch(name):
                    raise DecodeError("argument names are [a-z0-9_]{1,32}",
                                      code="malformed")
            if len(constraints) > 1 and list(constraints) != sorted(constraints):
                raise DecodeError("constraint names are not sorted", code="non_canonical")
            for name, constraint in constraints.items():
                table[name] = constraint_from_wire(constraint)
        elif open_world:
            raise DecodeError("a grant without constraints is open already: no fourth "
                              "element", code="non_canonical")
        grant = _new(cls)
        _set_resource(grant, resource)
        _set_actions(grant, checked)
        _set_constraints(grant, MappingProxyType(table))
        _set_open_world(grant, open_world)
        _set_closed(grant, bool(table) and not open_world)
        _set_segments(grant, segments)
        _set_checks(grant, _checks(table))
        return grant


def closure_gap(child: Grant, parent: Grant) -> str | None:
    """None if ``child`` keeps ``parent``'s closed world (or the parent is open-world);
    else the first argument the child names beyond the parent's, or ``""`` when the child
    lets every argument through (spec 10.2 rule 3: a child may close an open parent, never
    open a closed one). The child is taken to keep each of the parent's constraints."""
    if not parent.closed:
        return None
    if not child.closed:
        return ""
    if len(child.constraints) == len(parent.constraints):
        return None
    return next(name for name in child.constraints if name not in parent.constraints)


def actions_text(actions: frozenset[str]) -> str:
    """A set of actions in words, for a refusal's rule: ``"read, write"``."""
    return ", ".join(sorted(actions))


MAX_SHOWN = 200


def shown(value: object) -> int | str:
    """An argument's value as a refusal may hold it: an integer or a string of at most
    :data:`MAX_SHOWN` characters, never an object of the caller's whose ``repr`` could
    raise or run long."""
    if type(value) is int:
        return value
    if type(value) is str:
        text = value
    else:
        try:
            text = repr(value) if type(value) in (bool, float, bytes, list, tuple, dict) \
                else f"a {type(value).__name__}"
        except Exception:  # a list holding an object whose repr raises
            text = f"a {type(value).__name__}"
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def shortfall(grant: Grant, request: Request) -> tuple[int, Refusal] | None:
    """None if ``grant`` allows ``request``; otherwise how many of its checks passed and
    the first that failed, as a :class:`Refusal` without its link and grant.

    The checks are those of :meth:`Grant.allows`, in its fixed order: the resource, the
    action, then each constrained argument by name. This is the refusal path only (a
    property test holds it to ``allows``); the count ranks grants by how near they came.
    """
    if not pattern_within(request.segments, grant.segments):
        return 0, Refusal("resource", rule=f"a resource within {grant.resource!r}",
                          value=request.resource)
    if ANY_ACTION not in grant.actions and request.action not in grant.actions:
        return 1, Refusal("action", rule=f"one of the actions {actions_text(grant.actions)}",
                          value=request.action)
    args = request.args
    for passed, (name, constraint) in enumerate(grant.constraints.items(), start=2):
        if name not in args:
            return passed, Refusal("missing_argument", argument=name, rule=repr(constraint))
        value = args[name]
        if not constraint.allows(value):
            return passed, Refusal("argument", argument=name, rule=repr(constraint),
                                   problem=constraint.problem(value),
                                   value=shown(value))
    if grant.closed and len(args) > len(grant.constraints):
        extra = min(name for name in args if name not in grant.constraints)
        return 2 + len(grant.constraints), Refusal(
            "extra_argument", argument=extra,
            rule=f"only the arguments {', '.join(grant.constraints)} (a closed grant)")
    return None


# Building checked grants and constraints on the wire path: each slot set directly.
_new = object.__new__
(_set_resource, _set_actions, _set_constraints, _set_open_world, _set_closed,
 _set_segments, _set_checks) = (Grant.__dict__[name].__set__ for name in (
     "resource", "actions", "constraints", "open_world", "closed", "segments", "_checks"))


def _checks(constraints: Mapping[str, Constraint]) -> tuple[tuple[str, Constraint], ...]:
    """What :meth:`Grant.allows` walks: each name and its constraint."""
    return tuple(constraints.items())


_MEMO_SIZE = 4096
_patterns_seen: dict[str, tuple[str, ...]] = {}
_actions_seen: dict[tuple[Any, ...], frozenset[str]] = {}


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value


def clear_memos() -> None:
    """Forget the resources and action lists seen on the wire."""
    _patterns_seen.clear()
    _actions_seen.clear()


def _actions_from_wire(actions: list[Any]) -> frozenset[str]:
    if not 0 < len(actions) <= MAX_ACTIONS:
        raise DecodeError(f"a grant has 1 to {MAX_ACTIONS} action names", code="malformed")
    for action in actions:
        if type(action) is not str:
            raise DecodeError("action names are strings", code="malformed")
    if len(actions) > 1 and actions != sorted(set(actions)):
        raise DecodeError("grant actions are not sorted and unique", code="non_canonical")
    if ANY_ACTION in actions:
        if len(actions) != 1:
            raise DecodeError("'*' stands alone", code="malformed")
    else:
        for action in actions:
            if not _ACTION.fullmatch(action):
                raise DecodeError("action names are [a-z0-9_.-]{1,32}", code="malformed")
    return frozenset(actions)

"""The constraint kinds over plain values (spec 10.1 to 10.3): what each allows, its
problems, its wire form and wire faults, the collections the API takes; then one property
over every kind together (whatever a child allows, a parent it is within allows) and the
same at grant level, closed world and extra arguments included."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import raises

from agentauth import DecodeError
from agentauth.capability import Grant, Request
from agentauth.capability.constraints import (
    AnyOf,
    AnyValue,
    Contains,
    Eq,
    Length,
    NotOneOf,
    OneOf,
    Pattern,
    Prefix,
    Range,
    Subset,
    constraint_from_wire,
    constraint_within,
)
from agentauth.capability.grants import shortfall
from agentauth.capability.values import scalars

PROPERTY = settings(max_examples=500, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

ODD = [None, 1.0, b"a", bytearray(b"a"), ["a"], ("a",), {"a": 1}, {"a"}, [[1]], [{}],
       object(), 2**70, float("nan"), complex(1, 0)]

# ------------------------------------------------------------------ allows tables

ALLOWS: list[tuple[Any, object, bool]] = [
    (Eq(3), 3, True), (Eq(3), 4, False), (Eq(3), "3", False), (Eq(1), True, False),
    (Eq(True), True, True), (Eq(True), 1, False), (Eq(False), 0, False),
    (Eq(False), False, True), (Eq(0), False, False), (Eq("a"), "a", True),
    (Eq("a"), "A", False), (Eq("é"), "e\u0301", False),  # no normalisation
    (OneOf({1, 2}), 2, True), (OneOf({1, 2}), 3, False), (OneOf({1}), True, False),
    (OneOf({True}), 1, False), (OneOf({"a", "b"}), "b", True), (OneOf({"a"}), ["a"], False),
    (NotOneOf({1, 2}), 3, True), (NotOneOf({1, 2}), 2, False),
    (NotOneOf({1}), "x", False),  # another type is never allowed
    (NotOneOf({1}), True, False), (NotOneOf({True}), False, True),
    (NotOneOf({True}), 0, False), (NotOneOf({"a"}), "b", True),
    (Range(1, 3), 1, True), (Range(1, 3), 3, True), (Range(1, 3), 0, False),
    (Range(1, 3), 4, False), (Range(0, 1), True, False), (Range(1, 3), "2", False),
    (Range(-(2**63), 2**63 - 1), 2**63, False), (Range(-(2**63), 2**63 - 1), 0, True),
    (Length(1, 2), "a", True), (Length(1, 2), "", False), (Length(1, 2), "é", True),
    (Length(1, 2), "日", False),  # three UTF-8 bytes
    (Length(0, 0), "", True), (Length(1, 4), "\ud800", False), (Length(0, 9), b"a", False),
    (Length(4, 4), "😀", True), (Length(1, 1), "😀", False),
    (Prefix("ab"), "abc", True), (Prefix("ab"), "ab", True), (Prefix("ab"), "a", False),
    (Prefix(""), "", True), (Prefix("a"), "A", False), (Prefix("a"), ["a"], False),
    (Contains({"a", "b"}), ["a", "b"], True), (Contains({"a", "b"}), ["b", "c", "a"], True),
    (Contains({"a", "b"}), ("a", "b"), True), (Contains({"a", "b"}), ["a"], False),
    (Contains({"a"}), ["a", 1], False),  # every item has the values' type
    (Contains({1}), [1, 1], True), (Contains({1}), [True], False), (Contains({1}), [], False),
    (Contains({"a"}), "a", False), (Contains({"a"}), [["a"]], False),
    (Contains({"a"}), {"a"}, False),
    (Subset({"a", "b"}), [], True), (Subset({"a", "b"}), ["a", "a"], True),
    (Subset({"a", "b"}), ["a", "c"], False), (Subset({1}), [True], False),
    (Subset({1}), 1, False), (Subset({"a"}), [["a"]], False), (Subset({"a"}), "a", False),
    (AnyOf([Eq(1), Prefix("a")]), 1, True), (AnyOf([Eq(1), Prefix("a")]), "ab", True),
    (AnyOf([Eq(1), Prefix("a")]), "b", False), (AnyOf([Eq(1), Range(5, 6)]), True, False),
    (AnyValue(), None, True), (AnyValue(), [[1]], True), (AnyValue(), object(), True),
    (Pattern("a*"), "ab", True),
]


@pytest.mark.parametrize(("constraint", "value", "allowed"), ALLOWS)
def test_allows_table(constraint: Any, value: object, allowed: bool) -> None:
    assert constraint.allows(value) is allowed
    if not allowed:
        problem = constraint.problem(value)
        assert isinstance(problem, str) and problem


def stable_repr(constraint: Any) -> str:
    """``repr()`` with the members of every set in sorted order: a set's order follows the
    string hash, which differs from one process to the next (and so would the test ids)."""
    return re.sub(r"\{([^{}]*)\}",
                  lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}",
                  repr(constraint))


SAMPLES: list[Any] = sorted({stable_repr(c): c for c, _, _ in ALLOWS}.values(),
                            key=stable_repr)


@pytest.mark.parametrize("constraint", SAMPLES, ids=stable_repr)
def test_no_kind_raises_on_odd_values(constraint: Any) -> None:
    for value in ODD:
        assert constraint.allows(value) in (True, False)
        if not constraint.allows(value):
            assert isinstance(constraint.problem(value), str)


@pytest.mark.parametrize(("constraint", "value", "words"), [
    (Eq(3), 4, "another value"), (Eq(3), "3", "a str, not an int"),
    (Eq(True), 1, "an int, not a bool"), (OneOf({1}), 2, "not one of the values"),
    (NotOneOf({1}), 1, "one of the excluded values"), (NotOneOf({1}), "a", "a str, not an int"),
    (Range(1, 2), 3, "out of bounds"), (Range(1, 2), None, "a NoneType, not an int"),
    (Length(1, 2), "abc", "a length out of bounds"), (Prefix("a"), "b", "another start"),
    (Contains({"a", "b"}), ["a"], "1 required values missing"),
    (Contains({"a"}), "a", "not a list of str"), (Subset({"a"}), ["b", "c"],
                                                 "2 values outside the set"),
    (Subset({1}), [True], "not a list of int"),
    (AnyOf([Eq(1), Prefix("a")]), "b", "a str, not an int; another start"),
])
def test_problems_say_what_is_wrong(constraint: Any, value: object, words: str) -> None:
    assert not constraint.allows(value)
    assert constraint.problem(value) == words


# ------------------------------------------------------------------ the wire form


@pytest.mark.parametrize("constraint", [
    Eq(3), Eq(-(2**63)), Eq(True), Eq(False), Eq(""), Eq("é" * 128), OneOf({3, 1, 2}),
    OneOf({"b", "a"}), OneOf({True, False}), NotOneOf({"x"}), NotOneOf({False}),
    Range(-1, 1), Range(2**63 - 1, 2**63 - 1), Length(0, 0), Length(1, 2**63 - 1),
    Prefix(""), Prefix("a/b"), Contains({1, 2}), Contains({"a"}), Subset({"b", "a"}),
    Subset({-5}), AnyOf([Eq(1), Prefix("a"), Pattern("?")]), AnyValue(), Pattern("a*?"),
    OneOf(set(range(64))),
], ids=stable_repr)
def test_wire_round_trip(constraint: Any) -> None:
    wire = constraint.to_wire()
    back = constraint_from_wire(wire)
    assert type(back) is type(constraint) and back == constraint
    assert back.to_wire() == wire


def test_wire_values_are_in_ascending_order() -> None:
    assert OneOf({"b", "a", "c"}).to_wire() == [1, ["a", "b", "c"]]
    assert NotOneOf({3, -1}).to_wire() == [4, [-1, 3]]
    assert Contains({2, 1}).to_wire() == [6, [1, 2]]
    assert Subset({"é", "z"}).to_wire() == [7, ["z", "é"]]  # by code point
    assert OneOf({True, False}).to_wire() == [1, [False, True]]


@pytest.mark.parametrize(("wire", "code"), [
    ([0], "malformed"), ([0, 1, 2], "malformed"), ([0, 1.5], "malformed"),
    ([0, None], "malformed"), ([0, [1]], "malformed"), ([0, 2**63], "malformed"),
    ([0, "\ud800"], "malformed"), ([0, "x" * 257], "malformed"),
    ([1, []], "malformed"), ([1, "a"], "malformed"), ([1, [1, "a"]], "malformed"),
    ([1, [1, True]], "malformed"), ([1, [1], 2], "malformed"),
    ([1, list(range(65))], "malformed"), ([1, [1.0]], "malformed"),
    ([1, [2, 1]], "non_canonical"), ([1, [1, 1]], "non_canonical"),
    ([1, ["b", "a"]], "non_canonical"), ([1, [True, False]], "non_canonical"),
    ([4, [2, 1]], "non_canonical"), ([4, []], "malformed"),
    ([6, ["b", "a"]], "non_canonical"), ([6, [True]], "malformed"), ([6, []], "malformed"),
    ([7, [3, 3]], "non_canonical"), ([7, []], "malformed"), ([7, [[1]]], "malformed"),
    ([2, 1], "malformed"), ([2, 2, 1], "malformed"), ([2, True, 1], "malformed"),
    ([2, 0, 2**63], "malformed"), ([2, 1, 2, 3], "malformed"), ([2, 1.0, 2], "malformed"),
    ([3], "malformed"), ([3, 1], "malformed"), ([3, "a", "b"], "malformed"),
    ([5, -1, 2], "malformed"), ([5, 2, 1], "malformed"), ([5, 0], "malformed"),
    ([12, []], "malformed"), ([12, [[0, 1]]], "malformed"),
    ([12, [[0, 1], [13]]], "malformed"), ([12, [[0, 1], [12, [[0, 1], [0, 2]]]]], "malformed"),
    ([12, [[0, 1], [0, 2]], 1], "malformed"), ([12, [[0, i] for i in range(9)]], "malformed"),
    ([12, [[0, 1], 5]], "malformed"), ([12, "ab"], "malformed"),
    ([13, 1], "malformed"), ([], "malformed"), (["0"], "malformed"), ([True, 1], "malformed"),
    ([1.0, 1], "malformed"), ("x", "malformed"), (None, "malformed"), ((0, 1), "malformed"),
    ([14], "unknown_field"), ([99, 1], "unknown_field"), ([-1], "unknown_field"),
    ([12, [[0, 1], [99]]], "unknown_field"),
])
def test_wire_faults(wire: object, code: str) -> None:
    with raises(code):
        constraint_from_wire(wire)


# ------------------------------------------------------------------ building from the API

COLLECTIONS: list[Callable[[], Any]] = [
    lambda: {"a", "b"}, lambda: ["a", "b"], lambda: ("a", "b"), lambda: frozenset({"a", "b"}),
    lambda: (v for v in ("a", "b")), lambda: iter(["b", "a", "a"]), {"a": 1, "b": 2}.keys,
]


@pytest.mark.parametrize("kind", [OneOf, NotOneOf, Contains, Subset])
@pytest.mark.parametrize("make", COLLECTIONS)
def test_any_collection_of_values_will_do(kind: Any, make: Callable[[], Any]) -> None:
    assert kind(make()) == kind(frozenset({"a", "b"}))


@pytest.mark.parametrize("kind", [OneOf, NotOneOf, Contains, Subset])
@pytest.mark.parametrize("value", ["ab", "", b"ab", {"a": 1}, 3, None, 1.5])
def test_one_value_is_not_a_collection(kind: Any, value: object) -> None:
    with raises("invalid_argument") as info:
        kind(value)
    message = info.value.message
    assert f"{kind.__name__}({{value}})" in message and "collection" in message


@pytest.mark.parametrize(("kind", "args"), [
    (OneOf, ([],)), (OneOf, ({1, "a"},)), (OneOf, ([1, True],)), (OneOf, (range(65),)),
    (OneOf, ({1.5},)), (OneOf, ([[1]],)), (NotOneOf, (set(),)), (Contains, ({True},)),
    (Subset, ({True},)), (Contains, ([],)), (Subset, (["x" * 257],)), (Range, (2, 1)),
    (Range, (1, 2**63)), (Range, (False, 1)), (Length, (-1, 1)), (Length, (2, 1)),
    (Length, (0, 1.0)), (Prefix, (b"a",)), (Prefix, ("\ud800",)), (Eq, (None,)),
    (Eq, ([1],)), (Eq, (2**63,)), (AnyOf, ([Eq(1)],)), (AnyOf, ([Eq(1), AnyValue()],)),
    (AnyOf, (Eq(1),)), (AnyOf, ([Eq(1), AnyOf([Eq(2), Eq(3)])],)),
    (AnyOf, ([Eq(i) for i in range(9)],)), (AnyOf, ("ab",)), (AnyOf, ([Eq(1), 2],)),
])
def test_bad_constraints_are_refused_where_they_are_built(kind: Any, args: Any) -> None:
    with raises("invalid_argument"):
        kind(*args)


# ------------------------------------------------------------------ narrowing tables


@pytest.mark.parametrize(("child", "parent", "within"), [
    (NotOneOf({1, 2}), NotOneOf({1}), True), (NotOneOf({1}), NotOneOf({1, 2}), False),
    (NotOneOf({True}), NotOneOf({1}), False), (Range(3, 5), NotOneOf({1, 2}), True),
    (Range(1, 5), NotOneOf({2}), False), (Prefix("a"), NotOneOf({"b"}), True),
    (Prefix("a"), NotOneOf({"ab"}), False), (Length(2, 3), NotOneOf({"a"}), True),
    (Eq(True), NotOneOf({False}), True), (AnyValue(), NotOneOf({1}), False),
    (Contains({1}), NotOneOf({1}), False), (Pattern("a?"), NotOneOf({"b"}), True),
    (Length(1, 2), Length(0, 3), True), (Length(0, 3), Length(1, 2), False),
    (Contains({1, 2}), Contains({1}), True), (Contains({1}), Contains({1, 2}), False),
    (Contains({"1"}), Contains({1}), False), (Subset({1}), Subset({1, 2}), True),
    (Subset({1, 2}), Subset({1}), False), (Subset({"1"}), Subset({1}), False),
    (Contains({1}), Subset({1}), False), (Subset({1}), Contains({1}), False),
    (AnyOf([Eq(1), Eq(2)]), OneOf({1, 2, 3}), True),
    (AnyOf([Eq(1), Eq(4)]), OneOf({1, 2, 3}), False),
    (Eq(2), AnyOf([Range(0, 1), Range(2, 3)]), True),
    (Range(0, 3), AnyOf([Range(0, 1), Range(2, 3)]), False),  # sound, not complete
    (AnyOf([Range(0, 1), Prefix("a")]), AnyOf([Range(0, 2), Prefix("")]), True),
    (AnyValue(), AnyValue(), True), (Eq(1), AnyValue(), True), (AnyValue(), Eq(1), False),
    (AnyOf([Eq(1), Eq(2)]), AnyValue(), True), (Range(1, 2), Length(1, 2), False),
    (OneOf({"a", "ab"}), Prefix("a"), True), (OneOf({"a", "b"}), Prefix("a"), False),
])
def test_narrowing_table(child: Any, parent: Any, within: bool) -> None:
    assert constraint_within(child, parent) is within


# ------------------------------------------------------------------ every kind, one property

INTS = st.integers(-3, 3)
STRS = st.sampled_from(["", "a", "ab", "b", "ba", "é", "a*", "?", "abc"])
BOOLS = st.booleans()
GLOBS = st.text(alphabet="ab*?", max_size=4).filter(lambda g: "**" not in g)


def _value_sets(items: st.SearchStrategy[Any], most: int = 4) -> st.SearchStrategy[Any]:
    return st.frozensets(items, min_size=1, max_size=most)


# Each kind as a strategy of constraints. A kind written elsewhere joins the property with
# one line here once its allows is implemented.
KIND_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "eq": st.one_of(INTS, STRS, BOOLS).map(Eq),
    "one-of": st.one_of(_value_sets(INTS), _value_sets(STRS), _value_sets(BOOLS)).map(OneOf),
    "not-one-of": st.one_of(_value_sets(INTS), _value_sets(STRS),
                            _value_sets(BOOLS)).map(NotOneOf),
    "range": st.tuples(INTS, st.integers(0, 4)).map(lambda t: Range(t[0], t[0] + t[1])),
    "length": st.tuples(st.integers(0, 3), st.integers(0, 3)).map(
        lambda t: Length(t[0], t[0] + t[1])),
    "prefix": STRS.map(Prefix),
    "contains": st.one_of(_value_sets(INTS, 3), _value_sets(STRS, 3)).map(Contains),
    "subset": st.one_of(_value_sets(INTS, 3), _value_sets(STRS, 3)).map(Subset),
    "pattern": GLOBS.map(Pattern),
    "any": st.just(AnyValue()),
}
MEMBERS = st.one_of([s for name, s in KIND_STRATEGIES.items() if name != "any"])
KIND_STRATEGIES["any-of"] = st.lists(MEMBERS, min_size=2, max_size=3).map(AnyOf)
CONSTRAINTS = st.one_of(list(KIND_STRATEGIES.values()))


def edges(constraint: Any) -> list[Any]:
    """Values at and around what a constraint names: its own values, its bounds and one
    past them, its prefix and glob filled in, lists of its values."""
    if isinstance(constraint, Eq):
        return [constraint.value]
    if isinstance(constraint, OneOf | NotOneOf):
        return sorted(constraint.values, key=repr)
    if isinstance(constraint, Range):
        return [constraint.lo - 1, constraint.lo, constraint.hi, constraint.hi + 1]
    if isinstance(constraint, Length):
        return [c * n for n in {max(constraint.lo - 1, 0), constraint.lo, constraint.hi,
                                constraint.hi + 1} for c in ("a", "é")]
    if isinstance(constraint, Prefix):
        p = constraint.prefix
        return [p, p + "a", p + "*", p[:-1]]
    if isinstance(constraint, Pattern):
        g = constraint.glob
        return [g, g.replace("*", ""), g.replace("*", "ab").replace("?", "a"),
                g.replace("?", "b"), g.replace("*", "?")]
    if isinstance(constraint, Contains | Subset):
        values = sorted(constraint.values, key=repr)
        return [values, values[:1], [*values, values[0]], [], [*values, "zz"], [*values, 9]]
    if isinstance(constraint, AnyOf):
        return [v for member in constraint.members for v in edges(member)]
    return []


RANDOM_VALUES = st.one_of(INTS, STRS, BOOLS, st.text(alphabet="ab*?é", max_size=4),
                          st.lists(st.one_of(INTS, STRS), max_size=3), st.none(),
                          st.floats(allow_nan=False), st.binary(max_size=2))


@PROPERTY
@given(data=st.data(), child=CONSTRAINTS, parent=CONSTRAINTS)
def test_within_is_sound_over_every_kind(data: st.DataObject, child: Any, parent: Any) -> None:
    if not constraint_within(child, parent):
        return
    values = edges(child) + edges(parent) + data.draw(st.lists(RANDOM_VALUES, max_size=6))
    for value in values:
        if child.allows(value):
            assert parent.allows(value), (child, parent, value)


@PROPERTY
@given(data=st.data(), parent=CONSTRAINTS)
def test_every_kind_is_within_itself_and_its_values_within_it(data: st.DataObject,
                                                              parent: Any) -> None:
    assert constraint_within(parent, parent)
    for value in edges(parent):
        if parent.allows(value) and type(value) in (int, str, bool):
            assert constraint_within(Eq(value), parent)


@PROPERTY
@given(constraint=CONSTRAINTS)
def test_every_kind_round_trips_on_the_wire(constraint: Any) -> None:
    assert constraint_from_wire(constraint.to_wire()) == constraint


@PROPERTY
@given(constraint=CONSTRAINTS, value=st.recursive(
    st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=3), st.binary(max_size=2),
              BOOLS), lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner),
                                              st.dictionaries(st.text(max_size=1), inner,
                                                              max_size=2)), max_leaves=5))
def test_no_kind_raises_on_any_value(constraint: Any, value: object) -> None:
    if not constraint.allows(value):
        assert isinstance(constraint.problem(value), str)


# ------------------------------------------------------------------ grants, closed world

NAMES = st.sampled_from(["x", "y", "z"])


@st.composite
def grants(draw: st.DrawFn) -> Grant:
    table = draw(st.dictionaries(NAMES, CONSTRAINTS, max_size=2))
    return Grant(draw(st.sampled_from(["a/**", "a/b", "**"])),
                 draw(st.sampled_from([{"read"}, {"*"}])), table, open_world=draw(BOOLS))


@st.composite
def narrowed(draw: st.DrawFn, parent: Grant) -> Grant:
    """A child built to be within ``parent``: each constraint kept or pinned to a value it
    allows, more arguments only under an open parent, closed or not as the parent lets."""
    table: dict[str, Any] = {}
    for name, constraint in parent.constraints.items():
        allowed = [v for v in edges(constraint)
                   if type(v) in (int, str, bool) and constraint.allows(v)]
        pin = bool(allowed) and draw(BOOLS)
        table[name] = Eq(draw(st.sampled_from(allowed))) if pin else constraint
    if not parent.closed:
        table.update(draw(st.dictionaries(NAMES.filter(lambda n: n not in table),
                                          CONSTRAINTS, max_size=1)))
    open_world = not parent.closed and draw(BOOLS)
    return Grant(parent.resource, parent.actions, table, open_world=open_world)


@st.composite
def requests_for(draw: st.DrawFn, grants_: tuple[Grant, ...]) -> Request:
    """A request with values drawn from the grants' own edges and at random, sometimes an
    argument no grant names."""
    args: dict[str, object] = {}
    for grant in grants_:
        for name, constraint in grant.constraints.items():
            if draw(st.integers(0, 9)) == 0:
                continue  # sometimes missing
            args[name] = draw(st.sampled_from([*edges(constraint), None]))
    if draw(BOOLS):
        args[draw(st.sampled_from(["x", "y", "z", "w"]))] = draw(RANDOM_VALUES)
    return Request("a/b", "read", args)


@PROPERTY
@given(data=st.data(), parent=grants(), other=grants())
def test_grant_within_is_sound_in_the_closed_world(data: st.DataObject, parent: Grant,
                                                   other: Grant) -> None:
    child = data.draw(st.one_of(narrowed(parent), st.just(other)))
    if not child.within(parent):
        return
    for _ in range(4):
        request = data.draw(requests_for((child, parent)))
        if child.allows(request):
            assert parent.allows(request), (child, parent, request)


@PROPERTY
@given(data=st.data(), parent=grants())
def test_a_narrowed_grant_is_within(data: st.DataObject, parent: Grant) -> None:
    child = data.draw(narrowed(parent))
    assert child.within(parent)


@PROPERTY
@given(data=st.data(), grant=grants())
def test_shortfall_agrees_with_allows_in_the_closed_world(data: st.DataObject,
                                                          grant: Grant) -> None:
    request = data.draw(requests_for((grant,)))
    found = shortfall(grant, request)
    assert (found is None) == grant.allows(request)
    if found is not None and found[1].kind == "extra_argument":
        assert grant.closed and found[1].argument not in grant.constraints


@PROPERTY
@given(data=st.data(), grant=grants())
def test_a_grant_allows_by_the_plain_walk(data: st.DataObject, grant: Grant) -> None:
    # Grant.allows walks a tuple of bound allows, one lookup per argument; built by the
    # constructor or read from the wire, it decides as the plain walk over the mapping.
    request = data.draw(requests_for((grant,)))
    args = request.args
    plain = ("a/b".startswith(grant.resource.removesuffix("**")) or grant.resource == "**"
             ) and all(name in args and constraint.allows(args[name])
                       for name, constraint in grant.constraints.items()) and (
        not grant.closed or set(args) == set(grant.constraints))
    assert grant.allows(request) is plain
    assert Grant.from_wire(grant.to_wire()).allows(request) is plain


@PROPERTY
@given(grant=grants())
def test_grants_with_every_kind_round_trip(grant: Grant) -> None:
    assert Grant.from_wire(grant.to_wire()) == grant


def test_closed_and_open_grants_by_example() -> None:
    closed = Grant("a/**", {"read"}, {"x": Pattern("*.csv")})
    opened = Grant("a/**", {"read"}, {"x": Pattern("*.csv")}, open_world=True)
    extra = Request("a/b", "read", {"x": "r.csv", "y": 1})
    assert not closed.allows(extra) and opened.allows(extra)
    found = shortfall(closed, extra)
    assert found is not None and found[1].kind == "extra_argument"
    assert found[1].argument == "y"
    assert closed.within(opened) and not opened.within(closed)
    wider = Grant("a/**", {"read"}, {"x": Pattern("*.csv"), "y": AnyValue()})
    assert not wider.within(closed) and wider.within(opened)


def test_request_argument_names_are_strings() -> None:
    # A name of another type reached the refusal path, where naming the first extra
    # argument compared it with strings and raised TypeError.
    with raises("invalid_argument"):
        Request("a/b", "read", {"x": 1, 2: 3, "y": 1})  # type: ignore[dict-item]


def test_an_any_of_is_counted_before_its_members_are_decoded() -> None:
    # Thousands of members were each decoded, then the count refused: now the count
    # comes first, so a member past the eighth is never read (this one would be
    # unknown_field if it were).
    with raises("malformed"):
        constraint_from_wire([12, [[0, i] for i in range(8)] + [[99]]])


def test_a_value_set_is_counted_before_its_values_are_checked() -> None:
    # A 65th value is refused for the count (malformed), whatever it holds: the values
    # are not each checked first.
    with raises("malformed") as info:
        constraint_from_wire([1, [*range(64), "x"]])
    assert "64" in info.value.message


class Text(str):
    """A str subclass: never a string value."""


WIRE_VALUE = st.one_of(st.integers(min_value=-(2**64), max_value=2**64), st.booleans(),
                       st.text(max_size=4), st.text(alphabet="ab", min_size=255, max_size=258),
                       st.sampled_from(["\ud800", "é" * 129, "é" * 128, None, 1.0, b"a"]))


@PROPERTY
@given(st.one_of(st.lists(WIRE_VALUE, max_size=6),
                 st.lists(st.integers(), max_size=66).map(sorted),
                 st.lists(st.text(max_size=3), max_size=8).map(sorted),
                 st.lists(st.text(max_size=3), unique=True, max_size=8).map(sorted),
                 st.just([False, True]), WIRE_VALUE),
       st.sampled_from([(1, (int, str, bool)), (0, (int, str)), (1, (int, str))]))
def test_the_fast_wire_set_is_the_plain_reading(values: Any, rule: Any) -> None:
    # A wire value set is read in one pass in the common case; that reading accepts and
    # refuses exactly what the plain rule does, with the same code.
    least, kinds = rule

    def read(plain: bool) -> object:
        try:
            return scalars(values, True, "set", least=least, kinds=kinds, plain=plain)
        except DecodeError as error:
            return error.code

    assert read(False) == read(True)


@PROPERTY
@given(st.lists(st.one_of(st.integers(0, 3), st.booleans(), st.sampled_from(["a", "b", "c"]),
                          st.builds(Text, st.sampled_from(["a", "b"])), st.just([1])),
                max_size=5),
       st.sampled_from([list, tuple, iter, str]),
       st.sampled_from([{1, 2}, {"a", "b"}, {0, 1, 3}]))
def test_subset_allows_is_the_plain_reading(items: list[Any], container: Any,
                                             values: set[Any]) -> None:
    arg = container(items)
    kind = type(next(iter(values)))
    plain = (type(arg) in (list, tuple) and all(type(i) is kind for i in arg)
             and all(i in values for i in arg))
    assert Subset(values).allows(arg) is plain
    assert constraint_from_wire(Subset(values).to_wire()).allows(arg) is plain



@PROPERTY
@given(st.one_of(st.text(max_size=12), st.text(alphabet="ab\x00\x7f", max_size=12),
                 st.sampled_from(["\ud800", "é", "日本", "😀"])),
       st.integers(0, 14), st.integers(0, 14))
def test_length_allows_is_the_plain_reading(value: str, lo: int, hi: int) -> None:
    # An ASCII string is measured by its length, any other by its UTF-8 encoding.
    lo, hi = min(lo, hi), max(lo, hi)
    try:
        plain = lo <= len(value.encode()) <= hi
    except UnicodeEncodeError:
        plain = False
    assert Length(lo, hi).allows(value) is plain
    assert Length(lo, hi).allows(Text(value)) is False

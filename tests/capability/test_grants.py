"""Grants and the narrowing rule: examples, a brute-force check of resource containment,
hypothesis soundness of Grant.within (whatever a child allows, its parent allows), and
the wire form (round trip; random structures give only typed errors)."""

from __future__ import annotations

import contextlib
import itertools
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import raises

from agentauth import AgentAuthError
from agentauth.capability import Eq, Grant, OneOf, Prefix, Range, Request
from agentauth.capability.grants import (
    constraint_within,
    parse_resource,
    pattern_within,
    shortfall,
)

PROPERTY = settings(max_examples=400, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ examples


@pytest.mark.parametrize(("child", "parent", "within"), [
    ("reports/q3", "reports/**", True),
    ("reports", "reports/**", True),  # ** matches zero segments too
    ("reportsX/q3", "reports/**", False),  # segment boundaries, not string prefixes
    ("reports/*", "reports/**", True),
    ("reports/**", "reports/*", False),
    ("reports/*/x", "reports/*/*", True),
    ("reports/*", "reports/q3", False),
    ("a/b/c", "a/*/c", True),
    ("a/**", "**", True),
    ("**", "a/**", False),
    ("a/b", "a/b/c", False),
    ("a/b/c", "a/b", False),
])
def test_resource_containment_examples(child: str, parent: str, within: bool) -> None:
    assert pattern_within(parse_resource(child), parse_resource(parent)) is within


@pytest.mark.parametrize("text", ["", "a//b", "a/**/b", "a/./b", "../x", "a/b c",
                                  "a/*x", "a/%2e", "/a", "a/", "é", "a/" + "x" * 65,
                                  "/".join(["s"] * 33)])
def test_bad_resources_are_refused(text: str) -> None:
    with raises("invalid_argument"):
        parse_resource(text)
    with raises("malformed"):
        parse_resource(text, remote=True)


_SEGMENT_CHARS = set(string.ascii_letters + string.digits + "._~:@+=,;!$'()-")


def _segment_rule(text: str, pattern: bool) -> bool:
    """The rule of spec 10.1, one segment at a time (what the one-match fast path of
    parse_resource must agree with)."""
    segments = text.split("/")
    if not 0 < len(text) <= 256 or len(segments) > 32:
        return False
    for i, segment in enumerate(segments):
        if pattern and (segment == "*" or (segment == "**" and i == len(segments) - 1)):
            continue
        if (segment in (".", "..") or not 0 < len(segment) <= 64
                or not set(segment) <= _SEGMENT_CHARS):
            return False
    return True


@PROPERTY
@given(text=st.text(alphabet="ab./*-\n", max_size=12), pattern=st.booleans())
def test_parse_resource_agrees_with_the_segment_rule(text: str, pattern: bool) -> None:
    try:
        parse_resource(text, pattern=pattern)
        accepted = True
    except AgentAuthError as exc:
        assert exc.code == "invalid_argument"
        assert exc.message != "the resource is not allowed"  # the two paths disagreed
        accepted = False
    assert accepted is _segment_rule(text, pattern)


def test_requests_name_concrete_resources() -> None:
    for text in ("a/*", "a/**"):
        with raises("invalid_argument"):
            Request(text, "read")
    with raises("invalid_argument"):
        Request("a", "Read")


def test_grant_allows_and_within() -> None:
    parent = Grant("fs/reports/**", {"read", "list"},
                   {"year": Range(2020, 2026), "fmt": OneOf(frozenset({"csv", "pdf"}))},
                   open_world=True)  # open: the child may constrain "team" too
    child = Grant("fs/reports/q3/*", {"read"},
                  {"year": Eq(2024), "fmt": Eq("pdf"), "team": Prefix("ops-")})
    assert child.within(parent) and not parent.within(child)
    request = Request("fs/reports/q3/summary", "read",
                      {"year": 2024, "fmt": "pdf", "team": "ops-emea"})
    assert child.allows(request) and parent.allows(request)
    assert not child.allows(Request("fs/reports/q3/summary", "read",
                                    {"year": 2024, "fmt": "pdf"}))  # missing arg: denied
    assert not parent.allows(Request("fs/reports/q3", "read", {"year": True, "fmt": "pdf"}))
    dropped = Grant("fs/reports/q3/*", {"read"}, {"year": Eq(2024)})  # no fmt: wider
    assert not dropped.within(parent)
    assert not Grant("fs/reports/**", {"*"}).within(parent)
    assert Grant("fs/reports/x", {"read"}, {"year": Eq(2021), "fmt": Eq("csv")}).within(
        Grant("fs/**", {"*"}))


@pytest.mark.parametrize(("child", "parent", "within"), [
    (Eq(3), Eq(3), True), (Eq(3), Eq("3"), False), (Eq(True), Eq(1), False),
    (Eq(3), OneOf(frozenset({1, 3})), True), (OneOf(frozenset({1, 3})), Eq(3), False),
    (OneOf(frozenset({1})), OneOf(frozenset({1, 3})), True),
    (Range(2, 3), Range(1, 3), True), (Range(0, 3), Range(1, 3), False),
    (OneOf(frozenset({1, 2})), Range(1, 3), True), (OneOf(frozenset({1, 9})), Range(1, 3),
                                                    False),
    (Prefix("ab"), Prefix("a"), True), (Prefix("a"), Prefix("ab"), False),
    (Eq("abc"), Prefix("ab"), True), (Range(1, 2), Prefix("a"), False),
    (Range(1, 1), Eq(1), False),  # containment is structural: issuers write Eq
])
def test_constraint_containment_table(child: Any, parent: Any, within: bool) -> None:
    assert constraint_within(child, parent) is within


@pytest.mark.parametrize("build", [
    lambda: Eq(1.5),  # type: ignore[arg-type]
    lambda: Range(3, 1), lambda: Range(True, 2), lambda: OneOf(frozenset()),
    lambda: OneOf(frozenset({1, "1"})), lambda: OneOf("ab"),
    lambda: OneOf(3),  # type: ignore[arg-type]
    lambda: Prefix(3),  # type: ignore[arg-type]
    lambda: Eq(2**63)])
def test_bad_constraints_are_refused_where_they_are_built(build: Any) -> None:
    with raises("invalid_argument"):
        build()


def test_a_grant_takes_only_constraints() -> None:
    with raises("invalid_argument"):
        Grant("a", {"read"}, {"x": "eq"})  # type: ignore[dict-item]


# ------------------------------------------------- brute force over a small world

WORLD = [tuple(p) for n in range(1, 5) for p in itertools.product("abc", repeat=n)]
PATTERNS = sorted({tuple(p) for n in range(1, 4)
                   for p in itertools.product(["a", "b", "*"], repeat=n)}
                  | {(*p, "**") for n in range(0, 3)
                     for p in itertools.product(["a", "*"], repeat=n)})


def matches(resource: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """An independent matcher, by recursion on the pattern."""
    if not pattern:
        return not resource
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return True
    if not resource:
        return False
    return (head in ("*", resource[0])) and matches(resource[1:], rest)


def test_pattern_containment_is_sound_and_exact_on_a_small_world() -> None:
    # 'c' never appears in patterns, so it stands for every other segment: in this world
    # "within" must hold exactly when every resource of the child matches the parent. The
    # one exception is safe: "**" and "*/**" denote the same resources (a resource has at
    # least one segment), and the rule does not see "**" as within "*/**".
    for child, parent in itertools.product(PATTERNS, repeat=2):
        semantic = all(matches(r, parent) for r in WORLD if matches(r, child))
        if pattern_within(child, parent):
            assert semantic, ("unsound", child, parent)
        elif (child, parent) != (("**",), ("*", "**")):
            assert not semantic, ("incomplete", child, parent)
    for r, p in itertools.product(WORLD, PATTERNS):
        assert pattern_within(r, p) == matches(r, p)


# ------------------------------------------------------------------ hypothesis

SEGMENTS = st.sampled_from(["a", "b", "c"])
ACTIONS = st.frozensets(st.sampled_from(["read", "write", "list"]), min_size=1)
INTS = st.integers(-5, 5)
STRS = st.sampled_from(["", "a", "ab", "abc", "b", "ba"])


@st.composite
def patterns(draw: st.DrawFn) -> str:
    body = draw(st.lists(st.one_of(SEGMENTS, st.just("*")), min_size=0, max_size=3))
    if draw(st.booleans()) or not body:
        body.append("**")
    return "/".join(body)


@st.composite
def constraints(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["eq", "in", "range", "pfx"]))
    if kind == "eq":
        return Eq(draw(st.one_of(INTS, STRS)))
    if kind == "in":
        values = draw(st.one_of(st.frozensets(INTS, min_size=1, max_size=4),
                                st.frozensets(STRS, min_size=1, max_size=4)))
        return OneOf(values)
    if kind == "range":
        lo = draw(INTS)
        return Range(lo, lo + draw(st.integers(0, 6)))
    return Prefix(draw(STRS))


@st.composite
def grants(draw: st.DrawFn) -> Grant:
    table = draw(st.dictionaries(st.sampled_from(["x", "y"]), constraints(), max_size=2))
    actions = draw(st.one_of(ACTIONS, st.just(frozenset({"*"}))))
    return Grant(draw(patterns()), actions, table)


@st.composite
def requests_of(draw: st.DrawFn, grant: Grant) -> Request:
    """A request the grant allows when it can (instantiating its wildcards)."""
    segments = []
    for segment in grant.segments:
        if segment == "*":
            segments.append(draw(SEGMENTS))
        elif segment == "**":
            segments.extend(draw(st.lists(SEGMENTS, max_size=2)))
        else:
            segments.append(segment)
    if not segments:
        segments = [draw(SEGMENTS)]
    actions = sorted(grant.actions - {"*"}) or ["read", "write", "list"]
    args: dict[str, object] = {}
    for name, c in grant.constraints.items():
        if isinstance(c, Eq):
            args[name] = c.value
        elif isinstance(c, OneOf):
            args[name] = draw(st.sampled_from(sorted(c.values, key=repr)))
        elif isinstance(c, Range):
            args[name] = draw(st.integers(c.lo, c.hi))
        else:
            assert isinstance(c, Prefix)
            args[name] = c.prefix + draw(STRS)
    if draw(st.booleans()):
        args["z"] = draw(st.one_of(INTS, STRS, st.booleans()))
    return Request("/".join(segments), draw(st.sampled_from(actions)), args)


@PROPERTY
@given(data=st.data(), parent=grants(), child=grants())
def test_within_is_sound(data: st.DataObject, parent: Grant, child: Grant) -> None:
    request = data.draw(requests_of(child))
    if child.within(parent) and child.allows(request):
        assert parent.allows(request)


@PROPERTY
@given(data=st.data(), parent=grants())
def test_narrowed_children_stay_within(data: st.DataObject, parent: Grant) -> None:
    # Build a child by narrowing each part; it must be within, and its requests allowed.
    segments = [data.draw(SEGMENTS) if s == "*" else s for s in parent.segments]
    if segments[-1] == "**" and data.draw(st.booleans()):
        segments[-1:] = [*data.draw(st.lists(SEGMENTS, min_size=1, max_size=2)), "**"]
    actions = (parent.actions if "*" in parent.actions
               else frozenset(data.draw(st.lists(st.sampled_from(sorted(parent.actions)),
                                                 min_size=1))))
    table = dict(parent.constraints)
    if not parent.closed and data.draw(st.booleans()):  # a closed parent: the same names
        table["w"] = Eq(1)
    child = Grant("/".join(segments), actions, table)
    assert child.within(parent)
    request = data.draw(requests_of(child))
    if child.allows(request):
        assert parent.allows(request)


@PROPERTY
@given(grant=grants())
def test_wire_form_round_trips(grant: Grant) -> None:
    assert Grant.from_wire(grant.to_wire()) == grant


WIRE_VALUES = st.recursive(
    st.one_of(st.integers(-3, 3), st.text(max_size=4), st.booleans(), st.none(),
              st.floats(allow_nan=False), st.binary(max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=12)


@PROPERTY
@given(value=WIRE_VALUES)
def test_random_wire_structures_give_only_typed_errors(value: object) -> None:
    with contextlib.suppress(AgentAuthError):  # anything else fails the test
        Grant.from_wire(value)


@PROPERTY
@given(grant=grants(), data=st.data())
def test_mutated_wire_forms_give_only_typed_errors(grant: Grant, data: st.DataObject) -> None:
    form = grant.to_wire()
    index = data.draw(st.integers(0, 2))
    form[index] = data.draw(WIRE_VALUES)
    with contextlib.suppress(AgentAuthError):  # anything else fails the test
        Grant.from_wire(form)


@pytest.mark.parametrize(("make", "code"), [
    (lambda: Grant("a", [[1]]), "invalid_argument"),  # type: ignore[list-item]
    (lambda: Grant("a", 5), "invalid_argument"),  # type: ignore[arg-type]
    (lambda: Grant("a", {"read"}, {"x": Eq("\ud800")}), "invalid_argument"),
])
def test_odd_local_arguments_are_typed_errors(make: Any, code: str) -> None:
    with raises(code):
        make()


@PROPERTY
@given(data=st.data(), grant=grants(), other=grants())
def test_shortfall_agrees_with_allows(data: st.DataObject, grant: Grant,
                                      other: Grant) -> None:
    # The refusal path re-runs the checks of allows with reasons: it must decide alike,
    # and count as passed exactly the checks before the one it names.
    request = data.draw(requests_of(data.draw(st.sampled_from([grant, other]))))
    found = shortfall(grant, request)
    assert (found is None) == grant.allows(request)
    if found is not None:
        passed, refusal = found
        order = ["resource", "action", *grant.constraints]
        if refusal.kind == "extra_argument":  # checked after every named argument
            assert grant.closed and refusal.argument not in grant.constraints
            assert passed == len(order)
            return
        named = refusal.argument if refusal.argument is not None else refusal.kind
        assert order.index(named) == passed

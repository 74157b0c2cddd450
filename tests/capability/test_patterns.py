"""The pattern kind (spec 10.1, kind 8): matching tables, a worst case that must stay
linear, narrowing tables, the prefix/pattern cross rules, and properties against an
independent recursive matcher."""

from __future__ import annotations

import contextlib
import itertools
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import raises

from agentauth.capability import globs
from agentauth.capability.constraints import (
    Pattern,
    Prefix,
    constraint_from_wire,
    constraint_within,
)

PROPERTY = settings(max_examples=400, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def reference(glob: str, value: str) -> bool:
    """An independent matcher: recursion on the glob, exponential, for small inputs."""
    if not glob:
        return not value
    head, rest = glob[0], glob[1:]
    if head == "*":
        return any(reference(rest, value[i:]) for i in range(len(value) + 1))
    return bool(value) and head in ("?", value[0]) and reference(rest, value[1:])


# ------------------------------------------------------------------ matching


@pytest.mark.parametrize(("glob", "value", "allowed"), [
    ("", "", True), ("", "a", False),  # the empty glob matches the empty value only
    ("*", "", True), ("*", "anything/at/all", True),
    ("abc", "abc", True), ("abc", "abcd", False), ("abc", "ab", False), ("abc", "ABC", False),
    ("a*", "a", True), ("a*", "a/b/c", True), ("a*", "ba", False),
    ("*c", "abc", True), ("*c", "c", True), ("*c", "cb", False),
    ("a*c", "ac", True), ("a*c", "a/x/c", True), ("a*c", "acb", False),
    ("a*a", "a", False),  # the first and last pieces never overlap
    ("*/*", "a/b", True), ("*/*", "ab", False), ("*/*", "/", True),
    ("*.example.com", "api.example.com", True), ("*.example.com", "a.b.example.com", True),
    ("*.example.com", "example.com", False), ("*.example.com", "evil.com/.example.com", True),
    ("?", "a", True), ("?", "", False), ("?", "ab", False),
    ("?", "é", True), ("?", "日", True), ("?", "😀", True),  # one code point each
    ("??", "😀", False),  # not two UTF-16 units, not UTF-8 bytes
    ("?", "e\u0301", False),  # two code points: no normalisation
    ("r-????.pdf", "r-2024.pdf", True), ("r-????.pdf", "r-24.pdf", False),
    ("a?c*", "abc", True), ("a?c*", "a/cx", True), ("*?", "", False), ("*?", "x", True),
    ("*a?b*", "xxa-bxx", True), ("*a?b*", "xxab", False),
    ("*ab*ab*", "abab", True), ("*ab*ab*", "aba", False),
    ("a*b*c", "abbbc", True), ("a*b*c", "acb", False),
    ("*", "\x00\n", True), ("a", "\ud800", False), ("?", "\ud800", True),
])
def test_matching_table(glob: str, value: str, allowed: bool) -> None:
    assert Pattern(glob).allows(value) is allowed
    assert reference(glob, value) is allowed  # the table and the reference agree


@pytest.mark.parametrize("value", [None, 1, 1.5, True, b"abc", ["abc"], ("abc",), {"a": 1},
                                   {"abc"}, bytearray(b"abc"), object()])
def test_only_strings_match(value: Any) -> None:
    for glob in ("*", "abc", "a*", "?*", "*?*"):
        assert Pattern(glob).allows(value) is False
        assert "not a str" in Pattern(glob).problem(value)


def test_a_str_subclass_is_not_a_string_value() -> None:
    class Text(str):
        pass

    assert not Pattern("*").allows(Text("a"))
    assert not Pattern("a").allows(Text("a"))


def test_the_problem_says_what_failed() -> None:
    assert Pattern("a*").problem("b") == "does not match the pattern"


# ------------------------------------------------------------------ linear time


@contextlib.contextmanager
def counting() -> Iterator[list[int]]:
    """Count the lines run inside the pattern module (each str method call one step)."""
    count = [0]
    source = globs.__file__

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code.co_filename != source:
            return None
        if event == "line":
            count[0] += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        yield count
    finally:
        sys.settrace(previous)


@pytest.mark.parametrize("glob", [
    "*a*a*a*a*a*a*a*c", "*a*a*a*a*a*a*a*c*", "*a?*a?*a?*a?*a?*a?*a?c*", "*?a*?a*?a*?a*c?*",
    "a*a*a*a*a*a*a*ac", "*" + "a?" * 20 + "c*",
])
def test_the_worst_case_finishes_in_a_bounded_number_of_steps(glob: str) -> None:
    # A backtracking matcher tries each split of the a's among the stars: about n**7
    # steps here. The pieces algorithm is one pass of each piece over the value.
    steps = []
    for n in (1000, 2000, 4000):
        value = "a" * n + "b"
        with counting() as count:
            assert Pattern(glob).allows(value) is False
        steps.append(count[0])
        assert count[0] <= 4 * (n + len(glob)), (glob, n, count[0])
    assert steps[2] <= 2 * steps[1] + 50  # grows at most linearly with the value


def test_a_match_in_the_worst_shape_is_found_as_cheaply() -> None:
    value = "a" * 2000 + "c"
    with counting() as count:
        assert Pattern("*a*a*a*a*a*a*a*c").allows(value)
    assert count[0] <= 10 * len("*a*a*a*a*a*a*a*c")


@pytest.mark.parametrize(("glob", "most"), [("exact/text", 4), ("prefix/*", 6),
                                            ("*/" + "x" * 10, 7), ("*/x*", 8)])
def test_simple_shapes_take_one_string_operation(glob: str, most: int) -> None:
    pattern = Pattern(glob)
    with counting() as count:
        pattern.allows("prefix/" + "x" * 1000)
    assert count[0] <= most


# ------------------------------------------------------------------ building, wire


@pytest.mark.parametrize("glob", ["**", "a**", "a/**/b", "***"])
def test_two_adjacent_stars_are_not_canonical(glob: str) -> None:
    with raises("invalid_argument"):
        Pattern(glob)
    with raises("non_canonical"):
        constraint_from_wire([8, glob])


@pytest.mark.parametrize("wire", [[8], [8, "a", "b"], [8, 3], [8, None], [8, b"a"],
                                  [8, "x" * 257], [8, "\ud800"], [8, ["a"]]])
def test_pattern_wire_faults_are_malformed(wire: list[Any]) -> None:
    with raises("malformed"):
        constraint_from_wire(wire)


@pytest.mark.parametrize("build", [
    lambda: Pattern(3),  # type: ignore[arg-type]
    lambda: Pattern("é" * 129),
    lambda: Pattern(None),  # type: ignore[arg-type]
    lambda: Pattern(b"*"),  # type: ignore[arg-type]
])
def test_bad_patterns_are_refused_where_they_are_built(build: Any) -> None:
    with raises("invalid_argument"):
        build()


@pytest.mark.parametrize("glob", ["", "*", "?", "a*b?c", "x" * 256, "é" * 128])
def test_pattern_wire_round_trip(glob: str) -> None:
    pattern = Pattern(glob)
    assert pattern.to_wire() == [8, glob]
    back = constraint_from_wire(pattern.to_wire())
    assert back == pattern and repr(back) == f"Pattern(glob={glob!r})"
    assert back.allows(glob.replace("*", "").replace("?", "q")) is True


# ------------------------------------------------------------------ narrowing


@pytest.mark.parametrize(("child", "parent", "within"), [
    ("abc", "abc", True), ("abc", "a*", True), ("abc", "*", True), ("", "*", True),
    ("a*", "*", True), ("a*", "a*", True), ("ab*", "a*", True), ("a*", "ab*", False),
    ("a?c", "a?c", True), ("abc", "a?c", True), ("a?c", "abc", False),
    ("a*c", "a?c", False),  # a parent '?' never takes a child '*'
    ("a?c", "a*", True), ("a?", "??", True), ("??", "a?", False),
    ("*.eu.example.com", "*.example.com", True), ("*.example.com", "*.eu.example.com", False),
    ("*.example.com", "*.com", True), ("*com", "*.com", False),
    ("x*y*z", "x*z", True), ("x*z", "x*y*z", False),
    ("*?", "?*", False),  # the documented miss: both allow every non-empty string
    ("?*", "*?", False),  # and its mirror, missed the same way
    ("?*", "?*", True), ("*?", "*?", True), ("?", "*?", True), ("??*", "?*", True),
    ("a**", "*", None), ("", "", True), ("", "?", False), ("a", "", False),
])
def test_narrowing_table(child: str, parent: str, within: bool | None) -> None:
    if within is None:  # not a pattern at all
        with raises("invalid_argument"):
            Pattern(child)
        return
    assert constraint_within(Pattern(child), Pattern(parent)) is within


def test_the_documented_miss_is_a_miss_not_a_difference() -> None:
    # '*?' and '?*' allow exactly the same strings: the rule is sound, not complete.
    words = ["".join(p) for n in range(4) for p in itertools.product("ab", repeat=n)]
    assert all(Pattern("*?").allows(w) == Pattern("?*").allows(w) for w in words)
    assert not Pattern("*?").narrows(Pattern("?*"))


def test_narrowing_is_sound_everywhere_and_misses_only_beside_a_parent_star() -> None:
    # Every glob of up to four characters over "ab?*", against every string of up to seven
    # over "abc" ('c' stands for any other character). An unsound pair would show a string
    # the child allows and the parent refuses. Every pair the rule misses has a '?' beside
    # a '*' in the parent (as '*?' against '?*'), where the tokens could shift.
    globs_ = [canonical("".join(p)) for n in range(5) for p in itertools.product("ab?*", repeat=n)]
    world = ["".join(p) for n in range(8) for p in itertools.product("abc", repeat=n)]
    allowed = {g: frozenset(w for w in world if Pattern(g).allows(w)) for g in set(globs_)}
    for child, parent in itertools.product(sorted(allowed), repeat=2):
        semantic = allowed[child] <= allowed[parent]
        if Pattern(child).narrows(Pattern(parent)):
            assert semantic, ("unsound", child, parent)
        elif semantic:
            assert "?*" in parent or "*?" in parent, ("missed", child, parent)


@pytest.mark.parametrize(("prefix", "glob", "within"), [
    ("ab", "a*", True), ("ab", "ab*", True), ("ab", "*", True), ("", "*", True),
    ("a", "ab*", False), ("ab", "a?*", True), ("a", "a?*", False),
    ("ab", "ab", False),  # a prefix allows "abx" too
    ("ab", "*b", False), ("ab", "a*b*", True), ("ab", "*a*", True),
    ("a*", "a*", True), ("a?", "a?*", True),  # q's own '*' and '?' are literal characters
    ("a*", "a?", False), ("*", "x*", False),
])
def test_a_prefix_within_a_pattern(prefix: str, glob: str, within: bool) -> None:
    assert constraint_within(Prefix(prefix), Pattern(glob)) is within


@pytest.mark.parametrize(("glob", "prefix", "within"), [
    ("ab*", "a", True), ("ab*", "ab", True), ("abc", "ab", True), ("a*", "ab", False),
    ("a?c", "ab", False), ("a?c", "a", True), ("*ab", "", True), ("*ab", "a", False),
    ("", "", True), ("?", "", True), ("ab?*", "ab", True),
])
def test_a_pattern_within_a_prefix(glob: str, prefix: str, within: bool) -> None:
    assert Pattern(glob).literal_head() == glob.split("*", maxsplit=1)[0].split("?", maxsplit=1)[0]
    assert constraint_within(Pattern(glob), Prefix(prefix)) is within


# ------------------------------------------------------------------ hypothesis

ALPHABET = "ab/é"
GLOB_CHARS = ALPHABET + "*?"


def canonical(glob: str) -> str:
    while "**" in glob:
        glob = glob.replace("**", "*")
    return glob


GLOBS = st.text(alphabet=GLOB_CHARS, max_size=7).map(canonical)
VALUES = st.text(alphabet=ALPHABET, max_size=8)


@PROPERTY
@given(glob=GLOBS, value=VALUES)
def test_allows_agrees_with_the_reference(glob: str, value: str) -> None:
    assert Pattern(glob).allows(value) is reference(glob, value)


@PROPERTY
@given(glob=GLOBS, value=st.text(alphabet=GLOB_CHARS, max_size=8))
def test_wildcard_characters_in_values_are_plain_characters(glob: str, value: str) -> None:
    assert Pattern(glob).allows(value) is reference(glob, value)


@st.composite
def filled(draw: st.DrawFn, glob: str) -> str:
    """A string the glob matches: each '?' one character, each '*' a random run."""
    out = []
    for c in glob:
        if c == "?":
            out.append(draw(st.sampled_from(ALPHABET + "*?")))
        elif c == "*":
            out.append(draw(st.text(alphabet=ALPHABET + "*?", max_size=4)))
        else:
            out.append(c)
    return "".join(out)


@PROPERTY
@given(data=st.data(), child=GLOBS, parent=GLOBS)
def test_narrowing_is_sound(data: st.DataObject, child: str, parent: str) -> None:
    if not Pattern(child).narrows(Pattern(parent)):
        return
    for _ in range(8):
        value = data.draw(filled(child))
        assert Pattern(child).allows(value)
        assert Pattern(parent).allows(value), (child, parent, value)


@PROPERTY
@given(data=st.data(), parent=GLOBS)
def test_a_glob_narrowed_by_filling_wildcards_is_within(data: st.DataObject,
                                                        parent: str) -> None:
    # Replace each '*' of the parent by a run of characters and stars, each '?' by a
    # character or '?': the child is within, and the rule sees it.
    out = []
    for c in parent:
        if c == "*":
            out.append(data.draw(st.text(alphabet=ALPHABET + "*?", max_size=3)))
        elif c == "?":
            out.append(data.draw(st.sampled_from(ALPHABET + "?")))
        else:
            out.append(c)
    child = canonical("".join(out))
    assert Pattern(child).narrows(Pattern(parent)), (child, parent)


@PROPERTY
@given(data=st.data(), prefix=st.text(alphabet=GLOB_CHARS, max_size=4), glob=GLOBS)
def test_the_prefix_cross_rules_are_sound(data: st.DataObject, prefix: str, glob: str) -> None:
    rest = data.draw(st.text(alphabet=GLOB_CHARS, max_size=4))
    if constraint_within(Prefix(prefix), Pattern(glob)):
        assert Pattern(glob).allows(prefix + rest)
    if constraint_within(Pattern(glob), Prefix(prefix)):
        value = data.draw(filled(glob))
        assert value.startswith(prefix)


ANYTHING = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6),
              st.binary(max_size=4), st.complex_numbers()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner),
                            st.dictionaries(st.text(max_size=2), inner, max_size=2),
                            st.frozensets(st.integers(), max_size=2)),
    max_leaves=6)


@PROPERTY
@given(glob=GLOBS, value=ANYTHING)
def test_allows_never_raises(glob: str, value: object) -> None:
    pattern = Pattern(glob)
    result = pattern.allows(value)
    assert result is (type(value) is str and reference(glob, value))
    if not result:
        assert isinstance(pattern.problem(value), str)


@PROPERTY
@given(st.text(alphabet="ab.-?", max_size=4), st.text(alphabet="ab.-?", max_size=4),
       st.lists(st.text(alphabet="ab.-/é", max_size=10), max_size=10))
def test_pattern_allows_is_the_plain_reading(head: str, tail: str, values: list[str]) -> None:
    # "head*tail" (both ends plain text) is decided by a length check, a startswith and
    # an endswith; from the wire as from the constructor, it agrees with the reference.
    glob = f"{head}*{tail}"
    for pattern in (Pattern(glob), constraint_from_wire([8, glob])):
        for value in [*values, head + tail, head + "-" + tail, (head + tail)[1:]]:
            assert pattern.allows(value) is reference(glob, value), (glob, value)


def test_head_star_tail_takes_a_few_string_operations() -> None:
    pattern = Pattern("report-*.pdf")
    with counting() as count:
        pattern.allows("report-" + "x" * 1000 + ".pdf")
    assert count[0] <= 12

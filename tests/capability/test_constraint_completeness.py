"""Spec 10.2: narrowing between two constraints of one kind is complete for every kind but
`pattern` and `any-of`: whenever every value a child allows its parent allows, the rule says
"within". Checked exhaustively on small worlds, where a kind's whole domain (or a part that
stands for the rest) can be enumerated; soundness is tested beside each kind and for all
kinds together."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from agentauth.capability import (
    Contains,
    Eq,
    Length,
    NotOneOf,
    OneOf,
    Prefix,
    Range,
    Subset,
)
from agentauth.capability.constraints import constraint_within

INTS = range(-3, 4)
# Strings over "ab" up to length 3, and "c" standing for every other character: a prefix
# or set over "ab" cannot tell "c" from any character it does not name.
STRINGS = ["".join(p) for n in range(4) for p in itertools.product("abc", repeat=n)]
LISTS = [list(p) for n in range(3) for p in itertools.product("abc", repeat=n)]


def _sets(items: Iterable[Any], most: int) -> list[frozenset[Any]]:
    pool = list(items)
    return [frozenset(c) for n in range(1, most + 1) for c in itertools.combinations(pool, n)]


WORLDS: dict[str, tuple[list[Any], list[Any]]] = {
    "eq": ([Eq(v) for v in (*INTS, "a", "ab")], [*INTS, *STRINGS]),
    "one-of": ([OneOf(s) for s in _sets([-1, 0, 1, 2], 3)] + [OneOf(s) for s in
                                                              _sets(["a", "b", "ab"], 3)],
               [*INTS, *STRINGS]),
    "not-one-of": ([NotOneOf(s) for s in _sets([-1, 0, 1], 3)]
                   + [NotOneOf(s) for s in _sets(["a", "b", "ab"], 3)], [*INTS, *STRINGS]),
    "range": ([Range(lo, hi) for lo in INTS for hi in INTS if lo <= hi], list(range(-5, 6))),
    "length": ([Length(lo, hi) for lo in range(4) for hi in range(4) if lo <= hi],
               ["", "a", "ab", "abc", "abcd", "\u00e9", "\u00e9\u00e9"]),
    "prefix": ([Prefix(p) for p in STRINGS if "c" not in p], STRINGS),
    "contains": ([Contains(s) for s in _sets(["a", "b"], 2)], LISTS),
    "subset": ([Subset(s) for s in _sets(["a", "b", "c"], 3)], LISTS),
}


@pytest.mark.parametrize("kind", sorted(WORLDS))
def test_narrowing_within_a_kind_is_sound_and_complete(kind: str) -> None:
    constraints, values = WORLDS[kind]
    allowed: dict[int, set[int]] = {
        i: {j for j, v in enumerate(values) if c.allows(v)} for i, c in enumerate(constraints)}
    for (i, child), (j, parent) in itertools.product(enumerate(constraints), repeat=2):
        semantic = allowed[i] <= allowed[j]
        assert constraint_within(child, parent) is semantic, (child, parent)


CROSS: list[tuple[Callable[[], Any], Callable[[], Any]]] = [
    (lambda: Eq(2), lambda: Range(0, 3)), (lambda: OneOf({"a", "ab"}), lambda: Prefix("a")),
    (lambda: Range(0, 2), lambda: NotOneOf({3, -1})), (lambda: Prefix("ab"),
                                                       lambda: NotOneOf({"a", "b"})),
    (lambda: Length(2, 3), lambda: NotOneOf({"a", ""})),
]


@pytest.mark.parametrize(("child", "parent"), CROSS)
def test_the_cross_kind_rules_see_what_they_are_meant_to(child: Callable[[], Any],
                                                         parent: Callable[[], Any]) -> None:
    # Spec 10.2 rules 3 and 5: an eq or one-of child by its values; a not-one-of parent by
    # the child's type and the values it excludes. Each pair here is within.
    assert constraint_within(child(), parent())

"""The verifier's fast paths give the answers of the plain ones: a chain's links decoded in
one pass (wire.decode_arrays) against each link decoded in its place, the hop check's
shortcuts against the rule as written, on valid, mutated and random input."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from support import ALICE, BOB, CAROL, MALLORY

from agentauth import AgentAuthError, Identity, wire
from agentauth.capability import Eq, Grant, Link, OneOf, Prefix, Range, delegate
from agentauth.capability import chain as chain_module
from agentauth.capability.grants import actions_within, constraint_within, pattern_within

ROOT = Identity.from_seed(bytes(range(32)))
NOW = 1_800_000_000
PROPERTY = settings(max_examples=300, deadline=None, database=None)


def narrowing_chain(depth: int) -> list[Link]:
    """ROOT -> ALICE -> BOB -> ..., each hop narrowing its range."""
    holders = [ALICE, BOB, CAROL, MALLORY] * 3
    links = [delegate(ROOT, ALICE, [Grant("fs/reports/**", {"read"}, {"n": Range(0, 99)})],
                      not_before=NOW - 60, expires=NOW + 3600, budget=depth - 1)]
    for i in range(1, depth):
        links.append(delegate(holders[i - 1], holders[i],
                              [Grant("fs/reports/**", {"read"}, {"n": Range(0, 99 - i)})],
                              not_before=NOW - 60, expires=NOW + 3600,
                              budget=depth - 1 - i, parent=links[-1]))
    return links


LINKS = [link.data for link in narrowing_chain(9)]


def one_by_one(items: list[bytes]) -> tuple[list[bytes], list[list[Any]]] | None:
    """What decode_arrays must return: each item checked as a link is, in turn."""
    datas, values = [], []
    for item in items:
        if not chain_module._SIG < len(item) <= chain_module.MAX_LINK_BYTES:
            return None
        try:
            values.append(wire.decode_array(item[:-64], chain_module.MAX_LINK_BYTES, "link"))
        except AgentAuthError:
            return None
        datas.append(item[:-64])
    return datas, values


mutations = st.lists(st.tuples(st.integers(0, 8), st.integers(0, 4000), st.integers(0, 255),
                               st.sampled_from(["set", "cut", "insert", "random"])),
                     max_size=3)


def mutate(count: int, edits: list[tuple[int, int, int, str]], noise: bytes) -> list[bytes]:
    items = [bytearray(x) for x in LINKS[:count]]
    for which, at, value, how in edits:
        item = items[which % count]
        index = at % (len(item) + 1)
        if how == "set" and index < len(item):
            item[index] = value
        elif how == "cut":
            del item[index:]
        elif how == "insert":
            item[index:index] = bytes([value])
        else:
            items[which % count] = bytearray(noise)
    return [bytes(x) for x in items]


@PROPERTY
@given(count=st.integers(1, 9), edits=mutations, noise=st.binary(max_size=300))
def test_decode_arrays_answers_as_decode_array_does(count: int, edits: Any,
                                                    noise: bytes) -> None:
    items = mutate(count, edits, noise)
    assert wire.decode_arrays(items, 64, chain_module.MAX_LINK_BYTES) == one_by_one(items)


def test_decode_arrays_needs_each_item_canonical_not_only_their_concatenation() -> None:
    # A float 32 re-encodes 4 bytes longer, an integer in 5 bytes re-encodes 4 bytes
    # shorter: the lengths add up, but no item is canonical.
    wide = b"\x92\xca\x00\x00\x80\x3f\x01" + bytes(64)  # [1.0 as float 32, 1]
    narrow = b"\x92\xce\x00\x00\x00\x01\x01" + bytes(64)  # [1 in a uint 32, 1]
    assert wire.decode_arrays([wide, narrow], 64, 2048) is None
    assert one_by_one([wide, narrow]) is None
    trailing = LINKS[0][:-64] + b"\x01" + LINKS[0][-64:]
    assert wire.decode_arrays([trailing], 64, 2048) is None
    assert wire.decode_arrays(LINKS[:2], 64, 2048) == one_by_one(LINKS[:2])
    assert wire.decode_arrays([LINKS[0]] * 16, 64, 4096) is None  # the caller's own path


def in_place(items: list[bytes]) -> object:
    """The links each parsed in its place, as parse_links does without its one pass."""
    try:
        parent: Link | None = None
        links = []
        for item in items:
            parent = (chain_module._parse(item, b"", b"", b"") if parent is None else
                      chain_module._parse(item, parent.id, parent.audience, parent.subject))
            links.append(parent)
        return tuple(links)
    except AgentAuthError as exc:
        return type(exc), exc.code, exc.message


def parsed(items: list[bytes]) -> object:
    try:
        return chain_module.parse_links(list(items))
    except AgentAuthError as exc:
        return type(exc), exc.code, exc.message


@PROPERTY
@given(count=st.integers(1, 9), edits=mutations, noise=st.binary(max_size=300),
       seen=st.integers(0, 9))
def test_links_parsed_in_one_pass_or_in_place_alike(count: int, edits: Any, noise: bytes,
                                                    seen: int) -> None:
    items = mutate(count, edits, noise)
    chain_module.clear_caches()
    expected = in_place(items)
    chain_module.clear_caches()
    if seen:  # some first links already known: the pass starts after them
        chain_module.parse_links(LINKS[:seen])
    assert parsed(items) == expected
    assert parsed(items) == expected  # and again, from the memo


# ------------------------------------------------------------------ the hop check

resources = st.sampled_from(["fs/reports/**", "fs/reports/*", "fs/*/q3", "fs/reports/q3",
                             "**", "fs/**", "db/x"])
action_sets = st.sampled_from([["read"], ["list", "read"], ["*"], ["write"]])
constraints = st.one_of(
    st.builds(Range, st.integers(-5, 5), st.integers(5, 15)),
    st.builds(lambda a, b: Range(min(a, b), max(a, b)), st.integers(-9, 9),
              st.integers(-9, 9)),
    st.builds(Eq, st.integers(-3, 3)),
    st.builds(lambda v: OneOf(frozenset(v)), st.sets(st.integers(-3, 12), min_size=1,
                                                     max_size=4)),
    st.builds(Prefix, st.sampled_from(["", "a", "ab"])),
    st.builds(Eq, st.sampled_from(["a", "abc"])),
)
grants = st.builds(lambda r, a, c: [r, a, c], resources, action_sets,
                   st.dictionaries(st.sampled_from(["n", "size"]), constraints, max_size=2))


def wire_grant(form: list[Any]) -> Grant:
    """A grant as a verifier reads it: from its wire form, through the parse memos (so
    equal patterns and action sets are one object)."""
    return Grant.from_wire(Grant(*form).to_wire())


def widening_as_written(child: Grant, parents: tuple[Grant, ...]) -> str | None:
    best = "widened_resource"
    for parent in parents:
        if not pattern_within(child.segments, parent.segments):
            continue
        if not actions_within(child.actions, parent.actions):
            best = "widened_action"
            continue
        if all(name in child.constraints
               and constraint_within(child.constraints[name], bound)
               for name, bound in parent.constraints.items()) and (
                   not parent.closed or (child.closed and set(child.constraints)
                                         == set(parent.constraints))):
            return None
        if best == "widened_resource":
            best = "widened_constraint"
    return best


def constraint_within_as_written(child: Any, parent: Any) -> bool:
    # Spec 10.2: a child eq or one-of is within when the parent allows each of its values.
    if isinstance(child, Eq):
        return parent.allows(child.value)  # type: ignore[no-any-return]
    if isinstance(child, OneOf):
        return all(parent.allows(v) for v in child.values)
    if isinstance(parent, Eq | OneOf):
        return False
    if isinstance(parent, Range):
        return isinstance(child, Range) and parent.lo <= child.lo and child.hi <= parent.hi
    return isinstance(child, Prefix) and child.prefix.startswith(parent.prefix)


@settings(max_examples=600, deadline=None, database=None)
@given(child=grants, parents=st.lists(grants, min_size=1, max_size=3))
def test_the_hop_check_shortcuts_decide_as_the_rule_does(child: list[Any],
                                                          parents: list[list[Any]]) -> None:
    kid, elders = wire_grant(child), tuple(wire_grant(p) for p in parents)
    found = chain_module._widening(kid, elders)
    assert (None if found is None else found[0]) == widening_as_written(kid, elders)
    for parent in elders:
        for name, bound in parent.constraints.items():
            for mine in kid.constraints.values():
                assert (constraint_within(mine, bound)
                        == constraint_within_as_written(mine, bound)), (mine, bound, name)

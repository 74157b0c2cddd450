"""Refusals name the rule they broke (spec 10.6, Refusals): one case per kind, asserting
the code and every field of the Refusal; the nearest grant; what a peer may be told."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import ALICE, BOB, CAROL, MALLORY

from agentauth import REFUSAL_KINDS, CapabilityDenied, InvalidArgument, Refusal, wire
from agentauth.capability import (
    Eq,
    Grant,
    Link,
    OneOf,
    Prefix,
    Range,
    Request,
    admission,
    delegate,
    encode_chain,
    revoke,
    verify_chain,
    verify_notice,
)
from agentauth.capability import chain as chain_module
from agentauth.http.capability import default_resource

NOW = 1_800_000_000
ANCHORS = {ALICE.agent_id: "**"}
ROOT_GRANTS = [Grant("mail/*", {"send"}),
               Grant("fs/reports/**", {"read", "list"}, {"size": Range(0, 1000),
                                                         "tag": Prefix("q")})]
LEAF_GRANT = Grant("fs/reports/q3/*", {"read"}, {"size": Range(0, 100), "tag": Prefix("q3")})


def chain(*, leaf: Grant = LEAF_GRANT, budget: int = 1, nbf: int = NOW - 100,
          exp: int = NOW + 3600) -> list[Link]:
    """ALICE (the anchor) -> BOB -> CAROL, the leaf narrowing the root's second grant."""
    root = delegate(ALICE, BOB, ROOT_GRANTS, not_before=NOW - 100, expires=NOW + 3600,
                    budget=budget)
    return [root, delegate(BOB, CAROL, [leaf], not_before=nbf, expires=exp, budget=0,
                           parent=root)]


def forged_child(root: Link, *, grants: list[Grant] | None = None, budget: int = 0,
                 exp: int = NOW + 3600) -> Link:
    """A child of ``root`` that delegate() would refuse to make, signed by BOB as given."""
    payload = wire.encode_value([CAROL.public_bytes,
                                 [g.to_wire() for g in grants or [LEAF_GRANT]],
                                 NOW - 100, exp, budget, bytes(16)])
    data = payload + BOB.sign(chain_module.LINK_CONTEXT + root.id + payload)
    return chain_module.parse_links([root.data, data])[1]


def refused(links: list[Link], **options: Any) -> CapabilityDenied:
    options.setdefault("now", NOW)
    with pytest.raises(CapabilityDenied) as info:
        verify_chain(encode_chain(links), options.pop("anchors", ANCHORS), **options)
    return info.value


REVOKED = chain()
GOOD = Request("fs/reports/q3/summary", "read", {"size": 50, "tag": "q3-final"})


def by_request(request: Request) -> Callable[[], CapabilityDenied]:
    return lambda: refused(chain(), request=request)


def by_hop(**fields: Any) -> Callable[[], CapabilityDenied]:
    def run() -> CapabilityDenied:
        root = chain()[0]
        return refused([root, forged_child(root, **fields)])
    return run


# One case per kind of REFUSAL_KINDS (and per code a kind covers), each with its exact
# code and Refusal. The request cases refuse at the leaf (link 1), whose one grant is 0.
CASES: dict[str, tuple[Callable[[], CapabilityDenied], str, Refusal]] = {
    "anchor": (lambda: refused(chain(), anchors={MALLORY.agent_id: "**"}),
               "untrusted_root",
               Refusal("anchor", 0, rule="a trust anchor as issuer", value=ALICE.agent_id)),
    "resource/request": (
        by_request(Request("fs/reports/q4/summary", "read", {"size": 5, "tag": "q3"})),
        "not_authorized",
        Refusal("resource", 1, 0, rule="a resource within 'fs/reports/q3/*'",
                value="fs/reports/q4/summary")),
    "resource/root_scope": (
        lambda: refused(chain(), anchors={ALICE.agent_id: "fs/**"}), "root_scope",
        Refusal("resource", 0, 0, rule="a pattern within the anchor's namespace 'fs/**'",
                value="mail/*")),
    "resource/widened": (
        by_hop(grants=[Grant("fs/**", {"read"}, {"size": Eq(1), "tag": Eq("q")})]),
        "widened_resource",
        Refusal("resource", 1, 0, rule="a pattern within 'mail/*' or 'fs/reports/**'",
                value="fs/**")),
    "action/request": (
        by_request(Request("fs/reports/q3/summary", "write", {"size": 5, "tag": "q3"})),
        "not_authorized",
        Refusal("action", 1, 0, rule="one of the actions read", value="write")),
    "action/widened": (
        by_hop(grants=[Grant("fs/reports/x", {"read", "write"}, {"size": Eq(1)})]),
        "widened_action",
        Refusal("action", 1, 0, rule="actions within list, read", value="read, write")),
    "argument/request": (
        by_request(Request("fs/reports/q3/summary", "read", {"size": 500, "tag": "q3"})),
        "not_authorized",
        Refusal("argument", 1, 0, "size", rule="Range(lo=0, hi=100)", value=500,
                problem="out of bounds")),
    "argument/widened": (
        by_hop(grants=[Grant("fs/reports/x", {"read"}, {"size": Range(0, 2000),
                                                         "tag": Eq("q1")})]),
        "widened_constraint",
        Refusal("argument", 1, 0, "size", rule="a constraint within Range(lo=0, hi=1000)",
                value="Range(lo=0, hi=2000)")),
    "missing_argument/request": (
        by_request(Request("fs/reports/q3/summary", "read", {"size": 5})),
        "not_authorized",
        Refusal("missing_argument", 1, 0, "tag", rule="Prefix(prefix='q3')")),
    "missing_argument/widened": (
        by_hop(grants=[Grant("fs/reports/x", {"read"}, {"size": Range(0, 10)})]),
        "widened_constraint",
        Refusal("missing_argument", 1, 0, "tag", rule="a constraint within "
                "Prefix(prefix='q')")),
    "extra_argument/request": (
        by_request(Request("fs/reports/q3/summary", "read", {"size": 5, "tag": "q3",
                                                             "x": 1})),
        "not_authorized",
        Refusal("extra_argument", 1, 0, "x",
                rule="only the arguments size, tag (a closed grant)")),
    "extra_argument/widened": (
        by_hop(grants=[Grant("fs/reports/x", {"read"}, {"size": Eq(1), "tag": Eq("q"),
                                                         "x": Eq(1)})]),
        "widened_constraint",
        Refusal("extra_argument", 1, 0, "x", rule="a closed grant naming only size, tag")),
    "extra_argument/opened": (
        by_hop(grants=[Grant("fs/reports/x", {"read"}, {"size": Eq(1), "tag": Eq("q")},
                             open_world=True)]),
        "widened_constraint",
        Refusal("extra_argument", 1, 0, rule="a closed grant naming only size, tag",
                value="open-world")),
    "budget": (by_hop(budget=1), "depth_exceeded",
               Refusal("budget", 1, rule="a budget below 1", value=1)),
    "window/not_yet_valid": (
        lambda: refused(chain(nbf=NOW + 500)), "not_yet_valid",
        Refusal("window", 1, rule=f"a time from not_before {NOW + 500} - skew 60",
                value=NOW)),
    "window/expired": (
        lambda: refused(chain(exp=NOW - 60)), "expired",
        Refusal("window", 1, rule=f"a time before expires {NOW - 60} + skew 60",
                value=NOW)),
    "window/widened": (
        by_hop(exp=NOW + 7200), "widened_time",
        Refusal("window", 1, rule=f"expires within {NOW - 100}..{NOW + 3600}",
                value=NOW + 7200)),
    "revoked": (
        lambda: refused(REVOKED, revoked=lambda link_id: link_id == REVOKED[1].id),
        "revoked", Refusal("revoked", 1, value=REVOKED[1].id.hex())),
    "holder": (
        lambda: refused(chain(), holder=MALLORY.peer), "holder_mismatch",
        Refusal("holder", 1, rule=f"the audience {CAROL.agent_id}",
                value=MALLORY.agent_id)),
}


def _notice_from_another_root() -> CapabilityDenied:
    with pytest.raises(CapabilityDenied) as info:
        verify_notice(revoke(BOB, REVOKED), {MALLORY.agent_id: "**"})
    return info.value


CASES["anchor/notice"] = (_notice_from_another_root, "untrusted_root",
                          Refusal("anchor", 0, rule="a trust anchor as issuer",
                                  value=ALICE.agent_id))


def _admission_without_chain() -> CapabilityDenied:
    check = admission(ANCHORS, GOOD)
    with pytest.raises(CapabilityDenied) as info:
        check(CAROL.peer, {})
    return info.value


CASES["no_chain"] = (_admission_without_chain, "not_authorized",
                     Refusal("no_chain", rule="a chain in 'agentauth.cap'"))


def _request_not_mapped() -> CapabilityDenied:
    with pytest.raises(CapabilityDenied) as info:
        default_resource("GET", "/reports//q3")
    return info.value


CASES["request"] = (_request_not_mapped, "not_authorized",
                    Refusal("request", rule="a path whose segments name a resource "
                            "(spec 10.1)", value="/reports//q3"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_refusal_names_its_rule(case: str) -> None:
    run, code, expected = CASES[case]
    error = run()
    assert error.code == code
    assert error.refusal == expected
    line = str(error)
    assert "\n" not in line and line.startswith(f"[{code}] ") and expected.kind in line


def test_the_cases_cover_every_kind() -> None:
    assert {case.split("/")[0] for case in CASES} == set(REFUSAL_KINDS)


def test_the_nearest_grant_is_the_one_that_passed_the_most_checks() -> None:
    grants = [Grant("fs/**", {"write"}),  # passes the resource only
              Grant("fs/a", {"read"}, {"n": Range(0, 5), "x": OneOf(frozenset({"1"}))}),
              Grant("fs/*", {"read"}, {"n": Range(0, 9), "x": Eq("2")})]  # a tie with 1
    leaf = delegate(ALICE, CAROL, grants, not_before=NOW - 1, expires=NOW + 9)
    error = refused([leaf], request=Request("fs/a", "read", {"n": 1, "x": "3"}))
    assert error.refusal == Refusal("argument", 0, 1, "x", rule="OneOf({'1'})", value="3",
                                    problem="not one of the values")
    nearer = refused([leaf], request=Request("fs/b", "read", {"n": 1, "x": "3"}))
    assert nearer.refusal == Refusal("argument", 0, 2, "x", rule="Eq(value='2')",
                                     value="3", problem="another value")


def test_a_peer_is_told_the_places_never_the_rule_or_the_value() -> None:
    refusal = CASES["argument/request"][2]
    assert refusal.for_peer() == {"kind": "argument", "link": 1, "grant": 0,
                                  "argument": "size"}
    assert Refusal("request", rule="get on 'secret'", value="x").for_peer() == {
        "kind": "request"}


def test_the_refusal_survives_pickling_and_shows_in_repr() -> None:
    error = CASES["holder"][0]()
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is CapabilityDenied and again.code == "holder_mismatch"
    assert again.refusal == error.refusal and str(again) == str(error)
    assert "refusal=Refusal(kind='holder'" in repr(error)
    plain = CapabilityDenied("x", code="revoked")
    assert plain.refusal is None and str(plain) == "[revoked] x"


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        Refusal("nearly")


def test_delegate_names_the_rule_a_widening_child_breaks() -> None:
    root = chain()[0]
    with pytest.raises(InvalidArgument, match=r"widened_action; action at grant 0: "
                       r"needs actions within list, read, got 'read, write'"):
        delegate(BOB, CAROL, [Grant("fs/reports/x", {"read", "write"}, {"size": Eq(1)})],
                 not_before=NOW, expires=NOW + 1, parent=root)


def test_the_readme_shows_a_refusal_as_str_shows_it() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    section = " ".join(readme.split("### Capability tokens", 1)[1].split())
    assert f"`{CASES['argument/request'][0]()}`" in section


def test_a_widening_child_is_named_against_the_nearest_parent_grant() -> None:
    # Spec 10.6: the first parent grant covering the child's pattern but not its actions
    # decides (grant 0 here), even though grant 2 fails only on a constraint.
    root = delegate(ALICE, BOB, [Grant("fs/**", {"read"}), Grant("db/**", {"list"}),
                                 Grant("fs/**", {"list"}, {"size": Range(0, 10)})],
                    not_before=NOW - 100, expires=NOW + 3600, budget=1)
    wide = Grant("fs/a", {"list"}, {"size": Range(0, 20)})
    error = refused([root, forged_child(root, grants=[LEAF_GRANT, wide])])
    assert error.code == "widened_action"
    assert error.refusal == Refusal("action", 1, 1, rule="actions within read", value="list")
    only = delegate(ALICE, BOB, [Grant("db/**", {"list"}), Grant("fs/**", {"list"},
                                                                  {"size": Range(0, 10)})],
                    not_before=NOW - 100, expires=NOW + 3600, budget=1)
    error = refused([only, forged_child(only, grants=[wide])])
    assert error.code == "widened_constraint"
    assert error.refusal == Refusal("argument", 1, 0, "size",
                                    rule="a constraint within Range(lo=0, hi=10)",
                                    value="Range(lo=0, hi=20)")

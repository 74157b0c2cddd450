"""Capability chains the tests share: a root key, its anchors, a clock reading, grants and
a request, and chains of any depth from the root."""

from __future__ import annotations

from agentauth import Identity
from agentauth.capability import Grant, Link, Range, Request, delegate

from . import ALICE, BOB, CAROL, MALLORY

ROOT = Identity.from_seed(bytes(range(32)))
NOW = 1_800_000_000
ANCHORS = {ROOT.agent_id: "**"}
PARENT_GRANT = Grant("fs/reports/**", {"read", "list"}, {"size": Range(0, 1000)})
CHILD_GRANT = Grant("fs/reports/q3/*", {"read"}, {"size": Range(0, 100)})
REQUEST = Request("fs/reports/q3/summary", "read", {"size": 50})


def chain_of(depth: int, grant: Grant = PARENT_GRANT) -> list[Link]:
    """ROOT -> ALICE -> BOB -> CAROL -> ... , ``depth`` links, each narrowing nothing."""
    holders = [ALICE, BOB, CAROL, MALLORY] * 3
    links = [delegate(ROOT, ALICE, [grant], not_before=NOW - 100, expires=NOW + 3600,
                      budget=depth - 1)]
    issuer = ALICE
    for i in range(1, depth):
        holder = holders[i]
        links.append(delegate(issuer, holder, [grant], not_before=NOW - 100,
                              expires=NOW + 3600, budget=depth - 1 - i, parent=links[-1]))
        issuer = holder
    return links

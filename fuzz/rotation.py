"""Rotation statements (spec 14.4): parsed alone and accepted by a trust store.

The first byte chooses a rotation vector, whose trust store takes the statement in the
rest; a store that accepts it must write itself out as text that parses back.
"""

from __future__ import annotations

from agentauth.errors import AgentAuthError
from agentauth.keys.rotation import parse_rotation
from agentauth.keys.trust import TrustStore

from ._common import h, refused, run, vectors

ROTATIONS = [v for v in vectors("keys") if v["kind"] == "rotation"]
STORES = [TrustStore.parse(v["store"]) for v in ROTATIONS]


def one(data: bytes) -> None:
    """Parse ``data[1:]`` and offer it to the chosen vector's trust store."""
    if not data:
        return
    store, statement = STORES[data[0] % len(STORES)], data[1:]
    if refused(lambda: parse_rotation(statement)):
        return
    try:
        after, rotation = store.accept_rotation(statement)
    except AgentAuthError:
        return
    assert rotation.data == statement
    assert TrustStore.parse(after.dumps()).entries == after.entries


def seeds() -> list[bytes]:
    """Every rotation vector's statement, offered to its own store."""
    return [bytes([index]) + h(v["statement"]) for index, v in enumerate(ROTATIONS)]


if __name__ == "__main__":
    run(one, seeds)

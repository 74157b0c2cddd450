"""Revocation notices (spec 10.10): verified alone and kept by a memory store.

The first byte chooses a notice vector for its anchors; the rest is the notice. One that
verifies must also be kept by a store, and then answer "revoked" for its target.
"""

from __future__ import annotations

from agentauth.capability import verify_notice
from agentauth.stores import MemoryRevocationStore

from ._common import h, refused, run, vectors

NOTICES = [v for v in vectors("capability") if v["kind"] == "notice"]


def one(data: bytes) -> None:
    """Verify ``data[1:]`` under the chosen vector's anchors."""
    if not data:
        return
    anchors, notice = NOTICES[data[0] % len(NOTICES)]["anchors"], data[1:]
    checked = None

    def verify() -> None:
        nonlocal checked
        checked = verify_notice(notice, anchors)

    if refused(verify) or checked is None:
        return
    store = MemoryRevocationStore(anchors)
    assert store.add(notice) is True
    assert store.is_revoked(checked.target) is True


def seeds() -> list[bytes]:
    """Every notice vector's notice."""
    return [bytes([index]) + h(v["notice"]) for index, v in enumerate(NOTICES)]


if __name__ == "__main__":
    run(one, seeds)

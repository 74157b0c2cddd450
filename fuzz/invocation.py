"""Invocations (spec 10.9): in a session and detached, as their verifiers check them.

The first byte chooses an invocation vector, whose verifier (its anchors, peer and
channel binding, or its identity and window, on the vector's clock) is built fresh; the
rest is a sequence of invocations (:func:`split`) checked in turn, so replays are reached.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from agentauth.capability import DetachedInvocations, SessionInvocations
from agentauth.errors import AgentAuthError
from agentauth.identity import PeerKey

from ._common import Clock, h, join, run, split, vectors

INVOCATIONS = [v for v in vectors("capability") if v["kind"] == "invocation"]


def verifier(v: dict[str, Any]) -> SessionInvocations | DetachedInvocations:
    """A fresh verifier as the vector describes it."""
    clock = Clock(v["now"])
    if v["mode"] == "session":
        return SessionInvocations(v["anchors"], peer=PeerKey.from_agent_id(v["peer"]),
                                  channel_binding=h(v["channel_binding"]), skew=v["skew"],
                                  clock=clock)
    return DetachedInvocations(v["anchors"], verifier=v["verifier"], skew=v["skew"],
                               window=v["window"], clock=clock)


def one(data: bytes) -> None:
    """Check each invocation of ``data[1:]`` with the chosen vector's verifier."""
    if not data:
        return
    checker = verifier(INVOCATIONS[data[0] % len(INVOCATIONS)])
    for invocation in split(data[1:])[:4]:
        with suppress(AgentAuthError):
            checker.check(invocation)


def seeds() -> list[bytes]:
    """Every invocation vector's sequence."""
    return [bytes([index]) + join(h(x) for x in v["invocations"])
            for index, v in enumerate(INVOCATIONS)]


if __name__ == "__main__":
    run(one, seeds)

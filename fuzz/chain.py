"""Capability chains (spec 10): links parsed and chains verified as a verifier does.

The first byte chooses a chain vector, whose anchors, clock, skew, holder, request and
revoked ids the chain is verified under; the rest is the chain's bytes, also parsed on its
own (:func:`decode_chain`) and, when that succeeds, verified from its parsed links.
"""

from __future__ import annotations

from typing import Any

from agentauth.capability import Request, decode_chain, verify_chain
from agentauth.errors import AgentAuthError
from agentauth.identity import PeerKey

from ._common import h, refused, run, vectors

CHAINS = [v for v in vectors("capability") if v["kind"] == "chain"]


def _setting(v: dict[str, Any]) -> dict[str, Any]:
    request = v.get("request")
    return {"anchors": v["anchors"], "now": v["now"], "skew": v["skew"],
            "revoked": frozenset(h(r) for r in v["revoked"]).__contains__,
            "holder": None if v.get("holder") is None else PeerKey.from_agent_id(v["holder"]),
            "request": None if request is None else Request(*request)}


SETTINGS = [_setting(v) for v in CHAINS]


def one(data: bytes) -> None:
    """Verify ``data[1:]`` as the chain of the chosen vector's verifier."""
    if not data:
        return
    setting, chain = SETTINGS[data[0] % len(SETTINGS)], data[1:]
    if refused(lambda: verify_chain(chain, **setting)):
        return
    try:
        links = decode_chain(chain)
    except AgentAuthError:
        raise AssertionError("a chain that verified does not parse") from None
    verify_chain(links, **setting)  # the parsed links verify as their bytes did


def seeds() -> list[bytes]:
    """Every chain vector's chain in its own setting."""
    return [bytes([index]) + h(v["chain"]) for index, v in enumerate(CHAINS)]


if __name__ == "__main__":
    run(one, seeds)

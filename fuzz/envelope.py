"""Envelopes (spec 12): checked alone and opened with a replay store and pending replies.

The first byte chooses an envelope vector: the recipient's key, the clock, the window
and skew, the trusted senders and the replies awaited; the rest is a sequence of
envelopes (:func:`split`) opened in turn by one recipient, so replays and second replies
are reached. An envelope that opens must also pass :func:`check_envelope`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from agentauth.envelope import PendingRequests, check_envelope, open_envelope
from agentauth.identity import Identity, PeerKey
from agentauth.stores import MemoryReplayStore

from ._common import Clock, h, join, refused, run, split, vectors

ENVELOPES = vectors("envelope")
ME = {v["me_seed"]: Identity.from_seed(h(v["me_seed"])) for v in ENVELOPES}


def _trust(v: dict[str, Any]) -> Any:
    if v["trusted"] is None:
        return None
    trusted = frozenset(v["trusted"])
    return lambda peer: isinstance(peer, PeerKey) and peer.agent_id in trusted


def one(data: bytes) -> None:
    """Open each envelope of ``data[1:]`` as the chosen vector's recipient."""
    if not data:
        return
    v = ENVELOPES[data[0] % len(ENVELOPES)]
    me, trust, clock = ME[v["me_seed"]], _trust(v), Clock(v["now"])
    pending = PendingRequests()
    for entry in v["pending"]:
        pending.expect(h(entry["nonce"]), entry["recipient"], expires=entry["expires"])
    store = MemoryReplayStore()
    for envelope in split(data[1:])[:4]:
        checked = not refused(partial(check_envelope, envelope, me, now=v["now"],
                                      window=v["window"], skew=v["skew"], trust=trust))
        opened = not refused(partial(open_envelope, envelope, me, store, clock=clock,
                                     window=v["window"], skew=v["skew"], trust=trust,
                                     pending=pending))
        assert checked or not opened  # opening adds checks to check_envelope, none fewer


def seeds() -> list[bytes]:
    """Every envelope vector's sequence."""
    return [bytes([index]) + join(h(x) for x in v["envelopes"])
            for index, v in enumerate(ENVELOPES)]


if __name__ == "__main__":
    run(one, seeds)

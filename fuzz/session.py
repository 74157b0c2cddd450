"""Session messages (spec 5): what a session opens, ordered and unordered.

The sessions are those of the positive handshake vectors (their keys and channel
bindings), built fresh for each input; the first byte chooses the vector, the receiving
side and the mode, and the rest is a sequence of messages (:func:`split`) opened in turn,
so that replays, reordering, rekeys and closes are reached from the vectors' messages.
"""

from __future__ import annotations

from contextlib import suppress

from agentauth.errors import AgentAuthError
from agentauth.session import Session

from ._common import h, join, run, split, vectors

# (send key, receive key, exporter secret, channel binding) of each side of each vector
SIDES = []
for _v in vectors("handshake-positive"):
    _e = _v["expected"]
    _i2r, _r2i = h(_e["initiator_to_responder_key"]), h(_e["responder_to_initiator_key"])
    _x, _b = h(_e["exporter_secret"]), h(_e["channel_binding"])
    SIDES += [(_r2i, _i2r, _x, _b), (_i2r, _r2i, _x, _b)]  # responder, initiator


def one(data: bytes) -> None:
    """Open each message of ``data`` in one fresh session."""
    if not data:
        return
    send, recv, exporter, binding = SIDES[(data[0] >> 1) % len(SIDES)]
    session = Session(send, recv, exporter, binding, ordered=not data[0] & 1)
    for message in split(data[1:]):
        with suppress(AgentAuthError):
            session.open(message)
    with suppress(AgentAuthError):  # what is left to send must still work or be refused cleanly
        session.seal(b"after")


def seeds() -> list[bytes]:
    """The honest session of each vector, to each side, and the negative sessions."""
    out = []
    for index, v in enumerate(vectors("handshake-positive")):
        steps = v["expected"]["session"]
        for side, receiver in ((0, "responder"), (1, "initiator")):
            messages = [h(s["message"]) for s in steps if s["from"] != receiver]
            for ordered in (0, 1):
                out.append(bytes([(2 * index + side) << 1 | ordered]) + join(messages))
    for v in vectors("session-negative"):
        out.append(bytes([0 if v["ordered"] else 1]) + join(h(m) for m in v["steps"]))
    return out


if __name__ == "__main__":
    run(one, seeds)

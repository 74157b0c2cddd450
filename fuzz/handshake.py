"""HS1, HS2 and HS3 (spec 4) received by engines in every state.

Contexts come from the vectors: each positive handshake gives an initiator before and
after ``start``, a responder before and after HS1, and both roles done; each negative
vector gives its engine just before the step that fails. The first byte chooses the
context; the rest is one to three messages (:func:`split`) the engine receives in turn,
so that engines that failed or finished are fed too. A refusal must leave the engine
failed for good, or done if it was done. Keys, clocks and ephemeral secrets
are the vectors', so an input equal to the next honest message is accepted.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from agentauth.errors import AgentAuthError
from agentauth.handshake import (
    HandshakePolicy,
    HandshakeState,
    Initiator,
    Responder,
    accept_any_peer,
)
from agentauth.identity import Identity

from ._common import Clock, Random, h, join, run, split, vectors

# (role, inputs, steps before the fuzzed one: (time, None for start or a message), time)
Context = tuple[str, dict[str, Any], list[tuple[float, bytes | None]], float]


def _contexts() -> list[Context]:
    out: list[Context] = []
    for v in vectors("handshake-positive"):
        i, r = v["inputs"]["initiator"], v["inputs"]["responder"]
        c, e = v["inputs"]["clock"], v["expected"]
        hs1, hs2, hs3 = h(e["hs1"]), h(e["hs2"]), h(e["hs3"])
        out += [("initiator", i, [], c[0]),
                ("responder", r, [], c[1]),
                ("initiator", i, [(c[0], None)], c[2]),
                ("responder", r, [(c[1], hs1)], c[3]),
                ("initiator", i, [(c[0], None), (c[2], hs2)], c[2]),
                ("responder", r, [(c[1], hs1), (c[3], hs3)], c[3])]
    for v in vectors("handshake-negative"):
        steps = [(s["at"], None if s["start"] else h(s["receive"])) for s in v["steps"]]
        if steps[-1][1] is not None:
            out.append((v["role"], v["inputs"], steps[:-1], steps[-1][0]))
    return out


CONTEXTS = _contexts()


def engine(role: str, inputs: dict[str, Any], clock: Clock) -> Initiator | Responder:
    """A fresh engine from a vector's inputs, on ``clock`` and the vector's randomness."""
    trust = inputs["trust"]
    policy = HandshakePolicy(trust=accept_any_peer if trust == "any" else trust,
                             max_skew=inputs.get("max_skew", 120.0),
                             timeout=inputs.get("timeout", 30.0))
    cls = Initiator if role == "initiator" else Responder
    return cls(Identity.from_seed(h(inputs["identity_seed"])), policy,
               expect=inputs.get("expect"),
               extensions={k: h(x) for k, x in inputs.get("extensions", {}).items()},
               ordered=inputs.get("ordered", True), clock=clock,
               random=Random(h(inputs["ephemeral_secret"])))


def one(data: bytes) -> None:
    """Bring an engine to the chosen state, then feed it the fuzzed messages."""
    if not data:
        return
    role, inputs, steps, at = CONTEXTS[data[0] % len(CONTEXTS)]
    clock = Clock()
    e = engine(role, inputs, clock)
    for when, message in steps:
        clock.now = when
        if message is None:
            assert isinstance(e, Initiator)
            e.start()
        else:
            e.receive_message(message)
    clock.now = at
    for message in split(data[1:])[:3]:
        before = e.state
        try:
            e.receive_message(message)
        except AgentAuthError:
            # Failure is sticky (spec 4.13), and a late message cannot undo a finished one.
            done = before is HandshakeState.DONE
            assert e.state is (HandshakeState.DONE if done else HandshakeState.FAILED)
            assert (e.result is None) == (e.state is not HandshakeState.DONE)
        with suppress(AgentAuthError):
            e.check_timeout()


def seeds() -> list[bytes]:
    """Each context with the message its vector sends next (or the honest one)."""
    out = []
    positive = vectors("handshake-positive")
    for index, (_, _, steps, _) in enumerate(CONTEXTS):
        if index < 6 * len(positive):
            e = positive[index // 6]["expected"]
            honest = [h(e["hs1"]), h(e["hs1"]), h(e["hs2"]), h(e["hs3"]), b"", b""]
            out.append(bytes([index]) + join([honest[index % 6]]))
        else:
            vector = [v for v in vectors("handshake-negative")
                      if v["steps"][-1]["receive"] is not None][index - 6 * len(positive)]
            out.append(bytes([index]) + join([h(vector["steps"][-1]["receive"])]))
        del steps
    return out


if __name__ == "__main__":
    run(one, seeds)

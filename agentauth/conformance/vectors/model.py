"""The vector files' data model, and how to build and drive the engine a vector names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ...errors import AgentAuthError
from ...handshake import HandshakePolicy, Initiator, Responder, accept_any_peer
from ...identity import Identity
from ...session import Session

__all__ = [
    "HandshakeVector",
    "Inputs",
    "SessionVector",
    "Step",
    "feed_handshake",
    "make_engine",
    "run_handshake_vector",
    "run_session_vector",
]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class Inputs(_Model):
    """Everything an engine under test is built from."""

    identity_seed: str
    ephemeral_secret: str
    trust: list[str] | Literal["any"]
    expect: str | None = None
    max_skew: float = 120.0
    timeout: float = 30.0
    extensions: dict[str, str] = {}
    ordered: bool = True


class Step(_Model):
    """One input to the engine: ``start`` (initiator only) or a message to receive."""

    at: float
    start: bool = False
    receive: str | None = None


class HandshakeVector(_Model):
    """A negative handshake vector: the role under test fails at ``error_step``."""

    id: str
    description: str
    role: Literal["initiator", "responder"]
    inputs: Inputs
    steps: list[Step]
    error_step: int
    error: str


class SessionVector(_Model):
    """A negative session vector: messages fed to one end of a positive vector's session."""

    id: str
    description: str
    handshake: str
    receiver: Literal["initiator", "responder"]
    ordered: bool
    steps: list[str]
    error_step: int
    error: str


def make_engine(role: str, inputs: Inputs, clock: Callable[[], float]) -> Initiator | Responder:
    """Build the engine a vector describes, reading time from ``clock``."""
    identity = Identity.from_seed(bytes.fromhex(inputs.identity_seed))
    ephemeral = bytes.fromhex(inputs.ephemeral_secret)
    policy = HandshakePolicy(
        trust=accept_any_peer if inputs.trust == "any" else frozenset(inputs.trust),
        max_skew=inputs.max_skew, timeout=inputs.timeout)
    extensions = {k: bytes.fromhex(v) for k, v in inputs.extensions.items()}
    cls = Initiator if role == "initiator" else Responder
    return cls(identity, policy, expect=inputs.expect, extensions=extensions,
               ordered=inputs.ordered, clock=clock, random=lambda n: ephemeral[:n])


def feed_handshake(role: str, inputs: Inputs, steps: list[Step]
                   ) -> tuple[Initiator | Responder, int, AgentAuthError | None]:
    """Build the engine and feed it ``steps`` until one fails: the engine, the index of
    the step that failed (``len(steps)`` if none did) and its error."""
    now = [0.0]
    engine = make_engine(role, inputs, lambda: now[0])
    for index, step in enumerate(steps):
        now[0] = step.at
        try:
            if step.start:
                assert isinstance(engine, Initiator)
                engine.start()
            else:
                assert step.receive is not None
                engine.receive_message(bytes.fromhex(step.receive))
        except AgentAuthError as exc:
            return engine, index, exc
    return engine, len(steps), None


def run_handshake_vector(vector: HandshakeVector) -> tuple[int, str] | None:
    """Feed the steps; return ``(step, code)`` of the first error, or None if none."""
    _, index, error = feed_handshake(vector.role, vector.inputs, vector.steps)
    return None if error is None else (index, error.code)


def run_session_vector(vector: SessionVector, session: Session) -> tuple[int, str] | None:
    """Feed the steps to ``session``; return ``(step, code)`` of the first error, or None."""
    for index, message in enumerate(vector.steps):
        try:
            session.open(bytes.fromhex(message))
        except AgentAuthError as exc:
            return index, exc.code
    return None

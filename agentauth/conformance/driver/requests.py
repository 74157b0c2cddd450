"""The requests this driver reads: one strict pydantic model for each operation's
parameters (``spec/conformance.md``). Requests come from another process, so they are
untrusted: exact types, no coercion, no unknown key; a request that does not fit is
refused with ``invalid_argument`` naming the first field at fault.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ...handshake import SUPPORTED_VERSIONS

__all__ = [
    "AwaitedReply",
    "CapabilityRequest",
    "ChainCheck",
    "Clock",
    "ConstraintCheck",
    "Empty",
    "EnvelopeParams",
    "Export",
    "FrameParams",
    "GrantCheck",
    "GrantRequest",
    "Handle",
    "HandshakeSetup",
    "Hello",
    "Invocation",
    "Message",
    "Notice",
    "OpenerSetup",
    "Pair",
    "Params",
    "Payload",
    "RequestDone",
    "RequestFrame",
    "RequestRoute",
    "RequestServerSetup",
    "Seed",
    "SeenEnvelope",
    "VerifierSetup",
]


class Params(BaseModel):
    """The parameters of one operation: strict types, no unknown key."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class Hello(Params):
    """``hello``: the interface versions the runner speaks."""

    interface: list[int]


class Seed(Params):
    """``create_identity``: a 32-byte seed, in hex."""

    seed: str


class Clock(Params):
    """``set_clock``: the injected time, in seconds."""

    now: int | float


class HandshakeSetup(Params):
    """``handshake``: an engine in one role, with its policy and injected randomness."""

    role: Literal["initiator", "responder"]
    identity: str
    trust: list[str] | Literal["any"]
    expect: str | None = None
    versions: list[int] = list(SUPPORTED_VERSIONS)
    max_skew: float = 120.0
    timeout: float = 30.0
    extensions: dict[str, str] = {}
    ordered: bool = True
    random: str = ""


class Handle(Params):
    """An operation on one object the driver holds."""

    handle: str


class Message(Params):
    """``receive`` and ``open``: a message for one engine or session, in hex."""

    handle: str
    message: str


class Payload(Params):
    """``seal``: a payload to seal in one session, in hex."""

    handle: str
    payload: str


class Export(Params):
    """``export``: a label, a context and a length for the session exporter."""

    handle: str
    label: str
    context: str = ""
    length: int = 32


class CapabilityRequest(Params):
    """The request a chain is checked against."""

    resource: str
    action: str
    args: dict[str, bool | int | str] = {}


class ChainCheck(Params):
    """``verify_chain``: a chain, its anchors and what it is checked against."""

    chain: str
    anchors: dict[str, str]
    skew: int = 60
    revoked: list[str] = []
    holder: str | None = None
    request: CapabilityRequest | None = None


class ConstraintCheck(Params):
    """``constraint_allows``: a constraint's wire bytes, in hex, and an argument's value (any
    JSON value)."""

    constraint: str
    value: Any = None


class GrantRequest(Params):
    """A request a grant is checked against: its arguments are any JSON values."""

    resource: str
    action: str
    args: dict[str, Any] = {}


class GrantCheck(Params):
    """``grant_allows``: a grant's wire bytes, in hex, and a request."""

    grant: str
    request: GrantRequest


class Pair(Params):
    """``constraint_within``, ``grant_within``: a child's and a parent's wire bytes, in
    hex."""

    child: str
    parent: str


class Notice(Params):
    """``verify_notice``: a revocation notice and its anchors."""

    notice: str
    anchors: dict[str, str]


class VerifierSetup(Params):
    """``invocation_verifier``: a session-bound or detached verifier."""

    mode: Literal["session", "detached"]
    anchors: dict[str, str]
    skew: int = 60
    peer: str | None = None
    channel_binding: str | None = None
    verifier: str | None = None
    window: int = 120


class Invocation(Params):
    """``check_invocation``: one invocation for a verifier the driver holds."""

    handle: str
    invocation: str


class AwaitedReply(Params):
    """A request awaiting its reply, as an envelope opener is given it."""

    nonce: str
    recipient: str
    expires: float


class SeenEnvelope(Params):
    """A replay key an envelope opener has already seen."""

    key: str
    expires: int | float


class OpenerSetup(Params):
    """``envelope_opener``: a recipient, its trust, and its replay and reply state."""

    recipient: str
    trust: list[str] | None = None
    pending: list[AwaitedReply] = []
    seen: list[SeenEnvelope] = []
    window: int = 300
    skew: int = 60


class EnvelopeParams(Params):
    """``open_envelope``: an envelope for an opener the driver holds."""

    handle: str
    envelope: str


class Empty(Params):
    """An operation without parameters (``reset``, ``shutdown``)."""


class FrameParams(Params):
    """``frame_decode``: one request frame (protocol.md 15.2), in hex, and the channel's
    largest message."""

    frame: str
    limit: int


class RequestRoute(Params):
    """A handler a request server declares: a grant pattern and one action; ``capability``
    False serves any peer the channel admitted."""

    pattern: str
    action: str
    capability: bool = True


class RequestServerSetup(Params):
    """``request_server``: one channel's serving side (protocol.md 15.4)."""

    peer: str
    anchors: dict[str, str]
    routes: list[RequestRoute]
    revoked: list[str] = []
    max_payload: int = 1 << 20
    max_in_flight: int = 128
    max_chains: int = 16


class RequestFrame(Params):
    """``request_receive``: a frame for a request server the driver holds."""

    handle: str
    frame: str


class RequestDone(Params):
    """``request_done``: a request's answer was sent; its id is free again."""

    handle: str
    request_id: int

"""This implementation's conformance driver: ``agentauth conformance driver``.

It reads requests from standard input and writes one reply per request to standard
output, as ``spec/conformance.md`` defines. Every request is answered: a line that is not a
request, an operation with unknown or mistyped parameters, or a call the engines refuse
gets an ``error`` reply with its registry code; an operation this driver does not know gets
``unimplemented``. The driver holds test state only (identities from given seeds, an
injected clock), so it must never be pointed at real keys.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from typing import IO, Any

from pydantic import ValidationError

from ... import wire
from ..._version import __version__
from ...agent.frames import Requests, Revoked, Route, body_limit, decode_frame, settle
from ...capability import (
    DetachedInvocations,
    Grant,
    Request,
    SessionInvocations,
    verify_chain,
)
from ...capability import verify_notice as _verify_notice
from ...capability.constraints import Constraint, constraint_from_wire, constraint_within
from ...envelope import PendingRequests, open_envelope
from ...errors import AgentAuthError, DecodeError, InvalidArgument, InvalidState, PeerRefused
from ...handshake import (
    SUPPORTED_VERSIONS,
    HandshakePolicy,
    HandshakeState,
    Initiator,
    Responder,
    accept_any_peer,
)
from ...identity import Identity, PeerKey, parse_agent_id
from ...session import Session
from ...stores import MemoryReplayStore
from ..interface import (
    INTERFACE_VERSION,
    MAX_LINE,
    decision_to_json,
    encode_line,
    frame_to_json,
    parse_request,
)
from ..interface import from_hex as _from_hex
from .requests import (
    ChainCheck,
    Clock,
    ConstraintCheck,
    Empty,
    EnvelopeParams,
    Export,
    FrameParams,
    GrantCheck,
    Handle,
    HandshakeSetup,
    Hello,
    Invocation,
    Message,
    Notice,
    OpenerSetup,
    Pair,
    Params,
    Payload,
    RequestDone,
    RequestFrame,
    RequestServerSetup,
    Seed,
    VerifierSetup,
)

__all__ = ["IMPLEMENTATION", "MAX_OBJECTS", "OPERATIONS", "Driver", "main"]

IMPLEMENTATION = f"agentauth-python {__version__}"
#: Engines, verifiers and openers one driver holds at once (``drop`` frees one).
MAX_OBJECTS = 4096
#: The largest constraint or grant the constraint operations decode, in bytes.
MAX_GRANT = 1 << 16


def from_hex(value: str, what: str) -> bytes:
    """A hex parameter of a request: a bad one is the request's fault (invalid_argument)."""
    try:
        return _from_hex(value, what)
    except DecodeError as exc:
        raise InvalidArgument(exc.message) from None


class _Random:
    """A random source that returns the injected bytes in order, then the OS's."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __call__(self, n: int) -> bytes:
        if len(self._data) >= n:
            out, self._data = self._data[:n], self._data[n:]
            return out
        return os.urandom(n)


def _constraint(value: str, what: str) -> Constraint:
    """A constraint from its wire bytes in hex, checked as a link's are (spec 10.3)."""
    return constraint_from_wire(wire.decode_array(from_hex(value, what), MAX_GRANT, what))


def _grant(value: str, what: str) -> Grant:
    """A grant from its wire bytes in hex, checked as a link's are (spec 10.3)."""
    return Grant.from_wire(wire.decode_array(from_hex(value, what), MAX_GRANT, what))


def _state(engine: Initiator | Responder) -> str:
    return engine.state.value


class Driver:
    """The state behind one driver process, and the operations of the interface."""

    __slots__ = ("_clock", "_done", "_identities", "_next", "_objects")

    def __init__(self) -> None:
        self._clock: int | float = 0
        self._identities: dict[str, Identity] = {}
        self._objects: dict[str, object] = {}
        self._next = 0
        self._done = False

    @property
    def done(self) -> bool:
        """Whether ``shutdown`` was received."""
        return self._done

    # ------------------------------------------------------------------ dispatch

    def handle_line(self, line: bytes) -> bytes:
        """Answer one request line with one reply line; never raises."""
        request_id: int | None = None
        try:
            request_id, op, request = parse_request(line)
            if request_id is None:
                raise InvalidArgument("a request carries an integer id in [0, 2^53]")
            if op is None:
                raise InvalidArgument("a request names its op")
            entry = _OPS.get(op)
            if entry is None:
                return encode_line({"id": request_id,
                                    "unimplemented": f"op {op[:40]!r} is not implemented"})
            model, method = entry
            try:
                params = model.model_validate(request)
            except ValidationError as exc:
                raise InvalidArgument(f"{op}: {wire.validation_message(exc, 'request')}") from None
            result = method(self, params)
        except AgentAuthError as exc:
            return encode_line({"id": request_id,
                                "error": {"code": exc.code, "message": exc.message[:300]}})
        except Exception as exc:  # a bug here must still be answered, and visibly
            return encode_line({"id": request_id, "error": {
                "code": "invalid_state", "message": f"driver fault: {type(exc).__name__}"}})
        return encode_line({"id": request_id, "result": result})

    def serve(self, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        """Answer requests from ``stdin`` until end of input or ``shutdown``."""
        while not self._done:
            line = stdin.readline(MAX_LINE + 2)
            if not line:
                return
            if len(line) > MAX_LINE + 1 and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # skip to the end of that line
                    line = stdin.readline(MAX_LINE + 2)
                reply = encode_line({"id": None, "error": {
                    "code": "oversize", "message": f"a line is at most {MAX_LINE} bytes"}})
            else:
                reply = self.handle_line(line.rstrip(b"\r\n"))
            stdout.write(reply)
            stdout.flush()

    # ------------------------------------------------------------------ helpers

    def _now(self) -> int | float:
        return self._clock

    def _add(self, prefix: str, obj: object) -> str:
        if len(self._objects) >= MAX_OBJECTS:
            raise InvalidArgument(f"the driver holds {MAX_OBJECTS} objects: drop some")
        self._next += 1
        handle = f"{prefix}{self._next}"
        self._objects[handle] = obj
        return handle

    def _get(self, handle: str, kind: Any, what: str) -> Any:
        obj = self._objects.get(handle)
        if not isinstance(obj, kind):
            raise InvalidArgument(f"no {what} with handle {handle[:40]!r}")
        return obj

    def _identity(self, agent_id: str) -> Identity:
        parse_agent_id(agent_id)  # a string that is no agent id gets its own code
        identity = self._identities.get(agent_id)
        if identity is None:
            raise InvalidArgument("no identity with that agent id: create_identity first")
        return identity

    def _session(self, handle: str) -> Session:
        engine = self._get(handle, Initiator | Responder, "handshake")
        if engine.result is None:
            raise InvalidState(f"handshake {handle} is {_state(engine)}, not done")
        session: Session = engine.result.session
        return session

    # ------------------------------------------------------------------ operations

    def hello(self, p: Hello) -> dict[str, Any]:
        if INTERFACE_VERSION not in p.interface:
            raise InvalidArgument(f"this driver speaks interface version {INTERFACE_VERSION}")
        return {"interface": INTERFACE_VERSION, "implementation": IMPLEMENTATION,
                "protocol_versions": list(SUPPORTED_VERSIONS)}

    def create_identity(self, p: Seed) -> dict[str, Any]:
        identity = Identity.from_seed(from_hex(p.seed, "seed"))
        if len(self._identities) >= MAX_OBJECTS:
            raise InvalidArgument(f"the driver holds {MAX_OBJECTS} identities")
        self._identities[identity.agent_id] = identity
        return {"agent_id": identity.agent_id, "public_key": identity.public_bytes.hex()}

    def set_clock(self, p: Clock) -> dict[str, Any]:
        if not (math.isfinite(p.now) and p.now >= 0):
            raise InvalidArgument("the clock is a finite, non-negative number of seconds")
        self._clock = p.now
        return {}

    def handshake(self, p: HandshakeSetup) -> dict[str, Any]:
        policy = HandshakePolicy(
            trust=accept_any_peer if p.trust == "any" else p.trust,
            max_skew=p.max_skew, timeout=p.timeout, versions=tuple(p.versions))
        extensions = {k: from_hex(v, "extension") for k, v in p.extensions.items()}
        cls = Initiator if p.role == "initiator" else Responder
        engine = cls(self._identity(p.identity), policy, expect=p.expect,
                     extensions=extensions, ordered=p.ordered, clock=self._now,
                     random=_Random(from_hex(p.random, "random")))
        return {"handle": self._add("h", engine), "state": _state(engine)}

    def start(self, p: Handle) -> dict[str, Any]:
        engine = self._get(p.handle, Initiator | Responder, "handshake")
        if isinstance(engine, Responder):  # no start row (protocol.md 4.13, in its order)
            if engine.state is HandshakeState.FAILED:
                engine.check_timeout()  # a failed engine repeats its first error
            raise InvalidState("a responder has no start: it reads HS1")
        return {"message": engine.start().hex(), "state": _state(engine)}

    def receive(self, p: Message) -> dict[str, Any]:
        engine = self._get(p.handle, Initiator | Responder, "handshake")
        reply = engine.receive_message(from_hex(p.message, "message"))
        out: dict[str, Any] = {"reply": None if reply is None else reply.hex(),
                               "state": _state(engine)}
        if engine.result is not None:
            result = engine.result
            out.update(peer=result.peer_id, version=result.version,
                       channel_binding=result.channel_binding.hex(),
                       peer_extensions={k: v.hex() for k, v in result.peer_extensions.items()})
        return out

    def check_timeout(self, p: Handle) -> dict[str, Any]:
        engine = self._get(p.handle, Initiator | Responder, "handshake")
        engine.check_timeout()
        return {"state": _state(engine)}

    def alert(self, p: Handle) -> dict[str, Any]:
        engine = self._get(p.handle, Initiator | Responder, "handshake")
        claimed = None
        if engine.state is HandshakeState.FAILED:
            try:
                engine.check_timeout()  # a failed engine raises its first error again
            except PeerRefused as exc:
                claimed = exc.claimed
            except AgentAuthError:
                pass
        alert = engine.alert
        return {"alert": None if alert is None else alert.hex(), "claimed": claimed}

    def seal(self, p: Payload) -> dict[str, Any]:
        return {"message": self._session(p.handle).seal(from_hex(p.payload, "payload")).hex()}

    def rekey(self, p: Handle) -> dict[str, Any]:
        return {"message": self._session(p.handle).rekey().hex()}

    def close(self, p: Handle) -> dict[str, Any]:
        return {"message": self._session(p.handle).close().hex()}

    def open(self, p: Message) -> dict[str, Any]:
        payload = self._session(p.handle).open(from_hex(p.message, "message"))
        return {"payload": None if payload is None else payload.hex()}

    def export(self, p: Export) -> dict[str, Any]:
        value = self._session(p.handle).export(from_hex(p.label, "label"),
                                               from_hex(p.context, "context"), p.length)
        return {"value": value.hex()}

    def channel_binding(self, p: Handle) -> dict[str, Any]:
        return {"channel_binding": self._session(p.handle).channel_binding.hex()}

    def verify_chain(self, p: ChainCheck) -> dict[str, Any]:
        revoked = {from_hex(r, "revoked id") for r in p.revoked}
        request = (None if p.request is None
                   else Request(p.request.resource, p.request.action, p.request.args))
        holder = None if p.holder is None else PeerKey.from_agent_id(p.holder)
        verify_chain(from_hex(p.chain, "chain"), p.anchors, now=math.floor(self._clock),
                     skew=p.skew, revoked=revoked.__contains__, holder=holder, request=request)
        return {}

    def constraint_allows(self, p: ConstraintCheck) -> dict[str, Any]:
        return {"allowed": _constraint(p.constraint, "constraint").allows(p.value)}

    def constraint_within(self, p: Pair) -> dict[str, Any]:
        return {"within": constraint_within(_constraint(p.child, "child"),
                                            _constraint(p.parent, "parent"))}

    def grant_allows(self, p: GrantCheck) -> dict[str, Any]:
        grant = _grant(p.grant, "grant")
        return {"allowed": grant.allows(Request(p.request.resource, p.request.action,
                                                p.request.args))}

    def grant_within(self, p: Pair) -> dict[str, Any]:
        return {"within": _grant(p.child, "child").within(_grant(p.parent, "parent"))}

    def verify_notice(self, p: Notice) -> dict[str, Any]:
        _verify_notice(from_hex(p.notice, "notice"), p.anchors)
        return {}

    def invocation_verifier(self, p: VerifierSetup) -> dict[str, Any]:
        checker: SessionInvocations | DetachedInvocations
        if p.mode == "session":
            if p.peer is None or p.channel_binding is None:
                raise InvalidArgument("a session verifier needs peer and channel_binding")
            checker = SessionInvocations(
                p.anchors, peer=PeerKey.from_agent_id(p.peer), clock=self._now,
                channel_binding=from_hex(p.channel_binding, "channel_binding"), skew=p.skew)
        else:
            if p.verifier is None:
                raise InvalidArgument("a detached verifier needs verifier")
            checker = DetachedInvocations(p.anchors, verifier=p.verifier, clock=self._now,
                                          window=p.window, skew=p.skew)
        return {"handle": self._add("v", checker)}

    def check_invocation(self, p: Invocation) -> dict[str, Any]:
        checker = self._get(p.handle, SessionInvocations | DetachedInvocations,
                            "invocation verifier")
        checker.check(from_hex(p.invocation, "invocation"))
        return {}

    def envelope_opener(self, p: OpenerSetup) -> dict[str, Any]:
        me = self._identity(p.recipient)
        pending = PendingRequests()
        for entry in p.pending:
            pending.expect(from_hex(entry.nonce, "nonce"), entry.recipient,
                           expires=entry.expires)
        trusted = (None if p.trust is None
                   else frozenset(PeerKey.from_agent_id(a).agent_id for a in p.trust))
        opener = _EnvelopeOpener(me, pending, trusted, p.window, p.skew)
        for seen in p.seen:
            opener.store.check_and_insert(from_hex(seen.key, "key"), seen.expires)
        return {"handle": self._add("e", opener)}

    def open_envelope(self, p: EnvelopeParams) -> dict[str, Any]:
        opener: _EnvelopeOpener = self._get(p.handle, _EnvelopeOpener, "envelope opener")
        trusted = opener.trusted
        trust = None if trusted is None else (lambda peer: peer.agent_id in trusted)
        opened = open_envelope(from_hex(p.envelope, "envelope"), opener.me, opener.store,
                               clock=self._now, window=opener.window, skew=opener.skew,
                               trust=trust, pending=opener.pending)
        return {"sender": opened.sender.agent_id, "payload": opened.payload.hex(),
                "nonce": opened.nonce.hex(), "time": opened.time,
                "reply_to": opened.reply_to.hex(), "sealed": opened.sealed}

    def frame_decode(self, p: FrameParams) -> dict[str, Any]:
        if not 0 < p.limit <= MAX_LINE:
            raise InvalidArgument(f"a frame's limit is 1 to {MAX_LINE} bytes")
        return {"frame": frame_to_json(decode_frame(from_hex(p.frame, "frame"), p.limit))}

    def request_server(self, p: RequestServerSetup) -> dict[str, Any]:
        for name, value in (("max_payload", p.max_payload), ("max_in_flight", p.max_in_flight),
                            ("max_chains", p.max_chains)):
            if not 0 < value <= MAX_LINE:
                raise InvalidArgument(f"{name} is 1 to {MAX_LINE}")
        if body_limit(p.max_payload) < 0:
            raise InvalidArgument("max_payload leaves no room for a frame's fields")
        routes = tuple(Route.make(r.pattern, r.action, i, capability=r.capability)
                       for i, r in enumerate(p.routes))
        revoked = frozenset(from_hex(r, "revoked id") for r in p.revoked)
        server = Requests(PeerKey.from_agent_id(p.peer), p.anchors, routes,
                          max_payload=p.max_payload, max_in_flight=p.max_in_flight,
                          max_chains=p.max_chains, clock=self._now)
        return {"handle": self._add("r", _RequestServer(server, revoked.__contains__))}

    def request_receive(self, p: RequestFrame) -> dict[str, Any]:
        server: _RequestServer = self._get(p.handle, _RequestServer, "request server")
        flow = server.state.receiving(from_hex(p.frame, "frame"))
        return decision_to_json(settle(flow, server.revoked))

    def request_done(self, p: RequestDone) -> dict[str, Any]:
        server: _RequestServer = self._get(p.handle, _RequestServer, "request server")
        server.state.done(p.request_id)
        return {}

    def drop(self, p: Handle) -> dict[str, Any]:
        if self._objects.pop(p.handle, None) is None:
            raise InvalidArgument(f"no object with handle {p.handle[:40]!r}")
        return {}

    def reset(self, p: Empty) -> dict[str, Any]:
        self._objects.clear()
        self._identities.clear()
        self._clock = 0
        return {}

    def shutdown(self, p: Empty) -> dict[str, Any]:
        self._done = True
        return {}


class _RequestServer:
    """One channel's serving side and the revoked link ids its checks are answered from."""

    __slots__ = ("revoked", "state")

    def __init__(self, state: Requests, revoked: Revoked) -> None:
        self.state, self.revoked = state, revoked

    def __repr__(self) -> str:
        return f"RequestServer(in_flight={len(self.state.in_flight)})"


class _EnvelopeOpener:
    """One recipient opening envelopes: its identity, replay store and awaited replies."""

    __slots__ = ("me", "pending", "skew", "store", "trusted", "window")

    def __init__(self, me: Identity, pending: PendingRequests, trusted: frozenset[str] | None,
                 window: int, skew: int) -> None:
        self.me, self.pending, self.trusted = me, pending, trusted
        self.window, self.skew = window, skew
        self.store = MemoryReplayStore()

    def __repr__(self) -> str:
        return f"EnvelopeOpener(recipient={self.me.agent_id!r})"


_OPS: dict[str, tuple[type[Params], Callable[[Driver, Any], dict[str, Any]]]] = {
    "hello": (Hello, Driver.hello),
    "create_identity": (Seed, Driver.create_identity),
    "set_clock": (Clock, Driver.set_clock),
    "handshake": (HandshakeSetup, Driver.handshake),
    "start": (Handle, Driver.start),
    "receive": (Message, Driver.receive),
    "check_timeout": (Handle, Driver.check_timeout),
    "alert": (Handle, Driver.alert),
    "seal": (Payload, Driver.seal),
    "rekey": (Handle, Driver.rekey),
    "close": (Handle, Driver.close),
    "open": (Message, Driver.open),
    "export": (Export, Driver.export),
    "channel_binding": (Handle, Driver.channel_binding),
    "verify_chain": (ChainCheck, Driver.verify_chain),
    "verify_notice": (Notice, Driver.verify_notice),
    "constraint_allows": (ConstraintCheck, Driver.constraint_allows),
    "constraint_within": (Pair, Driver.constraint_within),
    "grant_allows": (GrantCheck, Driver.grant_allows),
    "grant_within": (Pair, Driver.grant_within),
    "invocation_verifier": (VerifierSetup, Driver.invocation_verifier),
    "check_invocation": (Invocation, Driver.check_invocation),
    "envelope_opener": (OpenerSetup, Driver.envelope_opener),
    "open_envelope": (EnvelopeParams, Driver.open_envelope),
    "frame_decode": (FrameParams, Driver.frame_decode),
    "request_server": (RequestServerSetup, Driver.request_server),
    "request_receive": (RequestFrame, Driver.request_receive),
    "request_done": (RequestDone, Driver.request_done),
    "drop": (Handle, Driver.drop),
    "reset": (Empty, Driver.reset),
    "shutdown": (Empty, Driver.shutdown),
}

#: The operations this driver implements.
OPERATIONS = frozenset(_OPS)


def main() -> int:
    """Serve the driver interface on standard input and output."""
    Driver().serve(sys.stdin.buffer, sys.stdout.buffer)
    return 0

"""Requests on a channel, sans-I/O (spec section 15): the frames one channel message
carries, and :class:`Requests`, the serving side's checks for one channel.

Each channel message is one frame, a canonical map whose field 0 is the kind:

* PRESENT ``{0: 1, 1: ref, 2: chain}``: a capability chain, sent once per channel and
  named afterwards by ``ref`` (1 to 2**32 - 1);
* REQUEST ``{0: 2, 1: id, 2: resource, 3: action, 4: args, 5: body, 6: ref}``; ``ref`` 0
  names no chain;
* RESPONSE ``{0: 3, 1: id, 2: body}``;
* ERROR ``{0: 4, 1: id, 2: code, 3: reason, 4: refusal}``: ``refusal`` is what
  :meth:`agentauth.Refusal.for_peer` tells the peer, or an empty map;
* CANCEL ``{0: 5, 1: id}``: the requester gave up on a request.

Nothing here does I/O or reads a clock of its own: the async layer (:mod:`agentauth.agent`)
feeds frames in, answers the revocation lookups a check asks for (:meth:`Requests.receiving`)
and runs the handlers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from .. import wire
from ..capability.chain import Link, decode_chain, verify_chain
from ..capability.grants import Grant, Request
from ..errors import (
    ERROR_CODES,
    AgentAuthError,
    CapabilityDenied,
    DecodeError,
    InvalidArgument,
    PeerRefused,
    ProtocolViolation,
    Refusal,
    RemoteError,
    RequestError,
    StoreError,
)
from ..identity import PeerKey
from ..verdict import moment

__all__ = [
    "CANCEL",
    "ERROR",
    "MAX_CHAINS",
    "MAX_IN_FLIGHT",
    "PRESENT",
    "REQUEST",
    "RESPONSE",
    "Call",
    "Checking",
    "Frame",
    "Refused",
    "Requests",
    "Revoked",
    "Route",
    "body_limit",
    "decode_frame",
    "encode_cancel",
    "encode_error",
    "encode_present",
    "encode_request",
    "encode_response",
    "error_from_frame",
    "settle",
]

PRESENT: Final = 1
REQUEST: Final = 2
RESPONSE: Final = 3
ERROR: Final = 4
CANCEL: Final = 5
_FIELDS: Final = {PRESENT: 3, REQUEST: 7, RESPONSE: 3, ERROR: 5, CANCEL: 2}

#: Requests one channel may have in flight at once, by default.
MAX_IN_FLIGHT: Final = 128
#: Chains one channel may present, by default.
MAX_CHAINS: Final = 16
MAX_ID: Final = 2**64 - 1
MAX_REF: Final = 2**32 - 1
MAX_REASON: Final = 512
#: Room left in a channel message for a frame's fields beside its body.
HEADROOM: Final = 16_384
_MAX_ARGS: Final = 32
_MIN_INT: Final = -(2**63)


def body_limit(max_payload: int) -> int:
    """The largest body a request or response may carry on a channel whose messages hold
    ``max_payload`` bytes."""
    return max_payload - HEADROOM


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. Fields a kind does not have are their empty value."""

    kind: int
    id: int = 0
    resource: str = ""
    action: str = ""
    args: Mapping[str, int | str | bool] | None = None
    body: bytes = field(default=b"", repr=False)  # the application's bytes, and a
    ref: int = 0
    chain: bytes = field(default=b"", repr=False)  # capability, stay out of logs
    code: str = ""
    reason: str = ""
    refusal: Mapping[str, int | str] | None = None


# ------------------------------------------------------------------ encoding


def _args(args: Mapping[str, object]) -> dict[str, int | str | bool]:
    if not isinstance(args, Mapping) or len(args) > _MAX_ARGS or any(
            type(k) is not str or type(v) not in (int, str, bool)
            or (type(v) is int and not _MIN_INT <= v <= MAX_ID) for k, v in args.items()):
        raise InvalidArgument(f"request arguments map at most {_MAX_ARGS} names to int "
                              f"(64-bit), str or bool")
    return dict(sorted(args.items()))  # type: ignore[arg-type]


def encode_present(ref: int, chain: bytes) -> bytes:
    """A PRESENT frame: ``chain`` (its wire form) under the reference ``ref``."""
    return wire.encode_map(PRESENT, ref, chain)


def encode_request(request_id: int, resource: str, action: str, args: Mapping[str, object],
                   body: bytes, ref: int) -> bytes:
    """A REQUEST frame (``ref`` 0: no chain)."""
    try:
        return wire.encode_map(REQUEST, request_id, resource, action, _args(args), body, ref)
    except UnicodeEncodeError:  # a lone surrogate, from bytes decoded with surrogateescape
        raise InvalidArgument("a request's texts are valid Unicode") from None


def encode_response(request_id: int, body: bytes) -> bytes:
    """A RESPONSE frame."""
    return wire.encode_map(RESPONSE, request_id, body)


def encode_cancel(request_id: int) -> bytes:
    """A CANCEL frame."""
    return wire.encode_map(CANCEL, request_id)


def encode_error(request_id: int, error: AgentAuthError) -> bytes:
    """The ERROR frame that tells the peer why ``error`` refused its request: the code and
    message of a remote or store error, and of a capability refusal what
    :meth:`Refusal.for_peer` shows; anything else is ``handler_failed`` with no detail
    (the serving side logs it), :class:`PeerRefused` included: another peer's claim that
    a handler relays is no refusal of this request by this server (spec 15.5)."""
    if not isinstance(error, RemoteError | StoreError) or isinstance(error, PeerRefused):
        error = RequestError("the request failed on the serving side", code="handler_failed")
    refusal = error.refusal if isinstance(error, CapabilityDenied) else None
    told = {} if refusal is None else refusal.for_peer()
    # A handler's message may hold anything a str can, lone surrogates included: what goes
    # out is valid UTF-8 (each such character as "?"), or the answer could not be sent.
    reason = error.message[:MAX_REASON].encode("utf-8", "replace").decode("utf-8")
    return wire.encode_map(ERROR, request_id, error.code, reason, told)


# ------------------------------------------------------------------ decoding


def _malformed(what: str) -> DecodeError:
    return DecodeError(f"a {what} frame is out of shape", code="malformed")


def decode_frame(data: bytes, limit: int) -> Frame:
    """Decode one frame of at most ``limit`` bytes: a typed error for anything else."""
    if type(data) is not bytes:
        raise InvalidArgument("a frame is bytes")
    if len(data) > limit:
        raise DecodeError(f"a frame of {len(data)} bytes is over {limit}", code="oversize")
    # The field count is read from the map's header and then checked against the kind.
    fields = data[0] - 0x80 if data and 0x82 <= data[0] <= 0x87 else 0
    if not fields:
        raise DecodeError("a frame is a map of 2 to 7 fields", code="malformed")
    # The flat decoder's fast path does not check nested values while parsing: the kind's
    # checks below type every value, args and refusal entries included, and the bytes
    # must re-encode to themselves (so a repeated key inside args is refused too).
    values = wire.decode_flat_map(data, fields, limit, "frame")
    kind, frame_id = values[0], values[1]
    if type(kind) is not int or type(frame_id) is not int:
        raise DecodeError("a frame's kind and id are integers", code="malformed")
    if _FIELDS.get(kind) != fields:
        raise DecodeError(f"no frame kind {kind} of {fields} fields", code="unknown_field")
    if kind == PRESENT:
        chain = values[2]
        if not 0 < frame_id <= MAX_REF or type(chain) is not bytes:
            raise _malformed("PRESENT")
        return Frame(PRESENT, ref=frame_id, chain=chain)
    if not 0 <= frame_id <= MAX_ID:
        raise DecodeError("a request id is a 64-bit unsigned integer", code="malformed")
    if kind == REQUEST:
        _, _, resource, action, args, body, ref = values
        if (type(resource) is not str or type(action) is not str or type(args) is not dict
                or type(body) is not bytes or type(ref) is not int
                or not 0 <= ref <= MAX_REF or len(args) > _MAX_ARGS
                or any(type(k) is not str or type(v) not in (int, str, bool)
                       for k, v in args.items())):
            raise _malformed("REQUEST")
        if list(args) != sorted(args):
            raise DecodeError("request argument names are not sorted", code="non_canonical")
        return Frame(REQUEST, frame_id, resource, action, args, body, ref)
    if kind == RESPONSE:
        if type(values[2]) is not bytes:
            raise _malformed("RESPONSE")
        return Frame(RESPONSE, frame_id, body=values[2])
    if kind == ERROR:
        _, _, code, reason, refusal = values
        if (type(code) is not str or code not in ERROR_CODES or type(reason) is not str
                or len(reason) > MAX_REASON or type(refusal) is not dict
                or any(type(k) is not str or type(v) not in (int, str)
                       for k, v in refusal.items())):
            raise _malformed("ERROR")
        return Frame(ERROR, frame_id, code=code, reason=reason, refusal=refusal)
    return Frame(CANCEL, frame_id)


def error_from_frame(frame: Frame) -> AgentAuthError:
    """The typed error an ERROR frame stands for: the class the registry gives its code
    (a :class:`CapabilityDenied` with the peer's view of its :class:`Refusal`). A code of
    a class the serving side never sends (a local error, or ``peer_refused``, which is
    never a server's answer, spec 15.5) is ``malformed``."""
    cls = ERROR_CODES[frame.code][0]
    # The peer's text reaches the application's logs: no control characters (a forged
    # line, a terminal escape), each shown as "?".
    told_reason = "".join(c if c.isprintable() else "?" for c in frame.reason)
    reason = f"the peer refused the request: {told_reason}"
    if not issubclass(cls, RemoteError | StoreError) or issubclass(cls, PeerRefused):
        return DecodeError(f"an ERROR frame names {frame.code!r}, which no server sends",
                           code="malformed")
    if issubclass(cls, CapabilityDenied):
        told = dict(frame.refusal or {})
        link, grant, argument = (told.get(name) for name in ("link", "grant", "argument"))
        try:  # the places only, as the peer was told them
            refusal: Refusal | None = Refusal(
                str(told.get("kind")), link if type(link) is int else None,
                grant if type(grant) is int else None,
                argument if type(argument) is str else None)
        except InvalidArgument:
            refusal = None
        return CapabilityDenied(reason, code=frame.code, refusal=refusal)
    return cls(reason, code=frame.code)


# ------------------------------------------------------------------ the serving side


@dataclass(frozen=True, slots=True)
class Route:
    """A handler's declaration: the resources (a grant pattern) and the action it serves,
    what it is (opaque here), and whether a request needs a capability to reach it
    (``capability=False``: any peer the channel's trust policy admitted)."""

    grant: Grant
    handler: Any
    capability: bool = True

    @classmethod
    def make(cls, pattern: str, action: str, handler: Any, *, capability: bool = True
             ) -> Route:
        """Check the declaration as a grant is checked."""
        if type(capability) is not bool:
            raise InvalidArgument("capability is True or False")
        return cls(Grant(pattern, {action}), handler, capability)


@dataclass(frozen=True, slots=True)
class Call:
    """A request that passed every check: the handler to run and what it gets."""

    id: int
    request: Request
    body: bytes = field(repr=False)
    links: tuple[Link, ...] = field(repr=False)
    handler: Any = None


#: A ``revoked`` callback, as :func:`verify_chain` takes it (judged there: a link passes
#: only on exactly False; an exception is translated there).
Revoked: TypeAlias = Callable[[bytes], Any]
#: The check of one frame (:meth:`Requests.receiving`): it yields the ids of the links whose
#: revocation it must know and is sent the ``revoked`` callback that answers for them
#: (the store's own method, or the answers fetched for those ids); it returns what the
#: frame comes to.
Checking: TypeAlias = Generator[tuple[bytes, ...], Revoked, "Call | Refused | int | None"]


def settle(flow: Checking, revoked: Revoked) -> Call | Refused | int | None:
    """Drive one frame's check (:meth:`Requests.receiving`) to its end with ``revoked``
    answering every question, for a caller that asks its store in place (the conformance
    driver, the vectors, a memory store); the agent drives it itself, asking a store that
    does I/O from a worker thread."""
    try:
        next(flow)
        while True:
            flow.send(revoked)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class Requests:
    """The serving side's state for one channel: the chains its peer presented, the
    requests in flight, and the checks of spec 15.4 for each frame.

    ``peer`` is the channel's authenticated peer; ``anchors`` the roots a chain must start
    at; ``routes`` the handlers, first match wins. Every link of a chain is looked up in
    the revocation store at every use: the check asks its caller for a ``revoked``
    callback for the chain's links (:data:`Checking`), so the store's I/O happens where
    the caller chooses. The channel's binding is this object itself: a reference means
    nothing on another channel, whose state is another object.
    """

    def __init__(self, peer: PeerKey, anchors: Mapping[Any, str], routes: tuple[Route, ...],
                 *, max_payload: int, max_in_flight: int = MAX_IN_FLIGHT,
                 max_chains: int = MAX_CHAINS, clock: Callable[[], float] = time.time
                 ) -> None:
        self._peer = peer
        self._anchors = dict(anchors)
        self._routes = routes
        self._limit = max_payload
        self._body = body_limit(max_payload)
        self._max_in_flight = max_in_flight
        self._max_chains = max_chains
        self._clock = clock
        # ref -> the chain's bytes and its links' ids, or the error its PRESENT met (told
        # at each use).
        self._chains: dict[int, tuple[bytes, tuple[bytes, ...]] | AgentAuthError] = {}
        self.in_flight: set[int] = set()

    def receiving(self, data: bytes) -> Checking:
        """Take one frame from the peer (a :data:`Checking` to drive). It returns the
        :class:`Call` to run, a :class:`Refused` request (an ERROR frame to send), the id
        of a request the peer cancelled (an int), or None (a chain was presented). A frame
        that breaks the framing raises its typed error, which ends the channel."""
        frame = decode_frame(data, self._limit)  # 1. the frame
        if frame.kind == PRESENT:
            yield from self._present(frame)
            return None
        if frame.kind == CANCEL:
            return frame.id if frame.id in self.in_flight else None
        if frame.kind != REQUEST:
            raise ProtocolViolation("a serving side receives no RESPONSE or ERROR",
                                    code="out_of_order")
        # 2. The id: not in flight already (then, in _check, room for one more).
        if frame.id in self.in_flight:
            raise ProtocolViolation(f"request {frame.id} is already in flight",
                                    code="out_of_order")
        try:
            call = yield from self._check(frame)
        except AgentAuthError as exc:
            return Refused(frame.id, exc, encode_error(frame.id, exc))
        self.in_flight.add(frame.id)
        return call

    def _present(self, frame: Frame) -> Generator[tuple[bytes, ...], Revoked, None]:
        if frame.ref in self._chains:
            raise ProtocolViolation(f"chain reference {frame.ref} is taken",
                                    code="out_of_order")
        if len(self._chains) >= self._max_chains:
            raise RequestError(f"a channel presents at most {self._max_chains} chains",
                               code="over_limit")
        try:  # Verified now, whole, to the holder; kept only as bytes, checked at each use.
            try:
                ids = tuple(link.id for link in decode_chain(frame.chain))
            except AgentAuthError:
                ids = ()  # nothing to look up: verify_chain refuses it as it reads it
            revoked = yield ids
            verify_chain(frame.chain, self._anchors, now=int(moment(self._clock())),
                         revoked=revoked, holder=self._peer)
        except StoreError:  # not the chain's fault: every use verifies it again anyway
            self._chains[frame.ref] = (frame.chain, ids)
        except AgentAuthError as exc:
            self._chains[frame.ref] = exc
        else:
            self._chains[frame.ref] = (frame.chain, ids)

    def _check(self, frame: Frame) -> Generator[tuple[bytes, ...], Revoked, Call]:
        # 2. (continued) Room for one more request in flight.
        if len(self.in_flight) >= self._max_in_flight:
            raise RequestError(f"a channel has at most {self._max_in_flight} requests in "
                               f"flight", code="over_limit")
        # 3. The request's form.
        if len(frame.body) > self._body:
            raise DecodeError(f"a body of {len(frame.body)} bytes is over {self._body}",
                              code="oversize")
        try:
            request = Request(frame.resource, frame.action, frame.args or {})
        except InvalidArgument as exc:
            raise DecodeError(f"bad request: {exc.message}", code="malformed") from None
        # 4. The chain it names: presented on this channel, and verified again now (time,
        # revocation, holder) for this request. (Before the handlers: a peer without a
        # capability for a resource learns nothing of what this agent serves there.)
        if frame.ref == 0:
            route = self._route(request)
            if route is not None and not route.capability:  # declared open to the trusted
                return Call(frame.id, request, frame.body, (), route.handler)
            raise CapabilityDenied("the request carries no capability", code="not_authorized",
                                   refusal=Refusal("no_chain"))
        presented = self._chains.get(frame.ref)
        if presented is None:
            raise RequestError(f"no chain {frame.ref} was presented on this channel",
                               code="unknown_chain")
        if isinstance(presented, AgentAuthError):
            raise presented
        chain, ids = presented
        revoked = yield ids
        links = verify_chain(chain, self._anchors, now=int(moment(self._clock())),
                             revoked=revoked, holder=self._peer, request=request)
        # 5. A handler declared for the resource and action.
        route = self._route(request)
        if route is None:
            raise RequestError(f"no handler serves {request.action!r} on "
                               f"{request.resource!r}", code="no_handler")
        return Call(frame.id, request, frame.body, links, route.handler)

    def _route(self, request: Request) -> Route | None:
        return next((r for r in self._routes if r.grant.allows(request)), None)

    def done(self, request_id: int) -> None:
        """The request's answer was sent (or it was cancelled): its id may be used again."""
        self.in_flight.discard(request_id)


@dataclass(frozen=True, slots=True)
class Refused:
    """A request refused before its handler ran: send :attr:`frame`."""

    id: int
    error: AgentAuthError
    frame: bytes

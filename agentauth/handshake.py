"""The mutual-authentication handshake, as sans-I/O state machines.

Three messages over the Noise ``NN`` pattern plus one token-less message (the SIGMA-I
construction; ``spec/protocol.md`` section 4 is normative and its step numbers appear
below)::

    HS1  initiator -> responder   e, payload1 = {versions offered}           (clear)
    HS2  responder -> initiator   e, ee, ENC(sig_R || body2)                 body2: version,
                                                                             identity, time, ext
    HS3  initiator -> responder   ENC(sig_I || body3)                        body3: identity,
                                                                             time, ext

The engines never touch a socket, a clock or a random source of their own: ``clock`` and
``random`` are injected, so the vectors in ``spec/vectors/`` reproduce exact bytes.
Failures are sticky: once a step has raised (a remote error, a bad clock reading, or an
exception from the trust callable), the engine is ``FAILED``, its keys are gone and every
later call raises the same code again. The one exception is a late message after ``DONE``:
it raises ``out_of_order`` and the finished handshake stands.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, Final

from . import audit, crypto, wire
from .alert import alert_for, is_alert, read_alert
from .errors import (
    AgentAuthError,
    AuthenticationError,
    DecodeError,
    HandshakeTimeout,
    InvalidArgument,
    InvalidState,
    PeerRefused,
    ProtocolViolation,
    RemoteError,
)
from .identity import Identity, PeerKey, parse_agent_id, peer_key
from .noise import SymmetricState
from .session import DEFAULT_MAX_MESSAGE, Session
from .session import OVERHEAD as SESSION_OVERHEAD
from .verdict import ask, is_seconds, moment

__all__ = [
    "INITIATOR_CONTEXT",
    "MAX_HANDSHAKE_MESSAGE",
    "PROLOGUE",
    "RESPONDER_CONTEXT",
    "SUPPORTED_VERSIONS",
    "TRANSITIONS",
    "HandshakePolicy",
    "HandshakeResult",
    "HandshakeState",
    "Initiator",
    "Responder",
    "Role",
    "accept_any_peer",
]

PROLOGUE: Final = b"agentauth handshake"
SUPPORTED_VERSIONS: Final = (1,)
MAX_HANDSHAKE_MESSAGE: Final = 65535
RESPONDER_CONTEXT: Final = b"agentauth v1 handshake responder signature\x00"
INITIATOR_CONTEXT: Final = b"agentauth v1 handshake initiator signature\x00"

MAX_VERSIONS = 8
MAX_EXTENSIONS = 16
MAX_TIMESTAMP = 2**63 - 1
_EXTENSION_NAME = re.compile(r"[a-z][a-z0-9._-]{0,31}")
_SIG = crypto.SIGNATURE_LEN
_TAG = crypto.AEAD_TAG_LEN
_DH = crypto.DH_LEN
_NO_EXTENSIONS: Mapping[str, bytes] = MappingProxyType({})

# Every transcript starts as InitializeSymmetric(protocol name) then MixHash(prologue).
_INITIAL = SymmetricState()
_INITIAL.mix_hash(PROLOGUE)
# Engines that are done or failed erase their transcript and hold this instead.
_SPENT = SymmetricState()
_SPENT.erase()


class Role(Enum):
    """Which side of the handshake an engine plays."""

    INITIATOR = "initiator"
    RESPONDER = "responder"

    __hash__ = object.__hash__  # members are singletons; the transition table hashes them


class HandshakeState(Enum):
    """Where an engine is. ``DONE`` and ``FAILED`` are final."""

    START = "start"  # initiator: nothing sent yet
    AWAIT_HS1 = "await_hs1"  # responder: waiting for the initiator's first message
    AWAIT_HS2 = "await_hs2"  # initiator: HS1 sent
    AWAIT_HS3 = "await_hs3"  # responder: HS2 sent
    DONE = "done"
    FAILED = "failed"

    __hash__ = object.__hash__


_I, _R = Role.INITIATOR, Role.RESPONDER
_S = HandshakeState

#: The states in which a failure sends the peer an alert (spec 4.14).
_ALERTING: Final = frozenset({_S.AWAIT_HS1, _S.AWAIT_HS2, _S.AWAIT_HS3})

#: The one transition table: (role, state, input) -> (step method, next state).
#: An input with no row is refused: a message is ``out_of_order`` (the peer's fault),
#: ``start`` is ``invalid_state`` (the caller's).
TRANSITIONS: Final[Mapping[tuple[Role, HandshakeState, str], tuple[str, HandshakeState]]] = {
    (_I, _S.START, "start"): ("_write_hs1", _S.AWAIT_HS2),
    (_I, _S.AWAIT_HS2, "message"): ("_read_hs2", _S.DONE),
    (_R, _S.AWAIT_HS1, "message"): ("_read_hs1", _S.AWAIT_HS3),
    (_R, _S.AWAIT_HS3, "message"): ("_read_hs3", _S.DONE),
}


def accept_any_peer(peer: PeerKey) -> bool:
    """A trust policy that accepts every peer that proves its key. Use it deliberately."""
    return True


@dataclass(frozen=True, slots=True)
class HandshakePolicy:
    """What a side accepts; one policy object serves many handshakes.

    ``trust`` is either a callable that takes the authenticated peer's :class:`PeerKey`
    and returns whether to accept it, or a collection of accepted agent ids (parsed, and
    so checked, when the policy is made). There is no default: pass
    :func:`accept_any_peer` to accept every authenticated peer.

    ``credentials``, if given, is called after ``trust`` accepted the peer, with the peer
    and the extensions it sent; it returns True to admit it, or raises a typed error (a
    capability chain that does not verify, say). This is how a peer is admitted by what it
    holds rather than by who it is (``agentauth.capability.admission``).
    """

    trust: Callable[[PeerKey], bool] | Iterable[str]
    max_skew: float = 120.0
    timeout: float = 30.0
    versions: tuple[int, ...] = SUPPORTED_VERSIONS
    max_message: int = DEFAULT_MAX_MESSAGE
    credentials: Callable[[PeerKey, Mapping[str, bytes]], bool] | None = None
    _allowed: frozenset[bytes] | None = field(default=None, init=False, repr=False,
                                              compare=False)
    _offer: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not callable(self.trust):
            if (isinstance(self.trust, str | bytes | Mapping)
                    or not isinstance(self.trust, Iterable)):
                raise InvalidArgument("trust must be a callable or a collection of agent ids")
            ids = frozenset(self.trust)
            object.__setattr__(self, "trust", ids)
            object.__setattr__(self, "_allowed", frozenset(parse_agent_id(i) for i in ids))
        if not (is_seconds(self.max_skew) and is_seconds(self.timeout, positive=True)):
            raise InvalidArgument("max_skew and timeout are finite numbers of seconds, "
                                  "max_skew >= 0 and timeout > 0")
        if type(self.max_message) is not int or self.max_message < SESSION_OVERHEAD:
            raise InvalidArgument(f"max_message must be an integer of at least "
                                  f"{SESSION_OVERHEAD}")
        versions = self.versions
        if (type(versions) is not tuple or not versions
                or any(type(v) is not int for v in versions)
                or list(versions) != sorted(set(versions))
                or not set(versions) <= set(SUPPORTED_VERSIONS)):
            raise InvalidArgument(f"versions must be a tuple of increasing integers among "
                                  f"{SUPPORTED_VERSIONS}")
        if self.credentials is not None and not callable(self.credentials):
            raise InvalidArgument("credentials must be a callable or None")
        # HS1's payload for this policy's offer, encoded once.
        object.__setattr__(self, "_offer", wire.encode_map(list(versions)))

    def admits(self, peer: PeerKey, extensions: Mapping[str, bytes]) -> bool:
        """Whether the credentials check (if any) admits ``peer`` with ``extensions``.

        The check's answer is judged by :func:`agentauth.verdict.verdict` (spec 7.1):
        exactly ``True`` admits, ``False`` refuses, anything else raises
        ``invalid_argument``; an ``AgentAuthError`` it raises comes through as it is.
        """
        if self.credentials is None:
            return True
        return ask("credentials callback", True, self.credentials, peer, extensions)

    def trusts(self, peer: PeerKey) -> bool:
        """Whether the trust policy accepts ``peer``.

        A trust callable must return exactly ``True`` or ``False`` (spec 7.1): anything
        else (a coroutine from an ``async def``, None, a truthy object) raises
        ``invalid_argument`` rather than being read as a verdict, and so does any
        exception it raises that is not an ``AgentAuthError``.
        """
        if self._allowed is not None:
            return peer.public_bytes in self._allowed
        assert callable(self.trust)
        return ask("trust callback", True, self.trust, peer)


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What a completed handshake established. ``session`` carries the keys."""

    peer: PeerKey
    version: int
    channel_binding: bytes = field(repr=False)
    peer_extensions: Mapping[str, bytes] = field(repr=False)
    session: Session = field(repr=False)

    @property
    def peer_id(self) -> str:
        """The peer's ``did:key`` agent id."""
        return self.peer.agent_id


def _check_extensions(ext: Any, *, ours: bool) -> Mapping[str, bytes]:
    """Validate an extension map (names sorted, values bytes); local or from the wire."""
    if type(ext) is dict and not ext:
        return _NO_EXTENSIONS
    err: type[AgentAuthError] = InvalidArgument if ours else DecodeError
    if not isinstance(ext, Mapping) or len(ext) > MAX_EXTENSIONS:
        raise err(f"extensions must be a map of at most {MAX_EXTENSIONS} entries",
                  code="invalid_argument" if ours else "malformed")
    for name, value in ext.items():
        if (type(name) is not str or type(value) is not bytes
                or not _EXTENSION_NAME.fullmatch(name)):
            raise err("extension names are [a-z][a-z0-9._-]{0,31} and values are bytes",
                      code="invalid_argument" if ours else "malformed")
    if not ours and list(ext) != sorted(ext):
        raise DecodeError("extension names are not sorted", code="non_canonical")
    return MappingProxyType(dict(sorted(ext.items())))


def _check_identity_and_time(identity: Any, timestamp: Any, what: str) -> None:
    if type(identity) is not bytes or len(identity) != 32:
        raise DecodeError(f"{what} identity is not 32 bytes", code="malformed")
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise DecodeError(f"{what} timestamp is not an unsigned 63-bit integer",
                          code="malformed")


class _Engine(crypto.KeyHolder):
    """Shared machinery of both roles: the transition table, stickiness, checks."""

    role: Role
    __slots__ = (
        "_alert",
        "_clock",
        "_e_public",
        "_e_secret",
        "_error",
        "_expect",
        "_extensions",
        "_identity",
        "_lock",
        "_ordered",
        "_peer_seen",
        "_policy",
        "_random",
        "_started",
        "_symmetric",
        "result",
        "state",
    )

    def __init__(
        self,
        identity: Identity,
        policy: HandshakePolicy,
        *,
        expect: str | PeerKey | None = None,
        extensions: Mapping[str, bytes] | None = None,
        ordered: bool = True,
        clock: Callable[[], float] = time.time,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not isinstance(identity, Identity) or not isinstance(policy, HandshakePolicy):
            raise InvalidArgument("identity must be an Identity and policy a HandshakePolicy")
        if expect is not None:
            expect = peer_key(expect)
        if not callable(clock) or not callable(random) or type(ordered) is not bool:
            raise InvalidArgument("clock and random must be callables and ordered a bool")
        self._identity = identity
        self._policy = policy
        self._expect: PeerKey | None = expect
        self._extensions = _check_extensions(extensions or {}, ours=True)
        if self._extensions:  # our largest message (HS2, widest version and time) must fit
            widest = wire.encode_map(0xFFFF, bytes(32), MAX_TIMESTAMP, dict(self._extensions))
            if _DH + _TAG + _SIG + len(widest) > MAX_HANDSHAKE_MESSAGE:
                raise InvalidArgument(f"extensions make a handshake message longer than "
                                      f"{MAX_HANDSHAKE_MESSAGE} bytes")
        self._ordered = ordered
        self._clock = clock
        self._random = random
        self._lock = threading.Lock()
        self._symmetric = _INITIAL.copy()
        self._e_secret = b""
        self._e_public = b""
        self._started: float | None = None
        self._error: AgentAuthError | None = None
        self._alert: bytes | None = None
        #: Set once the handshake is complete.
        self.result: HandshakeResult | None = None
        self.state: HandshakeState = _S.START if self.role is _I else _S.AWAIT_HS1
        self._track()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(state={self.state.value}, identity={self._identity!r})"

    def transcript_hash_for_vectors(self) -> bytes:
        """The running handshake hash ``h`` (section 4.2), for publishing test vectors only:
        the vectors record it after HS1 and HS2 so that another implementation can find
        the first step where its transcript differs."""
        return self._symmetric.h

    def _after_fork(self) -> None:
        # Two processes finishing one handshake would hold one session's keys.
        if self.state is not _S.DONE and self.state is not _S.FAILED:
            self._fail(InvalidState("this handshake belongs to the process that forked"))

    # ------------------------------------------------------------ public calls

    def receive_message(self, message: bytes) -> bytes | None:
        """Process one handshake message from the peer; return the reply to send, if any."""
        if type(message) is not bytes:
            raise InvalidArgument("handshake messages are bytes")
        return self._step("message", message)

    def check_timeout(self) -> None:
        """Raise (and fail) ``handshake_timeout`` if the handshake has run out of time."""
        self._enter()
        try:
            if self.state in (_S.DONE, _S.FAILED) or self._started is None:
                self._raise_if_failed()
                return
            try:
                self._check_time(self._read_clock())
            except BaseException as exc:
                self._fail(exc, alert=True)
                raise
        finally:
            self._lock.release()

    def abort(self, error: RemoteError) -> None:
        """Fail the handshake with ``error``, found by the I/O layer rather than by a step:
        the owner's deadline over the whole handshake passed (``handshake_timeout``, spec
        5.10), or the transport delivered something no step can read (a frame over the
        limit, an item that is not bytes). The engine fails as a step would, with the
        alert that calls for (:attr:`alert`, spec 4.14). Does nothing once the engine is
        done or failed, or while another call is in progress."""
        if not isinstance(error, RemoteError):
            raise InvalidArgument("abort takes the remote error that ends the handshake")
        if not self._lock.acquire(False):
            return
        try:
            if self.state is not _S.DONE and self.state is not _S.FAILED:
                # A responder whose deadline passed before HS1 heard from no peer.
                silent = self.state is _S.AWAIT_HS1 and isinstance(error, HandshakeTimeout)
                self._fail(error, alert=not silent)
        finally:
            self._lock.release()

    @property
    def alert(self) -> bytes | None:
        """The alert to send the peer now that the handshake has failed (spec 4.14), or
        None: not failed, failed before the peer was heard from, failed on an alert-sized
        message (an alert is never answered), or failed with a code no alert carries."""
        return self._alert

    # ------------------------------------------------------------ machinery

    def _enter(self) -> None:
        # Calls on one engine never overlap: one that would (from another thread, or from
        # the trust callback) is refused and changes nothing.
        if not self._lock.acquire(False):  # (positional: measurably cheaper)
            raise InvalidState("another call on this engine is in progress")

    def _step(self, event: str, message: bytes | None) -> bytes | None:
        self._enter()
        try:
            self._raise_if_failed()
            row = TRANSITIONS.get((self.role, self.state, event))
            if row is None:
                if event == "start":
                    raise InvalidState(f"{self.role.value} cannot start in state "
                                       f"{self.state.value}")
                exc: RemoteError = ProtocolViolation(
                    f"{self.role.value} in state {self.state.value} expects no message",
                    code="out_of_order")
                if self.state is not _S.DONE:  # a late duplicate cannot undo a finished one
                    self._fail(exc)
                raise exc
            method, next_state = row
            try:
                if message is not None:
                    if len(message) > MAX_HANDSHAKE_MESSAGE:
                        raise DecodeError(f"handshake message is {len(message)} bytes, "
                                          f"over {MAX_HANDSHAKE_MESSAGE}", code="oversize")
                    if is_alert(message) and self.state is not _S.AWAIT_HS1:
                        raise read_alert(message)  # spec 4.14: in place of HS2 or HS3
                reply: bytes | None = getattr(self, method)(message)
            except BaseException as exc:
                # Whatever the cause (the peer, the clock, a callback), the transcript may
                # be half-updated: fail for good. The peer hears why, unless what failed
                # the step could be an alert (never answered).
                self._fail(exc, alert=message is not None and not is_alert(message))
                raise
            if self._error is not None:  # failed while the step ran (a fork in a callback)
                self.result = None
                self._raise_if_failed()
            self.state = next_state
            return reply
        finally:
            self._lock.release()

    def _fail(self, exc: BaseException, *, alert: bool = False) -> None:
        # Keep a fresh copy of the error (its class, code, text and a peer's claim): the
        # exception itself, through its traceback, would keep the failed step's frames
        # (and the transcript they reference) alive.
        if isinstance(exc, AgentAuthError):
            self._error = exc.again()
            claimed = exc.claimed if isinstance(exc, PeerRefused) else None
            if audit.enabled("handshake_refused"):
                seen: PeerKey | None = getattr(self, "_peer_seen", None)
                audit.emit("handshake_refused", role=self.role.value, code=exc.code,
                           peer=None if seen is None else seen.agent_id, claimed=claimed)
        else:
            self._error = InvalidState(f"the step was interrupted by {type(exc).__name__}")
        if alert and self.state in _ALERTING:  # spec 4.14, Sending
            self._alert = alert_for(self._error.code)
        self.state = _S.FAILED
        self._e_secret = b""
        self._symmetric.erase()  # in place: a traceback's frames may still hold it
        self._symmetric = _SPENT

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error.again(f"handshake already failed: {self._error.message}")

    def _read_clock(self) -> float:
        return moment(self._clock())

    def _now(self) -> float:
        now = self._read_clock()
        if self._started is None:
            self._started = now
        else:
            self._check_time(now)
        return now

    def _check_time(self, now: float) -> None:
        assert self._started is not None
        if now - self._started > self._policy.timeout:
            raise HandshakeTimeout(f"handshake took longer than {self._policy.timeout} s")

    def _new_ephemeral(self) -> None:
        secret = self._random(32)
        if type(secret) is not bytes or len(secret) != 32:
            raise InvalidArgument("random(32) must return 32 bytes")
        self._e_secret = secret
        self._e_public = crypto.x25519_public(secret)

    def _read_signed(self, plaintext: bytes, fields: int, what: str) -> tuple[bytes, bytes,
                                                                               list[Any]]:
        if len(plaintext) <= _SIG:
            raise DecodeError(f"{what} payload is too short", code="malformed")
        signature, body = plaintext[:_SIG], plaintext[_SIG:]
        return signature, body, wire.decode_map(body, fields, MAX_HANDSHAKE_MESSAGE, what)

    def _authenticate(self, identity: bytes, context: bytes, transcript: bytes,
                      body: bytes, signature: bytes, timestamp: int, now: float,
                      extensions: Mapping[str, bytes]) -> PeerKey:
        """Steps common to HS2 and HS3 after decoding: reflection, signature, policy, time
        (spec 4.5 steps 10-13, 4.7 steps 6-9)."""
        if crypto.equal(identity, self._identity.public_bytes):
            raise AuthenticationError("peer presented our own identity", code="reflection")
        peer = PeerKey(identity)
        peer.verify(context + transcript + body, signature)
        self._peer_seen = peer  # authenticated: an audit event may name it if refused
        if self._expect is not None and peer != self._expect:
            raise AuthenticationError(
                f"peer is {peer.agent_id}, expected {self._expect.agent_id}",
                code="unexpected_peer")
        policy = self._policy
        if not policy.trusts(peer) or (policy.credentials is not None
                                       and not policy.admits(peer, extensions)):
            raise AuthenticationError(f"peer {peer.agent_id} is not trusted",
                                      code="untrusted_peer")
        if abs(timestamp - int(now)) > self._policy.max_skew:  # both sides count whole seconds
            raise AuthenticationError(
                f"peer clock differs from ours by {timestamp - int(now)} s, more than "
                f"{self._policy.max_skew} s", code="clock_skew")
        return peer

    def _signed_payload(self, context: bytes, body: bytes) -> bytes:
        return self._identity.sign(context + self._symmetric.h + body) + body

    def _finish(self, ss: SymmetricState, peer: PeerKey, version: int,
                extensions: Mapping[str, bytes]) -> None:
        k1, k2, exporter = ss.split()
        send, recv = (k1, k2) if self.role is _I else (k2, k1)
        binding = ss.h
        session = Session(send, recv, exporter, binding, ordered=self._ordered,
                          max_message=self._policy.max_message)
        self.result = HandshakeResult(peer, version, binding, extensions, session)
        if audit.enabled("handshake_accepted"):
            audit.emit("handshake_accepted", role=self.role.value, peer=peer.agent_id,
                       version=version)
        self._e_secret = b""
        ss.erase()
        self._symmetric = _SPENT


class Initiator(_Engine):
    """The side that speaks first and reveals its identity last."""

    role = Role.INITIATOR
    __slots__ = ()

    def start(self) -> bytes:
        """Begin the handshake; return HS1."""
        reply = self._step("start", None)
        assert reply is not None
        return reply

    def _write_hs1(self, _: None) -> bytes:
        # spec 4.2: e, then the offer in clear (MixHash of the payload).
        self._now()
        self._new_ephemeral()
        ss = self._symmetric
        ss.mix_hash(self._e_public)
        payload = self._policy._offer
        ss.mix_hash(payload)
        return self._e_public + payload

    def _read_hs2(self, message: bytes) -> bytes:
        # spec 4.5 steps 1-13.
        now = self._now()  # 1
        if len(message) < _DH + _TAG + _SIG + 1:  # 2
            raise DecodeError("HS2 is too short", code="malformed")
        re_public = message[:_DH]
        if crypto.equal(re_public, self._e_public):  # 3
            raise AuthenticationError("HS2 echoes our ephemeral key", code="reflection")
        ss = self._symmetric
        ss.mix_hash(re_public)  # 4
        ss.mix_key(crypto.x25519(self._e_secret, re_public))  # 5
        transcript = ss.h
        plaintext = ss.decrypt_and_hash(message[_DH:])  # 6
        signature, body, (version, identity, timestamp, ext) = self._read_signed(
            plaintext, 4, "HS2 body")  # 7
        if type(version) is not int:  # 8
            raise DecodeError("HS2 version is not an integer", code="malformed")
        _check_identity_and_time(identity, timestamp, "HS2")
        extensions = _check_extensions(ext, ours=False)
        if version not in self._policy.versions:  # 9
            raise AuthenticationError(f"responder selected version {version}, not offered",
                                      code="downgrade")
        peer = self._authenticate(identity, RESPONDER_CONTEXT, transcript, body, signature,
                                  timestamp, now, extensions)  # 10-13
        # spec 4.6: reveal ourselves only now that the responder is accepted.
        body3 = wire.encode_map(self._identity.public_bytes, int(now), dict(self._extensions))
        hs3 = ss.encrypt_and_hash(self._signed_payload(INITIATOR_CONTEXT, body3))
        self._finish(ss, peer, version, extensions)
        return hs3


class Responder(_Engine):
    """The side that answers; it learns the initiator's identity from HS3."""

    role = Role.RESPONDER
    __slots__ = ("_version",)

    def _read_hs1(self, message: bytes) -> bytes:
        # spec 4.3 steps 1-6, then 4.4 (writing HS2).
        now = self._now()  # 1
        if len(message) < _DH + 1:  # 2
            raise DecodeError("HS1 is too short", code="malformed")
        ie_public, payload = message[:_DH], message[_DH:]
        if payload == self._policy._offer:  # the common case: the peer offers what we do
            version = self._policy.versions[-1]  # (3 and 4 skipped, as 4.3 allows)
        else:
            version = self._select_version(payload)  # 3, 4
        self._version = version
        ss = self._symmetric
        ss.mix_hash(ie_public)  # 5
        ss.mix_hash(payload)
        self._new_ephemeral()
        if crypto.equal(ie_public, self._e_public):
            raise AuthenticationError("HS1 carries our own ephemeral key", code="reflection")
        ss.mix_hash(self._e_public)  # 6
        ss.mix_key(crypto.x25519(self._e_secret, ie_public))
        body2 = wire.encode_map(version, self._identity.public_bytes, int(now),
                                dict(self._extensions))
        return self._e_public + ss.encrypt_and_hash(
            self._signed_payload(RESPONDER_CONTEXT, body2))

    def _select_version(self, payload: bytes) -> int:
        (offer,) = wire.decode_map(payload, 1, MAX_HANDSHAKE_MESSAGE, "HS1 payload")
        if (type(offer) is not list or not 1 <= len(offer) <= MAX_VERSIONS
                or any(type(v) is not int or not 1 <= v <= 0xFFFF for v in offer)):
            raise DecodeError("HS1 offer is not 1 to 8 versions in 1..65535", code="malformed")
        if offer != sorted(set(offer)):
            raise DecodeError("HS1 offer is not strictly increasing", code="non_canonical")
        common = set(offer) & set(self._policy.versions)
        if not common:
            raise ProtocolViolation(f"no common version in offer {offer}",
                                    code="no_common_version")
        best: int = max(common)
        return best

    def _read_hs3(self, message: bytes) -> None:
        # spec 4.7 steps 1-9.
        now = self._now()  # 1
        if len(message) < _TAG + _SIG + 1:  # 2
            raise DecodeError("HS3 is too short", code="malformed")
        ss = self._symmetric
        transcript = ss.h
        plaintext = ss.decrypt_and_hash(message)  # 3
        signature, body, (identity, timestamp, ext) = self._read_signed(
            plaintext, 3, "HS3 body")  # 4
        _check_identity_and_time(identity, timestamp, "HS3")  # 5
        extensions = _check_extensions(ext, ours=False)
        peer = self._authenticate(identity, INITIATOR_CONTEXT, transcript, body, signature,
                                  timestamp, now, extensions)  # 6-9
        self._finish(ss, peer, self._version, extensions)

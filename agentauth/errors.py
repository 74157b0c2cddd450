"""The agentauth exception tree and its registry of stable error codes.

Every error raised by agentauth derives from :class:`AgentAuthError` and carries a
``code``: a short, stable, lower-case string that the specification, the test
vectors and the conformance suite share. Applications branch on ``code`` (or on the
class), never on the message text.

::

    AgentAuthError
    ├── LocalError                  you called the library wrongly
    │   ├── InvalidArgument         invalid_argument
    │   ├── InvalidKey              invalid_key
    │   ├── InvalidAgentId          agent_id_prefix, agent_id_encoding,
    │   │                           agent_id_multicodec, agent_id_length
    │   ├── InvalidState            invalid_state
    │   ├── CounterExhausted        counter_exhausted
    │   ├── KeyFileError            key_file_permissions, key_file_version,
    │   │                           key_file_corrupt, wrong_passphrase,
    │   │                           key_file_unencrypted
    │   ├── TrustStoreError         trust_store_invalid, trust_store_permissions
    │   ├── AuditLogError           audit_log_broken
    │   └── FileError               file_not_found, file_not_regular, file_too_large,
    │                               file_exists, file_permission, file_io
    ├── RemoteError                 the peer (or the network) misbehaved
    │   ├── DecodeError             oversize, malformed, non_canonical,
    │   │                           unknown_field
    │   ├── ProtocolViolation       out_of_order, no_common_version, session_closed
    │   ├── HandshakeTimeout        handshake_timeout
    │   ├── PeerRefused             peer_refused; its ``claimed`` is the code the
    │   │                           peer says it refused with (spec 4.14, 13.9),
    │   │                           unauthenticated
    │   ├── ReplayDetected          replayed, stale
    │   ├── TransportError          unexpected_eof, connection_lost
    │   ├── RequestError            no_handler, handler_failed, over_limit,
    │   │                           unknown_chain, request_timeout, shutting_down
    │   ├── CapabilityDenied        chain_too_long, root_invalid, untrusted_root,
    │   │                           root_scope, depth_exceeded, revoked,
    │   │                           widened_resource, widened_action,
    │   │                           widened_constraint, widened_time, not_yet_valid,
    │   │                           expired, holder_mismatch, not_authorized,
    │   │                           wrong_session, stale_invocation,
    │   │                           unauthorized_revoker, wrong_verifier,
    │   │                           wrong_request; its ``refusal`` (a Refusal of
    │   │                           one of REFUSAL_KINDS) names the rule broken
    │   └── AuthenticationError     decrypt_failed, bad_signature, low_order_point,
    │                               reflection, downgrade, unexpected_peer,
    │                               untrusted_peer, clock_skew, wrong_recipient,
    │                               unexpected_reply, key_rotated, rotation_mismatch
    ├── SessionExpired              idle_timeout, lifetime_exceeded
    │                               a limit the session's owner set was reached
    └── StoreError                  store_full, store_unavailable
                                    a replay store cannot answer: the check fails closed

Messages never contain secret material: at most lengths, states, codes and public
identifiers. A :class:`CapabilityDenied` may also carry a :class:`Refusal`: which link,
which grant and which of its rules a chain or a request broke (spec 10.6); only its
:meth:`Refusal.for_peer` part is meant for the peer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Self, cast

__all__ = [
    "ERROR_CODES",
    "REFUSAL_KINDS",
    "AgentAuthError",
    "AuditLogError",
    "AuthenticationError",
    "CapabilityDenied",
    "CounterExhausted",
    "DecodeError",
    "FileError",
    "HandshakeTimeout",
    "InvalidAgentId",
    "InvalidArgument",
    "InvalidKey",
    "InvalidState",
    "KeyFileError",
    "LocalError",
    "PeerRefused",
    "ProtocolViolation",
    "Refusal",
    "RemoteError",
    "ReplayDetected",
    "RequestError",
    "SessionExpired",
    "StoreError",
    "TransportError",
    "TrustStoreError",
]


class AgentAuthError(Exception):
    """Root of every error agentauth raises.

    ``code`` is one of the keys of :data:`ERROR_CODES`; it is stable across releases.
    """

    codes: ClassVar[frozenset[str]] = frozenset()
    default_code: ClassVar[str] = ""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        code = code or self.default_code
        if code not in self.codes:
            raise ValueError(f"{type(self).__name__} cannot carry error code {code!r}")
        super().__init__(message)
        self.code: str = code
        self.message: str = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __reduce__(self) -> tuple[Callable[..., AgentAuthError], tuple[object, ...]]:
        # Pickle as (class, message, code): errors cross process boundaries intact.
        return _rebuild, (type(self), self.message, self.code)

    def again(self, message: str | None = None) -> Self:
        """A fresh copy of this error, with ``message`` in place of its own if given: the
        same class, code and details (a refusal, an audit record, a claim), and no
        traceback. How a failure that was kept is raised again, built as pickling builds
        it (:meth:`__reduce__`), so no subclass's details are lost."""
        rebuild, args = self.__reduce__()
        made = rebuild(args[0], self.message if message is None else message, *args[2:])
        return cast(Self, made)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class LocalError(AgentAuthError):
    """The caller used the library wrongly: nothing the peer sent caused this."""


class InvalidArgument(LocalError, ValueError):
    """An argument is outside what the function accepts."""

    codes = frozenset({"invalid_argument"})
    default_code = "invalid_argument"


class InvalidKey(LocalError, ValueError):
    """Key material of the wrong length or form."""

    codes = frozenset({"invalid_key"})
    default_code = "invalid_key"


class InvalidAgentId(LocalError, ValueError):
    """A string that is not a well-formed ``did:key`` Ed25519 agent id."""

    codes = frozenset(
        {"agent_id_prefix", "agent_id_encoding", "agent_id_multicodec", "agent_id_length"}
    )


class InvalidState(LocalError):
    """An operation that the object's current state does not allow (or an engine that failed)."""

    codes = frozenset({"invalid_state"})
    default_code = "invalid_state"


class CounterExhausted(LocalError):
    """The sending counter of a session is used up: open a new session."""

    codes = frozenset({"counter_exhausted"})
    default_code = "counter_exhausted"


class KeyFileError(LocalError):
    """A key file that cannot be unlocked: readable by others, of an unknown version,
    damaged, under another passphrase, or unencrypted where that was not asked for.
    A failed load never changes the file."""

    codes = frozenset({"key_file_permissions", "key_file_version", "key_file_corrupt",
                       "wrong_passphrase", "key_file_unencrypted"})


class TrustStoreError(LocalError):
    """A trust store file that is not valid TOML, breaks its schema (the message names the
    line or field), or can be written by others."""

    codes = frozenset({"trust_store_invalid", "trust_store_permissions"})


class AuditLogError(LocalError):
    """A tamper-evident audit log whose chain of hashes breaks: ``record`` is the first
    record at fault, counted from 1 (None for a log that is sound but ends before the head
    it was checked against, or one refused for appending); the message says what is wrong
    with it, in words that are not part of the spec (14.5)."""

    codes = frozenset({"audit_log_broken"})
    default_code = "audit_log_broken"

    def __init__(self, message: str, *, code: str | None = None,
                 record: int | None = None) -> None:
        super().__init__(message, code=code)
        self.record: int | None = record

    def __reduce__(self) -> tuple[Callable[..., AgentAuthError], tuple[object, ...]]:
        return _rebuild, (type(self), self.message, self.code, None, self.record)


class FileError(LocalError):
    """A file at a path the caller gave cannot be used: it is missing (or its folder is),
    is not a regular file (a directory, FIFO, device or socket), is larger than what it
    should hold, exists where a new file was to be written, or the system refused or failed
    the read or write. Nothing was read from a file refused, and a refused write left
    nothing behind."""

    codes = frozenset({"file_not_found", "file_not_regular", "file_too_large", "file_exists",
                       "file_permission", "file_io"})


class RemoteError(AgentAuthError):
    """Bytes from the peer (or the network between us) broke a rule."""


class DecodeError(RemoteError):
    """A message that is too large, not well formed, not canonical, or of an unknown kind."""

    codes = frozenset(
        {"oversize", "malformed", "non_canonical", "unknown_field"}
    )


class ProtocolViolation(RemoteError):
    """A well-formed message that arrived where the protocol does not allow it."""

    codes = frozenset({"out_of_order", "no_common_version", "session_closed"})


class HandshakeTimeout(RemoteError):
    """The peer did not complete the handshake within the policy's time limit."""

    codes = frozenset({"handshake_timeout"})
    default_code = "handshake_timeout"


class PeerRefused(RemoteError):
    """The peer says it refused: it ended the handshake with an alert (spec 4.14), or an
    HTTP server answered with an unsigned refusal (spec 13.9).

    ``code`` is always ``peer_refused``; ``claimed`` is the code the peer names (for an
    alert, one of :data:`agentauth.alert.ALERT_CODES`). Nothing authenticates it: anyone
    on the path could have sent it, so ``claimed`` is the peer's claim, never a check made
    here, and it is not a reason to retry with a weaker policy. It is not an
    :class:`AuthenticationError`, so handlers of those never take it for one.
    """

    codes = frozenset({"peer_refused"})
    default_code = "peer_refused"

    def __init__(self, message: str, *, code: str | None = None, claimed: str = "") -> None:
        super().__init__(message, code=code)
        self.claimed: str = claimed

    def __str__(self) -> str:
        return f"[{self.code}] {self.message} (the peer claims {self.claimed!r})"

    def __reduce__(self) -> tuple[Callable[..., AgentAuthError], tuple[object, ...]]:
        return _rebuild, (type(self), self.message, self.code, None, None, self.claimed)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
                f"claimed={self.claimed!r})")


class ReplayDetected(RemoteError):
    """A message counter that was already accepted, or that fell behind the window."""

    codes = frozenset({"replayed", "stale"})


class TransportError(RemoteError):
    """The transport under a channel ended or broke before the protocol was done."""

    codes = frozenset({"unexpected_eof", "connection_lost"})


class RequestError(RemoteError):
    """A request on a channel (spec section 15) was not answered: no handler serves it,
    its handler failed, a bound of the channel was reached, it names a chain never
    presented, no answer came in time, or the serving agent closed first."""

    codes = frozenset({"no_handler", "handler_failed", "over_limit", "unknown_chain",
                       "request_timeout", "shutting_down"})


#: Every kind of :class:`Refusal`, with its meaning (spec 10.6 lists the same).
REFUSAL_KINDS: Mapping[str, str] = MappingProxyType({
    "anchor": "the root's issuer is not one of the verifier's trust anchors",
    "resource": "a resource (or a child's pattern) is not within a grant's pattern, or a "
                "root grant's pattern not within its anchor's namespace",
    "action": "an action (or a child's actions) is not among a grant's actions",
    "argument": "an argument's value (or a child's constraint) is not within a grant's "
                "constraint on it",
    "missing_argument": "a grant constrains an argument the request (or a child grant) "
                        "does not have",
    "extra_argument": "a closed grant does not name an argument the request has (or a "
                      "child grant names an argument beyond a closed parent's, or is "
                      "open-world under it)",
    "budget": "a link's delegation budget is not below its parent's",
    "window": "the verifier's time (or a child's window) is outside a link's validity "
              "window",
    "revoked": "a link of the chain was revoked",
    "holder": "the leaf's audience is not the agent presenting the chain",
    "request": "the request made is not the one this operation needs",
    "no_chain": "no chain was presented where one is needed",
})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which rule of a capability chain, or of the request made with it, was broken.

    ``kind`` is one of :data:`REFUSAL_KINDS`. ``link`` is the index of the link at fault
    (the root is 0), ``grant`` the index of the grant of that link at fault (for a request
    no grant allows: the grant that came nearest, see spec 10.6), ``argument`` the
    argument's name, ``rule`` what the rule asks, in words (a pattern, actions, a
    constraint, a bound), ``value`` what was found instead, and ``problem`` what is wrong
    with it, in words ("a '..' segment", "out of bounds"). Each is None where the kind has
    none. It holds no secret: public keys at most, never key or token bytes.
    ``rule`` and ``value`` may show the verifier's own policy (an anchor's namespace, its
    clock): they are for the verifier's log and its operator; :meth:`for_peer` is what a
    peer may be told.
    """

    kind: str
    link: int | None = None
    grant: int | None = None
    argument: str | None = None
    rule: str | None = None
    value: int | str | None = None
    problem: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in REFUSAL_KINDS:
            raise InvalidArgument(f"no refusal kind {self.kind!r}")

    def __str__(self) -> str:
        where = ", ".join(f"{name} {value}" for name, value in (
            ("link", self.link), ("grant", self.grant)) if value is not None)
        text = self.kind if not where else f"{self.kind} at {where}"
        if self.argument is not None:
            text += f", argument {self.argument!r}"
        if self.rule is not None:
            text += f": needs {self.rule}"
        if self.value is not None:
            text += f", got {self.value!r}"
        if self.problem is not None:
            text += f" ({self.problem})"
        return text

    def for_peer(self) -> dict[str, int | str]:
        """What a peer may be told (spec 10.6): the kind, and the link, grant and argument
        named by their place in what the peer itself sent (its chain and its request);
        never the rule or the value, which may show the verifier's own policy."""
        told: dict[str, int | str] = {"kind": self.kind}
        for name in ("link", "grant", "argument"):
            value = getattr(self, name)
            if value is not None:
                told[name] = value
        return told


class CapabilityDenied(RemoteError):
    """A capability chain, or the request made with it, broke a rule of spec section 10.

    ``refusal``, where not None, names the rule (a :class:`Refusal`); ``str()`` shows it
    after the message.
    """

    codes = frozenset({
        "chain_too_long", "root_invalid", "untrusted_root", "root_scope", "depth_exceeded",
        "revoked",
        "widened_resource", "widened_action", "widened_constraint", "widened_time",
        "not_yet_valid", "expired", "holder_mismatch", "not_authorized", "wrong_session",
        "stale_invocation", "unauthorized_revoker", "wrong_verifier", "wrong_request",
    })

    def __init__(self, message: str, *, code: str | None = None,
                 refusal: Refusal | None = None) -> None:
        super().__init__(message, code=code)
        self.refusal: Refusal | None = refusal

    def __str__(self) -> str:
        text = f"[{self.code}] {self.message}"
        return text if self.refusal is None else f"{text} ({self.refusal})"

    def __reduce__(self) -> tuple[Callable[..., AgentAuthError], tuple[object, ...]]:
        return _rebuild, (type(self), self.message, self.code, self.refusal)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
                f"refusal={self.refusal!r})")


class AuthenticationError(RemoteError):
    """The peer could not prove who it is, or proved to be someone we do not accept."""

    codes = frozenset(
        {
            "decrypt_failed",
            "bad_signature",
            "low_order_point",
            "reflection",
            "downgrade",
            "unexpected_peer",
            "untrusted_peer",
            "clock_skew",
            "wrong_recipient",
            "unexpected_reply",
            "unsigned",
            "signature_expired",
            "digest_mismatch",
            "uncovered_component",
            "key_rotated",
            "rotation_mismatch",
        }
    )


class SessionExpired(AgentAuthError):
    """A channel reached the idle timeout or the lifetime its owner set, and was closed.

    Neither side misbehaved and the call was not wrong: a limit was reached.
    """

    codes = frozenset({"idle_timeout", "lifetime_exceeded"})


class StoreError(AgentAuthError):
    """A replay store could not record a key: it is full of live entries, or it cannot be
    opened or reached (a revocation store too). The message it was asked about must be
    refused (the check fails closed). A revocation store refuses a notice the same way once
    it holds its quota of notices about links issued by the key that issued the notice's
    target (spec 10.8).

    Neither side misbehaved and the call was not wrong: retry later, or give the store room.
    """

    codes = frozenset({"store_full", "store_unavailable"})


#: Every stable error code, with the class that carries it and a one-line meaning.
#: The specification (``spec/protocol.md``, section 7) documents the same table.
ERROR_CODES: Mapping[str, tuple[type[AgentAuthError], str]] = MappingProxyType({
    "invalid_argument": (InvalidArgument, "an argument is outside what the call accepts"),
    "invalid_key": (InvalidKey, "key bytes of the wrong length or form"),
    "agent_id_prefix": (InvalidAgentId, "agent id does not start with 'did:key:z'"),
    "agent_id_encoding": (InvalidAgentId, "agent id is not canonical base58btc"),
    "agent_id_multicodec": (InvalidAgentId, "agent id is not an Ed25519 key (0xed01)"),
    "agent_id_length": (InvalidAgentId, "agent id key is not 32 bytes"),
    "invalid_state": (InvalidState, "the call is not allowed in the current state"),
    "counter_exhausted": (CounterExhausted, "the session's sending counter is used up"),
    "key_file_permissions": (KeyFileError, "a key file is readable by group or others"),
    "key_file_version": (KeyFileError, "a key file of a version this release does not read"),
    "key_file_corrupt": (KeyFileError, "a key file is truncated or not of the key file form"),
    "wrong_passphrase": (KeyFileError, "the key file does not open with this passphrase "
                                       "(or was altered)"),
    "key_file_unencrypted": (KeyFileError, "a key file is unencrypted and that was not "
                                           "allowed"),
    "trust_store_invalid": (TrustStoreError, "a trust store is not valid TOML or breaks its "
                                             "schema"),
    "trust_store_permissions": (TrustStoreError, "a trust store is writable by group or "
                                                 "others"),
    "audit_log_broken": (AuditLogError, "an audit log record was edited, dropped or "
                                        "reordered"),
    "file_not_found": (FileError, "a file, or the folder it should be in, does not exist"),
    "file_not_regular": (FileError, "a path names a directory, FIFO, device or socket, not "
                                    "a regular file"),
    "file_too_large": (FileError, "a file is larger than what it may hold"),
    "file_exists": (FileError, "a file to be written exists already and is not replaced"),
    "file_permission": (FileError, "the system refused access to a file or its folder"),
    "file_io": (FileError, "reading or writing a file failed"),
    "oversize": (DecodeError, "message longer than the limit, checked before parsing"),
    "malformed": (DecodeError, "message is not of the required structure or types"),
    "non_canonical": (DecodeError, "message decodes but is not in the one canonical form"),
    "unknown_field": (DecodeError, "message carries a field this version does not define"),
    "out_of_order": (ProtocolViolation, "message arrived in a state that does not expect it"),
    "no_common_version": (ProtocolViolation, "the offered versions share none with ours"),
    "session_closed": (ProtocolViolation, "the session was closed; nothing more is accepted"),
    "handshake_timeout": (HandshakeTimeout, "the handshake did not finish in time"),
    "peer_refused": (PeerRefused, "the peer refused (a handshake alert, an HTTP refusal); "
                                  "the code it claims is not authenticated"),
    "replayed": (ReplayDetected, "message counter already accepted"),
    "stale": (ReplayDetected, "message is older than the window that tracks replays"),
    "decrypt_failed": (AuthenticationError, "AEAD tag did not verify"),
    "bad_signature": (AuthenticationError, "Ed25519 signature did not verify"),
    "low_order_point": (AuthenticationError, "X25519 public key of small order"),
    "reflection": (AuthenticationError, "our own ephemeral key or identity came back"),
    "downgrade": (AuthenticationError, "selected version was not in our offer"),
    "unexpected_peer": (AuthenticationError, "peer is not the agent the caller pinned"),
    "untrusted_peer": (AuthenticationError, "trust policy refused the peer"),
    "clock_skew": (AuthenticationError, "peer timestamp outside the allowed skew"),
    "wrong_recipient": (AuthenticationError,
                        "the envelope or HTTP request is addressed to another agent or host"),
    "unexpected_reply": (AuthenticationError, "a reply to no request we sent to its sender"),
    "key_rotated": (AuthenticationError, "a rotation signed by a key already rotated away"),
    "rotation_mismatch": (AuthenticationError, "the new key is not the one committed to "
                                               "before"),
    "unexpected_eof": (TransportError, "the transport ended before the protocol did"),
    "connection_lost": (TransportError, "the transport failed under the channel"),
    "chain_too_long": (CapabilityDenied, "a capability chain has more links than allowed"),
    "root_invalid": (CapabilityDenied, "the first link is not a root, or a later one is"),
    "untrusted_root": (CapabilityDenied, "the root issuer is not one of our trust anchors"),
    "root_scope": (CapabilityDenied, "a root grant is outside its anchor's namespace"),
    "depth_exceeded": (CapabilityDenied, "a link's depth budget does not shrink"),
    "revoked": (CapabilityDenied, "a link of the chain was revoked"),
    "widened_resource": (CapabilityDenied, "a child grant covers resources its parent does "
                                           "not"),
    "widened_action": (CapabilityDenied, "a child grant allows actions its parent does not"),
    "widened_constraint": (CapabilityDenied, "a child grant relaxes or drops a constraint"),
    "widened_time": (CapabilityDenied, "a child's validity window is not within its "
                                       "parent's"),
    "not_yet_valid": (CapabilityDenied, "a link is not valid yet"),
    "expired": (CapabilityDenied, "a link has expired"),
    "holder_mismatch": (CapabilityDenied, "the chain's holder is not the presenting peer"),
    "not_authorized": (CapabilityDenied, "no grant of the chain allows the request"),
    "wrong_session": (CapabilityDenied, "the invocation is bound to another session"),
    "stale_invocation": (CapabilityDenied, "a detached invocation's time is outside the "
                                           "window"),
    "unauthorized_revoker": (CapabilityDenied, "a revocation notice's signer has no say over "
                                               "its target"),
    "wrong_verifier": (CapabilityDenied, "a detached invocation names another verifier"),
    "wrong_request": (CapabilityDenied, "an HTTP invocation is bound to another request"),
    "unsigned": (AuthenticationError, "an HTTP message carries no signature of the profile"),
    "signature_expired": (AuthenticationError, "an HTTP signature's expiry has passed"),
    "digest_mismatch": (AuthenticationError, "HTTP content does not match its signed "
                                             "digest, or has none"),
    "uncovered_component": (AuthenticationError, "an HTTP signature leaves a required "
                                                 "component uncovered"),
    "no_handler": (RequestError, "no handler is declared for the request's resource and "
                                 "action"),
    "handler_failed": (RequestError, "the request's handler failed on the serving side"),
    "over_limit": (RequestError, "a channel's bound on requests in flight or chains "
                                 "presented was reached"),
    "unknown_chain": (RequestError, "a request names a chain not presented on its channel"),
    "request_timeout": (RequestError, "no answer to a request came within its timeout"),
    "shutting_down": (RequestError, "the serving agent closed before answering"),
    "idle_timeout": (SessionExpired, "nothing was sent or received for the idle timeout"),
    "lifetime_exceeded": (SessionExpired, "the channel reached its maximum lifetime"),
    "store_full": (StoreError, "a replay store is full of live entries, or a revocation "
                   "store holds its quota of notices about one key's links, and refuses "
                   "more"),
    "store_unavailable": (StoreError, "a replay or revocation store could not be opened, "
                                       "reached or failed"),
})


def _check_registry() -> None:
    for code, (cls, _) in ERROR_CODES.items():
        assert code in cls.codes, code
    every = set().union(
        *(c.codes for c in (InvalidArgument, InvalidKey, InvalidAgentId, InvalidState,
                            CounterExhausted, KeyFileError, TrustStoreError,
                            AuditLogError, FileError, DecodeError, ProtocolViolation,
                            HandshakeTimeout, PeerRefused, ReplayDetected,
                            AuthenticationError,
                            TransportError, SessionExpired, CapabilityDenied, StoreError,
                            RequestError))
    )
    assert every == set(ERROR_CODES), every ^ set(ERROR_CODES)


_check_registry()


def _rebuild(cls: type[AgentAuthError], message: str, code: str,
             refusal: Refusal | None = None, record: int | None = None,
             claimed: str | None = None) -> AgentAuthError:
    if refusal is not None and issubclass(cls, CapabilityDenied):
        return cls(message, code=code, refusal=refusal)
    if record is not None and issubclass(cls, AuditLogError):
        return cls(message, code=code, record=record)
    if claimed is not None and issubclass(cls, PeerRefused):
        return cls(message, code=code, claimed=claimed)
    return cls(message, code=code)

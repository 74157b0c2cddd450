"""Invocations: using a capability chain, with proof that the user is its holder.

* **In a session** (:func:`invoke` with a channel binding, checked by
  :class:`SessionInvocations`): the invocation names the session's channel binding and a
  fresh id. It travels inside the session, whose peer the handshake authenticated; the
  verifier requires the chain's leaf audience to be that peer, the binding to be this
  session's, and each id to be new in this session. A chain stolen from one session is
  useless in another and to anyone but its holder.
* **Detached** (no session: queues, files): the holder signs the invocation, naming the
  verifier it is for, with a fresh id and its clock's time; :class:`DetachedInvocations`
  checks that it is the named verifier, the time within a window, the id against a bounded
  replay cache (per holder), and the signature by the leaf audience.

Time and revocation are checked on every use; nothing is cached across uses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from .. import audit, crypto, wire
from ..errors import (
    AuthenticationError,
    CapabilityDenied,
    DecodeError,
    InvalidArgument,
    InvalidState,
    ReplayDetected,
)
from ..identity import Identity, PeerKey, peer_key
from ..replay import ReplayStore, Shares
from ..verdict import ask, check_callback, moment
from .chain import DEFAULT_SKEW, MAX_CHAIN_BYTES, Link, trust_roots, verify_chain
from .grants import Request

__all__ = ["INVOKE_CONTEXT", "DetachedInvocations", "SessionInvocations", "invoke"]

VERSION: Final = 1
INVOKE_CONTEXT: Final = b"agentauth v1 capability invocation\x00"
MAX_INVOCATION: Final = MAX_CHAIN_BYTES + 4096
MAX_ARGS: Final = 32
BINDING_LEN: Final = 64
#: How far a detached invocation's time may lie from the verifier's, in seconds.
DETACHED_WINDOW: Final = 120
_ID_LEN: Final = 16  # an invocation id's bytes


def _request_to_wire(request: Request) -> list[Any]:
    args = dict(sorted(request.args.items()))
    for name, value in args.items():
        if type(name) is not str or type(value) not in (int, str, bool):
            raise InvalidArgument("request arguments map names to int, str or bool")
    return [request.resource, request.action, args]


def _request_from_wire(value: object) -> Request:
    if type(value) is not list or len(value) != 3 or type(value[2]) is not dict:
        raise DecodeError("a request is [resource, action, args]", code="malformed")
    resource, action, args = value
    if len(args) > MAX_ARGS or any(type(k) is not str or type(v) not in (int, str, bool)
                                   for k, v in args.items()):
        raise DecodeError("request arguments map names to int, str or bool",
                          code="malformed")
    if list(args) != sorted(args):
        raise DecodeError("request argument names are not sorted", code="non_canonical")
    try:
        return Request(resource, action, args)
    except InvalidArgument as exc:
        raise DecodeError(f"bad request: {exc.message}", code="malformed") from None


def invoke(
    chain: bytes,
    request: Request,
    *,
    channel_binding: bytes = b"",
    holder: Identity | None = None,
    verifier: str | PeerKey | None = None,
    clock: Callable[[], float] = time.time,
    random: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Encode an invocation of ``chain`` for ``request``.

    In a session pass its ``channel_binding``; detached, pass ``holder`` (the leaf
    audience's identity), which signs it, and ``verifier``, the agent it is meant for.
    """
    if type(chain) is not bytes or not isinstance(request, Request):
        raise InvalidArgument("chain is bytes and request a Request")
    if (holder is None) == (not channel_binding) or (holder is None) != (verifier is None):
        raise InvalidArgument("give a channel_binding (in a session), or a holder and a "
                              "verifier (detached)")
    if type(channel_binding) is not bytes or len(channel_binding) not in (0, BINDING_LEN):
        raise InvalidArgument(f"a channel binding is the session's {BINDING_LEN} bytes")
    target = b"" if verifier is None else peer_key(verifier).public_bytes
    jti = random(_ID_LEN)
    if type(jti) is not bytes or len(jti) != _ID_LEN:
        raise InvalidArgument("random(16) must return 16 bytes")
    payload = wire.encode_map(VERSION, chain, _request_to_wire(request), channel_binding,
                              target, jti, int(moment(clock())))
    signature = b"" if holder is None else holder.sign(INVOKE_CONTEXT + payload)
    return wire.encode_map(payload, signature)


def _decode(data: bytes) -> tuple[bytes, bytes, bytes, Request, bytes, bytes, bytes, int]:
    if type(data) is not bytes:
        raise InvalidArgument("an invocation is bytes")
    payload, signature = wire.decode_map(data, 2, MAX_INVOCATION, "invocation")
    if type(payload) is not bytes or type(signature) is not bytes:
        raise DecodeError("an invocation is {0: payload, 1: signature}", code="malformed")
    version, chain, request, binding, target, jti, issued = wire.decode_map(
        payload, 7, MAX_INVOCATION, "invocation payload")
    if type(version) is not int:
        raise DecodeError("an invocation's version is an integer", code="malformed")
    if version != VERSION:
        raise DecodeError(f"invocation version {version} is not 1", code="unknown_field")
    # Spec 10.7, the form: every length is fixed here, before any check of either mode.
    if (type(chain) is not bytes or type(binding) is not bytes
            or len(binding) not in (0, BINDING_LEN) or type(target) is not bytes
            or len(target) not in (0, 32) or type(jti) is not bytes or len(jti) != _ID_LEN
            or type(issued) is not int or issued < 0
            or len(signature) not in (0, crypto.SIGNATURE_LEN)):
        raise DecodeError("invocation fields are out of shape", code="malformed")
    return (payload, signature, chain, _request_from_wire(request), binding, target, jti,
            issued)


class SessionInvocations:
    """Checks the invocations one authenticated peer sends in one session."""

    def __init__(self, anchors: Mapping[Any, str], *, peer: PeerKey,
                 channel_binding: bytes, skew: int = DEFAULT_SKEW,
                 revoked: Callable[[bytes], bool] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if (not isinstance(peer, PeerKey) or type(channel_binding) is not bytes
                or len(channel_binding) != BINDING_LEN):
            raise InvalidArgument(f"peer is a PeerKey and channel_binding the session's "
                                  f"{BINDING_LEN} bytes")
        trust_roots(anchors)  # a bad shape is refused now, not at first use
        check_callback(revoked, "revoked callback")
        self._anchors = dict(anchors)
        self._peer = peer
        self._binding = channel_binding
        self._skew = skew
        self._revoked = revoked
        self._clock = clock
        self._seen: set[bytes] = set()

    def check(self, invocation: bytes) -> tuple[Request, tuple[Link, ...]]:
        """Verify one invocation; return the request it authorises and the chain."""
        # In a session the channel authenticates the sender: no signature to check. The
        # checks of spec 10.7 (in a session), in its order: the binding, the id, the chain.
        _, signature, chain, request, binding, target, jti, _ = _decode(invocation)
        if not crypto.equal(binding, self._binding) or target or signature:
            raise CapabilityDenied("the invocation names another session, or is a detached "
                                   "one", code="wrong_session")
        if jti in self._seen:
            audit.emit("replay_refused", kind="invocation", code="replayed",
                       holder=self._peer.agent_id)
            raise ReplayDetected("this invocation was already used in this session",
                                 code="replayed")
        links = verify_chain(chain, self._anchors, now=int(moment(self._clock())),
                             skew=self._skew, revoked=self._revoked, holder=self._peer,
                             request=request)
        self._seen.add(jti)  # only what verified is remembered
        return request, links


_STORE_PREFIX = b"invocation:"  # apart from envelope keys in a store both use


class DetachedInvocations:
    """Checks signed invocations that arrive outside any session, for ``verifier``.

    Ids are remembered per holder until their time window has passed, at most ``capacity``
    of them in all and ``per_holder`` from any one holder (default ``max(1, capacity //
    16)``, so that one holder cannot fill the cache and lock the others out); when full, a
    new invocation is refused (``invalid_state``, fail closed) rather than an old id
    forgotten. Give a ``store`` (any :class:`agentauth.ReplayStore`, such as a Redis store
    that every replica of the verifier shares) to remember them there instead: the pair is
    then checked and inserted in one atomic step, after the signature has verified, and
    this verifier still counts, until they expire, the ids it let in per holder, under
    the same two bounds (they then bound this replica's share of the store, not the store).
    """

    def __init__(self, anchors: Mapping[Any, str], *, verifier: str | PeerKey | Identity,
                 skew: int = DEFAULT_SKEW, window: int = DETACHED_WINDOW,
                 revoked: Callable[[bytes], bool] | None = None,
                 clock: Callable[[], float] = time.time, capacity: int = 100_000,
                 per_holder: int | None = None, store: ReplayStore | None = None) -> None:
        if type(capacity) is not int or capacity < 1 or type(window) is not int or window < 1:
            raise InvalidArgument("capacity and window are positive integers")
        if store is not None and not isinstance(store, ReplayStore):
            raise InvalidArgument("store is a replay store")
        check_callback(revoked, "revoked callback")
        self._store = store
        trust_roots(anchors)  # a bad shape is refused now, not at first use
        self._anchors = dict(anchors)
        self._skew = skew
        self._window = window
        self._revoked = revoked
        self._clock = clock
        self._verifier = peer_key(verifier).public_bytes
        self._seen: set[bytes] = set()  # holder key || id (without a store)
        # Per holder key; each item is holder key || id.
        self._shares = Shares(capacity, per_holder, names=("capacity", "per_holder"))

    def check(self, invocation: bytes) -> tuple[Request, tuple[Link, ...], PeerKey]:
        """Verify one invocation; return the request, the chain and the holder."""
        # The checks of spec 10.7 (detached), in its order: no binding, the verifier, the
        # time, the chain and request, the id, the signature.
        payload, signature, chain, request, binding, target, jti, issued = _decode(invocation)
        if binding:
            raise CapabilityDenied("a session invocation cannot be used detached",
                                   code="wrong_session")
        if not crypto.equal(target, self._verifier):
            raise CapabilityDenied("the invocation is meant for another verifier",
                                   code="wrong_verifier")
        now = int(moment(self._clock()))
        limit = self._window + self._skew
        if abs(issued - now) > limit:
            raise CapabilityDenied("the invocation is too old or from the future",
                                   code="stale_invocation")
        self._expire(now)
        links = verify_chain(chain, self._anchors, now=now, skew=self._skew,
                             revoked=self._revoked, request=request)
        holder = PeerKey(links[-1].audience)
        key = holder.public_bytes + jti  # one holder cannot use up another's ids
        if key in self._seen:
            audit.emit("replay_refused", kind="invocation", code="replayed",
                       holder=holder.agent_id)
            raise ReplayDetected("this invocation was already used", code="replayed")
        if not crypto.ed25519_verify(holder.public_bytes, INVOKE_CONTEXT + payload,
                                     signature):
            raise AuthenticationError("the invocation is not signed by the chain's holder",
                                      code="bad_signature")
        # Our own limits, in all and per holder (so the others keep their share); the
        # place is taken after _expire(now) has freed what expired.
        with self._shares.place(holder.public_bytes, lambda why: InvalidState(
                f"the replay cache refuses {holder.agent_id}: {why}; try again later")) as keep:
            if self._store is None:
                self._seen.add(key)
            # The window is checked against the clock in whole seconds, so an invocation
            # stays acceptable until just before issued + limit + 1.
            elif not ask("replay store", True, self._store.check_and_insert,
                         _STORE_PREFIX + key, issued + limit + 1):
                audit.emit("replay_refused", kind="invocation", code="replayed",
                           holder=holder.agent_id)
                raise ReplayDetected("this invocation was already used", code="replayed")
            keep(issued + limit, key)
        return request, links, holder

    def _expire(self, now: int) -> None:
        # An id can be accepted until issued + window + skew: forget it after that.
        for key in self._shares.expire(now):
            self._seen.discard(key)

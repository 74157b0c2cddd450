"""One-shot envelopes: authenticated messages with no live conversation (spec section 12).

For queues, mailboxes, files and HTTP bodies. An envelope is signed by its sender,
addressed to one recipient, and carries a random nonce, the sender's clock and the payload,
all under the signature; a reply names its request's nonce. Sealed, the whole signed
envelope is encrypted to the recipient (libsodium's sealed box), so only the recipient can
read it, and nobody else can tell who sent it.

Opening checks, in order, each with its own code: the form (``oversize``, ``malformed``,
``non_canonical``, ``unknown_field``); the recipient is me (``wrong_recipient``); sealed,
that it opens (``decrypt_failed``); the signature (``bad_signature``); the clock window
(``stale`` too old, ``clock_skew`` from the future); the sender trust policy
(``untrusted_peer``); for a reply, that it answers a request we sent to that very sender
(``unexpected_reply``; the request is taken atomically, so of concurrent replies one
wins, and given back if the reply is then refused); and last, that the nonce is new,
through a replay store (``replayed``). Nothing is remembered before every other check has
passed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

from . import audit, crypto, wire
from .errors import (
    AuthenticationError,
    DecodeError,
    InvalidArgument,
    InvalidState,
    ReplayDetected,
)
from .identity import Identity, PeerKey, peer_key
from .replay import ReplayStore, Shares
from .verdict import MAX_TIME, Question, ask, check_bounds, check_window, drive, moment

__all__ = [
    "DEFAULT_SKEW",
    "DEFAULT_WINDOW",
    "ENVELOPE_CONTEXT",
    "MAX_ENVELOPE",
    "Envelope",
    "PendingRequests",
    "check_envelope",
    "open_envelope",
    "opening",
    "seal",
]

SIGNED: Final = 1
SEALED: Final = 2
ENVELOPE_CONTEXT: Final = b"agentauth v1 envelope\x00"
MAX_ENVELOPE: Final = 1 << 20
NONCE_LEN: Final = 16
MAX_NONCE: Final = 64
DEFAULT_WINDOW: Final = 300
DEFAULT_SKEW: Final = 60


@dataclass(frozen=True, slots=True)
class Envelope:
    """An opened envelope: who sent it, to whom, when, and what."""

    sender: PeerKey
    recipient: PeerKey
    nonce: bytes
    time: int
    reply_to: bytes  # empty unless this is a reply: the request's nonce
    payload: bytes
    sealed: bool

    def __repr__(self) -> str:  # the payload may be secret (a sealed envelope's): not shown
        return (f"Envelope(sender={self.sender.agent_id!r}, time={self.time}, "
                f"payload=<{len(self.payload)} bytes>, sealed={self.sealed})")

    @property
    def replay_key(self) -> bytes:
        """What a replay store remembers: the sender's key and the nonce."""
        return self.sender.public_bytes + self.nonce


def seal(
    sender: Identity,
    recipient: str | PeerKey | Identity,
    payload: bytes,
    *,
    reply_to: bytes = b"",
    encrypt: bool = False,
    clock: Callable[[], float] = time.time,
    random: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """An envelope from ``sender`` to ``recipient``; ``reply_to`` names the nonce of the
    request it answers; ``encrypt`` seals it to the recipient."""
    if not isinstance(sender, Identity) or type(payload) is not bytes:
        raise InvalidArgument("the sender is an Identity and the payload bytes")
    if type(reply_to) is not bytes or not (reply_to == b""
                                           or NONCE_LEN <= len(reply_to) <= MAX_NONCE):
        raise InvalidArgument("reply_to is empty or a request's nonce")
    to = peer_key(recipient).public_bytes
    nonce = random(NONCE_LEN)
    if type(nonce) is not bytes or len(nonce) != NONCE_LEN:
        raise InvalidArgument(f"random({NONCE_LEN}) must return {NONCE_LEN} bytes")
    now = int(moment(clock()))
    body = wire.encode_map(sender.public_bytes, to, nonce, now, reply_to, payload)
    signed = wire.encode_map(SIGNED, body, sender.sign(ENVELOPE_CONTEXT + body))
    if len(signed) + crypto.SEALED_OVERHEAD + 64 > MAX_ENVELOPE:
        raise InvalidArgument(f"the envelope would be over {MAX_ENVELOPE} bytes")
    if not encrypt:
        return signed
    return wire.encode_map(SEALED, to, crypto.sealed_box(to, signed))


def _outer(data: bytes, what: str) -> tuple[int, bytes, bytes]:
    kind, first, second = wire.decode_flat_map(data, 3, MAX_ENVELOPE, what)
    if type(kind) is not int:
        raise DecodeError(f"{what}'s kind is an integer", code="malformed")
    if kind not in (SIGNED, SEALED):
        raise DecodeError(f"{what} kind {kind} is unknown", code="unknown_field")
    if type(first) is not bytes or type(second) is not bytes:
        raise DecodeError(f"{what} is {{0: kind, 1: bytes, 2: bytes}}", code="malformed")
    return kind, first, second


def _signed(body: bytes, signature: bytes, me: bytes, sealed: bool) -> Envelope:
    sender, recipient, nonce, sent, reply_to, payload = wire.decode_flat_map(
        body, 6, MAX_ENVELOPE, "envelope body")
    if (type(sender) is not bytes or len(sender) != 32 or type(recipient) is not bytes
            or len(recipient) != 32 or type(payload) is not bytes):
        raise DecodeError("envelope keys are 32 bytes and the payload bytes",
                          code="malformed")
    if (type(nonce) is not bytes or not NONCE_LEN <= len(nonce) <= MAX_NONCE
            or type(reply_to) is not bytes
            or not (reply_to == b"" or NONCE_LEN <= len(reply_to) <= MAX_NONCE)):
        raise DecodeError(f"a nonce is {NONCE_LEN} to {MAX_NONCE} bytes", code="malformed")
    if type(sent) is not int or not 0 <= sent <= MAX_TIME:
        raise DecodeError("an envelope's time is a non-negative integer", code="malformed")
    if len(signature) != crypto.SIGNATURE_LEN:  # the form (spec 12.2 step 1), like the rest
        raise DecodeError("a signature is 64 bytes", code="malformed")
    if not crypto.equal(recipient, me):
        raise AuthenticationError("the envelope is addressed to another agent",
                                  code="wrong_recipient")
    if not crypto.ed25519_verify(sender, ENVELOPE_CONTEXT + body, signature):
        raise AuthenticationError("the envelope's signature does not verify",
                                  code="bad_signature")
    return Envelope(PeerKey(sender), PeerKey(recipient), nonce, sent, reply_to, payload,
                    sealed)


def check_envelope(
    data: bytes,
    me: Identity,
    *,
    now: float,
    window: int = DEFAULT_WINDOW,
    skew: int = DEFAULT_SKEW,
    trust: Callable[[PeerKey], bool] | None = None,
) -> Envelope:
    """Every check but replay and reply binding: form, recipient, decryption, signature,
    clock window, trust. :func:`open_envelope` adds those two.

    ``trust`` is judged as spec 7.1 says: exactly ``True`` accepts the sender, ``False``
    is ``untrusted_peer``, anything else (an ``async def``'s coroutine, None, a truthy
    object) or an exception is ``invalid_argument``. The async
    :func:`agentauth.aio.open_envelope` awaits an ``async def`` trust callable."""
    envelope = _check_before_trust(data, me, now=now, window=window, skew=skew)
    if trust is not None and not ask("trust callback", True, trust, envelope.sender):
        raise _untrusted()
    return envelope


def _untrusted() -> AuthenticationError:
    """The refusal of a sender that the trust callable did not accept."""
    return AuthenticationError("the sender is not trusted", code="untrusted_peer")


def _check_before_trust(data: bytes, me: Identity, *, now: float, window: int,
                       skew: int) -> Envelope:
    """:func:`check_envelope` up to, not including, the trust callable, which the caller
    asks next (synchronously or not)."""
    if type(data) is not bytes or not isinstance(me, Identity):
        raise InvalidArgument("data is bytes and me an Identity")
    now = moment(now, "now")  # NaN would pass every clock check
    check_window("window", window)
    check_window("skew", skew)
    kind, first, second = _outer(data, "envelope")
    if kind == SEALED:
        if len(first) != 32:
            raise DecodeError("a sealed envelope names a 32-byte recipient",
                              code="malformed")
        if not crypto.equal(first, me.public_bytes):
            raise AuthenticationError("the envelope is addressed to another agent",
                                      code="wrong_recipient")
        kind, body, signature = _outer(me.open_sealed(second), "sealed content")
        if kind != SIGNED:
            raise DecodeError("a sealed envelope holds a signed one", code="malformed")
        envelope = _signed(body, signature, me.public_bytes, True)
    else:
        envelope = _signed(first, second, me.public_bytes, False)
    if envelope.time < now - window - skew:
        raise ReplayDetected("the envelope is older than the acceptance window",
                             code="stale")
    if envelope.time > now + skew:
        raise AuthenticationError("the envelope is dated in the future beyond the skew",
                                  code="clock_skew")
    return envelope


class PendingRequests:
    """The requests we sent and still expect a reply to: nonce -> (recipient, expiry).

    Seal requests with :meth:`request`; :func:`open_envelope` accepts a reply only if it
    names one of them and comes from the agent it went to, once. Bounded twice: at most
    ``capacity`` requests awaiting a reply in all, and ``per_recipient`` to any one
    recipient (default ``max(1, capacity // 16)``, so that a peer that never replies cannot
    take every place); a request over either bound is refused (``invalid_state``).
    """

    def __init__(self, capacity: int = 100_000, *, per_recipient: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._capacity, self._per_recipient = check_bounds(
            capacity, per_recipient, ("capacity", "per_recipient"))
        self._clock = clock
        self._entries: dict[bytes, tuple[bytes, float]] = {}
        self._held: dict[bytes, int] = {}  # recipient key -> its requests in _entries
        self._lock = threading.Lock()

    def request(self, sender: Identity, recipient: str | PeerKey | Identity,
                payload: bytes, *, timeout: float = DEFAULT_WINDOW + DEFAULT_SKEW,
                encrypt: bool = False, random: Callable[[int], bytes] = os.urandom) -> bytes:
        """Seal a request and await its reply for ``timeout`` seconds."""
        timeout = moment(timeout, "timeout")  # a NaN deadline would never pass
        now = moment(self._clock())
        nonce = random(NONCE_LEN)
        envelope = seal(sender, recipient, payload, encrypt=encrypt, clock=self._clock,
                        random=lambda _: nonce)
        with self._lock:
            self._add(nonce, (peer_key(recipient).public_bytes, now + timeout), now)
        return envelope

    def expect(self, nonce: bytes, recipient: str | PeerKey | Identity, *,
               expires: float) -> None:
        """Await a reply to a request sealed some other way: its nonce and recipient."""
        if type(nonce) is not bytes or not NONCE_LEN <= len(nonce) <= MAX_NONCE:
            raise InvalidArgument(f"a nonce is {NONCE_LEN} to {MAX_NONCE} bytes")
        if type(expires) not in (int, float) or not 0 <= expires <= MAX_TIME:
            raise InvalidArgument("expires is a time in seconds")
        to = peer_key(recipient).public_bytes
        with self._lock:
            self._add(nonce, (to, expires), moment(self._clock()))

    def _add(self, nonce: bytes, entry: tuple[bytes, float], now: float) -> None:
        # Under the lock. Expired requests are dropped only when a bound is reached; a
        # nonce registered again replaces its entry.
        to = entry[0]
        if nonce in self._entries:
            self._drop(nonce)
        if (len(self._entries) >= self._capacity
                or self._held.get(to, 0) >= self._per_recipient):
            for old in [n for n, (_, end) in self._entries.items() if end < now]:
                self._drop(old)
            if len(self._entries) >= self._capacity:
                raise InvalidState("too many requests await a reply")
            if self._held.get(to, 0) >= self._per_recipient:
                raise InvalidState(f"{self._per_recipient} requests to "
                                   f"{PeerKey(to).agent_id} already await a reply")
        self._entries[nonce] = entry
        self._held[to] = self._held.get(to, 0) + 1

    def _drop(self, nonce: bytes) -> tuple[bytes, float]:
        # Under the lock.
        entry = self._entries.pop(nonce)
        held = self._held[entry[0]] - 1
        if held:
            self._held[entry[0]] = held
        else:
            del self._held[entry[0]]
        return entry

    def claim(self, nonce: bytes, sender: bytes, now: float) -> tuple[bytes, float]:
        """Take the request ``nonce`` if it awaits a reply from ``sender`` (atomically: of
        concurrent replies, one gets it), else refuse with ``unexpected_reply``."""
        with self._lock:
            entry = self._entries.get(nonce)
            if entry is None or entry[1] < now or not crypto.equal(entry[0], sender):
                raise AuthenticationError("the reply answers no request we sent to its "
                                          "sender", code="unexpected_reply")
            return self._drop(nonce)

    def release(self, nonce: bytes, entry: tuple[bytes, float]) -> None:
        """Give back a claimed request whose reply was then refused: it still waits (its
        place was kept for it, so no bound refuses it)."""
        with self._lock:
            if self._entries.setdefault(nonce, entry) is entry:
                self._held[entry[0]] = self._held.get(entry[0], 0) + 1

    def waiting(self) -> list[tuple[bytes, PeerKey, float]]:
        """Every request still awaited: (nonce, recipient, expiry), to save and give back
        to :meth:`expect` later (an agent that goes offline between request and reply)."""
        return [(nonce, PeerKey(to), end) for nonce, (to, end) in self._entries.items()]

    def __len__(self) -> int:
        return len(self._entries)


def open_envelope(
    data: bytes,
    me: Identity,
    store: ReplayStore,
    *,
    clock: Callable[[], float] = time.time,
    window: int = DEFAULT_WINDOW,
    skew: int = DEFAULT_SKEW,
    trust: Callable[[PeerKey], bool] | None = None,
    pending: PendingRequests | None = None,
    shares: Shares | None = None,
) -> Envelope:
    """Open an envelope completely (see the module's docstring for the order); its nonce
    is remembered in ``store`` until it could no longer be accepted. With ``shares`` (one
    :class:`agentauth.replay.Shares` kept for as long as the store), each sender's nonces
    in the store are also bounded, so that one sender cannot fill it (``store_full``)."""
    return drive(opening(data, me, store, now=clock(), window=window, skew=skew,
                         trust=trust, pending=pending, shares=shares))


def opening(data: bytes, me: Identity, store: Any, *,
            now: float, window: int, skew: int, trust: Callable[..., object] | None,
            pending: PendingRequests | None, shares: Shares | None
            ) -> Generator[Question, bool, Envelope]:
    """Every step of opening an envelope, in order, as a flow that asks the trust
    callable, then ``store.check_and_insert`` (``store`` a replay store, synchronous or
    not): :func:`open_envelope` drives it with :func:`~agentauth.verdict.drive`,
    :func:`agentauth.aio.open_envelope` with :func:`~agentauth.verdict.drive_async`."""
    envelope = _check_before_trust(data, me, now=now, window=window, skew=skew)
    if trust is not None and not (yield ("trust callback", trust, (envelope.sender,))):
        raise _untrusted()
    claimed = _claim_reply(envelope, pending, now)
    expires = envelope.time + window + skew
    try:
        with _sender_share(envelope, shares, now) as keep:
            new = yield ("replay store", store.check_and_insert,
                         (envelope.replay_key, expires))
            if new:
                keep(expires, b"")
    except BaseException:
        _release_reply(envelope, pending, claimed)
        raise
    if not new:
        _release_reply(envelope, pending, claimed)
        audit.emit("replay_refused", kind="envelope", code="replayed",
                   sender=envelope.sender.agent_id)
        raise ReplayDetected("this envelope was already received", code="replayed")
    return envelope


def _claim_reply(envelope: Envelope, pending: PendingRequests | None, now: float
                ) -> tuple[bytes, float] | None:
    """For a reply, take the request it answers from ``pending`` (or refuse it)."""
    if not envelope.reply_to:
        return None
    if pending is None:
        raise AuthenticationError("a reply arrived, and no requests are awaited",
                                  code="unexpected_reply")
    return pending.claim(envelope.reply_to, envelope.sender.public_bytes, now)


def _sender_share(envelope: Envelope, shares: Shares | None, now: float
                 ) -> AbstractContextManager[Callable[[float, bytes], None]]:
    """The sender's place in ``shares`` for the envelope's nonce (spec 11, rule 11), or
    nothing to take without ``shares``; over the sender's share: ``store_full``."""
    if shares is None:
        return contextlib.nullcontext(lambda expires, item: None)
    sender = envelope.sender
    return shares.place_in_store(sender.public_bytes, sender.agent_id, now)


def _release_reply(envelope: Envelope, pending: PendingRequests | None,
                  claimed: tuple[bytes, float] | None) -> None:
    """Put back what :func:`_claim_reply` took: the reply was refused after all."""
    if claimed is not None and pending is not None:
        pending.release(envelope.reply_to, claimed)

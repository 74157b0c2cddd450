"""Sessions: authenticated encryption of messages after the handshake.

A session message is ``header (8 bytes) || ciphertext || tag (16 bytes)``. The header is
``LE64(type << 56 | counter)``; the AEAD nonce is ``0^4 || header`` and there is no
associated data: a header that was changed in transit names another nonce, so the tag
fails. Each direction has its own key. Counters are explicit (56 bits), so a receiver can
run in one of two modes (``spec/protocol.md`` section 5):

* ordered (the default, for streams): the next counter is required;
* unordered (datagrams, queues): an RFC 6479 sliding window accepts each counter once.

Either way the receive state moves only after the AEAD tag has verified. Keys change by
epoch: counter ``c`` belongs to epoch ``c >> 32`` and epoch ``e + 1`` uses
``REKEY(key_e)``. :meth:`Session.rekey` sends a REKEY message and jumps to the next epoch,
discarding the old sending key.
"""

from __future__ import annotations

import struct
from typing import NoReturn

from . import audit, crypto
from .errors import (
    AuthenticationError,
    CounterExhausted,
    DecodeError,
    InvalidArgument,
    InvalidState,
    ProtocolViolation,
    ReplayDetected,
)

__all__ = [
    "COUNTER_BITS",
    "DEFAULT_MAX_MESSAGE",
    "EPOCH_BITS",
    "HEADER_LEN",
    "OVERHEAD",
    "REPLAY_WINDOW",
    "ReplayWindow",
    "Session",
]

DATA, CLOSE, REKEY = 0, 1, 2
HEADER_LEN = 8
OVERHEAD = HEADER_LEN + crypto.AEAD_TAG_LEN
COUNTER_BITS = 56
COUNTER_MASK = (1 << COUNTER_BITS) - 1
EPOCH_BITS = 32
DEFAULT_MAX_MESSAGE = (1 << 20) + OVERHEAD
_EXPORTER_LABEL = b"agentauth v1 exporter\x00"

_unpack_header = struct.Struct("<Q").unpack_from
_pack_nonce = struct.Struct("<4xQ").pack
_InvalidTag = crypto.InvalidTag
_Cipher = crypto.ChaCha20Poly1305

_BLOCK_BITS = 64
_BLOCKS = 33
#: Width of the unordered mode's replay window, in messages.
REPLAY_WINDOW = (_BLOCKS - 1) * _BLOCK_BITS  # 2048


class ReplayWindow:
    """RFC 6479 sliding window, with the newest run of consecutive counters kept implicit.

    The highest counter accepted so far, ``top``, is kept by the owner as ``next = top + 1``
    and passed in, so that accepting the next counter in sequence (the common case, which
    the session handles without calling the window at all) costs one store. Every counter
    in ``[run_from, top]`` has been accepted; counters below ``run_from`` are recorded in a
    ring of 64-bit blocks. :meth:`check` is called before decryption and changes nothing;
    :meth:`commit` is called only after the message authenticated.
    """

    __slots__ = ("_blocks", "_run_from")

    def __init__(self) -> None:
        self._blocks = [0] * _BLOCKS
        self._run_from = 0

    def check(self, counter: int, next_: int) -> None:
        """Raise ``replayed`` or ``stale`` unless ``counter`` may still be accepted."""
        if counter >= next_:
            return
        if next_ - 1 - counter >= REPLAY_WINDOW:
            raise ReplayDetected(f"counter {counter} is behind the replay window", code="stale")
        if (counter >= self._run_from
                or self._blocks[(counter >> 6) % _BLOCKS] >> (counter & 63) & 1):
            raise ReplayDetected(f"counter {counter} was already accepted", code="replayed")

    def commit(self, counter: int, next_: int) -> None:
        """Record ``counter`` as accepted; the owner then sets ``next_`` past it if newer."""
        if counter < next_:
            self._blocks[(counter >> 6) % _BLOCKS] |= 1 << (counter & 63)
        elif counter > next_:  # a gap: write the run into the ring, start a new one
            top = next_ - 1
            self._store_run(top)
            current, index = top >> 6, counter >> 6
            blocks = self._blocks
            for i in range(current + 1, current + 1 + min(index - current, _BLOCKS)):
                blocks[i % _BLOCKS] = 0
            self._run_from = counter
        # counter == next_ extends the run: nothing to record

    def _store_run(self, top: int) -> None:
        """Set the bits of the run's counters still inside the window, exactly."""
        low = max(self._run_from, top - REPLAY_WINDOW + 1)
        blocks = self._blocks
        for block in range(low >> 6, (top >> 6) + 1):
            first = max(low - (block << 6), 0)
            last = min(top - (block << 6), 63)
            run = (1 << (last + 1)) - (1 << first)
            i = block % _BLOCKS
            if block << 6 <= self._run_from:  # the run's first block: keep what lies below
                blocks[i] = blocks[i] & ((1 << first) - 1) | run
            else:  # a block the run entered by itself: nothing else lives there
                blocks[i] = run


class Session(crypto.KeyHolder):
    """One end of an established session. Built by the handshake engine, not by hand."""

    _send_cipher: _Cipher  # set by _next_epoch, for the first message and every epoch after
    _recv_cipher: _Cipher  # set by _current_recv_cipher and at each epoch change

    __slots__ = (
        "_channel_binding",
        "_closed",
        "_exporter",
        "_forked",
        "_max_message",
        "_max_payload",
        "_peer_closed",
        "_recv_cipher",
        "_recv_epoch",
        "_recv_key",
        "_recv_limit",
        "_recv_n",
        "_recv_prev",
        "_send_cipher",
        "_send_key",
        "_send_limit",
        "_send_n",
        "_window",
    )

    def __init__(
        self,
        send_key: bytes,
        recv_key: bytes,
        exporter_secret: bytes,
        channel_binding: bytes,
        *,
        ordered: bool = True,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        if max_message < OVERHEAD:
            raise InvalidArgument(f"max_message must be at least {OVERHEAD}")
        # The AEAD contexts of epoch 0 are built by the first message each way: both
        # limits start at 0, so that message takes the checked path, which builds them.
        self._send_key = send_key
        self._send_n = 0
        self._send_limit = 0  # first counter the current cipher may not use
        self._recv_key = recv_key
        self._recv_prev: _Cipher | None = None
        self._recv_epoch = 0
        self._recv_limit = 0  # see open(); 0 until a first message is accepted
        self._recv_n = 0  # ordered: the next counter required; unordered: highest seen + 1
        self._window = None if ordered else ReplayWindow()
        self._exporter = exporter_secret
        self._max_message = max_message
        self._max_payload = max_message - OVERHEAD
        self._channel_binding = channel_binding
        self._closed = False
        self._peer_closed = False
        self._forked = False
        self._track()

    def __repr__(self) -> str:
        mode = "ordered" if self._window is None else "unordered"
        return (f"Session({mode}, sent={self._send_n}, closed={self.closed}, "
                f"peer_closed={self.peer_closed})")

    @property
    def channel_binding(self) -> bytes:
        """The final handshake hash: equal at both ends and unique to this session."""
        return self._channel_binding

    @property
    def max_message(self) -> int:
        """The longest session message, in bytes, this end sends or accepts."""
        return self._max_message

    @property
    def max_payload(self) -> int:
        """The largest payload, in bytes: :attr:`max_message` less the overhead."""
        return self._max_payload

    @property
    def closed(self) -> bool:
        """True once this end sent CLOSE: nothing more can be sealed."""
        return self._closed

    @property
    def peer_closed(self) -> bool:
        """True once the peer's CLOSE arrived: nothing more is accepted."""
        return self._peer_closed

    # ----------------------------------------------------------------- sending

    def seal(self, payload: bytes) -> bytes:
        """Encrypt ``payload`` as the next DATA message."""
        if type(payload) is not bytes or len(payload) > self._max_payload:
            self._refuse_payload(payload)
        n = self._send_n
        if n >= self._send_limit:
            n = self._next_epoch()
        self._send_n = n + 1
        nonce = _pack_nonce(n)  # DATA is type 0: the header is the counter alone
        return nonce[4:] + self._send_cipher.encrypt(nonce, payload, None)

    def rekey(self) -> bytes:
        """Return a REKEY message and switch to the next epoch's key at once.

        The old sending key is gone when this returns. On an unordered session, messages
        of the old epoch still in flight arrive behind the replay window (``stale``):
        rekey when the channel is quiet (``spec/protocol.md`` section 5.6).
        """
        if self._send_n >= self._send_limit:
            self._next_epoch()  # at an epoch boundary: what the next send would do anyway
        if self._send_limit >= COUNTER_MASK:
            raise CounterExhausted("no epoch is left to rekey into")
        message = self._control(REKEY, self._send_n)
        self._send_n = self._send_limit
        self._next_epoch()
        return message

    def close(self) -> bytes:
        """Return a CLOSE message; afterwards :meth:`seal` raises ``invalid_state``.

        The last counter of the session is kept for CLOSE, so a session whose counter is
        used up can still close.
        """
        self._refuse_if_forked()
        if self._send_limit == 0:
            self._first_cipher()
        n = self._send_n
        if n >= self._send_limit and not (n == COUNTER_MASK and not self.closed):
            n = self._next_epoch()
        message = self._control(CLOSE, n)
        self._closed = True
        self._send_limit = -1
        return message

    def _control(self, kind: int, n: int) -> bytes:
        self._send_n = n + 1
        nonce = _pack_nonce(kind << COUNTER_BITS | n)
        return nonce[4:] + self._send_cipher.encrypt(nonce, b"", None)

    def keys_for_vectors(self) -> tuple[bytes, bytes, bytes]:
        """(sending key, receiving key, exporter secret), for publishing test vectors only.

        The vectors print them so that another implementation can check its key schedule;
        nothing else in the library reads a session's keys."""
        return self._send_key, self._recv_key, self._exporter

    def forge_for_vectors(self, kind: int, payload: bytes, counter: int | None = None
                          ) -> bytes:
        """A message of header type ``kind`` carrying ``payload`` at ``counter`` (None: the
        next counter), sealed under the current sending key with no check of type, counter
        or epoch: for writing *negative* test vectors only, which need messages a
        conforming sender never writes (a control message with a payload, a counter far
        past the epoch's end). Never use it on a session that carries real traffic."""
        if self._send_limit == 0:  # the epoch-0 cipher is built by the first message
            self._next_epoch()
        n = self._send_n if counter is None else counter
        self._send_n = n + 1
        self._send_limit = max(self._send_limit, n + 1)
        nonce = _pack_nonce(kind << COUNTER_BITS | n)
        return nonce[4:] + self._send_cipher.encrypt(nonce, payload, None)

    def _after_fork(self) -> None:
        # Parent and child would seal under the same counters: the child gets nothing.
        self._forked = True
        self._send_limit = self._recv_limit = -1  # both fast paths now defer to the checks
        self._send_key = self._recv_key = self._exporter = b""
        self._recv_prev = None
        for name in ("_send_cipher", "_recv_cipher"):
            if hasattr(self, name):
                delattr(self, name)

    def _first_cipher(self) -> None:
        self._send_cipher = _Cipher(self._send_key)
        self._send_limit = 1 << EPOCH_BITS

    def _refuse_if_forked(self) -> None:
        if self._forked:
            raise InvalidState("this session belongs to the process that forked; run a new "
                               "handshake in the child")

    def _next_epoch(self) -> int:
        """Move the sending side to the next epoch (or refuse); return the counter to use."""
        self._refuse_if_forked()
        if self.closed:
            raise InvalidState("the session is closed for sending")
        if self._send_limit == 0:  # the first message: epoch 0's cipher
            self._first_cipher()
            if self._send_n < self._send_limit:
                return self._send_n
        n = self._send_limit
        if n >= COUNTER_MASK:  # the last counter is kept for CLOSE
            raise CounterExhausted("the session's sending counter is used up")
        self._send_key = crypto.rekey(self._send_key)
        self._send_cipher = _Cipher(self._send_key)
        self._send_limit = min(n + (1 << EPOCH_BITS), COUNTER_MASK)
        self._send_n = n
        return n

    def _refuse_payload(self, payload: object) -> NoReturn:
        if type(payload) is not bytes:
            raise InvalidArgument("session payloads are bytes")
        raise InvalidArgument(f"payload of {len(payload)} bytes is over the limit of "
                              f"{self._max_payload}")

    # --------------------------------------------------------------- receiving

    def open(self, message: bytes) -> bytes | None:
        """Authenticate and decrypt one message.

        Returns the payload of a DATA message, or None for a control message (after a
        CLOSE, :attr:`peer_closed` is True and every later call raises).
        """
        if type(message) is not bytes:
            raise InvalidArgument("session messages are bytes")
        size = len(message)
        if size < OVERHEAD or size > self._max_message:
            self._reject_size(size)
        (value,) = _unpack_header(message)
        # Fast path, the same in both modes: a DATA message (type 0, so value is the
        # counter) that is the next in sequence, below _recv_limit (the end of the current
        # epoch; earlier while an unordered session still keeps the previous epoch's key,
        # and -1 once the peer has closed).
        if value == self._recv_n and value < self._recv_limit:
            try:
                payload = self._recv_cipher.decrypt(_pack_nonce(value), message[8:], None)
            except _InvalidTag:
                raise AuthenticationError("message authentication failed",
                                          code="decrypt_failed") from None
            self._recv_n = value + 1
            return payload
        return self._open_checked(message, value)

    def _current_recv_cipher(self) -> _Cipher:
        if self._recv_limit == 0:  # nothing accepted yet: it may not exist (a rebuild is cheap)
            self._recv_cipher = _Cipher(self._recv_key)
        return self._recv_cipher

    def _receive_limit(self) -> int:
        """The first counter the fast path must leave to :meth:`_open_checked`."""
        base = self._recv_epoch << EPOCH_BITS
        if self._recv_prev is not None:
            # The previous epoch's key goes once no counter of that epoch can pass the
            # window: when the highest counter seen reaches base + REPLAY_WINDOW.
            if self._recv_n - 1 < base + REPLAY_WINDOW:
                return base + REPLAY_WINDOW
            self._recv_prev = None
        return base + (1 << EPOCH_BITS)

    def _reject_size(self, size: int) -> NoReturn:
        if size > self._max_message:
            raise DecodeError(f"session message is {size} bytes, over the limit of "
                              f"{self._max_message}", code="oversize")
        raise DecodeError(f"session message is {size} bytes, shorter than its header and tag",
                          code="malformed")

    def _open_checked(self, message: bytes, value: int) -> bytes | None:
        self._refuse_if_forked()
        if self.peer_closed:
            raise ProtocolViolation("the peer closed the session", code="session_closed")
        kind, n = value >> COUNTER_BITS, value & COUNTER_MASK
        if kind > REKEY:
            raise DecodeError(f"unknown session message type {kind}", code="malformed")
        window = self._window
        if window is None:
            if n < self._recv_n:
                audit.emit("replay_refused", kind="session", code="replayed", counter=n)
                raise ReplayDetected(f"counter {n} was already accepted or skipped",
                                     code="replayed")
            if n != self._recv_n:
                raise ProtocolViolation(f"expected counter {self._recv_n}, got {n}",
                                        code="out_of_order")
        else:
            try:
                window.check(n, self._recv_n)
            except ReplayDetected as exc:  # (free when nothing is raised)
                audit.emit("replay_refused", kind="session", code=exc.code, counter=n)
                raise
        epoch = n >> EPOCH_BITS
        if epoch == self._recv_epoch:
            cipher = self._current_recv_cipher()
        elif epoch == self._recv_epoch + 1:  # (no key bytes left in this frame's locals)
            cipher = _Cipher(crypto.rekey(self._recv_key))
        elif epoch == self._recv_epoch - 1 and self._recv_prev is not None:
            cipher = self._recv_prev
        else:
            raise AuthenticationError(f"no key for epoch {epoch} of counter {n}",
                                      code="decrypt_failed")
        try:
            payload = cipher.decrypt(_pack_nonce(value), message[8:], None)
        except _InvalidTag:
            raise AuthenticationError("message authentication failed",
                                      code="decrypt_failed") from None
        if kind != DATA and payload:
            raise DecodeError("a control message carries a payload", code="malformed")
        # Authenticated and well formed: only now does any receive state change.
        if epoch == self._recv_epoch + 1:
            self._recv_prev = self._current_recv_cipher() if window is not None else None
            self._recv_key = crypto.rekey(self._recv_key)
            self._recv_cipher = cipher
            self._recv_epoch = epoch
        if window is not None:
            window.commit(n, self._recv_n)
        if n >= self._recv_n:
            self._recv_n = n + 1
        self._recv_limit = self._receive_limit()
        if kind == DATA:
            return payload
        if kind == CLOSE:
            self._peer_closed = True
            self._recv_limit = -1
        elif window is None:  # REKEY on an ordered session: the sender jumped
            self._recv_n = (self._recv_epoch + 1) << EPOCH_BITS
        return None

    # ----------------------------------------------------------------- exports

    def export(self, label: bytes, context: bytes = b"", length: int = 32) -> bytes:
        """Derive an application key bound to this session (1 to 64 bytes).

        Both ends get the same value for the same ``label`` and ``context``; different
        labels give independent keys.
        """
        if (type(label) is not bytes or type(context) is not bytes or type(length) is not int
                or not 1 <= length <= 64 or not 1 <= len(label) <= 255):
            raise InvalidArgument("label and context are bytes, the label 1..255 bytes long, "
                                  "and length is an integer in 1..64")
        self._refuse_if_forked()
        data = _EXPORTER_LABEL + bytes([len(label)]) + label + context
        return crypto.blake2b_keyed(self._exporter, data, length)

"""Alerts: the one message a side sends when its handshake fails (spec section 4.14).

An alert is the field map ``{0: 1, 1: code}``, at most :data:`MAX_ALERT` (23) bytes:
shorter than every handshake message (HS1 has at least 33 bytes) and every session
message (24), so its length alone tells it apart wherever one may arrive. It carries the
code of the refusal and nothing else. It is not authenticated: a receiver reports it as
the peer's claim (:class:`~agentauth.errors.PeerRefused`) and only as the end of that
handshake.

Sans-I/O like the engines: :func:`alert_for` says what (if anything) a failed handshake
sends, :func:`read_alert` reads one, and the I/O layers only carry the bytes.
"""

from __future__ import annotations

from typing import Final

from . import wire
from .errors import DecodeError, PeerRefused

__all__ = ["ALERT_CODES", "ALERT_VERSION", "MAX_ALERT", "alert_for", "encode_alert",
           "is_alert", "read_alert"]

#: The only version of the alert.
ALERT_VERSION: Final = 1
#: The longest an alert is, in bytes; no handshake or session message is this short.
MAX_ALERT: Final = 23

#: The codes an alert may carry (spec 4.14's table), and so the only ones a receiver names.
ALERT_CODES: Final = frozenset({
    # the handshake's own steps (4.3 to 4.7, 4.11, 4.13)
    "oversize", "malformed", "non_canonical", "unknown_field", "out_of_order",
    "no_common_version", "low_order_point", "reflection", "decrypt_failed",
    "bad_signature", "downgrade", "unexpected_peer", "untrusted_peer", "clock_skew",
    "handshake_timeout",
    # a credentials check (10.9)
    "chain_too_long", "root_invalid", "untrusted_root", "root_scope", "depth_exceeded",
    "revoked", "widened_resource", "widened_action", "widened_constraint",
    "widened_time", "not_yet_valid", "expired", "holder_mismatch", "not_authorized",
    # the refusing side's own fault (7.1, 11)
    "invalid_argument", "invalid_state", "store_full", "store_unavailable",
})


def encode_alert(code: str) -> bytes:
    """The alert carrying ``code`` (one of :data:`ALERT_CODES`)."""
    assert code in ALERT_CODES, code
    message = wire.encode_map(ALERT_VERSION, code)
    assert len(message) <= MAX_ALERT
    return message


def is_alert(message: bytes) -> bool:
    """Whether ``message`` is short enough to be read as an alert where one may arrive
    (and so, wherever it arrives, is never answered with one)."""
    return len(message) <= MAX_ALERT


def alert_for(code: str) -> bytes | None:
    """The alert a handshake that failed with ``code`` sends, or None (spec 4.14,
    **Sending**, rule 2: a code outside the table sends nothing)."""
    return encode_alert(code) if code in ALERT_CODES else None


def read_alert(message: bytes) -> PeerRefused:
    """Read an alert (spec 4.14, **Reading**): the :class:`PeerRefused` it amounts to, or
    the :class:`DecodeError` that says why it is not one, raised. ``message`` is at most
    :data:`MAX_ALERT` bytes (:func:`is_alert`)."""
    version, code = wire.decode_map(message, 2, MAX_ALERT, "alert")  # 1
    if type(version) is not int or type(code) is not str:  # 2
        raise DecodeError("an alert's version is not an integer or its code not a string",
                          code="malformed")
    if version != ALERT_VERSION:  # 3
        raise DecodeError(f"an alert of version {version}; only {ALERT_VERSION} exists",
                          code="malformed")
    if code not in ALERT_CODES:  # 4
        raise DecodeError("an alert names a code no alert carries", code="malformed")
    return PeerRefused("the peer ended the handshake with an alert, which is not "
                       "authenticated", claimed=code)  # 5

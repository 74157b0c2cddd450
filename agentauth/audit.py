"""Audit events (spec section 14.5): every authentication decision, through ``logging``.

Events go to the logger ``agentauth.audit``: decisions that admit something at INFO, those
that refuse at WARNING. Each record's message is one readable line and its ``audit``
attribute the event as a dict of strings and integers (``event``, then fields such as
``role``, ``peer``, ``code``, ``root``, ``holder``, ``link``), never a secret: only agent ids,
link ids, codes and counts. Nothing is built unless a handler would take the record, so an
agent that does not listen pays one ``isEnabledFor`` call per decision.

A tamper-evident file of these events (a logging handler, and its verifier) is in
:mod:`agentauth.keys.auditlog`.
"""

from __future__ import annotations

import json
import logging
from typing import Final

__all__ = [
    "AUDIT_LOGGER",
    "EVENTS",
    "emit",
]

AUDIT_LOGGER: Final = "agentauth.audit"
#: Every event name, with the level it is logged at.
EVENTS: Final = {
    "handshake_accepted": logging.INFO,
    "handshake_refused": logging.WARNING,
    "token_verified": logging.INFO,
    "token_refused": logging.WARNING,
    "replay_refused": logging.WARNING,
    "revocation_stored": logging.INFO,
    "rotation_accepted": logging.INFO,
}
_logger = logging.getLogger(AUDIT_LOGGER)
_enabled = _logger.isEnabledFor
# A library's events reach the handlers its application configures, and nowhere else: with
# none configured, Python's last-resort handler would print every refusal to stderr.
logging.getLogger("agentauth").addHandler(logging.NullHandler())


def emit(event: str, **fields: str | int | None) -> None:
    """Log the audit event ``event`` with ``fields`` (None values are left out)."""
    level = EVENTS[event]
    if not _enabled(level):
        return
    data: dict[str, str | int] = {"event": event}
    data.update((k, v) for k, v in fields.items() if v is not None)
    text = " ".join(f"{k}={_printable(v)}" for k, v in data.items() if k != "event")
    _logger.log(level, "%s %s", event, text, extra={"audit": data})


def _printable(value: str | int) -> str:
    """A value for the one-line message: as it is if it is printable and holds no space,
    ``=``, quote or backslash, else a JSON string (control characters escaped), so that a
    peer's value (a resource name) can neither start a line nor pose as another field."""
    text = str(value)
    if text.isprintable() and not any(c in text for c in ' ="\\'):
        return text
    return json.dumps(text)


def enabled(event: str) -> bool:
    """Whether an ``event`` would reach a handler (check before computing its fields)."""
    return _enabled(EVENTS[event])

"""Revocation notices travel between peers over their channels: digest first, then what is
missing, in both directions at once (spec 10.9).

Both sides call :func:`exchange_revocations` on a fresh channel. Each sends a digest of its
store; if the digests differ, each sends its list of revoked ids, then the notices the
other lacks. Every notice received is verified by the store before it is kept; a refused
one is dropped and counted, and never passed on.
"""

from __future__ import annotations

from typing import Any

import anyio

from .. import wire
from ..capability.revocation import RevocationStore, digest
from ..errors import AgentAuthError, DecodeError

__all__ = ["exchange_revocations"]

_LIMIT = 1 << 20
_MAX_IDS = 20_000


async def exchange_revocations(channel: Any, store: RevocationStore) -> tuple[int, int]:
    """Synchronise ``store`` with the peer's over ``channel`` (an established agentauth
    channel); return (notices received and kept, notices refused)."""
    ours = store.ids()
    mine = digest(ours)
    theirs = await _swap(channel, wire.encode_map(mine))
    (their_digest,) = wire.decode_map(theirs, 1, _LIMIT, "revocation digest")
    if their_digest == mine:
        return 0, 0
    listing = await _swap(channel, wire.encode_map(ours))
    (their_ids,) = wire.decode_map(listing, 1, _LIMIT, "revocation ids")
    if (type(their_ids) is not list or len(their_ids) > _MAX_IDS
            or any(type(i) is not bytes or len(i) != 32 for i in their_ids)):
        raise DecodeError("a revocation listing is a list of 32-byte ids", code="malformed")
    missing = set(ours) - set(their_ids)
    notices = [n for n in (store.notice(i) for i in sorted(missing)) if n is not None]
    incoming = await _swap(channel, wire.encode_map(notices))
    (received,) = wire.decode_map(incoming, 1, _LIMIT, "revocation notices")
    if type(received) is not list or any(type(n) is not bytes for n in received):
        raise DecodeError("revocation notices are a list of byte strings", code="malformed")
    kept = refused = 0
    for notice in received:
        try:
            kept += store.add(notice)
        except AgentAuthError:
            refused += 1
    return kept, refused


async def _swap(channel: Any, message: bytes) -> bytes:
    """Send ``message`` and receive the peer's, at the same time (neither side waits).

    The first error of either direction is raised as itself, not as a group.
    """
    received: list[bytes] = []
    errors: list[BaseException] = []

    async def run(step: Any, *args: Any) -> None:
        try:
            result = await step(*args)
        except Exception as exc:
            errors.append(exc)
            tg.cancel_scope.cancel()
        else:
            if result is not None:
                received.append(result)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, channel.receive)
        tg.start_soon(run, channel.send, message)
    if errors:
        raise errors[0]
    return received[0]

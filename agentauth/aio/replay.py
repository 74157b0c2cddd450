"""The async face of the replay stores (one small interface for every backend), and
envelopes opened through it.

A memory store answers at once, in the calling task; a store that does I/O (SQLite,
Redis) runs in a worker thread, so the event loop never waits on a disk or a network.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, cast

import anyio.to_thread

from ..envelope import DEFAULT_SKEW, DEFAULT_WINDOW, Envelope, PendingRequests, opening
from ..errors import InvalidArgument
from ..identity import Identity, PeerKey
from ..replay import ReplayStore, Shares
from ..stores import MemoryReplayStore
from ..verdict import ask, drive_async

__all__ = ["AsyncReplayStore", "async_replay_store", "open_envelope"]


class AsyncReplayStore(Protocol):
    """Atomic check-and-insert of a key with an expiry (spec section 11)."""

    async def check_and_insert(self, key: bytes, expires: float) -> bool:
        """True if ``key`` was new (now remembered until ``expires``), False if seen."""

    async def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]
                                    ) -> list[bool]:
        """One answer per ``(key, expires)``, in order."""


class _Direct:
    def __init__(self, store: ReplayStore) -> None:
        self._store = store

    async def check_and_insert(self, key: bytes, expires: float) -> bool:
        return self._store.check_and_insert(key, expires)

    async def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]
                                    ) -> list[bool]:
        return self._store.check_and_insert_many(items)


class _Threaded:
    def __init__(self, store: ReplayStore, limiter: anyio.CapacityLimiter | None) -> None:
        self._store = store
        self._limiter = limiter

    async def check_and_insert(self, key: bytes, expires: float) -> bool:
        return await anyio.to_thread.run_sync(self._judged, key, expires,
                                              limiter=self._limiter)

    def _judged(self, key: bytes, expires: float) -> bool:
        # Judged in the worker thread: an awaitable answer is refused (and closed) there,
        # rather than handed back to an event loop that refuses it with a bare TypeError.
        return ask("replay store", True, self._store.check_and_insert, key, expires)

    async def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]
                                    ) -> list[bool]:
        return await anyio.to_thread.run_sync(self._store.check_and_insert_many, items,
                                              limiter=self._limiter)


def async_replay_store(store: ReplayStore | AsyncReplayStore, *,
                       limiter: anyio.CapacityLimiter | None = None) -> AsyncReplayStore:
    """The async interface over ``store`` (memory: in the task; others: in a thread,
    holding one of ``limiter``'s tokens if given, else one of the default limiter's). A
    store that is async already (its ``check_and_insert`` an ``async def``) is returned
    as it is: it has the same method names as a synchronous one, so only that tells them
    apart, and calling it from a thread would give back a coroutine, never an answer."""
    if inspect.iscoroutinefunction(getattr(store, "check_and_insert", None)):
        return cast(AsyncReplayStore, store)
    if not isinstance(store, ReplayStore):
        raise InvalidArgument("store is a replay store (check_and_insert and "
                              "check_and_insert_many)")
    return _Direct(store) if isinstance(store, MemoryReplayStore) else _Threaded(store,
                                                                                  limiter)


async def open_envelope(
    data: bytes,
    me: Identity,
    store: AsyncReplayStore | ReplayStore,
    *,
    clock: Callable[[], float] = time.time,
    window: int = DEFAULT_WINDOW,
    skew: int = DEFAULT_SKEW,
    trust: Callable[[PeerKey], bool | Awaitable[bool]] | None = None,
    pending: PendingRequests | None = None,
    shares: Shares | None = None,
) -> Envelope:
    """:func:`agentauth.open_envelope` with an async replay store: every check, in the
    same order; the nonce is remembered last, once everything else has passed.

    ``trust`` may be an ``async def``: its coroutine is awaited and the awaited value
    judged (spec 7.1: exactly ``True`` accepts the sender). ``store`` may also be a
    synchronous :class:`~agentauth.ReplayStore`: it is put behind
    :func:`async_replay_store` (a disk or network store then runs in a thread)."""
    store = async_replay_store(store)  # an async store is returned as it is
    return await drive_async(opening(data, me, store, now=clock(), window=window,
                                     skew=skew, trust=trust, pending=pending,
                                     shares=shares))

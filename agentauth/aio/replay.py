"""The async face of the replay stores: one small interface for every backend.

A memory store answers at once, in the calling task; a store that does I/O (SQLite,
Redis) runs in a worker thread, so the event loop never waits on a disk or a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import anyio.to_thread

from ..errors import InvalidArgument
from ..stores import MemoryReplayStore, ReplayStore

__all__ = ["AsyncReplayStore", "async_replay_store"]


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
    def __init__(self, store: ReplayStore) -> None:
        self._store = store

    async def check_and_insert(self, key: bytes, expires: float) -> bool:
        return await anyio.to_thread.run_sync(self._store.check_and_insert, key, expires)

    async def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]
                                    ) -> list[bool]:
        return await anyio.to_thread.run_sync(self._store.check_and_insert_many, items)


def async_replay_store(store: ReplayStore) -> AsyncReplayStore:
    """The async interface over ``store`` (memory: in the task; others: in a thread)."""
    if not isinstance(store, ReplayStore):
        raise InvalidArgument("store is a replay store (check_and_insert and "
                              "check_and_insert_many)")
    return _Direct(store) if isinstance(store, MemoryReplayStore) else _Threaded(store)

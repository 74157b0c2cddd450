"""Stores that remember what must not be accepted twice or forgotten: replay keys (spec
section 11) and revocation notices (spec 10.8), in memory, in SQLite and in Redis.

* :class:`MemoryReplayStore`, :class:`MemoryRevocationStore`: one process; bounded.
* :class:`SQLiteReplayStore`, :class:`SQLiteRevocationStore`: a file; they refuse replays
  and keep revocations across restarts and crashes, and several processes on one machine
  may share it.
* :class:`RedisReplayStore`, :class:`RedisRevocationStore`: a Redis server shared by
  replicas on several machines.

What a replay store does, and the per-source shares a verifier keeps beside one, are in
:mod:`agentauth.replay`; what a revocation store keeps and refuses, in
:mod:`agentauth.capability.revocation`. Stores are synchronous and quick;
:func:`agentauth.aio.async_replay_store` gives the async interface, running the ones that
do I/O in a worker thread.
"""

from .memory import MemoryReplayStore, MemoryRevocationStore
from .redis import RedisReplayStore, RedisRevocationStore, RedisTable
from .sqlite import SQLiteReplayStore, SQLiteRevocationStore, open_sqlite, sqlite_failure

__all__ = [
    "MemoryReplayStore",
    "MemoryRevocationStore",
    "RedisReplayStore",
    "RedisRevocationStore",
    "RedisTable",
    "SQLiteReplayStore",
    "SQLiteRevocationStore",
    "open_sqlite",
    "sqlite_failure",
]

"""Replay stores: atomic check-and-insert of a key with an expiry (spec section 11).

``check_and_insert(key, expires)`` answers True ("new": the key is now remembered until at
least ``expires``) or False ("seen": a live entry already holds it), atomically: of any
number of concurrent calls with one key, across threads, processes or machines sharing the
store, exactly one is answered True. Callers insert a key only after the message it comes
from has verified, with ``expires`` the last moment that message could still be accepted
(its acceptance window plus the clock skew).

A store never forgets a live entry. One that cannot take a key (full of live entries, or
unreachable) raises :class:`~agentauth.errors.StoreError`, and the message must be refused:
the check fails closed.

* :class:`MemoryReplayStore`: one process; bounded by entry count; expiry by time buckets,
  reclaimed a few entries per call (no pause); about 100 bytes per entry.
* :class:`SQLiteReplayStore`: a file; refuses replays across restarts and crashes, and
  several processes on one machine may share it.
* :class:`RedisReplayStore`: a Redis server shared by replicas on several machines
  (``SET key 1 NX PX ttl``; pipelined for several keys).

Stores are synchronous and quick; :func:`agentauth.aio.async_replay_store` gives the async
interface, running the ones that do I/O in a worker thread.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from . import crypto, files
from .errors import FileError, InvalidArgument, InvalidState, StoreError

if TYPE_CHECKING:
    import redis

__all__ = [
    "MAX_KEY",
    "MemoryReplayStore",
    "RedisReplayStore",
    "RedisTable",
    "ReplayStore",
    "SQLiteReplayStore",
    "open_sqlite",
]

MAX_KEY: Final = 256  # bytes; callers build keys from a sender id and a nonce
MAX_EXPIRES: Final = 2**53  # seconds: far beyond any real expiry, exact in a float
_RECLAIM_STEP = 4  # expired entries reclaimed per call: more than one call inserts


def _check_key(key: bytes, expires: float) -> None:
    if type(key) is not bytes or not 0 < len(key) <= MAX_KEY:
        raise InvalidArgument(f"a replay key is 1 to {MAX_KEY} bytes")
    if type(expires) not in (int, float) or not 0 <= expires <= MAX_EXPIRES:  # NaN too
        raise InvalidArgument(f"expires is a time in seconds from 0 to {MAX_EXPIRES}")


@runtime_checkable
class ReplayStore(Protocol):
    """What every replay store does."""

    def check_and_insert(self, key: bytes, expires: float) -> bool:
        """Remember ``key`` until ``expires`` (Unix seconds) and return True, or return
        False if a live entry already holds it. Raises StoreError if it cannot."""

    def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        """:meth:`check_and_insert` for several keys; one answer each, in order."""


class MemoryReplayStore:
    """Keys in this process's memory, at most ``capacity`` of them.

    Keys are kept as 16-byte keyed BLAKE2b digests (the key is random per store, so no one
    can aim for a collision), in a set, and in time buckets of ``bucket`` seconds by expiry.
    Every call reclaims up to a few entries of buckets that have wholly expired; an entry is
    never reclaimed before its expiry and at most one bucket after it. A full store first
    reclaims what has expired, then refuses (``store_full``).
    """

    def __init__(self, capacity: int = 1_000_000, *, bucket: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        if type(capacity) is not int or capacity < 1:
            raise InvalidArgument("capacity is a positive integer")
        if not isinstance(bucket, int | float) or not 0 < bucket <= 3600:
            raise InvalidArgument("bucket is a positive number of seconds, at most 3600")
        self._capacity = capacity
        self._width = float(bucket)
        self._clock = clock
        self._digest = crypto.keyed_hasher(os.urandom(32), 16)
        self._seen: set[bytes] = set()
        self._buckets: dict[int, list[bytes]] = {}
        self._order: list[int] = []  # a heap of bucket numbers
        self._draining: list[bytes] = []  # an expired bucket being reclaimed
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_insert(self, key: bytes, expires: float) -> bool:
        """See :class:`ReplayStore`."""
        _check_key(key, expires)
        digest = self._digest(key)
        with self._lock:
            now = self._clock()
            if self._draining or (self._order and self._order[0] * self._width < now):
                self._reclaim(now, _RECLAIM_STEP)
            if expires < now or digest in self._seen:
                return False
            self._room(now, 1)
            self._add(digest, expires)
            return True

    def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        """See :class:`ReplayStore`: all or nothing (a batch that does not fit changes
        nothing)."""
        for key, expires in items:
            _check_key(key, expires)
        digests = [self._digest(key) for key, _ in items]
        with self._lock:
            now = self._clock()
            answers, fresh = [], set()
            for digest, (_, expires) in zip(digests, items, strict=True):
                new = not (expires < now or digest in self._seen or digest in fresh)
                answers.append(new)
                if new:
                    fresh.add(digest)
            self._room(now, len(fresh))
            for digest, (_, expires), new in zip(digests, items, answers, strict=True):
                if new:
                    self._add(digest, expires)
            return answers

    def _room(self, now: float, count: int) -> None:
        if len(self._seen) + count > self._capacity:
            self._reclaim(now, len(self._seen))
            if len(self._seen) + count > self._capacity:
                raise StoreError(f"the replay store holds {self._capacity} live entries",
                                 code="store_full")

    def _add(self, digest: bytes, expires: float) -> None:
        number = math.ceil(expires / self._width)
        entries = self._buckets.get(number)
        if entries is None:
            entries = self._buckets[number] = []
            heapq.heappush(self._order, number)
        entries.append(digest)
        self._seen.add(digest)

    def _reclaim(self, now: float, budget: int) -> None:
        """Forget up to ``budget`` entries of buckets whose whole span has passed."""
        seen, draining = self._seen, self._draining
        while budget > 0:
            if not draining:
                order = self._order
                if not order or order[0] * self._width >= now:
                    return
                draining.extend(self._buckets.pop(heapq.heappop(order)))
            take = min(budget, len(draining))
            for _ in range(take):
                seen.discard(draining.pop())
            budget -= take


# ------------------------------------------------------------------ SQLite

_SQLITE_MAGIC = b"SQLite format 3\x00"


def open_sqlite(path: str | os.PathLike[str], *, create: bool, what: str,
                timeout: float = 5.0, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to the SQLite store at ``path``: the one way a store file is opened.

    A store may be created only by those that write it (``create=True``: an agent, a
    server, ``revoke``); where the path names nothing, the file is made. Whoever only reads
    it (``create=False``: ``verify --revoked``) needs it to exist. Either way an existing
    path must be a regular file that already holds a SQLite database: an empty file, a
    FIFO, a device, a directory or a file of another kind is refused before SQLite opens
    it, so it is never converted into a database and nothing is left beside it.
    Refusals are a :class:`~agentauth.errors.FileError` (the path) or ``store_unavailable``
    (not a database, or SQLite failed); no ``sqlite3`` error escapes."""
    name = os.fspath(path)
    try:
        head: bytes | None = files.read_prefix(name, len(_SQLITE_MAGIC), what=what)
    except FileError as exc:
        folder = os.path.dirname(name) or "."
        if not (create and exc.code == "file_not_found" and os.path.isdir(folder)):
            raise
        head = None  # a new store, made below
    if head is not None and head != _SQLITE_MAGIC:
        raise StoreError(f"{what} {name!r} is not a SQLite database"
                         + (" (it is empty)" if not head else ""), code="store_unavailable")
    # Opened read-write even to read (a read-only connection to a WAL database would leave
    # its -wal and -shm files behind), but created only when that is allowed.
    uri = "file:" + urllib.parse.quote(os.path.abspath(name)) + (
        "?mode=rwc" if create else "?mode=rw")
    try:
        return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout,
                               check_same_thread=check_same_thread)
    except sqlite3.Error as exc:
        raise StoreError(f"{what} {name!r} cannot be opened ({type(exc).__name__})",
                         code="store_unavailable") from None


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS replay (key BLOB PRIMARY KEY, expires INTEGER NOT NULL)"
    " WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS replay_expires ON replay (expires)",
    "CREATE TABLE IF NOT EXISTS replay_count (one INTEGER PRIMARY KEY CHECK (one = 1),"
    " n INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO replay_count VALUES (1, (SELECT count(*) FROM replay))",
    "CREATE TRIGGER IF NOT EXISTS replay_added AFTER INSERT ON replay"
    " BEGIN UPDATE replay_count SET n = n + 1; END",
    "CREATE TRIGGER IF NOT EXISTS replay_removed AFTER DELETE ON replay"
    " BEGIN UPDATE replay_count SET n = n - 1; END",
)
# One statement: insert the key if there is room, or take over an entry that has expired;
# touch nothing if a live entry holds it. SQLite runs it atomically, across processes.
_INSERT = (
    "INSERT INTO replay (key, expires) SELECT ?1, ?2"
    " WHERE (SELECT n FROM replay_count) < ?3"
    " ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE replay.expires < ?4"
)
_PRUNE = ("DELETE FROM replay WHERE key IN"
          " (SELECT key FROM replay WHERE expires < ? ORDER BY expires LIMIT ?)")
_PRUNE_EVERY = 256  # inserts between two prunes of up to 2 * _PRUNE_EVERY expired rows


class SQLiteReplayStore:
    """Keys in a SQLite file (WAL): replays stay refused across restarts and crashes of
    the process, and processes on one machine can share the file.

    At most ``capacity`` entries: the count is kept by triggers in the same transaction
    as each insert, so the bound is exact, and a full store refuses (``store_full``).
    Expired rows are deleted a few hundred at a time as inserts go on. ``durable=True``
    syncs every insert to disk (surviving power loss, not only a crash of the process),
    at the cost of an fsync each. Times are kept in milliseconds.

    The file is created if nothing is at ``path``; an existing path must be a SQLite
    database (:func:`open_sqlite`): an empty file, a FIFO or a directory is refused, never
    converted.
    """

    def __init__(self, path: str | Path, *, capacity: int = 10_000_000,
                 durable: bool = False, timeout: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        if type(capacity) is not int or capacity < 1:
            raise InvalidArgument("capacity is a positive integer")
        self._capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._inserts = 0
        try:
            self._db = open_sqlite(path, create=True, what="replay store", timeout=timeout,
                                   check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    self._db.execute(statement)
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"the replay database cannot be opened ({type(exc).__name__})",
                             code="store_unavailable") from None

    def check_and_insert(self, key: bytes, expires: float) -> bool:
        """See :class:`ReplayStore`."""
        _check_key(key, expires)
        return self._insert([(key, expires)])[0]

    def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        """See :class:`ReplayStore`: one transaction for all of them."""
        for key, expires in items:
            _check_key(key, expires)
        return self._insert(items) if items else []

    def _insert(self, items: Iterable[tuple[bytes, float]]) -> list[bool]:
        db = self._db
        with self._lock:
            now = _ms(self._clock())
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    answers = [self._one(key, _ms(expires, up=True), now)
                               for key, expires in items]
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"the replay database failed ({type(exc).__name__})",
                                 code="store_unavailable") from None
            self._inserts += len(answers)
            if self._inserts >= _PRUNE_EVERY:
                self._inserts = 0
                with contextlib.suppress(sqlite3.Error):  # committed: housekeeping only
                    db.execute(_PRUNE, (now, 2 * _PRUNE_EVERY))
            return answers

    def _one(self, key: bytes, expires: int, now: int) -> bool:
        if expires < now:
            return False  # no longer acceptable, and its entry may be gone
        if self._db.execute(_INSERT, (key, expires, self._capacity, now)).rowcount == 1:
            return True
        row = self._db.execute("SELECT expires FROM replay WHERE key = ?", (key,)).fetchone()
        if row is not None and row[0] >= now:
            return False  # a live entry holds it
        # No room: make some by deleting what has expired, once, then try again.
        self._db.execute(_PRUNE, (now, 4 * _PRUNE_EVERY))
        if self._db.execute(_INSERT, (key, expires, self._capacity, now)).rowcount == 1:
            return True
        raise StoreError(f"the replay store holds {self._capacity} live entries",
                         code="store_full")

    def __len__(self) -> int:
        with self._lock:
            try:
                (count,) = self._db.execute("SELECT n FROM replay_count").fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"the replay database failed ({type(exc).__name__})",
                                 code="store_unavailable") from None
        return int(count)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _ms(seconds: float, up: bool = False) -> int:
    value = seconds * 1000
    return math.ceil(value) if up else math.floor(value)


# ------------------------------------------------------------------ Redis


class _Redis:
    """A Redis client, its key prefix, and how its failures map to StoreError."""

    def __init__(self, client: redis.Redis | str, prefix: bytes, check_policy: bool,
                 clock: Callable[[], float], margin: float = 0.0) -> None:
        import redis as redis_module  # noqa: PLC0415 (optional: agentauth[redis])

        if type(prefix) is not bytes or not 0 < len(prefix) <= 64 or any(
                c in prefix for c in b"*?[]\\"):
            raise InvalidArgument("prefix is 1 to 64 bytes, with no glob characters")
        self._errors = redis_module.exceptions
        self._client: redis.Redis = (redis_module.Redis.from_url(client)
                                     if isinstance(client, str) else client)
        self._prefix = prefix
        self._clock = clock
        if type(margin) not in (int, float) or not 0 <= margin <= 3600:
            raise InvalidArgument("margin is 0 to 3600 seconds")
        self._margin = margin
        if check_policy:
            policy = self._call(lambda: self._client.config_get("maxmemory-policy"))
            value = policy.get("maxmemory-policy") or policy.get(b"maxmemory-policy")
            if value not in ("noeviction", b"noeviction"):
                raise InvalidState(f"the Redis server evicts keys (maxmemory-policy "
                                   f"{value!r}); a store that must not forget needs "
                                   "noeviction")

    def _call(self, work: Callable[[], Any]) -> Any:
        errors = self._errors
        try:
            return work()
        except errors.OutOfMemoryError:
            raise StoreError("the Redis server is out of memory", code="store_full"
                             ) from None
        except errors.RedisError as exc:
            raise StoreError(f"the Redis server failed ({type(exc).__name__})",
                             code="store_unavailable") from None

    def _ttl(self, expires: float) -> int:
        """Milliseconds from now until ``expires`` plus the margin; 0 if already past."""
        left = expires - self._clock()
        return 0 if left < 0 else math.ceil((left + self._margin) * 1000) or 1

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()


class RedisTable(_Redis):
    """Byte values under byte keys with expiries, in one Redis namespace (``prefix``): what
    the Redis revocation store keeps its notices in."""

    def __init__(self, client: redis.Redis | str, *, prefix: bytes,
                 check_policy: bool = True, clock: Callable[[], float] = time.time) -> None:
        super().__init__(client, prefix, check_policy, clock)

    def put(self, key: bytes, value: bytes, expires: float) -> bool:
        """Keep ``value`` under ``key`` until ``expires``; False if the key was there (or
        ``expires`` has passed)."""
        ttl = self._ttl(expires)
        if not ttl:
            return False
        return bool(self._call(lambda: self._client.set(self._prefix + key, value, nx=True,
                                                        px=ttl)))

    def get(self, key: bytes) -> bytes | None:
        """The value under ``key``, if it is there."""
        value = self._call(lambda: self._client.get(self._prefix + key))
        return None if value is None else bytes(value)

    def exists(self, key: bytes) -> bool:
        """Whether ``key`` is there."""
        return bool(self._call(lambda: self._client.exists(self._prefix + key)))

    def keys(self) -> list[bytes]:
        """Every key of the namespace (a SCAN: not atomic with concurrent writes)."""
        size = len(self._prefix)
        found = self._call(lambda: list(self._client.scan_iter(match=self._prefix + b"*",
                                                               count=1000)))
        return sorted(bytes(k)[size:] for k in found)


class RedisReplayStore(_Redis):
    """Keys in a Redis server, shared by every process and machine that uses it.

    Each key is ``SET prefix+key 1 NX PX ttl``, one round trip, or one MULTI/EXEC
    transaction for several keys (all or nothing). ``margin`` (seconds) lengthens every
    entry: set it to at least the largest clock difference between the machines that share
    the store, since each computes its keys' lifetimes from its own clock. ``client`` is a
    ``redis.Redis`` (from the ``redis`` package), or a URL.
    The server must never evict keys under memory pressure: unless told not to check, the
    store reads ``maxmemory-policy`` and refuses a server where it is not ``noeviction``.
    A full server (``OOM``) gives ``store_full``; an unreachable one ``store_unavailable``.
    """

    def __init__(self, client: redis.Redis | str, *, prefix: bytes = b"agentauth:replay:",
                 margin: float = 1.0, check_policy: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(client, prefix, check_policy, clock, margin)

    def check_and_insert(self, key: bytes, expires: float) -> bool:
        """See :class:`ReplayStore`."""
        _check_key(key, expires)
        ttl = self._ttl(expires)
        if not ttl:
            return False  # no longer acceptable
        return bool(self._call(lambda: self._client.set(self._prefix + key, b"1", nx=True,
                                                        px=ttl)))

    def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        """See :class:`ReplayStore`: one round trip, a MULTI/EXEC transaction, so that a
        batch the server refuses (out of memory) changes nothing."""
        for key, expires in items:
            _check_key(key, expires)
        ttls = [self._ttl(expires) for _, expires in items]
        live = [(key, ttl) for (key, _), ttl in zip(items, ttls, strict=True) if ttl]
        if not live:
            return [False] * len(items)

        def run() -> list[Any]:
            pipe = self._client.pipeline(transaction=True)
            for key, ttl in live:
                pipe.set(self._prefix + key, b"1", nx=True, px=ttl)
            return pipe.execute(raise_on_error=True)

        results = iter(self._call(run))
        return [bool(next(results)) if ttl else False for ttl in ttls]

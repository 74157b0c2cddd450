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
* :class:`RedisReplayStore`: a Redis server shared by replicas on several machines (one
  Lua script per call or batch; bounded waits; exactly once under lost replies; refuses
  what a restarted or flushed server may have forgotten).

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from . import crypto, files
from .errors import FileError, InvalidArgument, InvalidState, StoreError
from .verdict import check_bounds

if TYPE_CHECKING:
    import redis

__all__ = [
    "MAX_KEY",
    "MemoryReplayStore",
    "RedisReplayStore",
    "RedisTable",
    "ReplayStore",
    "SQLiteReplayStore",
    "Shares",
    "open_sqlite",
    "sqlite_failure",
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
    reclaims what has expired, then refuses (``store_full``). The bound is in all, not per
    sender (spec 11, rule 11): keys are opaque, and only senders that passed every other
    check insert any, each entry for its message's window.
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


class Shares:
    """Live entries counted per source until they expire: at most ``capacity`` in all and
    ``per_source`` from any one source (spec 11, rule 11).

    A verifier that knows who sent each key keeps one beside its replay cache or store, so
    that one source cannot fill it for the others: it takes a :meth:`place` before the
    store is asked and keeps it, until the entry expires, only if the key was new. Places
    being taken count, so the bounds hold however many checks are in flight, from any
    number of threads.
    """

    __slots__ = ("_deadlines", "_held", "_lock", "_total", "capacity", "per_source")

    def __init__(self, capacity: int, per_source: int | None = None, *,
                 names: tuple[str, str] = ("capacity", "per_source")) -> None:
        """``per_source`` defaults to ``max(1, capacity // 16)``; ``names`` are what the
        owner calls the two bounds, for the error a bad value raises."""
        self.capacity, self.per_source = check_bounds(capacity, per_source, names)
        self._deadlines: list[tuple[float, bytes, bytes]] = []  # (expires, source, item)
        self._held: dict[bytes, int] = {}  # only sources with a live or pending place
        self._total = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def place(self, source: bytes, refuse: Callable[[str], Exception]
              ) -> Iterator[Callable[[float, bytes], None]]:
        """Take a place for ``source`` or raise ``refuse(why)``; yield ``keep(expires,
        item)``. A place that is not kept by the end of the block (the key was a replay,
        the store failed) is given back. (Call :meth:`expire` first, so that what has
        expired frees its place.)"""
        with self._lock:
            held = self._held.get(source, 0)
            if held >= self.per_source:
                raise refuse(f"its share, {held} live entries, is taken")
            if self._total >= self.capacity:
                raise refuse(f"all {self.capacity} places are taken")
            self._held[source] = held + 1
            self._total += 1
        kept: list[tuple[float, bytes, bytes]] = []
        try:
            yield lambda expires, item: kept.append((expires, source, item))
        finally:
            with self._lock:
                if kept:
                    heapq.heappush(self._deadlines, kept[0])
                else:
                    self._release(source)

    def place_in_store(self, source: bytes, name: str, now: float
                       ) -> contextlib.AbstractContextManager[Callable[[float, bytes], None]]:
        """:meth:`expire` what has expired by ``now``, then take a :meth:`place` for
        ``source`` in front of a replay store (spec 11, rule 11): over its share, or with
        every place taken, ``store_full`` naming the source as ``name`` (its agent id)."""
        self.expire(now)
        return self.place(source, lambda why: StoreError(
            f"the replay store refuses {name} for now: {why}", code="store_full"))

    def expire(self, now: float) -> list[bytes]:
        """Forget the entries whose expiry is before ``now``; return their items."""
        deadlines, items = self._deadlines, []
        with self._lock:
            while deadlines and deadlines[0][0] < now:
                _, source, item = heapq.heappop(deadlines)
                self._release(source)
                items.append(item)
        return items

    def held(self, source: bytes) -> int:
        """The places ``source`` holds."""
        return self._held.get(source, 0)

    def __len__(self) -> int:
        return self._total

    def _release(self, source: bytes) -> None:
        # Under the lock.
        self._total -= 1
        held = self._held.pop(source) - 1
        if held:
            self._held[source] = held


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
    if type(timeout) not in (int, float) or not 0 <= timeout <= 600:  # NaN too
        raise InvalidArgument("timeout is a number of seconds from 0 to 600")
    name = os.fspath(path)
    try:
        head, checked = files.read_head(name, len(_SQLITE_MAGIC), what=what)
    except FileError as exc:
        folder = os.path.dirname(name) or "."
        if not (create and exc.code == "file_not_found" and os.path.isdir(folder)):
            raise
        _create(name, what)
        head, checked = files.read_head(name, len(_SQLITE_MAGIC), what=what)  # as any
    if head != _SQLITE_MAGIC:
        raise StoreError(f"{what} {name!r} is not a SQLite database"
                         + (" (it is empty)" if not head else ""), code="store_unavailable")
    # Opened read-write even to read (a read-only connection to a WAL database would leave
    # its -wal and -shm files behind), never created here: the file exists by now.
    uri = "file:" + urllib.parse.quote(os.path.abspath(name)) + "?mode=rw"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout,
                             check_same_thread=check_same_thread)
    except sqlite3.Error as exc:
        raise sqlite_failure(exc, f"{what} {name!r}") from None
    # SQLite opened the path again: it must still name the file checked above, not a
    # device or another file put there meanwhile (whose writes would vanish).
    try:
        now: os.stat_result | None = os.stat(name)
    except OSError:
        now = None
    if now is None or (now.st_dev, now.st_ino) != (checked.st_dev, checked.st_ino):
        db.close()
        raise StoreError(f"{what} {name!r} was replaced while it was opened",
                         code="store_unavailable")
    return db


_SQLITE_REASONS = {
    "SQLITE_BUSY": "it is locked by another process (waited for it, in vain)",
    "SQLITE_LOCKED": "it is locked by another connection",
    "SQLITE_FULL": "the disk is full",
    "SQLITE_READONLY": "it, or its folder, cannot be written",
    "SQLITE_CANTOPEN": "it, or its folder, cannot be opened",
    "SQLITE_IOERR": "reading or writing it failed",
    "SQLITE_NOTADB": "it is not a SQLite database",
    "SQLITE_CORRUPT": "it is damaged",
}


def sqlite_failure(exc: sqlite3.Error, what: str) -> StoreError:
    """The typed error (``store_unavailable``) for a failure of SQLite on the store
    ``what``, with a reason an operator can act on (a lock another process holds, a full
    disk, a damaged file), never the ``sqlite3`` error itself."""
    name = getattr(exc, "sqlite_errorname", None) or ""  # SQLITE_IOERR_WRITE: SQLITE_IOERR
    reason = _SQLITE_REASONS.get("_".join(name.split("_")[:2]),
                                 f"it is not one, or cannot be read or written "
                                 f"({type(exc).__name__})")
    return StoreError(f"the {what} failed: {reason}", code="store_unavailable")


def _create(name: str, what: str) -> None:
    """Make an empty SQLite database at ``name``, whole or not at all: it is made under a
    new name beside it and then linked into place, which never replaces a name (a store
    another process made meanwhile is kept). A creation that fails (a full disk, say)
    leaves nothing, not an empty file that every later opening would refuse."""
    folder = os.path.dirname(name)
    temporary = files.temporary_name(name)
    uri = "file:" + urllib.parse.quote(os.path.abspath(temporary)) + "?mode=rwc"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            db.execute("PRAGMA user_version = 0")  # writes the header: a database now
        finally:
            db.close()
        try:
            os.link(temporary, name)
        except OSError as exc:
            if exc.errno not in files.NO_LINK:
                raise
            if not os.path.lexists(name):  # a file system without links
                os.rename(temporary, name)
    except FileExistsError:
        pass
    except sqlite3.Error as exc:
        raise sqlite_failure(exc, f"{what} {name!r}") from None
    except OSError as exc:
        raise files.os_error(exc, name, what, "created") from None
    finally:
        for leftover in (temporary, temporary + "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
    files.sync_folder(folder)


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
            raise sqlite_failure(exc, "replay store") from None

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
                raise sqlite_failure(exc, "replay store") from None
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
                raise sqlite_failure(exc, "replay store") from None
        return int(count)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _ms(seconds: float, up: bool = False) -> int:
    value = seconds * 1000
    return math.ceil(value) if up else math.floor(value)


# ------------------------------------------------------------------ Redis

DEFAULT_TIMEOUT: Final = 1.0  # seconds: connecting, and waiting for each reply
DEFAULT_RETRIES: Final = 2  # attempts after the first, each with the call's own token
# The longest an entry may be asked to live: the default envelope and HTTP window (300 s)
# plus twice the default skew (60 s), the furthest ahead a caller's expiry can then be.
DEFAULT_HORIZON: Final = 420.0
_ORPHANS = 10_000  # claims of calls that gave up, kept to be released
_RELEASE_STEP = 64  # released per call

# One round trip for any number of keys, atomically. KEYS[1] is the namespace's epoch key
# (the prefix itself: no caller's key is empty); ARGV[1] the epoch this client knows (it
# begins with the server's run_id, checked too: a restarted server may keep the epoch key
# and have the script loaded by another store before that store rewrites it), ARGV[2]
# the call's token, ARGV[3] the number n of keys to claim. KEYS[2..n+1] are claimed with
# ARGV[3+i] milliseconds to live; the rest are released, each with its token and ttl.
# A value is a claimant's token; "~" + token marks a claim released by a call that gave up,
# which a late copy of that call must not take again but anyone else may.
_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if not run or run ~= string.match(ARGV[1], '^(%x+) ') then return {-1} end
local token, n = ARGV[2], tonumber(ARGV[3])
local tomb = '~' .. token
for j = n + 2, #KEYS do
  local dead = ARGV[3 + n + 2 * (j - n - 1) - 1]
  local held = redis.call('GET', KEYS[j])
  if held == dead then redis.call('SET', KEYS[j], '~' .. dead, 'KEEPTTL')
  elseif not held then
    redis.call('SET', KEYS[j], '~' .. dead, 'PX', ARGV[3 + n + 2 * (j - n - 1)])
  end
end
local out, mine = {}, {}
for i = 2, n + 1 do
  local key = KEYS[i]
  local held = redis.call('GET', key)
  local free = (not held) or (string.sub(held, 1, 1) == '~' and held ~= tomb)
  if free then redis.call('SET', key, token, 'PX', ARGV[2 + i]) end
  if (free or held == token) and not mine[key] then
    mine[key] = true
    out[i - 1] = 1
  else
    out[i - 1] = 0
  end
end
return out
"""

# The epoch key, replaced only if it still holds what was read ("" if it was missing).
_SWAP = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


def _connect(client: redis.Redis | str, timeout: float) -> redis.Redis:
    """``client``, or a client for a URL with our timeouts and no retries of its own; either
    way one whose every wait is bounded."""
    import redis as redis_module  # noqa: PLC0415 (optional: agentauth[redis])

    if type(timeout) not in (int, float) or not 0 < timeout <= 600:  # NaN too
        raise InvalidArgument("timeout is a positive number of seconds, at most 600")
    if not isinstance(client, redis_module.Redis | str):
        raise InvalidArgument("client is a redis.Redis or a Redis URL")
    if isinstance(client, str):
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415

        try:
            parts = urllib.parse.urlsplit(client)
            if parts.scheme in ("redis", "rediss") and parts.path not in ("", "/") and not (
                    parts.path[1:].isdigit() and parts.path[1:].isascii()):
                raise ValueError("the database is a number")  # redis-py would take 0
            client = redis_module.Redis.from_url(
                client, socket_timeout=timeout, socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0))
        except (ValueError, TypeError, redis_module.RedisError):
            # The URL is not echoed: it may hold a password.
            raise InvalidArgument("the Redis URL is malformed (redis://[user:password@]host"
                                  "[:port][/db], rediss://... or unix://path)") from None
    # The waits a connection will use, read from one made (not connected) as the client
    # would make it: a URL's query or the client's own settings can override ours, and an
    # option the connection does not take would otherwise fail at the first call.
    pool = client.connection_pool
    try:
        probe = pool.connection_class(**pool.connection_kwargs)
    except (ValueError, TypeError, redis_module.RedisError):
        raise InvalidArgument("the Redis client or URL has an option its connection does "
                              "not take") from None
    for name in ("socket_timeout", "socket_connect_timeout"):
        wait: Any = getattr(probe, name, None)
        if type(wait) not in (int, float) or not 0 < wait <= 600:  # None, inf, NaN, 0
            raise InvalidArgument(
                f"the Redis connection's {name} is {wait!r}: a stalled server would block "
                "every check; it must be a positive number of seconds, at most 600")
    return client


class _Redis:
    """A Redis client, its key prefix, and how its failures map to StoreError."""

    def __init__(self, client: redis.Redis | str, prefix: bytes, check_policy: bool,
                 clock: Callable[[], float], margin: float = 0.0, *,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 allow_volatile: bool = False) -> None:
        import redis as redis_module  # noqa: PLC0415 (optional: agentauth[redis])

        if type(prefix) is not bytes or not 0 < len(prefix) <= 64 or any(
                c in prefix for c in b"*?[]\\"):
            raise InvalidArgument("prefix is 1 to 64 bytes, with no glob characters")
        if type(margin) not in (int, float) or not 0 <= margin <= 3600:
            raise InvalidArgument("margin is 0 to 3600 seconds")
        if type(retries) is not int or not 0 <= retries <= 10:
            raise InvalidArgument("retries is an integer from 0 to 10")
        if type(allow_volatile) is not bool or type(check_policy) is not bool:
            raise InvalidArgument("allow_volatile and check_policy are booleans")
        self._errors = redis_module.exceptions
        self._retries = retries
        self._client = _connect(client, timeout)
        self._prefix = prefix
        self._clock = clock
        self._margin = margin
        self._volatile = False  # the server keeps nothing on disk (known when checked)
        if check_policy:
            self._check_server(allow_volatile)

    def _config(self, name: str) -> str:
        try:
            found = self._call(lambda: self._client.config_get(name))
        except InvalidState:
            raise InvalidState(
                "the Redis server refuses CONFIG GET (renamed or disabled?), so its eviction "
                "policy and persistence cannot be checked; check them yourself (noeviction, "
                "appendonly or save) and pass check_policy=False") from None
        value = found.get(name, found.get(name.encode())) if isinstance(found, dict) else None
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if not isinstance(value, str):  # not there (a proxy, a look-alike server), or odd
            raise InvalidState(
                f"the Redis server's CONFIG GET gives no {name}, so its eviction policy "
                "and persistence cannot be checked; check them yourself (noeviction, "
                "appendonly or save) and pass check_policy=False")
        return value

    def _check_server(self, allow_volatile: bool) -> None:
        policy = self._config("maxmemory-policy")
        if policy != "noeviction":
            raise InvalidState(f"the Redis server evicts keys (maxmemory-policy {policy!r}); "
                               "a store that must not forget needs noeviction")
        self._volatile = self._config("appendonly") != "yes" and not self._config("save")
        if self._volatile and not allow_volatile:
            raise InvalidState(
                "the Redis server keeps nothing on disk (appendonly no, save ''): a "
                "restart would forget every entry; turn on persistence, or pass "
                "allow_volatile=True to accept that (the replay store then refuses what "
                "it may have forgotten after a restart)")

    def _call(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` (idempotent: a write carries its caller's token), again after a
        lost reply up to ``retries`` times; map failures to typed errors."""
        errors = self._errors
        lost = 0
        while True:
            try:
                return work()
            except (errors.TimeoutError, errors.ConnectionError) as exc:
                lost += 1
                if lost <= self._retries:
                    continue
                raise StoreError(f"the Redis server did not answer in time or could not "
                                 f"be reached ({type(exc).__name__}, {lost} attempts)",
                                 code="store_unavailable") from None
            except errors.OutOfMemoryError:
                raise StoreError("the Redis server is out of memory", code="store_full"
                                 ) from None
            except errors.NoScriptError:
                raise
            except errors.ResponseError as exc:
                if "unknown command" in str(exc).lower():
                    raise InvalidState("the Redis server refuses a command it needs"
                                       ) from None
                raise StoreError(f"the Redis server failed ({type(exc).__name__})",
                                 code="store_unavailable") from None
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
    the Redis revocation store keeps its notices in. The server is checked as for
    :class:`RedisReplayStore` (no eviction; persistence unless ``allow_volatile``)."""

    def __init__(self, client: redis.Redis | str, *, prefix: bytes,
                 check_policy: bool = True, clock: Callable[[], float] = time.time,
                 timeout: float = DEFAULT_TIMEOUT, allow_volatile: bool = False) -> None:
        super().__init__(client, prefix, check_policy, clock, timeout=timeout,
                         allow_volatile=allow_volatile)

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
        """Every key of the namespace (a SCAN: not atomic with concurrent writes), the
        groups' counts of :meth:`put_counted` excepted."""
        size = len(self._prefix)
        found = self._call(lambda: list(self._client.scan_iter(match=self._prefix + b"*",
                                                               count=1000)))
        return sorted(key for key in (bytes(k)[size:] for k in found)
                      if not key.startswith(_GROUPS))

    def put_counted(self, key: bytes, value: bytes, expires: float, group: bytes,
                    limit: int) -> bool | None:
        """:meth:`put`, counting the key in ``group`` until it expires, in one atomic step
        (a script): None, and nothing written, if ``group`` already counts ``limit`` live
        keys."""
        ttl = self._ttl(expires)
        if not ttl:
            return False
        now = _ms(self._clock())
        result = self._call(lambda: self._client.eval(
            _PUT_COUNTED, 2, self._prefix + key, self._prefix + _GROUPS + group, value, ttl,
            now, now + ttl, limit))
        return None if result == -1 else bool(result)

    def count(self, group: bytes) -> int:
        """How many live keys ``group`` counts (see :meth:`put_counted`)."""
        now = _ms(self._clock())
        return int(self._call(lambda: self._client.zcount(self._prefix + _GROUPS + group,
                                                          now, "+inf")))


_GROUPS: Final = b"\x00agentauth groups\x00"  # where RedisTable keeps its groups' counts
# KEYS: the key, its group's sorted set (members scored by their expiry, in ms); ARGV: the
# value, its ttl, now and the expiry in ms, the group's limit.
_PUT_COUNTED: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], KEYS[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
"""


def _token() -> bytes:
    """A claimant's token: 8 random bytes, never starting with the released mark."""
    while True:
        token = os.urandom(8)
        if token[0] != 0x7E:  # "~"
            return token


class RedisReplayStore(_Redis):
    """Keys in a Redis server, shared by every process and machine that uses it.

    Each call is one round trip, a Lua script run atomically by the server for one key or
    a batch (all or nothing). ``client`` is a ``redis.Redis`` (its own timeouts and retries
    then apply) or a URL, for which the store makes a client that waits at most ``timeout``
    seconds to connect and for each reply.

    **Exactly once under timeouts.** Each call draws a random token and stores it as the
    key's value. A call whose reply is lost (timeout, dropped connection) is retried up to
    ``retries`` times with the same token: a retry that finds its own token knows its
    earlier attempt claimed the key and answers *new*; any other token is another
    delivery, answered *seen*. A call that gives up raises ``store_unavailable`` (the
    message is refused, not processed) and its possible claim is released on the store's
    next round trip, so the sender's redelivery is accepted once instead of being refused
    as a replay.

    **The server.** It must never evict keys (``maxmemory-policy noeviction``) and, unless
    ``allow_volatile``, must keep its data on disk (``appendonly yes`` or a ``save``
    schedule): both are read with CONFIG GET unless ``check_policy=False``. Every restart,
    failover and flush of the namespace is detected (the server's ``run_id``, and an
    epoch key the stores keep); after one at time R (a restart: the server's start; a
    failover to a server already running, or a flush: when it is noticed), keys expiring
    up to R + ``horizon`` + ``margin`` are refused (``store_unavailable``): they may belong
    to messages accepted before it, which the server may lack. A namespace seen for the
    first time is trusted on a server that keeps its data; on one that does not, R is its
    start. A store that used the namespace before a flush or a restart keeps its own
    finding over what a store that started after it noted (which cannot tell the
    namespace from a new one), and stores that learn the epoch from it refuse the same.
    So that this rule holds, an expiry more than ``horizon`` seconds ahead is refused
    (``invalid_argument``): set ``horizon`` to at least the furthest ahead a caller's
    expiry can be (default 420 s: an envelope's or an HTTP request's 300 s window plus
    twice the 60 s skew; a detached invocation's is twice its window plus twice its skew
    plus 1 s).

    ``margin`` (seconds) lengthens every entry: set it to at least the largest clock
    difference between the machines that share the store. A full server (``OOM``) gives
    ``store_full``; an unreachable or stalled one ``store_unavailable``.
    """

    def __init__(self, client: redis.Redis | str, *, prefix: bytes = b"agentauth:replay:",
                 margin: float = 1.0, check_policy: bool = True,
                 clock: Callable[[], float] = time.time, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, horizon: float = DEFAULT_HORIZON,
                 allow_volatile: bool = False) -> None:
        if type(horizon) not in (int, float) or not 1 <= horizon <= 30 * 86400:
            raise InvalidArgument("horizon is 1 s to 30 days")
        super().__init__(client, prefix, check_policy, clock, margin, timeout=timeout,
                         retries=retries, allow_volatile=allow_volatile)
        self._horizon = float(horizon)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._orphans: dict[tuple[bytes, bytes], float] = {}  # (key, token): expires
        self._sha = ""
        self._sync_failed = 0  # how many times learning the epoch has failed
        self._epoch: bytes | None = None  # the epoch key's value this store knows
        self._run_id = ""
        self._restarted = 0.0  # the last restart, failover or flush noted (our clock)
        self._confirmed = 0.0  # the last time our epoch was known to hold (our clock)

    # -- the server's epoch

    def _server(self) -> tuple[str, float]:
        """The server's run_id and its start time by our clock (the latest it can have
        been: uptime is counted in whole seconds)."""
        info = self._call(lambda: self._client.info("server"))
        run_id, uptime = info.get("run_id"), info.get("uptime_in_seconds")
        if not isinstance(run_id, str) or type(uptime) is not int:
            raise InvalidState("the Redis server's INFO has no run_id or uptime")
        return run_id, self._clock() - uptime

    def _sync(self) -> None:
        """Learn the server's epoch, noting a restart or a flush since we last knew it
        (one thread at a time; a thread that finds it done by another returns)."""
        failed = self._sync_failed
        with self._sync_lock:
            if self._sha:
                return
            if self._sync_failed != failed:
                # It failed while we waited: so do we, at once, rather than each waiter
                # trying again in turn (the last of n would wait n times the timeout).
                raise StoreError(
                    "the Redis server did not answer in time or could not be reached "
                    "(another call learning its epoch just failed)", code="store_unavailable")
            try:
                # The script first: a restart after it empties the cache again, and one
                # before the epoch is read is seen by the read. Loaded after the read, it
                # could land on a server restarted in between, whose kept epoch key would
                # then pass the script's check with the old server's epoch.
                sha = str(self._call(lambda: self._client.script_load(_SCRIPT)))
                for _ in range(5):
                    if self._learn():
                        self._sha = sha
                        return
                raise StoreError("the Redis store's epoch keeps changing (restarts or "
                                 "flushes)", code="store_unavailable")
            except BaseException:
                self._sync_failed += 1
                raise

    def _learn(self) -> bool:
        """Read the epoch key; adopt it, or write our finding over what we read (False if
        someone changed it meanwhile: read again).

        What another store noted is adopted only if it is at least as late as what this
        store can tell for itself: a store that starts after a flush or a loss cannot tell
        an empty namespace from a new one and notes no restart, and a store that was
        running across it must not take that for the truth."""
        client, key = self._client, self._prefix
        run_id, started = self._server()
        read = self._clock()
        held = self._call(lambda: client.get(key))
        if isinstance(held, str):  # a client made with decode_responses=True
            held = held.encode()
        theirs = bytes(held).split(b" ") if held is not None else []
        noted = (int(theirs[1]) / 1000 if len(theirs) == 3 and theirs[0] == run_id.encode()
                 and theirs[1].isdigit() else None)
        if noted is not None and noted > read + self._horizon:
            noted = None  # no store noticed anything then: a wrong clock, or a stranger
        floor: float | None = self._confirmed - self._margin
        if self._epoch is None:  # our first look: trust what another store noted
            floor = None
            finding = (0.0 if held is None and not self._volatile
                       else started if held is None
                       else read)  # another server's entry (or a stranger's): now
        elif held == self._epoch and noted is not None:
            floor = None  # nothing changed (the script cache alone was emptied)
            finding = self._restarted
        elif run_id != self._run_id:
            # Restarted (it lost what it had not saved), or, if it was already running
            # when we last had an answer, another server (a replica promoted, which may
            # lack the last writes): its data is then known good only up to now.
            finding = started if started > self._confirmed else read
        else:  # the same server, and the key was removed or rewritten since we read it
            finding = read  # flushed (a store that starts after a flush notes nothing)
        if noted is not None and (floor is None or noted >= floor):
            restarted = noted  # another store already noted this one
        else:
            # A mark of its own, so that a namespace set up again after a flush never
            # holds the value a running store knows.
            value = b"%s %d %s" % (run_id.encode(), math.ceil(finding * 1000),
                                   os.urandom(8).hex().encode())
            if not self._call(lambda: client.eval(_SWAP, 1, key, held or b"", value)):
                return False
            held, restarted = value, finding
        self._restarted = max(self._restarted, restarted)
        self._confirmed = max(self._confirmed, read)
        self._run_id = run_id
        self._epoch = bytes(held)
        return True

    # -- claims

    def check_and_insert(self, key: bytes, expires: float) -> bool:
        """See :class:`ReplayStore`."""
        return self._claim([(key, expires)])[0]

    def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        """See :class:`ReplayStore`: one round trip for the batch, all or nothing."""
        return self._claim(items)

    def _claim(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        for key, expires in items:
            _check_key(key, expires)
        now = self._clock()
        if any(expires > now + self._horizon for _, expires in items):
            raise InvalidArgument(f"an expiry is more than the store's horizon "
                                  f"({self._horizon:g} s) ahead; give the store a horizon "
                                  "of at least the furthest ahead its callers' expiries can be")
        ttls = [self._ttl(expires) for _, expires in items]
        live = [(key, ttl, expires)
                for (key, expires), ttl in zip(items, ttls, strict=True) if ttl]
        if not live:
            return [False] * len(items)
        token = _token()
        answers = iter(self._run(live, token))
        return [bool(next(answers)) if ttl else False for ttl in ttls]

    def _run(self, live: list[tuple[bytes, int, float]], token: bytes) -> list[int]:
        """Claim ``live`` with ``token`` (a lost reply is retried with it), learning the
        server's epoch first if it changed; a call that ends without an answer leaves its
        claims to be released."""
        released = self._orphans_for(live)
        sent = False
        try:
            for _ in range(3):
                if not self._sha:  # first use, or a restart noticed by an earlier call
                    self._sync()
                self._refuse_forgotten(live)
                sent, sending = True, self._clock()
                answer = self._send(live, token, released)
                if answer[0] != -1:
                    self._confirmed = max(self._confirmed, sending)
                    self._released(released)
                    return answer
                self._sha = ""  # our epoch is stale: learn the new one
            raise StoreError("the Redis store's epoch keeps changing (restarts or flushes)",
                             code="store_unavailable")
        except BaseException:
            if sent:
                self._keep_orphans([((key, token), expires) for key, _, expires in live])
            raise

    def _send(self, live: list[tuple[bytes, int, float]], token: bytes,
              released: list[tuple[tuple[bytes, bytes], float]]) -> list[int]:
        prefix = self._prefix
        keys = [prefix] + [prefix + key for key, _, _ in live]
        args: list[bytes | int] = [self._epoch or b"", token, len(live)]
        args += [ttl for _, ttl, _ in live]
        for (key, dead), expires in released:
            keys.append(prefix + key)
            args += [dead, self._ttl(expires) or 1]
        try:
            answer = self._call(lambda: self._client.evalsha(self._sha, len(keys), *keys,
                                                             *args))
        except self._errors.NoScriptError:
            return [-1]  # the script cache is empty: restarted, or flushed
        return [int(a) for a in answer]

    def _refuse_forgotten(self, live: list[tuple[bytes, int, float]]) -> None:
        if self._restarted and any(expires <= self._restarted + self._horizon + self._margin
                                   for _, _, expires in live):
            raise StoreError(
                "the Redis server restarted or was flushed, and may have forgotten keys of "
                "messages stamped before then; such messages are refused until they expire",
                code="store_unavailable")

    def _orphans_for(self, live: list[tuple[bytes, int, float]]
                     ) -> list[tuple[tuple[bytes, bytes], float]]:
        """Claims of calls that gave up, to release: those on this call's keys first (a
        redelivery), then the oldest. They are forgotten only once a release has run."""
        with self._lock:
            if not self._orphans:
                return []
            for claim, expires in list(self._orphans.items()):
                if not self._ttl(expires):
                    del self._orphans[claim]  # expired: nothing to release
            keys = {key for key, _, _ in live}
            ours = [item for item in self._orphans.items() if item[0][0] in keys]
            rest = [item for item in self._orphans.items() if item[0][0] not in keys]
            return (ours + rest)[:max(_RELEASE_STEP, len(ours))]

    def _released(self, claims: list[tuple[tuple[bytes, bytes], float]]) -> None:
        with self._lock:
            for claim, _ in claims:
                self._orphans.pop(claim, None)

    def close(self) -> None:
        """Release the claims of calls that gave up (one round trip, if there are any and
        the server answers: a redelivery through another store sharing the server is then
        accepted), then close the client's connections."""
        with contextlib.suppress(StoreError, InvalidState):
            released = self._orphans_for([])
            if released and self._sha and self._send([], _token(), released) != [-1]:
                self._released(released)
        super().close()

    def _keep_orphans(self, claims: Iterable[tuple[tuple[bytes, bytes], float]]) -> None:
        with self._lock:
            for claim, expires in claims:
                self._orphans[claim] = expires
            while len(self._orphans) > _ORPHANS:  # the oldest: its sender may retry late
                del self._orphans[next(iter(self._orphans))]

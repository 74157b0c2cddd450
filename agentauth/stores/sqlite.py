"""SQLite stores: replay keys (spec 11) and revocation notices (spec 10.8) in a file, so
that they survive restarts and crashes and several processes on one machine share them;
and :func:`open_sqlite`, the one way a store file is opened.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import files
from ..capability.chain import MAX_SKEW, trust_roots
from ..capability.revocation import (
    PER_REVOKER,
    QuotaSweep,
    admit_notice,
    announce_stored,
    check_per_revoker,
    over_quota,
    read_notice,
)
from ..errors import FileError, InvalidArgument, InvalidState, StoreError
from ..replay import check_key, milliseconds

__all__ = ["SQLiteReplayStore", "SQLiteRevocationStore", "open_sqlite", "sqlite_failure"]


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
    "CLOSED": "this process closed its connection to it (close() was called)",
}


def sqlite_failure(exc: sqlite3.Error, what: str) -> StoreError:
    """The typed error (``store_unavailable``) for a failure of SQLite on the store
    ``what``, with a reason an operator can act on (a lock another process holds, a full
    disk, a damaged file), never the ``sqlite3`` error itself."""
    name = getattr(exc, "sqlite_errorname", None) or ""  # SQLITE_IOERR_WRITE: SQLITE_IOERR
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):  # the module's
        name = "CLOSED"
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
        check_key(key, expires)
        return self._insert([(key, expires)])[0]

    def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        """See :class:`ReplayStore`: one transaction for all of them."""
        for key, expires in items:
            check_key(key, expires)
        return self._insert(items) if items else []

    def _insert(self, items: Iterable[tuple[bytes, float]]) -> list[bool]:
        db = self._db
        with self._lock:
            now = milliseconds(self._clock())
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    answers = [self._one(key, milliseconds(expires, up=True), now)
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


class SQLiteRevocationStore:
    """Notices in a SQLite file: they survive restarts. One connection per store, usable
    from any thread (each use holds the store's lock), so an event loop may ask it from a
    worker thread. At most
    ``per_revoker`` notices about the links of each issuer key (spec 10.8), with ``clock``,
    as for the memory store.

    With ``create=True`` (the default: whoever adds notices) a missing file is created;
    with ``create=False`` (whoever only checks, as ``agentauth verify --revoked`` does)
    the store must exist already and is never created, converted or written. An existing
    path that is not a revocation store (an empty file, a FIFO, a directory, another
    database) is refused (:func:`agentauth.stores.open_sqlite`); a store that fails later
    raises ``store_unavailable``, never a ``sqlite3`` error, so a check fails closed. A
    store another process holds locked is waited for at most ``timeout`` seconds, then
    refused (``store_unavailable``, saying it is locked)."""

    def __init__(self, path: str | Path, anchors: Mapping[Any, str], *,
                 per_revoker: int = PER_REVOKER, clock: Callable[[], float] = time.time,
                 create: bool = True, timeout: float = 5.0) -> None:
        self._anchors = trust_roots(anchors)
        self._limit = check_per_revoker(per_revoker)
        self._sweep = QuotaSweep(clock, self.prune)
        self._read_only = not create
        # Reentrant: add() holds it across its count and its insert, which run statements.
        self._lock = threading.RLock()
        self._db = open_sqlite(path, create=create, what="revocation store", timeout=timeout,
                               check_same_thread=False)
        try:
            tables = {r[0] for r in self._run("SELECT name FROM sqlite_master WHERE type = "
                                              "'table'")}
            if tables and "revoked" not in tables:  # another application's database
                raise StoreError(f"{os.fspath(path)!r} is a SQLite database but not a "
                                 f"revocation store", code="store_unavailable")
            if create:
                self._run("PRAGMA journal_mode=WAL")
                try:
                    _schema(self._db)
                except sqlite3.Error as exc:
                    raise _failed(exc) from None
            self._run("SELECT id, expires, notice FROM revoked LIMIT 0")
            if not create:  # and SQLite holds it to that, whatever is called
                self._run("PRAGMA query_only = ON")
        except BaseException:
            self._db.close()
            raise

    def _writable(self) -> None:
        if self._read_only:
            raise InvalidState("this revocation store was opened only to read (create=False): "
                               "it is never written")

    def _run(self, sql: str, parameters: tuple[object, ...] = ()) -> list[Any]:
        """Run one statement and fetch its rows under the lock; a failure of SQLite is
        ``store_unavailable``."""
        with self._lock:
            try:
                return self._db.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise _failed(exc) from None

    def _write(self, sql: str, parameters: tuple[object, ...]) -> int:
        """Run one statement that writes; return how many rows it changed."""
        with self._lock:
            try:
                return self._db.execute(sql, parameters).rowcount
            except sqlite3.Error as exc:
                raise _failed(exc) from None

    def add(self, notice: bytes) -> bool:
        """Verify and keep a notice; True if it was new."""
        self._writable()
        read = read_notice(notice)

        def count() -> int:
            return int(self._run("SELECT count(*) FROM revoked WHERE revoker = ?",
                                 (read.charged,))[0][0])

        with self._lock:  # a thread's "already revoked" and "stored" do not interleave
            checked = admit_notice(read, self.is_revoked(read.target), count, self._limit,
                                   self._anchors, self._sweep)
            if checked is None:
                return False
            # Counted again in the statement that writes: processes sharing the file share
            # the quota.
            changed = self._write(
                "INSERT OR IGNORE INTO revoked (id, expires, notice, revoker) "
                "SELECT ?, ?, ?, ? WHERE (SELECT count(*) FROM revoked WHERE revoker = ?) < ?",
                (checked.target, checked.expires, checked.data, read.charged,
                 read.charged, self._limit))
            if changed != 1:
                if self.is_revoked(checked.target):
                    return False
                raise over_quota(read.charged, self._limit)
        announce_stored(checked, "sqlite")
        return True

    def is_revoked(self, link_id: bytes) -> bool:
        """Whether the link with this id is revoked."""
        return bool(self._run("SELECT 1 FROM revoked WHERE id = ?", (link_id,)))

    def prune(self, now: int) -> int:
        """Forget notices whose target can no longer verify at ``now``; return how many."""
        self._writable()
        return self._write("DELETE FROM revoked WHERE expires <= ?", (now - MAX_SKEW,))

    def ids(self) -> list[bytes]:
        """The ids of every revoked link, ascending."""
        return [bytes(r[0]) for r in self._run("SELECT id FROM revoked ORDER BY id")]

    def notice(self, link_id: bytes) -> bytes | None:
        """The notice that revoked ``link_id``, if any."""
        rows = self._run("SELECT notice FROM revoked WHERE id = ?", (link_id,))
        return bytes(rows[0][0]) if rows else None

    def __len__(self) -> int:
        return int(self._run("SELECT count(*) FROM revoked")[0][0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _failed(exc: sqlite3.Error) -> StoreError:
    return sqlite_failure(exc, "revocation store")


def _schema(db: sqlite3.Connection) -> None:
    """Create the table, or give one of an earlier release its ``revoker`` column (the key
    a notice counts against, its target's issuer: read back from each stored notice,
    verified when it was stored). The migration is one
    transaction, and finishes any row an interrupted one left without its revoker, which
    no quota would count."""
    db.execute("CREATE TABLE IF NOT EXISTS revoked (id BLOB PRIMARY KEY, "
               "expires INTEGER NOT NULL, notice BLOB NOT NULL, revoker BLOB) WITHOUT ROWID")
    if _migrated(db):
        return
    db.execute("BEGIN IMMEDIATE")  # one process migrates; the others find it done
    try:
        if "revoker" not in _columns(db):
            db.execute("ALTER TABLE revoked ADD COLUMN revoker BLOB")
        for target, data in list(db.execute("SELECT id, notice FROM revoked "
                                            "WHERE revoker IS NULL")):
            db.execute("UPDATE revoked SET revoker = ? WHERE id = ?",
                       (read_notice(bytes(data)).charged, target))
        db.execute("CREATE INDEX IF NOT EXISTS revoked_by ON revoked (revoker)")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _columns(db: sqlite3.Connection) -> list[str]:
    return [row[1] for row in db.execute("PRAGMA table_info(revoked)")]


def _migrated(db: sqlite3.Connection) -> bool:
    indexed = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' "
                         "AND name = 'revoked_by'").fetchone()
    return (indexed is not None and "revoker" in _columns(db) and db.execute(
        "SELECT 1 FROM revoked WHERE revoker IS NULL LIMIT 1").fetchone() is None)

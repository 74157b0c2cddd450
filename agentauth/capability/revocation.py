"""Revocation without a server: signed notices, verified before they are stored.

A notice carries the *path* to the link it revokes: the chain from its root down to the
target, whose id it names that way. It is valid when the path is a correctly signed chain
whose root is one of the verifier's trust anchors, and its signer either issued a link
of the path (an issuer upstream of the target: it revokes what it delegated, directly or
not) or is the target's own audience giving it up. Anyone else's notice, and any notice
about a chain no anchor of ours started, is refused and never stored.

Stores keep ``id -> (expires, notice)``: a revocation is irreversible, and is forgotten
only once the revoked link could no longer verify anyway (its expiry plus the largest
skew a verifier may allow). :class:`MemoryRevocationStore` and
:class:`SQLiteRevocationStore` (a real file, for a store that outlives the process) share
and :class:`RedisRevocationStore` (shared by replicas on several machines) share one
small interface; a store's :meth:`~MemoryRevocationStore.is_revoked` is what
:func:`~agentauth.capability.verify_chain` takes as ``revoked``.

Every store keeps at most ``per_revoker`` notices about the links of one issuer key (spec
10.8: a notice counts against the key that issued the link it revokes, whoever signed it,
so every notice about one link meets the same quota): a key at its quota is refused
(``store_full``) before any signature is checked, once the notices whose time has passed
are forgotten, and a stored notice is never dropped to make room, so a quota never turns
"revoked" into "not revoked". The rules are applied in one place, ``_admit``.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

from .. import audit, crypto, wire
from ..errors import (
    AuthenticationError,
    CapabilityDenied,
    DecodeError,
    InvalidArgument,
    InvalidState,
    Refusal,
    StoreError,
)
from ..identity import Identity, format_agent_id
from ..stores import DEFAULT_TIMEOUT, RedisTable, open_sqlite, sqlite_failure
from ..verdict import moment
from .chain import (
    MAX_CHAIN_BYTES,
    MAX_SKEW,
    Link,
    _well_formed,
    check_root,
    parse_links,
    signature_ok,
    trust_roots,
)

__all__ = [
    "PER_REVOKER",
    "REVOKE_CONTEXT",
    "MemoryRevocationStore",
    "Notice",
    "ReadNotice",
    "RedisRevocationStore",
    "RevocationStore",
    "SQLiteRevocationStore",
    "digest",
    "notice_path",
    "read_notice",
    "revoke",
    "verify_notice",
]

VERSION: Final = 1
REVOKE_CONTEXT: Final = b"agentauth v1 capability revocation\x00"
MAX_NOTICE: Final = MAX_CHAIN_BYTES + 512
#: How many notices a store keeps about the links of one issuer key by default (spec 10.8).
PER_REVOKER: Final = 4096


class Notice:
    """A verified revocation notice: ``target`` is revoked until ``expires``."""

    __slots__ = ("data", "expires", "revoker", "target")

    def __init__(self, data: bytes, target: bytes, expires: int, revoker: bytes) -> None:
        self.data, self.target, self.expires, self.revoker = data, target, expires, revoker

    def __repr__(self) -> str:
        return f"Notice(target={self.target.hex()[:16]}..., expires={self.expires})"


def revoke(revoker: Identity, path: Iterable[Link], *,
           clock: Callable[[], float] = time.time) -> bytes:
    """Sign a notice revoking the last link of ``path``, the chain from its root down to
    the target. ``revoker`` issued a link of it, or holds the target."""
    links = () if isinstance(path, Link) else tuple(path)  # a Link is a tuple itself
    if not links or not isinstance(revoker, Identity) or not _well_formed(links):
        raise InvalidArgument("a notice needs its signer and a path of at least one Link")
    payload = wire.encode_map(VERSION, revoker.public_bytes, [link.data for link in links],
                              int(moment(clock())))
    data = wire.encode_map(payload, revoker.sign(REVOKE_CONTEXT + payload))
    root = links[0].issuer
    verify_notice(data, {root: "**"})  # a notice we would refuse is one we do not make
    return data


def verify_notice(data: bytes, anchors: Mapping[Any, str]) -> Notice:
    """Check a notice completely against our trust ``anchors``; return it
    (``unauthorized_revoker`` if the signer has no say over the target)."""
    roots = trust_roots(anchors)
    return _check_notice(read_notice(data), roots)


class ReadNotice(NamedTuple):
    """A notice read for its form only, nothing verified yet: what a store decides from
    before it spends a signature check (spec 10.8, storage per key)."""

    data: bytes
    payload: bytes
    signature: bytes
    revoker: bytes
    links: tuple[Link, ...]

    @property
    def target(self) -> bytes:
        """The id of the link the notice would revoke."""
        return self.links[-1].id

    @property
    def charged(self) -> bytes:
        """The key whose quota the notice counts against (spec 10.8): the issuer of the
        link it revokes, whoever signed it, so that every notice about one link meets the
        same quota."""
        return self.links[-1].issuer


def read_notice(data: bytes) -> ReadNotice:
    """Read a notice's form (sizes, fields, the path as a chain is read, its root a root);
    no anchor, authority or signature is checked: see :func:`verify_notice`."""
    payload, signature, revoker, items = _fields(data)
    links = parse_links(items)
    check_root(links[0])
    return ReadNotice(data, payload, signature, revoker, links)


def notice_path(data: bytes) -> list[bytes]:
    """The path of a notice, its links' bytes from the root down to the target, read
    without parsing the links (for a notice already verified, as every stored one is)."""
    return _fields(data)[3]


def _fields(data: bytes) -> tuple[bytes, bytes, bytes, list[Any]]:
    if type(data) is not bytes:
        raise InvalidArgument("a notice is bytes")
    payload, signature = wire.decode_map(data, 2, MAX_NOTICE, "notice")
    if type(payload) is not bytes or type(signature) is not bytes:
        raise DecodeError("a notice is {0: payload, 1: signature}", code="malformed")
    version, revoker, items, issued = wire.decode_map(payload, 4, MAX_NOTICE,
                                                      "notice payload")
    if type(version) is not int:
        raise DecodeError("a notice's version is an integer", code="malformed")
    if version != VERSION:
        raise DecodeError(f"notice version {version} is not 1", code="unknown_field")
    if (type(revoker) is not bytes or len(revoker) != 32 or type(items) is not list
            or type(issued) is not int):
        raise DecodeError("notice fields are out of shape", code="malformed")
    return payload, signature, revoker, items


def _check_notice(notice: ReadNotice, roots: Mapping[bytes, Any]) -> Notice:
    # The rest of spec 10.8, in its order: the anchor, the signer's say, the signatures.
    links, revoker = notice.links, notice.revoker
    if links[0].issuer not in roots:
        raise CapabilityDenied("the notice is about a chain none of our anchors started",
                               code="untrusted_root", refusal=Refusal(
                                   "anchor", 0, rule="a trust anchor as issuer",
                                   value=format_agent_id(links[0].issuer)))
    last = links[-1]
    upstream = any(crypto.equal(link.issuer, revoker) for link in links)
    surrender = crypto.equal(last.audience, revoker)
    if not (upstream or surrender):
        raise CapabilityDenied("the signer neither issued the path nor holds the target",
                               code="unauthorized_revoker")
    for link in links:
        if not signature_ok(link):
            raise AuthenticationError("a path link's signature does not verify",
                                      code="bad_signature")
    if not crypto.ed25519_verify(revoker, REVOKE_CONTEXT + notice.payload, notice.signature):
        raise AuthenticationError("the notice's signature does not verify",
                                  code="bad_signature")
    return Notice(notice.data, last.id, last.expires, revoker)


def _admit(notice: ReadNotice, held: bool, count: Callable[[], int], limit: int,
           roots: Mapping[bytes, Any],
           sweep: Callable[[], bool] | None = None) -> Notice | None:
    """The storage rules of spec 10.8, the one place every store applies them: None for a
    target the store already holds, ``store_full`` for a key whose ``count`` is at its
    quota once ``sweep`` (forget what time has freed; True if it forgot any) has run (both
    before any signature is checked), else the verified notice, to be stored."""
    if held:
        return None
    if count() >= limit and (sweep is None or not sweep() or count() >= limit):
        raise _over_quota(notice.charged, limit)
    return _check_notice(notice, roots)


class _Sweep:
    """A store at a key's quota forgets the notices whose time has passed before it
    refuses (spec 10.8 rule 3): ``prune`` at most once a second, so that a flood at its
    quota costs one sweep a second, not one a notice."""

    __slots__ = ("_clock", "_next", "_prune")

    def __init__(self, clock: Callable[[], float], prune: Callable[[int], int]) -> None:
        self._clock, self._prune = clock, prune
        self._next = -math.inf

    def __call__(self) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + 1
        return self._prune(int(now)) > 0


def _over_quota(issuer: bytes, limit: int) -> StoreError:
    return StoreError(f"the store holds its quota of {limit} notices about links issued by "
                      f"{format_agent_id(issuer)}; it forgets them as those links expire "
                      f"(an issuer further up can revoke the subtree)", code="store_full")


def _per_revoker(value: int) -> int:
    if type(value) is not int or value < 1:
        raise InvalidArgument("per_revoker is a positive integer")
    return value


class RevocationStore(Protocol):
    """Where verified notices are kept."""

    def add(self, notice: bytes) -> bool:
        """Verify and keep a notice; True if it was new."""

    def is_revoked(self, link_id: bytes) -> bool:
        """Whether the link with this id is revoked."""

    def prune(self, now: int) -> int:
        """Forget notices whose target can no longer verify at ``now``; return how many."""

    def ids(self) -> list[bytes]:
        """The ids of every revoked link, ascending."""

    def notice(self, link_id: bytes) -> bytes | None:
        """The notice that revoked ``link_id``, if any."""


def digest(ids: list[bytes]) -> bytes:
    """A short summary of a set of revoked ids (sorted), to compare two stores cheaply."""
    return crypto.blake2b_256(len(ids).to_bytes(4, "big") + b"".join(sorted(ids)))


def _stored(notice: Notice, store: str) -> None:
    if audit.enabled("revocation_stored"):
        audit.emit("revocation_stored", link=notice.target.hex(),
                   revoker=format_agent_id(notice.revoker), store=store)


class MemoryRevocationStore:
    """Notices in a dictionary: for one process's lifetime. Accepts notices about chains
    rooted at one of ``anchors`` only, and at most ``per_revoker`` about the links of each
    issuer key (spec 10.8: beyond it ``store_full``; a stored notice is never dropped to
    make room). A key at its quota first has the notices whose time has passed (by
    ``clock``) forgotten, as :meth:`prune` does, at most once a second."""

    def __init__(self, anchors: Mapping[Any, str], *,
                 per_revoker: int = PER_REVOKER,
                 clock: Callable[[], float] = time.time) -> None:
        self._roots = trust_roots(anchors)
        self._limit = _per_revoker(per_revoker)
        self._sweep = _Sweep(clock, self.prune)
        self._notices: dict[bytes, tuple[int, bytes, bytes]] = {}  # expires, notice, charged
        self._counts: dict[bytes, int] = {}

    def add(self, notice: bytes) -> bool:
        """Verify and keep a notice; True if it was new."""
        read = read_notice(notice)
        checked = _admit(read, read.target in self._notices,
                         lambda: self._counts.get(read.charged, 0), self._limit, self._roots,
                         self._sweep)
        if checked is None:
            return False
        self._notices[checked.target] = (checked.expires, checked.data, read.charged)
        self._counts[read.charged] = self._counts.get(read.charged, 0) + 1
        _stored(checked, "memory")
        return True

    def is_revoked(self, link_id: bytes) -> bool:
        """Whether the link with this id is revoked."""
        return link_id in self._notices

    def prune(self, now: int) -> int:
        """Forget notices whose target can no longer verify at ``now``; return how many."""
        gone = [k for k, (expires, _, _) in self._notices.items()
                if expires + MAX_SKEW <= now]
        for key in gone:
            charged = self._notices.pop(key)[2]
            self._counts[charged] -= 1
            if not self._counts[charged]:
                del self._counts[charged]
        return len(gone)

    def ids(self) -> list[bytes]:
        """The ids of every revoked link, ascending."""
        return sorted(self._notices)

    def notice(self, link_id: bytes) -> bytes | None:
        """The notice that revoked ``link_id``, if any."""
        entry = self._notices.get(link_id)
        return entry[1] if entry else None

    def __len__(self) -> int:
        return len(self._notices)


class SQLiteRevocationStore:
    """Notices in a SQLite file: they survive restarts. One connection per store. At most
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
        self._limit = _per_revoker(per_revoker)
        self._sweep = _Sweep(clock, self.prune)
        self._read_only = not create
        self._db = open_sqlite(path, create=create, what="revocation store", timeout=timeout)
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

    def _run(self, sql: str, parameters: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """Run one statement; a failure of SQLite is ``store_unavailable``."""
        try:
            return self._db.execute(sql, parameters)
        except sqlite3.Error as exc:
            raise _failed(exc) from None

    def add(self, notice: bytes) -> bool:
        """Verify and keep a notice; True if it was new."""
        self._writable()
        read = read_notice(notice)

        def count() -> int:
            (found,) = self._run("SELECT count(*) FROM revoked WHERE revoker = ?",
                                 (read.charged,)).fetchone()
            return int(found)

        checked = _admit(read, self.is_revoked(read.target), count, self._limit,
                         self._anchors, self._sweep)
        if checked is None:
            return False
        # Counted again in the statement that writes: processes sharing the file share the
        # quota.
        cursor = self._run(
            "INSERT OR IGNORE INTO revoked (id, expires, notice, revoker) SELECT ?, ?, ?, ? "
            "WHERE (SELECT count(*) FROM revoked WHERE revoker = ?) < ?",
            (checked.target, checked.expires, checked.data, read.charged,
             read.charged, self._limit))
        if cursor.rowcount != 1:
            if self.is_revoked(checked.target):
                return False
            raise _over_quota(read.charged, self._limit)
        _stored(checked, "sqlite")
        return True

    def is_revoked(self, link_id: bytes) -> bool:
        """Whether the link with this id is revoked."""
        row = self._run("SELECT 1 FROM revoked WHERE id = ?", (link_id,)).fetchone()
        return row is not None

    def prune(self, now: int) -> int:
        """Forget notices whose target can no longer verify at ``now``; return how many."""
        self._writable()
        return self._run("DELETE FROM revoked WHERE expires <= ?", (now - MAX_SKEW,)).rowcount

    def ids(self) -> list[bytes]:
        """The ids of every revoked link, ascending."""
        return [bytes(r[0]) for r in self._run("SELECT id FROM revoked ORDER BY id")]

    def notice(self, link_id: bytes) -> bytes | None:
        """The notice that revoked ``link_id``, if any."""
        row = self._run("SELECT notice FROM revoked WHERE id = ?", (link_id,)).fetchone()
        return bytes(row[0]) if row else None

    def __len__(self) -> int:
        (count,) = self._run("SELECT count(*) FROM revoked").fetchone()
        return int(count)

    def close(self) -> None:
        """Close the database."""
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


class RedisRevocationStore:
    """Notices in a Redis server, shared by every replica of an agent. Each notice is kept
    under its target's id until the target could no longer verify (Redis expires it then,
    so :meth:`prune` has nothing to do), at most ``per_revoker`` live ones about the links
    of each issuer key, counted and stored in one atomic step (spec 10.8). ``client`` is a
    ``redis.Redis`` or a URL (a client that waits at most ``timeout`` seconds for each
    reply). The server must not evict keys and, unless ``allow_volatile``, must keep its
    data on disk: a restart that forgot a notice would let its revoked link through (both
    checked, as for :class:`agentauth.RedisReplayStore`). ``margin`` (seconds) lengthens
    every notice's life: set it to at least the largest clock difference between the
    replicas, since each computes a notice's life from its own clock (a replica ahead would
    otherwise let Redis forget a notice while a verifier behind it still accepts the link)."""

    def __init__(self, client: Any, anchors: Mapping[Any, str], *,
                 prefix: bytes = b"agentauth:revoked:", check_policy: bool = True,
                 clock: Callable[[], float] = time.time,
                 per_revoker: int = PER_REVOKER, timeout: float = DEFAULT_TIMEOUT,
                 allow_volatile: bool = False, margin: float = 1.0) -> None:
        self._roots = trust_roots(anchors)
        self._limit = _per_revoker(per_revoker)
        if type(margin) not in (int, float) or not 0 <= margin <= 3600:
            raise InvalidArgument("margin is 0 to 3600 seconds")
        self._margin = margin
        self._clock = clock
        self._table = RedisTable(client, prefix=prefix, check_policy=check_policy,
                                 clock=clock, timeout=timeout, allow_volatile=allow_volatile)

    def add(self, notice: bytes) -> bool:
        """Verify and keep a notice; True if it was new (False too for a notice whose
        target can no longer verify: there is nothing left to refuse)."""
        read = read_notice(notice)
        checked = _admit(read, self.is_revoked(read.target),
                         lambda: self._table.count(read.charged), self._limit, self._roots)
        if checked is None:
            return False
        until = checked.expires + MAX_SKEW
        if until <= self._clock():
            return False
        # Counted again in the same step as the write: replicas share the quota.
        added = self._table.put_counted(checked.target, checked.data, until + self._margin,
                                        read.charged, self._limit)
        if added is None:
            raise _over_quota(read.charged, self._limit)
        if added:
            _stored(checked, "redis")
        return added

    def is_revoked(self, link_id: bytes) -> bool:
        """Whether the link with this id is revoked."""
        return self._table.exists(link_id)

    def prune(self, now: int) -> int:
        """Nothing to do: Redis forgets each notice when its target expires."""
        return 0

    def ids(self) -> list[bytes]:
        """The ids of every revoked link, ascending."""
        return self._table.keys()

    def notice(self, link_id: bytes) -> bytes | None:
        """The notice that revoked ``link_id``, if any."""
        return self._table.get(link_id)

    def __len__(self) -> int:
        return len(self._table.keys())

    def close(self) -> None:
        """Close the client's connections."""
        self._table.close()

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
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from .. import audit, crypto, wire
from ..errors import (
    AuthenticationError,
    CapabilityDenied,
    DecodeError,
    InvalidArgument,
    StoreError,
)
from ..identity import Identity, format_agent_id
from ..stores import RedisTable, open_sqlite
from .chain import (
    MAX_CHAIN_BYTES,
    MAX_SKEW,
    Link,
    _key,
    _well_formed,
    anchor_map,
    check_root,
    parse_links,
    signature_ok,
)

__all__ = [
    "REVOKE_CONTEXT",
    "MemoryRevocationStore",
    "Notice",
    "RedisRevocationStore",
    "RevocationStore",
    "SQLiteRevocationStore",
    "digest",
    "revoke",
    "verify_notice",
]

VERSION: Final = 1
REVOKE_CONTEXT: Final = b"agentauth v1 capability revocation\x00"
MAX_NOTICE: Final = MAX_CHAIN_BYTES + 512


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
                              int(clock()))
    data = wire.encode_map(payload, revoker.sign(REVOKE_CONTEXT + payload))
    root = links[0].issuer
    verify_notice(data, {root: "**"})  # a notice we would refuse is one we do not make
    return data


def verify_notice(data: bytes, anchors: Mapping[Any, str]) -> Notice:
    """Check a notice completely against our trust ``anchors``; return it
    (``unauthorized_revoker`` if the signer has no say over the target)."""
    roots = {_key(key) if not isinstance(key, bytes) else key for key in anchors}
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
    links = parse_links(items)
    root = links[0]
    check_root(root)
    if root.issuer not in roots:
        raise CapabilityDenied("the notice is about a chain none of our anchors started",
                               code="untrusted_root")
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
    if not crypto.ed25519_verify(revoker, REVOKE_CONTEXT + payload, signature):
        raise AuthenticationError("the notice's signature does not verify",
                                  code="bad_signature")
    return Notice(data, last.id, last.expires, revoker)


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
    rooted at one of ``anchors`` only."""

    def __init__(self, anchors: Mapping[Any, str]) -> None:
        self._anchors = anchor_map(anchors)
        self._notices: dict[bytes, tuple[int, bytes]] = {}

    def add(self, notice: bytes) -> bool:
        """Verify and keep a notice; True if it was new."""
        checked = verify_notice(notice, self._anchors)  # verify before anything is stored
        if checked.target in self._notices:
            return False
        self._notices[checked.target] = (checked.expires, checked.data)
        _stored(checked, "memory")
        return True

    def is_revoked(self, link_id: bytes) -> bool:
        """Whether the link with this id is revoked."""
        return link_id in self._notices

    def prune(self, now: int) -> int:
        """Forget notices whose target can no longer verify at ``now``; return how many."""
        gone = [k for k, (expires, _) in self._notices.items() if expires + MAX_SKEW <= now]
        for key in gone:
            del self._notices[key]
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
    """Notices in a SQLite file: they survive restarts. One connection per store.

    With ``create=True`` (the default: whoever adds notices) a missing file is created;
    with ``create=False`` (whoever only checks, as ``agentauth verify --revoked`` does)
    the store must exist already and is never created, converted or written. An existing
    path that is not a revocation store (an empty file, a FIFO, a directory, another
    database) is refused (:func:`agentauth.stores.open_sqlite`); a store that fails later
    raises ``store_unavailable``, never a ``sqlite3`` error, so a check fails closed."""

    def __init__(self, path: str | Path, anchors: Mapping[Any, str], *,
                 create: bool = True) -> None:
        self._anchors = anchor_map(anchors)
        self._db = open_sqlite(path, create=create, what="revocation store")
        try:
            tables = {r[0] for r in self._run("SELECT name FROM sqlite_master WHERE type = "
                                              "'table'")}
            if tables and "revoked" not in tables:  # another application's database
                raise StoreError(f"{os.fspath(path)!r} is a SQLite database but not a "
                                 f"revocation store", code="store_unavailable")
            if create:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS revoked (id BLOB PRIMARY KEY, "
                                 "expires INTEGER NOT NULL, notice BLOB NOT NULL) "
                                 "WITHOUT ROWID")
            self._run("SELECT id, expires, notice FROM revoked LIMIT 0")
        except BaseException:
            self._db.close()
            raise

    def _run(self, sql: str, parameters: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """Run one statement; a failure of SQLite is ``store_unavailable``."""
        try:
            return self._db.execute(sql, parameters)
        except sqlite3.Error as exc:
            raise StoreError(f"the revocation store failed ({type(exc).__name__}: it is "
                             f"not a revocation store, or cannot be read or written)",
                             code="store_unavailable") from None

    def add(self, notice: bytes) -> bool:
        """Verify and keep a notice; True if it was new."""
        checked = verify_notice(notice, self._anchors)  # verify before anything is stored
        cursor = self._run(
            "INSERT OR IGNORE INTO revoked (id, expires, notice) VALUES (?, ?, ?)",
            (checked.target, checked.expires, checked.data))
        if cursor.rowcount != 1:
            return False
        _stored(checked, "sqlite")
        return True

    def is_revoked(self, link_id: bytes) -> bool:
        """Whether the link with this id is revoked."""
        row = self._run("SELECT 1 FROM revoked WHERE id = ?", (link_id,)).fetchone()
        return row is not None

    def prune(self, now: int) -> int:
        """Forget notices whose target can no longer verify at ``now``; return how many."""
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


class RedisRevocationStore:
    """Notices in a Redis server, shared by every replica of an agent. Each notice is kept
    under its target's id until the target could no longer verify (Redis expires it then,
    so :meth:`prune` has nothing to do). ``client`` is a ``redis.Redis`` or a URL; the
    server must not evict keys (checked, as for :class:`agentauth.RedisReplayStore`)."""

    def __init__(self, client: Any, anchors: Mapping[Any, str], *,
                 prefix: bytes = b"agentauth:revoked:", check_policy: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self._anchors = anchor_map(anchors)
        self._clock = clock
        self._table = RedisTable(client, prefix=prefix, check_policy=check_policy,
                                 clock=clock)

    def add(self, notice: bytes) -> bool:
        """Verify and keep a notice; True if it was new (False too for a notice whose
        target can no longer verify: there is nothing left to refuse)."""
        checked = verify_notice(notice, self._anchors)  # verify before anything is stored
        until = checked.expires + MAX_SKEW
        if until <= self._clock():
            return False
        added = self._table.put(checked.target, checked.data, until)
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

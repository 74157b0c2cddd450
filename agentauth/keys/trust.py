"""Trust stores (spec section 14.3): pinned peers and trust anchors in a TOML file.

::

    version = 1

    [[peer]]                          # an agent this one accepts in a handshake
    name = "bob"
    id = "did:key:z6Mk..."
    next = "9f86..."                  # optional: commitment to bob's next key (14.4)
    retired = ["did:key:z6Mk..."]     # keys bob rotated away: refused from now on

    [[anchor]]                        # a root whose capability chains this agent accepts
    name = "corp"
    id = "did:key:z6Mk..."
    namespace = "reports/**"          # the resources it may delegate

Loading checks everything and names the line and field at fault; saving edits the file,
keeping its comments and order (:mod:`agentauth.keys.trustfile`, the file's format).
:attr:`TrustStore.peer_ids` (or :meth:`TrustStore.handshake_policy`) is what the
handshake takes, :attr:`TrustStore.anchors` what ``verify_chain`` takes. A rotation
statement moves an entry from its old key to the new one, once (:meth:`accept_rotation`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from .. import audit, crypto, files, keyfile
from ..capability.grants import parse_resource
from ..errors import (
    AuthenticationError,
    FileError,
    InvalidArgument,
    TrustStoreError,
)
from ..handshake import HandshakePolicy
from ..identity import PeerKey
from ..verdict import is_seconds
from .rotation import Rotation, next_key_commitment, parse_rotation
from .trustfile import (
    MAX_TRUST_STORE,
    TrustEntry,
    check_entries,
    edit_text,
    read_entries,
    valid_name,
    write_text,
)

__all__ = ["MAX_TRUST_STORE", "LiveTrust", "TrustEntry", "TrustStore", "editing"]



class TrustStore:
    """Pinned peers and trust anchors, loaded from and saved to a TOML file."""

    __slots__ = ("_anchors", "_entries", "_peer_ids")

    def __init__(self, entries: Iterable[TrustEntry] = ()) -> None:
        entries = list(entries)
        check_entries(entries)
        self._entries: tuple[TrustEntry, ...] = tuple(entries)
        self._peer_ids = frozenset(e.agent_id for e in entries if e.kind == "peer")
        self._anchors = {e.agent_id: str(e.namespace) for e in entries
                         if e.kind == "anchor"}

    # ---------------------------------------------------------------- reading

    @classmethod
    def parse(cls, text: str, source: str = "trust store") -> TrustStore:
        """A trust store from its TOML text; ``source`` names it in error messages."""
        return cls(read_entries(text, source))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrustStore:
        """Read and check a trust store file; refused if its group or others may write it
        (``trust_store_permissions``), since whoever writes it decides whom we trust."""
        name = os.fspath(path)

        def owner_writes(info: os.stat_result) -> None:
            if os.name == "posix" and info.st_mode & 0o022:
                raise TrustStoreError(f"trust store {name!r} is writable by group or others "
                                      f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod "
                                      f"go-w it", code="trust_store_permissions")

        # Before decoding, the whole file or nothing: a cut-off prefix must not load.
        data = files.read_file(name, MAX_TRUST_STORE, what="trust store", check=owner_writes)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TrustStoreError(f"{name}: not UTF-8 (byte {exc.start})",
                                  code="trust_store_invalid") from None
        return cls.parse(text, name)

    @property
    def entries(self) -> tuple[TrustEntry, ...]:
        """Every entry, peers then anchors, in file order."""
        return self._entries

    @property
    def peer_ids(self) -> frozenset[str]:
        """The agent ids of the pinned peers: what ``HandshakePolicy(trust=...)`` takes."""
        return self._peer_ids

    @property
    def anchors(self) -> Mapping[str, str]:
        """Each trust anchor's agent id and namespace: what ``verify_chain`` takes."""
        return dict(self._anchors)

    def get(self, name: str) -> TrustEntry | None:
        """The entry called ``name``, if any."""
        return next((e for e in self._entries if e.name == name), None)

    def trusts(self, peer: PeerKey) -> bool:
        """Whether ``peer`` is a pinned peer."""
        return peer.agent_id in self._peer_ids

    def handshake_policy(self, **options: Any) -> HandshakePolicy:
        """A :class:`HandshakePolicy` that accepts exactly the pinned peers."""
        return HandshakePolicy(trust=self._peer_ids, **options)

    # --------------------------------------------------------------- changing

    def add_peer(self, name: str, agent_id: str, *, next_key: str | None = None
                 ) -> TrustStore:
        """A copy with a pinned peer added (``next_key``: the agent id it committed to)."""
        return self._add(TrustEntry("peer", name, PeerKey.from_agent_id(agent_id),
                                    next=_commitment(next_key)))

    def add_anchor(self, name: str, agent_id: str, namespace: str = "**", *,
                   next_key: str | None = None) -> TrustStore:
        """A copy with a trust anchor for ``namespace`` added."""
        parse_resource(namespace)
        return self._add(TrustEntry("anchor", name, PeerKey.from_agent_id(agent_id),
                                    namespace, _commitment(next_key)))

    def _add(self, entry: TrustEntry) -> TrustStore:
        if not valid_name(entry.name):
            raise InvalidArgument("a name is 1 to 64 letters, digits, '.', '_' or '-'")
        try:
            return TrustStore([*self._entries, entry])
        except TrustStoreError as exc:
            raise InvalidArgument(exc.message) from None

    def remove(self, name: str) -> TrustStore:
        """A copy without the entry called ``name`` (``invalid_argument`` if none)."""
        if self.get(name) is None:
            raise InvalidArgument(f"the trust store has no entry {name!r}")
        return TrustStore(e for e in self._entries if e.name != name)

    def accept_rotation(self, statement: bytes | Rotation) -> tuple[TrustStore, Rotation]:
        """Verify a rotation statement and return a copy where every entry that pinned
        the old key pins the new one (the old key retired), with the statement.

        Refused: a statement signed by a key already rotated away (``key_rotated``, so a
        statement is accepted once); a new key that does not match the commitment made
        before (``rotation_mismatch``); an old key we never pinned (``untrusted_peer``).
        A :class:`Rotation` given instead of bytes is verified again from its ``data``.
        """
        # A Rotation is verified again from its bytes: anyone can build one by hand.
        rotation = parse_rotation(statement.data if isinstance(statement, Rotation)
                                  else statement)
        for entry in self._entries:
            if rotation.old in entry.retired:
                raise AuthenticationError(f"{rotation.old.agent_id} was already rotated away "
                                          f"by {entry.name!r}", code="key_rotated")
            if rotation.new in entry.retired:
                raise AuthenticationError(f"{rotation.new.agent_id} is a key {entry.name!r} "
                                          f"rotated away", code="key_rotated")
        matches = [e for e in self._entries if e.key == rotation.old]
        if not matches:
            raise AuthenticationError(f"no entry pins {rotation.old.agent_id}",
                                      code="untrusted_peer")
        taken = [e.name for e in self._entries if e.key == rotation.new]
        if taken:
            raise AuthenticationError(f"the new key is already pinned as {taken[0]!r}",
                                      code="rotation_mismatch")
        commitment = next_key_commitment(rotation.new)
        for entry in matches:
            if entry.next is not None and not crypto.equal(entry.next, commitment):
                raise AuthenticationError(f"{entry.name!r} committed to another next key "
                                          f"than {rotation.new.agent_id}",
                                          code="rotation_mismatch")
        moved = {e.name: replace(e, key=rotation.new, next=rotation.next,
                                 retired=(*e.retired, rotation.old)) for e in matches}
        for name in moved:
            audit.emit("rotation_accepted", name=name, old=rotation.old.agent_id,
                       new=rotation.new.agent_id)
        return TrustStore(moved.get(e.name, e) for e in self._entries), rotation

    # ---------------------------------------------------------------- writing

    def dumps(self) -> str:
        """The TOML text of this store, written afresh (:meth:`save` edits an existing file
        instead, keeping its comments and order)."""
        return write_text(self._entries)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the store to ``path`` atomically (a new file, then a rename): what was
        there is replaced, unless it is a key file or not a regular file
        (:func:`agentauth.files.write_file`). A trust store already there is edited, not
        rewritten: its comments, layout and the order of its entries stay, entries gone
        are removed, changed ones changed in place and new ones added after the last of
        their kind (:func:`~agentauth.keys.trustfile.edit_text`); the text written loads as
        exactly this store."""
        name = os.fspath(path)
        try:  # keep the file's mode, less any group or other write bit (the loader's rule)
            mode = stat.S_IMODE(os.stat(name).st_mode) & ~0o022
        except OSError:  # none yet (or none to be had: the write says why)
            mode = 0o644
        text = edit_text(_previous(name), self._entries) or self.dumps()
        files.write_file(name, text.encode("utf-8"), mode=mode, force=True,
                         keep=keyfile.is_key_file, what="trust store")

    def __repr__(self) -> str:
        return (f"TrustStore({len(self._peer_ids)} peer(s), {len(self._anchors)} "
                f"anchor(s))")


class LiveTrust:
    """A trust policy that follows a trust store file while an agent runs, so that a
    ``trust rotate`` or ``trust add`` takes effect without a restart:
    ``HandshakePolicy(trust=LiveTrust("trust.toml"))``.

    At most once per ``interval`` seconds it looks at the file (inode, time, size) and
    reloads it if it changed. A file that no longer loads fails closed: nobody is trusted
    until it loads again, and the error goes to the ``agentauth.keys.trust`` logger. The first
    load happens here and raises as :meth:`TrustStore.load` does.
    """

    __slots__ = ("_checked", "_clock", "_interval", "_path", "_stamp", "_store")

    def __init__(self, path: str | os.PathLike[str], *, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not is_seconds(interval):
            raise InvalidArgument("interval is a finite number of seconds, at least 0")
        self._path = os.fspath(path)
        self._interval = float(interval)
        self._clock = clock
        self._stamp = self._look()
        self._store: TrustStore | None = TrustStore.load(self._path)
        self._checked = clock()

    def _look(self) -> tuple[int, ...] | None:
        try:
            info = os.stat(self._path)
        except OSError:
            return None
        # The change time and mode too: a chmod that lets others write the file changes
        # neither its content time nor its size, and must take effect (fail closed).
        return (info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size,
                info.st_mode)

    def _refresh(self) -> TrustStore | None:
        now = self._clock()
        if now - self._checked < self._interval:
            return self._store
        self._checked = now
        stamp = self._look()
        if stamp is not None and stamp == self._stamp:
            return self._store
        self._stamp = stamp
        try:
            self._store = TrustStore.load(self._path)
        except Exception as exc:  # whatever the failure, trust nobody
            self._store = None  # fail closed until the file loads again
            logging.getLogger("agentauth.keys.trust").error(
                "trust store %s no longer loads, nobody is trusted: %s", self._path, exc)
        return self._store

    @property
    def store(self) -> TrustStore | None:
        """The store now in force (None while the file does not load)."""
        return self._refresh()

    @property
    def anchors(self) -> Mapping[str, str]:
        """The anchors now in force, for ``verify_chain`` (none while the file does not
        load)."""
        store = self._refresh()
        return {} if store is None else store.anchors

    def __call__(self, peer: PeerKey) -> bool:
        """Whether ``peer`` is a pinned peer of the store now in force."""
        store = self._refresh()
        return store is not None and store.trusts(peer)

    def __repr__(self) -> str:
        return f"LiveTrust({self._path!r})"


@contextlib.contextmanager
def editing(path: str | os.PathLike[str], *, timeout: float = 10.0) -> Iterator[None]:
    """Hold the exclusive lock of the trust store at ``path`` for one load, change and
    save, so that two editors cannot lose each other's change: a lost rotation would bring
    a retired key back. The lock is taken on the store's folder (the store itself is
    replaced by each save), so no lock file is left behind, whatever the command does.

    The lock is waited for at most ``timeout`` seconds: anyone who can open the folder can
    hold it (another user, on a home folder others may read), and an editor must not hang
    on that (``file_io``, saying the store is being edited elsewhere)."""
    files.check_timeout(timeout)
    folder = os.path.dirname(os.fspath(path)) or "."
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                             | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise FileError(f"the folder of trust store {os.fspath(path)!r} does not exist or "
                        f"cannot be opened", code="file_not_found") from None
    try:
        files.lock(descriptor, os.fspath(path), timeout, what="trust store",
                   held="being edited by another process")
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _previous(name: str) -> str | None:
    """The text of the trust store at ``name``, if one that loads is there."""
    try:
        text = files.read_file(name, MAX_TRUST_STORE, what="trust store").decode("utf-8")
        TrustStore.parse(text, name)
    except (FileError, TrustStoreError, UnicodeDecodeError):
        return None  # nothing to keep: the store is written afresh (or the write refuses)
    return text


def _commitment(next_key: str | None) -> bytes | None:
    return None if next_key is None else next_key_commitment(next_key)

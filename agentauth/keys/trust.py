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

Loading checks everything (TOML syntax, the version, every key and value, unique names,
each key pinned at most once per kind, no retired key in use) and names the line and field
at fault. :attr:`TrustStore.peer_ids` (or :meth:`TrustStore.handshake_policy`) is what the
handshake takes, :attr:`TrustStore.anchors` what ``verify_chain`` takes. A rotation
statement moves an entry from its old key to the new one, once (:meth:`accept_rotation`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import stat
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, NoReturn

from .. import audit, crypto, files, keyfile
from ..capability.grants import parse_resource
from ..errors import (
    AgentAuthError,
    AuthenticationError,
    FileError,
    InvalidArgument,
    TrustStoreError,
)
from ..handshake import HandshakePolicy
from ..identity import PeerKey
from ..verdict import is_seconds
from .rotation import Rotation, next_key_commitment, parse_rotation

__all__ = ["MAX_TRUST_STORE", "LiveTrust", "TrustEntry", "TrustStore", "editing"]

MAX_TRUST_STORE: Final = 16 * 1024 * 1024
STORE_VERSION: Final = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX32 = re.compile(r"[0-9a-f]{64}")
_FIELDS = {"peer": {"name", "id", "next", "retired"},
           "anchor": {"name", "id", "namespace", "next", "retired"}}
_REQUIRED = {"peer": ("name", "id"), "anchor": ("name", "id", "namespace")}
_HEADER = ("# agentauth trust store (spec 14.3): pinned peers and trust anchors.\n"
           "# Edit by hand or with `agentauth trust`; every load checks it all.\n")


@dataclass(frozen=True, slots=True)
class TrustEntry:
    """One pinned peer (``kind`` "peer") or trust anchor (``kind`` "anchor")."""

    kind: str
    name: str
    key: PeerKey
    namespace: str | None = None
    next: bytes | None = None
    retired: tuple[PeerKey, ...] = ()

    @property
    def agent_id(self) -> str:
        """The entry's current key as an agent id."""
        return self.key.agent_id


def _locate(text: str) -> dict[tuple[str, int, str], int]:
    """The line of each ``[[kind]]`` header (field "") and of each key in it (top-level
    keys under kind "", index -1)."""
    lines: dict[tuple[str, int, str], int] = {}
    counts: dict[str, int] = {}
    kind, index = "", -1
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        header = re.fullmatch(r"\[\[\s*([A-Za-z0-9_-]+)\s*\]\]\s*(#.*)?", line)
        if header:
            kind = header.group(1)
            index = counts.get(kind, 0)
            counts[kind] = index + 1
            lines.setdefault((kind, index, ""), number)
            continue
        if line.startswith("["):
            kind, index = line, -1
            continue
        key = re.match(r"([A-Za-z0-9_-]+)\s*=", line)
        if key:
            lines.setdefault((kind, index, key.group(1)), number)
    return lines


@functools.cache
def _document_model() -> Any:
    """The pydantic model of a trust store file's document: its keys, their types, what is
    required. Built on the first load: importing pydantic costs about as much as the rest
    of the package, and nothing but a load needs it."""
    from pydantic import BaseModel, ConfigDict, Field  # noqa: PLC0415

    class Peer(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
        name: str
        id: str
        next: str | None = None
        retired: list[str] = Field(default_factory=list)

    class Anchor(Peer):
        namespace: str

    class Document(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
        version: int
        peer: list[Peer] = Field(default_factory=list)
        anchor: list[Anchor] = Field(default_factory=list)

    return Document


_AGENT_ID = "an agent id is a string 'did:key:z...'"
_NAME_RULE = ("a name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or "
              "digit")
_NEXT_RULE = "a next-key commitment is 64 lower-case hex digits"
# What each entry field must be, said when the model finds it of the wrong type.
_FIELD_RULES = {"name": _NAME_RULE, "id": _AGENT_ID, "next": _NEXT_RULE,
                "retired": "retired is a list of agent ids",
                "namespace": "not a resource pattern: a namespace is a string"}


class _Checker:
    """Turns the parsed TOML into entries; every error names its line and field."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = _locate(text)
        self.source = source

    def fail(self, message: str, kind: str = "", index: int = -1, field: str = "") -> NoReturn:
        line = self.lines.get((kind, index, field)) or self.lines.get((kind, index, ""))
        where = f"{kind}[{index}]" + (f".{field}" if field else "") if kind else field
        at = f" line {line}:" if line else ""
        where = f" {where}:" if where else ""
        raise TrustStoreError(f"{self.source}:{at}{where} {message}",
                              code="trust_store_invalid")

    def explain(self, errors: list[Any]) -> NoReturn:
        """Fail with the model's first complaint (an unknown field before any other), in
        the words and at the line and field a person edits."""
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc, problem = error["loc"], error["type"]
        if problem == "string_unicode" or not loc:  # a lone surrogate in a key or value
            unicode = "a key or value is not valid Unicode text (it holds a lone surrogate)"
            if len(loc) >= 2:
                self.fail(unicode, str(loc[0]), int(loc[1]))
            self.fail(unicode)
        if len(loc) == 1:  # a top-level key
            field = str(loc[0])
            if problem == "extra_forbidden":
                self.fail("unknown field (allowed: version, peer, anchor)", field=field)
            if field == "version" and problem == "missing":
                self.fail("the field 'version' is missing (version = 1)", field=field)
            if field == "version":
                self.fail(f"version {error['input']!r} is not one this release reads "
                          f"({STORE_VERSION})", field=field)
            self.fail(f"write each {field} as a [[{field}]] table", field=field)
        kind, index = str(loc[0]), int(loc[1])
        if len(loc) == 2:
            self.fail("must be a table", kind, index)
        field = str(loc[2])
        if problem == "extra_forbidden":
            self.fail(f"unknown field (allowed: {', '.join(sorted(_FIELDS[kind]))})",
                      kind, index, field)
        if problem == "missing":
            self.fail(f"the field {field!r} is missing", kind, index)
        self.fail(_AGENT_ID if len(loc) > 3 else _FIELD_RULES[field], kind, index, field)

    def key(self, value: str, kind: str, index: int, field: str) -> PeerKey:
        try:
            return PeerKey.from_agent_id(value)
        except AgentAuthError as exc:
            self.fail(exc.message, kind, index, field)

    def entry(self, kind: str, index: int, table: Any) -> TrustEntry:
        """One entry the model has checked the form of: now its values."""
        if not _NAME.fullmatch(table.name):
            self.fail(_NAME_RULE, kind, index, "name")
        key = self.key(table.id, kind, index, "id")
        namespace = None
        if kind == "anchor":
            namespace = table.namespace
            try:
                parse_resource(namespace)
            except AgentAuthError as exc:
                self.fail(f"not a resource pattern: {exc.message}", kind, index, "namespace")
        commitment = None
        if table.next is not None:
            if not _HEX32.fullmatch(table.next):
                self.fail(_NEXT_RULE, kind, index, "next")
            commitment = bytes.fromhex(table.next)
        old = tuple(self.key(v, kind, index, "retired") for v in table.retired)
        return TrustEntry(kind, table.name, key, namespace, commitment, old)

    def store(self, document: dict[str, Any]) -> list[TrustEntry]:
        from pydantic import ValidationError  # noqa: PLC0415 (loaded by the model already)

        try:
            checked = _document_model().model_validate(document)
        except ValidationError as exc:
            self.explain(exc.errors())
        if checked.version != STORE_VERSION:
            self.fail(f"version {checked.version!r} is not one this release reads "
                      f"({STORE_VERSION})", field="version")
        entries = [self.entry(kind, i, t) for kind in ("peer", "anchor")
                   for i, t in enumerate(getattr(checked, kind))]
        try:
            _check_consistent(entries)
        except TrustStoreError as exc:
            kind, index = exc.args[1:3] if len(exc.args) >= 3 else ("", -1)
            self.fail(exc.message, kind, index)
        return entries


def _check_consistent(entries: Iterable[TrustEntry]) -> None:
    """Names unique, each key pinned once per kind, no retired key pinned again."""
    names: set[str] = set()
    current: dict[tuple[str, PeerKey], str] = {}
    retired: dict[PeerKey, str] = {}
    counts: dict[str, int] = {}
    for entry in entries:
        index = counts.get(entry.kind, 0)
        counts[entry.kind] = index + 1
        if entry.kind not in _FIELDS or not _NAME.fullmatch(entry.name):
            raise TrustStoreError(f"entry {entry.name!r} of kind {entry.kind!r} is not one a "
                                  f"store can hold", code="trust_store_invalid")

        def fail(message: str, kind: str = entry.kind, i: int = index) -> None:
            error = TrustStoreError(message, code="trust_store_invalid")
            error.args = (str(error), kind, i)
            raise error

        _check_entry(entry, fail)
        if entry.name in names:
            fail(f"the name {entry.name!r} is used twice")
        names.add(entry.name)
        if (entry.kind, entry.key) in current:
            fail(f"{entry.agent_id} is already the {entry.kind} "
                 f"{current[entry.kind, entry.key]!r}")
        current[entry.kind, entry.key] = entry.name
        for old in entry.retired:
            retired.setdefault(old, entry.name)
    for (_, key), name in current.items():
        if key in retired:
            raise TrustStoreError(f"{key.agent_id} of {name!r} was rotated away by "
                                  f"{retired[key]!r}", code="trust_store_invalid")


def _check_entry(entry: TrustEntry, fail: Callable[[str], None]) -> None:
    """What the file's rules say of one entry, for entries made in code too: an anchor has
    a namespace (none would grant it everything), a peer none, a commitment 32 bytes."""
    if not isinstance(entry.key, PeerKey) or not all(isinstance(k, PeerKey)
                                                     for k in entry.retired):
        fail(f"entry {entry.name!r}: keys are PeerKeys")
    if entry.kind == "peer" and entry.namespace is not None:
        fail(f"peer {entry.name!r}: only an anchor has a namespace")
    if entry.kind == "anchor":
        try:
            parse_resource("" if entry.namespace is None else entry.namespace)
        except AgentAuthError as exc:
            fail(f"anchor {entry.name!r}: not a namespace: {exc.message}")
    if entry.next is not None and (type(entry.next) is not bytes or len(entry.next) != 32):
        fail(f"entry {entry.name!r}: a next-key commitment is 32 bytes")


def _string(value: str) -> str:
    return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's, ASCII only


class TrustStore:
    """Pinned peers and trust anchors, loaded from and saved to a TOML file."""

    __slots__ = ("_anchors", "_entries", "_peer_ids")

    def __init__(self, entries: Iterable[TrustEntry] = ()) -> None:
        entries = list(entries)
        _check_consistent(entries)
        self._entries: tuple[TrustEntry, ...] = tuple(entries)
        self._peer_ids = frozenset(e.agent_id for e in entries if e.kind == "peer")
        self._anchors = {e.agent_id: str(e.namespace) for e in entries
                         if e.kind == "anchor"}

    # ---------------------------------------------------------------- reading

    @classmethod
    def parse(cls, text: str, source: str = "trust store") -> TrustStore:
        """A trust store from its TOML text; ``source`` names it in error messages."""
        if len(text) > MAX_TRUST_STORE or len(text.encode("utf-8", "surrogatepass")
                                              ) > MAX_TRUST_STORE:
            raise TrustStoreError(f"{source}: larger than {MAX_TRUST_STORE} bytes",
                                  code="trust_store_invalid")
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TrustStoreError(f"{source}: not valid TOML: {exc}",
                                  code="trust_store_invalid") from None
        except RecursionError:  # tomllib recurses into nested arrays and inline tables
            raise TrustStoreError(f"{source}: not a trust store: values nested too deeply",
                                  code="trust_store_invalid") from None
        return cls(_Checker(text, source).store(document))

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
        if not _NAME.fullmatch(entry.name):
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
        out = [_HEADER, f"version = {STORE_VERSION}\n"]
        for entry in self._entries:
            out.append(f"\n[[{entry.kind}]]\nname = {_string(entry.name)}\n"
                       f"id = {_string(entry.agent_id)}\n")
            if entry.namespace is not None:
                out.append(f"namespace = {_string(entry.namespace)}\n")
            if entry.next is not None:
                out.append(f"next = {_string(entry.next.hex())}\n")
            if entry.retired:
                keys = ", ".join(_string(k.agent_id) for k in entry.retired)
                out.append(f"retired = [{keys}]\n")
        return "".join(out)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the store to ``path`` atomically (a new file, then a rename): what was
        there is replaced, unless it is a key file or not a regular file
        (:func:`agentauth.files.write_file`). A trust store already there is edited, not
        rewritten: its comments, layout and the order of its entries stay, entries gone
        are removed, changed ones changed in place and new ones added after the last of
        their kind (:func:`_edit`); the text written loads as exactly this store."""
        name = os.fspath(path)
        try:  # keep the file's mode, less any group or other write bit (the loader's rule)
            mode = stat.S_IMODE(os.stat(name).st_mode) & ~0o022
        except OSError:  # none yet (or none to be had: the write says why)
            mode = 0o644
        text = _edit(_previous(name), self) or self.dumps()
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


def _edit(previous: str | None, store: TrustStore) -> str | None:
    """``previous`` (a trust store's text) edited to hold ``store``'s entries, keeping its
    comments and order; None if that cannot be done (an entry written as an inline table,
    say), when the store is written afresh instead. Style-preserving edits are what
    tomlkit is for (the standard library reads TOML but does not write it); it is imported
    only here, so loading a store never needs it."""
    if previous is None:
        return None
    try:
        text = _edited(previous, store)
    except Exception:  # tomlkit refuses what tomllib read, or cannot edit it: start afresh
        return None
    try:
        if text is None or _by_kind(TrustStore.parse(text).entries) != _by_kind(store.entries):
            return None
    except TrustStoreError:
        return None
    return text


def _edited(previous: str, store: TrustStore) -> str | None:
    """The edit of :func:`_edit`, unchecked."""
    import tomlkit  # noqa: PLC0415 (only an edit needs it)
    from tomlkit.items import AoT  # noqa: PLC0415

    document = tomlkit.parse(previous)
    wanted = {entry.name: entry for entry in store.entries}
    for kind in ("peer", "anchor"):
        tables = document.get(kind)
        if tables is None:
            continue
        if not isinstance(tables, AoT):
            return None
        for index in reversed(range(len(tables))):
            entry = wanted.get(str(tables[index].get("name")))
            if entry is None or entry.kind != kind:
                # Its closing comments open what follows: the entry before keeps them.
                trailing = _trailing(tables[index])
                if index > 0:
                    for item in trailing:
                        tables[index - 1].add(item)
                del tables[index]
            else:
                _edit_table(tables[index], entry)
                del wanted[entry.name]
        if not tables:
            del document[kind]  # not left behind as "peer = []"
    for entry in wanted.values():  # new ones, after the last of their kind
        if entry.kind not in document:
            document.append(entry.kind, tomlkit.aot())
        tables = document[entry.kind]
        assert isinstance(tables, AoT)
        table = tomlkit.table()
        _edit_table(table, entry)
        if len(tables):  # the comments that end the last table now end the new one
            trailing = _trailing(tables[-1])
            tables[-1].add(tomlkit.nl())
            for item in trailing:
                table.add(item)
        tables.append(table)
    return tomlkit.dumps(document)


def _by_kind(entries: Iterable[TrustEntry]) -> list[TrustEntry]:
    """Peers then anchors, each in their order: the order a file loads in."""
    return sorted(entries, key=lambda entry: entry.kind != "peer")


def _trailing(table: Any) -> list[Any]:
    """Take the comments and blank lines that end ``table`` (a tomlkit table) off it."""
    body = table.value.body
    items: list[Any] = []
    while body and body[-1][0] is None:
        items.insert(0, body.pop()[1])
    return items


def _edit_table(table: Any, entry: TrustEntry) -> None:
    """Make ``table`` (a tomlkit table) say what ``entry`` says, changing only what
    differs; a new key goes after the table's last key, before its closing comments."""
    fields: dict[str, object] = {"name": entry.name, "id": entry.agent_id}
    if entry.namespace is not None:
        fields["namespace"] = entry.namespace
    if entry.next is not None:
        fields["next"] = entry.next.hex()
    if entry.retired:
        fields["retired"] = [k.agent_id for k in entry.retired]
    for key in [k for k in table if k not in fields]:
        del table[key]
    for key, value in fields.items():
        if key in table:
            if table[key] != value:
                table[key] = value
        else:
            trailing = _trailing(table)
            table.append(key, value)
            for item in trailing:
                table.add(item)


def _commitment(next_key: str | None) -> bytes | None:
    return None if next_key is None else next_key_commitment(next_key)

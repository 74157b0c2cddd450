"""The trust store file (spec section 14.3): its TOML text read into entries, and an
existing file's text edited to hold other entries.

Reading checks everything (TOML syntax, the version, every key and value, unique names,
each key pinned at most once per kind, no retired key in use) and names the line and field
at fault. Writing keeps what a person wrote: an edit changes only the entries that differ,
keeps comments, layout and order, and the text it gives loads as exactly the entries asked
for (else the store is written afresh). :class:`~agentauth.keys.trust.TrustStore` is the
store these texts hold.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from ..capability.grants import parse_resource
from ..errors import AgentAuthError, TrustStoreError
from ..identity import PeerKey

__all__ = ["MAX_TRUST_STORE", "STORE_VERSION", "TrustEntry", "by_kind", "check_entries",
           "edit_text", "read_entries", "valid_name", "write_text"]

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


def read_entries(text: str, source: str = "trust store") -> list[TrustEntry]:
    """The entries of a trust store's TOML text, every one checked; ``source`` names the
    text in error messages (``trust_store_invalid``, with the line and field at fault)."""
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
    return _Checker(text, source).store(document)


def valid_name(name: str) -> bool:
    """Whether ``name`` may name an entry: 1 to 64 letters, digits, '.', '_' or '-',
    starting with a letter or digit."""
    return _NAME.fullmatch(name) is not None


def write_text(entries: Iterable[TrustEntry]) -> str:
    """The TOML text of a store holding ``entries``, written afresh."""
    out = [_HEADER, f"version = {STORE_VERSION}\n"]
    for entry in entries:
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
            check_entries(entries)
        except TrustStoreError as exc:
            kind, index = exc.args[1:3] if len(exc.args) >= 3 else ("", -1)
            self.fail(exc.message, kind, index)
        return entries


def check_entries(entries: Iterable[TrustEntry]) -> None:
    """What a store's entries must be together (``trust_store_invalid``): names unique,
    each key pinned once per kind, no retired key pinned again."""
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


def edit_text(previous: str | None, entries: Iterable[TrustEntry]) -> str | None:
    """``previous`` (a trust store's text) edited to hold ``entries``, keeping its
    comments and order; None if that cannot be done (an entry written as an inline table,
    say), when the store is written afresh instead. Style-preserving edits are what
    tomlkit is for (the standard library reads TOML but does not write it); it is imported
    only here, so loading a store never needs it."""
    entries = list(entries)
    if previous is None:
        return None
    try:
        text = _edited(previous, entries)
    except Exception:  # tomlkit refuses what tomllib read, or cannot edit it: start afresh
        return None
    try:
        if text is None or by_kind(read_entries(text)) != by_kind(entries):
            return None
    except TrustStoreError:
        return None
    return text


def _edited(previous: str, entries: list[TrustEntry]) -> str | None:
    """The edit of :func:`edit_text`, unchecked."""
    import tomlkit  # noqa: PLC0415 (only an edit needs it)
    from tomlkit.items import AoT  # noqa: PLC0415

    document = tomlkit.parse(previous)
    wanted = {entry.name: entry for entry in entries}
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


def by_kind(entries: Iterable[TrustEntry]) -> list[TrustEntry]:
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

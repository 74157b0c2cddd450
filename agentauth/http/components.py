"""RFC 9421 building blocks, sans-I/O: a message view, component values, the signature base,
structured fields (through ``http-sf``) and RFC 9530 ``Content-Digest``.

Nothing here knows the agentauth profile (spec 13); :mod:`.profile` applies its rules on
top. Every function that reads bytes from outside checks sizes first and raises a typed
agentauth error (never an ``http-sf`` one).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import http_sf

from .. import crypto
from ..errors import AuthenticationError, DecodeError, InvalidArgument

__all__ = [
    "DIGESTS",
    "MAX_FIELD",
    "Component",
    "HTTPMessage",
    "authority_value",
    "check_content_digest",
    "component_id",
    "content_digest",
    "parse_bytes",
    "parse_dictionary",
    "parse_signature_input",
    "ser_member",
    "shown",
    "signature_base",
    "signature_params",
]

#: The longest value of a structured field agentauth parses (Signature, Signature-Input,
#: Content-Digest, Signature-Agent, the capability header), checked before parsing.
MAX_FIELD: Final = 16384
MAX_MEMBERS: Final = 8
MAX_COMPONENTS: Final = 24
#: RFC 9530 algorithms agentauth computes and checks; other members are ignored.
DIGESTS: Final = {"sha-256": crypto.sha256, "sha-512": crypto.sha512}
_COMPONENT_PARAMS: Final = frozenset({"req", "key"})
_DERIVED: Final = frozenset({"@method", "@target-uri", "@authority", "@scheme",
                             "@request-target", "@path", "@query", "@status"})

#: A covered component: its name and its parameters (``req``: True, ``key``: a member).
Component = tuple[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class HTTPMessage:
    """An HTTP request or response as a signature sees it.

    ``fields`` holds the header field lines in order, names in lower case. A request has a
    ``method`` and its target (``scheme``, ``authority``, ``path``, ``query`` without the
    ``?``); a response has a ``status`` and, for ``;req`` components, the ``request`` it
    answers.
    """

    fields: tuple[tuple[str, str], ...]
    method: str = ""
    scheme: str = "https"
    authority: str = ""
    path: str = "/"
    query: str = ""
    status: int | None = None
    request: HTTPMessage | None = field(default=None, repr=False)
    _index: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Types checked here, once, so that no later step meets a value it cannot read.
        if (type(self.method) is not str or type(self.scheme) is not str
                or type(self.authority) is not str or type(self.path) is not str
                or type(self.query) is not str):
            raise InvalidArgument("a message's method and target are strings")
        if self.status is not None and (type(self.status) is not int
                                        or not 100 <= self.status <= 999):
            raise InvalidArgument("a status is an integer of three digits")
        if self.request is not None and not isinstance(self.request, HTTPMessage):
            raise InvalidArgument("a response's request is an HTTPMessage")
        index: dict[str, list[str]] = {}
        for line in self.fields:
            if type(line) is not tuple or len(line) != 2:
                raise InvalidArgument("a field line is a name and a value")
            key, value = line
            if type(key) is not str or type(value) is not str:
                raise InvalidArgument("field names and values are str, or Latin-1 bytes")
            index.setdefault(key, []).append(value.strip(" \t"))
        object.__setattr__(self, "_index", {k: ", ".join(v) for k, v in index.items()})

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str | bytes, str | bytes]],
                     **target: Any) -> HTTPMessage:
        """Build a message from header pairs (``str`` or Latin-1 ``bytes``)."""
        try:
            lines = tuple((_text(k).lower(), _text(v)) for k, v in headers)
        except (TypeError, ValueError, AttributeError):
            raise InvalidArgument("headers are pairs of str or bytes") from None
        return cls(fields=lines, **target)

    def field(self, name: str) -> str | None:
        """The combined value of every line of field ``name`` (RFC 9421 2.1), or None."""
        return self._index.get(name)

    def with_fields(self, extra: Iterable[tuple[str, str]], *, replace: bool = False
                    ) -> HTTPMessage:
        """A copy with more field lines appended; with ``replace``, they take the place
        of every line of the same names (as a signer sets its own headers)."""
        added = tuple((k.lower(), v) for k, v in extra)
        names = {k for k, _ in added} if replace else set()
        kept = tuple((k, v) for k, v in self.fields if k not in names)
        return HTTPMessage(kept + added, self.method, self.scheme, self.authority,
                           self.path, self.query, self.status, self.request)


#: The most of a name from a message that an error message repeats.
SHOWN: Final = 40


def shown(value: object) -> str:
    """``value`` (a name or names a message chose) as an error message may show it: its
    repr, cut to :data:`SHOWN` characters, since a reason never repeats a field's content
    at length (spec 13.9)."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _malformed(message: str) -> DecodeError:
    return DecodeError(message, code="malformed")


# ------------------------------------------------------------------ structured fields


def parse_dictionary(value: str, what: str) -> dict[str, Any]:
    """Parse a structured-field Dictionary; duplicate keys and oversize values refused.
    (The last few results are remembered: a request's Signature field is read again to
    sign its response. Callers never change what they get.)"""
    if type(value) is not str:
        raise InvalidArgument("a field value is a str")
    return _parse_dictionary(value, what)


@functools.lru_cache(maxsize=64)
def _parse_dictionary(value: str, what: str) -> dict[str, Any]:
    if len(value) > MAX_FIELD:
        raise DecodeError(f"the {what} field is longer than {MAX_FIELD} bytes",
                          code="oversize")

    def duplicate(key: str, context: str) -> None:
        raise _malformed(f"the {what} field repeats the key {shown(key)}")

    try:
        parsed = http_sf.parse(value.encode("latin-1"), tltype="dictionary",
                               on_duplicate_key=duplicate)
    except DecodeError:
        raise
    except (http_sf.StructuredFieldError, ValueError, UnicodeError) as exc:
        raise _malformed(f"the {what} field is not a structured-field dictionary"
                         ) from exc
    if not isinstance(parsed, dict) or len(parsed) > MAX_MEMBERS:
        raise _malformed(f"the {what} field has more than {MAX_MEMBERS} members")
    return parsed


def parse_signature_input(value: str) -> dict[str, Any]:
    """:func:`parse_dictionary` of a ``Signature-Input`` value: the same result and the
    same refusals, cheaper when the value starts with one member that is an inner list.

    Its components (up to the first ``)``) are the same in every signature of a signer,
    while its parameters (created, expires, nonce) are new each time. So the value is
    parsed, by ``http-sf`` still, in two pieces: ``label=(components)``, remembered by its
    exact text, and ``label=()`` followed by the rest of the value as received. Parsing is
    left to right, so the second piece's parser reaches the rest in the state the whole
    value's parser would; when the first piece is not one such member (or fails), the
    whole value is parsed instead, and gives the error it gives."""
    if type(value) is not str:
        raise InvalidArgument("a field value is a str")
    close = value.find(")")
    if close < 0 or len(value) > MAX_FIELD:
        return _parse_dictionary(value, "Signature-Input")
    first = _one_inner_list(value[:close + 1])
    if first is None:
        return _parse_dictionary(value, "Signature-Input")
    opening, items = first
    rest = value[:opening + 1] + value[close:]  # label=() and the rest as received
    parsed = _split_params(rest)
    if parsed is None:
        parsed = dict(_parse_dictionary(rest, "Signature-Input"))
    label, member = next(iter(parsed.items()))
    parsed[label] = (items, member[1])
    return parsed


#: Where the parameters a signer writes the same every time begin: agentauth's signers
#: write keyid, alg and tag after created, expires and nonce.
_CONSTANT_FROM: Final = ";keyid="


def _split_params(rest: str) -> dict[str, Any] | None:
    # rest is "label=()" and the parameters (and any members) as received. Cut it before
    # the keyid parameter: "label=();created=..;expires=..;nonce=.." (new each time) and
    # "label=()" with the rest from ";keyid=" on (remembered). If the first piece parses
    # as one member, its last parameter ended at the cut (no item that parses to the end
    # of the piece goes on past a ";" in the whole value: only a string can hold one, and
    # a string cut short does not parse), so the whole value's parser reaches the cut in
    # the state the second piece's parser does after "()". None: parse rest whole (a
    # piece fails, or the pieces repeat a parameter, which the whole parse refuses).
    cut = rest.find(_CONSTANT_FROM)
    if cut < 0 or rest[cut - 1] in " \t":
        # A piece's parser strips the white space a field may end with, while the whole
        # value's parser refuses it before a ";" ('n=t ;keyid=2'): parse whole.
        return None
    try:
        fresh = _parse_dictionary.__wrapped__(rest[:cut], "Signature-Input")
        same = _parse_dictionary(rest[:rest.index("(") + 1] + ")" + rest[cut:],
                                 "Signature-Input")
    except DecodeError:
        return None
    if len(fresh) != 1:
        return None
    label, member = next(iter(fresh.items()))
    first = same[label]  # the same label leads both pieces
    if not isinstance(member, tuple) or member[0] != [] or member[1].keys() & first[1].keys():
        return None
    parsed = dict(same)
    parsed[label] = ([], {**member[1], **first[1]})
    return parsed


@functools.lru_cache(maxsize=64)
def _one_inner_list(head: str) -> tuple[int, list[Any]] | None:
    # head ends at the value's first ")": if it parses as exactly one member whose value
    # is an inner list, that list closed at head's last character, with no parameters.
    try:
        parsed = _parse_dictionary.__wrapped__(head, "Signature-Input")  # not kept twice
    except DecodeError:
        return None
    if len(parsed) != 1:
        return None
    member = next(iter(parsed.values()))
    if not isinstance(member, tuple) or not isinstance(member[0], list):
        return None
    return head.index("("), member[0]


def parse_bytes(value: str, what: str) -> bytes:
    """Parse a field that is one structured-field Byte Sequence with no parameters."""
    if type(value) is not str:
        raise InvalidArgument("a field value is a str")
    if len(value) > MAX_FIELD:
        raise DecodeError(f"the {what} field is longer than {MAX_FIELD} bytes",
                          code="oversize")
    try:
        parsed = http_sf.parse(value.encode("latin-1"), tltype="item")
    except (http_sf.StructuredFieldError, ValueError, UnicodeError) as exc:
        raise _malformed(f"the {what} field is not a structured-field item") from exc
    if not isinstance(parsed, tuple) or type(parsed[0]) is not bytes or parsed[1]:
        raise _malformed(f"the {what} field is one byte sequence")
    return parsed[0]


def ser_member(label: str, value: Any, params: Mapping[str, Any] | None = None) -> str:
    """Serialise a one-member Dictionary: ``label=value;params``."""
    item: Any = (value, dict(params or {}))
    if value is True or isinstance(value, list):  # a key alone; an inner list
        return http_sf.ser({label: item})
    return _member_key(label) + http_sf.ser(item)


@functools.lru_cache(maxsize=64)
def _member_key(label: str) -> str:
    # "label=" as http-sf writes a member's key (checked as a key), memoised: a signer
    # writes the same label every time; the member's item is serialised after it.
    return http_sf.ser({label: (0, {})})[:-1]


@functools.lru_cache(maxsize=512)
def _component_id(name: str, params: tuple[tuple[str, Any], ...]) -> str:
    return http_sf.ser((name, dict(params)))


def component_id(component: Component) -> str:
    """The serialised component identifier, e.g. ``"@method"`` or ``"signature";req``.
    (Memoised: a handful of identifiers recur in every message.)"""
    name, params = component
    key = tuple(params.items())
    try:
        return _component_id(name, key)
    except TypeError:  # an unhashable parameter value: serialise without the memo
        return http_sf.ser((name, dict(params)))


def signature_params(components: Iterable[Component], params: Mapping[str, Any], *,
                     ids: Iterable[str] | None = None) -> str:
    """The ``@signature-params`` value: the inner list of components and its parameters,
    in the order given (the order is signed). Serialised as ``http-sf`` serialises an
    inner list: each item's serialisation, space-separated in parentheses, then the
    parameters (serialised by ``http-sf`` after an empty inner list)."""
    parts = []
    fresh: dict[str, Any] = {}  # consecutive parameters new in every signature
    for name, value in params.items():
        if name in _FRESH:
            fresh[name] = value
            continue
        if fresh:
            parts.append(_params(fresh))
            fresh = {}
        try:
            parts.append(_param(name, type(value).__name__, value))
        except TypeError:  # an unhashable value: serialise without the memo
            parts.append(_param.__wrapped__(name, type(value).__name__, value))
    if fresh:
        parts.append(_params(fresh))
    tail = "".join(parts)
    names = ids if ids is not None else (component_id(c) for c in components)
    return "(" + " ".join(names) + ")" + tail


#: Parameters whose values differ in every signature: serialised together, unmemoised.
_FRESH: Final = frozenset({"created", "expires", "nonce"})


def _params(params: dict[str, Any]) -> str:
    # ";a=1;b=2" as http-sf writes the parameters of an item (the same as of an inner
    # list: one after another), in one call.
    item: Any = (0, params)
    return http_sf.ser(item)[1:]


@functools.lru_cache(maxsize=1024)
def _param(name: str, kind: str, value: Any) -> str:
    # ";name=value" as http-sf writes one parameter (parameters serialise one after
    # another); memoised, since keyid, alg and tag recur in every signature. The type is
    # part of the key: True and 1 are equal in Python, not in a structured field.
    empty: Any = ([], {name: value})
    return http_sf.ser([empty])[2:]


# ------------------------------------------------------------------ component values


def _derived(message: HTTPMessage, name: str) -> str:
    # Only the value asked for is computed: a request's signature covers four of these.
    if name == "@status":
        if message.status is None:
            raise _malformed("@status is a response component")
        return f"{message.status:03d}"
    if message.status is not None:
        raise _malformed(f"{name} of a response needs ;req")
    if name == "@method":
        return message.method
    if name == "@authority":
        return authority_value(message.authority, message.scheme)
    if name == "@path":
        return message.path or "/"
    if name == "@query":
        return f"?{message.query}"
    query = f"?{message.query}" if message.query else ""
    if name == "@target-uri":
        return f"{message.scheme}://{message.authority}{message.path}{query}"
    if name == "@scheme":
        return message.scheme.lower()
    return f"{message.path}{query}"  # @request-target, the last of _DERIVED


_DEFAULT_PORTS: Final = {"http": ":80", "https": ":443"}


def authority_value(authority: str, scheme: str = "https") -> str:
    """``@authority`` as RFC 9421 2.2.3 normalises it (RFC 9110 4.2.3): the host in lower
    case, the scheme's default port left out (``Example.com:443`` is ``example.com``)."""
    value = authority.lower()
    port = _DEFAULT_PORTS.get(scheme.lower())
    if port is not None and value.endswith(port) and len(value) > len(port):
        value = value[:-len(port)]
    return value


def _value(message: HTTPMessage, component: Component) -> str:
    name, params = component
    if type(name) is not str or not isinstance(params, dict):
        raise _malformed("a covered component is a string with parameters")
    if params and not params.keys() <= _COMPONENT_PARAMS:
        raise DecodeError(f"component parameters {shown(sorted(set(params) - _COMPONENT_PARAMS))}"
                          f" are not supported", code="unknown_field")
    if "req" in params:
        if params["req"] is not True or message.request is None:
            raise _malformed(f"{shown(name)};req needs the request of a response")
        message = message.request
    if name in _DERIVED:
        if "key" in params:
            raise _malformed(f"{name} takes no key parameter")
        return _derived(message, name)
    if name.startswith("@") or name != name.lower() or not name:
        raise DecodeError(f"component {shown(name)} is not defined", code="unknown_field")
    value = message.field(name)
    if value is None:
        raise _malformed(f"covered field {shown(name)} is absent")
    if "key" in params:
        key = params["key"]
        members = parse_dictionary(value, name)
        if type(key) is not str or key not in members:
            raise _malformed(f"covered field {shown(name)} has no member {shown(key)}")
        return http_sf.ser([members[key]])
    return value


def signature_base(message: HTTPMessage, components: Sequence[Component],
                   params_value: str, *, ids: Sequence[str] | None = None) -> bytes:
    """The signature base (RFC 9421 2.5) of ``message``: one line per covered component,
    then ``@signature-params``; UTF-8, lines joined by LF, no final LF. ``ids`` are the
    components' identifiers, if already serialised."""
    if len(components) > MAX_COMPONENTS:  # before any value is computed
        raise _malformed(f"a signature covers at most {MAX_COMPONENTS} components")
    lines = []
    seen = set()
    for index, component in enumerate(components):
        ident = ids[index] if ids is not None else component_id(component)
        if ident in seen:
            raise _malformed(f"component {shown(ident)} is covered twice")
        seen.add(ident)
        value = _value(message, component)
        if "\n" in value or "\r" in value:
            raise _malformed(f"component {shown(ident)} holds a line break")
        lines.append(f"{ident}: {value}")
    lines.append(f'"@signature-params": {params_value}')
    try:
        return "\n".join(lines).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a value given as str
        raise _malformed("a covered component is not valid Unicode") from None


# ------------------------------------------------------------------ content digest


def content_digest(body: bytes, algorithms: Iterable[str] = ("sha-256",)) -> str:
    """The ``Content-Digest`` field value of ``body`` (RFC 9530)."""
    members: dict[str, Any] = {}
    for name in algorithms:
        if name not in DIGESTS:
            raise InvalidArgument(f"digest algorithms are {sorted(DIGESTS)}")
        members[name] = (DIGESTS[name](body), {})
    if not members:
        raise InvalidArgument("name at least one digest algorithm")
    return ", ".join(ser_member(name, *member) for name, member in members.items())


def check_content_digest(value: str, body: bytes) -> None:
    """Check every member of a ``Content-Digest`` value that agentauth knows against
    ``body``; at least one must be present. Unknown algorithms are ignored (RFC 9530)."""
    members = parse_dictionary(value, "Content-Digest")
    known = 0
    for name, item in members.items():
        if name not in DIGESTS:
            continue
        digest = item[0] if isinstance(item, tuple) else None
        if type(digest) is not bytes:
            raise _malformed("a Content-Digest member is a byte sequence")
        known += 1
        if not crypto.equal(digest, DIGESTS[name](body)):
            raise AuthenticationError(f"the content does not match its {name} digest",
                                      code="digest_mismatch")
    if not known:
        raise AuthenticationError(f"Content-Digest has none of {sorted(DIGESTS)}",
                                  code="digest_mismatch")


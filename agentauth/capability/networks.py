"""``Url`` and ``Cidr``: network destinations an argument may name (spec 10.1).

Both parse their constraint once, into slots, so that ``allows`` (run on every request) is
one compiled regex for the overall shape and then comparisons. The host, address and path
rules they share live in :mod:`.hosts`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument
from .hosts import (
    DEFAULT_PORTS,
    host_match_problem,
    host_pattern_within,
    ip_value,
    ipv4_network,
    path_problem,
    path_within,
    query_problem,
    value_host_problem,
    wildcard_problem,
)
from .values import MAX_STRING, Kind, fail, text

__all__ = ["MAX_URL", "Cidr", "Url"]

MAX_URL = 2048
"""The longest URL value (in bytes: a URL value is ASCII) a ``url`` constraint allows."""

_SUB = r"A-Za-z0-9\-._~!$&'()*+,;="  # unreserved and sub-delims (with '*')
# Rules 1 to 3 of a URL value in one pass: the characters, scheme://authority, a path, a
# query, no '#', no '@' in the authority, a decimal port. Groups: scheme, authority, host,
# port, path, query. Whatever it refuses, url_shape_problem explains (refusal path only).
_SHAPE = re.compile(
    r"(https?|wss?)://"
    rf"((\[[0-9A-Za-z:.%]*\]|[{_SUB}%]*)(?::([0-9]*))?)"
    rf"(/[{_SUB}%:@/\[\]]*)?"
    rf"(?:\?([{_SUB}%:@/?\[\]]*))?")
_PATH = re.compile(rf"/[{_SUB}%:@/\[\]]*")
# The common valid URL value, whole, in one regex (Url.allows' fast path): a lowercase
# scheme, a DNS name whose last label starts with a letter (so no IP literal), a port
# without leading zeros, a path of non-empty segments that are neither '.' nor '..' (a
# final '/' allowed) and a query, neither with '%', '[', ']' or '#'. Whatever it admits
# obeys rules 1 to 5 once the host is at most 253 characters and the port at most 65535;
# whatever it refuses goes the rule-by-rule way.
_SEGMENT_CHARS = r"A-Za-z0-9\-._~!$&'()*+,;=:@"
#
# Written so that the engine never backtracks on a value it admits (some 0.55 us for a
# 45-character URL, where the same language with backtracking quantifiers took 0.9): a
# label is a letter or digit, then at most 62 of [a-z0-9-] taken possessively, not ending
# in '-' (a lookbehind, where '[a-z0-9-]{0,61}[a-z0-9]' gave back a character per label);
# the labels with their dots, the segments and the query are taken possessively (what
# follows each can never use what it would give back: a label's dot, a segment's '/', the
# query's '?'). test_networks.test_url_fast_path_answers_as_the_rules_do holds allows to
# problem(), and test_url_allows_is_the_backtracking_reading to the earlier spelling.
#
# Groups: the origin (scheme://host[:port], as written), scheme, host, port, path.
_COMMON = re.compile(
    r"((https?|wss?)://"
    r"((?:[a-z0-9][a-z0-9-]{0,62}+(?<!-)\.)*+[a-z][a-z0-9-]{0,62}+(?<!-))"
    r"(?::([1-9][0-9]{0,4}))?)"
    rf"((?:/(?!\.\.?+(?:[/?;]|\Z))[{_SEGMENT_CHARS}]++)*+/?)"
    rf"(?:\?[{_SEGMENT_CHARS}/?]*+)?")
# A constraint's host and path prefix in their common canonical forms (Url.from_wire's fast
# path): a DNS name, '*.' and a DNS name, or '*'; '/' or non-empty segments, neither '.'
# nor '..', without '%', '[' or ']' and no trailing '/'. Anything else goes through
# _checked, which decides and explains.
_COMMON_HOST = re.compile(
    r"\*|(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_COMMON_PREFIX = re.compile(rf"/|(?:/(?!\.\.?(?:[/;]|\Z))[{_SEGMENT_CHARS}]+)+")
# How a constraint's host matches a value's DNS name (Url._mode): equal, by suffix, or '*'.
_EXACT, _SUFFIX, _ANY = 0, 1, 2
_URL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def url_shape_problem(url: str) -> str:
    """Why ``url`` does not have the overall shape of a URL value (rules 1 to 3)."""
    for char in url:
        if char not in _URL_CHARS:
            if char == "\\":
                return "a backslash"
            if char == " ":
                return "a space"
            if char < " " or char == "\x7f":
                return "a control character"
            return "a non-ASCII character" if char > "\x7f" else f"the character {char!r}"
    if "#" in url:
        return "a fragment"
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        return "not an absolute URL (scheme://host/path)"
    if scheme not in DEFAULT_PORTS:
        if scheme.lower() in DEFAULT_PORTS:
            return "an uppercase scheme"
        return "a scheme other than http, https, ws or wss"
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    if "@" in authority:
        return "userinfo"
    port = None
    if authority.startswith("["):
        after = authority.partition("]")[2]
        if after.startswith(":"):
            port = after[1:]
    elif ":" in authority:
        port = authority.partition(":")[2]
    if port and not port.isdecimal():
        return "a port that is not decimal"
    return "a malformed authority"


def _port_problem(port: str) -> str | None:
    if _PORT.fullmatch(port) is not None and int(port) <= 65535:
        return None
    if not port:
        return "an empty port"
    return "a port with leading zeros" if port[0] == "0" != port else "a port out of range"


def _prefix_problem(path: str) -> str | None:
    """Why ``path`` is not a URL constraint's path prefix."""
    if _PATH.fullmatch(path) is None:
        return "a path prefix is '/' and URL path characters"
    problem = path_problem(path)
    if problem is not None:
        return problem
    return "a path prefix has no trailing '/'" if path != "/" and path.endswith("/") else None


def _checked(scheme: object, host: object, port: object, path: object,
             remote: bool) -> tuple[str, str, int, str]:
    """The four fields of a URL constraint, each in its grammar and canonical: from the wire
    ``malformed``, or ``non_canonical`` where the canonical text of the field would do;
    from the application ``invalid_argument``."""
    if type(scheme) is not str or scheme not in DEFAULT_PORTS:
        canonical = type(scheme) is str and scheme.lower() in DEFAULT_PORTS
        raise fail(remote, "a URL's scheme is http, https, ws or wss",
                   "non_canonical" if canonical else "malformed")
    host = text(host, remote, "a URL's host")
    problem = wildcard_problem(host)
    if problem is not None:
        canonical = wildcard_problem(_canonical_host(host)) is None
        raise fail(remote, f"a URL's host {host!r}: {problem}",
                   "non_canonical" if canonical else "malformed")
    if type(port) is not int or not 1 <= port <= 65535:
        raise fail(remote, "a URL's port is 1 to 65535")
    path = text(path, remote, "a URL's path")
    problem = _prefix_problem(path)
    if problem is not None:
        canonical = _prefix_problem(_canonical_path(path)) is None
        raise fail(remote, f"a URL's path {path!r}: {problem}",
                   "non_canonical" if canonical else "malformed")
    return scheme, host, port, path


def _canonical_host(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1])}]"
        except ValueError:
            return host
    return host.lower().removesuffix(".")


def _canonical_path(path: str) -> str:
    if not path.startswith("/"):
        return path
    path = _ESCAPE.sub(lambda m: m.group().upper(), path)
    return path.rstrip("/") or "/"


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Url(Kind):
    """A URL argument within a URL pattern: ``Url("https://*.example.com:8443/v1")``.

    The pattern is a URL without query: the host may be ``*.name`` (any name below
    ``name``) or ``*`` (any DNS name but ``localhost`` and any globally reachable IP
    literal); a missing port is the scheme's default; a missing path is ``/``. A value is
    allowed when it is a URL in canonical form (no userinfo, no fragment, lowercase,
    canonical IP literals, no dot segments or encoded ``/``) with the same scheme and
    effective port, a matching host, and a path within the pattern's (spec 10.1).
    """

    CODE = 10
    NAME = "url"
    scheme: str
    host: str
    port: int
    path: str
    _authorities: frozenset[str] = field(compare=False)
    _match: tuple[Any, ...] = field(compare=False)

    def __init__(self, pattern: str) -> None:
        text(pattern, False, "a URL pattern")
        match = _SHAPE.fullmatch(pattern)
        if match is None:
            raise InvalidArgument(f"a URL pattern is scheme://host[:port][/path]; "
                                  f"{pattern!r} has {url_shape_problem(pattern)}")
        scheme, _, host, port, path, query = match.groups()
        if query is not None:
            raise InvalidArgument("a URL pattern has no query")
        if port is not None:
            problem = _port_problem(port)
            if problem is not None:
                raise InvalidArgument(f"a URL pattern's port: {problem}")
        self._fill(*_checked(scheme, host, int(port) if port else DEFAULT_PORTS[scheme],
                             path or "/", False))

    def _fill(self, scheme: str, host: str, port: int, path: str) -> None:
        # Six slots, set through their descriptors (_URL_SLOTS), unrolled: object.__setattr__
        # in a loop over pairs cost about 1 us of the 4 us that reading a url from the wire
        # took. test_url_from_wire_fast_path_accepts_what_the_
        # pattern_grammar_accepts compares what is read with the API's constraint.
        set_scheme, set_host, set_port, set_path, set_authorities, set_match = _URL_SLOTS
        set_scheme(self, scheme)
        set_host(self, host)
        set_port(self, port)
        set_path(self, path)
        # An exact host: the authorities that name it and the port, decided by one lookup.
        if "*" in host:
            set_authorities(self, _NO_AUTHORITIES)
        elif port == DEFAULT_PORTS[scheme]:
            set_authorities(self, frozenset((f"{host}:{port}", host)))
        else:
            set_authorities(self, frozenset((f"{host}:{port}",)))
        # For the fast path of allows, in one slot: how the host matches; for an exact host
        # every origin (scheme://host[:port]) a value in the common form may write for it
        # (the port left out or written, when it is the scheme's default), by its length;
        # for '*.n' the head 'scheme://', the ends of an origin under it ('.n', '.n:port')
        # and the longest origin whose host has at most 253 characters; for '*' the head,
        # the port as a value writes it and whether a value may leave it out; what a path
        # below the prefix starts with ('' for '/'), and the prefix.
        head = f"{scheme}://"
        bare = port == DEFAULT_PORTS[scheme]
        below = "" if path == "/" else path + "/"
        if host == "*":
            set_match(self, (_ANY, head, str(port), bare, below, path))
        elif host[:2] == "*.":
            ends = (host[1:], f"{host[1:]}:{port}") if bare else (f"{host[1:]}:{port}",)
            set_match(self, (_SUFFIX, head, ends, len(head) + 253, below, path))
        else:
            origins = (f"{head}{host}:{port}", f"{head}{host}") if bare else (
                f"{head}{host}:{port}",)
            set_match(self, (_EXACT, {len(o): o for o in origins}, None, 0, below, path))

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is a URL within the pattern."""
        # Fast path for the common valid URL (_COMMON): one regex over the whole value,
        # then comparisons with the forms _fill computed, where the rule-by-rule path costs
        # some 3 us (and more for a host its memos have not seen). A value _COMMON admits
        # obeys rules 1 to 5 but for the host's length, and its origin is lowercase, with
        # no trailing dot and a port without leading zeros: so its origin names the
        # pattern's scheme, host and port exactly when it is one of the spellings _fill
        # listed (an exact host), or starts with the scheme's head and ends with one of the
        # listed ends ('*.n'). Each comparison of rule 6 that fails refuses the value (as
        # _problem would: it refuses another scheme, port, host or path whatever else
        # holds). An origin longer than the limit, or a '*' host, takes the fields one by
        # one. test_networks.test_url_fast_path_answers_as_the_rules_do holds it to
        # problem(), and test_url_allows_is_the_backtracking_reading to the first fast path.
        # The origin and the path are compared in place, by their positions in the value
        # (no group is copied out, except for '*').
        if type(arg) is str and len(arg) <= MAX_URL:
            match = _COMMON.fullmatch(arg)
            if match is not None:
                mode, origins, ends, limit, below, root = self._match
                end = match.end(1)  # where the origin ends and the path starts
                if below and not arg.startswith(below, end) and not (
                        match.end(5) == end + len(root) and arg.startswith(root, end)):
                    return False
                if mode == _EXACT:
                    origin = origins.get(end)
                    return origin is not None and arg.startswith(origin)
                if mode == _SUFFIX:
                    if not arg.startswith(origins) or not arg.endswith(ends, 0, end):
                        return False
                    if end <= limit:
                        return True
                else:  # '*': any DNS name but localhost's, the scheme's and the port
                    host, port = match.group(3, 4)
                    return (arg.startswith(origins) and (port == ends if port else limit)
                            and len(host) <= 253 and host != "localhost"
                            and not host.endswith(".localhost"))
        return self._problem(arg) is None

    def _problem(self, arg: object) -> str | None:
        """The first rule of spec 10.1 ``arg`` breaks, or None: the one decision that both
        ``allows`` and ``problem`` give."""
        if type(arg) is not str:
            return f"a {type(arg).__name__}, not a str"
        if len(arg) > MAX_URL:  # a longer allowed value would have a non-ASCII character
            return f"longer than {MAX_URL} bytes"
        match = _SHAPE.fullmatch(arg)
        if match is None:
            return url_shape_problem(arg)
        scheme, authority, host, port, path, query = match.groups()
        exact = authority in self._authorities
        if not exact:
            if port is not None:
                problem = _port_problem(port)
                if problem is not None:
                    return problem
            problem = value_host_problem(host)
            if problem is not None:
                return problem
        path = path or "/"
        problem = path_problem(path) or (query_problem(query) if query else None)
        if problem is not None:
            return problem
        if scheme != self.scheme:
            return "another scheme"
        if not exact:
            if (int(port) if port else DEFAULT_PORTS[scheme]) != self.port:
                return "another port"
            problem = host_match_problem(host, self.host)
            if problem is not None:
                return problem
        return None if path_within(path, self.path) else "outside the path"

    def narrows(self, parent: Url) -> bool:
        """The same scheme and port, a host within the parent's, a path prefix within the
        parent's: complete."""
        return (self.scheme == parent.scheme and self.port == parent.port
                and path_within(self.path, parent.path)
                and host_pattern_within(self.host, parent.host))

    def value_type(self) -> type:
        """``str``."""
        return str

    def to_wire(self) -> list[Any]:
        """``[10, scheme, host, port, path]``."""
        return [self.CODE, self.scheme, self.host, self.port, self.path]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Url:
        """``[scheme, host, port, path]``, each in its grammar (``malformed``) and canonical
        (``non_canonical``)."""
        if len(fields) != 4:
            raise fail(True, "a url is [10, scheme, host, port, path]")
        made = object.__new__(cls)
        scheme, host, port, path = fields
        # Fast path: fields in their common canonical forms (_COMMON_HOST, _COMMON_PREFIX)
        # are known good after two regexes and type checks, where _checked spends some
        # 5 us explaining nothing. test_networks' wire tables and the vectors pin both paths.
        if (type(scheme) is str and scheme in DEFAULT_PORTS and type(host) is str
                and len(host) <= 253 and _COMMON_HOST.fullmatch(host) is not None
                and type(port) is int and 1 <= port <= 65535 and type(path) is str
                and len(path) <= MAX_STRING and _COMMON_PREFIX.fullmatch(path) is not None):
            made._fill(scheme, host, port, path)
        else:
            made._fill(*_checked(scheme, host, port, path, True))
        return made

    def problem(self, arg: object) -> str:
        """The first rule ``arg`` breaks, in words."""
        return self._problem(arg) or "not allowed"

    def pattern(self) -> str:
        """The pattern as text: ``https://*.example.com/v1`` (the default port and the
        path ``/`` left out)."""
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        path = "" if self.path == "/" else self.path
        return f"{self.scheme}://{self.host}{port}{path}"

    def __repr__(self) -> str:
        return f"Url({self.pattern()!r})"


_URL_SLOTS = tuple(Url.__dict__[name].__set__ for name in (
    "scheme", "host", "port", "path", "_authorities", "_match"))
_NO_AUTHORITIES: frozenset[str] = frozenset()


def _network(network: object, remote: bool) -> tuple[int, int, int]:
    """``(first, last, version)`` of a canonical network ``address/length``."""
    # Fast path: a canonical IPv4 network is read by a regex and integer arithmetic (some
    # 1.5 us, where ipaddress takes some 25 us); anything else (IPv6, or a fault to
    # explain) is read below. test_ipv4_network_reads_as_ipaddress_does pins the reading.
    if type(network) is str:
        fast = ipv4_network(network)
        if fast is not None:
            return fast[0], fast[1], 4
    network = text(network, remote, "a network")
    address, sep, length = network.partition("/")
    if not sep or "%" in network or not length.isascii() or not length.isdigit():
        raise fail(remote, "a network is address/length, the length in decimal")
    try:
        net = ipaddress.ip_network(network, strict=False)
        given = ipaddress.ip_address(address)
    except ValueError:
        raise fail(remote, "a network is an IPv4 or IPv6 address/length") from None
    first, last = int(net.network_address), int(net.broadcast_address)
    if int(given) != first:
        raise fail(remote, f"a network's host bits are zero: {network!r} means {str(net)!r}")
    if net.version == 6 and net.subnet_of(_MAPPED):
        raise fail(remote, "a network is not IPv4-mapped")
    if str(net) != network:
        raise fail(remote, f"a network in canonical text is {str(net)!r}", "non_canonical")
    return first, last, net.version


@dataclass(frozen=True, slots=True)
class Cidr(Kind):
    """An IP address argument within ``network``: ``Cidr("10.0.0.0/8")``.

    The network is canonical text with its host bits zero; a value is one IP address of
    the network's version in canonical text (IPv6 without brackets or zone, never
    IPv4-mapped) within it (spec 10.1).
    """

    CODE = 11
    NAME = "cidr"
    network: str
    _first: int = field(init=False, repr=False, compare=False)
    _last: int = field(init=False, repr=False, compare=False)
    _version: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._fill(_network(self.network, False))

    def _fill(self, parsed: tuple[int, int, int]) -> None:
        # Through the slots' descriptors, unrolled (as Url._fill): the loop over names cost
        # about a third of reading an IPv4 cidr. test_ipv4_network_reads_as_ipaddress_does
        # checks what is read.
        set_first, set_last, set_version = _CIDR_SLOTS
        set_first(self, parsed[0])
        set_last(self, parsed[1])
        set_version(self, parsed[2])

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is an address within the network."""
        if type(arg) is not str:
            return False
        if self._version == 4:
            # An IPv4 network allows only IPv4 text: four parts, each a canonical octet
            # (_OCTETS holds exactly those), read inline, without ip_value's call and tuple
            # (some 0.45 us of 0.85; split without a bound, one argument fewer to read:
            # any part past the fourth refuses alike).
            # Read afresh on every call: nothing is remembered.
            # test_networks.test_cidr_allows_is_ip_value_within_the_network holds it to
            # ip_value.
            try:
                a, b, c, d = arg.split(".")
                address = _OCTETS[a] << 24 | _OCTETS[b] << 16 | _OCTETS[c] << 8 | _OCTETS[d]
            except (KeyError, ValueError):  # not four parts, or one is no canonical octet
                return False
            return self._first <= address <= self._last
        found = ip_value(arg)
        return found is not None and found[1] == 6 and self._first <= found[0] <= self._last

    def narrows(self, parent: Cidr) -> bool:
        """A network within the parent's, of the same version (spec 10.2)."""
        return (self._version == parent._version and parent._first <= self._first
                and self._last <= parent._last)

    def value_type(self) -> type:
        """``str``."""
        return str

    def to_wire(self) -> list[Any]:
        """``[11, network]``."""
        return [self.CODE, self.network]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Cidr:
        """``[network]``: ``malformed`` out of grammar or with host bits set,
        ``non_canonical`` where the address reads but is not in canonical text."""
        if len(fields) != 1:
            raise fail(True, "a cidr is [11, network]")
        parsed = _network(fields[0], True)
        made = object.__new__(cls)
        _CIDR_NETWORK(made, fields[0])
        made._fill(parsed)
        return made

    def problem(self, arg: object) -> str:
        """Why ``arg`` is refused."""
        if type(arg) is not str:
            return f"a {type(arg).__name__}, not a str"
        found = ip_value(arg)
        if found is None:
            try:
                mapped = ipaddress.IPv6Address(arg).ipv4_mapped is not None
            except ValueError:
                mapped = False
            return ("an IPv4-mapped IPv6 address" if mapped
                    else "not an IP address in canonical text")
        if found[1] != self._version:
            return f"an IPv{found[1]} address, not IPv{self._version}"
        return "outside the network"


_OCTETS: dict[str, int] = {str(n): n for n in range(256)}
"""Each octet's canonical text (decimal, no leading zero) and its value."""
_CIDR_NETWORK = Cidr.__dict__["network"].__set__
_CIDR_SLOTS = tuple(Cidr.__dict__[name].__set__ for name in ("_first", "_last", "_version"))

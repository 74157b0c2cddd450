"""The host, address and path rules that ``url`` and ``cidr`` constraints share (spec 10.1).

Every function here answers with the *problem* (a short phrase naming the broken rule) or
``None`` when the text obeys the rule, so the same code decides a request and explains a
refusal. Texts are checked in canonical form only: nothing is folded, decoded or resolved.

An IP literal is addressed by an integer and its version: :func:`ip_value` reads canonical
text, :func:`publicly_routable` applies the SSRF table below to it.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Final

__all__ = [
    "DEFAULT_PORTS",
    "MEMO",
    "NOT_PUBLIC",
    "dns_name_problem",
    "host_match_problem",
    "host_pattern_within",
    "ip_value",
    "ipv4_network",
    "ipv6_problem",
    "path_problem",
    "path_within",
    "percent_problem",
    "publicly_routable",
    "query_problem",
    "value_host_problem",
    "wildcard_problem",
]

DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
"""The schemes a URL constraint knows, each with its default port."""

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"(?:{_LABEL}\.)*(?!\d){_LABEL}")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
# A canonical IPv4 network: dotted decimal without leading zeros, a length 0 to 32 in
# decimal without leading zeros.
_IPV4_NETWORK = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}/(3[0-2]|[12][0-9]|[0-9])")
_IPV6_TEXT = re.compile(r"[0-9a-f:]{2,39}")
# An empty segment that is not the last, or a '.' or '..' segment.
_BAD_SEGMENT = re.compile(r"//|/\.{1,2}(?=[/;]|\Z)")  # ";": "..;x" is ".." to some servers
_DIGITS = re.compile(r"[0-9]+")
# A percent sign not followed by two uppercase hex digits.
_BAD_PERCENT = re.compile(r"%(?![0-9A-F]{2})")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")
_LOOSE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _networks(*texts: str) -> tuple[tuple[int, int], ...]:
    nets = [ipaddress.ip_network(t) for t in texts]
    return tuple((int(n.network_address), int(n.broadcast_address)) for n in nets)


# Under the host '*' an IP literal is allowed only outside these ranges: the IANA IPv4 and
# IPv6 special-purpose address registries (loopback, private, shared, link-local,
# unspecified, documentation, benchmarking, reserved, discard, unique-local), multicast,
# and the IPv6 ranges that embed an IPv4 address a gateway may translate (IPv4-compatible
# ::/96, NAT64, 6to4) or that are deprecated (site-local). The table is fixed here, not
# taken from the running Python's ``is_global``, so every verifier decides alike; it holds
# every address that ``not (ip.is_global and not ip.is_multicast)`` names (a test checks).
NOT_PUBLIC: Final[dict[int, tuple[tuple[int, int], ...]]] = {
    4: _networks(
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"),
    6: _networks(
        "::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
        "2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20", "5f00::/16", "fc00::/7",
        "fe80::/10", "fec0::/10", "ff00::/8"),
}
_MAPPED: Final = _networks("::ffff:0:0/96")[0]


# The same few hosts and IPv6 addresses come back request after request, so the answers
# of value_host_problem, host_match_problem and the IPv6 reading of ip_value are kept (at
# most MEMO of each): a hit costs some 0.2 us where reading an IPv6 address costs 25 us
# (ipaddress parses and prints it). An IPv4 address is read afresh each time (some
# 0.6 us), so a verifier that sees new addresses pays what a benchmark that repeats one
# measures. The tables of test_networks pin the answers.
MEMO: Final = 4096

# The canonical decimal octets, "0" to "255" without leading zeros, and their values: an
# IPv4 address in canonical text is four of them joined by dots, and is read by splitting
# and four lookups (a third of a regex and four int() calls).
# test_ip_value_reads_ipv4_as_ipaddress_does holds the reading to ipaddress.
_OCTET_VALUES: Final = {str(n): n for n in range(256)}


def ip_value(literal: str) -> tuple[int, int] | None:
    """``(address, version)`` for an IP address in canonical text (IPv4 dotted decimal
    without leading zeros, IPv6 RFC 5952 lowercase without brackets or zone, not
    IPv4-mapped), else None."""
    parts = literal.split(".", 4)
    if len(parts) == 4:  # IPv4 or nothing: canonical IPv6 text has no dot
        get = _OCTET_VALUES.get
        a, b, c, d = get(parts[0]), get(parts[1]), get(parts[2]), get(parts[3])
        if a is None or b is None or c is None or d is None:
            return None
        return (a << 24) | (b << 16) | (c << 8) | d, 4
    return _ipv6_value(literal) if len(literal) <= 39 else None  # the memo holds short keys


@lru_cache(maxsize=MEMO)
def _ipv6_value(literal: str) -> tuple[int, int] | None:
    if _IPV6_TEXT.fullmatch(literal) is None:
        return None
    try:
        address = ipaddress.IPv6Address(literal)
    except ValueError:
        return None
    number = int(address)
    if str(address) != literal or _MAPPED[0] <= number <= _MAPPED[1]:
        return None
    return number, 6


def ipv4_network(network: str) -> tuple[int, int] | None:
    """``(first, last)`` of an IPv4 network ``address/length`` in canonical text (dotted
    decimal and a length, neither with leading zeros) whose host bits are zero, else None.

    Read by one regex and integer arithmetic: some 1.5 us where ``ipaddress`` takes some
    25 us to read, check and print a network. Anything else (IPv6, a non-canonical form,
    host bits set) is None, for the caller's full reading to decide and explain;
    test_networks.test_ipv4_network_reads_as_ipaddress_does holds it to ``ipaddress``.
    """
    match = _IPV4_NETWORK.fullmatch(network)
    if match is None:
        return None
    a, b, c, d, length = match.groups()
    first = (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
    size = 1 << (32 - int(length))
    if first & (size - 1):
        return None
    return first, first + size - 1


def publicly_routable(address: int, version: int) -> bool:
    """Whether an address lies outside every range of :data:`NOT_PUBLIC`."""
    return not any(lo <= address <= hi for lo, hi in NOT_PUBLIC[version])


def ipv6_problem(literal: str) -> str | None:
    """Why ``literal`` (without brackets) is not a canonical, unmapped IPv6 address."""
    if ip_value(literal) is not None and ":" in literal:
        return None
    try:
        address = ipaddress.IPv6Address(literal)
    except ValueError:
        return "not an IPv6 address"
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address"
    return "a non-canonical IPv6 form"


def dns_name_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS name by the grammar of spec 10.1 (lowercase labels of
    letters, digits and inner hyphens, 1 to 63 characters; at most 253 in all; no trailing
    dot; a last label not starting with a digit)."""
    if len(name) <= 253 and _DNS_NAME.fullmatch(name) is not None:
        return None
    if not name:
        return "an empty host"
    if name.endswith("."):
        return "a trailing dot"
    if name != name.lower():
        return "an uppercase host"
    return "a host that is not a DNS name"


def value_host_problem(host: str) -> str | None:
    """Why ``host`` is not a host a URL value may name (spec 10.1 rule 4): a bracketed
    IPv6 literal, canonical and unmapped; a canonical IPv4 literal (a last label all digits
    or starting with ``0x`` makes an IPv4 literal); else a lowercase DNS name."""
    if len(host) > 253:  # no host is longer: the memo holds short keys
        return "a host longer than 253 characters"
    return _value_host_problem(host)


@lru_cache(maxsize=MEMO)
def _value_host_problem(host: str) -> str | None:
    if len(host) <= 253 and _DNS_NAME.fullmatch(host) is not None:  # the common case
        return None  # (a DNS name's last label starts with a letter: no IPv4 literal)
    if host.startswith("["):
        if not host.endswith("]"):
            return "a malformed IPv6 literal"
        return ipv6_problem(host[1:-1])
    last = host.rpartition(".")[2]
    if _DIGITS.fullmatch(last) is not None or last[:2].lower() == "0x":
        return None if _IPV4.fullmatch(host) is not None else "a non-canonical IPv4 form"
    return dns_name_problem(host)


def wildcard_problem(host: str) -> str | None:
    """Why ``host`` is not a host a URL *constraint* may name: a value's host, ``*``, or
    ``*.`` and a DNS name."""
    if host == "*":
        return None
    if host.startswith("*."):
        return dns_name_problem(host[2:])
    return value_host_problem(host)


def _local_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")


def _literal(host: str) -> tuple[int, int] | None:
    """A valid value host's address, if it is an IP literal."""
    if host.startswith("["):
        return ip_value(host[1:-1])
    return ip_value(host) if _IPV4.fullmatch(host) is not None else None


@lru_cache(maxsize=MEMO)
def host_match_problem(host: str, pattern: str) -> str | None:
    """Why a valid value ``host`` does not match a constraint's host ``pattern``: equal;
    ``*.n``: a DNS name ending in ``.n``; ``*``: the SSRF rule."""
    if host == pattern:
        return None
    if pattern == "*":
        address = _literal(host)
        if address is None:
            return "a localhost name under '*'" if _local_name(host) else None
        if publicly_routable(*address):
            return None
        if (address[1] == 4 and address[0] >> 28 == 0xE) or (
                address[1] == 6 and address[0] >> 120 == 0xFF):
            return "a multicast address under '*'"
        return "a private address under '*'"
    if pattern.startswith("*.") and host.endswith(pattern[1:]):  # no IP literal ends so
        return None
    return "another host"


def host_pattern_within(child: str, parent: str) -> bool:
    """Whether every host the constraint host ``child`` matches, ``parent`` matches (both
    valid constraint hosts): complete."""
    if child == parent:
        return True
    if child == "*":
        return False
    if child.startswith("*."):
        name = child[2:]
        if parent == "*":
            return not _local_name(name)
        return parent.startswith("*.") and (name == parent[2:] or name.endswith(parent[1:]))
    return host_match_problem(child, parent) is None


def percent_problem(text: str) -> str | None:
    """Why ``text`` breaks the percent rule (spec 10.1 rule 5): each ``%`` starts ``%XY``
    in uppercase hex encoding neither an unreserved character nor ``/``, ``\\`` or NUL."""
    if "%" not in text:
        return None
    bad = _BAD_PERCENT.search(text)
    if bad is not None:
        hexes = text[bad.end():bad.end() + 2]
        if len(hexes) == 2 and all(c in "0123456789abcdefABCDEF" for c in hexes):
            return "a lowercase percent escape"
        return "a percent sign not followed by two hex digits"
    for escape in _ESCAPE.findall(text):
        byte = int(escape, 16)
        if byte in _UNRESERVED:
            return "an encoded unreserved character"
        if byte == 0:
            return "an encoded NUL"
        if byte in (0x2F, 0x5C, 0x25):  # "%25": a second decoding would see what follows
            return f"an encoded {chr(byte)!r}"
    return None


def query_problem(query: str) -> str | None:
    """Why a URL's query breaks spec 10.1.4 rule 5: each ``%`` is followed by two hex
    digits. A query is not matched against anything, so what it encodes is its own."""
    if "%" in query and _LOOSE_PERCENT.search(query) is not None:
        return "a percent sign not followed by two hex digits"
    return None


def path_problem(path: str) -> str | None:
    """Why ``path`` (``/`` and segments, already of URL characters) breaks spec 10.1 rule 5:
    the percent rule; no segment ``.`` or ``..``; no empty segment but a final one."""
    problem = percent_problem(path)
    if problem is not None:
        return problem
    bad = _BAD_SEGMENT.search(path)
    if bad is None:
        return None
    return "an empty segment" if bad.group() == "//" else "a '.' or '..' segment"


def path_within(path: str, prefix: str) -> bool:
    """Whether ``path`` is within the path prefix: the prefix is ``/``, or the path equals
    it, or starts with it followed by ``/``."""
    if prefix in ("/", path):
        return True
    return path.startswith(prefix) and path[len(prefix)] == "/"

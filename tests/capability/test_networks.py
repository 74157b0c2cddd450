"""``url`` and ``cidr`` constraints (spec 10.1): tables of values with the rule each breaks
(SSRF literals, userinfo, traversal, canonical forms), the wire form, hypothesis soundness
and completeness of narrowing, and a chain refusing a URL its leaf grant does not allow."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support import ALICE, BOB, CAROL, raises

from agentauth import CapabilityDenied, DecodeError, InvalidArgument, wire
from agentauth.capability import Grant, Link, Request, delegate, encode_chain, verify_chain
from agentauth.capability import chain as chain_module
from agentauth.capability.constraints import (
    Cidr,
    Prefix,
    Url,
    constraint_from_wire,
    constraint_within,
)
from agentauth.capability.hosts import (
    NOT_PUBLIC,
    ip_value,
    ipv4_network,
    path_problem,
    publicly_routable,
)

PROPERTY = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# What 0.1.0 offered for a URL argument: a character prefix. Every row below whose last
# column is True is a value that prefix let through and Url refuses.
OLD = Prefix("https://api.example.com")

API = Url("https://api.example.com/v1")
ANY = Url("https://*")
WILD = Url("https://*.example.com")


# ------------------------------------------------------------------ URL values

@pytest.mark.parametrize(("value", "problem", "old_allowed"), [
    ("https://api.example.com/v1", None, True),
    ("https://api.example.com/v1/", None, True),
    ("https://api.example.com/v1/reports?since=2024-01-01&name=%C3%A9", None, True),
    ("https://api.example.com:443/v1/reports", None, True),  # the default port, explicit
    ("https://api.example.com/v1/a%20b", None, True),
    # userinfo: the host a client connects to is after the '@'
    ("https://api.example.com@evil.com/v1", "userinfo", True),
    ("https://api.example.com@169.254.169.254/v1/reports", "userinfo", True),
    ("https://user:pw@api.example.com/v1", "userinfo", False),
    ("https://api.example.com:443@evil.com/v1", "userinfo", True),
    ("https://api.example.com.evil.com/v1", "another host", True),
    ("https://api.example.com/v1#frag", "a fragment", True),
    ("https://api.example.com/v1/x#/../../admin", "a fragment", True),
    ("https://API.example.com/v1", "an uppercase host", False),
    ("HTTPS://api.example.com/v1", "an uppercase scheme", False),
    ("https://api.example.com./v1", "a trailing dot", True),
    ("https://api.example.com:8443/v1", "another port", True),
    ("https://api.example.com:/v1", "an empty port", True),
    ("https://api.example.com:0443/v1", "a port with leading zeros", True),
    ("https://api.example.com:65536/v1", "a port out of range", True),
    ("https://api.example.com:8x/v1", "a port that is not decimal", True),
    ("https://api.example.com\\@evil.com/v1", "a backslash", True),
    ("https://api.example.com/v1\\..\\admin", "a backslash", True),
    ("https://api.example.com/v1/%2e%2e/admin", "a lowercase percent escape", True),
    ("https://api.example.com/v1/%2E%2E/admin", "an encoded unreserved character", True),
    ("https://api.example.com/v1/..%2Fadmin", "an encoded '/'", True),
    ("https://api.example.com/v1/a%2fb", "a lowercase percent escape", True),
    ("https://api.example.com/v1/a%5Cb", "an encoded '\\\\'", True),
    ("https://api.example.com/v1/a%00", "an encoded NUL", True),
    ("https://api.example.com/v1/a%4", "a percent sign not followed by two hex digits", True),
    ("https://api.example.com/v1?next=%2F", None, True),  # a query is matched to nothing
    ("https://api.example.com/v1?next=%2", "a percent sign not followed by two hex digits",
     True),
    ("https://api.example.com/v1/../admin", "a '.' or '..' segment", True),
    ("https://api.example.com/v1/./x", "a '.' or '..' segment", True),
    ("https://api.example.com/v1/..", "a '.' or '..' segment", True),
    ("https://api.example.com/v1//x", "an empty segment", True),
    ("https://api.example.com/v1evil", "outside the path", True),
    ("https://api.example.com/v2", "outside the path", True),
    ("https://api.example.com", "outside the path", True),
    ("http://api.example.com/v1", "another scheme", False),
    ("wss://api.example.com/v1", "another scheme", False),
    ("ftp://api.example.com/v1", "a scheme other than http, https, ws or wss", False),
    ("//api.example.com/v1", "not an absolute URL (scheme://host/path)", False),
    ("https://api.example.com/v1/caf\u00e9", "a non-ASCII character", True),
    ("https://api.example.com/v1/a b", "a space", True),
    ("https://api.example.com/v1/\n", "a control character", True),
    ("https://api.example.com/v1/<x>", "the character '<'", True),
    ("https://api.example.com/v1/" + "a" * 2048, "longer than 2048 bytes", True),
    ("https://[api.example.com]/v1", "not an IPv6 address", False),
])
def test_a_url_under_an_exact_host(value: str, problem: str | None,
                                   old_allowed: bool) -> None:
    assert API.allows(value) is (problem is None)
    assert API.problem(value) == (problem or "not allowed")
    assert OLD.allows(value) is old_allowed  # 0.1.0's prefix rule, for contrast


@pytest.mark.parametrize(("value", "problem"), [
    ("https://localhost/", "a localhost name under '*'"),
    ("https://foo.localhost/", "a localhost name under '*'"),
    ("https://127.0.0.1/", "a private address under '*'"),
    ("https://127.0.0.1:443/", "a private address under '*'"),
    ("https://2130706433/", "a non-canonical IPv4 form"),
    ("https://0177.0.0.1/", "a non-canonical IPv4 form"),
    ("https://0x7f.0.0.1/", "a non-canonical IPv4 form"),
    ("https://0x7f000001/", "a non-canonical IPv4 form"),
    ("https://127.1/", "a non-canonical IPv4 form"),
    ("https://127.0.0.1./", "a trailing dot"),
    ("https://[::1]/", "a private address under '*'"),
    ("https://[::ffff:127.0.0.1]/", "an IPv4-mapped IPv6 address"),
    ("https://[::ffff:7f00:1]/", "an IPv4-mapped IPv6 address"),
    ("https://[0:0:0:0:0:0:0:1]/", "a non-canonical IPv6 form"),
    ("https://[fe80::1%25eth0]/", "a non-canonical IPv6 form"),
    ("https://10.0.0.1/", "a private address under '*'"),
    ("https://10.255.255.255/", "a private address under '*'"),
    ("https://172.16.0.1/", "a private address under '*'"),
    ("https://192.168.1.1/", "a private address under '*'"),
    ("https://169.254.169.254/latest/meta-data/", "a private address under '*'"),
    ("https://[fe80::1]/", "a private address under '*'"),
    ("https://[fd00::1]/", "a private address under '*'"),
    ("https://0.0.0.0/", "a private address under '*'"),
    ("https://[::]/", "a private address under '*'"),
    ("https://100.64.0.1/", "a private address under '*'"),
    ("https://192.0.2.1/", "a private address under '*'"),
    ("https://[2001:db8::1]/", "a private address under '*'"),
    # IPv6 forms that carry an IPv4 address a gateway may translate
    ("https://[::7f00:1]/", "a private address under '*'"),
    ("https://[64:ff9b::a9fe:a9fe]/", "a private address under '*'"),
    ("https://[2002:a9fe:a9fe::]/", "a private address under '*'"),
    ("https://224.0.0.1/", "a multicast address under '*'"),
    ("https://239.255.255.250/", "a multicast address under '*'"),
    ("https://[ff02::1]/", "a multicast address under '*'"),
    ("https://[FF02::1]/", "a non-canonical IPv6 form"),
    ("http://example.com/", "another scheme"),
    ("https://8.8.8.8/", None),
    ("https://[2606:4700::1111]/dns-query", None),
    ("https://example.com/anything?at=all", None),
    ("https://localhost.example.com/", None),
    ("https://xn--bcher-kva.example/", None),
])
def test_a_url_under_any_host_is_refused_private_and_local_destinations(
        value: str, problem: str | None) -> None:
    assert ANY.allows(value) is (problem is None)
    assert ANY.problem(value) == (problem or "not allowed")


@pytest.mark.parametrize(("value", "problem"), [
    ("https://api.example.com/", None),
    ("https://a.b.example.com/x", None),
    ("https://example.com/", "another host"),
    ("https://evil-example.com/", "another host"),
    ("https://example.com.evil.com/", "another host"),
    ("https://api.example.com.evil.com/", "another host"),
    ("https://api.example.com:8443/", "another port"),
    ("https://a..example.com/", "a host that is not a DNS name"),
    ("https://-a.example.com/", "a host that is not a DNS name"),
    ("https://" + "a" * 64 + ".example.com/", "a host that is not a DNS name"),
    ("https://a_b.example.com/", "a host that is not a DNS name"),
    ("https:///x", "an empty host"),
])
def test_a_url_under_a_wildcard_host(value: str, problem: str | None) -> None:
    assert WILD.allows(value) is (problem is None)
    assert WILD.problem(value) == (problem or "not allowed")


def test_a_grant_that_names_a_private_address_exactly_allows_it() -> None:
    exact = Url("http://10.0.0.5:8080/api")
    assert exact.allows("http://10.0.0.5:8080/api/jobs")
    assert exact.problem("http://10.0.0.6:8080/api") == "another host"
    assert exact.problem("http://10.0.0.5/api") == "another port"
    assert exact.problem("http://010.0.0.5:8080/api") == "a non-canonical IPv4 form"
    six = Url("https://[fd00::5]")
    assert six.allows("https://[fd00::5]/") and six.allows("https://[fd00::5]")
    assert six.problem("https://[fd00:0::5]/") == "a non-canonical IPv6 form"
    assert six.problem("https://[FD00::5]/") == "a non-canonical IPv6 form"
    assert six.problem("https://[fd00::6]/") == "another host"


def test_url_patterns_fill_in_the_default_port_and_path() -> None:
    assert (API.scheme, API.host, API.port, API.path) == ("https", "api.example.com", 443,
                                                         "/v1")
    assert Url("http://a.example").to_wire() == [10, "http", "a.example", 80, "/"]
    assert Url("ws://a.example:80").to_wire() == [10, "ws", "a.example", 80, "/"]
    assert Url("wss://*.a.example:8443/x").to_wire() == [10, "wss", "*.a.example", 8443, "/x"]
    assert repr(API) == "Url('https://api.example.com/v1')"
    assert repr(Url("https://*.example.com:8443/v1")) == "Url('https://*.example.com:8443/v1')"
    assert repr(Url("https://*/")) == "Url('https://*')"
    assert Url("https://a.example:443/") == Url("https://a.example")
    assert hash(Url("https://a.example:443/")) == hash(Url("https://a.example"))


@pytest.mark.parametrize("pattern", [
    "https://API.example.com", "https://api.example.com.", "https://api.example.com/v1/",
    "https://api.example.com/v1?x=1", "https://api.example.com/v1#x",
    "https://u@api.example.com", "ftp://a.example", "HTTPS://a.example",
    "https://[::ffff:7f00:1]", "https://[::0:1]", "https://127.1", "https://*.*.example.com",
    "https://a*.example.com", "https://*example.com", "https://a.example:0",
    "https://a.example:65536", "https://a.example:080", "https://a.example/a/../b",
    "https://a.example/%2F", "https://a.example/%7e", "https://a.example//", "https://",
    "https://a.example/" + "a" * 300, "a.example/v1",
])
def test_a_url_pattern_out_of_grammar_is_an_invalid_argument(pattern: str) -> None:
    with pytest.raises(InvalidArgument):
        Url(pattern)


@pytest.mark.parametrize("bad", [None, 5, b"https://a.example", ["https://a.example"]])
def test_a_url_pattern_is_a_string(bad: Any) -> None:
    with pytest.raises(InvalidArgument):
        Url(bad)


# ------------------------------------------------------------------ URL narrowing

@pytest.mark.parametrize(("child", "parent", "within"), [
    ("https://api.example.com/v1/reports", "https://*.example.com/v1", True),
    ("https://*.a.example.com/v1", "https://*.example.com", True),
    ("https://*.example.com", "https://*.example.com", True),
    ("https://example.com", "https://*.example.com", False),
    ("https://*", "https://*.example.com", False),
    ("https://*.evil-example.com", "https://*.example.com", False),
    ("https://*.xexample.com", "https://*.example.com", False),
    ("https://10.0.0.5", "https://*.example.com", False),
    ("https://*.example.com", "https://*", True),
    ("https://*.localhost", "https://*", False),
    ("https://*.a.localhost", "https://*", False),
    ("https://localhost", "https://*", False),
    ("https://10.0.0.5", "https://*", False),
    ("https://[::1]", "https://*", False),
    ("https://8.8.8.8", "https://*", True),
    ("https://[2606:4700::1111]", "https://*", True),
    ("https://api.example.com:8443/v1", "https://api.example.com/v1", False),
    ("http://api.example.com/v1", "https://api.example.com/v1", False),
    ("https://api.example.com/v1evil", "https://api.example.com/v1", False),
    ("https://api.example.com/v1/x", "https://api.example.com/v1", True),
    ("https://api.example.com", "https://api.example.com/v1", False),
    ("https://api.example.com/v1", "https://api.example.com", True),
])
def test_url_narrowing(child: str, parent: str, within: bool) -> None:
    assert constraint_within(Url(child), Url(parent)) is within


# ------------------------------------------------------------------ CIDR values

@pytest.mark.parametrize(("network", "value", "problem"), [
    ("10.0.0.0/8", "10.0.0.0", None),
    ("10.0.0.0/8", "10.255.255.255", None),
    ("10.0.0.0/8", "10.1.2.3", None),
    ("10.0.0.0/8", "9.255.255.255", "outside the network"),
    ("10.0.0.0/8", "11.0.0.0", "outside the network"),
    ("10.0.0.0/8", "010.0.0.1", "not an IP address in canonical text"),
    ("10.0.0.0/8", "10.1", "not an IP address in canonical text"),
    ("10.0.0.0/8", "167772161", "not an IP address in canonical text"),
    ("10.0.0.0/8", "10.0.0.1/32", "not an IP address in canonical text"),
    ("10.0.0.0/8", " 10.0.0.1", "not an IP address in canonical text"),
    ("10.0.0.0/8", "::ffff:a00:1", "an IPv4-mapped IPv6 address"),
    ("10.0.0.0/8", "::FFFF:a00:1", "an IPv4-mapped IPv6 address"),
    ("10.0.0.0/8", "::ffff:10.0.0.1", "an IPv4-mapped IPv6 address"),
    ("10.0.0.0/8", "::1", "an IPv6 address, not IPv4"),
    ("10.0.0.0/8", 167772161, "a int, not a str"),
    ("2001:db8::/32", "2001:db8::", None),
    ("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2001:db8::/32", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "outside the network"),
    ("2001:db8::/32", "2001:db9::", "outside the network"),
    ("2001:db8::/32", "2001:DB8::1", "not an IP address in canonical text"),
    ("2001:db8::/32", "2001:db8:0::1", "not an IP address in canonical text"),
    ("2001:db8::/32", "[2001:db8::1]", "not an IP address in canonical text"),
    ("2001:db8::/32", "2001:db8::1%eth0", "not an IP address in canonical text"),
    ("2001:db8::/32", "10.0.0.1", "an IPv4 address, not IPv6"),
    ("0.0.0.0/0", "0.0.0.0", None),
    ("0.0.0.0/0", "255.255.255.255", None),
    ("0.0.0.0/0", "::", "an IPv6 address, not IPv4"),
    ("::/0", "::", None),
    ("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("::/0", "::ffff:a00:1", "an IPv4-mapped IPv6 address"),
    ("::/0", "1.2.3.4", "an IPv4 address, not IPv6"),
    ("192.0.2.7/32", "192.0.2.7", None),
    ("192.0.2.7/32", "192.0.2.8", "outside the network"),
    ("192.0.2.7/32", "192.0.2.6", "outside the network"),
    ("2001:db8::1/128", "2001:db8::1", None),
    ("2001:db8::1/128", "2001:db8::2", "outside the network"),
    ("2001:db8::1/128", "2001:db8::", "outside the network"),
])
def test_a_cidr_value(network: str, value: Any, problem: str | None) -> None:
    cidr = Cidr(network)
    assert cidr.allows(value) is (problem is None)
    if problem is not None:
        assert cidr.problem(value) == problem


@pytest.mark.parametrize("network", [
    "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0", "010.0.0.0/8", "10.0.0.0/08",
    "::ffff:0:0/96", "::ffff:10.0.0.0/104", "::ffff:a00:0/120", "2001:DB8::/32",
    "2001:db8::1/32", "2001:db8::/129", "fe80::%eth0/64", "abc", "", "10.0.0.0/-1",
    "10.0.0.0/255.0.0.0",
])
def test_a_network_out_of_grammar_is_an_invalid_argument(network: str) -> None:
    with pytest.raises(InvalidArgument):
        Cidr(network)


@pytest.mark.parametrize(("child", "parent", "within"), [
    ("10.1.0.0/16", "10.0.0.0/8", True),
    ("10.0.0.0/8", "10.1.0.0/16", False),
    ("10.0.0.0/8", "10.0.0.0/8", True),
    ("11.0.0.0/8", "10.0.0.0/7", True),
    ("12.0.0.0/8", "10.0.0.0/7", False),
    ("10.0.0.7/32", "10.0.0.0/8", True),
    ("0.0.0.0/0", "10.0.0.0/8", False),
    ("10.0.0.0/8", "0.0.0.0/0", True),
    ("::/0", "0.0.0.0/0", False),
    ("0.0.0.0/0", "::/0", False),
    ("2001:db8:1::/48", "2001:db8::/32", True),
    ("2001:db8::/32", "2001:db8:1::/48", False),
    ("2001:db8::1/128", "2001:db8::/127", True),
    # The rule of spec 10.2 compares networks, not the values they allow: no value names
    # a mapped address, so this /95 allows only what the /96 allows, yet it is refused.
    ("::fffe:0:0/95", "::fffe:0:0/96", False),
    ("::fffc:0:0/94", "::fffe:0:0/96", False),
])
def test_cidr_narrowing(child: str, parent: str, within: bool) -> None:
    assert constraint_within(Cidr(child), Cidr(parent)) is within


# ------------------------------------------------------------------ wire forms

@pytest.mark.parametrize("constraint", [
    API, ANY, WILD, Url("http://10.0.0.5:8080/api"), Url("wss://[2606:4700::1111]/a/b%20c"),
    Url("ws://a.example"), Cidr("10.0.0.0/8"), Cidr("0.0.0.0/0"), Cidr("::/0"),
    Cidr("2001:db8::/32"), Cidr("192.0.2.7/32"), Cidr("2001:db8::1/128"),
])
def test_the_wire_form_round_trips(constraint: Url | Cidr) -> None:
    encoded = wire.encode_value(constraint.to_wire())
    back = constraint_from_wire(wire.decode_array(encoded, 4096, "a constraint"))
    assert back == constraint and repr(back) == repr(constraint)
    assert type(back) is type(constraint)
    assert back.to_wire() == constraint.to_wire()
    assert back.allows("https://api.example.com/v1") is constraint.allows(
        "https://api.example.com/v1")
    assert back.allows("10.0.0.1") is constraint.allows("10.0.0.1")


@pytest.mark.parametrize(("value", "code"), [
    ([10, "https", "a.example", 443], "malformed"),
    ([10, "https", "a.example", 443, "/", "x"], "malformed"),
    ([10, "ftp", "a.example", 443, "/"], "malformed"),
    ([10, 1, "a.example", 443, "/"], "malformed"),
    ([10, "HTTPS", "a.example", 443, "/"], "non_canonical"),
    ([10, "https", "a..example", 443, "/"], "malformed"),
    ([10, "https", "A.example", 443, "/"], "non_canonical"),
    ([10, "https", "a.example.", 443, "/"], "non_canonical"),
    ([10, "https", "[::0:1]", 443, "/"], "non_canonical"),
    ([10, "https", "[2001:DB8::1]", 443, "/"], "non_canonical"),
    ([10, "https", "[::ffff:7f00:1]", 443, "/"], "malformed"),
    ([10, "https", "127.1", 443, "/"], "malformed"),
    ([10, "https", "0177.0.0.1", 443, "/"], "malformed"),
    ([10, "https", "", 443, "/"], "malformed"),
    ([10, "https", b"a.example", 443, "/"], "malformed"),
    ([10, "https", "a.example", 0, "/"], "malformed"),
    ([10, "https", "a.example", 65536, "/"], "malformed"),
    ([10, "https", "a.example", True, "/"], "malformed"),
    ([10, "https", "a.example", "443", "/"], "malformed"),
    ([10, "https", "a.example", 443, ""], "malformed"),
    ([10, "https", "a.example", 443, "v1"], "malformed"),
    ([10, "https", "a.example", 443, "/a/../b"], "malformed"),
    ([10, "https", "a.example", 443, "/a%2Fb"], "malformed"),
    ([10, "https", "a.example", 443, "/a%2fb"], "malformed"),
    ([10, "https", "a.example", 443, "/a b"], "malformed"),
    ([10, "https", "a.example", 443, "/v1/"], "non_canonical"),
    ([10, "https", "a.example", 443, "/caf%c3%a9"], "non_canonical"),
    ([11], "malformed"),
    ([11, "10.0.0.0/8", "x"], "malformed"),
    ([11, 167772160], "malformed"),
    ([11, "10.0.0.1/8"], "malformed"),
    ([11, "10.0.0.0"], "malformed"),
    ([11, "10.0.0.0/33"], "malformed"),
    ([11, "010.0.0.0/8"], "malformed"),
    ([11, "::ffff:0:0/96"], "malformed"),
    ([11, "fe80::%eth0/64"], "malformed"),
    ([11, "2001:DB8::/32"], "non_canonical"),
    ([11, "2001:db8:0::/48"], "non_canonical"),
    ([11, "10.0.0.0/08"], "non_canonical"),
    ([11, "10.0.0.0/255.0.0.0"], "malformed"),
])
def test_a_bad_wire_form_is_refused_with_its_code(value: list[Any], code: str) -> None:
    with raises(code):
        constraint_from_wire(value)


# ------------------------------------------------------------------ properties

SCHEMES = ("https", "http")
HOSTS = ("*", "*.example.com", "*.a.example.com", "*.evil-example.com", "*.localhost",
         "example.com", "a.example.com", "b.a.example.com", "evil-example.com", "localhost",
         "a.localhost", "10.0.0.5", "8.8.8.8", "[2606:4700::1]", "[::1]")
PATHS = ("/", "/v1", "/v1/r", "/v1evil", "/v2")
DEFAULT = {"http": 80, "https": 443}


def _url(scheme: str, host: str, port: int, path: str) -> str:
    shown = "" if port == DEFAULT[scheme] else f":{port}"
    return f"{scheme}://{host}{shown}{path}"


@st.composite
def pattern_pairs(draw: st.DrawFn) -> tuple[Url, Url]:
    """A child and a parent pattern, sharing scheme and port three times in four (else
    the pair is decided before host and path are looked at)."""
    def pattern(scheme: str, port: int) -> Url:
        path = draw(st.sampled_from(PATHS))
        return Url(_url(scheme, draw(st.sampled_from(HOSTS)), port, "" if path == "/" else path))
    scheme, port = draw(st.sampled_from(SCHEMES)), draw(st.sampled_from((443, 80, 8443)))
    parent = pattern(scheme, port)
    if draw(st.integers(0, 3)) == 0:
        scheme, port = draw(st.sampled_from(SCHEMES)), draw(st.sampled_from((443, 80, 8443)))
    return pattern(scheme, port), parent


labels = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
ips = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.sampled_from(("10.0.0.5", "8.8.8.8", "127.0.0.1", "[2606:4700::1]", "[::1]",
                     "[fe80::1]", "224.0.0.1", "169.254.169.254")))


def _hosts(pattern: str, label: str) -> list[str]:
    """Hosts a pattern names, and near misses: the pattern's name itself, a label below
    it, a name beside it."""
    if pattern == "*":
        return [f"{label}.example.org", "localhost", f"{label}.localhost"]
    if pattern.startswith("*."):
        name = pattern[2:]
        return [f"{label}.{name}", f"{label}.{label}.{name}", name, f"{label}{name}"]
    return [pattern]


def _paths(prefix: str, label: str) -> list[str]:
    base = "" if prefix == "/" else prefix
    return [prefix, f"{base}/{label}", f"{base}{label}", f"{base}/"]


def _samples(child: Url, parent: Url, label: str, ip: str) -> list[str]:
    hosts = {*_hosts(child.host, label), *_hosts(parent.host, label), ip}
    paths = {*_paths(child.path, label), *_paths(parent.path, label)}
    ports = {child.port, parent.port}
    return [_url(scheme, host, port, path) for scheme in {child.scheme, parent.scheme}
            for host in hosts for port in ports for path in paths]


def _witnesses(child: Url) -> list[str]:
    """Values the child allows, enough that a parent not covering the child refuses one."""
    if child.host == "*":
        hosts = ["zq.example.org", "8.8.4.4", "[2606:4700::2]"]
    elif child.host.startswith("*."):
        hosts = [f"zq.{child.host[2:]}"]
    else:
        hosts = [child.host]
    paths = [child.path, ("" if child.path == "/" else child.path) + "/zq"]
    found = [_url(child.scheme, host, child.port, path) for host in hosts for path in paths]
    return [value for value in found if child.allows(value)]


@settings(PROPERTY, max_examples=120)  # each example checks some 300 sampled values
@given(pattern_pairs(), labels, ips)
def test_url_narrowing_is_sound_and_complete(pair: tuple[Url, Url], label: str,
                                             ip: str) -> None:
    _check_pair(*pair, label, ip)


def _check_pair(child: Url, parent: Url, label: str, ip: str) -> None:
    witnesses = _witnesses(child)
    assert witnesses, child  # every pattern in the pools allows something
    if child.narrows(parent):
        for value in _samples(child, parent, label, ip) + witnesses:
            assert not child.allows(value) or parent.allows(value), (child, parent, value)
    else:
        assert any(not parent.allows(value) for value in witnesses), (child, parent)


def test_url_narrowing_is_sound_and_complete_on_every_pair_of_hosts_and_of_paths() -> None:
    for child_host in HOSTS:
        for parent_host in HOSTS:
            _check_pair(Url(f"https://{child_host}"), Url(f"https://{parent_host}"), "q",
                        "8.8.8.8")
    for child_path in PATHS:
        for parent_path in PATHS:
            _check_pair(Url(f"https://*.example.com{child_path}"),
                        Url(f"https://*.example.com{parent_path}"), "q", "8.8.8.8")


def _network(version: int, address: int, length: int) -> Cidr:
    bits = 32 if version == 4 else 128
    mask = ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)
    if version == 4:
        return Cidr(str(ipaddress.IPv4Network((address & mask, length))))
    net = ipaddress.IPv6Network((address & mask, length))
    if net.subnet_of(ipaddress.IPv6Network("::ffff:0:0/96")):  # no mapped network
        net = ipaddress.IPv6Network(("2001:db8::", 32))
    return Cidr(str(net))


@st.composite
def network_pairs(draw: st.DrawFn) -> tuple[Cidr, Cidr]:
    version = draw(st.sampled_from((4, 6)))
    bits = 32 if version == 4 else 128
    # Addresses near the mapped range and near each other, so pairs nest often.
    base = draw(st.one_of(st.integers(0, 2**bits - 1),
                          st.just(0xFFFF << 32) if version == 6 else st.just(10 << 24)))
    spread = draw(st.integers(0, 2**16))
    parent = _network(version, base, draw(st.integers(0, bits)))
    child_version = draw(st.sampled_from((version, version, version, 10 - version)))
    child_bits = 32 if child_version == 4 else 128
    child_base = base ^ spread if child_version == version else base % 2**child_bits
    child = _network(child_version, child_base, draw(st.integers(0, child_bits)))
    return child, parent


MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _address(version: int, number: int) -> str:
    return str(ipaddress.IPv4Address(number) if version == 4 else
               ipaddress.IPv6Address(number))


@PROPERTY
@given(network_pairs(), st.integers(0, 2**128 - 1))
def test_cidr_narrowing_is_sound_and_complete(pair: tuple[Cidr, Cidr], noise: int) -> None:
    child, parent = pair
    edges = []
    for net in (child, parent):
        found = ipaddress.ip_network(net.network)
        first, last = int(found.network_address), int(found.broadcast_address)
        size = last - first + 1
        top = 2**found.max_prefixlen - 1
        for number in (first, last, first - 1, last + 1, first + noise % size,
                       0xFFFF << 32, (0xFFFF << 32) - 1, (0x1_0000 << 32)):
            if 0 <= number <= top:
                edges.append(_address(found.version, number))
    allowed = [value for value in edges if child.allows(value)]
    found_child = ipaddress.ip_network(child.network)
    holds_mapped = (isinstance(found_child, ipaddress.IPv6Network)
                    and found_child.supernet_of(MAPPED))
    if child.narrows(parent):
        assert all(parent.allows(value) for value in allowed), (child, parent)
    elif not holds_mapped:  # complete but for the one case spec 10.2 leaves out
        assert any(not parent.allows(value) for value in allowed), (child, parent)


arbitrary = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.binary(), st.text(),
              st.text(alphabet="htps:/[]@%.:#?ABab019-_~\\*x").map(lambda s: "https://" + s),
              st.builds(type("Text", (str,), {}), st.just("https://api.example.com/v1")),
              st.builds(type("Text", (str,), {}), st.just("10.0.0.1"))),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.sets(st.integers(), max_size=3),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=8)


@settings(PROPERTY, max_examples=100)
@given(arbitrary)
def test_allows_never_raises(value: object) -> None:
    for constraint in (API, ANY, WILD, Cidr("10.0.0.0/8"), Cidr("::/0")):
        assert constraint.allows(value) in (True, False)
        assert isinstance(constraint.problem(value), str)
        if not constraint.allows(value):
            assert constraint.problem(value) not in ("not allowed", "")


@PROPERTY
@given(st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: (n, 4)),
    st.integers(0, 2**128 - 1).map(lambda n: (n, 6)),
    st.tuples(st.sampled_from([(lo, hi, v) for v, nets in NOT_PUBLIC.items()
                               for lo, hi in nets]), st.integers(0, 2**128))
    .map(lambda t: (t[0][0] + t[1] % (t[0][1] - t[0][0] + 1), t[0][2]))))
def test_the_ssrf_table_refuses_all_that_python_calls_not_global(found: tuple[int, int]) -> None:
    number, version = found
    address: ipaddress.IPv4Address | ipaddress.IPv6Address = (
        ipaddress.IPv4Address(number) if version == 4 else ipaddress.IPv6Address(number))
    if not address.is_global or address.is_multicast:
        assert not publicly_routable(number, version), address


def test_every_python_special_network_edge_is_refused_under_any_host() -> None:
    special = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
               "172.16.0.0/12", "192.0.0.0/29", "192.0.0.170/31", "192.0.2.0/24",
               "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
               "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32", "::1/128", "::/128",
               "100::/64", "2001::/23", "2001:2::/48", "2001:db8::/32", "2001:10::/28",
               "fc00::/7", "fe80::/10", "ff00::/8"]
    for text in special:
        net = ipaddress.ip_network(text)
        for address in (net.network_address, net.broadcast_address):
            host = f"[{address}]" if net.version == 6 else str(address)
            assert not ANY.allows(f"https://{host}/"), host


# ------------------------------------------------------------------ a chain

NOW = 1_800_000_000
ROOT_GRANT = Grant("http/api", {"call"}, {"url": Url("https://*.example.com/v1")})
LEAF_GRANT = Grant("http/api", {"call"}, {"url": Url("https://api.example.com/v1/reports")})


def _chain(leaf: Grant = LEAF_GRANT) -> list[Link]:
    root = delegate(ALICE, BOB, [ROOT_GRANT], not_before=NOW - 100, expires=NOW + 3600,
                    budget=1)
    return [root, delegate(BOB, CAROL, [leaf], not_before=NOW - 100, expires=NOW + 3600,
                           budget=0, parent=root)]


def _forged(root: Link, leaf: Grant) -> Link:
    """A child of ``root`` that delegate() would refuse to make, signed by BOB as given."""
    payload = wire.encode_value([CAROL.public_bytes, [leaf.to_wire()], NOW - 100,
                                 NOW + 3600, 0, bytes(16)])
    data = payload + BOB.sign(chain_module.LINK_CONTEXT + root.id + payload)
    return chain_module.parse_links([root.data, data])[1]


def _verify(links: list[Link], request: Request | None = None) -> object:
    return verify_chain(encode_chain(links), {ALICE.agent_id: "**"}, now=NOW,
                        request=request)


def test_a_chain_refuses_a_url_with_userinfo_naming_the_argument_and_the_problem() -> None:
    links = _chain()
    _verify(links, Request("http/api", "call",
                           {"url": "https://api.example.com/v1/reports/q3"}))
    attack = "https://api.example.com@169.254.169.254/v1/reports"
    assert OLD.allows(attack)  # the 0.1.0 prefix rule let it through
    with pytest.raises(CapabilityDenied) as info:
        _verify(links, Request("http/api", "call", {"url": attack}))
    assert info.value.code == "not_authorized"
    refusal = info.value.refusal
    assert refusal is not None
    assert (refusal.kind, refusal.argument, refusal.problem) == ("argument", "url",
                                                                 "userinfo")
    assert refusal.rule == "Url('https://api.example.com/v1/reports')"
    assert refusal.value == attack


def test_a_child_widening_the_url_host_to_any_is_refused() -> None:
    wide = Grant("http/api", {"call"}, {"url": Url("https://*/v1/reports")})
    with pytest.raises(InvalidArgument, match="widened_constraint"):
        _chain(wide)
    root = _chain()[0]
    with pytest.raises(CapabilityDenied) as info:
        _verify([root, _forged(root, wide)])
    assert info.value.code == "widened_constraint"
    refusal = info.value.refusal
    assert refusal is not None and refusal.argument == "url"
    assert refusal.rule == "a constraint within Url('https://*.example.com/v1')"


def _plain_segments_ok(path: str) -> bool:
    """Rule 5's segment rule as the spec words it, for the one-regex check to match."""
    segments = path.split("/")[1:]
    return (all(s not in ("", ".", "..") for s in segments[:-1])
            and segments[-1] not in (".", ".."))


@PROPERTY
@given(st.text(alphabet="/.a", max_size=12).map(lambda s: "/" + s))
def test_the_segment_regex_agrees_with_the_segment_rule(path: str) -> None:
    assert (path_problem(path) is None) is _plain_segments_ok(path), path


# ------------------------------------------------------------------ fast paths held to the rules

FAST_PATTERNS = (API, ANY, WILD, Url("https://*.example.com:8443/v1/a"),
                 Url("http://localhost:8080/x"), Url("wss://10.0.0.1/"),
                 Url("https://[::1]/v1"), Url("ws://a-b.example.com"))
# Pieces of URL values: the common valid forms Url.allows decides at once, and near misses
# (uppercase, a leading or trailing hyphen, a digit or 0x last label, ports with leading
# zeros or out of range, dot and empty segments, escapes, brackets, fragments) that must
# go the rule-by-rule way and be refused there.
FAST_SCHEMES = ("https", "http", "ws", "wss", "HTTPS", "ftp")
FAST_HOSTS = ("api.example.com", "example.com", "a-b.example.com", "x.a-b.example.com",
              "localhost", "db.localhost", "zq.example.org", "Api.example.com", "-a.example.com",
              "a-.example.com", "a..example.com", "example.com.", "10.0.0.1", "127.1",
              "0x7f.example", "1.example", "[::1]", "", "a" * 64 + ".com", "a" * 63 + ".com",
              ".".join(["abcdefghi"] * 25) + ".com", ".".join(["abcdefgh"] * 28) + ".com")
FAST_PORTS = ("", ":443", ":8443", ":80", ":8080", ":0443", ":65535", ":65536", ":99999", ":",
              ":0")
FAST_SEGMENTS = ("v1", "a", "reports", ".", "..", "...", ".a", "", "%2F", "%41", "%2f", "%C3",
                 "[x]", "*", "a@b", "a:b", "~u", "x\\y", "x y", "é")
FAST_QUERIES = ("", "?", "?year=2026", "?a=%2F", "?a=%zz", "?a=b/c?d", "?[x]", "#f", "?a#f")


@st.composite
def url_values(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(FAST_SEGMENTS), max_size=4))
    path = "".join("/" + s for s in segments)
    return (draw(st.sampled_from(FAST_SCHEMES)) + "://" + draw(st.sampled_from(FAST_HOSTS))
            + draw(st.sampled_from(FAST_PORTS)) + path + draw(st.sampled_from(FAST_QUERIES)))


def common_url_values() -> st.SearchStrategy[str]:
    """Values the fast path decides: every piece of the common valid form."""
    return st.builds(
        lambda scheme, host, port, segments, query: (
            f"{scheme}://{host}{port}" + "".join("/" + s for s in segments) + query),
        st.sampled_from(FAST_SCHEMES[:4]), st.sampled_from(FAST_HOSTS[:7] + FAST_HOSTS[19:21]),
        st.sampled_from((*FAST_PORTS[:5], ":65535")),
        st.lists(st.sampled_from(("v1", "a", "reports", "...", ".a", "*", "a@b", "a:b", "~u")),
                 max_size=4),
        st.sampled_from(("", "?", "?year=2026", "?a=b/c?d", "/", "/?q")))


@settings(PROPERTY, max_examples=600)
@given(st.one_of(common_url_values(), url_values(),
                 st.text(alphabet="htpsw:/.a-e1?%[]#@", max_size=30)))
def test_url_fast_path_answers_as_the_rules_do(value: str) -> None:
    """``allows`` decides the common valid URL by one regex and comparisons; ``problem``
    always goes rule by rule. They agree on every value, valid or a near miss."""
    for constraint in FAST_PATTERNS:
        assert constraint.allows(value) is (constraint.problem(value) == "not allowed"), (
            constraint, value)


def test_url_fast_path_answers_on_the_common_values() -> None:
    """A few values the fast path decides, each with the answer the spec's rules give."""
    assert WILD.allows("https://api.example.com/v1/reports?year=2026")
    assert WILD.allows("https://api.example.com:443/")
    assert not WILD.allows("https://example.com/")
    assert not WILD.allows("https://api.example.com:8443/")
    assert not WILD.allows("http://api.example.com/")
    assert API.allows("https://api.example.com/v1/")
    assert not API.allows("https://api.example.com/v10")
    assert not API.allows("https://api.example.com/")
    assert ANY.allows("https://zq.example.org")
    assert not ANY.allows("https://localhost/")
    assert not ANY.allows("https://db.localhost/")
    assert not WILD.allows("https://" + ".".join(["abcdefghi"] * 25) + ".example.com/")


@settings(PROPERTY, max_examples=300)
@given(st.sampled_from(FAST_SCHEMES),
       st.one_of(st.sampled_from((*FAST_HOSTS, "*", "*.example.com", "*.", "**", "*.Example.com",
                                  "*.10.0.0.1", "[::0:1]", "[2001:DB8::1]")),
                 st.text(alphabet="a-.*1", max_size=12)),
       st.integers(1, 65535),
       st.one_of(st.sampled_from(("/", "/v1", "/v1/", "/v1/a", "/./a", "//", "/%2F", "/%41",
                                  "/%c3", "/[x]", "/a*", "/..", "/...")),
                 st.text(alphabet="/a.%2F", max_size=10).map(lambda s: "/" + s)))
def test_url_from_wire_fast_path_accepts_what_the_pattern_grammar_accepts(
        scheme: str, host: str, port: int, path: str) -> None:
    """``from_wire`` takes fields in their common canonical forms after two regexes; the
    same fields as an API pattern go the full way. They accept and refuse alike."""
    pattern = f"{scheme}://{host}:{port}{path}"
    assume(len(pattern) <= 256)  # an API pattern is one string value; fields are four
    try:
        made: Url | None = Url(pattern)
    except InvalidArgument:
        made = None
    fields = [Url.CODE, scheme, host, port, path]
    if made is None:
        with pytest.raises(DecodeError):
            constraint_from_wire(fields)
    else:
        read = constraint_from_wire(fields)
        assert read == made and repr(read) == repr(made)
        for value in ("https://api.example.com/v1/x", f"{scheme}://q.example.com:{port}/v1",
                      f"{scheme}://{host}:{port}{path}"):
            assert read.allows(value) is made.allows(value)


def _ipaddress_network(text: str) -> tuple[int, int] | None:
    try:
        net = ipaddress.IPv4Network(text)  # strict: host bits set is an error
    except ValueError:
        return None
    if str(net) != text:
        return None
    return int(net.network_address), int(net.broadcast_address)


@PROPERTY
@given(st.integers(0, 2**32 - 1), st.integers(0, 32),
       st.sampled_from(("plain", "lead-octet", "lead-length", "long", "mask", "space")))
def test_ipv4_network_reads_as_ipaddress_does(address: int, length: int, form: str) -> None:
    """The regex-and-arithmetic reading of a canonical IPv4 network agrees with
    ``ipaddress`` (strict, and printing the same text) on canonical networks, networks
    with host bits set, and non-canonical texts."""
    dotted = str(ipaddress.IPv4Address(address))
    text = {
        "plain": f"{dotted}/{length}",
        "lead-octet": "0" + dotted + f"/{length}",
        "lead-length": f"{dotted}/0{length}",
        "long": f"{dotted}/{length + 32}",
        "mask": f"{dotted}/{ipaddress.IPv4Network(f'0.0.0.0/{length}').netmask}",
        "space": f" {dotted}/{length}",
    }[form]
    assert ipv4_network(text) == _ipaddress_network(text), text
    masked = address & ~((1 << (32 - length)) - 1)
    text = f"{ipaddress.IPv4Address(masked)}/{length}"
    assert ipv4_network(text) == _ipaddress_network(text) is not None
    read = constraint_from_wire([Cidr.CODE, text])
    assert read == Cidr(text)
    top = masked | ((1 << (32 - length)) - 1)
    for number in (masked, top, masked - 1, top + 1):
        if 0 <= number < 2**32:
            value = str(ipaddress.IPv4Address(number))
            assert read.allows(value) is (masked <= number <= top)


def _ipaddress_value(text: str) -> tuple[int, int] | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if str(address) != text or (address.version == 6 and address.ipv4_mapped is not None):
        return None
    return int(address), address.version


@PROPERTY
@given(st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**32 - 1).map(lambda n: "0" + str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)) + "\n"),
    st.lists(st.one_of(st.integers(0, 255).map(str), st.from_regex(r"0[0-9]{1,2}", fullmatch=True),
                       st.text(alphabet="0123456789", max_size=4)),
             min_size=4, max_size=4).map(".".join),
    st.lists(st.integers(0, 255).map(str), min_size=3, max_size=5).map(".".join),
    st.text(alphabet="0123456789.", max_size=17),
    st.text(alphabet="0125.:af x", max_size=20),
    st.sampled_from(("1.2.3.4.5", "1.2.3", "256.0.0.1", "1.2.3.-4", "1.2.3.+4", "\uff11.2.3.4",
                     "::ffff:1.2.3.4", "::1.2.3.4", "1.2.3.4/8", "", "..."))))
def test_ip_value_reads_ipv4_as_ipaddress_does(text: str) -> None:
    """An IPv4 address is read by splitting and looking up canonical octets: it agrees
    with ``ipaddress`` reading the text and printing it back the same."""
    assert ip_value(text) == _ipaddress_value(text), text


IPV4_TEXTS = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**32 - 1).map(lambda n: "0" + str(ipaddress.IPv4Address(n))),
    st.lists(st.one_of(st.integers(0, 255).map(str), st.from_regex(r"0[0-9]{1,2}", fullmatch=True),
                       st.text(alphabet="0123456789", max_size=4)),
             min_size=4, max_size=4).map(".".join),
    st.lists(st.integers(0, 255).map(str), min_size=3, max_size=5).map(".".join),
    st.text(alphabet="0125.:af x", max_size=20),
    st.sampled_from(("1.2.3.4.5", "1.2.3", "256.0.0.1", "1.2.3.-4", "1.2.3.+4", "\uff11.2.3.4",
                     "::ffff:1.2.3.4", "::1.2.3.4", "::1", "2001:db8::1", "10.0.0.1", "")))
CIDR_NETWORKS = tuple(Cidr(n) for n in (
    "10.0.0.0/8", "0.0.0.0/0", "10.20.30.40/32", "192.168.0.0/16", "128.0.0.0/1", "::/0",
    "2001:db8::/32", "::1/128"))


@PROPERTY
@given(st.one_of(IPV4_TEXTS, st.integers(0, 2**128 - 1).map(
    lambda n: str(ipaddress.IPv6Address(n)))))
def test_cidr_allows_is_ip_value_within_the_network(text: str) -> None:
    """An IPv4 network reads its values inline (split, four canonical octets); whatever it
    reads, it decides as the plain rule: ``ip_value`` of the network's version, within."""
    for constraint in CIDR_NETWORKS:
        network = ipaddress.ip_network(constraint.network)
        found = ip_value(text)
        plain = (found is not None and found[1] == network.version
                 and int(network.network_address) <= found[0]
                 <= int(network.broadcast_address))
        assert constraint.allows(text) is plain, (constraint, text)


# Url.allows' fast path as it was first written, with backtracking quantifiers and the
# fields compared as numbers: the reading the possessive regex and the text comparison of
# the port must keep.
_SEGMENT = r"A-Za-z0-9\-._~!$&'()*+,;=:@"
_BACKTRACKING = re.compile(
    r"(https?|wss?)://"
    r"((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?)"
    r"(?::([1-9][0-9]{0,4}))?"
    rf"((?:/(?!\.\.?(?:[/?;]|\Z))[{_SEGMENT}]+)*/?)"
    rf"(?:\?[{_SEGMENT}/?]*)?")
_SCHEME_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _backtracking_allows(constraint: Url, value: str) -> bool | None:
    """The first fast path's answer, or None where it left the value to the rules."""
    match = _BACKTRACKING.fullmatch(value)
    if match is None:
        return None
    scheme, host, port, path = match.groups()
    if len(host) > 253 or (port is not None and int(port) > 65535):
        return None
    below = "" if constraint.path == "/" else constraint.path + "/"
    return (scheme == constraint.scheme
            and (int(port) if port else _SCHEME_PORTS[scheme]) == constraint.port
            and (host == constraint.host if "*" not in constraint.host else
                 host.endswith(constraint.host[1:]) if constraint.host[:2] == "*." else
                 host != "localhost" and not host.endswith(".localhost"))
            and (not below or path == constraint.path or path.startswith(below)))


@settings(PROPERTY, max_examples=600)
@given(st.one_of(common_url_values(), url_values(),
                 st.text(alphabet="htpsw:/.a-e1?%[]#@", max_size=30)))
def test_url_allows_is_the_backtracking_reading(value: str) -> None:
    """The possessive regex admits what the backtracking one did, with the same groups,
    and allows answers as the first fast path did wherever that one decided."""
    for constraint in FAST_PATTERNS:
        first = _backtracking_allows(constraint, value)
        if first is not None:
            assert constraint.allows(value) is first, (constraint, value)
        else:
            assert constraint.allows(value) is (constraint.problem(value) == "not allowed")

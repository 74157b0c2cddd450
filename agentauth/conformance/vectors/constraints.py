"""Constraint vectors (spec sections 10.1 to 10.3): for each kind, values it allows and
refuses, child-within-parent pairs, and wire forms refused with their exact code; then the
closed world at grant level (requests, narrowing, and the open-world flag's wire form).

Each case's expected outcome is written here from the spec's text, not read from the code:
before a file is written the code is run on every case, and one that disagrees stops the
generator with that case named.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ... import wire
from ...capability.constraints import KINDS, Constraint, constraint_from_wire, constraint_within
from ...capability.grants import Grant, Request
from ...errors import AgentAuthError, InvalidState

__all__ = ["LIMIT", "build", "decode_constraint", "decode_grant"]

LIMIT = 16 * 1024
"""The largest constraint or grant a vector holds, in bytes."""

MAX_INT, MIN_INT = 2**63 - 1, -(2**63)

# ------------------------------------------------------------------ the cases
# Matching (10.1): (id, constraint wire form, argument value, allowed).
_MATCHING: list[tuple[str, list[Any], Any, bool]] = [
    # eq
    ("eq-int", [0, 5], 5, True),
    ("eq-int-other", [0, 5], 6, False),
    ("eq-int-given-float", [0, 5], 5.0, False),
    ("eq-int-given-bool", [0, 1], True, False),
    ("eq-bool-given-int", [0, True], 1, False),
    ("eq-bool", [0, False], False, True),
    ("eq-str", [0, "pdf"], "pdf", True),
    ("eq-str-case", [0, "pdf"], "PDF", False),
    ("eq-str-given-list", [0, "pdf"], ["pdf"], False),
    ("eq-str-given-null", [0, "pdf"], None, False),
    # one-of
    ("one-of-str", [1, ["csv", "pdf"]], "pdf", True),
    ("one-of-str-other", [1, ["csv", "pdf"]], "txt", False),
    ("one-of-int", [1, [1, 2, 3]], 2, True),
    ("one-of-int-given-bool", [1, [1, 2, 3]], True, False),
    ("one-of-int-given-float", [1, [1, 2, 3]], 2.0, False),
    ("one-of-given-list", [1, ["a", "b"]], ["a"], False),
    # range
    ("range-low", [2, 0, 10], 0, True),
    ("range-high", [2, 0, 10], 10, True),
    ("range-above", [2, 0, 10], 11, False),
    ("range-below", [2, 0, 10], -1, False),
    ("range-given-bool", [2, 0, 10], True, False),
    ("range-given-float", [2, 0, 10], 5.0, False),
    ("range-given-str", [2, 0, 10], "5", False),
    ("range-64-bit", [2, MIN_INT, MAX_INT], MAX_INT, True),
    # prefix
    ("prefix", [3, "fs/"], "fs/a", True),
    ("prefix-shorter", [3, "fs/"], "fs", False),
    ("prefix-case", [3, "fs/"], "FS/a", False),
    ("prefix-empty", [3, ""], "", True),
    ("prefix-given-int", [3, "1"], 12, False),
    # not-one-of
    ("not-one-of", [4, ["admin", "root"]], "alice", True),
    ("not-one-of-excluded", [4, ["admin", "root"]], "root", False),
    ("not-one-of-other-type", [4, ["admin", "root"]], 5, False),
    ("not-one-of-given-list", [4, ["admin", "root"]], ["alice"], False),
    ("not-one-of-int", [4, [0]], 1, True),
    ("not-one-of-int-excluded", [4, [0]], 0, False),
    ("not-one-of-int-given-bool", [4, [0]], True, False),
    ("not-one-of-int-given-float", [4, [0]], 1.0, False),
    # length (UTF-8 bytes)
    ("length", [5, 1, 3], "abc", True),
    ("length-over", [5, 1, 3], "abcd", False),
    ("length-under", [5, 1, 3], "", False),
    ("length-two-byte-char", [5, 1, 3], "\u00e9", True),
    ("length-counts-bytes", [5, 1, 3], "\u20ac\u20ac", False),
    ("length-given-int", [5, 1, 3], 123, False),
    ("length-zero", [5, 0, 0], "", True),
    # contains
    ("contains", [6, ["read", "write"]], ["read", "write", "x"], True),
    ("contains-missing", [6, ["read", "write"]], ["read"], False),
    ("contains-given-str", [6, ["read"]], "read", False),
    ("contains-empty-list", [6, ["read"]], [], False),
    ("contains-int", [6, [1, 2]], [2, 1, 3], True),
    ("contains-int-given-bool-item", [6, [1, 2]], [1, True, 2], False),
    ("contains-int-given-float-item", [6, [1]], [1.0], False),
    ("contains-given-nested-list", [6, ["a"]], [["a"]], False),
    # subset
    ("subset", [7, ["a", "b"]], ["a"], True),
    ("subset-empty-list", [7, ["a", "b"]], [], True),
    ("subset-repeated-item", [7, ["a", "b"]], ["a", "a"], True),
    ("subset-outside", [7, ["a", "b"]], ["a", "c"], False),
    ("subset-given-str", [7, ["a", "b"]], "a", False),
    ("subset-int", [7, [1, 2]], [1, 2], True),
    ("subset-int-given-bool-item", [7, [1, 2]], [True], False),
    # any-of
    ("any-of-first", [12, [[0, "a"], [3, "b"]]], "a", True),
    ("any-of-second", [12, [[0, "a"], [3, "b"]]], "bx", True),
    ("any-of-none", [12, [[0, "a"], [3, "b"]]], "c", False),
    ("any-of-mixed-types-int", [12, [[2, 0, 10], [0, "none"]]], 5, True),
    ("any-of-mixed-types-str", [12, [[2, 0, 10], [0, "none"]]], "none", True),
    ("any-of-mixed-types-other", [12, [[2, 0, 10], [0, "none"]]], "x", False),
    # any
    ("any-int", [13], 5, True),
    ("any-null", [13], None, True),
    ("any-float", [13], 1.5, True),
    ("any-nested-list", [13], [["x"]], True),
    # pattern
    ("pattern-star", [8, "*.pdf"], "a.pdf", True),
    ("pattern-star-crosses-slash", [8, "*.pdf"], "a/b.pdf", True),
    ("pattern-star-empty", [8, "*.pdf"], ".pdf", True),
    ("pattern-star-other", [8, "*.pdf"], "a.txt", False),
    ("pattern-whole-value", [8, "*.pdf"], "a.pdf.txt", False),
    ("pattern-pieces-never-overlap", [8, "ab*b"], "ab", False),
    ("not-one-of-beyond-64-bits", [4, [1]], 2**64 - 1, False),
    ("contains-item-beyond-64-bits", [6, [1]], [1, 2**63], False),
    ("pattern-given-int", [8, "*"], 5, False),
    ("pattern-question", [8, "a?c"], "abc", True),
    ("pattern-question-code-point", [8, "a?c"], "a\u00e9c", True),
    ("pattern-question-not-empty", [8, "a?c"], "ac", False),
    ("pattern-question-one", [8, "a?c"], "abbc", False),
    ("pattern-stars", [8, "a*b*c"], "axbyc", True),
    ("pattern-stars-empty-runs", [8, "a*b*c"], "abc", True),
    ("pattern-stars-order", [8, "a*b*c"], "acb", False),
    ("pattern-literal-backslash", [8, "a\\*"], "a\\x", True),
    ("pattern-no-classes", [8, "[ab]"], "a", False),
    ("pattern-many-stars-linear", [8, "*a*a*a*a*a*a*a*a*a*a*b"], "a" * 250, False),
    # subpath
    ("subpath-root-itself", [9, "/data/reports"], "/data/reports", True),
    ("subpath-below", [9, "/data/reports"], "/data/reports/q3/summary.pdf", True),
    ("subpath-segment-boundary", [9, "/data/reports"], "/data/reportsX/a", False),
    ("subpath-shorter", [9, "/data/reports"], "/data/rep", False),
    ("subpath-dot-dot", [9, "/data/reports"], "/data/reports/../secrets", False),
    ("subpath-dot", [9, "/data/reports"], "/data/reports/./a", False),
    ("subpath-empty-segment", [9, "/data/reports"], "/data/reports//a", False),
    ("subpath-trailing-slash", [9, "/data/reports"], "/data/reports/", False),
    ("subpath-relative", [9, "/data/reports"], "data/reports/a", False),
    ("subpath-backslash", [9, "/data/reports"], "/data/reports/a\\..\\..\\b", False),
    ("subpath-percent", [9, "/data/reports"], "/data/reports/%2e%2e/secrets", False),
    ("subpath-nul", [9, "/data/reports"], "/data/reports/a\x00.pdf", False),
    ("subpath-control", [9, "/data/reports"], "/data/reports/a\x7f", False),
    ("subpath-fullwidth-dots", [9, "/data/reports"], "/data/reports/\uff0e\uff0e/x", False),
    ("subpath-fullwidth-solidus", [9, "/data/reports"], "/data/reports/a\uff0f..", False),
    ("subpath-two-dot-leader", [9, "/data/reports"], "/data/reports/\u2025/x", False),
    ("subpath-one-dot-leader", [9, "/data/reports"], "/data/reports/\u2024", False),
    ("subpath-composed", [9, "/data/reports"], "/data/reports/caf\u00e9", True),
    ("subpath-decomposed", [9, "/data/reports"], "/data/reports/cafe\u0301", False),
    ("subpath-case", [9, "/data/reports"], "/Data/reports/a", False),
    ("subpath-given-int", [9, "/data/reports"], 5, False),
    ("subpath-given-list", [9, "/data/reports"], ["/data/reports"], False),
    ("subpath-slash-root", [9, "/"], "/", True),
    ("subpath-slash-root-below", [9, "/"], "/etc/passwd", True),
    ("subpath-slash-root-double", [9, "/"], "//", False),
    ("subpath-slash-root-dot-dot", [9, "/"], "/..", False),
    # url
    ("url-exact", [10, "https", "api.example.com", 443, "/v1"], "https://api.example.com/v1",
     True),
    ("url-below", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/items?id=7&x=%C3%A9", True),
    ("url-trailing-slash", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/", True),
    ("url-default-port-given", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com:443/v1", True),
    ("url-encoded-byte", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/caf%C3%A9", True),
    ("url-segment-boundary", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1x", False),
    ("url-other-port", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com:8443/v1", False),
    ("url-other-scheme", [10, "https", "api.example.com", 443, "/v1"],
     "http://api.example.com/v1", False),
    ("url-uppercase-scheme", [10, "https", "api.example.com", 443, "/v1"],
     "HTTPS://api.example.com/v1", False),
    ("url-uppercase-host", [10, "https", "api.example.com", 443, "/v1"],
     "https://API.example.com/v1", False),
    ("url-trailing-dot-host", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com./v1", False),
    ("url-userinfo", [10, "https", "api.example.com", 443, "/v1"],
     "https://user@api.example.com/v1", False),
    ("url-userinfo-confusion", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com@evil.example.net/v1", False),
    ("url-empty-port", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com:/v1", False),
    ("url-port-leading-zero", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com:0443/v1", False),
    ("url-dot-dot", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/../admin", False),
    ("url-dot", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/./a", False),
    ("url-empty-segment", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1//a", False),
    ("url-encoded-dots", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/%2e%2e/admin", False),
    ("url-encoded-unreserved", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/%41", False),
    ("url-encoded-slash", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/a%2Fb", False),
    ("url-encoded-backslash", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/a%5Cb", False),
    ("url-encoded-nul", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/a%00", False),
    ("url-lowercase-hex", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/caf%c3%a9", False),
    ("url-fragment", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1#top", False),
    ("url-space", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/a b", False),
    ("url-backslash", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1\\..\\admin", False),
    ("url-non-ascii", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/caf\u00e9", False),
    ("url-too-long", [10, "https", "api.example.com", 443, "/v1"],
     "https://api.example.com/v1/" + "a" * 2030, False),
    ("url-given-int", [10, "https", "api.example.com", 443, "/v1"], 443, False),
    ("url-wildcard-sub", [10, "https", "*.example.com", 443, "/"], "https://a.example.com/x",
     True),
    ("url-wildcard-deeper", [10, "https", "*.example.com", 443, "/"],
     "https://a.b.example.com", True),
    ("url-wildcard-not-apex", [10, "https", "*.example.com", 443, "/"],
     "https://example.com/", False),
    ("url-wildcard-label-boundary", [10, "https", "*.example.com", 443, "/"],
     "https://evilexample.com/", False),
    ("url-wildcard-suffix-trick", [10, "https", "*.example.com", 443, "/"],
     "https://a.example.com.evil.net/", False),
    ("ssrf-public-name", [10, "https", "*", 443, "/"], "https://example.org/", True),
    ("ssrf-public-ipv4", [10, "https", "*", 443, "/"], "https://8.8.8.8/", True),
    ("ssrf-public-ipv6", [10, "https", "*", 443, "/"], "https://[2606:4700::1111]/", True),
    ("ssrf-loopback", [10, "https", "*", 443, "/"], "https://127.0.0.1/", False),
    ("ssrf-private", [10, "https", "*", 443, "/"], "https://10.0.0.1/", False),
    ("ssrf-private-192", [10, "https", "*", 443, "/"], "https://192.168.1.1/", False),
    ("ssrf-metadata", [10, "https", "*", 443, "/"],
     "https://169.254.169.254/latest/meta-data/", False),
    ("ssrf-unspecified", [10, "https", "*", 443, "/"], "https://0.0.0.0/", False),
    ("ssrf-shared", [10, "https", "*", 443, "/"], "https://100.64.0.1/", False),
    ("ssrf-documentation", [10, "https", "*", 443, "/"], "https://192.0.2.1/", False),
    ("ssrf-multicast", [10, "https", "*", 443, "/"], "https://224.0.0.1/", False),
    ("ssrf-ipv6-loopback", [10, "https", "*", 443, "/"], "https://[::1]/", False),
    ("ssrf-ipv6-link-local", [10, "https", "*", 443, "/"], "https://[fe80::1]/", False),
    ("ssrf-ipv4-mapped", [10, "https", "*", 443, "/"], "https://[::ffff:7f00:1]/", False),
    ("ssrf-ipv4-mapped-dotted", [10, "https", "*", 443, "/"],
     "https://[::ffff:127.0.0.1]/", False),
    ("ssrf-localhost", [10, "https", "*", 443, "/"], "https://localhost/", False),
    ("ssrf-localhost-sub", [10, "https", "*", 443, "/"], "https://a.localhost/", False),
    ("ssrf-decimal-ipv4", [10, "https", "*", 443, "/"], "https://2130706433/", False),
    ("ssrf-octal-ipv4", [10, "https", "*", 443, "/"], "https://0177.0.0.1/", False),
    ("ssrf-hex-ipv4", [10, "https", "*", 443, "/"], "https://0x7f.0.0.1/", False),
    ("ssrf-short-ipv4", [10, "https", "*", 443, "/"], "https://127.1/", False),
    ("url-exact-loopback", [10, "http", "127.0.0.1", 8080, "/"],
     "http://127.0.0.1:8080/health", True),
    ("url-exact-loopback-default-port", [10, "http", "127.0.0.1", 8080, "/"],
     "http://127.0.0.1/health", False),
    ("url-exact-loopback-by-name", [10, "http", "127.0.0.1", 8080, "/"],
     "http://localhost:8080/health", False),
    ("url-exact-ipv6", [10, "https", "[2001:db8::1]", 443, "/"], "https://[2001:db8::1]/",
     True),
    ("url-ipv6-uppercase", [10, "https", "[2001:db8::1]", 443, "/"],
     "https://[2001:DB8::1]/", False),
    ("url-ipv6-not-compressed", [10, "https", "[2001:db8::1]", 443, "/"],
     "https://[2001:db8:0::1]/", False),
    ("url-any-of", [12, [[10, "https", "a.example.com", 443, "/"],
                         [10, "https", "b.example.net", 443, "/"]]],
     "https://b.example.net/x", True),
    # cidr
    ("cidr-v4", [11, "10.0.0.0/8"], "10.1.2.3", True),
    ("cidr-v4-outside", [11, "10.0.0.0/8"], "11.0.0.0", False),
    ("cidr-v4-leading-zero", [11, "10.0.0.0/8"], "010.0.0.1", False),
    ("cidr-v4-short", [11, "10.0.0.0/8"], "10.1", False),
    ("cidr-v4-mapped", [11, "10.0.0.0/8"], "::ffff:a00:1", False),
    ("cidr-v4-mapped-uppercase", [11, "10.0.0.0/8"], "::FFFF:a00:1", False),
    ("cidr-v4-network-given", [11, "10.0.0.0/8"], "10.0.0.0/8", False),
    ("cidr-v4-bracketed", [11, "10.0.0.0/8"], "[10.0.0.1]", False),
    ("cidr-v4-space", [11, "10.0.0.0/8"], " 10.0.0.1", False),
    ("cidr-v4-given-int", [11, "10.0.0.0/8"], 167837953, False),
    ("cidr-v4-host", [11, "192.168.1.7/32"], "192.168.1.7", True),
    ("cidr-v4-host-other", [11, "192.168.1.7/32"], "192.168.1.8", False),
    ("cidr-v4-everything", [11, "0.0.0.0/0"], "8.8.8.8", True),
    ("cidr-v4-everything-v6-value", [11, "0.0.0.0/0"], "::1", False),
    ("cidr-v6", [11, "2001:db8::/32"], "2001:db8::1", True),
    ("cidr-v6-outside", [11, "2001:db8::/32"], "2001:db9::1", False),
    ("cidr-v6-uppercase", [11, "2001:db8::/32"], "2001:DB8::1", False),
    ("cidr-v6-not-compressed", [11, "2001:db8::/32"], "2001:db8:0::1", False),
    ("cidr-v6-bracketed", [11, "2001:db8::/32"], "[2001:db8::1]", False),
    ("cidr-v6-zone", [11, "2001:db8::/32"], "2001:db8::1%eth0", False),
    ("cidr-v6-v4-value", [11, "2001:db8::/32"], "10.0.0.1", False),
    ("cidr-v6-everything", [11, "::/0"], "::1", True),
    ("cidr-v6-everything-mapped", [11, "::/0"], "::ffff:a00:1", False),
]

# Narrowing (10.2): (id, child wire form, parent wire form, within).
_NARROWING: list[tuple[str, list[Any], list[Any], bool]] = [
    ("one-of-under-any-of-of-eqs", [1, [1, 2]], [12, [[0, 1], [0, 2]]], True),
    ("range-under-any-of-of-eqs", [2, 1, 2], [12, [[0, 1], [0, 2]]], False),
    ("eq-same", [0, 5], [0, 5], True),
    ("eq-other", [0, 5], [0, 6], False),
    ("eq-bool-under-int", [0, True], [0, 1], False),
    ("eq-under-range", [0, 5], [2, 0, 10], True),
    ("eq-outside-range", [0, 11], [2, 0, 10], False),
    ("one-of-subset", [1, ["csv"]], [1, ["csv", "pdf"]], True),
    ("one-of-not-subset", [1, ["csv", "txt"]], [1, ["csv", "pdf"]], False),
    ("one-of-under-range", [1, [1, 2]], [2, 0, 10], True),
    ("one-of-outside-range", [1, [1, 20]], [2, 0, 10], False),
    ("one-of-under-prefix", [1, ["ab", "ac"]], [3, "a"], True),
    ("one-of-outside-prefix", [1, ["ab", "b"]], [3, "a"], False),
    ("range-nested", [2, 1, 9], [2, 0, 10], True),
    ("range-wider", [2, 0, 11], [2, 0, 10], False),
    ("range-under-any", [2, 0, 10], [13], True),
    ("range-under-not-one-of", [2, 0, 10], [4, [11]], True),
    ("range-over-excluded", [2, 0, 10], [4, [5]], False),
    ("range-under-not-one-of-str", [2, 0, 10], [4, ["x"]], False),
    ("prefix-longer", [3, "fs/a"], [3, "fs/"], True),
    ("prefix-shorter", [3, "fs"], [3, "fs/"], False),
    ("prefix-under-length", [3, "a"], [5, 0, 10], False),
    ("prefix-under-not-one-of", [3, "x"], [4, ["a", "b"]], True),
    ("prefix-over-excluded", [3, "a"], [4, ["ab"]], False),
    ("not-one-of-more", [4, ["a", "b", "c"]], [4, ["a", "b"]], True),
    ("not-one-of-fewer", [4, ["a"]], [4, ["a", "b"]], False),
    ("not-one-of-other-type", [4, [1]], [4, ["a"]], False),
    ("eq-under-not-one-of", [0, "c"], [4, ["a", "b"]], True),
    ("eq-excluded", [0, "a"], [4, ["a"]], False),
    ("one-of-under-not-one-of", [1, ["c", "d"]], [4, ["a"]], True),
    ("length-under-not-one-of", [5, 1, 3], [4, ["abcd"]], True),
    ("length-over-excluded", [5, 1, 4], [4, ["abcd"]], False),
    ("length-nested", [5, 2, 3], [5, 1, 3], True),
    ("length-wider", [5, 0, 3], [5, 1, 3], False),
    ("contains-more", [6, ["a", "b"]], [6, ["a"]], True),
    ("contains-fewer", [6, ["a"]], [6, ["a", "b"]], False),
    ("contains-other-item-type", [6, [1]], [6, ["a"]], False),
    ("subset-fewer", [7, ["a"]], [7, ["a", "b"]], True),
    ("subset-more", [7, ["a", "c"]], [7, ["a", "b"]], False),
    ("subset-other-item-type", [7, [1]], [7, ["a"]], False),
    ("eq-under-any-of", [0, "a"], [12, [[0, "a"], [0, "b"]]], True),
    ("any-of-under-one-of", [12, [[0, "a"], [0, "b"]]], [1, ["a", "b", "c"]], True),
    ("any-of-partly-outside", [12, [[0, "a"], [0, "z"]]], [1, ["a", "b"]], False),
    ("any-of-under-range", [12, [[2, 0, 5], [2, 6, 10]]], [2, 0, 10], True),
    ("range-across-any-of", [2, 0, 10], [12, [[2, 0, 5], [2, 6, 10]]], False),
    ("any-of-under-any-of", [12, [[0, "a"], [0, "b"]]],
     [12, [[1, ["a", "x"]], [3, "b"]]], True),
    ("any-under-any", [13], [13], True),
    ("any-under-range", [13], [2, 0, 10], False),
    ("eq-under-any", [0, "x"], [13], True),
    ("pattern-narrower", [8, "a*.pdf"], [8, "*.pdf"], True),
    ("pattern-wider", [8, "*.pdf"], [8, "a*.pdf"], False),
    ("pattern-question-under-star", [8, "a?c"], [8, "a*"], True),
    ("pattern-star-not-under-question", [8, "a*"], [8, "a?"], False),
    ("pattern-literal-under-question", [8, "abc"], [8, "a?c"], True),
    ("pattern-question-not-under-literal", [8, "a?c"], [8, "abc"], False),
    ("pattern-run-under-star", [8, "ab*"], [8, "a*"], True),
    ("pattern-sound-not-complete", [8, "*?"], [8, "?*"], False),
    ("pattern-same", [8, "*.pdf"], [8, "*.pdf"], True),
    ("prefix-under-pattern", [3, "rep"], [8, "rep*"], True),
    ("prefix-under-pattern-star", [3, "a"], [8, "*"], True),
    ("prefix-not-under-pattern", [3, "rep"], [8, "rep*.pdf"], False),
    ("prefix-wildcards-literal", [3, "a?"], [8, "a?*"], True),
    ("prefix-star-literal", [3, "a*"], [8, "a?b*"], False),
    ("pattern-under-prefix", [8, "rep*"], [3, "re"], True),
    ("pattern-head-too-short", [8, "r?p*"], [3, "rep"], False),
    ("eq-under-pattern", [0, "a.pdf"], [8, "*.pdf"], True),
    ("eq-outside-pattern", [0, "a.txt"], [8, "*.pdf"], False),
    ("subpath-below", [9, "/data/reports/q3"], [9, "/data/reports"], True),
    ("subpath-same", [9, "/data/reports"], [9, "/data/reports"], True),
    ("subpath-segment-boundary", [9, "/data/reportsX"], [9, "/data/reports"], False),
    ("subpath-above", [9, "/data"], [9, "/data/reports"], False),
    ("subpath-under-slash", [9, "/x"], [9, "/"], True),
    ("eq-under-subpath", [0, "/data/reports/a"], [9, "/data/reports"], True),
    ("eq-escaping-subpath", [0, "/data/reports/../etc"], [9, "/data/reports"], False),
    ("subpath-under-prefix", [9, "/data"], [3, "/data"], False),
    ("url-path-below", [10, "https", "api.example.com", 443, "/v1/items"],
     [10, "https", "api.example.com", 443, "/v1"], True),
    ("url-path-boundary", [10, "https", "api.example.com", 443, "/v1x"],
     [10, "https", "api.example.com", 443, "/v1"], False),
    ("url-path-above", [10, "https", "api.example.com", 443, "/"],
     [10, "https", "api.example.com", 443, "/v1"], False),
    ("url-other-scheme", [10, "http", "api.example.com", 443, "/v1"],
     [10, "https", "api.example.com", 443, "/v1"], False),
    ("url-other-port", [10, "https", "api.example.com", 8443, "/v1"],
     [10, "https", "api.example.com", 443, "/v1"], False),
    ("url-name-under-wildcard", [10, "https", "api.example.com", 443, "/"],
     [10, "https", "*.example.com", 443, "/"], True),
    ("url-wildcard-under-wildcard", [10, "https", "*.api.example.com", 443, "/"],
     [10, "https", "*.example.com", 443, "/"], True),
    ("url-wildcard-same", [10, "https", "*.example.com", 443, "/"],
     [10, "https", "*.example.com", 443, "/"], True),
    ("url-apex-not-under-wildcard", [10, "https", "example.com", 443, "/"],
     [10, "https", "*.example.com", 443, "/"], False),
    ("url-wildcard-not-under-name", [10, "https", "*.example.com", 443, "/"],
     [10, "https", "api.example.com", 443, "/"], False),
    ("url-star-not-under-wildcard", [10, "https", "*", 443, "/"],
     [10, "https", "*.example.com", 443, "/"], False),
    ("url-wildcard-under-star", [10, "https", "*.example.com", 443, "/"],
     [10, "https", "*", 443, "/"], True),
    ("url-localhost-wildcard-not-under-star", [10, "https", "*.localhost", 443, "/"],
     [10, "https", "*", 443, "/"], False),
    ("url-localhost-not-under-star", [10, "https", "localhost", 443, "/"],
     [10, "https", "*", 443, "/"], False),
    ("url-private-not-under-star", [10, "https", "10.0.0.1", 443, "/"],
     [10, "https", "*", 443, "/"], False),
    ("url-loopback-v6-not-under-star", [10, "https", "[::1]", 443, "/"],
     [10, "https", "*", 443, "/"], False),
    ("url-public-under-star", [10, "https", "8.8.8.8", 443, "/"],
     [10, "https", "*", 443, "/"], True),
    ("url-star-under-star", [10, "https", "*", 443, "/v1"], [10, "https", "*", 443, "/"],
     True),
    ("eq-under-url", [0, "https://api.example.com/v1/x"],
     [10, "https", "api.example.com", 443, "/v1"], True),
    ("eq-outside-url", [0, "https://127.0.0.1/"], [10, "https", "*", 443, "/"], False),
    ("prefix-under-url", [3, "https://api.example.com/v1/"],
     [10, "https", "api.example.com", 443, "/v1"], False),
    ("cidr-nested", [11, "10.1.0.0/16"], [11, "10.0.0.0/8"], True),
    ("cidr-same", [11, "10.0.0.0/8"], [11, "10.0.0.0/8"], True),
    ("cidr-wider", [11, "10.0.0.0/8"], [11, "10.1.0.0/16"], False),
    ("cidr-disjoint", [11, "11.0.0.0/16"], [11, "10.0.0.0/8"], False),
    ("cidr-other-version", [11, "2001:db8::/48"], [11, "10.0.0.0/8"], False),
    ("cidr-v6-nested", [11, "2001:db8:1::/48"], [11, "2001:db8::/32"], True),
    ("eq-under-cidr", [0, "10.1.2.3"], [11, "10.0.0.0/8"], True),
    ("one-of-under-cidr", [1, ["10.0.0.1", "10.0.0.2"]], [11, "10.0.0.0/8"], True),
    ("one-of-outside-cidr", [1, ["10.0.0.1", "11.0.0.2"]], [11, "10.0.0.0/8"], False),
]

# Wire faults (10.3): (id, kind under test ("wire": the form every constraint shares),
# constraint wire form or its exact bytes, code).
_FAULTS: list[tuple[str, str, list[Any] | bytes, str]] = [
    ("not-an-array", "wire", b"\xa1x", "malformed"),
    ("empty-array", "wire", [], "malformed"),
    ("kind-not-integer", "wire", ["eq", 1], "malformed"),
    ("kind-float", "wire", [0.0, 1], "malformed"),
    ("unknown-kind", "wire", [99, "x"], "unknown_field"),
    ("unknown-kind-14", "wire", [14], "unknown_field"),
    ("unknown-kind-negative", "wire", [-1], "unknown_field"),
    ("eq-no-value", "eq", [0], "malformed"),
    ("eq-two-values", "eq", [0, 1, 2], "malformed"),
    ("eq-float", "eq", [0, 1.5], "malformed"),
    ("eq-null", "eq", [0, None], "malformed"),
    ("eq-list", "eq", [0, [1]], "malformed"),
    ("eq-over-64-bits", "eq", [0, 2**64 - 1], "malformed"),
    ("eq-string-over-256-bytes", "eq", [0, "x" * 257], "malformed"),
    ("eq-non-minimal-int", "eq", b"\x92\x00\xcc\x05", "non_canonical"),
    ("eq-non-minimal-string", "eq", b"\x92\x00\xd9\x01x", "non_canonical"),
    ("one-of-unsorted", "one-of", [1, ["pdf", "csv"]], "non_canonical"),
    ("one-of-repeated", "one-of", [1, ["a", "a"]], "non_canonical"),
    ("one-of-empty", "one-of", [1, []], "malformed"),
    ("one-of-mixed-types", "one-of", [1, [1, "a"]], "malformed"),
    ("one-of-not-array", "one-of", [1, "a"], "malformed"),
    ("one-of-65-values", "one-of", [1, list(range(65))], "malformed"),
    ("one-of-float", "one-of", [1, [1.5]], "malformed"),
    ("range-reversed", "range", [2, 10, 0], "malformed"),
    ("range-one-bound", "range", [2, 0], "malformed"),
    ("range-three-bounds", "range", [2, 0, 10, 20], "malformed"),
    ("range-float", "range", [2, 0, 1.5], "malformed"),
    ("range-over-64-bits", "range", [2, 0, 2**63], "malformed"),
    ("range-non-minimal-int", "range", b"\x93\x02\x00\xcc\x0a", "non_canonical"),
    ("prefix-no-value", "prefix", [3], "malformed"),
    ("prefix-int", "prefix", [3, 5], "malformed"),
    ("prefix-two-values", "prefix", [3, "a", "b"], "malformed"),
    ("not-one-of-unsorted", "not-one-of", [4, ["root", "admin"]], "non_canonical"),
    ("not-one-of-empty", "not-one-of", [4, []], "malformed"),
    ("length-reversed", "length", [5, 3, 1], "malformed"),
    ("length-negative", "length", [5, -1, 3], "malformed"),
    ("length-one-bound", "length", [5, 0], "malformed"),
    ("contains-bool", "contains", [6, [True]], "malformed"),
    ("contains-empty", "contains", [6, []], "malformed"),
    ("contains-unsorted", "contains", [6, ["b", "a"]], "non_canonical"),
    ("subset-bool", "subset", [7, [False]], "malformed"),
    ("subset-empty", "subset", [7, []], "malformed"),
    ("subset-unsorted", "subset", [7, [2, 1]], "non_canonical"),
    ("one-of-two-arrays", "one-of", [1, ["a"], ["b"]], "malformed"),
    ("not-one-of-no-array", "not-one-of", [4], "malformed"),
    ("contains-two-arrays", "contains", [6, ["a"], ["b"]], "malformed"),
    ("subset-no-array", "subset", [7], "malformed"),
    ("values-types-before-order", "one-of", [1, [3, 2, 1.5]], "malformed"),
    ("values-count-before-order", "one-of", [1, [*range(64, -1, -1)]], "malformed"),
    ("any-of-members-kinds-before-members", "any-of", [12, [[99], [13]]], "malformed"),
    ("any-of-members-in-order", "any-of", [12, [[99], [2, 0]]], "unknown_field"),
    ("url-fields-in-order", "url", [10, "HTTPS", "example.com", 0, "/"], "non_canonical"),
    ("any-of-one-member", "any-of", [12, [[0, "a"]]], "malformed"),
    ("any-of-nine-members", "any-of", [12, [[0, i] for i in range(9)]], "malformed"),
    ("any-of-any-member", "any-of", [12, [[0, "a"], [13]]], "malformed"),
    ("any-of-nested", "any-of", [12, [[0, "a"], [12, [[0, "b"], [0, "c"]]]]], "malformed"),
    ("any-of-unknown-member", "any-of", [12, [[0, "a"], [99, "x"]]], "unknown_field"),
    ("any-of-bad-member", "any-of", [12, [[0, "a"], [2, 5, 1]]], "malformed"),
    ("any-of-not-array", "any-of", [12, [0, "a"]], "malformed"),
    ("any-of-two-arrays", "any-of", [12, [[0, "a"]], [[0, "b"]]], "malformed"),
    ("any-with-field", "any", [13, 0], "malformed"),
    ("pattern-double-star", "pattern", [8, "a**b"], "non_canonical"),
    ("pattern-no-glob", "pattern", [8], "malformed"),
    ("pattern-int", "pattern", [8, 5], "malformed"),
    ("pattern-over-256-bytes", "pattern", [8, "*" + "x" * 256], "malformed"),
    ("subpath-relative", "subpath", [9, "data"], "malformed"),
    ("subpath-empty", "subpath", [9, ""], "malformed"),
    ("subpath-trailing-slash", "subpath", [9, "/data/"], "malformed"),
    ("subpath-dot-dot", "subpath", [9, "/data/../etc"], "malformed"),
    ("subpath-dot", "subpath", [9, "/data/."], "malformed"),
    ("subpath-double-slash", "subpath", [9, "//"], "malformed"),
    ("subpath-backslash", "subpath", [9, "/a\\b"], "malformed"),
    ("subpath-percent", "subpath", [9, "/a%2e"], "malformed"),
    ("subpath-control", "subpath", [9, "/a\x01"], "malformed"),
    ("subpath-not-nfkc", "subpath", [9, "/a\uff0fb"], "malformed"),
    ("subpath-no-root", "subpath", [9], "malformed"),
    ("subpath-int", "subpath", [9, 5], "malformed"),
    ("url-three-fields", "url", [10, "https", "example.com", 443], "malformed"),
    ("url-unknown-scheme", "url", [10, "ftp", "example.com", 21, "/"], "malformed"),
    ("url-uppercase-scheme", "url", [10, "HTTPS", "example.com", 443, "/"], "non_canonical"),
    ("url-port-zero", "url", [10, "https", "example.com", 0, "/"], "malformed"),
    ("url-port-over", "url", [10, "https", "example.com", 65536, "/"], "malformed"),
    ("url-port-string", "url", [10, "https", "example.com", "443", "/"], "malformed"),
    ("url-relative-path", "url", [10, "https", "example.com", 443, "v1"], "malformed"),
    ("url-dot-dot-path", "url", [10, "https", "example.com", 443, "/v1/../x"], "malformed"),
    ("url-two-wildcards", "url", [10, "https", "*.*.example.com", 443, "/"], "malformed"),
    ("url-wildcard-inside", "url", [10, "https", "a.*.example.com", 443, "/"], "malformed"),
    ("url-userinfo-host", "url", [10, "https", "u@example.com", 443, "/"], "malformed"),
    ("url-mapped-ipv6", "url", [10, "https", "[::ffff:7f00:1]", 443, "/"], "malformed"),
    ("url-uppercase-host", "url", [10, "https", "Example.com", 443, "/"], "non_canonical"),
    ("url-trailing-dot", "url", [10, "https", "example.com.", 443, "/"], "non_canonical"),
    ("url-ipv6-not-compressed", "url", [10, "https", "[::0:1]", 443, "/"], "non_canonical"),
    ("url-ipv6-uppercase", "url", [10, "https", "[2001:DB8::1]", 443, "/"],
     "non_canonical"),
    ("cidr-host-bits", "cidr", [11, "10.0.0.1/8"], "malformed"),
    ("cidr-length-over", "cidr", [11, "10.0.0.0/33"], "malformed"),
    ("cidr-leading-zero-address", "cidr", [11, "010.0.0.0/8"], "malformed"),
    ("cidr-mapped", "cidr", [11, "::ffff:0:0/96"], "malformed"),
    ("cidr-garbage", "cidr", [11, "ten/8"], "malformed"),
    ("cidr-no-network", "cidr", [11], "malformed"),
    ("cidr-int", "cidr", [11, 167772160], "malformed"),
    ("cidr-uppercase", "cidr", [11, "2001:DB8::/32"], "non_canonical"),
    ("cidr-not-compressed", "cidr", [11, "2001:db8:0::/48"], "non_canonical"),
    ("cidr-length-leading-zero", "cidr", [11, "10.0.0.0/08"], "non_canonical"),
]

_RES = "fs/reports/q3"
# Grants at request time (10.1, closed world): (id, grant wire form, request, allowed).
_GRANTS: list[tuple[str, list[Any], tuple[str, str, dict[str, Any]], bool]] = [
    ("closed-exact", ["fs/reports/**", ["read"], {"size": [2, 0, 100]}],
     (_RES, "read", {"size": 5}), True),
    ("closed-extra-argument", ["fs/reports/**", ["read"], {"size": [2, 0, 100]}],
     (_RES, "read", {"mode": "x", "size": 5}), False),
    ("closed-missing-argument", ["fs/reports/**", ["read"], {"size": [2, 0, 100]}],
     (_RES, "read", {}), False),
    ("closed-value-outside", ["fs/reports/**", ["read"], {"size": [2, 0, 100]}],
     (_RES, "read", {"size": 500}), False),
    ("closed-other-resource", ["fs/reports/**", ["read"], {"size": [2, 0, 100]}],
     ("fs/reportsX/q3", "read", {"size": 5}), False),
    ("closed-other-action", ["fs/reports/**", ["read"], {"size": [2, 0, 100]}],
     (_RES, "write", {"size": 5}), False),
    ("open-world-extra-argument", ["fs/reports/**", ["read"], {"size": [2, 0, 100]}, True],
     (_RES, "read", {"mode": "x", "size": 5}), True),
    ("open-world-missing-argument", ["fs/reports/**", ["read"], {"size": [2, 0, 100]}, True],
     (_RES, "read", {"mode": "x"}), False),
    ("no-constraints-any-argument", ["fs/reports/**", ["read"], {}],
     (_RES, "read", {"anything": [1, 2]}), True),
    ("any-names-argument", ["fs/**", ["read"], {"path": [13], "size": [2, 0, 10]}],
     ("fs/a", "read", {"path": ["x"], "size": 1}), True),
    ("any-argument-missing", ["fs/**", ["read"], {"path": [13], "size": [2, 0, 10]}],
     ("fs/a", "read", {"size": 1}), False),
    ("closed-two-constraints", ["fs/**", ["read"], {"fmt": [1, ["csv", "pdf"]],
                                                    "size": [2, 0, 10]}],
     ("fs/a", "read", {"fmt": "pdf", "size": 1}), True),
    ("closed-subpath", ["fs/**", ["read"], {"path": [9, "/data"]}],
     ("fs/a", "read", {"path": "/data/a"}), True),
    ("closed-subpath-extra", ["fs/**", ["read"], {"path": [9, "/data"]}],
     ("fs/a", "read", {"follow": True, "path": "/data/a"}), False),
]

# Grant narrowing (10.2 rule 3): (id, child grant, parent grant, within).
_CLOSED = ["fs/**", ["read"], {"size": [2, 0, 100]}]
_OPEN = ["fs/**", ["read"], {"size": [2, 0, 100]}, True]
_GRANT_NARROWING: list[tuple[str, list[Any], list[Any], bool]] = [
    ("closed-narrower", ["fs/**", ["read"], {"size": [2, 0, 10]}], _CLOSED, True),
    ("closed-same", _CLOSED, _CLOSED, True),
    ("closed-adds-argument", ["fs/**", ["read"], {"mode": [0, "r"], "size": [2, 0, 10]}],
     _CLOSED, False),
    ("closed-opened", ["fs/**", ["read"], {"size": [2, 0, 10]}, True], _CLOSED, False),
    ("closed-drops-constraint", ["fs/**", ["read"], {}], _CLOSED, False),
    ("closed-relaxes", ["fs/**", ["read"], {"size": [2, 0, 1000]}], _CLOSED, False),
    ("open-closed-by-child", ["fs/**", ["read"], {"size": [2, 0, 10]}], _OPEN, True),
    ("open-child-adds-closed", ["fs/**", ["read"], {"mode": [0, "r"], "size": [2, 0, 10]}],
     _OPEN, True),
    ("open-child-adds-open", ["fs/**", ["read"], {"mode": [0, "r"], "size": [2, 0, 10]},
                              True], _OPEN, True),
    ("open-child-drops", ["fs/**", ["read"], {"mode": [0, "r"]}, True], _OPEN, False),
    ("unconstrained-parent", ["fs/**", ["read"], {"mode": [0, "r"]}], ["fs/**", ["read"], {}],
     True),
    ("any-narrowed-to-eq", ["fs/**", ["read"], {"path": [0, "a"], "size": [2, 0, 10]}],
     ["fs/**", ["read"], {"path": [13], "size": [2, 0, 10]}], True),
    ("any-dropped", ["fs/**", ["read"], {"size": [2, 0, 10]}],
     ["fs/**", ["read"], {"path": [13], "size": [2, 0, 10]}], False),
]

# Grant wire faults (10.3): (id, grant wire form or bytes, code).
_GRANT_FAULTS: list[tuple[str, list[Any] | bytes, str]] = [
    ("first-fault-wins-names-before-kinds",
     ["fs/**", ["read"], {"b": [99], "a": [2, 0, 10]}], "non_canonical"),
    ("first-fault-wins-fourth-element-first", [1, ["read"], {}, False], "non_canonical"),
    ("open-world-false", ["fs/**", ["read"], {"size": [2, 0, 10]}, False], "non_canonical"),
    ("open-world-without-constraints", ["fs/**", ["read"], {}, True], "non_canonical"),
    ("open-world-int", ["fs/**", ["read"], {"size": [2, 0, 10]}, 1], "malformed"),
    ("five-elements", ["fs/**", ["read"], {"size": [2, 0, 10]}, True, True], "malformed"),
    ("two-elements", ["fs/**", ["read"]], "malformed"),
    ("names-unsorted", ["fs/**", ["read"], {"size": [2, 0, 10], "fmt": [0, "pdf"]}],
     "non_canonical"),
    ("name-repeated", b"\x93\xa5fs/**\x91\xa4read\x82\xa4size\x93\x02\x00\x0a"
                      b"\xa4size\x93\x02\x00\x0b", "non_canonical"),
    ("unknown-kind", ["fs/**", ["read"], {"size": [99, 1]}], "unknown_field"),
    ("known-kind-wrong-arity", ["fs/**", ["read"], {"size": [2, 0]}], "malformed"),
    ("constraint-not-array", ["fs/**", ["read"], {"size": 5}], "malformed"),
    ("resource-before-actions", ["fs/../x", ["read", "list"], {}], "malformed"),
    ("actions-types-before-order", ["fs/**", ["read", 1], {}], "malformed"),
    ("actions-order-before-grammar", ["fs/**", ["b", "A"], {}], "non_canonical"),
    ("names-grammar-before-order", ["fs/**", ["read"], {"b": [0, 1], "A": [0, 1]}],
     "malformed"),
    ("constraints-in-name-order", ["fs/**", ["read"], {"a": [99], "b": [2, 0]}],
     "unknown_field"),
    ("constraints-in-name-order-2", ["fs/**", ["read"], {"a": [2, 0], "b": [99]}],
     "malformed"),
]


# ------------------------------------------------------------------ running a case


def decode_constraint(data: bytes) -> Constraint:
    """A constraint from its exact bytes, checked as a link's grants are (spec 10.3)."""
    return constraint_from_wire(wire.decode_array(data, LIMIT, "constraint"))


def decode_grant(data: bytes) -> Grant:
    """A grant from its exact bytes, checked as a link's grants are (spec 10.3)."""
    return Grant.from_wire(wire.decode_array(data, LIMIT, "grant"))


def _code(call: Any) -> Any:
    try:
        return call()
    except AgentAuthError as exc:
        return exc.code


def _kinds(value: Any) -> Iterator[str]:
    """The names of the kinds in a constraint's wire form."""
    if type(value) is list and value and type(value[0]) is int and value[0] in KINDS:
        yield KINDS[value[0]].NAME
        if value[0] == 12 and len(value) > 1 and type(value[1]) is list:
            for member in value[1]:
                yield from _kinds(member)


def _grant_kinds(grant: Any) -> Iterator[str]:
    if type(grant) is list and len(grant) > 2 and type(grant[2]) is dict:
        for constraint in grant[2].values():
            yield from _kinds(constraint)


def _bytes(value: list[Any] | bytes) -> bytes:
    return value if isinstance(value, bytes) else wire.encode_value(value)


def _agree(section: str, vid: str, got: Any, expected: Any) -> None:
    if got != expected:
        raise InvalidState(f"constraint vector {section} / {vid}: the code gives {got!r}, "
                           f"the spec says {expected!r}")


def _name(wire_form: list[Any]) -> str:
    return KINDS[wire_form[0]].NAME


def _matching() -> list[dict[str, Any]]:
    out = []
    for vid, form, value, allowed in _MATCHING:
        data = _bytes(form)
        _agree("matching", vid, _code(lambda d=data, v=value: decode_constraint(d).allows(v)),
               allowed)
        out.append({"id": vid, "kind": _name(form), "constraint": data.hex(), "wire": form,
                    "value": value, "allowed": allowed})
    return out


def _narrowing() -> list[dict[str, Any]]:
    out = []
    for vid, child, parent, within in _NARROWING:
        c, p = _bytes(child), _bytes(parent)
        _agree("narrowing", vid, _code(lambda c=c, p=p: constraint_within(
            decode_constraint(c), decode_constraint(p))), within)
        out.append({"id": vid, "kind": _name(child), "child": c.hex(), "parent": p.hex(),
                    "child_wire": child, "parent_wire": parent, "within": within})
    return out


def _faults() -> list[dict[str, Any]]:
    out = []
    for vid, kind, form, code in _FAULTS:
        data = _bytes(form)
        _agree("faults", vid, _code(lambda d=data: decode_constraint(d) and "ok"), code)
        out.append({"id": vid, "kind": kind, "constraint": data.hex(),
                    "wire": None if isinstance(form, bytes) else form, "error": code})
    return out


def _grants() -> list[dict[str, Any]]:
    out = []
    for vid, grant, (resource, action, args), allowed in _GRANTS:
        data = _bytes(grant)
        _agree("grants", vid, _code(lambda d=data, r=resource, a=action, x=args: decode_grant(
            d).allows(Request(r, a, x))), allowed)
        out.append({"id": vid, "grant": data.hex(), "wire": grant,
                    "request": [resource, action, args], "allowed": allowed})
    return out


def _grant_narrowing() -> list[dict[str, Any]]:
    out = []
    for vid, child, parent, within in _GRANT_NARROWING:
        c, p = _bytes(child), _bytes(parent)
        _agree("grant_narrowing", vid, _code(lambda c=c, p=p: decode_grant(c).within(
            decode_grant(p))), within)
        out.append({"id": vid, "child": c.hex(), "parent": p.hex(), "child_wire": child,
                    "parent_wire": parent, "within": within})
    return out


def _grant_faults() -> list[dict[str, Any]]:
    out = []
    for vid, grant, code in _GRANT_FAULTS:
        data = _bytes(grant)
        _agree("grant_faults", vid, _code(lambda d=data: decode_grant(d) and "ok"), code)
        out.append({"id": vid, "grant": data.hex(),
                    "wire": None if isinstance(grant, bytes) else grant, "error": code})
    return out


def build() -> dict[str, Any]:
    """The content of ``constraints.json`` (every case first run against the code)."""
    return {
        "description": "Argument constraints (spec sections 10.1 to 10.3). Wire forms are "
                       "given as their exact msgpack bytes in hex (`constraint`, `child`, "
                       "`parent`, `grant`); the `wire` fields show the same structure for "
                       "reading and are not normative. 'matching' (10.1): the constraint "
                       "applied to the argument `value` (JSON) gives `allowed`. 'narrowing' "
                       "(10.2): every value `child` allows `parent` allows, decided by the "
                       "rules of 10.2, gives `within`. 'faults' (10.3): decoding the "
                       "constraint is refused with `error`. 'grants' (10.1, closed world): "
                       "the grant applied to the request [resource, action, arguments] "
                       "gives `allowed`. 'grant_narrowing' (10.2): the child grant within "
                       "the parent grant gives `within`. 'grant_faults' (10.3): decoding "
                       "the grant is refused with `error`.",
        "matching": _matching(),
        "narrowing": _narrowing(),
        "faults": _faults(),
        "grants": _grants(),
        "grant_narrowing": _grant_narrowing(),
        "grant_faults": _grant_faults(),
    }

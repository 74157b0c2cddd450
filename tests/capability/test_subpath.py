"""The subpath kind (spec 10.1, kind 9): a table of allowed and refused paths with the rule
each breaks, every traversal that the prefix kind let through, roots and the wire form,
invalid UTF-8 refused before any constraint runs, property tests of allows and narrowing,
and a chain that delegates a path and refuses a traversal at the verifier."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ALICE, BOB, raises
from support.chains import ANCHORS, NOW, ROOT

from agentauth import CapabilityDenied, DecodeError, wire
from agentauth.capability import (
    Grant,
    Link,
    Prefix,
    Request,
    SessionInvocations,
    delegate,
    encode_chain,
    invoke,
    verify_chain,
)
from agentauth.capability import chain as chain_module
from agentauth.capability.constraints import Eq, OneOf, constraint_from_wire, constraint_within
from agentauth.capability.paths import Subpath

PROPERTY = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
ROOT_PATH = "/data/reports"


class Text(str):
    """A str subclass: not a str by exact type, so never allowed (and never an error)."""


# ------------------------------------------------------------------ the table

ALLOWED = [
    "/data/reports",  # the root itself
    "/data/reports/q3",
    "/data/reports/q3/summary.csv",
    "/data/reports/.hidden",  # a dot file is a name, not a '.' segment
    "/data/reports/..foo",
    "/data/reports/a..b",
    "/data/reports/...",
    "/data/reports/with space",
    "/data/reports/caf\u00e9",  # composed: NFKC
    "/data/reports/\u65e5\u672c/\u8a9e",
    "/data/reports/a:b@c+d=e,f;g!h$i'j(k)l~m",
]

# Refused values that start with the root as a string, so Prefix(ROOT_PATH) allowed each
# of them: every row fails on the prefix kind of 0.1.0. With the rule each one breaks.
TRAVERSALS: list[tuple[object, str]] = [
    ("/data/reports/../secrets", "a '..' segment"),
    ("/data/reports/..", "a '..' segment"),
    ("/data/reports/q3/../../../etc/passwd", "a '..' segment"),
    ("/data/reports/q3/..", "a '..' segment"),
    ("/data/reports/.", "a '.' segment"),
    ("/data/reports/./q3", "a '.' segment"),
    ("/data/reports//etc/passwd", "an empty segment ('//')"),
    ("/data/reports/q3//x", "an empty segment ('//')"),
    ("/data/reports/", "a trailing '/'"),
    ("/data/reports/q3/", "a trailing '/'"),
    ("/data/reports/%2e%2e/secrets", "a '%' (no percent-encoding)"),
    ("/data/reports/%2E%2E%2Fsecrets", "a '%' (no percent-encoding)"),
    ("/data/reports%2F..%2Fsecrets", "a '%' (no percent-encoding)"),
    ("/data/reports/%252e%252e/x", "a '%' (no percent-encoding)"),
    ("/data/reports/100%", "a '%' (no percent-encoding)"),
    ("/data/reports\\..\\secrets", "a backslash"),
    ("/data/reports/q3\\..\\..\\x", "a backslash"),
    ("/data/reports/x\x00/../../etc/passwd", "a NUL"),
    ("/data/reports/x.pdf\x00.txt", "a NUL"),
    ("/data/reports/x\n", "a control character (U+000A)"),
    ("/data/reports/\x1b[2J", "a control character (U+001B)"),
    ("/data/reports/x\x7f", "a control character (U+007F)"),
    ("/data/reports/\uff0e\uff0e/secrets", "not in NFKC form"),  # fullwidth full stops
    ("/data/reports\uff0f..\uff0fsecrets", "not in NFKC form"),  # fullwidth solidus
    ("/data/reports/\u2024\u2024/secrets", "not in NFKC form"),  # one dot leaders
    ("/data/reports/\u2025/secrets", "not in NFKC form"),  # two dot leader
    ("/data/reports/\ufe52\ufe52/x", "not in NFKC form"),  # small full stops
    ("/data/reports/cafe\u0301", "not in NFKC form"),  # decomposed e + acute
    ("/data/reports/\ufb01le", "not in NFKC form"),  # the fi ligature
    ("/data/reports/\ud800", "a lone surrogate (not valid Unicode)"),
    ("/data/reports2", "outside the root"),  # a prefix but not a segment
    ("/data/reports2/q3", "outside the root"),
    ("/data/reports.bak/x", "outside the root"),
]

# Refused values that the prefix kind refused too.
OTHER_REFUSALS: list[tuple[object, str]] = [
    ("data/reports/q3", "not absolute (no leading '/')"),
    ("", "not absolute (no leading '/')"),
    ("./data/reports", "not absolute (no leading '/')"),
    ("~/data/reports", "not absolute (no leading '/')"),
    ("/data/rep", "outside the root"),
    ("/data", "outside the root"),
    ("/", "outside the root"),
    ("/etc/passwd", "outside the root"),
    ("/Data/Reports/q3", "outside the root"),  # case is compared exactly
    ("/../data/reports/q3", "a '..' segment"),
    ("//data/reports/q3", "an empty segment ('//')"),
    (b"/data/reports/q3", "a bytes, not a str"),
    (None, "a NoneType, not a str"),
    (["/data/reports/q3"], "a list, not a str"),
    (("/data/reports/q3",), "a tuple, not a str"),
    (1, "a int, not a str"),
    (True, "a bool, not a str"),
    (1.5, "a float, not a str"),
    ({"/data/reports/q3": 1}, "a dict, not a str"),
    (Text("/data/reports/q3"), "a Text, not a str"),
]


@pytest.mark.parametrize("value", ALLOWED)
def test_allowed_paths(value: str) -> None:
    assert Subpath(ROOT_PATH).allows(value)


@pytest.mark.parametrize(("value", "problem"), TRAVERSALS + OTHER_REFUSALS)
def test_refused_paths_name_the_rule_they_break(value: object, problem: str) -> None:
    subpath = Subpath(ROOT_PATH)
    assert subpath.allows(value) is False
    assert subpath.problem(value) == problem


@pytest.mark.parametrize(("value", "problem"), TRAVERSALS)
def test_each_traversal_passed_the_prefix_kind(value: object, problem: str) -> None:
    # The regression: 0.1.0 had only Prefix for paths, and it allowed every one of these.
    assert Prefix(ROOT_PATH).allows(value)
    assert not Subpath(ROOT_PATH).allows(value)


@pytest.mark.parametrize(("value", "allowed"), [
    ("/", True), ("/etc/passwd", True), ("/a/.b", True),
    ("/..", False), ("/../etc/passwd", False), ("//", False), ("/./a", False),
    ("/a/", False), ("etc/passwd", False), ("/\uff0e\uff0e", False), ("/%2e%2e", False),
    ("\\", False), ("", False),
])
def test_the_root_of_the_file_system(value: str, allowed: bool) -> None:
    assert Subpath("/").allows(value) is allowed
    assert Prefix("/").allows(value) is value.startswith("/")


# ------------------------------------------------------------------ roots and the wire form


@pytest.mark.parametrize("root", [
    "", "rel", "data/reports", "/data/", "//", "/data//reports", "/data/.", "/data/..",
    "/./data", "/../data", "/data/%2e%2e", "/data\\reports", "/data\x00", "/data\n",
    "/\uff0e\uff0e", "/cafe\u0301", "/\ud800", "/" + "a" * 256,
])
def test_bad_roots_are_refused(root: str) -> None:
    with raises("invalid_argument"):
        Subpath(root)
    with raises("malformed"):
        constraint_from_wire([9, root])


@pytest.mark.parametrize("root", [b"/data", None, 9, ["/data"], Text("/data")])
def test_roots_are_strings(root: Any) -> None:
    with raises("invalid_argument"):
        Subpath(root)
    if type(root) is not Text:  # the wire never holds a str subclass
        with raises("malformed"):
            constraint_from_wire([9, root])


@pytest.mark.parametrize("root", ["/", "/data", "/data/reports", "/data/.hidden",
                                  "/caf\u00e9", "/" + "a" * 255])
def test_the_wire_form_round_trips(root: str) -> None:
    subpath = Subpath(root)
    assert subpath.to_wire() == [9, root]
    again = constraint_from_wire(wire.decode_array(wire.encode_value(subpath.to_wire()),
                                                   1024, "a constraint"))
    assert again == subpath and type(again) is Subpath
    assert again.allows(root) and repr(again) == f"Subpath(root={root!r})"


@pytest.mark.parametrize("fields", [[9], [9, 1], [9, "rel"], [9, "/a/"], [9, "/a", "/b"],
                                    [9, None], [9, b"/a"], [9, ["/a"]]])
def test_out_of_shape_wire_forms_are_malformed(fields: list[Any]) -> None:
    with raises("malformed"):
        constraint_from_wire(fields)


# ------------------------------------------------------------------ narrowing


@pytest.mark.parametrize(("child", "parent", "within"), [
    ("/data/reports", "/data", True),
    ("/data/reports/q3", "/data", True),
    ("/data", "/data", True),
    ("/data", "/", True),
    ("/", "/", True),
    ("/", "/data", False),
    ("/data2", "/data", False),  # a longer string, not a longer path
    ("/data/reports2", "/data/reports", False),
    ("/data", "/data/reports", False),
    ("/Data/reports", "/data", False),
])
def test_narrowing_goes_by_whole_segments(child: str, parent: str, within: bool) -> None:
    assert constraint_within(Subpath(child), Subpath(parent)) is within


def test_narrowing_across_kinds() -> None:
    parent = Subpath("/data")
    assert constraint_within(Eq("/data/x"), parent)
    assert not constraint_within(Eq("/data/../x"), parent)
    assert constraint_within(OneOf({"/data/a", "/data/b/c"}), parent)
    assert not constraint_within(OneOf({"/data/a", "/data/b/"}), parent)
    # A prefix is not a path: neither is decided within the other, so both are refused.
    assert not constraint_within(Prefix("/data/"), parent)
    assert not constraint_within(parent, Prefix("/data"))


# ------------------------------------------------------------------ properties

# Benign segments make roots; hostile ones, and arbitrary text, make values.
NAMES = ["a", "b", "ab", "a.b", ".x", "A"]
HOSTILE = ["..", ".", "", "...", "%2e%2e", "%2F", "%", "a\\..", "\\", "\uff0e\uff0e",
           "\uff0f", "\u2024", "\u2025\u2024", "x\x00", "\x7f", "\n", "caf\u00e9",
           "cafe\u0301", "\ud800", " ", "a/b", "ab2", "a%2f..", "\ufb01"]
segments = st.lists(st.sampled_from(NAMES), max_size=3)
hostile = st.one_of(st.sampled_from(NAMES + HOSTILE), st.text(max_size=4))


def path_of(parts: list[str]) -> str:
    return "/" + "/".join(parts)


@st.composite
def roots(draw: st.DrawFn) -> tuple[str, str]:
    """A parent root and a child root, the child often below the parent."""
    parent = draw(segments)
    child = parent + draw(segments) if draw(st.booleans()) else draw(segments)
    return path_of(parent), path_of(child)


def values_near(*bases: str) -> st.SearchStrategy[str]:
    """Values built from the roots: a root, then random and hostile segments, or raw text
    glued on (so "/a" gives "/ab", "/a/", "/a//..", ...)."""
    base = st.sampled_from([*bases, "", "/"])
    tail = st.lists(hostile, max_size=4).map(lambda parts: "".join("/" + p for p in parts))
    glue = st.one_of(tail, hostile, st.text(alphabet="/.%\\a\uff0e", max_size=6))
    return st.builds(lambda b, g: b + g, base, glue)


@PROPERTY
@given(roots(), st.data())
def test_narrowing_is_sound(pair: tuple[str, str], data: st.DataObject) -> None:
    parent, child = Subpath(pair[0]), Subpath(pair[1])
    if constraint_within(child, parent):
        for value in data.draw(st.lists(values_near(pair[0], pair[1]), max_size=8)):
            if child.allows(value):
                assert parent.allows(value), value


@PROPERTY
@given(roots(), st.data())
def test_narrowing_is_complete(pair: tuple[str, str], data: st.DataObject) -> None:
    parent, child = Subpath(pair[0]), Subpath(pair[1])
    values = [pair[1], *data.draw(st.lists(values_near(pair[0], pair[1]), max_size=8))]
    assert child.allows(pair[1])  # a root is among the values it allows
    if all(parent.allows(v) for v in values if child.allows(v)):
        assert constraint_within(child, parent)


def plain_allows(root: str, value: object) -> bool:
    """The rules of spec 10.1 as written, one after another (no fast path)."""
    if type(value) is not str:
        return False
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029\\%"
           or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        return False
    if not unicodedata.is_normalized("NFKC", value) or not value.startswith("/"):
        return False
    parts = [] if value == "/" else value[1:].split("/")
    if any(part in ("", ".", "..") for part in parts):
        return False
    mine = [] if root == "/" else root[1:].split("/")
    return parts[:len(mine)] == mine


@PROPERTY
@given(st.sampled_from(["/", "/a", "/a/b", "/a.b", "/caf\u00e9"]), st.data())
def test_allows_is_the_plain_reading_of_the_rules(root: str, data: st.DataObject) -> None:
    subpath = Subpath(root)
    for value in data.draw(st.lists(st.one_of(values_near(root), st.text()), max_size=10)):
        allowed = subpath.allows(value)
        assert allowed is plain_allows(root, value), value
        if not allowed:  # the refusal path names a rule, and it is the first one broken
            assert subpath.problem(value) != "not allowed"


def view(data: bytes) -> memoryview:
    return memoryview(data)


ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.binary(), st.text(),
    st.builds(Text, st.text()), st.lists(st.lists(st.integers())), st.sets(st.integers()),
    st.dictionaries(st.text(), st.integers()), st.tuples(st.text()), st.complex_numbers(),
    st.builds(bytearray, st.binary()), st.binary().map(view), st.builds(object),
    st.sampled_from([..., NotImplemented, str, object, len, Subpath("/a"), frozenset("/a"),
                     range(3), {"/a": ["/a"]}, [["/a"]], ("/", "a")]),
)


@PROPERTY
@given(ANYTHING)
def test_allows_never_raises(value: object) -> None:
    for subpath in (Subpath("/"), Subpath(ROOT_PATH)):
        assert subpath.allows(value) is plain_allows(subpath.root, value)
        assert type(subpath.problem(value)) is str


# ------------------------------------------------------------------ the wire and chains

PATH_GRANT = Grant("fs/**", {"read"}, {"path": Subpath("/data")})
BINDING = bytes(range(64))


def root_link(grant: Grant = PATH_GRANT) -> Link:
    return delegate(ROOT, ALICE, [grant], not_before=NOW - 100, expires=NOW + 3600,
                    budget=1)


def forge(parent: Link, grant: Grant) -> Link:
    """A child of ``parent`` that ALICE signs as given, which delegate() would refuse."""
    payload = wire.encode_value([BOB.public_bytes, [grant.to_wire()], NOW - 100,
                                 NOW + 3600, 0, bytes(16)])
    data = payload + ALICE.sign(chain_module.LINK_CONTEXT + parent.id + payload)
    return chain_module.parse_links([parent.data, data])[1]


def denied(links: list[Link], **options: Any) -> CapabilityDenied:
    with pytest.raises(CapabilityDenied) as info:
        verify_chain(encode_chain(links), ANCHORS, now=NOW, **options)
    return info.value


def test_a_delegated_subpath_refuses_a_traversal_at_the_verifier() -> None:
    root = root_link()
    leaf = delegate(ALICE, BOB, [Grant("fs/**", {"read"}, {"path": Subpath("/data/reports")})],
                    not_before=NOW - 100, expires=NOW + 3600, parent=root)
    verify_chain(encode_chain([root, leaf]), ANCHORS, now=NOW,
                 request=Request("fs/x", "read", {"path": "/data/reports/q3.csv"}))
    escape = "/data/reports/../../etc/passwd"
    error = denied([root, leaf], request=Request("fs/x", "read", {"path": escape}))
    assert error.code == "not_authorized"
    refusal = error.refusal
    assert refusal is not None
    assert (refusal.kind, refusal.link, refusal.grant, refusal.argument) == (
        "argument", 1, 0, "path")
    assert refusal.value == escape and refusal.problem == "a '..' segment"
    assert refusal.rule == "Subpath(root='/data/reports')"
    # The same delegation with the prefix kind of 0.1.0 lets the traversal through.
    old = root_link(Grant("fs/**", {"read"}, {"path": Prefix("/data")}))
    old_leaf = delegate(ALICE, BOB, [Grant("fs/**", {"read"}, {"path": Prefix("/data/reports")})],
                        not_before=NOW - 100, expires=NOW + 3600, parent=old)
    verify_chain(encode_chain([old, old_leaf]), ANCHORS, now=NOW,
                 request=Request("fs/x", "read", {"path": escape}))


@pytest.mark.parametrize("child", [Subpath("/data2"), Subpath("/"), Prefix("/data/"),
                                   Eq("/data/../etc")])
def test_a_child_cannot_widen_a_subpath(child: Any) -> None:
    root = root_link()
    grant = Grant("fs/**", {"read"}, {"path": child})
    with raises("invalid_argument"):  # delegate() refuses to make it
        delegate(ALICE, BOB, [grant], not_before=NOW - 100, expires=NOW + 3600, parent=root)
    error = denied([root, forge(root, grant)])  # and a verifier refuses a forged one
    assert error.code == "widened_constraint"
    assert error.refusal is not None
    assert (error.refusal.kind, error.refusal.link, error.refusal.argument) == (
        "argument", 1, "path")


MARK = b"@@@@"


@pytest.mark.parametrize("bad", [
    b"\xc0\xae\xc0\xae",  # '..' as overlong two-byte forms
    b"\xc0\xaf..",  # an overlong '/'
    b"\xe0\x80\xae.",  # an overlong three-byte '.'
    b"\xf0\x80\x80\xae",  # an overlong four-byte '.'
    b"\xed\xa0\x80.",  # a UTF-8 encoded surrogate
    b"\x80...",  # a lone continuation byte
    b"..\xe2\x80",  # a sequence cut short
    b"\xff\xfe..",  # bytes that are never UTF-8
])
def test_invalid_utf8_in_an_argument_is_malformed_before_any_constraint_runs(
        bad: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = Subpath.allows

    def counted(self: Subpath, arg: object) -> bool:
        calls.append(arg)
        return real(self, arg)

    monkeypatch.setattr(Subpath, "allows", counted)
    chain = encode_chain([delegate(ROOT, ALICE, [PATH_GRANT], not_before=NOW - 100,
                                   expires=NOW + 3600)])

    def checker() -> Callable[[bytes], object]:
        return SessionInvocations(ANCHORS, peer=ALICE.peer, channel_binding=BINDING,
                                  clock=lambda: NOW).check

    # The string travels as msgpack str bytes; the invocation is crafted by hand by
    # putting other bytes of the same length in its place.
    request = Request("fs/x", "read", {"path": "/data/" + MARK.decode() + "/etc"})
    good = invoke(chain, request, channel_binding=BINDING, clock=lambda: NOW, random=bytes)
    assert good.count(MARK) == 1 and len(bad) == len(MARK)
    checker()(good)
    assert calls == [request.args["path"]]  # the control: a valid string reaches it
    calls.clear()
    with raises("malformed"):
        checker()(good.replace(MARK, bad))
    assert calls == []


@PROPERTY
@given(st.one_of(values_near("/a/b"), st.text(), st.text(alphabet="/.ab%\\\x00é", max_size=12),
                 st.text(alphabet="/ab", min_size=250, max_size=260)))
def test_a_root_is_read_by_the_plain_rule(root: str) -> None:
    # The wire reads a common root in one pass (no text() or rule-by-rule check): it
    # accepts exactly the roots that the rules accept.
    valid = len(root.encode("utf-8", "surrogatepass")) <= 256 and plain_allows("/", root)
    try:
        made = constraint_from_wire([9, root])
    except DecodeError as error:
        assert not valid, root
        assert error.code == "malformed"
    else:
        assert valid, root
        assert made == Subpath(root) and made.allows(root) and made.allows(root.rstrip("/") + "/x")

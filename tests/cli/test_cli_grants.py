"""Grants on the command line: one syntax for every constraint kind, read by ``delegate``
and written back by ``inspect`` and ``--json``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.cli import Ran
from support.cli import agentauth as run_cli

from agentauth.capability import Grant
from agentauth.capability.constraints import KINDS as WIRE_KINDS
from agentauth.capability.constraints import (
    AnyOf,
    AnyValue,
    Cidr,
    Contains,
    Eq,
    Length,
    NotOneOf,
    OneOf,
    Pattern,
    Prefix,
    Range,
    Subpath,
    Subset,
    Url,
)
from agentauth.cli.tokens import KIND_EXAMPLES, describe_grant, parse_grant
from agentauth.errors import InvalidArgument

ROOT_DIR = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT_DIR), "TEST_PASSPHRASE": "correct horse"}


def agentauth(cwd: Path, *args: str) -> Ran:
    extra = ["--passphrase-env", "TEST_PASSPHRASE"] if args[0] in ("keygen", "delegate") else []
    if args[0] == "keygen":
        extra += ["--preset", "interactive"]
    if "--help" in args:
        extra = []
    return run_cli([*args, *extra], cwd=cwd, env=ENV)

# (the text after "fs/**=read;", the constraint on "x" the API builds, open world)
KINDS: list[tuple[str, str, Any]] = [
    ("eq", "x=eq:fast", Eq("fast")),
    ("eq-int", "x=eq:-42", Eq(-42)),
    ("eq-bool", "x=eq:true", Eq(True)),
    ("eq-quoted", 'x=eq:"42"', Eq("42")),
    ("eq-quoted-bool", 'x=eq:"false"', Eq("false")),
    ("eq-empty", 'x=eq:""', Eq("")),
    ("one-of", "x=one-of:eu|us", OneOf({"eu", "us"})),
    ("one-of-ints", "x=one-of:1|2|3", OneOf({1, 2, 3})),
    ("not-one-of", "x=not-one-of:admin|root", NotOneOf({"root", "admin"})),
    ("range", "x=range:-5..1000", Range(-5, 1000)),
    ("length", "x=length:1..80", Length(1, 80)),
    ("prefix", "x=prefix:q3;draft-", Prefix("q3;draft-")),
    ("contains", "x=contains:audit|q3", Contains({"audit", "q3"})),
    ("subset", "x=subset:1|2", Subset({1, 2})),
    ("pattern", "x=pattern:reports/*-q?.csv", Pattern("reports/*-q?.csv")),
    ("subpath", "x=subpath:/data/reports", Subpath("/data/reports")),
    ("url", "x=url:https://*.example.com:8443/v1", Url("https://*.example.com:8443/v1")),
    ("cidr", "x=cidr:10.0.0.0/8", Cidr("10.0.0.0/8")),
    ("cidr-v6", "x=cidr:2001:db8::/32", Cidr("2001:db8::/32")),
    ("any", "x=any:", AnyValue()),
    ("any-of", "x=url:https://a.example/;x+=cidr:192.0.2.0/24",
     AnyOf([Url("https://a.example/"), Cidr("192.0.2.0/24")])),
]


@pytest.mark.parametrize(("text", "constraint"), [k[1:] for k in KINDS],
                         ids=[k[0] for k in KINDS])
def test_each_kind_parses_to_the_grant_the_api_builds(text: str, constraint: Any) -> None:
    assert parse_grant(f"fs/**=read;{text}") == Grant("fs/**", {"read"}, {"x": constraint})
    opened = parse_grant(f"fs/**=read;{text};*")
    assert opened == Grant("fs/**", {"read"}, {"x": constraint}, open_world=True)
    assert opened.open_world and not opened.closed


@pytest.mark.parametrize(("text", "constraint"), [k[1:] for k in KINDS],
                         ids=[k[0] for k in KINDS])
def test_each_kind_is_shown_as_it_is_read(text: str, constraint: Any) -> None:
    grant = Grant("fs/**", {"read", "list"}, {"x": constraint, "y": Range(0, 9)})
    shown = describe_grant(grant)
    assert parse_grant(shown) == grant
    assert describe_grant(parse_grant(shown)) == shown
    opened = Grant("fs/**", {"read"}, {"x": constraint}, open_world=True)
    assert parse_grant(describe_grant(opened)) == opened


def test_the_shown_form_is_the_canonical_text() -> None:
    text = ("fs/**=list,read;a=one-of:eu|us;b=eq:\"7\";c=subpath:/data;"
            "d=cidr:10.0.0.0/8;d+=eq:\"\";e=not-one-of:false;*")
    assert describe_grant(parse_grant(text)) == text
    assert describe_grant(parse_grant("fs=read,list;b=in:us|eu;a=eq:007")) == (
        "fs=list,read;a=eq:7;b=one-of:eu|us")  # sorted, the old in: spelled one-of


def test_a_url_is_shown_as_written_without_its_default_port() -> None:
    text = ("fs=read;u=url:https://x.example/;u+=url:http://y.example:8080/api;"
            "v=url:wss://[2001:db8::1]/")
    assert describe_grant(parse_grant(text)) == text
    assert describe_grant(parse_grant("fs=read;u=url:https://x.example:443")) == (
        "fs=read;u=url:https://x.example/")


def test_every_kind_has_an_example_that_parses() -> None:
    assert set(KIND_EXAMPLES) == {kind.NAME for kind in WIRE_KINDS.values()}
    for example in KIND_EXAMPLES.values():
        assert parse_grant("fs/**=read;" + example.split("  ")[0]).closed


@pytest.mark.parametrize(("text", "message"), [
    ("fs/**", "a grant is RESOURCE=ACTION[,ACTION...], not 'fs/**'"),
    ("fs/**=read;x=eq", "grant item 'x=eq': a constraint is NAME=KIND:VALUE"),
    ("fs/**=read;x=regex:a.*", "grant item 'x=regex:a.*': unknown constraint kind 'regex'"),
    ("fs/**=read;x=any-of:eq:1|eq:2", "an any-of is written as its members, for example "
                                      "host=url:https://a.example/;host+=url:"),
    ("fs/**=read;x=range:1..a", "grant item 'x=range:1..a': a range is LO..HI, two "
                                "integers, not '1..a'; for example size=range:0..1000"),
    ("fs/**=read;x=range:9..1", "grant item 'x=range:9..1': a range is two 64-bit "
                                "integers"),
    ("fs/**=read;x=length:-1..5", "grant item 'x=length:-1..5': a length is two 64-bit "
                                  "integers"),
    ("fs/**=read;x=eq:99999999999999999999", "integer values fit in 64 bits"),
    ("fs/**=read;x=one-of:1|a", "grant item 'x=one-of:1|a': OneOf values are all of one "
                                "type; for example region=one-of:eu|us"),
    ("fs/**=read;x=subset:true|false", "Subset values are of type int or str"),
    ("fs/**=read;x=any:1", "grant item 'x=any:1': any takes no value, not '1'"),
    ("fs/**=read;x=eq:1;x=eq:2", "grant item 'x=eq:2': 'x' is constrained twice; write "
                                 "x+=KIND:VALUE for an alternative"),
    ("fs/**=read;x+=eq:1", "grant item 'x+=eq:1': x+= adds an alternative to a "
                           "x=KIND:VALUE item before it"),
    ("fs/**=read;x=eq:1;x+=any:", "argument 'x': an any-of member is a constraint, "
                                  "neither any-of nor any"),
    ("fs/**=read;*", ";* opens a grant with constraints; one without any is open already"),
    ("fs/**=read;*;x=eq:1", ";* comes last"),
    ("fs/**=read;X=eq:1", "grant 'fs/**=read;X=eq:1': argument names are [a-z0-9_]{1,32}"),
    ("fs/**=READ", "grant 'fs/**=READ': action names are [a-z0-9_.-]{1,32}"),
    ("fs/**=read;x=pattern:a**b", "grant item 'x=pattern:a**b'"),
    ("fs/**=read;x=subpath:data/../x", "grant item 'x=subpath:data/../x'"),
    ("fs/**=read;x=url:ftp://example.com/", "grant item 'x=url:ftp://example.com/'"),
    ("fs/**=read;x=cidr:10.0.0.1/8", "grant item 'x=cidr:10.0.0.1/8'"),
], ids=lambda v: v if v.startswith("fs") else "")
def test_refusals_name_the_item_and_what_to_write(text: str, message: str) -> None:
    # The last four are the new kinds' own checks; they refuse once those kinds are merged.
    with pytest.raises(InvalidArgument) as caught:
        parse_grant(text)
    assert caught.value.code == "invalid_argument"
    assert message in caught.value.message


def test_a_semicolon_stays_in_a_value_unless_an_item_follows() -> None:
    grant = parse_grant("fs/**=read;q=pattern:a;b*;r=eq:1")
    assert grant.constraints["q"] == Pattern("a;b*") and grant.closed
    with pytest.raises(InvalidArgument, match="'b=c': a constraint is NAME=KIND:VALUE"):
        parse_grant("fs/**=read;q=subpath:/a;b=c")  # loud, never a silent longer value


def test_help_shows_every_kind_and_says_grants_are_closed(tmp_path: Path) -> None:
    shown = agentauth(tmp_path, "delegate", "--help")
    assert shown.returncode == 0
    assert "A grant with constraints is closed" in shown.stdout
    assert "A trailing ;* makes it open" in shown.stdout
    for example in KIND_EXAMPLES.values():
        assert f";{example}\n" in shown.stdout


def test_delegate_inspect_verify_with_a_subpath_grant(tmp_path: Path) -> None:
    """End to end through the command line: a path within the root passes; a traversal,
    an encoded one, a path beside the root and an argument the grant does not name are
    refused. (The allowed path needs the subpath kind itself, not only its syntax.)"""
    ids = {}
    for name in ("root", "alice"):
        done = agentauth(tmp_path, "keygen", f"{name}.key")
        assert done.returncode == 0, done.stderr
        ids[name] = done.stdout.strip()
    done = agentauth(tmp_path, "delegate", "--key", "root.key", "--to", ids["alice"],
                     "--grant", "fs/**=read;path=subpath:/data/reports", "--out", "a.chain")
    assert done.returncode == 0, done.stderr
    tree = agentauth(tmp_path, "inspect", "a.chain").stdout
    assert "path=subpath:/data/reports" in tree and "(closed: no other argument)" in tree

    base = ["verify", "a.chain", "--anchor", ids["root"], "--request", "fs/x:read"]
    ok = agentauth(tmp_path, *base, "--arg", "path=/data/reports/q3/summary.csv")
    assert ok.returncode == 0 and ok.stdout.startswith("ok:"), ok.stdout + ok.stderr
    for args in (["--arg", "path=/data/reports/../secrets/keys"],
                 ["--arg", "path=/data/reports/%2e%2e/secrets"],
                 ["--arg", "path=/data/reports\\..\\secrets"],
                 ["--arg", "path=/data/reports2/x"],
                 ["--arg", "path=/data/reports/q3", "--arg", "mode=write"]):
        refused = agentauth(tmp_path, *base, *args)
        assert refused.returncode == 1 and "[not_authorized]" in refused.stderr, args
        assert "'path'" in refused.stderr or "'mode'" in refused.stderr, refused.stderr


# ------------------------------------------------------------------ any value, shown and read

# What the syntax cannot carry (documented): a ';' followed by NAME= or by a final '*' in
# any value, and '"|' in a value among others.
_ITEM_LIKE = re.compile(r';(?:[^;=:/|"]{1,64}=|\*(?:;|\Z))')
texts = st.text(st.characters(codec="utf-8"), max_size=12).filter(
    lambda s: not _ITEM_LIKE.search(s + ";"))  # as if another item followed
among = texts.filter(lambda s: '"|' not in s)
ints = st.integers(-(2**63), 2**63 - 1)
scalars = st.one_of(ints, st.booleans(), texts)


def _sets(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.frozensets(values, min_size=1, max_size=5)


plain = st.one_of(
    scalars.map(Eq),
    st.one_of(_sets(ints), _sets(among), _sets(st.booleans())).map(OneOf),
    st.one_of(_sets(ints), _sets(among)).map(NotOneOf),
    st.one_of(_sets(ints), _sets(among)).map(Contains),
    st.one_of(_sets(ints), _sets(among)).map(Subset),
    st.tuples(ints, ints).map(sorted).map(lambda b: Range(*b)),
    st.tuples(ints.map(abs), ints.map(abs)).map(sorted).map(
        lambda b: Length(min(b[0], 2**63 - 1), min(b[1], 2**63 - 1))),
    texts.map(Prefix),
    st.just(AnyValue()),
)
# The kinds with a grammar of their own, from valid texts (one of them any-of members).
shaped = st.one_of(
    st.sampled_from(["*.csv", "a;b*", "?", "reports/*-q?.csv"]).map(Pattern),
    st.sampled_from(["/", "/data/reports", "/a b/c"]).map(Subpath),
    st.sampled_from(["https://*.example.com:8443/v1", "http://[2001:db8::1]/",
                     "wss://a.example", "https://*/", "http://10.0.0.1:8080/a/b"]).map(Url),
    st.sampled_from(["10.0.0.0/8", "::/0", "2001:db8::/32", "192.0.2.1/32"]).map(Cidr),
)
members = st.one_of(plain.filter(lambda c: not isinstance(c, AnyValue)), shaped)
kinds = st.one_of(plain, shaped, st.lists(members, min_size=2, max_size=3).map(AnyOf))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z0-9_]{1,8}", fullmatch=True), kinds,
                       min_size=1, max_size=4),
       st.booleans())
def test_every_grant_is_read_back_as_shown(
        constraints: dict[str, Any], open_world: bool) -> None:
    grant = Grant("fs/**", {"read"}, constraints, open_world=open_world)
    shown = describe_grant(grant)
    assert parse_grant(shown) == grant, shown


def test_quoted_values_may_hold_the_separator() -> None:
    grant = parse_grant('fs=read;x=one-of:"a|b"|c|""|"7"|"\"q"')
    assert grant.constraints["x"] == OneOf({"a|b", "c", "", "7", '"q'})
    assert parse_grant(describe_grant(grant)) == grant
    assert parse_grant("fs=read;x=eq:a|b").constraints["x"] == Eq("a|b")  # one value


def test_verify_takes_list_arguments_and_an_open_grant_lets_others_pass(
        tmp_path: Path) -> None:
    done = agentauth(tmp_path, "keygen", "root.key")
    assert done.returncode == 0, done.stderr
    me = done.stdout.strip()
    done = agentauth(tmp_path, "delegate", "--key", "root.key", "--to", me, "--grant",
                     "fs/**=read;tags=subset:audit|q3;*", "--out", "a.chain")
    assert done.returncode == 0, done.stderr
    tree = agentauth(tmp_path, "inspect", "a.chain").stdout
    assert "tags=subset:audit|q3" in tree and "* (open world" in tree
    base = ["verify", "a.chain", "--anchor", me, "--request", "fs/x:read"]
    for args in (["--arg-list", "tags=q3|audit", "--arg", "mode=fast"],
                 ["--arg-list", "tags="]):  # the empty list
        ok = agentauth(tmp_path, *base, *args)
        assert ok.returncode == 0, ok.stderr
    for args in (["--arg-list", "tags=q3|x"], ["--arg", "tags=q3"], ["--arg", "mode=fast"]):
        refused = agentauth(tmp_path, *base, *args)
        assert refused.returncode == 1 and "'tags'" in refused.stderr, refused.stderr

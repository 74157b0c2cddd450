"""The cheaper paths of the HTTP binding give exactly what the plain ones give.

``parse_signature_input`` parses a value in two pieces (its first member's components,
remembered, and the rest): on every input, valid, mutated or random, its result or its
refusal (type, code, message) must be the one ``http-sf`` gives parsing the whole value.
``signature_params`` serialises some parameters together and remembers others: its text
must be the one ``http-sf`` writes for the whole inner list.
"""

from __future__ import annotations

from typing import Any

import http_sf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ALICE

from agentauth import AgentAuthError
from agentauth.http import HTTPMessage, Signer
from agentauth.http.components import (
    DIGESTS,
    _parse_dictionary,
    content_digest,
    parse_signature_input,
    ser_member,
    signature_params,
)

FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
MESSAGE = HTTPMessage.from_headers([("host", "h:1"), ("content-type", "application/json")],
                                   method="POST", authority="h:1", path="/echo")
SIGNED = Signer(ALICE).sign_request(MESSAGE, b"{}")
VALID = dict(SIGNED.headers)["signature-input"]
SAMPLES = (VALID, 'a=("x" "y";req;key="k");created=1, b=("z");p=2',
           'agentauth=("@status" "@method";req "signature";req;key="agentauth");x=1',
           'a=(), b=()', 'a=:AAAA:, b=("x")', 'a="x)y", b=("q")', ' a=("x" ) ;k=1 ',
           'a=("x");nonce="q;keyid=1";keyid="k"', 'a=("x");created=1;keyid="k";created=2',
           'a=("x");n=tok;keyid=2, b=("y");keyid=3', 'a=();keyid=1', 'a=("x");keyid',
           'a=("x");p=%"d;keyid=";keyid=1', 'a=("x");keyid=1;keyid=2', 'a=("x");keyid=")"',
           'a=("x");n=t ;keyid=2, b=("y");keyid=3', 'a=("x");n=t\t;keyid=2')
PIECES = st.sampled_from(['"', "(", ")", ";", "=", ",", " ", ":", "a", "1", "?1", "*",
                          '\\"', "\t", "agentauth", "key", "req", "\x7f", "é", ";keyid=",
                          "%"])


def outcome(parse: Any, value: str) -> tuple[Any, ...]:
    try:
        return ("ok", parse(value))
    except AgentAuthError as error:
        return ("refused", type(error), error.code, error.message)


def whole(value: str) -> dict[str, Any]:
    return _parse_dictionary.__wrapped__(value, "Signature-Input")


def same(value: str) -> None:
    fast, plain = outcome(parse_signature_input, value), outcome(whole, value)
    assert fast == plain, value
    assert outcome(parse_signature_input, value) == plain  # the remembered piece too


@pytest.mark.parametrize("value", SAMPLES, ids=lambda value: "signed-now" if value == VALID
                         else None)  # its timestamp and nonce would change the id each run
def test_each_sample_parses_as_the_whole_value_does(value: str) -> None:
    # 'n=t ;keyid=2' was accepted by the split parse (its first piece ended in white
    # space, which a piece's parser strips) and refused by the whole one.
    same(value)


@given(st.data())
@FUZZ
def test_mutated_values_parse_as_the_whole_value_does(data: st.DataObject) -> None:
    value = data.draw(st.sampled_from(SAMPLES))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(value)))
        cut = data.draw(st.integers(0, 3))
        value = value[:at] + data.draw(PIECES) + value[at + cut:]
    same(value)


@given(st.text(alphabet=st.sampled_from('a=(")x; ,:1?k*\\'), max_size=40))
@FUZZ
def test_random_values_parse_as_the_whole_value_does(value: str) -> None:
    same(value)


def test_a_signature_input_parses_to_its_members() -> None:
    parsed = parse_signature_input(VALID)
    assert parsed == whole(VALID)
    items, params = parsed["agentauth"]
    assert [name for name, _ in items] == ["@method", "@authority", "@path", "@query",
                                           "content-type", "content-digest"]
    assert params["nonce"] == SIGNED.nonce
    assert parse_signature_input(VALID + ", other=()") == whole(VALID + ", other=()")
    for value in (VALID + ", agentauth=()", VALID[:-3], "x" * 16385 + "=()"):
        assert outcome(parse_signature_input, value)[0] == "refused"
        same(value)


NAMES = st.sampled_from(["created", "expires", "nonce", "keyid", "alg", "tag", "x", "req"])
VALUES = st.one_of(st.integers(-(10**15 - 1), 10**15 - 1), st.booleans(), st.binary(max_size=8),
                   st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                           max_size=12))


@given(st.dictionaries(NAMES, VALUES, max_size=8),
       st.lists(st.sampled_from(["@method", "@path", "content-type", "signature"]),
                max_size=4))
@FUZZ
def test_signature_params_are_what_http_sf_writes(params: dict[str, Any],
                                                  names: list[str]) -> None:
    components: list[Any] = [(name, {}) for name in names]
    whole_list: Any = [(components, params)]
    assert signature_params(components, params) == http_sf.ser(whole_list)
    assert signature_params(components, params) == http_sf.ser(whole_list)  # remembered


MEMBER_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.booleans(), st.binary(max_size=70), st.integers(0, 10**6),
    st.text(alphabet="abc/:.", max_size=12),
    st.lists(st.tuples(st.sampled_from(["@path", "x"]), st.just({})), max_size=3))


@given(st.sampled_from(["agentauth", "sig1", "a*b", "sha-256"]), MEMBER_VALUES,
       st.dictionaries(NAMES, VALUES, max_size=3))
@FUZZ
def test_one_member_is_what_http_sf_writes(label: str, value: Any,
                                           params: dict[str, Any]) -> None:
    member: Any = {label: (value, params)}
    assert ser_member(label, value, params) == http_sf.ser(member)


@given(st.binary(max_size=100), st.lists(st.sampled_from(sorted(DIGESTS)), min_size=1,
                                         max_size=2, unique=True))
@FUZZ
def test_content_digest_is_what_http_sf_writes(body: bytes, names: list[str]) -> None:
    members: Any = {name: (DIGESTS[name](body), {}) for name in names}
    assert content_digest(body, names) == http_sf.ser(members)

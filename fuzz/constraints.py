"""Argument constraints (spec 10.1 to 10.3): wire forms read, values tested, pairs narrowed.

The first byte chooses a mode. Mode 0: the rest is the text of an argument, tested against
every constraint of a fixed set (paths, URLs, networks, globs, lengths) as a verifier tests
a request's argument; the refusal path (``problem``) runs too. Mode 1: the rest is a
canonical msgpack array ``[child, parent, value]`` of two constraints' wire forms and a
value: both are read as a verifier reads them, the value tested, and the pair narrowed;
whenever the child is within the parent and allows the value, the parent must allow it.
"""

from __future__ import annotations

from typing import Any

from agentauth import wire
from agentauth.capability import (
    AnyOf,
    Cidr,
    Contains,
    Length,
    NotOneOf,
    Pattern,
    Prefix,
    Subpath,
    Subset,
    Url,
)
from agentauth.capability.constraints import constraint_from_wire, constraint_within
from agentauth.errors import AgentAuthError

from ._common import run

FIXED = [Subpath("/data/reports"), Subpath("/"), Url("https://*.example.com/v1"),
         Url("http://*"), Url("https://[2001:db8::1]:8443/"), Cidr("10.0.0.0/8"),
         Cidr("2001:db8::/32"), Pattern("*.txt"), Pattern("a*b?c*"), Prefix("/data/"),
         Length(0, 16), NotOneOf({"root", "admin"}), Contains({"a"}), Subset({"a", "b"}),
         AnyOf([Url("https://a.example/"), Cidr("192.0.2.0/24")])]


def _text(data: bytes) -> None:
    try:
        value = data.decode()
    except UnicodeDecodeError:
        value = data.decode("latin-1")
    for constraint in FIXED:
        if not constraint.allows(value):
            constraint.problem(value)


def _pair(data: bytes) -> None:
    try:
        decoded = wire.decode_array(data, 4096, "a constraint pair")
    except AgentAuthError:
        return
    if len(decoded) != 3:
        return
    try:
        child, parent = constraint_from_wire(decoded[0]), constraint_from_wire(decoded[1])
    except AgentAuthError:
        return
    value = decoded[2]
    allowed = child.allows(value)
    if not allowed:
        child.problem(value)
    if constraint_within(child, parent) and allowed:
        assert parent.allows(value), (child, parent, value)
    assert constraint_from_wire(child.to_wire()) == child


def one(data: bytes) -> None:
    """Test ``data[1:]`` in the mode ``data[0]`` chooses."""
    if not data:
        return
    (_text if data[0] % 2 == 0 else _pair)(data[1:])


def seeds() -> list[bytes]:
    """Hostile argument texts, and narrowing pairs of every kind."""
    texts = ["/data/reports/q3.txt", "/data/reports/../../etc/passwd", "/data/%2e%2e/x",
             "/data/\uff0e\uff0e/x", "https://api.example.com/v1/x?y=1",
             "https://api.example.com@169.254.169.254/v1", "http://2130706433/",
             "http://[::ffff:127.0.0.1]/", "10.1.2.3", "2001:db8::1", "a.txt", "axbyc"]
    pairs: list[Any] = [
        [Subpath("/data/reports").to_wire(), Subpath("/data").to_wire(), "/data/reports/a"],
        [Url("https://api.example.com/v1/x").to_wire(), Url("https://*.example.com/v1")
         .to_wire(), "https://api.example.com/v1/x/y"],
        [Cidr("10.1.0.0/16").to_wire(), Cidr("10.0.0.0/8").to_wire(), "10.1.2.3"],
        [Pattern("a*.txt").to_wire(), Pattern("*.txt").to_wire(), "ab.txt"],
        [Prefix("/data/r").to_wire(), Pattern("/data/*").to_wire(), "/data/rx"],
        [[1, ["a"]], NotOneOf({"b"}).to_wire(), "a"],
    ]
    return ([b"\0" + t.encode() for t in texts]
            + [b"\1" + wire.encode_value(p) for p in pairs])


if __name__ == "__main__":
    run(one, seeds)

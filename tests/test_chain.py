"""Capability chains: delegation, encoding, and verify_chain's rules, one per test case;
mutations and random bytes give only typed errors, and nothing forged is accepted."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ALICE, BOB, CAROL, MALLORY, raises

from agentauth import AgentAuthError, Identity, PeerKey, crypto, wire
from agentauth.capability import (
    Eq,
    Grant,
    Link,
    Range,
    Request,
    decode_chain,
    delegate,
    encode_chain,
    verify_chain,
)
from agentauth.capability import chain as chain_module

ROOT = Identity.from_seed(bytes(range(32)))
NOW = 1_800_000_000
ANCHORS = {ROOT.agent_id: "**"}
PARENT_GRANT = Grant("fs/reports/**", {"read", "list"}, {"size": Range(0, 1000)})
CHILD_GRANT = Grant("fs/reports/q3/*", {"read"}, {"size": Range(0, 100)})
REQUEST = Request("fs/reports/q3/summary", "read", {"size": 50})


def chain_of(depth: int, grant: Grant = PARENT_GRANT) -> list[Link]:
    """ROOT -> ALICE -> BOB -> CAROL -> ... , ``depth`` links, each narrowing nothing."""
    holders = [ALICE, BOB, CAROL, MALLORY] * 3
    links = [delegate(ROOT, ALICE, [grant], not_before=NOW - 100, expires=NOW + 3600,
                      budget=depth - 1)]
    issuer = ALICE
    for i in range(1, depth):
        holder = holders[i]
        links.append(delegate(issuer, holder, [grant], not_before=NOW - 100,
                              expires=NOW + 3600, budget=depth - 1 - i, parent=links[-1]))
        issuer = holder
    return links


def forge(signer: Identity, *, issuer: bytes | None = None, audience: bytes = BOB.public_bytes,
          subject: bytes | None = None, parent: bytes = b"", grants: Any = None,
          nbf: int = NOW - 100, exp: int = NOW + 3600, budget: int = 0,
          nonce: bytes = bytes(16), version: int = 1) -> Link:
    """A link with any fields at all, signed by ``signer`` (delegate() refuses bad ones)."""
    issuer = signer.public_bytes if issuer is None else issuer
    payload = wire.encode_map(version, issuer, audience,
                              issuer if subject is None else subject, parent,
                              [g.to_wire() for g in (grants or [PARENT_GRANT])], nbf, exp,
                              budget, nonce)
    signature = signer.sign(chain_module.LINK_CONTEXT + payload)
    return chain_module._parse_payload(payload, signature)


def verify(links: Any, **options: Any) -> tuple[Link, ...]:
    options.setdefault("now", NOW)
    return verify_chain(links if isinstance(links, bytes) else encode_chain(links),
                        options.pop("anchors", ANCHORS), **options)


@pytest.mark.parametrize("depth", [1, 3, 8])
def test_chains_verify_and_round_trip(depth: int) -> None:
    links = chain_of(depth)
    data = encode_chain(links)
    assert decode_chain(data) == tuple(links)
    holder = links[-1].audience
    result = verify(data, holder=crypto_peer(holder), request=REQUEST)
    assert [link.id for link in result] == [link.id for link in links]
    assert len({link.id for link in links}) == depth


def crypto_peer(key: bytes) -> PeerKey:
    return PeerKey(key)


def test_a_narrowing_chain_allows_only_what_its_leaf_allows() -> None:
    root = delegate(ROOT, ALICE, [PARENT_GRANT], not_before=NOW - 10, expires=NOW + 10,
                    budget=2)
    leaf = delegate(ALICE, BOB, [CHILD_GRANT], not_before=NOW - 10, expires=NOW + 10,
                    budget=0, parent=root)
    verify([root, leaf], request=REQUEST)
    with raises("not_authorized"):
        verify([root, leaf], request=Request("fs/reports/q4/x", "read", {"size": 5}))
    with raises("not_authorized"):
        verify([root, leaf], request=Request("fs/reports/q3/x", "read", {"size": 500}))
    with raises("not_authorized"):
        verify([root, leaf], request=Request("fs/reports/q3/x", "read", {"size": True}))


def test_delegate_refuses_to_widen() -> None:
    root = delegate(ROOT, ALICE, [CHILD_GRANT], not_before=NOW, expires=NOW + 10, budget=1)
    for grant in (PARENT_GRANT, Grant("fs/reports/q3/*", {"read", "write"},
                                      {"size": Range(0, 100)})):
        with raises("invalid_argument"):
            delegate(ALICE, BOB, [grant], not_before=NOW, expires=NOW + 10, parent=root)
    with raises("invalid_argument"):  # outlives its parent
        delegate(ALICE, BOB, [CHILD_GRANT], not_before=NOW, expires=NOW + 11, parent=root)


# ------------------------------------------------------------ one rule broken each


def test_chain_too_long_is_refused_before_any_signature(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    calls: list[int] = []
    real = crypto.ed25519_verify
    monkeypatch.setattr(crypto, "ed25519_verify",
                        lambda *a: calls.append(1) or real(*a))  # type: ignore[func-returns-value]
    links = chain_of(9)
    data = wire.encode_map(1, [[link.payload, link.signature] for link in links]
                           + [[links[-1].payload, bytes(64)]])
    with raises("chain_too_long"):
        verify(data)
    assert calls == []


def test_root_rules() -> None:
    links = chain_of(3)
    with raises("root_invalid"):
        verify(links[1:], anchors={ALICE.agent_id: "**"})  # starts below the root
    with raises("root_invalid"):
        verify([forge(ROOT, subject=ALICE.public_bytes)])
    with raises("untrusted_root"):
        verify([forge(MALLORY)])
    with raises("root_scope"):
        verify(links, anchors={ROOT.agent_id: "db/**"})


def test_hop_rules() -> None:
    root = delegate(ROOT, ALICE, [PARENT_GRANT], not_before=NOW - 100, expires=NOW + 3600,
                    budget=2)
    twin = delegate(ROOT, ALICE, [PARENT_GRANT], not_before=NOW - 100, expires=NOW + 3600,
                    budget=2)  # same content, another nonce
    child = delegate(ALICE, BOB, [CHILD_GRANT], not_before=NOW - 100, expires=NOW + 3600,
                     budget=1, parent=root)
    with raises("broken_chain"):  # re-parented under the twin
        verify([twin, child])
    grandchild = delegate(BOB, CAROL, [CHILD_GRANT], not_before=NOW - 100,
                          expires=NOW + 3600, budget=0, parent=child)
    verify([root, child, grandchild])
    with raises("broken_chain"):  # out of order
        verify([root, grandchild, child])
    with raises("duplicate_link"):
        verify([root, root])
    cases = {
        "issuer_mismatch": forge(CAROL, parent=root.id, subject=ROOT.public_bytes),
        "subject_mismatch": forge(ALICE, parent=root.id, subject=CAROL.public_bytes),
        "depth_exceeded": forge(ALICE, parent=root.id, subject=ROOT.public_bytes, budget=2),
        "widened_resource": forge(ALICE, parent=root.id, subject=ROOT.public_bytes,
                                  grants=[Grant("fs/**", {"read"}, {"size": Eq(1)})]),
        "widened_action": forge(ALICE, parent=root.id, subject=ROOT.public_bytes,
                                grants=[Grant("fs/reports/x", {"write"},
                                              {"size": Eq(1)})]),
        "widened_constraint": forge(ALICE, parent=root.id, subject=ROOT.public_bytes,
                                    grants=[Grant("fs/reports/x", {"read"})]),
        "widened_time": forge(ALICE, parent=root.id, subject=ROOT.public_bytes,
                              exp=NOW + 7200),
    }
    for code, link in cases.items():
        with raises(code):
            verify([root, link])


def test_time_revocation_signature_and_holder() -> None:
    links = chain_of(3)
    with raises("not_yet_valid"):
        verify(links, now=NOW - 100 - 61)
    verify(links, now=NOW - 100 - 60)  # the skew boundary
    with raises("expired"):
        verify(links, now=NOW + 3600 + 60)
    verify(links, now=NOW + 3600 + 59)
    with raises("revoked"):
        verify(links, revoked=lambda link_id: link_id == links[1].id)
    impostor = forge(MALLORY, issuer=ALICE.public_bytes, parent=links[0].id,
                     subject=ROOT.public_bytes)
    with raises("bad_signature"):
        verify([links[0], impostor])
    with raises("holder_mismatch"):
        verify(links, holder=MALLORY.peer)


@pytest.mark.parametrize("data", [
    b"", b"\x80", wire.encode_map(2, []), wire.encode_map(1, []), wire.encode_map(1, [[b"x"]]),
    wire.encode_map(1, [[b"x", bytes(64)]]), wire.encode_map(1, [[b"x", b"short"]]),
])
def test_malformed_chains(data: bytes) -> None:
    with pytest.raises(AgentAuthError) as info:
        verify(data)
    assert info.value.code in {"malformed", "unknown_field", "non_canonical"}


def test_unknown_version_in_a_link() -> None:
    with raises("unknown_field"):
        verify([forge(ROOT, version=2)])


def test_any_flipped_bit_is_refused() -> None:
    data = encode_chain(chain_of(3))
    for index in range(len(data)):
        damaged = bytearray(data)
        damaged[index] ^= 0x01
        with pytest.raises(AgentAuthError):
            verify(bytes(damaged), request=REQUEST)


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_give_only_typed_errors(data: bytes) -> None:
    with contextlib.suppress(AgentAuthError):
        verify(data)


@settings(max_examples=300, deadline=None, database=None)
@given(index=st.integers(0, 10_000), value=st.integers(0, 255), cut=st.booleans())
def test_mutated_chains_give_only_typed_errors(index: int, value: int, cut: bool) -> None:
    data = bytearray(encode_chain(chain_of(3)))
    index %= len(data)
    if cut:
        del data[index:]
    else:
        data[index] = value
    with contextlib.suppress(AgentAuthError):
        verify(bytes(data))


def test_links_are_ids_of_payloads_not_signatures() -> None:
    link = chain_of(1)[0]
    assert link.id == crypto.blake2b_256(chain_module.LINK_ID_CONTEXT + link.payload)
    again = chain_module._parse_payload(link.payload, os.urandom(64))
    assert again.id == link.id  # a different signature does not make a different link


def test_link_objects_are_read_again_from_their_signed_bytes() -> None:
    leaf = chain_of(1)[0]
    edited = dataclasses.replace(leaf, grants=(Grant("**", {"*"}),))
    with raises("not_authorized"):  # the edit does not count: the signed payload does
        verify_chain([edited], ANCHORS, now=NOW, request=Request("secrets/key", "delete"))
    for odd in (bytearray(encode_chain([leaf])), "chain", [encode_chain([leaf])]):
        with raises("invalid_argument"):
            verify_chain(odd, ANCHORS, now=NOW)  # type: ignore[arg-type]


def test_cached_verification_still_checks_time_revocation_holder_and_request() -> None:
    chain_module.clear_caches()
    links = chain_of(3)
    data = encode_chain(links)
    verify(data, holder=CAROL.peer, request=REQUEST)  # now cached
    with raises("expired"):
        verify(data, now=NOW + 3600 + 60)
    with raises("revoked"):
        verify(data, revoked=lambda link_id: link_id == links[2].id)
    with raises("holder_mismatch"):
        verify(data, holder=MALLORY.peer)
    with raises("not_authorized"):
        verify(data, request=Request("db/x", "read"))
    forged = forge(MALLORY, issuer=ALICE.public_bytes, parent=links[0].id,
                   subject=ROOT.public_bytes)
    for _ in range(2):  # a failure is never cached as a success
        with raises("bad_signature"):
            verify([links[0], forged])

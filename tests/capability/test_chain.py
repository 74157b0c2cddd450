"""Capability chains: delegation, encoding, and verify_chain's rules, one per test case;
mutations and random bytes give only typed errors, and nothing forged is accepted."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ALICE, BOB, CAROL, MALLORY, raises
from support.chains import ANCHORS, CHILD_GRANT, NOW, PARENT_GRANT, REQUEST, ROOT, chain_of

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


def forge(signer: Identity, *, parent: Link | None = None,
          audience: bytes = BOB.public_bytes, grants: Any = None, nbf: int = NOW - 100,
          exp: int = NOW + 3600, budget: int = 0, nonce: bytes = bytes(16),
          extra: tuple[Any, ...] = ()) -> bytes:
    """The bytes of a link with any fields at all, signed by ``signer`` under ``parent``
    (a root when there is none; delegate() refuses bad ones)."""
    fields = [audience, [g.to_wire() for g in (grants or [PARENT_GRANT])], nbf, exp, budget,
              nonce, *extra]
    if parent is None:
        fields.insert(0, signer.public_bytes)
    payload = wire.encode_value(fields)
    parent_id = parent.id if parent is not None else chain_module.NO_PARENT
    return payload + signer.sign(chain_module.LINK_CONTEXT + parent_id + payload)


def chain_bytes(items: Sequence[Link | bytes], version: int = 1) -> bytes:
    """A chain of links and raw link bytes, as given."""
    return wire.encode_value([version, *(x.data if isinstance(x, Link) else x
                                         for x in items)])


def verify(links: Any, **options: Any) -> tuple[Link, ...]:
    options.setdefault("now", NOW)
    return verify_chain(links if isinstance(links, bytes) else chain_bytes(links),
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
    data = chain_bytes([*links, links[-1].payload + bytes(64)])
    with raises("chain_too_long"):
        verify(data)
    assert calls == []


def test_root_rules() -> None:
    links = chain_of(3)
    with raises("root_invalid"):
        verify(links[1:], anchors={ALICE.agent_id: "**"})  # starts below the root
    with raises("root_invalid"):  # a root where a delegation belongs
        verify([links[0], forge(ALICE, audience=BOB.public_bytes)])
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
    with raises("bad_signature"):  # re-parented under the twin: it signed root's id
        verify([twin, child])
    grandchild = delegate(BOB, CAROL, [CHILD_GRANT], not_before=NOW - 100,
                          expires=NOW + 3600, budget=0, parent=child)
    verify([root, child, grandchild])
    with raises("depth_exceeded"):  # out of order: the budgets no longer shrink
        verify([root, grandchild, child])
    with raises("bad_signature"):  # a link skipped: the next one names another parent
        verify([root, grandchild])
    cases = {
        "bad_signature": forge(CAROL, parent=root),  # not the parent's audience
        "depth_exceeded": forge(ALICE, parent=root, budget=2),
        "widened_resource": forge(ALICE, parent=root,
                                  grants=[Grant("fs/**", {"read"}, {"size": Eq(1)})]),
        "widened_action": forge(ALICE, parent=root,
                                grants=[Grant("fs/reports/x", {"write"}, {"size": Eq(1)})]),
        "widened_constraint": forge(ALICE, parent=root,
                                    grants=[Grant("fs/reports/x", {"read"})]),
        "widened_time": forge(ALICE, parent=root, exp=NOW + 7200),
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
    impostor = forge(MALLORY, parent=links[0])  # as if alice delegated
    with raises("bad_signature"):
        verify([links[0], impostor])
    with raises("holder_mismatch"):
        verify(links, holder=MALLORY.peer)


@pytest.mark.parametrize("data", [
    b"", b"\x80", b"\x90", wire.encode_value([2]), wire.encode_value([1]),
    wire.encode_value([1, [b"x"]]), wire.encode_value([1, b"x" + bytes(64)]),
    wire.encode_value([1, b"short"]), wire.encode_map(1, [b"x"]),
])
def test_malformed_chains(data: bytes) -> None:
    with pytest.raises(AgentAuthError) as info:
        verify(data)
    assert info.value.code in {"malformed", "unknown_field", "non_canonical"}


def test_unknown_versions_and_fields() -> None:
    with raises("unknown_field"):
        verify(chain_bytes(chain_of(1), version=2))
    with raises("unknown_field"):
        verify([forge(ROOT, extra=(0,))])
    with raises("malformed"):
        verify([forge(ROOT)[1:]])  # a field short (and the signature no longer matters)


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


def test_link_ids_hash_the_parent_and_payload_not_signatures() -> None:
    root, child = chain_of(2)
    assert root.id == crypto.blake2b_256(chain_module.LINK_ID_CONTEXT + bytes(32)
                                         + root.payload)
    assert child.id == crypto.blake2b_256(chain_module.LINK_ID_CONTEXT + root.id
                                          + child.payload)
    again = chain_module._parse(child.payload + os.urandom(64), root.id, root.audience,
                                root.subject)
    assert again.id == child.id  # a different signature does not make a different link
    assert (child.issuer, child.subject, child.parent) == (ALICE.public_bytes,
                                                           ROOT.public_bytes, root.id)


@settings(max_examples=100, deadline=None, database=None)
@given(nbf=st.integers(0, 2**40), life=st.integers(1, 2**40), budget=st.integers(0, 16),
       resource=st.sampled_from(["a", "fs/reports/**", "x/*/y/**"]))
def test_the_grants_slice_is_exactly_their_encoding(nbf: int, life: int, budget: int,
                                                   resource: str) -> None:
    """The verifier finds the grants' bytes by position; any time and budget widths."""
    grants = [Grant(resource, {"read"}, {"n": Range(-5, 5)})]
    for parent in (None, chain_of(1)[0]):
        issuer = ROOT if parent is None else ALICE
        link = forge(issuer, parent=parent, grants=grants, nbf=nbf, exp=nbf + life,
                     budget=budget)
        chain_module.clear_caches()
        parsed = chain_module.parse_links([parent.data, link] if parent else [link])[-1]
        assert parsed.grants == tuple(grants)
        expected = {wire.encode_value([g.to_wire() for g in grants])}
        if parent is not None:
            expected.add(wire.encode_value([PARENT_GRANT.to_wire()]))
        assert set(chain_module._grants_seen) == expected


def test_link_objects_are_read_again_from_their_signed_bytes() -> None:
    leaf = chain_of(1)[0]
    edited = leaf._replace(grants=(Grant("**", {"*"}),))
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
    forged = forge(MALLORY, parent=links[0])
    for _ in range(2):  # a failure is never cached as a success
        with raises("bad_signature"):
            verify([links[0], forged])


def test_the_readme_token_example_runs_as_written() -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    section = readme.read_text(encoding="utf-8").split("### Capability tokens", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"root": ROOT, "alice": ALICE, "bob": BOB, "now": NOW}
    exec(compile(code, "README.md", "exec"), namespace)
    assert len(namespace["token"]) == 369  # the size the README states


def test_edited_link_objects_are_refused_or_reread() -> None:
    links = chain_of(2)
    verify(links)  # the signature is now remembered
    forged = links[1]._replace(issuer=MALLORY.public_bytes)
    assert not chain_module.signature_ok(forged)  # what is remembered is the exact message
    odd: Any
    untyped: Any = links[0]
    for odd in ([untyped._replace(signature=None)], [untyped._replace(payload="x")],
                links[0]):  # the last: one Link, which is a tuple, instead of a sequence
        with raises("invalid_argument"):
            verify_chain(odd, ANCHORS, now=NOW)


def test_a_hop_found_narrowing_is_remembered_by_its_link_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    links = [delegate(ROOT, ALICE, [PARENT_GRANT], not_before=NOW - 100, expires=NOW + 3600,
                      budget=1)]
    links.append(delegate(ALICE, BOB, [CHILD_GRANT], not_before=NOW - 60, expires=NOW + 60,
                          parent=links[0]))
    chain_module.clear_caches()
    calls: list[object] = []
    widening = chain_module._widening

    def counted(*args: Any) -> Any:
        calls.append(args)
        return widening(*args)

    monkeypatch.setattr(chain_module, "_widening", counted)
    for _ in range(3):
        verify_chain(links, ANCHORS, now=NOW)
    assert len(calls) == len(links) - 1  # each hop's grants compared once, then remembered
    assert chain_module._hops_within == {link.id for link in links[1:]}
    # A hop refused is never remembered, and a link's id names its parent too: the same
    # child payload under another parent is another id, checked afresh.
    wide = forge(ALICE, parent=links[0], grants=[Grant("**", {"*"})])
    with raises("widened_resource"):
        verify([links[0], wide])
    assert chain_module._hops_within == {link.id for link in links[1:]}


def test_a_hop_checked_for_delegate_is_not_remembered() -> None:
    # delegate() takes the parent as the caller's object, whose fields could have been
    # edited: a hop it checks must not vouch for the link at verification, where the
    # parent is read from its bytes.
    root = delegate(ROOT, ALICE, [CHILD_GRANT], not_before=NOW - 100, expires=NOW + 3600,
                    budget=1)
    edited = root._replace(grants=(Grant("**", {"*"}),))
    chain_module.clear_caches()
    wide = delegate(ALICE, BOB, [Grant("fs/**", {"*"})], not_before=NOW - 60,
                    expires=NOW + 60, parent=edited)
    assert wide.id not in chain_module._hops_within
    with raises("widened_resource"):
        verify([root, wide])

"""Rotation statements (spec 14.4) and the trust store's acceptance of them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentauth import AgentAuthError, DecodeError, Identity, wire
from agentauth.keys.rotation import ROTATION_CONTEXT, next_key_commitment, parse_rotation, rotate
from agentauth.keys.trust import TrustStore

KEYS = [Identity.from_seed(bytes([i]) * 32) for i in range(6)]
A0, A1, A2, A3, BOB, MALLORY = KEYS


def code_of(call: object, *args: object) -> str:
    with pytest.raises(AgentAuthError) as info:
        call(*args)  # type: ignore[operator]
    return info.value.code


def test_statement_round_trip_and_size() -> None:
    data = rotate(A0, A1, now=1_700_000_000, next_key=A2.peer)
    rotation = parse_rotation(data)
    assert (rotation.old, rotation.new, rotation.time) == (A0.peer, A1.peer, 1_700_000_000)
    assert rotation.next == next_key_commitment(A2.agent_id)
    assert len(data) <= 512
    assert parse_rotation(rotate(A0, A1, now=5)).next is None
    assert "A0" not in repr(rotation) and A0.agent_id in repr(rotation)


def test_both_keys_must_sign() -> None:
    data = rotate(A0, A1, now=1)
    payload, old_sig, new_sig = wire.decode_map(data, 3, 512, "x")
    forged_new = wire.encode_map(payload, old_sig, MALLORY.sign(ROTATION_CONTEXT + payload))
    forged_old = wire.encode_map(payload, MALLORY.sign(ROTATION_CONTEXT + payload), new_sig)
    assert code_of(parse_rotation, forged_new) == "bad_signature"
    assert code_of(parse_rotation, forged_old) == "bad_signature"
    other_context = wire.encode_map(payload, A0.sign(b"x" + payload), new_sig)
    assert code_of(parse_rotation, other_context) == "bad_signature"


def test_bad_forms_are_typed() -> None:
    assert code_of(parse_rotation, b"") == "malformed"
    assert code_of(parse_rotation, rotate(A0, A1, now=1) + b"\x00") == "malformed"
    v2 = wire.encode_map(2, A0.public_bytes, A1.public_bytes, b"", 1)
    statement = wire.encode_map(v2, A0.sign(ROTATION_CONTEXT + v2),
                                A1.sign(ROTATION_CONTEXT + v2))
    assert code_of(parse_rotation, statement) == "unknown_field"
    same = wire.encode_map(1, A0.public_bytes, A0.public_bytes, b"", 1)
    assert code_of(parse_rotation, wire.encode_map(same, b"", b"")) == "malformed"
    with pytest.raises(AgentAuthError):
        rotate(A0, A0, now=1)
    with pytest.raises(AgentAuthError):
        rotate(A0, A1, now=1, next_key=A1.peer)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_are_a_typed_error(data: bytes) -> None:
    with pytest.raises(AgentAuthError):
        parse_rotation(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 237), st.integers(1, 255))
def test_every_byte_flipped_is_refused(index: int, flip: int) -> None:
    data = bytearray(rotate(A0, A1, now=1_700_000_000, next_key=A2.peer))
    data[index % len(data)] ^= flip
    with pytest.raises(AgentAuthError):
        parse_rotation(bytes(data))


def store() -> TrustStore:
    return TrustStore().add_peer("alice", A0.agent_id).add_peer("bob", BOB.agent_id)


def test_pinned_peer_follows_a_rotation_once() -> None:
    before = store()
    statement = rotate(A0, A1, now=1)
    after, rotation = before.accept_rotation(statement)
    assert rotation.new == A1.peer
    assert after.peer_ids == {A1.agent_id, BOB.agent_id}
    assert after.get("alice") is not None and after.get("alice").retired == (A0.peer,)  # type: ignore[union-attr]
    assert before.peer_ids == {A0.agent_id, BOB.agent_id}  # the original is unchanged
    assert code_of(after.accept_rotation, statement) == "key_rotated"  # once
    # A statement signed by the key rotated away is refused, whatever it names.
    assert code_of(after.accept_rotation, rotate(A0, A2, now=2)) == "key_rotated"
    # Reloaded from its text, the store still knows.
    again = TrustStore.parse(after.dumps())
    assert code_of(again.accept_rotation, rotate(A0, A3, now=3)) == "key_rotated"
    chained, _ = again.accept_rotation(rotate(A1, A2, now=4))
    assert chained.peer_ids == {A2.agent_id, BOB.agent_id}


def test_pre_rotation_commitment_is_enforced() -> None:
    committed, _ = store().accept_rotation(rotate(A0, A1, now=1, next_key=A2.peer))
    assert committed.get("alice").next == next_key_commitment(A2.peer)  # type: ignore[union-attr]
    assert code_of(committed.accept_rotation, rotate(A1, A3, now=2)) == "rotation_mismatch"
    assert code_of(committed.accept_rotation, rotate(A1, MALLORY, now=2)) == \
        "rotation_mismatch"
    moved, _ = committed.accept_rotation(rotate(A1, A2, now=3))
    assert moved.get("alice").next is None  # type: ignore[union-attr]
    pinned = TrustStore().add_peer("alice", A0.agent_id, next_key=A1.agent_id)
    assert code_of(pinned.accept_rotation, rotate(A0, A2, now=1)) == "rotation_mismatch"


def test_unknown_or_conflicting_rotations_are_refused() -> None:
    assert code_of(store().accept_rotation, rotate(MALLORY, A3, now=1)) == "untrusted_peer"
    assert code_of(store().accept_rotation, rotate(A0, BOB, now=1)) == "rotation_mismatch"
    rotated, _ = store().accept_rotation(rotate(A0, A1, now=1))
    assert code_of(rotated.accept_rotation, rotate(A1, A0, now=2)) == "key_rotated"
    assert code_of(store().accept_rotation, b"\x00") in {"malformed"}
    with pytest.raises(DecodeError):
        store().accept_rotation(b"")


def test_anchor_and_peer_with_one_key_rotate_together() -> None:
    both = TrustStore().add_peer("alice", A0.agent_id).add_anchor("alice-root", A0.agent_id,
                                                                  "reports/**")
    moved, _ = both.accept_rotation(rotate(A0, A1, now=1))
    assert moved.peer_ids == {A1.agent_id}
    assert dict(moved.anchors) == {A1.agent_id: "reports/**"}

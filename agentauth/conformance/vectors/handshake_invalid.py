"""Negative vectors: each breaks one rule and names the error code that must come out."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ...handshake import INITIATOR_CONTEXT, RESPONDER_CONTEXT
from ...identity import Identity
from ...session import Session
from .forge import Forge, body2, body3
from .handshake_valid import ALICE, BOB, CAROL, MALLORY, T0, agent_id, cases, fixed, handshake
from .model import Inputs, Step, make_engine

__all__ = ["build_handshake", "build_session", "sessions"]

_LOW_ORDER = {
    "zero": bytes(32),
    "order-8": bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    "p-minus-1": bytes.fromhex("ec" + "ff" * 30 + "7f"),
}

_alice, _bob = (Identity.from_seed(bytes.fromhex(s)) for s in (ALICE, BOB))
_mallory = Identity.from_seed(bytes.fromhex(MALLORY))
_A_E, _B_E, _OTHER_E = fixed("alice ephemeral"), fixed("bob ephemeral"), fixed("other ephemeral")
_T_HS2, _T_HS3 = T0 + 0.5, T0 + 0.75
_TS = int(T0)


def _base() -> tuple[Inputs, Inputs]:
    _, _, ini, res, _ = cases()[0]
    return ini, res


def _vector(vid: str, description: str, role: str, inputs: Inputs, steps: list[Step],
            error: str) -> dict[str, Any]:
    return {"id": vid, "description": description, "role": role,
            "inputs": inputs.model_dump(), "steps": [s.model_dump() for s in steps],
            "error_step": len(steps) - 1, "error": error}


# ----------------------------------------------------------- initiator under test


def _hs2(body: bytes | None = None, **kw: Any) -> bytes:
    """HS2 from Bob's side of Alice's fixed HS1, with ``body`` and signing options."""
    forge = Forge()
    forge.read_hs1(Forge().write_hs1(bytes.fromhex(_A_E)))
    body = body2(1, _bob.public_bytes, _TS, {}) if body is None else body
    signer = kw.pop("signer", _bob)
    return forge.write_hs2(bytes.fromhex(_B_E), body, signer, **kw)


def _initiator_cases() -> list[tuple[str, str, bytes, str, dict[str, Any], float]]:
    """(id, description, HS2 bytes, error, input overrides, arrival time)."""
    honest = _hs2()
    alice_e = Forge().write_hs1(bytes.fromhex(_A_E))[:32]
    other = Forge()
    other.read_hs1(Forge().write_hs1(bytes.fromhex(_OTHER_E)))
    replayed = other.write_hs2(bytes.fromhex(_B_E), body2(1, _bob.public_bytes, _TS, {}), _bob)
    pub = _bob.public_bytes
    noncanonical_ts = (b"\x84\x00\x01\x01\xc4\x20" + pub + b"\x02\xcf"
                       + struct.pack(">Q", _TS) + b"\x03\x80")
    duplicate = b"\x85\x00\x01" + body2(1, pub, _TS, {})[1:]
    flipped = bytearray(honest)
    flipped[-1] ^= 0x01
    c: list[tuple[str, str, bytes, str, dict[str, Any], float]] = [
        ("hs2-oversize", "HS2 of 65536 bytes, one over the limit", bytes(65536),
         "oversize", {}, _T_HS2),
        ("hs2-truncated", "HS2 cut to 40 bytes", honest[:40], "malformed", {}, _T_HS2),
        ("hs2-no-body", "HS2 whose payload is a signature with no body",
         _hs2(b"")[:112], "malformed", {}, _T_HS2),
        ("hs2-bit-flip", "last bit of HS2's tag flipped", bytes(flipped), "decrypt_failed",
         {}, _T_HS2),
        ("hs2-reflected-ephemeral", "HS2 echoes the initiator's own ephemeral key",
         alice_e + honest[32:], "reflection", {}, _T_HS2),
        *[(f"hs2-low-order-{name}", f"HS2 ephemeral is the small-order point {name}",
           point + honest[32:], "low_order_point", {}, _T_HS2)
          for name, point in _LOW_ORDER.items()],
        ("hs2-replayed", "HS2 of another handshake (different initiator ephemeral)",
         replayed, "decrypt_failed", {}, _T_HS2),
        ("hs2-downgrade", "HS2 selects version 2, which was not offered (validly signed)",
         _hs2(body2(2, pub, _TS, {})), "downgrade", {}, _T_HS2),
        ("hs2-bad-signature", "HS2 signature over a different transcript hash",
         _hs2(signature=_bob.sign(RESPONDER_CONTEXT + bytes(64)
                                  + body2(1, pub, _TS, {}))), "bad_signature", {}, _T_HS2),
        ("hs2-initiator-context", "HS2 signed with the initiator's context string",
         _hs2(context=INITIATOR_CONTEXT), "bad_signature", {}, _T_HS2),
        ("hs2-signed-by-other", "HS2 names Bob but Mallory signed it",
         _hs2(signer=_mallory), "bad_signature", {}, _T_HS2),
        ("hs2-zero-signature", "HS2 signature of 64 zero bytes", _hs2(signature=bytes(64)),
         "bad_signature", {}, _T_HS2),
        ("hs2-identity-reflection", "HS2 names the initiator's own identity",
         _hs2(body2(1, _alice.public_bytes, _TS, {}), signer=_alice), "reflection", {},
         _T_HS2),
        ("hs2-unexpected-peer", "Mallory answers validly; the initiator pinned Bob",
         _hs2(body2(1, _mallory.public_bytes, _TS, {}), signer=_mallory), "unexpected_peer",
         {"trust": "any"}, _T_HS2),
        ("hs2-unexpected-untrusted-peer", "Mallory answers validly; the initiator pinned "
         "Bob and trusts only Bob: the pin is checked first",
         _hs2(body2(1, _mallory.public_bytes, _TS, {}), signer=_mallory), "unexpected_peer",
         {"trust": [agent_id(BOB)]}, _T_HS2),
        ("hs2-untrusted-peer", "Bob answers validly; the initiator trusts only Carol",
         honest, "untrusted_peer", {"trust": [agent_id(CAROL)], "expect": None}, _T_HS2),
        ("hs2-clock-behind", "HS2 timestamp 121 s behind the initiator's clock",
         _hs2(body2(1, pub, _TS - 121, {})), "clock_skew", {}, _T_HS2),
        ("hs2-clock-ahead", "HS2 timestamp 121 s ahead of the initiator's clock",
         _hs2(body2(1, pub, _TS + 121, {})), "clock_skew", {}, _T_HS2),
        ("hs2-timeout", "HS2 arrives 30.5 s after start; the timeout is 30 s", honest,
         "handshake_timeout", {}, T0 + 30.5),
        ("hs2-unknown-field", "HS2 body has a fifth field",
         _hs2(b"\x85" + body2(1, pub, _TS, {})[1:] + b"\x04\x00"), "unknown_field", {},
         _T_HS2),
        ("hs2-missing-field", "HS2 body lacks the extensions field",
         _hs2(b"\x83" + body2(1, pub, _TS, {})[1:-2]), "malformed", {}, _T_HS2),
        ("hs2-non-minimal-int", "HS2 timestamp written as uint64 where uint32 suffices",
         _hs2(noncanonical_ts), "non_canonical", {}, _T_HS2),
        ("hs2-duplicate-key", "HS2 body repeats field 0", _hs2(duplicate), "non_canonical",
         {}, _T_HS2),
        ("hs2-fields-out-of-order", "HS2 body fields 0 and 1 swapped",
         _hs2(b"\x84\x01\xc4\x20" + pub + b"\x00\x01" + body2(1, pub, _TS, {})[38:]),
         "non_canonical", {}, _T_HS2),
        ("hs2-wrong-type", "HS2 identity is a string, not bytes",
         _hs2(body2(1, "x" * 32, _TS, {})), "malformed", {}, _T_HS2),
        ("hs2-trailing-bytes", "HS2 body followed by one extra byte",
         _hs2(body2(1, pub, _TS, {}) + b"\x00"), "malformed", {}, _T_HS2),
        ("hs2-extensions-unsorted", "HS2 extension names not in sorted order",
         _hs2(body2(1, pub, _TS, {"b": b"", "a": b""})), "non_canonical", {}, _T_HS2),
        ("hs2-extension-name", "HS2 extension name with an upper-case letter",
         _hs2(body2(1, pub, _TS, {"Bad": b""})), "malformed", {}, _T_HS2),
    ]
    return c


def _initiator_vectors() -> list[dict[str, Any]]:
    base, _ = _base()
    out = []
    for vid, description, hs2, error, overrides, at in _initiator_cases():
        inputs = base.model_copy(update=overrides)
        steps = [Step(at=T0, start=True), Step(at=at, receive=hs2.hex())]
        out.append(_vector(vid, description, "initiator", inputs, steps, error))
    out.append(_vector("hs2-before-start", "a message reaches the initiator before start()",
                       "initiator", base, [Step(at=T0, receive=_hs2().hex())], "out_of_order"))
    return out


# ----------------------------------------------------------- responder under test


def _payload1(raw: bytes) -> bytes:
    return Forge().write_hs1(bytes.fromhex(_A_E), raw)


def _hs1_cases() -> list[tuple[str, str, bytes, str]]:
    a_e = _payload1(b"\x81\x00\x91\x01")[:32]
    return [
        ("hs1-oversize", "HS1 of 65536 bytes", bytes(65536), "oversize"),
        ("hs1-truncated", "HS1 of 31 bytes", a_e[:31], "malformed"),
        ("hs1-no-payload", "HS1 of only an ephemeral key", a_e, "malformed"),
        ("hs1-not-msgpack", "HS1 payload is the never-used byte 0xc1", a_e + b"\xc1",
         "malformed"),
        ("hs1-not-a-map", "HS1 payload is an array", a_e + b"\x91\x01", "malformed"),
        ("hs1-non-minimal-int", "version 1 written as uint8", a_e + b"\x81\x00\x91\xcc\x01",
         "non_canonical"),
        ("hs1-duplicate-key", "HS1 payload repeats field 0",
         a_e + b"\x82\x00\x91\x01\x00\x91\x01", "non_canonical"),
        ("hs1-unknown-field", "HS1 payload has a field 1", a_e + b"\x82\x00\x91\x01\x01\x00",
         "unknown_field"),
        ("hs1-trailing-bytes", "HS1 payload followed by one extra byte",
         a_e + b"\x81\x00\x91\x01\x00", "malformed"),
        ("hs1-ext-type", "HS1 offer holds a msgpack ext value", a_e + b"\x81\x00\x91\xd4\x01\x00",
         "malformed"),
        ("hs1-bool-key", "HS1 payload's field key written as false (equal to 0 in "
         "many languages)", a_e + b"\x81\xc2\x91\x01", "malformed"),
        ("hs1-float-version", "HS1 offers version 1.0 (a float)",
         a_e + b"\x81\x00\x91\xcb" + struct.pack(">d", 1.0), "malformed"),
        ("hs1-empty-offer", "HS1 offers no version", a_e + b"\x81\x00\x90", "malformed"),
        ("hs1-offer-unsorted", "HS1 offers [2, 1]", a_e + b"\x81\x00\x92\x02\x01",
         "non_canonical"),
        ("hs1-offer-repeated", "HS1 offers [1, 1]", a_e + b"\x81\x00\x92\x01\x01",
         "non_canonical"),
        ("hs1-no-common-version", "HS1 offers only version 7", a_e + b"\x81\x00\x91\x07",
         "no_common_version"),
        *[(f"hs1-low-order-{name}", f"HS1 ephemeral is the small-order point {name}",
           point + b"\x81\x00\x91\x01", "low_order_point") for name, point in _LOW_ORDER.items()],
    ]


def _honest_hs2(inputs: Inputs, hs1: bytes, at: float) -> bytes:
    responder = make_engine("responder", inputs, lambda: at)
    reply = responder.receive_message(hs1)
    assert reply is not None
    return reply


def _hs3(inputs: Inputs, *, body: bytes | None = None, e: str = _A_E,
         **kw: Any) -> tuple[bytes, bytes]:
    """(HS1, HS3) from Alice's side against the responder built from ``inputs``."""
    forge = Forge()
    hs1 = forge.write_hs1(bytes.fromhex(e))
    forge.read_hs2(_honest_hs2(inputs, hs1, _T_HS2 - 0.25))
    body = body3(_alice.public_bytes, _TS, {}) if body is None else body
    signer = kw.pop("signer", _alice)
    return hs1, forge.write_hs3(body, signer, **kw)


def _responder_vectors() -> list[dict[str, Any]]:
    _, base = _base()
    out = [_vector(vid, description, "responder", base, [Step(at=T0, receive=hs1.hex())], error)
           for vid, description, hs1, error in _hs1_cases()]
    reflect = base.model_copy(update={"ephemeral_secret": _A_E})
    hs1 = Forge().write_hs1(bytes.fromhex(_A_E))
    out.append(_vector("hs1-reflected-ephemeral",
                       "the responder's ephemeral equals the one HS1 carries", "responder",
                       reflect, [Step(at=T0, receive=hs1.hex())], "reflection"))
    pub = _alice.public_bytes
    honest_hs1, honest = _hs3(base)
    _, replayed = _hs3(base, e=_OTHER_E)
    flipped = bytearray(honest)
    flipped[0] ^= 0x80
    cases3: list[tuple[str, str, Inputs, bytes, bytes, str, float]] = [
        ("hs3-bit-flip", "first bit of HS3 flipped", base, honest_hs1, bytes(flipped),
         "decrypt_failed", _T_HS3),
        ("hs3-truncated-short", "HS3 of 80 bytes: shorter than tag and signature", base,
         honest_hs1, honest[:80], "malformed", _T_HS3),
        ("hs3-truncated", "HS3 missing its last byte", base, honest_hs1, honest[:-1],
         "decrypt_failed", _T_HS3),
        ("hs3-replayed", "HS3 of another handshake (different initiator ephemeral)", base,
         honest_hs1, replayed, "decrypt_failed", _T_HS3),
        ("hs3-bad-signature", "HS3 signature over a different transcript hash", base,
         *_hs3(base, signature=_alice.sign(INITIATOR_CONTEXT + bytes(64)
                                           + body3(pub, _TS, {}))), "bad_signature", _T_HS3),
        ("hs3-responder-context", "HS3 signed with the responder's context string", base,
         *_hs3(base, context=RESPONDER_CONTEXT), "bad_signature", _T_HS3),
        ("hs3-signed-by-other", "HS3 names Alice but Mallory signed it", base,
         *_hs3(base, signer=_mallory), "bad_signature", _T_HS3),
        ("hs3-identity-reflection", "HS3 names the responder's own identity", base,
         *_hs3(base, body=body3(_bob.public_bytes, _TS, {}), signer=_bob), "reflection",
         _T_HS3),
        ("hs3-untrusted-peer", "Mallory completes validly; Bob trusts only Alice", base,
         *_hs3(base, body=body3(_mallory.public_bytes, _TS, {}), signer=_mallory),
         "untrusted_peer", _T_HS3),
        ("hs3-unexpected-peer", "Alice completes validly; Bob pinned Carol",
         base.model_copy(update={"trust": "any", "expect": agent_id(CAROL)}),
         *_hs3(base.model_copy(update={"trust": "any", "expect": agent_id(CAROL)})),
         "unexpected_peer", _T_HS3),
        ("hs3-clock-behind", "HS3 timestamp 121 s behind the responder's clock", base,
         *_hs3(base, body=body3(pub, _TS - 121, {})), "clock_skew", _T_HS3),
        ("hs3-timeout", "HS3 arrives 30.5 s after HS1", base, honest_hs1, honest,
         "handshake_timeout", _T_HS2 - 0.25 + 30.5),
        ("hs3-unknown-field", "HS3 body has a fourth field", base,
         *_hs3(base, body=b"\x84" + body3(pub, _TS, {})[1:] + b"\x03\x00"), "unknown_field",
         _T_HS3),
        ("hs3-negative-timestamp", "HS3 timestamp is a negative integer", base,
         *_hs3(base, body=body3(pub, -1, {})), "malformed", _T_HS3),
    ]
    for vid, description, inputs, first, third, error, at in cases3:
        steps = [Step(at=_T_HS2 - 0.25, receive=first.hex()), Step(at=at, receive=third.hex())]
        out.append(_vector(vid, description, "responder", inputs, steps, error))
    twice = [Step(at=_T_HS2 - 0.25, receive=honest_hs1.hex()),
             Step(at=_T_HS3, receive=honest.hex()), Step(at=_T_HS3, receive=honest.hex())]
    out.append(_vector("hs3-twice", "a valid HS3 delivered a second time after completion",
                       "responder", base, twice, "out_of_order"))
    return out


def build_handshake(positive: dict[str, Any]) -> dict[str, Any]:
    """The content of ``handshake-negative.json``."""
    vectors = _initiator_vectors() + _responder_vectors()
    assert len({v["id"] for v in vectors}) == len(vectors)
    return {
        "description": "Each vector builds one engine from fixed inputs, feeds it the steps "
                       "in order with the clock at each step's time, and expects the named "
                       "error code at the last step and no error before it.",
        "vectors": vectors,
    }


# ------------------------------------------------------------------ sessions


def sessions(ordered: bool) -> tuple[Session, Session]:
    """Initiator and responder sessions of the ``basic`` positive vector."""
    _, _, ini, res, clock = cases()[0]
    res = res.model_copy(update={"ordered": ordered})
    i, r, _ = handshake(ini, res, clock)
    assert i.result is not None and r.result is not None
    return i.result.session, r.result.session


def _at(sender: Session, counter: int, payload: bytes = b"m") -> bytes:
    # The generator reaches a far counter without sealing every message before it. The
    # key stays that of epoch 0: a receiver must refuse a far epoch before decrypting.
    return sender.forge_for_vectors(0, payload, counter)


def _control_with_payload(sender: Session, kind: int) -> bytes:
    # Only a non-conforming sender puts a payload in a control message.
    return sender.forge_for_vectors(kind, b"junk")


def _session_cases() -> list[tuple[str, str, bool, Callable[[Session], list[bytes]], str]]:
    def flip(m: bytes, i: int) -> bytes:
        b = bytearray(m)
        b[i] ^= 0x01
        return bytes(b)

    return [
        ("ordered-replay", "the first message delivered twice", True,
         lambda s: [m := s.seal(b"one"), m], "replayed"),
        ("ordered-skip", "counter 1 arrives first", True,
         lambda s: [s.seal(b"lost"), s.seal(b"two")][1:], "out_of_order"),
        ("ordered-bit-flip", "a ciphertext bit flipped", True,
         lambda s: [flip(s.seal(b"one"), 12)], "decrypt_failed"),
        ("ordered-header-flip", "the type changed from DATA to CLOSE in transit", True,
         lambda s: [flip(s.seal(b"one"), 7)], "decrypt_failed"),
        ("ordered-too-short", "23 bytes: shorter than header and tag", True,
         lambda s: [s.seal(b"")[:23]], "malformed"),
        ("ordered-unknown-type", "message type 3 in the header's top byte", True,
         lambda s: [s.seal(b"one")[:7] + b"\x03" + s.seal(b"x")[8:]], "malformed"),
        ("ordered-counter-changed", "after counter 0, counter 2 relabelled as counter 1",
         True, lambda s: [s.seal(b"zero"), s.seal(b"one")[:0] + b"\x01" + s.seal(b"two")[1:]],
         "decrypt_failed"),
        ("ordered-after-close", "data after the peer's CLOSE", True,
         lambda s: [m := s.seal(b"one"), s.close(), m], "session_closed"),
        ("ordered-close-with-payload", "a CLOSE message that carries a payload", True,
         lambda s: [s.seal(b"one"), _control_with_payload(s, 1)], "malformed"),
        ("unordered-rekey-with-payload", "a REKEY message that carries a payload", False,
         lambda s: [_control_with_payload(s, 2)], "malformed"),
        ("unordered-replay", "a message delivered twice", False,
         lambda s: [s.seal(b"a"), m := s.seal(b"b"), m], "replayed"),
        ("unordered-stale", "counter 0 after counter 2048 (window is 2048)", False,
         lambda s: [m := s.seal(b"old"), _at(s, 2048), m], "stale"),
        ("unordered-epoch-skip", "a counter two epochs ahead", False,
         lambda s: [_at(s, 2 << 32)], "decrypt_failed"),
    ]


def build_session(positive: dict[str, Any]) -> dict[str, Any]:
    """The content of ``session-negative.json``."""
    vectors = []
    for vid, description, ordered, make, error in _session_cases():
        sender, _ = sessions(ordered)
        steps = [m.hex() for m in make(sender)]
        vectors.append({"id": vid, "description": description, "handshake": "basic",
                        "receiver": "responder", "ordered": ordered, "steps": steps,
                        "error_step": len(steps) - 1, "error": error})
    return {
        "description": "Each vector completes the named positive handshake (the receiver in "
                       "the given mode), feeds the receiver's session the steps in order, and "
                       "expects the named error code at the last step and no error before it.",
        "vectors": vectors,
    }

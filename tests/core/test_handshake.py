"""Adversarial handshake messages: tampered, replayed, reordered, reflected, relayed.

Every refusal names its exact code. The engines are deterministic (injected clock and
random source), so a fresh pair always writes the same bytes as a recorded run.
"""

from __future__ import annotations

from typing import Any

import pytest
from support import (
    ALICE,
    ANY,
    BOB,
    MALLORY,
    T0,
    Clock,
    Pair,
    Random,
    Tamper,
    complete,
    flip,
    make_pair,
    outcome,
    raises,
    run_tampered,
)

from agentauth import HandshakeState, Initiator, Responder
from agentauth.conformance.vectors import Forge, body2, body3

M_E1, M_E2 = bytes(range(32)), bytes(range(32, 64))  # Mallory's ephemeral secrets


def test_happy_path() -> None:
    ext_i, ext_r = {"a.b": b"1", "z": b""}, {"x-y": b"\x00" * 3}
    pair = make_pair(i_kwargs={"expect": BOB.agent_id, "extensions": ext_i},
                     r_kwargs={"expect": ALICE.peer, "extensions": ext_r})
    assert complete(pair) == ("none", "ok")
    a, b = pair.initiator.result, pair.responder.result
    assert a is not None and b is not None
    assert pair.initiator.state is pair.responder.state is HandshakeState.DONE
    assert a.peer_id == BOB.agent_id and b.peer_id == ALICE.agent_id
    assert a.peer == BOB.peer and b.peer == ALICE.peer
    assert a.channel_binding == b.channel_binding and len(a.channel_binding) == 64
    assert a.version == b.version == 1
    assert dict(a.peer_extensions) == ext_r and dict(b.peer_extensions) == ext_i
    assert b.session.open(a.session.seal(b"hi")) == b"hi"


FLIPS = [
    *[(1, i, mask, "initiator", "decrypt_failed") for i in (0, 16, 31) for mask in (1, 0x40)],
    (1, 31, 0x80, "initiator", "decrypt_failed"),  # ignored by X25519 but hashed
    (1, 32, 0x01, "responder", "malformed"),  # map of 0 fields
    (1, 33, 0x01, "responder", "unknown_field"),  # field key 1
    (1, 34, 0x01, "responder", "malformed"),  # empty offer
    (1, 35, 0x01, "responder", "malformed"),  # version 0
    (1, 35, 0x02, "responder", "no_common_version"),  # version 3
    *[(2, i, 1, "initiator", "decrypt_failed") for i in (0, 31, 32, 64, 100, -17, -1)],
    *[(3, i, mask, "responder", "decrypt_failed") for i in (0, 50, -16, -1) for mask in (1, 0x80)],
]


@pytest.mark.parametrize(("which", "index", "mask", "side", "code"), FLIPS)
def test_bit_flip(which: int, index: int, mask: int, side: str, code: str) -> None:
    assert run_tampered(make_pair(), which, lambda m: flip(m, index, mask)) == (side, code)


RESIZES: list[tuple[str, int, Tamper, str]] = [
    ("hs1-empty", 1, lambda m: b"", "malformed"),
    ("hs1-31", 1, lambda m: m[:31], "malformed"),
    ("hs1-key-only", 1, lambda m: m[:32], "malformed"),
    ("hs1-minus-1", 1, lambda m: m[:-1], "malformed"),
    ("hs1-plus-1", 1, lambda m: m + b"\x00", "malformed"),
    ("hs1-oversize", 1, lambda m: m.ljust(65536, b"\x00"), "oversize"),
    ("hs2-empty", 2, lambda m: b"", "malformed"),
    ("hs2-112", 2, lambda m: m[:112], "malformed"),
    ("hs2-minus-1", 2, lambda m: m[:-1], "decrypt_failed"),
    ("hs2-plus-1", 2, lambda m: m + b"\x00", "decrypt_failed"),
    ("hs2-oversize", 2, lambda m: m.ljust(65536, b"\x00"), "oversize"),
    ("hs3-empty", 3, lambda m: b"", "malformed"),
    ("hs3-80", 3, lambda m: m[:80], "malformed"),
    ("hs3-minus-1", 3, lambda m: m[:-1], "decrypt_failed"),
    ("hs3-plus-1", 3, lambda m: m + b"\x00", "decrypt_failed"),
    ("hs3-oversize", 3, lambda m: m.ljust(65536, b"\x00"), "oversize"),
]


@pytest.mark.parametrize(("which", "tamper", "code"), [r[1:] for r in RESIZES],
                         ids=[r[0] for r in RESIZES])
def test_truncation_and_extension(which: int, tamper: Tamper, code: str) -> None:
    side = "initiator" if which == 2 else "responder"
    assert run_tampered(make_pair(), which, tamper) == (side, code)


LOW_ORDER = {
    "zero": bytes(32),
    "one": b"\x01" + bytes(31),
    "order-8": bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    "order-8b": bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    "p-1": bytes.fromhex("ec" + "ff" * 30 + "7f"),
    "p": bytes.fromhex("ed" + "ff" * 30 + "7f"),
    "p+1": bytes.fromhex("ee" + "ff" * 30 + "7f"),
    "zero-high-bit": bytes(31) + b"\x80",
}


@pytest.mark.parametrize("which", [1, 2])
@pytest.mark.parametrize("point", LOW_ORDER.values(), ids=LOW_ORDER.keys())
def test_low_order_ephemeral(which: int, point: bytes) -> None:
    side = "responder" if which == 1 else "initiator"
    result = run_tampered(make_pair(), which, lambda m: point + m[32:])
    assert result == (side, "low_order_point")


# Each script drives one engine of a fresh pair with the recorded messages of a completed
# handshake (same inputs, so the same bytes); only the last step fails.
SCRIPTS = [
    ("initiator-message-before-start", "initiator", ["hs2"], "out_of_order"),
    ("initiator-hs2-twice", "initiator", ["start", "hs2", "hs2"], "out_of_order"),
    ("initiator-hs1-echoed", "initiator", ["start", "hs1"], "malformed"),  # too short
    ("initiator-hs3-as-hs2", "initiator", ["start", "hs3"], "decrypt_failed"),
    ("responder-hs1-twice", "responder", ["hs1", "hs1"], "malformed"),  # read as HS3
    ("responder-hs3-twice", "responder", ["hs1", "hs3", "hs3"], "out_of_order"),
    ("responder-hs1-after-done", "responder", ["hs1", "hs3", "hs1"], "out_of_order"),
    ("responder-own-hs2-echoed", "responder", ["hs1", "hs2"], "decrypt_failed"),
    # HS3 first: its ciphertext is read as an ephemeral key and an offer (deterministic).
    ("responder-hs3-before-hs1", "responder", ["hs3"], "malformed"),
]


@pytest.mark.parametrize(("role", "script", "code"), [s[1:] for s in SCRIPTS],
                         ids=[s[0] for s in SCRIPTS])
def test_replay_and_reorder_into_same_engine(role: str, script: list[str], code: str) -> None:
    recorded = dict(zip(["hs1", "hs2", "hs3"], make_pair().run(), strict=True))
    pair = make_pair()
    engine = pair.initiator if role == "initiator" else pair.responder

    def step(name: str) -> object:
        if name == "start":
            return pair.initiator.start()
        return engine.receive_message(recorded[name])

    for name in script[:-1]:
        step(name)
    with raises(code):
        step(script[-1])


@pytest.mark.parametrize("which", [2, 3])
def test_replay_into_a_new_engine(which: int) -> None:
    old = make_pair().run()
    clock, random = Clock(), Random(b"another run")
    if which == 2:
        initiator = Initiator(ALICE, ANY, clock=clock, random=random)
        initiator.start()
        with raises("decrypt_failed"):
            initiator.receive_message(old[1])
    else:
        responder = Responder(BOB, ANY, clock=clock, random=random)
        assert responder.receive_message(old[0]) != old[1]  # a replayed HS1 gets a new HS2
        with raises("decrypt_failed"):
            responder.receive_message(old[2])


def test_reflection_of_own_ephemeral_and_identity() -> None:
    # HS2 carrying the initiator's own ephemeral key (HS1 echoed, padded to HS2's size).
    pair = make_pair()
    own = make_pair().initiator.start()[:32]
    assert run_tampered(pair, 2, lambda m: own + m[32:]) == ("initiator", "reflection")
    # The responder draws the initiator's ephemeral (same random source).
    initiator = Initiator(ALICE, ANY, clock=Clock(), random=Random(b"same"))
    responder = Responder(BOB, ANY, clock=Clock(), random=Random(b"same"))
    with raises("reflection"):
        responder.receive_message(initiator.start())
    assert complete(make_pair(r_identity=ALICE)) == ("initiator", "reflection")
    # HS3 naming the responder's own identity (signed with it): reflection too.
    pair, forge = make_pair(), Forge()
    forge.read_hs2(pair.responder.receive_message(forge.write_hs1(M_E1)) or b"")
    with raises("reflection"):
        pair.responder.receive_message(forge.write_hs3(body3(BOB.public_bytes, int(T0), {}),
                                                       BOB))


def _mitm_hs2(pair: Pair, body: bytes | None, signer: Any) -> bytes:
    """Mallory runs HS1/HS2 with Bob under her own ephemeral, then writes Alice an HS2
    under another ephemeral: Bob's signed body re-encrypted (``body`` None) or her own."""
    hs1 = pair.initiator.start()
    to_bob = Forge()
    signed = to_bob.read_hs2(pair.responder.receive_message(to_bob.write_hs1(M_E1)) or b"")
    to_alice = Forge()
    to_alice.read_hs1(hs1)
    if body is None:
        return to_alice.write_hs2(M_E2, signed[64:], BOB, signature=signed[:64])
    return to_alice.write_hs2(M_E2, body, signer)


def test_mitm_substituting_ephemerals() -> None:
    # Bob's HS2, computed against Mallory's ephemeral, forwarded to Alice unchanged.
    pair = make_pair()
    pair.initiator.start()
    hs2 = pair.responder.receive_message(Forge().write_hs1(M_E1))
    with raises("decrypt_failed"):
        pair.initiator.receive_message(hs2 or b"")
    # Bob's signature and body re-encrypted for Alice: the transcript differs.
    pair = make_pair()
    with raises("bad_signature"):
        pair.initiator.receive_message(_mitm_hs2(pair, None, None))


@pytest.mark.parametrize(("expect", "code"), [(BOB.agent_id, "unexpected_peer"), (None, "ok")])
def test_mitm_as_herself(expect: str | None, code: str) -> None:
    pair = make_pair(i_kwargs={"expect": expect})
    hs2 = _mitm_hs2(pair, body2(1, MALLORY.public_bytes, int(T0), {}), MALLORY)
    assert outcome(lambda: pair.initiator.receive_message(hs2)) == code
    if code == "ok":  # nothing is hidden: Alice learns she is talking to Mallory
        assert pair.initiator.result is not None
        assert pair.initiator.result.peer == MALLORY.peer


def test_no_secret_material_in_reprs() -> None:
    pair = make_pair(i_kwargs={"expect": BOB.agent_id})
    texts = [repr(pair.initiator), repr(pair.responder)]
    hs1 = pair.initiator.start()
    hs2 = pair.responder.receive_message(hs1) or b""
    texts += [repr(pair.initiator), repr(pair.responder)]
    pair.responder.receive_message(pair.initiator.receive_message(hs2) or b"")
    results = [pair.initiator.result, pair.responder.result]
    texts += [repr(pair.initiator), repr(pair.responder), repr(ANY)]
    secrets = [ALICE.export_seed(), BOB.export_seed(), *pair.i_random.outputs,
               *pair.r_random.outputs]
    for result in results:
        assert result is not None
        session = result.session
        texts += [repr(result), str(result), repr(session), str(session)]
        secrets += [session._send_key, session._recv_key, session._exporter]
        assert result.channel_binding.hex() not in repr(result)
    for text in texts:
        for secret in secrets:
            for form in (secret.hex(), secret.hex().upper(), repr(secret), repr(secret)[2:-1]):
                assert form not in text, text


@pytest.mark.parametrize("fail", [False, True])
def test_handshake_secrets_are_erased_at_the_end(fail: bool) -> None:
    # spec 4.12: the ephemeral secret, ck, h and the handshake key are erased on DONE and on
    # failure (checked through private attributes: nothing public exposes them).
    pair = make_pair()
    hs2 = pair.responder.receive_message(pair.initiator.start()) or b""
    live = [pair.initiator._symmetric, pair.responder._symmetric]
    assert pair.initiator._e_secret and pair.responder._symmetric.cipher.k is not None
    if fail:
        with raises("decrypt_failed"):
            pair.initiator.receive_message(flip(hs2, -1))
        engines: list[Initiator | Responder] = [pair.initiator]
    else:
        pair.responder.receive_message(pair.initiator.receive_message(hs2) or b"")
        engines = [pair.initiator, pair.responder]
    for engine in engines:
        assert engine._e_secret == b""
        assert engine._symmetric not in live and engine._symmetric.cipher.k is None


@pytest.mark.parametrize(
    "extensions",
    [{"Bad": b""}, {"": b""}, {"a" * 33: b""}, {"ok": "text"}, {"ok": bytearray()},
     {f"e{i}": b"" for i in range(17)}, [("a", b"")]],
    ids=["upper", "empty", "long", "str-value", "bytearray", "seventeen", "not-a-map"],
)
def test_own_invalid_extensions_refused_before_anything_is_sent(extensions: Any) -> None:
    for cls in (Initiator, Responder):
        with raises("invalid_argument"):
            cls(ALICE, ANY, extensions=extensions)


"""The runner as an active attacker between the driver and an honest reference peer.

Each attack changes the conversation in one way (replay, reflection, reordering,
tampering with one field, downgrade, truncation, a clock off by too much, a peer that is
not trusted) and names the one code the spec's processing order gives for it; where the
code depends on where a random bit landed (a bit flipped in HS1), it is the code a
reference engine given the driver's inputs gives for the same bytes. After a refused
session message the genuine one must still open (no desynchronisation, section 5.5);
after a refused handshake message the engine stays failed with the same code (section
4.13).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ... import crypto, wire
from ...errors import AgentAuthError
from ...handshake import SUPPORTED_VERSIONS
from ...identity import Identity
from ..vectors.forge import Forge, body2, body3
from .check import (
    T0,
    Check,
    Context,
    Fail,
    compare_reference,
    expect_refusal,
    get_hex,
    get_str,
)
from .conversation import Conversation

__all__ = ["HANDSHAKE_FIELDS", "SESSION_FIELDS", "attack_checks", "session_field_code"]

_P = "protocol.md §"
_TS = int(T0)

#: The fields of each handshake message as (name, start, end) (end <= 0 counts from the
#: end) and the code a flipped bit there must give: None means "what the reference gives
#: for the same bytes": a code of HS1's checks (4.3), or a reply the honest peer cannot
#: accept (a change the checks let through only shows in the transcript).
HANDSHAKE_FIELDS: dict[str, list[tuple[str, int, int, str | None]]] = {
    "hs1": [("ephemeral", 0, 32, None), ("offer", 32, 0, None)],
    "hs2": [("ephemeral", 0, 32, "decrypt_failed"), ("encrypted-payload", 32, -16,
                                                     "decrypt_failed"),
            ("tag", -16, 0, "decrypt_failed")],
    "hs3": [("encrypted-payload", 0, -16, "decrypt_failed"), ("tag", -16, 0,
                                                               "decrypt_failed")],
}
#: The fields of a session message (section 5.2).
SESSION_FIELDS = [("counter", 0, 7), ("type", 7, 8), ("ciphertext", 8, -16), ("tag", -16, 0)]
_SECTION = {"hs1": "4.3", "hs2": "4.5", "hs3": "4.7"}


def session_field_code(message: bytes, tampered: bytes, ordered: bool) -> str:
    """The code section 5.5 gives for ``tampered``, a changed copy of the next expected
    ``message`` of the same length."""
    value = int.from_bytes(tampered[:8], "little")
    if value >> 56 > 2:
        return "malformed"
    if ordered and int.from_bytes(tampered[:7], "little") != int.from_bytes(message[:7],
                                                                            "little"):
        return "out_of_order"
    return "decrypt_failed"


def _flip(message: bytes, start: int, end: int, ctx: Context) -> bytes:
    stop = len(message) + end if end <= 0 else end
    begin = len(message) + start if start < 0 else start
    out = bytearray(message)
    out[ctx.rng.randrange(begin, stop)] ^= 1 << ctx.rng.randrange(8)
    return bytes(out)


def _must_not_complete(live: Conversation, what: str) -> None:
    """The driver (responder) accepted a changed HS1: its HS2 must not satisfy the peer."""
    try:
        live.peer.receive_message(get_hex(live.result, "reply"))
    except AgentAuthError:
        return
    raise Fail(f"{what}: the handshake went on as if HS1 had not been changed")


# ------------------------------------------------------------------ tampering


def _tamper_handshake(msg: str, start: int, end: int, code: str | None, ctx: Context) -> None:
    live = Conversation(ctx, "responder" if msg in ("hs1", "hs3") else "initiator")
    live.first()
    if msg == "hs1":
        changed = _flip(live.hs1, start, end, ctx)
        twin = live.twin()
        if compare_reference(ctx, lambda: twin.receive_message(changed),
                             lambda: live.receive(changed), "a bit flipped in HS1") is None:
            _must_not_complete(live, "a bit flipped in HS1")
        return
    live.second()
    if msg == "hs2":
        changed = _flip(live.hs2, start, end, ctx)
    else:
        live.third()
        changed = _flip(live.hs3, start, end, ctx)
    assert code is not None
    expect_refusal(ctx, code, lambda: live.receive(changed), f"{msg} with one bit flipped")
    genuine = live.hs2 if msg == "hs2" else live.hs3
    expect_refusal(ctx, code, lambda: live.receive(genuine),
                   "the genuine message after the failure (sticky, 4.13)")


def _tamper_session(start: int, end: int, ordered: bool, ctx: Context) -> None:
    live = Conversation(ctx, "responder", ordered=ordered, peer_ordered=ordered)
    ours = live.complete()
    message = ours.seal(b"tamper me")
    changed = _flip(message, start, end, ctx)
    expect_refusal(ctx, session_field_code(message, changed, ordered),
                   lambda: live.open(changed), "a session message with one bit flipped")
    if live.open(message) != b"tamper me":
        raise Fail("the genuine message did not open after the tampered one was refused")


# ------------------------------------------------------------------ replay, reflection


def _replayed_hs2(ctx: Context) -> None:
    first = Conversation(ctx, "initiator")
    first.complete()
    second = Conversation(ctx, "initiator")
    second.first()
    expect_refusal(ctx, "decrypt_failed", lambda: second.receive(first.hs2), "an earlier HS2")


def _replayed_initiator(ctx: Context) -> None:
    first = Conversation(ctx, "responder")
    first.complete()
    # A new handshake of the same responder (a fresh ephemeral), fed the old HS1 and HS3.
    first.handle = get_str(first.d.call("handshake", role="responder",
                                        identity=first.driver_id, trust=[first.me.agent_id],
                                        random=ctx.seed32()), "handle")
    first.receive(first.hs1)
    expect_refusal(ctx, "decrypt_failed", lambda: first.receive(first.hs3),
                   "HS1 and HS3 replayed from an earlier handshake")


def _replayed_data(ordered: bool, ctx: Context) -> None:
    live = Conversation(ctx, "responder", ordered=ordered, peer_ordered=ordered)
    ours = live.complete()
    message = ours.seal(b"once")
    live.open(message)
    expect_refusal(ctx, "replayed", lambda: live.open(message), "a message delivered twice")


def _reflected_ephemeral_hs2(ctx: Context) -> None:
    live = Conversation(ctx, "initiator")
    live.first()
    live.second()
    expect_refusal(ctx, "reflection", lambda: live.receive(live.hs1[:32] + live.hs2[32:]),
                   "HS2 carrying the initiator's own ephemeral")


def _reflected_ephemeral_hs1(ctx: Context) -> None:
    secret = bytes.fromhex(ctx.seed32())
    live = Conversation(ctx, "responder", driver_random=secret.hex())
    hs1 = Forge().write_hs1(secret)
    expect_refusal(ctx, "reflection", lambda: live.receive(hs1),
                   "HS1 carrying the responder's own next ephemeral")


def _reflected_identity_hs2(ctx: Context) -> None:
    live = Conversation(ctx, "initiator", driver_trust="any", expect=None)
    forge = Forge()
    forge.read_hs1(live.first())
    me = live.driver_identity
    hs2 = forge.write_hs2(bytes.fromhex(ctx.seed32()), body2(1, me.public_bytes, _TS, {}), me)
    expect_refusal(ctx, "reflection", lambda: live.receive(hs2), "HS2 naming the initiator itself")


def _reflected_identity_hs3(ctx: Context) -> None:
    live = Conversation(ctx, "responder", driver_trust="any")
    forge = Forge()
    live.receive(forge.write_hs1(bytes.fromhex(ctx.seed32())))
    forge.read_hs2(get_hex(live.result, "reply"))
    me = live.driver_identity
    hs3 = forge.write_hs3(body3(me.public_bytes, _TS, {}), me)
    expect_refusal(ctx, "reflection", lambda: live.receive(hs3), "HS3 naming the responder itself")


def _reflected_data(ctx: Context) -> None:
    live = Conversation(ctx, "initiator")
    live.complete()
    expect_refusal(ctx, "decrypt_failed", lambda: live.open(live.seal(b"mine")),
                   "the driver's own message sent back to it")


# ------------------------------------------------------------------ order


def _before_start(ctx: Context) -> None:
    live = Conversation(ctx, "initiator")
    expect_refusal(ctx, "out_of_order", lambda: live.receive(bytes(200)), "a message before start")


def _after_done(role: str, ctx: Context) -> None:
    live = Conversation(ctx, role)
    live.complete()
    late = live.hs2 if role == "initiator" else live.hs3
    expect_refusal(ctx, "out_of_order", lambda: live.receive(late),
                   "a handshake message after done")


def _reordered(ordered: bool, ctx: Context) -> None:
    live = Conversation(ctx, "initiator", ordered=ordered, peer_ordered=ordered)
    ours = live.complete()
    first, second = ours.seal(b"first"), ours.seal(b"second")
    if ordered:
        expect_refusal(ctx, "out_of_order", lambda: live.open(second), "message 1 before 0")
        if live.open(first) != b"first" or live.open(second) != b"second":
            raise Fail("the messages did not open in order after the refusal")
    elif live.open(second) != b"second" or live.open(first) != b"first":
        raise Fail("an unordered session did not accept messages out of order")


# ------------------------------------------------------------------ downgrade, time, trust


def _downgrade(ctx: Context) -> None:
    live = Conversation(ctx, "initiator")
    forge = Forge()
    forge.read_hs1(live.first())
    hs2 = forge.write_hs2(bytes.fromhex(ctx.seed32()), body2(2, live.me.public_bytes, _TS, {}),
                          live.me)
    expect_refusal(ctx, "downgrade", lambda: live.receive(hs2), "HS2 selecting version 2")


def _offer_edited(ctx: Context) -> None:
    live = Conversation(ctx, "initiator")
    hs1 = live.first()
    edited = hs1[:32] + wire.encode_map(sorted({*SUPPORTED_VERSIONS, 2}))
    reply = live.peer.receive_message(edited)  # the honest responder sees another offer
    assert reply is not None
    expect_refusal(ctx, "decrypt_failed", lambda: live.receive(reply),
                   "HS2 answering an offer edited in flight")


def _man_in_the_middle(role: str, ctx: Context) -> None:
    """The attacker runs the DH itself and names the trusted peer, but signs with its own
    key: it cannot sign as the peer."""
    live = Conversation(ctx, role)
    attacker = Identity.from_seed(bytes.fromhex(ctx.seed32()))
    forge = Forge()
    if role == "initiator":
        forge.read_hs1(live.first())
        message = forge.write_hs2(bytes.fromhex(ctx.seed32()),
                                  body2(1, live.me.public_bytes, _TS, {}), attacker)
    else:
        live.receive(forge.write_hs1(bytes.fromhex(ctx.seed32())))
        forge.read_hs2(get_hex(live.result, "reply"))
        message = forge.write_hs3(body3(live.me.public_bytes, _TS, {}), attacker)
    expect_refusal(ctx, "bad_signature", lambda: live.receive(message),
                   "a message naming the trusted peer, signed by another key")


def _window(ctx: Context) -> None:
    live = Conversation(ctx, "responder", ordered=False, peer_ordered=False)
    ours = live.complete()
    sent = [ours.seal(n.to_bytes(2, "big")) for n in range(2101)]
    steps = [(0, None), (1, None), (2100, None), (52, "stale"), (53, None), (53, "replayed"),
             (2099, None), (1, "stale"), (1000, None), (1000, "replayed")]
    for counter, code in steps:
        if code is None:
            if live.open(sent[counter]) != counter.to_bytes(2, "big"):
                raise Fail(f"counter {counter} did not open to its payload")
        else:
            expect_refusal(ctx, code, functools.partial(live.open, sent[counter]),
                           f"counter {counter} after 2100")


def _highest_common(ctx: Context) -> None:
    live = Conversation(ctx, "responder")
    forge = Forge()
    offer = sorted({*SUPPORTED_VERSIONS, 2, 3})
    live.receive(forge.write_hs1(bytes.fromhex(ctx.seed32()), wire.encode_map(offer)))
    plaintext = forge.read_hs2(get_hex(live.result, "reply"))
    version = wire.decode_map(plaintext[crypto.SIGNATURE_LEN:], 4, 1 << 16, "HS2 body")[0]
    if version != max(SUPPORTED_VERSIONS):
        raise Fail(f"offered {offer}, the responder selected {version}")


def _no_common(ctx: Context) -> None:
    live = Conversation(ctx, "responder")
    hs1 = Forge().write_hs1(bytes.fromhex(ctx.seed32()), wire.encode_map([2, 3]))
    expect_refusal(ctx, "no_common_version", lambda: live.receive(hs1), "an offer of [2, 3]")


def _skew(role: str, ctx: Context) -> None:
    live = Conversation(ctx, role, peer_clock=200.0 if role == "initiator" else -200.0,
                peer_skew=1000.0)
    live.first()
    live.second()
    if role == "initiator":
        expect_refusal(ctx, "clock_skew", lambda: live.receive(live.hs2), "HS2 200 s ahead")
    else:
        live.third()
        expect_refusal(ctx, "clock_skew", lambda: live.receive(live.hs3), "HS3 200 s behind")


def _timeout(poll: bool, ctx: Context) -> None:
    live = Conversation(ctx, "initiator", timeout=30.0)
    live.first()
    live.second()
    live.d.call("set_clock", now=T0 + 30.5)
    if poll:
        expect_refusal(ctx, "handshake_timeout", lambda: live.call("check_timeout"),
                       "check_timeout 30.5 s after start")
    else:
        expect_refusal(ctx, "handshake_timeout", lambda: live.receive(live.hs2),
                       "HS2 30.5 s after start")


def _trust(role: str, kind: str, ctx: Context) -> None:
    stranger = Identity.from_seed(bytes.fromhex(ctx.seed32())).agent_id
    if kind == "untrusted_peer":
        live = Conversation(ctx, role, driver_trust=[stranger], expect=None)
    else:
        live = Conversation(ctx, role, driver_trust="any", expect=stranger)
    live.first()
    live.second()
    if role == "initiator":
        expect_refusal(ctx, kind, lambda: live.receive(live.hs2), f"HS2 from a peer ({kind})")
    else:
        live.third()
        expect_refusal(ctx, kind, lambda: live.receive(live.hs3), f"HS3 from a peer ({kind})")


# ------------------------------------------------------------------ truncation


def _truncate(msg: str, length: int, code: str, ctx: Context) -> None:
    live = Conversation(ctx, "initiator" if msg == "hs2" else "responder")
    live.first()
    if msg == "hs1":
        data = live.hs1
    else:
        live.second()
        data = live.hs2 if msg == "hs2" else live.third()
    cut = data[:length]
    expect_refusal(ctx, code, lambda: live.receive(cut), f"{msg} cut to {len(cut)} bytes")


def _truncate_session(length: int, code: str, ctx: Context) -> None:
    live = Conversation(ctx, "responder")
    ours = live.complete()
    message = ours.seal(b"cut")
    expect_refusal(ctx, code, lambda: live.open(message[:length]),
                   f"a session message cut to {len(message[:length])} bytes")
    if live.open(message) != b"cut":
        raise Fail("the genuine message did not open after the cut one was refused")


def attack_checks() -> list[Check]:
    """Every attack, as checks named by the section whose rule they test."""
    c: list[tuple[str, str, Callable[[Context], None]]] = []
    for msg, fields in HANDSHAKE_FIELDS.items():
        for name, start, end, code in fields:
            c.append((_SECTION[msg], f"tamper-{msg}-{name}",
                      functools.partial(_tamper_handshake, msg, start, end, code)))
    for ordered in (True, False):
        mode = "ordered" if ordered else "unordered"
        for name, start, end in SESSION_FIELDS:
            c.append(("5.5", f"tamper-{mode}-{name}",
                      functools.partial(_tamper_session, start, end, ordered)))
        c.append(("5.5" if ordered else "5.6", f"replayed-data-{mode}",
                  functools.partial(_replayed_data, ordered)))
        c.append(("5.5" if ordered else "5.6", f"reordered-{mode}",
                  functools.partial(_reordered, ordered)))
    c += [
        ("8.5", "replayed-hs2", _replayed_hs2),
        ("8.5", "replayed-hs1-hs3", _replayed_initiator),
        ("4.5", "reflected-ephemeral-hs2", _reflected_ephemeral_hs2),
        ("4.3", "reflected-ephemeral-hs1", _reflected_ephemeral_hs1),
        ("4.5", "reflected-identity-hs2", _reflected_identity_hs2),
        ("4.7", "reflected-identity-hs3", _reflected_identity_hs3),
        ("5.5", "reflected-data", _reflected_data),
        ("4.13", "message-before-start", _before_start),
        ("4.13", "hs2-after-done", functools.partial(_after_done, "initiator")),
        ("4.13", "hs3-after-done", functools.partial(_after_done, "responder")),
        ("4.9", "downgrade-hs2", _downgrade),
        ("8.6", "offer-edited-in-flight", _offer_edited),
        ("4.8", "man-in-the-middle-hs2", functools.partial(_man_in_the_middle, "initiator")),
        ("4.8", "man-in-the-middle-hs3", functools.partial(_man_in_the_middle, "responder")),
        ("5.6", "sliding-window", _window),
        ("4.9", "highest-common-version", _highest_common),
        ("4.3", "no-common-version", _no_common),
        ("4.11", "clock-skew-hs2", functools.partial(_skew, "initiator")),
        ("4.11", "clock-skew-hs3", functools.partial(_skew, "responder")),
        ("4.11", "timeout-hs2", functools.partial(_timeout, False)),
        ("4.11", "timeout-check", functools.partial(_timeout, True)),
    ]
    for role, section in (("initiator", "4.5"), ("responder", "4.7")):
        for kind in ("untrusted_peer", "unexpected_peer"):
            c.append((section, f"{kind.replace('_', '-')}-{role}",
                      functools.partial(_trust, role, kind)))
    for msg, length, code in (("hs1", 0, "malformed"), ("hs1", 31, "malformed"),
                              ("hs1", 32, "malformed"), ("hs1", -1, "malformed"),
                              ("hs2", 0, "malformed"), ("hs2", 112, "malformed"),
                              ("hs2", -1, "decrypt_failed"), ("hs3", 0, "malformed"),
                              ("hs3", 80, "malformed"), ("hs3", -1, "decrypt_failed")):
        c.append((_SECTION[msg], f"truncated-{msg}-{length if length >= 0 else 'last-byte'}",
                  functools.partial(_truncate, msg, length, code)))
    for length, code in ((0, "malformed"), (23, "malformed"), (-1, "decrypt_failed")):
        c.append(("5.5", f"truncated-session-{length if length >= 0 else 'last-byte'}",
                  functools.partial(_truncate_session, length, code)))
    return [Check(_P + section, f"attack / {name}", fn) for section, name, fn in c]

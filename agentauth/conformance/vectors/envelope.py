"""Envelope vectors (spec section 12): exact bytes for fixed keys, nonces, clock and (for
sealed envelopes) ephemeral keys, and envelopes that each break one rule of 12.2.

Each vector is one recipient opening a sequence of envelopes in order, with one replay
store and one table of requests awaiting replies; each envelope's result is ``ok`` or an
error code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ... import crypto, wire
from ...envelope import ENVELOPE_CONTEXT, SEALED, seal
from ...identity import Identity

__all__ = ["NOW", "build", "identity"]

NOW = 1_800_000_000


def identity(name: str) -> Identity:
    """The fixed identity named ``name``."""
    return Identity.from_seed(crypto.blake2b_256(b"envelope vectors " + name.encode()))


ALICE, BOB, CAROL, MALLORY = (identity(n) for n in ("alice", "bob", "carol", "mallory"))


def _fixed(label: str) -> Callable[[int], bytes]:
    return lambda n: crypto.blake2b_256(label.encode())[:n]


def envelope(sender: Identity, recipient: Identity, payload: bytes, label: str, *,
             time: int = NOW, reply_to: bytes = b"", sealed: bool = False) -> bytes:
    """An envelope with every input fixed (sealed: its ephemeral key too)."""
    signed = seal(sender, recipient, payload, reply_to=reply_to, clock=lambda: time,
                  random=_fixed(label))
    if not sealed:
        return signed
    box = crypto.sealed_box_for_vectors(crypto.blake2b_256(b"eph " + label.encode()),
                                        recipient.public_bytes, signed)
    return wire.encode_map(SEALED, recipient.public_bytes, box)


def nonce(label: str) -> bytes:
    """The nonce :func:`envelope` gives the envelope labelled ``label``."""
    return _fixed(label)(16)


def _vector(vid: str, description: str, envelopes: list[bytes], expected: list[str], *,
            me: Identity = BOB, now: int = NOW, trusted: list[Identity] | None = None,
            pending: list[tuple[bytes, Identity]] | None = None,
            payloads: list[bytes] | None = None) -> dict[str, Any]:
    vector: dict[str, Any] = {
        "id": vid,
        "description": description,
        "me_seed": me.export_seed().hex(),
        "now": now,
        "window": 300,
        "skew": 60,
        "trusted": None if trusted is None else [x.agent_id for x in trusted],
        "pending": [{"nonce": n.hex(), "recipient": r.agent_id, "expires": NOW + 360}
                    for n, r in (pending or [])],
        "envelopes": [e.hex() for e in envelopes],
        "expected": expected,
    }
    if payloads is not None:
        vector["payloads"] = [p.hex() for p in payloads]
    return vector


def _tamper(data: bytes, field: int, value: Any) -> bytes:
    """The signed envelope ``data`` with one body field replaced, the signature kept."""
    kind, body, signature = wire.decode_map(data, 3, 1 << 20, "envelope")
    fields = wire.decode_map(body, 6, 1 << 20, "body")
    fields[field] = value
    return wire.encode_map(kind, wire.encode_map(*fields), signature)


def build() -> dict[str, Any]:
    """The content of ``envelope.json``."""
    hello = envelope(ALICE, BOB, b"hello bob", "hello")
    sealed = envelope(ALICE, BOB, b"for bob only", "sealed", sealed=True)
    request = nonce("request")
    reply = envelope(BOB, ALICE, b"here is the answer", "reply", reply_to=request)
    forged_body = wire.decode_map(hello, 3, 1 << 20, "e")[1]
    vectors = [
        _vector("envelope-signed", "a signed envelope from alice to bob", [hello], ["ok"],
                payloads=[b"hello bob"]),
        _vector("envelope-sealed", "a sealed envelope: only bob can read it or tell who "
                "sent it", [sealed], ["ok"], payloads=[b"for bob only"]),
        _vector("envelope-reply", "bob's reply to the request alice sent him",
                [reply], ["ok"], me=ALICE, pending=[(request, BOB)],
                payloads=[b"here is the answer"]),
        _vector("envelope-wrong-recipient", "an envelope for carol, opened by bob",
                [envelope(ALICE, CAROL, b"x", "carol")], ["wrong_recipient"]),
        _vector("envelope-sealed-wrong-recipient", "a sealed envelope for carol",
                [envelope(ALICE, CAROL, b"x", "carol2", sealed=True)], ["wrong_recipient"]),
        _vector("envelope-sealed-relabelled", "a box sealed to carol, labelled for bob",
                [wire.encode_map(SEALED, BOB.public_bytes, wire.decode_map(
                    envelope(ALICE, CAROL, b"x", "carol3", sealed=True), 3, 1 << 20,
                    "e")[2])], ["decrypt_failed"]),
        _vector("envelope-expired", "sent 361 s ago (window 300 s, skew 60 s)",
                [hello], ["stale"], now=NOW + 361),
        _vector("envelope-oldest", "sent exactly window + skew ago", [hello], ["ok"],
                now=NOW + 360, payloads=[b"hello bob"]),
        _vector("envelope-future", "dated 61 s ahead of bob's clock", [hello],
                ["clock_skew"], now=NOW - 61),
        _vector("envelope-replayed", "the same envelope twice", [hello, hello],
                ["ok", "replayed"], payloads=[b"hello bob", b""]),
        _vector("envelope-tampered", "the payload changed under the signature",
                [_tamper(hello, 5, b"hello mallory")], ["bad_signature"]),
        _vector("envelope-forged", "mallory signs a body that names alice as sender",
                [wire.encode_map(1, forged_body, MALLORY.sign(ENVELOPE_CONTEXT
                                                              + forged_body))],
                ["bad_signature"]),
        _vector("envelope-untrusted", "bob trusts only carol", [hello], ["untrusted_peer"],
                trusted=[CAROL]),
        _vector("envelope-reply-wrong-request", "a reply naming a request never sent",
                [envelope(BOB, ALICE, b"x", "stray", reply_to=nonce("other"))],
                ["unexpected_reply"], me=ALICE, pending=[(request, BOB)]),
        _vector("envelope-reply-wrong-sender", "carol answers the request sent to bob",
                [envelope(CAROL, ALICE, b"x", "carol-reply", reply_to=request)],
                ["unexpected_reply"], me=ALICE, pending=[(request, BOB)]),
        _vector("envelope-reply-twice", "a second reply to one request", [
            reply, envelope(BOB, ALICE, b"again", "reply2", reply_to=request)],
                ["ok", "unexpected_reply"], me=ALICE, pending=[(request, BOB)],
                payloads=[b"here is the answer", b""]),
        _vector("envelope-non-canonical", "the kind written as a uint8",
                [hello[:2] + b"\xcc" + hello[2:]], ["non_canonical"]),
        _vector("envelope-unknown-kind", "an envelope of kind 3",
                [wire.encode_map(3, *wire.decode_map(hello, 3, 1 << 20, "e")[1:])],
                ["unknown_field"]),
        _vector("envelope-short-nonce", "a nonce of 15 bytes (signed as such)",
                [_resign(_tamper(hello, 2, bytes(15)), ALICE)], ["malformed"]),
        _vector("envelope-trailing", "one byte after the envelope", [hello + b"\x00"],
                ["malformed"]),
        _vector("envelope-short-signature", "a signature of 63 bytes on an envelope for "
                "carol: the form is checked before the recipient",
                [_cut_signature(envelope(ALICE, CAROL, b"x", "short"))], ["malformed"]),
        _vector("envelope-sealed-holds-sealed", "a box holding a sealed envelope",
                [_boxed(sealed, "in-sealed")], ["malformed"]),
        _vector("envelope-sealed-holds-kind-3", "a box holding an envelope of kind 3",
                [_boxed(wire.encode_map(3, *wire.decode_map(hello, 3, 1 << 20, "e")[1:]),
                        "in-kind-3")], ["unknown_field"]),
        _vector("envelope-sealed-holds-non-canonical", "a box holding a signed envelope "
                "whose kind is written as a uint8",
                [_boxed(hello[:2] + b"\xcc" + hello[2:], "in-non-canonical")],
                ["non_canonical"]),
        _vector("envelope-sealed-holds-garbage", "a box holding a byte that begins no "
                "msgpack value", [_boxed(b"\xc1", "in-garbage")], ["malformed"]),
        _vector("envelope-sealed-holds-other-recipient", "a box sealed to bob holding a "
                "signed envelope for carol", [_boxed(envelope(ALICE, CAROL, b"x", "in-carol"),
                                                     "in-carol")], ["wrong_recipient"]),
    ]
    return {
        "description": "One-shot envelopes (spec section 12). The recipient (seed `me_seed`) "
                       "opens `envelopes` in order at clock `now` with one replay store, "
                       "`window` and `skew`, trusting only `trusted` (null: anyone), with "
                       "`pending` as its requests awaiting replies; each envelope gives its "
                       "entry of `expected`, and an opened one the payload in `payloads`. "
                       "Keys come from the seeds BLAKE2b-256('envelope vectors ' || name).",
        "vectors": vectors,
    }


def _boxed(content: bytes, label: str, recipient: Identity = BOB) -> bytes:
    """A sealed envelope to ``recipient`` whose box holds ``content``, whatever it is."""
    box = crypto.sealed_box_for_vectors(crypto.blake2b_256(b"eph " + label.encode()),
                                        recipient.public_bytes, content)
    return wire.encode_map(SEALED, recipient.public_bytes, box)


def _cut_signature(data: bytes) -> bytes:
    kind, body, signature = wire.decode_map(data, 3, 1 << 20, "envelope")
    return wire.encode_map(kind, body, signature[:63])


def _resign(data: bytes, sender: Identity) -> bytes:
    kind, body, _ = wire.decode_map(data, 3, 1 << 20, "envelope")
    return wire.encode_map(kind, body, sender.sign(ENVELOPE_CONTEXT + body))

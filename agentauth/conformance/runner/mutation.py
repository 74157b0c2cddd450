"""Random mutation rounds: genuine messages changed at random, from a recorded seed.

Round ``r`` targets ``TARGETS[r % 8]``; like every check, it draws everything else (the
keys of its handshake, the mutation) from a generator seeded with the run's seed and its
own id, so one failing round comes out the same however it is rerun. Whatever a mutation
does, the driver must answer the changed bytes as this implementation (the reference) does:
refused with the reference's code, which is the code of the first rule the bytes break in
the order the spec checks them, or accepted where the reference accepts. A changed HS1 the
reference accepts must be answered with an HS2 the honest peer cannot accept (the
transcript covers HS1's exact bytes); after a refused session message the genuine one still
opens, and so does a genuine envelope after a changed one. A changed request frame may still
be a frame (a flipped bit in a body is one): the driver must then decode it to what the
reference decodes it to.
"""

from __future__ import annotations

import functools
import random

from ...agent.frames import (
    decode_frame,
    encode_cancel,
    encode_error,
    encode_present,
    encode_request,
    encode_response,
)
from ...errors import AgentAuthError, CapabilityDenied, Refusal
from ..interface import frame_to_json
from .check import (
    Check,
    Context,
    Fail,
    compare_codes,
    compare_reference,
    get_hex,
    refusal,
)
from .conversation import Conversation
from .sessionless import Chain, make_mailbox

__all__ = ["TARGETS", "make_frame", "mutate", "mutation_checks"]

TARGETS = ("hs1", "hs2", "hs3", "ordered", "unordered", "chain", "envelope", "frame")
_SECTION = {"hs1": "4.3", "hs2": "4.5", "hs3": "4.7", "ordered": "5.5", "unordered": "5.6",
            "chain": "10.6", "envelope": "12.2", "frame": "15.2"}
_FRAME_LIMIT = 4096


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A changed copy of ``data`` and what was done to it."""
    for _ in range(16):
        kind = rng.choice(("flip", "byte", "truncate", "extend", "insert", "delete",
                           "duplicate") if data else ("extend", "insert"))
        at = rng.randrange(len(data)) if data else 0
        if kind == "flip":
            bit = rng.randrange(8)
            out = data[:at] + bytes([data[at] ^ 1 << bit]) + data[at + 1:]
            what = f"flip bit {bit} of byte {at}"
        elif kind == "byte":
            value = rng.randrange(256)
            out = data[:at] + bytes([value]) + data[at + 1:]
            what = f"byte {at} set to {value}"
        elif kind == "truncate":
            out, what = data[:at], f"cut to {at} bytes"
        elif kind == "extend":
            extra = rng.randbytes(rng.randrange(1, 9))
            out, what = data + extra, f"{len(extra)} bytes appended"
        elif kind == "insert":
            out, what = data[:at] + rng.randbytes(1) + data[at:], f"a byte inserted at {at}"
        elif kind == "delete":
            out, what = data[:at] + data[at + 1:], f"byte {at} deleted"
        else:
            size = rng.randrange(1, 17)
            out = data[:at] + data[at:at + size] + data[at:]
            what = f"{size} bytes at {at} repeated"
        if out != data:
            return out, what
    return data + b"\x00", "a zero byte appended"


def make_frame(rng: random.Random) -> bytes:
    """A genuine request frame of a kind drawn from ``rng``."""
    request_id = rng.randrange(2**rng.choice((8, 32, 64)))
    kind = rng.randrange(5)
    if kind == 0:
        return encode_present(rng.randrange(1, 2**32), rng.randbytes(rng.randrange(90, 200)))
    if kind == 1:
        args = {f"a{i}": rng.choice((rng.randrange(-2**33, 2**33), "text", False))
                for i in range(rng.randrange(4))}
        return encode_request(request_id, "jobs/nightly", "run", args,
                              rng.randbytes(rng.randrange(40)), rng.randrange(2**32))
    if kind == 2:
        return encode_response(request_id, rng.randbytes(rng.randrange(40)))
    if kind == 3:
        return encode_error(request_id, CapabilityDenied(
            "no grant allows it", code="not_authorized", refusal=Refusal("action", 0, 0)))
    return encode_cancel(request_id)


def _frame(rng: random.Random, ctx: Context) -> None:
    changed, what = mutate(make_frame(rng), rng)
    try:
        want: object = frame_to_json(decode_frame(changed, _FRAME_LIMIT))
    except AgentAuthError as exc:
        compare_codes(ctx, exc.code, refusal(lambda: ctx.driver().call(
            "frame_decode", frame=changed.hex(), limit=_FRAME_LIMIT)), f"frame, {what}")
        return
    got = ctx.driver().call("frame_decode", frame=changed.hex(), limit=_FRAME_LIMIT)
    if got.get("frame") != want:
        raise Fail(f"frame, {what}: still a frame, decoded to {str(got)[:120]}, expected "
                   f"{str(want)[:120]}")


def _round(index: int, ctx: Context) -> None:
    _run(TARGETS[index % len(TARGETS)], ctx.rng, ctx)


def _run(target: str, rng: random.Random, ctx: Context) -> None:
    if target == "frame":
        _frame(rng, ctx)
        return
    if target == "chain":
        chain = Chain(ctx)
        changed, what = mutate(chain.data, rng)
        compare_reference(ctx, lambda: chain.reference(changed),
                      lambda: chain.verify(ctx, changed), f"chain, {what}")
        return
    if target == "envelope":
        box, data = make_mailbox(ctx)
        changed, what = mutate(data, rng)
        if compare_reference(ctx, lambda: box.reference(changed), lambda: box.open(changed),
                         f"envelope, {what}") is not None:
            box.open(data)  # nothing was remembered for the refused one
        return
    ordered = target != "unordered"
    live = Conversation(ctx, "initiator" if target == "hs2" else "responder", ordered=ordered,
                        peer_ordered=ordered)
    if target == "hs1":
        changed, what = mutate(live.first(), rng)
        twin = live.twin()
        if compare_reference(ctx, lambda: twin.receive_message(changed),
                         lambda: live.receive(changed), f"HS1, {what}") is not None:
            return
        try:
            live.peer.receive_message(get_hex(live.result, "reply"))
        except AgentAuthError:
            return
        raise Fail(f"HS1, {what}: the handshake went on as if HS1 had not been changed")
    live.first()
    live.second()
    if target in ("hs2", "hs3"):
        if target == "hs3":
            live.third()
        changed, what = mutate(live.hs2 if target == "hs2" else live.hs3, rng)
        twin = live.twin()
        compare_reference(ctx, lambda: twin.receive_message(changed),
                      lambda: live.receive(changed), f"{target.upper()}, {what}")
        return
    live.third()
    ours = live.complete()
    payload = rng.randbytes(rng.randrange(0, 64))
    message = ours.seal(payload)
    changed, what = mutate(message, rng)
    twin = live.twin()
    assert twin.result is not None
    session = twin.result.session
    if compare_reference(ctx, lambda: session.open(changed), lambda: live.open(changed),
                     f"session message, {what}") is None:
        return
    if live.open(message) != payload:
        raise Fail(f"session message, {what}: the genuine message did not open afterwards")


def mutation_checks(seed: int, rounds: int) -> list[Check]:
    """``rounds`` mutation rounds from ``seed``."""
    return [Check(f"protocol.md §{_SECTION[TARGETS[i % len(TARGETS)]]}",
                  f"mutation / {TARGETS[i % len(TARGETS)]} / seed {seed} round {i}",
                  functools.partial(_round, i)) for i in range(rounds)]

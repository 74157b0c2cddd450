"""Live checks of what needs no handshake: capability chains and one-shot envelopes made by
the runner with fresh keys, for the driver to verify and open.

The vectors pin exact bytes for fixed keys; these make new chains and envelopes from the
run's seed, so an implementation that only recognises the vectors fails them. Each
``make_*`` function also gives the mutation rounds a genuine input to change.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ...capability import Grant, Range, Request, delegate, encode_chain, invoke
from ...envelope import seal
from ...identity import Identity
from .check import T0, Check, Context, Fail, expect_refusal, get_hex, get_str
from .conversation import Conversation

__all__ = ["Chain", "Mailbox", "make_chain", "make_mailbox", "sessionless_checks"]

_P = "protocol.md §"


class Chain:
    """A chain root -> alice -> bob made with fresh keys, and how to ask the driver about it."""

    __slots__ = ("anchors", "bob", "data", "request")

    def __init__(self, ctx: Context, *, depth: int = 2) -> None:
        root, alice, bob = (Identity.from_seed(bytes.fromhex(ctx.seed32())) for _ in range(3))
        nonce = ctx.rng.randbytes
        links = [delegate(root, alice.agent_id, [Grant("fs/reports/**", {"read", "list"},
                                                       {"size": Range(0, 1000)})],
                          not_before=T0 - 60, expires=T0 + 3600, budget=depth,
                          nonce=nonce(16))]
        if depth > 1:
            links.append(delegate(alice, bob.agent_id, [Grant("fs/reports/q3/*", {"read"},
                                                              {"size": Range(0, 100)})],
                                  not_before=T0 - 30, expires=T0 + 600, parent=links[0],
                                  nonce=nonce(16)))
        self.data = encode_chain(links)
        self.anchors = {root.agent_id: "fs/**"}
        self.bob = (bob if depth > 1 else alice).agent_id
        self.request = {"resource": "fs/reports/q3/summary", "action": "read",
                        "args": {"size": 50}}

    def verify(self, ctx: Context, data: bytes | None = None, **override: Any) -> object:
        """Ask the driver to verify the chain (or ``data``) for bob's request, at T0."""
        d = ctx.driver()
        d.call("set_clock", now=float(T0))
        params: dict[str, Any] = {"chain": (self.data if data is None else data).hex(),
                                  "anchors": self.anchors, "holder": self.bob,
                                  "request": self.request}
        params.update(override)
        return d.call("verify_chain", **params)


def make_chain(ctx: Context) -> Chain:
    """A fresh chain of two links."""
    return Chain(ctx)


class Mailbox:
    """A recipient identity in the driver, an opener for it, and a sender in the runner."""

    __slots__ = ("ctx", "handle", "me", "sender")

    def __init__(self, ctx: Context, *, trust: list[str] | None = None,
                 pending: list[dict[str, Any]] | None = None,
                 seen: list[dict[str, Any]] | None = None) -> None:
        self.ctx = ctx
        d = ctx.driver()
        self.sender = Identity.from_seed(bytes.fromhex(ctx.seed32()))
        self.me = get_str(d.call("create_identity", seed=ctx.seed32()), "agent_id")
        d.call("set_clock", now=float(T0))
        self.handle = get_str(d.call("envelope_opener", recipient=self.me, trust=trust,
                                     pending=pending or [], seen=seen or []), "handle")

    def envelope(self, payload: bytes, *, encrypt: bool = False, reply_to: bytes = b"",
                 nonce: bytes | None = None, at: float = T0) -> bytes:
        """An envelope from the runner's sender to the driver's recipient."""
        nonce = self.ctx.rng.randbytes(16) if nonce is None else nonce
        return seal(self.sender, self.me, payload, encrypt=encrypt, reply_to=reply_to,
                    clock=lambda: at, random=lambda _: nonce)

    def open(self, data: bytes) -> dict[str, Any]:
        """The driver opens ``data``."""
        return self.ctx.driver().call("open_envelope", handle=self.handle, envelope=data.hex())


def make_mailbox(ctx: Context) -> tuple[Mailbox, bytes]:
    """A fresh mailbox and a sealed envelope for it."""
    box = Mailbox(ctx)
    return box, box.envelope(b"for the mutation round", encrypt=ctx.rng.random() < 0.5)


# ------------------------------------------------------------------ capability checks


def _chain_ok(depth: int, ctx: Context) -> None:
    Chain(ctx, depth=depth).verify(ctx)


def _chain_refused(what: str, code: str, ctx: Context) -> None:
    chain = Chain(ctx)
    overrides: dict[str, dict[str, Any]] = {
        "holder": {"holder": Identity.from_seed(bytes.fromhex(ctx.seed32())).agent_id},
        "request": {"request": {"resource": "fs/reports/q3/summary", "action": "write",
                                "args": {"size": 50}}},
        "constraint": {"request": {"resource": "fs/reports/q3/summary", "action": "read",
                                   "args": {"size": 500}}},
        "anchor": {"anchors": {Identity.from_seed(bytes.fromhex(ctx.seed32())).agent_id:
                               "**"}},
    }
    expect_refusal(code, lambda: chain.verify(ctx, **overrides[what]), f"a chain ({what})")


def _chain_time(offset: int, code: str, ctx: Context) -> None:
    chain = Chain(ctx)
    d = ctx.driver()
    d.call("set_clock", now=float(T0 + offset))
    expect_refusal(code, lambda: d.call("verify_chain", chain=chain.data.hex(),
                                        anchors=chain.anchors, holder=chain.bob,
                                        request=chain.request), f"a chain at T0{offset:+d}")


def _held_by(holder: Identity, ctx: Context) -> tuple[bytes, dict[str, str]]:
    root = Identity.from_seed(bytes.fromhex(ctx.seed32()))
    link = delegate(root, holder.agent_id, [Grant("jobs/**", {"run"})], not_before=T0 - 60,
                    expires=T0 + 3600, nonce=ctx.rng.randbytes(16))
    return encode_chain([link]), {root.agent_id: "**"}


_RUN = Request("jobs/nightly", "run")


def _invocation_in_session(ctx: Context) -> None:
    live = Conversation(ctx, "responder")
    live.complete()
    binding = get_hex(live.result, "channel_binding")
    chain, anchors = _held_by(live.me, ctx)
    d = live.d
    handle = get_str(d.call("invocation_verifier", mode="session", anchors=anchors,
                            peer=live.me.agent_id, channel_binding=binding.hex()), "handle")

    def check(invocation: bytes) -> object:
        return d.call("check_invocation", handle=handle, invocation=invocation.hex())

    first = invoke(chain, _RUN, channel_binding=binding, clock=lambda: T0,
                   random=ctx.rng.randbytes)
    check(first)
    expect_refusal("replayed", lambda: check(first), "the same invocation again")
    other = invoke(chain, _RUN, channel_binding=ctx.rng.randbytes(64), clock=lambda: T0,
                   random=ctx.rng.randbytes)
    expect_refusal("wrong_session", lambda: check(other), "an invocation of another session")
    check(invoke(chain, _RUN, channel_binding=binding, clock=lambda: T0,
                 random=ctx.rng.randbytes))


def _invocation_detached(ctx: Context) -> None:
    d = ctx.driver()
    holder = Identity.from_seed(bytes.fromhex(ctx.seed32()))
    verifier = get_str(d.call("create_identity", seed=ctx.seed32()), "agent_id")
    chain, anchors = _held_by(holder, ctx)
    d.call("set_clock", now=float(T0))
    handle = get_str(d.call("invocation_verifier", mode="detached", anchors=anchors,
                            verifier=verifier), "handle")

    def check(invocation: bytes) -> object:
        return d.call("check_invocation", handle=handle, invocation=invocation.hex())

    def signed(to: str, at: float = T0) -> bytes:
        return invoke(chain, _RUN, holder=holder, verifier=to, clock=lambda: at,
                      random=ctx.rng.randbytes)

    first = signed(verifier)
    check(first)
    expect_refusal("replayed", lambda: check(first), "the same invocation again")
    elsewhere = signed(Identity.from_seed(bytes.fromhex(ctx.seed32())).agent_id)
    expect_refusal("wrong_verifier", lambda: check(elsewhere), "an invocation for another")
    old = signed(verifier, T0 - 1000)
    expect_refusal("stale_invocation", lambda: check(old), "an invocation 1000 s old")


# ------------------------------------------------------------------ envelope checks


def _envelope_once(encrypt: bool, ctx: Context) -> None:
    box = Mailbox(ctx)
    data = box.envelope(b"hello", encrypt=encrypt)
    opened = box.open(data)
    if get_hex(opened, "payload") != b"hello" or opened.get("sender") != box.sender.agent_id:
        raise Fail("the envelope opened to another payload or sender")
    if opened.get("sealed") is not encrypt:
        raise Fail(f"sealed is {opened.get('sealed')!r}, expected {encrypt}")
    expect_refusal("replayed", lambda: box.open(data), "the same envelope again")


def _envelope_seen(ctx: Context) -> None:
    nonce = ctx.rng.randbytes(16)
    sender = Identity.from_seed(bytes.fromhex(ctx.seed32()))
    box = Mailbox(ctx, seen=[{"key": (sender.public_bytes + nonce).hex(),
                              "expires": T0 + 360}])
    data = seal(sender, box.me, b"x", clock=lambda: T0, random=lambda _: nonce)
    expect_refusal("replayed", lambda: box.open(data), "an envelope the store has seen")


def _envelope_reply(ctx: Context) -> None:
    asked = ctx.rng.randbytes(16)
    responder = Identity.from_seed(bytes.fromhex(ctx.seed32()))
    box = Mailbox(ctx, pending=[{"nonce": asked.hex(), "recipient": responder.agent_id,
                                 "expires": T0 + 360}])
    box.sender = responder
    reply = box.envelope(b"answer", reply_to=asked)
    if get_hex(box.open(reply), "reply_to") != asked:
        raise Fail("the reply opened without its request's nonce")
    again = box.envelope(b"answer again", reply_to=asked)
    expect_refusal("unexpected_reply", lambda: box.open(again), "a second reply")


def _envelope_refused(what: str, code: str, ctx: Context) -> None:
    box = Mailbox(ctx, trust=[] if what == "untrusted" else None)
    if what == "stale":
        data = box.envelope(b"old", at=T0 - 361)
    elif what == "future":
        data = box.envelope(b"new", at=T0 + 61)
    elif what == "wrong-recipient":
        other = Identity.from_seed(bytes.fromhex(ctx.seed32()))
        data = seal(box.sender, other.agent_id, b"x", clock=lambda: T0)
    else:
        data = box.envelope(b"x")
    expect_refusal(code, lambda: box.open(data), f"an envelope ({what})")


def sessionless_checks() -> list[Check]:
    """Fresh chains for the driver to verify and envelopes for it to open."""
    c: list[tuple[str, str, Callable[[Context], None]]] = [
        ("10.6", "chain-depth-1", functools.partial(_chain_ok, 1)),
        ("10.6", "chain-depth-2", functools.partial(_chain_ok, 2)),
        ("10.6", "chain-stolen", functools.partial(_chain_refused, "holder",
                                                   "holder_mismatch")),
        ("10.6", "chain-other-action", functools.partial(_chain_refused, "request",
                                                         "not_authorized")),
        ("10.6", "chain-argument-out-of-range", functools.partial(
            _chain_refused, "constraint", "not_authorized")),
        ("10.6", "chain-untrusted-root", functools.partial(_chain_refused, "anchor",
                                                           "untrusted_root")),
        ("10.6", "chain-expired", functools.partial(_chain_time, 3600 + 61, "expired")),
        ("10.6", "chain-not-yet-valid", functools.partial(_chain_time, -200,
                                                          "not_yet_valid")),
        ("10.7", "invocation-in-session", _invocation_in_session),
        ("10.7", "invocation-detached", _invocation_detached),
        ("12.2", "envelope-signed", functools.partial(_envelope_once, False)),
        ("12.2", "envelope-sealed", functools.partial(_envelope_once, True)),
        ("12.2", "envelope-store-has-seen", _envelope_seen),
        ("12.2", "envelope-reply", _envelope_reply),
        ("12.2", "envelope-stale", functools.partial(_envelope_refused, "stale", "stale")),
        ("12.2", "envelope-future", functools.partial(_envelope_refused, "future",
                                                      "clock_skew")),
        ("12.2", "envelope-wrong-recipient", functools.partial(
            _envelope_refused, "wrong-recipient", "wrong_recipient")),
        ("12.2", "envelope-untrusted", functools.partial(_envelope_refused, "untrusted",
                                                         "untrusted_peer")),
    ]
    return [Check(_P + section, f"live / {name}", fn) for section, name, fn in c]

"""Live checks of what needs no handshake: capability chains and one-shot envelopes made by
the runner with fresh keys, for the driver to verify and open, and request frames for the
driver's serving side of a channel to decide (spec 15).

The vectors pin exact bytes for fixed keys; these make new chains and envelopes from the
run's seed, so an implementation that only recognises the vectors fails them. Each
``make_*`` function also gives the mutation rounds a genuine input to change.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ...agent.frames import encode_cancel, encode_present, encode_request
from ...capability import Grant, Range, Request, delegate, encode_chain, invoke, verify_chain
from ...envelope import PendingRequests, open_envelope, seal
from ...identity import Identity, PeerKey
from ...stores import MemoryReplayStore
from .check import T0, Check, Context, Fail, expect_refusal, get_hex, get_str
from .conversation import Conversation

__all__ = ["Chain", "Mailbox", "RequestServer", "make_chain", "make_mailbox",
           "sessionless_checks"]

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
        self.request: dict[str, Any] = {"resource": "fs/reports/q3/summary",
                                        "action": "read", "args": {"size": 50}}

    def reference(self, data: bytes) -> None:
        """Verify ``data`` as :meth:`verify` asks the driver to, with this implementation."""
        request = self.request
        verify_chain(data, self.anchors, now=T0, holder=PeerKey.from_agent_id(self.bob),
                     request=Request(request["resource"], request["action"], request["args"]))

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

    __slots__ = ("_identity", "ctx", "handle", "me", "sender")

    def __init__(self, ctx: Context, *, trust: list[str] | None = None,
                 pending: list[dict[str, Any]] | None = None,
                 seen: list[dict[str, Any]] | None = None) -> None:
        self.ctx = ctx
        d = ctx.driver()
        self.sender = Identity.from_seed(bytes.fromhex(ctx.seed32()))
        self._identity = Identity.from_seed(bytes.fromhex(ctx.seed32()))
        self.me = get_str(d.call("create_identity", seed=self._identity.export_seed().hex()),
                          "agent_id")
        d.call("set_clock", now=float(T0))
        self.handle = get_str(d.call("envelope_opener", recipient=self.me, trust=trust,
                                     pending=pending or [], seen=seen or []), "handle")

    def envelope(self, payload: bytes, *, encrypt: bool = False, reply_to: bytes = b"",
                 nonce: bytes | None = None, at: float = T0) -> bytes:
        """An envelope from the runner's sender to the driver's recipient."""
        nonce = self.ctx.rng.randbytes(16) if nonce is None else nonce
        return seal(self.sender, self.me, payload, encrypt=encrypt, reply_to=reply_to,
                    clock=lambda: at, random=lambda _: nonce)

    def reference(self, data: bytes) -> None:
        """Open ``data`` as a fresh opener of the driver's would, with this implementation
        (the mutation rounds' mailbox: any sender, no pending reply, an empty store)."""
        open_envelope(data, self._identity, MemoryReplayStore(), clock=lambda: T0,
                      pending=PendingRequests())

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
    expect_refusal(ctx, code, lambda: chain.verify(ctx, **overrides[what]), f"a chain ({what})")


def _chain_time(offset: int, code: str, ctx: Context) -> None:
    chain = Chain(ctx)
    d = ctx.driver()
    d.call("set_clock", now=float(T0 + offset))
    expect_refusal(ctx, code, lambda: d.call("verify_chain", chain=chain.data.hex(),
                                        anchors=chain.anchors, holder=chain.bob,
                                        request=chain.request), f"a chain at T0{offset:+d}")


def _chain_last_second(ctx: Context) -> None:
    """A clock 0.75 s into the last second of bob's link (it expires at T0 + 600; the skew
    is 60): the driver rounds the clock down (conformance.md 7), so the chain is valid."""
    chain = Chain(ctx)
    d = ctx.driver()
    d.call("set_clock", now=T0 + 659.75)
    d.call("verify_chain", chain=chain.data.hex(), anchors=chain.anchors, holder=chain.bob,
           request=chain.request)


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
    expect_refusal(ctx, "replayed", lambda: check(first), "the same invocation again")
    other = invoke(chain, _RUN, channel_binding=ctx.rng.randbytes(64), clock=lambda: T0,
                   random=ctx.rng.randbytes)
    expect_refusal(ctx, "wrong_session", lambda: check(other), "an invocation of another session")
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
    expect_refusal(ctx, "replayed", lambda: check(first), "the same invocation again")
    elsewhere = signed(Identity.from_seed(bytes.fromhex(ctx.seed32())).agent_id)
    expect_refusal(ctx, "wrong_verifier", lambda: check(elsewhere), "an invocation for another")
    old = signed(verifier, T0 - 1000)
    expect_refusal(ctx, "stale_invocation", lambda: check(old), "an invocation 1000 s old")


# ------------------------------------------------------------------ envelope checks


def _envelope_once(encrypt: bool, ctx: Context) -> None:
    box = Mailbox(ctx)
    data = box.envelope(b"hello", encrypt=encrypt)
    opened = box.open(data)
    if get_hex(opened, "payload") != b"hello" or opened.get("sender") != box.sender.agent_id:
        raise Fail("the envelope opened to another payload or sender")
    if opened.get("sealed") is not encrypt:
        raise Fail(f"sealed is {opened.get('sealed')!r}, expected {encrypt}")
    expect_refusal(ctx, "replayed", lambda: box.open(data), "the same envelope again")


def _envelope_seen(ctx: Context) -> None:
    nonce = ctx.rng.randbytes(16)
    sender = Identity.from_seed(bytes.fromhex(ctx.seed32()))
    box = Mailbox(ctx, seen=[{"key": (sender.public_bytes + nonce).hex(),
                              "expires": T0 + 360}])
    data = seal(sender, box.me, b"x", clock=lambda: T0, random=lambda _: nonce)
    expect_refusal(ctx, "replayed", lambda: box.open(data), "an envelope the store has seen")


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
    expect_refusal(ctx, "unexpected_reply", lambda: box.open(again), "a second reply")


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
    expect_refusal(ctx, code, lambda: box.open(data), f"an envelope ({what})")


# ------------------------------------------------------------------ request checks


class RequestServer:
    """One channel's serving side in the driver (spec 15.4), for a fresh peer holding a
    fresh chain; the runner writes the peer's frames."""

    __slots__ = ("_root", "chain", "ctx", "handle", "peer")

    #: The handlers it declares: a capability one, an open one.
    ROUTES = ({"pattern": "jobs/**", "action": "run", "capability": True},
              {"pattern": "status", "action": "get", "capability": False})

    def __init__(self, ctx: Context, *, max_in_flight: int = 128) -> None:
        self.ctx = ctx
        peer = Identity.from_seed(bytes.fromhex(ctx.seed32()))
        root = Identity.from_seed(bytes.fromhex(ctx.seed32()))
        self._root = root
        self.peer = peer.agent_id
        self.chain = self.issue(root, peer)
        d = ctx.driver()
        d.call("set_clock", now=float(T0))
        self.handle = get_str(d.call("request_server", peer=self.peer,
                                     anchors={root.agent_id: "**"},
                                     routes=list(self.ROUTES), max_in_flight=max_in_flight),
                              "handle")

    def issue(self, root: Identity, holder: Identity) -> bytes:
        """A chain from ``root`` to ``holder`` allowing run and stop on ``jobs/**``."""
        return encode_chain([delegate(root, holder, [Grant("jobs/**", {"run", "stop"})],
                                      not_before=T0 - 60, expires=T0 + 3600,
                                      nonce=self.ctx.rng.randbytes(16))])

    def stolen(self) -> bytes:
        """A chain of the same root, issued to someone else."""
        return self.issue(self._root, Identity.from_seed(bytes.fromhex(self.ctx.seed32())))

    def send(self, frame: bytes) -> dict[str, Any]:
        """The driver's decision on ``frame``."""
        return self.ctx.driver().call("request_receive", handle=self.handle, frame=frame.hex())

    def expect(self, frame: bytes, want: dict[str, Any], what: str) -> None:
        """Fail unless the driver decides ``want`` for ``frame``."""
        got = self.send(frame)
        if got != want:
            raise Fail(f"{what}: decided {str(got)[:160]}, expected {want}")


def _ask(request_id: int, ref: int, action: str = "run", resource: str = "jobs/nightly"
         ) -> bytes:
    return encode_request(request_id, resource, action, {}, b"job", ref)


def _call(request_id: int, route: int) -> dict[str, Any]:
    return {"answer": "call", "id": request_id, "route": route}


def _refused(request_id: int, code: str, **refusal: Any) -> dict[str, Any]:
    return {"answer": "refused", "id": request_id, "code": code, "refusal": refusal}


def _request_served(ctx: Context) -> None:
    server = RequestServer(ctx)
    server.expect(encode_present(5, server.chain), {"answer": "none"}, "PRESENT")
    first = ctx.rng.randrange(2**32)
    server.expect(_ask(first, 5), _call(first, 0), "a request under the chain")
    server.expect(_ask(first + 1, 0, "get", "status"), _call(first + 1, 1),
                  "a request to the open handler")
    server.expect(encode_cancel(first), {"answer": "cancelled", "id": first}, "CANCEL")


def _request_refused(what: str, ctx: Context) -> None:
    server = RequestServer(ctx)
    if what == "no-chain":
        server.expect(_ask(1, 0), _refused(1, "not_authorized", kind="no_chain"),
                      "a request naming no chain")
    elif what == "unknown-chain":
        server.expect(_ask(1, 3), _refused(1, "unknown_chain"), "a chain never presented")
    elif what == "stolen-chain":
        server.expect(encode_present(1, server.stolen()), {"answer": "none"}, "PRESENT")
        server.expect(_ask(1, 1), _refused(1, "holder_mismatch", kind="holder", link=0),
                      "a chain issued to another")
    elif what == "no-handler":
        server.expect(encode_present(1, server.chain), {"answer": "none"}, "PRESENT")
        server.expect(_ask(1, 1, "stop"), _refused(1, "no_handler"),
                      "an allowed action no handler serves")
    else:  # other-action
        server.expect(encode_present(1, server.chain), {"answer": "none"}, "PRESENT")
        server.expect(_ask(1, 1, "delete"), _refused(1, "not_authorized", kind="action",
                                                     link=0, grant=0),
                      "an action the chain does not grant")


def _request_limits(ctx: Context) -> None:
    server = RequestServer(ctx, max_in_flight=1)
    server.expect(_ask(1, 0, "get", "status"), _call(1, 1), "the first request")
    server.expect(_ask(2, 0, "get", "status"), _refused(2, "over_limit"),
                  "a second request in flight")
    ctx.driver().call("request_done", handle=server.handle, request_id=1)
    server.expect(_ask(2, 0, "get", "status"), _call(2, 1), "after the first was answered")
    expect_refusal(ctx, "out_of_order", lambda: server.send(_ask(2, 0, "get", "status")),
                   "a request whose id is in flight")


def _frame_round_trip(ctx: Context) -> None:
    rng = ctx.rng
    args = {f"k{i}": rng.choice([rng.randrange(-2**40, 2**40), "v" * rng.randrange(5), True])
            for i in range(rng.randrange(6))}
    request_id, ref, body = rng.randrange(2**53), rng.randrange(2**32), rng.randbytes(40)
    frame = encode_request(request_id, "jobs/x", "run", args, body, ref)
    got = ctx.driver().call("frame_decode", frame=frame.hex(), limit=len(frame)).get("frame")
    want = {"kind": "request", "id": request_id, "resource": "jobs/x", "action": "run",
            "args": dict(sorted(args.items())), "body": body.hex(), "ref": ref}
    if got != want:
        raise Fail(f"decoded to {str(got)[:160]}, expected {want}")
    expect_refusal(ctx, "oversize", lambda: ctx.driver().call("frame_decode", frame=frame.hex(),
                                                         limit=len(frame) - 1),
                   "the frame one byte over its limit")


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
        ("15.2", "request-frame-round-trip", _frame_round_trip),
        ("15.3", "request-limits", _request_limits),
        ("15.4", "request-served", _request_served),
        *(("15.4", f"request-{what}", functools.partial(_request_refused, what))
          for what in ("no-chain", "unknown-chain", "stolen-chain", "no-handler",
                       "other-action")),
    ]
    return [*(Check(_P + section, f"live / {name}", fn) for section, name, fn in c),
            Check("conformance.md §7", "live / chain-clock-rounded-down", _chain_last_second)]

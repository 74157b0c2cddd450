"""The interface checks, and live scenarios in which the runner is the driver's honest peer.

Interface checks (``conformance.md``) hold the driver to its own contract: it says hello
with the interface version, answers an unknown op with ``unimplemented`` and a malformed
request with an error, and stays alive. The live scenarios run fresh handshakes against
the runner's own engines, in both roles and both session modes, and check what sections
4.12 and 5 promise: the same channel binding and exporter at both ends, messages both
ways, rekeying, closing. The attacks are in :mod:`.attacks`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ...identity import Identity
from ..interface import encode_line
from .attacks import attack_checks
from .check import T0, Check, Context, Fail, expect_refusal, get_hex, get_str
from .conversation import Conversation
from .sessionless import sessionless_checks

__all__ = ["interface_checks", "live_checks"]

_C = "conformance.md §"
_P = "protocol.md §"


# ------------------------------------------------------------------ interface


def _hello(ctx: Context) -> None:
    result = ctx.driver().call("hello", interface=[1])
    if result.get("interface") != 1:
        raise Fail(f"hello chose interface {str(result.get('interface'))[:20]}, not 1")
    if not isinstance(result.get("implementation"), str):
        raise Fail("hello names no implementation")
    if result.get("protocol_versions") != [1]:
        raise Fail(f"hello lists protocol versions {str(result.get('protocol_versions'))[:40]}"
                   f", expected [1]")


def _hello_unknown_version(ctx: Context) -> None:
    expect_refusal(ctx, "invalid_argument",
                   lambda: ctx.driver().call("hello", interface=[99]), "hello interface [99]")


def _unknown_op(ctx: Context) -> None:
    reply = ctx.driver().request("frobnicate")
    if reply.kind != "unimplemented":
        raise Fail(f"an unknown op got {reply.kind}, expected unimplemented")


def _malformed(ctx: Context) -> None:
    d = ctx.driver()
    for line in (b"this is not json\n", b"[1, 2]\n", b'{"id": 1, "id": 2, "op": "hello"}\n',
                 b'{"op": "hello", "interface": [1]}\n', b"\xff\xfe\n"):
        d.send_raw(line)
        reply = d.read_reply(None, "a malformed line")
        if reply.kind != "error":
            raise Fail(f"the line {line[:30]!r} got {reply.kind}, expected an error with id null")
    _hello(ctx)  # and the driver is still there


def _bad_params(ctx: Context) -> None:
    d = ctx.driver()
    expect_refusal(ctx, "invalid_argument", lambda: d.call("set_clock", now=1, extra=2),
                   "set_clock with an unknown parameter")
    expect_refusal(ctx, "invalid_argument", lambda: d.call("set_clock", now="1"),
                   "set_clock with a string")
    expect_refusal(ctx, "invalid_argument", lambda: d.call("set_clock", now=True),
                   "set_clock with a boolean")
    expect_refusal(ctx, "invalid_argument", lambda: d.call("create_identity", seed="AB" * 32),
                   "create_identity with upper-case hex")
    expect_refusal(ctx, "invalid_argument", lambda: d.call("seal", handle="nothing", payload=""),
                   "seal on an unknown handle")


def _identity(ctx: Context) -> str:
    d = ctx.driver()
    d.call("set_clock", now=float(T0))
    return get_str(d.call("create_identity", seed=ctx.seed32()), "agent_id")


def _unknown_handles(ctx: Context) -> None:
    d = ctx.driver()
    me = _identity(ctx)
    handle = d.call("handshake", role="initiator", identity=me, trust="any").get("handle")
    if type(handle) is not str or not 1 <= len(handle) <= 64:
        raise Fail(f"handshake gave the handle {str(handle)[:70]!r}, not a string of 1 to 64 "
                   f"characters")
    expect_refusal(ctx, "invalid_argument", lambda: d.call("seal", handle="nothing", payload=""),
                   "seal on a handle never given")
    expect_refusal(ctx, "invalid_argument", lambda: d.call("start", handle=1),
                   "start on a handle that is a number")
    d.call("drop", handle=handle)
    expect_refusal(ctx, "invalid_argument", lambda: d.call("start", handle=handle),
                   "start on a dropped handle")
    expect_refusal(ctx, "invalid_argument", lambda: d.call("drop", handle=handle),
                   "drop of a dropped handle")


def _handle_of_another_kind(ctx: Context) -> None:
    d = ctx.driver()
    me = _identity(ctx)
    engine = get_str(d.call("handshake", role="responder", identity=me, trust="any"), "handle")
    opener = get_str(d.call("envelope_opener", recipient=me, trust=None), "handle")
    expect_refusal(ctx, "invalid_argument", lambda: d.call("receive", handle=opener,
                                                           message="00" * 32),
                   "receive on an envelope opener's handle")
    expect_refusal(ctx, "invalid_argument", lambda: d.call("check_invocation", handle=engine,
                                                           invocation="00"),
                   "check_invocation on an engine's handle")
    expect_refusal(ctx, "invalid_argument", lambda: d.call("open_envelope", handle=engine,
                                                           envelope="00"),
                   "open_envelope on an engine's handle")


def _start_out_of_place(ctx: Context) -> None:
    d = ctx.driver()
    me = _identity(ctx)
    responder = get_str(d.call("handshake", role="responder", identity=me, trust="any"),
                        "handle")
    expect_refusal(ctx, "invalid_state", lambda: d.call("start", handle=responder),
                   "start on a responder")
    state = d.call("check_timeout", handle=responder).get("state")
    if state != "await_hs1":
        raise Fail(f"after a refused start the responder is {str(state)[:20]!r}, not "
                   f"await_hs1: a refused start changes nothing")
    initiator = get_str(d.call("handshake", role="initiator", identity=me, trust="any"),
                        "handle")
    get_hex(d.call("start", handle=initiator), "message")
    expect_refusal(ctx, "invalid_state", lambda: d.call("start", handle=initiator),
                   "start on an initiator that has started")
    expect_refusal(ctx, "invalid_state", lambda: d.call("seal", handle=initiator, payload=""),
                   "seal on an engine that is not done")


def _unsupported_versions(ctx: Context) -> None:
    d = ctx.driver()
    me = _identity(ctx)
    supported = ctx.hello().get("protocol_versions")
    if not isinstance(supported, list) or not all(type(v) is int for v in supported):
        raise Fail(f"hello lists protocol versions {str(supported)[:40]}")
    beyond = max([0, *supported]) + 1
    for versions in ([beyond], [], [*supported, *supported[-1:]], [*supported, beyond]):
        expect_refusal(ctx, "invalid_argument",
                       functools.partial(d.call, "handshake", role="initiator", identity=me,
                                         trust="any", versions=versions),
                       f"handshake with versions {versions}")


def _not_agent_ids(ctx: Context) -> None:
    d = ctx.driver()
    me = _identity(ctx)
    unknown = Identity.from_seed(bytes.fromhex(ctx.seed32())).agent_id
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("agent_id_prefix", "handshake with the identity 'alice'",
         {"op": "handshake", "role": "initiator", "identity": "alice", "trust": "any"}),
        ("agent_id_encoding", "handshake with an identity holding a '0'",
         {"op": "handshake", "role": "initiator", "identity": "did:key:z6Mk0", "trust": "any"}),
        ("agent_id_length", "handshake with an identity of 65 characters",
         {"op": "handshake", "role": "initiator", "identity": "did:key:z" + "1" * 56,
          "trust": "any"}),
        ("invalid_argument", "handshake with an identity never created",
         {"op": "handshake", "role": "initiator", "identity": unknown, "trust": "any"}),
        ("agent_id_prefix", "handshake trusting 'bob'",
         {"op": "handshake", "role": "initiator", "identity": me, "trust": ["bob"]}),
        ("agent_id_prefix", "handshake expecting 'bob'",
         {"op": "handshake", "role": "initiator", "identity": me, "trust": "any",
          "expect": "bob"}),
        ("agent_id_prefix", "envelope_opener for the recipient 'alice'",
         {"op": "envelope_opener", "recipient": "alice", "trust": None}),
        ("invalid_argument", "envelope_opener for a recipient never created",
         {"op": "envelope_opener", "recipient": unknown, "trust": None}),
        ("agent_id_prefix", "envelope_opener trusting 'bob'",
         {"op": "envelope_opener", "recipient": me, "trust": ["bob"]}),
        ("invalid_key", "create_identity with a 31-byte seed",
         {"op": "create_identity", "seed": "11" * 31}),
    ]
    for code, what, request in cases:
        params = dict(request)
        op = params.pop("op")
        expect_refusal(ctx, code, functools.partial(d.call, op, **params), what)


def _ids_echoed(ctx: Context) -> None:
    d = ctx.driver()
    d.send_raw(encode_line({"id": 2**53, "op": "set_clock", "now": 0}))
    reply = d.read_reply(2**53, "set_clock")
    if reply.kind != "result":
        raise Fail(f"set_clock with id 2^53 got {reply.kind}")


def interface_checks() -> list[Check]:
    """The driver's own contract."""
    return [
        Check(_C + "4", "hello", _hello),
        Check(_C + "4", "hello-unknown-interface", _hello_unknown_version),
        Check(_C + "3", "unknown-op-is-unimplemented", _unknown_op),
        Check(_C + "2", "malformed-lines-get-errors", _malformed),
        Check(_C + "2", "largest-id-echoed", _ids_echoed),
        Check(_C + "3", "bad-parameters-get-invalid_argument", _bad_params),
        Check(_C + "5", "agent-ids-are-parsed", _not_agent_ids),
        Check(_C + "6", "unknown-handles", _unknown_handles),
        Check(_C + "6", "handle-of-another-kind", _handle_of_another_kind),
        Check(_C + "6", "start-on-a-responder-or-twice", _start_out_of_place),
        Check(_C + "6", "unsupported-versions", _unsupported_versions),
    ]


# ------------------------------------------------------------------ honest peers


def _results(role: str, ordered: bool, ctx: Context) -> None:
    live = Conversation(ctx, role, ordered=ordered, peer_ordered=ordered)
    live.complete()
    binding = get_hex(live.call("channel_binding"), "channel_binding")
    assert live.peer.result is not None
    if binding != live.peer.result.channel_binding:
        raise Fail("channel_binding differs from the peer's")


def _data(role: str, ordered: bool, ctx: Context) -> None:
    live = Conversation(ctx, role, ordered=ordered, peer_ordered=ordered)
    ours = live.complete()
    for size in (0, 1, 255, 4096):
        payload = bytes(ctx.rng.randrange(256) for _ in range(size))
        if live.open(ours.seal(payload)) != payload:
            raise Fail(f"a {size}-byte message from the peer opened to something else")
        if ours.open(live.seal(payload)) != payload:
            raise Fail(f"the driver's {size}-byte message did not open at the peer")


def _rekey(role: str, ordered: bool, ctx: Context) -> None:
    live = Conversation(ctx, role, ordered=ordered, peer_ordered=ordered)
    ours = live.complete()
    if live.open(ours.rekey()) is not None:
        raise Fail("a REKEY opened to a payload")
    if live.open(ours.seal(b"after")) != b"after":
        raise Fail("a message after the peer's REKEY did not open")
    if ours.open(get_hex(live.call("rekey"), "message")) is not None:
        raise Fail("the driver's REKEY opened to a payload at the peer")
    if ours.open(live.seal(b"back")) != b"back":
        raise Fail("the driver's message after its REKEY did not open at the peer")


def _close(role: str, ordered: bool, ctx: Context) -> None:
    live = Conversation(ctx, role, ordered=ordered, peer_ordered=ordered)
    ours = live.complete()
    message = ours.seal(b"before")
    live.open(message)
    if live.open(ours.close()) is not None:
        raise Fail("a CLOSE opened to a payload")
    expect_refusal(ctx, "session_closed", lambda: live.open(message), "a message after CLOSE")
    if ours.open(get_hex(live.call("close"), "message")) is not None or not ours.peer_closed:
        raise Fail("the driver's CLOSE did not close the peer's session")


def _export(role: str, ordered: bool, ctx: Context) -> None:
    live = Conversation(ctx, role, ordered=ordered, peer_ordered=ordered)
    ours = live.complete()
    for label, context, length in ((b"app key", b"", 32), (b"app key", b"ctx", 64),
                                   (b"other", b"", 16)):
        got = get_hex(live.call("export", label=label.hex(), context=context.hex(),
                                length=length), "value")
        if got != ours.export(label, context, length):
            raise Fail(f"export({label!r}, {context!r}, {length}) differs from the peer's")


def live_checks() -> list[Check]:
    """Honest peers in both roles and both modes, then the attacks."""
    checks = []
    table: list[tuple[str, str, Callable[[str, bool, Context], None]]] = [
        ("4.12", "handshake", _results), ("5.2", "data-both-ways", _data),
        ("5.4", "rekey-both-ways", _rekey), ("5.7", "close", _close),
        ("5.9", "exporter", _export)]
    for section, name, fn in table:
        for role in ("initiator", "responder"):
            for ordered in (True, False):
                mode = "ordered" if ordered else "unordered"
                checks.append(Check(_P + section, f"live / driver-{role} / {mode} / {name}",
                                    functools.partial(fn, role, ordered)))
    return checks + attack_checks() + sessionless_checks()

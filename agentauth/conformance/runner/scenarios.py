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

from ..interface import encode_line
from .attacks import attack_checks
from .check import Check, Context, Fail, expect_refusal, get_hex
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
    expect_refusal("invalid_argument",
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
    expect_refusal("invalid_argument", lambda: d.call("set_clock", now=1, extra=2),
                   "set_clock with an unknown parameter")
    expect_refusal("invalid_argument", lambda: d.call("set_clock", now="1"),
                   "set_clock with a string")
    expect_refusal("invalid_argument", lambda: d.call("set_clock", now=True),
                   "set_clock with a boolean")
    expect_refusal("invalid_argument", lambda: d.call("create_identity", seed="AB" * 32),
                   "create_identity with upper-case hex")
    expect_refusal("invalid_argument", lambda: d.call("seal", handle="nothing", payload=""),
                   "seal on an unknown handle")


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
    expect_refusal("session_closed", lambda: live.open(message), "a message after CLOSE")
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

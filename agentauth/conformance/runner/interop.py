"""Two drivers paired: A as initiator against B as responder, and the reverse.

The runner only relays: each driver's messages go to the other unchanged. A pair passes
when both ends complete, name each other, derive the same channel binding and exporter
values, and exchange messages both ways in the session mode under test.
"""

from __future__ import annotations

import functools

from .check import T0, Check, Context, Fail, get_hex, get_str
from .driver_process import DriverProcess, Refused

__all__ = ["interop_checks"]


def _pair(first_initiates: bool, ordered: bool, ctx: Context) -> None:
    a, b = ctx.driver(0), ctx.driver(1)
    ini, res = (a, b) if first_initiates else (b, a)
    ids = []
    for d in (ini, res):
        ids.append(get_str(d.call("create_identity", seed=ctx.seed32()), "agent_id"))
        d.call("set_clock", now=float(T0))
    hi = get_str(ini.call("handshake", role="initiator", identity=ids[0], trust=[ids[1]],
                          expect=ids[1], ordered=ordered, random=ctx.seed32()), "handle")
    hr = get_str(res.call("handshake", role="responder", identity=ids[1], trust=[ids[0]],
                          ordered=ordered, random=ctx.seed32()), "handle")
    hs1 = get_hex(ini.call("start", handle=hi), "message")
    hs2 = get_hex(res.call("receive", handle=hr, message=hs1.hex()), "reply")
    done_i = ini.call("receive", handle=hi, message=hs2.hex())
    done_r = res.call("receive", handle=hr, message=get_hex(done_i, "reply").hex())
    for name, done, peer in (("initiator", done_i, ids[1]), ("responder", done_r, ids[0])):
        if done.get("state") != "done" or done.get("peer") != peer:
            raise Fail(f"the {name} did not complete with its peer")
    if get_hex(done_i, "channel_binding") != get_hex(done_r, "channel_binding"):
        raise Fail("the two ends derived different channel bindings")
    for label in (b"interop", b"other"):
        values = [get_hex(d.call("export", handle=h, label=label.hex(), context="",
                                 length=32), "value") for d, h in ((ini, hi), (res, hr))]
        if values[0] != values[1]:
            raise Fail(f"the two ends export different values for {label!r}")
    _exchange(ini, hi, res, hr, b"from the initiator")
    _exchange(res, hr, ini, hi, b"from the responder")
    for d, h in ((ini, hi), (res, hr)):
        d.call("drop", handle=h)


def _exchange(src: DriverProcess, hs: str, dst: DriverProcess, hd: str, text: bytes) -> None:
    for n in range(3):
        payload = text + b" #" + str(n).encode()
        sealed = get_hex(src.call("seal", handle=hs, payload=payload.hex()), "message")
        try:
            opened = dst.call("open", handle=hd, message=sealed.hex())
        except Refused as exc:
            raise Fail(f"a message {text.decode()} was refused at the other end with "
                       f"{exc.code}", compared=(None, exc.code)) from None
        if opened.get("payload") != payload.hex():
            raise Fail(f"a message {text.decode()} did not open to what was sealed")


def interop_checks() -> list[Check]:
    """Both directions, both session modes."""
    checks = []
    for first in (True, False):
        for ordered in (True, False):
            who = "driver-initiator" if first else "peer-driver-initiator"
            mode = "ordered" if ordered else "unordered"
            checks.append(Check("protocol.md §4.12", f"interop / {who} / {mode}",
                                functools.partial(_pair, first, ordered)))
    return checks

"""Checks of alerts (``spec/protocol.md`` section 4.14) through a driver, from
``alerts.json``: every alert's bytes and every refused one, read by an initiator waiting
for HS2; the alert each negative handshake vector's engine sends; engines fed an alert
where one may come and where none can. The driver's ``alert`` operation
(``spec/conformance.md`` section 7.1) says what an engine sends and what an alert claimed.
"""

from __future__ import annotations

import functools
from typing import Any

from .check import Check, Context, Fail, expect_refusal
from .driver_process import DriverProcess
from .vector_replay import feed_negative

__all__ = ["alert_checks"]

_SECTION = "protocol.md §4.14"


def _alert_of(d: DriverProcess, handle: str) -> tuple[str | None, str | None]:
    """What the driver's engine sends (hex or None) and what it was told (a code or None)."""
    result = d.call("alert", handle=handle)
    alert, claimed = result.get("alert"), result.get("claimed")
    if not (alert is None or isinstance(alert, str)) or not (
            claimed is None or isinstance(claimed, str)):
        raise Fail(f"the alert operation's result is not of its form: {str(result)[:80]}")
    return alert, claimed


def _compare(what: str, got: object, want: object) -> None:
    if got != want:
        raise Fail(f"{what}: got {got!r}, expected {want!r}")


def _sent(vector: dict[str, Any], handshake: dict[str, Any], ctx: Context) -> None:
    d = ctx.driver()
    handle = feed_negative(ctx, handshake)
    alert, _ = _alert_of(d, handle)
    _compare("the alert sent", alert, vector["alert"])


def _received(vector: dict[str, Any], ctx: Context) -> None:
    d = ctx.driver()
    handle = feed_negative(ctx, vector)
    alert, claimed = _alert_of(d, handle)
    _compare("the code claimed", claimed, vector["claimed"])
    _compare("the alert sent in answer", alert, vector["alert"])


def _read(vector: dict[str, Any], ctx: Context) -> None:
    # An initiator that sent HS1 is where an alert may come (4.14): feed it there.
    d = ctx.driver()
    me = d.call("create_identity", seed=ctx.seed32())["agent_id"]
    handle = d.call("handshake", role="initiator", identity=me, trust="any",
                    random=ctx.seed32())["handle"]
    d.call("start", handle=handle)
    code = "peer_refused" if "code" in vector else vector["error"]
    expect_refusal(ctx, code, functools.partial(d.call, "receive", handle=handle,
                                                message=vector["alert"]), "the alert")
    alert, claimed = _alert_of(d, handle)
    _compare("the code claimed", claimed, vector.get("code"))
    _compare("the alert sent in answer", alert, None)


def alert_checks(files: dict[str, Any]) -> list[Check]:
    """One check per vector of ``alerts.json``."""
    content = files.get("alerts.json")
    if content is None:
        return []
    negative = {v["id"]: v for v in files["handshake-negative.json"]["vectors"]}
    checks = [Check(_SECTION, f"alerts / {group} / {vector['id']}",
                    functools.partial(_read, vector))
              for group in ("forms", "reading") for vector in content[group]]
    checks += [Check(_SECTION, f"alerts / sent / {vector['handshake']}",
                     functools.partial(_sent, vector, negative[vector["handshake"]]))
               for vector in content["sent"] if vector["handshake"] in negative]
    checks += [Check(_SECTION, f"alerts / received / {vector['id']}",
                     functools.partial(_received, vector))
               for vector in content["received"]]
    return checks

"""The ASGI middleware (spec 13): fuzzed requests in well-formed scopes, in process.

The first byte's bits shape the scope (``raw_path`` left out, the body in two chunks, the
client gone before its body, a capability required, another scope type) and the rest is
the request in the text form of :mod:`fuzz._http`. The middleware, with a capability
anchor and a fresh replay store, is driven to the end without an event loop: it must
answer or refuse with the library's errors, never raise anything else. Scopes that break
the ASGI rules are :mod:`fuzz.asgi_scope`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from contextlib import suppress
from typing import Any

from agentauth.errors import AgentAuthError
from agentauth.http import AgentAuthMiddleware, Verifier
from agentauth.stores import MemoryReplayStore

from . import _http
from ._common import Clock, Random, run

Event = MutableMapping[str, Any]


async def app(scope: Event, receive: Callable[[], Awaitable[Event]],
              send: Callable[[Event], Awaitable[None]]) -> None:
    """An application that reads the body and answers with it."""
    if scope["type"] != "http":
        return
    event = await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": event.get("body", b"")})


def _drive(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        for _ in range(100):
            coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise AssertionError("the middleware waited on something other than its peers")


def scope_of(flags: int, data: bytes) -> tuple[Event, list[Event]]:
    """The scope and the receive events of one input."""
    method, target, query, fields, body = _http.parse(data)
    raw_target = data.split(b"\n", 1)[0].partition(b" ")[2].partition(b"?")[0]
    scope: Event = {
        "type": ("http", "http", "http", "websocket", "lifespan")[(flags >> 4) % 5],
        "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "https", "path": raw_target.decode("utf-8", "replace"),
        "query_string": query.encode("latin-1"),
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in fields],
        "client": ("127.0.0.1", 5000), "server": (_http.AUTHORITY, 443)}
    del target
    if not flags & 1:
        scope["raw_path"] = raw_target
    if flags & 4:
        events: list[Event] = [{"type": "http.disconnect"}]
    elif flags & 2:
        events = [{"type": "http.request", "body": body[:len(body) // 2], "more_body": True},
                  {"type": "http.request", "body": body[len(body) // 2:]}]
    else:
        events = [{"type": "http.request", "body": body}]
    return scope, events


def serve(scope: Event, events: list[Event], require_capability: bool) -> list[Event]:
    """Drive one request through a fresh middleware; return what it sent."""
    clock = Clock(_http.NOW)
    middleware = AgentAuthMiddleware(
        app, identity=_http.SERVER, replay=MemoryReplayStore(), anchors=_http.ANCHORS,
        verifier=Verifier([_http.CLIENT], authorities=[_http.AUTHORITY], clock=clock),
        require_capability=require_capability, clock=clock, random=Random())
    sent: list[Event] = []

    async def receive() -> Event:
        return events.pop(0) if events else {"type": "http.disconnect"}

    async def send(event: Event) -> None:
        sent.append(event)

    with suppress(AgentAuthError):
        _drive(middleware(scope, receive, send))
    return sent


def one(data: bytes) -> None:
    """Send one request through the middleware."""
    if data:
        serve(*scope_of(data[0], data[1:]), require_capability=bool(data[0] & 8))


def seeds() -> list[bytes]:
    """Each signed request in every shape of scope but the other types."""
    return [bytes([flags]) + text for text, _ in _http.signed_requests() for flags in range(16)]


if __name__ == "__main__":
    run(one, seeds)

"""ASGI scopes that break the ASGI rules: the middleware must still answer, never raise.

A scope comes from a server or from middleware in front, and a faulty one may leave out
a key, give one the wrong type, or hand over a path that is not UTF-8 without ``raw_path``.
The first byte shapes the scope as in :mod:`fuzz.asgi`, the second chooses how it is
broken, and the rest is a signed request in the text form of :mod:`fuzz._http`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _http
from ._common import run
from .asgi import Event, scope_of, serve


def _set(key: str, value: Callable[[Any], Any]) -> Callable[[Event], None]:
    def change(scope: Event) -> None:
        scope[key] = value(scope.get(key))
    return change


def _drop(key: str) -> Callable[[Event], None]:
    def change(scope: Event) -> None:
        scope.pop(key, None)
    return change


def _not_utf8(scope: Event) -> None:
    scope.pop("raw_path", None)
    scope["path"] = scope["path"] + "\udcff"  # a lone surrogate: no UTF-8 form


BREAKS: list[Callable[[Event], None]] = [
    _not_utf8,
    *(_drop(k) for k in ("headers", "method", "path", "query_string", "scheme", "type")),
    _set("headers", lambda v: None),
    _set("headers", lambda v: [(k.decode("latin-1"), x.decode("latin-1")) for k, x in v]),
    _set("headers", lambda v: [(k, x, b"") for k, x in v]),
    _set("headers", lambda v: [[k, x.decode("latin-1")] for k, x in v]),
    _set("method", lambda v: v.encode("latin-1")),
    _set("method", lambda v: None),
    _set("path", lambda v: v.encode("utf-8", "surrogateescape")),
    _set("query_string", lambda v: v.decode("latin-1")),
    _set("raw_path", lambda v: "" if v is None else v.decode("latin-1")),
    _set("scheme", lambda v: None),
]


def one(data: bytes) -> None:
    """Send one request through the middleware in a broken scope."""
    if len(data) < 2:
        return
    scope, events = scope_of(data[0], data[2:])
    BREAKS[data[1] % len(BREAKS)](scope)
    serve(scope, events, require_capability=bool(data[0] & 8))


def seeds() -> list[bytes]:
    """The first signed request in each broken scope."""
    text = _http.signed_requests()[0][0]
    return [bytes([0, index]) + text for index in range(len(BREAKS))]


if __name__ == "__main__":
    run(one, seeds)

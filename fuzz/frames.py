"""Requests on a channel (spec 15): the frame decoder and the serving side's state.

The first byte chooses the server's bounds; the rest is a sequence of steps
(:func:`split`), each a first byte choosing what happens and the rest its bytes: a frame
the peer sends to the server's :class:`Requests`, the server finishing a request (its id
from the bytes, or the oldest running), or a frame a server sends the requester. Every
outcome is checked: a call's id was not in flight, the requests in flight stay within the
bound, a refusal is an ERROR frame the requester decodes to a registered code, a frame that
decodes re-encodes to itself, and what reaches a requester's application is an agentauth
error with a registered code and a reason without control characters. A frame that breaks
the framing ends the channel, as it does on a real one.
"""

from __future__ import annotations

from typing import Any

from agentauth import wire
from agentauth.agent.frames import (
    CANCEL,
    ERROR,
    PRESENT,
    REQUEST,
    RESPONSE,
    Call,
    Frame,
    Refused,
    Requests,
    Route,
    decode_frame,
    encode_cancel,
    encode_present,
    encode_request,
    encode_response,
    error_from_frame,
    settle,
)
from agentauth.capability import Grant, Range, decode_chain, delegate, encode_chain
from agentauth.errors import ERROR_CODES, AgentAuthError, StoreError
from agentauth.identity import Identity

from ._common import Clock, join, pick, run, split

NOW = 1_800_000_000
SERVER = Identity.from_seed(bytes(range(32)))
PEER = Identity.from_seed(bytes(range(1, 33)))
OTHER = Identity.from_seed(bytes(range(2, 34)))
GRANTS = [Grant("reports/**", {"read", "write"}, {"size": Range(0, 100)})]


def _chain(audience: Identity, not_before: int, expires: int, nonce: int) -> bytes:
    return encode_chain([delegate(SERVER, audience, GRANTS, not_before=not_before,
                                  expires=expires, nonce=bytes([nonce]) * 16)])


CHAINS = (
    _chain(PEER, NOW - 60, NOW + 3600, 1),  # good
    _chain(OTHER, NOW - 60, NOW + 3600, 2),  # another holder's
    _chain(PEER, NOW - 7200, NOW - 3600, 3),  # expired
    _chain(PEER, NOW - 60, NOW + 3600, 4),  # revoked below
    _chain(PEER, NOW - 60, NOW + 3600, 5),  # its revocation store cannot answer
)
REVOKED = frozenset({decode_chain(CHAINS[3])[-1].id})
UNANSWERED = decode_chain(CHAINS[4])[-1].id


def _revoked(link: bytes) -> bool:
    if link == UNANSWERED:
        raise StoreError("the revocation store is down", code="store_unavailable")
    return link in REVOKED
ROUTES = (Route.make("reports/**", "read", "read"),
          Route.make("health", "read", "health", capability=False))
#: (max_payload, max_in_flight, max_chains): a body limit of 3616 bytes and more.
BOUNDS = ((20_000, 2, 3), (20_000, 128, 16), (1 << 20, 1, 1))


def _server(data: bytes) -> tuple[Requests, int, int, bytes]:
    index, rest = pick(data, len(BOUNDS))
    payload, in_flight, chains = BOUNDS[index]
    requests = Requests(PEER.peer, {SERVER.agent_id: "**"}, ROUTES,
                        max_payload=payload,
                        max_in_flight=in_flight, max_chains=chains, clock=Clock(NOW))
    return requests, payload, in_flight, rest


def _canonical(frame: Frame, data: bytes) -> None:
    again: dict[int, Any] = {
        PRESENT: lambda: encode_present(frame.ref, frame.chain),
        REQUEST: lambda: encode_request(frame.id, frame.resource, frame.action,
                                        frame.args or {}, frame.body, frame.ref),
        RESPONSE: lambda: encode_response(frame.id, frame.body),
        ERROR: lambda: wire.encode_map(ERROR, frame.id, frame.code, frame.reason,
                                       dict(frame.refusal or {})),
        CANCEL: lambda: encode_cancel(frame.id),
    }
    assert again[frame.kind]() == data, frame


def _told(data: bytes, limit: int) -> None:
    """What a requester's application gets from the server's frame ``data``."""
    try:
        frame = decode_frame(data, limit)
    except AgentAuthError:
        return
    _canonical(frame, data)
    if frame.kind == ERROR:
        error = error_from_frame(frame)
        assert isinstance(error, AgentAuthError) and error.code in ERROR_CODES
        assert all(c.isprintable() for c in error.message), error.message


def one(data: bytes) -> None:
    """Run the steps of ``data`` against one channel's serving state."""
    requests, limit, in_flight, rest = _server(data)
    running: list[int] = []
    for step in split(rest)[:64]:
        op, body = pick(step, 4)
        if op == 3:  # the server sent this; the requester reads it
            _told(body, limit)
            continue
        if op in (1, 2):  # a request ends: the one named, or the oldest running
            named = int.from_bytes(body[:8], "big") if op == 2 else None
            ended = named if named in running else (running[0] if running else None)
            if ended is not None:
                running.remove(ended)
                requests.done(ended)
            continue
        before = set(requests.in_flight)
        try:
            out = settle(requests.receiving(body), _revoked)
        except AgentAuthError:
            return  # the channel ends
        frame = decode_frame(body, limit)
        _canonical(frame, body)
        if isinstance(out, Call):
            assert out.id not in before and out.id in requests.in_flight
            assert type(out.handler) is str and out.request.resource == frame.resource
            running.append(out.id)
        elif isinstance(out, Refused):
            told = decode_frame(out.frame, limit)
            assert told.kind == ERROR and told.id == frame.id and told.code in ERROR_CODES
            assert requests.in_flight == before
            _told(out.frame, limit)
        elif out is not None:
            assert frame.kind == CANCEL and out == frame.id and out in before
        assert len(requests.in_flight) <= in_flight
        assert set(running) == requests.in_flight


def seeds() -> list[bytes]:
    """Chains presented and used, refused, cancelled and answered, under each bound."""
    present = [bytes([0]) + encode_present(n + 1, chain) for n, chain in enumerate(CHAINS)]
    asks = [bytes([0]) + encode_request(n, resource, action, args, b"body", ref)
            for n, (resource, action, args, ref) in enumerate([
                ("reports/q3", "read", {"size": 5}, 1), ("reports/q3", "read", {}, 1),
                ("reports/q3", "write", {"size": 5}, 1), ("secrets/a", "read", {}, 1),
                ("reports/q3", "read", {"size": 5}, 2), ("reports/q3", "read", {}, 3),
                ("reports/q3", "read", {"size": 5}, 4), ("reports/q3", "read", {}, 9),
                ("reports/q3", "read", {"size": 5}, 5),
                ("health", "read", {}, 0), ("reports/q3", "read", {"size": 1}, 0)])]
    answers = [bytes([3]) + frame for frame in (
        encode_response(1, b"ok"),
        wire.encode_map(ERROR, 2, "not_authorized", "no\nline", {"kind": "argument",
                                                                 "argument": "size"}),
        wire.encode_map(ERROR, 3, "invalid_argument", "local", {}),
        wire.encode_map(ERROR, 4, "over_limit", "busy", {}))]
    ends = [bytes([1]), bytes([2]) + (0).to_bytes(8, "big"), bytes([0]) + encode_cancel(1)]
    steps = [*present, *asks, *ends, *answers, bytes([0]) + encode_present(1, CHAINS[0])]
    return [bytes([index]) + join(steps) for index in range(len(BOUNDS))]


if __name__ == "__main__":
    run(one, seeds)

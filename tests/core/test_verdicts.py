"""Callback verdicts (spec 7.1): every callback that decides anything, given every kind
of answer. Only the exact admitting boolean lets the request through; its opposite is the
site's own refusal; anything else, an ``async def`` on a synchronous path, or an
exception is ``invalid_argument``; an asynchronous path awaits an ``async def`` and
judges what it returned. No coroutine is left to warn that it was never awaited."""

from __future__ import annotations

import functools
import gc
import inspect
import json
import math
import re
import time
import warnings
from collections.abc import Awaitable, Callable, Generator, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import ALICE, BOB, MALLORY, T0, Clock, make_pair, raises
from support.chains import ANCHORS, NOW, PARENT_GRANT, ROOT, chain_of

from agentauth import (
    AgentAuthError,
    CapabilityDenied,
    HandshakePolicy,
    Initiator,
    MemoryReplayStore,
    PendingRequests,
    SQLiteReplayStore,
    accept_any_peer,
    check_envelope,
    open_envelope,
    seal,
)
from agentauth import aio as agentauth_aio
from agentauth.aio._common import check_limits
from agentauth.capability import (
    CREDENTIAL_EXTENSION,
    DetachedInvocations,
    Grant,
    Request,
    SessionInvocations,
    admission,
    delegate,
    encode_chain,
    invoke,
    revoke,
    verify_chain,
)
from agentauth.http import (
    AgentAuth,
    AgentAuthMiddleware,
    HTTPMessage,
    Signer,
    Verifier,
    check_response,
)
from agentauth.http.capability import check_capability
from agentauth.replay import Shares
from agentauth.verdict import (
    Question,
    ask,
    ask_async,
    check_bounds,
    drive,
    drive_async,
    is_seconds,
    verdict,
)

Callback = Callable[..., Any]
Event = MutableMapping[str, Any]
REQUEST = Request("fs/reports/q3/summary", "read", {"size": 50})
BINDING = bytes(range(64))
HTTP_GRANT = Grant("reports/**", {"get"})


class Boom(Exception):
    """An application's own failure inside a callback."""


class NumpyLikeBool:
    """A truthy object that is not a bool, as ``numpy.bool_(True)`` is."""

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return other is True or isinstance(other, NumpyLikeBool)

    __hash__ = object.__hash__


def returning(value: object) -> Callback:
    return lambda *args: value


async def async_true(*args: object) -> bool:
    return True


async def async_false(*args: object) -> bool:
    return False


def raising(*args: object) -> bool:
    raise Boom("secret detail 0xdeadbeef")  # the text must not reach the error


ANSWERS: dict[str, Callback] = {
    "True": returning(True), "False": returning(False), "None": returning(None),
    "0": returning(0), "1": returning(1), "yes": returning("yes"), "empty": returning(""),
    "object": returning(object()), "numpy-like": returning(NumpyLikeBool()),
    "async-True": async_true, "async-False": async_false, "raising": raising,
}


def expected(answer: str, site: Site) -> str:
    """"admitted", the site's refusal code, or "invalid_argument"."""
    value = {"True": True, "False": False}.get(answer)
    if site.awaits:
        value = {"async-True": True, "async-False": False}.get(answer, value)
    if value is None:
        return "invalid_argument"
    return "admitted" if value is site.admit else site.refusal


# ------------------------------------------------------------------ the sites


def alice_chain(grant: Grant = PARENT_GRANT, now: int = NOW) -> bytes:
    return encode_chain([delegate(ROOT, ALICE, [grant], not_before=now - 100,
                                  expires=now + 3600)])


def handshake_trust_initiator(cb: Callback) -> None:
    make_pair(HandshakePolicy(trust=cb), HandshakePolicy(trust=accept_any_peer)).run()


def handshake_trust_responder(cb: Callback) -> None:
    make_pair(HandshakePolicy(trust=accept_any_peer), HandshakePolicy(trust=cb)).run()


def handshake_credentials(cb: Callback) -> None:
    make_pair(r_policy=HandshakePolicy(trust=accept_any_peer, credentials=cb)).run()


def handshake_admission_revoked(cb: Callback) -> None:
    check = admission(ANCHORS, REQUEST, revoked=cb, clock=lambda: NOW)
    make_pair(r_policy=HandshakePolicy(trust=accept_any_peer, credentials=check),
              i_kwargs={"extensions": {CREDENTIAL_EXTENSION: alice_chain()}}).run()


def envelope() -> bytes:
    return seal(ALICE, BOB, b"hello", clock=Clock(T0))


def check_envelope_trust(cb: Callback) -> None:
    check_envelope(envelope(), BOB, now=T0, trust=cb)


def open_envelope_trust(cb: Callback) -> None:
    open_envelope(envelope(), BOB, MemoryReplayStore(), clock=Clock(T0), trust=cb)


def verify_chain_revoked(cb: Callback) -> None:
    verify_chain(encode_chain(chain_of(3)), ANCHORS, now=NOW, revoked=cb)


def session_invocations_revoked(cb: Callback) -> None:
    checker = SessionInvocations(ANCHORS, peer=ALICE.peer, channel_binding=BINDING,
                                 revoked=cb, clock=lambda: NOW)
    checker.check(invoke(alice_chain(), REQUEST, channel_binding=BINDING,
                         clock=lambda: NOW))


def detached_invocations_revoked(cb: Callback) -> None:
    checker = DetachedInvocations(ANCHORS, verifier=BOB.agent_id, revoked=cb,
                                  clock=lambda: NOW)
    checker.check(invoke(alice_chain(), REQUEST, holder=ALICE, verifier=BOB.agent_id,
                         clock=lambda: NOW))


def http_request(who: Any = MALLORY, chain: bytes | None = None) -> httpx.Request:
    request = httpx.Request("GET", "http://testserver/reports/q3")
    AgentAuth(who, chain=chain).sign(request)
    return request


def message_of(request: httpx.Request) -> HTTPMessage:
    return HTTPMessage.from_headers(request.headers.raw, method=request.method,
                                    authority=request.url.netloc.decode(),
                                    path=request.url.path)


def verifier_trust(cb: Callback) -> None:
    Verifier(trust=cb).check_request(message_of(http_request()))


def check_capability_revoked(cb: Callback) -> None:
    request = http_request(ALICE, alice_chain(HTTP_GRANT, int(time.time())))
    message = message_of(request)
    verified = Verifier([ALICE]).check_request(message)
    check_capability(message, verified, ANCHORS, revoked=cb)


async def aio_open_envelope_trust(cb: Callback) -> None:
    store = agentauth_aio.async_replay_store(MemoryReplayStore())
    await agentauth_aio.open_envelope(envelope(), BOB, store, clock=Clock(T0), trust=cb)


async def asgi(options: dict[str, Any], request: httpx.Request) -> None:
    """Send ``request`` through the middleware built with ``options``; raise the
    refusal it answered with."""
    sent: list[Event] = []
    body = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Event:
        return body.pop(0) if body else {"type": "http.disconnect"}

    async def send(event: Event) -> None:
        sent.append(event)

    async def app(scope: Event, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"in"})

    scope = {"type": "http", "method": request.method, "scheme": "http",
             "path": request.url.path, "raw_path": request.url.raw_path,
             "query_string": b"", "headers": list(request.headers.raw)}
    options.setdefault("replay", MemoryReplayStore())
    middleware = AgentAuthMiddleware(app, identity=BOB, **options)
    await middleware(scope, receive, send)
    if sent[0]["status"] != 200:
        raise Refused(json.loads(sent[1]["body"])["error"]["data"]["code"])


class Refused(Exception):
    """The middleware's refusal, read back from its answer: only the code is known."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


async def asgi_verifier_trust(cb: Callback) -> None:
    await asgi({"verifier": Verifier(trust=cb)}, http_request())


async def asgi_revoked(cb: Callback) -> None:
    chain = alice_chain(HTTP_GRANT, int(time.time()))
    await asgi({"verifier": Verifier([ALICE]), "anchors": ANCHORS, "revoked": cb},
               http_request(ALICE, chain))


class AnsweringStore:
    """A replay store whose every answer is ``cb(key, expires)``."""

    def __init__(self, cb: Callback) -> None:
        self.cb = cb

    def check_and_insert(self, key: bytes, expires: float) -> Any:
        return self.cb(key, expires)

    def check_and_insert_many(self, items: Any) -> list[Any]:
        return [self.cb(key, expires) for key, expires in items]


def open_envelope_store(cb: Callback) -> None:
    open_envelope(envelope(), BOB, AnsweringStore(cb), clock=Clock(T0))


def detached_invocations_store(cb: Callback) -> None:
    checker = DetachedInvocations(ANCHORS, verifier=BOB.agent_id, clock=lambda: NOW,
                                  store=AnsweringStore(cb))
    checker.check(invoke(alice_chain(), REQUEST, holder=ALICE, verifier=BOB.agent_id,
                         clock=lambda: NOW))


async def aio_open_envelope_store(cb: Callback) -> None:
    store = agentauth_aio.async_replay_store(AnsweringStore(cb))
    await agentauth_aio.open_envelope(envelope(), BOB, store, clock=Clock(T0))


async def asgi_store(cb: Callback) -> None:
    await asgi({"verifier": Verifier(trust=accept_any_peer), "replay": AnsweringStore(cb)},
               http_request())


class AsyncAnsweringStore:
    """An application's own async replay store whose every answer is ``cb(key,
    expires)``, as its ``async def`` returns it (not awaited again)."""

    def __init__(self, cb: Callback) -> None:
        self.cb = cb

    async def check_and_insert(self, key: bytes, expires: float) -> Any:
        await anyio.lowlevel.checkpoint()
        return self.cb(key, expires)

    async def check_and_insert_many(self, items: Any) -> list[Any]:
        return [self.cb(key, expires) for key, expires in items]


async def aio_open_envelope_async_store(cb: Callback) -> None:
    await agentauth_aio.open_envelope(envelope(), BOB, AsyncAnsweringStore(cb),
                                      clock=Clock(T0))


async def asgi_async_store(cb: Callback) -> None:
    await asgi({"verifier": Verifier(trust=accept_any_peer),
                "replay": AsyncAnsweringStore(cb)}, http_request())


async def aio_connect_trust(cb: Callback) -> None:
    listener = await agentauth_aio.create_listener(
        "127.0.0.1", 0, BOB, HandshakePolicy(trust=accept_any_peer))
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handler(channel: Any) -> None:
        await channel.receive()

    refused: AgentAuthError | None = None
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        try:
            with anyio.fail_after(10):
                channel = await agentauth_aio.connect(
                    "127.0.0.1", port, ALICE, expect=BOB.agent_id,
                    policy=HandshakePolicy(trust=cb))
                await channel.aclose()
        except AgentAuthError as exc:  # raised here, not as a task group's group
            refused = exc
        finally:
            tg.cancel_scope.cancel()
    if refused is not None:
        raise refused


@dataclass(frozen=True)
class Site:
    """One callback the library accepts, and how a request reaches it."""

    name: str
    role: str  # how the error names it: "trust callback", "replay store"
    admit: bool  # the answer that lets the request through
    refusal: str  # the site's code for the opposite answer
    run: Callable[[Callback], object]  # sync: returns; async: returns an awaitable
    awaits: bool = False  # an async path that awaits an async def callback


#: Every callback that decides anything, in one table.
SITES = [
    Site("HandshakePolicy.trust (initiator)", "trust callback", True, "untrusted_peer",
         handshake_trust_initiator),
    Site("HandshakePolicy.trust (responder)", "trust callback", True, "untrusted_peer",
         handshake_trust_responder),
    Site("HandshakePolicy.credentials", "credentials callback", True, "untrusted_peer",
         handshake_credentials),
    Site("admission(revoked=) in the handshake", "revoked callback", False, "revoked",
         handshake_admission_revoked),
    Site("check_envelope(trust=)", "trust callback", True, "untrusted_peer",
         check_envelope_trust),
    Site("open_envelope(trust=)", "trust callback", True, "untrusted_peer",
         open_envelope_trust),
    Site("verify_chain(revoked=)", "revoked callback", False, "revoked",
         verify_chain_revoked),
    Site("SessionInvocations(revoked=)", "revoked callback", False, "revoked",
         session_invocations_revoked),
    Site("DetachedInvocations(revoked=)", "revoked callback", False, "revoked",
         detached_invocations_revoked),
    Site("http Verifier(trust=)", "trust callback", True, "untrusted_peer",
         verifier_trust),
    Site("http check_capability(revoked=)", "revoked callback", False, "revoked",
         check_capability_revoked),
    Site("aio open_envelope(trust=)", "trust callback", True, "untrusted_peer",
         aio_open_envelope_trust, awaits=True),
    Site("ASGI middleware, Verifier(trust=)", "trust callback", True, "untrusted_peer",
         asgi_verifier_trust),
    Site("ASGI middleware (revoked=)", "revoked callback", False, "revoked",
         asgi_revoked),
    Site("aio connect, HandshakePolicy.trust", "trust callback", True, "untrusted_peer",
         aio_connect_trust),
    # A replay store's answer decides too: exactly True is "new".
    Site("open_envelope replay store", "replay store", True, "replayed",
         open_envelope_store),
    Site("DetachedInvocations(store=)", "replay store", True, "replayed",
         detached_invocations_store),
    Site("aio open_envelope replay store", "replay store", True, "replayed",
         aio_open_envelope_store),
    Site("ASGI middleware replay store", "replay store", True, "replayed", asgi_store),
    # An async store: its method is awaited, its answer judged as it is.
    Site("aio open_envelope, async replay store", "replay store", True, "replayed",
         aio_open_envelope_async_store),
    Site("ASGI middleware, async replay store", "replay store", True, "replayed",
         asgi_async_store),
]
ASYNC = {aio_open_envelope_trust, asgi_verifier_trust, asgi_revoked, aio_connect_trust,
         aio_open_envelope_store, asgi_store, aio_open_envelope_async_store,
         asgi_async_store}
SYNC_SITES = [s for s in SITES if s.run not in ASYNC]
ASYNC_SITES = [s for s in SITES if s.run in ASYNC]


@contextmanager
def no_unawaited_coroutine() -> Iterator[None]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield
        gc.collect()  # a coroutine left unawaited warns when it is collected
    leaks = [w for w in seen if "never awaited" in str(w.message)]
    assert not leaks, leaks


def judge(site: Site, answer: str, error: AgentAuthError | Refused | None) -> None:
    got = "admitted" if error is None else error.code
    assert got == expected(answer, site), (site.name, answer, error)
    if got == "invalid_argument" and isinstance(error, AgentAuthError):
        assert f"the {site.role} " in error.message
        assert "0xdeadbeef" not in error.message
        if answer == "raising":
            assert isinstance(error.__cause__, Boom) and "Boom" in error.message


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("site", SYNC_SITES, ids=lambda s: s.name)
def test_a_synchronous_site_admits_only_the_exact_boolean(site: Site, answer: str) -> None:
    error: AgentAuthError | None = None
    with no_unawaited_coroutine():
        try:
            site.run(ANSWERS[answer])
        except AgentAuthError as exc:
            error = exc
    judge(site, answer, error)


@pytest.mark.anyio
@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("site", ASYNC_SITES, ids=lambda s: s.name)
async def test_an_asynchronous_site_admits_only_the_exact_boolean(site: Site,
                                                                   answer: str) -> None:
    error: AgentAuthError | Refused | None = None
    with no_unawaited_coroutine():
        try:
            result = site.run(ANSWERS[answer])
            assert isinstance(result, Awaitable)
            await result
        except (AgentAuthError, Refused) as exc:
            error = exc
    judge(site, answer, error)


# ------------------------------------------------------------------ the rule itself


def test_an_agentauth_error_from_a_callback_comes_through_unchanged() -> None:
    denied = CapabilityDenied("no chain", code="not_authorized")

    def refuse(*args: object) -> bool:
        raise denied

    with pytest.raises(CapabilityDenied) as info:
        ask("credentials", True, refuse, ALICE.peer)
    assert info.value is denied


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_a_base_exception_from_a_callback_is_not_translated(
        kind: type[BaseException]) -> None:
    def stop(*args: object) -> bool:
        raise kind

    with pytest.raises(kind):
        ask("trust", True, stop, ALICE.peer)


@pytest.mark.anyio
async def test_cancellation_inside_an_async_callback_passes_through() -> None:
    started = anyio.Event()

    async def slow(*args: object) -> bool:
        started.set()
        await anyio.sleep_forever()
        return True

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            async def run() -> None:
                await ask_async("trust", True, slow, ALICE.peer)

            tg.start_soon(run)
            await started.wait()
            scope.cancel()
    assert scope.cancelled_caught


def test_a_sync_path_refuses_any_awaitable_and_closes_a_coroutine() -> None:
    class Pending:
        def __await__(self) -> Iterator[None]:
            yield None

    with raises("invalid_argument"):
        verdict(Pending(), True, "trust")
    coroutine = async_true()
    with raises("invalid_argument") as info:
        verdict(coroutine, True, "trust")
    assert "awaitable (coroutine)" in info.value.message
    assert inspect.getcoroutinestate(coroutine) == "CORO_CLOSED"  # it can no longer warn


@pytest.mark.anyio
async def test_an_async_path_judges_the_awaited_value() -> None:
    awaited: list[bool] = []

    async def trust(*args: object) -> object:
        awaited.append(True)
        return 1  # truthy, not True

    with raises("invalid_argument"):
        await ask_async("trust", True, trust, ALICE.peer)
    assert awaited == [True]
    assert await ask_async("revoked", False, async_false, b"id") is True
    assert await ask_async("revoked", False, returning(True), b"id") is False


@pytest.mark.anyio
async def test_a_raising_trust_callback_on_a_listener_fails_that_handshake_only(
        caplog: pytest.LogCaptureFixture) -> None:
    def trust(peer: Any) -> bool:
        if peer == ALICE.peer:
            return True
        raise Boom("secret detail 0xdeadbeef")

    listener = await agentauth_aio.create_listener("127.0.0.1", 0, BOB,
                                                   HandshakePolicy(trust=trust))
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def echo(channel: Any) -> None:
        await channel.send(await channel.receive())

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        with anyio.fail_after(10):
            with pytest.raises(AgentAuthError):  # the listener dropped the stranger
                stranger = await agentauth_aio.connect("127.0.0.1", port, MALLORY,
                                                       expect=BOB.agent_id)
                await stranger.receive()
            async with await agentauth_aio.connect("127.0.0.1", port, ALICE,
                                                   expect=BOB.agent_id) as channel:
                await channel.send(b"still serving")
                assert await channel.receive() == b"still serving"
        tg.cancel_scope.cancel()
    assert listener.failed == 1 and listener.accepted == 1
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "invalid_argument" in logged and "0xdeadbeef" not in logged


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                 st.text(max_size=4), st.binary(max_size=4), st.lists(st.booleans()),
                 st.builds(NumpyLikeBool), st.builds(object)),
       st.booleans())
def test_verdict_admits_exactly_the_admitting_boolean(answer: object, admit: bool) -> None:
    if type(answer) is bool:
        assert verdict(answer, admit, "trust callback") is (answer is admit)
    else:
        with raises("invalid_argument") as info:
            verdict(answer, admit, "trust callback")
        assert type(answer).__name__ in info.value.message


NOT_CALLABLE = [frozenset({b"\x00" * 32}), MemoryReplayStore(), True]


@pytest.mark.parametrize("value", NOT_CALLABLE, ids=lambda v: type(v).__name__)
def test_a_callback_that_cannot_be_called_is_refused_at_set_up(value: object) -> None:
    bad: Any = value

    async def app(scope: Event, receive: Any, send: Any) -> None:
        pass

    builds: list[Callable[[], object]] = [
        lambda: Verifier(trust=bad),
        lambda: admission(ANCHORS, REQUEST, revoked=bad),
        lambda: SessionInvocations(ANCHORS, peer=ALICE.peer, channel_binding=BINDING,
                                   revoked=bad),
        lambda: DetachedInvocations(ANCHORS, verifier=BOB.agent_id, revoked=bad),
        lambda: AgentAuthMiddleware(app, identity=BOB, verifier=Verifier([ALICE]),
                                    replay=MemoryReplayStore(), revoked=bad)]
    for build in builds:
        with raises("invalid_argument") as info:
            build()
        assert "callable" in info.value.message


@pytest.mark.parametrize("value", NOT_CALLABLE, ids=lambda v: type(v).__name__)
def test_a_callback_that_cannot_be_called_is_refused_when_asked(value: object) -> None:
    bad: Any = value
    calls: list[Callable[[], object]] = [lambda: verify_chain_revoked(bad),
                                         lambda: check_envelope_trust(bad)]
    for call in calls:
        with raises("invalid_argument") as info:
            call()
        assert "not callable" in info.value.message


# ------------------------------------------------------------------ stores and resource_of


class CountingAsyncStore:
    """An application's own async replay store, over a memory store."""

    def __init__(self) -> None:
        self.inner = MemoryReplayStore()
        self.calls = 0

    async def check_and_insert(self, key: bytes, expires: float) -> bool:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        return self.inner.check_and_insert(key, expires)

    async def check_and_insert_many(self, items: Any) -> list[bool]:
        return self.inner.check_and_insert_many(items)


@pytest.mark.anyio
async def test_the_middleware_awaits_an_async_replay_store() -> None:
    # It has the method names of a synchronous store, so it passed for one, was called
    # from a thread and its coroutine refused: every request was a 500.
    store = CountingAsyncStore()
    request = http_request()
    options: dict[str, Any] = {"verifier": Verifier(trust=accept_any_peer), "replay": store}
    await asgi(dict(options), request)
    with pytest.raises(Refused) as info:
        await asgi(dict(options), request)
    assert info.value.code == "replayed" and store.calls == 2


class OneMethodStore:
    """Not a replay store: ``check_and_insert`` alone, and synchronous."""

    def check_and_insert(self, key: bytes, expires: float) -> bool:
        return True


def test_the_middleware_refuses_at_set_up_what_is_no_replay_store() -> None:
    # It was taken for an async store, and ``await True`` raised TypeError out of the app
    # on every request.
    async def app(scope: Event, receive: Any, send: Any) -> None:
        pass

    with raises("invalid_argument"):
        AgentAuthMiddleware(app, identity=BOB, verifier=Verifier([ALICE]),
                            replay=OneMethodStore())  # type: ignore[arg-type]


async def async_resource(method: str, path: str) -> Request:
    return Request(path[1:], method.lower())


def raising_resource(method: str, path: str) -> Request:
    raise Boom("secret detail 0xdeadbeef")


RESOURCE_OF: dict[str, Any] = {"async def": async_resource, "raising": raising_resource}


@pytest.mark.anyio
@pytest.mark.parametrize("kind", RESOURCE_OF)
async def test_a_resource_of_that_fails_is_a_local_error_in_the_middleware(
        kind: str, caplog: pytest.LogCaptureFixture) -> None:
    # An async resource_of was a 403 and left its coroutine unawaited; a raising one
    # raised out of the ASGI app.
    chain = alice_chain(HTTP_GRANT, int(time.time()))
    with no_unawaited_coroutine(), pytest.raises(Refused) as info:
        await asgi({"verifier": Verifier([ALICE]), "anchors": ANCHORS,
                    "resource_of": RESOURCE_OF[kind]}, http_request(ALICE, chain))
    assert info.value.code == "invalid_argument"  # 500, the reason in the log
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "the resource_of " in logged and "0xdeadbeef" not in logged


@pytest.mark.parametrize("kind", RESOURCE_OF)
def test_a_resource_of_that_fails_is_refused_by_the_client(kind: str) -> None:
    chain = alice_chain(HTTP_GRANT, int(time.time()))
    with no_unawaited_coroutine(), raises("invalid_argument") as info:
        AgentAuth(ALICE, chain=chain, resource_of=RESOURCE_OF[kind]).sign(
            httpx.Request("GET", "http://testserver/reports/q3"))
    assert "the resource_of " in info.value.message


def test_resource_of_must_be_callable() -> None:
    async def app(scope: Event, receive: Any, send: Any) -> None:
        pass

    bad: Any = None
    with raises("invalid_argument"):
        AgentAuthMiddleware(app, identity=BOB, verifier=Verifier([ALICE]),
                            replay=MemoryReplayStore(), resource_of=bad)
    with raises("invalid_argument"):
        AgentAuth(ALICE, resource_of=bad)


@pytest.mark.anyio
async def test_the_async_opener_takes_a_synchronous_store_too(tmp_path: Any) -> None:
    # It awaited the store's bool (TypeError out of the library); a store that is neither
    # is refused with a typed error.
    store = SQLiteReplayStore(tmp_path / "replay.db")
    try:
        data = envelope()
        await agentauth_aio.open_envelope(data, BOB, store, clock=Clock(T0))
        with raises("replayed"):
            await agentauth_aio.open_envelope(data, BOB, store, clock=Clock(T0))
    finally:
        store.close()
    with raises("invalid_argument"):
        await agentauth_aio.open_envelope(envelope(), BOB, OneMethodStore(),  # type: ignore
                                          clock=Clock(T0))


# ------------------------------------------------------------------ odd callables


class AsyncCallable:
    """An object whose ``__call__`` is an ``async def``."""

    def __init__(self, value: bool) -> None:
        self.value = value

    async def __call__(self, *args: object) -> bool:
        return self.value


class BoolRaises:
    def __bool__(self) -> bool:
        raise AssertionError("a verdict must not ask for truthiness")


class EqualsEverything:
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


class Pending:
    """An awaitable that is no coroutine (as a Future is), from a plain function."""

    def __await__(self) -> Iterator[None]:
        yield None


def true_then_raising() -> Callback:
    calls: list[int] = []

    def answer(*args: object) -> bool:
        calls.append(1)
        if len(calls) > 1:
            raise Boom("secret detail 0xdeadbeef")
        return False

    return answer


ODD: dict[str, Callable[[], Callback]] = {
    "async __call__": lambda: AsyncCallable(False),
    "partial of async def": lambda: functools.partial(async_false),
    "plain function returning an awaitable": lambda: returning(Pending()),
    "__bool__ raises": lambda: returning(BoolRaises()),
    "__eq__ says yes": lambda: returning(EqualsEverything()),
    "False, then raises": true_then_raising,
}


@pytest.mark.parametrize("odd", ODD)
def test_an_odd_revoked_callback_never_passes_a_chain(odd: str) -> None:
    # Two links, so that the callback is asked twice.
    two = encode_chain(chain_of(2))
    with no_unawaited_coroutine(), raises("invalid_argument"):
        verify_chain(two, ANCHORS, now=NOW, revoked=ODD[odd]())


@pytest.mark.anyio
@pytest.mark.parametrize("odd", ["async __call__", "partial of async def"])
async def test_an_async_path_awaits_an_odd_async_callable(odd: str) -> None:
    assert await ask_async("revoked callback", False, ODD[odd](), b"id") is True


# ------------------------------------------------------------------ clock readings


def signed_at(t: float) -> HTTPMessage:
    request = HTTPMessage.from_headers([], method="GET", authority="a.example", path="/")
    return request.with_fields(Signer(ALICE, clock=lambda: t).sign_request(request).headers)


def verifier_clock(reading: Any) -> None:
    # A request signed a day before the reading: stale by any real clock.
    Verifier([ALICE], clock=lambda: reading).check_request(signed_at(T0 - 86_400))


def check_response_now(reading: Any) -> None:
    request = signed_at(T0)
    nonce = re.search(r'nonce="([^"]+)"', request.field("signature-input") or "")
    assert nonce is not None
    answer = HTTPMessage.from_headers([], status=200, request=request)
    answer = answer.with_fields(Signer(BOB, clock=lambda: T0 - 86_400).sign_response(
        answer, nonce.group(1), b"").headers)
    check_response(answer, b"", request_nonce=nonce.group(1), server=BOB.agent_id,
                   now=reading)


def handshake_clock(reading: Any) -> None:
    Initiator(ALICE, HandshakePolicy(trust=accept_any_peer), clock=lambda: reading).start()


CLOCK_SITES: dict[str, Callable[[Any], object]] = {
    "http Verifier(clock=)": verifier_clock,
    "http check_response(now=)": check_response_now,
    "http Signer(clock=)": signed_at,
    "seal(clock=)": lambda r: seal(ALICE, BOB, b"x", clock=lambda: r),
    "check_envelope(now=)": lambda r: check_envelope(envelope(), BOB, now=r),
    "handshake clock": handshake_clock,
    "SessionInvocations(clock=)": lambda r: SessionInvocations(
        ANCHORS, peer=ALICE.peer, channel_binding=BINDING, clock=lambda: r).check(
        invoke(alice_chain(), REQUEST, channel_binding=BINDING, clock=lambda: NOW)),
    "DetachedInvocations(clock=)": lambda r: DetachedInvocations(
        ANCHORS, verifier=BOB.agent_id, clock=lambda: r).check(
        invoke(alice_chain(), REQUEST, holder=ALICE, verifier=BOB.agent_id,
               clock=lambda: NOW)),
    "invoke(clock=)": lambda r: invoke(alice_chain(), REQUEST, holder=ALICE,
                                       verifier=BOB.agent_id, clock=lambda: r),
    "admission(clock=)": lambda r: admission(ANCHORS, REQUEST, clock=lambda: r)(
        ALICE.peer, {CREDENTIAL_EXTENSION: alice_chain()}),
    "revoke(clock=)": lambda r: revoke(ROOT, chain_of(1), clock=lambda: r),
}
READINGS: dict[str, object] = {"NaN": float("nan"), "inf": float("inf"), "-1": -1,
                               "None": None, "str": "1700000000", "bool": True}


# check_response(now=None) reads the system clock, so None is no bad reading there.
CLOCK_CASES = [(site, reading) for site in CLOCK_SITES for reading in READINGS
               if not (site == "http check_response(now=)" and reading == "None")]


@pytest.mark.parametrize(("site", "reading"), CLOCK_CASES)
def test_a_clock_that_reads_no_time_refuses(site: str, reading: str) -> None:
    # The HTTP verifier and check_response took NaN, which passes every freshness test,
    # and accepted a day-old signature; other readings raised a bare TypeError or
    # ValueError out of the library.
    with raises("invalid_argument") as info:
        CLOCK_SITES[site](READINGS[reading])
    assert "seconds since the epoch" in info.value.message


@pytest.mark.parametrize("reading", ["NaN", "inf", "None"])
def test_pending_requests_refuse_a_clock_or_timeout_that_is_no_time(reading: str) -> None:
    # A NaN deadline never passes (NaN < now is false): the reply would be awaited for
    # ever; other readings raised a bare TypeError.
    value: Any = READINGS[reading]
    with raises("invalid_argument"):
        PendingRequests(clock=lambda: value).request(ALICE, BOB.agent_id, b"x")
    with raises("invalid_argument"):
        PendingRequests().request(ALICE, BOB.agent_id, b"x", timeout=value)


# Durations an application gives: one rule for each kind, whichever entry point takes it.
ODD_DURATIONS: dict[str, object] = {
    "NaN": float("nan"), "inf": float("inf"), "-1": -1, "True": True, "'5'": "5",
    "None": None,
}
DURATION_SITES: dict[str, Callable[[Any], object]] = {
    "HandshakePolicy(timeout=)": lambda v: HandshakePolicy(trust=accept_any_peer, timeout=v),
    "HandshakePolicy(max_skew=)": lambda v: HandshakePolicy(trust=accept_any_peer,
                                                            max_skew=v),
    "aio wrap(idle_timeout=)": lambda v: _aio_limits(idle_timeout=v),
    "aio wrap(handshake_timeout=)": lambda v: _aio_limits(handshake_timeout=v),
}
WINDOW_SITES: dict[str, Callable[[Any], object]] = {
    "check_envelope(window=)": lambda v: check_envelope(seal(ALICE, BOB.peer, b""), BOB,
                                                        now=T0, window=v),
    "check_envelope(skew=)": lambda v: check_envelope(seal(ALICE, BOB.peer, b""), BOB,
                                                      now=T0, skew=v),
    "http Verifier(window=)": lambda v: Verifier([ALICE.peer], window=v),
    "http check_response(skew=)": lambda v: check_response(
        HTTPMessage.from_headers([], status=200), b"", request_nonce="n", server=ALICE,
        skew=v),
}


def _aio_limits(**limits: Any) -> object:
    policy = HandshakePolicy(trust=accept_any_peer)
    return check_limits(policy, limits.get("handshake_timeout"),
                        limits.get("idle_timeout"), None)


@pytest.mark.parametrize("odd", [k for k in ODD_DURATIONS if k != "None"])
@pytest.mark.parametrize("site", DURATION_SITES)
def test_every_duration_is_judged_by_one_rule(site: str, odd: str) -> None:
    with raises("invalid_argument"):
        DURATION_SITES[site](ODD_DURATIONS[odd])


@pytest.mark.parametrize("odd", [*ODD_DURATIONS, "1.5", "86401"])
@pytest.mark.parametrize("site", WINDOW_SITES)
def test_every_window_and_skew_is_judged_by_one_rule(site: str, odd: str) -> None:
    value = {"1.5": 1.5, "86401": 86_401}.get(odd, ODD_DURATIONS.get(odd))
    with raises("invalid_argument") as info:
        WINDOW_SITES[site](value)
    assert "from 0 to 86400" in info.value.message


@given(st.one_of(st.floats(), st.integers(), st.booleans(), st.none(), st.text()))
def test_is_seconds_is_a_finite_non_negative_number(value: object) -> None:
    finite = (type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
              and value >= 0)  # type: ignore[operator]
    assert is_seconds(value) is finite
    assert is_seconds(value, positive=True) is (finite and value > 0)  # type: ignore[operator]


# A check that asks callbacks on both paths is one flow, driven by drive or drive_async.
def _flow(log: list[str]) -> Generator[Question, bool, str]:
    first = yield ("first callback", lambda: True, ())
    log.append(f"first {first}")
    try:
        second = yield ("second callback", lambda x: x, (log[-1],))
    except BaseException as exc:
        log.append(f"cleaned up after {type(exc).__name__}")
        raise
    return f"done {second}"


@pytest.mark.anyio
async def test_both_drivers_answer_a_flow_alike_and_raise_into_it() -> None:
    sync_log: list[str] = []
    async_log: list[str] = []
    # The second answer is a string, not a verdict: invalid_argument, raised in the flow
    # at its question, so that its clean-up runs, then out of the driver.
    with raises("invalid_argument") as info:
        drive(_flow(sync_log))
    with raises("invalid_argument"):
        await drive_async(_flow(async_log))
    assert "second callback returned str" in info.value.message
    assert sync_log == async_log == ["first True", "cleaned up after InvalidArgument"]


@pytest.mark.anyio
async def test_both_drivers_return_what_the_flow_returns() -> None:
    def flow() -> Generator[Question, bool, str]:
        answer = yield ("check", lambda: True, ())
        return f"answered {answer}"

    async def async_check() -> bool:
        return True

    def async_flow() -> Generator[Question, bool, str]:
        answer = yield ("check", async_check, ())
        return f"answered {answer}"

    assert drive(flow()) == await drive_async(flow()) == "answered True"
    assert await drive_async(async_flow()) == "answered True"
    with raises("invalid_argument"):  # the synchronous path does not await
        drive(async_flow())


# A bound on everything and on one party's share: one rule for every place that has both.
BOUND_SITES: dict[str, Callable[[Any, Any], object]] = {
    "PendingRequests": lambda total, share: PendingRequests(total, per_recipient=share),
    "Shares": Shares,
    "AgentAuthListener": lambda total, share: agentauth_aio.AgentAuthListener(
        None,  # type: ignore[arg-type]  # the bounds are judged before it is used
        BOB, HandshakePolicy(trust=accept_any_peer), max_half_open=total,
        max_half_open_per_source=share),
}


@pytest.mark.parametrize("site", BOUND_SITES)
def test_every_bound_and_share_is_judged_by_one_rule(site: str) -> None:
    for total, share in ((0, None), (True, None), (16, 0), (16, 2.0)):
        with raises("invalid_argument") as info:
            BOUND_SITES[site](total, share)
        assert "is a positive integer" in info.value.message
    assert check_bounds(100, None, ("a", "b")) == (100, 6)
    assert check_bounds(3, None, ("a", "b")) == (3, 1)

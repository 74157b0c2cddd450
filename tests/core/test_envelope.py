"""One-shot envelopes (spec section 12): each check with its code, clock boundaries, reply
binding, replay through real stores, nothing remembered before the signature verifies,
sealed envelopes, async opening on both backends, and random bytes giving typed errors."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ALICE, BOB, CAROL, MALLORY, raises

from agentauth import (
    AgentAuthError,
    MemoryReplayStore,
    PendingRequests,
    SQLiteReplayStore,
    async_replay_store,
    check_envelope,
    open_envelope,
    seal,
    wire,
)
from agentauth import aio as agentauth_aio
from agentauth.capability import DetachedInvocations, Grant, Request, delegate, encode_chain
from agentauth.capability import invoke as make_invocation
from agentauth.envelope import ENVELOPE_CONTEXT
from agentauth.replay import Shares

NOW = 1_800_000_000


def at(t: float) -> Any:
    return lambda: t


class CountingStore(MemoryReplayStore):
    """A memory store that counts what it was asked to remember."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def check_and_insert(self, key: bytes, expires: float) -> bool:
        self.asked += 1
        return super().check_and_insert(key, expires)


def test_signed_and_sealed_envelopes_open_with_every_field() -> None:
    for encrypt in (False, True):
        data = seal(ALICE, BOB.agent_id, b"hello", encrypt=encrypt, clock=at(NOW))
        assert (b"hello" in data) is not encrypt  # sealed: the payload is not readable
        assert (ALICE.public_bytes in data) is not encrypt  # nor who sent it
        envelope = open_envelope(data, BOB, MemoryReplayStore(), clock=at(NOW + 5))
        assert envelope.sender == ALICE.peer and envelope.recipient == BOB.peer
        assert (envelope.payload, envelope.time, envelope.sealed) == (b"hello", NOW, encrypt)
        assert len(envelope.nonce) == 16 and envelope.reply_to == b""


def test_each_check_has_its_code() -> None:
    data = seal(ALICE, BOB, b"x", clock=at(NOW))
    with raises("wrong_recipient"):
        check_envelope(data, CAROL, now=NOW)
    with raises("wrong_recipient"):
        check_envelope(seal(ALICE, BOB, b"x", encrypt=True, clock=at(NOW)), CAROL, now=NOW)
    sealed_to_carol = wire.decode_map(seal(ALICE, CAROL, b"x", encrypt=True,
                                           clock=at(NOW)), 3, 1 << 20, "e")
    relabelled = wire.encode_map(2, BOB.public_bytes, sealed_to_carol[2])
    with raises("decrypt_failed"):  # the clear recipient lies: the box is not Bob's
        check_envelope(relabelled, BOB, now=NOW)
    kind, body, signature = wire.decode_map(data, 3, 1 << 20, "e")
    fields = wire.decode_map(body, 6, 1 << 20, "b")
    fields[5] = b"y"
    with raises("bad_signature"):  # the payload changed under the signature
        check_envelope(wire.encode_map(kind, wire.encode_map(*fields), signature), BOB,
                       now=NOW)
    forged_body = wire.encode_map(*fields)
    with raises("bad_signature"):  # signed by mallory, claiming alice
        check_envelope(wire.encode_map(1, forged_body, MALLORY.sign(ENVELOPE_CONTEXT
                                                                    + forged_body)),
                       BOB, now=NOW)
    with raises("untrusted_peer"):
        check_envelope(data, BOB, now=NOW, trust=lambda peer: peer == CAROL.peer)
    check_envelope(data, BOB, now=NOW, trust=lambda peer: peer == ALICE.peer)
    with raises("unknown_field"):
        check_envelope(wire.encode_map(3, body, signature), BOB, now=NOW)
    with raises("non_canonical"):
        check_envelope(data[:1] + b"\xcc" + data[1:2] + data[2:], BOB, now=NOW)
    with raises("malformed"):
        check_envelope(data + b"\x00", BOB, now=NOW)
    with raises("malformed"):  # a short signature is the form (step 1), before the recipient
        check_envelope(wire.encode_map(kind, body, signature[:63]), CAROL, now=NOW)


def test_clock_window_boundaries() -> None:
    data = seal(ALICE, BOB, b"x", clock=at(NOW))
    window, skew = 300, 60
    check_envelope(data, BOB, now=NOW + window + skew)  # the oldest accepted
    with raises("stale"):
        check_envelope(data, BOB, now=NOW + window + skew + 1)
    check_envelope(data, BOB, now=NOW - skew)  # dated as far ahead as allowed
    with raises("clock_skew"):
        check_envelope(data, BOB, now=NOW - skew - 1)
    check_envelope(data, BOB, now=NOW + 10, window=0, skew=10)
    with raises("stale"):
        check_envelope(data, BOB, now=NOW + 11, window=0, skew=10)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_replay_is_refused_and_remembered_only_after_verification(kind: str,
                                                                     tmp_path: Path) -> None:
    store = (MemoryReplayStore() if kind == "memory"
             else SQLiteReplayStore(tmp_path / "replay.db"))
    data = seal(ALICE, BOB, b"x", clock=at(NOW))
    open_envelope(data, BOB, store, clock=at(NOW))
    with raises("replayed"):
        open_envelope(data, BOB, store, clock=at(NOW + 100))
    again = seal(ALICE, BOB, b"x", clock=at(NOW))  # same content, a new nonce
    open_envelope(again, BOB, store, clock=at(NOW))
    counting = CountingStore()
    for bad in (data[:-1] + bytes([data[-1] ^ 1]), seal(ALICE, CAROL, b"x", clock=at(NOW))):
        with pytest.raises(AgentAuthError):
            open_envelope(bad, BOB, counting, clock=at(NOW))
    with raises("stale"):
        open_envelope(data, BOB, counting, clock=at(NOW + 361))
    assert counting.asked == 0  # nothing that failed a check was ever remembered


def test_a_reply_must_answer_a_request_we_sent_to_its_sender() -> None:
    pending = PendingRequests(clock=at(NOW))
    request = pending.request(ALICE, BOB, b"what time is it?")
    asked = open_envelope(request, BOB, MemoryReplayStore(), clock=at(NOW))
    reply = seal(BOB, ALICE, b"noon", reply_to=asked.nonce, clock=at(NOW + 1))
    inbox = MemoryReplayStore()
    with raises("unexpected_reply"):  # no table of requests: no reply can be expected
        open_envelope(reply, ALICE, inbox, clock=at(NOW + 1))
    impostor = seal(CAROL, ALICE, b"midnight", reply_to=asked.nonce, clock=at(NOW + 1))
    with raises("unexpected_reply"):  # the request went to Bob, not Carol
        open_envelope(impostor, ALICE, inbox, clock=at(NOW + 1), pending=pending)
    never = seal(BOB, ALICE, b"noon", reply_to=b"\x07" * 16, clock=at(NOW + 1))
    with raises("unexpected_reply"):  # a request never sent
        open_envelope(never, ALICE, inbox, clock=at(NOW + 1), pending=pending)
    answer = open_envelope(reply, ALICE, inbox, clock=at(NOW + 1), pending=pending)
    assert answer.payload == b"noon" and len(pending) == 0
    second = seal(BOB, ALICE, b"one o'clock", reply_to=asked.nonce, clock=at(NOW + 2))
    with raises("unexpected_reply"):  # one reply per request
        open_envelope(second, ALICE, inbox, clock=at(NOW + 2), pending=pending)
    late = PendingRequests(clock=at(NOW))
    request = late.request(ALICE, BOB, b"?", timeout=10)
    nonce = open_envelope(request, BOB, MemoryReplayStore(), clock=at(NOW)).nonce
    with raises("unexpected_reply"):  # the request stopped waiting
        open_envelope(seal(BOB, ALICE, b"!", reply_to=nonce, clock=at(NOW + 11)), ALICE,
                      MemoryReplayStore(), clock=at(NOW + 11), pending=late)


def test_a_recipient_that_never_replies_cannot_take_every_place() -> None:
    moment = [NOW]
    pending = PendingRequests(capacity=64, per_recipient=4, clock=lambda: moment[0])
    refused = 0
    for _ in range(64):  # Mallory never answers; the caller keeps asking
        try:
            pending.request(ALICE, MALLORY, b"?", timeout=10)
        except AgentAuthError as exc:
            assert exc.code == "invalid_state" and MALLORY.agent_id in str(exc)
            refused += 1
    assert refused == 60 and len(pending) == 4
    with raises("invalid_state"):  # the same share, however the request is registered
        pending.expect(b"n" * 16, MALLORY, expires=NOW + 10)
    asked = open_envelope(pending.request(ALICE, BOB, b"?"), BOB, MemoryReplayStore(),
                          clock=at(NOW))  # Bob's requests still have their places
    reply = seal(BOB, ALICE, b"!", reply_to=asked.nonce, clock=at(NOW))
    open_envelope(reply, ALICE, MemoryReplayStore(), clock=at(NOW), pending=pending)
    moment[0] = NOW + 11  # Mallory's requests stop waiting: her share is free again
    pending.request(ALICE, MALLORY, b"?")
    assert PendingRequests()._per_recipient == 100_000 // 16
    for bad in (0, -1, 1.5, True, "4"):
        with raises("invalid_argument"):
            PendingRequests(per_recipient=bad)  # type: ignore[arg-type]


def test_a_failed_store_leaves_the_request_waiting() -> None:
    pending = PendingRequests(clock=at(NOW))
    asked = open_envelope(pending.request(ALICE, BOB, b"?"), BOB, MemoryReplayStore(),
                          clock=at(NOW))
    reply = seal(BOB, ALICE, b"!", reply_to=asked.nonce, clock=at(NOW))
    full = MemoryReplayStore(capacity=1)
    full.check_and_insert(b"someone else", NOW + 1000)
    with raises("store_full"):
        open_envelope(reply, ALICE, full, clock=at(NOW), pending=pending)
    assert len(pending) == 1  # nothing half-applied: the reply can still be taken
    open_envelope(reply, ALICE, MemoryReplayStore(), clock=at(NOW), pending=pending)


def test_an_invocation_rides_in_an_envelope() -> None:
    root = delegate(CAROL, ALICE, [Grant("queue/jobs/**", {"submit"})], not_before=NOW - 10,
                    expires=NOW + 3600)
    invocation = make_invocation(encode_chain([root]), Request("queue/jobs/7", "submit"),
                                 holder=ALICE, verifier=BOB.agent_id, clock=at(NOW))
    envelope = open_envelope(seal(ALICE, BOB, invocation, clock=at(NOW)), BOB,
                             MemoryReplayStore(), clock=at(NOW))
    checker = DetachedInvocations({CAROL.agent_id: "queue/**"}, verifier=BOB, clock=at(NOW))
    request, _, holder = checker.check(envelope.payload)
    assert request.resource == "queue/jobs/7" and holder == envelope.sender


@pytest.mark.anyio
async def test_async_opening_on_both_backends(tmp_path: Path) -> None:
    store = async_replay_store(SQLiteReplayStore(tmp_path / "replay.db"))
    data = seal(ALICE, BOB, b"x", encrypt=True, clock=at(NOW))
    envelope = await agentauth_aio.open_envelope(data, BOB, store, clock=at(NOW))
    assert envelope.payload == b"x" and envelope.sealed
    with raises("replayed"):
        await agentauth_aio.open_envelope(data, BOB, store, clock=at(NOW))


@pytest.mark.anyio
@pytest.mark.parametrize("opener", ["sync", "async"])
async def test_shares_keep_one_sender_from_filling_the_store(opener: str) -> None:
    store, shares = MemoryReplayStore(capacity=64), Shares(64, 4)

    async def open_one(data: bytes) -> None:
        if opener == "sync":
            open_envelope(data, BOB, store, clock=at(NOW), shares=shares)
        else:
            await agentauth_aio.open_envelope(data, BOB, async_replay_store(store),
                                              clock=at(NOW), shares=shares)

    refused = []
    for _ in range(64):  # Mallory, trusted, sends as many fresh envelopes as it holds
        try:
            await open_one(seal(MALLORY, BOB, b"flood", clock=at(NOW)))
        except AgentAuthError as exc:
            refused.append(exc.code)
    assert refused == ["store_full"] * 60 and len(store) == 4
    for _ in range(3):  # Carol keeps her share
        await open_one(seal(CAROL, BOB, b"hi", clock=at(NOW)))
    again = seal(CAROL, BOB, b"again", clock=at(NOW))
    await open_one(again)
    with raises("store_full"):  # her share is taken: refused before the store is asked
        await open_one(again)
    assert len(shares) == 8 and shares.held(CAROL.public_bytes) == 4


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.binary(max_size=400))
def test_random_bytes_give_only_typed_errors(data: bytes) -> None:
    with contextlib.suppress(AgentAuthError):
        open_envelope(data, BOB, MemoryReplayStore(), clock=at(NOW))


GOOD = [seal(ALICE, BOB, b"payload", clock=at(NOW)),
        seal(ALICE, BOB, b"payload", encrypt=True, clock=at(NOW))]


@settings(max_examples=400, deadline=None, database=None)
@given(which=st.integers(0, 1), index=st.integers(0, 10_000), value=st.integers(0, 255),
       cut=st.booleans())
def test_mutated_envelopes_give_only_typed_errors(which: int, index: int, value: int,
                                                  cut: bool) -> None:
    data = bytearray(GOOD[which])
    index %= len(data)
    if cut:
        del data[index:]
    else:
        data[index] = value
    store = CountingStore()
    try:
        envelope = open_envelope(bytes(data), BOB, store, clock=at(NOW))
    except AgentAuthError:
        assert store.asked == 0 or bytes(data) == GOOD[which]
        return
    assert envelope.payload == b"payload"  # only an unchanged envelope opens


def test_the_readme_envelope_example_runs_as_written() -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    section = readme.read_text(encoding="utf-8").split("### Envelopes and replay stores", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"alice": ALICE, "bob": BOB}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["answer"].payload == b"the report"
    assert namespace["answer"].sender == BOB.peer


def test_concurrent_replies_to_one_request_are_accepted_once() -> None:
    pending = PendingRequests(clock=at(NOW))
    asked = open_envelope(pending.request(ALICE, BOB, b"?"), BOB, MemoryReplayStore(),
                          clock=at(NOW))
    replies = [seal(BOB, ALICE, b"answer %d" % i, reply_to=asked.nonce, clock=at(NOW))
               for i in range(8)]
    inbox = MemoryReplayStore()
    results: list[str] = []

    def take(reply: bytes) -> None:
        try:
            open_envelope(reply, ALICE, inbox, clock=at(NOW), pending=pending)
            results.append("ok")
        except AgentAuthError as exc:
            results.append(exc.code)

    workers = [threading.Thread(target=take, args=(reply,)) for reply in replies]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(results) == ["ok"] + ["unexpected_reply"] * 7


def test_odd_clocks_and_what_an_envelope_shows() -> None:
    data = seal(ALICE, BOB, b"secret plans", encrypt=True, clock=at(NOW))
    for odd in (float("nan"), "now", -1):
        with raises("invalid_argument"):
            check_envelope(data, BOB, now=odd)  # type: ignore[arg-type]
    opened = check_envelope(data, BOB, now=NOW)
    assert "secret plans" not in repr(opened) and "12 bytes" in repr(opened)
    with raises("invalid_argument"):
        PendingRequests().expect(b"n" * 16, BOB, expires=float("nan"))

"""Invocations: a chain used by its holder in a session (bound to the channel binding) or
detached (signed, fresh, once). A stolen chain is useless; replays are refused."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ALICE, BOB, CAROL, MALLORY, raises
from support.aio import DEADLINE, memory_pair, stream_pair
from support.chains import ANCHORS, NOW, PARENT_GRANT, ROOT, chain_of

from agentauth import (
    AgentAuthAttribute,
    AgentAuthError,
    MemoryReplayStore,
    SQLiteReplayStore,
    wire,
)
from agentauth.capability import (
    DetachedInvocations,
    Request,
    SessionInvocations,
    delegate,
    encode_chain,
    invoke,
)
from agentauth.replay import Shares

REQUEST = Request("fs/reports/q3/summary", "read", {"size": 50})
BINDING = bytes(range(64))


def at(moment: int) -> Callable[[], float]:
    return lambda: moment


def alice_chain() -> bytes:
    return encode_chain([delegate(ROOT, ALICE, [PARENT_GRANT], not_before=NOW - 100,
                                  expires=NOW + 3600)])


def session_checker(peer: object = ALICE.peer,
                    binding: bytes = BINDING) -> SessionInvocations:
    return SessionInvocations(ANCHORS, peer=peer, channel_binding=binding,  # type: ignore[arg-type]
                              clock=lambda: NOW)


def test_in_session_use_and_its_refusals() -> None:
    chain = alice_chain()
    checker = session_checker()
    invocation = invoke(chain, REQUEST, channel_binding=BINDING, clock=lambda: NOW)
    request, links = checker.check(invocation)
    assert request == REQUEST and links[-1].audience == ALICE.public_bytes
    with raises("replayed"):
        checker.check(invocation)  # the same invocation twice in one session
    with raises("wrong_session"):  # captured here, replayed in another session
        session_checker(binding=bytes(64)).check(invocation)
    with raises("holder_mismatch"):  # Mallory stole Alice's chain
        session_checker(peer=MALLORY.peer).check(
            invoke(chain, REQUEST, channel_binding=BINDING, clock=lambda: NOW))
    with raises("not_authorized"):
        checker.check(invoke(chain, Request("db/x", "read"), channel_binding=BINDING))
    with raises("wrong_session"):  # a session invocation is no detached one
        DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: NOW).check(invocation)


def test_detached_use_and_its_refusals() -> None:
    chain = alice_chain()
    checker = DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: NOW)
    invocation = invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id, clock=lambda: NOW)
    request, _, holder = checker.check(invocation)
    assert request == REQUEST and holder == ALICE.peer
    with raises("replayed"):
        checker.check(invocation)
    with raises("bad_signature"):  # signed by someone other than the holder
        checker.check(invoke(chain, REQUEST, holder=MALLORY, verifier=BOB.agent_id,
                             clock=lambda: NOW))
    for offset in (-181, 181):
        with raises("stale_invocation"):
            checker.check(invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id,
                                 clock=at(NOW + offset)))
    checker.check(invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id,
                         clock=lambda: NOW + 180))
    small = DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: NOW, capacity=1)
    small.check(invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id, clock=lambda: NOW))
    with raises("invalid_state"):  # full: refuse rather than forget
        small.check(invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id, clock=lambda: NOW))
    with raises("invalid_argument"):
        invoke(chain, REQUEST, holder=ALICE, channel_binding=BINDING)
    with raises("wrong_verifier"):  # what BOB received, replayed by BOB to CAROL
        DetachedInvocations(ANCHORS, verifier=CAROL, clock=lambda: NOW).check(invocation)


def test_replicas_of_a_verifier_share_a_replay_store(tmp_path: Path) -> None:
    chain = alice_chain()
    shared = SQLiteReplayStore(tmp_path / "replay.db")  # as a Redis store would be shared
    replicas = [DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: NOW, store=shared)
                for _ in range(2)]
    invocation = invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id, clock=lambda: NOW)
    replicas[0].check(invocation)
    with raises("replayed"):  # the other replica has seen it too
        replicas[1].check(invocation)
    forged = invoke(chain, REQUEST, holder=MALLORY, verifier=BOB.agent_id, clock=lambda: NOW)
    with raises("bad_signature"):
        replicas[1].check(forged)
    assert len(shared) == 1  # only what verified was remembered
    restarted = DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: NOW,
                                    store=SQLiteReplayStore(tmp_path / "replay.db"))
    with raises("replayed"):
        restarted.check(invocation)
    with raises("invalid_argument"):
        DetachedInvocations(ANCHORS, verifier=BOB, store=object())  # type: ignore[arg-type]


def test_one_holder_cannot_use_up_another_holders_ids() -> None:
    checker = DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: NOW)
    alice = invoke(alice_chain(), REQUEST, holder=ALICE, verifier=BOB.agent_id,
                   clock=lambda: NOW, random=bytes)
    mallory_chain = encode_chain([delegate(ROOT, MALLORY, [PARENT_GRANT],
                                           not_before=NOW - 100, expires=NOW + 3600)])
    mallory = invoke(mallory_chain, REQUEST, holder=MALLORY, verifier=BOB.agent_id,
                     clock=lambda: NOW, random=bytes)  # the same id
    checker.check(mallory)
    checker.check(alice)  # Alice's id is hers: still accepted


def mallory_chain() -> bytes:
    return encode_chain([delegate(ROOT, MALLORY, [PARENT_GRANT], not_before=NOW - 100,
                                  expires=NOW + 3600)])


@pytest.mark.parametrize("shared", [False, True])
def test_one_holder_cannot_fill_the_replay_cache_for_the_others(tmp_path: Path,
                                                                shared: bool) -> None:
    store = SQLiteReplayStore(tmp_path / "replay.db") if shared else None
    checker = DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: NOW, capacity=64,
                                  per_holder=4, store=store)
    flood = mallory_chain()
    refused = 0
    for _ in range(64):  # as many fresh ids as the whole cache holds
        try:
            checker.check(invoke(flood, REQUEST, holder=MALLORY, verifier=BOB.agent_id,
                                 clock=lambda: NOW))
        except AgentAuthError as exc:
            assert exc.code == "invalid_state" and MALLORY.agent_id in str(exc)
            refused += 1
    assert refused == 60  # Mallory had her share, 4
    for _ in range(4):  # Alice still has all of hers
        checker.check(invoke(alice_chain(), REQUEST, holder=ALICE, verifier=BOB.agent_id,
                             clock=lambda: NOW))
    if store is not None:
        assert len(store) == 8  # nothing refused was remembered
        store.close()


def test_a_refused_or_failed_check_gives_its_place_back(tmp_path: Path) -> None:
    store = SQLiteReplayStore(tmp_path / "replay.db")
    checker = DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: NOW, per_holder=1,
                                  store=store)
    invocation = invoke(alice_chain(), REQUEST, holder=ALICE, verifier=BOB.agent_id,
                        clock=lambda: NOW)
    store.check_and_insert(b"invocation:" + ALICE.public_bytes + b"\0" * 16, NOW + 10)
    replayed = invoke(alice_chain(), REQUEST, holder=ALICE, verifier=BOB.agent_id,
                      clock=lambda: NOW, random=lambda n: b"\0" * n)
    with raises("replayed"):  # the store had it: the place is given back
        checker.check(replayed)
    store.close()
    with pytest.raises(AgentAuthError):  # the store fails: so is the place
        checker.check(invocation)
    assert len(checker._shares) == 0 and checker._shares.held(ALICE.public_bytes) == 0


def test_a_holders_share_frees_up_as_its_ids_expire() -> None:
    moment = [NOW]
    checker = DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: moment[0], per_holder=1)
    chain = alice_chain()
    checker.check(invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id, clock=at(NOW)))
    with raises("invalid_state"):
        checker.check(invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id,
                             clock=at(NOW)))
    moment[0] = NOW + 181  # the first id's window has passed: it is forgotten
    checker.check(invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id,
                         clock=at(NOW + 181)))
    for bad in (0, -1, 1.5, True, "4"):
        with raises("invalid_argument"):
            DetachedInvocations(ANCHORS, verifier=BOB, per_holder=bad)  # type: ignore[arg-type]
    assert DetachedInvocations(ANCHORS, verifier=BOB)._shares.per_source == 100_000 // 16
    assert DetachedInvocations(ANCHORS, verifier=BOB, capacity=8)._shares.per_source == 1


def test_expired_ids_are_forgotten_in_deadline_order() -> None:
    moment = [NOW]
    checker = DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: moment[0], capacity=2,
                                  per_holder=2)
    chain = alice_chain()
    checker.check(invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id,
                         clock=at(NOW + 170)))  # dated in the future: kept longer
    checker.check(invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id,
                         clock=at(NOW)))
    moment[0] = NOW + 181  # the second id's window has passed, the first's has not
    checker.check(invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id,
                         clock=at(NOW + 181)))


def test_delegated_chain_used_by_the_leaf_holder() -> None:
    links = chain_of(3)  # ROOT -> ALICE -> BOB -> CAROL
    chain = encode_chain(links)
    checker = session_checker(peer=CAROL.peer)
    checker.check(invoke(chain, REQUEST, channel_binding=BINDING, clock=lambda: NOW))
    with raises("holder_mismatch"):  # BOB holds the middle link, not the leaf
        session_checker(peer=BOB.peer).check(
            invoke(chain, REQUEST, channel_binding=BINDING, clock=lambda: NOW))


def _reshaped(invocation: bytes, field: int, value: object, *,
              signature: bytes | None = None) -> bytes:
    """``invocation`` with one payload field replaced (and, given, its signature)."""
    payload, old = wire.decode_map(invocation, 2, 1 << 16, "invocation")
    fields = wire.decode_map(payload, 7, 1 << 16, "payload")
    fields[field] = value
    return wire.encode_map(wire.encode_map(*fields), old if signature is None else signature)


def test_the_form_fixes_every_length_before_either_mode_reads_it() -> None:
    """Spec 10.7, the form: binding 0 or 64 bytes, verifier 0 or 32, signature 0 or 64, time
    an unsigned integer; else malformed, whichever mode reads it. In a session the verifier
    and signature fields are empty (a detached invocation is wrong_session there)."""
    chain = alice_chain()
    inside = invoke(chain, REQUEST, channel_binding=BINDING, clock=lambda: NOW)
    detached = invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id, clock=lambda: NOW)
    in_session = session_checker()
    alone = DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: NOW)
    for bad in (_reshaped(inside, 3, BINDING[:32]), _reshaped(inside, 6, -1),
                _reshaped(inside, 0, 1, signature=bytes(10))):
        for checker in (in_session.check, alone.check):
            with raises("malformed"):
                checker(bad)
    with raises("malformed"):
        alone.check(_reshaped(detached, 3, bytes(63)))
    with raises("wrong_session"):  # a detached invocation is never used in a session
        in_session.check(_reshaped(detached, 3, BINDING))
    with raises("wrong_session"):
        in_session.check(_reshaped(inside, 4, BOB.public_bytes))
    with raises("bad_signature"):  # the form allows an empty signature; detached, it fails
        alone.check(_reshaped(detached, 0, 1, signature=b""))
    with raises("invalid_argument"):
        invoke(chain, REQUEST, channel_binding=BINDING[:32])
    in_session.check(inside)
    alone.check(detached)


@settings(max_examples=200, deadline=None, database=None)
@given(index=st.integers(0, 10_000), value=st.integers(0, 255))
def test_mutated_invocations_give_only_typed_errors(index: int, value: int) -> None:
    data = bytearray(invoke(alice_chain(), REQUEST, channel_binding=BINDING,
                            clock=lambda: NOW))
    data[index % len(data)] = value
    with contextlib.suppress(AgentAuthError):
        session_checker().check(bytes(data))


@pytest.mark.anyio
async def test_a_chain_used_through_a_real_channel() -> None:
    # Alice sends an invocation over an authenticated channel; Bob checks it against the
    # channel's peer and binding. Replaying it on the same channel, or another, fails.
    with anyio.fail_after(DEADLINE):
        a, b = await stream_pair(*memory_pair())
        binding = a.extra(AgentAuthAttribute.channel_binding)
        invocation = invoke(alice_chain(), REQUEST, channel_binding=binding,
                            clock=lambda: NOW)
        await a.send(invocation)
        checker = SessionInvocations(ANCHORS, peer=b.extra(AgentAuthAttribute.peer_key),
                                     channel_binding=b.extra(
                                         AgentAuthAttribute.channel_binding),
                                     clock=lambda: NOW)
        request, _ = checker.check(await b.receive())
        assert request == REQUEST
        with raises("replayed"):
            checker.check(invocation)
        c, d = await stream_pair(*memory_pair())
        other = SessionInvocations(ANCHORS, peer=d.extra(AgentAuthAttribute.peer_key),
                                   channel_binding=d.extra(AgentAuthAttribute.channel_binding),
                                   clock=lambda: NOW)
        with raises("wrong_session"):
            other.check(invocation)
        for channel in (a, b, c, d):
            await channel.aclose()


@pytest.mark.parametrize("binding", [b"", bytes(32), "x" * 64])
def test_a_session_checker_needs_the_sessions_binding(binding: object) -> None:
    with raises("invalid_argument"):
        session_checker(binding=binding)  # type: ignore[arg-type]


def test_a_shared_store_keeps_an_id_as_long_as_the_whole_second_it_is_valid(
        tmp_path: Path) -> None:
    chain = alice_chain()
    moment = [float(NOW)]
    checker = DetachedInvocations(ANCHORS, verifier=BOB, clock=lambda: moment[0],
                                  store=MemoryReplayStore(clock=lambda: moment[0]))
    invocation = invoke(chain, REQUEST, holder=ALICE, verifier=BOB.agent_id, clock=lambda: NOW)
    checker.check(invocation)
    moment[0] = NOW + 180 + 0.5  # the clock is read in whole seconds: still in the window
    with raises("replayed"):
        checker.check(invocation)
    moment[0] = NOW + 181
    with raises("stale_invocation"):
        checker.check(invocation)


def test_shares_hold_their_bounds_across_threads() -> None:
    shares = Shares(capacity=10_000, per_source=50)
    start = threading.Barrier(8)
    taken: list[int] = []

    def take(source: bytes) -> None:
        start.wait()
        got = 0
        for _ in range(200):
            with contextlib.suppress(LookupError), shares.place(source, LookupError) as keep:
                keep(NOW, b"")
                got += 1
        taken.append(got)

    threads = [threading.Thread(target=take, args=(bytes([i % 2]) * 32,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(taken) == 100 and len(shares) == 100  # 50 for each of the two sources
    assert len(shares.expire(NOW + 1)) == 100 and len(shares) == 0
    assert shares.held(bytes(32)) == 0

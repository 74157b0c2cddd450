"""The revocation exchange (spec 10.9) and the stores' per-revoker quota (spec 10.8): pages
bounded in size that always carry what is pending, so no store size stops the exchange; a
fair order, so a flood of notices minted below one link cannot hold back the others (the
notice revoking the flooder included); a quota that refuses what is new and never drops
what is stored. Real channels over memory streams, on asyncio and trio."""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from anyio.streams.stapled import StapledObjectStream
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ALICE, BOB, CAROL, MALLORY, raises
from support.aio import DEADLINE, memory_pair
from support.chains import ANCHORS, NOW, PARENT_GRANT, ROOT
from support.redis_server import redis_server

from agentauth import (
    AgentAuthError,
    AgentAuthStream,
    HandshakePolicy,
    Identity,
    MemoryReplayStore,
    PeerKey,
    wire,
)
from agentauth.aio import exchange_revocations
from agentauth.aio.gossip import (
    LIST_ROUNDS,
    MESSAGE_BYTES,
    PAGE_BYTES,
    PAGE_IDS,
    PAGE_NOTICES,
    offer_order,
)
from agentauth.capability import (
    DetachedInvocations,
    Link,
    Request,
    SessionInvocations,
    admission,
    delegate,
    encode_chain,
    revoke,
    verify_chain,
    verify_notice,
)
from agentauth.capability.revocation import MAX_NOTICE, REVOKE_CONTEXT, digest, read_notice
from agentauth.errors import TransportError
from agentauth.http import AgentAuthMiddleware, Verifier
from agentauth.session import OVERHEAD
from agentauth.stores import MemoryRevocationStore, RedisRevocationStore, SQLiteRevocationStore

FLOOD = 10_000
EXPIRES = NOW + 3600


def at_now() -> float:
    return NOW


def link(issuer: Identity, audience: Identity, parent: Link | None, budget: int) -> Link:
    return delegate(issuer, audience, [PARENT_GRANT], not_before=NOW - 100,
                    expires=EXPIRES, budget=budget, parent=parent)


# ROOT -> ALICE (R); ALICE -> MALLORY (LF, the flooder) and ALICE -> BOB (LB); BOB -> CAROL.
R = link(ROOT, ALICE, None, 3)
LF = link(ALICE, MALLORY, R, 2)
LB = link(ALICE, BOB, R, 2)
D = link(BOB, CAROL, LB, 1)


def minted(revoker: Identity, path: list[Link]) -> bytes:
    """A notice signed as revoke() signs it, without revoke()'s own check (so that ten
    thousand cost one signature each)."""
    payload = wire.encode_map(1, revoker.public_bytes, [x.data for x in path], NOW)
    return wire.encode_map(payload, revoker.sign(REVOKE_CONTEXT + payload))


def flood_of(count: int, parent: Link = LF, revoker: Identity = MALLORY) -> list[bytes]:
    """``count`` notices by ``revoker`` about links it minted below ``parent``."""
    return [minted(revoker, [R, parent, link(revoker, CAROL, parent, 0)])
            for _ in range(count)]


@pytest.fixture(scope="module")
def flood() -> list[bytes]:
    return flood_of(FLOOD)


# The honest notices: ALICE revokes the flooder's own link, BOB revokes CAROL's.
REVOKES_FLOODER = revoke(ALICE, [R, LF], clock=at_now)
REVOKES_CAROL = revoke(BOB, [R, LB, D], clock=at_now)
HONEST = (REVOKES_FLOODER, REVOKES_CAROL)


class Held:
    """A relay's store already holding ``notices`` (all valid: minted here), filled without
    checking each again, so that a test of ten thousand pays for the checks of the stores
    that receive them only. It sends as any store does; it receives nothing."""

    def __init__(self, notices: list[bytes]) -> None:
        self.by_id = {read_notice(n).target: n for n in notices}

    def add(self, notice: bytes) -> bool:
        raise AssertionError("a relay that already holds everything receives nothing")

    def is_revoked(self, link_id: bytes) -> bool:
        return link_id in self.by_id

    def prune(self, now: int) -> int:
        return 0

    def ids(self) -> list[bytes]:
        return sorted(self.by_id)

    def notice(self, link_id: bytes) -> bytes | None:
        return self.by_id.get(link_id)


@asynccontextmanager
async def pair() -> AsyncIterator[tuple[StapledObjectStream[bytes],
                                        StapledObjectStream[bytes]]]:
    """Two ends of a message channel in memory, closed when the block ends."""
    to_right, from_left = anyio.create_memory_object_stream[bytes](4)
    to_left, from_right = anyio.create_memory_object_stream[bytes](4)
    left = StapledObjectStream(to_right, from_right)
    right = StapledObjectStream(to_left, from_left)
    async with left, right:
        yield left, right


class Recording:
    """A channel end that remembers the size of every message it sends."""

    def __init__(self, inner: StapledObjectStream[bytes]) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    async def send(self, message: bytes) -> None:
        self.sizes.append(len(message))
        await self.inner.send(message)

    async def receive(self) -> bytes:
        return await self.inner.receive()


async def exchange(left: Any, right: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """One exchange between two stores; what each side received (kept, refused)."""
    results: dict[str, tuple[int, int]] = {}

    async def run(name: str, channel: Any, store: Any) -> None:
        results[name] = await exchange_revocations(channel, store)

    with anyio.fail_after(60):
        async with pair() as (a, b), anyio.create_task_group() as tasks:
            tasks.start_soon(run, "left", a, left)
            tasks.start_soon(run, "right", b, right)
    return results["left"], results["right"]


def position_bound(children: list[int]) -> int:
    """Spec 10.9: p = 1 + c(v1)(1 + c(v2)(... (1 + c(vn)))), the nodes above a notice's
    own from the top."""
    bound = 1
    for count in reversed(children):
        bound = 1 + count * bound
    return bound


def test_a_flood_takes_one_turn_and_moves_no_other_notice(flood: list[bytes]) -> None:
    # The nodes above REVOKES_FLOODER: top (1 anchor), ROOT (1 root link), R (LF and LB);
    # above REVOKES_CAROL: the same, then LB (D).
    bounds = {REVOKES_FLOODER: position_bound([1, 1, 2]),
              REVOKES_CAROL: position_bound([1, 1, 2, 1])}
    assert bounds == {REVOKES_FLOODER: 5, REVOKES_CAROL: 7}
    for _ in range(5):  # the first child served is chosen at random: try several
        order = list(offer_order([*flood, *HONEST]))
        assert sorted(order) == sorted([*flood, *HONEST])
        for notice, bound in bounds.items():
            assert order.index(notice) < bound
        # The notice revoking the flooder goes before everything below the flooder's link.
        assert order.index(REVOKES_FLOODER) < min(order.index(n) for n in flood[:50])


def test_a_flood_signed_by_fresh_keys_is_held_to_the_same_turn() -> None:
    # Each flood notice is signed by a key of its own (the holder of a fresh link giving it
    # up, or a fresh delegate revoking below it), so no per-signer count would see a flood;
    # the order is by the tree, and the flood is still below the flooder's link.
    flood = []
    for _ in range(300):
        fresh = Identity.generate()
        mine = link(MALLORY, fresh, LF, 1)
        flood.append(minted(fresh, [R, LF, mine]))  # surrender
        flood.append(minted(fresh, [R, LF, mine, link(fresh, CAROL, mine, 0)]))
    order = list(offer_order([*flood, *HONEST]))
    assert order.index(REVOKES_FLOODER) < position_bound([1, 1, 2])
    assert order.index(REVOKES_CAROL) < position_bound([1, 1, 2, 1])


HOLDERS = {x.public_bytes: x for x in (ROOT, ALICE, BOB, CAROL, MALLORY)}


@settings(max_examples=30, deadline=None, database=None)
@given(shape=st.lists(st.tuples(st.integers(0, 99), st.sampled_from([BOB, CAROL, MALLORY]),
                                st.booleans()), min_size=1, max_size=20),
       root_revoked=st.booleans())
def test_every_notice_is_within_the_stated_position_bound(
        shape: list[tuple[int, Identity, bool]], root_revoked: bool) -> None:
    # A random delegation tree below R, random links of it revoked (each by its issuer):
    # every notice's position is within spec 10.9's bound, whichever child goes first.
    paths: dict[bytes, list[Link]] = {R.id: [R]}
    revoked = {R.id} if root_revoked else set()
    for pick, holder, is_revoked in shape:
        parent = list(paths.values())[pick % len(paths)][-1]
        if parent.budget == 0:
            continue
        child = link(HOLDERS[parent.audience], holder, parent, parent.budget - 1)
        paths[child.id] = [*paths[parent.id], child]
        if is_revoked:
            revoked.add(child.id)
    if not revoked:
        return
    notices = {i: minted(HOLDERS[paths[i][-1].issuer], paths[i]) for i in revoked}

    def busy_children(path: list[Link]) -> int:  # children of path[-1] with a notice below
        depth = len(path)
        return len({paths[i][depth].id for i in revoked
                    if len(paths[i]) > depth and paths[i][depth - 1].id == path[-1].id})

    order = list(offer_order(notices.values()))
    for target, notice in notices.items():
        path = paths[target]
        above = [1, 1] + [busy_children(path[:k]) for k in range(1, len(path))]
        assert order.index(notice) < position_bound(above)


@pytest.fixture(scope="module")
def relay(flood: list[bytes]) -> Held:
    return Held([*flood, *HONEST])


@pytest.mark.anyio
async def test_a_flood_from_one_revoker_does_not_delay_honest_revocations(
        relay: Held) -> None:
    # Four agents in a line: the first holds the flood and the two honest notices, the
    # others can each hold the whole flood (the worst case for the order: a quota would
    # have cut the flood down), and each sends one page per exchange (30 notices at the
    # least). The spec's bound: positions 5 and 7 (see above) are within 30 · pages, so
    # each hop carries both honest notices in one exchange.
    line: list[Any] = [relay] + [MemoryRevocationStore(ANCHORS, per_revoker=FLOOD)
                                 for _ in range(3)]
    for left, right in itertools.pairwise(line):
        async with pair() as (a, b), anyio.create_task_group() as tasks:
            tasks.start_soon(partial(exchange_revocations, a, left, pages=1))
            kept, refused = await exchange_revocations(b, right, pages=1)
        assert kept >= 2 and refused == 0
    for store in line:
        assert store.is_revoked(LF.id) and store.is_revoked(D.id)
    assert len(line[3]) < 1000  # the flood itself is still on its way
    with raises("revoked"):  # the flooder's chains are refused everywhere
        verify_chain(encode_chain([R, LF]), ANCHORS, now=NOW, revoked=line[3].is_revoked)


@pytest.mark.anyio
async def test_thousands_of_honest_notices_go_through_in_bounded_pages() -> None:
    # 1 MiB of notices was refused whole: 2,500 (two revokers, each well within the
    # default quota) now go through in one exchange, in pages of at most 256 KiB.
    notices = ([minted(ALICE, [R, link(ALICE, BOB, R, 0)]) for _ in range(1250)]
               + flood_of(1250, LB, BOB))
    assert sum(map(len, notices)) > 1 << 20
    left = Held(notices)
    right = MemoryRevocationStore(ANCHORS)
    async with pair() as (a, b), anyio.create_task_group() as tasks:
        sent = Recording(a)
        tasks.start_soon(exchange_revocations, sent, left)
        assert await exchange_revocations(b, right) == (2500, 0)
    assert left.ids() == right.ids()
    assert max(sent.sizes) <= PAGE_BYTES + 8 * 1024
    assert await exchange(left, right) == ((0, 0), (0, 0))  # the digests agree now


@pytest.mark.anyio
async def test_a_receiver_at_quota_refuses_the_flood_and_keeps_the_rest(
        flood: list[bytes], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agentauth.aio")
    sender = MemoryRevocationStore(ANCHORS, per_revoker=FLOOD)
    for notice in [*flood[:500], *HONEST]:
        sender.add(notice)
    receiver = MemoryRevocationStore(ANCHORS, per_revoker=100, clock=at_now)
    _, (kept, refused) = await exchange(sender, receiver)
    assert (kept, refused) == (102, 400)
    assert receiver.is_revoked(LF.id) and receiver.is_revoked(D.id)
    # The next exchange offers the refused ones again, and the quota holds.
    _, (kept, refused) = await exchange(sender, receiver)
    assert (kept, refused) == (0, 400) and len(receiver) == 102
    assert [r.getMessage() for r in caplog.records] == [
        "revocation exchange: refused 400 notice(s) from the peer (store_full 400)"] * 2


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_quota_refuses_new_notices_and_never_drops_stored_ones(
        kind: str, tmp_path: Path) -> None:
    store: MemoryRevocationStore | SQLiteRevocationStore
    if kind == "memory":
        store = MemoryRevocationStore(ANCHORS, per_revoker=50, clock=at_now)
    else:
        store = SQLiteRevocationStore(tmp_path / "revoked.db", ANCHORS, per_revoker=50,
                                      clock=at_now)
    notices = flood_of(60)
    for notice in notices[:50]:
        assert store.add(notice)
    with raises("store_full"):
        store.add(notices[50])
    payload, _ = wire.decode_map(notices[51], 2, 20_000, "notice")
    forged = wire.encode_map(payload, bytes(64))
    with raises("store_full"):  # refused before any signature is checked
        store.add(forged)
    assert not store.add(notices[0])  # a stored target: not new, nothing checked
    assert len(store) == 50
    ids = store.ids()
    assert all(store.is_revoked(i) for i in ids)  # every stored notice still answers
    # Another revoker is another quota: ALICE revokes the flooder's own link.
    assert store.add(REVOKES_FLOODER) and store.is_revoked(LF.id)
    with raises("revoked"):
        verify_chain(encode_chain([R, LF]), ANCHORS, now=NOW, revoked=store.is_revoked)
    # Only time forgets a notice, and that frees its revoker's quota.
    assert store.prune(EXPIRES + 300) == 51 and len(store) == 0
    assert store.add(notices[50])
    if isinstance(store, SQLiteRevocationStore):
        store.close()


def test_replicas_share_one_quota_in_redis() -> None:
    notices = flood_of(7)
    with redis_server() as url:
        prefix = os.urandom(6).hex().encode()
        replica_a = RedisRevocationStore(url, ANCHORS, prefix=prefix, per_revoker=5,
                                         clock=at_now)
        replica_b = RedisRevocationStore(url, ANCHORS, prefix=prefix, per_revoker=5,
                                         clock=at_now)
        for notice in notices[:3]:
            assert replica_a.add(notice)
        for notice in notices[3:5]:
            assert replica_b.add(notice)
        for replica in (replica_a, replica_b):
            with raises("store_full"):
                replica.add(notices[5])
            assert not replica.add(notices[0])  # held: not new
        assert replica_b.add(REVOKES_FLOODER)  # another revoker, another quota
        assert len(replica_a.ids()) == 6 and all(map(replica_b.is_revoked, replica_a.ids()))
        # A replica whose clock is past every entry's life counts none of them live: the
        # notice is not refused for the quota, only found to be about an expired link.
        late = RedisRevocationStore(url, ANCHORS, prefix=prefix, per_revoker=5,
                                    clock=lambda: NOW + 10 * 365 * 86400)
        assert late.add(notices[6]) is False
        for store in (replica_a, replica_b, late):
            store.close()


@pytest.mark.parametrize("interrupted", [False, True])
def test_a_sqlite_store_of_an_earlier_release_gets_its_revoker_column(
        interrupted: bool, tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE revoked (id BLOB PRIMARY KEY, expires INTEGER NOT NULL, "
               "notice BLOB NOT NULL) WITHOUT ROWID")
    db.execute("INSERT INTO revoked VALUES (?, ?, ?)", (LF.id, EXPIRES, REVOKES_FLOODER))
    if interrupted:  # a migration stopped after adding the column, before filling it
        db.execute("ALTER TABLE revoked ADD COLUMN revoker BLOB")
    db.commit()
    db.close()
    store = SQLiteRevocationStore(path, ANCHORS, per_revoker=1, clock=at_now)
    assert store.is_revoked(LF.id)
    with raises("store_full"):  # ALICE's stored notice counts against her quota
        store.add(revoke(ALICE, [R, LB], clock=at_now))
    assert store.add(REVOKES_CAROL)
    store.close()


async def app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never called")


@pytest.mark.parametrize("anchors", [[ROOT.agent_id], ROOT.agent_id, None, 5,
                                     {ROOT.agent_id: 5}, {ROOT.agent_id: None}])
def test_anchors_of_the_wrong_shape_are_refused_typed(anchors: Any, tmp_path: Path) -> None:
    chain = encode_chain([R, LB])
    peer = PeerKey.from_bytes(BOB.public_bytes)
    calls: list[Callable[[], object]] = [
        lambda: verify_chain(chain, anchors, now=NOW),
        lambda: verify_notice(REVOKES_CAROL, anchors),
        lambda: MemoryRevocationStore(anchors),
        lambda: SQLiteRevocationStore(tmp_path / "r.db", anchors),
        lambda: admission(anchors, Request("fs/reports/x", "read")),
        lambda: DetachedInvocations(anchors, verifier=BOB),
        lambda: SessionInvocations(anchors, peer=peer, channel_binding=bytes(64)),
    ]
    if anchors is not None:  # the middleware's None means no capabilities
        calls.append(lambda: AgentAuthMiddleware(app, identity=ALICE, verifier=Verifier([BOB]),
                                                 replay=MemoryReplayStore(), anchors=anchors))
    for call in calls:
        with raises("invalid_argument"):
            call()


def test_the_quota_is_a_positive_integer(tmp_path: Path) -> None:
    for value in (0, -1, 1.5, None, True):
        with raises("invalid_argument"):
            MemoryRevocationStore(ANCHORS, per_revoker=value)  # type: ignore[arg-type]
        with raises("invalid_argument"):
            SQLiteRevocationStore(tmp_path / "q.db", ANCHORS,
                                  per_revoker=value)  # type: ignore[arg-type]


async def peer_says(messages: Iterable[bytes], store: MemoryRevocationStore) -> None:
    """Run an exchange against a peer that sends ``messages`` whatever it receives."""
    error: Exception | None = None

    async def peer(theirs: StapledObjectStream[bytes]) -> None:
        for message in messages:
            await theirs.send(message)
            await theirs.receive()

    with anyio.fail_after(10):
        async with pair() as (ours, theirs), anyio.create_task_group() as tasks:
            tasks.start_soon(peer, theirs)
            try:
                await exchange_revocations(ours, store)
            except AgentAuthError as exc:
                error = exc
            tasks.cancel_scope.cancel()
    if error is not None:
        raise error


def hello(store: MemoryRevocationStore | None = None) -> bytes:
    return wire.encode_map(2, digest([] if store is None else store.ids()))


@pytest.mark.anyio
async def test_a_peer_that_breaks_the_exchange_gets_a_typed_refusal() -> None:
    store = MemoryRevocationStore(ANCHORS)
    store.add(REVOKES_CAROL)
    with raises("no_common_version"):  # the version 1 exchange: {0: digest}
        await peer_says([wire.encode_map(digest([]))], store)
    with raises("no_common_version"):
        await peer_says([wire.encode_map(3, digest([]))], store)
    with raises("malformed"):  # a listing page that is not a list of 32-byte ids
        await peer_says([hello(), wire.encode_map([b"short"], False)], store)
    with raises("malformed"):
        await peer_says([hello(), wire.encode_map([bytes(32)] * (PAGE_IDS + 1), False)],
                        store)
    with raises("malformed"):  # "more" is a boolean
        await peer_says([hello(), wire.encode_map([], 1)], store)
    big = [bytes(8000)] * 40  # 320,000 bytes of "notices" in one page
    with raises("oversize"):
        await peer_says([hello(), wire.encode_map([], False), wire.encode_map(big, False)],
                        store)
    # 1,025 empty "notices" (a page of 200,000 of them, in 400 KB, cost the receiver two
    # seconds of refusals, and an exchange carries 64 pages): refused whole, none checked.
    tiny = wire.encode_map([b""] * (PAGE_NOTICES + 1), False)
    with raises("oversize"):
        await peer_says([hello(), wire.encode_map([], False), tiny], store)
    with raises("invalid_argument"):
        async with pair() as (ours, _):
            await exchange_revocations(ours, store, pages=0)


@pytest.mark.anyio
async def test_a_peer_that_never_stops_listing_is_cut_off() -> None:
    store = MemoryRevocationStore(ANCHORS)
    store.add(REVOKES_CAROL)
    endless = [hello()] + [wire.encode_map([], True)] * 256
    with raises("malformed"):
        await peer_says(endless, store)
    endless = [hello(), wire.encode_map([], False)] + [wire.encode_map([], True)] * 64
    with raises("malformed"):  # nor sending notice pages
        await peer_says(endless, store)


@pytest.mark.anyio
async def test_the_ids_a_peer_lists_cost_the_receiver_no_memory() -> None:
    # A peer lists ids it need not hold, up to 1,048,576 of them (here a quarter): the
    # receiver keeps only which of its own were listed, never the peer's ids (which took
    # about 25 MB here, 100 MB for a full listing).
    store = MemoryRevocationStore(ANCHORS)
    store.add(REVOKES_CAROL)

    def listing() -> Iterator[bytes]:  # built page by page, as a peer would send it
        yield hello()
        for turn in range(LIST_ROUNDS // 4):
            start = turn * PAGE_IDS
            yield wire.encode_map([i.to_bytes(32, "big") for i in range(start, start + PAGE_IDS)],
                                  turn + 1 < LIST_ROUNDS // 4)
        yield wire.encode_map([], False)

    tracemalloc.start()
    try:
        await peer_says(listing(), store)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"the exchange held {peak / 2**20:.0f} MiB"


@pytest.mark.anyio
async def test_an_exchange_lets_other_tasks_run_while_it_orders_and_checks(
        flood: list[bytes]) -> None:
    # Ordering thousands of notices, and checking and storing a page of hundreds (a SQLite
    # store writes each), take seconds: other tasks run between notices, not once a page.
    sender = Held(flood[:4000])
    receiver = MemoryRevocationStore(ANCHORS, per_revoker=FLOOD)
    ticks = 0
    at_send: list[int] = []

    class Ticked(Recording):
        async def send(self, message: bytes) -> None:
            at_send.append(ticks)
            await self.inner.send(message)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.lowlevel.checkpoint()
            ticks += 1

    with anyio.fail_after(60):
        async with pair() as (a, b), anyio.create_task_group() as tasks:
            tasks.start_soon(ticker)
            async with anyio.create_task_group() as sides:
                sides.start_soon(partial(exchange_revocations, Ticked(a), sender, pages=1))
                sides.start_soon(exchange_revocations, b, receiver)
            tasks.cancel_scope.cancel()
    kept = len(receiver)
    assert 300 < kept < 4000  # one page
    # The sender's hello, its listing, then its one page, sent once all 4,000 are ordered.
    assert len(at_send) == 3 and at_send[2] - at_send[1] >= 4000 // 64 - 2
    assert ticks - at_send[2] >= kept  # the receiver yielded after each notice


@asynccontextmanager
async def channels(max_message: int) -> AsyncIterator[tuple[AgentAuthStream,
                                                            AgentAuthStream]]:
    """Two real channels (ALICE's, BOB's) over memory transports, whose handshake policies
    allow messages of ``max_message`` bytes."""
    ends: dict[str, AgentAuthStream] = {}

    async def wrap(side: Any, me: Identity, peer: Identity, initiator: bool) -> None:
        policy = HandshakePolicy(trust=[peer.agent_id], max_message=max_message)
        ends[me.agent_id] = await AgentAuthStream.wrap(
            side, me, policy, initiator=initiator,
            expect=peer.agent_id if initiator else None)

    left, right = memory_pair()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(wrap, left, ALICE, BOB, True)
            tasks.start_soon(wrap, right, BOB, ALICE, False)
    async with ends[ALICE.agent_id] as alice, ends[BOB.agent_id] as bob:
        yield alice, bob


@pytest.mark.anyio
async def test_a_channel_too_small_for_a_page_is_refused_before_the_exchange(
        flood: list[bytes]) -> None:
    # On a channel whose max_message is below a page, the exchange worked while the stores
    # were small and failed on every exchange once one held a page's worth (about a
    # hundred notices, with 64 KiB): it is refused at once, saying what to configure.
    refused: list[str] = []

    async def side(channel: AgentAuthStream) -> None:
        try:
            await exchange_revocations(channel, MemoryRevocationStore(ANCHORS))
        except AgentAuthError as exc:
            refused.append(exc.code)

    async with channels(65_536 + OVERHEAD) as (alice, bob):
        with anyio.fail_after(10):
            async with anyio.create_task_group() as sides:
                sides.start_soon(side, alice)
                sides.start_soon(side, bob)
    assert refused == ["invalid_argument"] * 2
    # A channel of exactly the size asked for carries the largest page.
    sender = Held(flood[:600])
    receiver = MemoryRevocationStore(ANCHORS, per_revoker=FLOOD)
    async with channels(MESSAGE_BYTES + OVERHEAD) as (alice, bob):
        with anyio.fail_after(30):
            async with anyio.create_task_group() as sides:
                sides.start_soon(partial(exchange_revocations, alice, sender, pages=1))
                sides.start_soon(exchange_revocations, bob, receiver)
    carried = sum(len(receiver.notice(i) or b"") for i in receiver.ids())
    assert PAGE_BYTES - 8704 < carried <= PAGE_BYTES


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_an_exchange_cancelled_mid_page_keeps_what_it_checked(
        kind: str, flood: list[bytes], tmp_path: Path) -> None:
    # Cancelled between two notices of a page, a receiver holds the ones it checked and
    # stored, each whole, its quota counting exactly those; the next exchange brings the
    # rest.
    sender = Held(flood[:300])
    store: MemoryRevocationStore | SQLiteRevocationStore
    if kind == "memory":
        store = MemoryRevocationStore(ANCHORS, per_revoker=301, clock=at_now)
    else:
        store = SQLiteRevocationStore(tmp_path / "revoked.db", ANCHORS, per_revoker=301,
                                      clock=at_now)
    added = 0

    class Cancelling:
        """The receiver's store, cancelling the exchange after its 100th notice."""

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def add(self, notice: bytes) -> bool:
            nonlocal added
            added += 1
            if added == 100:
                scope.cancel()
            return store.add(notice)

    with anyio.CancelScope() as scope:
        await exchange(sender, Cancelling())
    assert scope.cancelled_caught and len(store) == 100
    assert all(store.notice(i) == sender.notice(i) for i in store.ids())
    assert await exchange(sender, store) == ((0, 0), (200, 0))
    assert store.ids() == sender.ids()
    assert store.add(flood[300]) and not store.add(flood[300])
    with raises("store_full"):  # 301 counted, no more, none twice
        store.add(flood[301])
    if isinstance(store, SQLiteRevocationStore):
        store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_revoker_at_its_quota_gets_back_the_places_time_has_freed(
        kind: str, tmp_path: Path) -> None:
    # Nothing in the library prunes a store: notices long past their time filled their
    # revoker's quota for good, and each new notice of that revoker was store_full.
    now = [float(NOW)]
    store: MemoryRevocationStore | SQLiteRevocationStore
    if kind == "memory":
        store = MemoryRevocationStore(ANCHORS, per_revoker=2, clock=lambda: now[0])
    else:
        store = SQLiteRevocationStore(tmp_path / "revoked.db", ANCHORS, per_revoker=2,
                                      clock=lambda: now[0])
    soon = NOW + 60
    for _ in range(2):  # about links that expire at ``soon``
        assert store.add(minted(MALLORY, [R, LF, delegate(
            MALLORY, CAROL, [PARENT_GRANT], not_before=NOW, expires=soon, budget=0,
            parent=LF)]))
    later = flood_of(1)[0]  # about a link that expires at EXPIRES
    with raises("store_full"):  # still live: the quota holds
        store.add(later)
    now[0] = soon + 299
    with raises("store_full"):
        store.add(later)
    now[0] = soon + 300  # both could no longer verify: their places are free
    assert store.add(later) and store.is_revoked(read_notice(later).target)
    assert len(store) == 1
    if isinstance(store, SQLiteRevocationStore):
        store.close()


@pytest.mark.anyio
@pytest.mark.parametrize("after", [0, 1, 2])
async def test_a_peer_that_closes_mid_exchange_ends_it_with_a_typed_error(after: int) -> None:
    # The channel's own end (anyio's EndOfStream, or BrokenResourceError for a send) came
    # out of the exchange as it was.
    store = MemoryRevocationStore(ANCHORS)
    store.add(REVOKES_CAROL)
    messages = [hello(), wire.encode_map([], False), wire.encode_map([], False)]

    async def peer(theirs: StapledObjectStream[bytes]) -> None:
        for message in messages[:after]:
            await theirs.send(message)
            await theirs.receive()
        await theirs.aclose()

    with anyio.fail_after(10):
        async with pair() as (ours, theirs), anyio.create_task_group() as tasks:
            tasks.start_soon(peer, theirs)
            with pytest.raises(TransportError):
                await exchange_revocations(ours, store)


def test_a_redis_notice_outlives_its_link_on_every_replica_clock() -> None:
    # Each replica computes a notice's life from its own clock: one half a second ahead set
    # a life half a second short, and a verifier behind it accepted the link, not revoked,
    # for that half second at the end. The margin (1 s by default) covers the difference.
    notice = flood_of(1)[0]
    target = read_notice(notice).target
    with redis_server() as url:
        prefix = os.urandom(6).hex().encode()
        ahead = RedisRevocationStore(url, ANCHORS, prefix=prefix, clock=lambda: NOW + 0.5)
        assert ahead.add(notice)
        client = redis.Redis.from_url(url)
        try:
            left = client.pttl(prefix + target) / 1000
        finally:
            client.close()
        until = EXPIRES + 300 - NOW  # by the clock of a replica (and verifier) at NOW
        assert until < left <= until + 1
        with raises("invalid_argument"):
            RedisRevocationStore(url, ANCHORS, prefix=prefix, margin=-1)
        ahead.close()


def test_the_spec_numbers_of_a_page_are_the_code_s() -> None:
    # Spec 10.9: a notice is at most 8,704 bytes, so a page of 262,144 holds at least 30
    # (the bound 30 · pages rests on it); every message of the exchange, the largest
    # listing and the largest notice page with their headers, fits in the 524,288 bytes a
    # channel must carry.
    assert (MAX_NOTICE, PAGE_BYTES, PAGE_BYTES // MAX_NOTICE) == (8704, 262_144, 30)
    assert MESSAGE_BYTES == 524_288 and PAGE_NOTICES == 1024
    listing = wire.encode_map([bytes(32)] * PAGE_IDS, True)
    pages = [wire.encode_map([bytes(PAGE_BYTES // PAGE_NOTICES)] * PAGE_NOTICES, True),
             wire.encode_map([bytes(MAX_NOTICE)] * 30, True)]
    assert max(map(len, [listing, *pages])) <= MESSAGE_BYTES


@pytest.mark.anyio
async def test_a_holder_s_own_notice_cannot_block_its_issuer_s(flood: list[bytes]) -> None:
    # Mallory, about to be revoked, fills her quota at a store, then gives up her own link
    # at a relay before ALICE's notice gets there. The relay keeps one notice per link, so
    # it holds Mallory's and lists LF as held: ALICE's is never offered to it. Counted
    # against Mallory, hers was refused (store_full) by the store, which so never learnt
    # that LF is revoked. Every notice about a link now counts against the link's issuer
    # (ALICE), whoever signed it: the store takes whichever comes.
    surrender = revoke(MALLORY, [R, LF], clock=at_now)
    relay = MemoryRevocationStore(ANCHORS)
    relay.add(surrender)
    alices = MemoryRevocationStore(ANCHORS)
    alices.add(REVOKES_FLOODER)
    store = MemoryRevocationStore(ANCHORS, per_revoker=50, clock=at_now)
    for notice in flood[:50]:
        store.add(notice)
    with raises("store_full"):  # Mallory's quota is full here
        store.add(flood[50])
    await exchange(alices, relay)
    assert relay.notice(LF.id) == surrender  # the relay still holds Mallory's version
    await exchange(relay, store)
    assert store.is_revoked(LF.id)
    with raises("revoked"):
        verify_chain(encode_chain([R, LF]), ANCHORS, now=NOW, revoked=store.is_revoked)


@pytest.mark.anyio
async def test_a_stored_notice_that_cannot_be_read_does_not_stop_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    # One damaged entry (a file written by something else, a store of the application's
    # own) made every exchange from that store fail as it ordered its offer.
    sender = Held([*HONEST])
    sender.by_id[bytes(32)] = b"\x92damaged"
    payload = wire.encode_map(1, bytes(32), [], NOW)  # well formed, with no path at all
    sender.by_id[bytes(31) + b"\x01"] = wire.encode_map(payload, bytes(64))
    receiver = MemoryRevocationStore(ANCHORS, clock=at_now)
    caplog.set_level(logging.WARNING, logger="agentauth.aio")
    assert await exchange(sender, receiver) == ((0, 0), (2, 0))
    assert receiver.is_revoked(LF.id) and receiver.is_revoked(D.id)
    assert "2 stored notice(s) could not be read" in caplog.text


@pytest.mark.anyio
async def test_a_stalled_sqlite_store_holds_its_exchange_not_the_event_loop(
        flood: list[bytes], tmp_path: Path) -> None:
    # The exchange asks a SQLite store from a worker thread: while the store stalls, the
    # event loop runs other tasks (here, this one), with no sleeps: events only.
    stalled, gate = threading.Event(), threading.Event()
    order: list[str] = []

    class Stalled(SQLiteRevocationStore):
        """A real SQLite store whose listing waits behind a gate (the first time)."""

        def ids(self) -> list[bytes]:
            if not stalled.is_set():
                stalled.set()
                gate.wait(DEADLINE / 2)  # a blocked event loop fails the test, not hangs it
                order.append("store")
            return super().ids()

    store = Stalled(tmp_path / "revoked.db", ANCHORS, per_revoker=FLOOD, clock=at_now)
    results: list[tuple[int, int]] = []

    async def receive(channel: Any) -> None:
        results.append(await exchange_revocations(channel, store))

    with anyio.fail_after(DEADLINE):
        async with pair() as (a, b), anyio.create_task_group() as tasks:
            tasks.start_soon(exchange_revocations, a, Held(flood[:200]))
            tasks.start_soon(receive, b)
            assert await anyio.to_thread.run_sync(stalled.wait, DEADLINE)
            order.append("loop")
            gate.set()
    assert order == ["loop", "store"]
    assert results == [(200, 0)] and len(store) == 200  # a page, in steps of threads
    store.close()

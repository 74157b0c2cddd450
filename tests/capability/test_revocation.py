"""Revocation notices: who may revoke, verification before storage, the effect on chains
(the revoked link and everything below it), and the stores (memory, a real SQLite file, a
real redis-server shared by replicas)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import redis
from anyio.streams.stapled import StapledObjectStream
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ALICE, BOB, CAROL, MALLORY, raises
from support.chains import ANCHORS, NOW, PARENT_GRANT, ROOT, chain_of
from support.redis_server import redis_server

from agentauth import AgentAuthError, wire
from agentauth.aio import exchange_revocations
from agentauth.capability import delegate, encode_chain, revoke, verify_chain, verify_notice
from agentauth.capability.revocation import REVOKE_CONTEXT
from agentauth.stores import MemoryRevocationStore, RedisRevocationStore, SQLiteRevocationStore


def at_now() -> float:
    return NOW


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_revoked_middle_link_kills_its_subtree_only(kind: str, tmp_path: Path) -> None:
    store = MemoryRevocationStore(ANCHORS) if kind == "memory" else SQLiteRevocationStore(
        tmp_path / "revoked.db", ANCHORS)
    links = chain_of(3)  # ROOT -> ALICE -> BOB -> CAROL
    sibling = delegate(ALICE, BOB, [PARENT_GRANT], not_before=NOW - 100, expires=NOW + 3600,
                       budget=1, parent=links[0])  # same grants, another nonce
    notice = revoke(ROOT, links[:2], clock=at_now)  # ROOT revokes ALICE's link to BOB
    assert store.add(notice) and not store.add(notice)  # stored once
    with raises("revoked"):
        verify_chain(encode_chain(links), ANCHORS, now=NOW, revoked=store.is_revoked)
    verify_chain(encode_chain([links[0], sibling]), ANCHORS, now=NOW,
                 revoked=store.is_revoked)
    # Forgotten only once the link could not verify under any skew (expires + 300 s).
    assert store.prune(NOW + 3600 + 299) == 0 and store.prune(NOW + 3600 + 300) == 1
    verify_chain(encode_chain(links), ANCHORS, now=NOW, revoked=store.is_revoked)


def test_who_may_revoke() -> None:
    links = chain_of(3)
    revoke(ALICE, links[:2], clock=at_now)  # the issuer of the target
    revoke(ROOT, links[:3], clock=at_now)  # an issuer further up
    revoke(CAROL, links[:3], clock=at_now)  # the holder giving up its own link
    with raises("unauthorized_revoker"):  # a stranger
        revoke(MALLORY, links[:3], clock=at_now)
    with raises("unauthorized_revoker"):  # a holder cannot revoke its parent's link
        revoke(BOB, links[:1], clock=at_now)
    with raises("bad_signature"):  # not a path: the last link was signed under another
        revoke(ROOT, [links[0], links[2]], clock=at_now)
    with raises("root_invalid"):  # a path starts at the root
        revoke(ALICE, links[1:2], clock=at_now)


def test_notices_about_foreign_chains_are_never_stored() -> None:
    # Anyone can root a chain of their own and revoke it: our store takes only notices
    # about chains our anchors started, so such notices cannot fill it.
    own = delegate(MALLORY, BOB, [PARENT_GRANT], not_before=0, expires=2**53 - 1)
    notice = revoke(MALLORY, [own], clock=at_now)
    store = MemoryRevocationStore(ANCHORS)
    with raises("untrusted_root"):
        store.add(notice)
    assert len(store) == 0


def test_a_forged_notice_is_never_stored(tmp_path: Path) -> None:
    links = chain_of(2)
    notice = revoke(ROOT, links, clock=at_now)
    payload, _signature = wire.decode_map(notice, 2, 20_000, "notice")
    forged = wire.encode_map(payload, MALLORY.sign(b"agentauth v1 capability revocation\x00"
                                                   + payload))
    for store in (MemoryRevocationStore(ANCHORS),
                  SQLiteRevocationStore(tmp_path / "r.db", ANCHORS)):
        with raises("bad_signature"):
            store.add(forged)
        assert len(store) == 0
        assert not store.is_revoked(links[-1].id)


def test_the_sqlite_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "revoked.db"
    links = chain_of(2)
    first = SQLiteRevocationStore(path, ANCHORS)
    first.add(revoke(ALICE, links, clock=at_now))
    first.close()
    second = SQLiteRevocationStore(path, ANCHORS)
    assert second.is_revoked(links[1].id) and len(second) == 1
    second.close()


@settings(max_examples=300, deadline=None, database=None)
@given(index=st.integers(0, 10_000), value=st.integers(0, 255))
def test_mutated_notices_give_only_typed_errors(index: int, value: int) -> None:
    data = bytearray(revoke(ROOT, chain_of(2), clock=at_now))
    data[index % len(data)] = value
    with contextlib.suppress(AgentAuthError):
        verify_notice(bytes(data), ANCHORS)


def test_notice_fields_have_their_types() -> None:
    links = chain_of(1)
    with raises("invalid_argument"):  # one Link is not a path of links
        revoke(ROOT, links[0], clock=at_now)  # type: ignore[arg-type]
    payload = wire.encode_map(True, ROOT.public_bytes, [links[0].data], NOW)
    with raises("malformed"):  # a boolean is never the version 1
        verify_notice(wire.encode_map(payload, ROOT.sign(REVOKE_CONTEXT + payload)), ANCHORS)
    payload = wire.encode_map(1, ROOT.public_bytes, [links[0].data], -1)
    with raises("malformed"):  # the time is an unsigned integer
        verify_notice(wire.encode_map(payload, ROOT.sign(REVOKE_CONTEXT + payload)), ANCHORS)
    payload = wire.encode_map(1, ROOT.public_bytes, [links[0].data], NOW)
    with raises("malformed"):  # a signature is 64 bytes: the form, before any check
        verify_notice(wire.encode_map(payload, ROOT.sign(REVOKE_CONTEXT + payload)[:63]),
                      ANCHORS)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_replicas_share_a_redis_revocation_store(redis_url: str) -> None:
    links = chain_of(3)
    prefix = os.urandom(6).hex().encode()
    replica_a = RedisRevocationStore(redis_url, ANCHORS, prefix=prefix)
    replica_b = RedisRevocationStore(redis_url, ANCHORS, prefix=prefix)
    notice = revoke(ROOT, links[:2], clock=at_now)
    assert replica_a.add(notice) and not replica_b.add(notice)  # stored once, for both
    with raises("revoked"):
        verify_chain(encode_chain(links), ANCHORS, now=NOW, revoked=replica_b.is_revoked)
    assert replica_b.ids() == [links[1].id] and replica_b.notice(links[1].id) == notice
    assert len(replica_a) == 1 and replica_a.prune(NOW) == 0
    payload, _ = wire.decode_map(notice, 2, 20_000, "notice")
    forged = wire.encode_map(payload, MALLORY.sign(REVOKE_CONTEXT + payload))
    with raises("bad_signature"):  # verified before it reaches the server
        RedisRevocationStore(redis_url, ANCHORS, prefix=b"other:").add(forged)
    client = redis.Redis.from_url(redis_url)
    ttl = client.pttl(prefix + links[1].id) / 1000  # kept until the link cannot verify
    assert abs(ttl - (NOW + 3600 + 300 - time.time())) < 5
    assert client.keys(b"other:*") == []
    client.close()
    for store in (replica_a, replica_b):
        store.close()


@pytest.mark.anyio
async def test_gossip_between_a_memory_store_and_a_redis_store(redis_url: str) -> None:
    links = chain_of(3)
    memory = MemoryRevocationStore(ANCHORS)
    shared = RedisRevocationStore(redis_url, ANCHORS, prefix=os.urandom(6).hex().encode())
    memory.add(revoke(ROOT, links[:2], clock=at_now))
    shared.add(revoke(BOB, links, clock=at_now))  # bob issued carol's link
    to_right, from_left = anyio.create_memory_object_stream[bytes](10)
    to_left, from_right = anyio.create_memory_object_stream[bytes](10)
    left = StapledObjectStream(to_right, from_right)
    right = StapledObjectStream(to_left, from_left)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(exchange_revocations, left, memory)
        await exchange_revocations(right, shared)
    assert memory.ids() == shared.ids() == sorted([links[1].id, links[2].id])
    shared.close()


def test_one_sqlite_store_serves_many_threads_at_once(tmp_path: Path) -> None:
    # An event loop asks its store from worker threads: one connection, any thread.
    store = SQLiteRevocationStore(tmp_path / "revoked.db", ANCHORS)
    threads, each = 8, 6
    links = [[delegate(ROOT, ALICE, [PARENT_GRANT], not_before=NOW - 100,
                       expires=NOW + 3600) for _ in range(each)] for _ in range(threads)]
    notices = [[revoke(ROOT, [link], clock=at_now) for link in mine] for mine in links]
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            start.wait()
            for link, notice in zip(links[index], notices[index], strict=True):
                assert store.add(notice) and not store.add(notice)
                assert store.is_revoked(link.id) and store.notice(link.id) == notice
                assert link.id in store.ids() and len(store) >= 1
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert len(store) == threads * each
    store.close()

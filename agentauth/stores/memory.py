"""In-memory stores: replay keys (spec 11) and revocation notices (spec 10.8) for one
process's lifetime.
"""

from __future__ import annotations

import heapq
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from .. import crypto
from ..capability.chain import MAX_SKEW, trust_roots
from ..capability.revocation import (
    PER_REVOKER,
    QuotaSweep,
    admit_notice,
    announce_stored,
    check_per_revoker,
    read_notice,
)
from ..errors import InvalidArgument, StoreError
from ..replay import check_key

__all__ = ["MemoryReplayStore", "MemoryRevocationStore"]

_RECLAIM_STEP: Final = 4  # expired entries reclaimed per call: more than one call inserts


class MemoryReplayStore:
    """Keys in this process's memory, at most ``capacity`` of them.

    Keys are kept as 16-byte keyed BLAKE2b digests (the key is random per store, so no one
    can aim for a collision), in a set, and in time buckets of ``bucket`` seconds by expiry.
    Every call reclaims up to a few entries of buckets that have wholly expired; an entry is
    never reclaimed before its expiry and at most one bucket after it. A full store first
    reclaims what has expired, then refuses (``store_full``). The bound is in all, not per
    sender (spec 11, rule 11): keys are opaque, and only senders that passed every other
    check insert any, each entry for its message's window.
    """

    def __init__(self, capacity: int = 1_000_000, *, bucket: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        if type(capacity) is not int or capacity < 1:
            raise InvalidArgument("capacity is a positive integer")
        if not isinstance(bucket, int | float) or not 0 < bucket <= 3600:
            raise InvalidArgument("bucket is a positive number of seconds, at most 3600")
        self._capacity = capacity
        self._width = float(bucket)
        self._clock = clock
        self._digest = crypto.keyed_hasher(os.urandom(32), 16)
        self._seen: set[bytes] = set()
        self._buckets: dict[int, list[bytes]] = {}
        self._order: list[int] = []  # a heap of bucket numbers
        self._draining: list[bytes] = []  # an expired bucket being reclaimed
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_insert(self, key: bytes, expires: float) -> bool:
        """See :class:`ReplayStore`."""
        check_key(key, expires)
        digest = self._digest(key)
        with self._lock:
            now = self._clock()
            if self._draining or (self._order and self._order[0] * self._width < now):
                self._reclaim(now, _RECLAIM_STEP)
            if expires < now or digest in self._seen:
                return False
            self._room(now, 1)
            self._add(digest, expires)
            return True

    def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        """See :class:`ReplayStore`: all or nothing (a batch that does not fit changes
        nothing)."""
        for key, expires in items:
            check_key(key, expires)
        digests = [self._digest(key) for key, _ in items]
        with self._lock:
            now = self._clock()
            answers, fresh = [], set()
            for digest, (_, expires) in zip(digests, items, strict=True):
                new = not (expires < now or digest in self._seen or digest in fresh)
                answers.append(new)
                if new:
                    fresh.add(digest)
            self._room(now, len(fresh))
            for digest, (_, expires), new in zip(digests, items, answers, strict=True):
                if new:
                    self._add(digest, expires)
            return answers

    def _room(self, now: float, count: int) -> None:
        if len(self._seen) + count > self._capacity:
            self._reclaim(now, len(self._seen))
            if len(self._seen) + count > self._capacity:
                raise StoreError(f"the replay store holds {self._capacity} live entries",
                                 code="store_full")

    def _add(self, digest: bytes, expires: float) -> None:
        number = math.ceil(expires / self._width)
        entries = self._buckets.get(number)
        if entries is None:
            entries = self._buckets[number] = []
            heapq.heappush(self._order, number)
        entries.append(digest)
        self._seen.add(digest)

    def _reclaim(self, now: float, budget: int) -> None:
        """Forget up to ``budget`` entries of buckets whose whole span has passed."""
        seen, draining = self._seen, self._draining
        while budget > 0:
            if not draining:
                order = self._order
                if not order or order[0] * self._width >= now:
                    return
                draining.extend(self._buckets.pop(heapq.heappop(order)))
            take = min(budget, len(draining))
            for _ in range(take):
                seen.discard(draining.pop())
            budget -= take


class MemoryRevocationStore:
    """Notices in a dictionary: for one process's lifetime. Accepts notices about chains
    rooted at one of ``anchors`` only, and at most ``per_revoker`` about the links of each
    issuer key (spec 10.8: beyond it ``store_full``; a stored notice is never dropped to
    make room). A key at its quota first has the notices whose time has passed (by
    ``clock``) forgotten, as :meth:`prune` does, at most once a second."""

    def __init__(self, anchors: Mapping[Any, str], *,
                 per_revoker: int = PER_REVOKER,
                 clock: Callable[[], float] = time.time) -> None:
        self._roots = trust_roots(anchors)
        self._limit = check_per_revoker(per_revoker)
        self._sweep = QuotaSweep(clock, self.prune)
        self._notices: dict[bytes, tuple[int, bytes, bytes]] = {}  # expires, notice, charged
        self._counts: dict[bytes, int] = {}

    def add(self, notice: bytes) -> bool:
        """Verify and keep a notice; True if it was new."""
        read = read_notice(notice)
        checked = admit_notice(read, read.target in self._notices,
                         lambda: self._counts.get(read.charged, 0), self._limit, self._roots,
                         self._sweep)
        if checked is None:
            return False
        self._notices[checked.target] = (checked.expires, checked.data, read.charged)
        self._counts[read.charged] = self._counts.get(read.charged, 0) + 1
        announce_stored(checked, "memory")
        return True

    def is_revoked(self, link_id: bytes) -> bool:
        """Whether the link with this id is revoked."""
        return link_id in self._notices

    def prune(self, now: int) -> int:
        """Forget notices whose target can no longer verify at ``now``; return how many."""
        gone = [k for k, (expires, _, _) in self._notices.items()
                if expires + MAX_SKEW <= now]
        for key in gone:
            charged = self._notices.pop(key)[2]
            self._counts[charged] -= 1
            if not self._counts[charged]:
                del self._counts[charged]
        return len(gone)

    def ids(self) -> list[bytes]:
        """The ids of every revoked link, ascending."""
        return sorted(self._notices)

    def notice(self, link_id: bytes) -> bytes | None:
        """The notice that revoked ``link_id``, if any."""
        entry = self._notices.get(link_id)
        return entry[1] if entry else None

    def __len__(self) -> int:
        return len(self._notices)

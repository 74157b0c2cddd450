"""Replay stores: the interface every replay check uses (spec section 11), and the shares
that bound what one source may hold in a store.

``check_and_insert(key, expires)`` answers True ("new": the key is now remembered until at
least ``expires``) or False ("seen": a live entry already holds it), atomically: of any
number of concurrent calls with one key, across threads, processes or machines sharing the
store, exactly one is answered True. Callers insert a key only after the message it comes
from has verified, with ``expires`` the last moment that message could still be accepted
(its acceptance window plus the clock skew).

A store never forgets a live entry. One that cannot take a key (full of live entries, or
unreachable) raises :class:`~agentauth.errors.StoreError`, and the message must be refused:
the check fails closed. The stores themselves (memory, SQLite, Redis) are in
:mod:`agentauth.stores`.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Final, Protocol, runtime_checkable

from .errors import InvalidArgument, StoreError
from .verdict import check_bounds

__all__ = ["MAX_EXPIRES", "MAX_KEY", "ReplayStore", "Shares", "check_key", "milliseconds"]

MAX_KEY: Final = 256  # bytes; callers build keys from a sender id and a nonce
MAX_EXPIRES: Final = 2**53  # seconds: far beyond any real expiry, exact in a float


def check_key(key: bytes, expires: float) -> None:
    """Refuse (``invalid_argument``) a key or an expiry no store takes: every store checks
    both this way before it does anything."""
    if type(key) is not bytes or not 0 < len(key) <= MAX_KEY:
        raise InvalidArgument(f"a replay key is 1 to {MAX_KEY} bytes")
    if type(expires) not in (int, float) or not 0 <= expires <= MAX_EXPIRES:  # NaN too
        raise InvalidArgument(f"expires is a time in seconds from 0 to {MAX_EXPIRES}")


def milliseconds(seconds: float, up: bool = False) -> int:
    """``seconds`` in whole milliseconds, as the stores keep times: rounded down, or up
    (``up``) for an expiry, which must never come early."""
    value = seconds * 1000
    return math.ceil(value) if up else math.floor(value)


@runtime_checkable
class ReplayStore(Protocol):
    """What every replay store does."""

    def check_and_insert(self, key: bytes, expires: float) -> bool:
        """Remember ``key`` until ``expires`` (Unix seconds) and return True, or return
        False if a live entry already holds it. Raises StoreError if it cannot."""

    def check_and_insert_many(self, items: Sequence[tuple[bytes, float]]) -> list[bool]:
        """:meth:`check_and_insert` for several keys; one answer each, in order."""


class Shares:
    """Live entries counted per source until they expire: at most ``capacity`` in all and
    ``per_source`` from any one source (spec 11, rule 11).

    A verifier that knows who sent each key keeps one beside its replay cache or store, so
    that one source cannot fill it for the others: it takes a :meth:`place` before the
    store is asked and keeps it, until the entry expires, only if the key was new. Places
    being taken count, so the bounds hold however many checks are in flight, from any
    number of threads.
    """

    __slots__ = ("_deadlines", "_held", "_lock", "_total", "capacity", "per_source")

    def __init__(self, capacity: int, per_source: int | None = None, *,
                 names: tuple[str, str] = ("capacity", "per_source")) -> None:
        """``per_source`` defaults to ``max(1, capacity // 16)``; ``names`` are what the
        owner calls the two bounds, for the error a bad value raises."""
        self.capacity, self.per_source = check_bounds(capacity, per_source, names)
        self._deadlines: list[tuple[float, bytes, bytes]] = []  # (expires, source, item)
        self._held: dict[bytes, int] = {}  # only sources with a live or pending place
        self._total = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def place(self, source: bytes, refuse: Callable[[str], Exception]
              ) -> Iterator[Callable[[float, bytes], None]]:
        """Take a place for ``source`` or raise ``refuse(why)``; yield ``keep(expires,
        item)``. A place that is not kept by the end of the block (the key was a replay,
        the store failed) is given back. (Call :meth:`expire` first, so that what has
        expired frees its place.)"""
        with self._lock:
            held = self._held.get(source, 0)
            if held >= self.per_source:
                raise refuse(f"its share, {held} live entries, is taken")
            if self._total >= self.capacity:
                raise refuse(f"all {self.capacity} places are taken")
            self._held[source] = held + 1
            self._total += 1
        kept: list[tuple[float, bytes, bytes]] = []
        try:
            yield lambda expires, item: kept.append((expires, source, item))
        finally:
            with self._lock:
                if kept:
                    heapq.heappush(self._deadlines, kept[0])
                else:
                    self._release(source)

    def place_in_store(self, source: bytes, name: str, now: float
                       ) -> contextlib.AbstractContextManager[Callable[[float, bytes], None]]:
        """:meth:`expire` what has expired by ``now``, then take a :meth:`place` for
        ``source`` in front of a replay store (spec 11, rule 11): over its share, or with
        every place taken, ``store_full`` naming the source as ``name`` (its agent id)."""
        self.expire(now)
        return self.place(source, lambda why: StoreError(
            f"the replay store refuses {name} for now: {why}", code="store_full"))

    def expire(self, now: float) -> list[bytes]:
        """Forget the entries whose expiry is before ``now``; return their items."""
        deadlines, items = self._deadlines, []
        with self._lock:
            while deadlines and deadlines[0][0] < now:
                _, source, item = heapq.heappop(deadlines)
                self._release(source)
                items.append(item)
        return items

    def held(self, source: bytes) -> int:
        """The places ``source`` holds."""
        return self._held.get(source, 0)

    def __len__(self) -> int:
        return self._total

    def _release(self, source: bytes) -> None:
        # Under the lock.
        self._total -= 1
        held = self._held.pop(source) - 1
        if held:
            self._held[source] = held

"""Revocation notices travel between peers over their channels (spec 10.9): a hello with a
digest, then the ids each side holds, then the notices the other lacks, each step in bounded
pages sent by both sides at once, the notices in an order that is fair to every part of the
delegation tree.

Both sides call :func:`exchange_revocations` on a fresh channel. No message is larger than
a fixed bound whatever the stores hold, and every page carries what there is to carry, so
no store size stops the exchange. Every notice received is verified by the store before it
is kept; a refused one is dropped and counted, and never passed on. Ordering the offer
and checking what arrives yield to other tasks every few notices: a store of 100,000 or a
page of hundreds of checks and writes does not stall the event loop; a store that does
I/O (SQLite, Redis) is asked from a worker thread, a page's checks and writes in a few
calls, and any other store in the calling task.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import checkpoint

from .. import wire
from ..capability.chain import parse_links
from ..capability.revocation import RevocationStore, digest, notice_path
from ..errors import AgentAuthError, DecodeError, InvalidArgument, ProtocolViolation
from ..session import OVERHEAD
from ..stores import RedisRevocationStore, SQLiteRevocationStore
from ._channel import TRANSPORT_ERRORS
from ._common import transport_error
from .stream import AgentAuthStream

__all__ = ["DEFAULT_PAGES", "exchange_revocations", "offer_order"]

VERSION: Final = 2
PAGE_IDS: Final = 4096  # ids in one listing page
LIST_ROUNDS: Final = 256  # listing pages at most: 1,048,576 ids
PAGE_BYTES: Final = 262_144  # the notices of one page, their lengths added up
PAGE_NOTICES: Final = 1024  # notices in one page at most, whatever their size
NOTICE_ROUNDS: Final = 64  # notice pages at most, and the largest budget
DEFAULT_PAGES: Final = 8  # notice pages a side sends in one exchange, by default
_HELLO_LIMIT: Final = 64
_LIST_LIMIT: Final = PAGE_IDS * 35 + 64  # 32-byte ids with their 2-byte headers
MESSAGE_BYTES: Final = 2 * PAGE_BYTES  # a page with its headers, generously
_STEP: Final = 64  # notices ordered between two checkpoints

_rotation = random.SystemRandom()
T = TypeVar("T")

logger = logging.getLogger("agentauth.aio")


class _Store:
    """``store`` as the exchange asks it: a SQLite or Redis store in a worker thread
    (holding one of ``limiter``'s tokens, if given), any other (a memory store, an
    application's own) in the calling task, as before."""

    def __init__(self, store: RevocationStore, limiter: anyio.CapacityLimiter | None
                 ) -> None:
        self.store = store
        self.inline = not isinstance(store, SQLiteRevocationStore | RedisRevocationStore)
        self._limiter = limiter

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        if self.inline:
            return work(*args)
        return await anyio.to_thread.run_sync(work, *args, limiter=self._limiter)


def _notices(store: RevocationStore, ids: list[bytes]) -> list[bytes | None]:
    return [store.notice(link_id) for link_id in ids]


def _add(store: RevocationStore, notices: list[bytes]) -> list[bool | str]:
    """Each notice added: whether it was new, or the code that refused it."""
    out: list[bool | str] = []
    for notice in notices:
        try:
            out.append(store.add(notice))
        except AgentAuthError as exc:
            out.append(exc.code)
    return out


async def exchange_revocations(channel: Any, store: RevocationStore, *,
                               pages: int = DEFAULT_PAGES,
                               limiter: anyio.CapacityLimiter | None = None
                               ) -> tuple[int, int]:
    """Synchronise ``store`` with the peer's over ``channel`` (an established agentauth
    channel); return (notices received and kept, notices refused).

    ``pages`` (1 to 64) is how many pages of notices this side sends in this exchange, each
    up to 256 KiB and 1,024 notices; what does not fit goes in the next exchange, in the
    fair order of :func:`offer_order`. A SQLite or Redis store is asked from worker
    threads (each holding one of ``limiter``'s tokens, if given, else the default
    limiter's). A channel that cannot carry messages of ``MESSAGE_BYTES`` is refused at
    once (``invalid_argument``); one that ends or breaks mid-exchange raises a
    :class:`~agentauth.errors.TransportError`, and the notices stored until then stay
    stored.
    """
    if type(pages) is not int or not 1 <= pages <= NOTICE_ROUNDS:
        raise InvalidArgument(f"pages is an integer from 1 to {NOTICE_ROUNDS}")
    if isinstance(channel, AgentAuthStream) and channel.max_payload < MESSAGE_BYTES:
        raise InvalidArgument(  # else it fails later, once a store fills one page
            f"the revocation exchange needs a channel carrying messages of "
            f"{MESSAGE_BYTES} bytes; this one carries {channel.max_payload}: give the "
            f"handshake policy a max_message of at least {MESSAGE_BYTES + OVERHEAD}")
    asked = _Store(store, limiter)
    ours = await asked.run(store.ids)
    mine = digest(ours)
    if _read_hello(await _swap(channel, wire.encode_map(VERSION, mine))) == mine:
        return 0, 0
    lacking = await _list(channel, ours)
    tree = _Tree()
    unreadable = 0
    found = await asked.run(_notices, store, lacking)
    for count, notice in enumerate(found, 1):  # ordering 100,000 takes seconds: in steps
        if notice is not None:
            try:
                tree.add(notice)
            except AgentAuthError:  # a damaged store: no peer would take it; send the rest
                unreadable += 1
        if not count % _STEP:
            await checkpoint()
    if unreadable:
        logger.warning("revocation exchange: %d stored notice(s) could not be read and were "
                       "not offered", unreadable)
    return await _trade(channel, asked, tree.top.emit(), pages)


def _read_hello(message: bytes) -> bytes:
    try:
        version, their_digest = wire.decode_map(message, 2, _HELLO_LIMIT, "exchange hello")
    except DecodeError:
        try:
            wire.decode_map(message, 1, _HELLO_LIMIT, "exchange hello")
        except DecodeError:
            raise
        raise ProtocolViolation("the peer speaks revocation exchange version 1, not 2",
                                code="no_common_version") from None
    if type(version) is not int or type(their_digest) is not bytes or len(their_digest) != 32:
        raise DecodeError("an exchange hello is {0: version, 1: 32-byte digest}",
                          code="malformed")
    if version != VERSION:
        raise ProtocolViolation(f"the peer speaks revocation exchange version {version}, "
                                f"not {VERSION}", code="no_common_version")
    return their_digest


async def _list(channel: Any, ours: list[bytes]) -> list[bytes]:
    """Swap the ids each side holds, page by page; return ours that the peer did not list
    (ascending). Only our own ids are kept: what the peer lists costs us no memory."""
    shown = ours[:PAGE_IDS * LIST_ROUNDS]
    unlisted = set(ours)
    for turn in range(LIST_ROUNDS):
        page = shown[turn * PAGE_IDS:(turn + 1) * PAGE_IDS]
        more = (turn + 1) * PAGE_IDS < len(shown)
        ids, their_more = _read_page(
            await _swap(channel, wire.encode_map(page, more)), _LIST_LIMIT, "listing",
            turn == LIST_ROUNDS - 1)
        if len(ids) > PAGE_IDS or any(type(i) is not bytes or len(i) != 32 for i in ids):
            raise DecodeError(f"a listing page holds up to {PAGE_IDS} ids of 32 bytes",
                              code="malformed")
        unlisted.difference_update(ids)
        if not (more or their_more):
            break
    return [i for i in ours if i in unlisted]


async def _trade(channel: Any, store: _Store, offer: Iterator[bytes],
                 pages: int) -> tuple[int, int]:
    """Swap pages of notices, ours in ``offer``'s order, until neither side has more."""
    kept = refused = 0
    codes: dict[str, int] = {}
    pending = next(offer, None)
    for turn in range(NOTICE_ROUNDS):
        page: list[bytes] = []
        size = 0
        while (turn < pages and pending is not None and size + len(pending) <= PAGE_BYTES
               and len(page) < PAGE_NOTICES):
            page.append(pending)
            size += len(pending)
            pending = next(offer, None)
        more = pending is not None and turn + 1 < pages
        received, their_more = _read_page(
            await _swap(channel, wire.encode_map(page, more)), MESSAGE_BYTES, "notice page",
            turn == NOTICE_ROUNDS - 1)
        if any(type(n) is not bytes for n in received):
            raise DecodeError("a notice page holds byte strings", code="malformed")
        if len(received) > PAGE_NOTICES or sum(len(n) for n in received) > PAGE_BYTES:
            raise DecodeError(f"a notice page holds over {PAGE_NOTICES} notices or over "
                              f"{PAGE_BYTES} bytes of them", code="oversize")
        # A page holds hundreds of checks and writes: in steps, letting others run between
        # (a memory store one notice at a time, in this task; another a step per thread).
        step = 1 if store.inline else _STEP
        for start in range(0, len(received), step):
            for answer in await store.run(_add, store.store, received[start:start + step]):
                if isinstance(answer, str):
                    refused += 1
                    codes[answer] = codes.get(answer, 0) + 1
                elif answer:
                    kept += 1
            await checkpoint()
        if not (more or their_more):
            break
    if codes:
        logger.warning("revocation exchange: refused %d notice(s) from the peer (%s)", refused,
                       ", ".join(f"{code} {count}" for code, count in sorted(codes.items())))
    return kept, refused


def _read_page(message: bytes, limit: int, what: str, last: bool) -> tuple[list[Any], bool]:
    items, more = wire.decode_map(message, 2, limit, f"revocation {what}")
    if type(items) is not list or type(more) is not bool:
        raise DecodeError(f"a revocation {what} is {{0: list, 1: more}}", code="malformed")
    if more and last:
        raise DecodeError(f"the peer's revocation {what} goes on past its last round",
                          code="malformed")
    return items, more


def offer_order(notices: Iterable[bytes]) -> Iterator[bytes]:
    """``notices`` (stored, so well formed) in the fair order of spec 10.9: a tree by their
    paths (anchor, root link, each next link), each subtree sent as its node's own notice
    first, then one notice of each child subtree in turn, starting at a random child.

    A flood of notices about links below one link thus takes one child's turn at that
    link's parent, and nothing more, from every notice elsewhere in the tree.
    """
    tree = _Tree()
    for data in notices:
        tree.add(data)
    return tree.top.emit()


class _Tree:
    """The notices by their paths, filled one at a time (see :func:`offer_order`)."""

    __slots__ = ("anchors", "top")

    def __init__(self) -> None:
        self.top = _Node()
        self.anchors: dict[bytes, bytes] = {}  # a root link's bytes -> its issuer

    def add(self, data: bytes) -> None:
        """Place a notice at its target's node."""
        path = notice_path(data)  # a link's bytes name it as well as its id: not parsed
        if not path or not all(type(link) is bytes for link in path):
            raise DecodeError("a stored notice's path is not a list of links",
                              code="malformed")
        anchor = self.anchors.get(path[0])
        if anchor is None:
            anchor = self.anchors[path[0]] = parse_links(path[:1])[0].issuer
        node = self.top.child(anchor)
        for link in path:
            node = node.child(link)
        node.own = data


class _Node:
    __slots__ = ("children", "own")

    def __init__(self) -> None:
        self.own: bytes | None = None
        self.children: dict[bytes, _Node] = {}

    def child(self, key: bytes) -> _Node:
        node = self.children.get(key)
        if node is None:
            node = self.children[key] = _Node()
        return node

    def emit(self) -> Iterator[bytes]:
        if self.own is not None:
            yield self.own
        turns = [self.children[key].emit() for key in sorted(self.children)]
        if turns:
            start = _rotation.randrange(len(turns))
            turns = turns[start:] + turns[:start]
        while turns:
            still = []
            for turn in turns:
                item = next(turn, None)
                if item is not None:
                    yield item
                    still.append(turn)
            turns = still


async def _swap(channel: Any, message: bytes) -> bytes:
    """Send ``message`` and receive the peer's, at the same time (neither side waits).

    The first error of either direction is raised as itself, not as a group; the channel
    ending or breaking as a :class:`~agentauth.errors.TransportError`.
    """
    received: list[bytes] = []
    errors: list[BaseException] = []

    async def run(step: Any, *args: Any) -> None:
        try:
            result = await step(*args)
        except TRANSPORT_ERRORS as exc:  # the peer closed, or the transport broke: typed
            errors.append(transport_error(exc, "during the revocation exchange"))
            tg.cancel_scope.cancel()
        except Exception as exc:
            errors.append(exc)
            tg.cancel_scope.cancel()
        else:
            if result is not None:
                received.append(result)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, channel.receive)
        tg.start_soon(run, channel.send, message)
    if errors:
        raise errors[0]
    return received[0]

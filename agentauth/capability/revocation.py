"""Revocation without a server: signed notices, verified before they are stored.

A notice carries the *path* to the link it revokes: the chain from its root down to the
target, whose id it names that way. It is valid when the path is a correctly signed chain
whose root is one of the verifier's trust anchors, and its signer either issued a link
of the path (an issuer upstream of the target: it revokes what it delegated, directly or
not) or is the target's own audience giving it up. Anyone else's notice, and any notice
about a chain no anchor of ours started, is refused and never stored.

Stores keep ``id -> (expires, notice)``: a revocation is irreversible, and is forgotten
only once the revoked link could no longer verify anyway (its expiry plus the largest
skew a verifier may allow). The stores (in memory, in SQLite, in Redis: see
:mod:`agentauth.stores`) share the small interface :class:`RevocationStore`; a store's
``is_revoked`` is what :func:`~agentauth.capability.verify_chain` takes as ``revoked``.

Every store keeps at most ``per_revoker`` notices about the links of one issuer key (spec
10.8: a notice counts against the key that issued the link it revokes, whoever signed it,
so every notice about one link meets the same quota): a key at its quota is refused
(``store_full``) before any signature is checked, once the notices whose time has passed
are forgotten, and a stored notice is never dropped to make room, so a quota never turns
"revoked" into "not revoked". The rules are applied in one place, ``admit_notice``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NamedTuple, Protocol

from .. import audit, crypto, wire
from ..errors import (
    AuthenticationError,
    CapabilityDenied,
    DecodeError,
    InvalidArgument,
    Refusal,
    StoreError,
)
from ..identity import Identity, format_agent_id
from ..verdict import moment
from .chain import (
    MAX_CHAIN_BYTES,
    Link,
    check_root,
    parse_links,
    signature_ok,
    trust_roots,
    well_formed,
)

__all__ = [
    "PER_REVOKER",
    "REVOKE_CONTEXT",
    "Notice",
    "QuotaSweep",
    "ReadNotice",
    "RevocationStore",
    "admit_notice",
    "announce_stored",
    "check_notice",
    "check_per_revoker",
    "digest",
    "notice_path",
    "over_quota",
    "read_notice",
    "revoke",
    "verify_notice",
]

VERSION: Final = 1
REVOKE_CONTEXT: Final = b"agentauth v1 capability revocation\x00"
MAX_NOTICE: Final = MAX_CHAIN_BYTES + 512
#: How many notices a store keeps about the links of one issuer key by default (spec 10.8).
PER_REVOKER: Final = 4096


class Notice:
    """A verified revocation notice: ``target`` is revoked until ``expires``."""

    __slots__ = ("data", "expires", "revoker", "target")

    def __init__(self, data: bytes, target: bytes, expires: int, revoker: bytes) -> None:
        self.data, self.target, self.expires, self.revoker = data, target, expires, revoker

    def __repr__(self) -> str:
        return f"Notice(target={self.target.hex()[:16]}..., expires={self.expires})"


def revoke(revoker: Identity, path: Iterable[Link], *,
           clock: Callable[[], float] = time.time) -> bytes:
    """Sign a notice revoking the last link of ``path``, the chain from its root down to
    the target. ``revoker`` issued a link of it, or holds the target."""
    links = () if isinstance(path, Link) else tuple(path)  # a Link is a tuple itself
    if not links or not isinstance(revoker, Identity) or not well_formed(links):
        raise InvalidArgument("a notice needs its signer and a path of at least one Link")
    payload = wire.encode_map(VERSION, revoker.public_bytes, [link.data for link in links],
                              int(moment(clock())))
    data = wire.encode_map(payload, revoker.sign(REVOKE_CONTEXT + payload))
    root = links[0].issuer
    verify_notice(data, {root: "**"})  # a notice we would refuse is one we do not make
    return data


def verify_notice(data: bytes, anchors: Mapping[Any, str]) -> Notice:
    """Check a notice completely against our trust ``anchors``; return it
    (``unauthorized_revoker`` if the signer has no say over the target)."""
    roots = trust_roots(anchors)
    return check_notice(read_notice(data), roots)


class ReadNotice(NamedTuple):
    """A notice read for its form only, nothing verified yet: what a store decides from
    before it spends a signature check (spec 10.8, storage per key)."""

    data: bytes
    payload: bytes
    signature: bytes
    revoker: bytes
    links: tuple[Link, ...]

    @property
    def target(self) -> bytes:
        """The id of the link the notice would revoke."""
        return self.links[-1].id

    @property
    def charged(self) -> bytes:
        """The key whose quota the notice counts against (spec 10.8): the issuer of the
        link it revokes, whoever signed it, so that every notice about one link meets the
        same quota."""
        return self.links[-1].issuer


def read_notice(data: bytes) -> ReadNotice:
    """Read a notice's form (sizes, fields, the path as a chain is read, its root a root);
    no anchor, authority or signature is checked: see :func:`verify_notice`."""
    payload, signature, revoker, items = _fields(data)
    links = parse_links(items)
    check_root(links[0])
    return ReadNotice(data, payload, signature, revoker, links)


def notice_path(data: bytes) -> list[bytes]:
    """The path of a notice, its links' bytes from the root down to the target, read
    without parsing the links (for a notice already verified, as every stored one is)."""
    return _fields(data)[3]


def _fields(data: bytes) -> tuple[bytes, bytes, bytes, list[Any]]:
    if type(data) is not bytes:
        raise InvalidArgument("a notice is bytes")
    payload, signature = wire.decode_map(data, 2, MAX_NOTICE, "notice")
    if type(payload) is not bytes or type(signature) is not bytes:
        raise DecodeError("a notice is {0: payload, 1: signature}", code="malformed")
    version, revoker, items, issued = wire.decode_map(payload, 4, MAX_NOTICE,
                                                      "notice payload")
    if type(version) is not int:
        raise DecodeError("a notice's version is an integer", code="malformed")
    if version != VERSION:
        raise DecodeError(f"notice version {version} is not 1", code="unknown_field")
    if (type(revoker) is not bytes or len(revoker) != 32 or type(items) is not list
            or type(issued) is not int or issued < 0
            or len(signature) != crypto.SIGNATURE_LEN):
        raise DecodeError("notice fields are out of shape", code="malformed")
    return payload, signature, revoker, items


def check_notice(notice: ReadNotice, roots: Mapping[bytes, Any]) -> Notice:
    """Verify a notice read by :func:`read_notice` against ``roots``
    (:func:`~agentauth.capability.chain.trust_roots`); return it, or raise."""
    # The rest of spec 10.8, in its order: the anchor, the signer's say, the signatures.
    links, revoker = notice.links, notice.revoker
    if links[0].issuer not in roots:
        raise CapabilityDenied("the notice is about a chain none of our anchors started",
                               code="untrusted_root", refusal=Refusal(
                                   "anchor", 0, rule="a trust anchor as issuer",
                                   value=format_agent_id(links[0].issuer)))
    last = links[-1]
    upstream = any(crypto.equal(link.issuer, revoker) for link in links)
    surrender = crypto.equal(last.audience, revoker)
    if not (upstream or surrender):
        raise CapabilityDenied("the signer neither issued the path nor holds the target",
                               code="unauthorized_revoker")
    for link in links:
        if not signature_ok(link):
            raise AuthenticationError("a path link's signature does not verify",
                                      code="bad_signature")
    if not crypto.ed25519_verify(revoker, REVOKE_CONTEXT + notice.payload, notice.signature):
        raise AuthenticationError("the notice's signature does not verify",
                                  code="bad_signature")
    return Notice(notice.data, last.id, last.expires, revoker)


def admit_notice(notice: ReadNotice, held: bool, count: Callable[[], int], limit: int,
           roots: Mapping[bytes, Any],
           sweep: Callable[[], bool] | None = None) -> Notice | None:
    """The storage rules of spec 10.8, the one place every store applies them: None for a
    target the store already holds, ``store_full`` for a key whose ``count`` is at its
    quota once ``sweep`` (forget what time has freed; True if it forgot any) has run (both
    before any signature is checked), else the verified notice, to be stored."""
    if held:
        return None
    if count() >= limit and (sweep is None or not sweep() or count() >= limit):
        raise over_quota(notice.charged, limit)
    return check_notice(notice, roots)


class QuotaSweep:
    """A store at a key's quota forgets the notices whose time has passed before it
    refuses (spec 10.8 rule 3): ``prune`` at most once a second, so that a flood at its
    quota costs one sweep a second, not one a notice."""

    __slots__ = ("_clock", "_next", "_prune")

    def __init__(self, clock: Callable[[], float], prune: Callable[[int], int]) -> None:
        self._clock, self._prune = clock, prune
        self._next = -math.inf

    def __call__(self) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + 1
        return self._prune(int(now)) > 0


def over_quota(issuer: bytes, limit: int) -> StoreError:
    """The ``store_full`` refusal of a notice charged to ``issuer``, at its quota."""
    return StoreError(f"the store holds its quota of {limit} notices about links issued by "
                      f"{format_agent_id(issuer)}; it forgets them as those links expire "
                      f"(an issuer further up can revoke the subtree)", code="store_full")


def check_per_revoker(value: int) -> int:
    """``value``, a store's ``per_revoker`` quota, if it is a positive integer."""
    if type(value) is not int or value < 1:
        raise InvalidArgument("per_revoker is a positive integer")
    return value


class RevocationStore(Protocol):
    """Where verified notices are kept."""

    def add(self, notice: bytes) -> bool:
        """Verify and keep a notice; True if it was new."""

    def is_revoked(self, link_id: bytes) -> bool:
        """Whether the link with this id is revoked."""

    def prune(self, now: int) -> int:
        """Forget notices whose target can no longer verify at ``now``; return how many."""

    def ids(self) -> list[bytes]:
        """The ids of every revoked link, ascending."""

    def notice(self, link_id: bytes) -> bytes | None:
        """The notice that revoked ``link_id``, if any."""


def digest(ids: list[bytes]) -> bytes:
    """A short summary of a set of revoked ids (sorted), to compare two stores cheaply."""
    return crypto.blake2b_256(len(ids).to_bytes(4, "big") + b"".join(sorted(ids)))


def announce_stored(notice: Notice, store: str) -> None:
    """The ``revocation_stored`` audit event, for a notice ``store`` has just kept."""
    if audit.enabled("revocation_stored"):
        audit.emit("revocation_stored", link=notice.target.hex(),
                   revoker=format_agent_id(notice.revoker), store=store)

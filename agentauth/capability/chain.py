"""Capability chains: signed links, root first, each narrowing its parent (spec 10.4-10.6).

A link says: *issuer* lets *audience* do what *grants* allow, within a validity window, for
the namespace of *subject* (the root issuer), under the link named *parent*; *budget*
says how many more delegations may follow. The issuer signs the exact payload bytes under
a context of their own; the link id hashes the payload (not the signature), so a
re-encoded signature cannot make a "new" link that escapes revocation.

:func:`verify_chain` checks, cheapest first: sizes and counts (before any hashing or
signature), the root and its anchor, the linkage of every hop, revocation, narrowing and
windows, time, the signatures, the holder, and the request.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .. import crypto, wire
from ..errors import AuthenticationError, CapabilityDenied, DecodeError, InvalidArgument
from ..identity import Identity, PeerKey, parse_agent_id
from .grants import (
    Grant,
    Request,
    actions_within,
    constraint_within,
    parse_resource,
    pattern_within,
)

__all__ = [
    "DEFAULT_SKEW",
    "LINK_CONTEXT",
    "LINK_ID_CONTEXT",
    "MAX_CHAIN_BYTES",
    "MAX_LINKS",
    "Link",
    "check_linkage",
    "check_root",
    "clear_caches",
    "decode_chain",
    "delegate",
    "encode_chain",
    "parse_links",
    "signature_ok",
    "verify_chain",
]

VERSION: Final = 1
LINK_CONTEXT: Final = b"agentauth v1 capability link\x00"
LINK_ID_CONTEXT: Final = b"agentauth v1 capability link id\x00"
MAX_LINKS: Final = 9  # a root and at most 8 delegations
MAX_CHAIN_BYTES: Final = 8192
MAX_LINK_BYTES: Final = 2048
MAX_GRANTS: Final = 16
MAX_BUDGET: Final = 16
MAX_TIME: Final = 2**53 - 1
DEFAULT_SKEW: Final = 60
MAX_SKEW: Final = 300
_FIELDS = 10


@dataclass(frozen=True, slots=True)
class Link:
    """One signed link. Build links with :func:`delegate`; read them with
    :func:`decode_chain`."""

    payload: bytes
    signature: bytes
    issuer: bytes
    audience: bytes
    subject: bytes
    parent: bytes  # the parent's id; empty for a root
    grants: tuple[Grant, ...]
    not_before: int
    expires: int
    budget: int
    nonce: bytes
    id: bytes

    @property
    def is_root(self) -> bool:
        """Whether this link starts a chain (it names no parent)."""
        return not self.parent


def _link_id(payload: bytes) -> bytes:
    return crypto.blake2b_256(LINK_ID_CONTEXT + payload)


def _key(value: str | PeerKey | Identity) -> bytes:
    if isinstance(value, Identity):
        return value.public_bytes
    if isinstance(value, PeerKey):
        return value.public_bytes
    return parse_agent_id(value)


def delegate(
    issuer: Identity,
    audience: str | PeerKey | Identity,
    grants: Iterable[Grant],
    *,
    not_before: int,
    expires: int,
    budget: int = 0,
    parent: Link | None = None,
    nonce: bytes | None = None,
) -> Link:
    """Sign a link from ``issuer`` to ``audience``; under ``parent``, or a new root.

    The link is checked as a verifier would check it against its parent (so a widening
    child cannot even be made); ``budget`` is how many delegations may follow it.
    """
    if not isinstance(issuer, Identity):
        raise InvalidArgument("the issuer is an Identity")
    grants = tuple(grants)
    if not 0 < len(grants) <= MAX_GRANTS or not all(isinstance(g, Grant) for g in grants):
        raise InvalidArgument(f"a link carries 1 to {MAX_GRANTS} grants")
    for name, value in (("not_before", not_before), ("expires", expires), ("budget", budget)):
        if type(value) is not int or not 0 <= value <= MAX_TIME:
            raise InvalidArgument(f"{name} is a non-negative integer")
    if not not_before < expires or budget > MAX_BUDGET:
        raise InvalidArgument(f"not_before < expires and budget <= {MAX_BUDGET}")
    nonce = os.urandom(16) if nonce is None else nonce
    if type(nonce) is not bytes or len(nonce) != 16:
        raise InvalidArgument("the nonce is 16 bytes")
    subject = parent.subject if parent is not None else issuer.public_bytes
    payload = wire.encode_map(VERSION, issuer.public_bytes, _key(audience), subject,
                              parent.id if parent is not None else b"",
                              [g.to_wire() for g in grants], not_before, expires, budget,
                              nonce)
    if len(payload) > MAX_LINK_BYTES:
        raise InvalidArgument(f"the link is over {MAX_LINK_BYTES} bytes")
    link = _parse_payload(payload, issuer.sign(LINK_CONTEXT + payload))
    if parent is not None:
        try:
            _check_hop(parent, link)
        except CapabilityDenied as exc:  # the caller asked for it: a local error
            raise InvalidArgument(f"{exc.message} ({exc.code})") from None
    return link


# ------------------------------------------------------------------ encoding


def encode_chain(links: Iterable[Link]) -> bytes:
    """The wire form of a chain, root first: ``{0: 1, 1: [[payload, signature], ...]}``."""
    return wire.encode_map(VERSION, [[link.payload, link.signature] for link in links])


def decode_chain(data: bytes) -> tuple[Link, ...]:
    """Decode a chain strictly: sizes and the link count first, then every payload.

    Nothing is verified here beyond the form (see :func:`verify_chain`).
    """
    if type(data) is not bytes:
        raise InvalidArgument("a chain is bytes")
    version, items = wire.decode_map(data, 2, MAX_CHAIN_BYTES, "chain")
    if type(version) is not int or type(items) is not list:
        raise DecodeError("a chain is {0: version, 1: [links]}", code="malformed")
    if version != VERSION:
        raise DecodeError(f"chain version {version} is not {VERSION}", code="unknown_field")
    return parse_links(items)


def parse_links(items: list[Any]) -> tuple[Link, ...]:
    """The links of a decoded ``[[payload, signature], ...]`` list (a chain, or a
    revocation notice's path): the count is checked before any payload is parsed."""
    if not items:
        raise DecodeError("a chain has at least one link", code="malformed")
    if len(items) > MAX_LINKS:
        raise CapabilityDenied(f"the chain has {len(items)} links, over {MAX_LINKS}",
                               code="chain_too_long")
    links = []
    for item in items:
        if (type(item) is not list or len(item) != 2 or type(item[0]) is not bytes
                or type(item[1]) is not bytes):
            raise DecodeError("a link is [payload, signature]", code="malformed")
        links.append(_parse_cached(item[0], item[1]))
    return tuple(links)


# Chains are presented again and again (each request carries one), so a verifier keeps
# what it learnt from link bytes it has seen: the parsed link, and whether its signature
# verified. Both are pure functions of the exact bytes, so the caches cannot be poisoned;
# time, revocation, holder and request are checked on every use regardless. Failures are
# not cached.
_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse_cached(payload: bytes, signature: bytes) -> Link:
    return _parse_payload(payload, signature)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _signature_ok(issuer: bytes, payload: bytes, signature: bytes) -> bool:
    return crypto.ed25519_verify(issuer, LINK_CONTEXT + payload, signature)


def clear_caches() -> None:
    """Forget every link seen (for measuring cold verification, or to free memory)."""
    _parse_cached.cache_clear()
    _signature_ok.cache_clear()


def _parse_payload(payload: bytes, signature: bytes) -> Link:
    if len(signature) != crypto.SIGNATURE_LEN:
        raise DecodeError("a link signature is 64 bytes", code="malformed")
    fields: list[Any] = wire.decode_map(payload, _FIELDS, MAX_LINK_BYTES, "link")
    version, issuer, audience, subject, parent, grants, nbf, exp, budget, nonce = fields
    if version != VERSION or type(version) is not int:
        raise DecodeError(f"link version {version!r} is not {VERSION}", code="unknown_field")
    for key in (issuer, audience, subject):
        if type(key) is not bytes or len(key) != 32:
            raise DecodeError("link keys are 32 bytes", code="malformed")
    if type(parent) is not bytes or len(parent) not in (0, 32):
        raise DecodeError("a link's parent is empty or a 32-byte id", code="malformed")
    if type(nonce) is not bytes or len(nonce) != 16:
        raise DecodeError("a link nonce is 16 bytes", code="malformed")
    for value in (nbf, exp, budget):
        if type(value) is not int or not 0 <= value <= MAX_TIME:
            raise DecodeError("link times and budget are non-negative integers",
                              code="malformed")
    if not nbf < exp or budget > MAX_BUDGET:
        raise DecodeError("a link needs not_before < expires and a small budget",
                          code="malformed")
    if type(grants) is not list or not 0 < len(grants) <= MAX_GRANTS:
        raise DecodeError(f"a link carries 1 to {MAX_GRANTS} grants", code="malformed")
    parsed = tuple(Grant.from_wire(g) for g in grants)
    return Link(payload, signature, issuer, audience, subject, parent, parsed, nbf, exp,
                budget, nonce, _link_id(payload))


# ------------------------------------------------------------------ verification


def _widening(child: Grant, parents: tuple[Grant, ...]) -> str | None:
    """None if ``child`` is within some parent grant, else the code for the first
    dimension that fails against the closest one (resource, then action, then args)."""
    best = "widened_resource"
    for parent in parents:
        if not pattern_within(child.segments, parent.segments):
            continue
        if not actions_within(child.actions, parent.actions):
            best = "widened_action"
            continue
        if all(name in child.constraints
               and constraint_within(child.constraints[name], bound)
               for name, bound in parent.constraints.items()):
            return None
        if best == "widened_resource":
            best = "widened_constraint"
    return best


def check_root(root: Link) -> None:
    """A chain's first link names no parent, and its subject is its issuer."""
    if not root.is_root or root.issuer != root.subject:
        raise CapabilityDenied("the first link is not a root (it names a parent, or its "
                               "subject is not its issuer)", code="root_invalid")


def check_linkage(parent: Link, link: Link) -> None:
    """``link`` names ``parent`` by id, and its issuer is the parent's audience."""
    if link.parent != parent.id:
        raise CapabilityDenied("a link does not name the link before it as its parent",
                               code="broken_chain")
    if not crypto.equal(link.issuer, parent.audience):
        raise CapabilityDenied("a link's issuer is not its parent's audience",
                               code="issuer_mismatch")


def signature_ok(link: Link) -> bool:
    """Whether ``link`` is signed by its issuer (remembered by the exact bytes)."""
    return _signature_ok(link.issuer, link.payload, link.signature)


def _check_hop(parent: Link, link: Link) -> None:
    """The rules between a link and its parent that need no signature or clock."""
    check_linkage(parent, link)
    if link.subject != parent.subject:
        raise CapabilityDenied("a link's subject differs from its parent's",
                               code="subject_mismatch")
    if not link.budget < parent.budget:
        raise CapabilityDenied(f"a link's budget {link.budget} is not below its "
                               f"parent's {parent.budget}", code="depth_exceeded")
    for grant in link.grants:
        code = _widening(grant, parent.grants)
        if code is not None:
            raise CapabilityDenied(f"grant on {grant.resource!r} is wider than its "
                                   f"parent allows", code=code)
    if link.not_before < parent.not_before or link.expires > parent.expires:
        raise CapabilityDenied("a link's validity window is not within its parent's",
                               code="widened_time")


def verify_chain(
    chain: bytes | Iterable[Link],
    anchors: Mapping[Any, str],
    *,
    now: int,
    skew: int = DEFAULT_SKEW,
    revoked: Callable[[bytes], bool] | None = None,
    holder: PeerKey | None = None,
    request: Request | None = None,
) -> tuple[Link, ...]:
    """Verify a chain and, if given, the holder and the request; return the links.

    ``anchors`` maps each trusted root key (agent id or :class:`PeerKey`) to the resource
    namespace it may grant (``"**"``: everything). ``now`` is the verifier's clock in
    seconds, ``skew`` the tolerance (0 to 300). ``revoked`` says whether a link id is
    revoked. ``holder`` is the authenticated peer presenting the chain: the leaf's
    audience must be that key.
    """
    if type(now) is not int or not 0 <= now <= MAX_TIME:
        raise InvalidArgument("now is a non-negative integer number of seconds")
    if type(skew) is not int or not 0 <= skew <= MAX_SKEW:
        raise InvalidArgument(f"skew is an integer from 0 to {MAX_SKEW}")
    roots = {_key(key): parse_resource(space) for key, space in anchors.items()}
    if type(chain) is bytes:
        links = decode_chain(chain)
    elif isinstance(chain, list | tuple) and all(isinstance(x, Link) for x in chain):
        # Links given as objects are read again from their signed bytes: a field edited
        # on the object must not count.
        links = tuple(_parse_payload(x.payload, x.signature) for x in chain)
    else:
        raise InvalidArgument("a chain is bytes or a sequence of Link")
    if not links or len(links) > MAX_LINKS:
        raise CapabilityDenied(f"a chain has 1 to {MAX_LINKS} links", code="chain_too_long")
    # 1. The root and its anchor.
    root = links[0]
    check_root(root)
    namespace = roots.get(root.issuer)
    if namespace is None:
        raise CapabilityDenied("the root issuer is not a trust anchor",
                               code="untrusted_root")
    for grant in root.grants:
        if not pattern_within(grant.segments, namespace):
            raise CapabilityDenied(f"root grant on {grant.resource!r} is outside the "
                                   f"anchor's namespace", code="root_scope")
    # 2. Linkage, narrowing and windows, hop by hop; duplicates.
    seen = {root.id}
    for parent, link in itertools.pairwise(links):
        if link.id in seen:
            raise CapabilityDenied("the same link appears twice", code="duplicate_link")
        seen.add(link.id)
        _check_hop(parent, link)
    # 3. Revocation.
    if revoked is not None:
        for link in links:
            if revoked(link.id):
                raise CapabilityDenied("a link of the chain was revoked", code="revoked")
    # 4. Time, on every link.
    for link in links:
        if now + skew < link.not_before:
            raise CapabilityDenied("a link is not valid yet", code="not_yet_valid")
        if now - skew >= link.expires:
            raise CapabilityDenied("a link has expired", code="expired")
    # 5. Signatures: each link by its issuer (the parent's audience, checked above).
    for link in links:
        if not signature_ok(link):
            raise AuthenticationError("a link's signature does not verify",
                                      code="bad_signature")
    # 6. The holder and the request.
    leaf = links[-1]
    if holder is not None and not crypto.equal(leaf.audience, holder.public_bytes):
        raise CapabilityDenied("the chain was issued to another agent",
                               code="holder_mismatch")
    if request is not None and not any(g.allows(request) for g in leaf.grants):
        raise CapabilityDenied("no grant of the chain allows the request",
                               code="not_authorized")
    return links

"""Capability chains: signed links, root first, each narrowing its parent (spec 10.4-10.6).

A link says: *issuer* lets *audience* do what *grants* allow, within a validity window, for
the namespace of *subject* (the root issuer), under the link named *parent*; *budget* says
how many more delegations may follow. On the wire a link is compact: a root carries its
issuer, and every other link takes its issuer (the parent's audience), its parent id and
its subject from the links before it. Those implicit fields are still signed: the issuer
signs a domain-separated context, the parent's id and the exact payload bytes. The link id
hashes the parent's id and the payload (not the signature), so a re-encoded signature
cannot make a "new" link that escapes revocation.

:func:`verify_chain` checks, cheapest first: sizes and counts (before any hashing or
signature), the root and its anchor, every hop's narrowing and windows, revocation, time,
the signatures, the holder, and the request.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NamedTuple

from .. import audit, crypto, wire
from ..errors import (
    AuthenticationError,
    CapabilityDenied,
    DecodeError,
    InvalidArgument,
    Refusal,
    RemoteError,
)
from ..identity import Identity, PeerKey, format_agent_id, peer_key
from ..verdict import ask
from .grants import (
    Grant,
    Request,
    actions_text,
    actions_within,
    clear_memos,
    closure_gap,
    constraint_within,
    parse_resource,
    pattern_within,
    shortfall,
)

__all__ = [
    "DEFAULT_SKEW",
    "LINK_CONTEXT",
    "LINK_ID_CONTEXT",
    "MAX_CHAIN_BYTES",
    "MAX_LINKS",
    "NO_PARENT",
    "Link",
    "check_root",
    "clear_caches",
    "decode_chain",
    "delegate",
    "encode_chain",
    "parse_links",
    "signature_ok",
    "trust_roots",
    "verify_chain",
]

VERSION: Final = 1
LINK_CONTEXT: Final = b"agentauth v1 capability link\x00"
LINK_ID_CONTEXT: Final = b"agentauth v1 capability link id\x00"
NO_PARENT: Final = bytes(32)  # the parent id a root signs and hashes
MAX_LINKS: Final = 9  # a root and at most 8 delegations
MAX_CHAIN_BYTES: Final = 8192
MAX_LINK_BYTES: Final = 2048
MAX_GRANTS: Final = 16
MAX_BUDGET: Final = 16
MAX_TIME: Final = 2**53 - 1
DEFAULT_SKEW: Final = 60
MAX_SKEW: Final = 300
NONCE_LEN: Final = 16
_SIG = crypto.SIGNATURE_LEN
_ROOT_FIELDS = 7  # [issuer, audience, grants, not_before, expires, budget, nonce]
_LINK_FIELDS = 6  # the same without the issuer


class Link(NamedTuple):
    """One signed link (an immutable record). Build links with :func:`delegate`; read them
    with :func:`decode_chain`. ``issuer``, ``subject`` and ``parent`` of a delegated link
    come from the links before it (they are signed, not sent)."""

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

    @property
    def data(self) -> bytes:
        """The link as a chain carries it: the payload, then the 64-byte signature."""
        return self.payload + self.signature


def well_formed(links: Iterable[object]) -> bool:
    """Whether every item is a Link whose signed bytes are bytes (not an edited object)."""
    return all(isinstance(x, Link) and type(x.payload) is bytes
               and type(x.signature) is bytes for x in links)


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

    Under a parent, ``issuer`` must be the parent's audience, and the link is checked as a
    verifier would check it against its parent (so a widening child cannot even be made);
    ``budget`` is how many delegations may follow it.
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
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    if type(nonce) is not bytes or len(nonce) != NONCE_LEN:
        raise InvalidArgument(f"the nonce is {NONCE_LEN} bytes")
    fields = [peer_key(audience).public_bytes, [g.to_wire() for g in grants], not_before,
              expires, budget, nonce]
    if parent is None:
        fields.insert(0, issuer.public_bytes)
    elif not crypto.equal(issuer.public_bytes, parent.audience):
        raise InvalidArgument("only the parent's audience can delegate under it")
    payload = wire.encode_value(fields)
    if len(payload) > MAX_LINK_BYTES:
        raise InvalidArgument(f"the link is over {MAX_LINK_BYTES} bytes")
    parent_id = parent.id if parent is not None else NO_PARENT
    signature = issuer.sign(LINK_CONTEXT + parent_id + payload)
    link = _parse_link(payload + signature, parent)
    if parent is not None:
        try:
            _check_hop(parent, link, remember=False)
        except CapabilityDenied as exc:  # the caller asked for it: a local error
            why = "" if exc.refusal is None else f"; {exc.refusal}"
            raise InvalidArgument(f"{exc.message} ({exc.code}{why})") from None
    return link


# ------------------------------------------------------------------ encoding


def encode_chain(links: Iterable[Link]) -> bytes:
    """The wire form of a chain, root first: ``[1, link, link, ...]``, each link the bytes
    ``payload || signature``."""
    return wire.encode_value([VERSION, *(link.data for link in links)])


def decode_chain(data: bytes) -> tuple[Link, ...]:
    """Decode a chain strictly: sizes and the link count first, then every payload.

    Nothing is verified here beyond the form (see :func:`verify_chain`).
    """
    if type(data) is not bytes:
        raise InvalidArgument("a chain is bytes")
    items = wire.decode_array(data, MAX_CHAIN_BYTES, "chain")
    if not items or type(items[0]) is not int:
        raise DecodeError("a chain is [version, link, ...]", code="malformed")
    if items[0] != VERSION:
        raise DecodeError(f"chain version {items[0]} is not {VERSION}", code="unknown_field")
    return parse_links(items[1:])


def parse_links(items: list[Any]) -> tuple[Link, ...]:
    """The links of a decoded list of link byte strings (a chain, or a revocation notice's
    path), root first: the count is checked before any payload is parsed, and each link is
    read in the place its position gives it (issuer, parent and subject from before)."""
    if not items:
        raise DecodeError("a chain has at least one link", code="malformed")
    if len(items) > MAX_LINKS:
        raise CapabilityDenied(f"the chain has {len(items)} links, over {MAX_LINKS}",
                               code="chain_too_long")
    links: list[Link] = []
    parent: Link | None = None
    for item in items:
        if type(item) is not bytes:
            raise DecodeError("a link is a byte string", code="malformed")
    batch: tuple[list[bytes], list[list[Any]]] | None = None
    first = -1  # the index of the first link not seen before
    for k, item in enumerate(items):
        if parent is None:
            parent_id = issuer = subject = b""
        else:
            parent_id, issuer, subject = parent.id, parent.audience, parent.subject
        key = (item, parent_id)
        link = _links_seen.get(key)
        if link is None:
            if first < 0:
                # All the links not seen yet are decoded in one pass when they are all
                # well formed; otherwise each is decoded in its place, naming the fault.
                first = k
                batch = wire.decode_arrays(items[k:], _SIG, MAX_LINK_BYTES)
            if batch is None:
                link = _parse(item, parent_id, issuer, subject)
            else:
                link = _build(item, batch[0][k - first], batch[1][k - first], parent_id,
                              issuer, subject)
            if len(_links_seen) >= _CACHE_SIZE:
                _links_seen.clear()
            _links_seen[key] = link
        links.append(link)
        parent = link
    return tuple(links)


# Chains are presented again and again (each request carries one), so a verifier keeps
# what it learnt from link bytes it has seen: the parsed link (by its bytes and its
# parent's id, which fixes the parent's audience and the chain's subject), the parsed
# grants (by their bytes), and which links' signatures verified (by issuer, parent id,
# payload and signature: exactly what the signature covers). All are pure functions of
# exact bytes, so they cannot be poisoned; time, revocation, holder and request are
# checked on every use regardless. Failures are never kept. Each memo is emptied when it
# reaches its bound.
_CACHE_SIZE = 4096
_links_seen: dict[tuple[bytes, bytes], Link] = {}
_grants_seen: dict[bytes, tuple[Grant, ...]] = {}
_verified: set[tuple[bytes, bytes, bytes, bytes]] = set()
# Hops found narrowing, by the child link's id: the id commits to the child's payload and,
# through its parent's id, to every link above, so it fixes both links' grants, budgets
# and windows, all that _check_hop reads. A verifier sees the same chain on every request;
# this spares it the narrowing of every constraint of every hop (test_chain.py,
# test_a_hop_found_narrowing_is_remembered_by_its_link_id).
_hops_within: set[bytes] = set()


@functools.lru_cache(maxsize=256)
def _namespace(space: str) -> tuple[str, ...]:
    return parse_resource(space)


def trust_roots(anchors: Mapping[Any, str]) -> dict[bytes, tuple[str, ...]]:
    """Read ``anchors``, a mapping of each trusted root key (an agent id, a
    :class:`PeerKey`, an :class:`Identity` or 32 raw bytes) to the resource namespace it may
    grant; a value of any other shape is refused with a typed error (``invalid_argument``).
    Every API that takes anchors reads them here."""
    if not isinstance(anchors, Mapping):
        raise InvalidArgument(f"anchors map each trusted root key to a namespace, not a "
                              f"{type(anchors).__name__}")
    roots: dict[bytes, tuple[str, ...]] = {}
    for key, space in anchors.items():
        if type(space) is not str:
            raise InvalidArgument("an anchor's namespace is a string, such as 'fs/**'")
        root = key if type(key) is bytes and len(key) == 32 else peer_key(key).public_bytes
        roots[root] = _namespace(space)
    return roots


def clear_caches() -> None:
    """Forget every link seen (for measuring cold verification, or to free memory)."""
    _links_seen.clear()
    _grants_seen.clear()
    _verified.clear()
    _hops_within.clear()
    clear_memos()


_EVERYTHING: Final = ("**",)
_grant_from_wire = Grant.from_wire
_new_link = tuple.__new__
_blake2b = crypto.Blake2b


def _int_len(value: int) -> int:
    """The length of a non-negative integer in canonical msgpack."""
    return 1 if value < 0x80 else 2 if value < 0x100 else 3 if value < 0x10000 else (
        5 if value < 0x100000000 else 9)


def _parse_link(data: bytes, parent: Link | None) -> Link:
    if parent is None:
        return _parse(data, b"", b"", b"")
    return _parse(data, parent.id, parent.audience, parent.subject)


def _parse(data: bytes, parent_id: bytes, issuer: bytes, subject: bytes) -> Link:
    """Read one link; ``parent_id`` is empty for the first link of a chain."""
    size = len(data)
    if size > MAX_LINK_BYTES:
        raise DecodeError(f"a link is over {MAX_LINK_BYTES} bytes", code="oversize")
    if size <= _SIG:
        raise DecodeError("a link is its payload and a 64-byte signature", code="malformed")
    payload = data[:-_SIG]
    return _build(data, payload, wire.decode_array(payload, MAX_LINK_BYTES, "link"),
                  parent_id, issuer, subject)


def _build(data: bytes, payload: bytes, fields: list[Any], parent_id: bytes, issuer: bytes,
           subject: bytes) -> Link:
    """A link from its payload, decoded as ``fields`` (canonical): the schema's checks."""
    size = len(data)
    count = len(fields)
    if count == _LINK_FIELDS and parent_id:  # the common case, first
        audience, grants, nbf, exp, budget, nonce = fields
        start = 35
    elif count == _ROOT_FIELDS:
        if parent_id:
            raise CapabilityDenied("a root link appears inside a chain", code="root_invalid")
        issuer, audience, grants, nbf, exp, budget, nonce = fields
        subject, start = issuer, 69
        if type(issuer) is not bytes or len(issuer) != 32:
            raise DecodeError("a root's issuer is a 32-byte key", code="malformed")
    elif count == _LINK_FIELDS:
        if not parent_id:
            raise CapabilityDenied("the first link is not a root", code="root_invalid")
        audience, grants, nbf, exp, budget, nonce = fields
        start = 35
    elif count > _ROOT_FIELDS:
        raise DecodeError("a link has unknown fields", code="unknown_field")
    else:
        raise DecodeError("a link is missing fields", code="malformed")
    if type(audience) is not bytes or len(audience) != 32:
        raise DecodeError("a link's audience is a 32-byte key", code="malformed")
    if type(nonce) is not bytes or len(nonce) != NONCE_LEN:
        raise DecodeError(f"a link nonce is {NONCE_LEN} bytes", code="malformed")
    if (type(nbf) is not int or type(exp) is not int or type(budget) is not int
            or not 0 <= nbf < exp <= MAX_TIME or not 0 <= budget <= MAX_BUDGET):
        raise DecodeError("a link's times are integers with not_before < expires, and its "
                          f"budget an integer from 0 to {MAX_BUDGET}", code="malformed")
    # The grants' exact bytes: the payload was just found canonical, so they sit between
    # the keys (34 bytes each, after the 1-byte array header) and the four last fields.
    # (Unix times take 5 bytes until 2106; a budget, at most 16, takes 1.)
    end = size - (_SIG + NONCE_LEN + 3 + (5 if 0xFFFF < nbf <= 0xFFFFFFFF else _int_len(nbf))
                  + (5 if 0xFFFF < exp <= 0xFFFFFFFF else _int_len(exp)))
    raw = payload[start:end]
    parsed = _grants_seen.get(raw)
    if parsed is None:
        if type(grants) is not list or not 0 < len(grants) <= MAX_GRANTS:
            raise DecodeError(f"a link carries 1 to {MAX_GRANTS} grants", code="malformed")
        parsed = ((_grant_from_wire(grants[0]),) if len(grants) == 1 else
                  tuple([_grant_from_wire(g) for g in grants]))
        if len(_grants_seen) >= _CACHE_SIZE:
            _grants_seen.clear()
        _grants_seen[raw] = parsed
    return _new_link(Link, (payload, data[-_SIG:], issuer, audience, subject, parent_id,
                            parsed, nbf, exp, budget, nonce,
                            _blake2b(LINK_ID_CONTEXT + (parent_id or NO_PARENT) + payload,
                                     digest_size=32).digest()))


# ------------------------------------------------------------------ verification


def _widening(child: Grant, parents: tuple[Grant, ...]) -> tuple[str, Refusal] | None:
    """None if ``child`` is within some parent grant, else the code and the refusal for
    the first dimension that fails against the nearest parent grant (spec 10.6 step 3):
    ``widened_resource`` when no parent's pattern covers the child's; else
    ``widened_action`` against the first covering parent whose actions do not cover the
    child's, if any; else ``widened_constraint`` against the first covering parent, named
    by its first constraint (by argument name) that the child drops or relaxes, or else
    by the argument the child adds to (or the open world it lets into) a closed parent.

    A pattern or action set that is the parent's very object (the parse memos hand out one
    object per value) is within it without a walk: each is within itself."""
    code = "widened_resource"
    nearest: Grant | None = None
    segments, actions, mine = child.segments, child.actions, child.constraints
    for parent in parents:
        if segments is not parent.segments and not pattern_within(segments,
                                                                  parent.segments):
            continue
        if actions is not parent.actions and not actions_within(actions, parent.actions):
            if code != "widened_action":
                code, nearest = "widened_action", parent
            continue
        for name, bound in parent.constraints.items():
            constraint = mine.get(name)
            if constraint is None or not constraint_within(constraint, bound):
                break
        else:
            if closure_gap(child, parent) is None:
                return None
        if code == "widened_resource":
            code, nearest = "widened_constraint", parent
    return code, _widened(child, parents, nearest, code)


def _widened(child: Grant, parents: tuple[Grant, ...], nearest: Grant | None,
             code: str) -> Refusal:
    """The refusal :func:`_widening` found, in words (the refusal path only)."""
    if nearest is None:
        within = " or ".join(repr(p.resource) for p in parents)
        return Refusal("resource", rule=f"a pattern within {within}", value=child.resource)
    if code == "widened_action":
        return Refusal("action", rule=f"actions within {actions_text(nearest.actions)}",
                       value=actions_text(child.actions))
    for argument, bound in nearest.constraints.items():
        constraint = child.constraints.get(argument)
        if constraint is None:
            return Refusal("missing_argument", argument=argument,
                           rule=f"a constraint within {bound!r}")
        if not constraint_within(constraint, bound):
            return Refusal("argument", argument=argument,
                           rule=f"a constraint within {bound!r}", value=repr(constraint))
    gap = closure_gap(child, nearest)
    rule = f"a closed grant naming only {', '.join(nearest.constraints)}"
    if not gap:
        return Refusal("extra_argument", rule=rule, value="open-world")
    return Refusal("extra_argument", argument=gap, rule=rule)


def check_root(root: Link) -> None:
    """A chain's first link is a root (it names no parent)."""
    if not root.is_root:
        raise CapabilityDenied("the first link is not a root", code="root_invalid")


def signature_ok(link: Link) -> bool:
    """Whether ``link`` is signed by its issuer, over its parent's id and its payload
    (remembered by the exact bytes)."""
    key = (link.issuer, link.parent, link.payload, link.signature)  # the message's parts
    if key in _verified:
        return True
    message = LINK_CONTEXT + (link.parent or NO_PARENT) + link.payload
    if not crypto.ed25519_verify(link.issuer, message, link.signature):
        return False
    if len(_verified) >= _CACHE_SIZE:
        _verified.clear()
    _verified.add(key)
    return True


def _check_hop(parent: Link, link: Link, links: tuple[Link, ...] = (), *,
               remember: bool = True) -> None:
    """The rules between a link and its parent that need no signature or clock (the
    issuer, parent id and subject are the parent's by construction); ``links`` is the
    chain, which a refusal names the link's place in (found only once refused).
    ``remember=False``: the parent is the caller's object, not read from bytes here (its
    fields could have been edited), so the hop is checked but not remembered."""
    if remember and link.id in _hops_within:
        return
    if not link.budget < parent.budget:
        index = links.index(link) if links else None
        raise CapabilityDenied(
            f"a link's budget {link.budget} is not below its parent's {parent.budget}",
            code="depth_exceeded", refusal=Refusal(
                "budget", index, rule=f"a budget below {parent.budget}", value=link.budget))
    for grant in () if link.grants is parent.grants else link.grants:  # same bytes: within
        widened = _widening(grant, parent.grants)
        if widened is not None:
            code, refusal = widened
            index = links.index(link) if links else None
            raise CapabilityDenied(
                f"grant on {grant.resource!r} is wider than its parent allows", code=code,
                refusal=dataclasses.replace(refusal, link=index, grant=next(
                    i for i, g in enumerate(link.grants) if g is grant)))
    if link.not_before < parent.not_before or link.expires > parent.expires:
        bound = "not_before" if link.not_before < parent.not_before else "expires"
        index = links.index(link) if links else None
        raise CapabilityDenied(
            "a link's validity window is not within its parent's", code="widened_time",
            refusal=Refusal("window", index,
                            rule=f"{bound} within {parent.not_before}..{parent.expires}",
                            value=getattr(link, bound)))
    if not remember:
        return
    if len(_hops_within) >= _CACHE_SIZE:
        _hops_within.clear()
    _hops_within.add(link.id)


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
    revoked: a link passes only on exactly ``False`` (spec 7.1); ``True`` is ``revoked``,
    any other answer or an exception ``invalid_argument``. ``holder`` is the authenticated
    peer presenting the chain: the leaf's audience must be that key.

    A refusal from the anchor on is a :class:`~agentauth.CapabilityDenied` whose
    ``refusal`` names the rule broken, the link and grant at fault (for a request no grant
    allows, the grant that came nearest) and what was found (spec 10.6, Refusals).
    """
    try:
        links = _verify_chain(chain, anchors, now, skew, revoked, holder, request)
    except RemoteError as exc:
        if audit.enabled("token_refused"):
            where = exc.refusal.for_peer() if isinstance(exc, CapabilityDenied) and (
                exc.refusal is not None) else {}
            audit.emit("token_refused", code=exc.code,
                       holder=None if holder is None else holder.agent_id,
                       resource=None if request is None else request.resource, **where)
        raise
    if audit.enabled("token_verified"):
        audit.emit("token_verified", root=format_agent_id(links[0].issuer),
                   holder=format_agent_id(links[-1].audience), links=len(links),
                   leaf=links[-1].id.hex(),
                   resource=None if request is None else request.resource,
                   action=None if request is None else request.action)
    return links


def _verify_chain(chain: bytes | Iterable[Link], anchors: Mapping[Any, str], now: int,
                  skew: int, revoked: Callable[[bytes], bool] | None,
                  holder: PeerKey | None, request: Request | None) -> tuple[Link, ...]:
    # The checks of verify_chain, in the order and by the step numbers of spec 10.6.
    if type(now) is not int or not 0 <= now <= MAX_TIME:
        raise InvalidArgument("now is a non-negative integer number of seconds")
    if type(skew) is not int or not 0 <= skew <= MAX_SKEW:
        raise InvalidArgument(f"skew is an integer from 0 to {MAX_SKEW}")
    roots = trust_roots(anchors)
    # 1. Sizes and the link count, then each payload's form in its position.
    if type(chain) is bytes:
        links = decode_chain(chain)
    elif isinstance(chain, list | tuple) and not isinstance(chain, Link) and well_formed(
            chain):
        # Links given as objects are read again from their signed bytes: a field edited
        # on the object must not count.
        links = parse_links([x.data for x in chain]) if chain else ()
    else:
        raise InvalidArgument("a chain is bytes or a sequence of Link")
    if not links or len(links) > MAX_LINKS:
        raise CapabilityDenied(f"a chain has 1 to {MAX_LINKS} links", code="chain_too_long")
    # 2. The root and its anchor. (That the first link is a root, and only it, step 1
    # has checked: each link was just read in its place.)
    root = links[0]
    namespace = roots.get(root.issuer)
    if namespace is None:
        raise CapabilityDenied("the root issuer is not a trust anchor", code="untrusted_root",
                               refusal=Refusal("anchor", 0, rule="a trust anchor as issuer",
                                               value=format_agent_id(root.issuer)))
    for grant in () if namespace == _EVERYTHING else root.grants:  # "**" holds them all
        if not pattern_within(grant.segments, namespace):
            raise CapabilityDenied(
                f"root grant on {grant.resource!r} is outside the anchor's namespace",
                code="root_scope", refusal=Refusal(
                    "resource", 0, root.grants.index(grant),
                    rule=f"a pattern within the anchor's namespace {'/'.join(namespace)!r}",
                    value=grant.resource))
    # 3. Narrowing, depth and windows, hop by hop. (Ids chain through their parents, so
    # no link can appear twice.)
    for parent, link in itertools.pairwise(links):
        _check_hop(parent, link, links)
    # 4. Revocation.
    if revoked is not None:  # exactly False passes (spec 7.1); None, 0 or "" do not
        for link in links:
            if not ask("revoked callback", False, revoked, link.id):
                raise CapabilityDenied("a link of the chain was revoked", code="revoked",
                                       refusal=Refusal("revoked", links.index(link),
                                                       value=link.id.hex()))
    # 5. Time, on every link.
    for link in links:
        if now + skew < link.not_before or now - skew >= link.expires:
            raise _outside_window(links.index(link), link, now, skew)
    # 6. Signatures: each link by its issuer (the parent's audience: a link moved under
    # another parent, or signed by anyone else, fails here).
    for link in links:
        if not signature_ok(link):
            raise AuthenticationError("a link's signature does not verify",
                                      code="bad_signature")
    # 7. The holder.
    leaf = links[-1]
    if holder is not None and not crypto.equal(leaf.audience, holder.public_bytes):
        raise CapabilityDenied("the chain was issued to another agent", code="holder_mismatch",
                               refusal=Refusal("holder", len(links) - 1, rule=(
                                   f"the audience {format_agent_id(leaf.audience)}"),
                                               value=holder.agent_id))
    # 8. The request.
    if request is not None:
        for grant in leaf.grants:
            if grant.allows(request):
                break
        else:
            raise CapabilityDenied("no grant of the chain allows the request",
                                   code="not_authorized",
                                   refusal=nearest_miss(leaf.grants, request, len(links) - 1))
    return links


def _outside_window(index: int, link: Link, now: int, skew: int) -> CapabilityDenied:
    """The refusal of a link whose validity window ``now`` (give or take ``skew``) is
    outside (spec 10.6 step 5)."""
    if now + skew < link.not_before:
        return CapabilityDenied("a link is not valid yet", code="not_yet_valid",
                                refusal=Refusal("window", index, rule=(
                                    f"a time from not_before {link.not_before} - skew "
                                    f"{skew}"), value=now))
    return CapabilityDenied("a link has expired", code="expired", refusal=Refusal(
        "window", index, rule=f"a time before expires {link.expires} + skew {skew}",
        value=now))


def nearest_miss(grants: tuple[Grant, ...], request: Request, index: int) -> Refusal | None:
    """Why none of ``grants`` (of the link at ``index``) allows ``request``: the first
    check that fails of the grant that came nearest, the one that passed the most checks
    in the fixed order of :func:`~agentauth.capability.grants.shortfall` (the first such
    grant on a tie). Only the refusal path calls this."""
    best: tuple[int, int, Refusal] | None = None
    for position, grant in enumerate(grants):
        found = shortfall(grant, request)
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], position, found[1])
    if best is None:  # the fast path and shortfall disagree: a bug, but still a refusal
        return None
    return dataclasses.replace(best[2], link=index, grant=best[1])

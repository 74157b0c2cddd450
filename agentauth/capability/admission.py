"""Admitting peers by what they hold: a capability chain presented in the handshake.

For edge deployments without an identity provider: an offline root key delegates chains to
agents; each agent puts its chain in a handshake extension, and each side admits the other
only if that chain is rooted at one of its anchors, was issued to exactly the peer that
just authenticated, and allows a given request (say, ``mesh/peers`` with ``connect``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from ..errors import CapabilityDenied, InvalidArgument, Refusal
from ..identity import PeerKey
from ..verdict import check_callback, moment
from .chain import DEFAULT_SKEW, trust_roots, verify_chain
from .grants import Request

__all__ = ["CREDENTIAL_EXTENSION", "admission"]

#: The handshake extension that carries a capability chain.
CREDENTIAL_EXTENSION: Final = "agentauth.cap"


def admission(
    anchors: Mapping[Any, str],
    request: Request,
    *,
    skew: int = DEFAULT_SKEW,
    revoked: Callable[[bytes], bool] | None = None,
    clock: Callable[[], float] = time.time,
    extension: str = CREDENTIAL_EXTENSION,
) -> Callable[[PeerKey, Mapping[str, bytes]], bool]:
    """A ``credentials`` check for :class:`~agentauth.HandshakePolicy`.

    It returns True for a peer whose chain verifies (with that peer as holder) and allows
    ``request``; otherwise it raises the chain's error, so the handshake fails with the
    reason (``not_authorized`` when no chain was presented).
    """
    if not isinstance(request, Request):
        raise InvalidArgument("request is a Request")
    trust_roots(anchors)  # a bad shape is refused now, not at the first handshake
    check_callback(revoked, "revoked callback")
    trusted = dict(anchors)

    def check(peer: PeerKey, extensions: Mapping[str, bytes]) -> bool:
        chain = extensions.get(extension)
        if chain is None:
            raise CapabilityDenied(f"the peer presented no {extension!r} credential",
                                   code="not_authorized", refusal=Refusal(
                                       "no_chain", rule=f"a chain in {extension!r}"))
        verify_chain(chain, trusted, now=int(moment(clock())), skew=skew, revoked=revoked,
                     holder=peer, request=request)
        return True

    return check

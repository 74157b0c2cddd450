"""Capability chains on HTTP requests (spec 13.6).

The request carries, in the ``Agentauth-Capability`` header (a structured-field byte
sequence), a session-style invocation (spec 10.7) whose channel binding is
:func:`~agentauth.http.profile.invocation_binding` of the request signature's
``@signature-params``, and the signature covers that header. The invocation therefore
names this one signature (its nonce, time and key), and the signature vouches for the
invocation: lifted onto another request it names the wrong binding (``wrong_request``),
and signed by anyone but the chain's holder it fails ``holder_mismatch``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ..capability.chain import Link
from ..capability.grants import Request
from ..capability.invocation import SessionInvocations, invoke
from ..errors import AuthenticationError, CapabilityDenied, InvalidArgument, Refusal
from ..verdict import answer
from .components import HTTPMessage, component_id, parse_bytes
from .profile import CAPABILITY_HEADER, REQUEST_COMPONENTS, VerifiedRequest, invocation_binding

__all__ = ["ResourceOf", "check_capability", "default_resource", "invocation_for"]

_TARGET_IDS = tuple(component_id((name, {})) for name in REQUEST_COMPONENTS)

#: Maps a request's method and path to the capability request it needs.
ResourceOf = Callable[[str, str], Request]


def default_resource(method: str, path: str) -> Request:
    """The path without its leading slash is the resource, the method in lower case the
    action: ``GET /reports/q3`` needs ``Request("reports/q3", "get")``. A path with an
    empty segment (``/``, a trailing slash, ``//``) or an escape (``%2F``, ``%2E``) names
    no resource: ``not_authorized``, so that no spelling of a path the app may route
    elsewhere passes for a granted one."""
    if not path.startswith("/") or path.endswith("/") or "//" in path:
        raise CapabilityDenied("the path is not a capability resource: it has an empty "
                               "segment", code="not_authorized", refusal=_no_resource(path))
    try:
        return Request(path[1:], method.lower())
    except InvalidArgument as exc:
        raise CapabilityDenied(f"the path is not a capability resource: {exc.message}",
                               code="not_authorized", refusal=_no_resource(path)) from None


def _no_resource(path: str) -> Refusal:
    return Refusal("request", rule="a path whose segments name a resource (spec 10.1)",
                   value=path[:80])


def invocation_for(chain: bytes, request: Request) -> Callable[[bytes], bytes]:
    """What :meth:`Signer.sign_request` takes to carry ``chain`` for ``request``."""
    if type(chain) is not bytes or not isinstance(request, Request):
        raise InvalidArgument("chain is bytes and request a Request")

    def build(binding: bytes) -> bytes:
        return invoke(chain, request, channel_binding=binding)

    return build


def check_capability(message: HTTPMessage, verified: VerifiedRequest,
                     anchors: Mapping[Any, str], *,
                     resource_of: ResourceOf = default_resource,
                     revoked: Callable[[bytes], bool] | None = None,
                     clock: Callable[[], float] = time.time,
                     ) -> tuple[Request, tuple[Link, ...]] | None:
    """Check the capability a verified request carries, if any; return the invocation's
    request and the chain. The invocation's resource and action must be the ones this
    HTTP request maps to (``not_authorized``); ``resource_of`` is called through
    :func:`agentauth.verdict.answer` (an exception or an awaitable from it is
    ``invalid_argument``)."""
    # Step 8 of spec 13.4; the checks of 13.6 in its order: coverage, the binding, the
    # chain with the signer as holder, then the request this HTTP request maps to.
    value = message.field(CAPABILITY_HEADER)
    if value is None:
        return None
    if f'"{CAPABILITY_HEADER}"' not in verified.covered:
        raise CapabilityDenied("the capability header is not covered by the signature",
                               code="wrong_request")
    for ident in _TARGET_IDS:  # what the invocation is checked against must be signed
        if ident not in verified.covered:
            raise AuthenticationError(f"a request with a capability covers {ident}",
                                      code="uncovered_component")
    invocation = parse_bytes(value, "capability")
    checker = SessionInvocations(anchors, peer=verified.peer,
                                 channel_binding=invocation_binding(verified.params_value),
                                 revoked=revoked, clock=clock)
    try:
        request, links = checker.check(invocation)
    except CapabilityDenied as exc:
        if exc.code == "wrong_session":
            raise CapabilityDenied("the invocation is bound to another request",
                                   code="wrong_request") from None
        raise
    wanted = answer("resource_of", resource_of, message.method, message.path)
    made = f"{request.action} on {request.resource!r}"
    if not isinstance(wanted, Request):
        raise CapabilityDenied("resource_of maps this request to no capability request",
                               code="not_authorized", refusal=Refusal(
                                   "request", rule="a request resource_of names", value=made))
    if request.resource != wanted.resource or request.action != wanted.action:
        raise CapabilityDenied(f"the invocation is for {made}, not this request",
                               code="not_authorized", refusal=Refusal(
                                   "request", rule=f"{wanted.action} on {wanted.resource!r}",
                                   value=made))
    return request, links

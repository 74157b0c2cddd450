"""Capability tokens: grants, their narrowing rule, chains of signed links, invocations,
and revocation notices (the stores that keep them are in :mod:`agentauth.stores`)."""

from ..errors import REFUSAL_KINDS, Refusal
from .admission import CREDENTIAL_EXTENSION, admission
from .chain import Link, decode_chain, delegate, encode_chain, verify_chain
from .grants import ANY_ACTION, Eq, Grant, OneOf, Prefix, Range, Request
from .invocation import DetachedInvocations, SessionInvocations, invoke
from .revocation import Notice, RevocationStore, revoke, verify_notice

__all__ = [
    "ANY_ACTION",
    "CREDENTIAL_EXTENSION",
    "REFUSAL_KINDS",
    "DetachedInvocations",
    "Eq",
    "Grant",
    "Link",
    "Notice",
    "OneOf",
    "Prefix",
    "Range",
    "Refusal",
    "Request",
    "RevocationStore",
    "SessionInvocations",
    "admission",
    "decode_chain",
    "delegate",
    "encode_chain",
    "invoke",
    "revoke",
    "verify_chain",
    "verify_notice",
]

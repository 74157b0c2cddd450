"""Capability tokens: grants, their narrowing rule, chains of signed links, invocations,
and revocation notices (the stores that keep them are in :mod:`agentauth.stores`)."""

from ..errors import REFUSAL_KINDS, Refusal
from .admission import CREDENTIAL_EXTENSION, admission
from .chain import Link, decode_chain, delegate, encode_chain, verify_chain
from .constraints import (
    AnyOf,
    AnyValue,
    Cidr,
    Constraint,
    Contains,
    Eq,
    Length,
    NotOneOf,
    OneOf,
    Pattern,
    Prefix,
    Range,
    Subpath,
    Subset,
    Url,
)
from .grants import ANY_ACTION, Grant, Request
from .invocation import DetachedInvocations, SessionInvocations, invoke
from .revocation import Notice, RevocationStore, revoke, verify_notice

__all__ = [
    "ANY_ACTION",
    "CREDENTIAL_EXTENSION",
    "REFUSAL_KINDS",
    "AnyOf",
    "AnyValue",
    "Cidr",
    "Constraint",
    "Contains",
    "DetachedInvocations",
    "Eq",
    "Grant",
    "Length",
    "Link",
    "NotOneOf",
    "Notice",
    "OneOf",
    "Pattern",
    "Prefix",
    "Range",
    "Refusal",
    "Request",
    "RevocationStore",
    "SessionInvocations",
    "Subpath",
    "Subset",
    "Url",
    "admission",
    "decode_chain",
    "delegate",
    "encode_chain",
    "invoke",
    "revoke",
    "verify_chain",
    "verify_notice",
]

"""Capability tokens: grants, their narrowing rule, chains of signed links, invocations,
and revocation notices with their stores."""

from ..errors import REFUSAL_KINDS, Refusal
from .admission import CREDENTIAL_EXTENSION, admission
from .chain import Link, decode_chain, delegate, encode_chain, verify_chain
from .grants import ANY_ACTION, Eq, Grant, OneOf, Prefix, Range, Request
from .invocation import DetachedInvocations, SessionInvocations, invoke
from .revocation import (
    MemoryRevocationStore,
    Notice,
    RedisRevocationStore,
    RevocationStore,
    SQLiteRevocationStore,
    revoke,
    verify_notice,
)

__all__ = [
    "ANY_ACTION",
    "CREDENTIAL_EXTENSION",
    "REFUSAL_KINDS",
    "DetachedInvocations",
    "Eq",
    "Grant",
    "Link",
    "MemoryRevocationStore",
    "Notice",
    "OneOf",
    "Prefix",
    "Range",
    "RedisRevocationStore",
    "Refusal",
    "Request",
    "RevocationStore",
    "SQLiteRevocationStore",
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

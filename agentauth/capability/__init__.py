"""Capability tokens: grants, their narrowing rule, chains of signed links, invocations."""

from .chain import Link, decode_chain, delegate, encode_chain, verify_chain
from .grants import ANY_ACTION, Eq, Grant, OneOf, Prefix, Range, Request
from .invocation import DetachedInvocations, SessionInvocations, invoke

__all__ = ["ANY_ACTION", "DetachedInvocations", "Eq", "Grant", "Link", "OneOf", "Prefix",
           "Range", "Request", "SessionInvocations", "decode_chain", "delegate",
           "encode_chain", "invoke", "verify_chain"]

"""Capability tokens: grants, their narrowing rule, and chains of signed links."""

from .chain import Link, decode_chain, delegate, encode_chain, verify_chain
from .grants import ANY_ACTION, Eq, Grant, OneOf, Prefix, Range, Request

__all__ = ["ANY_ACTION", "Eq", "Grant", "Link", "OneOf", "Prefix", "Range", "Request",
           "decode_chain", "delegate", "encode_chain", "verify_chain"]

"""Capability tokens: grants and their narrowing rule (chains of signed links build on it)."""

from .grants import ANY_ACTION, Eq, Grant, OneOf, Prefix, Range, Request

__all__ = ["ANY_ACTION", "Eq", "Grant", "OneOf", "Prefix", "Range", "Request"]

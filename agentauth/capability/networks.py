"""``Url`` and ``Cidr``: network destinations an argument may name (spec 10.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .values import Kind, fail, text

__all__ = ["Cidr", "Url"]


@dataclass(frozen=True, slots=True, init=False)
class Url(Kind):
    """A URL argument within a URL pattern: ``Url("https://*.example.com/v1/")``."""

    CODE = 10
    NAME = "url"
    scheme: str
    host: str
    port: int
    path: str

    def __init__(self, pattern: str) -> None:
        text(pattern, False, "a URL pattern")
        for name, value in zip(("scheme", "host", "port", "path"), ("https", "", 443, "/"),
                               strict=True):
            object.__setattr__(self, name, value)

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is a URL within the pattern."""
        return False

    def narrows(self, parent: Url) -> bool:
        """A pattern within the parent's."""
        return False

    def value_type(self) -> type:
        """``str``."""
        return str

    def to_wire(self) -> list[Any]:
        """``[10, scheme, host, port, path]``."""
        return [self.CODE, self.scheme, self.host, self.port, self.path]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Url:
        """``[scheme, host, port, path]``."""
        if len(fields) != 4:
            raise fail(True, "a url is [10, scheme, host, port, path]")
        raise fail(True, "not yet")


@dataclass(frozen=True, slots=True)
class Cidr(Kind):
    """An IP address argument within ``network``: ``Cidr("10.0.0.0/8")``."""

    CODE = 11
    NAME = "cidr"
    network: str

    def __post_init__(self) -> None:
        text(self.network, False, "a network")

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is an address within the network."""
        return False

    def narrows(self, parent: Cidr) -> bool:
        """A network within the parent's."""
        return False

    def value_type(self) -> type:
        """``str``."""
        return str

    def to_wire(self) -> list[Any]:
        """``[11, network]``."""
        return [self.CODE, self.network]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Cidr:
        """``[network]``."""
        if len(fields) != 1:
            raise fail(True, "a cidr is [11, network]")
        return cls(text(fields[0], True, "a network"))

"""``Pattern``: a glob over a string argument, matched in linear time (spec 10.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .values import Kind, fail, text

__all__ = ["Pattern"]


@dataclass(frozen=True, slots=True)
class Pattern(Kind):
    """A string argument matching ``glob``: ``*`` any run of characters, ``?`` one."""

    CODE = 8
    NAME = "pattern"
    glob: str

    def __post_init__(self) -> None:
        text(self.glob, False, "a pattern")

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` matches the glob."""
        return False

    def narrows(self, parent: Pattern) -> bool:
        """Whether every string this glob matches the parent's matches."""
        return False

    def covers_prefix(self, prefix: str) -> bool:
        """Whether every string starting with ``prefix`` matches this glob."""
        return False

    def literal_head(self) -> str:
        """The glob's text before its first wildcard."""
        return ""

    def value_type(self) -> type:
        """``str``."""
        return str

    def to_wire(self) -> list[Any]:
        """``[8, glob]``."""
        return [self.CODE, self.glob]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Pattern:
        """``[glob]``."""
        if len(fields) != 1:
            raise fail(True, "a pattern is [8, glob]")
        return cls(text(fields[0], True, "a pattern"))

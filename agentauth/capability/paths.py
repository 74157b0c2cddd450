"""``Subpath``: a filesystem-style path argument within a root (spec 10.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .values import Kind, fail, text

__all__ = ["Subpath"]


@dataclass(frozen=True, slots=True)
class Subpath(Kind):
    """A path argument within ``root``, after the normalisation rules of spec 10.1."""

    CODE = 9
    NAME = "subpath"
    root: str

    def __post_init__(self) -> None:
        text(self.root, False, "a subpath root")

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is a path within the root."""
        return False

    def narrows(self, parent: Subpath) -> bool:
        """A root within the parent's."""
        return False

    def value_type(self) -> type:
        """``str``."""
        return str

    def to_wire(self) -> list[Any]:
        """``[9, root]``."""
        return [self.CODE, self.root]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Subpath:
        """``[root]``."""
        if len(fields) != 1:
            raise fail(True, "a subpath is [9, root]")
        return cls(text(fields[0], True, "a subpath root"))

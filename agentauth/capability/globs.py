"""``Pattern``: a glob over a string argument, matched in linear time (spec 10.1).

A glob's ``*`` matches any run of characters (possibly empty, ``/`` included), ``?``
exactly one character (one code point), and every other character itself; there are no
escapes, classes or braces, and the whole value must match.

Matching never backtracks: the glob is split on ``*`` into pieces once, when it is built;
the first piece must match at the value's start, the last at its end, and each middle
piece at its leftmost place after the one before (for globs the leftmost place is always
as good as any later one, since the ``*`` after a piece absorbs whatever it skipped). So a
match costs at most ``len(value) * len(glob)`` character comparisons, whatever the input.

Narrowing uses the same algorithm over the child's glob read as tokens (each character a
literal, a ``?`` or a ``*``): sound, not complete (spec 10.2).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .values import Kind, fail, text

__all__ = ["Pattern"]

# A piece of a glob (its text between two '*'), ready to match: the piece itself, and,
# when it holds a '?', a regular expression of fixed length for it (None: plain text, for
# which the str methods are faster). The expression has no repetition, so a search costs
# at most len(value) * len(piece) steps, as the plain text's does.
_Piece = tuple[str, re.Pattern[str] | None]


# The shapes of glob that allows decides with one str operation (any other: _GENERAL).
_EXACT, _ENDS, _HOLDS, _PLAIN, _GENERAL = range(5)
# _PLAIN: no '?', so every piece is matched by str methods without a call of ours (on
# "a*b*c" this halves the time of the general way). _ENDS: "head*tail" without '?'
# ("text*", "*text" and "report-*.pdf" alike): a length check (the ends never overlap), a
# startswith and an endswith, about 0.25 µs where _PLAIN takes 0.5 on "report-*.pdf";
# test_simple_shapes_take_one_string_operation and test_pattern_allows_is_the_plain_reading
# pin it.


def _piece(text_: str) -> _Piece:
    if "?" not in text_:
        return text_, None
    return text_, re.compile(".".join(re.escape(run) for run in text_.split("?")), re.DOTALL)


def _at(value: str, piece: _Piece, at: int) -> bool:
    """Whether ``piece`` matches ``value`` at ``at`` (the caller checks the length)."""
    literal, expression = piece
    if expression is None:
        return value.startswith(literal, at)
    return expression.match(value, at) is not None


def _find(value: str, piece: _Piece, start: int, end: int) -> int:
    """The leftmost place from ``start`` where ``piece`` matches within ``value[:end]``,
    or -1."""
    literal, expression = piece
    if expression is None:
        return value.find(literal, start, end)
    found = expression.search(value, start, end)
    return -1 if found is None else found.start()


def _markers(*texts: str) -> tuple[str, str]:
    """Two characters in none of ``texts``, to stand for a child's ``?`` and ``*``."""
    used = set().union(*texts)
    free = (chr(c) for c in range(0xE000, 0xF900) if chr(c) not in used)
    return next(free), next(free)  # at most 512 characters are used: some are free


def _covers(pieces: Sequence[str], tokens: str, one: str, any_: str) -> bool:
    """Whether a glob, as ``pieces`` (its text split on ``*``), matches the whole of
    ``tokens``, a child's glob written with ``one`` for its ``?`` and ``any_`` for its
    ``*``: the parent's ``?`` takes one character that is not ``any_``, a literal only
    itself. The algorithm of matching, each piece a regular expression of fixed length
    (no repetition), so the walk runs in the regular-expression engine: an adversarial
    pair of 256-character globs costs well under a millisecond where a walk in Python took
    4 ms (test_constraint_attacks.py, test_an_unsigned_chain_is_refused_cheaply)."""
    other = "[^" + re.escape(any_) + "]"
    compiled = [re.compile("".join(other if c == "?" else re.escape(c) for c in piece))
                for piece in pieces]
    first, last = compiled[0], compiled[-1]
    size, head, tail = len(tokens), len(pieces[0]), len(pieces[-1])
    if len(pieces) == 1:
        return size == head and first.fullmatch(tokens) is not None
    end = size - tail
    if end < head or first.match(tokens) is None or last.match(tokens, end) is None:
        return False
    at = head
    for expression in compiled[1:-1]:
        found = expression.search(tokens, at, end)
        if found is None:
            return False
        at = found.end()
    return True


@dataclass(frozen=True, slots=True)
class Pattern(Kind):
    """A string argument matching ``glob``: ``*`` any run of characters (``/`` included),
    ``?`` exactly one, any other character itself; the whole value must match.
    ``Pattern("report-????.pdf")``, ``Pattern("*.example.com")``. There are no escapes:
    a ``*`` or ``?`` in the glob is always a wildcard. Two adjacent ``*`` are refused (one
    means the same)."""

    CODE = 8
    NAME = "pattern"
    glob: str
    _pieces: tuple[_Piece, ...] = field(init=False, repr=False, compare=False)
    # How allows decides: the general way, or by one str operation for the common shapes
    # without '?' ("text", "text*", "*text", "*text*"); see _prepare.
    _shape: int = field(init=False, repr=False, compare=False)
    # _ENDS only: the head, the tail and their joint length (else empty).
    _ends: tuple[str, str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check(self.glob, False)
        self._prepare()

    def _prepare(self) -> None:
        glob = self.glob
        parts = glob.split("*")
        shape = _GENERAL
        if "?" not in glob:
            if len(parts) == 1:
                shape = _EXACT
            elif len(parts) == 2:
                shape = _ENDS
            elif len(parts) == 3 and parts[0] == parts[2] == "":
                shape = _HOLDS
            if shape == _GENERAL:
                shape = _PLAIN
        _set_pieces(self, tuple([_piece(p) for p in parts]))
        _set_shape(self, shape)
        _set_ends(self, (parts[0], parts[1], len(parts[0]) + len(parts[1])) if shape == _ENDS
                  else ("", "", 0))

    def allows(self, arg: object) -> bool:
        """Whether ``arg`` is a string the glob matches, whole."""
        if type(arg) is not str:
            return False
        shape = self._shape
        if shape == _EXACT:  # no wildcard: one comparison
            return arg == self.glob
        if shape == _ENDS:  # "head*tail", "text*", "*text": the two ends, not overlapping
            head, tail, least = self._ends
            return len(arg) >= least and arg.startswith(head) and arg.endswith(tail)
        pieces = self._pieces
        if shape == _HOLDS:  # "*text*"
            return pieces[1][0] in arg
        if shape == _PLAIN:
            head, tail = pieces[0][0], pieces[-1][0]
            end = len(arg) - len(tail)
            start = len(head)
            if end < start or not arg.startswith(head) or not arg.endswith(tail):
                return False
            for piece in pieces[1:-1]:
                found = arg.find(piece[0], start, end)
                if found < 0:
                    return False
                start = found + len(piece[0])
            return True
        first, last = pieces[0], pieces[-1]
        if len(pieces) == 1:  # '?' but no '*'
            return len(arg) == len(first[0]) and _at(arg, first, 0)
        end = len(arg) - len(last[0])  # where the last piece starts
        start = len(first[0])
        if end < start or not _at(arg, first, 0) or not _at(arg, last, end):
            return False
        for piece in pieces[1:-1]:
            found = _find(arg, piece, start, end)
            if found < 0:
                return False
            start = found + len(piece[0])
        return True

    def narrows(self, parent: Pattern) -> bool:
        """Whether the parent's glob matches this glob read as tokens, where the parent's
        ``*`` takes any run of tokens, its ``?`` one literal or ``?`` (never a ``*``), and a
        literal only the same literal. Sound, not complete: ``*?`` is not seen within
        ``?*``, though both match the same strings."""
        one, any_ = _markers(self.glob, parent.glob)
        tokens = self.glob.replace("?", one).replace("*", any_)
        return _covers([p[0] for p in parent._pieces], tokens, one, any_)

    def covers_prefix(self, prefix: str) -> bool:
        """Whether every string starting with ``prefix`` matches this glob: the glob
        matches the characters of ``prefix`` (each a literal, even ``*`` or ``?``) followed
        by one ``*`` token."""
        one, any_ = _markers(prefix, self.glob)
        return _covers([p[0] for p in self._pieces], prefix + any_, one, any_)

    def literal_head(self) -> str:
        """The glob's text before its first wildcard: every string it matches starts so."""
        glob = self.glob
        cut = len(glob)
        for wildcard in "*?":
            found = glob.find(wildcard)
            if 0 <= found < cut:
                cut = found
        return glob[:cut]

    def value_type(self) -> type:
        """``str``."""
        return str

    def to_wire(self) -> list[Any]:
        """``[8, glob]``."""
        return [self.CODE, self.glob]

    @classmethod
    def from_wire(cls, fields: list[Any]) -> Pattern:
        """``[glob]``: at most 256 bytes, never ``**`` (``non_canonical``)."""
        if len(fields) != 1:
            raise fail(True, "a pattern is [8, glob]")
        made: Pattern = _new(cls)  # checked once, then set in its slot
        _set_glob(made, _check(fields[0], True))
        made._prepare()
        return made

    def problem(self, arg: object) -> str:
        """Not a string, or a string the glob does not match."""
        if type(arg) is not str:
            return f"a {type(arg).__name__}, not a str"
        return "does not match the pattern"


def _check(glob: object, remote: bool) -> str:
    checked = text(glob, remote, "a pattern")
    if "**" in checked:
        raise fail(remote, "a pattern never has two adjacent '*' (one '*' already matches "
                           "any run of characters)", "non_canonical")
    return checked


# Building a checked pattern on the wire path: each slot set directly (the frozen
# dataclass's __setattr__ refuses, and object.__setattr__ looks the slot up each time).
_new = object.__new__
_set_glob, _set_pieces, _set_shape, _set_ends = (
    Pattern.__dict__[name].__set__ for name in ("glob", "_pieces", "_shape", "_ends"))

"""Non-canonical re-encodings of canonical msgpack, for the differential mode.

The same value written another way: an integer in a wider form than the shortest, a
string as ``bin`` or a byte string as ``str``, a header (string, byte string, array, map)
wider than needed, two entries of a map swapped. ``spec/protocol.md`` 3.2 makes every such
form ``non_canonical`` (or ``malformed``, where the type itself is wrong); which code an
implementation gives, and at which step, is what two implementations may disagree on.

A byte string that itself holds a complete msgpack value (a signed payload, a link) is
re-encoded inside, and its own header rewritten for the new length, so that the inner
structures are reached too.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

__all__ = ["reencode"]

_MAX_DEPTH = 4  # bins inside bins followed at most this deep


@dataclass(frozen=True, slots=True)
class _Node:
    """One msgpack object in a byte string: where it starts, where its header ends, where it
    ends, what it is and, for an integer its value, for a map its entries' spans."""

    kind: str  # "int", "str", "bin", "array", "map", "other"
    start: int
    head: int
    end: int
    value: int = 0
    entries: tuple[tuple[int, int], ...] = ()


def _length(data: bytes, at: int, size: int) -> int:
    return int.from_bytes(data[at:at + size], "big")


def _parse(data: bytes, at: int, nodes: list[_Node]) -> int:
    """Record the object at ``at`` and those inside it in ``nodes``; return its end.
    Raises IndexError or ValueError when the bytes are not msgpack."""
    if at >= len(data):
        raise IndexError("msgpack ends early")
    b = data[at]
    if b <= 0x7F or b >= 0xE0:
        nodes.append(_Node("int", at, at + 1, at + 1, b if b <= 0x7F else b - 0x100))
        return at + 1
    if 0xCC <= b <= 0xD3:
        size = 1 << (b - 0xCC) % 4
        raw = data[at + 1:at + 1 + size]
        if len(raw) != size:
            raise IndexError("msgpack ends early")
        value = int.from_bytes(raw, "big", signed=b >= 0xD0)
        nodes.append(_Node("int", at, at + 1 + size, at + 1 + size, value))
        return at + 1 + size
    if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6):
        kind = "bin" if b in (0xC4, 0xC5, 0xC6) else "str"
        if b <= 0xBF:
            head, n = at + 1, b & 0x1F
        else:
            size = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4}[b]
            head, n = at + 1 + size, _length(data, at + 1, size)
        if head + n > len(data):
            raise IndexError("msgpack ends early")
        nodes.append(_Node(kind, at, head, head + n))
        return head + n
    if 0x80 <= b <= 0x9F or b in (0xDC, 0xDD, 0xDE, 0xDF):
        is_map = 0x80 <= b <= 0x8F or b in (0xDE, 0xDF)
        if b <= 0x9F:
            head, n = at + 1, b & 0x0F
        else:
            size = 2 if b in (0xDC, 0xDE) else 4
            head, n = at + 1 + size, _length(data, at + 1, size)
        index = len(nodes)
        nodes.append(_Node("other", at, head, head))  # replaced once the end is known
        end, entries = head, []
        for _ in range(n):
            first = end
            end = _parse(data, end, nodes)
            if is_map:
                end = _parse(data, end, nodes)
            entries.append((first, end))
        nodes[index] = _Node("map" if is_map else "array", at, head, end, n, tuple(entries))
        return end
    if b in (0xC0, 0xC2, 0xC3):
        nodes.append(_Node("other", at, at + 1, at + 1))
        return at + 1
    if b in (0xCA, 0xCB):
        size = 4 if b == 0xCA else 8
        nodes.append(_Node("other", at, at + 1 + size, at + 1 + size))
        return at + 1 + size
    raise ValueError(f"msgpack type byte {b:#x} is not re-encoded")


def _nodes(data: bytes) -> list[_Node] | None:
    nodes: list[_Node] = []
    try:
        end = _parse(data, 0, nodes)
    except (IndexError, ValueError, RecursionError):
        return None
    return nodes if end == len(data) else None


def _header(kind: str, n: int) -> bytes:
    """The canonical header of a ``str`` or ``bin`` of ``n`` bytes."""
    if kind == "str":
        if n < 32:
            return bytes([0xA0 | n])
        return (b"\xd9" + struct.pack(">B", n) if n < 0x100 else
                b"\xda" + struct.pack(">H", n) if n < 0x10000 else b"\xdb" + struct.pack(">I", n))
    return (b"\xc4" + struct.pack(">B", n) if n < 0x100 else
            b"\xc5" + struct.pack(">H", n) if n < 0x10000 else b"\xc6" + struct.pack(">I", n))


_WIDER = {0: 1, 1: 2, 2: 4, 4: 8}  # an integer's width in bytes (0: a fixint), and the next


def _wider_int(node: _Node) -> bytes | None:
    """The integer of ``node`` in the next wider form (uint for a non-negative value, int
    for a negative one, as the packer chooses), or None at 8 bytes."""
    size = _WIDER.get(node.head - node.start - 1)
    if size is None:
        return None
    first = (0xCC if node.value >= 0 else 0xD0) + size.bit_length() - 1
    return bytes([first]) + node.value.to_bytes(size, "big", signed=node.value < 0)


def _wider_header(data: bytes, node: _Node) -> bytes | None:
    b = data[node.start]
    body = data[node.head:node.end]
    n = node.end - node.head if node.kind in ("str", "bin") else node.value
    if node.kind == "str":
        header = (b"\xd9" + bytes([n]) if b <= 0xBF else b"\xda" + struct.pack(">H", n)
                  if b == 0xD9 else b"\xdb" + struct.pack(">I", n) if b == 0xDA else None)
    elif node.kind == "bin":
        header = (b"\xc5" + struct.pack(">H", n) if b == 0xC4 else
                  b"\xc6" + struct.pack(">I", n) if b == 0xC5 else None)
    elif node.kind == "array":
        header = (b"\xdc" + struct.pack(">H", n) if b <= 0x9F else
                  b"\xdd" + struct.pack(">I", n) if b == 0xDC else None)
    else:
        header = (b"\xde" + struct.pack(">H", n) if b <= 0x8F else
                  b"\xdf" + struct.pack(">I", n) if b == 0xDE else None)
    return None if header is None else header + body


def _choices(data: bytes, node: _Node, depth: int) -> list[str]:
    out = []
    if node.kind == "int" and _wider_int(node) is not None:
        out.append("wider")
    if node.kind in ("str", "bin", "array", "map") and _wider_header(data, node) is not None:
        out.append("header")
    if node.kind in ("str", "bin"):
        out.append("swap-type")
    if node.kind == "map" and len(node.entries) >= 2:
        out.append("reorder")
    if (node.kind == "bin" and depth < _MAX_DEPTH and node.end > node.head
            and _nodes(data[node.head:node.end]) is not None):
        out += ["inside"] * 3  # where most of a structure lives
    return out


def reencode(data: bytes, rng: random.Random, depth: int = 0) -> tuple[bytes, str] | None:
    """``data`` (one msgpack value) written another way, and what was done; None if
    ``data`` is not msgpack or offers nothing to re-encode."""
    nodes = _nodes(data)
    if nodes is None:
        return None
    options = [(node, how) for node in nodes for how in _choices(data, node, depth)]
    rng.shuffle(options)
    for node, how in options:
        if how != "inside":
            return _rewrite(data, node, how, rng)
        body = data[node.head:node.end]
        inner = reencode(body, rng, depth + 1)
        if inner is not None:  # (a nil or a boolean offers nothing)
            new, what = inner
            return (data[:node.start] + _header("bin", len(new)) + new + data[node.end:],
                    f"{what}, inside the byte string at {node.start}")
    return None


def _rewrite(data: bytes, node: _Node, how: str, rng: random.Random) -> tuple[bytes, str]:
    before, after = data[:node.start], data[node.end:]
    body = data[node.head:node.end]
    if how == "wider":
        wide = _wider_int(node)
        assert wide is not None
        return before + wide + after, f"the integer {node.value} at {node.start} widened"
    if how == "header":
        wide = _wider_header(data, node)
        assert wide is not None
        return before + wide + after, f"the {node.kind} header at {node.start} widened"
    if how == "swap-type":
        other = "str" if node.kind == "bin" else "bin"
        return (before + _header(other, len(body)) + body + after,
                f"the {node.kind} at {node.start} written as {other}")
    i = rng.randrange(len(node.entries) - 1)
    (a0, a1), (b0, b1) = node.entries[i], node.entries[i + 1]
    swapped = data[node.start:a0] + data[b0:b1] + data[a0:a1] + data[b1:node.end]
    return before + swapped + after, f"entries {i} and {i + 1} of the map at {node.start} swapped"

"""Deterministic two-peer set-up shared by the handshake, session and fuzz tests.

Everything here is real agentauth code: the clock and the random source are injected
(the engines take them as arguments), so every run writes the same bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentauth import (
    ERROR_CODES,
    AgentAuthError,
    HandshakePolicy,
    HandshakeState,
    Identity,
    Initiator,
    Responder,
    Session,
    accept_any_peer,
)

T0 = 1_800_000_000.0
ALICE = Identity.from_seed(hashlib.blake2b(b"test alice").digest()[:32])
BOB = Identity.from_seed(hashlib.blake2b(b"test bob").digest()[:32])
CAROL = Identity.from_seed(hashlib.blake2b(b"test carol").digest()[:32])
MALLORY = Identity.from_seed(hashlib.blake2b(b"test mallory").digest()[:32])
ANY = HandshakePolicy(trust=accept_any_peer)
Tamper = Callable[[bytes], bytes]


class Clock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Random:
    """A deterministic random source that remembers every output (to look for leaks)."""

    label: bytes
    outputs: list[bytes] = field(default_factory=list)

    def __call__(self, n: int) -> bytes:
        out = hashlib.blake2b(self.label + len(self.outputs).to_bytes(4, "big")).digest()[:n]
        self.outputs.append(out)
        return out


@dataclass
class Pair:
    """An initiator and a responder wired to their own clocks and random sources."""

    initiator: Initiator
    responder: Responder
    i_clock: Clock
    r_clock: Clock
    i_random: Random
    r_random: Random

    def run(self) -> tuple[bytes, bytes, bytes]:
        """Complete the handshake; return (HS1, HS2, HS3)."""
        hs1 = self.initiator.start()
        hs2 = self.responder.receive_message(hs1)
        assert hs2 is not None
        hs3 = self.initiator.receive_message(hs2)
        assert hs3 is not None
        assert self.responder.receive_message(hs3) is None
        return hs1, hs2, hs3

    def sessions(self) -> tuple[Session, Session]:
        """(initiator's session, responder's session) of a completed handshake."""
        a, b = self.initiator.result, self.responder.result
        assert a is not None and b is not None
        return a.session, b.session


def make_pair(
    i_policy: HandshakePolicy = ANY,
    r_policy: HandshakePolicy = ANY,
    *,
    i_identity: Identity = ALICE,
    r_identity: Identity = BOB,
    i_kwargs: dict[str, Any] | None = None,
    r_kwargs: dict[str, Any] | None = None,
    ordered: bool = True,
    run: bytes = b"",
) -> Pair:
    """Fresh engines; the same arguments (``run`` names the random sources) give the same
    bytes."""
    i_clock, r_clock = Clock(), Clock()
    i_random, r_random = Random(b"initiator" + run), Random(b"responder" + run)
    initiator = Initiator(i_identity, i_policy, clock=i_clock, random=i_random,
                          **(i_kwargs or {}))
    responder = Responder(r_identity, r_policy, clock=r_clock, random=r_random,
                          ordered=ordered, **(r_kwargs or {}))
    return Pair(initiator, responder, i_clock, r_clock, i_random, r_random)


def sessions(ordered: bool = True, policy: HandshakePolicy = ANY) -> tuple[Session, Session]:
    """Both ends of a fresh session, each receiving in the given mode."""
    pair = make_pair(policy, policy, ordered=ordered, i_kwargs={"ordered": ordered})
    pair.run()
    return pair.sessions()


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    """``data`` with the bits of ``mask`` flipped in byte ``index``."""
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


@contextmanager
def raises(code: str) -> Iterator[pytest.ExceptionInfo[AgentAuthError]]:
    """Expect an agentauth error with exactly ``code``, of the class the registry names."""
    assert code in ERROR_CODES
    with pytest.raises(AgentAuthError) as info:
        yield info
    assert info.value.code == code, f"expected {code}, got {info.value!r}"
    assert isinstance(info.value, ERROR_CODES[code][0])


def outcome(call: Callable[[], object]) -> str:
    """``"ok"`` if ``call`` returns, else the code of the agentauth error it raises."""
    try:
        call()
    except AgentAuthError as exc:
        return exc.code
    return "ok"


def run_tampered(pair: Pair, which: int, tamper: Tamper) -> tuple[str, str]:
    """Run the handshake with message ``which`` (1 to 3) changed in transit.

    Return ``(side, code)`` of the first error, or ``("none", "ok")``.
    """
    message = pair.initiator.start()
    steps = [(pair.responder, "responder"), (pair.initiator, "initiator"),
             (pair.responder, "responder")]
    for index, (engine, side) in enumerate(steps, 1):
        if index == which:
            message = tamper(message)
        try:
            reply = engine.receive_message(message)
        except AgentAuthError as exc:
            assert engine.state is HandshakeState.FAILED and engine.result is None
            return side, exc.code
        if reply is None:
            break
        message = reply
    return "none", "ok"


def complete(pair: Pair) -> tuple[str, str]:
    """Run the handshake untouched; ``(side, code)`` as for :func:`run_tampered`."""
    return run_tampered(pair, 0, bytes)


# ------------------------------------------------------------------ hostile paths

#: Kinds of path handed to every path-taking command and function (spec 14.7).
HOSTILE_PATHS = ("fifo", "dev_zero", "directory", "empty", "garbage", "missing",
                 "missing_folder", "key_link")


def place_hostile(folder: Path, kind: str) -> Path:
    """Put a path of ``kind`` (one of :data:`HOSTILE_PATHS`) at ``folder/x``, beside a key
    file ``folder/k.key``; return the path to hand over."""
    target = folder / "x"
    if kind == "fifo":
        os.mkfifo(target, 0o600)
    elif kind == "dev_zero":
        return Path("/dev/zero")
    elif kind == "directory":
        target.mkdir()
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "garbage":
        target.write_bytes(b"\x93\x00garbage\xff" * 50)
    elif kind == "missing_folder":
        return folder / "nowhere" / "x"
    elif kind == "key_link":
        target.symlink_to("k.key")
    return target


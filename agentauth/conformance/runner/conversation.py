"""Conversations: the runner's own engines as the driver's peer.

:class:`Conversation` sets up one handshake between the driver (in the role under test) and a
reference engine of this implementation, with fresh identities and ephemeral keys drawn
from the run's seed, and moves the messages between them. The scenarios and the attacks
build on it: an attacker is the same reference peer with a hand on the bytes in between.
"""

from __future__ import annotations

import os
from typing import Any

from ...handshake import HandshakePolicy, Initiator, Responder, accept_any_peer
from ...identity import Identity
from ...session import Session
from .check import T0, Context, Fail, get_hex, get_str
from .driver_process import DriverProcess

__all__ = ["Conversation"]


class Conversation:
    """One driver engine and its reference peer, before the first message."""

    __slots__ = ("_fed", "_inputs", "d", "driver_ephemeral", "driver_id", "driver_identity",
                 "driver_role", "handle", "hs1", "hs2", "hs3", "me", "now", "peer", "result")

    def __init__(self, ctx: Context, driver_role: str, *, ordered: bool = True,
                 driver_trust: list[str] | str | None = None, expect: Any = "peer",
                 peer_trust: list[str] | None = None, peer_clock: float = 0.0,
                 peer_ordered: bool = True, driver_random: str | None = None,
                 timeout: float = 30.0, peer_skew: float = 120.0) -> None:
        self.d: DriverProcess = ctx.driver()
        self.driver_role = driver_role
        self.me = Identity.from_seed(bytes.fromhex(ctx.seed32()))
        seed = ctx.seed32()
        self.driver_identity = Identity.from_seed(bytes.fromhex(seed))
        self.driver_id = get_str(self.d.call("create_identity", seed=seed), "agent_id")
        if self.driver_id != self.driver_identity.agent_id:
            raise Fail(f"create_identity gave {self.driver_id[:60]!r} for a seed whose "
                       f"agent id is {self.driver_identity.agent_id}")
        self.driver_ephemeral = driver_random or ctx.seed32()
        if expect == "peer":
            expect = self.me.agent_id if driver_role == "initiator" else None
        self.d.call("set_clock", now=float(T0))
        self._inputs: dict[str, Any] = {
            "trust": [self.me.agent_id] if driver_trust is None else driver_trust,
            "expect": expect, "ordered": ordered, "timeout": timeout}
        self.handle = get_str(self.d.call(
            "handshake", role=driver_role, identity=self.driver_id,
            random=self.driver_ephemeral, **self._inputs), "handle")
        self._fed: list[bytes | None] = []  # what the driver's engine took: None for start
        self.now = [float(T0) + peer_clock]
        eph = bytes.fromhex(ctx.seed32())
        policy = HandshakePolicy(trust=[self.driver_id] if peer_trust is None else peer_trust,
                                 max_skew=peer_skew)
        cls = Responder if driver_role == "initiator" else Initiator
        self.peer: Initiator | Responder = cls(
            self.me, policy, ordered=peer_ordered, clock=lambda: self.now[0],
            random=lambda n: eph[:n])
        self.hs1 = self.hs2 = self.hs3 = b""
        self.result: dict[str, Any] = {}

    # ------------------------------------------------------------ driver calls

    def call(self, op: str, **params: Any) -> dict[str, Any]:
        """An operation on the driver's engine or session."""
        result = self.d.call(op, handle=self.handle, **params)
        if op == "start":
            self._fed.append(None)
        return result

    def receive(self, message: bytes) -> dict[str, Any]:
        """Deliver ``message`` to the driver's engine."""
        self.result = self.call("receive", message=message.hex())
        self._fed.append(message)
        return self.result

    def twin(self) -> Initiator | Responder:
        """A reference engine of this implementation built from the driver's engine's inputs
        (identity, policy, random, clock) and given every input the driver's engine took:
        what it answers to the next message is what the spec's ordered checks give, and
        so what the driver must answer (the reference's code for the same bytes)."""
        trust = self._inputs["trust"]
        policy = HandshakePolicy(trust=accept_any_peer if trust == "any" else trust,
                                 timeout=self._inputs["timeout"])
        secret = bytes.fromhex(self.driver_ephemeral)
        cls = Initiator if self.driver_role == "initiator" else Responder
        engine = cls(self.driver_identity, policy, expect=self._inputs["expect"],
                     ordered=self._inputs["ordered"], clock=lambda: float(T0),
                     random=lambda n: secret[:n] if len(secret) >= n else os.urandom(n))
        for message in self._fed:
            if message is None:
                assert isinstance(engine, Initiator)
                engine.start()
            else:
                engine.receive_message(message)
        return engine

    def open(self, message: bytes) -> bytes | None:
        """Deliver ``message`` to the driver's session; return what it opened to."""
        opened = self.call("open", message=message.hex())
        return None if opened.get("payload") is None else get_hex(opened, "payload")

    def seal(self, payload: bytes) -> bytes:
        """A message the driver's session seals."""
        return get_hex(self.call("seal", payload=payload.hex()), "message")

    # ------------------------------------------------------------ the handshake

    def first(self) -> bytes:
        """HS1: written by the driver (initiator) or by the reference peer."""
        if self.driver_role == "initiator":
            self.hs1 = get_hex(self.call("start"), "message")
        else:
            assert isinstance(self.peer, Initiator)
            self.hs1 = self.peer.start()
        return self.hs1

    def second(self) -> bytes:
        """HS2 for the HS1 sent (the peer's, or the driver's reply to the peer's HS1)."""
        if self.driver_role == "initiator":
            reply = self.peer.receive_message(self.hs1)
            assert reply is not None
            self.hs2 = reply
        else:
            self.hs2 = get_hex(self.receive(self.hs1), "reply")
        return self.hs2

    def third(self) -> bytes:
        """HS3 for the HS2 sent."""
        if self.driver_role == "initiator":
            self.hs3 = get_hex(self.receive(self.hs2), "reply")
        else:
            reply = self.peer.receive_message(self.hs2)
            assert reply is not None
            self.hs3 = reply
        return self.hs3

    def complete(self) -> Session:
        """Run the rest of the handshake honestly; check both sides agree; return the
        reference peer's session."""
        if not self.hs1:
            self.first()
        if not self.hs2:
            self.second()
        if not self.hs3:
            self.third()
        if self.driver_role == "initiator":
            self.peer.receive_message(self.hs3)
        else:
            self.receive(self.hs3)
        ours = self.peer.result
        assert ours is not None
        if self.result.get("state") != "done":
            raise Fail(f"the driver's handshake is {str(self.result.get('state'))[:20]!r} "
                       f"after the last message, not done")
        if self.result.get("peer") != self.me.agent_id:
            raise Fail(f"the driver names its peer {str(self.result.get('peer'))[:60]!r}, "
                       f"not {self.me.agent_id}")
        if self.result.get("version") != 1:
            raise Fail(f"the driver reports version {str(self.result.get('version'))[:8]}")
        if get_hex(self.result, "channel_binding") != ours.channel_binding:
            raise Fail("the driver's channel binding differs from the peer's")
        return ours.session

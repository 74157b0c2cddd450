"""Two agents authenticate each other in memory and talk over the resulting session.

Run it with ``python examples/in_memory_handshake.py``. The engines are sans-I/O: the
bytes they return could travel over any transport; here they are handed across directly.
"""

from __future__ import annotations

from agentauth import HandshakePolicy, Identity, Initiator, Responder


def main() -> None:
    """Run one handshake, then one message each way."""
    alice, bob = Identity.generate(), Identity.generate()
    # Alice pins Bob; Bob accepts Alice by allow-list.
    initiator = Initiator(alice, HandshakePolicy(trust=[bob.agent_id]), expect=bob.agent_id)
    responder = Responder(bob, HandshakePolicy(trust=[alice.agent_id]))

    hs2 = responder.receive_message(initiator.start())
    assert hs2 is not None
    hs3 = initiator.receive_message(hs2)
    assert hs3 is not None
    responder.receive_message(hs3)
    a, b = initiator.result, responder.result
    assert a is not None and b is not None

    print("alice sees", a.peer_id)
    print("bob sees  ", b.peer_id)
    print("same channel binding:", a.channel_binding == b.channel_binding)
    print(b.session.open(a.session.seal(b"hello, bob")))
    print(a.session.open(b.session.seal(b"hello, alice")))


if __name__ == "__main__":
    main()

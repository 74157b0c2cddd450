"""The ``agentauth`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .handshake import HandshakePolicy, Initiator, Responder
from .identity import Identity

__all__ = ["main"]


def _demo() -> int:
    """Two agents authenticate each other in memory and exchange a few messages."""
    alice, bob = Identity.generate(), Identity.generate()
    # Each side trusts exactly the other: the embedded default of the demo.
    alice_policy = HandshakePolicy(trust=frozenset({bob.agent_id}))
    bob_policy = HandshakePolicy(trust=frozenset({alice.agent_id}))
    initiator = Initiator(alice, alice_policy, expect=bob.agent_id)
    responder = Responder(bob, bob_policy)

    hs1 = initiator.start()
    hs2 = responder.receive_message(hs1)
    assert hs2 is not None
    hs3 = initiator.receive_message(hs2)
    assert hs3 is not None
    responder.receive_message(hs3)
    a, b = initiator.result, responder.result
    assert a is not None and b is not None

    print(f"alice             {alice.agent_id}")
    print(f"bob               {bob.agent_id}")
    print(f"handshake         HS1 {len(hs1)} B, HS2 {len(hs2)} B, HS3 {len(hs3)} B")
    print(f"alice sees peer   {a.peer_id}")
    print(f"bob sees peer     {b.peer_id}")
    print(f"channel binding   {a.channel_binding.hex()}")
    same = a.channel_binding == b.channel_binding
    print(f"bindings match    {same}")
    reply = a.session.open(b.session.seal(b"hello, alice"))
    echo = b.session.open(a.session.seal(b"hello, bob"))
    print(f"bob -> alice      {reply!r}")
    print(f"alice -> bob      {echo!r}")
    ok = same and a.peer_id == bob.agent_id and b.peer_id == alice.agent_id
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentauth`` command."""
    parser = argparse.ArgumentParser(prog="agentauth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="two agents complete a handshake in memory")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo()
    parser.error(f"unknown command {args.command}")
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())

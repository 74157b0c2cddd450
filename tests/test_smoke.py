"""The two-peer harness: a complete handshake and a session in memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agentauth import HandshakePolicy, Identity, Initiator, Responder, accept_any_peer


def test_handshake_then_session() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    policy = HandshakePolicy(trust=accept_any_peer)
    initiator = Initiator(alice, policy, expect=bob.agent_id)
    responder = Responder(bob, policy)
    hs2 = responder.receive_message(initiator.start())
    assert hs2 is not None
    hs3 = initiator.receive_message(hs2)
    assert hs3 is not None
    assert responder.receive_message(hs3) is None
    a, b = initiator.result, responder.result
    assert a is not None and b is not None
    assert a.peer_id == bob.agent_id and b.peer_id == alice.agent_id
    assert a.channel_binding == b.channel_binding
    assert b.session.open(a.session.seal(b"ping")) == b"ping"
    assert a.session.open(b.session.seal(b"pong")) == b"pong"


def test_examples_and_demo_run() -> None:
    # Each example is a script a user runs as is; so is the demo command.
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    for script in sorted((root / "examples").glob("*.py")):
        if script.name == "__init__.py":
            continue
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, (script.name, done.stderr)
        assert "True" in done.stdout, script.name
    demo = subprocess.run([sys.executable, "-m", "agentauth", "demo"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    assert "alice -> bob   accepted" in out and "carol -> bob   accepted" in out
    assert "[untrusted_peer] peer mallory is not trusted" in out
    assert "rejected the replay" in out and "[replayed]" in out
    assert "bob accepted 2 channels and refused 1" in out

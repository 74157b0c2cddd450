"""The two-peer harness: a complete handshake and a session in memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.redis_server import redis_server

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


ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "AGENTAUTH_PASSPHRASE": "echo example"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=ENV, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("script", ["in_memory_handshake.py", "mesh.py"])
def test_in_memory_examples_run(script: str) -> None:
    done = run(str(ROOT / "examples" / script))
    assert done.returncode == 0, done.stderr
    assert "True" in done.stdout and "False" not in done.stdout


def test_echo_server_and_client_in_two_processes(tmp_path: Path) -> None:
    client = Identity.generate()
    client.save(tmp_path / "client.key", "echo example", preset="interactive")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "echo_server.py"), "--key",
         str(tmp_path / "server.key"), "--port", "0", "--trust", client.agent_id],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        server_id = server.stdout.readline().split()[-1]
        port = server.stdout.readline().strip().rsplit(":", 1)[-1]
        assert server_id.startswith("did:key:z6Mk") and port.isdigit()
        assert (tmp_path / "server.key").stat().st_mode & 0o077 == 0  # owner only

        def client_run(key: str, expect: str) -> subprocess.CompletedProcess[str]:
            return run(str(ROOT / "examples" / "echo_client.py"), "--key",
                       str(tmp_path / key), "--port", port, "--server", expect,
                       "hello", "world")

        done = client_run("client.key", server_id)
        assert done.returncode == 0, done.stderr
        assert "echo: hello" in done.stdout and "echo: world" in done.stdout
        wrong = client_run("client.key", Identity.generate().agent_id)
        assert wrong.returncode != 0 and "unexpected_peer" in wrong.stderr
        stranger = client_run("stranger.key", server_id)  # a new key: not trusted
        assert stranger.returncode != 0  # the server said why (spec 4.14), then hung up
        assert "[peer_refused]" in stranger.stderr and "'untrusted_peer'" in stranger.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_mailbox_agents_that_are_never_online_together(tmp_path: Path) -> None:
    box = tmp_path / "box"
    script = str(ROOT / "examples" / "mailbox.py")

    def step(*args: str) -> str:
        done = run(script, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    step("keys", str(box))
    step("send", str(box), "what is due?")
    step("send", str(box), "and when?")
    assert step("answer", str(box)).count("answered") == 2
    again = step("answer", str(box), "--name", "bob-restarted")  # a new process, same file
    assert again.count("refused: replayed") == 2 and "answered" not in again
    collected = step("collect", str(box))
    assert "'answer to: what is due?'" in collected and "'answer to: and when?'" in collected
    assert step("collect", str(box)).count("refused") == 2  # answers are taken once


def test_a_fifo_dropped_in_the_mailbox_is_refused_not_waited_on(tmp_path: Path) -> None:
    box = tmp_path / "box"
    script = str(ROOT / "examples" / "mailbox.py")
    assert run(script, "keys", str(box)).returncode == 0
    assert run(script, "send", str(box), "still there?").returncode == 0
    os.mkfifo(box / "inbox" / "zz.env")  # sorted after the real request
    done = run(script, "answer", str(box))
    assert done.returncode == 0, done.stderr
    assert "zz.env refused: file_not_regular" in done.stdout
    assert done.stdout.count("answered") == 1


def test_mailbox_replicas_sharing_redis_answer_each_request_once(tmp_path: Path) -> None:
    box = tmp_path / "box"
    script = str(ROOT / "examples" / "mailbox.py")
    assert run(script, "keys", str(box)).returncode == 0
    for i in range(6):
        assert run(script, "send", str(box), f"question {i}").returncode == 0
    with redis_server() as url:
        replicas = [subprocess.Popen(
            [sys.executable, script, "answer", str(box), "--redis", url, "--name", name],
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in ("bob-1", "bob-2")]  # both read every request, at the same time
        outputs = [replica.communicate(timeout=60) for replica in replicas]
    assert all(replica.returncode == 0 for replica in replicas), outputs
    answered = [line for out, _ in outputs for line in out.splitlines() if "answered" in line]
    refused = [line for out, _ in outputs for line in out.splitlines() if "replayed" in line]
    assert len(answered) == 6 and len(refused) == 6  # each request once, in one replica
    collected = run(script, "collect", str(box))
    assert collected.stdout.count("says") == 6, collected.stderr

"""``agentauth demo``: four agents on the Agent API, each step shown with who, what and
why, in plain lines and in ``--json``; and the demo checks itself (exit 1 if a step did not
go as it says)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentauth import Agent
from agentauth.cli.demo import run_demo

ROOT_DIR = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT_DIR)}

# Each step's line, in the order the demo runs them (ids, ports, sizes and times vary).
STEPS = [
    r"bob serves read on reports/\*\* at 127\.0\.0\.1:\d+ and trusts alice and carol",
    r"alice +-> bob +channel open: each verified the other \(through a relay\)",
    r"alice +-> bob +read reports/q3: answered 'reports/q3 for alice'",
    r"alice +-> bob +delete reports/q3: refused \[not_authorized\] .*\(action at link 0, "
    r"grant 0\)",
    r"attacker +re-sends alice's captured request \(\d+ bytes\) to bob",
    r"bob +channel with alice ended: \[replayed\] ",
    r"alice +sees the channel end \[\w+\]",
    r"alice +=> bob +envelope \(\d+ bytes\) opened: 'pay 10 to carol' from alice",
    r"attacker +re-sends the envelope: bob refuses it \[replayed\] ",
    r"carol +-> bob +read reports/q3: answered 'reports/q3 for carol'",
    r"bob +revokes the capability he delegated to carol",
    r"carol +-> bob +read reports/q3: refused \[revoked\] .*\(revoked at link 0\)",
    r"mallory -> bob +refused: bob's alert claims untrusted_peer \[peer_refused\]",
    r"bob +handshake failed: \[untrusted_peer\] peer mallory is not trusted",
    r"done in (\d+\.\d+) s: bob accepted 2 channels and refused 1",
]


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentauth", "demo", *args], env=ENV,
                          capture_output=True, text=True, timeout=60, check=False)


def assert_steps(lines: list[str]) -> None:
    names = [line.split()[0] for line in lines[1:5]]
    assert names == ["alice", "bob", "carol", "mallory"]
    assert all(re.fullmatch(r"did:key:z6Mk\w+", line.split()[1]) for line in lines[1:5])
    found = [next((i for i, line in enumerate(lines) if re.match(step, line)), -1)
             for step in STEPS]
    assert -1 not in found, [step for step, i in zip(STEPS, found, strict=True) if i < 0]
    assert found == sorted(found)
    finished = re.match(STEPS[-1], lines[-1])
    assert finished is not None and float(finished[1]) < 2  # it exits at once


def test_the_demo_shows_each_step_with_who_what_and_why() -> None:
    done = demo()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert_steps(done.stdout.splitlines())


def test_the_demo_in_json_keeps_its_shape() -> None:
    done = demo("--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"ok", "log"} and report["ok"] is True
    assert_steps(report["log"])


def test_a_step_that_goes_wrong_fails_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Agent, "revoke", lambda self, chain: b"")  # revocation lost
    lines: list[str] = []
    assert run_demo(lines.append) == 1
    assert any(re.match(r"carol +-> bob +read reports/q3: answered", line)
               for line in lines[-5:-3])


def test_the_demo_leaves_the_loggers_as_it_found_them() -> None:
    loggers = [logging.getLogger(name) for name in ("agentauth.aio", "agentauth.agent")]
    before = [(log.level, log.propagate, list(log.handlers)) for log in loggers]
    assert run_demo(lambda line: None) == 0
    assert [(log.level, log.propagate, list(log.handlers)) for log in loggers] == before

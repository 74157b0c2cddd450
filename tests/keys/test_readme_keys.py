"""The README's key, trust and rotation walkthrough, run as written: its shell blocks by
bash with ``agentauth`` as this interpreter's module (each command a process forked from
an interpreter that has imported it: support/cli.py), its Python block as a process."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from support import cli

ROOT_DIR = Path(__file__).resolve().parents[2]
SECTION = "### Keys, trust and rotation"


def blocks() -> list[tuple[str, str]]:
    text = (ROOT_DIR / "README.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n### ", 1)[0]
    out = []
    for chunk in section.split("```")[1::2]:
        language, _, code = chunk.partition("\n")
        out.append((language, code))
    return out


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    found = blocks()
    assert [language for language, _ in found] == ["sh", "python", "sh"]
    words, server = cli.command()  # each command its own process, forked from a warm one
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR), "PASS": "walkthrough passphrase",
           **server}
    prelude = f'agentauth() {{ {shlex.join(words)} "$@"; }}\nset -euo pipefail\n'
    outputs = []
    for language, code in found:
        command = (["bash", "-c", prelude + code] if language == "sh"
                   else [sys.executable, "-c", code])
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300, check=False, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done)
    walk, _, audit = outputs
    lines = walk.stdout.splitlines()
    assert lines[-1] == "refused again: 1"
    assert "[key_rotated]" in walk.stderr and walk.stderr.count("\n") == 1
    listed = cli.agentauth(["trust", "list", "--store", "alice-trust.toml", "--json"],
                       cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    store = json.loads(listed.stdout)["entries"]
    bob2 = cli.agentauth(["id", "bob-2.key", "--passphrase-env", "PASS"], cwd=tmp_path, env=env)
    assert bob2.returncode == 0, bob2.stderr
    assert store[0]["name"] == "bob" and store[0]["id"] == bob2.stdout.strip()
    assert len(store[0]["retired"]) == 1 and store[0]["next"]
    assert store[1]["namespace"] == "reports/**"
    assert audit.stdout.startswith("ok: 1 record(s), head ")
    record = json.loads((tmp_path / "audit.log").read_text())
    assert record["event"] == "token_verified" and record["seq"] == 1

"""The HTTP example runs as a real process: two agents over uvicorn and httpx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_http_agents_example() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "http_agents.py")],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("GET /reports/q3 -> 200 {'report': 'q3'")
    assert lines[0].endswith("'allowed_by': ['get:reports/**', 'post:mcp']} (signed by "
                             "alice, answering this request)")
    assert lines[1] == ("POST /mcp tools/call -> 200 {'tool': 'summarise', 'signed': "
                        "['\"mcp-protocol-version\"', '\"mcp-method\"']}")
    assert lines[2] == ("DELETE /reports/q3 -> 403 not_authorized: the capability allows "
                        "get only")
    assert lines[3] == "the same signed request twice -> 200, then 401 replayed"
    assert lines[4] == "expecting another server's key -> refused [unexpected_peer]"

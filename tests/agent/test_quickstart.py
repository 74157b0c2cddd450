"""The quickstart runs as a real process and exits by itself, and it is the README's first
code block, under "Quickstart", before the set-up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.py"


def test_quickstart_runs() -> None:
    done = subprocess.run([sys.executable, str(QUICKSTART)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    allowed, refused = done.stdout.splitlines()
    assert allowed.startswith("b'reports/q3 for did:key:z6Mk")
    assert refused == "refused: not_authorized action at link 0, grant 0"


def test_quickstart_is_the_first_code_block_of_the_readme() -> None:
    text = QUICKSTART.read_text()
    assert len(text.splitlines()) < 25
    readme = (ROOT / "README.md").read_text()
    first = re.search(r"^```[a-z]*\n(.*?)^```$", readme, re.S | re.M)
    assert first is not None and first[1] == text
    assert first[0].startswith("```python\n")
    assert readme.index("\n## Quickstart\n") < first.start() < readme.index("\n## Set-up\n")

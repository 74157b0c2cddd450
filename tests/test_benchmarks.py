"""The benchmark command runs and reports every target (timings are not asserted here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import handshake


def test_quick_run_writes_every_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert handshake.main(["--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    names = {row["name"] for row in report["targets"]}
    assert names == {target.name for target in handshake.targets()}
    assert all(report["median_seconds"][name] > 0 for name in report["median_seconds"])
    printed = capsys.readouterr().out
    assert "handshake / floor" in printed and "floor (sum)" in printed

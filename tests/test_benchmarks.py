"""The benchmark command runs and reports every target (timings are not asserted here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import handshake, keys, load, replay, tokens


def test_quick_run_writes_every_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert handshake.main(["--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    names = {row["name"] for row in report["targets"]}
    assert names == {target.name for target in handshake.targets()}
    assert all(report["median_seconds"][name] > 0 for name in report["median_seconds"])
    printed = capsys.readouterr().out
    assert "handshake / floor" in printed and "floor (sum)" in printed


def test_load_quick_run_measures_both_protocols(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Two server processes, loopback TCP only; the figures are not asserted.
    out = tmp_path / "load.json"
    assert load.main(["--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"agentauth", "tls"}
    for figures in report["results"].values():
        assert figures["handshakes_per_s"][0] > 0 and figures["echo_per_s"][0] > 0
    assert len(report["targets"]) == 4
    assert "handshakes per second" in capsys.readouterr().out


def test_tokens_quick_run_reports_every_depth(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tokens.json"
    assert tokens.main(["--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {t["name"] for t in report["targets"]} >= {
        f"cold / biscuit, +{d}" for d in tokens.DEPTHS}
    assert all(v > 0 for v in report["median_seconds"].values())
    assert "authority +8" in capsys.readouterr().out


def test_replay_quick_run_reports_the_memory_targets(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    out = tmp_path / "replay.json"
    assert replay.main(["--quick", "--json", str(out)]) == 0  # starts its own redis-server
    report = json.loads(out.read_text())
    assert {"memory new", "memory seen", "sqlite new", "redis new",
            "redis new, pipelined by 100"} == set(report["median_seconds"])
    assert len(report["targets"]) == 3
    assert "bytes per entry" in capsys.readouterr().out


def test_keys_quick_run_reports_every_preset(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "keys.json"
    assert keys.main(["--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"unlock interactive", "unlock moderate", "handshake, 1 pinned",
            "handshake, 1,000 pinned", "handshake, audited to a file"} <= set(
        report["median_seconds"])
    assert set(report["presets"]) == {"interactive", "moderate", "sensitive"}
    assert all(v > 0 for v in report["median_seconds"].values())
    assert [t["name"] for t in report["targets"]] == ["handshake, 1,000 pinned / 1 pinned"]
    assert "opslimit" in capsys.readouterr().out

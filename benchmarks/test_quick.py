"""Every benchmark's quick run completes and reports each of its targets; the timings are
not asserted. Not part of the test suite (the benchmarks need the ``bench`` extra): CI runs
it with ``python3 -m pytest -q -p no:cacheprovider benchmarks``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import (
    agent,
    conformance,
    constraints,
    envelopes,
    handshake,
    http,
    keys,
    load,
    replay,
    tokens,
)


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


def test_replay_quick_run_reports_stores_peers_and_envelopes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "replay.json"
    assert replay.main(["--quick", "--json", str(out)]) == 0  # starts its own redis-server
    report = json.loads(out.read_text())
    assert {"memory new", "memory seen", "set new", "set seen", "sqlite new",
            "sqlite bare insert", "redis new", "redis bare SET NX",
            "redis new, pipelined by 100",
            "redis bare SET NX, pipelined by 100"} == set(report["median_seconds"])
    assert set(report["bytes_per_entry"]) == {"memory", "set", "sqlite", "sqlite bare",
                                              "redis", "redis bare"}
    assert all(value > 0 for value in report["bytes_per_entry"].values())
    assert {"open, signed", "open, encrypted", "seal, signed", "seal, encrypted",
            "jwt EdDSA sign", "jwt EdDSA verify"} <= set(report["envelope_seconds"])
    assert len(report["targets"]) == 4
    printed = capsys.readouterr().out
    assert "bytes per live entry" in printed and "open signed / jwt verify" in printed


def test_envelopes_quick_run_reports_its_target(tmp_path: Path) -> None:
    out = tmp_path / "envelopes.json"
    assert envelopes.main(["--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [t["name"] for t in report["targets"]] == [
        "open signed / (ed25519 verify + store check)"]
    assert all(v > 0 for v in report["median_seconds"].values())


def test_http_quick_run_measures_every_mode(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Four uvicorn server processes on loopback; this process is the load client.
    out = tmp_path / "http.json"
    assert http.main(["--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["requests_per_s"]) == set(http.MODES)
    assert all(value > 0 for value in report["requests_per_s"].values())
    assert {t["name"] for t in report["targets"]} >= {
        "request signing + verification / JWT check"}
    assert report["client"]["sign_s"] > 0 and report["client"]["check_s"] > 0
    assert "bearer JWT (EdDSA) check" in capsys.readouterr().out


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


def test_conformance_quick_run_reports_the_run_time(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "conformance.json"
    assert conformance.main(["--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["median_seconds"]) == {"command, over pipes", "in process"}
    assert report["checks"] == sum(report["sections"].values()) > 200
    assert [t["name"] for t in report["targets"]] == ["suite run time (s)"]
    assert "ratio pipes / in process" in capsys.readouterr().out


def test_agent_quick_run_reports_both_widths(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "agent.json"
    assert agent.main(["--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["seconds_per_request"]) == 6 and len(report["targets"]) == 2
    assert "capability / open handler" in capsys.readouterr().out


def test_constraints_quick_run_compares_new_and_plain_kinds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "constraints.json"
    assert constraints.main(["--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["seconds_per_call"]) == {
        "new kinds, cold", "new kinds, warm", "new kinds, fresh", "plain kinds, cold",
        "plain kinds, warm", "plain kinds, fresh", "Ed25519 floor"}
    assert all(value > 0 for row in report["seconds_per_call"].values()
               for value in row.values())
    assert set(report["ratios"]) == {"cold", "warm", "fresh"}
    assert [t["name"] for t in report["targets"]] == [
        "cold: new kinds / plain kinds", "warm: new kinds / plain kinds"]
    assert "new kinds / plain kinds" in capsys.readouterr().out

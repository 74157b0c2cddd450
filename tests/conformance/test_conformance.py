"""The conformance suite, end to end: the runner against this implementation's driver (how
CI runs the suite), against drivers broken on purpose, and paired with a second driver."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.cli import Ran, agentauth, command

from agentauth.conformance.runner import (
    Context,
    DriverBroken,
    DriverProcess,
    Report,
    all_checks,
    run_checks,
)

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
DRIVER = f"{sys.executable} -m agentauth conformance driver"
BROKEN = f"{sys.executable} {Path(__file__).resolve().parents[1] / 'support' / 'broken_driver.py'}"
# The runner checks each notice vector under 10.8, and nothing else there.
NOTICES = sum(v["kind"] == "notice" for v in json.loads(
    (ROOT / "spec" / "vectors" / "capability.json").read_text())["vectors"])


def conformance(*args: str, cwd: Path = ROOT, cold: bool = False) -> Ran:
    """``agentauth conformance args``. Where ``DRIVER`` is named, the driver processes are
    forked from the warm interpreter too, unless ``cold`` (as CI starts them)."""
    words, extra = command()
    warm = shlex.join([*words, "conformance", "driver"])
    argv = [a if cold or a != DRIVER else warm for a in args]
    return agentauth(["conformance", *argv], cwd=cwd, env={**ENV, **extra}, timeout=300)


def test_the_whole_suite_passes_against_our_driver(tmp_path: Path) -> None:
    """CI runs the suite this way: zero FAIL, zero SKIP, with interop against a second
    driver process, and the three kinds of report."""
    done = conformance("run", "--driver", DRIVER, "--peer-driver", DRIVER, "--seed", "2026",
                       "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"),
                       cold=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["totals"]["FAIL"] == report["totals"]["SKIP"] == 0
    assert report["totals"]["PASS"] == len(report["checks"]) >= 350
    assert report["seed"] == 2026 and report["implementation"].startswith("agentauth")
    sections = report["sections"]
    for needed in ("conformance.md §2", "protocol.md §4.3", "protocol.md §4.5",
                   "protocol.md §4.7", "protocol.md §4.9", "protocol.md §4.11",
                   "protocol.md §4.12", "protocol.md §4.13", "protocol.md §5.5",
                   "protocol.md §5.6", "protocol.md §6.3", "protocol.md §8.5",
                   "protocol.md §10.1", "protocol.md §10.2", "protocol.md §10.3",
                   "protocol.md §10.6", "protocol.md §10.7", "protocol.md §10.8",
                   "protocol.md §12.2", "protocol.md §15.2", "protocol.md §15.3",
                   "protocol.md §15.4"):
        assert sections[needed]["PASS"] > 0, needed
    ids = [c["id"] for c in report["checks"]]
    assert len(ids) == len(set(ids))
    # Each check about a code records the code it expected and the one it got.
    coded = [c["code"] for c in report["checks"] if c["code"] is not None]
    assert len(coded) > 250 and all(c["expected"] == c["got"] for c in coded)
    assert all(c["code"] is None for c in report["checks"] if "positive" in c["id"])
    assert {"conformance.md §5", "conformance.md §6"} <= set(sections)
    for kind in ("handshake-positive", "handshake-negative", "session-negative", "capability",
                 "constraints", "envelope", "live", "attack", "mutation", "interop"):
        assert any(f"/ {kind} /" in i for i in ids), kind
    # The readable summary: one line per section with its counts, and the seed to rerun.
    for section, counts in sections.items():
        assert re.search(rf"^{re.escape(section)}\s+{counts['PASS']}\s+0\s+0$", done.stdout,
                         re.MULTILINE), section
    assert "--seed 2026" in done.stdout
    junit = ET.fromstring((tmp_path / "r.xml").read_text())
    assert junit.get("tests") == str(len(ids)) and junit.get("failures") == "0"
    assert {s.get("name") for s in junit.iter("testsuite")} == set(sections)
    assert len(list(junit.iter("testcase"))) == len(ids)


def test_every_check_names_a_section_that_exists() -> None:
    headings = {}
    for doc in ("protocol.md", "conformance.md"):
        text = (ROOT / "spec" / doc).read_text(encoding="utf-8")
        headings[doc] = set(re.findall(r"^(?:#{2,3} |\*\*)(\d+(?:\.\d+)?)[. ]", text,
                                       re.MULTILINE))
    for check in all_checks(None, seed=1, mutations=10, peer=True):
        doc, _, number = check.section.partition(" §")
        assert number in headings[doc], check.id
        assert check.id.startswith(check.section + " / ")


@pytest.mark.parametrize(("mode", "section", "detail"), [
    ("corrupt-field", "protocol.md §6.3 / handshake-positive / basic / initiator", "HS1: got"),
    ("accept-downgrade", "protocol.md §4.9 / handshake-negative / hs2-downgrade",
     "accepted, expected downgrade"),
    ("wrong-code", "protocol.md §4.5 / handshake-negative / hs2-bit-flip",
     "refused with bad_signature, expected decrypt_failed"),
    ("crash-export", "protocol.md §6.3 / handshake-positive / basic / initiator",
     "the driver closed its output"),
    ("garbage", "protocol.md §", "bad reply: [malformed] not a JSON line"),
    ("lax-requests", "protocol.md §15.4 / requests / channel-serve",
     "step 2: decided {'answer': 'call'"),
    ("lax-requests", "protocol.md §15.4 / live / request-no-chain",
     "a request naming no chain: decided {'answer': 'call'"),
    ("mistyped-field", "protocol.md §6.3 / handshake-positive / basic / initiator",
     "the result's 'channel_binding' is missing or not lowercase hex: '42'"),
])
def test_a_broken_driver_fails_naming_the_section(mode: str, section: str, detail: str,
                                                  tmp_path: Path) -> None:
    done = conformance("run", "--driver", f"{BROKEN} {mode} {tmp_path / 'once'}",
                       "--mutations", "10", "--seed", "5")
    assert done.returncode == 1, done.stdout[-2000:]
    failures = [line for line in done.stdout.splitlines() if line.startswith("FAIL ")]
    assert any(line.startswith(f"FAIL {section}") and detail in line for line in failures), (
        failures[:5])
    total = re.search(r"^total\s+(\d+)\s+(\d+)\s+(\d+)$", done.stdout, re.MULTILINE)
    assert total is not None
    passed, failed = int(total[1]), int(total[2])
    assert failed == len(failures) >= 1 and passed > 150  # the run carried on


def test_one_wrong_code_fails_exactly_the_check_it_answers() -> None:
    """A driver right in everything but one code, given once: the check that got it fails,
    saying which code it expected and which it got, and every other check passes (the
    honest driver passes them all: the whole-suite test). In process, on the checks about
    reflection."""
    checks = [c for c in all_checks(None, seed=3, mutations=0, peer=False)
              if "reflect" in c.id]
    assert len(checks) >= 8
    command = f"{BROKEN} one-wrong-code"
    report = Report(driver=command, seed=3, mutations=0)
    ctx = Context([command], seed=3, timeout=10.0)
    try:
        run_checks(checks, ctx, report)
    finally:
        ctx.close()
    failed = [o for o in report.outcomes if o.status != "PASS"]
    assert [o.id for o in failed] == [checks[0].id]
    assert "refused with decrypt_failed, expected reflection" in failed[0].message
    assert report.outcomes[0].compared == ("reflection", "decrypt_failed")
    assert all(o.compared is not None and o.compared[0] == o.compared[1]
               for o in report.outcomes[1:])
    entry = json.loads(report.to_json())["checks"][0]
    assert entry["code"] == {"expected": "reflection", "got": "decrypt_failed"}


def test_a_driver_whose_replies_are_garbled_at_random_never_crashes_the_runner() -> None:
    done = conformance("run", "--driver", f"{BROKEN} chaos", "--seed", "9", "--mutations",
                       "30", "--differential", "6")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr and "runner fault" not in done.stdout
    total = re.search(r"^total\s+(\d+)\s+(\d+)\s+(\d+)$", done.stdout, re.MULTILINE)
    assert total is not None and int(total[2]) >= 1 and int(total[1]) > 100
    assert "--seed 9" in done.stdout


def test_every_check_that_expects_a_refusal_fails_when_everything_is_accepted(
        tmp_path: Path) -> None:
    """A driver that accepts whatever it is given fails every negative vector, attack and
    mutation round that asks for a refusal: none of them passes without it. (Those that
    pass: a changed HS1 may be answered, as long as the answer is useless; an unordered
    session opens swapped messages; a responder picks the common version; a changed request
    frame may still be a frame.)"""
    done = conformance("run", "--driver", f"{BROKEN} accept-all", "--mutations", "35",
                       "--json", str(tmp_path / "r.json"))
    assert done.returncode == 1
    checks = json.loads((tmp_path / "r.json").read_text())["checks"]
    negative = [c for c in checks if any(f"/ {kind} /" in c["id"] for kind in (
        "handshake-negative", "session-negative", "attack", "mutation"))]
    assert len(negative) > 160
    passed = {c["id"].split(" / ")[2] for c in negative if c["status"] != "FAIL"}
    assert passed <= {"tamper-hs1-ephemeral", "tamper-hs1-offer", "reordered-unordered",
                      "highest-common-version", "hs1", "frame"}, passed
    refused = [c for c in checks if "/ capability /" in c["id"] or "/ envelope /" in c["id"]]
    assert any(c["status"] == "FAIL" for c in refused)


def test_interop_fails_against_a_broken_peer_driver() -> None:
    done = conformance("run", "--driver", DRIVER, "--peer-driver", f"{BROKEN} corrupt-seal",
                       "--mutations", "0")
    assert done.returncode == 1
    failures = [line for line in done.stdout.splitlines() if line.startswith("FAIL ")]
    assert len(failures) == 4 and all(
        line.startswith("FAIL protocol.md §4.12 / interop / ") for line in failures)
    # The peer driver's sealed messages are broken, in whichever role it plays.
    assert "from the responder was refused at the other end with decrypt_failed" in failures[0]
    assert "from the initiator was refused at the other end with decrypt_failed" in failures[2]


def test_the_runner_waits_for_a_stalled_driver_only_so_long(tmp_path: Path) -> None:
    done = conformance("run", "--driver", f"{BROKEN} stall-binding {tmp_path / 'once'}",
                       "--mutations", "0", "--timeout", "2")
    assert done.returncode == 1
    failures = [line for line in done.stdout.splitlines() if line.startswith("FAIL ")]
    assert failures == [
        "FAIL protocol.md §4.12 / live / driver-initiator / ordered / handshake: driver "
        "broke the interface: channel_binding: no reply within 2 s"]  # then a new driver


def test_skips_fail_the_run_unless_allowed(tmp_path: Path) -> None:
    done = conformance("run", "--driver", f"{BROKEN} skip-notice", "--mutations", "0",
                       "--differential", "0", "--junit", str(tmp_path / "r.xml"))
    assert done.returncode == 1
    assert "SKIP protocol.md §10.8 / capability / notice-by-issuer: unimplemented" in done.stdout
    assert re.search(rf"^protocol\.md §10\.8\s+0\s+0\s+{NOTICES}$", done.stdout, re.MULTILINE)
    skipped = [c for c in ET.fromstring((tmp_path / "r.xml").read_text()).iter("testcase")
               if c.find("skipped") is not None]
    assert len(skipped) == NOTICES
    allowed = conformance("run", "--driver", f"{BROKEN} skip-notice", "--mutations", "0",
                          "--allow-skip")
    assert allowed.returncode == 0, allowed.stdout[-2000:]


def test_a_driver_that_cannot_start_fails_fast() -> None:
    done = conformance("run", "--driver", "/nonexistent/driver --flag", "--mutations", "3")
    assert done.returncode == 1
    assert "cannot start the driver" in done.stdout
    assert re.search(r"^total\s+0\s+\d+\s+0$", done.stdout, re.MULTILINE)


def test_disabled_checks_are_skipped_and_the_list_names_every_check() -> None:
    done = conformance("run", "--driver", DRIVER, "--mutations", "0", "--differential", "0",
                       "--disable", "protocol.md §10.8 / *", "--disable", "*/ attack / tamper-*")
    assert done.returncode == 1  # skipped: not allowed
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIP ")]
    assert len(skipped) == NOTICES + 7 + 8 and all("disabled by --disable" in x for x in skipped)
    assert not any(line.startswith("FAIL ") for line in done.stdout.splitlines())
    listed = conformance("run", "--list", "--mutations", "2", "--peer-driver", "x")
    assert listed.returncode == 0
    ids = listed.stdout.splitlines()
    assert len(ids) == len(set(ids)) > 250 and ids[0] == "conformance.md §4 / hello"
    assert sum("/ mutation /" in i for i in ids) == 2 and any("/ interop /" in i for i in ids)


def test_usage_errors() -> None:
    assert conformance("run").returncode == 2  # no --driver
    assert conformance("run", "--bogus").returncode == 2
    assert conformance("run", "--driver", DRIVER, "--mutations", "-1").returncode == 2


def test_the_same_seed_gives_the_same_run(tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.json"
        done = conformance("run", "--driver", DRIVER, "--seed", "77", "--mutations", "25",
                           "--json", str(path))
        assert done.returncode == 0, done.stdout[-2000:]
        outs.append([(c["id"], c["status"], c["message"])
                     for c in json.loads(path.read_text())["checks"]])
    assert outs[0] == outs[1]
    assert any("seed 77 round 24" in i for i, _, _ in outs[0])


def test_vectors_from_a_directory(tmp_path: Path) -> None:
    done = conformance("run", "--driver", DRIVER, "--vectors", str(ROOT / "spec" / "vectors"),
                       "--mutations", "0")
    assert done.returncode == 0, done.stdout[-2000:]
    missing = conformance("run", "--driver", DRIVER, "--vectors", str(tmp_path))
    assert missing.returncode == 3 and "cannot read the vectors" in missing.stderr


def test_a_constraint_vector_the_driver_disagrees_with_fails_its_check(tmp_path: Path
                                                                       ) -> None:
    """Replayed from a directory whose constraints.json expects the opposite of the spec in
    one matching and one fault case: exactly those two checks fail, naming the case."""
    for source in (ROOT / "spec" / "vectors").iterdir():
        (tmp_path / source.name).write_bytes(source.read_bytes())
    content = json.loads((tmp_path / "constraints.json").read_text())
    matching = next(x for x in content["matching"] if x["id"] == "range-above")
    matching["allowed"] = True
    fault = next(x for x in content["grant_faults"] if x["id"] == "open-world-false")
    fault["error"] = "malformed"
    (tmp_path / "constraints.json").write_text(json.dumps(content))
    done = conformance("run", "--driver", DRIVER, "--vectors", str(tmp_path), "--mutations",
                       "0", "--json", str(tmp_path / "r.json"))
    assert done.returncode == 1, done.stdout[-2000:]
    failed = {c["id"]: c["message"] for c in json.loads((tmp_path / "r.json").read_text())[
        "checks"] if c["status"] == "FAIL"}
    assert failed.keys() == {"protocol.md §10.1 / constraints / matching / range",
                             "protocol.md §10.3 / constraints / grant_faults"}
    assert "range-above: got False, expected True" in failed[
        "protocol.md §10.1 / constraints / matching / range"]
    assert "open-world-false: got non_canonical, expected malformed" in failed[
        "protocol.md §10.3 / constraints / grant_faults"]


def test_a_driver_that_stops_reading_cannot_hang_the_runner() -> None:
    # The child answers hello, then neither reads nor writes: a request larger than the
    # pipe's buffer cannot be written, and the runner gives up after its timeout.
    child = ("import sys, json, select; line = sys.stdin.readline(); "
             "print(json.dumps({'id': json.loads(line)['id'], 'result': {'interface': 1}}), "
             "flush=True); select.select([], [], [])")
    proc = DriverProcess(f"{sys.executable} -c {shlex.quote(child)}")
    try:
        assert proc.start()["interface"] == 1
        proc.timeout = 0.5
        with pytest.raises(DriverBroken, match=r"read no input for 0\.5 s"):
            proc.call("receive", handle="h1", message="00" * 200_000)
    finally:
        proc._proc.kill()
        proc.close()

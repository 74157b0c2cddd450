"""The alert checks (spec 4.14, conformance 7.1) against this implementation's driver, and
against one whose ``alert`` answers are wrong: each wrong answer fails its own check."""

from __future__ import annotations

import sys
from pathlib import Path

from agentauth.conformance.runner import Context, Report
from agentauth.conformance.runner.alerts import alert_checks
from agentauth.conformance.runner.suite import run_checks
from agentauth.conformance.runner.vector_replay import load_vectors

DRIVER = f"{sys.executable} -m agentauth conformance driver"
BROKEN = f"{sys.executable} {Path(__file__).resolve().parents[1] / 'support' / 'broken_driver.py'}"


def run(driver: str) -> Report:
    checks = alert_checks(load_vectors(None))
    ctx = Context([driver], seed=1, timeout=10.0)
    report = Report(driver=driver, seed=1, mutations=0)
    try:
        run_checks(checks, ctx, report)
    finally:
        ctx.close()
    return report


def test_our_driver_passes_every_alert_check() -> None:
    report = run(DRIVER)
    failed = [(o.id, o.message) for o in report.outcomes if o.status != "PASS"]
    assert not failed
    ids = [o.id for o in report.outcomes]
    assert len(ids) == len(set(ids)) > 100
    assert all(i.startswith("protocol.md §4.14 / alerts / ") for i in ids)


def test_a_driver_that_sends_no_alert_fails_exactly_the_checks_that_expect_one() -> None:
    report = run(f"{BROKEN} wrong-alert")
    failed = {o.id: o.message for o in report.outcomes if o.status == "FAIL"}
    vectors = load_vectors(None)["alerts.json"]
    expected = {f"protocol.md §4.14 / alerts / sent / {v['handshake']}"
                for v in vectors["sent"] if v["alert"] is not None}
    expected |= {f"protocol.md §4.14 / alerts / forms / {v['id']}" for v in vectors["forms"]
                 if v["code"] != "expired"}  # the one claim the broken driver gets right
    expected |= {f"protocol.md §4.14 / alerts / received / {v['id']}"
                 for v in vectors["received"] if v["claimed"] or v["alert"]}
    assert set(failed) == expected
    assert "the code claimed: got 'expired', expected 'bad_signature'" in failed[
        "protocol.md §4.14 / alerts / forms / alert-bad_signature"]
    assert "the alert sent: got None, expected '8200" in failed[
        "protocol.md §4.14 / alerts / sent / hs2-bit-flip"]

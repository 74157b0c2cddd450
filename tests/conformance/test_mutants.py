"""Mutant implementations (:mod:`mutants`): each breaks one rule and is seen to answer some
input differently; the runner kills a handful of them, and the differential mode finds
one the runner's checks let through. The full kill report is run by hand:
``python -m tests.conformance.mutants``."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import mutants
import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
DRIVER = f"{sys.executable} -m agentauth conformance driver"


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda m: m.name)
def test_each_mutant_answers_its_witness_differently(mutant: mutants.Mutant) -> None:
    assert mutant.witness, "no witness: run python -m tests.conformance.mutants witness"
    assert mutants.difference(mutant) is not None


def test_the_mutants_cover_every_part_the_runner_checks() -> None:
    assert 40 <= len(mutants.MUTANTS) <= 90
    assert len({m.name for m in mutants.MUTANTS}) == len(mutants.MUTANTS)
    sections = {m.section for m in mutants.MUTANTS}
    for prefix in ("protocol.md §4.", "protocol.md §5.", "protocol.md §10.",
                   "protocol.md §12.", "protocol.md §15.", "conformance.md §"):
        assert any(s.startswith(prefix) for s in sections), prefix
    # One for each rule a second implementation had to guess (check orders, bin payloads,
    # the notice path, binding length, signature length and step, notice time, the
    # invocation window, sealed-box inner codes, start on a responder, unknown handles).
    for name in ("trust-before-expected-peer", "grants-before-scalars",
                 "action-syntax-before-order", "invocation-nested-payload",
                 "notice-nested-payload", "envelope-nested-body", "notice-path-versioned",
                 "binding-one-byte-long", "signature-length-unchecked",
                 "recipient-before-signature-length", "notice-time-any-type",
                 "invocation-window-end-exclusive", "invocation-window-one-sided",
                 "sealed-inner-kind-code", "start-on-responder", "unknown-handle-code"):
        assert name in mutants.BY_NAME, name


def test_a_mutant_is_undone_completely() -> None:
    from agentauth.capability import chain  # noqa: PLC0415

    before = chain._verify_chain.__code__
    undo = mutants.apply(mutants.BY_NAME["expired-accepted"])
    assert chain._verify_chain.__code__ is not before
    undo()
    assert chain._verify_chain.__code__ is before


def test_a_patch_that_no_longer_applies_is_an_error() -> None:
    broken = mutants.Mutant("gone", "protocol.md §10.6", "agentauth.capability.chain",
                            (("text that is not there", "x"),), "nothing")
    with pytest.raises(mutants.MutantError, match="occurs 0 times"):
        mutants.apply(broken)


def test_the_runner_kills_a_handful_of_mutants() -> None:
    chosen = ["expired-accepted", "unordered-replay-accepted", "unknown-handle-code",
              "in-flight-limit-plus-one"]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda name: mutants.run_one(
            mutants.BY_NAME[name], seed=7, mutations=0, rounds=0, differential=0), chosen))
    for result in results:
        assert result["killed"], result


def test_the_differential_mode_finds_what_the_runner_lets_through(tmp_path: Path) -> None:
    """A link still valid at expires + skew is an edge the runner's chains never sit on:
    the differential mode, against the real driver, finds it and names the operation."""
    done = subprocess.run(
        [sys.executable, "-m", "agentauth", "conformance", "diff", "--driver", DRIVER,
         "--driver", mutants.driver_command("expiry-end-inclusive"), "--seed", "3",
         "--rounds", "40", "--operation", "verify_chain", "--json", str(tmp_path / "d.json")],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr
    found = json.loads((tmp_path / "d.json").read_text())["differences"]
    assert found and {d["operation"] for d in found} == {"verify_chain"}
    assert any([a["value"] for a in d["answers"]] == ["expired", {}] for d in found)

"""Every fuzzing harness in ``fuzz/`` runs a few hundred inputs, its seeds from
``spec/vectors`` first, through ``python3 -m fuzz``: nothing but the library's own errors
may come out. Together they take well under a minute on a quiet machine."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 300


def _harnesses() -> tuple[str, ...]:
    # Read from the package without importing it: importing it instruments agentauth.
    tree = ast.parse((ROOT / "fuzz" / "__init__.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "HARNESSES"
                        for t in node.targets)):
            names: tuple[str, ...] = ast.literal_eval(node.value)
            return names
    raise AssertionError("fuzz/__init__.py names no HARNESSES")


HARNESSES = _harnesses()


def test_atheris_is_installed() -> None:
    # The harnesses need it; in CI its absence is a failure, not a skip.
    assert importlib.import_module("atheris")


def test_every_module_of_fuzz_is_a_harness_or_a_helper() -> None:
    modules = {p.stem for p in (ROOT / "fuzz").glob("*.py")}
    assert modules - {"__init__", "__main__", "corpus"} - set(HARNESSES) == {"_common",
                                                                             "_http"}


def run_harnesses(names: list[str], tmp_path: Path) -> dict[str, list[str]]:
    """Run ``names`` through the runner: its table's row for each, or the failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "fuzz", "--runs", str(RUNS), "--seed", "1",
         "--only", ",".join(names), "--corpus", str(tmp_path / "corpus"),
         "--findings", str(tmp_path / "findings")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr + "".join(
        p.read_text(errors="replace") for p in (tmp_path / "findings").glob("*.txt"))
    return {row[0]: row for row in map(str.split, done.stdout.splitlines())
            if row and row[0] in names}


def test_every_harness_runs_clean(tmp_path: Path) -> None:
    names = list(HARNESSES)
    rows = run_harnesses(names, tmp_path)
    for name in names:  # inputs run, and no finding
        assert int(rows[name][1]) >= RUNS and rows[name][-1] == "0", rows[name]

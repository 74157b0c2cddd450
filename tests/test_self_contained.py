"""The repository stands on its own: a clone with nothing beside it installs the test extra
and runs the whole suite. No test imports the benchmarks (they need the bench extra), and
the test extra holds nothing that only the benchmarks use."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def requirement_names(extra: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
            for requirement in project["optional-dependencies"][extra]}


def test_no_test_imports_the_benchmarks() -> None:
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] if node.level == 0 else []
            else:
                continue
            assert not any(m.split(".")[0] == "benchmarks" for m in modules), (
                f"{path.relative_to(ROOT)}:{node.lineno} imports {modules}")


def test_the_test_extra_holds_nothing_only_the_benchmarks_use() -> None:
    test, bench = requirement_names("test"), requirement_names("bench")
    assert "trustme" in test  # the tests' TLS certificates
    assert not test & bench, test & bench

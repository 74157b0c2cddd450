"""The repository stands on its own: a clone with nothing beside it installs the test extra
and runs the whole suite. No test imports the benchmarks (they need the bench extra), the
test extra holds nothing that only the benchmarks use, no file names a folder beside the
repository, and CI runs the README's set-up commands as they are written there."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def requirement_names(extra: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
            for requirement in project["optional-dependencies"][extra]}


def repository_files() -> Iterator[Path]:
    """The files git has or would take, or, outside a clone, those under the root but
    hidden folders'."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode == 0 and listed.stdout:
        yield from (ROOT / name for name in listed.stdout.decode().split("\0") if name)
        return
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in parts):
            yield path


def setup_commands() -> list[str]:
    """The README's set-up commands as CI reads them, one a line."""
    done = subprocess.run(["bash", str(ROOT / ".ci" / "setup-commands")], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_no_test_imports_the_benchmarks() -> None:
    for path in TESTS.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "benchmarks" not in text:
            continue  # parsed only where the name occurs: the whole suite is slow to parse
        for node in ast.walk(ast.parse(text, str(path))):
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


def test_no_file_names_a_folder_beside_the_repository() -> None:
    folder = "shar" + "ed"  # spelt apart, so that this file does not name it either
    ways = (f"{folder}/", f'"{folder}" /', f"../{folder}")  # in a path, joined, relative
    for path in repository_files():
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            assert not any(way in text for way in ways), path.relative_to(ROOT)


def test_ci_runs_the_readme_set_up_commands_as_written() -> None:
    """The README's set-up block is exactly two commands, which CI reads from it and runs
    in a fresh clone: a plain install and the demo, then Debian's redis-server if missing,
    the test extra alone and the whole suite. CI has no copy of them to drift."""
    commands = setup_commands()
    assert len(commands) == 2, commands
    first, second = (command.partition("  #")[0].strip() for command in commands)
    assert first == "python3 -m pip install . && agentauth demo"
    assert second == ("(command -v redis-server || (apt-get update && apt-get install -y "
                      "redis-server)) && python3 -m pip install -e '.[test]' && "
                      "python3 -m pytest -q -p no:cacheprovider -n auto")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Set-up\n", 1)[1].split("\n#", 1)[0]  # to a heading
    assert section.count("```sh\n") == 1
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "git clone" in ci and ".ci/setup-commands" in ci
    assert "pip install . " not in ci and ".[test" not in ci

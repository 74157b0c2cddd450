"""The command line's ``--json`` output and environment, as the README documents them: each
command's documented example has the keys its real output has, every failure is the same
error object, and every environment variable the package reads is in ``--help`` and the
README."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.cli import Ran
from support.cli import agentauth as run_cli

from agentauth.cli.common import ENVIRONMENT, PASSPHRASE_VARIABLE

ROOT_DIR = Path(__file__).resolve().parents[2]
README = (ROOT_DIR / "README.md").read_text(encoding="utf-8")
# The passphrase comes from AGENTAUTH_PASSPHRASE alone here: no option names another.
ENV = {**os.environ, "PYTHONPATH": str(ROOT_DIR), PASSPHRASE_VARIABLE: "json passphrase"}
# Objects whose keys are data (constraint names, section ids), not part of the shape.
DATA_MAPS = {"constraints", "sections"}


def agentauth(cwd: Path, *args: str, env: dict[str, str] = ENV) -> Ran:
    return run_cli(args, cwd=cwd, env=env, timeout=120)


def as_json(cwd: Path, *args: str) -> Any:
    done = agentauth(cwd, *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)  # one JSON object: json.loads refuses anything after it


def documented() -> dict[str, Any]:
    section = README.split("### JSON output", 1)[1].split("\n### ", 1)[0]
    examples: dict[str, Any] = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    return examples


def same_shape(doc: Any, real: Any, where: str) -> None:
    """``real`` has the keys ``doc`` has, all the way down, and values of the same kind."""
    if doc is None or real is None:
        return  # a nullable field: null in one, a value in the other
    if isinstance(doc, dict):
        assert isinstance(real, dict), where
        assert set(doc) == set(real), (where, sorted(doc), sorted(real))
        for key in doc:
            if key not in DATA_MAPS:
                same_shape(doc[key], real[key], f"{where}.{key}")
    elif isinstance(doc, list):
        assert isinstance(real, list), where
        if doc and not isinstance(doc[0], str):
            for item in real:
                same_shape(doc[0], item, f"{where}[]")
    elif isinstance(doc, bool | str):
        assert type(real) is type(doc), (where, real)
    else:
        assert isinstance(real, int | float) and not isinstance(real, bool), (where, real)


def test_every_documented_example_has_the_real_outputs_keys(tmp_path: Path) -> None:
    real: dict[str, Any] = {}
    ids = {}
    for name in ("root", "bob", "bob-2", "bob-3"):
        ids[name] = as_json(tmp_path, "keygen", f"{name}.key", "--preset",
                            "interactive")["agent_id"]
    real["keygen"] = as_json(tmp_path, "keygen", "alice.key", "--preset", "interactive")
    ids["alice"] = real["keygen"]["agent_id"]
    real["id"] = as_json(tmp_path, "id", "alice.key")
    real["export"] = as_json(tmp_path, "export", "alice.key")
    real["trust add"] = as_json(tmp_path, "trust", "add", "bob", ids["bob"])
    as_json(tmp_path, "trust", "add", "corp", ids["root"], "--anchor", "reports/**")
    real["rotate"] = as_json(tmp_path, "rotate", "--key", "bob.key", "--new", "bob-2.key",
                             "--next", ids["bob-3"], "--out", "rotation.bin")
    real["trust rotate"] = as_json(tmp_path, "trust", "rotate", "rotation.bin")
    real["trust list"] = as_json(tmp_path, "trust", "list")
    real["trust remove"] = as_json(tmp_path, "trust", "remove", "bob")
    real["delegate"] = as_json(tmp_path, "delegate", "--key", "root.key", "--to", ids["alice"],
                               "--grant", "reports/**=read;size=range:0..1000", "--out",
                               "alice.chain")
    real["inspect"] = as_json(tmp_path, "inspect", "alice.chain")
    real["verify"] = as_json(tmp_path, "verify", "alice.chain", "--anchor", ids["root"])
    real["revoke"] = as_json(tmp_path, "revoke", "--key", "root.key", "--chain", "alice.chain",
                             "--link", "0", "--store", "revoked.db")
    script = ("import logging, sys\n"
              "from agentauth.audit import emit\n"
              "from agentauth.keys.auditlog import AuditFileHandler\n"
              "logger = logging.getLogger('agentauth.audit')\n"
              "logger.addHandler(AuditFileHandler('audit.log'))\n"
              "logger.setLevel(logging.INFO)\n"
              "emit('token_refused', code='expired')\n")
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=ENV, check=True,
                   timeout=60)
    real["audit verify"] = as_json(tmp_path, "audit", "verify", "audit.log")
    real["demo"] = as_json(tmp_path, "demo")
    real["conformance run"] = as_json(
        tmp_path, "conformance", "run", "--driver",
        f"{sys.executable} -m agentauth conformance driver", "--mutations", "0")
    real["conformance run --list"] = as_json(tmp_path, "conformance", "run", "--list")
    refused = agentauth(tmp_path, "verify", "alice.chain", "--anchor", ids["alice"], "--json")
    assert refused.returncode == 1
    real["error"] = json.loads(refused.stdout)

    examples = documented()
    assert set(examples) == set(real)
    for command, example in examples.items():
        same_shape(example, real[command], command)
    for link in real["inspect"]["links"]:  # documented as "each link as in delegate"
        same_shape(examples["delegate"]["link"], link, "inspect.links[]")
    assert real["inspect"]["verified"] is False and real["id"]["verified"] is False
    assert real["conformance run"]["totals"]["FAIL"] == 0


def test_every_failure_is_the_same_error_object(tmp_path: Path) -> None:
    (tmp_path / "junk.chain").write_bytes(b"\x81\x00")
    cases = [  # (arguments, exit status, code, kind)
        (["id"], 2, "invalid_argument", "usage"),                      # argparse
        (["keygen", "k.key", "--preset", "nope"], 2, "invalid_argument", "usage"),
        (["inspect", "missing.chain"], 3, "file_not_found", "bad input"),
        (["inspect", "junk.chain"], 3, "malformed", "bad input"),
        (["verify", "junk.chain", "--anchor", "did:key:nope"], 2, "agent_id_prefix",
         "usage"),
        (["conformance", "run"], 2, "invalid_argument", "usage"),     # the runner's own
        (["conformance", "run", "--driver", "x", "--vectors", "missing"], 3,
         "invalid_argument", "bad input"),
    ]
    for args, status, code, kind in cases:
        done = agentauth(tmp_path, *args, "--json")
        assert done.returncode == status, (args, done.stdout, done.stderr)
        error = json.loads(done.stdout)["error"]
        assert (error["code"], error["kind"]) == (code, kind), (args, error)
        assert error["reason"] and not error["reason"].startswith("[")
        assert done.stderr.startswith("agentauth: ") and done.stderr.count("\n") == 1, args
        assert f"[{code}]" in done.stderr or code == "invalid_argument", done.stderr


def _is_environ(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _variables_read() -> set[str]:
    """Every environment variable the package reads (``os.environ[...]``, ``.get``, ``in``,
    ``os.getenv``) by name; one named at run time (by ``--passphrase-env``) as ``NAME``."""
    names: set[str] = set()
    for path in (ROOT_DIR / "agentauth").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {node.targets[0].id: node.value.value for node in ast.walk(tree)
                     if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                     and isinstance(node.value, ast.Constant)}
        for node in ast.walk(tree):
            key: ast.expr | None = None
            if isinstance(node, ast.Subscript) and _is_environ(node.value):
                key = node.slice
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                    node.func.attr == "getenv" or _is_environ(node.func.value)):
                key = node.args[0] if node.args else None
            elif isinstance(node, ast.Compare) and _is_environ(node.comparators[0]):
                key = node.left
            if key is None:
                continue
            if isinstance(key, ast.Constant):
                names.add(str(key.value))
            elif isinstance(key, ast.Name) and key.id in constants:
                names.add(str(constants[key.id]))
            else:
                names.add("NAME")
    return names


def test_every_environment_variable_read_is_in_help_and_the_readme(tmp_path: Path) -> None:
    read = _variables_read()
    assert PASSPHRASE_VARIABLE in read
    listed = {name.split()[0] for name, _ in ENVIRONMENT}
    assert read == listed, read ^ listed
    shown = agentauth(tmp_path, "--help").stdout
    for name, _ in ENVIRONMENT:
        assert name in shown
    assert f"`{PASSPHRASE_VARIABLE}`" in README
    for command in ("keygen", "delegate", "revoke", "rotate"):
        assert PASSPHRASE_VARIABLE in agentauth(tmp_path, command, "--help").stdout

"""The key lifecycle commands, end to end, as separate processes: keygen, id, export, trust,
rotate and audit verify, with every bad input named in their specification."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import Ran
from support.cli import agentauth as run_cli

from agentauth import PeerKey

ROOT_DIR = Path(__file__).resolve().parents[2]
PASSPHRASE = "tr0ub4dor & 3"
ENV = {**os.environ, "PYTHONPATH": str(ROOT_DIR), "KEY_PASS": PASSPHRASE}
PASS = ("--passphrase-env", "KEY_PASS")


def agentauth(cwd: Path, *args: str, fds: tuple[int, ...] = (), env: dict[str, str] = ENV
              ) -> Ran:
    return run_cli(args, cwd=cwd, env=env, fds=fds)


def ok(cwd: Path, *args: str) -> str:
    done = agentauth(cwd, *args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def fails(cwd: Path, status: int, code: str, *args: str) -> str:
    done = agentauth(cwd, *args)
    assert done.returncode == status, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("agentauth"), done.stderr
    assert f"[{code}]" in done.stderr or code in done.stderr, done.stderr
    assert PASSPHRASE not in done.stderr + done.stdout
    return done.stderr


def keygen(cwd: Path, name: str, *extra: str) -> str:
    return ok(cwd, "keygen", name, "--preset", "interactive", *PASS, *extra).strip()


def test_keygen_and_id_by_environment_and_descriptor(tmp_path: Path) -> None:
    agent_id = keygen(tmp_path, "a.key")
    assert agent_id.startswith("did:key:z6Mk")
    assert (tmp_path / "a.key").stat().st_mode & 0o777 == 0o600
    assert PASSPHRASE.encode() not in (tmp_path / "a.key").read_bytes()
    assert ok(tmp_path, "id", "a.key", *PASS).strip() == agent_id
    read, write = os.pipe()
    os.write(write, PASSPHRASE.encode() + b"\n")
    os.close(write)
    try:
        done = agentauth(tmp_path, "id", "a.key", "--verify", "--passphrase-fd", str(read),
                         fds=(read,))
    finally:
        os.close(read)
    assert done.returncode == 0 and done.stdout.strip() == agent_id, done.stderr
    made = json.loads(ok(tmp_path, "keygen", "b.key", "--preset", "interactive", *PASS,
                         "--json"))
    assert made["encrypted"] is True and made["preset"] == "interactive"
    assert json.loads(ok(tmp_path, "id", "b.key", *PASS, "--json")) == {
        "agent_id": made["agent_id"], "verified": False}
    assert json.loads(ok(tmp_path, "id", "b.key", "--verify", *PASS, "--json")) == {
        "agent_id": made["agent_id"], "verified": True}


def test_passphrases_never_come_from_arguments(tmp_path: Path) -> None:
    keygen(tmp_path, "a.key")
    done = agentauth(tmp_path, "id", "a.key", "--verify", "--passphrase", PASSPHRASE)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    # No terminal and no option: a usage error, not a silent default.
    fails(tmp_path, 2, "invalid_argument", "id", "a.key", "--verify")
    fails(tmp_path, 2, "invalid_argument", "id", "a.key", "--verify", "--passphrase-env",
          "UNSET_VAR")
    fails(tmp_path, 2, "invalid_argument", "id", "a.key", "--verify", *PASS,
          "--passphrase-fd", "0")
    fails(tmp_path, 2, "invalid_argument", "keygen", "c.key", "--unencrypted", *PASS)


def test_bad_key_files(tmp_path: Path) -> None:
    keygen(tmp_path, "a.key")
    before = (tmp_path / "a.key").read_bytes()
    env = {**ENV, "KEY_PASS": "wrong"}
    done = agentauth(tmp_path, "id", "a.key", "--verify", *PASS, env=env)
    assert done.returncode == 3 and "[wrong_passphrase]" in done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1
    (tmp_path / "a.key").chmod(0o644)
    fails(tmp_path, 3, "key_file_permissions", "id", "a.key", *PASS)
    (tmp_path / "a.key").chmod(0o600)
    assert (tmp_path / "a.key").read_bytes() == before  # no failed load wrote to it
    (tmp_path / "t.key").write_bytes(before[:100])
    (tmp_path / "t.key").chmod(0o600)
    fails(tmp_path, 3, "key_file_corrupt", "id", "t.key", *PASS)
    tampered = bytearray(before)
    tampered[-1] ^= 1
    (tmp_path / "x.key").write_bytes(bytes(tampered))
    (tmp_path / "x.key").chmod(0o600)
    fails(tmp_path, 3, "wrong_passphrase", "id", "x.key", "--verify", *PASS)
    v2 = bytearray(before)
    v2[15] = 2
    (tmp_path / "v2.key").write_bytes(bytes(v2))
    (tmp_path / "v2.key").chmod(0o600)
    fails(tmp_path, 3, "key_file_version", "id", "v2.key", *PASS)
    fails(tmp_path, 3, "file_not_found", "id", "missing.key", *PASS)
    fails(tmp_path, 2, "exists already", "keygen", "a.key", "--preset", "interactive", *PASS)
    error = json.loads(agentauth(tmp_path, "id", "t.key", *PASS, "--json").stdout)
    assert error["error"]["code"] == "key_file_corrupt"


def test_unencrypted_keys_only_with_the_flag(tmp_path: Path) -> None:
    agent_id = ok(tmp_path, "keygen", "plain.key", "--unencrypted").strip()
    assert len((tmp_path / "plain.key").read_text().strip()) == 64
    fails(tmp_path, 3, "key_file_unencrypted", "id", "plain.key", *PASS)
    assert ok(tmp_path, "id", "plain.key", "--unencrypted").strip() == agent_id


def test_export_forms(tmp_path: Path) -> None:
    agent_id = keygen(tmp_path, "a.key")
    forms = json.loads(ok(tmp_path, "export", "a.key", *PASS, "--json"))
    key = PeerKey.from_agent_id(agent_id)
    assert forms == {"did-key": agent_id, "multibase": agent_id[len("did:key:"):],
                     "jwk": {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(
                         key.public_bytes).rstrip(b"=").decode()},
                     "thumbprint": key.jwk_thumbprint(), "verified": False}
    # An agent id is what it says; a key file opened with --verify is checked.
    assert {**forms, "verified": True} == json.loads(ok(tmp_path, "export", agent_id, "--json"))
    assert {**forms, "verified": True} == json.loads(ok(tmp_path, "export", "a.key", "--verify",
                                                        *PASS, "--json"))
    # The did:key specification's example key, and its thumbprint computed here by hand.
    example = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    jwk = json.loads(ok(tmp_path, "export", example, "--format", "jwk"))
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]},
                           separators=(",", ":"))
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    assert ok(tmp_path, "export", example, "--format", "thumbprint").strip() == \
        thumbprint.rstrip(b"=").decode()
    assert ok(tmp_path, "export", example, "--format", "multibase").strip() == \
        example[len("did:key:"):]
    text = ok(tmp_path, "export", example)
    assert text.splitlines()[0].split() == ["did-key", example]
    fails(tmp_path, 2, "agent_id", "export", "did:key:z6MkNOPE")


def test_trust_add_list_remove(tmp_path: Path) -> None:
    alice, root = keygen(tmp_path, "alice.key"), keygen(tmp_path, "root.key")
    ok(tmp_path, "trust", "add", "alice", alice)
    ok(tmp_path, "trust", "add", "corp", root, "--anchor", "reports/**")
    rows = json.loads(ok(tmp_path, "trust", "list", "--json"))["entries"]
    assert [(r["kind"], r["name"], r["id"], r["namespace"]) for r in rows] == [
        ("peer", "alice", alice, None), ("anchor", "corp", root, "reports/**")]
    assert "corp" in ok(tmp_path, "trust", "list")
    fails(tmp_path, 2, "used twice", "trust", "add", "alice", root)
    fails(tmp_path, 2, "agent_id", "trust", "add", "bob", "did:key:nope")
    fails(tmp_path, 2, "invalid_argument", "trust", "add", "x", root, "--anchor", "a/**/b")
    ok(tmp_path, "trust", "remove", "alice")
    listed = json.loads(ok(tmp_path, "trust", "list", "--json"))
    assert listed["store"] == "trust.toml" and [r["name"] for r in listed["entries"]] == ["corp"]
    fails(tmp_path, 2, "no entry", "trust", "remove", "alice")
    store = tmp_path / "trust.toml"
    # Comments and order written by hand stay through the command's edits.
    store.write_text("# pinned by hand\n" + store.read_text().replace(
        "[[anchor]]", "# the corporate root\n[[anchor]]") + "# end of store\n")
    ok(tmp_path, "trust", "add", "bob", alice)
    ok(tmp_path, "trust", "remove", "bob")
    assert store.read_text().startswith("# pinned by hand\n")
    assert "# the corporate root\n[[anchor]]" in store.read_text()
    assert store.read_text().endswith("# end of store\n")
    store.write_text(store.read_text().replace("namespace", "namespaces"))
    error = fails(tmp_path, 3, "trust_store_invalid", "trust", "list")
    assert "line 10: anchor[0].namespaces: unknown field" in error
    store.write_text("version = 1\n[[peer]\n")
    assert "line 2" in fails(tmp_path, 3, "trust_store_invalid", "trust", "list")
    store.write_text("version = 1\n")
    store.chmod(0o666)
    fails(tmp_path, 3, "trust_store_permissions", "trust", "list")
    fails(tmp_path, 3, "file_not_found", "trust", "list", "--store", "other.toml")


def test_rotation_on_the_command_line(tmp_path: Path) -> None:
    k0, k1, k2, _k3 = (keygen(tmp_path, f"k{i}.key") for i in range(4))
    ok(tmp_path, "trust", "add", "alice", k0)
    made = json.loads(ok(tmp_path, "rotate", "--key", "k0.key", "--new", "k1.key", "--next",
                         k2, "--out", "r1.bin", *PASS, "--json"))
    assert made["old"] == k0 and made["new"] == k1 and len(made["next"]) == 64
    moved = json.loads(ok(tmp_path, "trust", "rotate", "r1.bin", "--json"))
    assert moved["entries"] == ["alice"] and moved["new"] == k1
    assert json.loads(ok(tmp_path, "trust", "list", "--json"))["entries"][0]["retired"] == [k0]
    fails(tmp_path, 1, "key_rotated", "trust", "rotate", "r1.bin")  # accepted once
    ok(tmp_path, "rotate", "--key", "k0.key", "--new", "k3.key", "--out", "stale.bin", *PASS)
    fails(tmp_path, 1, "key_rotated", "trust", "rotate", "stale.bin")
    ok(tmp_path, "rotate", "--key", "k1.key", "--new", "k3.key", "--out", "wrong.bin", *PASS)
    fails(tmp_path, 1, "rotation_mismatch", "trust", "rotate", "wrong.bin")
    ok(tmp_path, "rotate", "--key", "k1.key", "--new", "k2.key", "--out", "r2.bin", *PASS)
    ok(tmp_path, "trust", "rotate", "r2.bin")
    assert json.loads(ok(tmp_path, "trust", "list", "--json"))["entries"][0]["id"] == k2
    (tmp_path / "junk.bin").write_bytes(b"\x83\x00")
    fails(tmp_path, 3, "malformed", "trust", "rotate", "junk.bin")
    forged = bytearray((tmp_path / "r2.bin").read_bytes())
    forged[-1] ^= 1
    (tmp_path / "forged.bin").write_bytes(bytes(forged))
    fails(tmp_path, 1, "bad_signature", "trust", "rotate", "forged.bin")
    fails(tmp_path, 2, "exists already", "rotate", "--key", "k1.key", "--new", "k2.key",
          "--out", "r2.bin", *PASS)


def test_rotation_between_keys_under_different_passphrases(tmp_path: Path) -> None:
    old = keygen(tmp_path, "old.key")
    env = {**ENV, "NEW_PASS": "another one"}
    done = agentauth(tmp_path, "keygen", "new.key", "--preset", "interactive",
                     "--passphrase-env", "NEW_PASS", env=env)
    assert done.returncode == 0, done.stderr
    new = done.stdout.strip()
    args = ["rotate", "--key", "old.key", "--new", "new.key", "--out", "r.bin", *PASS]
    same = agentauth(tmp_path, *args, env=env)
    assert same.returncode == 3 and "[wrong_passphrase]" in same.stderr
    made = agentauth(tmp_path, *args, "--new-passphrase-env", "NEW_PASS", "--json", env=env)
    assert made.returncode == 0, made.stderr
    assert (json.loads(made.stdout)["old"], json.loads(made.stdout)["new"]) == (old, new)


def write_audit_log(path: Path, count: int) -> None:
    script = ("import logging, sys\n"
              "from agentauth.audit import emit\n"
              "from agentauth.keys.auditlog import AuditFileHandler\n"
              "logger = logging.getLogger('agentauth.audit')\n"
              "logger.addHandler(AuditFileHandler(sys.argv[1]))\n"
              "logger.setLevel(logging.INFO)\n"
              f"for i in range({count}):\n"
              "    emit('token_refused', code='expired', n=i)\n")
    subprocess.run([sys.executable, "-c", script, str(path)], env=ENV, check=True,
                   timeout=60)


def test_audit_verify_finds_the_exact_record(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    write_audit_log(log, 8)
    summary = json.loads(ok(tmp_path, "audit", "verify", "audit.log", "--json"))
    assert summary["records"] == 8 and summary["ok"] is True
    assert ok(tmp_path, "audit", "verify", "audit.log", "--head", summary["head"]).startswith(
        "ok: 8 record(s)")
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:5]) + lines[5].replace('"n":5', '"n":6') + "".join(
        lines[6:]))
    assert "record 6 (seq 6) was edited" in fails(tmp_path, 1, "audit_log_broken", "audit",
                                                  "verify", "audit.log")
    log.write_text("".join(lines[:2] + lines[3:]))
    assert "record 3 has seq 4" in fails(tmp_path, 1, "audit_log_broken", "audit", "verify",
                                         "audit.log")
    log.write_text("".join([*lines[:6], lines[7], lines[6]]))
    assert "record 7 has seq 8" in fails(tmp_path, 1, "audit_log_broken", "audit", "verify",
                                         "audit.log")
    log.write_text("".join(lines[:7]))
    assert "dropped from the end" in fails(tmp_path, 1, "audit_log_broken", "audit",
                                           "verify", "audit.log", "--head", summary["head"])
    error = json.loads(agentauth(tmp_path, "audit", "verify", "audit.log", "--head",
                                 summary["head"], "--json").stdout)
    assert error["error"]["code"] == "audit_log_broken"


LEAVES = [("demo",), ("keygen",), ("id",), ("export",), ("trust", "add"), ("trust", "list"),
          ("trust", "remove"), ("trust", "rotate"), ("rotate",), ("audit", "verify"),
          ("delegate",), ("inspect",), ("verify",), ("revoke",), ("conformance", "run"),
          ("conformance", "diff")]


@pytest.mark.parametrize("command", LEAVES, ids=" ".join)
def test_every_command_has_an_example_and_json(tmp_path: Path, command: tuple[str, ...]
                                               ) -> None:
    text = ok(tmp_path, *command, "--help")
    assert "example:\n  agentauth " in text
    assert "--json" in text


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    for args in (("bogus",), ("keygen",), ("trust",), ("audit", "verify"),
                 ("export", "x", "--format", "pem")):
        done = agentauth(tmp_path, *args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr


def _on_a_terminal(cwd: Path, args: list[str], answers: list[str],
                   env: dict[str, str] = ENV) -> tuple[int, str]:
    """Run agentauth with a pseudo-terminal as its controlling terminal; answer each
    passphrase prompt in turn. Returns the exit status and everything it wrote."""
    import pty  # noqa: PLC0415  (POSIX only)

    pid, master = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling terminal
        try:
            os.chdir(cwd)
            os.execve(sys.executable, [sys.executable, "-m", "agentauth", *args], env)
        finally:
            os._exit(127)  # never back into the test runner
    seen = b""
    pending = list(answers)
    try:
        while True:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            # getpass turns echo off (flushing input) before it writes its prompt: answer
            # each prompt once it is shown, never ahead of it.
            if pending and seen.endswith(b": "):
                os.write(master, pending.pop(0).encode() + b"\n")
    finally:
        os.close(master)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def test_the_passphrase_prompt(tmp_path: Path) -> None:
    status, out = _on_a_terminal(tmp_path, ["keygen", "t.key", "--preset", "interactive"],
                                 [PASSPHRASE, PASSPHRASE])
    assert status == 0, out
    assert "passphrase again:" in out and PASSPHRASE not in out  # not echoed
    # On a terminal the slow Argon2id step is shown, then its line cleared.
    assert "agentauth: sealing t.key (Argon2id, interactive)...\r\x1b[K" in out
    agent_id = out.strip().splitlines()[-1].removeprefix("\x1b[K").strip()
    assert agent_id.startswith("did:key:z6Mk")
    assert ok(tmp_path, "id", "t.key", *PASS).strip() == agent_id
    status, out = _on_a_terminal(tmp_path, ["id", "t.key", "--verify"], [PASSPHRASE])
    assert status == 0 and "agentauth: unlocking t.key (Argon2id)..." in out, out
    assert out.strip().splitlines()[-1].removeprefix("\x1b[K").strip() == agent_id, out
    status, out = _on_a_terminal(tmp_path, ["keygen", "u.key"], [PASSPHRASE, "other"])
    assert status == 2 and "the passphrases differ" in out
    assert not (tmp_path / "u.key").exists()


def test_argon2id_shows_a_line_on_a_terminal_and_nothing_on_a_pipe(tmp_path: Path) -> None:
    env = {**ENV, "AGENTAUTH_PASSPHRASE": PASSPHRASE}
    status, out = _on_a_terminal(tmp_path, ["keygen", "t.key", "--preset", "interactive"], [],
                                 env)
    assert status == 0 and "agentauth: sealing t.key (Argon2id, interactive)...\r\x1b[K" in out
    status, out = _on_a_terminal(tmp_path, ["id", "t.key", "--verify"], [], env)
    assert status == 0 and "agentauth: unlocking t.key (Argon2id)...\r\x1b[K" in out
    for args in (["keygen", "p.key", "--preset", "interactive"], ["id", "p.key", "--verify"]):
        done = agentauth(tmp_path, *args, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "" and done.stdout.startswith("did:key:z6Mk")


def test_version(tmp_path: Path) -> None:
    import agentauth  # noqa: PLC0415
    from agentauth.conformance.driver import IMPLEMENTATION  # noqa: PLC0415

    assert ok(tmp_path, "--version") == f"agentauth {agentauth.__version__}\n"
    assert f"agentauth-python {agentauth.__version__}" == IMPLEMENTATION  # one place


def test_id_and_export_read_the_header_with_no_passphrase(tmp_path: Path) -> None:
    agent_id = keygen(tmp_path, "a.key")
    env = {k: v for k, v in ENV.items() if k != "KEY_PASS"}
    for args in (["id", "a.key"], ["export", "a.key", "--format", "did-key"]):
        done = agentauth(tmp_path, *args, env=env)
        assert done.returncode == 0 and done.stdout.strip() == agent_id, done.stderr
    # The header is what the file claims: another key written into it is shown as claimed,
    # and refused once the file is opened.
    other = PeerKey.from_agent_id(keygen(tmp_path, "b.key"))
    data = (tmp_path / "a.key").read_bytes()
    claimed = PeerKey.from_agent_id(agent_id).public_bytes
    (tmp_path / "c.key").write_bytes(data.replace(claimed, other.public_bytes))
    (tmp_path / "c.key").chmod(0o600)
    shown = json.loads(ok(tmp_path, "id", "c.key", "--json"))
    assert shown == {"agent_id": other.agent_id, "verified": False}
    fails(tmp_path, 3, "wrong_passphrase", "id", "c.key", "--verify", *PASS)
    fails(tmp_path, 3, "wrong_passphrase", "export", "c.key", "--verify", *PASS)
    # The header's form is still checked, and the file's mode.
    (tmp_path / "d.key").write_bytes(data[:60])
    (tmp_path / "d.key").chmod(0o600)
    fails(tmp_path, 3, "key_file_corrupt", "id", "d.key")
    (tmp_path / "a.key").chmod(0o644)
    fails(tmp_path, 3, "key_file_permissions", "id", "a.key")


def test_the_passphrase_from_agentauth_passphrase(tmp_path: Path) -> None:
    env = {**ENV, "AGENTAUTH_PASSPHRASE": PASSPHRASE}

    def run(*args: str, environment: dict[str, str] = env) -> Ran:
        return agentauth(tmp_path, *args, env=environment)

    made = run("keygen", "e.key", "--preset", "interactive")
    assert made.returncode == 0, made.stderr
    assert ok(tmp_path, "id", "e.key", "--verify", *PASS) == made.stdout  # the same phrase
    assert run("id", "e.key", "--verify").stdout == made.stdout
    # An option wins over the variable; an empty variable is refused, never a default.
    wrong = run("id", "e.key", "--verify", *PASS, environment={**env, "KEY_PASS": "other"})
    assert wrong.returncode == 3 and "[wrong_passphrase]" in wrong.stderr
    empty = run("id", "e.key", "--verify", environment={**env, "AGENTAUTH_PASSPHRASE": ""})
    assert empty.returncode == 2 and "may not be empty" in empty.stderr
    unset = run("id", "e.key", "--verify", environment=ENV)
    assert unset.returncode == 2 and "AGENTAUTH_PASSPHRASE" in unset.stderr
    assert "AGENTAUTH_PASSPHRASE" in ok(tmp_path, "keygen", "--help")

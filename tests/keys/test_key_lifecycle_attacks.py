"""Attacks on the key lifecycle (spec section 14) and the faults an attacker can arrange,
each refused or survived: a key file writer that dies part way, a hand-built Rotation, a trust
store cut off at its size limit, a chmod that LiveTrust did not see, the commitment compared
in constant time, a statement read from a FIFO, a passphrase cut short, audit fields
posing as others, a passphrase that is not Unicode text, a store save blocked by a
planted temporary file, deeply nested audit records and stores that crashed their parsers,
and anchors made in code with no namespace."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.cli import Ran
from support.cli import agentauth as run_cli

from agentauth import (
    AgentAuthError,
    FileError,
    Identity,
    TrustStore,
    TrustStoreError,
    audit,
    crypto,
)
from agentauth.cli import common as cli_common
from agentauth.keys import auditlog
from agentauth.keys.rotation import Rotation, next_key_commitment, rotate
from agentauth.keys.trust import MAX_TRUST_STORE, LiveTrust

ALICE, BOB, MALLORY, CAROL = (Identity.from_seed(bytes([i + 60]) * 32) for i in range(4))
ROOT_DIR = Path(__file__).resolve().parents[2]
PASSPHRASE = "correct horse battery staple"
ENV = {**os.environ, "PYTHONPATH": str(ROOT_DIR), "KEY_PASS": PASSPHRASE}


def agentauth(cwd: Path, *args: str, fds: tuple[int, ...] = ()) -> Ran:
    return run_cli(args, cwd=cwd, env=ENV, fds=fds)


# ---------------------------------------------------------------- key files

_DIE_BEFORE_SYNC = """
import os, sys
from agentauth import keyfile
from agentauth.keys import auditlog
os.fsync = lambda descriptor: os._exit(7)  # the process dies before its data is on disk
keyfile.write_key_file(sys.argv[1], bytes(150))
"""


def test_a_key_file_writer_that_dies_leaves_no_partial_file(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _DIE_BEFORE_SYNC, str(tmp_path / "a.key")],
                          env=ENV, capture_output=True, timeout=60, check=False)
    assert done.returncode == 7, done.stderr
    assert not os.path.lexists(tmp_path / "a.key")
    ALICE.save(tmp_path / "a.key", PASSPHRASE, preset="interactive")  # the name is free
    assert Identity.load(tmp_path / "a.key", PASSPHRASE) == ALICE
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "a.key"]
    with pytest.raises(AgentAuthError) as info:
        BOB.save(tmp_path / "a.key", PASSPHRASE, preset="interactive")
    assert info.value.code == "file_exists"
    assert Identity.load(tmp_path / "a.key", PASSPHRASE) == ALICE
    assert (tmp_path / "a.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "a.key").stat().st_nlink == 1  # the temporary name is gone


def test_a_key_file_is_not_written_through_a_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "a.key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(AgentAuthError) as info:
        ALICE.save(tmp_path / "a.key", PASSPHRASE, preset="interactive")
    assert info.value.code == "file_exists"
    assert not (tmp_path / "elsewhere").exists()


# ---------------------------------------------------------------- rotation


@pytest.mark.parametrize("data", [b"", rotate(ALICE, BOB, now=1)[:-1] + b"\x00"],
                         ids=["no-statement", "bad-signature"])
def test_a_hand_built_rotation_is_verified_again(data: bytes) -> None:
    """A Rotation is a plain dataclass: one built by hand, unsigned, must not move a key."""
    store = TrustStore().add_peer("alice", ALICE.agent_id)
    forged = Rotation(ALICE.peer, MALLORY.peer, None, 1, data)
    with pytest.raises(AgentAuthError):
        store.accept_rotation(forged)
    assert store.get("alice") is not None and store.trusts(ALICE.peer)


def test_a_verified_rotation_object_is_still_accepted() -> None:
    store = TrustStore().add_peer("alice", ALICE.agent_id)
    _, rotation = store.accept_rotation(rotate(ALICE, BOB, now=1))
    moved, again = store.accept_rotation(rotation)
    assert moved.trusts(BOB.peer) and not moved.trusts(ALICE.peer)
    assert again.new == BOB.peer


def test_the_commitment_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = crypto.equal

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(crypto, "equal", spy)
    store = TrustStore().add_peer("alice", ALICE.agent_id, next_key=BOB.agent_id)
    with pytest.raises(AgentAuthError) as info:
        store.accept_rotation(rotate(ALICE, MALLORY, now=1))
    assert info.value.code == "rotation_mismatch"
    assert (next_key_commitment(BOB.peer), next_key_commitment(MALLORY.peer)) in compared
    moved, _ = store.accept_rotation(rotate(ALICE, BOB, now=1))
    assert moved.trusts(BOB.peer)


# ------------------------------------------------------------- trust store


def test_a_store_over_the_limit_is_refused_not_read_in_part(tmp_path: Path) -> None:
    """Two-byte characters: the first 16 MiB + 1 bytes decode to fewer than 16 Mi
    characters, so a check of the decoded text alone loaded the file's first part."""
    head = b"version = 1\n#"
    filler = (MAX_TRUST_STORE + 1 - len(head)) // 2
    path = tmp_path / "trust.toml"
    path.write_bytes(head + "é".encode() * filler + b"\n" + b"x" * 64)
    path.chmod(0o644)
    assert path.stat().st_size > MAX_TRUST_STORE
    with pytest.raises(FileError) as info:
        TrustStore.load(path)
    assert info.value.code == "file_too_large" and "larger than" in info.value.message
    with pytest.raises(TrustStoreError) as parsed:  # the same rule for text given directly
        TrustStore.parse("version = 1\n#" + "é" * (MAX_TRUST_STORE // 2))
    assert "larger than" in parsed.value.message


def test_live_trust_sees_a_chmod_that_lets_others_write(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    TrustStore().add_peer("alice", ALICE.agent_id).save(path)
    clock = [0.0]
    live = LiveTrust(path, interval=1, clock=lambda: clock[0])
    assert live(ALICE.peer)
    path.chmod(0o666)  # neither the content time nor the size changes
    clock[0] = 5.0
    assert not live(ALICE.peer) and live.store is None
    path.chmod(0o644)
    clock[0] = 10.0
    assert live(ALICE.peer)


# -------------------------------------------------------------- commands


def test_trust_rotate_does_not_hang_on_a_fifo(tmp_path: Path) -> None:
    TrustStore().add_peer("alice", ALICE.agent_id).save(tmp_path / "trust.toml")
    os.mkfifo(tmp_path / "statement")
    done = agentauth(tmp_path, "trust", "rotate", "statement", "--store", "trust.toml")
    assert done.returncode == 3, done.stderr
    assert "not a regular file" in done.stderr and done.stderr.count("\n") == 1
    big = tmp_path / "big"
    big.write_bytes(bytes(4096))
    done = agentauth(tmp_path, "trust", "rotate", "big", "--store", "trust.toml", "--json")
    assert done.returncode == 3
    assert json.loads(done.stdout)["error"]["code"] == "file_too_large"
    assert TrustStore.load(tmp_path / "trust.toml").trusts(ALICE.peer)


def test_a_passphrase_too_long_for_a_descriptor_is_refused_not_cut(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.write(write, b"a" * 6000)  # no newline: the whole of it is the passphrase
    os.close(write)
    try:
        done = agentauth(tmp_path, "keygen", "a.key", "--preset", "interactive",
                         "--passphrase-fd", str(read), fds=(read,))
    finally:
        os.close(read)
    assert done.returncode == 2, done.stderr
    assert "longer than 4096 bytes" in done.stderr and not (tmp_path / "a.key").exists()
    assert "aaaa" not in done.stderr


def test_a_passphrase_of_exactly_the_limit_is_taken(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.write(write, b"b" * 4096 + b"\n")
    os.close(write)
    try:
        done = agentauth(tmp_path, "keygen", "a.key", "--preset", "interactive",
                         "--passphrase-fd", str(read), fds=(read,))
    finally:
        os.close(read)
    assert done.returncode == 0, done.stderr
    env_done = run_cli(["id", "a.key", "--passphrase-env", "P"], cwd=tmp_path,
                       env={**ENV, "P": "b" * 4096})
    assert env_done.returncode == 0 and env_done.stdout.strip() == done.stdout.strip()


# ------------------------------------------------------------------ audit


@pytest.mark.parametrize("resource", ["reports/x code=ok", 'a"b', "tab\there", "back\\n",
                                      "line\nholder=did:key:z6Mk", "plain/name"])
def test_an_audit_value_cannot_pose_as_another_field(resource: str,
                                                     caplog: pytest.LogCaptureFixture
                                                     ) -> None:
    with caplog.at_level(logging.INFO, logger=audit.AUDIT_LOGGER):
        audit.emit("token_refused", code="bad_signature", holder=ALICE.agent_id,
                   resource=resource)
    (record,) = [r for r in caplog.records if r.name == audit.AUDIT_LOGGER]
    message = record.getMessage()
    assert "\n" not in message and "\t" not in message
    event, _, rest = message.partition(" ")
    fields = dict(token.split("=", 1) for token in shlex.split(rest))
    assert event == "token_refused"
    assert list(fields) == ["code", "holder", "resource"]
    assert fields["code"] == "bad_signature" and fields["holder"] == ALICE.agent_id
    if resource == "plain/name":
        assert f"resource={resource}" in message  # readable as before when nothing needs it
    else:
        assert json.dumps(resource) in message


# -------------------------------------------------------------- passphrases


def test_a_passphrase_that_is_not_unicode_text_is_a_typed_error(tmp_path: Path) -> None:
    from agentauth import InvalidArgument  # noqa: PLC0415
    from agentauth.keyfile import passphrase_bytes  # noqa: PLC0415

    with pytest.raises(InvalidArgument) as info:
        passphrase_bytes("pass\udcffword")
    assert info.value.code == "invalid_argument" and "\udcff" not in info.value.message
    with pytest.raises(InvalidArgument):
        ALICE.save(tmp_path / "a.key", "\udcff")  # refused before any file is made
    assert list(tmp_path.iterdir()) == []


@given(st.text(st.characters(categories=["Cs", "Lu", "Ll", "Mn", "Nd", "Zs", "Cc"])))
def test_any_text_is_a_passphrase_or_a_typed_error(text: str) -> None:
    from agentauth import InvalidArgument  # noqa: PLC0415
    from agentauth.keyfile import passphrase_bytes  # noqa: PLC0415

    try:
        data = passphrase_bytes(text)
    except InvalidArgument:
        return
    assert data and data.decode("utf-8")


def test_an_environment_passphrase_that_is_not_utf8_is_one_line_of_usage(tmp_path: Path
                                                                          ) -> None:
    env = {os.fsencode(k): os.fsencode(v) for k, v in ENV.items()}
    env[b"BAD_PASS"] = b"caf\xe9 au lait"  # Latin-1, as an old shell profile might hold
    done = subprocess.run([sys.executable, "-m", "agentauth", "keygen", "a.key", "--preset",
                           "interactive", "--passphrase-env", "BAD_PASS"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "lone surrogate" in done.stderr
    assert "au lait" not in done.stderr and not (tmp_path / "a.key").exists()


# ------------------------------------------------------------ trust saves


def test_a_store_save_is_not_blocked_by_a_planted_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    TrustStore().save(path)
    planted = Path(f"{path}.{os.getpid()}.tmp")  # the name a save used to take
    planted.write_text("not mine")
    TrustStore().add_peer("alice", ALICE.agent_id).save(path)
    assert TrustStore.load(path).trusts(ALICE.peer)
    assert planted.read_text() == "not mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["trust.toml", planted.name])


# ------------------------------------------------------------- audit logs


def _deeply_nested_record() -> bytes:
    body = (b'{"seq":1,"prev":"' + b"0" * 64 + b'","event":"x","a":' + b"[" * 30000
            + b"]" * 30000)
    digest = crypto.sha256(body).hex().encode()
    return body + b',"hash":"' + digest + b'"}\n'


def test_a_deeply_nested_record_is_a_broken_log_not_a_crash(tmp_path: Path) -> None:
    from agentauth import AuditLogError  # noqa: PLC0415

    log = tmp_path / "audit.log"
    log.write_bytes(_deeply_nested_record())
    with pytest.raises(AuditLogError) as info:
        auditlog.verify_audit_log(log)
    assert info.value.code == "audit_log_broken" and "record 1 " in info.value.message
    with pytest.raises(AuditLogError):  # nor is such a log extended
        auditlog.AuditFileHandler(log)
    done = agentauth(tmp_path, "audit", "verify", "audit.log")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "audit_log_broken" in done.stderr


# ------------------------------------------------------- nested trust stores

_NESTED = ["version = 1\nx = " + "[" * 2000 + "]" * 2000,
           "version = 1\n[[peer]]\nname = {a = " * 1 + "{a = " * 2000 + "}" * 2001]


@pytest.mark.parametrize("source", _NESTED, ids=["arrays", "inline-tables"])
def test_a_deeply_nested_store_is_invalid_not_a_crash(source: str, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    with pytest.raises(TrustStoreError) as info:
        TrustStore.parse(source, "trust.toml")
    assert info.value.code == "trust_store_invalid" and "nested" in info.value.message
    path = tmp_path / "trust.toml"
    TrustStore().add_peer("alice", ALICE.agent_id).save(path)
    clock = [0.0]
    live = LiveTrust(path, interval=1, clock=lambda: clock[0])
    assert live(ALICE.peer)
    path.write_text(source)  # a broken edit under a running agent: it trusts nobody
    clock[0] = 5.0
    with caplog.at_level("ERROR", logger="agentauth.keys.trust"):
        assert not live(ALICE.peer)
    assert "nobody is trusted" in caplog.text
    done = agentauth(tmp_path, "trust", "list", "--store", "trust.toml")
    assert done.returncode == 3 and done.stderr.count("\n") == 1, done.stderr
    assert "trust_store_invalid" in done.stderr


# ------------------------------------------------------- entries made in code


def test_an_anchor_made_in_code_without_a_namespace_is_refused(tmp_path: Path) -> None:
    """It used to stand for "**", every resource, in memory, and then saved a file that
    no longer loaded (the file form requires the namespace)."""
    from agentauth.keys.trust import TrustEntry  # noqa: PLC0415

    for entry in (TrustEntry("anchor", "corp", CAROL.peer),
                  TrustEntry("peer", "bob", BOB.peer, namespace="reports/**"),
                  TrustEntry("peer", "bob", BOB.peer, next=b"short")):
        with pytest.raises(TrustStoreError) as info:
            TrustStore([entry])
        assert info.value.code == "trust_store_invalid"
    store = TrustStore([TrustEntry("anchor", "corp", CAROL.peer, "reports/**")])
    assert dict(store.anchors) == {CAROL.agent_id: "reports/**"}
    store.save(tmp_path / "trust.toml")
    assert dict(TrustStore.load(tmp_path / "trust.toml").anchors) == dict(store.anchors)


def test_the_cached_passphrase_stays_out_of_the_arguments_repr(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AA_TEST_SECRET", "correct horse battery staple")
    args = argparse.Namespace(passphrase_env="AA_TEST_SECRET", passphrase_fd=None,
                              unencrypted=False)
    assert cli_common.new_passphrase(args) == "correct horse battery staple"
    assert cli_common.new_passphrase(args) == "correct horse battery staple"  # cached
    assert "correct horse" not in repr(args) and "<passphrase>" in repr(args)

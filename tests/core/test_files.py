"""Files at user-given paths (agentauth.files, spec 14.7): the reading and writing rules, and
every public constructor and function that takes a path, given a hostile one.

Each call gets a FIFO, ``/dev/zero``, a directory, an empty file, garbage, a missing path, a
path in a missing folder and a symbolic link to a key file. It must return or raise an
agentauth error with the expected code (never a bare ``OSError`` or ``sqlite3`` error), never
hang, and leave the folder as it was unless it is documented to create or replace the file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import HOSTILE_PATHS, place_hostile

from agentauth import (
    AgentAuthError,
    FileError,
    Identity,
    InvalidArgument,
    InvalidState,
    SQLiteReplayStore,
    TrustStore,
    files,
    keyfile,
)
from agentauth.capability import Grant, delegate, encode_chain, revoke, verify_chain
from agentauth.conformance.runner.vector_replay import load_vectors
from agentauth.keys.auditlog import AuditFileHandler, verify_audit_log
from agentauth.keys.trust import LiveTrust, editing
from agentauth.stores import MemoryRevocationStore, SQLiteRevocationStore

ROOT_DIR = Path(__file__).resolve().parents[2]
ALICE = Identity.from_seed(b"\x41" * 32)
ANCHORS = {ALICE.agent_id: "**"}
KINDS = HOSTILE_PATHS
NOT_REGULAR = {"fifo": "file_not_regular", "dev_zero": "file_not_regular",
               "directory": "file_not_regular"}
MISSING = {"missing": "file_not_found", "missing_folder": "file_not_found"}
OK = None  # the call returns


def snapshot(folder: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            out[path.name] = ("link", os.readlink(path))
        elif path.is_file():
            out[path.name] = ("file", info.st_mode, path.read_bytes())
        else:
            out[path.name] = ("other", stat.S_IFMT(info.st_mode))
    return out


def _closing(make: Callable[[Path], object]) -> Callable[[Path], None]:
    def call(path: Path) -> None:
        made = make(path)
        close = getattr(made, "close", None)
        if close is not None:
            close()
    return call


def _save_trust(path: Path) -> None:
    TrustStore().add_peer("alice", ALICE.agent_id).save(path)


# name: (call, {kind: expected code, or OK}, whether it may create or replace the file)
CALLS: dict[str, tuple[Callable[[Path], object], dict[str, str | None], bool]] = {
    "Identity.load": (lambda p: Identity.load(p, "pw", unencrypted=True),
                      {**NOT_REGULAR, **MISSING, "empty": "key_file_permissions",
                       "garbage": "key_file_permissions", "key_link": OK}, False),
    "Identity.save": (lambda p: ALICE.save(p, unencrypted=True),
                      {**dict.fromkeys(NOT_REGULAR, "file_exists"), "empty": "file_exists",
                       "garbage": "file_exists", "missing": OK,
                       "missing_folder": "file_not_found", "key_link": "file_exists"}, True),
    "keyfile.read_key_file": (keyfile.read_key_file,
                              {**NOT_REGULAR, **MISSING, "empty": "key_file_permissions",
                               "garbage": "key_file_permissions", "key_link": OK}, False),
    "TrustStore.load": (TrustStore.load,
                        {**NOT_REGULAR, **MISSING, "empty": "trust_store_invalid",
                         "garbage": "trust_store_invalid",
                         "key_link": "trust_store_invalid"}, False),
    "TrustStore.save": (_save_trust,
                        {**NOT_REGULAR, "empty": OK, "garbage": OK, "missing": OK,
                         "missing_folder": "file_not_found", "key_link": OK}, True),
    "LiveTrust": (LiveTrust,
                  {**NOT_REGULAR, **MISSING, "empty": "trust_store_invalid",
                   "garbage": "trust_store_invalid", "key_link": "trust_store_invalid"},
                  False),
    "verify_audit_log": (verify_audit_log,
                         {**NOT_REGULAR, **MISSING, "empty": OK,
                          "garbage": "audit_log_broken", "key_link": "audit_log_broken"},
                         False),
    "AuditFileHandler": (_closing(AuditFileHandler),
                         {**NOT_REGULAR, "empty": OK, "garbage": "audit_log_broken",
                          "missing": OK, "missing_folder": "file_not_found",
                          "key_link": "audit_log_broken"}, True),
    "SQLiteReplayStore": (_closing(SQLiteReplayStore),
                          {**NOT_REGULAR, "empty": "store_unavailable",
                           "garbage": "store_unavailable", "missing": OK,
                           "missing_folder": "file_not_found",
                           "key_link": "store_unavailable"}, True),
    "SQLiteRevocationStore": (_closing(lambda p: SQLiteRevocationStore(p, ANCHORS)),
                              {**NOT_REGULAR, "empty": "store_unavailable",
                               "garbage": "store_unavailable", "missing": OK,
                               "missing_folder": "file_not_found",
                               "key_link": "store_unavailable"}, True),
    "SQLiteRevocationStore(create=False)": (
        _closing(lambda p: SQLiteRevocationStore(p, ANCHORS, create=False)),
        {**NOT_REGULAR, **MISSING, "empty": "store_unavailable",
         "garbage": "store_unavailable", "key_link": "store_unavailable"}, False),
    "load_vectors": (load_vectors,
                     dict.fromkeys(KINDS, "invalid_argument"), False),
}


def _outcome(call: Callable[[Path], object], path: Path) -> tuple[str, object]:
    """("ok"|"error"|"foreign"|"hung", detail), the call made in a thread with a bound."""
    result: list[tuple[str, object]] = []

    def target() -> None:
        try:
            call(path)
            result.append(("ok", None))
        except AgentAuthError as exc:
            result.append(("error", exc.code))
        except BaseException as exc:  # anything else is a finding
            result.append(("foreign", repr(exc)))

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(30)
    return result[0] if result else ("hung", None)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_path_taking_call_against_a_hostile_path(tmp_path: Path, name: str,
                                                       kind: str) -> None:
    call, codes, may_write = CALLS[name]
    ALICE.save(tmp_path / "k.key", unencrypted=True)
    path = place_hostile(tmp_path, kind)
    before = snapshot(tmp_path)
    outcome = _outcome(call, path)
    expected = codes[kind]
    assert outcome == (("ok", None) if expected is OK else ("error", expected))
    after = snapshot(tmp_path)
    assert after["k.key"] == before["k.key"]
    changed = {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}
    assert changed <= ({"x"} if may_write and expected is OK else set()), changed


# ------------------------------------------------------------------ the rules


def test_a_file_larger_than_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 11)
    assert files.read_file(path, 11) == b"a" * 11
    with pytest.raises(FileError) as info:
        files.read_file(path, 10)
    assert info.value.code == "file_too_large"


def test_the_caller_check_sees_the_descriptor_and_can_refuse(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    path.chmod(0o644)

    def owner_only(info: os.stat_result) -> None:
        if info.st_mode & 0o044:
            raise InvalidArgument("readable by others")

    with pytest.raises(InvalidArgument):
        files.read_file(path, 10, check=owner_only)
    path.chmod(0o600)
    assert files.read_file(path, 10, check=owner_only) == b"x"


def test_a_folder_without_permission_is_a_typed_error(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    path.chmod(0)
    if os.geteuid() == 0:  # no permission stops root: the system's refusal is injected
        def refuse(*args: object, **kwargs: object) -> int:
            raise PermissionError(13, "Permission denied", str(path))
        monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(FileError) as info:
        files.read_file(path, 10)
    assert info.value.code == "file_permission"


def test_write_refuses_an_existing_name_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "out").write_bytes(b"old")
    with pytest.raises(FileError) as info:
        files.write_file(tmp_path / "out", b"new")
    assert info.value.code == "file_exists"
    assert sorted(os.listdir(tmp_path)) == ["out"]
    files.write_file(tmp_path / "out", b"new", force=True, mode=0o640)
    assert (tmp_path / "out").read_bytes() == b"new"
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_long_name_is_written_though_its_temporary_name_is_longer(tmp_path: Path) -> None:
    """The temporary name was the target's plus 22 characters: a legal name near the
    system's limit could not be written at all (``File name too long``)."""
    name = tmp_path / ("a" * 250)
    files.write_file(name, b"x")
    assert name.read_bytes() == b"x" and os.listdir(tmp_path) == [name.name]
    store = tmp_path / ("s" * 240)  # room for SQLite's own "-journal" beside it
    SQLiteReplayStore(store).close()
    assert sorted(os.listdir(tmp_path)) == sorted([name.name, store.name])


def test_force_replaces_a_link_and_never_writes_through_it(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"keep me")
    (tmp_path / "out").symlink_to("target")
    files.write_file(tmp_path / "out", b"new", force=True)
    assert (tmp_path / "target").read_bytes() == b"keep me"
    assert not (tmp_path / "out").is_symlink()
    assert (tmp_path / "out").read_bytes() == b"new"


def test_force_never_replaces_a_key_file(tmp_path: Path) -> None:
    ALICE.save(tmp_path / "a.key", unencrypted=True)
    ALICE.save(tmp_path / "b.key", "passphrase", preset="interactive")
    for name in ("a.key", "b.key"):
        before = (tmp_path / name).read_bytes()
        assert keyfile.is_key_file(tmp_path / name)
        with pytest.raises(FileError) as info:
            files.write_file(tmp_path / name, b"x", force=True, keep=keyfile.is_key_file)
        assert info.value.code == "file_exists"
        assert (tmp_path / name).read_bytes() == before
    assert not keyfile.is_key_file(tmp_path / "missing")


def test_force_keeps_a_file_it_cannot_read_lest_it_be_a_key_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key file the writer may not read (another user's, in a shared folder) was taken
    for "not a key file" and replaced by --force: what cannot be told apart is kept."""
    path = tmp_path / "their.key"
    ALICE.save(path, unencrypted=True)
    before = path.read_bytes()
    path.chmod(0)
    real_open = os.open

    def refuse_reading(name: str, flags: int, *args: int, **kwargs: object) -> int:
        if os.fspath(name) == str(path) and not flags & os.O_CREAT:  # as the system would
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(name, flags, *args)

    monkeypatch.setattr(os, "open", refuse_reading)  # no permission stops root
    with pytest.raises(FileError) as info:
        files.write_file(path, b"x", force=True, keep=keyfile.is_key_file)
    assert info.value.code == "file_exists"
    monkeypatch.undo()
    path.chmod(0o600)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["their.key"]


def test_a_refused_trust_edit_leaves_no_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    _save_trust(path)
    with pytest.raises(InvalidArgument), editing(path):
        TrustStore.load(path).remove("nobody")
    assert sorted(os.listdir(tmp_path)) == ["trust.toml"]


def test_a_trust_edit_never_waits_forever_for_a_lock_held_elsewhere(tmp_path: Path) -> None:
    """Anyone who can open the store's folder can hold its lock (another user, on a folder
    others may read): the editor waited for it forever."""
    fcntl = pytest.importorskip("fcntl")
    path = tmp_path / "trust.toml"
    _save_trust(path)
    holder = os.open(tmp_path, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(FileError) as info, editing(path, timeout=0.05):
            pass
        assert time.monotonic() - started < 2.0
        assert info.value.code == "file_io" and "another process" in str(info.value)
    finally:
        os.close(holder)
    with editing(path, timeout=0.05):  # free again
        TrustStore.load(path)
    with pytest.raises(InvalidArgument), editing(path, timeout=float("nan")):
        pass


def test_a_read_only_revocation_store_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    SQLiteRevocationStore(path, ANCHORS).close()
    before = path.read_bytes()
    store = SQLiteRevocationStore(path, ANCHORS, create=False)
    assert not store.is_revoked(b"\x00" * 16) and len(store) == 0
    store.close()
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["r.db"]


@pytest.mark.parametrize("create", [True, False])
def test_a_store_another_process_holds_locked_is_refused_in_bounded_time(
        tmp_path: Path, create: bool) -> None:
    """A check on a store whose lock is held waits at most its timeout, then says the
    store is locked (it said "not a revocation store, or cannot be read or written")."""
    path = tmp_path / "r.db"
    SQLiteRevocationStore(path, ANCHORS).close()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode=DELETE")  # a writer blocks readers
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(AgentAuthError) as info:
            SQLiteRevocationStore(path, ANCHORS, create=create, timeout=0.05)
        assert info.value.code == "store_unavailable" and "locked" in str(info.value)
        with pytest.raises(InvalidArgument):
            SQLiteRevocationStore(path, ANCHORS, timeout=float("nan"))
    finally:
        holder.close()
    store = SQLiteRevocationStore(path, ANCHORS, create=create, timeout=0.05)
    assert not store.is_revoked(b"\x00" * 16)
    store.close()


def test_a_revocation_store_opened_to_read_refuses_every_write(tmp_path: Path) -> None:
    """``create=False`` promised a store "never written", yet ``add`` and ``prune`` wrote
    it (and an expired notice vanished from a file a check only read)."""
    path = tmp_path / "r.db"
    now = int(time.time())
    link = delegate(ALICE, ALICE.agent_id, [Grant("r/**", ["read"])], not_before=now - 60,
                    expires=now + 60)
    writer = SQLiteRevocationStore(path, ANCHORS)
    writer.add(revoke(ALICE, [link]))
    writer.close()
    before = path.read_bytes()
    store = SQLiteRevocationStore(path, ANCHORS, create=False)
    other = delegate(ALICE, ALICE.agent_id, [Grant("r/**", ["read"])], not_before=now - 60,
                     expires=now + 60)
    with pytest.raises(InvalidState):
        store.add(revoke(ALICE, [other]))
    with pytest.raises(InvalidState):
        store.prune(now + 10**6)
    assert store.is_revoked(link.id) and not store.is_revoked(other.id)
    with pytest.raises(sqlite3.OperationalError):  # SQLite itself refuses it a write
        store._db.execute("DELETE FROM revoked")
    store.close()
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["r.db"]


_SWAP = """
import os, sys
from agentauth import AgentAuthError, files
from agentauth.stores import SQLiteRevocationStore, sqlite
path, kind = sys.argv[1], sys.argv[2]
checked = files.read_head

def swap_after_the_check(*args, **kwargs):  # the race, won every time
    head = checked(*args, **kwargs)
    os.replace(path, path + ".real")
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink("/dev/null", path)
    return head

sqlite.files.read_head = swap_after_the_check
try:
    store = SQLiteRevocationStore(path, {sys.argv[3]: "**"}, create=sys.argv[4] == "1")
    store.is_revoked(bytes(16))
except AgentAuthError as exc:
    print(exc.code)
"""


@pytest.mark.parametrize("create", [False, True])
@pytest.mark.parametrize("kind", ["fifo", "dev_null"])
def test_a_store_swapped_after_its_check_fails_closed_and_never_hangs(
        tmp_path: Path, kind: str, create: bool) -> None:
    """Between the header check and SQLite's own opening, the path is replaced by a FIFO
    or a link to a device: SQLite refuses the FIFO itself (no hang); a writer took
    /dev/null for a new, empty store, and every revocation it then stored vanished. The
    file SQLite opened must be the one checked."""
    path = tmp_path / "r.db"
    SQLiteRevocationStore(path, ANCHORS).close()
    done = subprocess.run([sys.executable, "-c", _SWAP, str(path), kind, ALICE.agent_id,
                           str(int(create))],
                          env={**os.environ, "PYTHONPATH": str(ROOT_DIR)}, timeout=60,
                          capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "store_unavailable", done.stderr


def test_a_revocation_store_that_is_another_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    for create in (False, True):
        with pytest.raises(AgentAuthError) as info:
            SQLiteRevocationStore(path, ANCHORS, create=create)
        assert info.value.code == "store_unavailable"


def test_anchors_that_are_not_a_mapping_are_invalid_arguments(tmp_path: Path) -> None:
    now = 1_700_000_000
    chain = encode_chain([delegate(ALICE, ALICE.agent_id, [Grant("r/**", ["read"])],
                                   not_before=now, expires=now + 60)])
    for call in (lambda: MemoryRevocationStore([ALICE.agent_id]),  # type: ignore[arg-type]
                 lambda: SQLiteRevocationStore(tmp_path / "r.db", 5),  # type: ignore[arg-type]
                 lambda: verify_chain(chain, [ALICE.agent_id], now=now)):  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            call()
    assert not (tmp_path / "r.db").exists()


def test_an_audit_handler_on_a_fifo_never_blocks_a_decision(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "audit.log")
    with pytest.raises(FileError) as info:
        AuditFileHandler(tmp_path / "audit.log")
    assert info.value.code == "file_not_regular"


def test_an_audit_handler_waits_for_a_lock_held_elsewhere_in_bounded_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process holding the log's lock (one stopped while writing) held up every audited
    decision of every process sharing the log, forever."""
    fcntl = pytest.importorskip("fcntl")
    monkeypatch.setattr(logging, "raiseExceptions", False)  # the handler's usual report
    path = tmp_path / "audit.log"
    handler = AuditFileHandler(path, timeout=0.05)
    holder = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        started = time.monotonic()
        handler.handle(logging.makeLogRecord({"audit": {"event": "held"}}))
        assert time.monotonic() - started < 2.0
        assert path.read_bytes() == b""  # not written, and reported
    finally:
        os.close(holder)
    handler.handle(logging.makeLogRecord({"audit": {"event": "free"}}))
    handler.close()
    assert verify_audit_log(path).records == 1
    with pytest.raises(InvalidArgument):
        AuditFileHandler(path, timeout=-1.0)


def test_a_closed_sqlite_store_fails_with_a_store_error(tmp_path: Path) -> None:
    replay = SQLiteReplayStore(tmp_path / "replay.db")
    revoked = SQLiteRevocationStore(tmp_path / "revoked.db", ANCHORS)
    replay.close()
    revoked.close()
    for call in (lambda: len(replay), lambda: revoked.is_revoked(b"\x00" * 16),
                 lambda: len(revoked), revoked.ids):
        with pytest.raises(AgentAuthError) as info:
            call()
        assert info.value.code == "store_unavailable"

"""Every path option of every command, given a hostile path (spec 14.7, README "Files").

Each of the options below gets, in turn, a FIFO, ``/dev/zero``, a directory, an empty file,
a file of garbage, a missing path, a path in a missing folder and a symbolic link to a key
file, the other arguments being valid. Each run is its own process: it must exit promptly
with the documented code, say why in one line on stderr when it fails, and leave every file
of its folder as it was (names, kinds, modes and bytes), except what the command is
documented to write when it succeeds. "Promptly" is measured in processor time (2 s), since
a loaded machine stretches the wall-clock time of every start-up; a process that blocks (on
a FIFO) is caught by a generous wall-clock bound instead.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import HOSTILE_PATHS, place_hostile
from support.cli import Ran, agentauth

from agentauth import Identity
from agentauth.capability import Grant, decode_chain, delegate, encode_chain, revoke
from agentauth.keys.rotation import rotate
from agentauth.stores import SQLiteRevocationStore

ROOT_DIR = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT_DIR), "KEY_PASS": "not the key's"}
ROOT, ALICE, CAROL = (Identity.from_seed(bytes([n]) * 32) for n in (0x61, 0x62, 0x63))
LIMIT = 2.0  # seconds of processor time a command may use to refuse or do its work
HANG = 60.0  # seconds after which a command that has not exited is taken to hang
KINDS = HOSTILE_PATHS
# Exit codes (README, "Exit codes"): 0 ok, 1 refused, 2 usage (an output file that exists,
# without --force), 3 bad input (a file missing, unreadable, damaged or not a file).
READ = dict.fromkeys(KINDS, 3)
KEY = {**READ, "key_link": 0}  # a link to a valid key file is a valid key file
OUT = {**dict.fromkeys(KINDS, 2), "missing": 0, "missing_folder": 3}
FORCED = {**OUT, "fifo": 3, "dev_zero": 3, "directory": 3, "empty": 0, "garbage": 0,
          "key_link": 0}  # --force replaces a regular file or a link, nothing else
MADE = {**READ, "missing": 0}  # a store a writer may create
KEYS = ("--unencrypted", "--passphrase-env", "KEY_PASS")
GRANT = ("--to", CAROL.agent_id, "--grant", "r/**=read")
RUN = ("conformance", "run", "--driver", "false", "--vectors", str(ROOT_DIR / "spec" / "vectors"),
       "--mutations", "0", "--disable", "*", "--allow-skip")


@dataclass(frozen=True)
class Option:
    """One path option: the command with ``X`` where the path goes, the exit code for each
    kind of path, and the files it writes when it succeeds."""

    name: str
    argv: tuple[str, ...]
    codes: dict[str, int]
    writes: tuple[str, ...] = ()


OPTIONS = (
    Option("keygen PATH", ("keygen", "X", "--unencrypted"), OUT, ("X",)),
    Option("id PATH", ("id", "X", *KEYS), KEY),
    Option("export SOURCE", ("export", "X", *KEYS), KEY),
    Option("trust add --store", ("trust", "add", "carol", CAROL.agent_id, "--store", "X"),
           MADE, ("X",)),
    Option("trust list --store", ("trust", "list", "--store", "X"), READ),
    Option("trust remove --store", ("trust", "remove", "alice", "--store", "X"), READ),
    Option("trust rotate STATEMENT", ("trust", "rotate", "X", "--store", "trust.toml"), READ),
    Option("trust rotate --store", ("trust", "rotate", "st.bin", "--store", "X"), READ),
    Option("rotate --key", ("rotate", "--key", "X", "--new", "k2.key", "--out", "new.bin",
                            *KEYS), KEY, ("new.bin",)),
    Option("rotate --new", ("rotate", "--key", "k2.key", "--new", "X", "--out", "new.bin",
                            *KEYS), KEY, ("new.bin",)),
    Option("rotate --out", ("rotate", "--key", "k.key", "--new", "k2.key", "--out", "X",
                            *KEYS), OUT, ("X",)),
    Option("audit verify LOG", ("audit", "verify", "X"),
           {**READ, "empty": 0, "garbage": 1, "key_link": 1}),  # empty: a log of 0 records
    Option("delegate --key", ("delegate", "--key", "X", *GRANT, "--out", "out.chain", *KEYS),
           KEY, ("out.chain",)),
    Option("delegate --parent", ("delegate", "--key", "k.key", "--parent", "X", *GRANT,
                                 "--out", "out.chain", *KEYS), READ),
    Option("delegate --out", ("delegate", "--key", "k.key", *GRANT, "--out", "X", *KEYS),
           OUT, ("X",)),
    Option("delegate --out --force", ("delegate", "--key", "k.key", *GRANT, "--out", "X",
                                      "--force", *KEYS), FORCED, ("X",)),
    Option("inspect CHAIN", ("inspect", "X"), READ),
    Option("verify CHAIN", ("verify", "X", "--anchor", ROOT.agent_id), READ),
    Option("verify --revoked", ("verify", "c.chain", "--anchor", ROOT.agent_id, "--revoked",
                                "X"), READ),
    Option("revoke --key", ("revoke", "--key", "X", "--chain", "c.chain", "--link", "0",
                            "--store", "r.db", *KEYS), KEY, ("r.db",)),
    Option("revoke --chain", ("revoke", "--key", "k.key", "--chain", "X", "--link", "0",
                              "--store", "r.db", *KEYS), READ),
    Option("revoke --store", ("revoke", "--key", "k.key", "--chain", "c.chain", "--link", "0",
                              "--store", "X", *KEYS), MADE, ("X",)),
    Option("revoke --out", ("revoke", "--key", "k.key", "--chain", "c.chain", "--link", "0",
                            "--store", "r.db", "--out", "X", *KEYS), OUT, ("X", "r.db")),
    Option("revoke --out --force", ("revoke", "--key", "k.key", "--chain", "c.chain",
                                    "--link", "0", "--store", "r.db", "--out", "X", "--force",
                                    *KEYS), FORCED, ("X", "r.db")),
    Option("conformance run --vectors", ("conformance", "run", "--list", "--vectors", "X"),
           READ),
    Option("conformance run --json", (*RUN, "--json", "X"), OUT, ("X",)),
    Option("conformance run --junit", (*RUN, "--junit", "X"), OUT, ("X",)),
)


def _template(folder: Path) -> None:
    """The valid files every case starts from."""
    for name, identity in (("root.key", ROOT), ("k.key", ALICE), ("k2.key", CAROL)):
        identity.save(folder / name, unencrypted=True)
    now = int(time.time())
    link = delegate(ROOT, ALICE.agent_id, [Grant("r/**", ["read"])], not_before=now - 60,
                    expires=now + 86400, budget=1)
    (folder / "c.chain").write_bytes(encode_chain([link]))
    (folder / "st.bin").write_bytes(rotate(ALICE, CAROL, now=now))
    (folder / "trust.toml").write_text(f'version = 1\n[[peer]]\nname = "alice"\n'
                                       f'id = "{ALICE.agent_id}"\n')
    (folder / "trust.toml").chmod(0o644)
    SQLiteRevocationStore(folder / "r.db", {ROOT.agent_id: "**"}).close()
    (folder / "audit.log").write_bytes(b"")


def snapshot(folder: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below ``folder``: its kind, mode and bytes (or link target)."""
    out: dict[str, tuple[object, ...]] = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        name = str(path.relative_to(folder))
        if path.is_symlink():
            out[name] = ("link", os.readlink(path))
        elif path.is_file():  # never opens a FIFO
            out[name] = ("file", info.st_mode, path.read_bytes())
        else:
            out[name] = ("other", info.st_mode)
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("template")
    _template(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, argv: list[str]) -> Ran:
    """Run ``agentauth argv`` in ``folder``, as its own process. One still running after
    ``HANG`` seconds is killed (``hung``): a FIFO blocks forever, so the bound can be
    generous enough for a loaded machine. The work it did is its processor time (``cpu``),
    which a machine's load does not inflate as it does the wall-clock time."""
    return agentauth(argv, cwd=folder, env=ENV, timeout=HANG)


def _case(template: Path, root: Path, option: Option, kind: str) -> str | None:
    """Run one case; None if it behaved, else what went wrong."""
    folder = root / f"{OPTIONS.index(option)}-{kind}"
    shutil.copytree(template, folder, symlinks=True)
    try:
        placed = place_hostile(folder, kind)  # named as the command's folder sees it
        where = str(placed.relative_to(folder) if placed.is_relative_to(folder) else placed)
        argv = [where if a == "X" else a for a in option.argv]
        before = snapshot(folder)
        done = run(folder, argv)
        if done.hung:
            return f"still running after {HANG} s: it hangs"
        if done.cpu > LIMIT:
            return f"used {done.cpu:.1f} s of processor time, more than {LIMIT} s"
        after = snapshot(folder)
        expected = option.codes[kind]
        if done.returncode != expected:
            return f"exit {done.returncode}, not {expected}: {done.stderr.strip()[-300:]}"
        if expected and (done.stderr.count("\n") != 1 or not done.stderr.strip()):
            return f"stderr is not one line: {done.stderr!r}"
        allowed = {where if w == "X" else w for w in option.writes} if expected == 0 else set()
        changed = {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}
        if changed - allowed:
            return f"changed {sorted(changed - allowed)}"
        if after["k.key"] != before["k.key"]:
            return "the key file changed"
        return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_matrix_lists_every_path_option() -> None:
    assert len(OPTIONS) >= 25 and all(set(o.codes) == set(KINDS) for o in OPTIONS)


def test_every_path_option_against_every_hostile_path(template: Path, tmp_path: Path
                                                      ) -> None:
    cases = [(option, kind) for option in OPTIONS for kind in KINDS]
    with ThreadPoolExecutor(4) as pool:  # most of a run is waiting: overlap them
        results = list(pool.map(lambda c: _case(template, tmp_path, c[0], c[1]), cases))
    failures = [f"{o.name} / {k}: {r}" for (o, k), r in zip(cases, results, strict=True) if r]
    assert not failures, "\n".join(failures)


def test_force_never_replaces_a_key_file(template: Path, tmp_path: Path) -> None:
    folder = tmp_path / "case"
    shutil.copytree(template, folder, symlinks=True)
    before = snapshot(folder)
    for argv in (("delegate", "--key", "k.key", *GRANT, "--out", "k2.key", "--force", *KEYS),
                 ("revoke", "--key", "k.key", "--chain", "c.chain", "--link", "0", "--store",
                  "r.db", "--out", "root.key", "--force", *KEYS),
                 (*RUN, "--json", "k.key", "--force")):
        done = run(folder, list(argv))
        assert done.returncode == 2, done.stderr
        assert "key file" in done.stderr and done.stderr.count("\n") == 1
    assert snapshot(folder) == before


@pytest.mark.parametrize("argv", [
    # --force would have replaced the revocation store with the notice: every revocation
    # in it lost (by name, through a hard link, and a store this very command creates).
    ("revoke", "--key", "root.key", "--chain", "c.chain", "--link", "0", "--store", "r.db",
     "--out", "r.db", "--force", *KEYS),
    ("revoke", "--key", "root.key", "--chain", "c.chain", "--link", "0", "--store", "r.db",
     "--out", "r-link.db", "--force", *KEYS),
    ("revoke", "--key", "root.key", "--chain", "c.chain", "--link", "0", "--store", "new.db",
     "--out", "./new.db", *KEYS),
    ("revoke", "--key", "root.key", "--chain", "c.chain", "--link", "0", "--store", "r.db",
     "--out", "here/r.db", "--force", *KEYS),
    ("revoke", "--key", "root.key", "--chain", "c.chain", "--link", "0", "--store", "r.db",
     "--out", "c.chain", "--force", *KEYS),
    ("delegate", "--key", "k.key", *GRANT, "--parent", "c.chain", "--out", "c.chain",
     "--force", *KEYS),
    # Both reports to one file: the JUnit one replaced the JSON one (with --force), or was
    # refused after the JSON one was written (without): the refused run left a file.
    (*RUN, "--json", "report", "--junit", "report"),
    (*RUN, "--json", "report", "--junit", "report", "--force"),
], ids=["revoke-out-store", "revoke-out-store-hard-link", "revoke-out-new-store",
        "revoke-out-store-through-a-linked-folder",
        "revoke-out-chain", "delegate-out-parent", "reports-one-file",
        "reports-one-file-forced"])
def test_an_output_is_never_one_of_the_commands_other_files(
        template: Path, tmp_path: Path, argv: tuple[str, ...]) -> None:
    folder = tmp_path / "case"
    shutil.copytree(template, folder, symlinks=True)
    os.link(folder / "r.db", folder / "r-link.db")
    (folder / "here").symlink_to(".")
    before = snapshot(folder)
    done = run(folder, list(argv))
    assert done.returncode == 2, done.stderr
    assert "of this command" in done.stderr and done.stderr.count("\n") == 1
    assert snapshot(folder) == before


def _vectors(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m agentauth.conformance.vectors argv`` in ``folder``, killed if it hangs."""
    return subprocess.run([sys.executable, "-m", "agentauth.conformance.vectors", *argv],
                          cwd=folder, env=ENV, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=HANG, check=False)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "missing", "not_a_folder"])
def test_the_vector_generator_reads_and_writes_by_the_file_rules(tmp_path: Path, kind: str
                                                                 ) -> None:
    """``--check`` read each file whole, with no bound (a FIFO hung it, ``/dev/zero`` ate
    memory); ``--write`` wrote through a symbolic link and raised a traceback for a folder
    that is a file. Each is one line on stderr and exit 3."""
    folder = tmp_path / "v"
    shutil.copytree(ROOT_DIR / "spec" / "vectors", folder)
    target = folder / "handshake-positive.json"
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target, 0o600)
    elif kind == "dev_zero":
        target.symlink_to("/dev/zero")
    argv = ("--write", "v/envelope.json") if kind == "not_a_folder" else ("--check", "v")
    done = _vectors(tmp_path, *argv)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_the_vector_generator_never_writes_through_a_link_into_a_key_file(tmp_path: Path
                                                                         ) -> None:
    ALICE.save(tmp_path / "k.key", unencrypted=True)
    key = (tmp_path / "k.key").read_bytes()
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "keys.json").symlink_to("../k.key")
    done = _vectors(tmp_path, "--write", "v")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "k.key").read_bytes() == key
    assert not (folder / "keys.json").is_symlink()
    assert _vectors(tmp_path, "--check", "v").returncode == 0
    # A hard link to the key file is the key file: it is never replaced.
    (folder / "keys.json").unlink()
    os.link(tmp_path / "k.key", folder / "keys.json")
    done = _vectors(tmp_path, "--write", "v")
    assert done.returncode == 3 and "key file" in done.stderr, done.stderr
    assert (tmp_path / "k.key").read_bytes() == key


@pytest.mark.parametrize("limit", [20, 4096], ids=["nothing-fits", "only-the-header-fits"])
def test_a_store_whose_making_failed_can_be_made_again(tmp_path: Path, limit: int) -> None:
    """``revoke --store`` on a full disk (a file size limit here) left an empty file, which
    every later ``revoke`` refused as "not a SQLite database": the store could never be
    made again until someone deleted it. A failed creation leaves nothing, or a database."""
    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    folder = tmp_path / "case"
    folder.mkdir()
    ROOT.save(folder / "root.key", unencrypted=True)
    now = int(time.time())
    link = delegate(ROOT, ALICE.agent_id, [Grant("r/**", ["read"])], not_before=now - 60,
                    expires=now + 86400)
    (folder / "c.chain").write_bytes(encode_chain([link]))
    argv = [sys.executable, "-m", "agentauth", "revoke", "--key", "root.key", "--chain",
            "c.chain", "--link", "0", "--store", "r.db", "--unencrypted"]
    done = subprocess.run(argv, cwd=folder, env=ENV, capture_output=True, text=True,
                          timeout=HANG, check=False, preexec_fn=small_files)
    assert done.returncode == 3 and done.stderr.count("\n") == 1, done.stderr
    assert sorted(os.listdir(folder)) in (["c.chain", "root.key"],
                                          ["c.chain", "r.db", "root.key"])
    done = subprocess.run(argv, cwd=folder, env=ENV, capture_output=True, text=True,
                          timeout=HANG, check=False)
    assert done.returncode == 0, done.stderr
    store = SQLiteRevocationStore(folder / "r.db", {ROOT.agent_id: "**"}, create=False)
    assert store.is_revoked(link.id)
    store.close()


@pytest.mark.parametrize("argv", [
    ("verify", "c.chain", "--anchor", ROOT.agent_id, "--revoked", ""),
    ("verify", "c.chain", "--anchor", ROOT.agent_id, "--request", ""),
    ("verify", "c.chain", "--anchor", ROOT.agent_id, "--holder", ""),
    ("delegate", "--key", "k.key", *GRANT, "--parent", "", "--out", "new.chain", *KEYS),
    ("revoke", "--key", "root.key", "--chain", "c.chain", "--link", "0", "--store", "r.db",
     "--out", "", *KEYS),
    (*RUN, "--json", ""),
], ids=["verify-revoked", "verify-request", "verify-holder", "delegate-parent",
        "revoke-out", "conformance-json"])
def test_an_empty_option_is_a_usage_error_never_an_absent_one(
        template: Path, tmp_path: Path, argv: tuple[str, ...]) -> None:
    """An empty value was taken for "not given": ``verify --revoked ''`` skipped the
    revocation check of a revoked chain and said ok (so did an empty --request or
    --holder), ``delegate --parent ''`` made a root link, ``revoke --out ''`` wrote no
    notice and said nothing."""
    folder = tmp_path / "case"
    shutil.copytree(template, folder, symlinks=True)
    store = SQLiteRevocationStore(folder / "r.db", {ROOT.agent_id: "**"})
    store.add(revoke(ROOT, decode_chain((folder / "c.chain").read_bytes())))
    store.close()
    before = snapshot(folder)
    done = run(folder, list(argv))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1
    assert snapshot(folder) == before

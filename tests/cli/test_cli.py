"""The key and capability commands, end to end, as separate processes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from support.cli import Ran
from support.cli import agentauth as run_cli

from agentauth.cli.common import when

ROOT_DIR = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT_DIR), "TEST_PASSPHRASE": "correct horse"}
KEY_COMMANDS = {"keygen", "id", "delegate", "revoke"}


def agentauth(cwd: Path, *args: str) -> Ran:
    extra = ["--passphrase-env", "TEST_PASSPHRASE"] if args[0] in KEY_COMMANDS else []
    if args[0] == "keygen":
        extra += ["--preset", "interactive"]
    return run_cli([*args, *extra], cwd=cwd, env=ENV)


def test_delegate_inspect_verify_revoke(tmp_path: Path) -> None:
    ids = {}
    for name in ("root", "alice", "bob", "mallory"):
        done = agentauth(tmp_path, "keygen", f"{name}.key")
        assert done.returncode == 0, done.stderr
        ids[name] = done.stdout.strip()
        assert agentauth(tmp_path, "id", f"{name}.key").stdout.strip() == ids[name]
    assert (tmp_path / "root.key").stat().st_mode & 0o077 == 0
    assert agentauth(tmp_path, "keygen", "root.key").returncode == 2  # never overwritten

    done = agentauth(tmp_path, "delegate", "--key", "root.key", "--to", ids["alice"],
                     "--grant", "fs/reports/**=read,list;size=range:0..1000", "--budget",
                     "1", "--out", "alice.chain")
    assert done.returncode == 0, done.stdout + done.stderr
    done = agentauth(tmp_path, "delegate", "--key", "alice.key", "--to", ids["bob"],
                     "--grant", "fs/reports/q3/*=read;size=range:0..100", "--parent",
                     "alice.chain", "--out", "bob.chain")
    assert done.returncode == 0, done.stdout + done.stderr
    widen = agentauth(tmp_path, "delegate", "--key", "alice.key", "--to", ids["bob"],
                      "--grant", "fs/**=read", "--parent", "alice.chain", "--out", "x.chain")
    assert widen.returncode == 2 and "widened_resource" in widen.stderr

    tree = agentauth(tmp_path, "inspect", "bob.chain").stdout
    assert "fs/reports/q3/*: read" in tree and "size=range:0..100" in tree
    shown = json.loads(agentauth(tmp_path, "inspect", "--json", "bob.chain").stdout)
    assert shown["verified"] is False
    assert [link["audience"] for link in shown["links"]] == [ids["alice"], ids["bob"]]

    base = ["verify", "bob.chain", "--anchor", ids["root"]]
    ok = agentauth(tmp_path, *base, "--request", "fs/reports/q3/x:read", "--arg",
                   "size=50", "--holder", ids["bob"])
    assert ok.returncode == 0 and ok.stdout.startswith("ok:"), ok.stdout
    for extra, code in ((["--request", "fs/reports/q3/x:write", "--arg", "size=5"],
                         "not_authorized"),
                        (["--request", "fs/reports/q3/x:read", "--arg", "size=500"],
                         "not_authorized"),
                        (["--holder", ids["mallory"]], "holder_mismatch")):
        refused = agentauth(tmp_path, *base, *extra)
        assert refused.returncode == 1 and f"[{code}]" in refused.stderr, refused.stderr
    stranger = agentauth(tmp_path, "verify", "bob.chain", "--anchor", ids["mallory"])
    assert stranger.returncode == 1 and "[untrusted_root]" in stranger.stderr

    revoked = agentauth(tmp_path, "revoke", "--key", "root.key", "--chain", "bob.chain",
                        "--link", "1", "--store", "revoked.db")
    assert revoked.returncode == 0, revoked.stdout
    after = agentauth(tmp_path, *base, "--revoked", "revoked.db")
    assert after.returncode == 1 and "[revoked]" in after.stderr
    usurper = agentauth(tmp_path, "revoke", "--key", "mallory.key", "--chain", "bob.chain",
                        "--link", "0", "--store", "revoked.db")
    assert usurper.returncode == 1 and "[unauthorized_revoker]" in usurper.stderr

    (tmp_path / "junk.chain").write_bytes(b"\x81\x00")
    assert agentauth(tmp_path, "inspect", "junk.chain").returncode == 3
    assert agentauth(tmp_path, "inspect", "missing.chain").returncode == 3


ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_times_for_people() -> None:
    now = 1796612554  # 2026-12-07T03:02:34Z
    assert when(now + 3540, now) == "2026-12-07T04:01:34Z (in 59 min)"
    assert when(now - 3, now) == "2026-12-07T03:02:31Z (3 s ago)"
    assert when(now, now) == "2026-12-07T03:02:34Z (now)"
    assert when(now + 3 * 3600, now).endswith("(in 3 h)")
    assert when(now - 9 * 86400, now).endswith("(9 days ago)")
    assert when(2**62, now) == f"{2**62} (Unix seconds)"  # past any calendar date


def test_inspect_says_unverified_unless_given_anchors(tmp_path: Path) -> None:
    ids = {name: agentauth(tmp_path, "keygen", f"{name}.key").stdout.strip()
           for name in ("root", "alice")}
    done = agentauth(tmp_path, "delegate", "--key", "root.key", "--to", ids["alice"],
                     "--grant", "fs/**=read", "--ttl", "3600", "--out", "a.chain")
    assert done.returncode == 0, done.stderr
    assert re.search(rf"expires {ISO} \(in (59|60) min\)$", done.stdout.strip())
    shown = agentauth(tmp_path, "inspect", "a.chain").stdout
    assert shown.startswith("NOT VERIFIED: ") and "--anchor" in shown.splitlines()[0]
    assert re.search(rf"valid from {ISO} \(.*\) until {ISO} \(in (59|60) min\)", shown)
    verified = agentauth(tmp_path, "inspect", "a.chain", "--anchor", ids["root"])
    assert verified.returncode == 0 and verified.stdout.startswith("verified at "), verified
    assert "NOT VERIFIED" not in verified.stdout
    data = json.loads(agentauth(tmp_path, "inspect", "a.chain", "--anchor", ids["root"],
                                "--json").stdout)
    assert data["verified"] is True and isinstance(data["now"], int)
    assert data["links"][0]["expires"] - data["links"][0]["not_before"] == 3600  # Unix s
    # Verification refuses as verify does: another root, a later time, a damaged chain.
    stranger = agentauth(tmp_path, "inspect", "a.chain", "--anchor", ids["alice"])
    assert stranger.returncode == 1 and "[untrusted_root]" in stranger.stderr
    assert stranger.stdout == ""
    late = agentauth(tmp_path, "inspect", "a.chain", "--anchor", ids["root"], "--now",
                     str(data["links"][0]["expires"] + 3600))  # past any leeway
    assert late.returncode == 1 and "[expired]" in late.stderr
    chain = bytearray((tmp_path / "a.chain").read_bytes())
    chain[-5] ^= 1
    (tmp_path / "b.chain").write_bytes(bytes(chain))
    forged = agentauth(tmp_path, "inspect", "b.chain", "--anchor", ids["root"])
    assert forged.returncode == 1 and "[bad_signature]" in forged.stderr
    assert agentauth(tmp_path, "inspect", "b.chain").returncode == 0  # shown, unverified

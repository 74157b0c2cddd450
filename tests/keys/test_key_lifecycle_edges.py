"""Edges of the key lifecycle: files that are not files, the umask, oversized records, the
handshake deadline as an audit event, and --json on the capability commands."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from support.cli import Ran
from support.cli import agentauth as run_cli

from agentauth import (
    AgentAuthStream,
    AuditLogError,
    FileError,
    HandshakePolicy,
    HandshakeTimeout,
    Identity,
    TrustStore,
    TrustStoreError,
)
from agentauth.audit import AUDIT_LOGGER
from agentauth.keys.auditlog import verify_audit_log

ROOT_DIR = Path(__file__).resolve().parents[2]
ALICE, BOB = Identity.from_seed(b"\x51" * 32), Identity.from_seed(b"\x52" * 32)


def test_a_fifo_in_place_of_a_key_file_or_store_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    outcome: list[str] = []

    def load() -> None:
        for call in (lambda: Identity.load(fifo, "x"), lambda: TrustStore.load(fifo)):
            try:
                call()
            except FileError as exc:
                outcome.append(exc.code)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(30)
    assert outcome == ["file_not_regular", "file_not_regular"]


def test_a_saved_store_loads_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    old = os.umask(0o002)
    try:
        TrustStore().add_peer("alice", ALICE.agent_id).save(path)
        assert TrustStore.load(path).peer_ids == {ALICE.agent_id}
        path.chmod(0o664)  # made group-writable by hand: refused, and a save repairs it
        with pytest.raises(TrustStoreError):
            TrustStore.load(path)
        TrustStore().add_peer("bob", BOB.agent_id).save(path)
        assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_an_oversized_audit_record_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(b"x" * 70_000 + b"\n")
    with pytest.raises(AuditLogError) as info:
        verify_audit_log(path)
    assert "record 1 is longer" in info.value.message


@pytest.fixture
def events() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(AUDIT_LOGGER)
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.anyio
async def test_a_handshake_deadline_is_an_audit_event(events: list[logging.LogRecord]
                                                      ) -> None:
    left, right = anyio.create_memory_object_stream[bytes](8)
    back_send, back_receive = anyio.create_memory_object_stream[bytes](8)
    from anyio.streams.stapled import StapledObjectStream  # noqa: PLC0415

    transport = StapledObjectStream(left, back_receive)  # the peer never answers
    with anyio.fail_after(10), pytest.raises(HandshakeTimeout):
        await AgentAuthStream.wrap(transport, ALICE, HandshakePolicy(trust=[BOB.agent_id]),
                                   initiator=True, handshake_timeout=0.2)
    for stream in (right, back_send, back_receive, left):
        stream.close()
    assert [r.audit for r in events] == [  # type: ignore[attr-defined]
        {"event": "handshake_refused", "role": "initiator", "code": "handshake_timeout"}]


ENV = {**os.environ, "PYTHONPATH": str(ROOT_DIR), "KEY_PASS": "json passphrase"}


def agentauth(cwd: Path, *args: str) -> Ran:
    return run_cli(args, cwd=cwd, env=ENV)


def test_capability_commands_speak_json(tmp_path: Path) -> None:
    key = ("--passphrase-env", "KEY_PASS")
    root = json.loads(agentauth(tmp_path, "keygen", "root.key", "--preset", "interactive",
                                *key, "--json").stdout)["agent_id"]
    made = json.loads(agentauth(tmp_path, "delegate", "--key", "root.key", "--to",
                                ALICE.agent_id, "--grant", "fs/**=read", "--out", "a.chain",
                                *key, "--json").stdout)
    assert made["links"] == 1 and made["link"]["audience"] == ALICE.agent_id
    verified = json.loads(agentauth(tmp_path, "verify", "a.chain", "--anchor", root,
                                    "--json").stdout)
    assert verified == {"ok": True, "links": 1, "holder": ALICE.agent_id,
                        "expires": made["link"]["expires"]}
    revoked = json.loads(agentauth(tmp_path, "revoke", "--key", "root.key", "--chain",
                                   "a.chain", "--link", "0", "--store", "r.db", *key,
                                   "--json").stdout)
    assert revoked["added"] is True and len(revoked["id"]) == 64
    refused = agentauth(tmp_path, "verify", "a.chain", "--anchor", root, "--revoked", "r.db",
                        "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["code"] == "revoked"
    demo = agentauth(tmp_path, "demo", "--json")
    report = json.loads(demo.stdout)
    assert demo.returncode == 0 and report["ok"] is True
    assert any("untrusted_peer" in line for line in report["log"])


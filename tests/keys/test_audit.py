"""Audit events (spec 14.5): every decision through ``logging``, no secret in any of them,
and a hash-chained file in which any edited, dropped or reordered record is found."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentauth import (
    AgentAuthError,
    AuditLogError,
    HandshakePolicy,
    Identity,
    Initiator,
    MemoryReplayStore,
    Responder,
    TrustStore,
    open_envelope,
    seal,
)
from agentauth.audit import AUDIT_LOGGER, EVENTS, emit
from agentauth.capability import Grant, delegate, revoke, verify_chain
from agentauth.keys.auditlog import AuditFileHandler, verify_audit_log
from agentauth.keys.rotation import rotate
from agentauth.stores import MemoryRevocationStore

ROOT_DIR = Path(__file__).resolve().parents[2]
ALICE, BOB, ROOT, MALLORY = (Identity.from_seed(bytes([i + 40]) * 32) for i in range(4))
SECRETS = [k.export_seed().hex() for k in (ALICE, BOB, ROOT, MALLORY)]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self) -> list[dict[str, object]]:
        return [r.audit for r in self.records]  # type: ignore[attr-defined]


@pytest.fixture
def collect() -> Iterator[Collect]:
    logger = logging.getLogger(AUDIT_LOGGER)
    handler = Collect()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def handshake(client: Identity, server: Identity, trusted: list[str]) -> None:
    initiator = Initiator(client, HandshakePolicy(trust=[server.agent_id]))
    responder = Responder(server, HandshakePolicy(trust=trusted))
    hs2 = responder.receive_message(initiator.start())
    assert hs2 is not None
    hs3 = initiator.receive_message(hs2)
    assert hs3 is not None
    with contextlib.suppress(AgentAuthError):
        responder.receive_message(hs3)


def no_secrets(records: list[logging.LogRecord]) -> None:
    for record in records:
        text = record.getMessage() + json.dumps(record.audit)  # type: ignore[attr-defined]
        for secret in SECRETS:
            assert secret not in text


def test_every_decision_is_an_event(collect: Collect) -> None:
    handshake(ALICE, BOB, [ALICE.agent_id])
    handshake(MALLORY, BOB, [ALICE.agent_id])
    now = int(time.time())
    token = delegate(ROOT, ALICE.agent_id, [Grant("reports/**", {"read"})], not_before=now,
                     expires=now + 60)
    verify_chain([token], {ROOT.agent_id: "**"}, now=now)
    with pytest.raises(AgentAuthError):
        verify_chain([token], {MALLORY.agent_id: "**"}, now=now)
    store = MemoryReplayStore()
    envelope = seal(ALICE, BOB.agent_id, b"secret payload")
    open_envelope(envelope, BOB, store)
    with pytest.raises(AgentAuthError):
        open_envelope(envelope, BOB, store)
    revocations = MemoryRevocationStore({ROOT.agent_id: "**"})
    assert revocations.add(revoke(ROOT, [token]))
    TrustStore().add_peer("alice", ALICE.agent_id).accept_rotation(rotate(ALICE, BOB, now=1))

    events = collect.events()
    names = [e["event"] for e in events]
    assert names.count("handshake_accepted") == 3  # two sides, then the initiator alone
    refused = [e for e in events if e["event"] == "handshake_refused"]
    assert refused == [{"event": "handshake_refused", "role": "responder",
                        "code": "untrusted_peer", "peer": MALLORY.agent_id}]
    accepted = [e for e in events if e["event"] == "handshake_accepted"
                and e["role"] == "responder"]
    assert accepted[0]["peer"] == ALICE.agent_id
    verified = next(e for e in events if e["event"] == "token_verified")
    assert verified["root"] == ROOT.agent_id and verified["holder"] == ALICE.agent_id
    token_refused = next(e for e in events if e["event"] == "token_refused")
    # The refusal's places go with the code: the root (link 0) has no anchor here.
    assert (token_refused["code"], token_refused["kind"], token_refused["link"]) == (
        "untrusted_root", "anchor", 0)
    replay = next(e for e in events if e["event"] == "replay_refused")
    assert replay == {"event": "replay_refused", "kind": "envelope", "code": "replayed",
                      "sender": ALICE.agent_id}
    stored = next(e for e in events if e["event"] == "revocation_stored")
    assert stored["link"] == token.id.hex() and stored["revoker"] == ROOT.agent_id
    assert next(e for e in events if e["event"] == "rotation_accepted")["new"] == BOB.agent_id
    assert set(names) == set(EVENTS)
    levels = {r.audit["event"]: r.levelno for r in collect.records}  # type: ignore[attr-defined]
    assert levels["handshake_refused"] == logging.WARNING
    assert levels["token_verified"] == logging.INFO
    no_secrets(collect.records)
    assert all("secret payload" not in r.getMessage() for r in collect.records)


def test_session_replays_are_events(collect: Collect) -> None:
    initiator = Initiator(ALICE, HandshakePolicy(trust=[BOB.agent_id]))
    responder = Responder(BOB, HandshakePolicy(trust=[ALICE.agent_id]))
    hs2 = responder.receive_message(initiator.start())
    assert hs2 is not None
    hs3 = initiator.receive_message(hs2)
    assert hs3 is not None
    responder.receive_message(hs3)
    assert initiator.result is not None and responder.result is not None
    frame = initiator.result.session.seal(b"x")
    responder.result.session.open(frame)
    with pytest.raises(AgentAuthError):
        responder.result.session.open(frame)
    replays = [e for e in collect.events() if e["event"] == "replay_refused"]
    assert replays == [{"event": "replay_refused", "kind": "session", "code": "replayed",
                        "counter": 0}]


def test_nothing_is_built_when_no_handler_listens() -> None:
    logger = logging.getLogger(AUDIT_LOGGER)
    handler = Collect()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        handshake(ALICE, BOB, [ALICE.agent_id])
        handshake(MALLORY, BOB, [ALICE.agent_id])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert handler.records == []


# ------------------------------------------------------------ the file sink


def write_log(path: Path, count: int) -> None:
    logger = logging.getLogger(AUDIT_LOGGER)
    handler = AuditFileHandler(path)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for i in range(count):
            emit("token_refused", code="expired", holder=ALICE.agent_id, n=i)
        logging.getLogger("agentauth.audit.other").info("not an audit event")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def broken(path: Path, **kwargs: str) -> str:
    with pytest.raises(AuditLogError) as info:
        verify_audit_log(path, **kwargs)
    assert info.value.code == "audit_log_broken"
    return info.value.message


def test_a_log_verifies_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 3)
    write_log(path, 2)  # a new handler continues the chain
    summary = verify_audit_log(path)
    assert summary.records == 5
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["prev"] == "0" * 64 and records[1]["prev"] == records[0]["hash"]
    assert summary.head == records[-1]["hash"]
    assert records[2]["event"] == "token_refused" and records[2]["n"] == 2
    assert verify_audit_log(path, head=summary.head) == summary
    assert (path.stat().st_mode & 0o077) == 0


def test_an_edited_record_is_found_at_its_place(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 6)
    lines = path.read_text().splitlines(keepends=True)
    edited = lines.copy()
    edited[3] = edited[3].replace('"code":"expired"', '"code":"revoked"')
    path.write_text("".join(edited))
    assert broken(path).startswith("record 4 (seq 4) was edited")
    # An editor who also recomputes the record's own hash breaks the next link instead.
    import hashlib  # noqa: PLC0415

    body = edited[3][:-(75 + 1)]
    edited[3] = f'{body},"hash":"{hashlib.sha256(body.encode()).hexdigest()}"}}\n'
    path.write_text("".join(edited))
    assert broken(path).startswith("record 5 does not follow record 4")


def test_dropped_reordered_and_truncated_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 6)
    lines = path.read_text().splitlines(keepends=True)
    head = verify_audit_log(path).head
    path.write_text("".join(lines[:2] + lines[3:]))
    assert broken(path) == "record 3 has seq 4: record(s) 3..3 were dropped"
    path.write_text("".join([*lines[:2], lines[3], lines[2], *lines[4:]]))
    assert broken(path).startswith("record 3 has seq 4")
    path.write_text("".join([*lines[:4], lines[2], *lines[4:]]))
    assert broken(path).startswith("record 5 has seq 3 after 4")
    path.write_text("".join(lines)[:-10])
    assert broken(path) == "record 6 is cut short (no end of line)"
    path.write_text("".join(lines[:-1]))  # the last record dropped: only the head tells
    assert verify_audit_log(path).records == 5
    assert "dropped from the end" in broken(path, head=head)
    path.write_text("".join(lines[:2]) + "not json\n" + "".join(lines[3:]))
    assert broken(path).startswith("record 3 is not a complete record")


def test_a_broken_log_is_not_extended(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 2)
    path.write_text(path.read_text()[:-5])
    with pytest.raises(AuditLogError):
        AuditFileHandler(path)


def test_two_processes_append_to_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    script = ("import logging, sys\n"
              "from agentauth.audit import emit\n"
              "from agentauth.keys.auditlog import AuditFileHandler\n"
              "logger = logging.getLogger('agentauth.audit')\n"
              "logger.addHandler(AuditFileHandler(sys.argv[1]))\n"
              "logger.setLevel(logging.INFO)\n"
              "for i in range(200):\n"
              "    emit('replay_refused', kind='envelope', code='replayed', n=i)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR)}
    writers = [subprocess.Popen([sys.executable, "-c", script, str(path)], env=env)
               for _ in range(2)]
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    assert verify_audit_log(path).records == 400


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_files_are_a_typed_error(tmp_path_factory: pytest.TempPathFactory,
                                        data: bytes) -> None:
    path = tmp_path_factory.mktemp("log") / "audit.log"
    path.write_bytes(data)
    with contextlib.suppress(AuditLogError):
        verify_audit_log(path)


def test_messages_cannot_forge_log_lines(collect: Collect) -> None:
    emit("token_refused", code="not_authorized", resource="a\nhandshake_accepted peer=x")
    (record,) = collect.records
    assert "\n" not in record.getMessage() and "\\n" in record.getMessage()
    assert record.audit["resource"] == "a\nhandshake_accepted peer=x"  # type: ignore[attr-defined]

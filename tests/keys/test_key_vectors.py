"""The key lifecycle vectors (spec/vectors/keys.json, spec section 14), replayed."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from agentauth import AgentAuthError, AuditLogError, Identity, PeerKey, TrustStore
from agentauth.conformance.vectors import keys as key_vectors
from agentauth.keyfile import seal_seed
from agentauth.keys.auditlog import verify_audit_log

SPEC = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "keys.json"
VECTORS: list[dict[str, Any]] = json.loads(SPEC.read_text())["vectors"]


def of_kind(kind: str) -> list[Any]:
    return [pytest.param(v, id=v["id"]) for v in VECTORS if v["kind"] == kind]


@pytest.mark.parametrize("vector", of_kind("key_file"))
def test_key_file_vectors(tmp_path: Path, vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["file"])
    path = tmp_path / "vector.key"
    path.write_bytes(data)
    path.chmod(0o600)
    try:
        loaded = Identity.load(path, vector["passphrase"])
        got = "ok"
    except AgentAuthError as exc:
        got = exc.code
    assert got == vector["expected"]
    assert path.read_bytes() == data
    if "seed" in vector:
        assert loaded.export_seed().hex() == vector["seed"]
        assert loaded.public_bytes.hex() == vector["public_key"]
        again = seal_seed(loaded.export_seed(), loaded.public_bytes, vector["passphrase"],
                          vector["preset"], random=key_vectors.fixed_random("alice"))
        assert again == data  # the exact bytes, from the same inputs


@pytest.mark.parametrize("vector", of_kind("export"))
def test_export_vectors(vector: dict[str, Any]) -> None:
    key = PeerKey(bytes.fromhex(vector["public_key"]))
    assert key.agent_id == vector["agent_id"] and key.multibase == vector["multibase"]
    assert key.jwk() == vector["jwk"] and key.jwk_thumbprint() == vector["thumbprint"]


@pytest.mark.parametrize("vector", of_kind("rotation"))
def test_rotation_vectors(vector: dict[str, Any]) -> None:
    store = TrustStore.parse(vector["store"])
    try:
        after, _ = store.accept_rotation(bytes.fromhex(vector["statement"]))
        got = "ok"
    except AgentAuthError as exc:
        got = exc.code
    assert got == vector["expected"]
    if got == "ok":  # the store it loads as, not its layout (spec 14.3)
        assert TrustStore.parse(vector["store_after"]).entries == after.entries


@pytest.mark.parametrize("vector", of_kind("audit_log"))
def test_audit_log_vectors(tmp_path: Path, vector: dict[str, Any]) -> None:
    """The code and the record at fault (spec 14.5); the message's words are not compared."""
    path = tmp_path / "audit.log"
    path.write_text(vector["log"])
    if vector["expected"] == "ok":
        summary = verify_audit_log(path, head=vector["head"])
        assert (summary.records, summary.head) == (vector["records"], vector["head"])
        return
    with pytest.raises(AuditLogError) as info:
        verify_audit_log(path, head=vector["head"])
    assert (info.value.code, info.value.record) == (vector["expected"], vector["record"])


def test_a_broken_log_names_its_record_across_processes() -> None:
    error = AuditLogError("record 2 was edited", record=2)
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.code, again.record) == (AuditLogError, "audit_log_broken", 2)


def test_the_vectors_cover_the_rules() -> None:
    codes = {v["expected"] for v in VECTORS if v["kind"] in ("key_file", "rotation")}
    assert {"ok", "wrong_passphrase", "key_file_version", "key_file_corrupt",
            "key_file_unencrypted", "key_rotated", "rotation_mismatch", "untrusted_peer",
            "bad_signature", "unknown_field", "malformed"} <= codes
    assert len({v["id"] for v in VECTORS}) == len(VECTORS)

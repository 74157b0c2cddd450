"""Key lifecycle vectors (spec section 14): key files with fixed salt and nonce, key
exports, rotation statements applied to trust stores, and audit logs, each good or broken
in one way with the result it must give (``ok`` or an error code; for a broken audit log
also the record at fault). A trust store after a rotation is given as the text agentauth
writes, which is compared as the store it loads as, not byte for byte (spec 14.3).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ... import crypto, keyfile, wire
from ...identity import Identity, PeerKey
from ...keys import auditlog
from ...keys.rotation import ROTATION_CONTEXT, rotate
from ...keys.trust import TrustStore

__all__ = ["PASSPHRASE", "build", "fixed_random", "identity"]

NOW = 1_800_000_000
PASSPHRASE = "correct horse battery staple"  # noqa: S105  (a published test vector)
DID_KEY_EXAMPLE = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def identity(name: str) -> Identity:
    """The fixed identity named ``name``."""
    return Identity.from_seed(crypto.blake2b_256(b"key vectors " + name.encode()))


def fixed_random(label: str) -> Callable[[int], bytes]:
    """A 'random' source that gives the salt, then the nonce, of the key file ``label``."""
    stream = iter((crypto.blake2b_256(b"salt " + label.encode())[:16],
                   crypto.blake2b_256(b"nonce " + label.encode())[:24]))
    return lambda n: next(stream)[:n]


def _key_file(vid: str, description: str, data: bytes, expected: str,
              passphrase: str = PASSPHRASE) -> dict[str, Any]:
    return {"id": vid, "kind": "key_file", "description": description,
            "passphrase": passphrase, "file": data.hex(), "expected": expected}


def _key_files() -> list[dict[str, Any]]:
    alice = identity("alice")
    good = keyfile.seal_seed(alice.export_seed(), alice.public_bytes, PASSPHRASE,
                             "interactive", random=fixed_random("alice"))
    positive = _key_file("key-file-interactive", "alice's seed under the interactive preset",
                         good, "ok")
    positive.update(seed=alice.export_seed().hex(), public_key=alice.public_bytes.hex(),
                    preset="interactive", salt=fixed_random("alice")(16).hex())

    def flipped(index: int) -> bytes:
        data = bytearray(good)
        data[index] ^= 1
        return bytes(data)

    other = identity("other")
    salt, nonce = fixed_random("mismatch")(16), bytes(24)
    header = wire.encode_value(["agentauth-key", 1, 2, 67108864, salt, nonce,
                                other.public_bytes, bytes(48)])[:-50]
    box = crypto.xaead_seal(crypto.argon2id(PASSPHRASE.encode(), salt, 2, 67108864), nonce,
                            alice.export_seed(), header)
    return [
        positive,
        _key_file("key-file-wrong-passphrase", "another passphrase", good,
                  "wrong_passphrase", "Correct horse battery staple"),
        _key_file("key-file-nfc", "the passphrase decomposed (NFD) opens a file made with "
                  "the composed form", keyfile.seal_seed(
                      alice.export_seed(), alice.public_bytes, "caf\u00e9", "interactive",
                      random=fixed_random("nfc")), "ok", "cafe\u0301"),
        _key_file("key-file-version-2", "version 2", good[:15] + b"\x02" + good[16:],
                  "key_file_version"),
        _key_file("key-file-truncated", "the last byte missing", good[:-1],
                  "key_file_corrupt"),
        _key_file("key-file-trailing", "one byte too many", good + b"\x00",
                  "key_file_corrupt"),
        _key_file("key-file-magic", "another magic string", flipped(2), "key_file_corrupt"),
        _key_file("key-file-salt", "a salt byte changed", flipped(25), "wrong_passphrase"),
        _key_file("key-file-nonce", "a nonce byte changed", flipped(45), "wrong_passphrase"),
        _key_file("key-file-public", "a public key byte changed", flipped(70),
                  "wrong_passphrase"),
        _key_file("key-file-box", "a box byte changed", flipped(len(good) - 1),
                  "wrong_passphrase"),
        _key_file("key-file-opslimit", "opslimit 3 recorded instead of 2",
                  good[:16] + b"\x03" + good[17:], "wrong_passphrase"),
        _key_file("key-file-memlimit-over", "a memlimit above the sensitive preset",
                  good[:17] + wire.encode_value(2**31) + good[22:], "key_file_corrupt"),
        _key_file("key-file-seed-mismatch", "sealed correctly, but the seed is not the "
                  "recorded public key's", header + wire.encode_value(box),
                  "key_file_corrupt"),
        _key_file("key-file-hex", "the unencrypted form (read only when allowed)",
                  keyfile.plain_form(alice.export_seed()), "key_file_unencrypted"),
    ]


def _exports() -> list[dict[str, Any]]:
    out = []
    for vid, key in (("export-did-key-example", PeerKey.from_agent_id(DID_KEY_EXAMPLE)),
                     ("export-alice", identity("alice").peer)):
        out.append({"id": vid, "kind": "export", "agent_id": key.agent_id,
                    "public_key": key.public_bytes.hex(), "multibase": key.multibase,
                    "jwk": key.jwk(), "thumbprint": key.jwk_thumbprint()})
    return out


def _rotation(vid: str, description: str, store: TrustStore, statement: bytes,
              expected: str) -> dict[str, Any]:
    vector: dict[str, Any] = {"id": vid, "kind": "rotation", "description": description,
                              "store": store.dumps(), "statement": statement.hex(),
                              "expected": expected}
    if expected == "ok":
        vector["store_after"] = store.accept_rotation(statement)[0].dumps()
    return vector


def _rotations() -> list[dict[str, Any]]:
    k0, k1, k2, k3, bob = (identity(n) for n in ("bob-0", "bob-1", "bob-2", "bob-3", "b"))
    pinned = TrustStore().add_peer("bob", k0.agent_id).add_peer("carol", bob.agent_id)
    first = rotate(k0, k1, now=NOW, next_key=k2.peer)
    after, _ = pinned.accept_rotation(first)
    payload = wire.decode_map(first, 3, 512, "x")[0]
    v2 = wire.encode_map(2, k0.public_bytes, k1.public_bytes, b"", NOW)
    return [
        _rotation("rotation-committed", "bob-0 to bob-1, committing to bob-2", pinned, first,
                  "ok"),
        _rotation("rotation-plain", "bob-0 to bob-1, no commitment", pinned,
                  rotate(k0, k1, now=NOW), "ok"),
        _rotation("rotation-again", "the same statement a second time", after, first,
                  "key_rotated"),
        _rotation("rotation-retired-signer", "bob-0, already rotated away, to bob-3", after,
                  rotate(k0, k3, now=NOW + 1), "key_rotated"),
        _rotation("rotation-next", "bob-1 to bob-2, the committed key", after,
                  rotate(k1, k2, now=NOW + 2), "ok"),
        _rotation("rotation-not-committed", "bob-1 to bob-3, not the committed key", after,
                  rotate(k1, k3, now=NOW + 2), "rotation_mismatch"),
        _rotation("rotation-back", "bob-1 back to bob-0, a retired key", after,
                  rotate(k1, k0, now=NOW + 2), "key_rotated"),
        _rotation("rotation-onto-pinned", "bob-0 to carol's key", pinned,
                  rotate(k0, bob, now=NOW), "rotation_mismatch"),
        _rotation("rotation-unpinned", "a key nobody pinned", pinned,
                  rotate(k3, k2, now=NOW), "untrusted_peer"),
        _rotation("rotation-new-key-did-not-sign", "signed by the old key only", pinned,
                  wire.encode_map(payload, k0.sign(ROTATION_CONTEXT + payload),
                                  bob.sign(ROTATION_CONTEXT + payload)), "bad_signature"),
        _rotation("rotation-old-key-did-not-sign", "signed by the new key only", pinned,
                  wire.encode_map(payload, bob.sign(ROTATION_CONTEXT + payload),
                                  k1.sign(ROTATION_CONTEXT + payload)), "bad_signature"),
        _rotation("rotation-version-2", "payload version 2", pinned,
                  wire.encode_map(v2, k0.sign(ROTATION_CONTEXT + v2),
                                  k1.sign(ROTATION_CONTEXT + v2)), "unknown_field"),
        _rotation("rotation-trailing", "a byte after the statement", pinned, first + b"\x00",
                  "malformed"),
    ]


def _audit_logs() -> list[dict[str, Any]]:
    lines, prev = [], auditlog.GENESIS
    events: list[dict[str, str | int]] = [
        {"event": "handshake_accepted", "role": "responder",
         "peer": identity("alice").agent_id, "version": 1},
        {"event": "token_refused", "code": "expired"},
        {"event": "replay_refused", "kind": "envelope", "code": "replayed"},
    ]
    for seq, data in enumerate(events, 1):
        line = auditlog.format_record(seq, prev, NOW + seq / 1000, data)
        lines.append(line.decode("ascii"))
        prev = json.loads(line)["hash"]
    edited = lines[1].replace("expired", "revoked")
    first_hash = json.loads(lines[0])["hash"]
    rewritten = auditlog.format_record(2, first_hash, NOW + 0.002, {
        "event": "token_refused", "code": "revoked"}).decode("ascii")

    def log(vid: str, description: str, text: str, record: int | None = None, *,
            head: str | None = None) -> dict[str, Any]:
        return {"id": vid, "kind": "audit_log", "description": description, "log": text,
                "head": head, "expected": "audit_log_broken", "record": record}

    return [
        {**log("audit-ok", "three records", "".join(lines), head=prev), "expected": "ok",
         "records": 3},
        log("audit-edited", "record 2 edited: its hash does not match it",
            lines[0] + edited + lines[2], 2),
        log("audit-dropped", "record 2 removed: record 3 comes second", lines[0] + lines[2],
            2),
        log("audit-reordered", "records 2 and 3 swapped", lines[0] + lines[2] + lines[1], 2),
        log("audit-rewritten", "record 2 rewritten with a fresh hash: record 3's prev no "
            "longer names it", lines[0] + rewritten + lines[2], 3),
        log("audit-not-a-record", "a line that is not a record", lines[0] + "{}\n" + lines[2],
            2),
        log("audit-cut", "the last line cut short", "".join(lines)[:-20], 3),
        log("audit-short-of-head", "record 3 removed from the end, checked against the "
            "head kept elsewhere", lines[0] + lines[1], head=prev),
    ]


def build() -> dict[str, Any]:
    """The content of ``keys.json``."""
    return {
        "description": "Key lifecycle vectors (spec section 14): key files, key exports, "
                       "rotation statements applied to trust stores, audit logs.",
        "vectors": _key_files() + _exports() + _rotations() + _audit_logs(),
    }

"""Positive handshake vectors: fixed keys, ephemerals and clock give exact bytes."""

from __future__ import annotations

from typing import Any

from ... import crypto
from ...handshake import Initiator, Responder
from ...identity import Identity
from .model import Inputs, make_engine

__all__ = ["ALICE", "BOB", "CAROL", "MALLORY", "T0", "agent_id", "build", "cases", "fixed",
           "handshake", "run"]

T0 = 1_800_000_000


def fixed(label: str) -> str:
    """A fixed 32-byte value named by ``label``, as hex (BLAKE2b of the label)."""
    return crypto.blake2b(b"agentauth vector " + label.encode())[:32].hex()


ALICE, BOB, CAROL, MALLORY = (fixed(n + " identity") for n in ("alice", "bob", "carol",
                                                                 "mallory"))


def agent_id(seed_hex: str) -> str:
    """The agent id of a fixed identity seed."""
    return Identity.from_seed(bytes.fromhex(seed_hex)).agent_id


def handshake(initiator_inputs: Inputs, responder_inputs: Inputs, clock: list[float]
              ) -> tuple[Initiator, Responder, tuple[bytes, bytes, bytes, bytes, bytes]]:
    """Both engines through the three messages, each step at its time of ``clock``: the
    engines, and the messages with the transcript hash after each of the first two."""
    now = [0.0]
    i = make_engine("initiator", initiator_inputs, lambda: now[0])
    r = make_engine("responder", responder_inputs, lambda: now[0])
    assert isinstance(i, Initiator) and isinstance(r, Responder)
    now[0] = clock[0]
    hs1 = i.start()
    h1 = i.transcript_hash_for_vectors()
    now[0] = clock[1]
    hs2 = r.receive_message(hs1)
    assert hs2 is not None
    h2 = r.transcript_hash_for_vectors()
    now[0] = clock[2]
    hs3 = i.receive_message(hs2)
    assert hs3 is not None
    now[0] = clock[3]
    r.receive_message(hs3)
    return i, r, (hs1, h1, hs2, h2, hs3)


def run(initiator_inputs: Inputs, responder_inputs: Inputs, clock: list[float],
        session_script: list[tuple[str, str, bytes]]) -> dict[str, Any]:
    """Run both engines; return the expected values the vector records."""
    i, r, (hs1, h1, hs2, h2, hs3) = handshake(initiator_inputs, responder_inputs, clock)
    ri, rr = i.result, r.result
    assert ri is not None and rr is not None
    assert ri.channel_binding == rr.channel_binding
    i_send, i_recv, exporter = ri.session.keys_for_vectors()
    ends = {"initiator": ri.session, "responder": rr.session}
    peers = {"initiator": rr.session, "responder": ri.session}
    messages = []
    for sender, kind, payload in session_script:
        end = ends[sender]
        if kind == "data":
            message = end.seal(payload)
            assert peers[sender].open(message) == payload
        else:
            message = end.rekey() if kind == "rekey" else end.close()
            assert peers[sender].open(message) is None
        messages.append({"from": sender, "kind": kind, "payload": payload.hex(),
                         "message": message.hex()})
    return {
        "initiator_id": agent_id(initiator_inputs.identity_seed),
        "responder_id": agent_id(responder_inputs.identity_seed),
        "hs1": hs1.hex(),
        "h_after_hs1": h1.hex(),
        "hs2": hs2.hex(),
        "h_after_hs2": h2.hex(),
        "hs3": hs3.hex(),
        "channel_binding": ri.channel_binding.hex(),
        "initiator_to_responder_key": i_send.hex(),
        "responder_to_initiator_key": i_recv.hex(),
        "exporter_secret": exporter.hex(),
        "export_example_32": ri.session.export(b"example").hex(),
        "session": messages,
    }


SCRIPT: list[tuple[str, str, bytes]] = [
    ("initiator", "data", b"hello, bob"),
    ("responder", "data", b"hello, alice"),
    ("initiator", "data", b""),
    ("initiator", "rekey", b""),
    ("initiator", "data", b"after rekey"),
    ("responder", "close", b""),
]


def cases() -> list[tuple[str, str, Inputs, Inputs, list[float]]]:
    """(id, description, initiator inputs, responder inputs, clock readings)."""
    alice_id, bob_id = agent_id(ALICE), agent_id(BOB)
    base_i = Inputs(identity_seed=ALICE, ephemeral_secret=fixed("alice ephemeral"),
                    trust=[bob_id], expect=bob_id)
    base_r = Inputs(identity_seed=BOB, ephemeral_secret=fixed("bob ephemeral"),
                    trust=[alice_id])
    clock = [T0, T0 + 0.25, T0 + 0.5, T0 + 0.75]
    ext_i = base_i.model_copy(update={"extensions": {"example.credential": "00ff" * 8}})
    ext_r = base_r.model_copy(update={"extensions": {"a": "", "example.note": "6869"}})
    skew = [T0, T0 + 119.0, T0 + 0.5, T0 + 119.75]
    return [
        ("basic", "Alice (pinning Bob) and Bob (allow-list of Alice), no extensions.",
         base_i, base_r, clock),
        ("extensions", "Both sides carry extensions; names are sorted on the wire.",
         ext_i, ext_r, clock),
        ("skew-edge", "Bob's clock runs 119 s ahead: inside the 120 s skew window.",
         base_i.model_copy(update={"trust": "any", "expect": None}),
         base_r.model_copy(update={"trust": "any"}), skew),
    ]


def build() -> dict[str, Any]:
    """The content of ``handshake-positive.json``."""
    vectors = []
    for vid, description, ini, res, clock in cases():
        vectors.append({
            "id": vid,
            "description": description,
            "inputs": {"initiator": ini.model_dump(), "responder": res.model_dump(),
                       "clock": clock,
                       "session": [{"from": s, "kind": k, "payload": p.hex()}
                                   for s, k, p in SCRIPT]},
            "expected": run(ini, res, clock, SCRIPT),
        })
    return {
        "description": "Complete handshakes with fixed identities, ephemeral secrets and "
                       "clock readings (initiator start, responder HS1, initiator HS2, "
                       "responder HS3), then a scripted exchange of session messages.",
        "vectors": vectors,
    }

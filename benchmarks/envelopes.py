"""One-shot envelopes: seal and open, signed and encrypted, against PyJWT EdDSA sign and
verify of the same payload, and against the floor of opening (one Ed25519 verification
plus one replay-store check), in one run.

Usage::

    python -m benchmarks.envelopes [--quick] [--rounds N] [--payload BYTES] [--json PATH]

Each round times every case for a fixed slice of time, interleaved, so that the machine's
drift falls on all of them alike; the table gives medians over rounds. Opening uses a
memory replay store (each opened envelope is new: a fresh nonce per envelope, sealed
beforehand), a clock inside the window and no trust callback. The JWT carries the payload
base64url-encoded in a claim, with ``iat`` and ``jti`` as the envelope carries time and
nonce, and is verified with its signature and ``exp`` checked.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jwt
import nacl.bindings as sodium
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentauth import Identity, MemoryReplayStore, open_envelope, seal
from agentauth.envelope import ENVELOPE_CONTEXT

from .tokens import time_slice

__all__ = ["main", "measure"]

Work = Callable[[], object]
POOL = 4096  # envelopes sealed ahead for the open cases: each is opened once


def _cycle(items: list[bytes]) -> Callable[[], bytes]:
    state = {"i": 0}

    def take() -> bytes:
        i = state["i"]
        state["i"] = (i + 1) % len(items)
        return items[i]

    return take


def cases(payload_size: int) -> dict[str, Work]:
    """Every timed case, each a call of one operation."""
    alice, bob = Identity.generate(), Identity.generate()
    payload = os.urandom(payload_size)
    now = time.time()
    work: dict[str, Work] = {
        "seal, signed": lambda: seal(alice, bob.agent_id, payload),
        "seal, encrypted": lambda: seal(alice, bob.agent_id, payload, encrypt=True),
    }
    for name, encrypt in (("open, signed", False), ("open, encrypted", True)):
        pool = [seal(alice, bob.agent_id, payload, encrypt=encrypt) for _ in range(POOL)]
        take = _cycle(pool)
        stores = [MemoryReplayStore(capacity=10_000_000)]

        def opened(take: Callable[[], bytes] = take, pool: list[bytes] = pool,
                   stores: list[MemoryReplayStore] = stores) -> object:
            data = take()
            if data is pool[0]:  # a new lap over the pool: a store that has seen none
                stores[0] = MemoryReplayStore(capacity=10_000_000)
            return open_envelope(data, bob, stores[0], clock=lambda: now)

        work[name] = opened

    # The floor of opening: one Ed25519 verification of a message of the body's length,
    # through the same binding, and one check of a new key in the same kind of store.
    body = os.urandom(payload_size + 110)
    public, secret = sodium.crypto_sign_seed_keypair(os.urandom(32))
    signed = sodium.crypto_sign(ENVELOPE_CONTEXT + body, secret)  # signature || message
    work["ed25519 verify"] = lambda: sodium.crypto_sign_open(signed, public)
    keys = [os.urandom(16) + i.to_bytes(32, "big") for i in range(POOL * 16)]
    next_key = _cycle(keys)
    later = now + 3600
    checks = [MemoryReplayStore(capacity=10_000_000)]

    def check() -> object:
        key = next_key()
        if key is keys[0]:  # a new lap: a store that has seen none of them
            checks[0] = MemoryReplayStore(capacity=10_000_000)
        return checks[0].check_and_insert(key, later)

    work["replay check, memory"] = check

    private = Ed25519PrivateKey.generate()
    verifier = private.public_key()
    claims = {"sub": "alice", "aud": "bob", "p": base64.urlsafe_b64encode(payload).decode(),
              "iat": int(now), "exp": int(now) + 300}

    def jwt_sign() -> object:
        return jwt.encode({**claims, "jti": os.urandom(16).hex()}, private, algorithm="EdDSA")

    token = jwt.encode({**claims, "jti": os.urandom(16).hex()}, private, algorithm="EdDSA")
    work["jwt EdDSA sign"] = jwt_sign
    work["jwt EdDSA verify"] = lambda: jwt.decode(token, verifier, algorithms=["EdDSA"],
                                                  audience="bob")
    return work


def measure(rounds: int, payload_size: int, slice_seconds: float) -> dict[str, float]:
    """Median seconds per call of every case."""
    work = cases(payload_size)
    samples: dict[str, list[float]] = {name: [] for name in work}
    for call in work.values():
        call()  # warm up
    for _ in range(rounds):
        for name, call in work.items():
            samples[name].append(time_slice(call, slice_seconds))
    return {name: statistics.median(values) for name, values in samples.items()}


def targets(medians: dict[str, float]) -> list[dict[str, Any]]:
    """The issue's target: opening a signed envelope within 1.2x of its floor."""
    floor = medians["ed25519 verify"] + medians["replay check, memory"]
    return [{"name": "open signed / (ed25519 verify + store check)",
             "value": medians["open, signed"] / floor, "bound": 1.2}]


def report(medians: dict[str, float], payload_size: int) -> list[str]:
    """The table and the target lines."""
    lines = [f"{'envelopes, ' + str(payload_size) + ' B payload':32} {'µs':>9} "
             f"{'per second':>12}"]
    for name, seconds in medians.items():
        lines.append(f"{name:32} {seconds * 1e6:>9.1f} {1 / seconds:>12,.0f}")
    lines.append(f"{'open signed / jwt verify':32} "
                 f"{medians['open, signed'] / medians['jwt EdDSA verify']:>9.2f}")
    lines.append(f"{'seal signed / jwt sign':32} "
                 f"{medians['seal, signed'] / medians['jwt EdDSA sign']:>9.2f}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--payload", type=int, default=256)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rounds, slice_seconds = (1, 0.01) if args.quick else (args.rounds, 0.2)
    medians = measure(rounds, args.payload, slice_seconds)
    print(f"python {sys.version.split()[0]}, {rounds} round(s)")
    print("\n".join(report(medians, args.payload)))
    found = targets(medians)
    for target in found:
        target["passed"] = target["value"] <= target["bound"]
        print(f"{target['name']:46} {target['value']:>6.2f} <= {target['bound']:<4} "
              f"{'PASS' if target['passed'] else 'MISS'}")
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "payload": args.payload,
                                         "median_seconds": medians, "targets": found},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Capability tokens: agentauth chains against biscuit-python, with pymacaroons and PyJWT
(EdDSA) for reference, in one run.

Usage::

    python -m benchmarks.tokens [--quick] [--rounds N] [--json PATH]

For authority + 1, 3 and 8 delegations: verify and authorise one request, cold (agentauth
forgets every link it has seen before each call) and warm (the same chain presented
again, as a verifier sees it on every request), beside biscuit's verify and authorise of
a token with as many attenuation blocks; the Ed25519 verifications agentauth must do
(one per link, through the same binding), and the token sizes. Medians of interleaved
rounds; ratios taken within the run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jwt
import nacl.bindings as sodium
from biscuit_auth import AuthorizerBuilder, Biscuit, BiscuitBuilder, BlockBuilder, KeyPair
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymacaroons import Macaroon, Verifier

from agentauth import Identity, PeerKey
from agentauth.capability import Grant, Range, Request, delegate, encode_chain, verify_chain
from agentauth.capability.chain import LINK_CONTEXT, NO_PARENT, clear_caches

__all__ = ["DEPTHS", "main", "time_slice"]

DEPTHS = (1, 3, 8)
RESOURCE = "fs/reports/q3/summary"
NOW = int(time.time())
Work = Callable[[], object]


def agentauth_work(delegations: int, narrowing: bool = False
                   ) -> tuple[Work, Work, Work, int]:
    """(cold verify, warm verify, the Ed25519 floor, size) for root + ``delegations``;
    every link carries the same grant, or (``narrowing``) each hop narrows its range."""
    root = Identity.generate()
    holders = [Identity.generate() for _ in range(delegations + 1)]

    def grant(hop: int) -> Grant:
        top = 1000 - hop if narrowing else 1000
        return Grant("fs/reports/**", {"read"}, {"size": Range(0, top)})

    links = [delegate(root, holders[0], [grant(0)], not_before=NOW - 60, expires=NOW + 3600,
                      budget=delegations)]
    for i in range(delegations):
        links.append(delegate(holders[i], holders[i + 1], [grant(i + 1)],
                              not_before=NOW - 60, expires=NOW + 3600,
                              budget=delegations - 1 - i, parent=links[-1]))
    data = encode_chain(links)
    anchors = {root.agent_id: "**"}
    holder = PeerKey(links[-1].audience)
    request = Request(RESOURCE, "read", {"size": 10})

    def warm() -> object:
        return verify_chain(data, anchors, now=NOW, holder=holder, request=request)

    def cold() -> object:
        clear_caches()
        return warm()

    signed = [(link.signature + LINK_CONTEXT + (link.parent or NO_PARENT) + link.payload,
               link.issuer) for link in links]

    def floor() -> object:
        return [sodium.crypto_sign_open(message, key) for message, key in signed]

    return cold, warm, floor, len(data)


def biscuit_work(delegations: int) -> tuple[Work, int]:
    root = KeyPair()
    token = BiscuitBuilder(f'right("{RESOURCE}", "read");').build(root.private_key)
    for _ in range(delegations):
        token = token.append(BlockBuilder(
            'check if resource($r), $r.starts_with("fs/reports/"); check if operation("read");'))
    data = bytes(token.to_bytes())  # the binding's stubs say list[int]; it is bytes
    public = root.public_key

    # biscuit stops a Datalog run after 1 ms by default, which a loaded machine can reach
    # at + 8 (AuthorizationError); the limit is raised so that a run is never cut short.
    # Setting it costs nothing measurable. (The binding's stubs omit limits and
    # set_limits, which it has; the builders are typed Any for them.)
    empty: Any = AuthorizerBuilder("")
    limits = empty.limits()
    limits.max_time = datetime.timedelta(seconds=1)

    def verify() -> object:
        parsed = Biscuit.from_bytes(data, public)
        builder: Any = AuthorizerBuilder(
            f'resource("{RESOURCE}"); operation("read"); '
            'allow if right($r, "read"), resource($r);')
        builder.set_limits(limits)
        return builder.build(parsed).authorize()

    return verify, len(data)


def macaroon_work(delegations: int) -> tuple[Work, int]:
    key = os.urandom(32)
    macaroon = Macaroon(location="agents", identifier="key-1", key=key)
    for i in range(delegations + 1):
        macaroon.add_first_party_caveat(f"resource = {RESOURCE}" if i == 0 else
                                        f"action = read{'' if i == 1 else i}")
    data = macaroon.serialize()

    def verify() -> object:
        verifier = Verifier()
        verifier.satisfy_general(lambda caveat: True)
        return verifier.verify(Macaroon.deserialize(data), key)

    return verify, len(data)


def jwt_work() -> tuple[Work, int]:
    private = Ed25519PrivateKey.generate()
    token = jwt.encode({"sub": "agent", "res": RESOURCE, "act": "read", "exp": NOW + 3600},
                       private, algorithm="EdDSA")
    public = private.public_key()

    def verify() -> object:
        return jwt.decode(token, public, algorithms=["EdDSA"])

    return verify, len(token)


def time_slice(call: Work, seconds: float) -> float:
    """Seconds per call of ``call``, called over and over for ``seconds``."""
    loops, start = 0, time.perf_counter()
    while True:
        call()
        loops += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / loops


def measure(rounds: int, seconds: float) -> tuple[dict[str, float], dict[str, int]]:
    work: dict[str, Work] = {}
    sizes: dict[str, int] = {}
    for d in DEPTHS:
        cold, warm, floor, size = agentauth_work(d)
        work[f"agentauth cold +{d}"], work[f"agentauth warm +{d}"] = cold, warm
        work[f"ed25519 floor +{d}"] = floor
        work[f"agentauth cold narrowing +{d}"] = agentauth_work(d, narrowing=True)[0]
        sizes[f"agentauth +{d}"] = size
        work[f"biscuit +{d}"], sizes[f"biscuit +{d}"] = biscuit_work(d)
        work[f"macaroon +{d}"], sizes[f"macaroon +{d}"] = macaroon_work(d)
    work["jwt EdDSA"], sizes["jwt EdDSA"] = jwt_work()
    samples: dict[str, list[float]] = {name: [] for name in work}
    order = list(work)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            samples[name].append(time_slice(work[name], seconds))
    return {name: statistics.median(v) for name, v in samples.items()}, sizes


def report(medians: dict[str, float], sizes: dict[str, int]) -> tuple[str, list[dict[str,
                                                                                   Any]]]:
    lines = [f"{'':14} {'cold µs':>9} {'narrowing':>9} {'warm µs':>9} {'floor µs':>9} "
             f"{'biscuit µs':>11} {'macaroon µs':>12} {'size B':>7} {'biscuit B':>10}"]
    targets: list[dict[str, Any]] = []
    for d in DEPTHS:
        cold, warm = medians[f"agentauth cold +{d}"], medians[f"agentauth warm +{d}"]
        floor, biscuit = medians[f"ed25519 floor +{d}"], medians[f"biscuit +{d}"]
        narrowing = medians[f"agentauth cold narrowing +{d}"]
        lines.append(f"authority +{d:<3} {cold * 1e6:>9.1f} {narrowing * 1e6:>9.1f} "
                     f"{warm * 1e6:>9.1f} "
                     f"{floor * 1e6:>9.1f} {biscuit * 1e6:>11.1f} "
                     f"{medians[f'macaroon +{d}'] * 1e6:>12.1f} {sizes[f'agentauth +{d}']:>7} "
                     f"{sizes[f'biscuit +{d}']:>10}")
        targets += [
            {"name": f"cold / biscuit, +{d}", "ratio": cold / biscuit, "bound": 1.0},
            {"name": f"warm / biscuit, +{d}", "ratio": warm / biscuit, "bound": 1.0},
            {"name": f"cold / Ed25519 floor, +{d}", "ratio": cold / floor, "bound": 1.2},
            {"name": f"cold narrowing / floor, +{d}", "ratio": narrowing / floor,
             "bound": 1.2},
            {"name": f"size / biscuit, +{d}", "ratio": sizes[f"agentauth +{d}"]
             / sizes[f"biscuit +{d}"], "bound": 1.0},
        ]
    lines.append(f"jwt EdDSA (one token, no delegation): {medians['jwt EdDSA'] * 1e6:.1f} µs, "
                 f"{sizes['jwt EdDSA']} B")
    lines.append("")
    lines.append(f"{'target':32} {'ratio':>7} {'bound':>7}  result")
    for target in targets:
        target["passed"] = target["ratio"] <= target["bound"]
        lines.append(f"{target['name']:32} {target['ratio']:>7.3f} <= {target['bound']:<4} "
                     f"{'PASS' if target['passed'] else 'MISS'}")
    return "\n".join(lines), targets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rounds, seconds = (1, 0.01) if args.quick else (args.rounds, 0.05)
    medians, sizes = measure(rounds, seconds)
    text, targets = report(medians, sizes)
    print(f"python {sys.version.split()[0]}, {rounds} round(s), medians")
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "median_seconds": medians,
                                         "sizes": sizes, "targets": targets}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Key lifecycle costs: unlocking a key file at each Argon2id preset, loading a trust store,
and the handshake with a policy from a store of 1,000 pinned peers against one of 1, in one
run.

Usage::

    python -m benchmarks.keys [--quick] [--rounds N] [--json PATH]

Unlocking is ``Identity.load`` of a real file: read, Argon2id, XChaCha20-Poly1305, key
derivation; the median of the rounds for each preset (sensitive takes a gigabyte for a few
seconds). The handshake rows are both engines of a complete handshake, as in
``benchmarks.handshake``, the responder's policy coming from ``TrustStore.load`` of a file
with 1 or 1,000 pinned peers, and with 1 while both sides' audit events are appended to a
hash-chained file; they run in shuffled batches so drift touches all alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from agentauth import Identity, TrustStore
from agentauth.audit import AUDIT_LOGGER
from agentauth.keyfile import PRESETS
from agentauth.keys.auditlog import AuditFileHandler
from benchmarks.handshake import _batch, _calibrate
from benchmarks.peers import agentauth_handshake

__all__ = ["main"]

PASSPHRASE = "benchmark passphrase"
HANDSHAKE_BOUND = 1.05  # 1,000 pinned peers cost at most this much more than 1
AUDITED = "handshake, audited to a file"


def unlock_times(folder: Path, rounds: dict[str, int]) -> dict[str, float]:
    """Median seconds of ``Identity.load`` for a key file of each preset."""
    identity = Identity.generate()
    medians = {}
    for preset, count in rounds.items():
        path = folder / f"{preset}.key"
        identity.save(path, PASSPHRASE, preset=preset)
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            loaded = Identity.load(path, PASSPHRASE)
            samples.append(time.perf_counter() - start)
            assert loaded == identity
        medians[preset] = statistics.median(samples)
    return medians


def _store_file(folder: Path, peers: int, client: Identity) -> Path:
    """A trust store file pinning ``client`` and ``peers - 1`` other agents."""
    store = TrustStore().add_peer("client", client.agent_id)
    others = [Identity.generate().agent_id for _ in range(peers - 1)]
    text = store.dumps() + "".join(f'\n[[peer]]\nname = "peer-{i}"\nid = "{agent_id}"\n'
                                   for i, agent_id in enumerate(others))
    path = folder / f"trust-{peers}.toml"
    path.write_text(text)
    path.chmod(0o644)
    assert len(TrustStore.load(path).peer_ids) == peers
    return path


def measure(folder: Path, rounds: int, batch_seconds: float, unlock_rounds: dict[str, int]
            ) -> dict[str, float]:
    """Median seconds for every row."""
    medians = {f"unlock {p}": s for p, s in unlock_times(folder, unlock_rounds).items()}
    client, server = Identity.generate(), Identity.generate()
    paths = {n: _store_file(folder, n, client) for n in (1, 1000)}
    for n, path in paths.items():
        start = time.perf_counter()
        TrustStore.load(path)
        medians[f"load trust store of {n:,}"] = time.perf_counter() - start
    work = {f"handshake, {n:,} pinned": agentauth_handshake(
        client, server, TrustStore.load(path).handshake_policy()) for n, path in paths.items()}
    work[AUDITED] = work["handshake, 1 pinned"]
    logger = logging.getLogger(AUDIT_LOGGER)
    sink = AuditFileHandler(folder / "audit.log")
    level = logger.level

    def timed(name: str, loops: int | None = None) -> float:
        if name == AUDITED:  # the audit events of both sides appended to a file
            logger.addHandler(sink)
            logger.setLevel(logging.INFO)
        try:
            if loops is None:
                return _calibrate(work[name], batch_seconds)
            return _batch(work[name], loops)
        finally:
            logger.removeHandler(sink)
            logger.setLevel(level)

    loops = {name: int(timed(name)) for name in work}
    samples: dict[str, list[float]] = {name: [] for name in work}
    order = list(work)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            samples[name].append(timed(name, loops[name]))
    sink.close()
    medians.update({name: statistics.median(v) for name, v in samples.items()})
    return medians


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.keys",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one unlock of the interactive and moderate presets and a few "
                             "short rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        # A smoke run: the sensitive preset (a gigabyte, seconds) only in a real one.
        rounds, batch, unlock = 3, 0.002, {"interactive": 1, "moderate": 1}
    else:
        rounds, batch = args.rounds, 0.04
        unlock = {"interactive": 15, "moderate": 7, "sensitive": 3}
    with tempfile.TemporaryDirectory() as folder:
        medians = measure(Path(folder), rounds, batch, unlock)
    print(f"python {platform.python_version()} on {platform.machine()}, medians")
    print(f"{'operation':<30} {'median':>12}")
    for name, seconds in medians.items():
        shown = f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} µs"
        print(f"{name:<30} {shown:>12}")
    limits = {p: f"opslimit {o}, memlimit {m >> 20} MiB" for p, (o, m) in PRESETS.items()}
    print()
    for preset, text in limits.items():
        print(f"{preset:<12} {text}")
    ratio = medians["handshake, 1,000 pinned"] / medians["handshake, 1 pinned"]
    passed = ratio <= HANDSHAKE_BOUND
    print(f"\nhandshake, 1,000 pinned / 1 pinned  {ratio:.3f}  <= {HANDSHAKE_BOUND}  "
          f"{'PASS' if passed else 'MISS'}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "python": platform.python_version(),
            "rounds": rounds,
            "median_seconds": medians,
            "presets": {p: {"opslimit": o, "memlimit": m} for p, (o, m) in PRESETS.items()},
            "targets": [{"name": "handshake, 1,000 pinned / 1 pinned", "ratio": ratio,
                         "bound": HANDSHAKE_BOUND, "passed": passed}],
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Two agents that never meet: requests and replies as envelope files in a shared folder.

Alice leaves sealed requests for Bob and goes away; Bob, later, answers each one once;
Alice, later still, collects the answers, accepting only replies to requests she sent, from
Bob. Run as separate processes, none of them online with another::

    python examples/mailbox.py keys BOX                 # alice.key and bob.key in BOX
    python examples/mailbox.py send BOX "what is due?"  # alice, then she is gone
    python examples/mailbox.py answer BOX               # bob: a SQLite replay store
    python examples/mailbox.py collect BOX              # alice again

Bob can run as several replicas on several machines sharing one Redis replay store; a
request delivered to every replica is answered exactly once::

    python examples/mailbox.py answer BOX --redis redis://127.0.0.1:6379/0 --name bob-1
    python examples/mailbox.py answer BOX --redis redis://127.0.0.1:6379/0 --name bob-2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from agentauth import (
    AgentAuthError,
    Identity,
    PendingRequests,
    RedisReplayStore,
    ReplayStore,
    SQLiteReplayStore,
    files,
    open_envelope,
    seal,
)
from agentauth.envelope import MAX_ENVELOPE

WAIT = 24 * 3600  # how long a request waits for its answer, and may take to arrive
SKEW = 60  # the clock skew open_envelope allows by default


def keys(box: Path) -> None:
    (box / "inbox").mkdir(parents=True)
    (box / "replies").mkdir()
    for name in ("alice", "bob"):
        identity = Identity.generate()
        identity.save(box / f"{name}.key", unencrypted=True)  # demo keys, in the clear
        (box / f"{name}.id").write_text(identity.agent_id + "\n")
        print(f"{name}: {identity.agent_id}")


def _pending(box: Path) -> PendingRequests:
    """Alice's requests awaiting answers, kept in her own file while she is offline."""
    pending = PendingRequests()
    record = box / "alice-pending.json"
    for entry in json.loads(record.read_text()) if record.exists() else []:
        pending.expect(bytes.fromhex(entry["nonce"]), entry["to"], expires=entry["until"])
    return pending


def send(box: Path, question: str) -> None:
    alice = Identity.load(box / "alice.key", unencrypted=True)
    bob = (box / "bob.id").read_text().strip()
    pending = _pending(box)
    envelope = pending.request(alice, bob, question.encode(), timeout=WAIT, encrypt=True)
    name = f"{time.time_ns()}.env"
    (box / "inbox" / name).write_bytes(envelope)
    _save(box, pending)
    print(f"alice left a sealed request for bob: {name}")


def _save(box: Path, pending: PendingRequests) -> None:
    (box / "alice-pending.json").write_text(json.dumps([
        {"nonce": nonce.hex(), "to": to.agent_id, "until": until}
        for nonce, to, until in pending.waiting()]))


def answer(box: Path, redis_url: str | None, name: str) -> None:
    bob = Identity.load(box / "bob.key", unencrypted=True)
    alice = (box / "alice.id").read_text().strip()
    # A Redis store is told how far ahead an entry may expire: after a restart it refuses
    # what it may have forgotten, the messages stamped up to then.
    store: ReplayStore = (RedisReplayStore(redis_url, horizon=WAIT + 2 * SKEW) if redis_url
                          else SQLiteReplayStore(box / "bob-replay.db"))
    for path in sorted((box / "inbox").glob("*.env")):
        try:
            # Anyone may drop a file here: a FIFO or a huge file is refused, never read.
            data = files.read_file(path, MAX_ENVELOPE, what="envelope")
            request = open_envelope(data, bob, store, window=WAIT,
                                    trust=lambda peer: peer.agent_id == alice)
        except AgentAuthError as exc:
            print(f"{name}: {path.name} refused: {exc.code}")
            continue
        reply = seal(bob, request.sender, b"answer to: " + request.payload,
                     reply_to=request.nonce, encrypt=True)
        (box / "replies" / f"{path.stem}.{name}.env").write_bytes(reply)
        print(f"{name}: {path.name} answered")


def collect(box: Path) -> None:
    alice = Identity.load(box / "alice.key", unencrypted=True)
    pending = _pending(box)
    store = SQLiteReplayStore(box / "alice-replay.db")
    for path in sorted((box / "replies").glob("*.env")):
        try:
            data = files.read_file(path, MAX_ENVELOPE, what="envelope")
            reply = open_envelope(data, alice, store, window=WAIT, pending=pending)
        except AgentAuthError as exc:
            print(f"alice: {path.name} refused: {exc.code}")
            continue
        print(f"alice: {reply.sender.agent_id[:20]}... says {reply.payload.decode()!r}")
    _save(box, pending)  # answered requests are no longer awaited


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["keys", "send", "answer", "collect"])
    parser.add_argument("box", type=Path)
    parser.add_argument("question", nargs="?", default="hello?")
    parser.add_argument("--redis", help="a Redis URL: the replay store Bob's replicas share")
    parser.add_argument("--name", default="bob")
    args = parser.parse_args()
    if args.command == "keys":
        keys(args.box)
    elif args.command == "send":
        send(args.box, args.question)
    elif args.command == "answer":
        answer(args.box, args.redis, args.name)
    else:
        collect(args.box)
    return 0


if __name__ == "__main__":
    sys.exit(main())

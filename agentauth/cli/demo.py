"""``agentauth demo``: four agents on the :class:`~agentauth.Agent` API over real loopback
TCP, in one process.

Bob's agent serves reports to Alice and Carol, whom he trusts, each with a capability Bob
delegated: a read is answered, a delete (not granted) is refused with its rule. Mallory
proves who she is, and Bob refuses her channel because she is not trusted. Alice's
channel runs through a relay that records her frames, like an attacker on the wire; the
relay sends her last request again, and Bob rejects the replay and drops the channel. An
envelope Alice sealed for Bob opens once and is refused the second time. Bob revokes
Carol's capability, and her next request on the same channel is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
from anyio.abc import ByteStream, SocketAttribute

from ..agent import Agent, Incoming, Peer
from ..aio.stream import FRAME_HEADER
from ..capability.grants import Grant
from ..errors import AgentAuthError, PeerRefused

__all__ = ["run_demo"]

HOST = "127.0.0.1"
#: The loggers that say why Bob dropped a channel.
_LOGGERS = ("agentauth.aio", "agentauth.agent")


class _Recorder(logging.Handler):
    """Collects Bob's log lines (why a channel was dropped) for the report."""

    def __init__(self, names: dict[str, str]) -> None:
        super().__init__(logging.INFO)
        self.names = names
        self.lines: list[str] = []
        self.changed = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        for agent_id, name in self.names.items():  # agent ids are long: show names
            line = line.replace(agent_id, name)
        self.lines.append(line)
        self.changed.set()

    async def wait_for(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()`` holds (at most two seconds: the demo never hangs)."""
        with anyio.move_on_after(2):
            while not done():
                self.changed = anyio.Event()
                await self.changed.wait()


class _Relay:
    """A TCP relay between a client and the server that records client frames."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.frames: list[bytes] = []
        self.to_server: ByteStream | None = None

    async def serve_one(self, client: ByteStream) -> None:
        """Relay one client to the server."""
        server = await anyio.connect_tcp(HOST, self.server_port)
        self.to_server = server
        async with client, server, anyio.create_task_group() as tg:
            # When either side ends, the relay ends both (as a real connection would).
            tg.start_soon(self._pipe, server, client, False, tg.cancel_scope)
            tg.start_soon(self._pipe, client, server, True, tg.cancel_scope)

    async def _pipe(self, source: ByteStream, sink: ByteStream, record: bool,
                    scope: anyio.CancelScope) -> None:
        buffer = b""
        try:
            while True:
                chunk = await source.receive()
                await sink.send(chunk)
                if record:
                    buffer += chunk
                    while len(buffer) >= FRAME_HEADER:
                        size = FRAME_HEADER + int.from_bytes(buffer[:FRAME_HEADER], "big")
                        if len(buffer) < size:
                            break
                        self.frames.append(buffer[:size])
                        buffer = buffer[size:]
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        scope.cancel()


class _Demo:
    """The four agents, the log of what happened, and whether each step went as it should."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.ok = True
        self.alice, self.carol, self.mallory = (Agent.generate() for _ in range(3))
        self.bob = Agent.generate(trust=[self.alice.id, self.carol.id])
        self.names = {self.alice.id: "alice", self.bob.id: "bob", self.carol.id: "carol",
                      self.mallory.id: "mallory"}
        self.recorder = _Recorder(self.names)

        @self.bob.handles("reports/**", "read")
        async def read_report(request: Incoming) -> bytes:
            return f"{request.resource} for {self.names[request.peer_id]}".encode()

    async def request(self, name: str, peer: Peer, action: str, *, expect: str) -> None:
        """``name`` asks Bob to ``action`` reports/q3; ``expect`` is the answer's code, or
        "ok"."""
        try:
            answer = await peer.request("reports/q3", action)
        except AgentAuthError as exc:
            self.say(f"{name:<7} -> bob   {action} reports/q3: refused {exc}")
            self.ok &= exc.code == expect
        else:
            self.say(f"{name:<7} -> bob   {action} reports/q3: answered {answer.decode()!r}")
            self.ok &= expect == "ok"

    async def bob_says(self, before: int, word: str) -> None:
        """Report Bob's log lines from ``before`` on, once one holds ``word``."""
        lines = self.recorder.lines
        await self.recorder.wait_for(lambda: any(word in line for line in lines[before:]))
        found = [line for line in lines[before:] if word in line]
        for line in found:
            self.say(f"bob              {line}")
        self.ok &= bool(found)


async def _main(say: Callable[[str], None]) -> bool:
    started = time.monotonic()
    demo = _Demo(say)
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    saved = [(log.level, log.propagate) for log in loggers]
    for log in loggers:
        log.addHandler(demo.recorder)
        log.setLevel(logging.INFO)
        log.propagate = False
    try:
        async with demo.bob, demo.bob.serve(HOST, 0) as server:
            await _run(demo, server.port)
            accepted, failed = server.listener.accepted, server.listener.failed
    finally:
        for log, (level, propagate) in zip(loggers, saved, strict=True):
            log.removeHandler(demo.recorder)
            log.setLevel(level)
            log.propagate = propagate
    say("")
    say(f"done in {time.monotonic() - started:.2f} s: bob accepted {accepted} channels "
        f"and refused {failed}")
    return demo.ok and accepted == 2 and failed == 1


async def _run(demo: _Demo, port: int) -> None:
    say, bob, alice, carol = demo.say, demo.bob, demo.alice, demo.carol
    say("agents")
    for agent_id, name in sorted(demo.names.items(), key=lambda item: item[1]):
        say(f"  {name:<8} {agent_id}")
    say(f"bob serves read on reports/** at {HOST}:{port} and trusts alice and carol")
    grants = [Grant("reports/**", {"read"})]
    chains = {name: bob.delegate(to=agent.id, grants=grants, ttl="5m")
              for name, agent in (("alice", alice), ("carol", carol))}
    say("bob delegates read on reports/** to alice and to carol, for 5 minutes")
    say("")

    relay_listener = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    relay = _Relay(port)
    async with relay_listener, anyio.create_task_group() as tg:
        tg.start_soon(relay_listener.serve, relay.serve_one)
        relay_port = relay_listener.extra(SocketAttribute.local_port)
        async with alice.connect(HOST, relay_port, expect=bob.id,
                                 capability=chains["alice"]) as peer:
            say("alice   -> bob   channel open: each verified the other (through a relay)")
            await demo.request("alice", peer, "read", expect="ok")
            await demo.request("alice", peer, "delete", expect="not_authorized")
            await _replay(demo, relay, peer)
        tg.cancel_scope.cancel()

    await _envelope(demo)

    async with carol.connect(HOST, port, expect=bob.id, capability=chains["carol"]) as peer:
        say("carol   -> bob   channel open: each verified the other")
        await demo.request("carol", peer, "read", expect="ok")
        bob.revoke(chains["carol"])
        say("bob              revokes the capability he delegated to carol")
        await demo.request("carol", peer, "read", expect="revoked")

    await _mallory(demo, port)


async def _replay(demo: _Demo, relay: _Relay, peer: Peer) -> None:
    # Alice's last frame through the relay is her last request (the delete): send it again.
    if relay.to_server is None or not relay.frames:
        demo.say("attacker         captured nothing")
        demo.ok = False
        return
    captured = relay.frames[-1]
    before = len(demo.recorder.lines)
    demo.say(f"attacker         re-sends alice's captured request ({len(captured)} bytes) "
             "to bob")
    await relay.to_server.send(captured)
    await demo.bob_says(before, "replayed")
    try:
        await peer.request("reports/q3", "read")
    except AgentAuthError as exc:
        demo.say(f"alice            sees the channel end [{exc.code}]")
    else:
        demo.ok = False


async def _envelope(demo: _Demo) -> None:
    sealed = demo.alice.seal(demo.bob.id, b"pay 10 to carol", encrypt=True)
    opened = await demo.bob.open(sealed)
    demo.say(f"alice   => bob   envelope ({len(sealed)} bytes) opened: "
             f"{opened.payload.decode()!r} from {demo.names[opened.sender.agent_id]}")
    try:
        await demo.bob.open(sealed)
    except AgentAuthError as exc:
        demo.say(f"attacker         re-sends the envelope: bob refuses it {exc}")
        demo.ok &= exc.code == "replayed"
    else:
        demo.ok = False


async def _mallory(demo: _Demo, port: int) -> None:
    before = len(demo.recorder.lines)
    try:
        async with demo.mallory.connect(HOST, port, expect=demo.bob.id) as peer:
            await peer.request("reports/q3", "read")
    except PeerRefused as exc:  # bob's alert (spec 4.14): his word, not a proof
        demo.say(f"mallory -> bob   refused: bob's alert claims {exc.claimed} "
                 f"[{exc.code}]")
    except AgentAuthError as exc:  # the alert was lost: only the end of the channel
        demo.say(f"mallory -> bob   refused: mallory sees the channel end [{exc.code}]")
    else:
        demo.ok = False
    await demo.bob_says(before, "not trusted")


def run_demo(say: Callable[[str], None] = print) -> int:
    """Run the demo; return the process exit status."""
    ok = anyio.run(_main, say)
    return 0 if ok else 1

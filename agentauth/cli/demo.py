"""``agentauth demo``: four agents over real loopback TCP, in one process.

Bob serves on 127.0.0.1 and trusts Alice and Carol. Alice and Carol connect (each pins
Bob), authenticate, and exchange encrypted messages. Mallory proves who she is, and Bob
refuses her because she is not trusted. Alice's connection runs through a relay that
records her frames, like an attacker on the wire; the relay then sends one of them again,
and Bob rejects the replay and drops the connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskGroup

from ..aio import AgentAuthAttribute, connect, create_listener
from ..aio.stream import FRAME_HEADER, AgentAuthStream
from ..errors import AgentAuthError
from ..handshake import HandshakePolicy
from ..identity import Identity

__all__ = ["run_demo"]

HOST = "127.0.0.1"


class _Recorder(logging.Handler):
    """Collects the server's log lines (why a connection was dropped) for the report."""

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


async def _main(say: Callable[[str], None]) -> bool:
    started = time.monotonic()
    names = ["alice", "bob", "carol", "mallory"]
    agents = {name: Identity.generate() for name in names}
    alice, bob, carol, mallory = (agents[n] for n in names)
    name_of = {agents[n].agent_id: n for n in names}
    ok = True

    recorder = _Recorder(name_of)
    log = logging.getLogger("agentauth.aio")
    log.addHandler(recorder)
    log.setLevel(logging.INFO)
    log.propagate = False

    async def handle(channel: AgentAuthStream) -> None:
        peer = name_of[channel.peer_id]
        async for message in channel:
            await channel.send(b"bob got " + message + b" from " + peer.encode())

    listener = await create_listener(HOST, 0, bob, HandshakePolicy(
        trust=[alice.agent_id, carol.agent_id]), handshake_timeout=5)
    port = listener.extra(SocketAttribute.local_port)
    say("agents")
    for name in names:
        say(f"  {name:<8} {agents[name].agent_id}")
    say(f"bob listens on {HOST}:{port} and trusts alice and carol")
    say("")

    relay_listener = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    relay_port = relay_listener.extra(SocketAttribute.local_port)
    relay = _Relay(port)

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        tg.start_soon(relay_listener.serve, relay.serve_one)

        for name, who, via in (("alice", alice, relay_port), ("carol", carol, port)):
            async with await connect(HOST, via, who, expect=bob.agent_id) as channel:
                binding = channel.extra(AgentAuthAttribute.channel_binding).hex()[:16]
                say(f"{name} -> bob   accepted: each verified the other "
                    f"(channel binding {binding}...)")
                for text in (b"hello bob", b"pay 10 to carol" if name == "alice" else b"hi"):
                    await channel.send(text)
                    reply = await channel.receive()
                    say(f"{name} -> bob   sent {text.decode()!r}, got {reply.decode()!r}")
                if name == "alice":
                    ok &= await _replay(relay, recorder, channel, say, tg)

        await _mallory(port, mallory, bob, recorder, say, tg)
        tg.cancel_scope.cancel()
    await listener.aclose()
    await relay_listener.aclose()
    say("")
    say(f"done in {time.monotonic() - started:.2f} s: bob accepted {listener.accepted} "
        f"channels and refused {listener.failed}")
    return ok and listener.accepted == 2 and listener.failed == 1


async def _replay(relay: _Relay, recorder: _Recorder, channel: AgentAuthStream,
                  say: Callable[[str], None], tg: TaskGroup) -> bool:
    # Frames so far: HS1, HS3, then alice's two messages. Re-send "pay 10 to carol".
    captured = relay.frames[3]
    assert relay.to_server is not None
    say(f"attacker    re-sends alice's captured frame ({len(captured)} bytes) to bob")
    await relay.to_server.send(captured)
    try:
        await channel.receive()
    except AgentAuthError as exc:  # bob hung up: the channel was not closed in order
        say(f"alice       sees the connection end: [{exc.code}]")
    except anyio.EndOfStream:
        say("alice       sees the connection end")
    await recorder.wait_for(lambda: any("replayed" in line for line in recorder.lines))
    reason = next((line for line in recorder.lines if "replayed" in line), "")
    say(f"bob         rejected the replay and dropped the connection: {reason}")
    return bool(reason)


async def _mallory(port: int, mallory: Identity, bob: Identity, recorder: _Recorder,
                   say: Callable[[str], None], tg: TaskGroup) -> None:
    before = len(recorder.lines)
    channel = await connect(HOST, port, mallory, expect=bob.agent_id)
    try:
        await channel.send(b"let me in")
        await channel.receive()
    except AgentAuthError as exc:
        say(f"mallory -> bob refused: mallory sees the connection end [{exc.code}]")
    finally:
        await channel.aclose()
    await recorder.wait_for(lambda: len(recorder.lines) > before)
    for line in recorder.lines[before:]:
        say(f"bob         {line}")


def run_demo(say: Callable[[str], None] = print) -> int:
    """Run the demo; return the process exit status."""
    ok = anyio.run(_main, say)
    return 0 if ok else 1

"""The sans-I/O engines driven by two concurrent tasks, on asyncio and on trio."""

from __future__ import annotations

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from agentauth import HandshakePolicy, HandshakeResult, Identity, Initiator, Responder

pytestmark = pytest.mark.anyio


async def test_handshake_and_session_between_two_tasks() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    to_bob_send, to_bob_recv = anyio.create_memory_object_stream[bytes](4)
    to_alice_send, to_alice_recv = anyio.create_memory_object_stream[bytes](4)
    results: dict[str, HandshakeResult] = {}

    async def run_alice(out: MemoryObjectSendStream[bytes],
                        inbox: MemoryObjectReceiveStream[bytes]) -> None:
        engine = Initiator(alice, HandshakePolicy(trust=[bob.agent_id]), expect=bob.agent_id)
        await out.send(engine.start())
        hs3 = engine.receive_message(await inbox.receive())
        assert hs3 is not None and engine.result is not None
        await out.send(hs3)
        results["alice"] = engine.result
        await out.send(engine.result.session.seal(b"from alice"))
        assert engine.result.session.open(await inbox.receive()) == b"from bob"

    async def run_bob(out: MemoryObjectSendStream[bytes],
                      inbox: MemoryObjectReceiveStream[bytes]) -> None:
        engine = Responder(bob, HandshakePolicy(trust=[alice.agent_id]))
        hs2 = engine.receive_message(await inbox.receive())
        assert hs2 is not None
        await out.send(hs2)
        assert engine.receive_message(await inbox.receive()) is None
        assert engine.result is not None
        results["bob"] = engine.result
        assert engine.result.session.open(await inbox.receive()) == b"from alice"
        await out.send(engine.result.session.seal(b"from bob"))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_alice, to_bob_send, to_alice_recv)
            tg.start_soon(run_bob, to_alice_send, to_bob_recv)
    assert results["alice"].peer_id == bob.agent_id
    assert results["bob"].peer_id == alice.agent_id
    assert results["alice"].channel_binding == results["bob"].channel_binding

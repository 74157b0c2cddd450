"""N agents in one process, every pair talking over its own in-memory channel.

Run ``python examples/mesh.py [N]`` (default 4). Each pair runs a handshake over an
in-memory byte stream (any anyio byte stream would do: TCP, Unix sockets, TLS); each agent
trusts exactly the others, and every agent sends one message to every other.
"""

from __future__ import annotations

import itertools
import sys

import anyio
from anyio.streams.stapled import StapledObjectStream

from agentauth import AgentAuthStream, HandshakePolicy, Identity


def byte_stream_pair() -> tuple[StapledObjectStream[bytes], StapledObjectStream[bytes]]:
    a_send, b_recv = anyio.create_memory_object_stream[bytes](16)
    b_send, a_recv = anyio.create_memory_object_stream[bytes](16)
    return StapledObjectStream(a_send, a_recv), StapledObjectStream(b_send, b_recv)


async def main(n: int) -> None:
    agents = [Identity.generate() for _ in range(n)]
    name = {agent.agent_id: f"agent{i}" for i, agent in enumerate(agents)}

    def policy(me: Identity) -> HandshakePolicy:
        return HandshakePolicy(trust=[a.agent_id for a in agents if a is not me])

    heard: list[str] = []

    async def pair(x: Identity, y: Identity) -> None:
        left, right = byte_stream_pair()
        channels: dict[str, AgentAuthStream] = {}

        async def respond() -> None:
            channels["y"] = await AgentAuthStream.wrap(right, y, policy(y), initiator=False)

        async with anyio.create_task_group() as tg:
            tg.start_soon(respond)
            channels["x"] = await AgentAuthStream.wrap(left, x, policy(x), initiator=True,
                                                       expect=y.agent_id)
        cx, cy = channels["x"], channels["y"]
        await cx.send(f"hello from {name[x.agent_id]}".encode())
        await cy.send(f"hello from {name[y.agent_id]}".encode())
        heard.append(f"{name[y.agent_id]} heard: {(await cy.receive()).decode()}")
        heard.append(f"{name[x.agent_id]} heard: {(await cx.receive()).decode()}")
        await cx.aclose()
        await cy.aclose()

    async with anyio.create_task_group() as tg:
        for x, y in itertools.combinations(agents, 2):
            tg.start_soon(pair, x, y)
    for line in sorted(heard):
        print(line)
    expected = n * (n - 1)
    print(f"{len(heard)} of {expected} messages delivered: {len(heard) == expected}")


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 4)

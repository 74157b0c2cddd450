"""An edge deployment with no server at all: an offline root key delegates capability
chains to agents; agents admit each other over loopback TCP by the chains presented in the
handshake, and a revocation given to one agent spreads to the others through their
sessions. On asyncio and on trio."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anyio
import pytest
from anyio.abc import SocketAttribute
from support.aio import DEADLINE

from agentauth import (
    AgentAuthError,
    AgentAuthListener,
    AgentAuthStream,
    HandshakePolicy,
    Identity,
    accept_any_peer,
    connect,
    create_listener,
)
from agentauth.aio import exchange_revocations
from agentauth.capability import (
    CREDENTIAL_EXTENSION,
    Grant,
    Request,
    admission,
    delegate,
    encode_chain,
    revoke,
)
from agentauth.stores import MemoryRevocationStore

pytestmark = pytest.mark.anyio

ROOT = Identity.from_seed(bytes(32))  # kept offline: it only signs, once, below
ANCHORS = {ROOT.agent_id: "mesh/**"}
JOIN = Request("mesh/peers", "connect")


@dataclass
class Agent:
    name: str
    identity: Identity = field(default_factory=Identity.generate)
    chain: bytes = b""
    store: MemoryRevocationStore = field(default_factory=lambda: MemoryRevocationStore(
        ANCHORS))
    listener: AgentAuthListener | None = None
    port: int = 0

    def policy(self) -> HandshakePolicy:
        return HandshakePolicy(trust=accept_any_peer, credentials=admission(
            ANCHORS, JOIN, revoked=self.store.is_revoked))

    def extensions(self) -> dict[str, bytes]:
        return {CREDENTIAL_EXTENSION: self.chain} if self.chain else {}

    async def handle(self, channel: AgentAuthStream) -> None:
        await exchange_revocations(channel, self.store)

    async def meet(self, other: Agent) -> tuple[int, int]:
        """Connect to ``other`` and swap revocations; return what this side received."""
        async with await connect("127.0.0.1", other.port, self.identity,
                                 expect=other.identity.agent_id, policy=self.policy(),
                                 extensions=self.extensions()) as channel:
            return await exchange_revocations(channel, self.store)


async def test_agents_admit_each_other_by_chains_from_an_offline_root(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agentauth.aio")
    agents = {name: Agent(name) for name in ("alice", "bob", "carol", "eve", "dave")}
    links = {}
    for name in ("alice", "bob", "carol", "eve"):  # dave gets nothing
        link = delegate(ROOT, agents[name].identity, [Grant("mesh/**", {"connect"})],
                        not_before=0, expires=2**40)
        links[name] = link
        agents[name].chain = encode_chain([link])
    alice, bob, carol, eve, dave = agents.values()
    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            for agent in agents.values():
                agent.listener = await create_listener(
                    "127.0.0.1", 0, agent.identity, agent.policy(),
                    extensions=agent.extensions(), handshake_timeout=5)
                agent.port = agent.listener.extra(SocketAttribute.local_port)
                tg.start_soon(agent.listener.serve, agent.handle)

            assert await bob.meet(alice) == (0, 0)  # holders admit each other
            assert await eve.meet(carol) == (0, 0)

            # Dave holds no chain: alice refuses him; and nobody accepts a server
            # without one either.
            with pytest.raises(AgentAuthError):
                await dave.meet(alice)
            with pytest.raises(AgentAuthError) as info:
                await alice.meet(dave)
            assert info.value.code == "not_authorized"

            # The root revokes eve's link; the notice reaches alice only.
            assert alice.store.add(revoke(ROOT, [links["eve"]]))
            assert await bob.meet(alice) == (1, 0)  # bob learns it from alice
            assert await carol.meet(bob) == (1, 0)  # and carol from bob
            assert await carol.meet(alice) == (0, 0)  # digests now agree
            for agent in (alice, bob, carol):
                assert agent.store.is_revoked(links["eve"].id)
                with pytest.raises(AgentAuthError):
                    await eve.meet(agent)  # every one of them now refuses eve
            with pytest.raises(AgentAuthError) as info:
                await alice.meet(eve)  # and no one accepts eve as a server
            assert info.value.code == "revoked"
            tg.cancel_scope.cancel()
    refusals = [r.getMessage() for r in caplog.records if "handshake failed" in r.getMessage()]
    assert sum("[revoked]" in line for line in refusals) == 3
    assert sum("[not_authorized]" in line for line in refusals) == 1

"""The async layer, on anyio: channels over byte streams and message transports, TCP
clients and servers. The only part of agentauth that imports anyio."""

from ._common import AgentAuthAttribute
from .gossip import exchange_revocations
from .messages import AgentAuthMessageStream
from .net import AgentAuthListener, connect, create_listener, serve
from .replay import AsyncReplayStore, async_replay_store, open_envelope
from .stream import AgentAuthStream

__all__ = [
    "AgentAuthAttribute",
    "AgentAuthListener",
    "AgentAuthMessageStream",
    "AgentAuthStream",
    "AsyncReplayStore",
    "async_replay_store",
    "connect",
    "create_listener",
    "exchange_revocations",
    "open_envelope",
    "serve",
]

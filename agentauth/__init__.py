"""agentauth: agents prove who they are to each other and decide what each may do.

The public API is exactly the names in ``__all__``; a test guards it. The names of the
async layers (:mod:`agentauth.aio`, and :class:`Agent` from :mod:`agentauth.agent`) are
imported when first used (PEP 562), so that the
sans-I/O core (``import agentauth.wire``, ``agentauth.handshake``...) never imports anyio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .envelope import Envelope, PendingRequests, check_envelope, open_envelope, seal
from .errors import (
    ERROR_CODES,
    REFUSAL_KINDS,
    AgentAuthError,
    AuditLogError,
    AuthenticationError,
    CapabilityDenied,
    CounterExhausted,
    DecodeError,
    FileError,
    HandshakeTimeout,
    InvalidAgentId,
    InvalidArgument,
    InvalidKey,
    InvalidState,
    KeyFileError,
    LocalError,
    PeerRefused,
    ProtocolViolation,
    Refusal,
    RemoteError,
    ReplayDetected,
    RequestError,
    SessionExpired,
    StoreError,
    TransportError,
    TrustStoreError,
)
from .handshake import (
    HandshakePolicy,
    HandshakeResult,
    HandshakeState,
    Initiator,
    Responder,
    Role,
    accept_any_peer,
)
from .identity import Identity, PeerKey, format_agent_id, parse_agent_id
from .keys.trust import TrustStore
from .replay import ReplayStore
from .session import REPLAY_WINDOW, Session
from .stores import MemoryReplayStore, RedisReplayStore, SQLiteReplayStore

if TYPE_CHECKING:
    from .agent import Agent
    from .aio import (
        AgentAuthAttribute,
        AgentAuthListener,
        AgentAuthMessageStream,
        AgentAuthStream,
        AsyncReplayStore,
        async_replay_store,
        connect,
        create_listener,
        serve,
    )

_ASYNC = frozenset({"Agent", "AgentAuthAttribute", "AgentAuthListener",
                    "AgentAuthMessageStream", "AgentAuthStream", "AsyncReplayStore",
                    "async_replay_store", "connect", "create_listener", "serve"})


def __getattr__(name: str) -> Any:
    """The async layer's names, imported from :mod:`agentauth.aio` on first use."""
    if name in _ASYNC:
        # lazy: keeps anyio out of the sans-I/O core
        from . import agent, aio  # noqa: PLC0415

        value = getattr(agent if name == "Agent" else aio, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agentauth' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _ASYNC)

__all__ = [
    "ERROR_CODES",
    "REFUSAL_KINDS",
    "REPLAY_WINDOW",
    "Agent",
    "AgentAuthAttribute",
    "AgentAuthError",
    "AgentAuthListener",
    "AgentAuthMessageStream",
    "AgentAuthStream",
    "AsyncReplayStore",
    "AuditLogError",
    "AuthenticationError",
    "CapabilityDenied",
    "CounterExhausted",
    "DecodeError",
    "Envelope",
    "FileError",
    "HandshakePolicy",
    "HandshakeResult",
    "HandshakeState",
    "HandshakeTimeout",
    "Identity",
    "Initiator",
    "InvalidAgentId",
    "InvalidArgument",
    "InvalidKey",
    "InvalidState",
    "KeyFileError",
    "LocalError",
    "MemoryReplayStore",
    "PeerKey",
    "PeerRefused",
    "PendingRequests",
    "ProtocolViolation",
    "RedisReplayStore",
    "Refusal",
    "RemoteError",
    "ReplayDetected",
    "ReplayStore",
    "RequestError",
    "Responder",
    "Role",
    "SQLiteReplayStore",
    "Session",
    "SessionExpired",
    "StoreError",
    "TransportError",
    "TrustStore",
    "TrustStoreError",
    "__version__",
    "accept_any_peer",
    "async_replay_store",
    "check_envelope",
    "connect",
    "create_listener",
    "format_agent_id",
    "open_envelope",
    "parse_agent_id",
    "seal",
    "serve",
]

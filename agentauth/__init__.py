"""agentauth: agents prove who they are to each other and decide what each may do.

The public API is exactly the names in ``__all__``; a test guards it.
"""

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
from .envelope import Envelope, PendingRequests, check_envelope, open_envelope, seal
from .errors import (
    ERROR_CODES,
    AgentAuthError,
    AuthenticationError,
    CapabilityDenied,
    CounterExhausted,
    DecodeError,
    HandshakeTimeout,
    InvalidAgentId,
    InvalidArgument,
    InvalidKey,
    InvalidState,
    LocalError,
    ProtocolViolation,
    RemoteError,
    ReplayDetected,
    SessionExpired,
    StoreError,
    TransportError,
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
from .session import REPLAY_WINDOW, Session
from .stores import MemoryReplayStore, RedisReplayStore, ReplayStore, SQLiteReplayStore

__version__ = "0.1.0"

__all__ = [
    "ERROR_CODES",
    "REPLAY_WINDOW",
    "AgentAuthAttribute",
    "AgentAuthError",
    "AgentAuthListener",
    "AgentAuthMessageStream",
    "AgentAuthStream",
    "AsyncReplayStore",
    "AuthenticationError",
    "CapabilityDenied",
    "CounterExhausted",
    "DecodeError",
    "Envelope",
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
    "LocalError",
    "MemoryReplayStore",
    "PeerKey",
    "PendingRequests",
    "ProtocolViolation",
    "RedisReplayStore",
    "RemoteError",
    "ReplayDetected",
    "ReplayStore",
    "Responder",
    "Role",
    "SQLiteReplayStore",
    "Session",
    "SessionExpired",
    "StoreError",
    "TransportError",
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

"""HTTP binding (spec 13): agents sign and check HTTP requests and responses under a
profile of RFC 9421, with an ``httpx.Auth`` for clients and an ASGI middleware for
servers, capability chains on requests, and Web Bot Auth interop (a key directory and
``Signature-Agent``).

Needs the ``http`` extra (``http-sf`` and ``httpx``). The engines (:class:`Signer`,
:class:`Verifier`, :func:`check_response`, and :func:`check_response_head` with the
:class:`ResponseContent` that checks streamed content) are sans-I/O and can serve any
framework.
"""

from .asgi import REFUSAL_RPC_CODE, AgentAuthInfo, AgentAuthMiddleware, AgentUser, status_of
from .capability import check_capability, default_resource, invocation_for
from .client import AgentAuth, request_message
from .components import HTTPMessage, check_content_digest, content_digest, signature_base
from .directory import (
    DIRECTORY_MEDIA_TYPE,
    DIRECTORY_PATH,
    directory_document,
    read_directory,
    sign_directory,
)
from .profile import (
    CAPABILITY_HEADER,
    PROTOCOL_HEADERS,
    ResponseContent,
    SignedHeaders,
    Signer,
    VerifiedRequest,
    Verifier,
    accept_signature,
    check_response,
    check_response_head,
    invocation_binding,
    is_stream,
)

__all__ = [
    "CAPABILITY_HEADER",
    "DIRECTORY_MEDIA_TYPE",
    "DIRECTORY_PATH",
    "PROTOCOL_HEADERS",
    "REFUSAL_RPC_CODE",
    "AgentAuth",
    "AgentAuthInfo",
    "AgentAuthMiddleware",
    "AgentUser",
    "HTTPMessage",
    "ResponseContent",
    "SignedHeaders",
    "Signer",
    "VerifiedRequest",
    "Verifier",
    "accept_signature",
    "check_capability",
    "check_content_digest",
    "check_response",
    "check_response_head",
    "content_digest",
    "default_resource",
    "directory_document",
    "invocation_binding",
    "invocation_for",
    "is_stream",
    "read_directory",
    "request_message",
    "sign_directory",
    "signature_base",
    "status_of",
]

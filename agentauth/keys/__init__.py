"""The key lifecycle (spec section 14): trust stores (who is trusted, for what), rotation
statements (a key handing over to its successor) and the tamper-evident audit log file.

The key file format, which :meth:`agentauth.Identity.load` and ``save`` read and write, is
:mod:`agentauth.keyfile`: a foundation the core itself needs.
"""

from .auditlog import AuditFileHandler, AuditSummary, verify_audit_log
from .rotation import Rotation, next_key_commitment, parse_rotation, rotate
from .trust import LiveTrust, TrustEntry, TrustStore

__all__ = [
    "AuditFileHandler",
    "AuditSummary",
    "LiveTrust",
    "Rotation",
    "TrustEntry",
    "TrustStore",
    "next_key_commitment",
    "parse_rotation",
    "rotate",
    "verify_audit_log",
]

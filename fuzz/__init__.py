"""Fuzzing harnesses: one per decoder and parser that takes bytes or text from outside.

Each harness is a module run by atheris (``python3 -m fuzz.wire -runs=1000 DIR``); any
exception that is not an :class:`agentauth.errors.AgentAuthError` is a finding.
``python3 -m fuzz --seconds 60`` writes the seed corpus (built from ``spec/vectors``) and
runs every harness in turn; ``python3 -m fuzz.corpus DIR`` writes the seeds only.

Importing this package instruments ``agentauth`` for coverage, so every harness imports it
before any ``agentauth`` module (a module imported before this package would be blind).
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["agentauth"]):
    import agentauth
    import agentauth.agent
    import agentauth.audit
    import agentauth.capability
    import agentauth.conformance.driver
    import agentauth.http
    import agentauth.keyfile
    import agentauth.keys.rotation
    import agentauth.keys.trust  # noqa: F401

#: Every harness, by module name, in the order the runner takes them.
HARNESSES = ("wire", "handshake", "session", "chain", "constraints", "invocation", "notice",
             "envelope", "http_fields", "asgi", "asgi_scope", "keyfile", "trust", "rotation",
             "audit", "driver", "frames")

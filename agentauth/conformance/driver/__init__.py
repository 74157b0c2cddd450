"""This implementation's conformance driver: ``agentauth conformance driver``.

It answers the requests of ``spec/conformance.md`` on standard input and output with this
library's engines (:mod:`.operations`). It holds test state only (identities from given
seeds, an injected clock): never point it at real keys.
"""

from .operations import IMPLEMENTATION, MAX_OBJECTS, OPERATIONS, Driver, main

__all__ = ["IMPLEMENTATION", "MAX_OBJECTS", "OPERATIONS", "Driver", "main"]

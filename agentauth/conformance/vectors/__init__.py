"""The generator of ``spec/vectors/``: every input fixed (keys from seeds, ephemeral keys,
nonces, clocks), so the files come out byte for byte the same on every run.

- :mod:`.handshake_valid`: handshakes that complete, and the session messages after them.
- :mod:`.handshake_invalid`: handshakes and session messages that each break one rule.
- :mod:`.capability`, :mod:`.envelope`, :mod:`.keys`, :mod:`.requests`: sections 10, 12,
  14 and 15; :mod:`.alerts`: section 4.14.
- :mod:`.forge`: a permissive writer of handshake messages, for the broken ones.
- :mod:`.model`: the vector files' data model, and how to run an engine against a vector.
- :mod:`.spec_files`: the file names, their exact text, ``--write`` and ``--check``
  (``python -m agentauth.conformance.vectors``).
"""

from .forge import Forge, body2, body3
from .model import (
    HandshakeVector,
    Inputs,
    SessionVector,
    Step,
    make_engine,
    run_handshake_vector,
    run_session_vector,
)
from .spec_files import FILES, MAX_VECTOR_FILE, dump, generate, main

__all__ = [
    "FILES",
    "MAX_VECTOR_FILE",
    "Forge",
    "HandshakeVector",
    "Inputs",
    "SessionVector",
    "Step",
    "body2",
    "body3",
    "dump",
    "generate",
    "main",
    "make_engine",
    "run_handshake_vector",
    "run_session_vector",
]

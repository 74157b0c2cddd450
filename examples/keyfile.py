"""Load an agent's identity from a key file, or make one and save it.

The file holds the 32-byte Ed25519 seed in hex on one line, readable by its owner only.
Keep it secret: whoever has it is that agent.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentauth import Identity


def load_or_create(path: str) -> Identity:
    """The identity in ``path``; a new one (saved there) if the file does not exist."""
    file = Path(path)
    if file.exists():
        return Identity.from_seed(bytes.fromhex(file.read_text().strip()))
    identity = Identity.generate()
    descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(identity.export_seed().hex() + "\n")
    return identity

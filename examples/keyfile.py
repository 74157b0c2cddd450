"""Load an agent's identity from a key file, or make one and save it.

The key file is :meth:`agentauth.Identity.save`'s: the seed in hex, readable by its owner
only. Keep it secret: whoever has it is that agent.
"""

from __future__ import annotations

from pathlib import Path

from agentauth import Identity


def load_or_create(path: str) -> Identity:
    """The identity in ``path``; a new one (saved there) if the file does not exist."""
    if Path(path).exists():
        return Identity.load(path)
    identity = Identity.generate()
    identity.save(path)
    return identity

"""Load an agent's identity from an encrypted key file, or make one and save it.

The passphrase comes from the environment variable ``AGENTAUTH_PASSPHRASE`` (never from
the command line). The file is :meth:`agentauth.Identity.save`'s: the seed encrypted under
the passphrase (Argon2id, then XChaCha20-Poly1305), readable by its owner only. Keep it
secret all the same: whoever has it and the passphrase is that agent.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentauth import Identity, InvalidArgument

PASSPHRASE_VARIABLE = "AGENTAUTH_PASSPHRASE"  # noqa: S105  (a variable name, not a secret)


def load_or_create(path: str) -> Identity:
    """The identity in ``path``; a new one (saved there) if the file does not exist."""
    passphrase = os.environ.get(PASSPHRASE_VARIABLE)
    if not passphrase:
        raise InvalidArgument(f"set {PASSPHRASE_VARIABLE} to the key file's passphrase")
    if Path(path).exists():
        return Identity.load(path, passphrase)
    identity = Identity.generate()
    identity.save(path, passphrase, preset="interactive")
    return identity

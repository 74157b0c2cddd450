"""Key files (spec 14.1): the bytes of a key file, opened as the CLI opens them.

The first byte chooses a key vector's passphrase; the rest is the file. Argon2id is
swapped for a keyed hash so that an input costs microseconds, except for the parameters
of the vectors that open, which get the real key: those files still open, and every check
after the key derivation is reached.
"""

from __future__ import annotations

from functools import cache

from agentauth import crypto, keyfile
from agentauth.errors import AgentAuthError

from ._common import h, refused, run, vectors

KEYS = [v for v in vectors("keys") if v["kind"] == "key_file"]
_real_argon2id = cache(crypto.argon2id)  # the vectors' few keys, once each


@cache
def _known() -> frozenset[tuple[bytes, bytes, int, int]]:
    out = set()
    for v in KEYS:
        if v["expected"] == "ok":
            _, _, ops, mem, salt, *_ = keyfile._fields(h(v["file"]))
            assert isinstance(ops, int) and isinstance(mem, int) and isinstance(salt, bytes)
            out.add((keyfile.passphrase_bytes(v["passphrase"]), salt, ops, mem))
    return frozenset(out)


def _argon2id(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    if (passphrase, salt, opslimit, memlimit) in _known():
        return _real_argon2id(passphrase, salt, opslimit, memlimit)
    return crypto.blake2b(b"%d %d " % (opslimit, memlimit) + salt + passphrase)[:32]


def one(data: bytes) -> None:
    """Open ``data[1:]`` as a key file under the chosen vector's passphrase."""
    if not data:
        return
    passphrase, file = KEYS[data[0] % len(KEYS)]["passphrase"], data[1:]
    if keyfile.is_encrypted(file):
        try:
            seed, public = keyfile.open_seed(file, passphrase)
        except AgentAuthError:
            return
        assert len(seed) == 32 and crypto.ed25519_public_from_seed(seed)[0] == public
    else:
        refused(lambda: keyfile.open_plain(file))


def seeds() -> list[bytes]:
    """Every key file vector with its own passphrase."""
    return [bytes([index]) + h(v["file"]) for index, v in enumerate(KEYS)]


crypto.argon2id = _argon2id  # keyfile calls it through the module

if __name__ == "__main__":
    run(one, seeds)

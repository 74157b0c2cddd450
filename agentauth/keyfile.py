"""Key files: an agent's secret seed, encrypted under a passphrase (spec section 14.1).

A key file of version 1 is one canonical msgpack array::

    ["agentauth-key", 1, opslimit, memlimit, salt, nonce, public_key, box]

``box`` is XChaCha20-Poly1305 of the 32-byte seed under the key Argon2id derives from the
passphrase, the salt and the recorded limits; its associated data is every byte of the file
before the box, exactly as read. So a change to the header (version, limits, salt, nonce,
public key) fails like a wrong passphrase, and the limits cannot be lowered by an attacker
into a cheaper guess. After opening, the seed must derive the recorded public key.

The older unencrypted form, the seed in hex on one line, is read and written only when the
caller says ``unencrypted``. Files are created owner-only (0600) and never overwritten;
loading refuses a file that its group or others may read, and never writes to it. Both go
through :mod:`agentauth.files` (a FIFO or device in a key file's place is refused).
"""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Callable, Sequence
from typing import Final

from . import crypto, files, wire
from .errors import AuthenticationError, DecodeError, FileError, InvalidArgument, KeyFileError

__all__ = [
    "DEFAULT_PRESET",
    "KEY_FILE_MAGIC",
    "KEY_FILE_VERSION",
    "PRESETS",
    "check_output",
    "claimed_public_key",
    "is_encrypted",
    "is_key_file",
    "open_seed",
    "passphrase_bytes",
    "plain_form",
    "read_key_file",
    "seal_seed",
    "write_key_file",
    "write_output",
]

KEY_FILE_MAGIC: Final = "agentauth-key"
KEY_FILE_VERSION: Final = 1
#: Argon2id presets by name: (opslimit, memlimit in bytes), libsodium's values.
PRESETS: Final = crypto.ARGON2ID_PRESETS
DEFAULT_PRESET: Final = "moderate"
MAX_KEY_FILE: Final = 512  # a version 1 file is 150 bytes; read no more than this
_FIELDS = 8
_BOX_LEN = 32 + crypto.AEAD_TAG_LEN
# What a loader accepts: at most the sensitive preset's cost, at least libsodium's minimum.
_MIN_OPS, _MIN_MEM = 1, 8192
_MAX_OPS, _MAX_MEM = PRESETS["sensitive"]


def passphrase_bytes(passphrase: str | bytes) -> bytes:
    """The bytes a passphrase stands for: a string in Unicode NFC, then UTF-8, so the same
    passphrase typed on two systems unlocks the same file. It may not be empty."""
    if isinstance(passphrase, str):
        try:
            data = unicodedata.normalize("NFC", passphrase).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: what undecodable bytes from the
            # environment or a file name turn into; no other system would type the same
            raise InvalidArgument("a passphrase must be valid Unicode text (it holds a "
                                  "lone surrogate, as bytes that are not UTF-8 become)"
                                  ) from None
    elif type(passphrase) is bytes:
        data = passphrase
    else:
        raise InvalidArgument("a passphrase is a str or bytes")
    if not data:
        raise InvalidArgument("a passphrase may not be empty")
    return data


def seal_seed(seed: bytes, public_key: bytes, passphrase: str | bytes,
              preset: str = DEFAULT_PRESET, *,
              random: Callable[[int], bytes] = os.urandom) -> bytes:
    """The bytes of a version 1 key file holding ``seed`` (whose public key is given)."""
    if preset not in PRESETS:
        raise InvalidArgument(f"unknown preset {preset!r}: one of {', '.join(PRESETS)}")
    opslimit, memlimit = PRESETS[preset]
    salt, nonce = random(crypto.PWHASH_SALT_LEN), random(crypto.XAEAD_NONCE_LEN)
    key = crypto.argon2id(passphrase_bytes(passphrase), salt, opslimit, memlimit)
    # The array with a placeholder box, less the placeholder: the header the box binds.
    placeholder = wire.encode_value(bytes(_BOX_LEN))
    header = wire.encode_value([KEY_FILE_MAGIC, KEY_FILE_VERSION, opslimit, memlimit, salt,
                                nonce, public_key, bytes(_BOX_LEN)])[:-len(placeholder)]
    box = crypto.xaead_seal(key, nonce, seed, header)
    data = header + wire.encode_value(box)
    assert len(data) <= MAX_KEY_FILE
    return data


def is_encrypted(data: bytes) -> bool:
    """Whether ``data`` is meant as an encrypted key file (and not the hex form)."""
    return not _is_plain(data)


def _is_plain(data: bytes) -> bool:
    text = data.strip()
    return len(text) == 64 and all(c in b"0123456789abcdefABCDEF" for c in text)


def plain_form(seed: bytes) -> bytes:
    """The unencrypted form of a seed: 64 hex digits and a newline."""
    return (seed.hex() + "\n").encode("ascii")


def _fields(data: bytes) -> list[object]:
    try:
        fields = wire.decode_array(data, MAX_KEY_FILE, "key file")
    except DecodeError as exc:
        raise KeyFileError(f"not a key file, or a damaged one ({exc.code})",
                           code="key_file_corrupt") from None
    if not fields or fields[0] != KEY_FILE_MAGIC:
        raise KeyFileError("not an agentauth key file", code="key_file_corrupt")
    if len(fields) < 2 or type(fields[1]) is not int:
        raise KeyFileError("the key file has no version", code="key_file_corrupt")
    if fields[1] != KEY_FILE_VERSION:
        raise KeyFileError(f"key file version {fields[1]} is not one this release reads "
                           f"(it reads {KEY_FILE_VERSION})", code="key_file_version")
    if len(fields) != _FIELDS:
        raise KeyFileError("the key file has the wrong number of fields",
                           code="key_file_corrupt")
    return fields


def _checked(data: bytes) -> tuple[int, int, bytes, bytes, bytes, bytes]:
    """A version 1 key file's ``(opslimit, memlimit, salt, nonce, public_key, box)``, every
    element's type, length and range checked (nothing opened)."""
    fields = _fields(data)
    _, _, opslimit, memlimit, salt, nonce, public_key, box = fields
    if not (type(opslimit) is int and _MIN_OPS <= opslimit <= _MAX_OPS
            and type(memlimit) is int and _MIN_MEM <= memlimit <= _MAX_MEM):
        raise KeyFileError(f"the key file's Argon2id limits are outside {_MIN_OPS}..{_MAX_OPS} "
                           f"passes and {_MIN_MEM}..{_MAX_MEM} bytes", code="key_file_corrupt")
    if not (type(salt) is bytes and len(salt) == crypto.PWHASH_SALT_LEN
            and type(nonce) is bytes and len(nonce) == crypto.XAEAD_NONCE_LEN
            and type(public_key) is bytes and len(public_key) == 32
            and type(box) is bytes and len(box) == _BOX_LEN):
        raise KeyFileError("a key file field has the wrong type or length",
                           code="key_file_corrupt")
    return opslimit, memlimit, salt, nonce, public_key, box


def claimed_public_key(data: bytes) -> bytes:
    """The public key a version 1 key file's header records, read without the passphrase
    (and without Argon2id's cost), after the same checks of its form as :func:`open_seed`.

    The header is authenticated only when the file is opened: this is the key the file
    CLAIMS to hold, enough to say which agent a file is for (``agentauth id``), never to
    trust it; :func:`open_seed` checks that the sealed seed derives it."""
    return _checked(data)[4]


def open_seed(data: bytes, passphrase: str | bytes) -> tuple[bytes, bytes]:
    """Open a version 1 key file: ``(seed, public_key)``, or a :class:`KeyFileError`."""
    opslimit, memlimit, salt, nonce, public_key, box = _checked(data)
    header = data[:len(data) - len(wire.encode_value(box))]  # the exact bytes read
    key = crypto.argon2id(passphrase_bytes(passphrase), salt, opslimit, memlimit)
    try:
        seed = crypto.xaead_open(key, nonce, box, header)
    except AuthenticationError:
        raise KeyFileError("the key file does not open with this passphrase, or it was "
                           "altered", code="wrong_passphrase") from None
    derived, _ = crypto.ed25519_public_from_seed(seed)
    if not crypto.equal(derived, public_key):  # sealed by someone who knew the passphrase
        raise KeyFileError("the key file's seed does not match its public key",
                           code="key_file_corrupt")
    return seed, public_key


def open_plain(data: bytes) -> bytes:
    """The seed of an unencrypted key file."""
    if not _is_plain(data):
        raise KeyFileError("an unencrypted key file holds a 32-byte seed in hex",
                           code="key_file_corrupt")
    return bytes.fromhex(data.strip().decode("ascii"))


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a key file, read only, by the rules of :func:`agentauth.files.read_file`
    (a :class:`~agentauth.errors.FileError` if it is missing, not a regular file or larger
    than any key file); refused too if its group or others may read it
    (``key_file_permissions``)."""
    name = os.fspath(path)

    def owner_only(info: os.stat_result) -> None:
        if os.name == "posix" and info.st_mode & 0o077:
            raise KeyFileError(f"key file {name!r} is readable by group or others (mode "
                               f"{stat.S_IMODE(info.st_mode):04o}); make it owner-only with "
                               f"chmod 600", code="key_file_permissions")

    return files.read_file(name, MAX_KEY_FILE, what="key file", check=owner_only)


def is_key_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a key file of any version, encrypted or not: what a command
    that may replace a file (``--force``) must never replace. What is not a key file
    (missing, another kind of file, too large, another form) is not; a file that cannot be
    read (the system refuses it, or the read fails) may be one, and is taken for one."""
    try:
        data = files.read_prefix(path, MAX_KEY_FILE + 1, what="file")
    except FileError as exc:
        return exc.code in ("file_permission", "file_io")  # unknown: kept, fail closed
    if len(data) > MAX_KEY_FILE:
        return False
    if _is_plain(data):
        return True
    try:
        fields = wire.decode_array(data, MAX_KEY_FILE, "key file")
    except DecodeError:
        return False
    return bool(fields) and fields[0] == KEY_FILE_MAGIC


def check_output(path: str | os.PathLike[str], *, force: bool = False,
                 what: str = "output file",
                 inputs: Sequence[tuple[str | os.PathLike[str] | None, str]] = ()) -> None:
    """Refuse an output file as :func:`write_output` would, before a command does anything
    else (so a refused command leaves nothing behind); also, even with ``force``, one that
    is one of the command's other files, ``inputs`` (path or None, what it is: see
    :func:`agentauth.files.check_target`)."""
    files.check_target(path, force=force, keep=is_key_file, what=what,
                       inputs=[(p, role) for p, role in inputs if p is not None])


def write_output(path: str | os.PathLike[str], data: bytes, *, force: bool = False,
                 what: str = "output file") -> None:
    """Write a command's output file (a chain, a notice, a report; mode 0644) atomically:
    refused if it exists unless ``force``, and never over a key file, a directory, a FIFO
    or a device, even with ``force``."""
    files.write_file(path, data, mode=0o644, force=force, keep=is_key_file, what=what)


def write_key_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Create a key file holding ``data``, owner-only (0600); never over an existing name
    (``file_exists``). The bytes go to a new temporary file beside it, are flushed to disk,
    and only then linked under the key file's name (:func:`agentauth.files.write_file`):
    a writer that dies part way leaves the name free, never a partial key file."""
    files.write_file(path, data, mode=0o600, what="key file")

"""What every ``agentauth`` command shares: the passphrase options, ``--json`` output, one-line
errors on stderr, and the exit codes.

Exit codes: 0 success; 1 refused (a chain, request, notice, rotation or audit log failed its
checks: the error code is printed); 2 usage (bad arguments, agent ids or grants, or an output
file that exists already without ``--force``); 3 bad input (a file or store missing,
unreadable, damaged, too large, not a regular file, or a key file that does not unlock).

Every file a command reads or writes goes through :mod:`agentauth.files` (outputs through
:func:`agentauth.keyfile.write_output`): a FIFO, a device
or a directory given as a file is refused at once, never read or written.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from .. import keyfile
from ..errors import (
    AgentAuthError,
    AuditLogError,
    DecodeError,
    FileError,
    InvalidAgentId,
    InvalidArgument,
    InvalidKey,
    KeyFileError,
    RemoteError,
    StoreError,
    TrustStoreError,
)
from ..identity import Identity

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "Parser",
    "add_force",
    "add_json",
    "add_passphrase_options",
    "emit",
    "load_identity",
    "new_passphrase",
    "run_command",
    "subcommand",
]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
_MAX_PASSPHRASE = 4096


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, with exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: usage: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def subcommand(commands: Any, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` with its help, an example in ``--help``, and ``--json``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=help, epilog=f"example:\n  {example}")
    add_json(parser)
    return parser


def add_json(parser: argparse.ArgumentParser) -> None:
    """Add ``--json``: the result as one JSON object (or array) on stdout."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_force(parser: argparse.ArgumentParser) -> None:
    """Add ``--force``: replace an existing output file (never a key file)."""
    parser.add_argument("--force", action="store_true",
                        help="replace an existing output file (a regular file, never a "
                             "key file)")


def add_passphrase_options(parser: argparse.ArgumentParser, *, creating: bool = False) -> None:
    """Add the ways to give a key file's passphrase (never as an argument itself)."""
    group = parser.add_argument_group(
        "passphrase", "from a terminal prompt unless one of these is given; never on the "
                      "command line")
    group.add_argument("--passphrase-env", metavar="NAME",
                       help="read the passphrase from the environment variable NAME")
    group.add_argument("--passphrase-fd", metavar="FD", type=int,
                       help="read the passphrase from file descriptor FD (up to a newline)")
    group.add_argument("--unencrypted", action="store_true",
                       help="write the key unencrypted (hex seed)" if creating else
                       "allow reading an unencrypted key file")


def _read_fd(fd: int) -> str:
    chunks = []
    total = 0
    while total <= _MAX_PASSPHRASE:
        try:
            chunk = os.read(fd, 1024)
        except OSError as exc:
            raise InvalidArgument(f"cannot read a passphrase from descriptor {fd} "
                                  f"({exc.strerror})") from None
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if b"\n" in chunk:
            break
    data = b"".join(chunks).split(b"\n", 1)[0]
    if len(data) > _MAX_PASSPHRASE:  # refused, not cut short: a cut one would not be typed
        raise InvalidArgument(f"the passphrase from descriptor {fd} is longer than "
                              f"{_MAX_PASSPHRASE} bytes")
    data = data.removesuffix(b"\r")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("the passphrase is not UTF-8") from None


class _Hidden:
    """A passphrase kept for the rest of one command, out of the Namespace's repr."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<passphrase>"


def _passphrase(args: argparse.Namespace, *, confirm: bool) -> str:
    cached: _Hidden | None = getattr(args, "_passphrase", None)
    if cached is not None:
        return cached.value
    if args.passphrase_env is not None and args.passphrase_fd is not None:
        raise InvalidArgument("give the passphrase by --passphrase-env or --passphrase-fd, "
                              "not both")
    if args.passphrase_env is not None:
        value = os.environ.get(args.passphrase_env)
        if value is None:
            raise InvalidArgument(f"the environment variable {args.passphrase_env} is not "
                                  f"set")
    elif args.passphrase_fd is not None:
        value = _read_fd(args.passphrase_fd)
    elif sys.stdin.isatty():
        value = getpass.getpass("passphrase: ")
        if confirm and getpass.getpass("passphrase again: ") != value:
            raise InvalidArgument("the passphrases differ")
    else:
        raise InvalidArgument("no passphrase: use --passphrase-env NAME or --passphrase-fd "
                              "FD, or run in a terminal")
    keyfile.passphrase_bytes(value)  # refuses an empty one
    args._passphrase = _Hidden(value)
    return value


def new_passphrase(args: argparse.Namespace) -> str | None:
    """The passphrase for a new key file, or None for ``--unencrypted``."""
    if args.unencrypted:
        if args.passphrase_env is not None or args.passphrase_fd is not None:
            raise InvalidArgument("--unencrypted takes no passphrase")
        return None
    return _passphrase(args, confirm=True)


def load_identity(args: argparse.Namespace, path: str) -> Identity:
    """The identity in key file ``path``, unlocked with the command's passphrase option."""
    if not keyfile.is_encrypted(keyfile.read_key_file(path)):
        return Identity.load(path, unencrypted=args.unencrypted)
    return Identity.load(path, _passphrase(args, confirm=False))


def emit(args: argparse.Namespace, data: object, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    elif text:
        print(text)


def _fail(args: argparse.Namespace, status: int, kind: str, message: str,
          code: str | None) -> int:
    line = " ".join(message.split())  # one line, whatever the message held
    sys.stderr.write(f"agentauth: {kind}: {line}\n")
    if getattr(args, "json", False):
        print(json.dumps({"error": {"code": code, "kind": kind, "message": line}}))
    return status


def run_command(args: argparse.Namespace, command: Callable[[argparse.Namespace], int]
                ) -> int:
    """Run ``command``; map errors to the exit codes, one line on stderr."""
    try:
        return command(args)
    except (InvalidArgument, InvalidAgentId) as exc:
        return _fail(args, EXIT_USAGE, "usage", str(exc), exc.code)
    except FileError as exc:  # writing over a file is asked, not forced: a usage error
        status = EXIT_USAGE if exc.code == "file_exists" else EXIT_BAD_INPUT
        return _fail(args, status, "usage" if status == EXIT_USAGE else "bad input",
                     str(exc), exc.code)
    except (DecodeError, InvalidKey, KeyFileError, TrustStoreError, StoreError) as exc:
        return _fail(args, EXIT_BAD_INPUT, "bad input", str(exc), exc.code)
    except (RemoteError, AuditLogError) as exc:  # a DecodeError is bad input, caught above
        return _fail(args, EXIT_REFUSED, "refused", str(exc), exc.code)
    except AgentAuthError as exc:
        return _fail(args, EXIT_BAD_INPUT, "error", str(exc), exc.code)
    except OSError as exc:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        return _fail(args, EXIT_BAD_INPUT, "bad input", f"{exc.strerror or exc}{where}",
                     None)
    except KeyboardInterrupt:
        return _fail(args, EXIT_USAGE, "usage", "interrupted", None)

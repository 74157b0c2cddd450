"""What every ``agentauth`` command shares: the passphrase options, ``--json`` output, one-line
errors on stderr, and the exit codes.

Exit codes: 0 success; 1 refused (a chain, request, notice, rotation or audit log failed its
checks: the error code is printed); 2 usage (bad arguments, agent ids or grants, or an output
file that exists already without ``--force``); 3 bad input (a file or store missing,
unreadable, damaged, too large, not a regular file, or a key file that does not unlock).

Every file a command reads or writes goes through :mod:`agentauth.files` (outputs through
:func:`agentauth.keyfile.write_output`): a FIFO, a device
or a directory given as a file is refused at once, never read or written.

``--json`` output: one JSON object per command on stdout, of the shape of one of the models
below (the one place they are defined), times in Unix seconds; a failure is
:class:`ErrorOut` on stdout as well as its line on stderr. Human output writes times as
ISO 8601 UTC with a hint of how far away they are (:func:`when`).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NoReturn

from pydantic import BaseModel, ConfigDict, Field

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
    "ENVIRONMENT",
    "EXIT_BAD_INPUT",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "PASSPHRASE_VARIABLE",
    "AuditOut",
    "ConformanceListOut",
    "ConformanceOut",
    "DelegateOut",
    "DemoOut",
    "ErrorDetail",
    "ErrorOut",
    "ExportOut",
    "GrantOut",
    "IdOut",
    "InspectOut",
    "KeygenOut",
    "LinkOut",
    "Output",
    "Parser",
    "RevokeOut",
    "RotateOut",
    "TrustChangeOut",
    "TrustEntryOut",
    "TrustListOut",
    "TrustRotateOut",
    "UsageError",
    "VerifyOut",
    "add_force",
    "add_json",
    "add_passphrase_options",
    "emit",
    "fail",
    "load_identity",
    "new_passphrase",
    "run_command",
    "subcommand",
    "when",
    "working",
]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
_MAX_PASSPHRASE = 4096
#: The environment variable a key file's passphrase is read from when no option names one.
PASSPHRASE_VARIABLE = "AGENTAUTH_PASSPHRASE"  # noqa: S105 (a name, not a secret)
#: Every environment variable the command line reads, with what it is for (``--help``).
ENVIRONMENT = (
    (PASSPHRASE_VARIABLE, "the passphrase of the key files a command opens or creates, "
                          "when neither --passphrase-env nor --passphrase-fd is given "
                          "(before a terminal prompt)"),
    ("NAME (of --passphrase-env NAME)", "the passphrase, from the variable the option "
                                         "names; no other variable is read"),
)


class UsageError(Exception):
    """The command line does not parse: reported by :func:`fail` (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError`, which the entry point
    reports as one line on stderr (and as :class:`ErrorOut` with ``--json``), exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def subcommand(commands: Any, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` with its help, an example in ``--help``, and ``--json``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=help, epilog=f"example:\n  {example}")
    add_json(parser)
    return parser


def add_json(parser: argparse.ArgumentParser) -> None:
    """Add ``--json``: the result as one JSON object on stdout."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_force(parser: argparse.ArgumentParser) -> None:
    """Add ``--force``: replace an existing output file (never a key file)."""
    parser.add_argument("--force", action="store_true",
                        help="replace an existing output file (a regular file, never a "
                             "key file)")


def add_passphrase_options(parser: argparse.ArgumentParser, *, creating: bool = False) -> None:
    """Add the ways to give a key file's passphrase (never as an argument itself)."""
    group = parser.add_argument_group(
        "passphrase", f"from the option below, else from the environment variable "
                      f"{PASSPHRASE_VARIABLE}, else from a terminal prompt; never on the "
                      f"command line")
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
    elif PASSPHRASE_VARIABLE in os.environ:
        value = os.environ[PASSPHRASE_VARIABLE]
    elif sys.stdin.isatty():
        value = getpass.getpass("passphrase: ")
        if confirm and getpass.getpass("passphrase again: ") != value:
            raise InvalidArgument("the passphrases differ")
    else:
        raise InvalidArgument(f"no passphrase: set {PASSPHRASE_VARIABLE}, use --passphrase-env "
                              f"NAME or --passphrase-fd FD, or run in a terminal")
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
    passphrase = _passphrase(args, confirm=False)
    with working(f"unlocking {path} (Argon2id)"):
        return Identity.load(path, passphrase)


@contextlib.contextmanager
def working(what: str) -> Iterator[None]:
    """Say on stderr that a slow step (Argon2id takes about a second) is under way, when
    stderr is a terminal; the line is cleared when the step ends. On a pipe or a file,
    nothing is written: stderr stays one line per error."""
    try:
        shown = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced, or closed
        shown = False
    if shown:
        sys.stderr.write(f"agentauth: {what}...")
        sys.stderr.flush()
    try:
        yield
    finally:
        if shown:
            sys.stderr.write("\r\x1b[K")  # back to the line's start, and clear it
            sys.stderr.flush()


def when(seconds: int, now: int | None = None) -> str:
    """A Unix time for people: ISO 8601 UTC and how far from now, as
    ``2026-12-07T03:47:44Z (in 59 min)`` or ``... (2 h ago)``."""
    now = int(time.time()) if now is None else now
    try:
        stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # beyond what a calendar date holds
        return f"{seconds} (Unix seconds)"
    delta = seconds - now
    size = abs(delta)
    for unit, length in (("days", 172800), ("h", 7200), ("min", 120)):
        if size >= length:
            span = f"{size // (length // 2)} {unit}"
            break
    else:
        span = f"{size} s"
    return f"{stamp} ({'now' if delta == 0 else f'in {span}' if delta > 0 else f'{span} ago'})"


# ------------------------------------------------------------ --json shapes


class Output(BaseModel):
    """The base of every ``--json`` shape: no other field, nothing changed after."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ErrorDetail(Output):
    """Why a command failed: ``code`` from the error registry (null only when the command
    was interrupted), ``kind`` (usage, bad input, refused, error) and the reason."""

    code: str | None
    kind: str
    reason: str


class ErrorOut(Output):
    """What every command prints with ``--json`` when it fails (exit 1, 2 or 3)."""

    error: ErrorDetail


class KeygenOut(Output):
    """``keygen``: the new key file."""

    agent_id: str
    path: str
    encrypted: bool
    preset: str | None


class IdOut(Output):
    """``id``: the agent id; ``verified`` is false when it was read from the key file's
    header (what the file claims), true when the file was opened (``--verify``)."""

    agent_id: str
    verified: bool


class ExportOut(Output):
    """``export``: the public key in each form (only the one ``--format`` names)."""

    did_key: str | None = Field(default=None, alias="did-key")
    multibase: str | None = None
    jwk: dict[str, str] | None = None
    thumbprint: str | None = None
    verified: bool


class TrustEntryOut(Output):
    """One trust store entry."""

    kind: str
    name: str
    id: str
    namespace: str | None
    next: str | None
    retired: list[str]


class TrustListOut(Output):
    """``trust list``: every entry, in file order."""

    store: str
    entries: list[TrustEntryOut]


class TrustChangeOut(Output):
    """``trust add`` and ``trust remove``: the entry added or removed."""

    store: str
    action: str
    entry: TrustEntryOut


class TrustRotateOut(Output):
    """``trust rotate``: the entries moved from the old key to the new one."""

    store: str
    old: str
    new: str
    entries: list[str]
    next: str | None


class RotateOut(Output):
    """``rotate``: the statement written."""

    out: str
    old: str
    new: str
    next: str | None


class AuditOut(Output):
    """``audit verify``: the log is whole."""

    ok: bool
    records: int
    head: str


class GrantOut(Output):
    """One grant of a link; each constraint as ``delegate --grant`` writes it after
    ``NAME=``; ``open_world`` when arguments it does not name pass."""

    resource: str
    actions: list[str]
    constraints: dict[str, str]
    open_world: bool


class LinkOut(Output):
    """One link of a chain; times in Unix seconds."""

    id: str
    issuer: str
    audience: str
    subject: str
    parent: str | None
    not_before: int
    expires: int
    budget: int
    grants: list[GrantOut]


class DelegateOut(Output):
    """``delegate``: the chain written and its new link."""

    out: str
    links: int
    holder: str
    link: LinkOut


class InspectOut(Output):
    """``inspect``: the links; ``verified`` is false unless anchors were given and the
    chain verified against them (at ``now``)."""

    verified: bool
    now: int | None
    links: list[LinkOut]


class VerifyOut(Output):
    """``verify``: the chain (and request) verified."""

    ok: bool
    links: int
    holder: str
    expires: int


class RevokeOut(Output):
    """``revoke``: the link revoked and whether the store already held the notice."""

    link: int
    id: str
    added: bool
    out: str | None


class DemoOut(Output):
    """``demo``: whether every step went as it should, and its log."""

    ok: bool
    log: list[str]


class ConformanceOut(Output):
    """``conformance run --json`` (no path): the report, as the report file holds it."""

    driver: str
    peer_driver: str | None
    implementation: str | None
    seed: int
    mutations: int
    seconds: float
    totals: dict[str, int]
    sections: dict[str, dict[str, int]]
    checks: list[dict[str, Any]]


class ConformanceListOut(Output):
    """``conformance run --list --json``: the id of every check, in run order."""

    checks: list[str]


def emit(args: argparse.Namespace, data: Output, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text``."""
    if getattr(args, "json", False):
        print(data.model_dump_json(indent=2, by_alias=True,
                                   exclude_none=isinstance(data, ExportOut)))
    elif text:
        print(text)


def fail(json: bool, status: int, kind: str, message: str, code: str | None) -> int:
    """Report a failure: one line on stderr, and :class:`ErrorOut` on stdout with ``--json``;
    return the exit ``status``."""
    line = " ".join(message.split())  # one line, whatever the message held
    sys.stderr.write(f"agentauth: {kind}: {line}\n")
    if json:
        reason = line.removeprefix(f"[{code}] ") if code else line
        print(ErrorOut(error=ErrorDetail(code=code, kind=kind, reason=reason))
              .model_dump_json())
    return status


def _fail(args: argparse.Namespace, status: int, kind: str, message: str,
          code: str | None) -> int:
    return fail(bool(getattr(args, "json", False)), status, kind, message, code)


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
                     "file_io")
    except KeyboardInterrupt:
        return _fail(args, EXIT_USAGE, "usage", "interrupted", None)

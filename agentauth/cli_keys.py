"""The key lifecycle commands of ``agentauth``: keygen, id, export, trust, rotate, audit.

Each command prints a short text result, or with ``--json`` one JSON object; errors are one
line on stderr, with the exit codes of :mod:`agentauth.cli_common`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .cli_common import (
    add_json,
    add_passphrase_options,
    emit,
    load_identity,
    new_passphrase,
)
from .identity import Identity, PeerKey
from .keyfile import DEFAULT_PRESET, PRESETS

__all__ = ["add_commands"]


# ------------------------------------------------------------------- keys


def cmd_keygen(args: argparse.Namespace) -> int:
    passphrase = new_passphrase(args)
    identity = Identity.generate()
    if passphrase is None:
        identity.save(args.path, unencrypted=True)
    else:
        identity.save(args.path, passphrase, preset=args.preset)
    emit(args, {"agent_id": identity.agent_id, "path": args.path,
                "encrypted": passphrase is not None,
                "preset": args.preset if passphrase is not None else None},
         identity.agent_id)
    return 0


def cmd_id(args: argparse.Namespace) -> int:
    identity = load_identity(args, args.path)
    emit(args, {"agent_id": identity.agent_id}, identity.agent_id)
    return 0


EXPORT_FORMATS = ("did-key", "multibase", "jwk", "thumbprint")


def _public_key(args: argparse.Namespace, source: str) -> PeerKey:
    """An agent id as given, or the public half of a key file."""
    if source.startswith("did:"):
        return PeerKey.from_agent_id(source)
    return load_identity(args, source).peer


def export_forms(key: PeerKey) -> dict[str, Any]:
    """A public key in the forms other systems read."""
    return {"did-key": key.agent_id, "multibase": key.multibase, "jwk": key.jwk(),
            "thumbprint": key.jwk_thumbprint()}


def cmd_export(args: argparse.Namespace) -> int:
    forms = export_forms(_public_key(args, args.source))
    if args.format:
        value = forms[args.format]
        text = value if isinstance(value, str) else _compact(value)
        emit(args, {args.format: value}, text)
    else:
        emit(args, forms, "\n".join(
            f"{name:<11}{value if isinstance(value, str) else _compact(value)}"
            for name, value in forms.items()))
    return 0


def _compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------- parsers


def _parser(commands: Any, name: str, help: str, example: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=help, epilog=f"example:\n  {example}")
    add_json(parser)
    return parser


def add_commands(commands: Any) -> None:
    """Register the key lifecycle subcommands on an argparse subparsers object."""
    p = _parser(commands, "keygen", "make a new key file and print its agent id",
                "AGENTAUTH_PASSPHRASE=... agentauth keygen alice.key "
                "--passphrase-env AGENTAUTH_PASSPHRASE")
    p.add_argument("path", help="the key file to create (never overwritten)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                   help=f"Argon2id cost (default {DEFAULT_PRESET})")
    add_passphrase_options(p, creating=True)
    p.set_defaults(run=cmd_keygen)

    p = _parser(commands, "id", "print the agent id of a key file",
                "agentauth id alice.key --passphrase-fd 3 3<passphrase.txt")
    p.add_argument("path", help="the key file")
    add_passphrase_options(p)
    p.set_defaults(run=cmd_id)

    p = _parser(commands, "export", "print a public key as did:key, multibase, JWK and "
                                    "its RFC 7638 thumbprint",
                "agentauth export did:key:z6Mk... --format jwk")
    p.add_argument("source", help="a key file, or an agent id (did:key:...)")
    p.add_argument("--format", choices=EXPORT_FORMATS, help="only this form")
    add_passphrase_options(p)
    p.set_defaults(run=cmd_export)

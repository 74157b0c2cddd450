"""The key lifecycle commands of ``agentauth``: keygen, id, export, trust, rotate, audit.

Each command prints a short text result, or with ``--json`` one JSON object; errors are one
line on stderr, with the exit codes of :mod:`agentauth.cli.common`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from .. import files, keyfile
from ..identity import Identity, PeerKey
from ..keyfile import DEFAULT_PRESET, PRESETS, check_output, write_output
from ..keys.auditlog import verify_audit_log
from ..keys.rotation import MAX_ROTATION, parse_rotation, rotate
from ..keys.trust import TrustEntry, TrustStore, editing
from .common import (
    AuditOut,
    ExportOut,
    IdOut,
    KeygenOut,
    RotateOut,
    TrustChangeOut,
    TrustEntryOut,
    TrustListOut,
    TrustRotateOut,
    add_passphrase_options,
    emit,
    load_identity,
    new_passphrase,
    subcommand,
    working,
)

__all__ = ["add_commands"]


# ------------------------------------------------------------------- keys


def cmd_keygen(args: argparse.Namespace) -> int:
    files.check_target(args.path, what="key file")  # before asking for a passphrase
    passphrase = new_passphrase(args)
    identity = Identity.generate()
    if passphrase is None:
        identity.save(args.path, unencrypted=True)
    else:
        with working(f"sealing {args.path} (Argon2id, {args.preset})"):
            identity.save(args.path, passphrase, preset=args.preset)
    emit(args, KeygenOut(agent_id=identity.agent_id, path=args.path,
                         encrypted=passphrase is not None,
                         preset=args.preset if passphrase is not None else None),
         identity.agent_id)
    return 0


def key_file_public_key(args: argparse.Namespace, path: str) -> tuple[PeerKey, bool]:
    """The public key of key file ``path`` and whether it was verified: with ``--verify``
    (or for an unencrypted file, whose seed is in clear) the file is opened and the seed
    derives it; else it is what the encrypted file's header claims, read with no
    passphrase (spec 14.1)."""
    data = keyfile.read_key_file(path)
    if args.verify or not keyfile.is_encrypted(data):
        return load_identity(args, path).peer, True
    return PeerKey.from_bytes(keyfile.claimed_public_key(data)), False


def cmd_id(args: argparse.Namespace) -> int:
    key, verified = key_file_public_key(args, args.path)
    emit(args, IdOut(agent_id=key.agent_id, verified=verified), key.agent_id)
    return 0


EXPORT_FORMATS = ("did-key", "multibase", "jwk", "thumbprint")


def _public_key(args: argparse.Namespace, source: str) -> tuple[PeerKey, bool]:
    """An agent id as given, or the public half of a key file; whether it was verified
    (an agent id is what it says; a key file's header, see :func:`key_file_public_key`)."""
    if source.startswith("did:"):
        return PeerKey.from_agent_id(source), True
    return key_file_public_key(args, source)


def export_forms(key: PeerKey) -> dict[str, Any]:
    """A public key in the forms other systems read."""
    return {"did-key": key.agent_id, "multibase": key.multibase, "jwk": key.jwk(),
            "thumbprint": key.jwk_thumbprint()}


def cmd_export(args: argparse.Namespace) -> int:
    key, verified = _public_key(args, args.source)
    forms = export_forms(key)
    if args.format:
        value = forms[args.format]
        text = value if isinstance(value, str) else _compact(value)
        emit(args, ExportOut.model_validate({args.format: value, "verified": verified}),
             text)
    else:
        emit(args, ExportOut.model_validate({**forms, "verified": verified}), "\n".join(
            f"{name:<11}{value if isinstance(value, str) else _compact(value)}"
            for name, value in forms.items()))
    return 0


def _compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ------------------------------------------------------------------ trust


def _load_store(path: str, *, create: bool = False) -> TrustStore:
    if create and not os.path.exists(path):
        return TrustStore()
    return TrustStore.load(path)


def _entry_json(entry: TrustEntry) -> TrustEntryOut:
    return TrustEntryOut(kind=entry.kind, name=entry.name, id=entry.agent_id,
                         namespace=entry.namespace,
                         next=None if entry.next is None else entry.next.hex(),
                         retired=[k.agent_id for k in entry.retired])


def cmd_trust_add(args: argparse.Namespace) -> int:
    with editing(args.store):
        store = _load_store(args.store, create=True)
        if args.anchor is not None:
            store = store.add_anchor(args.name, args.agent_id, args.anchor,
                                     next_key=args.next)
        else:
            store = store.add_peer(args.name, args.agent_id, next_key=args.next)
        store.save(args.store)
    entry = store.get(args.name)
    assert entry is not None
    emit(args, TrustChangeOut(store=args.store, action="added", entry=_entry_json(entry)),
         f"{args.store}: {entry.kind} {entry.name} {entry.agent_id}"
         + (f" for {entry.namespace}" if entry.namespace else ""))
    return 0


def cmd_trust_list(args: argparse.Namespace) -> int:
    store = _load_store(args.store)
    rows = [_entry_json(e) for e in store.entries]
    text = "\n".join(f"{e.kind:<7}{e.name:<20}{e.agent_id}"
                     + (f"  {e.namespace}" if e.namespace else "")
                     + (f"  ({len(e.retired)} key(s) retired)" if e.retired else "")
                     for e in store.entries) or "(empty)"
    emit(args, TrustListOut(store=args.store, entries=rows), text)
    return 0


def cmd_trust_remove(args: argparse.Namespace) -> int:
    with editing(args.store):
        store = _load_store(args.store)
        entry = store.get(args.name)
        store.remove(args.name).save(args.store)
    assert entry is not None
    emit(args, TrustChangeOut(store=args.store, action="removed", entry=_entry_json(entry)),
         f"{args.store}: removed {entry.kind} {entry.name}")
    return 0


def _read_statement(path: str) -> bytes:
    """A rotation statement file's bytes, no more than a statement can hold."""
    return files.read_file(path, MAX_ROTATION, what="rotation statement")


def cmd_trust_rotate(args: argparse.Namespace) -> int:
    statement = _read_statement(args.statement)
    with editing(args.store):
        moved, rotation = _load_store(args.store).accept_rotation(statement)
        moved.save(args.store)
    names = [e.name for e in moved.entries if e.key == rotation.new]
    emit(args, TrustRotateOut(store=args.store, old=rotation.old.agent_id,
                              new=rotation.new.agent_id, entries=names,
                              next=None if rotation.next is None else rotation.next.hex()),
         f"{args.store}: {', '.join(names)} now {rotation.new.agent_id}")
    return 0


# ----------------------------------------------------------------- rotate


def cmd_rotate(args: argparse.Namespace) -> int:
    check_output(args.out, what="statement file")  # before asking for passphrases
    old = load_identity(args, args.key)
    if args.new_passphrase_env is None and args.new_passphrase_fd is None:
        new = load_identity(args, args.new)  # the same passphrase unlocks both
    else:
        new = load_identity(argparse.Namespace(
            passphrase_env=args.new_passphrase_env, passphrase_fd=args.new_passphrase_fd,
            unencrypted=args.unencrypted), args.new)
    statement = rotate(old, new, now=int(time.time()), next_key=args.next)
    write_output(args.out, statement, what="statement file")  # never over another file
    rotation = parse_rotation(statement)
    emit(args, RotateOut(out=args.out, old=old.agent_id, new=new.agent_id,
                         next=None if rotation.next is None else rotation.next.hex()),
         f"{args.out}: {old.agent_id} -> {new.agent_id}"
         + (" (next key committed)" if rotation.next else ""))
    return 0


# ------------------------------------------------------------------ audit


def cmd_audit_verify(args: argparse.Namespace) -> int:
    summary = verify_audit_log(args.log, head=args.head)
    emit(args, AuditOut(ok=True, records=summary.records, head=summary.head),
         f"ok: {summary.records} record(s), head {summary.head}")
    return 0


# ---------------------------------------------------------------- parsers



def add_commands(commands: Any) -> None:
    """Register the key lifecycle subcommands on an argparse subparsers object."""
    p = subcommand(commands, "keygen", "make a new key file and print its agent id",
                "agentauth keygen alice.key --passphrase-env PASS   "
                "(the variable PASS holds the passphrase)")
    p.add_argument("path", help="the key file to create (never overwritten)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                   help=f"Argon2id cost (default {DEFAULT_PRESET})")
    add_passphrase_options(p, creating=True)
    p.set_defaults(run=cmd_keygen)

    p = subcommand(commands, "id", "print the agent id of a key file, as its header claims "
                                   "(no passphrase; --verify opens the file to check it)",
                "agentauth id alice.key")
    p.add_argument("path", help="the key file")
    _verify_option(p)
    add_passphrase_options(p)
    p.set_defaults(run=cmd_id)

    p = subcommand(commands, "export", "print a public key as did:key, multibase, JWK and "
                                    "its RFC 7638 thumbprint",
                "agentauth export did:key:z6Mk... --format jwk")
    p.add_argument("source", help="a key file, or an agent id (did:key:...)")
    p.add_argument("--format", choices=EXPORT_FORMATS, help="only this form")
    _verify_option(p)
    add_passphrase_options(p)
    p.set_defaults(run=cmd_export)

    _add_trust_commands(commands)

    p = subcommand(commands, "rotate", "write a rotation statement from an old key to a new one",
                "agentauth rotate --key old.key --new new.key --next did:key:z6Mk... "
                "--out rotation.bin --passphrase-env PASS")
    p.add_argument("--key", required=True, help="the key file of the key being retired")
    p.add_argument("--new", required=True, help="the key file of its successor")
    p.add_argument("--next", metavar="AGENT_ID",
                   help="commit to the key the new one will rotate to (pre-rotation)")
    p.add_argument("--out", required=True, help="the statement file to write")
    add_passphrase_options(p)
    p.add_argument("--new-passphrase-env", metavar="NAME",
                   help="the new key file's passphrase, if not the old one's, from NAME")
    p.add_argument("--new-passphrase-fd", metavar="FD", type=int,
                   help="the new key file's passphrase, if not the old one's, from FD")
    p.set_defaults(run=cmd_rotate)

    audit = commands.add_parser("audit", help="check an audit log",
                                description="check an audit log",
                                epilog="example:\n  agentauth audit verify audit.log")
    actions = audit.add_subparsers(dest="action", required=True)
    p = subcommand(actions, "verify", "check every record of a hash-chained audit log; name "
                                   "the first one edited, dropped or reordered",
                "agentauth audit verify audit.log --head 3f1c...")
    p.add_argument("log", help="the audit log file")
    p.add_argument("--head", help="the hash the last record must have (catches records "
                                  "dropped from the end)")
    p.set_defaults(run=cmd_audit_verify)


def _add_trust_commands(commands: Any) -> None:
    """Register ``trust add``, ``list``, ``remove`` and ``rotate``."""
    trust = commands.add_parser("trust", help="edit or show a trust store (pinned peers, "
                                              "trust anchors)",
                                description="edit or show a trust store",
                                epilog="example:\n  agentauth trust list --store trust.toml")
    actions = trust.add_subparsers(dest="action", required=True)
    p = subcommand(actions, "add", "pin a peer, or with --anchor add a trust anchor",
                "agentauth trust add bob did:key:z6Mk... --store trust.toml")
    p.add_argument("name", help="a name for the entry (letters, digits, '.', '_', '-')")
    p.add_argument("agent_id", metavar="AGENT_ID",
                   help="the agent to pin, or to trust as an anchor (did:key:...)")
    p.add_argument("--anchor", metavar="NAMESPACE",
                   help="a trust anchor that may delegate NAMESPACE (e.g. 'reports/**')")
    p.add_argument("--next", metavar="AGENT_ID",
                   help="the key it committed to rotate to next")
    _store_option(p)
    p.set_defaults(run=cmd_trust_add)
    p = subcommand(actions, "list", "show every entry", "agentauth trust list --json")
    _store_option(p)
    p.set_defaults(run=cmd_trust_list)
    p = subcommand(actions, "remove", "remove an entry by name",
                "agentauth trust remove bob --store trust.toml")
    p.add_argument("name", help="the name of the entry to remove")
    _store_option(p)
    p.set_defaults(run=cmd_trust_remove)
    p = subcommand(actions, "rotate", "accept a rotation statement: the entries that pinned "
                                   "the old key pin the new one",
                "agentauth trust rotate bob-rotation.bin --store trust.toml")
    p.add_argument("statement", help="the rotation statement file")
    _store_option(p)
    p.set_defaults(run=cmd_trust_rotate)


def _verify_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verify", action="store_true",
                        help="open the key file (asks for the passphrase) and check that its "
                             "seed derives the public key its header claims")


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default="trust.toml",
                        help="the trust store file (default trust.toml)")

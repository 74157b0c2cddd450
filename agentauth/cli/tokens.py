"""The capability commands of ``agentauth``: delegate, inspect, verify, revoke.

Exit codes (also in the README, shared by every command: :mod:`agentauth.cli.common`): 0
success; 1 the chain, request or notice was refused (the error code is printed); 2 a usage
error (bad arguments, agent ids or grants); 3 an input file is missing, unreadable or not what
it should be.

Grants on the command line: ``RESOURCE=ACTION[,ACTION...]`` followed by constraints
``;NAME=eq:V``, ``;NAME=in:V|V``, ``;NAME=range:LO..HI``, ``;NAME=prefix:P``. A value that
reads as an integer is an integer; write it in double quotes for a string.

Output files (``--out``) are written atomically and never over an existing file unless
``--force`` is given, and never over a key file even then (exit 2).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from .. import files
from ..capability import (
    Eq,
    Grant,
    OneOf,
    Prefix,
    Range,
    Request,
    decode_chain,
    delegate,
    encode_chain,
    revoke,
    verify_chain,
)
from ..capability.chain import MAX_CHAIN_BYTES, Link
from ..errors import InvalidArgument
from ..identity import PeerKey, format_agent_id
from ..keyfile import check_output, write_output
from ..stores import SQLiteRevocationStore
from .common import (
    EXIT_BAD_INPUT,
    EXIT_REFUSED,
    EXIT_USAGE,
    DelegateOut,
    GrantOut,
    InspectOut,
    LinkOut,
    RevokeOut,
    VerifyOut,
    add_force,
    add_passphrase_options,
    emit,
    load_identity,
    run_command,
    subcommand,
    when,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_REFUSED", "EXIT_USAGE", "add_commands", "run"]


def _value(text: str) -> int | str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        return text


def parse_grant(text: str) -> Grant:
    """``RESOURCE=ACTIONS;NAME=KIND:VALUE;...`` as a :class:`Grant`."""
    head, *constraints = text.split(";")
    resource, sep, actions = head.partition("=")
    if not sep:
        raise InvalidArgument(f"a grant is RESOURCE=ACTIONS, not {head!r}")
    table: dict[str, Any] = {}
    for item in constraints:
        name, sep, spec = item.partition("=")
        kind, sep2, value = spec.partition(":")
        if not (sep and sep2):
            raise InvalidArgument(f"a constraint is NAME=KIND:VALUE, not {item!r}")
        if kind == "eq":
            table[name] = Eq(_value(value))
        elif kind == "in":
            table[name] = OneOf(frozenset(_value(v) for v in value.split("|")))
        elif kind == "range":
            lo, _, hi = value.partition("..")
            try:
                table[name] = Range(int(lo), int(hi))
            except ValueError:
                raise InvalidArgument(f"a range is LO..HI, not {value!r}") from None
        elif kind == "prefix":
            table[name] = Prefix(value)
        else:
            raise InvalidArgument(f"unknown constraint kind {kind!r}")
    return Grant(resource, actions.split(","), table)


def _describe_constraint(c: Any) -> str:
    if isinstance(c, Eq):
        return f"= {c.value!r}"
    if isinstance(c, OneOf):
        return "in {" + ", ".join(repr(v) for v in sorted(c.values, key=repr)) + "}"
    if isinstance(c, Range):
        return f"in {c.lo}..{c.hi}"
    return f"starts with {c.prefix!r}"


def _link_json(link: Link) -> LinkOut:
    return LinkOut(
        id=link.id.hex(),
        issuer=format_agent_id(link.issuer),
        audience=format_agent_id(link.audience),
        subject=format_agent_id(link.subject),
        parent=link.parent.hex() or None,
        not_before=link.not_before,
        expires=link.expires,
        budget=link.budget,
        grants=[GrantOut(resource=g.resource, actions=sorted(g.actions),
                         constraints={n: _describe_constraint(c)
                                      for n, c in g.constraints.items()})
                for g in link.grants],
    )


def _read(path: str) -> bytes:
    """A chain file's bytes (no more than a chain may hold)."""
    return files.read_file(path, MAX_CHAIN_BYTES, what="chain file")


# ------------------------------------------------------------------ commands


def cmd_delegate(args: argparse.Namespace) -> int:
    check_output(args.out, force=args.force,
                 inputs=[(args.key, "key file"), (args.parent, "parent chain")])
    issuer = load_identity(args, args.key)
    parents = decode_chain(_read(args.parent)) if args.parent is not None else ()
    now = int(time.time())
    not_before, expires = now, now + args.ttl
    if parents:  # a child's window must lie within its parent's: clip it to fit
        not_before = max(not_before, parents[-1].not_before)
        expires = min(expires, parents[-1].expires)
    link = delegate(issuer, args.to, [parse_grant(g) for g in args.grant],
                    not_before=not_before, expires=expires, budget=args.budget,
                    parent=parents[-1] if parents else None)
    write_output(args.out, encode_chain([*parents, link]), force=args.force)
    emit(args, DelegateOut(out=args.out, links=len(parents) + 1, holder=args.to,
                           link=_link_json(link)),
         f"{args.out}: {len(parents) + 1} link(s); the holder is {args.to}; expires "
         f"{when(link.expires, now)}")
    return 0


_UNVERIFIED = ("NOT VERIFIED: what the chain claims; no signature, root or time was "
               "checked (give --anchor to verify)")


def cmd_inspect(args: argparse.Namespace) -> int:
    chain = _read(args.chain)
    now = int(time.time()) if args.now is None else args.now
    if args.anchor:  # verified first: a refusal is the answer, with its code (exit 1)
        links = list(verify_chain(chain, _anchors(args.anchor), now=now))
        heading = (f"verified at {when(now, now)} against {len(args.anchor)} "
                   f"anchor(s): signatures, roots, narrowing and times hold")
    else:
        links = list(decode_chain(chain))
        heading = _UNVERIFIED
    lines = [heading]
    for depth, link in enumerate(links):
        pad = "  " * depth
        lines.append(f"{pad}link {depth} {link.id.hex()[:16]}  "
                     f"{format_agent_id(link.issuer)} -> {format_agent_id(link.audience)}")
        lines.append(f"{pad}  valid from {when(link.not_before, now)} until "
                     f"{when(link.expires, now)}, {link.budget} more delegation(s) allowed")
        for grant in link.grants:
            lines.append(f"{pad}  {grant.resource}: {', '.join(sorted(grant.actions))}")
            lines += [f"{pad}    {name} {_describe_constraint(c)}"
                      for name, c in grant.constraints.items()]
    emit(args, InspectOut(verified=bool(args.anchor), now=now if args.anchor else None,
                          links=[_link_json(link) for link in links]), "\n".join(lines))
    return 0


def _anchors(items: list[str]) -> dict[str, str]:
    """``AGENT_ID[=NAMESPACE]`` options as the anchors ``verify_chain`` takes."""
    anchors: dict[str, str] = {}
    for item in items:
        agent_id, _, namespace = item.partition("=")
        anchors[agent_id] = namespace or "**"
    return anchors


def cmd_verify(args: argparse.Namespace) -> int:
    anchors = _anchors(args.anchor)
    request = None
    if args.request is not None:  # an empty one is malformed, not absent
        resource, sep, action = args.request.rpartition(":")
        if not sep:
            raise InvalidArgument("a request is RESOURCE:ACTION")
        values = {}
        for item in args.arg:
            name, _, value = item.partition("=")
            values[name] = _value(value)
        request = Request(resource, action, values)
    holder = PeerKey.from_agent_id(args.holder) if args.holder is not None else None
    now = int(time.time()) if args.now is None else args.now
    chain = _read(args.chain)
    # Only read: a store that does not exist is an error, never made (nor a file converted).
    store = (SQLiteRevocationStore(args.revoked, anchors, create=False)
             if args.revoked is not None else None)
    try:
        links = verify_chain(chain, anchors, now=now, holder=holder, request=request,
                             revoked=store.is_revoked if store else None)
    finally:
        if store is not None:
            store.close()
    holder_id = format_agent_id(links[-1].audience)
    expires = min(link.expires for link in links)
    emit(args, VerifyOut(ok=True, links=len(links), holder=holder_id, expires=expires),
         f"ok: {len(links)} link(s), holder {holder_id}, expires {when(expires, now)}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    if args.out is not None:  # refused before the store is made or changed
        check_output(args.out, force=args.force,
                     inputs=[(args.key, "key file"), (args.chain, "chain file"),
                             (args.store, "revocation store")])
    revoker = load_identity(args, args.key)
    links = decode_chain(_read(args.chain))
    if not 0 <= args.link < len(links):
        raise InvalidArgument(f"the chain has links 0..{len(links) - 1}")
    notice = revoke(revoker, links[: args.link + 1])
    store = SQLiteRevocationStore(args.store, {format_agent_id(links[0].issuer): "**"})
    try:
        added = store.add(notice)
    finally:
        store.close()
    if args.out is not None:
        write_output(args.out, notice, force=args.force)
    emit(args, RevokeOut(link=args.link, id=links[args.link].id.hex(), added=added,
                         out=args.out),
         f"link {args.link} ({links[args.link].id.hex()[:16]}) revoked"
         + ("" if added else " (already)"))
    return 0



def add_commands(commands: Any) -> None:
    """Register the capability subcommands on an argparse subparsers object."""
    p = subcommand(commands, "delegate", "delegate a capability to an agent",
                "agentauth delegate --key root.key --to did:key:z6Mk... --grant "
                "'fs/reports/**=read' --out alice.chain --passphrase-env PASS")
    p.add_argument("--key", required=True, help="the issuer's key file")
    p.add_argument("--to", required=True, metavar="AGENT_ID", help="the holder")
    p.add_argument("--grant", action="append", required=True,
                   help="RESOURCE=ACTIONS[;NAME=KIND:VALUE...] (repeat for several)")
    p.add_argument("--ttl", type=int, default=3600,
                   help="lifetime in seconds (never past the parent's expiry)")
    p.add_argument("--budget", type=int, default=0, help="delegations allowed below")
    p.add_argument("--parent", type=files.path_argument,
                   help="the chain file this delegation extends")
    p.add_argument("--out", required=True, type=files.path_argument,
                   help="where to write the new chain (not over an existing file unless "
                        "--force)")
    add_force(p)
    add_passphrase_options(p)
    p.set_defaults(run=cmd_delegate)
    p = subcommand(commands, "inspect", "show a chain as a tree (or --json): NOT verified "
                                        "unless --anchor is given, then verified first",
                "agentauth inspect alice.chain --anchor did:key:z6Mk...root")
    p.add_argument("chain", help="the chain file")
    p.add_argument("--anchor", action="append", default=[],
                   help="AGENT_ID[=NAMESPACE] of a trusted root (repeat for several): verify "
                        "the chain against them before showing it")
    p.add_argument("--now", type=int, help="the time to verify at (Unix seconds)")
    p.set_defaults(run=cmd_inspect)
    p = subcommand(commands, "verify", "verify a chain and optionally a request",
                "agentauth verify alice.chain --anchor did:key:z6Mk...root "
                "--request 'fs/reports/q3:read' --holder did:key:z6Mk...alice")
    p.add_argument("chain", help="the chain file")
    p.add_argument("--anchor", action="append", required=True,
                   help="AGENT_ID[=NAMESPACE] of a trusted root (repeat for several)")
    p.add_argument("--request", help="RESOURCE:ACTION")
    p.add_argument("--arg", action="append", default=[], help="NAME=VALUE of the request")
    p.add_argument("--holder", metavar="AGENT_ID", help="who presents the chain")
    p.add_argument("--revoked", type=files.path_argument,
                   help="a revocation store (SQLite file) to check; it must exist, and is "
                        "only read")
    p.add_argument("--now", type=int, help="the time to verify at (Unix seconds)")
    p.set_defaults(run=cmd_verify)
    p = subcommand(commands, "revoke", "revoke a link of a chain you issued or hold",
                "agentauth revoke --key root.key --chain alice.chain --link 0 "
                "--store revoked.db --passphrase-env PASS")
    p.add_argument("--key", required=True, help="the key file that signs the notice")
    p.add_argument("--chain", required=True, help="the chain file holding the link")
    p.add_argument("--link", type=int, required=True, help="index of the link, root = 0")
    p.add_argument("--store", required=True, help="the revocation store (SQLite file; made "
                                                  "if missing)")
    p.add_argument("--out", type=files.path_argument,
                   help="also write the notice to this file (not over an existing file "
                        "unless --force)")
    add_force(p)
    add_passphrase_options(p)
    p.set_defaults(run=cmd_revoke)


def run(args: argparse.Namespace) -> int:
    """Run a subcommand; map errors to the documented exit codes."""
    code: int = run_command(args, args.run)
    return code

"""The capability commands of ``agentauth``: delegate, inspect, verify, revoke.

Exit codes (also in the README, shared by every command: :mod:`agentauth.cli.common`): 0
success; 1 the chain, request or notice was refused (the error code is printed); 2 a usage
error (bad arguments, agent ids or grants); 3 an input file is missing, unreadable or not what
it should be.

Grants on the command line: ``RESOURCE=ACTION[,ACTION...]`` followed by constraints
``;NAME=KIND:VALUE`` of every kind (``eq:V``, ``one-of:A|B``, ``range:LO..HI``,
``subpath:/data``, ``url:https://*.example.com/v1``, ...; :data:`GRANT_HELP` has them
all), ``;NAME+=KIND:VALUE`` for an alternative (any-of), and a trailing ``;*`` for an
open-world grant. ``inspect`` shows grants in the same syntax.

Output files (``--out``) are written atomically and never over an existing file unless
``--force`` is given, and never over a key file even then (exit 2).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
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
from ..capability.constraints import (
    AnyOf,
    AnyValue,
    Cidr,
    Constraint,
    Contains,
    Length,
    NotOneOf,
    Pattern,
    Subpath,
    Subset,
    Url,
)
from ..errors import AgentAuthError, InvalidArgument
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

__all__ = ["EXIT_BAD_INPUT", "EXIT_REFUSED", "EXIT_USAGE", "GRANT_HELP", "KIND_EXAMPLES",
           "add_commands", "describe_constraint", "describe_grant", "parse_grant", "run"]


_ITEM = re.compile(r';(?=[^;=:/|"]{1,64}=|\*(?:;|\Z))')
"""Where a grant's text splits into items: a ``;`` followed by ``NAME=`` (or ``NAME+=``)
or by the open-world mark ``*``. A ``;`` elsewhere belongs to the value it is in."""
_INT = re.compile(r"-?[0-9]+")
_OPEN = "*"

KIND_EXAMPLES: dict[str, str] = {
    "eq": 'mode=eq:fast  (42 is an integer, true/false booleans, "42" the string)',
    "one-of": "region=one-of:eu|us  (in: is the same)",
    "not-one-of": "user=not-one-of:root|admin",
    "range": "size=range:0..1000  (integers, both included)",
    "length": "title=length:1..80  (UTF-8 bytes)",
    "prefix": "name=prefix:q3-  (characters; for paths use subpath)",
    "contains": "tags=contains:audit|q3  (a list holding each)",
    "subset": "tags=subset:red|green|blue  (a list of only these, maybe empty)",
    "pattern": "file=pattern:*.csv  (* any run, ? one character)",
    "subpath": "path=subpath:/data/reports  (the root or beneath it, no ..)",
    "url": "endpoint=url:https://*.example.com/v1  (scheme, host, port, path prefix)",
    "cidr": "addr=cidr:10.0.0.0/8  (one IP address within the network)",
    "any": "note=any:  (present, any value)",
    "any-of": "host=url:https://a.example/;host+=url:https://b.example/  (either)",
}
"""One example item per constraint kind, as ``delegate --help`` shows them."""

GRANT_HELP = """\
grants (--grant, repeat for several):
  RESOURCE=ACTION[,ACTION...][;NAME=KIND:VALUE...][;*]
  A grant with constraints is closed: a request with an argument it does not name is
  refused. A trailing ;* makes it open: unnamed arguments pass with any value.
  Everything after KIND: is the value, so URLs, paths and globs need no escaping; a
  ; inside a value is kept unless NAME= follows it. Values of eq, one-of, not-one-of,
  contains and subset: digits are an integer, true/false a boolean, anything else a
  string; write "42" for the string 42. | separates values ("a|b" is one value). A
  value cannot hold ;NAME= nor end in ;* (build such grants with the library).
  NAME+=KIND:VALUE after NAME=... adds an alternative (any-of: one must allow).
  One example per kind:
""" + "".join(f"    ;{example}\n" for example in KIND_EXAMPLES.values())
"""The grant syntax, as ``delegate --help`` shows it below its options."""


def _value(text: str) -> int | str | bool:
    """A value as written: an integer (digits), a boolean (``true``/``false``), else a
    string; a value in double quotes is always the string inside them."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if _INT.fullmatch(text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def _values(text: str) -> list[int | str | bool]:
    """Values separated by ``|``; one in double quotes may hold a ``|`` (not ``"|``)."""
    values: list[int | str | bool] = []
    rest = text
    while True:
        if rest.startswith('"'):
            end = rest.find('"|', 1)
            if end == -1 and len(rest) >= 2 and rest.endswith('"'):
                end = len(rest) - 1
            if end != -1:
                values.append(rest[1:end])
                rest = rest[end + 1:]
                if not rest:
                    return values
                rest = rest[1:]
                continue
        item, sep, rest = rest.partition("|")
        values.append(_value(item))
        if not sep:
            return values


def _bounds(text: str, kind: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("..")
    if not (sep and _INT.fullmatch(lo) and _INT.fullmatch(hi)):
        raise InvalidArgument(f"{kind} is LO..HI, two integers, not {text!r}")
    return int(lo), int(hi)


def _any(text: str) -> AnyValue:
    if text:
        raise InvalidArgument(f"any takes no value, not {text!r}")
    return AnyValue()


_KINDS: dict[str, Callable[[str], Constraint]] = {
    "eq": lambda v: Eq(_value(v)),
    "one-of": lambda v: OneOf(_values(v)),
    "in": lambda v: OneOf(_values(v)),
    "not-one-of": lambda v: NotOneOf(_values(v)),
    "range": lambda v: Range(*_bounds(v, "a range")),
    "length": lambda v: Length(*_bounds(v, "a length")),
    "prefix": Prefix,
    "contains": lambda v: Contains(_values(v)),
    "subset": lambda v: Subset(_values(v)),
    "pattern": Pattern,
    "subpath": Subpath,
    "url": Url,
    "cidr": Cidr,
    "any": _any,
}


def _constraint(item: str, kind: str, value: str) -> Constraint:
    parse = _KINDS.get(kind)
    if kind == "any-of":
        raise InvalidArgument(f"grant item {item!r}: an any-of is written as its members, "
                              f"for example {KIND_EXAMPLES['any-of']}")
    if parse is None:
        raise InvalidArgument(f"grant item {item!r}: unknown constraint kind {kind!r}; "
                              f"the kinds are {', '.join(k for k in _KINDS if k != 'in')} "
                              f"(and NAME+= for any-of)")
    try:
        return parse(value)
    except AgentAuthError as exc:
        example = KIND_EXAMPLES["one-of" if kind == "in" else kind]
        raise InvalidArgument(f"grant item {item!r}: {exc.message}; for example "
                              f"{example}") from None


def parse_grant(text: str) -> Grant:
    """``RESOURCE=ACTIONS[;NAME=KIND:VALUE...][;*]`` as a :class:`Grant` (the syntax is in
    :data:`GRANT_HELP`); every fault is ``invalid_argument`` naming the item at fault."""
    head, *items = _ITEM.split(text)
    resource, sep, actions = head.rpartition("=")
    if not sep:
        raise InvalidArgument(f"a grant is RESOURCE=ACTION[,ACTION...], not {head!r}")
    open_world = bool(items) and items[-1] == _OPEN
    if open_world:
        items.pop()
        if not items:
            raise InvalidArgument(f"grant {text!r}: ;* opens a grant with constraints; one "
                                  f"without any is open already")
    table: dict[str, list[Constraint]] = {}
    for item in items:
        if item == _OPEN:
            raise InvalidArgument(f"grant {text!r}: ;* comes last")
        name, sep, spec = item.partition("=")
        kind, sep2, value = spec.partition(":")
        if not (sep and sep2):
            raise InvalidArgument(f"grant item {item!r}: a constraint is NAME=KIND:VALUE, "
                                  f"for example {KIND_EXAMPLES['range']}")
        alternative = name.endswith("+")
        name = name.removesuffix("+")
        members = table.setdefault(name, [])
        if alternative and not members:
            raise InvalidArgument(f"grant item {item!r}: {name}+= adds an alternative to "
                                  f"a {name}=KIND:VALUE item before it")
        if members and not alternative:
            raise InvalidArgument(f"grant item {item!r}: {name!r} is constrained twice; "
                                  f"write {name}+=KIND:VALUE for an alternative")
        members.append(_constraint(item, kind, value))
    constraints: dict[str, Constraint] = {}
    for name, members in table.items():
        try:
            constraints[name] = members[0] if len(members) == 1 else AnyOf(members)
        except AgentAuthError as exc:
            raise InvalidArgument(f"grant {text!r}, argument {name!r}: {exc.message}; for "
                                  f"example {KIND_EXAMPLES['any-of']}") from None
    try:
        return Grant(resource, actions.split(","), constraints, open_world=open_world)
    except AgentAuthError as exc:
        raise InvalidArgument(f"grant {text!r}: {exc.message}") from None


def _show(value: object, among: bool = False) -> str:
    """A value as :func:`_value` (``among`` others: :func:`_values`) reads it back: a
    string in quotes when it would read as something else."""
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is not str:
        return str(value)
    if value and type(_value(value)) is str and _value(value) == value and not (
            among and ("|" in value or value.startswith('"'))):
        return value
    return f'"{value}"'


def _url_text(url: Url) -> str:
    default = 80 if url.scheme in ("http", "ws") else 443
    port = "" if url.port == default else f":{url.port}"
    return f"{url.scheme}://{url.host}{port}{url.path}"


def _describe_one(c: Constraint) -> str:
    if isinstance(c, Eq):
        return f"eq:{_show(c.value)}"
    if isinstance(c, OneOf | NotOneOf | Contains | Subset):
        return f"{c.NAME}:" + "|".join(_show(v, among=True) for v in sorted(c.values))
    if isinstance(c, Range | Length):
        return f"{c.NAME}:{c.lo}..{c.hi}"
    if isinstance(c, Url):
        return f"url:{_url_text(c)}"
    if isinstance(c, AnyValue):
        return "any:"
    if isinstance(c, Prefix):
        return f"prefix:{c.prefix}"
    if isinstance(c, Pattern):
        return f"pattern:{c.glob}"
    if isinstance(c, Subpath):
        return f"subpath:{c.root}"
    if isinstance(c, Cidr):
        return f"cidr:{c.network}"
    return repr(c)  # any-of nested in any-of cannot be built


def describe_constraint(name: str, c: Constraint) -> str:
    """What follows ``NAME=`` for constraint ``c`` in the syntax :func:`parse_grant`
    reads (an any-of continues with ``;NAME+=`` for each further member)."""
    if isinstance(c, AnyOf):
        return f";{name}+=".join(_describe_one(m) for m in c.members)
    return _describe_one(c)


def describe_grant(grant: Grant) -> str:
    """A grant in the syntax :func:`parse_grant` reads."""
    items = [f"{grant.resource}={','.join(sorted(grant.actions))}"]
    items += [f"{name}={describe_constraint(name, c)}"
              for name, c in grant.constraints.items()]
    return ";".join(items + ([_OPEN] if grant.open_world else []))


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
                         constraints={n: describe_constraint(n, c)
                                      for n, c in g.constraints.items()},
                         open_world=g.open_world)
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
            lines += [f"{pad}    {name}={describe_constraint(name, c)}"
                      for name, c in grant.constraints.items()]
            if grant.constraints:
                lines.append(f"{pad}    {_OPEN} (open world: other arguments pass)"
                             if grant.open_world else
                             f"{pad}    (closed: no other argument)")
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
        values: dict[str, object] = {}
        for item in args.arg:
            name, _, value = item.partition("=")
            values[name] = _value(value)
        for item in args.arg_list:
            name, _, value = item.partition("=")
            values[name] = _values(value) if value else []
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
    p.epilog = f"{GRANT_HELP}\n{p.epilog}"
    p.add_argument("--grant", action="append", required=True,
                   help="RESOURCE=ACTIONS[;NAME=KIND:VALUE...][;*] (repeat for several; "
                        "the syntax is below)")
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
    p.add_argument("--arg", action="append", default=[],
                   help="NAME=VALUE of the request: digits are an integer, true/false a "
                        "boolean, \"42\" the string 42")
    p.add_argument("--arg-list", action="append", default=[], metavar="NAME=V|V...",
                   help="a list argument of the request (for contains and subset); "
                        "NAME= is the empty list")
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

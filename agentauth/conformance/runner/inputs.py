"""The inputs of the differential mode: one genuine input per operation and round, made
with this implementation's own engines from a seeded generator, then changed by kind.

An input is a short script of driver requests (:class:`Script`): the set-up an operation
needs (an identity, the clock, a verifier, an opener, a handshake engine) and the call
under test. Its bytes under test (a chain, a notice, an invocation, an envelope, a frame,
a constraint, a grant, a handshake message) are then left as they are (``valid``),
changed once by :func:`~.mutation.mutate` (``mutated``), cut short (``truncated``), or
written non-canonically by :func:`~.reencode.reencode` (``reencoded``). The genuine inputs
sit on the edges the rules draw: clocks one second either side of a window's end, a
holder, an anchor or a revoker that is someone else, a link revoked, a replayed call.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ... import crypto, wire
from ...capability import Grant, Range, Request, delegate, encode_chain, invoke
from ...capability.chain import LINK_CONTEXT, Link
from ...capability.revocation import REVOKE_CONTEXT
from ...envelope import seal
from ...handshake import HandshakePolicy, Initiator, Responder
from ...identity import Identity
from ..vectors import constraints as _constraints
from ..vectors.forge import Forge, body2, body3
from .check import T0
from .mutation import make_frame, mutate
from .reencode import reencode

__all__ = ["HANDLE", "KINDS", "OPERATIONS", "Script", "kind_of", "make_input", "section"]

#: How an input is changed from the genuine one.
KINDS: Final = ("valid", "mutated", "truncated", "reencoded")
#: The operations under test, in the order each round visits them.
OPERATIONS: Final = ("verify_chain", "verify_notice", "check_invocation", "open_envelope",
                     "frame_decode", "constraint_allows", "constraint_within", "grant_allows",
                     "grant_within", "receive", "open", "interface")
#: A parameter value standing for the handle the script's last set-up returned.
HANDLE: Final = "$handle"


@dataclass(slots=True)
class Script:
    """Driver requests ``steps`` (op, parameters); ``targets`` name the parameters that hold
    the bytes under test (step index, parameter name), all given the same bytes."""

    steps: list[tuple[str, dict[str, Any]]]
    targets: list[tuple[int, str]]
    data: bytes
    what: str = "genuine"
    #: An input-specific way to write the bytes non-canonically (HS2 and HS3: the body is
    #: re-encoded before it is signed and encrypted).
    rewrite: Callable[[random.Random], tuple[bytes, str] | None] | None = field(
        default=None, repr=False)

    def set(self, data: bytes, what: str) -> None:
        """Put ``data`` in every target."""
        self.data, self.what = data, what
        for index, name in self.targets:
            self.steps[index][1][name] = data.hex()


def _as_map(data: bytes, fields: int) -> dict[int, Any]:
    return dict(enumerate(wire.decode_map(data, fields, len(data), "structure")))


def _nested(payload: bytes, fields: int, signature: bytes) -> bytes:
    """``{0: payload, 1: signature}`` with the payload as a nested map, not the ``bin``
    holding its encoding that the spec requires."""
    return wire.encode_value({0: _as_map(payload, fields), 1: signature})


def _seed(rng: random.Random) -> bytes:
    return rng.randbytes(32)


def _identity(rng: random.Random) -> Identity:
    return Identity.from_seed(_seed(rng))


# ------------------------------------------------------------------ capabilities


@dataclass(slots=True)
class _Chain:
    root: Identity
    holders: list[Identity]
    links: list[Link]
    data: bytes


_GRANTS = (("fs/reports/**", {"read", "list"}, 1000), ("fs/reports/q3/*", {"read"}, 100),
           ("fs/reports/q3/a", {"read"}, 50))


def _chain(rng: random.Random, depth: int | None = None) -> _Chain:
    depth = rng.choice((1, 2, 3)) if depth is None else depth
    root = _identity(rng)
    holders = [_identity(rng) for _ in range(depth)]
    links: list[Link] = []
    issuer, parent = root, None
    for i, holder in enumerate(holders):
        pattern, actions, top = _GRANTS[i]
        link = delegate(issuer, holder, [Grant(pattern, actions, {"size": Range(0, top)})],
                        not_before=T0 - 60 + 15 * i, expires=T0 + 3600 - 1000 * i,
                        budget=depth - i, parent=parent, nonce=rng.randbytes(16))
        links.append(link)
        issuer, parent = holder, link
    return _Chain(root, holders, links, encode_chain(links))


#: A last link delegate() refuses to sign, each breaking one rule of 10.3 or 10.6.
_HAND_MADE = {"nonce-long": (0, 0, 17, ["read"]), "nonce-short-unsorted": (0, 0, 15,
                                                                         ["read", "list"]),
              "budget-kept": (1, 0, 16, ["read"]), "expires-later": (0, 1, 16, ["read"]),
              "action-bad-unsorted": (0, 0, 16, ["read", "A!"])}


def _hand_made(chain: _Chain, fault: str, rng: random.Random) -> tuple[bytes, Identity]:
    """The chain with one more link, signed by hand: its budget, expiry, nonce length and
    action list as ``_HAND_MADE[fault]`` says; and that link's holder."""
    budget, later, nonce, actions = _HAND_MADE[fault]
    parent, holder = chain.links[-1], _identity(rng)
    payload = wire.encode_value([holder.public_bytes, [["fs/reports/q3/a", actions,
                                                        {"size": [2, 0, 10]}]],
                                 parent.not_before, parent.expires + later,
                                 parent.budget - 1 + budget, rng.randbytes(nonce)])
    link = payload + chain.holders[-1].sign(LINK_CONTEXT + parent.id + payload)
    return wire.encode_value([1, *(x.data for x in chain.links), link]), holder


def _edge_time(rng: random.Random, links: list[Link], skew: int, edge: str) -> float:
    """A clock one second either side of the start or the end of the chain's windows."""
    if edge == "start":
        start = max(link.not_before for link in links)
        now: float = rng.choice((start - skew, start - skew - 1))
    else:
        end = min(link.expires for link in links)
        now = rng.choice((end + skew - 1, end + skew))
    return now + rng.choice((0, 0.5))  # a verifier rounds its clock down


def _one_of(rng: random.Random, turn: int | None, faults: tuple[str, ...]) -> str:
    """Which rule the input breaks: with a ``turn``, each of ``faults`` and then none in
    turn (so that a few rounds reach them all), else none a quarter of the time and one of
    ``faults`` otherwise."""
    if turn is not None:
        return (*faults, "none")[turn % (len(faults) + 1)]
    return "none" if rng.random() < 0.25 else rng.choice(faults)


_CHAIN_FAULTS = ("holder", "holder-parent", "no-holder", "anchor-scope", "anchor-outside",
                 "anchor-stranger", "action", "size", "resource", "no-request", "revoked",
                 "time-start", "time-end", "skew", "version", *_HAND_MADE)


def _verify_chain(rng: random.Random, turn: int | None) -> Script:
    chain = _chain(rng)
    fault = _one_of(rng, turn, _CHAIN_FAULTS)
    skew = rng.choice((0, 300)) if fault == "skew" else 60
    holder = {"holder": _identity(rng).agent_id, "holder-parent": chain.holders[0].agent_id,
              "no-holder": None}.get(fault, chain.holders[-1].agent_id)
    anchors = {chain.root.agent_id: {"anchor-scope": "fs/reports/q3/**",
                                     "anchor-outside": "jobs/**"}.get(fault, "fs/**")}
    if fault == "anchor-stranger":
        anchors = {_identity(rng).agent_id: "**"}
    request: dict[str, Any] | None = {
        "resource": "fs/reports/q4/a" if fault == "resource" else "fs/reports/q3/a",
        "action": "list" if fault == "action" else "read",
        "args": {"size": rng.choice((60, 500)) if fault == "size" else 10}}
    if fault == "no-request":
        request = None
    revoked = [rng.choice(chain.links).id.hex()] if fault == "revoked" else []
    edge = "end" if fault == "time-end" else rng.choice(("start", "end"))
    now = (_edge_time(rng, chain.links, skew, edge) if fault in ("time-start", "time-end",
                                                                 "skew") else float(T0))
    steps: list[tuple[str, dict[str, Any]]] = [
        ("set_clock", {"now": now}),
        ("verify_chain", {"chain": "", "anchors": anchors, "skew": skew, "revoked": revoked,
                          "holder": holder, "request": request})]
    data = chain.data
    if fault == "version":  # a chain of a version this one is not
        data = wire.encode_value([2, *(link.data for link in chain.links)])
    elif fault in _HAND_MADE:
        data, last = _hand_made(chain, fault, rng)
        steps[1][1]["holder"] = last.agent_id
    return Script(steps, [(1, "chain")], data)


def _verify_notice(rng: random.Random, turn: int | None) -> Script:
    chain = _chain(rng)
    path = chain.links[:rng.randrange(1, len(chain.links) + 1)]
    fault = _one_of(rng, turn, ("stranger", "anchor", "other-path", "versioned-path", "time-type",
                          "nested"))
    if fault == "stranger":
        revoker = _identity(rng)
    else:  # an issuer upstream of the target, or its audience giving it up
        revoker = rng.choice((chain.root, *chain.holders[:len(path)]))
    items: list[Any] = [link.data for link in path]
    if fault == "versioned-path":  # a chain's leading version, which a path does not have
        items.insert(0, 1)
    issued: Any = {"time-type": rng.choice((True, -1, 2**63))}.get(fault, T0)
    payload = wire.encode_map(1, revoker.public_bytes, items, issued)
    if fault == "other-path":  # signed over another path than the one it carries
        signed = wire.encode_map(1, revoker.public_bytes, [path[0].data], T0)
    else:
        signed = payload
    signature = revoker.sign(REVOKE_CONTEXT + signed)
    data = _nested(payload, 4, signature) if fault == "nested" else wire.encode_map(
        payload, signature)
    anchors = {(_identity(rng) if fault == "anchor" else chain.root).agent_id: "**"}
    return Script([("verify_notice", {"notice": "", "anchors": anchors})],
                  [(0, "notice")], data)


def _with_binding(data: bytes, binding: bytes) -> bytes:
    """A session invocation ``data`` with its binding (payload field 3) replaced: a form
    no encoder of this implementation writes (protocol.md §10.7 fixes it at 64 bytes)."""
    payload, signature = wire.decode_map(data, 2, len(data), "invocation")
    fields = list(wire.decode_map(payload, 7, len(payload), "invocation payload"))
    fields[3] = binding
    return wire.encode_map(wire.encode_map(*fields), signature)


def _check_invocation(rng: random.Random, turn: int | None) -> Script:
    chain = _chain(rng, rng.choice((1, 2)))
    holder = chain.holders[-1]
    anchors = {chain.root.agent_id: "**"}
    stranger = _identity(rng)
    in_session = rng.random() < 0.4
    if turn is not None:  # each branch's faults in turn: 8 session turns, then 8 detached
        in_session, turn = turn % 16 < 8, turn % 8
    if in_session:
        fault = _one_of(rng, turn, ("binding", "binding-long", "binding-short", "peer", "action",
                              "replay", "nested"))
        request = Request("fs/reports/q3/a", "write" if fault == "action" else "read",
                          {"size": 5})
        binding = rng.randbytes(64)
        steps: list[tuple[str, dict[str, Any]]] = [
            ("set_clock", {"now": float(T0)}),
            ("invocation_verifier", {"mode": "session", "anchors": anchors,
                                     "peer": (stranger if fault == "peer" else holder).agent_id,
                                     "channel_binding": binding.hex()})]
        sent = rng.randbytes(64) if fault == "binding" else binding
        data = invoke(chain.data, request, channel_binding=sent, clock=lambda: T0,
                      random=rng.randbytes)
        if fault in ("binding-long", "binding-short"):  # invoke() makes only 64 bytes
            data = _with_binding(data, binding + rng.randbytes(1) if fault == "binding-long"
                                 else binding[:63])
    else:
        fault = _one_of(rng, turn, ("verifier", "signer", "action", "replay", "time", "time",
                              "nested"))
        request = Request("fs/reports/q3/a", "write" if fault == "action" else "read",
                          {"size": 5})
        verifier_seed = _seed(rng)
        verifier = Identity.from_seed(verifier_seed)
        window, skew = rng.choice(((1, 0), (120, 60), (120, 0)))
        now = T0 + rng.choice((0, 0.5))
        limit = window + skew
        issued = T0 + (rng.choice((limit, limit + 1, -limit, -limit - 1)) if fault == "time"
                       else 0)
        steps = [("create_identity", {"seed": verifier_seed.hex()}),
                 ("set_clock", {"now": now}),
                 ("invocation_verifier", {"mode": "detached", "anchors": anchors,
                                          "skew": skew, "verifier": verifier.agent_id,
                                          "window": window})]
        data = invoke(chain.data, request, holder=stranger if fault == "signer" else holder,
                      verifier=(stranger if fault == "verifier" else verifier).agent_id,
                      clock=lambda: issued, random=rng.randbytes)
    if fault == "nested":
        payload, signature = wire.decode_map(data, 2, len(data), "invocation")
        data = _nested(payload, 7, signature)
    calls = 2 if fault == "replay" else 1
    for _ in range(calls):
        steps.append(("check_invocation", {"handle": HANDLE, "invocation": ""}))
    return Script(steps, [(len(steps) - 1 - i, "invocation") for i in range(calls)], data)


# ------------------------------------------------------------------ envelopes


def _sealed(to: Identity, data: bytes, rng: random.Random) -> bytes:
    """``data`` in a sealed envelope to ``to``, as :func:`~agentauth.envelope.seal` writes
    one, with an ephemeral key from ``rng`` (so that the seed gives the same bytes)."""
    box = crypto.sealed_box_for_vectors(rng.randbytes(32), to.public_bytes, data)
    return wire.encode_map(2, to.public_bytes, box)


_ENVELOPE_FAULTS = ("time", "time", "time", "recipient", "untrusted", "trusted", "reply",
                    "reply-other", "reply-unawaited", "seen", "replay", "nested",
                    "sealed-twice", "signature-long", "signature-short",
                    "signature-short-elsewhere")


def _open_envelope(rng: random.Random, turn: int | None) -> Script:
    me_seed = _seed(rng)
    me, sender, stranger = Identity.from_seed(me_seed), _identity(rng), _identity(rng)
    fault = _one_of(rng, turn, _ENVELOPE_FAULTS)
    window, skew = rng.choice(((300, 60), (10, 0)))
    now = T0 + rng.choice((0, 0.5))
    sent = T0 + (rng.choice((-window - skew, -window - skew - 1, skew, skew + 1))
                 if fault == "time" else 0)
    asked = rng.randbytes(16)
    reply_to = asked if fault.startswith("reply") else b""
    pending = [] if fault in ("none", "reply-unawaited") else [{
        "nonce": asked.hex(), "recipient": (stranger if fault == "reply-other"
                                            else sender).agent_id, "expires": T0 + 360}]
    nonce = rng.randbytes(16)
    seen = [{"key": (sender.public_bytes + nonce).hex(), "expires": T0 + 1000}
            ] if fault == "seen" else []
    trust = {"untrusted": [stranger.agent_id], "trusted": [sender.agent_id]}.get(fault)
    signature_fault = fault.startswith("signature")
    encrypt = rng.random() < 0.5 and fault != "nested" and not signature_fault
    to = stranger if fault in ("recipient", "signature-short-elsewhere") else me
    data = seal(sender, to, rng.randbytes(rng.randrange(40)), reply_to=reply_to,
                clock=lambda: sent, random=lambda _: nonce)
    if encrypt or fault == "sealed-twice":
        data = _sealed(to, data, rng)
    if fault == "sealed-twice":  # a sealed box holding a sealed envelope, not a signed one
        data = _sealed(me, data, rng)
    elif fault == "nested" or signature_fault:
        kind, body, signature = wire.decode_map(data, 3, len(data), "envelope")
        if fault == "nested":
            data = wire.encode_value({0: kind, 1: _as_map(body, 6), 2: signature})
        else:
            data = wire.encode_map(kind, body, signature + b"\x00" if fault ==
                                   "signature-long" else signature[:63])
    steps: list[tuple[str, dict[str, Any]]] = [
        ("create_identity", {"seed": me_seed.hex()}), ("set_clock", {"now": now}),
        ("envelope_opener", {"recipient": me.agent_id, "trust": trust, "pending": pending,
                             "seen": seen, "window": window, "skew": skew})]
    calls = 2 if fault == "replay" else 1
    for _ in range(calls):
        steps.append(("open_envelope", {"handle": HANDLE, "envelope": ""}))
    return Script(steps, [(len(steps) - 1 - i, "envelope") for i in range(calls)], data)


# ------------------------------------------------------------------ frames, constraints


def _frame_decode(rng: random.Random, turn: int | None) -> Script:
    frame = make_frame(rng)
    limit = rng.choice((len(frame), len(frame) - 1, 4096, 1 << 20))
    return Script([("frame_decode", {"frame": "", "limit": max(limit, 1)})], [(0, "frame")],
                  frame)


@functools.cache
def _constraint_cases() -> dict[str, Any]:
    return _constraints.build()


def _constraint_allows(rng: random.Random, turn: int | None) -> Script:
    cases = _constraint_cases()
    case = rng.choice(cases["matching"] if rng.random() < 0.7 else cases["faults"])
    value = case.get("value")
    if value is None and rng.random() < 0.5:
        value = rng.choice(cases["matching"])["value"]
    return Script([("constraint_allows", {"constraint": "", "value": value})],
                  [(0, "constraint")], bytes.fromhex(case["constraint"]))


def _within(what: str, rng: random.Random, turn: int | None) -> Script:
    """A child and a parent constraint (or grant) from the narrowing cases, the child's
    bytes under test."""
    case = rng.choice(_constraint_cases()["narrowing" if what == "constraint"
                                          else "grant_narrowing"])
    return Script([(f"{what}_within", {"child": "", "parent": case["parent"]})],
                  [(0, "child")], bytes.fromhex(case["child"]))


def _grant_allows(rng: random.Random, turn: int | None) -> Script:
    cases = _constraint_cases()
    grants = cases["grants"]
    case = rng.choice(grants if rng.random() < 0.7 else cases["grant_faults"])
    resource, action, args = case.get("request") or rng.choice(grants)["request"]
    return Script([("grant_allows", {"grant": "", "request": {
        "resource": resource, "action": action, "args": args}})], [(0, "grant")],
        bytes.fromhex(case["grant"]))


# ------------------------------------------------------------------ handshakes


def _handshake(role: str, seed: bytes, random_: bytes, trust: list[str],
               expect: str | None, ordered: bool = True) -> list[tuple[str, dict[str, Any]]]:
    agent = Identity.from_seed(seed).agent_id
    return [("create_identity", {"seed": seed.hex()}), ("set_clock", {"now": float(T0)}),
            ("handshake", {"role": role, "identity": agent, "trust": trust, "expect": expect,
                           "ordered": ordered, "random": random_.hex()})]


def _message(rng: random.Random) -> str:
    return rng.choice(("hs1", "hs2", "hs3"))  # the first draw: section() repeats it


def _ordered(rng: random.Random) -> bool:
    return rng.random() < 0.5  # the first draw: section() repeats it


_SECTIONS = {"verify_chain": "10.6", "verify_notice": "10.8", "check_invocation": "10.7",
             "open_envelope": "12.2", "frame_decode": "15.2", "constraint_allows": "10.1",
             "constraint_within": "10.2", "grant_allows": "10.1", "grant_within": "10.2"}


def section(operation: str, rng: random.Random) -> str:
    """The section whose rules the input ``rng`` makes for ``operation`` checks (for a
    handshake message, the message's; for session messages, the session mode's; for the
    interface's own requests, ``conformance.md`` 6), without making it."""
    if operation == "interface":
        return "conformance.md §6"
    if operation == "receive":
        number = {"hs1": "4.3", "hs2": "4.5", "hs3": "4.7"}[_message(rng)]
    elif operation == "open":
        number = "5.5" if _ordered(rng) else "5.6"
    else:
        number = _SECTIONS[operation]
    return f"protocol.md §{number}"


def _receive(rng: random.Random, turn: int | None) -> Script:
    """HS1, HS2 or HS3 for the driver, written by the runner's own engines (a forge for HS2
    and HS3, whose bodies may then be re-encoded before they are signed)."""
    message = _message(rng)
    driver_seed, driver_random = _seed(rng), rng.randbytes(32)
    driver = Identity.from_seed(driver_seed)
    peer, stranger = _identity(rng), _identity(rng)
    fault = _one_of(rng, turn, ("untrusted", "skew", "skew", "reflection", "version", "expect",
                          "expect-untrusted", "version-type", "extensions-unsorted",
                          "echo-ephemeral", "late", "again", "offer-repeat"))
    trust = [(stranger if fault in ("untrusted", "expect-untrusted") else peer).agent_id]
    echo = fault == "echo-ephemeral" and message != "hs3"
    peer_secret = driver_random if echo else rng.randbytes(32)
    stamp = T0 + (rng.choice((120, -120, 121, -121)) if fault == "skew" else 0)
    signer = driver if fault == "reflection" else peer
    extensions = {"b": b"2", "a": b"1"} if fault == "extensions-unsorted" else {}
    if message == "hs1":
        steps = _handshake("responder", driver_seed, driver_random, trust, None)
        steps.append(("receive", {"handle": HANDLE, "message": ""}))
        offer = wire.encode_map({"version": rng.choice(([1, 2], [2, 3], [1, 3, 5])),
                                 "offer-repeat": [1, 1]}.get(fault, [1]))

        def first(payload: bytes) -> bytes:
            return Forge().write_hs1(peer_secret, payload)

        return Script(steps, [(3, "message")], first(offer),
                      rewrite=lambda r: _rewritten(offer, r, first))
    if message == "hs2":
        expect = (stranger.agent_id if fault in ("expect", "expect-untrusted")
                  else rng.choice((peer.agent_id, None)))
        steps = _handshake("initiator", driver_seed, driver_random, trust, expect)
        steps.append(("start", {"handle": HANDLE}))
        if fault == "late":  # past the handshake's timeout (30 s)
            steps.append(("set_clock", {"now": T0 + 30.5}))
        if fault == "again":  # the genuine message after a failure: the failure again
            steps.append(("receive", {"handle": HANDLE, "message": "00"}))
        steps.append(("receive", {"handle": HANDLE, "message": ""}))
        hs1 = Forge().write_hs1(driver_random)  # what the driver's start writes

        def hs2(body: bytes) -> bytes:
            forge = Forge()
            forge.read_hs1(hs1)
            return forge.write_hs2(peer_secret, body, signer)

        version: Any = {"version": 2, "version-type": "1"}.get(fault, 1)
        body = body2(version, signer.public_bytes, stamp, extensions)
        return Script(steps, [(len(steps) - 1, "message")], hs2(body),
                      rewrite=lambda r: _rewritten(body, r, hs2))
    steps = _handshake("responder", driver_seed, driver_random, trust, None)
    hs1 = Forge().write_hs1(peer_secret)
    reference = Responder(driver, HandshakePolicy(trust=[peer.agent_id]), clock=lambda: T0,
                          random=lambda n: driver_random[:n])
    reply = reference.receive_message(hs1)  # what the driver answers
    assert reply is not None
    steps.append(("receive", {"handle": HANDLE, "message": hs1.hex()}))
    if fault == "late":
        steps.append(("set_clock", {"now": T0 + 30.5}))
    steps.append(("receive", {"handle": HANDLE, "message": ""}))
    body = body3(signer.public_bytes, stamp, extensions)

    def hs3(data: bytes) -> bytes:
        forge = Forge()
        forge.write_hs1(peer_secret)
        forge.read_hs2(reply)
        return forge.write_hs3(data, signer)

    return Script(steps, [(len(steps) - 1, "message")], hs3(body),
                  rewrite=lambda r: _rewritten(body, r, hs3))


_SESSION_ORDERS = ("in-order", "swap", "replay", "rekey", "close", "type-3", "window")


def _open(rng: random.Random, turn: int | None) -> Script:
    """Session messages for a driver that completed a handshake as responder: sealed by
    the runner's initiator, delivered in order, swapped, twice, across a REKEY, after a
    CLOSE or (unordered) around the edge of the replay window; then an exported value."""
    ordered = _ordered(rng)
    driver_seed, driver_random = _seed(rng), rng.randbytes(32)
    driver, peer, peer_secret = Identity.from_seed(driver_seed), _identity(rng), rng.randbytes(32)
    initiator = Initiator(peer, HandshakePolicy(trust=[driver.agent_id]), ordered=ordered,
                          clock=lambda: T0, random=lambda n: peer_secret[:n])
    responder = Responder(driver, HandshakePolicy(trust=[peer.agent_id]), ordered=ordered,
                          clock=lambda: T0, random=lambda n: driver_random[:n])
    hs1 = initiator.start()
    hs2 = responder.receive_message(hs1)
    assert hs2 is not None
    hs3 = initiator.receive_message(hs2)
    assert hs3 is not None and initiator.result is not None
    session = initiator.result.session
    steps = _handshake("responder", driver_seed, driver_random, [peer.agent_id], None,
                       ordered)
    steps += [("receive", {"handle": HANDLE, "message": hs1.hex()}),
              ("receive", {"handle": HANDLE, "message": hs3.hex()})]
    order = rng.choice(_SESSION_ORDERS[:-1] if ordered else _SESSION_ORDERS)
    sent = [session.seal(rng.randbytes(rng.randrange(24))) for _ in range(4)]
    if order == "window":
        top = 2048 + rng.randrange(4)
        sent += [session.seal(b"%d" % n) for n in range(4, top + 1)]
        delivered = [0, 1, top, top - rng.choice((2047, 2048, 2049)), top - 1, top - 1]
        messages = [sent[n] for n in delivered]
    else:
        messages = list(sent)
        if order == "swap":
            i = rng.randrange(3)
            messages[i], messages[i + 1] = messages[i + 1], messages[i]
        elif order == "replay":
            messages.insert(rng.randrange(1, 5), rng.choice(messages[:2]))
        elif order == "rekey":
            messages += [session.rekey(), session.seal(b"after"), session.seal(b"again")]
        elif order == "close":
            messages += [session.close(), sent[-1]]
        elif order == "type-3":  # a type no sender writes (the forge writes any)
            messages.append(session.forge_for_vectors(3, b""))
    at = rng.randrange(len(messages))
    first = len(steps)
    steps += [("open", {"handle": HANDLE, "message": m.hex()}) for m in messages]
    steps.append(("export", {"handle": HANDLE, "label": b"differential".hex(),
                             "context": rng.randbytes(rng.randrange(3)).hex(),
                             "length": rng.choice((16, 32, 64))}))
    return Script(steps, [(first + at, "message")], messages[at])


_INTERFACE_FAULTS = ("start-responder", "negative-clock", "unknown-identity",
                     "unknown-handle", "upper-case-hex", "clock-string")


def _interface(rng: random.Random, turn: int | None) -> Script:
    """Requests the interface refuses (conformance.md 2 to 6), then a valid one: a
    ``start`` on a responder, a negative clock, an identity never created, a handle never
    given, hex in capitals, a clock as a string."""
    fault = _one_of(rng, turn, _INTERFACE_FAULTS)
    seed, other = _seed(rng), _identity(rng)
    steps = _handshake("responder", seed, rng.randbytes(32), [other.agent_id], None)
    refused: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "start-responder": [("start", {"handle": HANDLE})],
        "negative-clock": [("set_clock", {"now": -rng.choice((1, 0.5))})],
        "unknown-identity": [("handshake", {"role": "initiator", "identity": other.agent_id,
                                            "trust": "any"})],
        "unknown-handle": [("check_timeout", {"handle": "h" + str(rng.randrange(10**6))})],
        "upper-case-hex": [("create_identity", {"seed": seed.hex().upper()})],
        "clock-string": [("set_clock", {"now": str(T0)})],
        "none": []}
    steps += refused[fault]
    steps.append(("check_timeout", {"handle": HANDLE}))
    data = b"" if fault == "none" else fault.encode()
    return Script(steps, [], data)


def _rewritten(body: bytes, rng: random.Random, write: Callable[[bytes], bytes]
               ) -> tuple[bytes, str] | None:
    changed = reencode(body, rng)
    if changed is None:
        return None
    return write(changed[0]), f"{changed[1]} in the signed body"


_MAKERS: dict[str, Callable[[random.Random, int | None], Script]] = {
    "verify_chain": _verify_chain, "verify_notice": _verify_notice,
    "check_invocation": _check_invocation, "open_envelope": _open_envelope,
    "frame_decode": _frame_decode, "constraint_allows": _constraint_allows,
    "grant_allows": _grant_allows, "receive": _receive, "open": _open,
    "interface": _interface,
    "constraint_within": functools.partial(_within, "constraint"),
    "grant_within": functools.partial(_within, "grant")}


def kind_of(index: int) -> str:
    """The kind of round ``index``'s inputs: every other round valid, the rest mutated,
    truncated and re-encoded in turn."""
    return ("valid", "mutated", "valid", "truncated", "valid", "reencoded")[index % 6]


def make_input(operation: str, index: int, rng: random.Random) -> Script:
    """The script of round ``index``'s input for ``operation``: a genuine one (the valid
    rounds break the operation's rules in turn, one at a time), changed as
    :func:`kind_of` says."""
    kind = kind_of(index)
    script = _MAKERS[operation](rng, index // 2 if kind == "valid" else None)
    if not script.targets:  # requests, no bytes to change: the rule broken says it all
        script.what = f"rule broken: {script.data.decode() or 'none'}"
        return script
    data = script.data
    if kind == "mutated":
        script.set(*mutate(data, rng))
    elif kind == "truncated":
        cut = rng.randrange(len(data)) if data else 0
        script.set(data[:cut], f"cut to {cut} of {len(data)} bytes")
    elif kind == "reencoded":
        changed = (script.rewrite or functools.partial(reencode, data))(rng)
        if changed is None:  # nothing in it is msgpack: a mutation stands in
            changed = mutate(data, rng)
        script.set(*changed)
    else:
        script.set(data, "genuine")
    return script

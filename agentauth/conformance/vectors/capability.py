"""Capability vectors (spec section 10): positive chains of depth 1, 3 and 8 with exact
bytes and link ids, and negative cases that each break one rule of section 10.6.

Everything is fixed: keys from seeds, nonces, times. Links that the library refuses to
make (widening children, wrong issuers, odd encodings) are written by hand here and signed
over exactly those bytes, so that the verifier, not the encoder, is what refuses them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ... import crypto, wire
from ...capability import Eq, Grant, OneOf, Range, Request, delegate, encode_chain, invoke
from ...capability.chain import LINK_CONTEXT, NO_PARENT, Link
from ...capability.revocation import REVOKE_CONTEXT
from ...identity import Identity, format_agent_id

__all__ = ["BINDING", "NOW", "build", "identity"]

NOW = 1_800_000_000
NBF, EXP = NOW - 100, NOW + 3600


def identity(name: str) -> Identity:
    """The fixed identity named ``name``."""
    return Identity.from_seed(crypto.blake2b_256(b"capability vectors " + name.encode()))


ROOT, ALICE, BOB, CAROL, DAVE, MALLORY = (identity(n) for n in
                                          ("root", "alice", "bob", "carol", "dave",
                                           "mallory"))
HOLDERS = [ALICE, BOB, CAROL, DAVE] * 3
WIDE = Grant("fs/reports/**", {"list", "read"},
             {"fmt": OneOf(frozenset({"csv", "pdf"})), "size": Range(0, 1000)})
REQUEST = Request("fs/reports/q3/summary", "read", {"fmt": "pdf", "size": 50})
BINDING = crypto.blake2b_keyed(b"capability vectors", b"session", 64)


def _nonce(label: str) -> bytes:
    return crypto.blake2b_256(label.encode())[:16]


def chain(depth: int, grant: Grant = WIDE, label: str = "") -> list[Link]:
    """ROOT -> ALICE -> BOB -> CAROL -> DAVE -> ..., ``depth`` links, all with ``grant``."""
    links = [delegate(ROOT, ALICE, [grant], not_before=NBF, expires=EXP, budget=depth - 1,
                      nonce=_nonce(f"{label}root"))]
    issuer = ALICE
    for i in range(1, depth):
        holder = HOLDERS[i]
        links.append(delegate(issuer, holder, [grant], not_before=NBF, expires=EXP,
                              budget=depth - 1 - i, parent=links[-1],
                              nonce=_nonce(f"{label}{i}")))
        issuer = holder
    return links


def forge(signer: Identity, *, parent: Link | None = None, audience: Identity = BOB,
          issuer: bytes | None = None, grants: list[Any] | None = None, nbf: int = NBF,
          exp: int = EXP, budget: int = 0, extra: tuple[Any, ...] = (),
          raw: bytes | None = None, label: str = "forged") -> bytes:
    """The bytes of a link with any content, or the exact ``raw`` payload, signed by
    ``signer`` under ``parent`` (a root when there is none)."""
    if raw is None:
        fields = [audience.public_bytes, grants if grants is not None else [WIDE.to_wire()],
                  nbf, exp, budget, _nonce(label), *extra]
        if parent is None:
            fields.insert(0, signer.public_bytes if issuer is None else issuer)
        raw = wire.encode_value(fields)
    parent_id = parent.id if parent is not None else NO_PARENT
    return raw + signer.sign(LINK_CONTEXT + parent_id + raw)


def _raw_array(items: list[bytes]) -> bytes:
    """A msgpack array of already encoded items (at most 15)."""
    return bytes([0x90 | len(items)]) + b"".join(items)


def _fields(link: Link) -> list[bytes]:
    """The encoded fields of a link's payload."""
    return [wire.encode_value(v) for v in wire.decode_array(link.payload, 4096, "link")]


def _chain_bytes(links: Sequence[Link | bytes]) -> bytes:
    return wire.encode_value([1, *(x.data if isinstance(x, Link) else x for x in links)])


def _vector(vid: str, description: str, data: bytes, expected: str, *,
            anchors: dict[str, str] | None = None, now: int = NOW,
            holder: Identity | None = None, request: Request | None = REQUEST,
            revoked: list[bytes] | None = None, extra: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    vector: dict[str, Any] = {
        "id": vid,
        "description": description,
        "anchors": anchors if anchors is not None else {ROOT.agent_id: "**"},
        "now": now,
        "skew": 60,
        "holder": holder.agent_id if holder is not None else None,
        "request": (None if request is None
                    else [request.resource, request.action, dict(request.args)]),
        "revoked": [r.hex() for r in (revoked or [])],
        "chain": data.hex(),
        "expected": expected,
    }
    vector.update(extra or {})
    return vector


def _positive() -> list[dict[str, Any]]:
    out = []
    for depth in (1, 3, 8):
        links = chain(depth)
        out.append(_vector(
            f"depth-{depth}", f"a chain of {depth} link(s), each holder delegating the same "
            "grant on; the leaf holder requests within it", encode_chain(links), "ok",
            holder=HOLDERS[depth - 1],
            extra={"link_ids": [link.id.hex() for link in links],
                   "payloads": [link.payload.hex() for link in links]}))
    return out


def _negatives() -> list[tuple[str, str, Callable[[], dict[str, Any]]]]:
    three = chain(3)
    root = three[0]

    def child(**kw: Any) -> bytes:
        return _chain_bytes([root, forge(ALICE, parent=root, **kw)])

    def grant(resource: str, actions: set[str], constraints: dict[str, Any]) -> list[Any]:
        return [Grant(resource, actions, constraints).to_wire()]

    narrow = {"fmt": Eq("pdf"), "size": Range(0, 10)}
    two = delegate(ROOT, ALICE, [Grant("fs/reports/**", {"read"}, {"size": Range(0, 10)}),
                                 Grant("fs/reports/**", {"list"}, {"size": Range(0, 1000)})],
                   not_before=NBF, expires=EXP, budget=1, nonce=_nonce("two grants"))
    cases: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
        ("widen-resource", "child grants fs/** under fs/reports/**",
         lambda: _vector("", "", child(grants=grant("fs/**", {"read"}, narrow)),
                         "widened_resource")),
        ("widen-segment-boundary", "child grants fs/reportsX/** under fs/reports/**",
         lambda: _vector("", "", child(grants=grant("fs/reportsX/**", {"read"}, narrow)),
                         "widened_resource")),
        ("request-segment-boundary", "a request for fs/reportsX/a under fs/reports/**",
         lambda: _vector("", "", encode_chain(three), "not_authorized", holder=CAROL,
                         request=Request("fs/reportsX/a", "read", {"fmt": "pdf",
                                                                    "size": 1}))),
        ("widen-action", "child adds the write action",
         lambda: _vector("", "", child(grants=grant("fs/reports/**", {"read", "write"},
                                                    narrow)), "widened_action")),
        ("widen-action-star", "child grants every action under a list of two",
         lambda: _vector("", "", child(grants=grant("fs/reports/**", {"*"}, narrow)),
                         "widened_action")),
        ("widen-range", "child relaxes size 0..1000 to 0..10000",
         lambda: _vector("", "", child(grants=grant(
             "fs/reports/**", {"read"}, {"fmt": Eq("pdf"), "size": Range(0, 10000)})),
             "widened_constraint")),
        ("widen-drop-constraint", "child drops the size constraint",
         lambda: _vector("", "", child(grants=grant("fs/reports/**", {"read"},
                                                    {"fmt": Eq("pdf")})),
                         "widened_constraint")),
        ("widen-in-to-prefix", "child turns fmt in {csv, pdf} into a prefix ''",
         lambda: _vector("", "", child(grants=[["fs/reports/**", ["read"],
                                                {"fmt": [3, ""], "size": [2, 0, 10]}]]),
                         "widened_constraint")),
        ("widen-time", "child expires after its parent",
         lambda: _vector("", "", child(exp=EXP + 1), "widened_time")),
        ("expired", "every link has expired",
         lambda: _vector("", "", encode_chain(three), "expired", now=EXP + 60)),
        ("not-yet-valid", "the links are not valid yet",
         lambda: _vector("", "", encode_chain(three), "not_yet_valid", now=NBF - 61)),
        ("reparented", "a valid child of one root link presented under its twin: its "
         "signature covers the parent id it was made under",
         lambda: _vector("", "", _chain_bytes([chain(3, label="twin")[0], three[1]]),
                         "bad_signature")),
        ("out-of-order", "the chain's last two links swapped: the budgets no longer shrink",
         lambda: _vector("", "", _chain_bytes([three[0], three[2], three[1]]),
                         "depth_exceeded")),
        ("issuer-not-parent-audience", "mallory signs a child of the link held by alice",
         lambda: _vector("", "", _chain_bytes([root, forge(MALLORY, parent=root)]),
                         "bad_signature")),
        ("tampered-signature", "one bit of the middle link's signature flipped",
         lambda: _vector("", "", _chain_bytes([root, three[1].data[:-1] + bytes(
             [three[1].data[-1] ^ 1]), three[2]]), "bad_signature", holder=CAROL)),
        ("depth", "the child's budget does not shrink",
         lambda: _vector("", "", child(budget=2), "depth_exceeded")),
        ("untrusted-root", "a root issued by a key that is no anchor",
         lambda: _vector("", "", _chain_bytes([forge(MALLORY, audience=ALICE)]),
                         "untrusted_root")),
        ("root-not-first", "the chain starts at a delegated link",
         lambda: _vector("", "", _chain_bytes(list(three[1:])), "root_invalid",
                         anchors={ALICE.agent_id: "**"})),
        ("root-inside", "a second root as the child of the first",
         lambda: _vector("", "", _chain_bytes([root, forge(ALICE, audience=BOB)]),
                         "root_invalid")),
        ("root-scope", "an anchor for db/** issuing fs/reports/**",
         lambda: _vector("", "", encode_chain(three), "root_scope",
                         anchors={ROOT.agent_id: "db/**"})),
        ("stolen", "a valid chain held by carol, presented by mallory",
         lambda: _vector("", "", encode_chain(three), "holder_mismatch", holder=MALLORY)),
        ("too-long", "ten links with garbage signatures: refused before any signature",
         lambda: _vector("", "", _chain_bytes([link.payload + bytes(64) for link in
                                               [*chain(9), chain(9)[-1]]]),
                         "chain_too_long")),
        ("duplicate-key", "a root whose constraints map names size twice, signed over it",
         lambda: _vector("", "", _chain_bytes([forge(ROOT, raw=_raw_array([
             *_fields(root)[:2],
             b"\x91\x93\xadfs/reports/**\x92\xa4list\xa4read\x82\xa4size\x93\x02\x00\x0a"
             b"\xa4size\x93\x02\x00\xcd\x03\xe8", *_fields(root)[3:]]))]), "non_canonical")),
        ("non-minimal-int", "a root payload with budget 2 written as a uint8",
         lambda: _vector("", "", _chain_bytes([forge(ROOT, raw=_raw_array(
             [*_fields(root)[:5], b"\xcc\x02", *_fields(root)[6:]]))]), "non_canonical")),
        ("float-expires", "a root payload whose expires is a float",
         lambda: _vector("", "", _chain_bytes([forge(ROOT, raw=_raw_array(
             [*_fields(root)[:4], wire.encode_value(float(EXP)), *_fields(root)[5:]]))]),
             "malformed")),
        ("chain-version-2", "a chain of version 2",
         lambda: _vector("", "", wire.encode_value([2, *(x.data for x in three)]),
                         "unknown_field")),
        ("unknown-field", "a root with an eighth field",
         lambda: _vector("", "", _chain_bytes([forge(ROOT, audience=ALICE, extra=(0,))]),
                         "unknown_field")),
        ("unknown-constraint", "a constraint of unknown kind 99",
         lambda: _vector("", "", _chain_bytes([forge(ROOT, audience=ALICE, grants=[
             ["fs/**", ["read"], {"size": [99, "x"]}]])]), "unknown_field")),
        ("constraint-wrong-arity", "a range constraint with one bound: a known kind out "
         "of shape",
         lambda: _vector("", "", _chain_bytes([forge(ROOT, audience=ALICE, grants=[
             ["fs/**", ["read"], {"size": [2, 0]}]])]), "malformed")),
        ("open-world-false", "a grant whose fourth element is false, not absent",
         lambda: _vector("", "", _chain_bytes([forge(ROOT, audience=ALICE, grants=[
             [*WIDE.to_wire(), False]])]), "non_canonical")),
        ("open-world-unconstrained", "a grant marked open-world with no constraints",
         lambda: _vector("", "", _chain_bytes([forge(ROOT, audience=ALICE, grants=[
             ["fs/**", ["read"], {}, True]])]), "non_canonical")),
        ("extra-argument", "a request with an argument the closed grants do not name",
         lambda: _vector("", "", encode_chain(three), "not_authorized", holder=CAROL,
                         request=Request("fs/reports/a", "read", {"fmt": "pdf", "size": 1,
                                                                  "mode": "x"}))),
        ("widen-open-world", "child lets arguments its closed parent does not name through "
         "(open world)",
         lambda: _vector("", "", child(grants=[[*grant("fs/reports/**", {"read"}, narrow)[0],
                                                True]]), "widened_constraint")),
        ("widen-extra-argument", "child names an argument its closed parent does not",
         lambda: _vector("", "", child(grants=grant("fs/reports/**", {"read"},
                                                    {**narrow, "mode": Eq("r")})),
                         "widened_constraint")),
        ("short-link", "a link of 64 bytes: a signature and no payload",
         lambda: _vector("", "", _chain_bytes([root, bytes(64)]), "malformed")),
        ("trailing-byte", "a chain followed by one more byte",
         lambda: _vector("", "", encode_chain(three) + b"\x00", "malformed")),
        ("revoked-middle", "the middle link is in the revocation store",
         lambda: _vector("", "", encode_chain(three), "revoked", holder=CAROL,
                         revoked=[three[1].id])),
        ("zero-key-root", "a root issued by the all-zero key (of small order), trusted as "
         "an anchor: no signature can verify under it",
         lambda: _vector("", "", _chain_bytes([forge(ROOT, audience=ALICE,
                                                     issuer=bytes(32))]), "bad_signature",
                         anchors={format_agent_id(bytes(32)): "**"})),
        ("link-scalars-before-grants", "a root whose nonce is 15 bytes and whose grant "
         "has a constraint of unknown kind: a link's own fields are read before its grants",
         lambda: _vector("", "", _chain_bytes([forge(ROOT, raw=wire.encode_value([
             ROOT.public_bytes, ALICE.public_bytes, [["fs/**", ["read"], {"size": [99]}]],
             NBF, EXP, 0, bytes(15)]))]), "malformed")),
        ("link-grants-in-order", "a root whose first grant has a constraint of unknown "
         "kind and whose second is out of shape: grants are read in order",
         lambda: _vector("", "", _chain_bytes([forge(ROOT, audience=ALICE, grants=[
             ["fs/**", ["read"], {"size": [99]}], ["fs/**", ["read"], {"size": [2, 0]}]])]),
             "unknown_field")),
        ("widen-nearest-parent-grant", "the parent holds two grants on fs/reports/**: the "
         "first with read but a narrower size, the second with list only; the child's read "
         "with a wider size is reported against the second, whose actions do not cover it",
         lambda: _vector("", "", _chain_bytes([two, forge(ALICE, parent=two, grants=grant(
             "fs/reports/**", {"read"}, {"size": Range(0, 100)}))]), "widened_action")),
        ("bool-argument", "a request giving true for an integer argument",
         lambda: _vector("", "", encode_chain(three), "not_authorized", holder=CAROL,
                         request=Request("fs/reports/a", "read", {"fmt": "pdf",
                                                                  "size": True}))),
    ]
    return cases


def notice(signer: Identity, path: Sequence[Link | bytes], *, time: int = NOW) -> bytes:
    """A revocation notice over ``path`` signed by ``signer``, whatever its rights."""
    payload = wire.encode_map(1, signer.public_bytes,
                              [x.data if isinstance(x, Link) else x for x in path], time)
    return wire.encode_map(payload, signer.sign(REVOKE_CONTEXT + payload))


def _resigned(data: bytes, change: Callable[[bytes], bytes]) -> bytes:
    """A notice or invocation ``{0: payload, 1: signature}`` with its signature changed."""
    payload, signature = wire.decode_map(data, 2, 1 << 16, "signed")
    return wire.encode_map(payload, change(signature))


def _versioned(path: Sequence[Link]) -> bytes:
    """A notice by ROOT whose path is written as a chain, ``[1, link, ...]``."""
    payload = wire.encode_map(1, ROOT.public_bytes, [1, *(x.data for x in path)], NOW)
    return wire.encode_map(payload, ROOT.sign(REVOKE_CONTEXT + payload))


def _reshaped(invocation: bytes, field: int, value: Any) -> bytes:
    """An invocation with one payload field replaced, its signature kept."""
    payload, signature = wire.decode_map(invocation, 2, 1 << 16, "invocation")
    fields = wire.decode_map(payload, 7, 1 << 16, "payload")
    fields[field] = value
    return wire.encode_map(wire.encode_map(*fields), signature)


def _notices() -> list[dict[str, Any]]:
    three = chain(3)
    foreign = delegate(MALLORY, BOB, [WIDE], not_before=NBF, expires=EXP,
                       nonce=_nonce("foreign"))
    tampered = bytearray(notice(ROOT, three[:2]))
    tampered[-1] ^= 1
    cases = [
        ("notice-by-issuer", "root revokes alice's link to bob, two below it",
         notice(ROOT, three[:2]), "ok"),
        ("notice-by-parent-holder", "alice revokes the link she issued to bob",
         notice(ALICE, three[:2]), "ok"),
        ("notice-by-holder", "bob gives up his own link", notice(BOB, three[:2]), "ok"),
        ("notice-stranger", "mallory revokes bob's link", notice(MALLORY, three[:2]),
         "unauthorized_revoker"),
        ("notice-downstream-holder", "carol, who holds the link below, revokes bob's",
         notice(CAROL, three[:2]), "unauthorized_revoker"),
        ("notice-foreign-root", "a notice about a chain no anchor of ours started",
         notice(MALLORY, [foreign]), "untrusted_root"),
        ("notice-not-a-path", "the path skips bob's link, so carol's appears under alice's",
         notice(ROOT, [three[0], three[2]]), "bad_signature"),
        ("notice-tampered", "one bit of the notice's signature flipped", bytes(tampered),
         "bad_signature"),
        ("notice-short-signature", "a signature of 63 bytes: the form, before any check",
         _resigned(notice(ROOT, three[:2]), lambda sig: sig[:63]), "malformed"),
        ("notice-negative-time", "a time of -1, signed as such",
         notice(ROOT, three[:2], time=-1), "malformed"),
        ("notice-path-with-version", "a path that starts with a chain's version 1",
         _versioned(three[:2]), "malformed"),
    ]
    return [{"id": vid, "description": text, "kind": "notice",
             "anchors": {ROOT.agent_id: "**"}, "notice": data.hex(), "expected": expected}
            for vid, text, data, expected in cases]


def _invocations() -> list[dict[str, Any]]:
    data = encode_chain(chain(3))  # held by carol

    def fixed(label: str) -> Callable[[int], bytes]:
        return lambda n: crypto.blake2b_256(label.encode())[:n]

    def session(label: str, binding: bytes = BINDING) -> bytes:
        return invoke(data, REQUEST, channel_binding=binding, clock=lambda: NOW,
                      random=fixed(label))

    def detached(label: str, signer: Identity = CAROL, verifier: Identity = DAVE,
                 time: int = NOW) -> bytes:
        return invoke(data, REQUEST, holder=signer, verifier=verifier.agent_id,
                      clock=lambda: time, random=fixed(label))

    cases: list[tuple[str, str, str, Identity, list[bytes], list[str]]] = [
        ("invoke-session", "carol invokes in her session, then the same invocation again",
         "session", CAROL, [session("s1"), session("s1"), session("s2")],
         ["ok", "replayed", "ok"]),
        ("invoke-session-stolen", "mallory presents carol's chain in mallory's session",
         "session", MALLORY, [session("s3")], ["holder_mismatch"]),
        ("invoke-other-session", "an invocation bound to another session",
         "session", CAROL, [session("s4", bytes(64))], ["wrong_session"]),
        ("invoke-detached", "carol signs an invocation for dave, which is then replayed",
         "detached", DAVE, [detached("d1"), detached("d1"), detached("d2")],
         ["ok", "replayed", "ok"]),
        ("invoke-detached-wrong-verifier", "an invocation meant for bob, presented to dave",
         "detached", DAVE, [detached("d3", verifier=BOB)], ["wrong_verifier"]),
        ("invoke-detached-stale", "an invocation made 200 s ago (window 120 s, skew 60 s)",
         "detached", DAVE, [detached("d4", time=NOW - 200)], ["stale_invocation"]),
        ("invoke-detached-future", "an invocation dated 181 s ahead",
         "detached", DAVE, [detached("d5", time=NOW + 181)], ["stale_invocation"]),
        ("invoke-detached-not-holder", "mallory signs an invocation of carol's chain",
         "detached", DAVE, [detached("d6", signer=MALLORY)], ["bad_signature"]),
        ("invoke-session-as-detached", "a session invocation presented detached",
         "detached", DAVE, [session("s5")], ["wrong_session"]),
        ("invoke-detached-in-session", "a detached invocation presented in a session, its "
         "binding set to the session's: it still names a verifier and has a signature",
         "session", CAROL, [_reshaped(detached("d7"), 3, BINDING)], ["wrong_session"]),
        ("invoke-session-short-binding", "a binding of 32 bytes: the form, before the "
         "binding is compared", "session", CAROL, [_reshaped(session("s6"), 3, BINDING[:32])],
         ["malformed"]),
        ("invoke-detached-short-signature", "a signature of 63 bytes: the form",
         "detached", DAVE, [_resigned(detached("d8"), lambda sig: sig[:63])], ["malformed"]),
        ("invoke-detached-window-edges", "made window + skew (180 s) before, then after, "
         "the verifier's clock: both bounds are inclusive",
         "detached", DAVE, [detached("d9", time=NOW - 180), detached("d10", time=NOW + 180)],
         ["ok", "ok"]),
    ]
    out = []
    for vid, text, mode, verifier, items, expected in cases:
        vector: dict[str, Any] = {
            "id": vid, "description": text, "kind": "invocation", "mode": mode,
            "anchors": {ROOT.agent_id: "**"}, "now": NOW, "skew": 60,
        }
        if mode == "session":
            vector.update(peer=verifier.agent_id, channel_binding=BINDING.hex())
        else:
            vector.update(verifier=verifier.agent_id, window=120)
        vector.update(invocations=[x.hex() for x in items], expected=expected)
        out.append(vector)
    return out


def build() -> dict[str, Any]:
    """The content of ``capability.json``."""
    vectors = _positive()
    for vid, description, make in _negatives():
        vector = make()
        vector["id"], vector["description"] = vid, description
        vectors.append(vector)
    return {
        "description": "Capability tokens (spec section 10). Kind 'chain' (10.6): "
                       "verify_chain(chain, anchors, now, skew, revoked, holder, request) "
                       "must give `expected`, an error code or ok. Kind 'notice' (10.8): "
                       "verifying the notice against the anchors gives `expected`. Kind "
                       "'invocation' (10.7): one verifier (a session's, for `peer` and "
                       "`channel_binding`, or a detached one named `verifier`, with "
                       "`window`) checks `invocations` in order at clock `now`; each gives "
                       "its entry of `expected`. Keys come from the seeds "
                       "BLAKE2b-256('capability vectors ' || name).",
        "vectors": [*({"id": v["id"], "kind": "chain", **v} for v in vectors), *_notices(),
                    *_invocations()],
    }

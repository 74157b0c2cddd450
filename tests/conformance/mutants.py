"""Mutant implementations: this implementation with one rule broken, for the conformance
runner to kill.

A mutant is a small patch of one rule (skip a check, change a code, swap two checks,
accept one byte too many, take a nested map where a ``bin`` is specified, drop a window's
inclusive end, ...), named with the spec section whose rule it breaks. It is applied to
the imported modules in place (:func:`apply`): the module's source is patched, compiled,
and every function whose code changed takes the new code, so every caller sees it.

- ``python -m tests.conformance.mutants [--json PATH] [--jobs N] [NAME ...]`` runs the
  conformance runner against every mutant (or those named), in parallel up to the CPU
  count, and reports the kill share (killed: the run has at least one FAIL) per spec
  section and overall, listing the survivors with what the differential mode finds
  against each (every difference only an exact code check would see, or an answer of
  another kind).
- ``python -m tests.conformance.mutants driver NAME``: the driver, with mutant NAME.
- ``python -m tests.conformance.mutants witness [NAME ...]``: search the differential
  inputs for one each mutant answers differently (to record as its witness).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import importlib
import json
import os
import random
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
#: The seed the recorded witnesses' inputs are drawn from.
WITNESS_SEED = 1


class MutantError(Exception):
    """A mutant's patch no longer applies, or changes nothing."""


@dataclass(frozen=True, slots=True)
class Mutant:
    """One rule broken: ``edits`` replace text (each found exactly once) in ``module``."""

    name: str
    section: str
    module: str
    edits: tuple[tuple[str, str], ...]
    rule: str
    #: An input the mutant answers differently: ``operation/kind/round`` of the
    #: differential inputs from :data:`WITNESS_SEED`, or ``script:NAME`` (:data:`SCRIPTS`).
    witness: str = ""


def _m(name: str, section: str, module: str, old: str, new: str, rule: str,
       witness: str = "", *more: tuple[str, str]) -> Mutant:
    return Mutant(name, section, f"agentauth.{module}", ((old, new), *more), rule, witness)


_P, _C = "protocol.md §", "conformance.md §"

MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- the handshake
    _m("hs2-reflection-unchecked", _P + "4.5", "handshake",
       "if crypto.equal(re_public, self._e_public):  # 3", "if False:  # 3",
       "HS2 echoing the initiator's ephemeral is not refused"),
    _m("hs1-reflection-unchecked", _P + "4.3", "handshake",
       "if crypto.equal(ie_public, self._e_public):", "if False:",
       "HS1 carrying the responder's next ephemeral is not refused"),
    _m("downgrade-accepted", _P + "4.9", "handshake",
       "if version not in self._policy.versions:  # 9", "if False:  # 9",
       "a version the initiator did not offer is accepted"),
    _m("offer-repeats-accepted", _P + "4.3", "handshake",
       "if offer != sorted(set(offer)):", "if offer != sorted(offer):",
       "an offer naming a version twice is not non_canonical"),
    _m("skew-end-exclusive", _P + "4.11", "handshake",
       "if abs(timestamp - int(now)) > self._policy.max_skew:",
       "if abs(timestamp - int(now)) >= self._policy.max_skew:",
       "a peer exactly max_skew off is refused (the bound is inclusive)"),
    _m("skew-past-unchecked", _P + "4.11", "handshake",
       "if abs(timestamp - int(now)) > self._policy.max_skew:",
       "if timestamp - int(now) > self._policy.max_skew:",
       "a peer clock behind ours is never clock_skew"),
    _m("timeout-a-second-late", _P + "4.11", "handshake",
       "if now - self._started > self._policy.timeout:",
       "if now - self._started > self._policy.timeout + 1:",
       "the handshake times out a second after its timeout"),
    _m("expected-peer-unchecked", _P + "4.5", "handshake",
       "if self._expect is not None and peer != self._expect:", "if False:",
       "a peer other than the expected one is accepted"),
    _m("trust-unchecked", _P + "4.7", "handshake",
       "if not policy.trusts(peer) or (policy.credentials is not None",
       "if (policy.credentials is not None", "an untrusted peer is accepted"),
    _m("trust-before-expected-peer", _P + "4.5", "handshake",
       """        if self._expect is not None and peer != self._expect:
            raise AuthenticationError(
                f"peer is {peer.agent_id}, expected {self._expect.agent_id}",
                code="unexpected_peer")
        policy = self._policy
        if not policy.trusts(peer) or (policy.credentials is not None
                                       and not policy.admits(peer, extensions)):
            raise AuthenticationError(f"peer {peer.agent_id} is not trusted",
                                      code="untrusted_peer")
""", """        policy = self._policy
        if not policy.trusts(peer) or (policy.credentials is not None
                                       and not policy.admits(peer, extensions)):
            raise AuthenticationError(f"peer {peer.agent_id} is not trusted",
                                      code="untrusted_peer")
        if self._expect is not None and peer != self._expect:
            raise AuthenticationError(
                f"peer is {peer.agent_id}, expected {self._expect.agent_id}",
                code="unexpected_peer")
""", "the trust check runs before the expected-peer check (two checks swapped)"),
    _m("failure-not-sticky", _P + "4.13", "handshake",
       "if self._error is not None:\n            raise self._error.again(",
       "if False:\n            raise self._error.again(",
       "a failed engine answers out_of_order instead of repeating its failure",
       "script:sticky"),
    _m("hs2-short-read", _P + "4.5", "handshake",
       "if len(message) < _DH + _TAG + _SIG + 1:  # 2", "if len(message) < _DH + _TAG:  # 2",
       "an HS2 too short for a signature is decrypted instead of malformed"),
    _m("hs3-short-read", _P + "4.7", "handshake",
       "if len(message) < _TAG + _SIG + 1:  # 2", "if len(message) < _TAG:  # 2",
       "an HS3 too short for a signature is decrypted instead of malformed"),
    _m("hs2-version-type-unchecked", _P + "4.5", "handshake",
       "if type(version) is not int:  # 8", "if False:  # 8",
       "an HS2 version that is not an integer is downgrade, not malformed"),
    _m("extension-order-unchecked", _P + "4.5", "handshake",
       "if not ours and list(ext) != sorted(ext):", "if False:",
       "a peer's extension names out of order are accepted"),
    _m("session-keys-swapped", _P + "4.12", "handshake",
       "send, recv = (k1, k2) if self.role is _I else (k2, k1)",
       "send, recv = (k2, k1) if self.role is _I else (k1, k2)",
       "each side sends with the other's key"),
    _m("hs2-timestamp-ahead", _P + "4.4", "handshake",
       "body2 = wire.encode_map(version, self._identity.public_bytes, int(now),",
       "body2 = wire.encode_map(version, self._identity.public_bytes, int(now) + 1,",
       "the responder's HS2 carries its clock plus one second"),
    # ---------------------------------------------------------------- sessions
    _m("replay-window-one-wider", _P + "5.6", "session",
       "if next_ - 1 - counter >= REPLAY_WINDOW:", "if next_ - 1 - counter > REPLAY_WINDOW:",
       "a counter exactly the window's size behind the highest is not stale"),
    _m("unordered-replay-accepted", _P + "5.6", "session",
       'raise ReplayDetected(f"counter {counter} was already accepted", code="replayed")',
       "return", "an unordered session accepts a message twice"),
    _m("ordered-gap-accepted", _P + "5.5", "session",
       "if n != self._recv_n:\n                raise ProtocolViolation",
       "if False:\n                raise ProtocolViolation",
       "an ordered session accepts a message after a gap"),
    _m("ordered-replay-code", _P + "5.5", "session",
       "if n < self._recv_n:\n                audit.emit",
       "if n < self._recv_n - 1:\n                audit.emit",
       "the last message again is out_of_order, not replayed"),
    _m("unknown-type-decrypted", _P + "5.5", "session",
       "if kind > REKEY:", "if kind > REKEY + 1:",
       "a message of type 3 is decrypted (decrypt_failed) instead of malformed"),
    _m("closed-session-opens", _P + "5.7", "session",
       "if self.peer_closed:\n            raise ProtocolViolation",
       "if False:\n            raise ProtocolViolation",
       "a message after the peer's CLOSE is not session_closed"),
    _m("ordered-rekey-no-jump", _P + "5.4", "session",
       "self._recv_n = (self._recv_epoch + 1) << EPOCH_BITS", "self._recv_n += 0",
       "an ordered session does not follow the sender into the next epoch"),
    _m("control-payload-accepted", _P + "5.5", "session",
       "if kind != DATA and payload:", "if False:",
       "a REKEY or CLOSE carrying a payload is accepted", "script:control-payload"),
    _m("exporter-input-order", _P + "5.9", "session",
       "data = _EXPORTER_LABEL + bytes([len(label)]) + label + context",
       "data = _EXPORTER_LABEL + bytes([len(label)]) + context + label",
       "the exporter hashes the context before the label"),
    _m("short-message-oversize", _P + "5.5", "session",
       "        if size > self._max_message:\n            raise DecodeError",
       "        if size >= 0:\n            raise DecodeError",
       "a message shorter than header and tag is oversize, not malformed"),
    # ---------------------------------------------------------------- capabilities
    _m("expired-accepted", _P + "10.6", "capability.chain",
       "if now + skew < link.not_before or now - skew >= link.expires:",
       "if now + skew < link.not_before:", "an expired link is accepted"),
    _m("expiry-end-inclusive", _P + "10.6", "capability.chain",
       "if now + skew < link.not_before or now - skew >= link.expires:",
       "if now + skew < link.not_before or now - skew > link.expires:",
       "a link is still valid at expires + skew (the window's end is exclusive)"),
    _m("not-before-without-skew", _P + "10.6", "capability.chain",
       "if now + skew < link.not_before or now - skew >= link.expires:",
       "if now < link.not_before or now - skew >= link.expires:",
       "not_before is applied without the skew"),
    _m("revocation-unchecked", _P + "10.6", "capability.chain",
       "if revoked is not None:  # exactly False", "if False:  # exactly False",
       "a revoked link is accepted"),
    _m("holder-unchecked", _P + "10.6", "capability.chain",
       "if holder is not None and not crypto.equal(leaf.audience, holder.public_bytes):",
       "if False:", "a chain issued to someone else is accepted from the holder"),
    _m("budget-may-stay", _P + "10.6", "capability.chain",
       "if not link.budget < parent.budget:", "if not link.budget <= parent.budget:",
       "a link's budget may equal its parent's", "script:budget"),
    _m("window-may-widen", _P + "10.6", "capability.chain",
       "if link.not_before < parent.not_before or link.expires > parent.expires:",
       "if link.not_before < parent.not_before:",
       "a link may expire after its parent", "script:window"),
    _m("root-scope-unchecked", _P + "10.6", "capability.chain",
       "if not pattern_within(grant.segments, namespace):", "if False:",
       "a root grant outside its anchor's namespace is accepted"),
    _m("link-signature-unchecked", _P + "10.6", "capability.chain",
       'if not signature_ok(link):\n            raise AuthenticationError("a link\'s',
       'if False:\n            raise AuthenticationError("a link\'s',
       "a link's signature is not verified"),
    _m("request-unchecked", _P + "10.6", "capability.chain",
       "if request is not None:\n        for grant in leaf.grants:",
       "if False:\n        for grant in leaf.grants:", "the request is not checked"),
    _m("chain-version-code", _P + "10.6", "capability.chain",
       'is not {VERSION}", code="unknown_field")', 'is not {VERSION}", code="malformed")',
       "a chain of another version is malformed, not unknown_field"),
    _m("link-nonce-one-byte-long", _P + "10.3", "capability.chain",
       "if type(nonce) is not bytes or len(nonce) != NONCE_LEN:\n        raise DecodeError(",
       "if type(nonce) is not bytes or len(nonce) not in (NONCE_LEN, NONCE_LEN + 1):\n"
       "        raise DecodeError(",
       "a link nonce of 17 bytes is accepted", "script:long-nonce"),
    _m("grants-before-scalars", _P + "10.3", "capability.chain",
       """    if type(nonce) is not bytes or len(nonce) != NONCE_LEN:
        raise DecodeError(f"a link nonce is {NONCE_LEN} bytes", code="malformed")
""", "", "a link's grants are read before its nonce (scalars after grants)",
       "script:grants-first",
       ("""        _grants_seen[raw] = parsed
""", """        _grants_seen[raw] = parsed
    if type(nonce) is not bytes or len(nonce) != NONCE_LEN:
        raise DecodeError(f"a link nonce is {NONCE_LEN} bytes", code="malformed")
""")),
    _m("range-end-exclusive", _P + "10.1", "capability.constraints",
       "return type(arg) is int and self.lo <= arg <= self.hi",
       "return type(arg) is int and self.lo <= arg < self.hi",
       "a range does not allow its upper bound"),
    _m("range-narrowing-ignores-top", _P + "10.2", "capability.constraints",
       'def narrows(self, parent: Range) -> bool:\n        """Nested bounds."""\n'
       "        return parent.lo <= self.lo and self.hi <= parent.hi",
       'def narrows(self, parent: Range) -> bool:\n        """Nested bounds."""\n'
       "        return parent.lo <= self.lo", "a child range may reach above its parent's"),
    _m("unknown-kind-code", _P + "10.3", "capability.constraints",
       'raise DecodeError(f"unknown constraint kind {kind}", code="unknown_field")',
       'raise DecodeError(f"unknown constraint kind {kind}", code="malformed")',
       "an unknown constraint kind is malformed, not unknown_field"),
    _m("constraint-names-unsorted", _P + "10.3", "capability.grants",
       "if len(constraints) > 1 and list(constraints) != sorted(constraints):", "if False:",
       "constraint names out of order are accepted"),
    _m("action-syntax-before-order", _P + "10.3", "capability.grants",
       """    if len(actions) > 1 and actions != sorted(set(actions)):
        raise DecodeError("grant actions are not sorted and unique", code="non_canonical")
    if ANY_ACTION in actions:""",
       """    if ANY_ACTION not in actions and not all(_ACTION.fullmatch(a) for a in actions):
        raise DecodeError("action names are [a-z0-9_.-]{1,32}", code="malformed")
    if len(actions) > 1 and actions != sorted(set(actions)):
        raise DecodeError("grant actions are not sorted and unique", code="non_canonical")
    if ANY_ACTION in actions:""", "action-name syntax is checked before the array's order",
       "script:action-order"),
    _m("closed-world-ignored", _P + "10.1", "capability.grants",
       "return not self.closed or len(args) == len(self.constraints)", "return True",
       "a closed grant allows arguments it does not name"),
    _m("open-world-flag-codes-swapped", _P + "10.3", "capability.grants",
       'code="malformed" if type(value[3]) is not bool else\n'
       '                              "non_canonical")',
       'code="non_canonical" if type(value[3]) is not bool else\n'
       '                              "malformed")',
       "a grant's fourth element: false and a non-boolean swap their codes"),
    _m("binding-one-byte-long", _P + "10.7", "capability.invocation",
       "or len(binding) not in (0, BINDING_LEN) or",
       "or len(binding) not in (0, BINDING_LEN, BINDING_LEN + 1) or",
       "a session invocation's binding may carry one byte more than the channel's", "",
       ("if not crypto.equal(binding, self._binding) or",
        "if not crypto.equal(binding[:BINDING_LEN], self._binding) or")),
    _m("invocation-window-end-exclusive", _P + "10.7", "capability.invocation",
       "if abs(issued - now) > limit:", "if abs(issued - now) >= limit:",
       "a detached invocation exactly window + skew old is stale"),
    _m("invocation-window-one-sided", _P + "10.7", "capability.invocation",
       "if abs(issued - now) > limit:", "if now - issued > limit:",
       "a detached invocation from the future is accepted"),
    _m("detached-replay-unchecked", _P + "10.7", "capability.invocation",
       "if key in self._seen:", "if False:", "a detached invocation is accepted twice"),
    _m("session-replay-unchecked", _P + "10.7", "capability.invocation",
       "if jti in self._seen:", "if False:", "a session invocation is accepted twice"),
    _m("invocation-nested-payload", _P + "10.7", "capability.invocation",
       "    if type(payload) is not bytes or type(signature) is not bytes:\n"
       '        raise DecodeError("an invocation is',
       "    payload = wire.encode_value(payload) if type(payload) is dict else payload\n"
       "    if type(payload) is not bytes or type(signature) is not bytes:\n"
       '        raise DecodeError("an invocation is',
       "an invocation's payload may be a nested map instead of a bin"),
    _m("invocation-signature-unchecked", _P + "10.7", "capability.invocation",
       "if not crypto.ed25519_verify(holder.public_bytes, INVOKE_CONTEXT + payload,",
       "if False and not crypto.ed25519_verify(holder.public_bytes, INVOKE_CONTEXT + payload,",
       "a detached invocation's signature is not verified"),
    _m("wrong-session-code", _P + "10.7", "capability.invocation",
       '"one", code="wrong_session")', '"one", code="wrong_verifier")',
       "another session's invocation is wrong_verifier"),
    _m("notice-path-versioned", _P + "10.8", "capability.revocation",
       "    links = parse_links(items)\n    check_root(links[0])",
       "    links = parse_links(items[1:] if items and items[0] == 1 else items)\n"
       "    check_root(links[0])", "a notice's path may start with a chain's version"),
    _m("notice-time-any-type", _P + "10.8", "capability.revocation",
       "or type(issued) is not int or issued < 0",
       "or type(issued) not in (int, bool) or issued < 0",
       "a notice's time may be a boolean"),
    _m("unauthorized-revoker-accepted", _P + "10.8", "capability.revocation",
       "if not (upstream or surrender):", "if False:",
       "anyone may revoke a link"),
    _m("notice-signature-unchecked", _P + "10.8", "capability.revocation",
       "if not crypto.ed25519_verify(revoker, REVOKE_CONTEXT + notice.payload, "
       "notice.signature):", "if False:", "a notice's own signature is not verified"),
    _m("notice-nested-payload", _P + "10.8", "capability.revocation",
       "    if type(payload) is not bytes or type(signature) is not bytes:\n"
       '        raise DecodeError("a notice is',
       "    payload = wire.encode_value(payload) if type(payload) is dict else payload\n"
       "    if type(payload) is not bytes or type(signature) is not bytes:\n"
       '        raise DecodeError("a notice is',
       "a notice's payload may be a nested map instead of a bin"),
    # ---------------------------------------------------------------- envelopes
    _m("recipient-unchecked", _P + "12.2", "envelope",
       "    if not crypto.equal(recipient, me):\n        raise AuthenticationError",
       "    if False:\n        raise AuthenticationError",
       "a signed envelope for another recipient is accepted"),
    _m("signature-length-unchecked", _P + "12.2", "envelope",
       "if len(signature) != crypto.SIGNATURE_LEN:", "if False:",
       "a signature of another length is bad_signature, not malformed"),
    _m("recipient-before-signature-length", _P + "12.2", "envelope",
       "    if len(signature) != crypto.SIGNATURE_LEN:"
       """  # the form (spec 12.2 step 1), like the rest
        raise DecodeError("a signature is 64 bytes", code="malformed")
    if not crypto.equal(recipient, me):
        raise AuthenticationError("the envelope is addressed to another agent",
                                  code="wrong_recipient")
""", """    if not crypto.equal(recipient, me):
        raise AuthenticationError("the envelope is addressed to another agent",
                                  code="wrong_recipient")
    if len(signature) != crypto.SIGNATURE_LEN:
        raise DecodeError("a signature is 64 bytes", code="malformed")
""", "the recipient is checked before the signature's length, a part of the form "
       "(two checks swapped)"),
    _m("stale-end-inclusive", _P + "12.2", "envelope",
       "if envelope.time < now - window - skew:", "if envelope.time <= now - window - skew:",
       "an envelope exactly window + skew old is stale"),
    _m("future-end-exclusive", _P + "12.2", "envelope",
       "if envelope.time > now + skew:", "if envelope.time >= now + skew:",
       "an envelope exactly skew ahead is clock_skew"),
    _m("envelope-replay-unchecked", _P + "12.2", "envelope",
       "    if not new:\n        _release_reply", "    if False:\n        _release_reply",
       "an envelope is accepted twice"),
    _m("sealed-inner-kind-code", _P + "12.1", "envelope",
       'raise DecodeError("a sealed envelope holds a signed one", code="malformed")',
       'raise DecodeError("a sealed envelope holds a signed one", code="unknown_field")',
       "a sealed box holding a sealed envelope is unknown_field, not malformed"),
    _m("envelope-nested-body", _P + "12.1", "envelope",
       "    if type(first) is not bytes or type(second) is not bytes:",
       "    first = wire.encode_value(first) if type(first) is dict else first\n"
       "    if type(first) is not bytes or type(second) is not bytes:",
       "a signed envelope's body may be a nested map instead of a bin"),
    _m("reply-unbound", _P + "12.2", "envelope",
       "    if not envelope.reply_to:\n        return None",
       "    if True:\n        return None", "a reply needs no awaited request"),
    _m("sender-trust-unchecked", _P + "12.2", "envelope",
       "if trust is not None and not (yield", "if trust is not None and False and not (yield",
       "an untrusted sender's envelope is accepted"),
    # ---------------------------------------------------------------- requests
    _m("frame-one-byte-over", _P + "15.3", "agent.frames",
       "    if len(data) > limit:\n        raise DecodeError(f\"a frame of",
       "    if len(data) > limit + 1:\n        raise DecodeError(f\"a frame of",
       "a frame one byte over the limit is accepted", "",
       ('values = wire.decode_flat_map(data, fields, limit, "frame")',
        'values = wire.decode_flat_map(data, fields, limit + 1, "frame")')),
    _m("request-args-unsorted", _P + "15.2", "agent.frames",
       "        if list(args) != sorted(args):", "        if False:",
       "a request's argument names out of order are accepted", "script:args-unsorted"),
    _m("in-flight-id-reused", _P + "15.3", "agent.frames",
       "if frame.id in self.in_flight:\n            raise ProtocolViolation",
       "if False:\n            raise ProtocolViolation",
       "a request id already in flight is accepted again", "script:in-flight"),
    _m("in-flight-limit-plus-one", _P + "15.3", "agent.frames",
       "if len(self.in_flight) >= self._max_in_flight:",
       "if len(self.in_flight) > self._max_in_flight:",
       "one request more than the limit may be in flight", "script:in-flight-limit"),
    _m("no-handler-code", _P + "15.4", "agent.frames",
       '{request.resource!r}", code="no_handler")',
       '{request.resource!r}", code="not_authorized")',
       "an action no handler serves is not_authorized, not no_handler", "script:no-handler"),
    _m("frame-kind-code", _P + "15.2", "agent.frames",
       'raise DecodeError(f"no frame kind {kind} of {fields} fields", code="unknown_field")',
       'raise DecodeError(f"no frame kind {kind} of {fields} fields", code="malformed")',
       "an unknown frame kind is malformed, not unknown_field", "script:frame-kind"),
    _m("cancel-of-unknown-id", _P + "15.4", "agent.frames",
       "return frame.id if frame.id in self.in_flight else None", "return frame.id",
       "a CANCEL of a request not in flight is reported as cancelling it", "script:cancel"),
    # ---------------------------------------------------------------- the driver interface
    _m("unknown-op-refused", _C + "3", "conformance.driver.operations",
       '                return encode_line({"id": request_id,\n'
       '                                    "unimplemented": f"op {op[:40]!r} is not '
       'implemented"})',
       '                raise InvalidArgument(f"op {op[:40]!r} is not implemented")',
       "an unknown op is refused instead of unimplemented", "script:unknown-op"),
    _m("unknown-handle-code", _C + "6", "conformance.driver.operations",
       'raise InvalidArgument(f"no {what} with handle {handle[:40]!r}")',
       'raise InvalidState(f"no {what} with handle {handle[:40]!r}")',
       "an unknown handle is invalid_state, not invalid_argument", "script:unknown-handle"),
    _m("start-on-responder", _C + "6", "conformance.driver.operations",
       'raise InvalidState("a responder has no start: it reads HS1")',
       'raise InvalidArgument("a responder has no start: it reads HS1")',
       "start on a responder is refused as a handle of another kind (invalid_argument), "
       "not invalid_state",
       "script:start-responder"),
    _m("hello-any-version", _C + "4", "conformance.driver.operations",
       "if INTERFACE_VERSION not in p.interface:", "if False:",
       "hello accepts a list without the driver's interface version", "script:hello"),
    _m("negative-clock-accepted", _C + "5", "conformance.driver.operations",
       "if not (math.isfinite(p.now) and p.now >= 0):", "if not math.isfinite(p.now):",
       "set_clock accepts a negative time", "script:negative-clock"),
    _m("clock-rounded-to-nearest", _C + "7", "conformance.driver.operations",
       "now=math.floor(self._clock)", "now=round(self._clock)",
       "verify_chain rounds the clock to the nearest second, not down"),
    _m("unknown-identity-code", _C + "5", "conformance.driver.operations",
       'raise InvalidArgument("no identity with that agent id: create_identity first")',
       'raise InvalidState("no identity with that agent id: create_identity first")',
       "an identity never created is invalid_state, not invalid_argument",
       "script:unknown-identity"),
    # ---------------------------------------------------------------- encoding
    _m("canonical-unchecked", _P + "3.2", "wire",
       "    _check_canonical(obj, data, what)  # e.g. nested deeper",
       "    pass  # e.g. nested deeper", "arrays (links, chains, grants) need not be canonical"),
    _m("field-order-code", _P + "3.2", "wire",
       'raise DecodeError(f"{what} fields are out of order", code="non_canonical")',
       'raise DecodeError(f"{what} fields are out of order", code="malformed")',
       "a map's fields out of order are malformed, not non_canonical"),
)

#: The first differential input (seed :data:`WITNESS_SEED`) each mutant answers
#: differently, as ``python -m tests.conformance.mutants witness`` finds it; the others
#: name a script of their own.
WITNESSES = {
    "hs2-reflection-unchecked": "receive/mutated/37",
    "hs1-reflection-unchecked": "receive/valid/18",
    "downgrade-accepted": "receive/valid/8",
    "offer-repeats-accepted": "receive/valid/52",
    "skew-end-exclusive": "receive/valid/4",
    "skew-past-unchecked": "receive/valid/2",
    "timeout-a-second-late": "receive/reencoded/5",
    "expected-peer-unchecked": "receive/valid/10",
    "trust-unchecked": "receive/valid/0",
    "trust-before-expected-peer": "receive/valid/68",
    "hs2-short-read": "receive/truncated/9",
    "hs3-short-read": "receive/mutated/1",
    "hs2-version-type-unchecked": "receive/valid/70",
    "extension-order-unchecked": "receive/valid/16",
    "session-keys-swapped": "open/valid/0",
    "hs2-timestamp-ahead": "open/valid/0",
    "replay-window-one-wider": "open/valid/0",
    "unordered-replay-accepted": "open/valid/0",
    "ordered-gap-accepted": "open/mutated/7",
    "ordered-replay-code": "open/valid/6",
    "unknown-type-decrypted": "open/mutated/7",
    "closed-session-opens": "open/valid/2",
    "ordered-rekey-no-jump": "open/valid/36",
    "exporter-input-order": "open/valid/0",
    "short-message-oversize": "open/truncated/3",
    "expired-accepted": "verify_chain/mutated/1",
    "expiry-end-inclusive": "verify_chain/mutated/1",
    "not-before-without-skew": "verify_chain/valid/232",
    "revocation-unchecked": "verify_chain/valid/20",
    "holder-unchecked": "verify_chain/valid/0",
    "root-scope-unchecked": "verify_chain/valid/6",
    "link-signature-unchecked": "verify_chain/mutated/55",
    "request-unchecked": "check_invocation/valid/8",
    "chain-version-code": "verify_chain/valid/28",
    "range-end-exclusive": "constraint_allows/valid/76",
    "range-narrowing-ignores-top": "grant_within/valid/44",
    "unknown-kind-code": "grant_allows/valid/64",
    "constraint-names-unsorted": "grant_allows/reencoded/23",
    "closed-world-ignored": "grant_allows/valid/26",
    "open-world-flag-codes-swapped": "grant_allows/valid/4",
    "binding-one-byte-long": "check_invocation/valid/2",
    "invocation-window-end-exclusive": "check_invocation/valid/24",
    "invocation-window-one-sided": "check_invocation/valid/26",
    "detached-replay-unchecked": "check_invocation/valid/22",
    "session-replay-unchecked": "check_invocation/valid/10",
    "invocation-nested-payload": "check_invocation/valid/12",
    "invocation-signature-unchecked": "check_invocation/valid/18",
    "wrong-session-code": "check_invocation/valid/0",
    "notice-path-versioned": "verify_notice/valid/6",
    "notice-time-any-type": "verify_notice/valid/22",
    "unauthorized-revoker-accepted": "verify_notice/valid/0",
    "notice-signature-unchecked": "verify_notice/valid/4",
    "notice-nested-payload": "verify_notice/valid/10",
    "recipient-unchecked": "open_envelope/valid/40",
    "signature-length-unchecked": "open_envelope/valid/26",
    "recipient-before-signature-length": "open_envelope/valid/30",
    "stale-end-inclusive": "open_envelope/valid/4",
    "future-end-exclusive": "open_envelope/valid/8",
    "envelope-replay-unchecked": "open_envelope/valid/18",
    "sealed-inner-kind-code": "open_envelope/valid/24",
    "envelope-nested-body": "open_envelope/valid/22",
    "reply-unbound": "open_envelope/valid/14",
    "sender-trust-unchecked": "open_envelope/valid/8",
    "frame-one-byte-over": "frame_decode/valid/10",
    "clock-rounded-to-nearest": "verify_chain/valid/64",
    "canonical-unchecked": "verify_chain/reencoded/5",
    "field-order-code": "check_invocation/reencoded/5",
}
MUTANTS = tuple(dataclasses.replace(m, witness=WITNESSES.get(m.name, m.witness))
                for m in MUTANTS)
BY_NAME = {m.name: m for m in MUTANTS}


# ------------------------------------------------------------------ applying a mutant

_PRIMITIVES = (int, float, str, bytes, bool)
_MISSING = object()


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    """Whether two code objects do the same (line numbers aside)."""
    if a.co_code != b.co_code or a.co_names != b.co_names or len(a.co_consts) != len(
            b.co_consts):
        return False
    return all(_same_code(x, y) if isinstance(x, types.CodeType) and isinstance(
        y, types.CodeType) else type(x) is type(y) and x == y
        for x, y in zip(a.co_consts, b.co_consts, strict=True))


def _swap(old: types.FunctionType, new: types.FunctionType, path: str,
          undo: list[Callable[[], None]]) -> int:
    if new.__code__.co_filename != path or _same_code(old.__code__, new.__code__):
        return 0  # generated code (a dataclass's __init__), or unchanged
    if old.__code__.co_freevars != new.__code__.co_freevars:
        raise MutantError(f"{old.__qualname__}: the patch changes its closure")
    saved = old.__code__, old.__defaults__, old.__kwdefaults__

    def restore() -> None:
        old.__code__, old.__defaults__, old.__kwdefaults__ = saved

    old.__code__, old.__defaults__ = new.__code__, new.__defaults__
    old.__kwdefaults__ = new.__kwdefaults__
    undo.append(restore)
    return 1


def _set(owner: Any, name: str, value: Any, undo: list[Callable[[], None]]) -> None:
    saved = getattr(owner, name)
    setattr(owner, name, value)
    undo.append(lambda: setattr(owner, name, saved))


def _graft(owner: Any, name: str, old: Any, new: Any, path: str,
           undo: list[Callable[[], None]]) -> int:
    """Give ``old`` (``owner.name``) what changed in ``new``; return how many changed."""
    if new is old:  # imported from elsewhere
        return 0
    for kind in (staticmethod, classmethod):
        if isinstance(old, kind) and isinstance(new, kind):
            old, new = old.__func__, new.__func__
    if isinstance(old, property) and isinstance(new, property):
        return sum(_graft(owner, name, getattr(old, f), getattr(new, f), path, undo)
                   for f in ("fget", "fset") if getattr(old, f) is not None)
    if isinstance(old, types.FunctionType) and isinstance(new, types.FunctionType):
        return _swap(old, new, path, undo)
    wrapped = getattr(old, "__wrapped__", None), getattr(new, "__wrapped__", None)
    if all(isinstance(w, types.FunctionType) for w in wrapped):
        changed = _graft(owner, name, wrapped[0], wrapped[1], path, undo)
        if changed and hasattr(old, "cache_clear"):
            old.cache_clear()
        return changed
    if isinstance(old, type) and isinstance(new, type) and new.__module__ == old.__module__:
        return sum(_graft(old, attr, vars(old).get(attr, _MISSING), value, path, undo)
                   for attr, value in vars(new).items() if not attr.startswith("__"))
    if type(new) in _PRIMITIVES and type(old) in _PRIMITIVES and (
            type(old) is not type(new) or old != new):
        _set(owner, name, new, undo)
        return 1
    return 0


def apply(mutant: Mutant) -> Callable[[], None]:
    """Apply ``mutant`` to the imported modules; return what undoes it."""
    module = importlib.import_module(mutant.module)
    path = str(module.__file__)
    source = Path(path).read_text(encoding="utf-8")
    for old, new in mutant.edits:
        found = source.count(old)
        if found != 1:
            raise MutantError(f"{mutant.name}: the text to patch occurs {found} times in "
                              f"{mutant.module}: {old[:60]!r}")
        source = source.replace(old, new)
    namespace: dict[str, Any] = {"__name__": module.__name__, "__file__": path,
                                 "__package__": module.__package__}
    exec(compile(source, path, "exec", dont_inherit=True), namespace)
    undo: list[Callable[[], None]] = []
    changed = sum(_graft(module, name, module.__dict__.get(name, _MISSING), value, path, undo)
                  for name, value in namespace.items() if not name.startswith("__"))
    if not changed:
        raise MutantError(f"{mutant.name}: the patch changes no code of {mutant.module}")

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore


# ------------------------------------------------------------------ witnesses


class InProcess:
    """This implementation's driver in this process: requests as the interface has them,
    answered by :meth:`Driver.handle_line`."""

    def __init__(self) -> None:
        from agentauth.conformance.driver import Driver  # noqa: PLC0415

        self.driver = Driver()
        self.count = 0

    def request(self, op: str, **params: Any) -> Any:
        """One request; its parsed reply."""
        from agentauth.conformance.interface import encode_line, parse_reply  # noqa: PLC0415

        self.count += 1
        line = encode_line({"id": self.count, "op": op, **params})
        return parse_reply(self.driver.handle_line(line[:-1]), self.count)


def _clear() -> None:
    from agentauth.capability.chain import clear_caches  # noqa: PLC0415

    clear_caches()


def _scripts() -> dict[str, Callable[[], Any]]:
    """Inputs the differential rounds do not make, for the mutants that need them."""
    from agentauth import wire  # noqa: PLC0415
    from agentauth.agent.frames import encode_cancel  # noqa: PLC0415
    from agentauth.capability.chain import LINK_CONTEXT, decode_chain  # noqa: PLC0415
    from agentauth.conformance.runner.check import T0  # noqa: PLC0415
    from agentauth.conformance.runner.inputs import HANDLE, Script, _handshake  # noqa: PLC0415
    from agentauth.handshake import HandshakePolicy, Initiator, Responder  # noqa: PLC0415
    from agentauth.identity import Identity  # noqa: PLC0415

    def script(*steps: tuple[str, dict[str, Any]]) -> Script:
        return Script(list(steps), [], b"")

    def chain(budget: int, expires: int, nonce: bytes, actions: list[str]) -> Script:
        """A chain of a root and one hand-made child link (not made by delegate, which
        would refuse it)."""
        root, alice, bob = (Identity.from_seed(bytes([i]) * 32) for i in (1, 2, 3))
        grant = ["fs/**", ["read"], {}]
        payload = wire.encode_value([root.public_bytes, alice.public_bytes, [grant],
                                     T0 - 60, T0 + 600, 1, bytes(16)])
        first = payload + root.sign(LINK_CONTEXT + bytes(32) + payload)
        parent = decode_chain(wire.encode_value([1, first]))[0]
        child = wire.encode_value([bob.public_bytes, [["fs/**", actions, {}]], T0 - 60,
                                   expires, budget, nonce])
        second = child + alice.sign(LINK_CONTEXT + parent.id + child)
        return script(("set_clock", {"now": float(T0)}), ("verify_chain", {
            "chain": wire.encode_value([1, first, second]).hex(),
            "anchors": {root.agent_id: "**"}, "holder": bob.agent_id}))

    def session(ordered: bool = True) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
        driver, peer = Identity.from_seed(bytes(32)), Identity.from_seed(b"\x01" * 32)
        ini = Initiator(peer, HandshakePolicy(trust=[driver.agent_id]), ordered=ordered,
                        clock=lambda: T0, random=lambda n: b"\x02" * n)
        res = Responder(driver, HandshakePolicy(trust=[peer.agent_id]), ordered=ordered,
                        clock=lambda: T0, random=lambda n: b"\x03" * n)
        hs1 = ini.start()
        hs3 = ini.receive_message(res.receive_message(hs1) or b"")
        assert hs3 is not None and ini.result is not None
        steps = _handshake("responder", bytes(32), b"\x03" * 32, [peer.agent_id], None,
                           ordered)
        steps += [("receive", {"handle": HANDLE, "message": hs1.hex()}),
                  ("receive", {"handle": HANDLE, "message": hs3.hex()})]
        return steps, ini.result.session

    def control_payload() -> Script:
        steps, ours = session()
        forged = ours.forge_for_vectors(2, b"payload")
        return Script([*steps, ("open", {"handle": HANDLE, "message": forged.hex()})], [], b"")

    def sticky() -> Script:
        steps, _ = session()
        return Script([*steps[:3], ("receive", {"handle": HANDLE, "message": "00"}),
                       steps[3]], [], b"")

    def start_responder() -> Script:
        steps, _ = session()
        return Script([*steps[:3], ("start", {"handle": HANDLE})], [], b"")

    def server(*frames: bytes, in_flight: int = 128) -> Script:
        """A request server for a peer holding a chain, then ``frames``."""
        from agentauth.agent.frames import encode_present  # noqa: PLC0415
        from agentauth.capability import Grant, delegate, encode_chain  # noqa: PLC0415

        root, peer = Identity.from_seed(b"\x04" * 32), Identity.from_seed(b"\x05" * 32)
        chain = encode_chain([delegate(root, peer, [Grant("jobs/**", {"run", "stop"})],
                                       not_before=T0 - 60, expires=T0 + 3600,
                                       nonce=bytes(16))])
        steps: list[tuple[str, dict[str, Any]]] = [
            ("set_clock", {"now": float(T0)}),
            ("request_server", {"peer": peer.agent_id, "anchors": {root.agent_id: "**"},
                                "routes": [{"pattern": "jobs/**", "action": "run"}],
                                "max_in_flight": in_flight})]
        for frame in (encode_present(1, chain), *frames):
            steps.append(("request_receive", {"handle": HANDLE, "frame": frame.hex()}))
        return Script(steps, [], b"")

    def ask(request_id: int, action: str = "run") -> bytes:
        from agentauth.agent.frames import encode_request  # noqa: PLC0415

        return encode_request(request_id, "jobs/nightly", action, {}, b"", 1)

    seed = "11" * 32
    return {
        "action-order": lambda: script(("grant_allows", {
            "grant": wire.encode_value(["fs/**", ["read", "A!"], {}]).hex(),
            "request": {"resource": "fs/a", "action": "read"}})),
        "in-flight": lambda: server(ask(7), ask(7)),
        "in-flight-limit": lambda: server(ask(7), ask(8), in_flight=1),
        "no-handler": lambda: server(ask(7, "stop")),
        "args-unsorted": lambda: script(("frame_decode", {
            "frame": wire.encode_map(2, 1, "jobs/x", "run", {"b": 1, "a": 2}, b"", 0).hex(),
            "limit": 100})),
        "frame-kind": lambda: script(("frame_decode", {
            "frame": wire.encode_map(9, 1).hex(), "limit": 100})),
        "cancel": lambda: server(encode_cancel(5)),
        "sticky": sticky,
        "control-payload": control_payload,
        "budget": lambda: chain(1, T0 + 600, bytes(16), ["read"]),
        "window": lambda: chain(0, T0 + 601, bytes(16), ["read"]),
        "long-nonce": lambda: chain(0, T0 + 600, bytes(17), ["read"]),
        "grants-first": lambda: chain(0, T0 + 600, bytes(15), ["read", "list"]),
        "unknown-op": lambda: script(("frobnicate", {})),
        "unknown-handle": lambda: script(("seal", {"handle": "nothing", "payload": ""})),
        "start-responder": start_responder,
        "hello": lambda: script(("hello", {"interface": [99]})),
        "negative-clock": lambda: script(("set_clock", {"now": -1})),
        "unknown-identity": lambda: script(("handshake", {
            "role": "initiator", "identity": Identity.from_seed(bytes.fromhex(seed)).agent_id,
            "trust": "any"})),
    }


def _witness_script(witness: str) -> Any:
    from agentauth.conformance.runner.inputs import make_input  # noqa: PLC0415

    if witness.startswith("script:"):
        return _scripts()[witness.removeprefix("script:")]()
    operation, _, index = witness.split("/")
    return make_input(operation, int(index), random.Random(
        f"{WITNESS_SEED}/{operation}/{index}"))


def difference(mutant: Mutant, witness: str | None = None) -> str | None:
    """How ``mutant`` answers its witness input (or ``witness``) differently from this
    implementation, or None if it answers the same."""
    from agentauth.conformance.runner.differential import play  # noqa: PLC0415

    script = _witness_script(witness or mutant.witness)
    _clear()
    real = play(script, InProcess().request)
    undo = apply(mutant)
    try:
        _clear()
        changed = play(script, InProcess().request)
    finally:
        undo()
        _clear()
    step = next((i for i, (a, b) in enumerate(zip(real, changed, strict=False)) if a != b),
                None if len(real) == len(changed) else min(len(real), len(changed)))
    if step is None:
        return None
    return (f"step {step} ({script.steps[step][0]}): {real[step] if step < len(real) else None}"
            f" | {changed[step] if step < len(changed) else None}")


_REAL: dict[str, tuple[Any, list[Any]]] = {}


def find_witness(mutant: Mutant, rounds: int = 1000) -> str | None:
    """The first differential input (from :data:`WITNESS_SEED`) ``mutant`` answers
    differently, as ``operation/kind/round``."""
    from agentauth.conformance.runner.differential import play  # noqa: PLC0415
    from agentauth.conformance.runner.inputs import OPERATIONS, kind_of  # noqa: PLC0415

    if mutant.witness.startswith("script:"):
        return mutant.witness if difference(mutant) else None
    names = [f"{operation}/{kind_of(index)}/{index}"
             for index in range(rounds) for operation in OPERATIONS]
    for name in names:
        if name not in _REAL:
            _clear()
            script = _witness_script(name)
            _REAL[name] = script, play(script, InProcess().request)
    undo = apply(mutant)
    try:
        for name in names:
            script, real = _REAL[name]
            _clear()
            if play(script, InProcess().request) != real:
                return name
    finally:
        undo()
        _clear()
    return None


# ------------------------------------------------------------------ the kill report


def driver_command(name: str) -> str:
    """The command that starts the driver with mutant ``name``."""
    return f"{sys.executable} {Path(__file__).resolve()} driver {name}"


def run_one(mutant: Mutant, *, seed: int, mutations: int, rounds: int,
            differential: int = 40) -> dict[str, Any]:
    """The conformance runner against ``mutant``; for a survivor, the differential mode
    against this implementation too."""
    real = f"{sys.executable} -m agentauth conformance driver"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.json"
        done = subprocess.run(
            [sys.executable, "-m", "agentauth", "conformance", "run", "--driver",
             driver_command(mutant.name), "--seed", str(seed), "--mutations", str(mutations),
             "--differential", str(differential), "--allow-skip", "--json", str(path)],
            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900, check=False)
        if not path.exists():
            raise MutantError(f"{mutant.name}: the runner wrote no report: {done.stderr[-500:]}")
        report = json.loads(path.read_text())
        failed = [c["id"] for c in report["checks"] if c["status"] == "FAIL"]
        out: dict[str, Any] = {"name": mutant.name, "section": mutant.section,
                               "rule": mutant.rule, "killed": bool(failed),
                               "failed": failed[:5], "failures": len(failed)}
        if failed:
            return out
        diff = Path(folder) / "d.json"
        subprocess.run([sys.executable, "-m", "agentauth", "conformance", "diff", "--driver",
                        real, "--driver", driver_command(mutant.name), "--seed", str(seed),
                        "--rounds", str(rounds), "--json", str(diff)],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900,
                       check=False)
        found = json.loads(diff.read_text())["differences"] if diff.exists() else []
        out["differences"] = len(found)
        out["codes_only"] = bool(found) and all(
            [a["kind"] for a in d["answers"]] == ["error", "error"] for d in found)
        out["examples"] = [f"{d['operation']}/{d['kind']}/{d['round']}: "
                           f"{d['answers'][0]['value']} | {d['answers'][1]['value']}"
                           for d in found[:3]]
        return out


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Kill shares per section and overall, and the survivors."""
    sections: dict[str, dict[str, int]] = {}
    for r in results:
        row = sections.setdefault(r["section"], {"mutants": 0, "killed": 0})
        row["mutants"] += 1
        row["killed"] += r["killed"]
    killed = sum(r["killed"] for r in results)
    return {"mutants": len(results), "killed": killed,
            "share": round(killed / len(results), 4) if results else 0.0,
            "sections": dict(sorted(sections.items(), key=lambda kv: _order(kv[0]))),
            "survivors": [r for r in results if not r["killed"]], "results": results}


def _order(section: str) -> tuple[str, tuple[int, ...]]:
    doc, _, number = section.partition(" §")
    return doc, tuple(int(p) for p in number.split(".") if p.isdigit())


def summary(content: dict[str, Any]) -> str:
    """The report in words."""
    lines = [f"{'section':<22} {'killed':>6} {'of':>4} {'share':>7}"]
    for section, row in content["sections"].items():
        lines.append(f"{section:<22} {row['killed']:>6} {row['mutants']:>4} "
                     f"{row['killed'] / row['mutants']:>7.0%}")
    lines.append(f"{'overall':<22} {content['killed']:>6} {content['mutants']:>4} "
                 f"{content['share']:>7.1%}")
    for s in content["survivors"]:
        how = ("no difference found" if not s.get("differences") else
               f"{s['differences']} differences, "
               f"{'codes only' if s['codes_only'] else 'not codes only'}: "
               f"{'; '.join(s['examples'])}")
        lines.append(f"SURVIVED {s['section']} / {s['name']}: {s['rule']} ({how})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module's docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["driver"]:
        from agentauth.conformance.driver import operations  # noqa: PLC0415

        apply(BY_NAME[args[1]])
        return operations.main()
    if args[:1] == ["witness"]:
        for mutant in [BY_NAME[n] for n in args[1:]] or list(MUTANTS):
            print(f"{mutant.name}: {find_witness(mutant)}", flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these mutants")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the report as JSON")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--mutations", type=int, default=120)
    parser.add_argument("--differential", type=int, default=40,
                        help="the runner's differential rounds")
    parser.add_argument("--rounds", type=int, default=80, help="differential rounds for a "
                                                               "survivor")
    options = parser.parse_args(args)
    chosen = [BY_NAME[n] for n in options.names] or list(MUTANTS)
    with concurrent.futures.ThreadPoolExecutor(max(1, options.jobs)) as pool:
        results = list(pool.map(lambda m: run_one(m, seed=options.seed,
                                                  mutations=options.mutations,
                                                  rounds=options.rounds,
                                                  differential=options.differential), chosen))
    content = report(results)
    sys.stdout.write(summary(content))
    if options.json is not None:
        options.json.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
    return 0 if content["share"] >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())

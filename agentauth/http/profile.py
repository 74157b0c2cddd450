"""The agentauth profile of RFC 9421 (spec 13), sans-I/O: sign and check requests and the
responses that answer them. No clock, random source or store of its own: all are passed in.

* :class:`Signer` signs requests (``tag="agentauth"``, or ``"web-bot-auth"`` in interop
  mode) and responses (``tag="agentauth-response"``) with an agent's identity.
* :class:`Verifier` checks a request: form, coverage, key, signature, clock, digest. It
  returns a :class:`VerifiedRequest` whose ``replay_key`` the caller puts through a replay
  store last, after every other check (spec 11, rule 2).
* :func:`check_response` checks that a response answers *this* request, from the server
  key the client expected.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import http_sf

from .. import crypto
from ..envelope import DEFAULT_SKEW, DEFAULT_WINDOW  # the clock rules of spec 12.2
from ..errors import (
    AuthenticationError,
    DecodeError,
    InvalidAgentId,
    InvalidArgument,
    ReplayDetected,
)
from ..identity import Identity, PeerKey, peer_key
from ..verdict import ask, check_callback, check_window, moment
from .components import (
    MAX_COMPONENTS,
    Component,
    HTTPMessage,
    authority_value,
    check_content_digest,
    component_id,
    content_digest,
    parse_dictionary,
    parse_signature_input,
    ser_member,
    shown,
    signature_base,
    signature_params,
)

__all__ = [
    "CAPABILITY_HEADER",
    "DEFAULT_LIFETIME",
    "DEFAULT_SKEW",
    "DEFAULT_WINDOW",
    "LABEL",
    "PROTOCOL_HEADERS",
    "REQUEST_COMPONENTS",
    "RESPONSE_TAG",
    "TAG",
    "WEB_BOT_AUTH_TAG",
    "ResponseContent",
    "SignedHeaders",
    "Signer",
    "VerifiedRequest",
    "Verifier",
    "accept_signature",
    "check_response",
    "check_response_head",
    "invocation_binding",
    "is_stream",
]

LABEL: Final = "agentauth"
TAG: Final = "agentauth"
RESPONSE_TAG: Final = "agentauth-response"
WEB_BOT_AUTH_TAG: Final = "web-bot-auth"
CAPABILITY_HEADER: Final = "agentauth-capability"
SIGNATURE_AGENT: Final = "signature-agent"
#: Covered in every agentauth request signature.
REQUEST_COMPONENTS: Final = ("@method", "@authority", "@path", "@query")
#: Covered whenever present in the message (spec 13.2).
PROTOCOL_HEADERS: Final = ("content-type", "mcp-protocol-version", "mcp-method", "mcp-name",
                           "mcp-session-id", "a2a-version", "a2a-extensions",
                           CAPABILITY_HEADER, SIGNATURE_AGENT)
DEFAULT_LIFETIME: Final = 60  # expires - created of the signatures agentauth makes
MAX_LIFETIME: Final = 3600   # the longest expires - created a verifier accepts
NONCE_LEN: Final = 16
_PARAMS: Final = ("created", "expires", "nonce", "keyid", "alg", "tag")
_MAX_NONCE: Final = 128
_MAX_KEYID: Final = 128
_BINDING_CONTEXT: Final = b"agentauth v1 http invocation\x00"
_REPLAY_PREFIX: Final = b"http:"
_RESPONSE_REQ: Final = tuple((name, {"req": True}) for name in REQUEST_COMPONENTS)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def invocation_binding(params_value: str) -> bytes:
    """The 64-byte value a capability invocation on a request binds: a hash of the
    request signature's ``@signature-params`` (its components, created, expires, nonce and
    key). Known before signing, unique to one signature (spec 13.6)."""
    return crypto.blake2b(_BINDING_CONTEXT + params_value.encode("ascii"))


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """What signing adds to a message: header lines, and the signature's parameters."""

    headers: tuple[tuple[str, str], ...]
    nonce: str
    params_value: str
    signature: bytes

    def __repr__(self) -> str:
        return f"SignedHeaders(nonce={self.nonce!r}, headers={len(self.headers)})"


class Signer:
    """Signs requests and responses for one agent.

    ``keyid`` is ``"did"`` (the agent id) or ``"thumbprint"`` (its RFC 7638 JWK
    thumbprint, as Web Bot Auth names keys). ``signature_agent``, a URL, turns on Web
    Bot Auth interop: requests carry ``Signature-Agent`` and ``tag="web-bot-auth"``.
    """

    __slots__ = ("_clock", "_digests", "_identity", "_keyid", "_lifetime", "_random",
                 "_signature_agent")

    def __init__(self, identity: Identity, *, keyid: str = "did",
                 lifetime: int = DEFAULT_LIFETIME, signature_agent: str | None = None,
                 digests: Iterable[str] = ("sha-256",),
                 clock: Callable[[], float] = time.time,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        if not isinstance(identity, Identity) or keyid not in ("did", "thumbprint"):
            raise InvalidArgument("identity is an Identity, keyid 'did' or 'thumbprint'")
        if type(lifetime) is not int or not 1 <= lifetime <= MAX_LIFETIME:
            raise InvalidArgument(f"lifetime is 1 to {MAX_LIFETIME} seconds")
        if signature_agent is not None and (type(signature_agent) is not str
                                            or not signature_agent.startswith("https://")):
            raise InvalidArgument("signature_agent is an https URL")
        self._identity = identity
        peer = PeerKey(identity.public_bytes)
        web = signature_agent is not None
        self._keyid = peer.jwk_thumbprint() if keyid == "thumbprint" or web else peer.agent_id
        self._lifetime = lifetime
        self._signature_agent = signature_agent
        self._digests = tuple(digests)
        content_digest(b"", self._digests)  # refuses unknown algorithms now
        self._clock = clock
        self._random = random

    @property
    def keyid(self) -> str:
        """The ``keyid`` this signer writes."""
        return self._keyid

    def _params(self, tag: str, nonce: str) -> dict[str, Any]:
        created = int(moment(self._clock()))
        return {"created": created, "expires": created + self._lifetime, "nonce": nonce,
                "keyid": self._keyid, "alg": "ed25519", "tag": tag}

    def _finish(self, message: HTTPMessage, components: list[Component],
                params: dict[str, Any], extra: list[tuple[str, str]]) -> SignedHeaders:
        params_value = signature_params(components, params)
        # The headers this signer writes replace any of the same names already there.
        base = signature_base(message.with_fields(extra, replace=True), components,
                              params_value)
        signature = self._identity.sign(base)
        # A one-member dictionary serialises as key=member: the member is params_value.
        headers = (*extra, ("signature-input", f"{LABEL}={params_value}"),
                   ("signature", ser_member(LABEL, signature)))
        return SignedHeaders(tuple(headers), params["nonce"], params_value, signature)

    def sign_request(self, message: HTTPMessage, body: bytes | None = None, *,
                     invocation: Callable[[bytes], bytes] | None = None) -> SignedHeaders:
        """Sign a request. ``body`` (if not empty) gets a ``Content-Digest``.
        ``invocation``, given the binding of :func:`invocation_binding`, returns a
        capability invocation to carry (and cover) in the capability header."""
        nonce = self._random(NONCE_LEN)
        if type(nonce) is not bytes or len(nonce) != NONCE_LEN:
            raise InvalidArgument(f"random({NONCE_LEN}) must return {NONCE_LEN} bytes")
        web = self._signature_agent is not None
        params = self._params(WEB_BOT_AUTH_TAG if web else TAG, _b64(nonce))
        extra: list[tuple[str, str]] = []
        components: list[Component] = [(name, {}) for name in REQUEST_COMPONENTS]
        if body:
            extra.append(("content-digest", content_digest(body, self._digests)))
        if web:
            extra.append((SIGNATURE_AGENT, ser_member(LABEL, self._signature_agent)))
        for name in PROTOCOL_HEADERS:
            if (name == SIGNATURE_AGENT and web) or (name == CAPABILITY_HEADER
                                                      and invocation):
                continue
            if message.field(name) is not None:
                components.append((name, {}))
        if body:
            components.append(("content-digest", {}))
        if web:
            components.append((SIGNATURE_AGENT, {"key": LABEL}))
        if invocation is not None:
            components.append((CAPABILITY_HEADER, {}))
            binding = invocation_binding(signature_params(components, params))
            extra.append((CAPABILITY_HEADER, http_sf.ser((invocation(binding), {}))))
        return self._finish(message, components, params, extra)

    def sign_response(self, response: HTTPMessage, request_nonce: str,
                      body: bytes | None = None, *, request_label: str = LABEL
                      ) -> SignedHeaders:
        """Sign a response to ``response.request`` (verified, carrying its signature
        under ``request_label``): covers ``@status``, the request's method and target,
        its signature, and the digest of ``body`` (even empty); its ``nonce`` repeats the
        request's. ``body`` is ``None`` only for a stream: its content is then covered
        only if ``response`` carries its own ``Content-Digest`` (which the signature then
        covers as it is), and not signed otherwise."""
        if response.status is None or response.request is None:
            raise InvalidArgument("a response has a status and the request it answers")
        extra: list[tuple[str, str]] = []
        components: list[Component] = [("@status", {}), *_RESPONSE_REQ,
                                       ("signature", {"req": True, "key": request_label})]
        if body is not None:  # even empty: no one can then add content (spec 13.5)
            extra.append(("content-digest", content_digest(body, self._digests)))
            components.append(("content-digest", {}))
        elif response.field("content-digest") is not None:  # a stream's, its sender's
            components.append(("content-digest", {}))
        params = self._params(RESPONSE_TAG, request_nonce)
        return self._finish(response, components, params, extra)


# ------------------------------------------------------------------ verification


@dataclass(frozen=True, slots=True)
class _Signature:
    label: str
    components: list[Component]
    ids: tuple[str, ...]
    params: dict[str, Any]
    params_value: str
    signature: bytes


def _ids(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(component_id((name, {})) for name in names)


_REQUEST_IDS: Final = _ids(REQUEST_COMPONENTS)
_AUTHORITY_IDS: Final = _ids(["@authority"])
_PROTOCOL_IDS: Final = dict(zip(PROTOCOL_HEADERS, _ids(PROTOCOL_HEADERS), strict=True))
_RESPONSE_IDS: Final = (*_ids(["@status"]), *(component_id(c) for c in _RESPONSE_REQ),
                        component_id(("signature", {"req": True, "key": LABEL})))


def _find(message: HTTPMessage, tags: Iterable[str]) -> _Signature:
    inputs_value = message.field("signature-input")
    signatures_value = message.field("signature")
    if inputs_value is None and signatures_value is None:
        raise AuthenticationError("the message is not signed", code="unsigned")
    if inputs_value is None or signatures_value is None:
        raise DecodeError("Signature and Signature-Input come together", code="malformed")
    inputs = parse_signature_input(inputs_value)
    signatures = parse_dictionary(signatures_value, "Signature")
    wanted = set(tags)
    found = [label for label, member in inputs.items()
             if isinstance(member, tuple) and isinstance(member[1], dict)
             and type(member[1].get("tag")) is str and member[1]["tag"] in wanted]
    if not found:
        raise AuthenticationError(f"no signature tagged {sorted(wanted)}", code="unsigned")
    if len(found) > 1:
        raise DecodeError("more than one signature of the profile", code="malformed")
    label = found[0]
    items, params = inputs[label]
    signature = signatures.get(label)
    if (not isinstance(items, list) or not isinstance(signature, tuple)
            or type(signature[0]) is not bytes or signature[1]):
        raise DecodeError("a signature is an inner list and a byte sequence",
                          code="malformed")
    if len(signature[0]) != crypto.SIGNATURE_LEN:
        raise DecodeError("an Ed25519 signature is 64 bytes", code="malformed")
    if len(items) > MAX_COMPONENTS:  # before each is looked at
        raise DecodeError(f"a signature covers at most {MAX_COMPONENTS} components",
                          code="malformed")
    components: list[Component] = []
    for item in items:
        if not isinstance(item, tuple) or type(item[0]) is not str:
            raise DecodeError("a covered component is a string", code="malformed")
        components.append((item[0], item[1]))
    unknown = set(params) - set(_PARAMS)
    if unknown:
        raise DecodeError(f"signature parameters {shown(sorted(unknown))} are not in the profile",
                          code="unknown_field")
    missing = [name for name in _PARAMS if name not in params]
    if missing:
        raise DecodeError(f"the signature lacks {missing}", code="malformed")
    if (type(params["created"]) is not int or type(params["expires"]) is not int
            or type(params["nonce"]) is not str or type(params["keyid"]) is not str
            or not 16 <= len(params["nonce"]) <= _MAX_NONCE
            or not 0 < len(params["keyid"]) <= _MAX_KEYID):
        raise DecodeError("signature parameters are out of shape", code="malformed")
    if type(params["alg"]) is not str or type(params["tag"]) is not str:
        raise DecodeError("alg and tag are strings", code="malformed")
    if params["alg"] != "ed25519":
        raise DecodeError("alg is not ed25519", code="unknown_field")
    ids = tuple(component_id(c) for c in components)
    return _Signature(label, components, ids, dict(params),
                      signature_params(components, params, ids=ids), signature[0])


def _require(sig: _Signature, required: Iterable[str]) -> None:
    covered = set(sig.ids)
    for ident in required:
        if ident not in covered:
            raise AuthenticationError(f"the signature does not cover {ident}",
                                      code="uncovered_component")


def _times(params: Mapping[str, Any], now: float, window: int | None, skew: int, *,
           what: str = "signature") -> None:
    """The clock checks of a request's or (``window`` None: a response has no acceptance
    window, only its lifetime) a response's signature, in that order: the lifetime's
    shape, ``clock_skew``, ``stale``, ``signature_expired``."""
    created, expires = params["created"], params["expires"]
    if not created < expires <= created + MAX_LIFETIME:
        raise DecodeError(f"expires is after created, by at most {MAX_LIFETIME} s",
                          code="malformed")
    if created > now + skew:
        raise AuthenticationError(f"the {what} is dated in the future beyond the skew",
                                  code="clock_skew")
    if window is not None and created < now - window - skew:
        raise ReplayDetected(f"the {what} is older than the acceptance window",
                             code="stale")
    if expires < now - skew:
        raise AuthenticationError(f"the {what} has expired", code="signature_expired")


def _digest_covered(sig: _Signature) -> bool:
    return any(name == "content-digest" and not p for name, p in sig.components)


def _digest(message: HTTPMessage, sig: _Signature, body: bytes) -> None:
    # Spec 13.3: content needs a covered Content-Digest, and a Content-Digest that is
    # present is checked against the content, covered or not.
    if body and not _digest_covered(sig):
        raise AuthenticationError("the body has no signed Content-Digest",
                                  code="digest_mismatch")
    value = message.field("content-digest")
    if value is not None:
        check_content_digest(value, body)


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """A request whose signature verified: who signed it, and what the replay store must
    remember (``replay_key`` until ``replay_expires``)."""

    peer: PeerKey
    keyid: str
    nonce: str
    tag: str
    label: str
    created: int
    expires: int
    params_value: str
    signature: bytes
    covered: tuple[str, ...]
    replay_key: bytes
    replay_expires: float

    def __repr__(self) -> str:
        return f"VerifiedRequest(peer={self.peer.agent_id!r}, tag={self.tag!r})"


class Verifier:
    """Checks requests signed under the profile.

    ``keys`` are the agents this verifier knows (agent ids, :class:`PeerKey` or
    :class:`Identity`): found by ``keyid`` as a did:key or a JWK thumbprint. ``trust``
    decides about a did:key not in ``keys`` (e.g. any holder of a valid capability:
    ``lambda peer: True``); it must answer exactly ``True`` or ``False`` (spec 7.1), and
    an ``async def`` is refused (``invalid_argument``). At least one of the two is
    required: a verifier that accepts no one is a mistake, and one that accepts anyone
    must say so.
    ``web_bot_auth`` also accepts ``tag="web-bot-auth"`` signatures, which need to cover
    only ``@authority`` (and ``Signature-Agent`` when present).
    ``authorities`` names this server's own hosts, as ``Host`` carries them (e.g.
    ``"api.example"`` or ``"127.0.0.1:8000"``): a request signed for any other is
    ``wrong_recipient``, so that a server that received a signed request cannot relay it
    to another server that trusts the same signer. Without it the host is not checked
    (behind a proxy that rewrites ``Host``, say); give it whenever the hosts are known.
    """

    __slots__ = ("_authorities", "_by_keyid", "_clock", "_skew", "_trust", "_web",
                 "_window")

    def __init__(self, keys: Iterable[str | PeerKey | Identity] = (), *,
                 trust: Callable[[PeerKey], bool] | None = None,
                 window: int = DEFAULT_WINDOW, skew: int = DEFAULT_SKEW,
                 web_bot_auth: bool = False,
                 authorities: Iterable[str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._by_keyid: dict[str, PeerKey] = {}
        for key in keys:
            peer = peer_key(key)
            self._by_keyid[peer.agent_id] = peer
            self._by_keyid[peer.jwk_thumbprint()] = peer
        if not self._by_keyid and trust is None:
            raise InvalidArgument("give the keys to accept, or a trust policy")
        check_callback(trust, "trust callback")
        check_window("window", window)
        check_window("skew", skew)
        if authorities is not None:
            hosts = [authorities] if isinstance(authorities, str) else list(authorities)
            if not hosts or any(type(h) is not str or not h for h in hosts):
                raise InvalidArgument("authorities are host names, at least one")
            self._authorities: frozenset[str] | None = frozenset(h.lower() for h in hosts)
        else:
            self._authorities = None
        self._trust = trust
        self._window = window
        self._skew = skew
        self._web = web_bot_auth
        self._clock = clock

    def resolve(self, keyid: str) -> PeerKey:
        """The key ``keyid`` names, if this verifier accepts it; else ``untrusted_peer``."""
        peer = self._by_keyid.get(keyid)
        if peer is not None:
            return peer
        if keyid.startswith("did:key:") and self._trust is not None:
            try:
                peer = PeerKey.from_agent_id(keyid)
            except InvalidAgentId as exc:
                raise DecodeError("keyid is not a valid did:key", code="malformed") from exc
            if ask("trust callback", True, self._trust, peer):  # exactly True (spec 7.1)
                return peer
        raise AuthenticationError("the signing key is not one this server accepts",
                                  code="untrusted_peer")

    def check_authority(self, authority: str, scheme: str = "https") -> None:
        """Refuse ``authority`` (a ``Host`` value) if this verifier names its hosts and it
        is none of them (``wrong_recipient``); compared as ``@authority`` is (lower case,
        the scheme's default port left out)."""
        if type(authority) is not str or type(scheme) is not str:
            raise InvalidArgument("authority and scheme are strings")
        if (self._authorities is not None
                and authority_value(authority, scheme) not in self._authorities
                and authority.lower() not in self._authorities):
            raise AuthenticationError("the request is for another host",
                                      code="wrong_recipient")

    def check_request(self, message: HTTPMessage, body: bytes | None = None
                      ) -> VerifiedRequest:
        """Every check of spec 13.4 but the replay store, in order; raise the first rule
        broken. ``body`` is the content as received (``None``: there is none); a message
        whose fields announce content (a non-zero ``Content-Length``, or
        ``Transfer-Encoding``) with ``body`` left ``None`` is refused at the digest step
        (``invalid_argument``) rather than checked without its content."""
        # Step 1 (the body's size) is the reader's, before the body exists.
        _check_types(message, body)
        tags = (TAG, WEB_BOT_AUTH_TAG) if self._web else (TAG,)
        sig = _find(message, tags)  # 2. the form of Signature-Input and Signature
        tag = sig.params["tag"]
        required = list(_REQUEST_IDS if tag == TAG else _AUTHORITY_IDS)
        required += [ident for name, ident in _PROTOCOL_IDS.items()
                     if message.field(name) is not None and name != SIGNATURE_AGENT]
        if message.field(SIGNATURE_AGENT) is not None and not any(
                name == SIGNATURE_AGENT for name, _ in sig.components):
            required.append(_PROTOCOL_IDS[SIGNATURE_AGENT])
        _require(sig, required)  # 3. the coverage of 13.2
        peer = self.resolve(sig.params["keyid"])  # 4. the key
        base = signature_base(message, sig.components, sig.params_value, ids=sig.ids)
        peer.verify(base, sig.signature)  # 5. the signature, then the authority
        self.check_authority(message.authority, message.scheme)
        now = moment(self._clock())  # NaN would pass every clock check
        _times(sig.params, now, self._window, self._skew)  # 6. the clock
        if body is None and _announces_content(message):
            raise InvalidArgument("the request has content: pass its body to check it")
        _digest(message, sig, b"" if body is None else body)  # 7. the content digest
        # Steps 8 (the capability, http.capability) and 9 (the nonce) are the caller's.
        last = min(sig.params["created"] + self._window, sig.params["expires"]) + self._skew
        return VerifiedRequest(
            peer, sig.params["keyid"], sig.params["nonce"], tag, sig.label,
            sig.params["created"],
            sig.params["expires"], sig.params_value, sig.signature,
            sig.ids,
            _REPLAY_PREFIX + peer.public_bytes + sig.params["nonce"].encode("ascii"),
            float(last))


def _announces_content(message: HTTPMessage) -> bool:
    length = message.field("content-length")
    return (message.field("transfer-encoding") is not None
            or (length is not None and length.strip("0, \t") != ""))


def check_response(response: HTTPMessage, body: bytes, *, request_nonce: str,
                   server: str | PeerKey | Identity, skew: int = DEFAULT_SKEW,
                   now: float | None = None) -> PeerKey:
    """Check that ``response`` answers the request it names (``response.request``, with
    its signature) and was signed by ``server``, and that ``body``, its whole content as
    received, is intact; return the server's key. For content that arrives as a stream,
    use :func:`check_response_head` and feed the :class:`ResponseContent` it returns.

    Refusals: ``unsigned``, ``unexpected_reply`` (the response repeats another
    request's nonce), ``unexpected_peer`` (another key signed it), ``bad_signature``
    (it covers another request), ``uncovered_component``, ``clock_skew``,
    ``signature_expired``, ``digest_mismatch`` (content with no signed
    ``Content-Digest``, or not matching one); ``invalid_argument`` when ``body`` is not
    bytes (there is no "not read yet" here: spec 13.7).
    """
    if type(body) is not bytes:
        raise InvalidArgument("body is the response's content, as bytes")
    content = check_response_head(response, request_nonce=request_nonce, server=server,
                                  skew=skew, now=now)
    content.update(body)
    content.finish()
    return content.server


def check_response_head(response: HTTPMessage, *, request_nonce: str,
                        server: str | PeerKey | Identity, skew: int = DEFAULT_SKEW,
                        now: float | None = None, allow_streamed: bool = False
                        ) -> ResponseContent:
    """Every check of :func:`check_response` that needs no content, in the same order;
    return the :class:`ResponseContent` that checks the content as it arrives.
    ``allow_streamed`` lets content without a ``Content-Digest`` through when the
    response is a stream (:func:`is_stream`); only then is its content not protected."""
    _check_types(response, None)
    check_window("skew", skew)  # a NaN skew would pass every clock check
    if type(request_nonce) is not str:
        raise InvalidArgument("request_nonce is the nonce the request was signed with")
    expected = peer_key(server)
    sig = _find(response, (RESPONSE_TAG,))
    if not crypto.equal(sig.params["nonce"].encode("ascii"),  # a string item: ASCII
                        request_nonce.encode("utf-8", "surrogatepass")):
        raise AuthenticationError("the response answers another request",
                                  code="unexpected_reply")
    _require(sig, _RESPONSE_IDS)
    keyid = sig.params["keyid"]
    if keyid not in (expected.agent_id, expected.jwk_thumbprint()):
        raise AuthenticationError("the response is signed by another server",
                                  code="unexpected_peer")
    base = signature_base(response, sig.components, sig.params_value, ids=sig.ids)
    expected.verify(base, sig.signature)
    at = moment(time.time() if now is None else now, "now")  # NaN would pass the checks
    _times(sig.params, at, None, skew, what="response signature")
    covered = _digest_covered(sig)
    unprotected = not covered and allow_streamed and is_stream(response)
    return ResponseContent(expected, response.field("content-digest"),
                           needs_digest=not covered and not unprotected)


def is_stream(response: HTTPMessage) -> bool:
    """Whether ``response`` is a stream in the sense of spec 13.7: it has no
    ``Content-Length``, and its media type is ``text/event-stream`` or its last transfer
    coding is ``chunked``."""
    if response.field("content-length") is not None:
        return False
    media = (response.field("content-type") or "").split(";", 1)[0].strip(" \t").lower()
    codings = (response.field("transfer-encoding") or "").lower().split(",")
    return media == "text/event-stream" or codings[-1].strip(" \t") == "chunked"


class ResponseContent:
    """The content rule of a response whose fields :func:`check_response_head` checked
    (spec 13.3, 13.7), fed as the content arrives: :meth:`update` with each part, then
    :meth:`finish` at its end; each returns the content that may be handed on now.

    Content where a signed digest is required and absent is refused at its first byte.
    A ``Content-Digest`` that is present is checked at the end, over everything received
    (kept until then); meanwhile the latest part is held back, so that a reader gets the
    last of the content only once it matched."""

    __slots__ = ("_digest", "_needs_digest", "_parts", "server")

    def __init__(self, server: PeerKey, digest: str | None, *, needs_digest: bool) -> None:
        self.server = server
        self._digest = digest
        self._needs_digest = needs_digest
        self._parts: list[bytes] = []

    def __repr__(self) -> str:
        return f"ResponseContent(server={self.server.agent_id!r})"

    def update(self, part: bytes) -> bytes:
        """Take the next part of the content; return what may be handed on."""
        if not part:
            return b""
        if self._needs_digest:
            raise AuthenticationError("the answer has content but no signed Content-Digest",
                                      code="digest_mismatch")
        if self._digest is None:
            return part
        self._parts.append(part)
        return self._parts[-2] if len(self._parts) > 1 else b""

    def finish(self) -> bytes:
        """The content ended: check it against its ``Content-Digest``, if present;
        return the part held back."""
        if self._digest is None:
            return b""
        check_content_digest(self._digest, b"".join(self._parts))
        return self._parts[-1] if self._parts else b""


def _check_types(message: HTTPMessage, body: object) -> None:
    if not isinstance(message, HTTPMessage):
        raise InvalidArgument("message is an HTTPMessage")
    if body is not None and type(body) is not bytes:
        raise InvalidArgument("body is bytes, or None for none")


def accept_signature() -> str:
    """The ``Accept-Signature`` field a 401 answer carries (RFC 9421 5.1): what a request
    signature of the profile must cover and which parameters it takes."""
    components: list[Component] = [(name, {}) for name in (*REQUEST_COMPONENTS,
                                                           "content-digest")]
    return f"{LABEL}={signature_params(components, {'alg': 'ed25519', 'tag': TAG})}"

"""The peers agentauth is measured against, each as a zero-argument callable.

Every callable performs one complete unit of work, both sides in one process: a full
handshake, or one seal plus one open. Set-up that a long-running agent would do once
(keys, certificates, policies, SSL contexts) happens outside the callable.
"""

from __future__ import annotations

import datetime
import os
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import nacl.bindings as sodium
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.x509.oid import NameOID
from noise.connection import Keypair, NoiseConnection

from agentauth import HandshakePolicy, Identity, Initiator, Responder

__all__ = [
    "SIGNED_MESSAGE_LEN",
    "ServerProcess",
    "agentauth_handshake",
    "agentauth_session",
    "certificate",
    "floor_operations",
    "noise_xx_handshake",
    "pem",
    "raw_aead",
    "tls13_handshake",
    "tls_contexts",
]

Work = Callable[[], object]

#: Length of what a side signs in an agentauth handshake: context, hash, body (the
#: responder's body is 46 bytes with today's timestamps, the initiator's 44).
SIGNED_MESSAGE_LEN = 43 + 64 + 46


# --------------------------------------------------------------- the floor


def floor_operations() -> dict[str, tuple[Work, int]]:
    """The asymmetric operations of one agentauth handshake, each alone, with its count.

    They go through the same binding agentauth uses (libsodium via PyNaCl): per side one
    X25519 key generation, one X25519 Diffie-Hellman, one Ed25519 signature and one
    Ed25519 verification.
    """
    secret, peer_secret = os.urandom(32), os.urandom(32)
    peer_public = sodium.crypto_scalarmult_base(peer_secret)
    public_key, secret_key = sodium.crypto_sign_seed_keypair(os.urandom(32))
    message = os.urandom(SIGNED_MESSAGE_LEN)
    signed = sodium.crypto_sign(message, secret_key)

    def keygen() -> object:
        return sodium.crypto_scalarmult_base(os.urandom(32))

    return {
        "x25519 keygen": (keygen, 2),
        "x25519 dh": (lambda: sodium.crypto_scalarmult(secret, peer_public), 2),
        "ed25519 sign": (lambda: sodium.crypto_sign(message, secret_key), 2),
        "ed25519 verify": (lambda: sodium.crypto_sign_open(signed, public_key), 2),
    }


# -------------------------------------------------------------- handshakes


def agentauth_handshake(alice: Identity | None = None, bob: Identity | None = None,
                        bob_policy: HandshakePolicy | None = None) -> Work:
    """Both engines of one agentauth handshake, from construction to both results: Alice
    initiates, Bob responds under ``bob_policy`` (by default: trust Alice)."""
    alice = alice or Identity.generate()
    bob = bob or Identity.generate()
    alice_policy = HandshakePolicy(trust=[bob.agent_id])
    bob_policy = bob_policy or HandshakePolicy(trust=[alice.agent_id])

    def run() -> object:
        initiator = Initiator(alice, alice_policy)
        responder = Responder(bob, bob_policy)
        hs3 = initiator.receive_message(responder.receive_message(initiator.start()) or b"")
        responder.receive_message(hs3 or b"")
        assert responder.result is not None
        return responder.result

    return run


def noise_xx_handshake() -> Work:
    """noiseprotocol's Noise_XX_25519_ChaChaPoly_BLAKE2b, static keys made in advance."""
    name = b"Noise_XX_25519_ChaChaPoly_BLAKE2b"
    static_i, static_r = os.urandom(32), os.urandom(32)

    def run() -> object:
        initiator, responder = NoiseConnection.from_name(name), NoiseConnection.from_name(name)
        initiator.set_as_initiator()
        responder.set_as_responder()
        initiator.set_keypair_from_private_bytes(Keypair.STATIC, static_i)
        responder.set_keypair_from_private_bytes(Keypair.STATIC, static_r)
        initiator.start_handshake()
        responder.start_handshake()
        responder.read_message(initiator.write_message())
        initiator.read_message(responder.write_message())
        responder.read_message(initiator.write_message())
        assert initiator.handshake_finished and responder.handshake_finished
        return responder

    return run


def certificate(subject_name: str, key: Ed25519PrivateKey, issuer_name: str,
                 issuer_key: Ed25519PrivateKey, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject_name)]), critical=False)
    return builder.sign(issuer_key, None)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def tls_contexts(*, lean: bool) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Server and client contexts for mutual TLS 1.3 with Ed25519 certificates.

    The default (``lean=False``) is how mutual TLS is deployed: a private CA issues each
    side a leaf, and the server issues session tickets as OpenSSL does by default. The
    lean variant pins each side's self-signed certificate and sends no tickets: the least
    work TLS 1.3 with client certificates can do.
    """
    ca_key = Ed25519PrivateKey.generate()
    ca = certificate("agents CA", ca_key, "agents CA", ca_key, ca=True)
    contexts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, protocol in (("server.test", ssl.PROTOCOL_TLS_SERVER),
                               ("client.test", ssl.PROTOCOL_TLS_CLIENT)):
            key = Ed25519PrivateKey.generate()
            cert = (certificate(name, key, name, key, ca=False) if lean
                    else certificate(name, key, "agents CA", ca_key, ca=False))
            cert_path, key_path = Path(tmp) / f"{name}.crt", Path(tmp) / f"{name}.key"
            cert_path.write_bytes(pem(cert))
            key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
            context = ssl.SSLContext(protocol)
            context.load_cert_chain(cert_path, key_path)
            context.verify_mode = ssl.CERT_REQUIRED
            context.minimum_version = ssl.TLSVersion.TLSv1_3
            if lean:
                context.options |= ssl.OP_NO_TICKET
            else:
                context.load_verify_locations(cadata=pem(ca).decode())
            contexts.append((context, cert))
    (server, server_cert), (client, client_cert) = contexts
    if lean:  # each side trusts exactly the other's certificate
        server.load_verify_locations(cadata=pem(client_cert).decode())
        client.load_verify_locations(cadata=pem(server_cert).decode())
    return server, client


def tls13_handshake(*, lean: bool = False) -> Work:
    """The standard library's TLS 1.3, mutual Ed25519 certificates, over memory BIOs."""
    server_context, client_context = tls_contexts(lean=lean)

    def run() -> object:
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        client = client_context.wrap_bio(c_in, c_out, server_hostname="server.test")
        server = server_context.wrap_bio(s_in, s_out, server_side=True)
        done = [False, False]
        while not all(done):
            for index, (side, outgoing, incoming) in enumerate(
                    ((client, c_out, s_in), (server, s_out, c_in))):
                if not done[index]:
                    try:
                        side.do_handshake()
                        done[index] = True
                    except ssl.SSLWantReadError:
                        pass
                incoming.write(outgoing.read())
        assert server.getpeercert() is not None
        return server

    return run


# ---------------------------------------------------------------- sessions


def agentauth_session(size: int, *, ordered: bool) -> Work:
    """One agentauth session message of ``size`` bytes, sealed by one end, opened by the other."""
    alice, bob = Identity.generate(), Identity.generate()
    initiator = Initiator(alice, HandshakePolicy(trust=[bob.agent_id]), ordered=ordered)
    responder = Responder(bob, HandshakePolicy(trust=[alice.agent_id]), ordered=ordered)
    responder.receive_message(initiator.receive_message(
        responder.receive_message(initiator.start()) or b"") or b"")
    assert initiator.result is not None and responder.result is not None
    seal, open_ = initiator.result.session.seal, responder.result.session.open
    payload = os.urandom(size)

    def run() -> object:
        return open_(seal(payload))

    return run


def raw_aead(size: int) -> Work:
    """The bare AEAD: one ChaCha20-Poly1305 encrypt and one decrypt through ``cryptography``."""
    cipher = ChaCha20Poly1305(ChaCha20Poly1305.generate_key())
    nonce, payload = bytes(12), os.urandom(size)
    encrypt, decrypt = cipher.encrypt, cipher.decrypt

    def run() -> object:
        return decrypt(nonce, encrypt(nonce, payload, None), None)

    return run


class ServerProcess:
    """A benchmark server in a process of its own: ``python -m MODULE --serve ARGS...``,
    which prints ``PORT n`` once it listens and stops when its standard input closes."""

    def __init__(self, module: str, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", module, "--serve", *args],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the {' '.join(args)} server did not start")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        """Close its standard input and wait for it (kill it after 30 s)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
